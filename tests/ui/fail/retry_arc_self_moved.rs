//! Under `#[retry]` a `self: Arc<Self>` receiver cannot be rebound per attempt (`self` is not
//! a binding the expansion can shadow), so the body may only borrow it; moving it out is
//! rustc's usual "moved in a previous iteration of loop" error, at the move in the body. Clone
//! the `Arc` instead (`Arc::clone(&self)`).

use resilient::retry;
use std::sync::Arc;

#[derive(Debug)]
enum ApiError {
    Down,
}

struct Worker;

fn consume(_: Arc<Worker>) {}

impl Worker {
    #[retry(attempts = 2)]
    async fn run(self: Arc<Self>) -> Result<(), ApiError> {
        consume(self);
        Err(ApiError::Down)
    }
}

fn main() {}
