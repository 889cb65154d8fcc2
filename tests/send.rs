//! The returned future is `Send` whenever the body's future is: `assert_send` over the futures
//! of annotated functions of every supported shape (free and generic functions, every
//! receiver, `impl Trait` arguments, patterns, lifetimes, trait impls with native `async fn`,
//! `#[async_trait]` impls, each attribute alone and the full stack). The futures are only
//! built, never polled: this file is a compile-time check.

use std::fmt::Display;
use std::rc::Rc;
use std::sync::Arc;

use async_trait::async_trait;
use resilient::{bulkhead, circuit_breaker, fallback, retry, timeout};

fn assert_send<T: Send>(_: &T) {}

#[derive(Debug, Clone, PartialEq)]
enum ApiError {
    Down,
    Resilience(resilient::Error),
}

impl From<resilient::Error> for ApiError {
    fn from(e: resilient::Error) -> Self {
        ApiError::Resilience(e)
    }
}

#[circuit_breaker(threshold = 3)]
async fn breaker(x: u32) -> Result<u32, ApiError> {
    tokio::task::yield_now().await;
    Ok(x)
}

#[timeout("1s")]
async fn timed(s: String) -> Result<String, ApiError> {
    tokio::task::yield_now().await;
    Ok(s)
}

#[bulkhead(pool = 2, queue = 1)]
async fn limited(v: Vec<u8>) -> Result<usize, ApiError> {
    tokio::task::yield_now().await;
    Ok(v.len())
}

#[retry(attempts = 3, backoff = "10ms")]
async fn retried(
    label: String,
    (a, b): (u32, String),
    out: &mut Vec<String>,
) -> Result<u32, ApiError> {
    tokio::task::yield_now().await;
    out.push(format!("{label}{b}"));
    Ok(a)
}

async fn default_items(user: u64, _e: ApiError) -> Result<Vec<u64>, ApiError> {
    tokio::task::yield_now().await;
    Ok(vec![user])
}

#[fallback(default_items)]
async fn with_fallback(user: u64) -> Result<Vec<u64>, ApiError> {
    tokio::task::yield_now().await;
    Err(ApiError::Down)
}

#[fallback(default_items)]
#[retry(attempts = 2, backoff = "10ms")]
#[circuit_breaker(failure_rate = 0.5, window = "10s")]
#[timeout("200ms")]
#[bulkhead(pool = 10)]
async fn full_stack(user: u64) -> Result<Vec<u64>, ApiError> {
    tokio::task::yield_now().await;
    Ok(vec![user])
}

#[retry(attempts = 2, backoff = "0s")]
#[timeout("1s")]
async fn generic<T, U>(t: T, u: &U) -> Result<String, ApiError>
where
    T: Display + Clone + Send + Sync,
    U: Display + Sync,
{
    tokio::task::yield_now().await;
    Ok(format!("{t}{u}"))
}

#[fallback(impl_fallback, args = ())]
#[timeout("1s")]
async fn impl_args(
    x: impl Into<u64> + Clone + Send,
    y: &(impl Display + Sync),
) -> Result<String, ApiError> {
    tokio::task::yield_now().await;
    Ok(format!("{}{y}", x.into()))
}

async fn impl_fallback(_e: ApiError) -> Result<String, ApiError> {
    tokio::task::yield_now().await;
    Ok(String::new())
}

#[circuit_breaker(threshold = 3)]
async fn borrowed<'a>(s: &'a str, _unused: String) -> Result<&'a str, ApiError> {
    tokio::task::yield_now().await;
    Ok(s)
}

#[derive(Default)]
struct Client {
    n: u32,
}

impl Client {
    #[timeout("1s")]
    async fn by_ref(&self) -> Result<u32, ApiError> {
        tokio::task::yield_now().await;
        Ok(self.n)
    }

    async fn reset(&mut self, _e: ApiError) -> Result<u32, ApiError> {
        tokio::task::yield_now().await;
        self.n = 0;
        Ok(0)
    }

    #[fallback(Self::reset)]
    #[retry(attempts = 2, backoff = "0s")]
    #[bulkhead(pool = 1)]
    async fn by_mut(&mut self) -> Result<u32, ApiError> {
        tokio::task::yield_now().await;
        self.n += 1;
        Ok(self.n)
    }

    async fn arc_backup(self: Arc<Self>, _e: ApiError) -> Result<u32, ApiError> {
        tokio::task::yield_now().await;
        Ok(self.n)
    }

