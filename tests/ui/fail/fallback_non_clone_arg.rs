//! `#[fallback]` gives the handler its own copy of each by-value argument, so the argument must
//! be `Clone`: the error is at the parameter.

use resilient::fallback;
#[derive(Debug)]
enum ApiError {
    Resilience(resilient::Error),
}

impl From<resilient::Error> for ApiError {
    fn from(e: resilient::Error) -> Self {
        ApiError::Resilience(e)
    }
}

struct Token(String);

async fn anonymous(_token: Token, e: ApiError) -> Result<(), ApiError> {
    Err(e)
}

#[fallback(anonymous)]
async fn send(token: Token) -> Result<(), ApiError> {
    drop(token.0);
    Ok(())
}

fn main() {}
