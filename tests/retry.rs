//! Behaviour of `#[retry]` (DESIGN.md section 4.4) on tokio's paused clock: attempt counts,
//! exact delays, jitter bounds, `max_duration`, `when`, inner rejections, argument rebinding
//! and cancellation.
//!
//! Every policy here has its own `name`: policy state is process-global and tests run in
//! parallel. Delays are read off the paused clock as the time between attempt starts; the
//! bodies take no time unless they sleep.

mod common;
use common::ms;
use std::pin::pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use resilient::{Error, bulkhead, circuit_breaker, retry, timeout};
use tokio::time::{Instant, sleep};

#[derive(Debug, Clone, PartialEq)]
enum E {
    /// The body's own error, carrying the attempt that produced it.
    Attempt(u32),
    Fatal,
    Res(Error),
}

impl From<Error> for E {
    fn from(e: Error) -> Self {
        E::Res(e)
    }
}

/// Records when each attempt starts, relative to the test's origin.
struct Recorder {
    origin: Instant,
    starts: Mutex<Vec<Duration>>,
}

impl Recorder {
    fn new() -> Self {
        Recorder {
            origin: Instant::now(),
            starts: Mutex::new(Vec::new()),
        }
    }

    /// Records an attempt; returns its number (1 for the first).
    fn attempt(&self) -> u32 {
        let mut starts = self.starts.lock().unwrap();
        starts.push(self.origin.elapsed());
        u32::try_from(starts.len()).unwrap()
    }

    fn starts(&self) -> Vec<Duration> {
        self.starts.lock().unwrap().clone()
    }

    fn attempts(&self) -> usize {
        self.starts.lock().unwrap().len()
    }

    /// The delays between consecutive attempt starts.
    fn delays(&self) -> Vec<Duration> {
        self.starts()
            .windows(2)
            .map(|w| w[1].checked_sub(w[0]).expect("attempts start in order"))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// `attempts = n`: at most n runs in total, the first included; the last error is returned
// unchanged; a success stops the retry.

#[retry(
    attempts = 4,
    backoff = "10ms",
    jitter = "none",
    name = "retry.attempts"
)]
async fn always_fails(rec: &Recorder) -> Result<u32, E> {
    Err(E::Attempt(rec.attempt()))
}

#[tokio::test(start_paused = true)]
async fn attempts_counts_the_first_call_and_the_last_error_is_returned() {
    let rec = Recorder::new();
    assert_eq!(always_fails(&rec).await, Err(E::Attempt(4)));
    assert_eq!(rec.attempts(), 4);
}

#[retry(attempts = 1, backoff = "10ms", name = "retry.once")]
async fn once(rec: &Recorder) -> Result<u32, E> {
    Err(E::Attempt(rec.attempt()))
}

#[tokio::test(start_paused = true)]
async fn one_attempt_means_no_retry() {
    let rec = Recorder::new();
    assert_eq!(once(&rec).await, Err(E::Attempt(1)));
    assert_eq!(rec.attempts(), 1);
    assert_eq!(rec.origin.elapsed(), ms(0));
}

#[retry(
    attempts = 5,
    backoff = "10ms",
    jitter = "none",
    name = "retry.succeeds"
)]
async fn third_time_lucky(rec: &Recorder) -> Result<u32, E> {
    match rec.attempt() {
        n @ 1..=2 => Err(E::Attempt(n)),
        n => Ok(n),
    }
}

#[tokio::test(start_paused = true)]
async fn a_success_stops_the_retry() {
    let rec = Recorder::new();
    assert_eq!(third_time_lucky(&rec).await, Ok(3));
    assert_eq!(rec.attempts(), 3);
    assert_eq!(rec.starts(), [ms(0), ms(10), ms(30)]);
}

#[retry(name = "retry.defaults")]
async fn defaults(rec: &Recorder) -> Result<u32, E> {
    Err(E::Attempt(rec.attempt()))
}

#[tokio::test(start_paused = true)]
async fn defaults_are_three_attempts_exponential_from_100ms_with_full_jitter() {
    let rec = Recorder::new();
    assert_eq!(defaults(&rec).await, Err(E::Attempt(3)));
    let delays = rec.delays();
    assert_eq!(delays.len(), 2);
    assert!(delays[0] <= ms(100), "{delays:?}");
    assert!(delays[1] <= ms(200), "{delays:?}");
}

