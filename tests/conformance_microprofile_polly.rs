//! Conformance scenarios adapted from two peer suites, translated to DESIGN.md's semantics.
//!
//! Where the peer's rule differs from DESIGN.md, the test follows DESIGN.md and a comment
//! says what the peer does. Every policy has its own `name` (prefix `conf.`): policy state is
//! process-global and tests run in parallel. Time moves only on tokio's paused clock, so every
//! count and every instant is asserted exactly.
//!
//! - **Eclipse MP Fault Tolerance TCK** (`MicroProfile`; repository
//!   `eclipse/microprofile-fault-tolerance`, folder `tck/`):
//!   - `CircuitBreakerTest` (`testCircuitDefaultSuccessThreshold`,
//!     `testCircuitHighSuccessThreshold`), `CircuitBreakerExceptionHierarchyTest` (`failOn` /
//!     `skipOn`, our `failure` predicate), `CircuitBreakerTimeoutTest`
//!     (`testTimeoutWithoutFailOn`), `CircuitBreakerBulkheadTest`, and the state sharing the
//!     spec requires across bean instances;
//!   - `CircuitBreakerRetryTest` (`testCircuitOpenWithFewRetries`,
//!     `testCircuitOpenWithMoreRetries`, `testCircuitOpenWithMultiTimeouts`,
//!     `testNoRetriesIfAbortOn`), `BulkheadSynchRetryTest`, `RetryTimeoutTest`;
//!   - `BulkheadTimeoutTest` (a timeout around a queued bulkhead call), `TimeoutTest` (units
//!     below a millisecond);
//!   - `FallbackTest` and `FallbackExceptionHierarchyTest` (`applyOn`, our `on`), fallback
//!     around a bulkhead and around retries that end in success.
//! - **Polly** (`App-vNext/Polly`, its unit tests):
//!   - `AdvancedCircuitBreakerSpecs` (rolling sampling windows across time slices, low
//!     resolution sampling durations);
//!   - `CircuitBreakerSpecs` (`Reset` of an automatically opened circuit, `Isolate` while a
//!     trial is in flight, very long break durations);
//!   - `TimeoutSpecs` (one deadline per execution), `BulkheadSpecs`
//!     (`Should_control_executions_per_specification`, queued actions that time out);
//!   - `RetrySpecs` (`Should_create_new_state_for_each_call_to_policy`, success after a timed
//!     out attempt);
//!   - `FallbackSpecs` (the fallback does not handle an exception its own delegate throws);
//!   - `PolicyWrapSpecs` (the recommended full stack; a timeout outside a fallback).

mod common;
use common::{
    breaker_handle as breaker, bulkhead_counts as counts, bulkhead_handle as bulkhead_of, ms, secs,
    settle,
};
use std::pin::pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::Duration;

use resilient::{CircuitState, Error, bulkhead, circuit_breaker, fallback, retry, timeout};
use tokio::sync::oneshot;
use tokio::time::{Instant, advance, sleep};

/// The error type of every annotated function here.
#[derive(Debug, Clone, PartialEq)]
enum E {
    /// The dependency is down: a failure everywhere.
    Down,
    /// A lookup found nothing: in `failOn`'s family but listed in `skipOn`.
    NotFound,
    /// The request was invalid: not in `failOn` at all.
    Invalid,
    /// A policy rejected or abandoned the call.
    R(Error),
}

impl From<Error> for E {
    fn from(e: Error) -> Self {
        E::R(e)
    }
}

/// How a gated body ends: the test sends the outcome.
type Outcome = oneshot::Receiver<Result<(), E>>;

/// An outcome that is already decided.
fn decided(outcome: Result<(), E>) -> Outcome {
    let (tx, rx) = oneshot::channel();
    tx.send(outcome).expect("the receiver is alive");
    rx
}

/// Counts the run, then waits for the outcome; a dropped sender never completes.
async fn gated(runs: &AtomicU32, outcome: Outcome) -> Result<(), E> {
    runs.fetch_add(1, SeqCst);
    match outcome.await {
        Ok(result) => result,
        Err(_) => std::future::pending().await,
    }
}

fn open(name: &'static str, retry_after: Option<Duration>) -> E {
    E::R(Error::CircuitOpen { name, retry_after })
}

fn timed_out(name: &'static str, after: Duration) -> E {
    E::R(Error::Timeout { name, after })
}

fn full(name: &'static str) -> E {
    E::R(Error::BulkheadFull { name })
}

// =============================================================================================
// MicroProfile Fault Tolerance TCK: circuit breaker.
// `requestVolumeThreshold = N` with `failureRatio = r` is our rolling `failure_rate = r,
// last = N`; `delay` is `cooldown`.
// =============================================================================================

/// `CircuitBreakerTest.testCircuitDefaultSuccessThreshold`: 4 failures open, the 5th call is
/// rejected, a successful trial closes, and the window starts empty, so the circuit reopens
/// only at the 4th failure of the fresh window (the trial's success is not in it: with it,
/// [S, F, F, F] would reach 0.75 one call early).
#[tokio::test(start_paused = true)]
async fn mp_after_closing_a_fresh_window_must_fill_before_reopening() {
    const NAME: &str = "conf.mp_default_success";
    static RUNS: AtomicU32 = AtomicU32::new(0);
    #[circuit_breaker(
        name = "conf.mp_default_success",
        failure_rate = 0.75,
        last = 4,
        cooldown = "2s"
    )]
    async fn service_a(fail: bool) -> Result<u32, E> {
        let n = RUNS.fetch_add(1, SeqCst) + 1;
        if fail { Err(E::Down) } else { Ok(n) }
    }

    for _ in 1..=4 {
        assert_eq!(service_a(true).await, Err(E::Down));
    }
    assert_eq!(service_a(false).await, Err(open(NAME, Some(secs(2)))));
    advance(secs(2)).await;
    assert_eq!(service_a(false).await, Ok(5));
    let h = breaker(NAME);
    assert_eq!(h.state(), CircuitState::Closed);
    for _ in 7..=9 {
        assert_eq!(service_a(true).await, Err(E::Down));
    }
    let m = h.metrics();
    assert_eq!(
        (m.state, m.calls, m.failures, m.failure_rate),
        (CircuitState::Closed, 3, 3, None)
    );
    assert_eq!(service_a(true).await, Err(E::Down));
    assert_eq!(h.state(), CircuitState::Open);
    assert_eq!(service_a(false).await, Err(open(NAME, Some(secs(2)))));
    assert_eq!(RUNS.load(SeqCst), 9);
}

/// `CircuitBreakerTest.testCircuitHighSuccessThreshold`: with `success_threshold = 3` (and
/// `half_open_calls` left at its default, the same 3), three trials run at once, a fourth
/// caller is rejected, and after two successes one failed trial reopens. 7 executions.
#[tokio::test(start_paused = true)]
async fn mp_high_success_threshold_admits_that_many_trials_and_one_failure_reopens() {
    const NAME: &str = "conf.mp_high_success";
    static RUNS: AtomicU32 = AtomicU32::new(0);
    #[circuit_breaker(
        name = "conf.mp_high_success",
        failure_rate = 0.75,
        last = 4,
        cooldown = "1s",
        success_threshold = 3
    )]
    async fn service_a(outcome: Outcome) -> Result<(), E> {
        gated(&RUNS, outcome).await
    }

    for _ in 0..4 {
        assert_eq!(service_a(decided(Err(E::Down))).await, Err(E::Down));
    }
    assert_eq!(
        service_a(decided(Ok(()))).await,
        Err(open(NAME, Some(secs(1))))
    );
    advance(secs(1)).await;
    let mut trials = Vec::new();
    for _ in 0..4 {
        let (tx, rx) = oneshot::channel();
        trials.push((tokio::spawn(service_a(rx)), tx));
        settle().await;
    }
    assert_eq!(RUNS.load(SeqCst), 7, "exactly three trials run");
    let (fourth, _) = trials.pop().unwrap();
    assert!(fourth.is_finished());
    assert_eq!(fourth.await.unwrap(), Err(open(NAME, None)));

    let h = breaker(NAME);
    let mut trials = trials.into_iter();
    for _ in 0..2 {
        let (task, tx) = trials.next().unwrap();
        tx.send(Ok(())).unwrap();
        assert_eq!(task.await.unwrap(), Ok(()));
        assert_eq!(h.state(), CircuitState::HalfOpen);
    }
    let (task, tx) = trials.next().unwrap();
    tx.send(Err(E::Down)).unwrap();
    assert_eq!(task.await.unwrap(), Err(E::Down));
    assert_eq!(h.state(), CircuitState::Open);
    assert_eq!(
        service_a(decided(Ok(()))).await,
        Err(open(NAME, Some(secs(1))))
    );
    assert_eq!(RUNS.load(SeqCst), 7);
}

