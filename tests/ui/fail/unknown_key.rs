//! A misspelled key: the error is at the key, suggests the right one and lists the valid keys.

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

#[circuit_breaker(treshold = 5)]
async fn charge() -> Result<(), ApiError> {
    Ok(())
}

fn main() {}
