//! Helpers shared by the integration tests. Each test binary uses only some of them.
#![allow(dead_code, unreachable_pub)]

pub(crate) mod capture;

/// `n` milliseconds.
pub(crate) const fn ms(n: u64) -> std::time::Duration {
    std::time::Duration::from_millis(n)
}

/// The error type of tests that need the body's own error and a rejection apart.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum E {
    /// The body failed.
    Body,
    /// A policy rejected or abandoned the call.
    R(resilient::Error),
}

impl From<resilient::Error> for E {
    fn from(e: resilient::Error) -> Self {
        E::R(e)
    }
}

/// `n` seconds.
pub(crate) const fn secs(n: u64) -> std::time::Duration {
    std::time::Duration::from_secs(n)
}

/// The handle of a breaker that a first call has created.
#[track_caller]
pub(crate) fn breaker_handle(name: &str) -> resilient::BreakerHandle {
    resilient::breaker(name).unwrap_or_else(|| panic!("breaker {name:?} is not registered"))
}

/// The handle of a bulkhead that a first call has created.
#[track_caller]
pub(crate) fn bulkhead_handle(name: &str) -> resilient::BulkheadHandle {
    resilient::bulkhead(name).unwrap_or_else(|| panic!("bulkhead {name:?} is not registered"))
}

/// A bulkhead's `(in_flight, queued, available)`.
pub(crate) fn bulkhead_counts(h: resilient::BulkheadHandle) -> (usize, usize, usize) {
    (h.in_flight(), h.queued(), h.available())
}

/// Lets every spawned task run until it waits on something; no clock moves.
pub(crate) async fn settle() {
    for _ in 0..32 {
        tokio::task::yield_now().await;
    }
}

/// Yields (no clock moves) until `cond` holds; long enough for tasks on other worker threads.
pub(crate) async fn settle_until(mut cond: impl FnMut() -> bool) {
    for _ in 0..5_000_000 {
        if cond() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the condition never held");
}

/// Polls `fut` once with a no-op waker.
pub(crate) fn poll_once<F: std::future::Future>(
    fut: std::pin::Pin<&mut F>,
) -> std::task::Poll<F::Output> {
    let waker = futures::task::noop_waker();
    fut.poll(&mut std::task::Context::from_waker(&waker))
}
