//! `&mut self` methods, inherent and in a trait impl, under each of the five attributes.
//! Under `#[retry]` every attempt reborrows `self`.

use resilient::{bulkhead, circuit_breaker, fallback, retry, timeout};

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
struct Counter {
    n: u32,
    log: Vec<String>,
}

fn bump(c: &mut Counter) -> u32 {
    c.n += 1;
    c.n
}

impl Counter {
    #[circuit_breaker(threshold = 5)]
    async fn breaker(&mut self, x: u32) -> Result<u32, ApiError> {
        self.n += x;
        Ok(self.n)
    }

    #[timeout("1s")]
    async fn timeout(&mut self) -> Result<u32, ApiError> {
        tokio::task::yield_now().await;
        Ok(bump(self))
    }

    #[bulkhead(pool = 1)]
    async fn bulkhead(&mut self, line: String) -> Result<(), ApiError> {
        self.log.push(line);
        Ok(())
    }

    #[retry(attempts = 3, backoff = "0s")]
    async fn retry(&mut self, out: &mut Vec<u32>) -> Result<u32, ApiError> {
        let n = bump(self);
        out.push(n);
        if out.len() < 3 {
            Err(ApiError::Down)
        } else {
            Ok(n)
        }
    }

    async fn reset(&mut self, _e: ApiError) -> Result<u32, ApiError> {
        self.n = 0;
        Ok(0)
    }

    #[fallback(Self::reset, args = (self))]
    async fn fallback(&mut self) -> Result<u32, ApiError> {
        self.n += 100;
        Err(ApiError::Down)
    }
}

trait Account {
    async fn breaker(&mut self, x: u32) -> Result<u32, ApiError>;
    async fn timeout(&mut self) -> Result<u32, ApiError>;
    async fn bulkhead(&mut self, line: String) -> Result<(), ApiError>;
    async fn retry(&mut self, out: &mut Vec<u32>) -> Result<u32, ApiError>;
    async fn fallback(&mut self, step: u32) -> Result<u32, ApiError>;
}

struct Wallet(Counter);

impl Wallet {
    async fn recover(&mut self, step: u32, _e: ApiError) -> Result<u32, ApiError> {
        self.0.n = step;
        Ok(step)
    }
}

impl Account for Wallet {
    #[circuit_breaker(threshold = 5)]
    async fn breaker(&mut self, x: u32) -> Result<u32, ApiError> {
        self.0.breaker(x).await
    }

    #[timeout("1s")]
    async fn timeout(&mut self) -> Result<u32, ApiError> {
        self.0.timeout().await
    }

    #[bulkhead(pool = 1)]
    async fn bulkhead(&mut self, line: String) -> Result<(), ApiError> {
        self.0.bulkhead(line).await
    }

    #[retry(attempts = 3, backoff = "0s")]
    async fn retry(&mut self, out: &mut Vec<u32>) -> Result<u32, ApiError> {
        let n = bump(&mut self.0);
        out.push(n);
        if out.len() < 3 {
            Err(ApiError::Down)
        } else {
            Ok(n)
        }
    }

    #[fallback(Self::recover)]
    async fn fallback(&mut self, step: u32) -> Result<u32, ApiError> {
        self.0.n += step;
        Err(ApiError::Down)
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = Counter::default();
        assert_eq!(c.breaker(2).await, Ok(2));
        assert_eq!(c.timeout().await, Ok(3));
        assert_eq!(c.bulkhead("a".into()).await, Ok(()));
        let mut out = Vec::new();
        assert_eq!(c.retry(&mut out).await, Ok(6));
        assert_eq!(out, [4, 5, 6]);
        assert_eq!(c.fallback().await, Ok(0));
        assert_eq!(c.n, 0);

        let mut w = Wallet(Counter::default());
        assert_eq!(w.breaker(1).await, Ok(1));
        assert_eq!(w.timeout().await, Ok(2));
        assert_eq!(w.bulkhead("b".into()).await, Ok(()));
        let mut out = Vec::new();
        assert_eq!(w.retry(&mut out).await, Ok(5));
        assert_eq!(w.fallback(9).await, Ok(9));
        assert_eq!(w.0.log, ["b"]);
    });
}