/// MP's `failOn = {Down, NotFound}, skipOn = {NotFound}` as one predicate: `skipOn`
/// wins over `failOn`, and an error in neither list is not a failure.
fn mp_fail_on_skip_on(e: &E) -> bool {
    let fail_on = matches!(e, E::Down | E::NotFound);
    let skip_on = matches!(e, E::NotFound);
    fail_on && !skip_on
}

/// `CircuitBreakerExceptionHierarchyTest` and the spec's rule that `skipOn` errors are
/// successes, applied to a trial: a half-open trial that returns an error the predicate
/// rejects is a *successful* trial and closes the breaker; the caller still gets its error.
#[tokio::test(start_paused = true)]
async fn mp_skip_on_errors_are_successes_even_for_a_half_open_trial() {
    const NAME: &str = "conf.mp_skip_on";
    #[circuit_breaker(
        name = "conf.mp_skip_on",
        threshold = 2,
        cooldown = "1s",
        failure = mp_fail_on_skip_on
    )]
    async fn service(error: Option<E>) -> Result<(), E> {
        error.map_or(Ok(()), Err)
    }

    for error in [E::Invalid, E::NotFound, E::Invalid, E::NotFound] {
        assert_eq!(service(Some(error.clone())).await, Err(error));
    }
    let h = breaker(NAME);
    assert_eq!((h.state(), h.metrics().failures), (CircuitState::Closed, 0));
    assert_eq!(service(Some(E::Down)).await, Err(E::Down));
    assert_eq!(service(Some(E::Down)).await, Err(E::Down));
    assert_eq!(h.state(), CircuitState::Open);

    advance(secs(1)).await;
    assert_eq!(service(Some(E::NotFound)).await, Err(E::NotFound));
    assert_eq!(h.state(), CircuitState::Closed);
    assert_eq!(
        h.metrics().failures,
        0,
        "the trial is not in the new window"
    );
    // A skipped error breaks a run of consecutive failures like a success does.
    assert_eq!(service(Some(E::Down)).await, Err(E::Down));
    assert_eq!(service(Some(E::Invalid)).await, Err(E::Invalid));
    assert_eq!(service(Some(E::Down)).await, Err(E::Down));
    assert_eq!(h.state(), CircuitState::Closed);
    assert_eq!(service(Some(E::Down)).await, Err(E::Down));
    assert_eq!(h.state(), CircuitState::Open);
}

fn body_errors_only(e: &E) -> bool {
    !matches!(e, E::R(_))
}

/// `CircuitBreakerTimeoutTest.testTimeoutWithoutFailOn`: when `failOn` does not list the
/// timeout, timeouts never open the circuit. They are recorded as successes (not left out):
/// after four of them, three body failures make [T, D, D, D] = 0.75 and open it.
#[tokio::test(start_paused = true)]
async fn mp_timeouts_the_failure_predicate_rejects_never_open_the_breaker() {
    const NAME: &str = "conf.mp_timeout_skip";
    const TIMEOUT: &str = "conf.mp_timeout_skip_t";
    static RUNS: AtomicU32 = AtomicU32::new(0);
    #[circuit_breaker(
        name = "conf.mp_timeout_skip",
        failure_rate = 0.75,
        last = 4,
        failure = body_errors_only
    )]
    #[timeout("500ms", name = "conf.mp_timeout_skip_t")]
    async fn service(slow: bool) -> Result<(), E> {
        RUNS.fetch_add(1, SeqCst);
        if slow {
            sleep(secs(1)).await;
            Ok(())
        } else {
            Err(E::Down)
        }
    }

    let start = Instant::now();
    for _ in 0..5 {
        assert_eq!(service(true).await, Err(timed_out(TIMEOUT, ms(500))));
    }
    assert_eq!(start.elapsed(), ms(2_500));
    let h = breaker(NAME);
    let m = h.metrics();
    assert_eq!(
        (m.state, m.calls, m.failures, m.failure_rate),
        (CircuitState::Closed, 4, 0, Some(0.0))
    );
    assert_eq!(service(false).await, Err(E::Down));
    assert_eq!(service(false).await, Err(E::Down));
    assert_eq!(h.state(), CircuitState::Closed, "[T, T, D, D] is 0.5");
    assert_eq!(service(false).await, Err(E::Down));
    assert_eq!(h.state(), CircuitState::Open);
    assert_eq!(RUNS.load(SeqCst), 8);
}

/// `CircuitBreakerBulkheadTest`, half-open. MP counts a `BulkheadException` as a
/// breaker failure; DESIGN.md (section 4.1, and the crate docs' choice) does not record an
/// inner rejection at all. So a trial that the inner bulkhead rejects returns its slot and
/// leaves the breaker half-open: the next callers are rejected by the bulkhead again (not by
/// the breaker), and once the bulkhead frees up the next trial closes the breaker.
#[tokio::test(start_paused = true)]
async fn mp_a_trial_rejected_by_an_inner_bulkhead_returns_its_slot() {
    const NAME: &str = "conf.mp_trial_bulkhead";
    const POOL: &str = "conf.mp_trial_bulkhead_pool";
    static RUNS: AtomicU32 = AtomicU32::new(0);
    static HOG_RUNS: AtomicU32 = AtomicU32::new(0);
    #[circuit_breaker(name = "conf.mp_trial_bulkhead", threshold = 1, cooldown = "1s")]
    #[bulkhead(pool = 1, name = "conf.mp_trial_bulkhead_pool")]
    async fn guarded(outcome: Outcome) -> Result<(), E> {
        gated(&RUNS, outcome).await
    }
    // Another site of the same bulkhead (same configuration), without the breaker.
    #[bulkhead(pool = 1, name = "conf.mp_trial_bulkhead_pool")]
    async fn hog(outcome: Outcome) -> Result<(), E> {
        gated(&HOG_RUNS, outcome).await
    }

    assert_eq!(guarded(decided(Err(E::Down))).await, Err(E::Down));
    let h = breaker(NAME);
    assert_eq!(h.state(), CircuitState::Open);
    let (release, rx) = oneshot::channel();
    let hog_task = tokio::spawn(hog(rx));
    settle().await;
    assert_eq!(HOG_RUNS.load(SeqCst), 1);
    assert_eq!(counts(bulkhead_of(POOL)), (1, 0, 0));

    advance(secs(1)).await;
    for _ in 0..3 {
        assert_eq!(guarded(decided(Ok(()))).await, Err(full(POOL)));
        assert_eq!(h.state(), CircuitState::HalfOpen);
    }
    assert_eq!(RUNS.load(SeqCst), 1, "no rejected trial ran");
    let m = h.metrics();
    assert_eq!((m.calls, m.failures, m.rejections), (0, 0, 0));

    release.send(Ok(())).unwrap();
    assert_eq!(hog_task.await.unwrap(), Ok(()));
    assert_eq!(guarded(decided(Ok(()))).await, Ok(()));
    assert_eq!(h.state(), CircuitState::Closed);
    assert_eq!(RUNS.load(SeqCst), 2);
}