// ---------------------------------------------------------------------------------------------
// Exact delays with `jitter = "none"`.

#[retry(
    attempts = 5,
    backoff = "100ms",
    strategy = "exponential",
    jitter = "none",
    name = "retry.exponential"
)]
async fn exponential(rec: &Recorder) -> Result<u32, E> {
    Err(E::Attempt(rec.attempt()))
}

#[retry(
    attempts = 4,
    backoff = "100ms",
    multiplier = 1.5,
    jitter = "none",
    name = "retry.multiplier"
)]
async fn exponential_by_one_and_a_half(rec: &Recorder) -> Result<u32, E> {
    Err(E::Attempt(rec.attempt()))
}

#[retry(
    attempts = 5,
    backoff = "100ms",
    strategy = "linear",
    jitter = "none",
    name = "retry.linear"
)]
async fn linear(rec: &Recorder) -> Result<u32, E> {
    Err(E::Attempt(rec.attempt()))
}

#[retry(
    attempts = 4,
    backoff = "100ms",
    strategy = "constant",
    jitter = "none",
    name = "retry.constant"
)]
async fn constant(rec: &Recorder) -> Result<u32, E> {
    Err(E::Attempt(rec.attempt()))
}

#[tokio::test(start_paused = true)]
async fn exponential_delays_are_exact() {
    let rec = Recorder::new();
    assert_eq!(exponential(&rec).await, Err(E::Attempt(5)));
    assert_eq!(rec.delays(), [100, 200, 400, 800].map(ms));
    assert_eq!(
        rec.origin.elapsed(),
        ms(1500),
        "no sleep after the last attempt"
    );

    let rec = Recorder::new();
    assert_eq!(
        exponential_by_one_and_a_half(&rec).await,
        Err(E::Attempt(4))
    );
    assert_eq!(rec.delays(), [100, 150, 225].map(ms));
}

#[tokio::test(start_paused = true)]
async fn linear_delays_are_exact() {
    let rec = Recorder::new();
    assert_eq!(linear(&rec).await, Err(E::Attempt(5)));
    assert_eq!(rec.delays(), [100, 200, 300, 400].map(ms));
    assert_eq!(rec.origin.elapsed(), ms(1000));
}

#[tokio::test(start_paused = true)]
async fn constant_delays_are_exact() {
    let rec = Recorder::new();
    assert_eq!(constant(&rec).await, Err(E::Attempt(4)));
    assert_eq!(rec.delays(), [100, 100, 100].map(ms));
    assert_eq!(rec.origin.elapsed(), ms(300));
}

#[retry(
    attempts = 6,
    backoff = "100ms",
    max_backoff = "250ms",
    jitter = "none",
    name = "retry.cap_exp"
)]
async fn capped_exponential(rec: &Recorder) -> Result<u32, E> {
    Err(E::Attempt(rec.attempt()))
}

#[retry(
    attempts = 5,
    backoff = "100ms",
    strategy = "linear",
    max_backoff = "250ms",
    jitter = "none",
    name = "retry.cap_lin"
)]
async fn capped_linear(rec: &Recorder) -> Result<u32, E> {
    Err(E::Attempt(rec.attempt()))
}

#[retry(
    attempts = 8,
    backoff = "1s",
    multiplier = 1000.0,
    max_backoff = "1h",
    jitter = "none",
    name = "retry.cap_huge"
)]
async fn capped_huge(rec: &Recorder) -> Result<u32, E> {
    Err(E::Attempt(rec.attempt()))
}

#[tokio::test(start_paused = true)]
async fn max_backoff_caps_every_delay_without_overflow() {
    let rec = Recorder::new();
    assert_eq!(capped_exponential(&rec).await, Err(E::Attempt(6)));
    assert_eq!(rec.delays(), [100, 200, 250, 250, 250].map(ms));

    let rec = Recorder::new();
    assert_eq!(capped_linear(&rec).await, Err(E::Attempt(5)));
    assert_eq!(rec.delays(), [100, 200, 250, 250].map(ms));

    // 1 s * 1000^(k-1) leaves f64's range of durations by k = 8: saturates at the cap.
    let rec = Recorder::new();
    assert_eq!(capped_huge(&rec).await, Err(E::Attempt(8)));
    let s = Duration::from_secs;
    assert_eq!(
        rec.delays(),
        [s(1), s(1000), s(3600), s(3600), s(3600), s(3600), s(3600)]
    );
}

