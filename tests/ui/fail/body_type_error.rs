//! A type error inside an annotated body is reported at the user's expression, as without the
//! attribute.

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

#[retry(attempts = 2)]
#[timeout("1s")]
async fn count() -> Result<u32, ApiError> {
    if true {
        return Ok("three");
    }
    Ok(3)
}

fn main() {}
