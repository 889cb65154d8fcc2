//! A synchronous function: the error is at `fn` and says the `async` keyword is missing.

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
fn profile() -> Result<(), ApiError> {
    Ok(())
}

fn main() {}
