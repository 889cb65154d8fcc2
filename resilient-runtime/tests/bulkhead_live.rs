//! Live reconfiguration of a [`Bulkhead`]: validation, a larger pool freeing permits at once, a
//! smaller pool admitting no one until in-flight calls drop below it, in-flight calls keeping
//! their permits, and `queue` / `max_wait` applying to callers arriving after the change.
#![cfg(not(loom))]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use resilient_runtime::{Bulkhead, BulkheadConfig, BulkheadPermit, Error};
use tokio::time::Instant;

fn config(pool: usize, queue: usize, max_wait: Option<u64>) -> BulkheadConfig {
    BulkheadConfig {
        pool,
        queue,
        max_wait: max_wait.map(Duration::from_millis),
    }
}

type Acquire<'a> = Pin<Box<dyn Future<Output = Result<BulkheadPermit<'a>, Error>> + 'a>>;

fn arrive(bh: &Bulkhead) -> Acquire<'_> {
    let mut f: Acquire<'_> = Box::pin(bh.acquire());
    assert!(poll(&mut f).is_pending(), "expected to queue");
    f
}

fn poll<'a>(f: &mut Acquire<'a>) -> Poll<Result<BulkheadPermit<'a>, Error>> {
    f.as_mut().poll(&mut Context::from_waker(Waker::noop()))
}

fn counts(bh: &Bulkhead) -> (usize, usize, usize) {
    (bh.in_flight(), bh.queued(), bh.available())
}

#[tokio::test(start_paused = true)]
async fn an_invalid_configuration_is_refused_and_changes_nothing() {
    let bh = Bulkhead::new("live.invalid", config(2, 1, None)).unwrap();
    let held = bh.acquire().await.unwrap();
    for bad in [
        config(0, 1, None),
        config(1, 0, Some(10)),
        config(1, 1, Some(0)),
    ] {
        let err = bh.reconfigure(bad).unwrap_err();
        assert!(err.starts_with('`'), "names the key: {err}");
        assert_eq!(bh.config(), config(2, 1, None));
        assert_eq!(counts(&bh), (1, 0, 1));
    }
    drop(held);
    assert_eq!(counts(&bh), (0, 0, 2));
}

#[tokio::test(start_paused = true)]
async fn a_larger_pool_frees_permits_at_once_in_fifo_order() {
    let bh = Bulkhead::new("live.grow", config(1, 3, None)).unwrap();
    let held = bh.acquire().await.unwrap();
    let mut waiters: Vec<_> = (0..3).map(|_| arrive(&bh)).collect();
    assert_eq!(counts(&bh), (1, 3, 0));

    bh.reconfigure(config(3, 3, None)).unwrap();
    // Two new permits, to the two oldest waiters, without any release.
    assert_eq!(counts(&bh), (3, 1, 0));
    let first = poll(&mut waiters[0]);
    let second = poll(&mut waiters[1]);
    assert!(matches!(first, Poll::Ready(Ok(_))));
    assert!(matches!(second, Poll::Ready(Ok(_))));
    assert!(
        poll(&mut waiters[2]).is_pending(),
        "the youngest still waits"
    );

    drop(held);
    let third = poll(&mut waiters[2]);
    assert!(matches!(third, Poll::Ready(Ok(_))));
    drop((first, second, third));
    drop(waiters);
    assert_eq!(counts(&bh), (0, 0, 3));
}

#[tokio::test(start_paused = true)]
async fn a_smaller_pool_admits_no_one_until_in_flight_drops_below_it() {
    let bh = Bulkhead::new("live.shrink", config(3, 2, None)).unwrap();
    let mut held: Vec<_> = Vec::new();
    for _ in 0..3 {
        held.push(bh.acquire().await.unwrap());
    }
    bh.reconfigure(config(1, 2, None)).unwrap();
    // In-flight calls keep their permits; none is free.
    assert_eq!(counts(&bh), (3, 0, 0));
    let mut waiter = arrive(&bh);
    drop(held.pop());
    assert!(poll(&mut waiter).is_pending(), "2 in flight, pool 1");
    assert_eq!(counts(&bh), (2, 1, 0));
    drop(held.pop());
    assert!(poll(&mut waiter).is_pending(), "1 in flight, pool 1");
    drop(held.pop());
    let permit = poll(&mut waiter);
    assert!(
        matches!(permit, Poll::Ready(Ok(_))),
        "below the pool at last"
    );
    assert_eq!(counts(&bh), (1, 0, 0));
    drop(permit);
    drop(waiter);
    assert_eq!(counts(&bh), (0, 0, 1));
}

#[tokio::test(start_paused = true)]
async fn queue_and_max_wait_apply_to_callers_arriving_after() {
    let bh = Bulkhead::new("live.queue", config(1, 2, None)).unwrap();
    let held = bh.acquire().await.unwrap();
    let mut early = [arrive(&bh), arrive(&bh)];

    // A smaller queue keeps both waiters; a new caller finds it full.
    bh.reconfigure(config(1, 1, Some(50))).unwrap();
    assert_eq!(counts(&bh), (1, 2, 0));
    assert!(matches!(
        bh.acquire().await,
        Err(Error::BulkheadFull { name: "live.queue" })
    ));

    // The early waiters have no deadline: still queued long after 50 ms.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(poll(&mut early[0]).is_pending() && poll(&mut early[1]).is_pending());

    // A caller arriving after the change gets `max_wait`.
    bh.reconfigure(config(1, 3, Some(50))).unwrap();
    let start = Instant::now();
    assert!(matches!(
        bh.acquire().await,
        Err(Error::BulkheadFull { .. })
    ));
    assert_eq!(start.elapsed(), Duration::from_millis(50));
    assert_eq!(counts(&bh), (1, 2, 0), "the late caller left the queue");

    drop(held);
    let first = poll(&mut early[0]);
    assert!(matches!(first, Poll::Ready(Ok(_))));
    drop(first);
    assert!(matches!(poll(&mut early[1]), Poll::Ready(Ok(_))));
    drop(early);
    assert_eq!(counts(&bh), (0, 0, 1));
}

/// A waiter that was handed a permit and is dropped before it sees it passes the permit on.
#[tokio::test(start_paused = true)]
async fn a_permit_handed_to_a_waiter_that_leaves_goes_to_the_next() {
    let bh = Bulkhead::new("live.handoff", config(1, 2, None)).unwrap();
    let held = bh.acquire().await.unwrap();
    let (gone, mut next) = (arrive(&bh), arrive(&bh));
    drop(held);
    assert_eq!(counts(&bh), (1, 1, 0), "handed to the first waiter");
    drop(gone);
    assert_eq!(counts(&bh), (1, 0, 0), "passed on to the next");
    let permit = poll(&mut next);
    assert!(matches!(permit, Poll::Ready(Ok(_))));
    drop(permit);
    drop(next);
    assert_eq!(counts(&bh), (0, 0, 1));
}
