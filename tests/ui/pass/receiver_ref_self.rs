//! `&self` methods, inherent and in a trait impl, under each of the five attributes.

use resilient::{bulkhead, circuit_breaker, fallback, retry, timeout};
use std::sync::atomic::{AtomicU32, Ordering};

#[derive(Debug, PartialEq)]
enum ApiError {
    Down,
    Resilience(resilient::Error),
}

impl From<resilient::Error> for ApiError {
    fn from(e: resilient::Error) -> Self {
        ApiError::Resilience(e)
    }
}

#[derive(Default)]
struct Client {
    calls: AtomicU32,
}

impl Client {
    fn flaky(&self) -> Result<u32, ApiError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n % 2 == 1 {
            Err(ApiError::Down)
        } else {
            Ok(n)
        }
    }

    #[circuit_breaker(threshold = 5)]
    async fn breaker(&self, x: u32) -> Result<u32, ApiError> {
        Ok(x)
    }

    #[timeout("1s")]
    async fn timeout(&self, x: u32) -> Result<u32, ApiError> {
        Ok(x + self.calls.load(Ordering::SeqCst))
    }

    #[bulkhead(pool = 1)]
    async fn bulkhead(&self) -> Result<(), ApiError> {
        Ok(())
    }

    #[retry(attempts = 2, backoff = "0s")]
    async fn retry(&self, label: String) -> Result<String, ApiError> {
        let n = self.flaky()?;
        Ok(format!("{label}{n}"))
    }

    async fn cached(&self, label: String, _e: ApiError) -> Result<String, ApiError> {
        Ok(format!("{label}-cached"))
    }

    #[fallback(Self::cached)]
    async fn fallback(&self, label: String) -> Result<String, ApiError> {
        drop(label);
        Err(ApiError::Down)
    }
}

trait Service {
    async fn breaker(&self, x: u32) -> Result<u32, ApiError>;
    async fn timeout(&self, x: u32) -> Result<u32, ApiError>;
    async fn bulkhead(&self) -> Result<(), ApiError>;
    async fn retry(&self, label: String) -> Result<String, ApiError>;
    async fn fallback(&self, label: String) -> Result<String, ApiError>;
}

struct Remote(Client);

impl Remote {
    async fn stale(&self, _e: ApiError) -> Result<String, ApiError> {
        Ok("stale".to_owned())
    }
}

impl Service for Remote {
    #[circuit_breaker(threshold = 5)]
    async fn breaker(&self, x: u32) -> Result<u32, ApiError> {
        self.0.breaker(x).await
    }

    #[timeout("1s")]
    async fn timeout(&self, x: u32) -> Result<u32, ApiError> {
        self.0.timeout(x).await
    }

    #[bulkhead(pool = 1)]
    async fn bulkhead(&self) -> Result<(), ApiError> {
        self.0.bulkhead().await
    }

    #[retry(attempts = 2, backoff = "0s")]
    async fn retry(&self, label: String) -> Result<String, ApiError> {
        let n = self.0.flaky()?;
        Ok(format!("{label}{n}"))
    }

    #[fallback(Self::stale, args = (self))]
    async fn fallback(&self, label: String) -> Result<String, ApiError> {
        Err(if label.is_empty() {
            ApiError::Down
        } else {
            ApiError::Down
        })
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = Client::default();
        assert_eq!(c.breaker(1).await, Ok(1));
        assert_eq!(c.timeout(1).await, Ok(1));
        assert_eq!(c.bulkhead().await, Ok(()));
        assert_eq!(c.retry("n".into()).await, Ok("n2".into()));
        assert_eq!(c.fallback("x".into()).await, Ok("x-cached".into()));

        let r = Remote(Client::default());
        assert_eq!(Service::breaker(&r, 2).await, Ok(2));
        assert_eq!(Service::timeout(&r, 2).await, Ok(2));
        assert_eq!(Service::bulkhead(&r).await, Ok(()));
        assert_eq!(Service::retry(&r, "m".into()).await, Ok("m2".into()));
        assert_eq!(Service::fallback(&r, "y".into()).await, Ok("stale".into()));
    });
}
