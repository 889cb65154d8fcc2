//! `#[timeout]` has no default duration: the error says how to write one.

use resilient::timeout;

#[derive(Debug)]
enum ApiError {
    Resilience(resilient::Error),
}

impl From<resilient::Error> for ApiError {
    fn from(e: resilient::Error) -> Self {
        ApiError::Resilience(e)
    }
}

#[timeout]
async fn profile() -> Result<(), ApiError> {
    Ok(())
}

fn main() {}
