//! `multiplier` only applies to the exponential strategy: the error is at the multiplier.

use resilient::retry;
#[derive(Debug)]
enum ApiError {
    Resilience(resilient::Error),
}

impl From<resilient::Error> for ApiError {
    fn from(e: resilient::Error) -> Self {
        ApiError::Resilience(e)
    }
}

#[retry(strategy = "linear", multiplier = 3.0)]
async fn fetch() -> Result<(), ApiError> {
    Ok(())
}

fn main() {}
