//! A stack that can reject a call (here a timeout) needs `From<resilient::Error>` for the error
//! type: the error is at the return type and names the missing impl.

use resilient::timeout;

#[derive(Debug)]
enum ApiError {
    Down,
}

#[timeout("1s")]
async fn profile() -> Result<(), ApiError> {
    Err(ApiError::Down)
}

fn main() {}
