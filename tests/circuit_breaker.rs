//! Behaviour of `#[resilient::circuit_breaker]` on tokio's paused clock.
//!
//! One test (or a few) per rule of DESIGN.md section 4.1, plus the breaker parts of section 5
//! (the error) and section 6 (`resilient::breaker(name)` handles). Breaker state is
//! process-global, so every test declares its own breaker with its own `name`. Every timing
//! assertion is exact: time moves only through `tokio::time::advance` or a paused-clock sleep.

mod common;
use common::{breaker_handle as handle, ms, secs, settle};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use futures::FutureExt as _;
use resilient::{CircuitState, Error, HealthStatus};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::advance;

/// The error type of every annotated function here.
#[derive(Debug, Clone, PartialEq)]
enum TestError {
    /// The body failed; counts as a failure.
    Boom,
    /// The body failed in a way the `failure` predicate of some tests does not count.
    Benign,
    /// A policy rejected or abandoned the call.
    Resilience(Error),
}

impl From<Error> for TestError {
    fn from(e: Error) -> Self {
        TestError::Resilience(e)
    }
}

/// The `failure = ...` predicate: only `Boom` and timeouts count as failures.
fn counts_as_failure(e: &TestError) -> bool {
    matches!(
        e,
        TestError::Boom | TestError::Resilience(Error::Timeout { .. })
    )
}

/// What the body of an annotated function does.
enum Step {
    /// Returns `Ok(())`.
    Succeed,
    /// Returns `Err(Boom)`.
    Fail,
    /// Returns `Err(Benign)`.
    Benign,
    /// Panics with the message "boom".
    Panic,
    /// Sleeps on the paused clock, then succeeds.
    Sleep(Duration),
    /// Bumps the counter, then succeeds: proves the body ran.
    Count(Arc<AtomicUsize>),
    /// Bumps `started`, then waits for the test to decide: `true` succeeds, `false` fails, a
    /// dropped sender never completes.
    Wait {
        started: Arc<AtomicUsize>,
        outcome: oneshot::Receiver<bool>,
    },
}

impl Step {
    async fn run(self) -> Result<(), TestError> {
        match self {
            Step::Succeed => Ok(()),
            Step::Fail => Err(TestError::Boom),
            Step::Benign => Err(TestError::Benign),
            Step::Panic => panic!("boom"),
            Step::Sleep(d) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
            Step::Count(n) => {
                n.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
            Step::Wait { started, outcome } => {
                started.fetch_add(1, Ordering::SeqCst);
                match outcome.await {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(TestError::Boom),
                    Err(_) => std::future::pending().await,
                }
            }
        }
    }
}

/// Hands out [`Step::Wait`] bodies and counts how many of them started.
#[derive(Default)]
struct Gates {
    started: Arc<AtomicUsize>,
}

impl Gates {
    /// A body that waits, and the sender that finishes it.
    fn gate(&self) -> (Step, oneshot::Sender<bool>) {
        let (tx, rx) = oneshot::channel();
        let step = Step::Wait {
            started: Arc::clone(&self.started),
            outcome: rx,
        };
        (step, tx)
    }

    /// How many gated bodies have started running.
    fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }
}

/// This breaker's line of the health report (other tests' breakers share the process).
fn status_of(name: &str) -> HealthStatus {
    let report = resilient::health();
    let line = report.breakers().iter().find(|b| b.name == name);
    line.unwrap_or_else(|| panic!("{name:?} is not in the report"))
        .status
}

/// Asserts that `result` is a `CircuitOpen` rejection by breaker `name` and returns its
/// `retry_after`.
#[track_caller]
fn rejected_by(name: &str, result: &Result<(), TestError>) -> Option<Duration> {
    match result {
        Err(TestError::Resilience(Error::CircuitOpen {
            name: got,
            retry_after,
            ..
        })) if *got == name => *retry_after,
        other => panic!("expected a CircuitOpen rejection by {name:?}, got {other:?}"),
    }
}

/// Spawns three gated calls after a cooldown and waits until all three bodies run (each is a
/// trial of the half-open cycle); each comes with the sender that decides its outcome.
async fn three_trials<F, Fut>(
    call: F,
) -> Vec<(
    tokio::task::JoinHandle<Result<(), TestError>>,
    oneshot::Sender<bool>,
)>
where
    F: Fn(Step) -> Fut,
    Fut: Future<Output = Result<(), TestError>> + Send + 'static,
{
    let gates = Gates::default();
    let trials: Vec<_> = (0..3)
        .map(|_| {
            let (step, tx) = gates.gate();
            (tokio::spawn(call(step)), tx)
        })
        .collect();
    settle().await;
    assert_eq!(gates.started(), 3);
    trials
}

/// The result of a spawned call that must have finished by now.
async fn finished(task: JoinHandle<Result<(), TestError>>) -> Result<(), TestError> {
    assert!(task.is_finished(), "the call should have completed already");
    task.await.expect("the call should not panic")
}

// ---------------------------------------------------------------------------------------------
// Trip rules
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn threshold_alone_opens_after_n_consecutive_failures() {
    #[resilient::circuit_breaker(name = "consecutive", threshold = 3)]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    let h = handle("consecutive");
    assert_eq!(h.metrics().failures, 2);
    // A success breaks the run.
    assert_eq!(call(Step::Succeed).await, Ok(()));
    assert_eq!(h.metrics().failures, 0);
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    assert_eq!(h.state(), CircuitState::Closed);
    // The third failure in a row (3 >= 3) opens it; the call itself returns its own error.
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    assert_eq!(h.state(), CircuitState::Open);
    // The default cooldown is 5 s.
    assert_eq!(
        rejected_by("consecutive", &call(Step::Succeed).await),
        Some(secs(5))
    );
    // No failure rate for the count rule.
    assert_eq!(h.metrics().failure_rate, None);
}

#[tokio::test(start_paused = true)]
async fn threshold_with_window_counts_failures_within_the_window() {
    #[resilient::circuit_breaker(name = "count_in_window", threshold = 3, window = "10s")]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    // t = 0
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    // Successes do not reset a windowed count.
    assert_eq!(call(Step::Succeed).await, Ok(()));
    advance(secs(5)).await; // t = 5s
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    let h = handle("count_in_window");
    assert_eq!(h.state(), CircuitState::Closed);
    advance(secs(5)).await; // t = 10s: the failure at t = 0 is exactly one window old, so out
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    assert_eq!(h.state(), CircuitState::Closed);
    advance(ms(4_999)).await; // t = 14.999s: failures at 5s, 10s, 14.999s are within 10s
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    assert_eq!(h.state(), CircuitState::Open);
    assert_eq!(
        rejected_by("count_in_window", &call(Step::Succeed).await),
        Some(secs(5))
    );
}

