//! Behaviour of `#[timeout]` (DESIGN.md section 4.2) on tokio's paused clock.
//!
//! Every policy here has its own `name`: policy state is process-global and tests run in
//! parallel. Events are read through a small thread-local `tracing` subscriber; each test runs
//! on its own current-thread runtime, so it sees only its own events.

use common::{E, ms};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use resilient::{CircuitState, Error, circuit_breaker, retry, timeout};
use tokio::time::{Instant, sleep};

/// Records the instant it is dropped at.
struct DropGuard<'a>(&'a Mutex<Option<Instant>>);

impl Drop for DropGuard<'_> {
    fn drop(&mut self) {
        *self.0.lock().unwrap() = Some(Instant::now());
    }
}

fn dropped_at(slot: &Mutex<Option<Instant>>) -> Option<Instant> {
    *slot.lock().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Event capture.

mod common;

use common::capture::{Capture, Event};

/// Shorthands over the shared capture.
trait Counts {
    fn events_named(&self, name: &str) -> Vec<Event>;
    fn timeouts(&self, name: &str) -> usize;
    fn warnings(&self, name: &str) -> usize;
}

impl Counts for Capture {
    fn events_named(&self, name: &str) -> Vec<Event> {
        self.named(name)
    }
    /// Timeout events naming `name`.
    fn timeouts(&self, name: &str) -> usize {
        self.of(name, "timed out").len()
    }
    /// `warn` events naming `name`.
    fn warnings(&self, name: &str) -> usize {
        self.named(name)
            .iter()
            .filter(|e| e.level == tracing::Level::WARN)
            .count()
    }
}

// ---------------------------------------------------------------------------------------------
// The inner future is dropped at the deadline and the call returns `Error::Timeout { name }`.

#[timeout("200ms", name = "timeout.drops_inner")]
async fn hangs(dropped: &Mutex<Option<Instant>>, finished: &AtomicBool) -> Result<u32, E> {
    let _guard = DropGuard(dropped);
    sleep(Duration::from_secs(3600)).await;
    finished.store(true, Ordering::SeqCst);
    Ok(1)
}

#[tokio::test(start_paused = true)]
async fn inner_future_is_dropped_at_the_deadline() {
    let capture = Capture::install();
    let dropped = Mutex::new(None);
    let finished = AtomicBool::new(false);
    let start = Instant::now();

    let out = hangs(&dropped, &finished).await;

    assert_eq!(
        out,
        Err(E::R(Error::Timeout {
            name: "timeout.drops_inner",
            after: ms(200),
        }))
    );
    assert_eq!(start.elapsed(), ms(200));
    assert_eq!(
        dropped_at(&dropped),
        Some(start + ms(200)),
        "the body's guard ran at the deadline"
    );
    assert!(!finished.load(Ordering::SeqCst));
    assert_eq!(
        capture.timeouts("timeout.drops_inner"),
        1,
        "one timeout event with the name"
    );
    // Nothing of the body is left behind to run later.
    sleep(Duration::from_secs(7200)).await;
    assert!(!finished.load(Ordering::SeqCst));
}

#[timeout(duration = "150ms", name = "timeout.keyed")]
async fn keyed_form(dropped: &Mutex<Option<Instant>>) -> Result<u32, E> {
    let _guard = DropGuard(dropped);
    sleep(ms(151)).await;
    Ok(1)
}

#[tokio::test(start_paused = true)]
async fn duration_key_form_is_the_same_policy() {
    let dropped = Mutex::new(None);
    let start = Instant::now();
    let out = keyed_form(&dropped).await;
    assert_eq!(
        out,
        Err(E::R(Error::Timeout {
            name: "timeout.keyed",
            after: ms(150),
        }))
    );
    assert_eq!(start.elapsed(), ms(150));
    assert_eq!(dropped_at(&dropped), Some(start + ms(150)));
}

#[timeout("200ms")]
async fn unnamed_hang() -> Result<u32, E> {
    sleep(Duration::from_secs(1)).await;
    Ok(1)
}

#[tokio::test(start_paused = true)]
async fn without_name_the_error_carries_the_derived_key() {
    let out = unnamed_hang().await;
    assert_eq!(
        out,
        Err(E::R(Error::Timeout {
            name: "timeout::unnamed_hang",
            after: ms(200),
        }))
    );
}

// ---------------------------------------------------------------------------------------------
// Calls that finish in time.

#[timeout("200ms", name = "timeout.in_time")]
async fn quick(delay: Duration, out: Result<u32, E>) -> Result<u32, E> {
    sleep(delay).await;
    out
}

#[tokio::test(start_paused = true)]
async fn a_call_that_finishes_in_time_returns_its_result() {
    let capture = Capture::install();
    let start = Instant::now();
    assert_eq!(quick(ms(199), Ok(7)).await, Ok(7));
    assert_eq!(start.elapsed(), ms(199));

    let start = Instant::now();
    assert_eq!(
        quick(ms(10), Err(E::Body)).await,
        Err(E::Body),
        "the body's error passes through"
    );
    assert_eq!(start.elapsed(), ms(10));

    assert_eq!(capture.timeouts("timeout.in_time"), 0);
    assert_eq!(capture.warnings("timeout.in_time"), 0);
}

#[timeout("200ms", name = "timeout.same_poll")]
async fn finishes_at_the_deadline(polls_after: &AtomicU32) -> Result<u32, E> {
    sleep(ms(200)).await;
    polls_after.fetch_add(1, Ordering::SeqCst);
    Ok(42)
}

#[tokio::test(start_paused = true)]
async fn a_body_completing_in_the_poll_of_the_deadline_returns_its_result() {
    let capture = Capture::install();
    let polls_after = AtomicU32::new(0);
    let start = Instant::now();
    // The body's timer and the deadline fire on the same tick; tokio polls the body first.
    assert_eq!(finishes_at_the_deadline(&polls_after).await, Ok(42));
    assert_eq!(start.elapsed(), ms(200));
    assert_eq!(polls_after.load(Ordering::SeqCst), 1);
    assert_eq!(capture.timeouts("timeout.same_poll"), 0);
}

// ---------------------------------------------------------------------------------------------
// A caller that drops the call is not a timeout.

#[timeout("200ms", name = "timeout.caller_drop")]
async fn droppable(dropped: &Mutex<Option<Instant>>) -> Result<u32, E> {
    let _guard = DropGuard(dropped);
    sleep(Duration::from_secs(1)).await;
    Ok(1)
}

#[tokio::test(start_paused = true)]
async fn a_caller_dropping_the_call_is_not_a_timeout() {
    let capture = Capture::install();
    let dropped = Mutex::new(None);
    let start = Instant::now();
    tokio::select! {
        out = droppable(&dropped) => panic!("the call cannot finish first: {out:?}"),
        () = sleep(ms(50)) => {}
    }
    assert_eq!(
        dropped_at(&dropped),
        Some(start + ms(50)),
        "dropped with the caller's future"
    );
    // Past the deadline the timeout would have had: still nothing.
    sleep(Duration::from_secs(2)).await;
    assert_eq!(
        capture.timeouts("timeout.caller_drop"),
        0,
        "no timeout event"
    );
    assert!(
        capture.events_named("timeout.caller_drop").is_empty(),
        "no event at all"
    );

    // Control: the same function timing out does emit the event this test looks for.
    let dropped = Mutex::new(None);
    let out = droppable(&dropped).await;
    assert!(matches!(
        out,
        Err(E::R(Error::Timeout {
            name: "timeout.caller_drop",
            ..
        }))
    ));
    assert_eq!(capture.timeouts("timeout.caller_drop"), 1);
}

// ---------------------------------------------------------------------------------------------
// A body that blocks without yielding cannot be pre-empted: its result is returned, with a
// `warn` event naming the overrun.

/// Moves the paused clock forward without yielding, as a blocking body would.
fn block_for(d: Duration) {
    let mut advance = std::pin::pin!(tokio::time::advance(d));
    // The first poll moves the clock, then yields once; the rest is not needed.
    let _ = common::poll_once(advance.as_mut());
}

#[timeout("200ms", name = "timeout.overrun")]
async fn blocks() -> Result<u32, E> {
    block_for(ms(300));
    Ok(9)
}

#[tokio::test(start_paused = true)]
async fn a_blocking_body_returns_its_result_with_a_warning() {
    let capture = Capture::install();
    let start = Instant::now();
    assert_eq!(blocks().await, Ok(9));
    assert_eq!(start.elapsed(), ms(300));
    assert_eq!(capture.timeouts("timeout.overrun"), 0);
    assert_eq!(
        capture.warnings("timeout.overrun"),
        1,
        "a warn event names the overrun"
    );
}

#[circuit_breaker(threshold = 1, slow_call = "100ms", name = "timeout.overrun_breaker")]
#[timeout("200ms", name = "timeout.overrun_slow")]
async fn blocks_under_breaker() -> Result<u32, E> {
    block_for(ms(300));
    Ok(9)
}

#[tokio::test(start_paused = true)]
async fn an_enclosing_breaker_counts_an_overrun_as_slow() {
    assert_eq!(blocks_under_breaker().await, Ok(9));
    let breaker = resilient::breaker("timeout.overrun_breaker").expect("created by the call");
    assert_eq!(
        breaker.state(),
        CircuitState::Open,
        "one slow call trips threshold = 1"
    );
}

// ---------------------------------------------------------------------------------------------
// Under `#[retry]` the timeout is per attempt; above it, it bounds all attempts together.

#[retry(
    attempts = 3,
    backoff = "100ms",
    strategy = "constant",
    jitter = "none",
    name = "timeout.per_attempt_retry"
)]
#[timeout("50ms", name = "timeout.per_attempt")]
async fn per_attempt(starts: &Mutex<Vec<Duration>>, origin: Instant) -> Result<u32, E> {
    starts.lock().unwrap().push(origin.elapsed());
    sleep(Duration::from_secs(1)).await;
    Ok(1)
}