// ---------------------------------------------------------------------------------------------
// Jitter, measured on the paused clock (timers round up to the millisecond, so every bound is
// a whole number of milliseconds).

#[retry(
    attempts = 40,
    backoff = "100ms",
    strategy = "constant",
    jitter = "full",
    name = "retry.full"
)]
async fn full_jitter(rec: &Recorder) -> Result<u32, E> {
    Err(E::Attempt(rec.attempt()))
}

#[retry(
    attempts = 40,
    backoff = "100ms",
    strategy = "constant",
    jitter = "equal",
    name = "retry.equal"
)]
async fn equal_jitter(rec: &Recorder) -> Result<u32, E> {
    Err(E::Attempt(rec.attempt()))
}

#[retry(
    attempts = 40,
    backoff = "10ms",
    max_backoff = "1s",
    jitter = "decorrelated",
    name = "retry.decorrelated"
)]
async fn decorrelated_jitter(rec: &Recorder) -> Result<u32, E> {
    Err(E::Attempt(rec.attempt()))
}

#[retry(
    attempts = 8,
    backoff = "8ms",
    jitter = "equal",
    name = "retry.no_compounding"
)]
async fn exponential_equal_jitter(rec: &Recorder) -> Result<u32, E> {
    Err(E::Attempt(rec.attempt()))
}

/// Jitter is random: a spread check over 39 delays fails with negligible probability unless
/// the jitter is missing.
fn assert_spread(delays: &[Duration]) {
    let first = delays[0];
    assert!(delays.iter().any(|d| *d != first), "no spread: {delays:?}");
}

#[tokio::test(start_paused = true)]
async fn full_jitter_draws_from_zero_to_the_delay() {
    let rec = Recorder::new();
    assert_eq!(full_jitter(&rec).await, Err(E::Attempt(40)));
    let delays = rec.delays();
    assert_eq!(delays.len(), 39);
    assert!(delays.iter().all(|d| *d <= ms(100)), "{delays:?}");
    assert!(delays.iter().any(|d| *d < ms(50)), "{delays:?}");
    assert_spread(&delays);
}

#[tokio::test(start_paused = true)]
async fn equal_jitter_draws_from_half_the_delay_to_the_delay() {
    let rec = Recorder::new();
    assert_eq!(equal_jitter(&rec).await, Err(E::Attempt(40)));
    let delays = rec.delays();
    assert!(
        delays.iter().all(|d| ms(50) <= *d && *d <= ms(100)),
        "{delays:?}"
    );
    assert_spread(&delays);
}

#[tokio::test(start_paused = true)]
async fn decorrelated_jitter_stays_within_backoff_and_three_times_the_previous_delay() {
    let rec = Recorder::new();
    assert_eq!(decorrelated_jitter(&rec).await, Err(E::Attempt(40)));
    let delays = rec.delays();
    // The first retry: U[backoff, 3 * backoff].
    assert!(ms(10) <= delays[0] && delays[0] <= ms(30), "{delays:?}");
    for w in delays.windows(2) {
        let high = (w[0] * 3).min(Duration::from_secs(1));
        assert!(
            ms(10) <= w[1] && w[1] <= high,
            "{:?} after {:?} in {delays:?}",
            w[1],
            w[0]
        );
    }
    assert_spread(&delays);
    // The growth is real: 39 draws never all stay near `backoff`.
    assert!(delays.iter().any(|d| *d > ms(30)), "{delays:?}");
}

