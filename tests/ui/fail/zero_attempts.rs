//! A retry that would never run the body: the error is at the `0`.

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

#[retry(attempts = 0)]
async fn fetch() -> Result<(), ApiError> {
    Ok(())
}

fn main() {}