/// MP requires one breaker state per method, shared by every bean instance; DESIGN.md
/// (section 3, naming and state) says the same of an unnamed site: every receiver instance and
/// every monomorphisation of a generic function share the site's breaker, under the key
/// `module_path::fn_name`.
#[tokio::test(start_paused = true)]
async fn mp_breaker_state_is_shared_by_every_receiver_and_monomorphisation() {
    const METHOD_KEY: &str = "conformance_microprofile_polly::mp_shared_fetch";
    const GENERIC_KEY: &str = "conformance_microprofile_polly::mp_shared_generic";
    struct Client {
        id: u32,
    }
    impl Client {
        #[circuit_breaker(threshold = 3, cooldown = "1s")]
        async fn mp_shared_fetch(&self, fail: bool) -> Result<u32, E> {
            if fail { Err(E::Down) } else { Ok(self.id) }
        }
    }
    #[circuit_breaker(threshold = 2, cooldown = "1s")]
    async fn mp_shared_generic<T: Send>(value: T, fail: bool) -> Result<T, E> {
        if fail { Err(E::Down) } else { Ok(value) }
    }

    let (a, b, c) = (Client { id: 1 }, Client { id: 2 }, Client { id: 3 });
    assert_eq!(a.mp_shared_fetch(true).await, Err(E::Down));
    assert_eq!(b.mp_shared_fetch(true).await, Err(E::Down));
    assert_eq!(c.mp_shared_fetch(false).await, Ok(3), "still closed");
    assert_eq!(a.mp_shared_fetch(true).await, Err(E::Down));
    assert_eq!(b.mp_shared_fetch(true).await, Err(E::Down));
    assert_eq!(c.mp_shared_fetch(true).await, Err(E::Down));
    assert_eq!(
        a.mp_shared_fetch(false).await,
        Err(open(METHOD_KEY, Some(secs(1)))),
        "three failures through three receivers opened the one breaker"
    );
    assert_eq!(breaker(METHOD_KEY).state(), CircuitState::Open);

    assert_eq!(mp_shared_generic(7_u32, true).await, Err(E::Down));
    assert_eq!(
        mp_shared_generic(String::from("x"), true).await,
        Err(E::Down)
    );
    assert_eq!(
        mp_shared_generic(1.5_f64, false).await,
        Err(open(GENERIC_KEY, Some(secs(1))))
    );
}

// =============================================================================================
// MicroProfile Fault Tolerance TCK: combinations with `@Retry`.
// MicroProfile retries a `CircuitBreakerOpenException` or a `BulkheadException` unless
// `abortOn` lists it; DESIGN.md (section 4.4) never retries `CircuitOpen` or `BulkheadFull`.
// =============================================================================================

/// `CircuitBreakerRetryTest.testCircuitOpenWithFewRetries` then `...WithMoreRetries`: each
/// attempt is one breaker outcome, across calls. Three attempts leave the breaker closed and
/// return the body's error; the next call's first attempt opens it and its second attempt is
/// rejected and returned at once; a later call gets the rejection without any attempt or
/// backoff.
#[tokio::test(start_paused = true)]
async fn mp_retry_over_a_breaker_counts_every_attempt_across_calls() {
    const NAME: &str = "conf.mp_cb_retry_breaker";
    static RUNS: AtomicU32 = AtomicU32::new(0);
    #[retry(
        attempts = 3,
        backoff = "100ms",
        strategy = "constant",
        jitter = "none",
        name = "conf.mp_cb_retry"
    )]
    #[circuit_breaker(
        failure_rate = 0.75,
        last = 4,
        cooldown = "1s",
        name = "conf.mp_cb_retry_breaker"
    )]
    async fn service_b() -> Result<(), E> {
        RUNS.fetch_add(1, SeqCst);
        Err(E::Down)
    }

    let start = Instant::now();
    assert_eq!(service_b().await, Err(E::Down));
    assert_eq!(start.elapsed(), ms(200));
    assert_eq!(RUNS.load(SeqCst), 3);
    let h = breaker(NAME);
    let m = h.metrics();
    assert_eq!((m.state, m.calls, m.failures), (CircuitState::Closed, 3, 3));

    // Attempt 4 (at 200 ms) opens the breaker; attempt 5 (at 300 ms) is rejected.
    assert_eq!(service_b().await, Err(open(NAME, Some(ms(900)))));
    assert_eq!(start.elapsed(), ms(300));
    assert_eq!(RUNS.load(SeqCst), 4);

    let before = Instant::now();
    assert_eq!(service_b().await, Err(open(NAME, Some(ms(900)))));
    assert_eq!(
        before.elapsed(),
        ms(0),
        "no attempt waits out the open state"
    );
    assert_eq!(RUNS.load(SeqCst), 4);
    assert_eq!(h.metrics().rejections, 2);
}

/// `CircuitBreakerRetryTest.testCircuitOpenWithMultiTimeouts`: retry > breaker > timeout with a
/// hanging body. Four per-attempt timeouts are four failures and open the breaker; the fifth
/// attempt is rejected and ends the call (MP would go on retrying until
/// `maxRetries`). Exactly 4 executions.
#[tokio::test(start_paused = true)]
async fn mp_retry_over_a_breaker_over_a_timeout_stops_after_four_timeouts() {
    const NAME: &str = "conf.mp_multi_timeouts";
    static RUNS: AtomicU32 = AtomicU32::new(0);
    #[retry(
        attempts = 20,
        backoff = "100ms",
        strategy = "constant",
        jitter = "none",
        name = "conf.mp_multi_timeouts_retry"
    )]
    #[circuit_breaker(
        failure_rate = 0.75,
        last = 4,
        cooldown = "5s",
        name = "conf.mp_multi_timeouts"
    )]
    #[timeout("500ms", name = "conf.mp_multi_timeouts_t")]
    async fn service_c() -> Result<(), E> {
        RUNS.fetch_add(1, SeqCst);
        sleep(secs(1)).await;
        Ok(())
    }

    let start = Instant::now();
    // Attempts at 0, 600, 1200 and 1800 ms, each cut at 500 ms; opened at 2300 ms; the fifth
    // attempt, at 2400 ms, is rejected.
    assert_eq!(service_c().await, Err(open(NAME, Some(ms(4_900)))));
    assert_eq!(start.elapsed(), ms(2_400));
    assert_eq!(RUNS.load(SeqCst), 4);
    assert_eq!(breaker(NAME).state(), CircuitState::Open);
}

/// `CircuitBreakerRetryTest.testRetriesSucceedWhenCircuitCloses`, in DESIGN.md's terms: a
/// rejected attempt is never retried, but a retry whose own backoff outlasts the cooldown
/// reaches the half-open trial, which can succeed and close the breaker. One millisecond
/// short of the cooldown, the attempt is rejected and ends the call.
#[tokio::test(start_paused = true)]
async fn mp_a_retry_whose_backoff_outlasts_the_cooldown_reaches_the_trial() {
    const LONG: &str = "conf.mp_retry_outlasts";
    const SHORT: &str = "conf.mp_retry_falls_short";
    static LONG_RUNS: AtomicU32 = AtomicU32::new(0);
    static SHORT_RUNS: AtomicU32 = AtomicU32::new(0);
    #[retry(
        attempts = 2,
        backoff = "1s",
        strategy = "constant",
        jitter = "none",
        name = "conf.mp_retry_outlasts_retry"
    )]
    #[circuit_breaker(threshold = 1, cooldown = "1s", name = "conf.mp_retry_outlasts")]
    async fn outlasts() -> Result<u32, E> {
        let n = LONG_RUNS.fetch_add(1, SeqCst) + 1;
        if n == 1 { Err(E::Down) } else { Ok(n) }
    }
    #[retry(
        attempts = 2,
        backoff = "999ms",
        strategy = "constant",
        jitter = "none",
        name = "conf.mp_retry_falls_short_retry"
    )]
    #[circuit_breaker(threshold = 1, cooldown = "1s", name = "conf.mp_retry_falls_short")]
    async fn falls_short() -> Result<u32, E> {
        let n = SHORT_RUNS.fetch_add(1, SeqCst) + 1;
        if n == 1 { Err(E::Down) } else { Ok(n) }
    }

    let start = Instant::now();
    assert_eq!(outlasts().await, Ok(2));
    assert_eq!(start.elapsed(), secs(1));
    assert_eq!(breaker(LONG).state(), CircuitState::Closed);

    let start = Instant::now();
    assert_eq!(falls_short().await, Err(open(SHORT, Some(ms(1)))));
    assert_eq!(start.elapsed(), ms(999));
    assert_eq!(SHORT_RUNS.load(SeqCst), 1);
    assert_eq!(breaker(SHORT).state(), CircuitState::Open);
}

