//! A bulkhead with no permits at all: the error is at the `0`.

use resilient::bulkhead;
#[derive(Debug)]
enum ApiError {
    Resilience(resilient::Error),
}

impl From<resilient::Error> for ApiError {
    fn from(e: resilient::Error) -> Self {
        ApiError::Resilience(e)
    }
}

#[bulkhead(pool = 0)]
async fn query() -> Result<(), ApiError> {
    Ok(())
}

fn main() {}
