//! A body ending in `;` where a value is expected: the error is at the user's body and
//! suggests removing the semicolon, as without the attribute.

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

#[timeout("1s")]
async fn count() -> Result<u32, ApiError> {
    Ok(3);
}

fn main() {}