/// `BulkheadSynchRetryTest` with a queue wait: a queued attempt that gives up after
/// `max_wait` gets `BulkheadFull`, which is not retried (MP would retry it).
#[tokio::test(start_paused = true)]
async fn mp_an_attempt_that_gave_up_waiting_for_the_bulkhead_is_not_retried() {
    const POOL: &str = "conf.mp_retry_bulkhead_wait";
    static RUNS: AtomicU32 = AtomicU32::new(0);
    #[retry(
        attempts = 5,
        backoff = "10ms",
        strategy = "constant",
        jitter = "none",
        name = "conf.mp_retry_bulkhead_wait_retry"
    )]
    #[bulkhead(
        pool = 1,
        queue = 1,
        max_wait = "50ms",
        name = "conf.mp_retry_bulkhead_wait"
    )]
    async fn service(hold: Duration) -> Result<(), E> {
        RUNS.fetch_add(1, SeqCst);
        sleep(hold).await;
        Ok(())
    }

    let start = Instant::now();
    let holder = tokio::spawn(service(ms(200)));
    settle().await;
    assert_eq!(RUNS.load(SeqCst), 1);
    assert_eq!(service(ms(1)).await, Err(full(POOL)));
    assert_eq!(
        start.elapsed(),
        ms(50),
        "given up after max_wait, no backoff"
    );
    assert_eq!(RUNS.load(SeqCst), 1, "the waiting attempt never ran");
    let h = bulkhead_of(POOL);
    assert_eq!(counts(h), (1, 0, 0));
    assert_eq!(holder.await.unwrap(), Ok(()));
    assert_eq!(start.elapsed(), ms(200));
    assert_eq!(counts(h), (0, 0, 1));
}

/// `RetryTimeoutTest` (and Polly's retry wrapping a timeout): an attempt that times out is
/// retried, and the next attempt's success is the call's result.
#[tokio::test(start_paused = true)]
async fn mp_retry_recovers_after_a_timed_out_attempt() {
    static RUNS: AtomicU32 = AtomicU32::new(0);
    #[retry(
        attempts = 3,
        backoff = "100ms",
        strategy = "constant",
        jitter = "none",
        name = "conf.mp_retry_timeout_recovers"
    )]
    #[timeout("50ms", name = "conf.mp_retry_timeout_recovers_t")]
    async fn service() -> Result<u32, E> {
        let n = RUNS.fetch_add(1, SeqCst) + 1;
        if n == 1 {
            sleep(secs(1)).await;
        }
        Ok(n)
    }

    let start = Instant::now();
    assert_eq!(service().await, Ok(2));
    assert_eq!(start.elapsed(), ms(150));
    assert_eq!(RUNS.load(SeqCst), 2);
}

// =============================================================================================
// MicroProfile Fault Tolerance TCK: timeout around a bulkhead; units.
// =============================================================================================

/// `BulkheadTimeoutTest`: a timeout outside a bulkhead counts the time spent queued. A caller
/// whose deadline passes while it waits leaves the queue and never runs; one that gets the
/// permit in time runs, against the deadline set at its arrival.
#[tokio::test(start_paused = true)]
async fn mp_a_timeout_above_a_bulkhead_bounds_the_queue_wait() {
    const POOL: &str = "conf.mp_bulkhead_timeout";
    const SHORT: &str = "conf.mp_bulkhead_timeout_short";
    static HOLDER_RUNS: AtomicU32 = AtomicU32::new(0);
    static RUNS: AtomicU32 = AtomicU32::new(0);
    // Two sites of one bulkhead (same configuration), under different timeouts.
    #[timeout("1s", name = "conf.mp_bulkhead_timeout_long")]
    #[bulkhead(pool = 1, queue = 2, name = "conf.mp_bulkhead_timeout")]
    async fn holder(hold: Duration) -> Result<(), E> {
        HOLDER_RUNS.fetch_add(1, SeqCst);
        sleep(hold).await;
        Ok(())
    }
    #[timeout("50ms", name = "conf.mp_bulkhead_timeout_short")]
    #[bulkhead(pool = 1, queue = 2, name = "conf.mp_bulkhead_timeout")]
    async fn impatient(hold: Duration, origin: Instant) -> Result<Duration, E> {
        RUNS.fetch_add(1, SeqCst);
        let started = origin.elapsed();
        sleep(hold).await;
        Ok(started)
    }

    let origin = Instant::now();
    let held = tokio::spawn(holder(ms(200)));
    settle().await;
    assert_eq!(HOLDER_RUNS.load(SeqCst), 1);
    sleep(ms(10)).await;
    assert_eq!(
        impatient(ms(1), origin).await,
        Err(timed_out(SHORT, ms(50)))
    );
    assert_eq!(origin.elapsed(), ms(60));
    assert_eq!(RUNS.load(SeqCst), 0, "timed out in the queue, never ran");
    let h = bulkhead_of(POOL);
    assert_eq!(counts(h), (1, 0, 0), "and left the queue");

    sleep(ms(110)).await; // t = 170 ms: the permit comes back at 200 ms, deadline 220 ms
    assert_eq!(impatient(ms(10), origin).await, Ok(ms(200)));
    assert_eq!(origin.elapsed(), ms(210));
    assert_eq!(held.await.unwrap(), Ok(()));
    assert_eq!(RUNS.load(SeqCst), 1);
    assert_eq!(counts(h), (0, 0, 1));
}

/// `TimeoutTest` with other units: a limit below the timer's 1 ms granularity is rounded up
/// to the next tick (DESIGN.md section 3, literals), never truncated; the error reports the
/// configured limit.
#[tokio::test(start_paused = true)]
async fn mp_a_sub_millisecond_timeout_rounds_up_to_the_next_millisecond() {
    const NAME: &str = "conf.mp_sub_millisecond";
    #[timeout("1500us", name = "conf.mp_sub_millisecond")]
    async fn service(hold: Duration) -> Result<(), E> {
        sleep(hold).await;
        Ok(())
    }

    let start = Instant::now();
    assert_eq!(service(ms(1)).await, Ok(()), "1 ms is within 1.5 ms");
    assert_eq!(start.elapsed(), ms(1));
    let start = Instant::now();
    assert_eq!(
        service(ms(5)).await,
        Err(timed_out(NAME, Duration::from_micros(1_500)))
    );
    assert_eq!(start.elapsed(), ms(2));
}

// =============================================================================================
// MicroProfile Fault Tolerance TCK: fallback.
// =============================================================================================

/// `FallbackTest` with `@Retry`: when a retry succeeds, the fallback is not used.
#[tokio::test(start_paused = true)]
async fn mp_the_fallback_is_not_used_when_a_retry_succeeds() {
    static RUNS: AtomicU32 = AtomicU32::new(0);
    static HANDLED: AtomicU32 = AtomicU32::new(0);
    async fn cached(_err: E) -> Result<u32, E> {
        HANDLED.fetch_add(1, SeqCst);
        Ok(0)
    }
    #[fallback(cached, args = (), name = "conf.mp_fallback_retry_ok")]
    #[retry(
        attempts = 3,
        backoff = "20ms",
        strategy = "constant",
        jitter = "none",
        name = "conf.mp_fallback_retry_ok_retry"
    )]
    async fn service() -> Result<u32, E> {
        let n = RUNS.fetch_add(1, SeqCst) + 1;
        if n < 3 { Err(E::Down) } else { Ok(n) }
    }

    let start = Instant::now();
    assert_eq!(service().await, Ok(3));
    assert_eq!(start.elapsed(), ms(40));
    assert_eq!(HANDLED.load(SeqCst), 0);
}

/// `FallbackTest` around a bulkhead: a `BulkheadFull` rejection goes to the handler, converted,
/// and the body does not run.
#[tokio::test(start_paused = true)]
async fn mp_a_full_bulkhead_goes_to_the_fallback_handler() {
    const POOL: &str = "conf.mp_fallback_bulkhead";
    static RUNS: AtomicU32 = AtomicU32::new(0);
    static SEEN: Mutex<Vec<E>> = Mutex::new(Vec::new());
    async fn degraded(err: E) -> Result<&'static str, E> {
        SEEN.lock().unwrap().push(err);
        Ok("degraded")
    }
    #[fallback(degraded, args = (), name = "conf.mp_fallback_bulkhead_fb")]
    #[bulkhead(pool = 1, name = "conf.mp_fallback_bulkhead")]
    async fn service(outcome: Outcome) -> Result<&'static str, E> {
        gated(&RUNS, outcome).await.map(|()| "primary")
    }

    let (release, rx) = oneshot::channel();
    let holder = tokio::spawn(service(rx));
    settle().await;
    assert_eq!(RUNS.load(SeqCst), 1);
    assert_eq!(service(decided(Ok(()))).await, Ok("degraded"));
    assert_eq!(RUNS.load(SeqCst), 1);
    assert_eq!(*SEEN.lock().unwrap(), [full(POOL)]);
    release.send(Ok(())).unwrap();
    assert_eq!(holder.await.unwrap(), Ok("primary"));
    assert_eq!(service(decided(Ok(()))).await, Ok("primary"));
    assert_eq!(SEEN.lock().unwrap().len(), 1);
}

