//! `max_wait` without a queue: nobody ever waits, so the error is at `max_wait`'s literal.

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

#[bulkhead(pool = 4, max_wait = "50ms")]
async fn query() -> Result<(), ApiError> {
    Ok(())
}

fn main() {}
