//! A `const fn`: the error is at `const`.

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

#[circuit_breaker]
const fn limit() -> Result<u32, ApiError> {
    Ok(3)
}

fn main() {}
