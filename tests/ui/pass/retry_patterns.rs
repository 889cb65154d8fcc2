//! Pattern parameters under `#[retry]`: tuples, structs, tuple structs, references, `mut`
//! bindings and `_`. Each binding is cloned per attempt, so every attempt sees the original
//! values even when an earlier attempt moved or mutated them.

use resilient::{fallback, retry, timeout};

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

#[derive(Clone)]
struct Point {
    x: i32,
    y: i32,
}

#[derive(Clone)]
struct Name(String);

#[retry(attempts = 3, backoff = "0s")]
async fn tuple((a, b): (u32, String), tries: &mut Vec<String>) -> Result<String, ApiError> {
    let s = format!("{b}{a}");
    tries.push(b);
    if tries.len() < 3 {
        Err(ApiError::Down)
    } else {
        Ok(s)
    }
}

#[retry(attempts = 2, backoff = "0s")]
#[timeout("1s")]
async fn destructure(
    Point { x, y: mut height }: Point,
    Name(name): Name,
    &scale: &i32,
    mut count: u32,
    _: String,
    tries: &mut u32,
) -> Result<String, ApiError> {
    height *= scale;
    count += 1;
    *tries += 1;
    if *tries < 2 {
        return Err(ApiError::Down);
    }
    Ok(format!("{name}:{x},{height},{count}"))
}

async fn first_only(first: u32, _e: ApiError) -> Result<u32, ApiError> {
    Ok(first)
}

#[fallback(first_only, args = (first))]
#[retry(attempts = 2, backoff = "0s")]
async fn pair_sum(first: u32, [a, b]: [u32; 2]) -> Result<u32, ApiError> {
    if a == 0 {
        Err(ApiError::Down)
    } else {
        Ok(first + a + b)
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut tries = Vec::new();
        assert_eq!(
            tuple((1, "b".to_owned()), &mut tries).await,
            Ok("b1".to_owned())
        );
        assert_eq!(tries, ["b", "b", "b"]);
        let mut n = 0;
        let got = destructure(
            Point { x: 1, y: 2 },
            Name("p".to_owned()),
            &3,
            10,
            String::new(),
            &mut n,
        )
        .await;
        assert_eq!(got, Ok("p:1,6,11".to_owned()));
        assert_eq!(pair_sum(1, [2, 3]).await, Ok(6));
        assert_eq!(pair_sum(7, [0, 3]).await, Ok(7));
    });
}