#[tokio::test(start_paused = true)]
async fn under_retry_the_timeout_applies_to_each_attempt() {
    let starts = Mutex::new(Vec::new());
    let start = Instant::now();
    let out = per_attempt(&starts, start).await;
    assert_eq!(
        out,
        Err(E::R(Error::Timeout {
            name: "timeout.per_attempt",
            after: ms(50),
        }))
    );
    // 50 ms attempt, 100 ms backoff, each attempt cut at 50 ms.
    assert_eq!(*starts.lock().unwrap(), [ms(0), ms(150), ms(300)]);
    assert_eq!(start.elapsed(), ms(350));
}

#[timeout("250ms", name = "timeout.total")]
#[retry(
    attempts = 10,
    backoff = "100ms",
    strategy = "constant",
    jitter = "none",
    name = "timeout.total_retry"
)]
async fn bounded_overall(
    starts: &Mutex<Vec<Duration>>,
    dropped: &Mutex<Option<Instant>>,
    origin: Instant,
) -> Result<u32, E> {
    starts.lock().unwrap().push(origin.elapsed());
    let _guard = DropGuard(dropped);
    sleep(ms(100)).await;
    Err(E::Body)
}

#[tokio::test(start_paused = true)]
async fn above_retry_the_timeout_bounds_all_attempts() {
    let starts = Mutex::new(Vec::new());
    let dropped = Mutex::new(None);
    let start = Instant::now();
    let out = bounded_overall(&starts, &dropped, start).await;
    assert_eq!(
        out,
        Err(E::R(Error::Timeout {
            name: "timeout.total",
            after: ms(250),
        }))
    );
    assert_eq!(start.elapsed(), ms(250));
    // Attempt 1 at 0..100, backoff to 200, attempt 2 cut at 250 mid-flight.
    assert_eq!(*starts.lock().unwrap(), [ms(0), ms(200)]);
    assert_eq!(
        dropped_at(&dropped),
        Some(start + ms(250)),
        "the pending attempt was dropped"
    );
    sleep(Duration::from_secs(10)).await;
    assert_eq!(
        starts.lock().unwrap().len(),
        2,
        "no attempt after the deadline"
    );
}

