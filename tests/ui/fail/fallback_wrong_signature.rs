//! A fallback handler whose parameters do not match the function's: the error is at the
//! handler's path in the attribute.

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

async fn cached(user: String, _e: ApiError) -> Result<Vec<u64>, ApiError> {
    Ok(vec![user.len() as u64])
}

#[fallback(cached)]
async fn recommendations(user: u64) -> Result<Vec<u64>, ApiError> {
    Ok(vec![user])
}

fn main() {}
