//! Composition: stacked attributes compose in source order (top = outermost), through one
//! merged expansion. Each test pins one ordering semantic of DESIGN.md section 3.

mod common;
use common::ms;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::Duration;

use resilient::{CircuitState, bulkhead, circuit_breaker, fallback, retry, timeout};
use tokio::time::{Instant, advance, sleep};

#[derive(Debug, Clone, PartialEq)]
enum E {
    Body(u32),
    R(resilient::Error),
}

impl From<resilient::Error> for E {
    fn from(e: resilient::Error) -> Self {
        E::R(e)
    }
}

static PER_ATTEMPT: AtomicU32 = AtomicU32::new(0);

#[retry(attempts = 3, backoff = "0s", name = "stack_per_attempt")]
#[timeout("100ms", name = "stack_per_attempt_t")]
async fn per_attempt_timeout() -> Result<(), E> {
    PER_ATTEMPT.fetch_add(1, SeqCst);
    sleep(ms(1_000)).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn timeout_under_retry_is_per_attempt() {
    let start = Instant::now();
    let err = per_attempt_timeout().await.unwrap_err();
    assert_eq!(
        err,
        E::R(resilient::Error::Timeout {
            name: "stack_per_attempt_t",
            after: ms(100)
        })
    );
    assert_eq!(PER_ATTEMPT.load(SeqCst), 3);
    assert_eq!(start.elapsed(), ms(300));
}

static TOTAL: AtomicU32 = AtomicU32::new(0);

#[timeout("250ms", name = "stack_total_t")]
#[retry(
    attempts = 10,
    backoff = "100ms",
    strategy = "constant",
    jitter = "none"
)]
async fn total_timeout() -> Result<(), E> {
    TOTAL.fetch_add(1, SeqCst);
    Err(E::Body(1))
}

#[tokio::test(start_paused = true)]
async fn timeout_above_retry_bounds_all_attempts() {
    let start = Instant::now();
    let err = total_timeout().await.unwrap_err();
    assert!(matches!(
        err,
        E::R(resilient::Error::Timeout {
            name: "stack_total_t",
            ..
        })
    ));
    assert_eq!(start.elapsed(), ms(250));
    // Attempts at 0, 100 and 200 ms; the one due at 300 ms never starts, even later.
    assert_eq!(TOTAL.load(SeqCst), 3);
    advance(ms(1_000)).await;
    assert_eq!(TOTAL.load(SeqCst), 3);
}

static COUNTED: AtomicU32 = AtomicU32::new(0);

#[retry(attempts = 5, backoff = "0s")]
#[circuit_breaker(threshold = 3, name = "stack_breaker_counts_attempts")]
async fn breaker_under_retry() -> Result<(), E> {
    COUNTED.fetch_add(1, SeqCst);
    Err(E::Body(2))
}

#[tokio::test(start_paused = true)]
async fn breaker_under_retry_counts_each_attempt_and_stops_the_retry() {
    let err = breaker_under_retry().await.unwrap_err();
    // Three failed attempts open the breaker; the fourth is rejected and never retried.
    assert_eq!(COUNTED.load(SeqCst), 3);
    assert!(
        matches!(err, E::R(resilient::Error::CircuitOpen { .. })),
        "{err:?}"
    );
    let b = resilient::breaker("stack_breaker_counts_attempts").unwrap();
    assert_eq!(b.state(), CircuitState::Open);
    assert_eq!(b.metrics().rejections, 1);
}

static ONCE_PER_CALL: AtomicU32 = AtomicU32::new(0);

#[circuit_breaker(threshold = 2, name = "stack_breaker_above_retry")]
#[retry(attempts = 3, backoff = "0s")]
async fn breaker_above_retry() -> Result<(), E> {
    ONCE_PER_CALL.fetch_add(1, SeqCst);
    Err(E::Body(3))
}

#[tokio::test(start_paused = true)]
async fn breaker_above_retry_records_one_outcome_per_call() {
    let b = || resilient::breaker("stack_breaker_above_retry").unwrap();
    assert_eq!(breaker_above_retry().await, Err(E::Body(3)));
    assert_eq!(ONCE_PER_CALL.load(SeqCst), 3);
    assert_eq!(b().state(), CircuitState::Closed);
    assert_eq!(b().metrics().failures, 1);
    assert_eq!(breaker_above_retry().await, Err(E::Body(3)));
    assert_eq!(b().state(), CircuitState::Open);
}

