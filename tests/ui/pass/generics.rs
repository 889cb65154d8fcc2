//! Generic functions: type and const parameters, inline bounds and where clauses, on free
//! functions and methods of a generic impl. The policy's state is one `static` shared by every
//! monomorphisation.

use resilient::{bulkhead, circuit_breaker, fallback, retry, timeout};
use std::fmt::Debug;
use std::hash::Hash;

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
async fn first<T: Clone + Send>(items: &[T]) -> Result<T, ApiError> {
    items.first().cloned().ok_or(ApiError::Down)
}

#[retry(attempts = 2, backoff = "0s")]
#[circuit_breaker(threshold = 3)]
async fn keyed<K, V, const N: usize>(key: K, values: [V; N]) -> Result<(K, usize), ApiError>
where
    K: Clone + Hash + Eq + Debug,
    V: Clone,
{
    Ok((key, values.len()))
}

async fn empty<T>(_e: ApiError) -> Result<Vec<T>, ApiError> {
    Ok(Vec::new())
}

#[fallback(empty::<T>, args = ())]
#[bulkhead(pool = 2)]
async fn parse_all<T>(input: &str) -> Result<Vec<T>, ApiError>
where
    T: std::str::FromStr,
{
    input
        .split(',')
        .map(|s| s.parse().map_err(|_| ApiError::Down))
        .collect()
}

struct Repo<T> {
    items: Vec<T>,
}

impl<T> Repo<T>
where
    T: Clone + PartialEq + Send + Sync,
{
    #[circuit_breaker(threshold = 5)]
    #[timeout("1s")]
    async fn find<P>(&self, pred: P) -> Result<T, ApiError>
    where
        P: Fn(&T) -> bool + Clone,
    {
        self.items
            .iter()
            .find(|t| pred(t))
            .cloned()
            .ok_or(ApiError::Down)
    }

    #[retry(attempts = 2, backoff = "0s")]
    async fn push<U: Into<T> + Clone>(&mut self, item: U) -> Result<usize, ApiError> {
        self.items.push(item.into());
        Ok(self.items.len())
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(first(&[1, 2]).await, Ok(1));
        assert_eq!(first::<String>(&[]).await, Err(ApiError::Down));
        assert_eq!(keyed("k", [1u8, 2, 3]).await, Ok(("k", 3)));
        assert_eq!(keyed(7u64, [(); 0]).await, Ok((7, 0)));
        assert_eq!(parse_all::<u32>("1,2").await, Ok(vec![1, 2]));
        assert_eq!(parse_all::<u32>("1,x").await, Ok(vec![]));
        let mut repo = Repo {
            items: vec![1u64, 5, 9],
        };
        assert_eq!(repo.find(|x| *x > 4).await, Ok(5));
        assert_eq!(repo.push(3u32).await, Ok(4));
    });
}