// ---------------------------------------------------------------------------------------------
// Outside a tokio runtime: `Error::NoRuntime` naming the policy, not a panic.

#[timeout("200ms", name = "timeout.no_runtime")]
async fn needs_a_timer(ran: &AtomicBool) -> Result<u32, E> {
    ran.store(true, Ordering::SeqCst);
    Ok(1)
}

#[test]
fn outside_a_runtime_the_call_returns_no_runtime() {
    let ran = AtomicBool::new(false);
    let out = futures::executor::block_on(needs_a_timer(&ran));
    assert_eq!(
        out,
        Err(E::R(Error::NoRuntime {
            name: "timeout.no_runtime"
        }))
    );
    assert!(!ran.load(Ordering::SeqCst), "the body never ran");
}

// Inside a task the runtime check trusts the task id (a thread-local) instead of cloning the
// runtime's handle. The one way to have a task id without a runtime is a `LocalSet` driven
// outside any runtime: there the body has started, and its first `Pending`, where the timer
// would be created, returns `NoRuntime` instead of tokio's panic.
#[timeout("200ms", name = "timeout.pends_once")]
async fn pends_once(polls: &AtomicU32) -> Result<u32, E> {
    polls.fetch_add(1, Ordering::SeqCst);
    tokio::task::yield_now().await;
    polls.fetch_add(1, Ordering::SeqCst);
    Ok(1)
}