fn is_rejection(e: &E) -> bool {
    matches!(e, E::R(_))
}

/// `FallbackExceptionHierarchyTest` (`applyOn`): a fallback that applies only to rejections
/// serves an open circuit while the body's own errors reach the caller unchanged, and the
/// breaker still records those errors.
#[tokio::test(start_paused = true)]
async fn mp_a_fallback_applied_only_to_rejections_passes_body_errors_through() {
    const NAME: &str = "conf.mp_fallback_apply_on";
    static RUNS: AtomicU32 = AtomicU32::new(0);
    static SEEN: Mutex<Vec<E>> = Mutex::new(Vec::new());
    async fn cached(err: E) -> Result<&'static str, E> {
        SEEN.lock().unwrap().push(err);
        Ok("cached")
    }
    #[fallback(cached, args = (), on = is_rejection, name = "conf.mp_fallback_apply_on_fb")]
    #[circuit_breaker(threshold = 2, cooldown = "1s", name = "conf.mp_fallback_apply_on")]
    async fn service(fail: bool) -> Result<&'static str, E> {
        RUNS.fetch_add(1, SeqCst);
        if fail { Err(E::Down) } else { Ok("fresh") }
    }

    assert_eq!(service(true).await, Err(E::Down));
    assert_eq!(service(true).await, Err(E::Down));
    assert!(SEEN.lock().unwrap().is_empty());
    assert_eq!(service(false).await, Ok("cached"));
    assert_eq!(*SEEN.lock().unwrap(), [open(NAME, Some(secs(1)))]);
    assert_eq!(RUNS.load(SeqCst), 2);
    advance(secs(1)).await;
    assert_eq!(service(false).await, Ok("fresh"));
    assert_eq!(breaker(NAME).state(), CircuitState::Closed);
    assert_eq!(SEEN.lock().unwrap().len(), 1);
}

// =============================================================================================
// Polly: AdvancedCircuitBreakerSpecs and CircuitBreakerSpecs.
// `failureThreshold`, `samplingDuration`, `minimumThroughput` are our `failure_rate`,
// `window`, `min_calls`; `Reset()` and `Isolate()` are `reset()` and `force_open()`.
// =============================================================================================

/// "Should open circuit if failures at end of last timeslice and failures in beginning of new
/// timeslice where total equals failure threshold": the time window rolls (ten buckets), so
/// calls late in one window length and early in the next add up. At 11 s the window is
/// [2 s, 12 s): the success at 0 s is out, the two calls at 6.5 s are in.
#[tokio::test(start_paused = true)]
async fn polly_a_rolling_time_window_spans_two_sampling_periods() {
    const NAME: &str = "conf.polly_straddle";
    #[circuit_breaker(
        name = "conf.polly_straddle",
        failure_rate = 0.5,
        window = "10s",
        min_calls = 4
    )]
    async fn service(fail: bool) -> Result<(), E> {
        if fail { Err(E::Down) } else { Ok(()) }
    }

    // The first call creates the breaker at 0 s: its 1 s buckets start there.
    assert_eq!(service(false).await, Ok(()));
    advance(ms(6_500)).await;
    assert_eq!(service(false).await, Ok(()));
    assert_eq!(service(true).await, Err(E::Down));
    let h = breaker(NAME);
    assert_eq!((h.metrics().calls, h.metrics().failures), (3, 1));
    advance(ms(4_500)).await; // t = 11 s
    assert_eq!((h.metrics().calls, h.metrics().failures), (2, 1));
    // With the success at 0 s still counted, [S, S, F, F] would open here.
    assert_eq!(service(true).await, Err(E::Down));
    let m = h.metrics();
    assert_eq!(
        (m.state, m.calls, m.failures, m.failure_rate),
        (CircuitState::Closed, 3, 2, None)
    );
    // A tumbling window restarted at 10 s would hold 2 calls here, below min_calls.
    assert_eq!(service(false).await, Ok(()));
    assert_eq!(h.state(), CircuitState::Open);
}

/// `AdvancedCircuitBreakerSpecs` after a long quiet spell: outcomes from windows long past are
/// forgotten, even when the ring of ten buckets has wrapped onto their slots (29.7 s falls in
/// the slot of 9.5 s, and 20.5 s in the slot of 0.5 s).
#[tokio::test(start_paused = true)]
async fn polly_outcomes_from_windows_long_past_are_forgotten() {
    const NAME: &str = "conf.polly_long_quiet";
    #[circuit_breaker(
        name = "conf.polly_long_quiet",
        failure_rate = 1.0,
        window = "10s",
        min_calls = 2
    )]
    async fn service(fail: bool) -> Result<(), E> {
        if fail { Err(E::Down) } else { Ok(()) }
    }

    assert_eq!(service(false).await, Ok(())); // creates the breaker at 0 s
    advance(ms(500)).await;
    assert_eq!(service(true).await, Err(E::Down));
    advance(secs(9)).await; // 9.5 s
    assert_eq!(service(false).await, Ok(()));
    let h = breaker(NAME);
    assert_eq!((h.metrics().calls, h.metrics().failures), (3, 1));
    advance(ms(20_200)).await; // 29.7 s
    assert_eq!((h.metrics().calls, h.metrics().failures), (0, 0));
    assert_eq!(service(true).await, Err(E::Down));
    let m = h.metrics();
    assert_eq!(
        (m.state, m.calls, m.failures, m.failure_rate),
        (CircuitState::Closed, 1, 1, None)
    );
    assert_eq!(service(true).await, Err(E::Down));
    assert_eq!(h.state(), CircuitState::Open);
}

/// `CircuitBreakerSpecs` / `AdvancedCircuitBreakerSpecs`: "Should open circuit again after the
/// specified duration has passed if the next call raises an exception" needs a full trip
/// again after a close: the failures recorded before the break are gone, for the
/// count-in-window rule and for the rate-over-time rule alike.
#[tokio::test(start_paused = true)]
async fn polly_after_a_break_closes_earlier_failures_no_longer_count() {
    const COUNT: &str = "conf.polly_count_after_break";
    const RATE: &str = "conf.polly_rate_after_break";
    #[circuit_breaker(
        name = "conf.polly_count_after_break",
        threshold = 3,
        window = "10s",
        cooldown = "1s"
    )]
    async fn counted(fail: bool) -> Result<(), E> {
        if fail { Err(E::Down) } else { Ok(()) }
    }
    #[circuit_breaker(
        name = "conf.polly_rate_after_break",
        failure_rate = 0.5,
        window = "10s",
        min_calls = 2,
        cooldown = "1s"
    )]
    async fn rated(fail: bool) -> Result<(), E> {
        if fail { Err(E::Down) } else { Ok(()) }
    }

    for _ in 0..3 {
        assert_eq!(counted(true).await, Err(E::Down));
    }
    assert_eq!(rated(true).await, Err(E::Down));
    assert_eq!(rated(true).await, Err(E::Down));
    let (c, r) = (breaker(COUNT), breaker(RATE));
    assert_eq!(
        (c.state(), r.state()),
        (CircuitState::Open, CircuitState::Open)
    );
    advance(secs(1)).await;
    assert_eq!(counted(false).await, Ok(()));
    assert_eq!(rated(false).await, Ok(()));
    assert_eq!(
        (c.state(), r.state()),
        (CircuitState::Closed, CircuitState::Closed)
    );

    // Count rule: two failures within the window stay below 3.
    assert_eq!(counted(true).await, Err(E::Down));
    assert_eq!(counted(true).await, Err(E::Down));
    assert_eq!(c.state(), CircuitState::Closed);
    assert_eq!(counted(true).await, Err(E::Down));
    assert_eq!(c.state(), CircuitState::Open);

    // Rate rule: one success and then one failure are 0.5 of 2 calls; before that, one
    // success alone is below min_calls (with the old failures it would have been 2/3).
    assert_eq!(rated(false).await, Ok(()));
    let m = r.metrics();
    assert_eq!(
        (m.state, m.calls, m.failures, m.failure_rate),
        (CircuitState::Closed, 1, 0, None)
    );
    assert_eq!(rated(true).await, Err(E::Down));
    assert_eq!(r.state(), CircuitState::Open);
}

