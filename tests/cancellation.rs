//! Cancellation and panics: no permit or trial slot is ever lost or released twice, whether a
//! call succeeds, fails, panics or is dropped, at any layer of a stack.

use common::ms;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};

use futures::FutureExt;
use resilient::{CircuitState, bulkhead, circuit_breaker, retry, timeout};
use tokio::time::{advance, sleep};

mod common;

use common::E;

#[circuit_breaker(threshold = 1, cooldown = "1s", name = "cancel_full")]
#[timeout("500ms")]
#[bulkhead(pool = 2, queue = 2, name = "cancel_full")]
async fn guarded(mode: u8) -> Result<(), E> {
    match mode {
        0 => Ok(()),
        1 => Err(E::Body),
        2 => panic!("body panicked"),
        _ => {
            sleep(ms(10_000)).await;
            Ok(())
        }
    }
}

#[tokio::test(start_paused = true)]
async fn permits_come_back_on_success_error_panic_drop_and_timeout() {
    let bh = || resilient::bulkhead("cancel_full").unwrap();
    let br = || resilient::breaker("cancel_full").unwrap();
    assert_eq!(guarded(0).await, Ok(()));
    assert_eq!(bh().available(), 2);

    // Panic: propagates unchanged, the permit comes back, the breaker counts a failure.
    let panicked = std::panic::AssertUnwindSafe(guarded(2))
        .catch_unwind()
        .await;
    assert!(panicked.is_err());
    assert_eq!(bh().available(), 2);
    assert_eq!(br().state(), CircuitState::Open);
    br().reset();

    // Drop while running: the permit comes back, nothing is recorded.
    let mut running = Box::pin(guarded(3));
    assert!(futures::poll!(running.as_mut()).is_pending());
    assert_eq!(bh().in_flight(), 1);
    drop(running);
    assert_eq!(bh().available(), 2);
    assert_eq!(br().state(), CircuitState::Closed);
    assert_eq!(br().metrics().failures, 0);

    // Timeout: the inner future (and its permit) is dropped at the deadline; a failure.
    assert!(matches!(
        guarded(3).await,
        Err(E::R(resilient::Error::Timeout { .. }))
    ));
    assert_eq!(bh().available(), 2);
    assert_eq!(br().state(), CircuitState::Open);
    br().reset();

    // Dropped waiters leave the queue at once.
    let holders: Vec<_> = (0..2).map(|_| tokio::spawn(guarded(3))).collect();
    tokio::task::yield_now().await;
    assert_eq!(bh().available(), 0);
    let mut waiter = Box::pin(guarded(0));
    assert!(futures::poll!(waiter.as_mut()).is_pending());
    assert_eq!(bh().queued(), 1);
    drop(waiter);
    assert_eq!(bh().queued(), 0);
    for h in holders {
        h.abort();
        assert!(h.await.unwrap_err().is_cancelled());
    }
    assert_eq!(bh().available(), 2);
    assert_eq!(bh().in_flight(), 0);
}

#[circuit_breaker(threshold = 1, cooldown = "1s", name = "cancel_trial")]
async fn trial(hang: bool) -> Result<(), E> {
    if hang {
        sleep(ms(10_000)).await;
        Ok(())
    } else {
        Err(E::Body)
    }
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_trial_returns_its_slot() {
    let br = resilient::breaker;
    assert_eq!(trial(false).await, Err(E::Body));
    assert_eq!(br("cancel_trial").unwrap().state(), CircuitState::Open);
    advance(ms(1_000)).await;
    let mut probe = Box::pin(trial(true));
    assert!(futures::poll!(probe.as_mut()).is_pending());
    // The only slot is taken: a second caller is rejected without a retry_after.
    assert_eq!(
        trial(true).now_or_never(),
        Some(Err(E::R(resilient::Error::CircuitOpen {
            name: "cancel_trial",
            retry_after: None
        })))
    );
    drop(probe);
    // The slot is back: the next call is admitted as a trial (and its failure reopens).
    assert_eq!(trial(false).await, Err(E::Body));
    assert_eq!(br("cancel_trial").unwrap().state(), CircuitState::Open);
}

static ATTEMPTS: AtomicU32 = AtomicU32::new(0);

#[retry(attempts = 5, backoff = "1s", jitter = "none", strategy = "constant")]
async fn retried() -> Result<(), E> {
    ATTEMPTS.fetch_add(1, SeqCst);
    Err(E::Body)
}

#[tokio::test(start_paused = true)]
async fn dropping_a_call_during_backoff_stops_it() {
    let mut call = Box::pin(retried());
    assert!(futures::poll!(call.as_mut()).is_pending());
    assert_eq!(ATTEMPTS.load(SeqCst), 1);
    drop(call);
    advance(ms(10_000)).await;
    assert_eq!(ATTEMPTS.load(SeqCst), 1);
}

#[circuit_breaker(threshold = 100, name = "cancel_storm")]
#[timeout("50ms")]
#[bulkhead(pool = 3, queue = 5, name = "cancel_storm")]
async fn storm(i: u64) -> Result<(), E> {
    sleep(ms(i % 70)).await;
    if i % 5 == 0 {
        Err(E::Body)
    } else if i % 11 == 0 {
        panic!("storm panic {i}");
    } else {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_mixed_outcomes_and_cancellations_leaves_nothing_behind() {
    let mut tasks = Vec::new();
    for i in 0..400u64 {
        let t = tokio::spawn(storm(i));
        if i % 7 == 0 {
            t.abort();
        }
        tasks.push(t);
        if i % 13 == 0 {
            sleep(ms(3)).await;
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    let bh = resilient::bulkhead("cancel_storm").unwrap();
    assert_eq!(bh.available(), 3);
    assert_eq!(bh.in_flight(), 0);
    assert_eq!(bh.queued(), 0);
}
