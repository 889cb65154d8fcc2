//! `#[retry]` gives each attempt its own copy of a by-value argument, so the argument must be
//! `Clone`: the error is at the parameter.

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

struct Token(String);

#[retry(attempts = 3)]
async fn send(id: u32, token: Token) -> Result<(), ApiError> {
    drop(token.0);
    let _ = id;
    Ok(())
}

fn main() {}
