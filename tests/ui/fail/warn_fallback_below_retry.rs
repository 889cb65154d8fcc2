//! Anti-pattern: `#[fallback]` below `#[retry]` answers every attempt, so nothing is retried.
//! A warning at the `#[fallback]` attribute (an error here, under `deny(deprecated)`).

#![deny(deprecated)]

use resilient::{fallback, retry};
#[derive(Debug)]
enum ApiError {
    Resilience(resilient::Error),
}

impl From<resilient::Error> for ApiError {
    fn from(e: resilient::Error) -> Self {
        ApiError::Resilience(e)
    }
}

async fn cached(_e: ApiError) -> Result<u32, ApiError> {
    Ok(0)
}

#[retry(attempts = 3)]
#[fallback(cached, args = ())]
async fn fetch() -> Result<u32, ApiError> {
    Ok(1)
}

fn main() {}
