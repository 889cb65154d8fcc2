//! `self: Arc<Self>` methods, inherent and in a trait impl, under each of the five
//! attributes. `#[fallback]` clones the `Arc` for the handler before the primary call.

use resilient::{bulkhead, circuit_breaker, fallback, retry, timeout};
use std::sync::Arc;
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
struct Shared {
    calls: AtomicU32,
}

impl Shared {
    fn hit(&self) -> u32 {
        self.calls.fetch_add(1, Ordering::SeqCst) + 1
    }

    #[circuit_breaker(threshold = 5)]
    async fn breaker(self: Arc<Self>) -> Result<u32, ApiError> {
        Ok(self.hit())
    }

    #[timeout("1s")]
    async fn timeout(self: Arc<Self>, x: u32) -> Result<u32, ApiError> {
        let this = self;
        Ok(this.hit() + x)
    }

    #[bulkhead(pool = 4)]
    async fn bulkhead(self: Arc<Self>) -> Result<u32, ApiError> {
        Ok(self.hit())
    }

    #[retry(attempts = 3, backoff = "0s")]
    async fn retry(self: Arc<Self>) -> Result<u32, ApiError> {
        let n = Arc::clone(&self).hit();
        if n % 3 == 0 {
            Ok(n)
        } else {
            Err(ApiError::Down)
        }
    }

    async fn backup(self: Arc<Self>, _e: ApiError) -> Result<u32, ApiError> {
        Ok(self.calls.load(Ordering::SeqCst) + 1000)
    }

    #[fallback(Self::backup)]
    async fn fallback(self: Arc<Self>) -> Result<u32, ApiError> {
        drop(self);
        Err(ApiError::Down)
    }
}

trait Task {
    async fn breaker(self: Arc<Self>) -> Result<u32, ApiError>;
    async fn timeout(self: Arc<Self>, x: u32) -> Result<u32, ApiError>;
    async fn bulkhead(self: Arc<Self>) -> Result<u32, ApiError>;
    async fn retry(self: Arc<Self>) -> Result<u32, ApiError>;
    async fn fallback(self: Arc<Self>) -> Result<u32, ApiError>;
}

impl Task for Shared {
    #[circuit_breaker(threshold = 5)]
    async fn breaker(self: Arc<Self>) -> Result<u32, ApiError> {
        Ok(self.hit())
    }

    #[timeout("1s")]
    async fn timeout(self: Arc<Self>, x: u32) -> Result<u32, ApiError> {
        Ok(self.hit() + x)
    }

    #[bulkhead(pool = 4)]
    async fn bulkhead(self: Arc<Self>) -> Result<u32, ApiError> {
        Ok(self.hit())
    }

    #[retry(attempts = 3, backoff = "0s")]
    async fn retry(self: Arc<Self>) -> Result<u32, ApiError> {
        let n = self.hit();
        if n % 3 == 0 {
            Ok(n)
        } else {
            Err(ApiError::Down)
        }
    }

    #[fallback(Self::backup)]
    async fn fallback(self: Arc<Self>) -> Result<u32, ApiError> {
        Err(ApiError::Down)
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = Arc::new(Shared::default());
        assert_eq!(Arc::clone(&s).breaker().await, Ok(1));
        assert_eq!(Arc::clone(&s).timeout(10).await, Ok(12));
        assert_eq!(Arc::clone(&s).bulkhead().await, Ok(3));
        assert_eq!(Arc::clone(&s).retry().await, Ok(6));
        assert_eq!(Arc::clone(&s).fallback().await, Ok(1006));

        let t = Arc::new(Shared::default());
        assert_eq!(Task::breaker(Arc::clone(&t)).await, Ok(1));
        assert_eq!(Task::timeout(Arc::clone(&t), 10).await, Ok(12));
        assert_eq!(Task::bulkhead(Arc::clone(&t)).await, Ok(3));
        assert_eq!(Task::retry(Arc::clone(&t)).await, Ok(6));
        assert_eq!(Task::fallback(Arc::clone(&t)).await, Ok(1006));
    });
}
