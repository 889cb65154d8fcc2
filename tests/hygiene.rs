//! Hygiene of the expansions: they name only absolute paths (`::resilient::__private`,
//! `::core`), never prelude names, so they work in a `#![no_implicit_prelude]` module next to
//! items that shadow every name they could have relied on (`Ok`, `Err`, `Result`, `Option`,
//! `Some`, `None`, local `core`, `std` and `resilient` modules), with user parameters named
//! like generated locals, and through the `crate = "..."` override.

#![allow(dead_code, reason = "the shadowing traps exist only to be in scope")]

mod no_prelude {
    #![no_implicit_prelude]

    struct Ok;
    struct Err;
    struct Result;
    struct Option;
    struct Some;
    struct None;
    struct Box;
    struct Clone;
    struct Into;
    struct Future;
    mod core {}
    mod std {}
    mod resilient {}

    #[derive(Debug, PartialEq)]
    pub(crate) enum ApiError {
        Down,
        Resilience(::resilient::Error),
    }

    impl ::core::convert::From<::resilient::Error> for ApiError {
        fn from(e: ::resilient::Error) -> Self {
            ApiError::Resilience(e)
        }
    }

    type Res<T> = ::core::result::Result<T, ApiError>;

    #[::resilient::circuit_breaker(threshold = 3, cooldown = "1s")]
    pub(crate) async fn breaker(x: u32) -> Res<u32> {
        ::core::result::Result::Ok(x)
    }

    #[::resilient::timeout("1ms")]
    pub(crate) async fn slow() -> Res<()> {
        ::tokio::time::sleep(::core::time::Duration::from_secs(1)).await;
        ::core::result::Result::Ok(())
    }

    #[::resilient::bulkhead(pool = 1, queue = 1, max_wait = "1s")]
    pub(crate) async fn limited(x: u32) -> Res<u32> {
        ::core::result::Result::Ok(x)
    }

    /// Parameters named like the expansion's own locals do not collide with them.
    #[::resilient::retry(attempts = 3, backoff = "0s")]
    pub(crate) async fn retried(
        __stack: ::std::string::String,
        __retry: &mut u32,
        (__out, __err): (u32, u32),
    ) -> Res<::std::string::String> {
        *__retry += 1;
        if *__retry < 3 {
            return ::core::result::Result::Err(ApiError::Down);
        }
        ::core::result::Result::Ok(::std::format!("{__stack}{__out}{__err}"))
    }

    async fn answer(x: u32, _e: ApiError) -> Res<u32> {
        ::tokio::task::yield_now().await;
        ::core::result::Result::Ok(x + 100)
    }

    #[::resilient::fallback(answer)]
    #[::resilient::retry(attempts = 2, backoff = "0s")]
    #[::resilient::circuit_breaker(threshold = 10)]
    #[::resilient::timeout("1s")]
    #[::resilient::bulkhead(pool = 4)]
    pub(crate) async fn full_stack(x: u32) -> Res<u32> {
        if x == 0 {
            ::core::result::Result::Err(ApiError::Down)
        } else {
            ::core::result::Result::Ok(x)
        }
    }

    /// The override, with a local `mod resilient` in scope: every generated path starts with
    /// the given `::resilient`.
    #[::resilient::timeout("1s", crate = "::resilient")]
    #[::resilient::retry(attempts = 2, backoff = "0s")]
    pub(crate) async fn overridden(x: u32) -> Res<u32> {
        ::core::result::Result::Ok(x * 2)
    }

    pub(crate) struct Service {
        pub(crate) calls: u32,
    }

    impl Service {
        async fn reset(&mut self, _e: ApiError) -> Res<u32> {
            ::tokio::task::yield_now().await;
            self.calls = 0;
            ::core::result::Result::Ok(0)
        }

        #[::resilient::fallback(Self::reset, args = (self))]
        #[::resilient::retry(attempts = 2, backoff = "0s")]
        #[::resilient::timeout("1s")]
        pub(crate) async fn call(&mut self) -> Res<u32> {
            self.calls += 1;
            ::core::result::Result::Err(ApiError::Down)
        }
    }
}

/// A local module named `resilient` that re-exports the facade: reached with a relative
/// `crate = "self::resilient"`, and with `#[resilient::..]` attribute paths that resolve to
/// it.
mod local_facade {
    mod resilient {
        pub(crate) use ::resilient::{__private, retry, timeout};
    }

    #[resilient::retry(attempts = 2, backoff = "0s", crate = "self::resilient")]
    #[resilient::timeout("1s")]
    pub(crate) async fn through_local(x: u32) -> Result<u32, std::io::Error> {
        Ok(x + 1)
    }
}

/// A body that globs in names which could shadow generated ones does not affect the
/// expansion: the body is its own block.
mod glob_in_body {
    #[allow(non_camel_case_types)]
    pub(crate) enum Shadows {
        __stack,
        __out,
    }

    #[resilient::retry(attempts = 2, backoff = "0s")]
    #[resilient::timeout("1s")]
    pub(crate) async fn globbed() -> std::io::Result<u8> {
        use Shadows::*;
        let v = [__stack, __out];
        Ok(u8::try_from(v.len()).unwrap_or(0))
    }
}

#[tokio::test]
async fn every_shadowed_function_runs() {
    use no_prelude::ApiError;
    assert_eq!(no_prelude::breaker(1).await, Ok(1));
    assert!(matches!(no_prelude::slow().await, Err(ApiError::Resilience(e)) if e.is_timeout()));
    assert_eq!(no_prelude::limited(2).await, Ok(2));
    let mut tries = 0;
    assert_eq!(
        no_prelude::retried("s".to_owned(), &mut tries, (1, 2)).await,
        Ok("s12".to_owned())
    );
    assert_eq!(tries, 3);
    assert_eq!(no_prelude::full_stack(5).await, Ok(5));
    assert_eq!(no_prelude::full_stack(0).await, Ok(100));
    assert_eq!(no_prelude::overridden(4).await, Ok(8));
    let mut service = no_prelude::Service { calls: 7 };
    assert_eq!(service.call().await, Ok(0));
    assert_eq!(service.calls, 0);
    assert_eq!(local_facade::through_local(1).await.unwrap(), 2);
    assert_eq!(glob_in_body::globbed().await.unwrap(), 2);
}