/// Polly's "low resolution" sampling durations. Polly uses a single tumbling window when the
/// sampling duration is too short to split; DESIGN.md always uses ten buckets of
/// `window / 10`, so a 55 ms window has 5.5 ms buckets: exact, not truncated to whole
/// milliseconds (which would drop the first bucket at 50 ms instead of 55 ms).
#[tokio::test(start_paused = true)]
async fn polly_a_short_sampling_duration_still_has_ten_exact_buckets() {
    #[circuit_breaker(
        name = "conf.polly_short_kept",
        failure_rate = 1.0,
        window = "55ms",
        min_calls = 2
    )]
    async fn kept(fail: bool) -> Result<(), E> {
        if fail { Err(E::Down) } else { Ok(()) }
    }
    #[circuit_breaker(
        name = "conf.polly_short_dropped",
        failure_rate = 1.0,
        window = "55ms",
        min_calls = 2
    )]
    async fn dropped(fail: bool) -> Result<(), E> {
        if fail { Err(E::Down) } else { Ok(()) }
    }

    // Both created at 0 ms; their first bucket is [0, 5.5 ms).
    assert_eq!(kept(true).await, Err(E::Down));
    assert_eq!(dropped(true).await, Err(E::Down));
    advance(ms(54)).await; // in bucket 9 of 10: bucket 0 is still in the window
    assert_eq!(breaker("conf.polly_short_kept").metrics().calls, 1);
    assert_eq!(kept(true).await, Err(E::Down));
    assert_eq!(breaker("conf.polly_short_kept").state(), CircuitState::Open);
    advance(ms(1)).await; // 55 ms: bucket 0 has left the window
    let h = breaker("conf.polly_short_dropped");
    assert_eq!(h.metrics().calls, 0);
    assert_eq!(dropped(true).await, Err(E::Down));
    let m = h.metrics();
    assert_eq!((m.state, m.calls, m.failures), (CircuitState::Closed, 1, 1));
}

/// "Should be able to reset automatically opened circuit without specified duration passing":
/// `reset()` closes an open breaker at once, with an empty window, and the next opening gets a
/// full cooldown of its own.
#[tokio::test(start_paused = true)]
async fn polly_reset_closes_an_automatically_opened_breaker_at_once() {
    const NAME: &str = "conf.polly_reset_auto";
    static RUNS: AtomicU32 = AtomicU32::new(0);
    #[circuit_breaker(name = "conf.polly_reset_auto", threshold = 2, cooldown = "30s")]
    async fn service(fail: bool) -> Result<(), E> {
        RUNS.fetch_add(1, SeqCst);
        if fail { Err(E::Down) } else { Ok(()) }
    }

    assert_eq!(service(true).await, Err(E::Down));
    assert_eq!(service(true).await, Err(E::Down));
    assert_eq!(service(false).await, Err(open(NAME, Some(secs(30)))));
    advance(secs(1)).await;
    let h = breaker(NAME);
    h.reset();
    assert_eq!(h.state(), CircuitState::Closed);
    assert_eq!(h.metrics().failures, 0);
    assert_eq!(service(false).await, Ok(()));
    assert_eq!(RUNS.load(SeqCst), 3);
    assert_eq!(service(true).await, Err(E::Down));
    assert_eq!(
        h.state(),
        CircuitState::Closed,
        "two failures are needed again"
    );
    advance(secs(10)).await;
    assert_eq!(service(true).await, Err(E::Down));
    assert_eq!(h.state(), CircuitState::Open);
    assert_eq!(service(false).await, Err(open(NAME, Some(secs(30)))));
}

/// `Isolate()` while a half-open trial is in flight: the trial belongs to the cycle it was
/// admitted in (DESIGN.md section 4.1, generation guard), so its success does not close the
/// forced-open breaker, however long it stays forced open.
#[tokio::test(start_paused = true)]
async fn polly_isolating_during_a_trial_holds_the_breaker_open() {
    const NAME: &str = "conf.polly_isolate_trial";
    static RUNS: AtomicU32 = AtomicU32::new(0);
    #[circuit_breaker(name = "conf.polly_isolate_trial", threshold = 1, cooldown = "1s")]
    async fn service(outcome: Outcome) -> Result<(), E> {
        gated(&RUNS, outcome).await
    }

    assert_eq!(service(decided(Err(E::Down))).await, Err(E::Down));
    advance(secs(1)).await;
    let (tx, rx) = oneshot::channel();
    let trial = tokio::spawn(service(rx));
    settle().await;
    assert_eq!(RUNS.load(SeqCst), 2);
    let h = breaker(NAME);
    h.force_open();
    assert_eq!(h.state(), CircuitState::ForcedOpen);
    tx.send(Ok(())).unwrap();
    assert_eq!(trial.await.unwrap(), Ok(()));
    assert_eq!(h.state(), CircuitState::ForcedOpen);
    advance(secs(3_600)).await;
    assert_eq!(service(decided(Ok(()))).await, Err(open(NAME, None)));
    assert_eq!(RUNS.load(SeqCst), 2);
    h.reset();
    assert_eq!(service(decided(Ok(()))).await, Ok(()));
    assert_eq!(h.state(), CircuitState::Closed);
}

/// `Reset()` while a half-open trial is in flight: the trial's late failure belongs to the
/// half-open cycle, so it neither reopens the freshly reset breaker nor enters its window.
#[tokio::test(start_paused = true)]
async fn polly_a_trial_failing_after_reset_does_not_reopen() {
    const NAME: &str = "conf.polly_reset_trial";
    static RUNS: AtomicU32 = AtomicU32::new(0);
    #[circuit_breaker(name = "conf.polly_reset_trial", threshold = 1, cooldown = "1s")]
    async fn service(outcome: Outcome) -> Result<(), E> {
        gated(&RUNS, outcome).await
    }

    assert_eq!(service(decided(Err(E::Down))).await, Err(E::Down));
    advance(secs(1)).await;
    let (tx, rx) = oneshot::channel();
    let trial = tokio::spawn(service(rx));
    settle().await;
    let h = breaker(NAME);
    assert_eq!(h.state(), CircuitState::HalfOpen);
    h.reset();
    assert_eq!(h.state(), CircuitState::Closed);
    tx.send(Err(E::Down)).unwrap();
    assert_eq!(trial.await.unwrap(), Err(E::Down));
    assert_eq!(h.state(), CircuitState::Closed);
    assert_eq!(h.metrics().failures, 0);
    // The reset breaker works normally: one failure of its own opens it.
    assert_eq!(service(decided(Err(E::Down))).await, Err(E::Down));
    assert_eq!(h.state(), CircuitState::Open);
    assert_eq!(RUNS.load(SeqCst), 3);
}

