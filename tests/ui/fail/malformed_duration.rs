//! A duration that does not parse: the error is at the literal and shows the expected form.

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

#[timeout("20O ms")]
async fn profile() -> Result<(), ApiError> {
    Ok(())
}

fn main() {}
