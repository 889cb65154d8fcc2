//! `#[retry]` runs the body once per attempt, so it cannot consume `self`: the error is at
//! `self`.

use resilient::retry;
#[derive(Debug)]
enum ApiError {
    Resilience(resilient::Error),
}

impl From<resilient::Error> for ApiError {
    fn from(e: resilient::Error) -> Self {
        ApiError::Resilience(e)
    }
}

struct Request;

impl Request {
    #[retry(attempts = 3)]
    async fn send(self) -> Result<(), ApiError> {
        Ok(())
    }
}

fn main() {}
