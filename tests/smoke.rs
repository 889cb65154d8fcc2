//! The README's example, end to end: the five attributes on one function.

use resilient::{bulkhead, circuit_breaker, fallback, retry, timeout};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
enum ApiError {
    Resilience(resilient::Error),
}

impl From<resilient::Error> for ApiError {
    fn from(e: resilient::Error) -> Self {
        ApiError::Resilience(e)
    }
}

async fn popular_items(user: u64, err: ApiError) -> Result<Vec<u64>, ApiError> {
    let ApiError::Resilience(e) = err;
    assert!(e.is_timeout(), "{e}");
    Ok(vec![user, 0])
}

#[fallback(popular_items)]
#[retry(attempts = 2, backoff = "50ms")]
#[circuit_breaker(failure_rate = 0.5, window = "10s", cooldown = "5s")]
#[timeout("200ms")]
#[bulkhead(pool = 10)]
async fn recommendations(user: u64) -> Result<Vec<u64>, ApiError> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(vec![user])
}

#[tokio::test(start_paused = true)]
async fn full_stack_falls_back_after_two_timed_out_attempts() {
    let start = tokio::time::Instant::now();
    assert_eq!(recommendations(7).await, Ok(vec![7, 0]));
    // Two attempts of 200 ms each and one full-jitter backoff of at most 50 ms.
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took <= Duration::from_millis(450),
        "{took:?}"
    );
}
