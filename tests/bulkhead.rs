//! Behaviour of `#[bulkhead]` (DESIGN.md section 4.3) on tokio's paused clock, observed
//! through the bodies and through `resilient::bulkhead(name)`.
//!
//! Every bulkhead here has its own `name`: policy state is process-global and tests run in
//! parallel.

mod common;
use common::{
    E, bulkhead_counts as counts, bulkhead_handle as handle, ms, poll_once, settle_until,
};
use std::pin::pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use resilient::{Error, bulkhead};
use tokio::time::{Instant, sleep};

/// Counts the bodies running at once.
struct Gauge {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Gauge {
    const fn new() -> Self {
        Gauge {
            now: AtomicUsize::new(0),
            max: AtomicUsize::new(0),
        }
    }

    async fn hold(&self, d: Duration) {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
        sleep(d).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------------------------
// `pool = c`: at most c executions at once.

static POOL_GAUGE: Gauge = Gauge::new();

#[bulkhead(pool = 3, queue = 10, name = "bulkhead.pool")]
async fn pooled(origin: Instant) -> Result<Duration, E> {
    POOL_GAUGE.hold(ms(100)).await;
    Ok(origin.elapsed())
}

#[tokio::test(start_paused = true)]
async fn exactly_pool_bodies_run_at_once() {
    let origin = Instant::now();
    let tasks: Vec<_> = (0..8).map(|_| tokio::spawn(pooled(origin))).collect();
    settle_until(|| resilient::bulkhead("bulkhead.pool").is_some_and(|h| h.queued() == 5)).await;
    let h = handle("bulkhead.pool");
    assert_eq!(counts(h), (3, 5, 0));
    assert_eq!(POOL_GAUGE.now.load(Ordering::SeqCst), 3);

    let mut finished = Vec::new();
    for t in tasks {
        finished.push(t.await.unwrap().unwrap());
    }
    finished.sort();
    // Three waves of at most three bodies.
    assert_eq!(finished, [100, 100, 100, 200, 200, 200, 300, 300].map(ms));
    assert_eq!(POOL_GAUGE.max.load(Ordering::SeqCst), 3);
    assert_eq!(origin.elapsed(), ms(300));
    assert_eq!(counts(h), (0, 0, 3));
}

// ---------------------------------------------------------------------------------------------
// `queue = q`: up to q callers wait, first in first out; beyond that, `BulkheadFull` at once.

static FIFO_ORDER: Mutex<Vec<(&str, Duration)>> = Mutex::new(Vec::new());

#[bulkhead(pool = 1, queue = 3, name = "bulkhead.fifo")]
async fn fifo(label: &'static str, origin: Instant) -> Result<(), E> {
    FIFO_ORDER.lock().unwrap().push((label, origin.elapsed()));
    sleep(ms(100)).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn the_queue_is_first_in_first_out() {
    let origin = Instant::now();
    let mut tasks = vec![tokio::spawn(fifo("holder", origin))];
    settle_until(|| resilient::bulkhead("bulkhead.fifo").is_some_and(|h| h.in_flight() == 1)).await;
    let h = handle("bulkhead.fifo");
    // Arrivals in a known order: each waiter is queued before the next one is spawned.
    for (i, label) in ["c", "a", "b"].into_iter().enumerate() {
        tasks.push(tokio::spawn(fifo(label, origin)));
        settle_until(|| h.queued() == i + 1).await;
    }
    assert_eq!(counts(h), (1, 3, 0));
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(
        *FIFO_ORDER.lock().unwrap(),
        [
            ("holder", ms(0)),
            ("c", ms(100)),
            ("a", ms(200)),
            ("b", ms(300))
        ]
    );
    assert_eq!(counts(h), (0, 0, 1));
}

#[bulkhead(pool = 1, queue = 1, name = "bulkhead.full")]
async fn small(ran: &AtomicUsize) -> Result<(), E> {
    ran.fetch_add(1, Ordering::SeqCst);
    sleep(ms(100)).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn beyond_the_queue_a_call_is_rejected_at_once() {
    let ran = AtomicUsize::new(0);
    let start = Instant::now();
    let mut holder = pin!(small(&ran));
    let mut waiter = pin!(small(&ran));
    assert!(poll_once(holder.as_mut()).is_pending());
    assert!(poll_once(waiter.as_mut()).is_pending());
    let h = handle("bulkhead.full");
    assert_eq!(counts(h), (1, 1, 0));
    assert_eq!(ran.load(Ordering::SeqCst), 1);

    let out = small(&ran).await;
    assert_eq!(
        out,
        Err(E::R(Error::BulkheadFull {
            name: "bulkhead.full"
        }))
    );
    assert_eq!(start.elapsed(), ms(0), "rejected without waiting");
    assert_eq!(ran.load(Ordering::SeqCst), 1, "the rejected body never ran");
    assert_eq!(counts(h), (1, 1, 0), "a rejection takes no place");

    // The two admitted calls still complete, in order.
    assert_eq!(holder.await, Ok(()));
    assert_eq!(waiter.await, Ok(()));
    assert_eq!(start.elapsed(), ms(200));
    assert_eq!(counts(h), (0, 0, 1));
}

#[bulkhead(pool = 1, name = "bulkhead.no_queue")]
async fn unqueued(ran: &AtomicUsize) -> Result<(), E> {
    ran.fetch_add(1, Ordering::SeqCst);
    sleep(ms(100)).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn the_queue_defaults_to_zero() {
    let ran = AtomicUsize::new(0);
    let start = Instant::now();
    let mut holder = pin!(unqueued(&ran));
    assert!(poll_once(holder.as_mut()).is_pending());
    assert_eq!(
        unqueued(&ran).await,
        Err(E::R(Error::BulkheadFull {
            name: "bulkhead.no_queue"
        }))
    );
    assert_eq!(start.elapsed(), ms(0));
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    assert_eq!(counts(handle("bulkhead.no_queue")), (1, 0, 0));
    assert_eq!(holder.await, Ok(()));
    assert_eq!(counts(handle("bulkhead.no_queue")), (0, 0, 1));
}

// ---------------------------------------------------------------------------------------------
// `max_wait`: a queued caller gives up after exactly that wait.

#[bulkhead(pool = 1, queue = 2, max_wait = "50ms", name = "bulkhead.max_wait")]
async fn impatient(hold: Duration, ran: &AtomicUsize) -> Result<(), E> {
    ran.fetch_add(1, Ordering::SeqCst);
    sleep(hold).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_queued_caller_gives_up_after_max_wait() {
    let ran = AtomicUsize::new(0);
    let start = Instant::now();
    let mut holder = pin!(impatient(Duration::from_secs(1), &ran));
    assert!(poll_once(holder.as_mut()).is_pending());
    let h = handle("bulkhead.max_wait");

    sleep(ms(10)).await;
    let queued_at = Instant::now();
    let out = impatient(ms(1), &ran).await;
    assert_eq!(
        out,
        Err(E::R(Error::BulkheadFull {
            name: "bulkhead.max_wait"
        }))
    );
    assert_eq!(
        queued_at.elapsed(),
        ms(50),
        "gave up after exactly max_wait"
    );
    assert_eq!(ran.load(Ordering::SeqCst), 1, "the waiter's body never ran");
    assert_eq!(counts(h), (1, 0, 0), "the waiter left the queue");

    assert_eq!(holder.await, Ok(()));
    assert_eq!(start.elapsed(), ms(1000));
    assert_eq!(counts(h), (0, 0, 1));
}

#[bulkhead(
    pool = 1,
    queue = 1,
    max_wait = "50ms",
    name = "bulkhead.max_wait_in_time"
)]
async fn patient(hold: Duration, ran: &AtomicUsize, origin: Instant) -> Result<Duration, E> {
    ran.fetch_add(1, Ordering::SeqCst);
    let started = origin.elapsed();
    sleep(hold).await;
    Ok(started)
}

#[tokio::test(start_paused = true)]
async fn a_queued_caller_admitted_within_max_wait_runs() {
    let ran = AtomicUsize::new(0);
    let start = Instant::now();
    let mut holder = pin!(patient(ms(40), &ran, start));
    assert!(poll_once(holder.as_mut()).is_pending());
    let (a, b) = tokio::join!(holder, patient(ms(10), &ran, start));
    assert_eq!(a, Ok(ms(0)));
    assert_eq!(
        b,
        Ok(ms(40)),
        "admitted when the permit was freed, within max_wait"
    );
    assert_eq!(start.elapsed(), ms(50));
    assert_eq!(ran.load(Ordering::SeqCst), 2);
}

#[bulkhead(pool = 1, queue = 1, name = "bulkhead.unbounded_wait")]
async fn waits_forever(hold: Duration, origin: Instant) -> Result<Duration, E> {
    let started = origin.elapsed();
    sleep(hold).await;
    Ok(started)
}

#[tokio::test(start_paused = true)]
async fn without_max_wait_a_queued_caller_waits_as_long_as_it_takes() {
    let start = Instant::now();
    let hour = Duration::from_secs(3600);
    let (a, b) = tokio::join!(waits_forever(hour, start), waits_forever(ms(1), start));
    assert_eq!(a, Ok(ms(0)));
    assert_eq!(b, Ok(hour));
}

// ---------------------------------------------------------------------------------------------
// The permit is held until the inner future completes, and released on success, error, panic
// and drop, exactly once.

#[bulkhead(pool = 2, queue = 1, name = "bulkhead.release")]
async fn releasing(how: &'static str) -> Result<u32, E> {
    sleep(ms(10)).await;
    match how {
        "ok" => Ok(1),
        "err" => Err(E::Body),
        "panic" => panic!("the body panics"),
        _ => {
            sleep(Duration::from_secs(3600)).await;
            Ok(0)
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_permit_is_released_on_success_error_panic_and_drop() {
    // Success.
    let mut call = pin!(releasing("ok"));
    assert!(poll_once(call.as_mut()).is_pending());
    let h = handle("bulkhead.release");
    assert_eq!(counts(h), (1, 0, 1), "held while the body runs");
    assert_eq!(call.await, Ok(1));
    assert_eq!(counts(h), (0, 0, 2));

    // Error.
    let mut call = pin!(releasing("err"));
    assert!(poll_once(call.as_mut()).is_pending());
    assert_eq!(counts(h), (1, 0, 1));
    assert_eq!(call.await, Err(E::Body));
    assert_eq!(counts(h), (0, 0, 2));

    // Panic.
    let task = tokio::spawn(releasing("panic"));
    settle_until(|| h.in_flight() == 1).await;
    assert!(task.await.unwrap_err().is_panic());
    assert_eq!(counts(h), (0, 0, 2));

    // Drop of a running call.
    let mut call = Box::pin(releasing("hang"));
    assert!(poll_once(call.as_mut()).is_pending());
    assert_eq!(counts(h), (1, 0, 1));
    sleep(ms(20)).await;
    drop(call);
    assert_eq!(counts(h), (0, 0, 2));

    // Never lost, never released twice: the full pool is usable, and no more than it.
    let mut a = Box::pin(releasing("hang"));
    let mut b = Box::pin(releasing("hang"));
    let mut c = Box::pin(releasing("hang"));
    assert!(poll_once(a.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    assert!(poll_once(c.as_mut()).is_pending());
    assert_eq!(counts(h), (2, 1, 0));
    assert_eq!(
        releasing("ok").await,
        Err(E::R(Error::BulkheadFull {
            name: "bulkhead.release"
        }))
    );
    // Dropping a running call hands its permit to the waiter, once.
    drop(a);
    assert!(poll_once(c.as_mut()).is_pending());
    assert_eq!(counts(h), (2, 0, 0));
    drop(b);
    drop(c);
    assert_eq!(counts(h), (0, 0, 2));
}

#[bulkhead(pool = 1, queue = 1, name = "bulkhead.held_to_completion")]
async fn two_phase(phase: &AtomicUsize) -> Result<(), E> {
    phase.store(1, Ordering::SeqCst);
    sleep(ms(100)).await;
    phase.store(2, Ordering::SeqCst);
    sleep(ms(100)).await;
    phase.store(3, Ordering::SeqCst);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn the_permit_is_held_until_the_body_completes() {
    let first = AtomicUsize::new(0);
    let second = AtomicUsize::new(0);
    let start = Instant::now();
    let mut a = pin!(two_phase(&first));
    let mut b = pin!(two_phase(&second));
    assert!(poll_once(a.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    assert_eq!(second.load(Ordering::SeqCst), 0);
    let (ra, rb) = tokio::join!(a, b);
    assert_eq!((ra, rb), (Ok(()), Ok(())));
    // The second body started only once the first had finished both phases.
    assert_eq!(start.elapsed(), ms(400));
}

// ---------------------------------------------------------------------------------------------
// A dropped waiter leaves the queue at once and never runs.

#[bulkhead(pool = 1, queue = 1, name = "bulkhead.dropped_waiter")]
async fn queued_body(ran: &AtomicBool, hold: Duration) -> Result<(), E> {
    ran.store(true, Ordering::SeqCst);
    sleep(hold).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_dropped_waiter_leaves_the_queue_at_once_and_never_runs() {
    let holder_ran = AtomicBool::new(false);
    let dropped_ran = AtomicBool::new(false);
    let next_ran = AtomicBool::new(false);
    let start = Instant::now();

    let mut holder = pin!(queued_body(&holder_ran, ms(100)));
    assert!(poll_once(holder.as_mut()).is_pending());
    let h = handle("bulkhead.dropped_waiter");

    let mut waiter = Box::pin(queued_body(&dropped_ran, ms(1)));
    assert!(poll_once(waiter.as_mut()).is_pending());
    assert_eq!(counts(h), (1, 1, 0));
    drop(waiter);
    assert_eq!(counts(h), (1, 0, 0), "the place is free at once");

    // The freed place takes a new waiter, which gets the permit the dropped one would have.
    let (a, b) = tokio::join!(holder, queued_body(&next_ran, ms(1)));
    assert_eq!((a, b), (Ok(()), Ok(())));
    assert!(holder_ran.load(Ordering::SeqCst));
    assert!(next_ran.load(Ordering::SeqCst));
    assert!(
        !dropped_ran.load(Ordering::SeqCst),
        "the dropped waiter never ran"
    );
    assert_eq!(start.elapsed(), ms(101));
    assert_eq!(counts(h), (0, 0, 1));
}

// ---------------------------------------------------------------------------------------------
// Naming: without `name`, the registry key is `module_path::fn_name`; state is created at the
// first call.

#[bulkhead(pool = 4)]
async fn unnamed_bulkhead() -> Result<(), E> {
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn without_name_the_handle_is_found_by_the_derived_key() {
    assert!(resilient::bulkhead("bulkhead.never_called").is_none());
    unnamed_bulkhead().await.unwrap();
    let h = handle("bulkhead::unnamed_bulkhead");
    assert_eq!(counts(h), (0, 0, 4));
}

// ---------------------------------------------------------------------------------------------
// Outside a tokio runtime: a bulkhead needs no timer, unless a queued caller has a `max_wait`.

#[bulkhead(pool = 1, queue = 1, name = "bulkhead.no_timer")]
async fn no_timer(gate: &futures::lock::Mutex<()>, ran: &AtomicUsize) -> Result<(), E> {
    ran.fetch_add(1, Ordering::SeqCst);
    let _open = gate.lock().await;
    Ok(())
}

#[bulkhead(pool = 1, queue = 1, max_wait = "50ms", name = "bulkhead.needs_timer")]
async fn needs_timer(gate: &futures::lock::Mutex<()>, ran: &AtomicUsize) -> Result<(), E> {
    ran.fetch_add(1, Ordering::SeqCst);
    let _open = gate.lock().await;
    Ok(())
}

#[test]
fn outside_a_runtime() {
    let gate = futures::lock::Mutex::new(());
    let ran = AtomicUsize::new(0);
    futures::executor::block_on(async {
        // Without `max_wait`, queueing works on any executor.
        let closed = gate.lock().await;
        let mut holder = pin!(no_timer(&gate, &ran));
        assert!(futures::poll!(holder.as_mut()).is_pending());
        let mut waiter = pin!(no_timer(&gate, &ran));
        assert!(futures::poll!(waiter.as_mut()).is_pending());
        assert_eq!(counts(handle("bulkhead.no_timer")), (1, 1, 0));
        drop(closed);
        assert_eq!(holder.await, Ok(()));
        assert_eq!(waiter.await, Ok(()));
        assert_eq!(ran.load(Ordering::SeqCst), 2);

        // A free permit needs no timer even with `max_wait`.
        assert_eq!(needs_timer(&gate, &ran).await, Ok(()));
        // Queueing with `max_wait` does: `NoRuntime` naming the bulkhead, not a panic.
        let closed = gate.lock().await;
        let mut holder = pin!(needs_timer(&gate, &ran));
        assert!(futures::poll!(holder.as_mut()).is_pending());
        assert_eq!(
            needs_timer(&gate, &ran).await,
            Err(E::R(Error::NoRuntime {
                name: "bulkhead.needs_timer"
            }))
        );
        assert_eq!(counts(handle("bulkhead.needs_timer")), (1, 0, 0));
        drop(closed);
        assert_eq!(holder.await, Ok(()));
        assert_eq!(ran.load(Ordering::SeqCst), 4);
    });

    // A runtime built without the time driver has no timer for `max_wait` either: the same
    // `NoRuntime`, not tokio's panic (DESIGN.md 5).
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let closed = gate.lock().await;
        let mut holder = pin!(needs_timer(&gate, &ran));
        assert!(futures::poll!(holder.as_mut()).is_pending());
        assert_eq!(
            needs_timer(&gate, &ran).await,
            Err(E::R(Error::NoRuntime {
                name: "bulkhead.needs_timer"
            }))
        );
        assert_eq!(counts(handle("bulkhead.needs_timer")), (1, 0, 0));
        drop(closed);
        assert_eq!(holder.await, Ok(()));
        assert_eq!(
            ran.load(Ordering::SeqCst),
            5,
            "the refused caller never ran"
        );
    });
}

// ---------------------------------------------------------------------------------------------
// Regression: a caller joins the queue when its admission future is created, and that future
// may be dropped before it is ever polled. Its place in the queue must go with it (the guard
// used to be created only at the first poll, so the next release handed a permit to a ghost
// and the bulkhead stayed full for good). Only the expansion's own API can drop the future
// that early, so this test uses it directly.

#[tokio::test(start_paused = true)]
async fn a_queued_arrival_dropped_before_its_first_poll_leaves_no_waiter() {
    use resilient::__private as p;
    static SITE: p::Site = p::site!("ghost");
    static GHOST: p::BulkheadSite = p::BulkheadSite::new(
        &SITE,
        p::Some("bulkhead.ghost"),
        p::BulkheadConfig {
            pool: 1,
            queue: 1,
            max_wait: p::None,
        },
    );
    let running = p::bulkhead_enter(&GHOST).await.expect("a free permit");
    let queued = p::bulkhead_enter(&GHOST);
    assert_eq!(counts(handle("bulkhead.ghost")), (1, 1, 0));
    drop(queued);
    assert_eq!(
        counts(handle("bulkhead.ghost")),
        (1, 0, 0),
        "the waiter left"
    );
    drop(running);
    assert_eq!(
        counts(handle("bulkhead.ghost")),
        (0, 0, 1),
        "the permit came back"
    );
    let again = p::bulkhead_enter(&GHOST)
        .await
        .expect("the permit is free again");
    drop(again);
    assert_eq!(counts(handle("bulkhead.ghost")), (0, 0, 1));
}
