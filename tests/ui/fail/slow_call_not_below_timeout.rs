//! `slow_call` at or above the inner timeout can never fire: the error is at `slow_call`'s
//! literal.

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

#[circuit_breaker(slow_call = "500ms")]
#[timeout("500ms")]
async fn profile() -> Result<(), ApiError> {
    Ok(())
}

fn main() {}
