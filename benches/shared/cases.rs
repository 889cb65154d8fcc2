//! The annotated functions both benches measure: `overhead.rs` times them, `memory.rs` sizes
//! their futures. One copy, so the two always describe the same functions. Included by each
//! bench with `#[path]`; each uses only some of them.
#![allow(dead_code)]

use std::hint::black_box;

use resilient::{bulkhead, circuit_breaker, fallback, retry, timeout};

/// The input that makes `op` fail; the measurement loops never reach it.
pub(crate) const FAIL: u64 = u64::MAX;

/// The user's error type, convertible from a rejection as the attributes require.
#[derive(Debug, Clone)]
pub(crate) enum E {
    Down,
    Resilience(resilient::Error),
}

impl From<resilient::Error> for E {
    fn from(e: resilient::Error) -> Self {
        E::Resilience(e)
    }
}

impl std::fmt::Display for E {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            E::Down => f.write_str("down"),
            E::Resilience(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for E {}

/// The protected work: returns at once; fails only for [`FAIL`].
#[inline]
pub(crate) fn work(x: u64) -> Result<u64, E> {
    let x = black_box(x);
    if x == FAIL { Err(E::Down) } else { Ok(x) }
}

/// The bare call every ratio is relative to: an `async fn` that never awaits, on purpose.
#[allow(clippy::unused_async)]
pub(crate) async fn op(x: u64) -> Result<u64, E> {
    work(x)
}

// ---------------------------------------------------------------------------------------
// Ours: each attribute alone, the open-circuit rejection, and the full stack.
// ---------------------------------------------------------------------------------------

#[circuit_breaker(failure_rate = 0.5, last = 100)]
pub(crate) async fn breaker_count(x: u64) -> Result<u64, E> {
    work(x)
}

#[circuit_breaker(failure_rate = 0.5, window = "10s")]
pub(crate) async fn breaker_time(x: u64) -> Result<u64, E> {
    work(x)
}

/// The same rule over a window short enough that no bucket reaches its cap of 2^20 - 1 calls
/// in this loop (10 ms buckets; over `10s`, 1 s buckets fill after ~50 ms of the loop, and a
/// success into a full bucket writes nothing): every success pays its compare-and-swap.
#[circuit_breaker(failure_rate = 0.5, window = "100ms")]
pub(crate) async fn breaker_time_unsaturated(x: u64) -> Result<u64, E> {
    work(x)
}

#[circuit_breaker(threshold = 5)]
pub(crate) async fn breaker_consecutive(x: u64) -> Result<u64, E> {
    work(x)
}

/// Tripped by one failure during set-up, then open for the rest of the run.
#[circuit_breaker(threshold = 1, cooldown = "1h")]
pub(crate) async fn breaker_open(x: u64) -> Result<u64, E> {
    work(x)
}

/// Forced open by hand: rejects without reading the clock (`retry_after: None`).
#[circuit_breaker(name = "bench-forced-open", threshold = 1, cooldown = "1h")]
pub(crate) async fn breaker_forced_open(x: u64) -> Result<u64, E> {
    work(x)
}

#[timeout("1s")]
pub(crate) async fn timeout_only(x: u64) -> Result<u64, E> {
    work(x)
}

#[bulkhead(pool = 10)]
pub(crate) async fn bulkhead_only(x: u64) -> Result<u64, E> {
    work(x)
}

#[retry(attempts = 3, backoff = "100ms")]
pub(crate) async fn retry_only(x: u64) -> Result<u64, E> {
    work(x)
}

/// The handler `#[fallback]` requires to be an `async fn`.
#[allow(clippy::unused_async)]
pub(crate) async fn fallback_handler(x: u64, _err: E) -> Result<u64, E> {
    Ok(x.wrapping_add(1))
}

#[fallback(fallback_handler)]
pub(crate) async fn fallback_only(x: u64) -> Result<u64, E> {
    work(x)
}

/// The README's stack: a time-window breaker, as in `tests/smoke.rs`.
#[fallback(fallback_handler)]
#[retry(attempts = 2, backoff = "50ms")]
#[circuit_breaker(failure_rate = 0.5, window = "10s", cooldown = "5s")]
#[timeout("200ms")]
#[bulkhead(pool = 10)]
pub(crate) async fn full_stack(x: u64) -> Result<u64, E> {
    work(x)
}

/// The README's stack over a window whose buckets never fill in this loop (see
/// `breaker_time_unsaturated`): every success pays the bucket's compare-and-swap.
#[fallback(fallback_handler)]
#[retry(attempts = 2, backoff = "50ms")]
#[circuit_breaker(failure_rate = 0.5, window = "100ms", cooldown = "5s")]
#[timeout("200ms")]
#[bulkhead(pool = 10)]
pub(crate) async fn full_stack_unsaturated(x: u64) -> Result<u64, E> {
    work(x)
}

/// The same stack with a count-window breaker (`last = 100`), which reads no clock.
#[fallback(fallback_handler)]
#[retry(attempts = 2, backoff = "50ms")]
#[circuit_breaker(failure_rate = 0.5, last = 100, cooldown = "5s")]
#[timeout("200ms")]
#[bulkhead(pool = 10)]
pub(crate) async fn full_stack_count(x: u64) -> Result<u64, E> {
    work(x)
}
