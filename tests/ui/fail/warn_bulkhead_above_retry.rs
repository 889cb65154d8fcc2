//! Anti-pattern: `#[bulkhead]` above `#[retry]` holds a permit through every backoff sleep.
//! A warning at the `#[bulkhead]` attribute (an error here, under `deny(deprecated)`).

#![deny(deprecated)]

use resilient::{bulkhead, retry};
#[derive(Debug)]
enum ApiError {
    Resilience(resilient::Error),
}

impl From<resilient::Error> for ApiError {
    fn from(e: resilient::Error) -> Self {
        ApiError::Resilience(e)
    }
}

#[bulkhead(pool = 4)]
#[retry(attempts = 3)]
async fn fetch() -> Result<u32, ApiError> {
    Ok(1)
}

fn main() {}