#[test]
fn a_local_set_outside_a_runtime_gets_no_runtime_not_a_panic() {
    static POLLS: AtomicU32 = AtomicU32::new(0);
    let local = tokio::task::LocalSet::new();
    let task = local.spawn_local(async {
        assert!(
            tokio::task::try_id().is_some(),
            "a task, so the check trusts its id"
        );
        pends_once(&POLLS).await
    });
    let out = futures::executor::block_on(local.run_until(task)).expect("task ran");
    assert_eq!(
        out,
        Err(E::R(Error::NoRuntime {
            name: "timeout.pends_once"
        }))
    );
    assert_eq!(
        POLLS.load(Ordering::SeqCst),
        1,
        "dropped at its first Pending"
    );
}

// A runtime built without the time driver has no timers either: tokio panics when one is
// created and offers no query, so the runtime tries one once per thread and runtime and the
// policy returns `NoRuntime` (DESIGN.md 5). The timer is created at the body's first wait, so
// the body has started; one that never waits needs none.
#[test]
fn a_runtime_without_the_time_driver_gets_no_runtime_not_a_panic() {
    static WORKER_POLLS: AtomicU32 = AtomicU32::new(0);
    let no_runtime = Err(E::R(Error::NoRuntime {
        name: "timeout.pends_once",
    }));
    let current = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let polls = AtomicU32::new(0);
    assert_eq!(current.block_on(pends_once(&polls)), no_runtime);
    assert_eq!(polls.load(Ordering::SeqCst), 1, "dropped at its first wait");
    let ran = AtomicBool::new(false);
    assert_eq!(current.block_on(needs_a_timer(&ran)), Ok(1));
    assert!(
        ran.load(Ordering::SeqCst),
        "a body that never waits runs through"
    );

    // On worker threads, in spawned tasks (the task-id check), each thread asking on its own.
    let workers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    let outs = workers.block_on(async {
        let tasks: Vec<_> = (0..8)
            .map(|_| tokio::spawn(pends_once(&WORKER_POLLS)))
            .collect();
        let mut outs = Vec::new();
        for task in tasks {
            outs.push(task.await.expect("no panic in the task"));
        }
        outs
    });
    assert!(outs.iter().all(|out| *out == no_runtime), "{outs:?}");
    assert_eq!(WORKER_POLLS.load(Ordering::SeqCst), 8);

    // The same thread in a runtime with time: timers again.
    let with_time = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    assert_eq!(with_time.block_on(pends_once(&polls)), Ok(1));
}

#[tokio::test(start_paused = true)]
async fn in_a_task_and_in_block_on_the_timeout_still_fires() {
    // `block_on`'s own future: no task id, the handle is looked up.
    assert!(tokio::task::try_id().is_none());
    let polls = AtomicU32::new(0);
    assert_eq!(pends_once(&polls).await, Ok(1));
    // A spawned task: the task id answers; a body slower than the limit still times out.
    let out = tokio::spawn(async { slow_in_task().await })
        .await
        .expect("task");
    assert_eq!(
        out,
        Err(E::R(Error::Timeout {
            name: "timeout.in_task",
            after: ms(50)
        }))
    );
}

#[timeout("50ms", name = "timeout.in_task")]
async fn slow_in_task() -> Result<u32, E> {
    sleep(ms(60)).await;
    Ok(1)
}