/// "Should open circuit again after the specified duration has passed if the next call raises
/// an exception", with a slow trial: the new open period starts when the trial fails, not
/// when it was admitted, and lasts a full cooldown.
#[tokio::test(start_paused = true)]
async fn polly_a_slow_failed_trial_starts_a_full_cooldown_when_it_fails() {
    const NAME: &str = "conf.polly_slow_trial";
    static RUNS: AtomicU32 = AtomicU32::new(0);
    #[circuit_breaker(name = "conf.polly_slow_trial", threshold = 1, cooldown = "1s")]
    async fn service(outcome: Outcome) -> Result<(), E> {
        gated(&RUNS, outcome).await
    }

    assert_eq!(service(decided(Err(E::Down))).await, Err(E::Down));
    advance(ms(1_500)).await;
    let (tx, rx) = oneshot::channel();
    let trial = tokio::spawn(service(rx));
    settle().await;
    assert_eq!(RUNS.load(SeqCst), 2);
    advance(ms(200)).await; // t = 1.7 s
    tx.send(Err(E::Down)).unwrap();
    assert_eq!(trial.await.unwrap(), Err(E::Down));
    let h = breaker(NAME);
    assert_eq!(h.state(), CircuitState::Open);
    assert_eq!(
        service(decided(Ok(()))).await,
        Err(open(NAME, Some(secs(1))))
    );
    advance(ms(999)).await;
    assert_eq!(service(decided(Ok(()))).await, Err(open(NAME, Some(ms(1)))));
    advance(ms(1)).await;
    assert_eq!(h.state(), CircuitState::HalfOpen);
    assert_eq!(service(decided(Ok(()))).await, Ok(()));
    assert_eq!(h.state(), CircuitState::Closed);
    assert_eq!(RUNS.load(SeqCst), 3);
}

/// "Should be able to handle a duration of TimeSpan.MaxValue", within tokio's range: a
/// break of 100 000 hours (over 11 years) neither overflows nor wraps to a short one.
#[tokio::test(start_paused = true)]
async fn polly_a_very_long_cooldown_neither_overflows_nor_shortens() {
    const NAME: &str = "conf.polly_long_cooldown";
    const HOURS: u64 = 100_000;
    #[circuit_breaker(name = "conf.polly_long_cooldown", threshold = 1, cooldown = "100000h")]
    async fn service(fail: bool) -> Result<(), E> {
        if fail { Err(E::Down) } else { Ok(()) }
    }

    let hour = secs(3_600);
    assert_eq!(service(true).await, Err(E::Down));
    assert_eq!(service(false).await, Err(open(NAME, Some(hour * 100_000))));
    advance(hour * u32::try_from(HOURS - 1).unwrap()).await;
    let h = breaker(NAME);
    assert_eq!(h.state(), CircuitState::Open);
    assert_eq!(service(false).await, Err(open(NAME, Some(hour))));
    advance(hour).await;
    assert_eq!(h.state(), CircuitState::HalfOpen);
    assert_eq!(service(false).await, Ok(()));
    assert_eq!(h.state(), CircuitState::Closed);
}

// =============================================================================================
// Polly: TimeoutSpecs, BulkheadSpecs, RetrySpecs, FallbackSpecs.
// =============================================================================================

/// `TimeoutSpecs`: the deadline belongs to each execution, from its own start; concurrent
/// calls do not share one.
#[tokio::test(start_paused = true)]
async fn polly_each_call_gets_its_own_deadline() {
    const NAME: &str = "conf.polly_own_deadline";
    #[timeout("200ms", name = "conf.polly_own_deadline")]
    async fn service(hold: Duration) -> Result<(), E> {
        sleep(hold).await;
        Ok(())
    }
    async fn timed(hold: Duration, origin: Instant) -> (Result<(), E>, Duration) {
        let out = service(hold).await;
        (out, origin.elapsed())
    }

    let origin = Instant::now();
    let a = tokio::spawn(timed(ms(300), origin));
    sleep(ms(150)).await;
    let b = tokio::spawn(timed(ms(180), origin));
    sleep(ms(100)).await;
    let c = tokio::spawn(timed(ms(150), origin));
    assert_eq!(a.await.unwrap(), (Err(timed_out(NAME, ms(200))), ms(200)));
    assert_eq!(b.await.unwrap(), (Ok(()), ms(330)));
    assert_eq!(c.await.unwrap(), (Ok(()), ms(400)));
}

/// `TimeoutSpecs` with the shortest timeout there is: a body that completes without the clock
/// moving returns its result, whether it finishes in its first poll or after yielding.
#[tokio::test(start_paused = true)]
async fn polly_a_body_that_takes_no_time_beats_even_a_one_nanosecond_timeout() {
    #[timeout("1ns", name = "conf.polly_one_nanosecond")]
    async fn service(yields: u32) -> Result<u32, E> {
        for _ in 0..yields {
            tokio::task::yield_now().await;
        }
        Ok(yields)
    }

    let start = Instant::now();
    assert_eq!(service(0).await, Ok(0));
    assert_eq!(service(3).await, Ok(3));
    assert_eq!(start.elapsed(), ms(0));
}

/// `BulkheadSpecs.Should_control_executions_per_specification`, one row: pool 2, queue 3,
/// 7 callers: 2 run, 3 wait, 2 are rejected at once. Each completion hands its permit to
/// exactly one waiter, first in first out, until the queue is empty.
#[tokio::test(start_paused = true)]
async fn polly_bulkhead_controls_executions_per_specification() {
    const POOL: &str = "conf.polly_bulkhead_spec";
    static STARTED: AtomicU32 = AtomicU32::new(0);
    #[bulkhead(pool = 2, queue = 3, name = "conf.polly_bulkhead_spec")]
    async fn action(outcome: Outcome) -> Result<(), E> {
        gated(&STARTED, outcome).await
    }

    let mut calls = Vec::new();
    for _ in 0..7 {
        let (tx, rx) = oneshot::channel();
        calls.push((tokio::spawn(action(rx)), tx));
        settle().await;
    }
    let h = bulkhead_of(POOL);
    assert_eq!(counts(h), (2, 3, 0));
    assert_eq!(STARTED.load(SeqCst), 2);
    for (task, _) in calls.drain(5..) {
        assert!(task.is_finished());
        assert_eq!(task.await.unwrap(), Err(full(POOL)));
    }
    // Completing the calls in admission order: [started, (in_flight, queued, available)].
    let expected = [
        (3, (2, 2, 0)),
        (4, (2, 1, 0)),
        (5, (2, 0, 0)),
        (5, (1, 0, 1)),
        (5, (0, 0, 2)),
    ];
    for ((task, tx), (started, after)) in calls.into_iter().zip(expected) {
        tx.send(Ok(())).unwrap();
        assert_eq!(task.await.unwrap(), Ok(()));
        settle().await;
        assert_eq!((STARTED.load(SeqCst), counts(h)), (started, after));
    }
}

/// `BulkheadSpecs` with queued actions that time out: a waiter that gives up after `max_wait`
/// frees its place at once, and the permit goes to the next waiter in arrival order.
#[tokio::test(start_paused = true)]
async fn polly_a_waiter_that_gave_up_lets_the_next_one_in() {
    const POOL: &str = "conf.polly_gave_up";
    #[bulkhead(pool = 1, queue = 2, max_wait = "50ms", name = "conf.polly_gave_up")]
    async fn action(hold: Duration, origin: Instant) -> Result<Duration, E> {
        let started = origin.elapsed();
        sleep(hold).await;
        Ok(started)
    }

    let origin = Instant::now();
    let holder = tokio::spawn(action(ms(60), origin));
    settle().await;
    let first = tokio::spawn(action(ms(1), origin));
    settle().await;
    sleep(ms(30)).await;
    let second = tokio::spawn(action(ms(1), origin));
    settle().await;
    let h = bulkhead_of(POOL);
    assert_eq!(counts(h), (1, 2, 0));
    sleep(ms(25)).await; // t = 55 ms: the first waiter gave up at 50 ms
    assert!(first.is_finished());
    assert_eq!(first.await.unwrap(), Err(full(POOL)));
    assert_eq!(counts(h), (1, 1, 0));
    let third = tokio::spawn(action(ms(1), origin));
    settle().await;
    assert_eq!(counts(h), (1, 2, 0), "the freed place was taken");

    assert_eq!(holder.await.unwrap(), Ok(ms(0)));
    assert_eq!(second.await.unwrap(), Ok(ms(60)));
    assert_eq!(third.await.unwrap(), Ok(ms(61)));
    assert_eq!(counts(h), (0, 0, 1));
}

