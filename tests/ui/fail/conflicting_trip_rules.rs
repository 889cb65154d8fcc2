//! Two trip rules at once (a count and a rate): the error is at the second rule's argument
//! and lists the legal shapes.

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

#[circuit_breaker(threshold = 5, failure_rate = 0.5)]
async fn charge() -> Result<(), ApiError> {
    Ok(())
}

fn main() {}
