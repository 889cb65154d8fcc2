//! A body that holds an `Rc` across an `.await` is not `Send`, and the attribute does not hide
//! it: asserting `Send` fails with rustc's usual note pointing into the user's body.

use resilient::timeout;
use std::rc::Rc;
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
async fn local() -> Result<usize, ApiError> {
    let shared = Rc::new(5);
    tokio::task::yield_now().await;
    Ok(*shared)
}

fn assert_send<T: Send>(_: &T) {}

fn main() {
    assert_send(&local());
}