// Under a breaker, a missing runtime is not the dependency failing: the breaker does not count
// it (as with an inner `CircuitOpen` or `BulkheadFull`), so it stays closed and every call keeps
// reporting the real cause, `NoRuntime`, rather than `CircuitOpen`.
#[circuit_breaker(threshold = 2, name = "timeout.no_runtime.breaker")]
#[timeout("200ms", name = "timeout.no_runtime.inner")]
async fn breaker_over_a_timer(ran: &AtomicBool) -> Result<u32, E> {
    ran.store(true, Ordering::SeqCst);
    Ok(1)
}

#[test]
fn outside_a_runtime_an_outer_breaker_does_not_count_no_runtime() {
    let ran = AtomicBool::new(false);
    for _ in 0..5 {
        assert_eq!(
            futures::executor::block_on(breaker_over_a_timer(&ran)),
            Err(E::R(Error::NoRuntime {
                name: "timeout.no_runtime.inner"
            }))
        );
    }
    assert!(!ran.load(Ordering::SeqCst), "the body never ran");
    let breaker = resilient::breaker("timeout.no_runtime.breaker").expect("created by the calls");
    assert_eq!(breaker.state(), CircuitState::Closed);
    assert_eq!(breaker.metrics().failures, 0);
}

// ---------------------------------------------------------------------------------------------
// `std::io::Result` and `anyhow::Result` work unchanged through their `From` conversions.

#[timeout("20ms", name = "timeout.io")]
async fn io_call(delay: Duration, fail: bool) -> std::io::Result<u32> {
    sleep(delay).await;
    if fail {
        return Err(std::io::Error::new(std::io::ErrorKind::NotFound, "missing"));
    }
    Ok(5)
}

#[tokio::test(start_paused = true)]
async fn io_result_return_type() {
    let err = io_call(ms(100), false).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert_eq!(
        Error::find(&err),
        Some(&Error::Timeout {
            name: "timeout.io",
            after: ms(20),
        })
    );

    let err = io_call(ms(1), true).await.unwrap_err();
    assert_eq!(
        err.kind(),
        std::io::ErrorKind::NotFound,
        "the body's error is unchanged"
    );
    assert_eq!(Error::find(&err), None);

    assert_eq!(io_call(ms(1), false).await.unwrap(), 5);
}

#[timeout("20ms", name = "timeout.anyhow")]
async fn anyhow_call(delay: Duration, fail: bool) -> anyhow::Result<u32> {
    sleep(delay).await;
    if fail {
        anyhow::bail!("the body failed");
    }
    Ok(5)
}

#[tokio::test(start_paused = true)]
async fn anyhow_result_return_type() {
    let err = anyhow_call(ms(100), false).await.unwrap_err();
    let expected = Error::Timeout {
        name: "timeout.anyhow",
        after: ms(20),
    };
    assert_eq!(Error::find(err.as_ref()), Some(&expected));
    assert_eq!(err.downcast_ref::<Error>(), Some(&expected));

    let err = anyhow_call(ms(1), true).await.unwrap_err();
    assert_eq!(err.to_string(), "the body failed");
    assert_eq!(Error::find(err.as_ref()), None);

    assert_eq!(anyhow_call(ms(1), false).await.unwrap(), 5);
}

// ---------------------------------------------------------------------------------------------
// A body that spends tokio's cooperative budget in every poll (it is always ready to go on)
// must still time out: the timer is polled outside the budget, as tokio's own `timeout` does.

#[timeout("100ms", name = "timeout.budget_hog")]
async fn budget_hog(steps: &AtomicU32) -> Result<u32, E> {
    for step in 0..200_000 {
        tokio::task::consume_budget().await;
        steps.store(step, Ordering::SeqCst);
        if step == 1_000 {
            // The deadline passes while the body keeps running.
            tokio::time::advance(ms(150)).await;
        }
    }
    Ok(0)
}

#[tokio::test(start_paused = true)]
async fn a_body_that_exhausts_the_coop_budget_still_times_out() {
    let steps = AtomicU32::new(0);
    assert_eq!(
        budget_hog(&steps).await,
        Err(E::R(Error::Timeout {
            name: "timeout.budget_hog",
            after: ms(100)
        }))
    );
    let steps = steps.load(Ordering::SeqCst);
    assert!(
        (1_000..2_000).contains(&steps),
        "timed out {steps} steps in, not soon after the deadline"
    );
}
