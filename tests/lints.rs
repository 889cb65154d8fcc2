//! Lint cleanliness of the expansions: every attribute alone, the full stack, every receiver,
//! patterns, `mut` parameters, `impl Trait`, generics, lifetimes, `#[async_trait]` impls and
//! `#[tokio::test]` under `#![deny(warnings, unused_qualifications, clippy::pedantic)]`, with
//! every function called so nothing is dead. `cargo clippy --all-targets -- -D warnings`
//! lints this file, and so the expansions.

mod strict {
    #![deny(warnings, unused_qualifications, clippy::pedantic)]

    use std::fmt::Display;
    use std::sync::Arc;

    use async_trait::async_trait;
    use resilient::{bulkhead, circuit_breaker, fallback, retry, timeout};

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) enum ApiError {
        Down,
        Resilience(resilient::Error),
    }

    impl From<resilient::Error> for ApiError {
        fn from(e: resilient::Error) -> Self {
            ApiError::Resilience(e)
        }
    }

    fn is_down(e: &ApiError) -> bool {
        *e == ApiError::Down
    }

    #[circuit_breaker(
        failure_rate = 0.5,
        last = 10,
        cooldown = "1s",
        max_cooldown = "10s",
        half_open_calls = 2,
        success_threshold = 2,
        ramp = "1s",
        slow_call = "500ms",
        failure = is_down,
        critical = true,
        name = "lints.breaker"
    )]
    #[timeout("900ms")]
    pub(crate) async fn breaker(x: u32) -> Result<u32, ApiError> {
        Ok(x)
    }

    #[circuit_breaker(name = "lints.breaker")]
    pub(crate) async fn joins_breaker(x: u32) -> Result<u32, ApiError> {
        Ok(x + 1)
    }

    #[timeout(duration = "1s", name = "lints.timeout")]
    pub(crate) async fn timed(x: u32) -> Result<u32, ApiError> {
        Ok(x)
    }

    #[bulkhead(pool = 2, queue = 2, max_wait = "100ms", name = "lints.bulkhead")]
    pub(crate) async fn limited(x: u32) -> Result<u32, ApiError> {
        Ok(x)
    }

    #[retry(
        attempts = 3,
        backoff = "0s",
        strategy = "exponential",
        multiplier = 1.5,
        max_backoff = "1s",
        jitter = "none",
        max_duration = "5s",
        when = is_down
    )]
    pub(crate) async fn retried(
        label: String,
        mut count: u32,
        (a, mut b): (u32, u32),
        tries: &mut u32,
    ) -> Result<String, ApiError> {
        count += 1;
        b += a;
        *tries += 1;
        if *tries < 3 {
            return Err(ApiError::Down);
        }
        Ok(format!("{label}{count}{b}"))
    }

    async fn cached(label: String, _e: ApiError) -> Result<String, ApiError> {
        tokio::task::yield_now().await;
        Ok(format!("{label}-cached"))
    }

    #[fallback(cached, on = is_down)]
    pub(crate) async fn with_fallback(label: String) -> Result<String, ApiError> {
        if label.is_empty() {
            return Err(ApiError::Down);
        }
        Ok(label)
    }

    async fn popular(user: u64, _e: ApiError) -> Result<Vec<u64>, ApiError> {
        tokio::task::yield_now().await;
        Ok(vec![user, 0])
    }

    #[fallback(popular)]
    #[retry(attempts = 2, backoff = "0s")]
    #[circuit_breaker(failure_rate = 0.5, window = "10s", cooldown = "5s")]
    #[timeout("1ms")]
    #[bulkhead(pool = 10)]
    pub(crate) async fn recommendations(user: u64) -> Result<Vec<u64>, ApiError> {
        if user == 0 {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        Ok(vec![user])
    }

    #[timeout("1s")]
    #[retry(attempts = 2, backoff = "0s")]
    #[timeout("500ms")]
    pub(crate) async fn total_and_per_attempt<T: Display + Clone + Send>(
        x: T,
        s: &str,
    ) -> Result<impl Display, ApiError> {
        Ok(format!("{x}{s}"))
    }

    #[retry(attempts = 2, backoff = "0s")]
    pub(crate) async fn io<'a>(s: &'a str, _: u8) -> std::io::Result<&'a str> {
        Ok(s)
    }

    #[derive(Default)]
    pub(crate) struct Client {
        pub(crate) n: u32,
    }

    impl Client {
        async fn zero(&mut self, _e: ApiError) -> Result<u32, ApiError> {
            tokio::task::yield_now().await;
            self.n = 0;
            Ok(0)
        }

        async fn arc_zero(self: Arc<Self>, _e: ApiError) -> Result<u32, ApiError> {
            tokio::task::yield_now().await;
            Ok(self.n)
        }

        #[circuit_breaker(threshold = 3)]
        pub(crate) async fn get(&self) -> Result<u32, ApiError> {
            Ok(self.n)
        }

        #[fallback(Self::zero)]
        #[retry(attempts = 2, backoff = "0s")]
        #[timeout("1s")]
        pub(crate) async fn bump(&mut self) -> Result<u32, ApiError> {
            self.n += 1;
            if self.n > 10 {
                return Err(ApiError::Down);
            }
            Ok(self.n)
        }

        #[fallback(Self::arc_zero)]
        #[retry(attempts = 2, backoff = "0s")]
        #[bulkhead(pool = 1)]
        pub(crate) async fn shared(self: Arc<Self>) -> Result<u32, ApiError> {
            Ok(self.n + 1)
        }
    }

    #[async_trait]
    pub(crate) trait Store: Send + Sync {
        async fn load(&self, key: String) -> Result<String, ApiError>;
        async fn save(&mut self, key: String, value: u32) -> Result<u32, ApiError>;
    }

    #[derive(Default)]
    pub(crate) struct Memory {
        pub(crate) saved: Vec<(String, u32)>,
    }

    #[async_trait]
    impl Store for Memory {
        #[circuit_breaker(threshold = 3)]
        #[timeout("1s")]
        async fn load(&self, key: String) -> Result<String, ApiError> {
            Ok(key)
        }

        #[retry(attempts = 2, backoff = "0s")]
        #[bulkhead(pool = 1)]
        async fn save(&mut self, key: String, value: u32) -> Result<u32, ApiError> {
            self.saved.push((key, value));
            Ok(value)
        }
    }

    #[timeout("1s")]
    #[circuit_breaker(threshold = 3)]
    #[tokio::test]
    async fn a_test_under_policies() -> Result<(), ApiError> {
        assert_eq!(timed(1).await?, 1);
        Ok(())
    }

    #[tokio::test]
    async fn everything_is_called() {
        assert_eq!(breaker(1).await, Ok(1));
        assert_eq!(joins_breaker(1).await, Ok(2));
        assert_eq!(limited(3).await, Ok(3));
        let mut tries = 0;
        assert_eq!(
            retried("l".to_owned(), 1, (1, 2), &mut tries).await,
            Ok("l23".to_owned())
        );
        assert_eq!(with_fallback(String::new()).await, Ok("-cached".to_owned()));
        assert_eq!(recommendations(0).await, Ok(vec![0, 0]));
        assert_eq!(
            total_and_per_attempt(1, "s").await.map(|d| d.to_string()),
            Ok("1s".to_owned())
        );
        assert_eq!(io("x", 0).await.unwrap(), "x");
        let mut c = Client::default();
        assert_eq!(c.get().await, Ok(0));
        assert_eq!(c.bump().await, Ok(1));
        assert_eq!(Arc::new(c).shared().await, Ok(2));
        let mut m = Memory::default();
        assert_eq!(m.load("k".to_owned()).await, Ok("k".to_owned()));
        assert_eq!(m.save("k".to_owned(), 5).await, Ok(5));
        assert_eq!(m.saved.len(), 1);
    }
}
