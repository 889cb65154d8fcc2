//! The `crate = "..."` override: the facade reached through a rename (`use ::resilient as rs`)
//! and through a re-exporting module of the user's own crate. Siblings written with the same
//! prefix are absorbed into one stack.

use ::resilient as rs;

mod platform {
    /// A user crate's own facade over `resilient`.
    pub mod resilience {
        pub use ::resilient::{__private, fallback, retry, timeout};
    }
}

#[derive(Debug, PartialEq)]
enum ApiError {
    Down,
    Resilience(rs::Error),
}

impl From<rs::Error> for ApiError {
    fn from(e: rs::Error) -> Self {
        ApiError::Resilience(e)
    }
}

#[rs::timeout("1s", crate = "rs")]
async fn renamed(x: u32) -> Result<u32, ApiError> {
    if x == 0 { Err(ApiError::Down) } else { Ok(x) }
}

#[rs::retry(attempts = 2, backoff = "0s", crate = "rs")]
#[rs::circuit_breaker(threshold = 3)]
#[rs::timeout("1ms")]
async fn renamed_stack(x: u32) -> Result<u32, ApiError> {
    if x == 0 {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    Ok(x)
}

/// The override may be given on any attribute of the stack, not only the first.
#[rs::circuit_breaker(threshold = 3)]
#[rs::retry(attempts = 2, backoff = "0s")]
#[rs::timeout("1ms", crate = "rs")]
async fn override_below(x: u32) -> Result<u32, ApiError> {
    if x == 0 {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    Ok(x)
}

async fn zero(_e: ApiError) -> Result<u32, ApiError> {
    Ok(0)
}

#[platform::resilience::fallback(zero, args = (), crate = "crate::platform::resilience")]
#[platform::resilience::retry(attempts = 2, backoff = "0s")]
#[platform::resilience::timeout("1ms")]
async fn reexported(x: u32) -> Result<u32, ApiError> {
    if x == 0 {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    Ok(x)
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(renamed(1).await, Ok(1));
        assert_eq!(renamed_stack(2).await, Ok(2));
        assert!(matches!(renamed_stack(0).await, Err(ApiError::Resilience(e)) if e.is_timeout()));
        assert_eq!(override_below(4).await, Ok(4));
        assert!(matches!(override_below(0).await, Err(ApiError::Resilience(e)) if e.is_timeout()));
        assert_eq!(reexported(3).await, Ok(3));
        assert_eq!(reexported(0).await, Ok(0));
        assert_eq!(renamed(0).await, Err(ApiError::Down));
    });
}
