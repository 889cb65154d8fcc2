//! Methods inside `#[async_trait]` impls: `async-trait` expands first and hands the attribute
//! `fn ... -> Pin<Box<dyn Future + Send>>` with a `Box::pin(async move { .. })` body, whose
//! inner block becomes the protected body. Receivers `&self`, `&mut self`, `self: Arc<Self>`;
//! by-value, borrowed and pattern arguments; every attribute, and the full stack.

use async_trait::async_trait;
use resilient::{bulkhead, circuit_breaker, fallback, retry, timeout};
use std::sync::Arc;

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

#[async_trait]
trait Profiles: Send + Sync {
    async fn get(&self, id: u32) -> Result<String, ApiError>;
    async fn rename(&mut self, name: String) -> Result<usize, ApiError>;
    async fn count(self: Arc<Self>, (a, b): (u32, u32)) -> Result<u32, ApiError>;
    async fn stack(&self, id: u32, tag: &str) -> Result<String, ApiError>;
    async fn limited(&self) -> Result<(), ApiError>;
    async fn bump(&mut self, by: u32) -> Result<usize, ApiError>;
    async fn shared(self: Arc<Self>) -> Result<u32, ApiError>;
}

#[derive(Default)]
struct Service {
    names: Vec<String>,
    attempts: std::sync::atomic::AtomicU32,
}

impl Service {
    async fn anonymous(&self, id: u32, _e: ApiError) -> Result<String, ApiError> {
        Ok(format!("anon{id}"))
    }

    async fn stack_default(&self, id: u32, tag: &str, _e: ApiError) -> Result<String, ApiError> {
        Ok(format!("{tag}{id}-fallback"))
    }

    async fn clear(&mut self, by: u32, _e: ApiError) -> Result<usize, ApiError> {
        self.names.clear();
        Ok(by as usize)
    }

    async fn shared_backup(self: Arc<Self>, _e: ApiError) -> Result<u32, ApiError> {
        Ok(self.attempts.load(std::sync::atomic::Ordering::SeqCst) + 100)
    }
}

#[async_trait]
impl Profiles for Service {
    #[fallback(Self::anonymous)]
    #[circuit_breaker(threshold = 3)]
    async fn get(&self, id: u32) -> Result<String, ApiError> {
        if id == 0 {
            return Err(ApiError::Down);
        }
        Ok(format!("user{id}"))
    }

    #[retry(attempts = 3, backoff = "0s")]
    #[timeout("1s")]
    async fn rename(&mut self, name: String) -> Result<usize, ApiError> {
        self.names.push(name);
        if self.names.len() < 2 {
            Err(ApiError::Down)
        } else {
            Ok(self.names.len())
        }
    }

    #[retry(attempts = 2, backoff = "0s")]
    async fn count(self: Arc<Self>, (a, b): (u32, u32)) -> Result<u32, ApiError> {
        let n = self
            .attempts
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if n == 0 {
            Err(ApiError::Down)
        } else {
            Ok(a + b + n)
        }
    }

    #[fallback(Self::stack_default)]
    #[retry(attempts = 2, backoff = "0s")]
    #[circuit_breaker(threshold = 5)]
    #[timeout("5ms")]
    #[bulkhead(pool = 2)]
    async fn stack(&self, id: u32, tag: &str) -> Result<String, ApiError> {
        if id == 0 {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        Ok(format!("{tag}{id}"))
    }

    #[bulkhead(pool = 1)]
    async fn limited(&self) -> Result<(), ApiError> {
        Ok(())
    }

    /// `&mut self` both reborrowed per attempt and passed to the handler.
    #[fallback(Self::clear)]
    #[retry(attempts = 2, backoff = "0s")]
    async fn bump(&mut self, by: u32) -> Result<usize, ApiError> {
        self.names.push(by.to_string());
        Err(ApiError::Down)
    }

    /// The `Arc` is cloned for the handler before the primary call.
    #[fallback(Self::shared_backup)]
    #[timeout("1s")]
    async fn shared(self: Arc<Self>) -> Result<u32, ApiError> {
        drop(self);
        Err(ApiError::Down)
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut s = Service::default();
        assert_eq!(s.get(1).await, Ok("user1".to_owned()));
        assert_eq!(s.get(0).await, Ok("anon0".to_owned()));
        assert_eq!(s.rename("a".to_owned()).await, Ok(2));
        assert_eq!(s.names, ["a", "a"]);
        assert_eq!(s.stack(1, "t").await, Ok("t1".to_owned()));
        assert_eq!(s.stack(0, "t").await, Ok("t0-fallback".to_owned()));
        assert_eq!(s.limited().await, Ok(()));
        assert_eq!(s.bump(7).await, Ok(7));
        assert!(s.names.is_empty());
        let shared = Arc::new(s);
        assert_eq!(Arc::clone(&shared).count((1, 2)).await, Ok(4));
        assert_eq!(Arc::clone(&shared).shared().await, Ok(102));
        let dynamic: Arc<dyn Profiles> = shared;
        assert_eq!(dynamic.get(2).await, Ok("user2".to_owned()));
    });
}