#[tokio::test(start_paused = true)]
async fn failure_rate_over_time_opens_at_min_calls_and_rate() {
    #[resilient::circuit_breaker(
        name = "rate_time",
        failure_rate = 0.5,
        window = "10s",
        min_calls = 4
    )]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    assert_eq!(call(Step::Succeed).await, Ok(()));
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    assert_eq!(call(Step::Succeed).await, Ok(()));
    let h = handle("rate_time");
    let m = h.metrics();
    assert_eq!((m.calls, m.failures, m.failure_rate), (3, 1, None));
    assert_eq!(h.state(), CircuitState::Closed);
    // 4 calls, 2 failures: 0.5 >= 0.5.
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    assert_eq!(h.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn failure_rate_over_time_keeps_ten_buckets() {
    #[resilient::circuit_breaker(
        name = "rate_time_kept",
        failure_rate = 0.5,
        window = "10s",
        min_calls = 3
    )]
    async fn kept(step: Step) -> Result<(), TestError> {
        step.run().await
    }
    #[resilient::circuit_breaker(
        name = "rate_time_dropped",
        failure_rate = 0.5,
        window = "10s",
        min_calls = 3
    )]
    async fn dropped(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    // Both breakers are created at t = 0, so their 1 s buckets start at the same instants.
    assert_eq!(kept(Step::Fail).await, Err(TestError::Boom));
    assert_eq!(dropped(Step::Fail).await, Err(TestError::Boom));
    advance(ms(500)).await; // still in the first bucket, [0, 1s)
    assert_eq!(kept(Step::Fail).await, Err(TestError::Boom));
    assert_eq!(dropped(Step::Fail).await, Err(TestError::Boom));

    advance(ms(9_499)).await; // t = 9.999s: the first bucket is still one of the last ten
    assert_eq!(handle("rate_time_kept").metrics().calls, 2);
    assert_eq!(kept(Step::Fail).await, Err(TestError::Boom));
    assert_eq!(handle("rate_time_kept").state(), CircuitState::Open);

    advance(ms(1)).await; // t = 10s: the first bucket (both calls in it) has left the window
    let h = handle("rate_time_dropped");
    assert_eq!(h.metrics().calls, 0);
    assert_eq!(dropped(Step::Fail).await, Err(TestError::Boom));
    assert_eq!(dropped(Step::Fail).await, Err(TestError::Boom));
    let m = h.metrics();
    assert_eq!((m.calls, m.failures, m.failure_rate), (2, 2, None));
    assert_eq!(h.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn failure_rate_over_last_calls_is_rolling() {
    #[resilient::circuit_breaker(name = "rate_calls", failure_rate = 0.5, last = 4)]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    for step in [Step::Succeed, Step::Succeed, Step::Fail, Step::Succeed] {
        let _ = call(step).await;
    }
    let h = handle("rate_calls");
    let m = h.metrics();
    assert_eq!((m.calls, m.failures, m.failure_rate), (4, 1, Some(0.25)));
    // The window rolls by one call: [S, F, S, F] is 0.5 >= 0.5. A tumbling window would have
    // started over with [F].
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    assert_eq!(h.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn count_window_after_100_successes_then_n_failures_is_open() {
    #[resilient::circuit_breaker(name = "last_five", failure_rate = 1.0, last = 5)]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    for _ in 0..100 {
        assert_eq!(call(Step::Succeed).await, Ok(()));
    }
    for _ in 0..4 {
        assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    }
    let h = handle("last_five");
    let m = h.metrics();
    assert_eq!((m.calls, m.failures, m.failure_rate), (5, 4, Some(0.8)));
    assert_eq!(h.state(), CircuitState::Closed);
    // The window holds exactly the last 5 outcomes: 5 failures, 1.0 >= 1.0.
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    assert_eq!(h.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn failure_rate_over_last_calls_waits_for_min_calls() {
    #[resilient::circuit_breaker(
        name = "rate_calls_min",
        failure_rate = 0.5,
        last = 10,
        min_calls = 3
    )]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    let h = handle("rate_calls_min");
    let m = h.metrics();
    assert_eq!((m.calls, m.failures, m.failure_rate), (2, 2, None));
    assert_eq!(h.state(), CircuitState::Closed);
    // The rule is evaluated after a success too: 3 calls reach min_calls, 2/3 >= 0.5.
    assert_eq!(call(Step::Succeed).await, Ok(()));
    assert_eq!(h.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn rule_is_evaluated_after_a_success_over_time() {
    #[resilient::circuit_breaker(
        name = "rate_time_success",
        failure_rate = 0.5,
        window = "10s",
        min_calls = 4
    )]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    for _ in 0..3 {
        assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    }
    let h = handle("rate_time_success");
    assert_eq!(h.state(), CircuitState::Closed);
    // The fourth call reaches min_calls; 3/4 >= 0.5 although this outcome is a success.
    assert_eq!(call(Step::Succeed).await, Ok(()));
    assert_eq!(h.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn default_rule_is_half_failures_of_20_calls_in_30s() {
    #[resilient::circuit_breaker(name = "default_rule")]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    for _ in 0..10 {
        assert_eq!(call(Step::Succeed).await, Ok(()));
    }
    for _ in 0..9 {
        assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    }
    let h = handle("default_rule");
    let m = h.metrics();
    assert_eq!((m.calls, m.failures, m.failure_rate), (19, 9, None));
    assert_eq!(h.state(), CircuitState::Closed);
    // 20 calls, 10 failures: 0.5 >= 0.5.
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    assert_eq!(h.state(), CircuitState::Open);
    assert_eq!(
        rejected_by("default_rule", &call(Step::Succeed).await),
        Some(secs(5))
    );
}

#[tokio::test(start_paused = true)]
async fn default_rule_window_is_30s() {
    #[resilient::circuit_breaker(name = "default_window")]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    for _ in 0..19 {
        assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    }
    advance(secs(30)).await;
    let h = handle("default_window");
    assert_eq!(h.metrics().calls, 0);
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    assert_eq!(h.metrics().calls, 1);
    assert_eq!(h.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn window_alone_uses_the_default_failure_rate() {
    #[resilient::circuit_breaker(name = "window_alone", window = "10s", min_calls = 2)]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    let h = handle("window_alone");
    assert_eq!(h.state(), CircuitState::Closed);
    // 2 calls, 1 failure: 0.5 >= the default 0.5.
    assert_eq!(call(Step::Succeed).await, Ok(()));
    assert_eq!(h.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn failure_rate_alone_uses_the_default_window_and_min_calls() {
    #[resilient::circuit_breaker(name = "rate_alone", failure_rate = 0.25)]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    for _ in 0..5 {
        assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    }
    for _ in 0..14 {
        assert_eq!(call(Step::Succeed).await, Ok(()));
    }
    let h = handle("rate_alone");
    assert_eq!(
        (h.state(), h.metrics().failure_rate),
        (CircuitState::Closed, None)
    );
    // The 20th call reaches min_calls: 5/20 >= 0.25.
    assert_eq!(call(Step::Succeed).await, Ok(()));
    assert_eq!(h.state(), CircuitState::Open);
}

// ---------------------------------------------------------------------------------------------
// The window across state changes
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn window_is_cleared_when_the_breaker_opens_and_closes() {
    #[resilient::circuit_breaker(name = "cleared", failure_rate = 0.5, last = 4, cooldown = "1s")]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    for _ in 0..4 {
        assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    }
    let h = handle("cleared");
    assert_eq!(h.state(), CircuitState::Open);
    assert_eq!((h.metrics().calls, h.metrics().failures), (0, 0));
    advance(secs(1)).await;
    assert_eq!(call(Step::Succeed).await, Ok(()));
    assert_eq!(h.state(), CircuitState::Closed);
    assert_eq!((h.metrics().calls, h.metrics().failures), (0, 0));
    // Three failures in the fresh window stay below min_calls = last = 4.
    for _ in 0..3 {
        assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    }
    assert_eq!((h.metrics().calls, h.metrics().failures), (3, 3));
    assert_eq!(h.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn window_is_cleared_by_reset_force_open_and_disable() {
    #[resilient::circuit_breaker(name = "manual_clear", threshold = 3)]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    let h = handle("manual_clear");
    h.reset();
    assert_eq!(h.metrics().failures, 0);
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    h.force_open();
    h.reset();
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    h.disable();
    h.reset();
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    assert_eq!(h.state(), CircuitState::Closed);
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    assert_eq!(h.state(), CircuitState::Open);
}

// ---------------------------------------------------------------------------------------------
// Open, half-open, retry_after
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn open_becomes_half_open_lazily_exactly_at_cooldown_end() {
    #[resilient::circuit_breaker(name = "lazy", threshold = 1, cooldown = "5s")]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    let runs = Arc::new(AtomicUsize::new(0));
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    let h = handle("lazy");
    assert_eq!(
        rejected_by("lazy", &call(Step::Count(runs.clone())).await),
        Some(secs(5))
    );
    advance(ms(4_999)).await;
    assert_eq!(h.state(), CircuitState::Open);
    assert_eq!(
        rejected_by("lazy", &call(Step::Count(runs.clone())).await),
        Some(ms(1))
    );
    assert_eq!(runs.load(Ordering::SeqCst), 0);

    advance(ms(1)).await;
    // Reported as half-open without any call, and reading it takes no slot.
    for _ in 0..10 {
        assert_eq!(h.state(), CircuitState::HalfOpen);
        assert_eq!(h.metrics().state, CircuitState::HalfOpen);
    }
    // A call arriving exactly when the cooldown ends is the trial.
    assert_eq!(call(Step::Count(runs.clone())).await, Ok(()));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(h.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_the_time_left_and_message_says_so() {
    #[resilient::circuit_breaker(name = "payments", threshold = 1, cooldown = "5s")]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    advance(ms(800)).await;
    let result = call(Step::Succeed).await;
    assert_eq!(rejected_by("payments", &result), Some(ms(4_200)));
    let Err(TestError::Resilience(e)) = result else {
        unreachable!()
    };
    assert!(e.is_circuit_open());
    assert!(!e.is_timeout() && !e.is_bulkhead_full());
    assert_eq!(e.name(), "payments");
    assert_eq!(
        e.to_string(),
        r#"circuit breaker "payments" is open; retry after 4.2s"#
    );
    advance(ms(3_700)).await;
    assert_eq!(
        rejected_by("payments", &call(Step::Succeed).await),
        Some(ms(500))
    );
}

#[tokio::test(start_paused = true)]
async fn half_open_rejection_has_no_retry_after() {
    #[resilient::circuit_breaker(name = "half_open_reject", threshold = 1, cooldown = "1s")]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    let gates = Gates::default();
    let runs = Arc::new(AtomicUsize::new(0));
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    advance(secs(1)).await;
    let (step, trial) = gates.gate();
    let task = tokio::spawn(call(step));
    settle().await;
    assert_eq!(gates.started(), 1);
    let h = handle("half_open_reject");
    assert_eq!(h.state(), CircuitState::HalfOpen);
    let result = call(Step::Count(runs.clone())).await;
    assert_eq!(rejected_by("half_open_reject", &result), None);
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    let Err(TestError::Resilience(e)) = result else {
        unreachable!()
    };
    assert!(
        e.to_string()
            .starts_with(r#"circuit breaker "half_open_reject""#),
        "{e}"
    );
    // The rejection was not recorded as a failed trial: the trial's success closes.
    trial.send(true).unwrap();
    assert_eq!(task.await.unwrap(), Ok(()));
    assert_eq!(h.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn forced_open_rejects_without_retry_after_until_reset() {
    #[resilient::circuit_breaker(name = "forced", threshold = 5)]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    let runs = Arc::new(AtomicUsize::new(0));
    assert_eq!(call(Step::Count(runs.clone())).await, Ok(()));
    let h = handle("forced");
    h.force_open();
    assert_eq!(h.state(), CircuitState::ForcedOpen);
    assert_eq!(
        rejected_by("forced", &call(Step::Count(runs.clone())).await),
        None
    );
    advance(Duration::from_secs(3_600)).await;
    assert_eq!(h.state(), CircuitState::ForcedOpen);
    assert_eq!(
        rejected_by("forced", &call(Step::Count(runs.clone())).await),
        None
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let m = h.metrics();
    assert_eq!((m.calls, m.rejections), (0, 2));
    h.reset();
    assert_eq!(h.state(), CircuitState::Closed);
    assert_eq!(call(Step::Count(runs.clone())).await, Ok(()));
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn rejected_calls_never_poll_the_body_and_are_not_recorded() {
    #[resilient::circuit_breaker(
        name = "not_recorded",
        failure_rate = 0.5,
        last = 2,
        cooldown = "1s"
    )]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    let runs = Arc::new(AtomicUsize::new(0));
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    let h = handle("not_recorded");
    for _ in 0..5 {
        assert_eq!(
            rejected_by("not_recorded", &call(Step::Count(runs.clone())).await),
            Some(secs(1))
        );
    }
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    let m = h.metrics();
    assert_eq!((m.calls, m.failures, m.rejections), (0, 0, 5));
    advance(secs(1)).await;
    assert_eq!(call(Step::Count(runs.clone())).await, Ok(()));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let m = h.metrics();
    assert_eq!(
        (m.state, m.calls, m.failures, m.rejections),
        (CircuitState::Closed, 0, 0, 5)
    );
}

#[tokio::test(start_paused = true)]
async fn an_inner_bulkhead_rejection_is_not_an_outcome() {
    #[resilient::circuit_breaker(name = "inner_bulkhead", threshold = 1)]
    #[resilient::bulkhead(pool = 1)]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    let gates = Gates::default();
    let (step, tx) = gates.gate();
    let holder = tokio::spawn(call(step));
    settle().await;
    assert_eq!(gates.started(), 1);
    let rejected = call(Step::Succeed).await;
    assert!(
        matches!(
            rejected,
            Err(TestError::Resilience(Error::BulkheadFull { .. }))
        ),
        "{rejected:?}"
    );
    let h = handle("inner_bulkhead");
    assert_eq!(h.state(), CircuitState::Closed);
    assert_eq!(h.metrics().failures, 0);
    tx.send(true).unwrap();
    assert_eq!(holder.await.unwrap(), Ok(()));
    assert_eq!(h.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn an_inner_timeout_is_a_failure() {
    #[resilient::circuit_breaker(name = "inner_timeout", threshold = 2)]
    #[resilient::timeout("100ms")]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    let start = tokio::time::Instant::now();
    for _ in 0..2 {
        let r = call(Step::Sleep(secs(1))).await;
        assert!(
            matches!(r, Err(TestError::Resilience(Error::Timeout { .. }))),
            "{r:?}"
        );
    }
    assert_eq!(start.elapsed(), ms(200));
    assert_eq!(handle("inner_timeout").state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn disabled_breaker_records_nothing() {
    #[resilient::circuit_breaker(name = "disabled", threshold = 1)]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    let runs = Arc::new(AtomicUsize::new(0));
    let gates = Gates::default();
    assert_eq!(call(Step::Succeed).await, Ok(()));
    let h = handle("disabled");
    h.disable();
    assert_eq!(h.state(), CircuitState::Disabled);
    for _ in 0..5 {
        assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    }
    assert_eq!(call(Step::Count(runs.clone())).await, Ok(()));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let (step, tx) = gates.gate();
    let late = tokio::spawn(call(step));
    settle().await;
    let m = h.metrics();
    assert_eq!(
        (m.state, m.calls, m.failures, m.rejections),
        (CircuitState::Disabled, 0, 0, 0)
    );

    // A call admitted while disabled records nothing even when it ends after a reset.
    h.reset();
    tx.send(false).unwrap();
    assert_eq!(late.await.unwrap(), Err(TestError::Boom));
    assert_eq!(h.state(), CircuitState::Closed);
    assert_eq!(h.metrics().failures, 0);
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    assert_eq!(h.state(), CircuitState::Open);
}

// ---------------------------------------------------------------------------------------------
// Trials
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn half_open_calls_admits_exactly_p_of_many_simultaneous_callers() {
    #[resilient::circuit_breaker(
        name = "exactly_p",
        threshold = 1,
        cooldown = "1s",
        half_open_calls = 3,
        success_threshold = 3
    )]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    advance(secs(1)).await;
    let gates = Gates::default();
    let (tasks, senders): (Vec<_>, Vec<_>) = (0..10)
        .map(|_| {
            let (step, tx) = gates.gate();
            (tokio::spawn(call(step)), tx)
        })
        .unzip();
    settle().await;
    assert_eq!(gates.started(), 3);
    let h = handle("exactly_p");
    assert_eq!(h.state(), CircuitState::HalfOpen);
    let mut running = Vec::new();
    for (task, tx) in tasks.into_iter().zip(senders) {
        if task.is_finished() {
            assert_eq!(rejected_by("exactly_p", &task.await.unwrap()), None);
        } else {
            running.push((task, tx));
        }
    }
    assert_eq!(running.len(), 3);
    for (task, tx) in running {
        tx.send(true).unwrap();
        assert_eq!(task.await.unwrap(), Ok(()));
    }
    assert_eq!(h.state(), CircuitState::Closed);
    assert_eq!(h.metrics().rejections, 7);
}

#[tokio::test(start_paused = true)]
async fn trial_slots_are_reserved_atomically_across_threads() {
    #[resilient::circuit_breaker(
        name = "threads",
        threshold = 1,
        cooldown = "1s",
        half_open_calls = 4,
        success_threshold = 4
    )]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    const THREADS: usize = 16;
    let runtime = tokio::runtime::Handle::current();
    for _ in 0..50 {
        assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
        let h = handle("threads");
        assert_eq!(h.state(), CircuitState::Open);
        advance(secs(1)).await;
        let breaker = h.breaker();
        let barrier = Barrier::new(THREADS);
        let results: Vec<_> = std::thread::scope(|s| {
            let spawned: Vec<_> = (0..THREADS)
                .map(|_| {
                    s.spawn(|| {
                        // The paused clock of this test's runtime.
                        let _clock = runtime.enter();
                        barrier.wait();
                        breaker.try_acquire()
                    })
                })
                .collect();
            spawned.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let admitted: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(admitted.len(), 4);
        for r in &results {
            if let Err(e) = r {
                assert_eq!(
                    e,
                    &Error::CircuitOpen {
                        name: "threads",
                        retry_after: None
                    }
                );
            }
        }
        assert_eq!(h.state(), CircuitState::HalfOpen);
        for ticket in admitted {
            breaker.record(*ticket, false);
        }
        assert_eq!(h.state(), CircuitState::Closed);
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_trial_racing_successes_always_reopens() {
    #[resilient::circuit_breaker(
        name = "trial_race",
        threshold = 1,
        cooldown = "1s",
        half_open_calls = 8,
        success_threshold = 8
    )]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    const TRIALS: usize = 8;
    let runtime = tokio::runtime::Handle::current();
    for _ in 0..200 {
        assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
        advance(secs(1)).await;
        let h = handle("trial_race");
        let breaker = h.breaker();
        let tickets: Vec<_> = (0..TRIALS)
            .map(|_| breaker.try_acquire().unwrap())
            .collect();
        let barrier = Barrier::new(TRIALS);
        std::thread::scope(|s| {
            for (i, ticket) in tickets.into_iter().enumerate() {
                let (barrier, runtime) = (&barrier, &runtime);
                s.spawn(move || {
                    let _clock = runtime.enter();
                    barrier.wait();
                    // One failure among seven successes: the cycle must reopen.
                    breaker.record(ticket, i == 0);
                });
            }
        });
        assert_eq!(h.state(), CircuitState::Open);
        assert_eq!(
            breaker.try_acquire().unwrap_err(),
            Error::CircuitOpen {
                name: "trial_race",
                retry_after: Some(secs(1))
            }
        );
        h.reset();
    }
}

#[tokio::test(start_paused = true)]
async fn simultaneous_failures_open_once_with_one_deadline() {
    #[resilient::circuit_breaker(name = "trip_race", threshold = 1, cooldown = "3s")]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    const CALLS: usize = 8;
    let runtime = tokio::runtime::Handle::current();
    assert_eq!(call(Step::Succeed).await, Ok(()));
    let h = handle("trip_race");
    let breaker = h.breaker();
    for _ in 0..200 {
        let tickets: Vec<_> = (0..CALLS).map(|_| breaker.try_acquire().unwrap()).collect();
        let barrier = Barrier::new(CALLS);
        std::thread::scope(|s| {
            for ticket in tickets {
                let (barrier, runtime) = (&barrier, &runtime);
                s.spawn(move || {
                    let _clock = runtime.enter();
                    barrier.wait();
                    breaker.record(ticket, true);
                });
            }
        });
        assert_eq!(h.state(), CircuitState::Open);
        advance(ms(2_999)).await;
        assert_eq!(h.state(), CircuitState::Open);
        advance(ms(1)).await;
        assert_eq!(h.state(), CircuitState::HalfOpen);
        h.reset();
    }
}

#[tokio::test(start_paused = true)]
async fn success_threshold_above_half_open_calls_runs_in_waves() {
    #[resilient::circuit_breaker(
        name = "waves",
        threshold = 1,
        cooldown = "1s",
        success_threshold = 3,
        half_open_calls = 2
    )]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    advance(secs(1)).await;
    let gates = Gates::default();
    let (a, a_tx) = gates.gate();
    let (b, b_tx) = gates.gate();
    let a = tokio::spawn(call(a));
    let b = tokio::spawn(call(b));
    settle().await;
    assert_eq!(gates.started(), 2);
    assert_eq!(rejected_by("waves", &call(Step::Succeed).await), None);

    let h = handle("waves");
    a_tx.send(true).unwrap();
    assert_eq!(a.await.unwrap(), Ok(()));
    assert_eq!(h.state(), CircuitState::HalfOpen);
    // The slot A held is free again: one more trial fits, then the wave is full.
    let (c, c_tx) = gates.gate();
    let c = tokio::spawn(call(c));
    settle().await;
    assert_eq!(gates.started(), 3);
    assert_eq!(rejected_by("waves", &call(Step::Succeed).await), None);
    b_tx.send(true).unwrap();
    assert_eq!(b.await.unwrap(), Ok(()));
    assert_eq!(h.state(), CircuitState::HalfOpen);
    c_tx.send(true).unwrap();
    assert_eq!(c.await.unwrap(), Ok(()));
    assert_eq!(h.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn any_failed_trial_reopens() {
    #[resilient::circuit_breaker(
        name = "failed_wave",
        threshold = 1,
        cooldown = "1s",
        success_threshold = 3,
        half_open_calls = 1
    )]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    advance(secs(1)).await;
    assert_eq!(call(Step::Succeed).await, Ok(()));
    assert_eq!(call(Step::Succeed).await, Ok(()));
    let h = handle("failed_wave");
    assert_eq!(h.state(), CircuitState::HalfOpen);
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    assert_eq!(h.state(), CircuitState::Open);
    assert_eq!(
        rejected_by("failed_wave", &call(Step::Succeed).await),
        Some(secs(1))
    );
    // The next cycle starts from zero successes.
    advance(secs(1)).await;
    assert_eq!(call(Step::Succeed).await, Ok(()));
    assert_eq!(call(Step::Succeed).await, Ok(()));
    assert_eq!(h.state(), CircuitState::HalfOpen);
    assert_eq!(call(Step::Succeed).await, Ok(()));
    assert_eq!(h.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn success_threshold_below_half_open_calls_first_success_wins() {
    #[resilient::circuit_breaker(
        name = "first_success",
        threshold = 1,
        cooldown = "1s",
        success_threshold = 1,
        half_open_calls = 3
    )]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    advance(secs(1)).await;
    let trials = three_trials(call).await;
    let h = handle("first_success");
    let mut trials = trials.into_iter();
    let (first, tx) = trials.next().unwrap();
    tx.send(true).unwrap();
    assert_eq!(first.await.unwrap(), Ok(()));
    assert_eq!(h.state(), CircuitState::Closed);
    // The rest of that cycle's outcomes are ignored: they neither reopen nor enter the window.
    for (task, tx) in trials {
        tx.send(false).unwrap();
        assert_eq!(task.await.unwrap(), Err(TestError::Boom));
    }
    assert_eq!(h.state(), CircuitState::Closed);
    assert_eq!(h.metrics().failures, 0);
}

#[tokio::test(start_paused = true)]
async fn success_threshold_below_half_open_calls_first_failure_wins() {
    #[resilient::circuit_breaker(
        name = "first_failure",
        threshold = 1,
        cooldown = "1s",
        half_open_calls = 3
    )]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    advance(secs(1)).await;
    let trials = three_trials(call).await;
    let h = handle("first_failure");
    let mut trials = trials.into_iter();
    let (first, tx) = trials.next().unwrap();
    tx.send(false).unwrap();
    assert_eq!(first.await.unwrap(), Err(TestError::Boom));
    assert_eq!(h.state(), CircuitState::Open);
    advance(ms(300)).await;
    // Late successes of the same cycle neither close it nor move the end of the open period.
    for (task, tx) in trials {
        tx.send(true).unwrap();
        assert_eq!(task.await.unwrap(), Ok(()));
    }
    assert_eq!(h.state(), CircuitState::Open);
    assert_eq!(
        rejected_by("first_failure", &call(Step::Succeed).await),
        Some(ms(700))
    );
}

#[tokio::test(start_paused = true)]
async fn max_cooldown_doubles_per_failed_trial_and_resets_after_closing() {
    #[resilient::circuit_breaker(
        name = "backoff",
        threshold = 1,
        cooldown = "1s",
        max_cooldown = "4s"
    )]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    assert_eq!(
        rejected_by("backoff", &call(Step::Succeed).await),
        Some(secs(1))
    );
    for expected in [2, 4, 4] {
        let h = handle("backoff");
        let cooldown = rejected_by("backoff", &call(Step::Succeed).await).unwrap();
        advance(cooldown).await;
        assert_eq!(h.state(), CircuitState::HalfOpen);
        assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
        assert_eq!(
            rejected_by("backoff", &call(Step::Succeed).await),
            Some(secs(expected))
        );
    }
    advance(secs(4)).await;
    assert_eq!(call(Step::Succeed).await, Ok(()));
    assert_eq!(handle("backoff").state(), CircuitState::Closed);
    // Fully closed: the next opening uses the base cooldown again.
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    assert_eq!(
        rejected_by("backoff", &call(Step::Succeed).await),
        Some(secs(1))
    );
}

#[tokio::test(start_paused = true)]
async fn without_max_cooldown_the_cooldown_is_fixed() {
    #[resilient::circuit_breaker(name = "fixed_cooldown", threshold = 1, cooldown = "1s")]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    for _ in 0..3 {
        advance(secs(1)).await;
        assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
        assert_eq!(
            rejected_by("fixed_cooldown", &call(Step::Succeed).await),
            Some(secs(1))
        );
    }
}

#[tokio::test(start_paused = true)]
async fn ramp_admits_calls_by_deterministic_credit() {
    #[resilient::circuit_breaker(name = "ramp", threshold = 1, cooldown = "1s", ramp = "10s")]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    let runs = Arc::new(AtomicUsize::new(0));
    let count = || Step::Count(runs.clone());
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    advance(secs(1)).await;
    assert_eq!(call(Step::Succeed).await, Ok(()));
    let h = handle("ramp");
    assert_eq!(h.state(), CircuitState::Closed);
    assert_eq!(status_of("ramp"), HealthStatus::Degraded);
    let rejections = h.metrics().rejections;

    // Elapsed 0: a call adds nothing to the credit.
    assert_eq!(rejected_by("ramp", &call(count()).await), None);
    // Elapsed 1s: each call adds 0.1; the tenth reaches 1.
    advance(secs(1)).await;
    for _ in 0..9 {
        assert_eq!(rejected_by("ramp", &call(count()).await), None);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    assert_eq!(call(count()).await, Ok(()));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // Elapsed 5s: every second call.
    advance(secs(4)).await;
    for admitted in [false, true, false, true] {
        let result = call(count()).await;
        if admitted {
            assert_eq!(result, Ok(()));
        } else {
            assert_eq!(rejected_by("ramp", &result), None);
        }
    }
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    // Ramp rejections are not outcomes; admitted calls go into the fresh window.
    let m = h.metrics();
    assert_eq!((m.calls, m.failures, m.rejections - rejections), (0, 0, 12));
    // Elapsed 10s: the ramp is over (no call needed to notice), everything passes.
    advance(ms(4_999)).await;
    assert_eq!(status_of("ramp"), HealthStatus::Degraded);
    advance(ms(1)).await;
    assert_eq!(status_of("ramp"), HealthStatus::Healthy);
    for _ in 0..5 {
        assert_eq!(call(count()).await, Ok(()));
    }
    assert_eq!(runs.load(Ordering::SeqCst), 8);
    assert_eq!(h.metrics().rejections - rejections, 12);
}

#[tokio::test(start_paused = true)]
async fn reopening_during_the_ramp_is_a_failed_trial() {
    #[resilient::circuit_breaker(
        name = "ramp_reopen",
        threshold = 1,
        cooldown = "1s",
        max_cooldown = "8s",
        ramp = "2s"
    )]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    advance(secs(1)).await;
    assert_eq!(call(Step::Succeed).await, Ok(()));
    // Elapsed 1s of 2s: every second call is admitted.
    advance(secs(1)).await;
    assert_eq!(rejected_by("ramp_reopen", &call(Step::Fail).await), None);
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    let h = handle("ramp_reopen");
    assert_eq!(h.state(), CircuitState::Open);
    assert_eq!(
        rejected_by("ramp_reopen", &call(Step::Succeed).await),
        Some(secs(2))
    );

    // Recover, and let the ramp run out: the cooldown is back to its base.
    advance(secs(2)).await;
    assert_eq!(call(Step::Succeed).await, Ok(()));
    advance(secs(2)).await;
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    assert_eq!(
        rejected_by("ramp_reopen", &call(Step::Succeed).await),
        Some(secs(1))
    );
}

#[tokio::test(start_paused = true)]
async fn a_failure_after_the_ramp_ended_is_not_a_failed_trial() {
    #[resilient::circuit_breaker(
        name = "ramp_over",
        threshold = 1,
        cooldown = "1s",
        max_cooldown = "8s",
        ramp = "2s"
    )]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    advance(secs(1)).await;
    assert_eq!(call(Step::Succeed).await, Ok(()));
    advance(secs(1)).await;
    assert_eq!(rejected_by("ramp_over", &call(Step::Succeed).await), None);
    // Admitted during the ramp...
    let gates = Gates::default();
    let (step, tx) = gates.gate();
    let task = tokio::spawn(call(step));
    settle().await;
    assert_eq!(gates.started(), 1);
    // ...and failing once the ramp is over, with no call in between: the breaker was fully
    // closed by then, so this opens it with the base cooldown.
    advance(ms(1_500)).await;
    tx.send(false).unwrap();
    assert_eq!(task.await.unwrap(), Err(TestError::Boom));
    assert_eq!(handle("ramp_over").state(), CircuitState::Open);
    assert_eq!(
        rejected_by("ramp_over", &call(Step::Succeed).await),
        Some(secs(1))
    );
}

#[tokio::test(start_paused = true)]
async fn slow_calls_count_as_failures() {
    #[resilient::circuit_breaker(name = "slow", threshold = 2, cooldown = "1s", slow_call = "1s")]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    // Exactly 1 s is not longer than `slow_call`.
    assert_eq!(call(Step::Sleep(secs(1))).await, Ok(()));
    let h = handle("slow");
    assert_eq!(h.metrics().failures, 0);
    assert_eq!(call(Step::Sleep(ms(1_001))).await, Ok(()));
    assert_eq!(h.metrics().failures, 1);
    assert_eq!(call(Step::Sleep(ms(999))).await, Ok(()));
    assert_eq!(h.metrics().failures, 0);
    assert_eq!(call(Step::Sleep(ms(1_001))).await, Ok(()));
    assert_eq!(call(Step::Sleep(secs(2))).await, Ok(()));
    assert_eq!(h.state(), CircuitState::Open);
    // A slow trial is a failed trial.
    advance(secs(1)).await;
    assert_eq!(call(Step::Sleep(ms(1_001))).await, Ok(()));
    assert_eq!(h.state(), CircuitState::Open);
    assert_eq!(
        rejected_by("slow", &call(Step::Succeed).await),
        Some(secs(1))
    );
    advance(secs(1)).await;
    assert_eq!(call(Step::Sleep(ms(1_000))).await, Ok(()));
    assert_eq!(h.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn failure_predicate_decides_what_counts() {
    #[resilient::circuit_breaker(name = "predicate", threshold = 2, failure = counts_as_failure)]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    // Errors the predicate rejects count as successes: this one breaks the run of failures.
    assert_eq!(call(Step::Benign).await, Err(TestError::Benign));
    let h = handle("predicate");
    assert_eq!(h.metrics().failures, 0);
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    assert_eq!(h.state(), CircuitState::Closed);
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    assert_eq!(h.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn errors_the_predicate_rejects_are_successful_calls() {
    #[resilient::circuit_breaker(
        name = "predicate_rate",
        failure_rate = 0.5,
        last = 4,
        failure = counts_as_failure
    )]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    for _ in 0..3 {
        assert_eq!(call(Step::Benign).await, Err(TestError::Benign));
    }
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    let m = handle("predicate_rate").metrics();
    assert_eq!(
        (m.state, m.calls, m.failures, m.failure_rate),
        (CircuitState::Closed, 4, 1, Some(0.25))
    );
}

#[tokio::test(start_paused = true)]
async fn critical_is_accepted_and_an_open_critical_breaker_is_unhealthy() {
    #[resilient::circuit_breaker(
        name = "critical",
        threshold = 1,
        cooldown = "1s",
        critical = true
    )]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }
    #[resilient::circuit_breaker(name = "not_critical", threshold = 1)]
    async fn other(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    assert_eq!(call(Step::Succeed).await, Ok(()));
    assert_eq!(other(Step::Fail).await, Err(TestError::Boom));
    let h = handle("critical");
    assert!(h.breaker().config().critical);
    assert!(!handle("not_critical").breaker().config().critical);
    assert_eq!(status_of("critical"), HealthStatus::Healthy);
    assert_eq!(status_of("not_critical"), HealthStatus::Degraded);

    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    assert_eq!(h.state(), CircuitState::Open);
    assert_eq!(status_of("critical"), HealthStatus::Unhealthy);
    advance(secs(1)).await;
    assert_eq!(status_of("critical"), HealthStatus::Degraded);
    assert_eq!(call(Step::Succeed).await, Ok(()));
    h.force_open();
    assert_eq!(status_of("critical"), HealthStatus::Unhealthy);
    h.reset();
    assert_eq!(status_of("critical"), HealthStatus::Healthy);
}

// ---------------------------------------------------------------------------------------------
// Cancellation, panics, stuck cycles, generations
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_cancelled_trial_returns_its_slot_and_records_nothing() {
    #[resilient::circuit_breaker(name = "cancelled_trial", threshold = 1, cooldown = "1s")]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    advance(secs(1)).await;
    let gates = Gates::default();
    let (step, _never) = gates.gate();
    let trial = tokio::spawn(call(step));
    settle().await;
    assert_eq!(gates.started(), 1);
    assert_eq!(
        rejected_by("cancelled_trial", &call(Step::Succeed).await),
        None
    );
    trial.abort();
    assert!(trial.await.unwrap_err().is_cancelled());
    let h = handle("cancelled_trial");
    assert_eq!(h.state(), CircuitState::HalfOpen);

    // Cancelled by an outer timeout: same thing.
    let (step, _never) = gates.gate();
    assert!(tokio::time::timeout(ms(100), call(step)).await.is_err());
    assert_eq!(gates.started(), 2);
    assert_eq!(h.state(), CircuitState::HalfOpen);

    assert_eq!(call(Step::Succeed).await, Ok(()));
    assert_eq!(h.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_closed_call_records_nothing() {
    #[resilient::circuit_breaker(name = "cancelled_closed", failure_rate = 0.5, last = 1)]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    assert_eq!(call(Step::Succeed).await, Ok(()));
    let gates = Gates::default();
    let (step, _never) = gates.gate();
    assert!(tokio::time::timeout(ms(100), call(step)).await.is_err());
    let h = handle("cancelled_closed");
    let m = h.metrics();
    assert_eq!((m.state, m.calls, m.failures), (CircuitState::Closed, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn a_panic_is_a_failure_and_propagates_unchanged() {
    #[resilient::circuit_breaker(name = "panics", threshold = 1, cooldown = "1s")]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    let err = tokio::spawn(call(Step::Panic)).await.unwrap_err();
    assert_eq!(*err.into_panic().downcast::<&str>().unwrap(), "boom");
    let h = handle("panics");
    assert_eq!(h.state(), CircuitState::Open);
    // A panicking trial is a failed trial, and its slot does not outlive it.
    advance(secs(1)).await;
    let err = tokio::spawn(call(Step::Panic)).await.unwrap_err();
    assert!(err.is_panic());
    assert_eq!(h.state(), CircuitState::Open);
    assert_eq!(
        rejected_by("panics", &call(Step::Succeed).await),
        Some(secs(1))
    );
    advance(secs(1)).await;
    assert_eq!(call(Step::Succeed).await, Ok(()));
    assert_eq!(h.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_panic_caught_by_catch_unwind_is_a_failure() {
    #[resilient::circuit_breaker(name = "catch_unwind", threshold = 1, cooldown = "1s")]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    let caught = AssertUnwindSafe(call(Step::Panic)).catch_unwind().await;
    assert_eq!(*caught.unwrap_err().downcast::<&str>().unwrap(), "boom");
    let h = handle("catch_unwind");
    assert_eq!(h.state(), CircuitState::Open);
    advance(secs(1)).await;
    assert!(
        AssertUnwindSafe(call(Step::Panic))
            .catch_unwind()
            .await
            .is_err()
    );
    assert_eq!(h.state(), CircuitState::Open);
    assert_eq!(
        rejected_by("catch_unwind", &call(Step::Succeed).await),
        Some(secs(1))
    );
}

#[tokio::test(start_paused = true)]
async fn a_stuck_half_open_cycle_is_a_failed_trial_and_late_trials_change_nothing() {
    #[resilient::circuit_breaker(
        name = "stuck",
        threshold = 1,
        cooldown = "2s",
        success_threshold = 2,
        half_open_calls = 2
    )]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    advance(secs(2)).await;
    let gates = Gates::default();
    let (step, _stale_never) = gates.gate();
    let stale_stuck = tokio::spawn(call(step));
    let (step, stale_tx) = gates.gate();
    let stale_done = tokio::spawn(call(step));
    settle().await;
    assert_eq!(gates.started(), 2);
    let breaker = handle("stuck");

    // Held for exactly max(cooldown, no inner timeout) = 2 s: not longer yet.
    advance(secs(2)).await;
    assert_eq!(rejected_by("stuck", &call(Step::Succeed).await), None);
    assert_eq!(breaker.state(), CircuitState::HalfOpen);
    // Longer: the next call counts the cycle as a failed trial and reopens.
    advance(ms(1)).await;
    assert_eq!(
        rejected_by("stuck", &call(Step::Succeed).await),
        Some(secs(2))
    );
    assert_eq!(breaker.state(), CircuitState::Open);

    advance(secs(2)).await;
    let (step, first_tx) = gates.gate();
    let first = tokio::spawn(call(step));
    let (step, second_tx) = gates.gate();
    let second = tokio::spawn(call(step));
    settle().await;
    assert_eq!(gates.started(), 4);
    assert_eq!(breaker.state(), CircuitState::HalfOpen);

    // A late trial of the first cycle is cancelled: its slot does not appear in this cycle.
    stale_stuck.abort();
    assert!(stale_stuck.await.unwrap_err().is_cancelled());
    assert_eq!(rejected_by("stuck", &call(Step::Succeed).await), None);
    // Another one completes successfully: it neither counts nor frees a slot.
    stale_tx.send(true).unwrap();
    assert_eq!(stale_done.await.unwrap(), Ok(()));
    assert_eq!(rejected_by("stuck", &call(Step::Succeed).await), None);
    first_tx.send(true).unwrap();
    assert_eq!(first.await.unwrap(), Ok(()));
    assert_eq!(breaker.state(), CircuitState::HalfOpen);
    second_tx.send(true).unwrap();
    assert_eq!(second.await.unwrap(), Ok(()));
    assert_eq!(breaker.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_stuck_cycle_waits_for_the_inner_timeout_when_it_is_longer() {
    #[resilient::circuit_breaker(name = "stuck_timeout", threshold = 1, cooldown = "2s")]
    #[resilient::timeout("10s")]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    advance(secs(2)).await;
    let gates = Gates::default();
    let (step, _never) = gates.gate();
    let trial = tokio::spawn(call(step));
    settle().await;
    assert_eq!(gates.started(), 1);
    advance(ms(9_999)).await;
    assert_eq!(
        rejected_by("stuck_timeout", &call(Step::Succeed).await),
        None
    );
    let h = handle("stuck_timeout");
    assert_eq!(h.state(), CircuitState::HalfOpen);
    // At 10 s the inner timeout ends the trial, a failure.
    advance(ms(1)).await;
    settle().await;
    let r = finished(trial).await;
    assert!(
        matches!(r, Err(TestError::Resilience(Error::Timeout { .. }))),
        "{r:?}"
    );
    assert_eq!(h.state(), CircuitState::Open);
    assert_eq!(
        rejected_by("stuck_timeout", &call(Step::Succeed).await),
        Some(secs(2))
    );
}

#[tokio::test(start_paused = true)]
async fn a_closed_call_ending_after_the_breaker_opened_changes_nothing() {
    #[resilient::circuit_breaker(name = "late_closed", threshold = 2, cooldown = "5s")]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    let gates = Gates::default();
    let (step, a_tx) = gates.gate();
    let a = tokio::spawn(call(step));
    let (step, b_tx) = gates.gate();
    let b = tokio::spawn(call(step));
    settle().await;
    assert_eq!(gates.started(), 2);
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    let h = handle("late_closed");
    assert_eq!(h.state(), CircuitState::Open);

    // A fails one second into the open period: the period is not extended.
    advance(secs(1)).await;
    a_tx.send(false).unwrap();
    assert_eq!(a.await.unwrap(), Err(TestError::Boom));
    assert_eq!(
        rejected_by("late_closed", &call(Step::Succeed).await),
        Some(secs(4))
    );
    assert_eq!(h.metrics().calls, 0);

    // After recovery, B (admitted two cycles ago) fails: not counted in the new window.
    advance(secs(4)).await;
    assert_eq!(call(Step::Succeed).await, Ok(()));
    assert_eq!(h.state(), CircuitState::Closed);
    b_tx.send(false).unwrap();
    assert_eq!(b.await.unwrap(), Err(TestError::Boom));
    assert_eq!(h.metrics().failures, 0);
    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    assert_eq!(h.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn reading_state_and_metrics_never_takes_a_slot_or_counts() {
    #[resilient::circuit_breaker(name = "readers", threshold = 1, cooldown = "1s")]
    async fn call(step: Step) -> Result<(), TestError> {
        step.run().await
    }

    assert_eq!(call(Step::Fail).await, Err(TestError::Boom));
    let h = handle("readers");
    let before = h.metrics();
    advance(secs(1)).await;
    for _ in 0..100 {
        assert_eq!(h.state(), CircuitState::HalfOpen);
        let m = h.metrics();
        assert_eq!(
            (m.calls, m.failures, m.rejections),
            (before.calls, before.failures, before.rejections)
        );
    }
    // The single slot is still there for a real call.
    let gates = Gates::default();
    let (step, tx) = gates.gate();
    let trial = tokio::spawn(call(step));
    settle().await;
    assert_eq!(gates.started(), 1);
    for _ in 0..100 {
        assert_eq!(h.state(), CircuitState::HalfOpen);
        let _ = h.metrics();
    }
    tx.send(true).unwrap();
    assert_eq!(trial.await.unwrap(), Ok(()));
    assert_eq!(h.state(), CircuitState::Closed);
    assert_eq!(h.metrics().rejections, before.rejections);
}