#[circuit_breaker(threshold = 2, name = "stack_timeouts_are_failures")]
#[timeout("100ms")]
async fn slow_behind_breaker() -> Result<(), E> {
    sleep(ms(500)).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn timeouts_inside_the_breaker_count_as_failures() {
    for _ in 0..2 {
        assert!(matches!(
            slow_behind_breaker().await,
            Err(E::R(resilient::Error::Timeout { .. }))
        ));
    }
    let b = resilient::breaker("stack_timeouts_are_failures").unwrap();
    assert_eq!(b.state(), CircuitState::Open);
    let err = slow_behind_breaker().await.unwrap_err();
    assert_eq!(
        err,
        E::R(resilient::Error::CircuitOpen {
            name: "stack_timeouts_are_failures",
            retry_after: Some(Duration::from_secs(5)),
        })
    );
}

static BACKOFF_CALLS: AtomicU32 = AtomicU32::new(0);

#[retry(attempts = 2, backoff = "1s", jitter = "none")]
#[bulkhead(pool = 1, name = "stack_bulkhead_innermost")]
async fn bulkhead_under_retry() -> Result<(), E> {
    BACKOFF_CALLS.fetch_add(1, SeqCst);
    Err(E::Body(4))
}

#[tokio::test(start_paused = true)]
async fn a_retry_backoff_holds_no_bulkhead_permit() {
    let call = tokio::spawn(bulkhead_under_retry());
    // Let the first attempt run and the backoff start.
    advance(ms(10)).await;
    assert_eq!(BACKOFF_CALLS.load(SeqCst), 1);
    let bh = resilient::bulkhead("stack_bulkhead_innermost").unwrap();
    assert_eq!(bh.available(), 1, "the backoff must not hold the permit");
    assert_eq!(bh.in_flight(), 0);
    assert_eq!(call.await.unwrap(), Err(E::Body(4)));
    assert_eq!(BACKOFF_CALLS.load(SeqCst), 2);
}

static FB_ATTEMPTS: AtomicU32 = AtomicU32::new(0);

async fn last_error(n: u32, err: E) -> Result<u32, E> {
    assert_eq!(n, 7, "the handler gets the original argument");
    match err {
        E::Body(k) => Ok(1000 + k),
        E::R(_) => Ok(0),
    }
}

#[fallback(last_error)]
#[retry(attempts = 3, backoff = "0s")]
async fn fallback_after_retries(n: u32) -> Result<u32, E> {
    let k = FB_ATTEMPTS.fetch_add(1, SeqCst);
    Err(E::Body(n + k))
}

#[tokio::test(start_paused = true)]
async fn fallback_above_retry_sees_the_last_error_after_every_attempt() {
    assert_eq!(fallback_after_retries(7).await, Ok(1000 + 7 + 2));
    assert_eq!(FB_ATTEMPTS.load(SeqCst), 3);
}

static TWO_TIMEOUTS: AtomicU32 = AtomicU32::new(0);

#[timeout("1s", name = "stack_total_2")]
#[retry(attempts = 10, backoff = "0s")]
#[timeout("300ms", name = "stack_attempt_2")]
async fn total_and_per_attempt() -> Result<(), E> {
    TWO_TIMEOUTS.fetch_add(1, SeqCst);
    sleep(ms(10_000)).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_total_and_a_per_attempt_timeout_compose() {
    let start = Instant::now();
    let err = total_and_per_attempt().await.unwrap_err();
    assert_eq!(
        err,
        E::R(resilient::Error::Timeout {
            name: "stack_total_2",
            after: ms(1_000)
        })
    );
    assert_eq!(start.elapsed(), ms(1_000));
    // Attempts start at 0, 300, 600 and 900 ms.
    assert_eq!(TWO_TIMEOUTS.load(SeqCst), 4);
}

mod renamed {
    //! A policy imported under another name is not merged: it expands on its own, after the
    //! stack, and so wraps it as the outermost layer whatever its position.
    use super::{E, ms};
    use resilient::retry;
    use resilient::timeout as deadline;
    use std::sync::atomic::{AtomicU32, Ordering::SeqCst};

    pub(super) static CALLS: AtomicU32 = AtomicU32::new(0);

    #[retry(attempts = 3, backoff = "0s")]
    #[deadline("100ms", name = "stack_renamed")]
    pub(super) async fn renamed_timeout() -> Result<(), E> {
        CALLS.fetch_add(1, SeqCst);
        tokio::time::sleep(ms(60)).await;
        Err(E::Body(5))
    }
}

#[tokio::test(start_paused = true)]
async fn a_renamed_policy_wraps_the_whole_stack() {
    let start = Instant::now();
    let err = renamed::renamed_timeout().await.unwrap_err();
    assert!(
        matches!(
            err,
            E::R(resilient::Error::Timeout {
                name: "stack_renamed",
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(start.elapsed(), ms(100));
    assert_eq!(renamed::CALLS.load(SeqCst), 2);
}

// A breaker directly around a timeout takes the time of completion from the timeout's own
// clock reading. Outcomes must still be stamped at completion, not at admission: a call
// admitted at 9.8 s that fails at 10.1 s belongs to the 10 s bucket, so it is still in a
// 10 s window at 19.5 s (an admission stamp would have aged it out).
#[circuit_breaker(
    failure_rate = 0.5,
    window = "10s",
    min_calls = 4,
    name = "stack_clocked_window"
)]
#[timeout("1s")]
async fn clocked_window() -> Result<(), E> {
    sleep(ms(300)).await;
    Err(E::Body(5))
}

#[tokio::test(start_paused = true)]
async fn a_breaker_over_a_timeout_stamps_outcomes_at_completion() {
    let origin = Instant::now();
    // The first call creates the breaker: its buckets are aligned to 0 s.
    assert_eq!(clocked_window().await, Err(E::Body(5)));
    sleep(ms(9_500)).await;
    assert_eq!(clocked_window().await, Err(E::Body(5)));
    assert_eq!(origin.elapsed(), ms(10_100));
    let b = resilient::breaker("stack_clocked_window").unwrap();
    // Ten buckets of 1 s: at 10.1 s the window is buckets 1..=10, so 0.3 s is out already.
    assert_eq!((b.metrics().calls, b.metrics().failures), (1, 1));
    sleep(ms(9_400)).await;
    assert_eq!(
        (b.metrics().calls, b.metrics().failures),
        (1, 1),
        "at 19.5 s the call stamped at 10.1 s is in the window, the one of 0.3 s is not"
    );
    sleep(ms(1_000)).await;
    assert_eq!(b.metrics().calls, 0, "out of the window at 20.5 s");
}

// ---------------------------------------------------------------------------------------------
// The outermost `#[retry]`s and `#[fallback]`s return a success from the function at once (the
// expansion's fast path). Every layer still sees it: the breaker under the retry records it,
// and a fallback between two retry-separated layers does not run its handler.

static EARLY: AtomicU32 = AtomicU32::new(0);

async fn handled(_e: E) -> Result<u32, E> {
    Ok(500)
}

#[fallback(handled, args = (), name = "stack_early.outer")]
#[retry(attempts = 4, backoff = "0s", name = "stack_early.retry")]
#[fallback(retry_on, args = (), on = is_odd, name = "stack_early.inner")]
#[circuit_breaker(failure_rate = 0.9, last = 10, name = "stack_early.breaker")]
async fn early(failures: u32) -> Result<u32, E> {
    let n = EARLY.fetch_add(1, SeqCst) + 1;
    if n <= failures {
        Err(E::Body(n))
    } else {
        Ok(n)
    }
}

fn is_odd(e: &E) -> bool {
    matches!(e, E::Body(n) if n % 2 == 1)
}

/// The inner fallback turns an odd failure into an even one, which the retry retries.
async fn retry_on(e: E) -> Result<u32, E> {
    match e {
        E::Body(n) => Err(E::Body(n + 1)),
        other @ E::R(_) => Err(other),
    }
}

#[tokio::test(start_paused = true)]
async fn a_success_under_outer_retries_and_fallbacks_is_seen_by_every_layer() {
    // Two failures (the inner fallback answers each with an error), then a success on the
    // third attempt: the function returns it, and no handler's value replaces it.
    assert_eq!(early(2).await, Ok(3));
    let breaker = resilient::breaker("stack_early.breaker").expect("created by the call");
    let m = breaker.metrics();
    assert_eq!(
        (m.calls, m.failures),
        (3, 2),
        "the breaker recorded the success"
    );
    // At once: one attempt, one success.
    assert_eq!(early(0).await, Ok(4));
    let m = breaker.metrics();
    assert_eq!((m.calls, m.failures), (4, 2));
    // Every attempt fails: the retry gives up and the outer fallback answers.
    assert_eq!(early(u32::MAX).await, Ok(500));
    assert_eq!(EARLY.load(SeqCst), 8);
}
