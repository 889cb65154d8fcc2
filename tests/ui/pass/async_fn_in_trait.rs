//! Native `async fn` in traits: attributes on the methods of trait impls (a generic trait, an
//! associated error type, two impls of one trait), and on a default method body in the trait
//! itself. Each impl has its own policy state.

use resilient::{circuit_breaker, fallback, retry, timeout};

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

trait Store<K> {
    type Error: From<resilient::Error>;

    async fn get(&self, key: K) -> Result<String, Self::Error>;

    /// A default method with a body can carry attributes too.
    #[timeout("1s")]
    async fn get_or_empty(&self, key: K) -> Result<String, Self::Error>
    where
        K: Send,
    {
        self.get(key).await
    }
}

struct Memory;
struct Disk {
    fail: bool,
}

impl Memory {
    async fn miss(&self, key: u32, _e: ApiError) -> Result<String, ApiError> {
        Ok(format!("miss:{key}"))
    }
}

impl Store<u32> for Memory {
    type Error = ApiError;

    #[fallback(Self::miss)]
    #[circuit_breaker(threshold = 3)]
    async fn get(&self, key: u32) -> Result<String, ApiError> {
        if key == 0 {
            Err(ApiError::Down)
        } else {
            Ok(format!("mem:{key}"))
        }
    }
}

impl Store<&'static str> for Disk {
    type Error = std::io::Error;

    #[retry(attempts = 2, backoff = "0s")]
    #[timeout("1s")]
    async fn get(&self, key: &'static str) -> std::io::Result<String> {
        if self.fail {
            return Err(std::io::Error::other("disk"));
        }
        Ok(format!("disk:{key}"))
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(Memory.get(1).await, Ok("mem:1".to_owned()));
        assert_eq!(Memory.get(0).await, Ok("miss:0".to_owned()));
        assert_eq!(Memory.get_or_empty(2).await, Ok("mem:2".to_owned()));
        assert_eq!(Disk { fail: false }.get("a").await.unwrap(), "disk:a");
        assert!(Disk { fail: true }.get_or_empty("a").await.is_err());
    });
}