#[tokio::test(start_paused = true)]
async fn jitter_applies_to_each_computed_delay_and_never_compounds() {
    for _ in 0..10 {
        let rec = Recorder::new();
        assert_eq!(exponential_equal_jitter(&rec).await, Err(E::Attempt(8)));
        let delays = rec.delays();
        for (k, d) in delays.iter().enumerate() {
            let base = ms(8) * 2u32.pow(u32::try_from(k).unwrap());
            assert!(
                base / 2 <= *d && *d <= base,
                "retry {}: {d:?} in {delays:?}",
                k + 1
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// `max_duration`: no attempt starts once that much time has passed since the first, and none
// whose delay would end past it.

#[retry(
    attempts = 10,
    backoff = "100ms",
    strategy = "constant",
    jitter = "none",
    max_duration = "350ms",
    name = "retry.max_duration"
)]
async fn bounded(rec: &Recorder) -> Result<u32, E> {
    Err(E::Attempt(rec.attempt()))
}

#[retry(
    attempts = 10,
    backoff = "100ms",
    strategy = "constant",
    jitter = "none",
    max_duration = "300ms",
    name = "retry.max_duration_edge"
)]
async fn bounded_edge(rec: &Recorder) -> Result<u32, E> {
    Err(E::Attempt(rec.attempt()))
}

#[retry(
    attempts = 10,
    backoff = "100ms",
    strategy = "constant",
    jitter = "none",
    max_duration = "400ms",
    name = "retry.max_duration_slow"
)]
async fn bounded_slow(rec: &Recorder) -> Result<u32, E> {
    let n = rec.attempt();
    sleep(ms(50)).await;
    Err(E::Attempt(n))
}

#[retry(
    attempts = 1000,
    backoff = "100ms",
    strategy = "constant",
    jitter = "full",
    max_duration = "100ms",
    name = "retry.max_duration_jitter"
)]
async fn bounded_jitter(rec: &Recorder) -> Result<u32, E> {
    Err(E::Attempt(rec.attempt()))
}

#[tokio::test(start_paused = true)]
async fn max_duration_stops_attempts_whose_delay_would_end_past_it() {
    let rec = Recorder::new();
    assert_eq!(bounded(&rec).await, Err(E::Attempt(4)));
    assert_eq!(rec.starts(), [0, 100, 200, 300].map(ms));
    // The fifth attempt would start at 400 ms: not waited for.
    assert_eq!(rec.origin.elapsed(), ms(300));
}

#[tokio::test(start_paused = true)]
async fn no_attempt_starts_once_max_duration_has_passed() {
    let rec = Recorder::new();
    assert_eq!(bounded_edge(&rec).await, Err(E::Attempt(3)));
    // An attempt at 300 ms would start when 300 ms have passed.
    assert_eq!(rec.starts(), [0, 100, 200].map(ms));
    assert_eq!(rec.origin.elapsed(), ms(200));
}

#[tokio::test(start_paused = true)]
async fn max_duration_counts_the_attempts_own_time() {
    let rec = Recorder::new();
    assert_eq!(bounded_slow(&rec).await, Err(E::Attempt(3)));
    assert_eq!(rec.starts(), [0, 150, 300].map(ms));
    assert_eq!(rec.origin.elapsed(), ms(350));
}

#[tokio::test(start_paused = true)]
async fn max_duration_holds_with_jittered_delays() {
    for _ in 0..5 {
        let rec = Recorder::new();
        let out = bounded_jitter(&rec).await;
        let n = rec.attempts();
        assert_eq!(out, Err(E::Attempt(u32::try_from(n).unwrap())));
        assert!(n < 1000, "max_duration stopped the retry");
        let starts = rec.starts();
        assert!(starts.iter().all(|s| *s < ms(100)), "{starts:?}");
        assert!(rec.origin.elapsed() <= ms(100));
    }
}

// ---------------------------------------------------------------------------------------------
// `when`: only errors it accepts are retried; it sees rejections converted to `E`.

fn is_transient(e: &E) -> bool {
    matches!(e, E::Attempt(_))
}

#[retry(attempts = 5, backoff = "10ms", jitter = "none", when = is_transient, name = "retry.when")]
async fn fails_then_fatal(rec: &Recorder, fatal_at: u32) -> Result<u32, E> {
    let n = rec.attempt();
    if n >= fatal_at {
        Err(E::Fatal)
    } else {
        Err(E::Attempt(n))
    }
}

#[tokio::test(start_paused = true)]
async fn when_decides_which_errors_are_retried() {
    let rec = Recorder::new();
    assert_eq!(fails_then_fatal(&rec, 3).await, Err(E::Fatal));
    assert_eq!(rec.attempts(), 3);

    let rec = Recorder::new();
    assert_eq!(fails_then_fatal(&rec, 1).await, Err(E::Fatal));
    assert_eq!(rec.attempts(), 1);
    assert_eq!(rec.origin.elapsed(), ms(0));

    let rec = Recorder::new();
    assert_eq!(fails_then_fatal(&rec, 99).await, Err(E::Attempt(5)));
    assert_eq!(rec.attempts(), 5);
}