    #[fallback(Self::arc_backup)]
    #[retry(attempts = 2, backoff = "0s")]
    #[circuit_breaker(threshold = 3)]
    async fn by_arc(self: Arc<Self>) -> Result<u32, ApiError> {
        tokio::task::yield_now().await;
        Ok(self.n)
    }

    #[timeout("1s")]
    async fn by_value(self) -> Result<u32, ApiError> {
        tokio::task::yield_now().await;
        Ok(self.n)
    }
}

trait Native {
    async fn get(&self, key: String) -> Result<String, ApiError>;
}

impl Native for Client {
    #[retry(attempts = 2, backoff = "0s")]
    #[timeout("1s")]
    async fn get(&self, key: String) -> Result<String, ApiError> {
        tokio::task::yield_now().await;
        Ok(format!("{key}{}", self.n))
    }
}

#[async_trait]
trait Boxed: Send + Sync {
    async fn load(&self, key: String) -> Result<String, ApiError>;
    async fn store(&mut self, value: u32) -> Result<u32, ApiError>;
}

#[async_trait]
impl Boxed for Client {
    #[circuit_breaker(threshold = 3)]
    #[timeout("1s")]
    async fn load(&self, key: String) -> Result<String, ApiError> {
        tokio::task::yield_now().await;
        Ok(key)
    }

    #[retry(attempts = 2, backoff = "0s")]
    #[bulkhead(pool = 1)]
    async fn store(&mut self, value: u32) -> Result<u32, ApiError> {
        tokio::task::yield_now().await;
        self.n = value;
        Ok(value)
    }
}

// A `!Send` error type (the common `Box<dyn Error>`): the layers that do not keep the error
// across an `.await` (breaker, timeout, bulkhead) must not make the future `!Send` either. Retry
// keeps the last error through its backoff and fallback hands it to the handler, so those two
// are `Send` only with a `Send` error, like any code that holds a value across an `.await`.
type BoxError = Box<dyn std::error::Error>;

async fn io() -> Result<u32, std::io::Error> {
    tokio::task::yield_now().await;
    Ok(1)
}

#[circuit_breaker(threshold = 3)]
async fn breaker_box() -> Result<u32, BoxError> {
    Ok(io().await?)
}

#[bulkhead(pool = 2, queue = 1)]
async fn bulkhead_box() -> Result<u32, BoxError> {
    Ok(io().await?)
}

#[circuit_breaker(threshold = 3)]
#[timeout("1s")]
#[bulkhead(pool = 2)]
async fn stack_box() -> Result<u32, BoxError> {
    Ok(io().await?)
}

// A `!Send` success value that is only returned, never held across an `.await`, leaves the
// future `Send`: the fallback's decision must not stay alive across its handler's `.await`.
async fn rc_handler(_e: ApiError) -> Result<Rc<u32>, ApiError> {
    tokio::task::yield_now().await;
    Ok(Rc::new(0))
}

#[fallback(rc_handler, args = ())]
#[retry(attempts = 2, backoff = "10ms")]
#[circuit_breaker(threshold = 3)]
#[timeout("1s")]
async fn rc_value(x: u32) -> Result<Rc<u32>, ApiError> {
    tokio::task::yield_now().await;
    Ok(Rc::new(x))
}

#[test]
fn every_shape_is_send() {
    assert_send(&rc_value(1));
    assert_send(&breaker_box());
    assert_send(&bulkhead_box());
    assert_send(&stack_box());
    assert_send(&breaker(1));
    assert_send(&timed(String::new()));
    assert_send(&limited(Vec::new()));
    let mut out = Vec::new();
    assert_send(&retried(String::new(), (1, String::new()), &mut out));
    assert_send(&with_fallback(1));
    assert_send(&full_stack(1));
    assert_send(&generic(1u8, &"u"));
    assert_send(&impl_args(1u32, &"y"));
    assert_send(&borrowed("s", String::new()));

    let mut client = Client::default();
    assert_send(&client.by_ref());
    assert_send(&client.by_mut());
    assert_send(&Arc::new(Client::default()).by_arc());
    assert_send(&Client::default().by_value());
    assert_send(&Native::get(&client, String::new()));
    assert_send(&Boxed::load(&client, String::new()));
    assert_send(&Boxed::store(&mut client, 1));
}
