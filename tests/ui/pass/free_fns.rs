//! Free functions under each attribute alone, and under the full recommended stack.

use resilient::{bulkhead, circuit_breaker, fallback, retry, timeout};

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

#[circuit_breaker]
async fn breaker_default(x: u32) -> Result<u32, ApiError> {
    Ok(x)
}

#[circuit_breaker(threshold = 3, cooldown = "1s")]
async fn breaker_consecutive(x: u32) -> Result<u32, ApiError> {
    if x == 0 {
        return Err(ApiError::Down);
    }
    Ok(x)
}

#[timeout("50ms")]
pub(crate) async fn timed(x: u32) -> Result<u32, ApiError> {
    Ok(x + 1)
}

#[timeout(duration = "1ms", name = "free_fns.slow")]
async fn times_out() -> Result<(), ApiError> {
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    Ok(())
}

#[bulkhead(pool = 2, queue = 1, max_wait = "10ms")]
async fn limited(x: u32) -> Result<u32, ApiError> {
    Ok(x * 2)
}

#[retry(attempts = 3, backoff = "0s")]
async fn retried(calls: &std::sync::atomic::AtomicU32) -> Result<u32, ApiError> {
    let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
    if n < 3 { Err(ApiError::Down) } else { Ok(n) }
}

async fn default_value(_x: u32, _e: ApiError) -> Result<u32, ApiError> {
    Ok(42)
}

#[fallback(default_value)]
async fn with_fallback(x: u32) -> Result<u32, ApiError> {
    if x == 0 { Err(ApiError::Down) } else { Ok(x) }
}

async fn popular(user: u64, _e: ApiError) -> Result<Vec<u64>, ApiError> {
    Ok(vec![user, 0])
}

/// The recommended order, every policy at once.
#[fallback(popular)]
#[retry(attempts = 2, backoff = "0s")]
#[circuit_breaker(failure_rate = 0.5, window = "10s", cooldown = "5s")]
#[timeout("5ms")]
#[bulkhead(pool = 10)]
async fn recommendations(user: u64) -> Result<Vec<u64>, ApiError> {
    if user == 0 {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    Ok(vec![user])
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(breaker_default(1).await, Ok(1));
        assert_eq!(breaker_consecutive(2).await, Ok(2));
        assert_eq!(breaker_consecutive(0).await, Err(ApiError::Down));
        assert_eq!(timed(1).await, Ok(2));
        assert!(matches!(times_out().await, Err(ApiError::Resilience(e)) if e.is_timeout()));
        assert_eq!(limited(3).await, Ok(6));
        let calls = std::sync::atomic::AtomicU32::new(0);
        assert_eq!(retried(&calls).await, Ok(3));
        assert_eq!(with_fallback(0).await, Ok(42));
        assert_eq!(with_fallback(5).await, Ok(5));
        assert_eq!(recommendations(7).await, Ok(vec![7]));
        assert_eq!(recommendations(0).await, Ok(vec![0, 0]));
    });
}
