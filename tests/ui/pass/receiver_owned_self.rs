//! An owned `self` receiver (`self`, `mut self`) under every attribute that allows it:
//! `#[fallback]` needs `Self: Clone` to give the handler its own copy. (`#[retry]` rejects
//! owned `self`; see `tests/ui/fail/retry_owned_self.rs`.)

use resilient::{bulkhead, circuit_breaker, fallback, timeout};

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

#[derive(Clone)]
struct Request {
    path: String,
}

impl Request {
    #[circuit_breaker(threshold = 2)]
    async fn send(self) -> Result<String, ApiError> {
        Ok(self.path)
    }

    #[timeout("1s")]
    async fn send_timed(mut self, suffix: &str) -> Result<String, ApiError> {
        self.path.push_str(suffix);
        Ok(self.path)
    }

    #[bulkhead(pool = 1)]
    async fn send_limited(self) -> Result<String, ApiError> {
        Ok(self.path)
    }

    async fn cached(self, _e: ApiError) -> Result<String, ApiError> {
        Ok(format!("{}-cached", self.path))
    }

    #[fallback(Self::cached)]
    #[timeout("1s")]
    async fn send_or_cached(self) -> Result<String, ApiError> {
        drop(self.path);
        Err(ApiError::Down)
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = || Request {
            path: "/a".to_owned(),
        };
        assert_eq!(r().send().await, Ok("/a".to_owned()));
        assert_eq!(r().send_timed("b").await, Ok("/ab".to_owned()));
        assert_eq!(r().send_limited().await, Ok("/a".to_owned()));
        assert_eq!(r().send_or_cached().await, Ok("/a-cached".to_owned()));
    });
}
