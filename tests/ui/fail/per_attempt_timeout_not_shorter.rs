//! A per-attempt timeout (under `#[retry]`) not shorter than the total one above it: the
//! error is at the inner timeout's duration.

use resilient::{retry, timeout};
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
#[retry(attempts = 3)]
#[timeout("1s")]
async fn profile() -> Result<(), ApiError> {
    Ok(())
}

fn main() {}
