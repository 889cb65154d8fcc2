//! Resilience attributes written below `#[tokio::main]` (or `#[tokio::test]`) see the
//! function after tokio made it synchronous: the error says to write them above.

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

#[tokio::main(flavor = "current_thread")]
#[timeout("1s")]
async fn run() -> Result<(), ApiError> {
    Ok(())
}

fn main() {
    run().unwrap();
}
