//! A method handler (`Self::handler`) that lacks the receiver: the error is at the handler's
//! path.

use resilient::fallback;

#[derive(Debug)]
enum ApiError {
    Down,
}

struct Client;

impl Client {
    async fn cached(_e: ApiError) -> Result<u32, ApiError> {
        Ok(0)
    }

    #[fallback(Self::cached)]
    async fn get(&self) -> Result<u32, ApiError> {
        Err(ApiError::Down)
    }
}

fn main() {}