fn not_a_timeout(e: &E) -> bool {
    !matches!(e, E::Res(err) if err.is_timeout())
}

#[retry(attempts = 3, backoff = "10ms", jitter = "none", when = not_a_timeout, name = "retry.when_rejection")]
#[timeout("50ms", name = "retry.when_rejection_timeout")]
async fn timeout_not_retried(rec: &Recorder) -> Result<u32, E> {
    rec.attempt();
    sleep(Duration::from_secs(1)).await;
    Ok(1)
}

#[tokio::test(start_paused = true)]
async fn when_sees_inner_rejections_converted() {
    let rec = Recorder::new();
    let out = timeout_not_retried(&rec).await;
    assert_eq!(
        out,
        Err(E::Res(Error::Timeout {
            name: "retry.when_rejection_timeout",
            after: ms(50),
        }))
    );
    assert_eq!(rec.attempts(), 1);
}

// ---------------------------------------------------------------------------------------------
// Inner rejections: `CircuitOpen` and `BulkheadFull` are never retried; `Timeout` is.

static WHEN_CALLS: AtomicU32 = AtomicU32::new(0);

fn counting_when(_: &E) -> bool {
    WHEN_CALLS.fetch_add(1, Ordering::SeqCst);
    true
}

#[retry(attempts = 5, backoff = "100ms", strategy = "constant", jitter = "none", when = counting_when, name = "retry.open")]
#[circuit_breaker(threshold = 1, cooldown = "5s", name = "retry.open_breaker")]
async fn behind_breaker(rec: &Recorder) -> Result<u32, E> {
    Err(E::Attempt(rec.attempt()))
}

#[tokio::test(start_paused = true)]
async fn circuit_open_is_never_retried() {
    let rec = Recorder::new();
    let out = behind_breaker(&rec).await;
    // Attempt 1 fails and opens the breaker; attempt 2, after the backoff, is rejected.
    assert_eq!(
        out,
        Err(E::Res(Error::CircuitOpen {
            name: "retry.open_breaker",
            retry_after: Some(ms(4900)),
        }))
    );
    assert_eq!(rec.attempts(), 1);
    assert_eq!(
        rec.origin.elapsed(),
        ms(100),
        "no backoff after the rejection"
    );
    assert_eq!(
        WHEN_CALLS.load(Ordering::SeqCst),
        1,
        "`when` is not asked about CircuitOpen"
    );
}

#[retry(attempts = 5, backoff = "100ms", name = "retry.full_bulkhead")]
#[bulkhead(pool = 1, name = "retry.full_bulkhead_pool")]
async fn behind_bulkhead(rec: &Recorder, gate: &tokio::sync::Mutex<()>) -> Result<u32, E> {
    let n = rec.attempt();
    let _open = gate.lock().await;
    Err(E::Attempt(n))
}

#[tokio::test(start_paused = true)]
async fn bulkhead_full_is_never_retried() {
    let holder_rec = Recorder::new();
    let gate = tokio::sync::Mutex::new(());
    let closed = gate.lock().await;
    let mut holder = Box::pin(behind_bulkhead(&holder_rec, &gate));
    assert!(futures::poll!(holder.as_mut()).is_pending());
    assert_eq!(holder_rec.attempts(), 1, "the holder has the only permit");

    let rec = Recorder::new();
    let out = behind_bulkhead(&rec, &gate).await;
    assert_eq!(
        out,
        Err(E::Res(Error::BulkheadFull {
            name: "retry.full_bulkhead_pool"
        }))
    );
    assert_eq!(rec.attempts(), 0);
    assert_eq!(rec.origin.elapsed(), ms(0), "returned at once, no backoff");
    drop(closed);
    drop(holder);
}

#[retry(
    attempts = 2,
    backoff = "100ms",
    jitter = "none",
    name = "retry.fresh_layers"
)]
#[bulkhead(pool = 1, name = "retry.fresh_layers_pool")]
async fn fresh_layers(rec: &Recorder) -> Result<u32, E> {
    Err(E::Attempt(rec.attempt()))
}

