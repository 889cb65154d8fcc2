//! The same policy twice with no `#[retry]` between: the error is at the second attribute.

use resilient::{circuit_breaker, timeout};
#[derive(Debug)]
enum ApiError {
    Resilience(resilient::Error),
}

impl From<resilient::Error> for ApiError {
    fn from(e: resilient::Error) -> Self {
        ApiError::Resilience(e)
    }
}

#[timeout("1s")]
#[circuit_breaker]
#[timeout("2s")]
async fn profile() -> Result<(), ApiError> {
    Ok(())
}

fn main() {}
