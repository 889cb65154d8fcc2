//! Named, elided and anonymous lifetimes, lifetime bounds, and a borrowed return value.

use resilient::{bulkhead, circuit_breaker, fallback, retry, timeout};

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
async fn longest<'a>(a: &'a str, b: &'a str) -> Result<&'a str, ApiError> {
    Ok(if a.len() >= b.len() { a } else { b })
}

#[retry(attempts = 2, backoff = "0s")]
async fn split_first<'a, 'b: 'a>(text: &'b str, sep: &'a str) -> Result<&'b str, ApiError> {
    text.split(sep).next().ok_or(ApiError::Down)
}

#[circuit_breaker(threshold = 3)]
async fn elided(s: &str) -> Result<&str, ApiError> {
    Ok(s.trim())
}

async fn whole<'a>(s: &'a str, _e: ApiError) -> Result<&'a str, ApiError> {
    Ok(s)
}

#[fallback(whole)]
#[bulkhead(pool = 1)]
async fn after_colon(s: &'_ str) -> Result<&'_ str, ApiError> {
    s.split_once(':').map(|(_, b)| b).ok_or(ApiError::Down)
}

struct Parser<'src> {
    src: &'src str,
    pos: usize,
}

impl<'src> Parser<'src> {
    #[retry(attempts = 2, backoff = "0s")]
    #[timeout("1s")]
    async fn next_word(&mut self) -> Result<&'src str, ApiError> {
        let rest = &self.src[self.pos..];
        let word = rest.split_whitespace().next().ok_or(ApiError::Down)?;
        self.pos += rest.find(word).unwrap_or(0) + word.len();
        Ok(word)
    }

    #[circuit_breaker(threshold = 3)]
    async fn peek<'p>(&'p self, prefix: &'p str) -> Result<bool, ApiError>
    where
        'src: 'p,
    {
        Ok(self.src[self.pos..].trim_start().starts_with(prefix))
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(longest("ab", "c").await, Ok("ab"));
        let owned = String::from("a-b");
        assert_eq!(split_first(&owned, "-").await, Ok("a"));
        assert_eq!(elided("  x ").await, Ok("x"));
        assert_eq!(after_colon("k:v").await, Ok("v"));
        assert_eq!(after_colon("kv").await, Ok("kv"));
        let mut p = Parser {
            src: "one two",
            pos: 0,
        };
        assert_eq!(p.next_word().await, Ok("one"));
        assert_eq!(p.peek("tw").await, Ok(true));
        assert_eq!(p.next_word().await, Ok("two"));
        assert!(p.next_word().await.is_err());
    });
}