#[tokio::test(start_paused = true)]
async fn each_attempt_runs_the_inner_layers_afresh() {
    let rec = Recorder::new();
    let mut call = pin!(fresh_layers(&rec));
    assert!(futures::poll!(call.as_mut()).is_pending());
    assert_eq!(rec.attempts(), 1);
    // In the backoff: the inner bulkhead's permit is not held.
    let h = resilient::bulkhead("retry.fresh_layers_pool").expect("created by the call");
    assert_eq!((h.in_flight(), h.available()), (0, 1));
    assert_eq!(call.await, Err(E::Attempt(2)));
    assert_eq!(rec.starts(), [0, 100].map(ms));
    assert_eq!((h.in_flight(), h.available()), (0, 1));
}

#[retry(
    attempts = 3,
    backoff = "100ms",
    strategy = "constant",
    jitter = "none",
    name = "retry.inner_timeout"
)]
#[timeout("50ms", name = "retry.inner_timeout_t")]
async fn times_out(rec: &Recorder) -> Result<u32, E> {
    rec.attempt();
    sleep(Duration::from_secs(1)).await;
    Ok(1)
}

#[tokio::test(start_paused = true)]
async fn an_inner_timeout_is_retried() {
    let rec = Recorder::new();
    let out = times_out(&rec).await;
    assert_eq!(
        out,
        Err(E::Res(Error::Timeout {
            name: "retry.inner_timeout_t",
            after: ms(50),
        }))
    );
    assert_eq!(rec.starts(), [0, 150, 300].map(ms));
    assert_eq!(rec.origin.elapsed(), ms(350));
}

// ---------------------------------------------------------------------------------------------
// Each attempt runs afresh: owned arguments cloned per attempt, `&T` copied, `&mut T` and
// `&mut self` reborrowed, patterns destructured per attempt.

static CLONES: AtomicUsize = AtomicUsize::new(0);

/// Counts its clones.
#[derive(Debug)]
struct Counted(String);

impl Clone for Counted {
    fn clone(&self) -> Self {
        CLONES.fetch_add(1, Ordering::SeqCst);
        Counted(self.0.clone())
    }
}

#[retry(attempts = 3, backoff = "0s", name = "retry.clones")]
async fn consumes(arg: Counted, rec: &Recorder) -> Result<String, E> {
    let n = rec.attempt();
    // The body owns its copy: it may move it.
    let owned: String = arg.0;
    if n < 3 { Err(E::Attempt(n)) } else { Ok(owned) }
}

#[tokio::test(start_paused = true)]
async fn owned_arguments_are_cloned_once_per_attempt() {
    let rec = Recorder::new();
    let before = CLONES.load(Ordering::SeqCst);
    assert_eq!(
        consumes(Counted("x".into()), &rec).await,
        Ok("x".to_owned())
    );
    assert_eq!(rec.attempts(), 3);
    assert_eq!(
        CLONES.load(Ordering::SeqCst) - before,
        3,
        "one clone per attempt"
    );
}

#[retry(attempts = 3, backoff = "0s", name = "retry.mut_ref")]
async fn pushes(log: &mut Vec<u32>, (a, mut b): (u32, String)) -> Result<usize, E> {
    b.push('!');
    log.push(a);
    if log.len() < 3 {
        Err(E::Attempt(u32::try_from(log.len()).unwrap()))
    } else {
        Ok(b.len())
    }
}

#[tokio::test(start_paused = true)]
async fn mut_references_are_reborrowed_and_patterns_destructured_per_attempt() {
    let mut log = Vec::new();
    // Each attempt gets a fresh `b`: a body mutating its copy does not leak into the next.
    assert_eq!(pushes(&mut log, (7, "ab".into())).await, Ok(3));
    assert_eq!(log, [7, 7, 7]);
}

struct Client {
    calls: u32,
    log: Vec<String>,
}

impl Client {
    #[retry(
        attempts = 4,
        backoff = "10ms",
        jitter = "none",
        name = "retry.mut_self"
    )]
    async fn call(&mut self, tag: &str) -> Result<u32, E> {
        self.calls += 1;
        self.log.push(format!("{tag}{}", self.calls));
        if self.calls < 3 {
            Err(E::Attempt(self.calls))
        } else {
            Ok(self.calls)
        }
    }

    #[retry(
        attempts = 2,
        backoff = "10ms",
        jitter = "none",
        name = "retry.ref_self"
    )]
    async fn peek(&self, rec: &Recorder) -> Result<u32, E> {
        Err(E::Attempt(rec.attempt() + self.calls))
    }
}

