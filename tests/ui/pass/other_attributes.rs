//! Resilience attributes next to other attributes: docs, `#[inline]`, `#[allow]`, `#[deny]`,
//! `#[cfg_attr]`, `#[cfg]` and an inner `#![allow]` stay on the function, including one
//! written between two policies. An attribute macro written below the policies expands after
//! them and wraps the whole stack: `#[tokio::main]` here (on a plain function, callable from
//! `main`), `#[tokio::test]` in `tests/lints.rs`, whose test functions are compiled only under
//! `cargo test`. `#[tracing::instrument]` above and below the policies is in
//! `tests/instrument.rs`.

use resilient::{circuit_breaker, retry, timeout};

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

/// Documented, inlined, and with a lint setting that must still apply to the body.
#[doc(alias = "fetch")]
#[inline]
#[timeout("1s")]
#[allow(clippy::needless_return)]
#[circuit_breaker(threshold = 3)]
#[cfg_attr(all(), allow(unused_variables))]
async fn get(x: u32, unused: u32) -> Result<u32, ApiError> {
    return if x == 0 { Err(ApiError::Down) } else { Ok(x) };
}

#[cfg(any())]
#[timeout("1s")]
async fn get(x: u32) -> Result<u32, ApiError> {
    compile_error!("this copy is configured out before the attribute runs")
}

#[retry(attempts = 2, backoff = "0s")]
#[deny(unreachable_code)]
#[timeout("1s")]
async fn between(x: u32) -> Result<u32, ApiError> {
    #![allow(clippy::let_and_return)]
    let y = x + 1;
    Ok(y)
}

#[timeout("1s")]
#[circuit_breaker(threshold = 3)]
#[tokio::main(flavor = "current_thread")]
async fn blocking() -> Result<u32, ApiError> {
    get(1, 0).await
}

fn main() {
    assert_eq!(blocking(), Ok(1));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(get(2, 0).await, Ok(2));
        assert_eq!(get(0, 0).await, Err(ApiError::Down));
        assert_eq!(between(1).await, Ok(2));
    });
}
