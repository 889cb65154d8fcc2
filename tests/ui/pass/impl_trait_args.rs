//! `impl Trait` in argument position, by value and behind references, including under
//! `#[retry]` (by-value arguments are cloned per attempt) and `#[fallback]`.

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
async fn show(x: impl Display, y: &impl Display) -> Result<String, ApiError> {
    Ok(format!("{x}{y}"))
}

#[retry(attempts = 3, backoff = "0s")]
async fn sum(
    items: impl IntoIterator<Item = u32> + Clone,
    seen: &mut u32,
) -> Result<u32, ApiError> {
    *seen += 1;
    if *seen < 2 {
        return Err(ApiError::Down);
    }
    Ok(items.into_iter().sum())
}

#[circuit_breaker(threshold = 3)]
#[bulkhead(pool = 1)]
async fn call(f: impl FnOnce(u32) -> u32 + Send, x: u32) -> Result<u32, ApiError> {
    Ok(f(x))
}

async fn render_default(name: impl AsRef<str> + Clone, _e: ApiError) -> Result<String, ApiError> {
    Ok(format!("default:{}", name.as_ref()))
}

#[fallback(render_default)]
async fn render(name: impl AsRef<str> + Clone) -> Result<String, ApiError> {
    if name.as_ref().is_empty() {
        Err(ApiError::Down)
    } else {
        Ok(name.as_ref().to_owned())
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(show(1, &"a").await, Ok("1a".to_owned()));
        let mut seen = 0;
        assert_eq!(sum(vec![1, 2, 3], &mut seen).await, Ok(6));
        assert_eq!(seen, 2);
        assert_eq!(call(|x| x * 3, 2).await, Ok(6));
        assert_eq!(render("x").await, Ok("x".to_owned()));
        assert_eq!(render(String::new()).await, Ok("default:".to_owned()));
    });
}