/// `BulkheadSpecs` ordering (and MP's FIFO queue): when a running call ends, its permit goes to
/// the waiter at the front even before that waiter is polled again; a caller arriving in
/// between joins the queue behind it instead of taking the permit.
#[tokio::test(start_paused = true)]
async fn polly_a_newcomer_never_overtakes_the_waiter_handed_the_permit() {
    const POOL: &str = "conf.polly_no_barging";
    static ORDER: Mutex<Vec<&str>> = Mutex::new(Vec::new());
    #[bulkhead(pool = 1, queue = 1, name = "conf.polly_no_barging")]
    async fn action(label: &'static str, outcome: Outcome) -> Result<&'static str, E> {
        ORDER.lock().unwrap().push(label);
        outcome.await.expect("the test decides").map(|()| label)
    }

    let (finish_a, rx) = oneshot::channel();
    let mut a = pin!(action("a", rx));
    assert!(futures::poll!(a.as_mut()).is_pending());
    let mut b = pin!(action("b", decided(Ok(()))));
    assert!(futures::poll!(b.as_mut()).is_pending());
    let h = bulkhead_of(POOL);
    assert_eq!(counts(h), (1, 1, 0));

    finish_a.send(Ok(())).unwrap();
    assert_eq!(a.await, Ok("a"));
    // B holds the permit now, though it has not run yet; C must queue behind it.
    assert_eq!(counts(h), (1, 0, 0));
    let mut c = pin!(action("c", decided(Ok(()))));
    assert!(futures::poll!(c.as_mut()).is_pending());
    assert_eq!(counts(h), (1, 1, 0));
    assert_eq!(*ORDER.lock().unwrap(), ["a"]);
    assert_eq!(b.await, Ok("b"));
    assert_eq!(c.await, Ok("c"));
    assert_eq!(*ORDER.lock().unwrap(), ["a", "b", "c"]);
    assert_eq!(counts(h), (0, 0, 1));
}

/// `RetrySpecs.Should_create_new_state_for_each_call_to_policy`: every call gets the full
/// number of attempts and its own backoff schedule, concurrent calls included.
#[tokio::test(start_paused = true)]
async fn polly_each_call_gets_its_own_attempts() {
    static TOTAL: AtomicU32 = AtomicU32::new(0);
    #[retry(
        attempts = 3,
        backoff = "10ms",
        strategy = "constant",
        jitter = "none",
        name = "conf.polly_fresh_state"
    )]
    async fn service(attempts: &AtomicU32, succeed_at: u32) -> Result<u32, E> {
        TOTAL.fetch_add(1, SeqCst);
        let n = attempts.fetch_add(1, SeqCst) + 1;
        if n >= succeed_at { Ok(n) } else { Err(E::Down) }
    }

    let (a, b) = (AtomicU32::new(0), AtomicU32::new(0));
    let start = Instant::now();
    let (ra, rb) = tokio::join!(service(&a, u32::MAX), service(&b, u32::MAX));
    assert_eq!((ra, rb), (Err(E::Down), Err(E::Down)));
    assert_eq!((a.load(SeqCst), b.load(SeqCst)), (3, 3));
    assert_eq!(start.elapsed(), ms(20));
    let c = AtomicU32::new(0);
    assert_eq!(
        service(&c, 3).await,
        Ok(3),
        "a new call starts from attempt 1"
    );
    assert_eq!(TOTAL.load(SeqCst), 9);
}

fn down_or_not_found(e: &E) -> bool {
    matches!(e, E::Down | E::NotFound)
}

/// `FallbackSpecs`: "Should not handle exception thrown by fallback delegate even if is
/// exception handled by policy": the handler's own error goes to the caller, and the handler
/// runs once.
#[tokio::test(start_paused = true)]
async fn polly_the_fallback_does_not_handle_its_own_error() {
    static HANDLED: Mutex<Vec<E>> = Mutex::new(Vec::new());
    async fn failing_handler(err: E) -> Result<u32, E> {
        HANDLED.lock().unwrap().push(err);
        Err(E::NotFound)
    }
    #[fallback(
        failing_handler,
        args = (),
        on = down_or_not_found,
        name = "conf.polly_fallback_own_error"
    )]
    async fn service() -> Result<u32, E> {
        Err(E::Down)
    }

    assert_eq!(service().await, Err(E::NotFound));
    assert_eq!(*HANDLED.lock().unwrap(), [E::Down]);
}

// =============================================================================================
// Polly: PolicyWrapSpecs.
// =============================================================================================

/// The recommended order (fallback > retry > breaker > timeout > bulkhead) around a hanging
/// dependency: per-attempt timeouts are breaker failures, the breaker opens inside the retry,
/// the retry stops at the rejection, and the fallback answers; while open, callers get the
/// fallback at once; after the cooldown one trial closes the breaker. No permit is held.
#[tokio::test(start_paused = true)]
async fn polly_the_recommended_stack_degrades_a_hanging_dependency() {
    const NAME: &str = "conf.polly_wrap_breaker";
    static RUNS: AtomicU32 = AtomicU32::new(0);
    static SEEN: Mutex<Vec<E>> = Mutex::new(Vec::new());
    async fn cached(err: E) -> Result<&'static str, E> {
        SEEN.lock().unwrap().push(err);
        Ok("cached")
    }
    #[fallback(cached, args = (), name = "conf.polly_wrap_fallback")]
    #[retry(
        attempts = 3,
        backoff = "50ms",
        strategy = "constant",
        jitter = "none",
        name = "conf.polly_wrap_retry"
    )]
    #[circuit_breaker(threshold = 2, cooldown = "1s", name = "conf.polly_wrap_breaker")]
    #[timeout("100ms", name = "conf.polly_wrap_timeout")]
    #[bulkhead(pool = 1, name = "conf.polly_wrap_pool")]
    async fn recommendations(hang: bool) -> Result<&'static str, E> {
        RUNS.fetch_add(1, SeqCst);
        if hang {
            sleep(secs(10)).await;
        }
        Ok("fresh")
    }

    let start = Instant::now();
    // Attempts at 0 and 150 ms time out at 100 and 250 ms (opening the breaker); the third,
    // at 300 ms, is rejected with 950 ms left.
    assert_eq!(recommendations(true).await, Ok("cached"));
    assert_eq!(start.elapsed(), ms(300));
    assert_eq!(RUNS.load(SeqCst), 2);
    assert_eq!(*SEEN.lock().unwrap(), [open(NAME, Some(ms(950)))]);
    let pool = bulkhead_of("conf.polly_wrap_pool");
    assert_eq!(counts(pool), (0, 0, 1));

    assert_eq!(recommendations(false).await, Ok("cached"));
    assert_eq!(start.elapsed(), ms(300));
    assert_eq!(RUNS.load(SeqCst), 2);

    advance(ms(950)).await;
    assert_eq!(recommendations(false).await, Ok("fresh"));
    assert_eq!(breaker(NAME).state(), CircuitState::Closed);
    assert_eq!(RUNS.load(SeqCst), 3);
    assert_eq!(SEEN.lock().unwrap().len(), 2);
    assert_eq!(counts(pool), (0, 0, 1));
}

/// `PolicyWrapSpecs` with the timeout outermost: the deadline bounds the primary call and the
/// fallback handler together. A slow handler is cut at the deadline; a quick one answers.
#[tokio::test(start_paused = true)]
async fn polly_a_timeout_outside_a_fallback_also_bounds_the_handler() {
    const NAME: &str = "conf.polly_timeout_over_fallback";
    static HANDLER_STARTS: Mutex<Vec<Duration>> = Mutex::new(Vec::new());
    async fn slow_cache(handler_delay: Duration, origin: Instant, _err: E) -> Result<u32, E> {
        HANDLER_STARTS.lock().unwrap().push(origin.elapsed());
        sleep(handler_delay).await;
        Ok(0)
    }
    #[timeout("100ms", name = "conf.polly_timeout_over_fallback")]
    #[fallback(slow_cache, name = "conf.polly_timeout_over_fallback_fb")]
    async fn service(handler_delay: Duration, origin: Instant) -> Result<u32, E> {
        let _ = (handler_delay, origin);
        sleep(ms(30)).await;
        Err(E::Down)
    }

    let origin = Instant::now();
    assert_eq!(
        service(ms(100), origin).await,
        Err(timed_out(NAME, ms(100)))
    );
    assert_eq!(origin.elapsed(), ms(100));
    let origin = Instant::now();
    assert_eq!(service(ms(10), origin).await, Ok(0));
    assert_eq!(origin.elapsed(), ms(40));
    assert_eq!(*HANDLER_STARTS.lock().unwrap(), [ms(30), ms(30)]);
}