#[tokio::test(start_paused = true)]
async fn methods_taking_mut_self_work_under_retry() {
    let mut client = Client {
        calls: 0,
        log: Vec::new(),
    };
    assert_eq!(client.call("t").await, Ok(3));
    assert_eq!(client.calls, 3);
    assert_eq!(client.log, ["t1", "t2", "t3"]);

    let rec = Recorder::new();
    assert_eq!(client.peek(&rec).await, Err(E::Attempt(5)));
    assert_eq!(rec.attempts(), 2);
}

// ---------------------------------------------------------------------------------------------
// Dropping the call during a backoff stops it.

#[retry(
    attempts = 5,
    backoff = "100ms",
    strategy = "constant",
    jitter = "none",
    name = "retry.dropped"
)]
async fn dropped_during_backoff(rec: &Recorder) -> Result<u32, E> {
    Err(E::Attempt(rec.attempt()))
}

#[tokio::test(start_paused = true)]
async fn dropping_the_call_during_backoff_stops_it() {
    let rec = Recorder::new();
    tokio::select! {
        out = dropped_during_backoff(&rec) => panic!("cannot finish first: {out:?}"),
        () = sleep(ms(150)) => {}
    }
    // Attempts at 0 and 100; dropped at 150, during the second backoff.
    assert_eq!(rec.starts(), [0, 100].map(ms));
    sleep(Duration::from_secs(10)).await;
    assert_eq!(rec.attempts(), 2, "no attempt after the drop");
}

// ---------------------------------------------------------------------------------------------
// Outside a tokio runtime: a zero backoff needs no timer; a backoff does.

#[retry(attempts = 3, backoff = "0s", name = "retry.no_timer")]
async fn no_timer(rec: &AtomicU32) -> Result<u32, E> {
    Err(E::Attempt(rec.fetch_add(1, Ordering::SeqCst) + 1))
}

#[retry(attempts = 3, backoff = "10ms", name = "retry.needs_timer")]
async fn needs_timer(rec: &AtomicU32) -> Result<u32, E> {
    Err(E::Attempt(rec.fetch_add(1, Ordering::SeqCst) + 1))
}

#[retry(attempts = 3, backoff = "10ms", name = "retry.needs_timer_rejecting")]
#[bulkhead(pool = 1, name = "retry.needs_timer_pool")]
async fn needs_timer_rejecting(rec: &AtomicU32) -> Result<u32, E> {
    Err(E::Attempt(rec.fetch_add(1, Ordering::SeqCst) + 1))
}

#[test]
fn outside_a_runtime() {
    let count = AtomicU32::new(0);
    assert_eq!(
        futures::executor::block_on(no_timer(&count)),
        Err(E::Attempt(3))
    );

    // A stack that can carry a rejection reports `NoRuntime` naming the retry.
    let count = AtomicU32::new(0);
    assert_eq!(
        futures::executor::block_on(needs_timer_rejecting(&count)),
        Err(E::Res(Error::NoRuntime {
            name: "retry.needs_timer_rejecting"
        }))
    );
    assert_eq!(count.load(Ordering::SeqCst), 1);

    // A stack of `#[retry]` alone cannot (its `E` need not convert): the retry gives up and
    // returns the last error, never panics.
    let count = AtomicU32::new(0);
    let mut call = pin!(needs_timer(&count));
    assert_eq!(
        common::poll_once(call.as_mut()),
        Poll::Ready(Err(E::Attempt(1)))
    );
    assert_eq!(count.load(Ordering::SeqCst), 1);

    // A runtime built without the time driver has no timer for a backoff either: the same
    // answers, not tokio's panic (DESIGN.md 5).
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let count = AtomicU32::new(0);
    assert_eq!(
        rt.block_on(needs_timer_rejecting(&count)),
        Err(E::Res(Error::NoRuntime {
            name: "retry.needs_timer_rejecting"
        }))
    );
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "no attempt after the first"
    );
    let count = AtomicU32::new(0);
    assert_eq!(rt.block_on(no_timer(&count)), Err(E::Attempt(3)));
}
