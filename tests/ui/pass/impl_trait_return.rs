//! `impl Trait` inside the return type: `Result<impl Display, E>`, `Result<impl Iterator, E>`
//! and `Result<impl Future, E>`, under single attributes and stacks. The expansion never names
//! the return type, so the opaque types are inferred from the body.

use resilient::{bulkhead, circuit_breaker, fallback, retry, timeout};
use std::fmt::Display;

#[derive(Debug, PartialEq)]
enum ApiError {
    Down,
    Resilience(resilient::Error),
}

impl From<resilient::Error> for ApiError {
    fn from(e: resilient::Error) -> Self {
        ApiError::Resilience(e)
    }
}

#[timeout("1s")]
async fn label(x: u32) -> Result<impl Display, ApiError> {
    if x == 0 {
        return Err(ApiError::Down);
    }
    Ok(format!("#{x}"))
}

#[retry(attempts = 2, backoff = "0s")]
#[circuit_breaker(threshold = 3)]
#[bulkhead(pool = 1)]
async fn evens(limit: u32) -> Result<impl Iterator<Item = u32> + Send, ApiError> {
    Ok((0..limit).filter(|x| x % 2 == 0))
}

#[timeout("1s")]
async fn deferred() -> Result<impl Future<Output = u32>, ApiError> {
    Ok(async { 5 })
}

async fn unknown(_e: ApiError) -> Result<String, ApiError> {
    Ok("?".to_owned())
}

#[fallback(unknown, args = ())]
#[timeout("1s")]
async fn named(x: u32) -> Result<String, ApiError> {
    Ok(label(x).await?.to_string())
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(label(3).await.map(|l| l.to_string()), Ok("#3".to_owned()));
        assert!(label(0).await.is_err());
        assert_eq!(
            evens(5).await.map(Iterator::collect::<Vec<_>>),
            Ok(vec![0, 2, 4])
        );
        assert_eq!(deferred().await.unwrap().await, 5);
        assert_eq!(named(0).await, Ok("?".to_owned()));
        assert_eq!(named(2).await, Ok("#2".to_owned()));
    });
}
