//! A failure rate outside (0, 1]: the error is at the literal.

use resilient::circuit_breaker;
#[derive(Debug)]
enum ApiError {
    Resilience(resilient::Error),
}

impl From<resilient::Error> for ApiError {
    fn from(e: resilient::Error) -> Self {
        ApiError::Resilience(e)
    }
}

#[circuit_breaker(failure_rate = 1.5, window = "10s")]
async fn charge() -> Result<(), ApiError> {
    Ok(())
}

fn main() {}
