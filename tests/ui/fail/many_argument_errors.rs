//! Every argument error of every attribute is reported at once, each at its own argument.

use resilient::{bulkhead, circuit_breaker, retry};
#[derive(Debug)]
enum ApiError {
    Resilience(resilient::Error),
}

impl From<resilient::Error> for ApiError {
    fn from(e: resilient::Error) -> Self {
        ApiError::Resilience(e)
    }
}

#[retry(attempts = 0, jitter = "ful", backof = "1s")]
#[circuit_breaker(failure_rate = 0.0, cooldown = "5 s", critical = 1)]
#[bulkhead(pool = -1, queue = 2, queue = 3)]
async fn charge() -> Result<(), ApiError> {
    Ok(())
}

fn main() {}
