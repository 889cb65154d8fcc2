//! The hot paths made fast for issue 5, checked from outside: the time window's success fast
//! path against the rule (including the race a review found, also modelled in loom), the
//! per-thread rejection tally, and slow-call timing taken from an inner timeout.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{E, ms};
use resilient::{BreakerConfig, CircuitBreaker, CircuitState, TripRule};

fn rate_breaker(name: &'static str, failure_rate: f64, min_calls: u32) -> CircuitBreaker {
    let mut config = BreakerConfig::new(TripRule::RateOverTime {
        failure_rate,
        window: Duration::from_secs(3600),
        min_calls,
    });
    config.cooldown = Duration::from_secs(3600);
    CircuitBreaker::new(name, config).expect("valid")
}

// -------------------------------------------------------------------------------------------
// 1. `Window::add_success` used to load `last_failure` before its compare-and-swap. A failure that
// records and evaluates entirely in between does not see the success, and the success does not
// evaluate: with `min_calls`, the success that completes the sample is never judged.
// Fixed: it now reads `last_failure` after its add. The deterministic check is the loom model
// `fast_path_success_racing_a_failure_still_trips`; this stress version is probabilistic and
// slow, so it is ignored by default (`cargo test --release --test hot_paths -- --ignored`).

#[test]
#[ignore = "probabilistic stress; run with --ignored"]
fn stress_fast_path_success_racing_a_failure_still_trips() {
    // The main thread records the failure, one helper thread the success; spin handshakes.
    let iters: u64 = std::env::var("STRESS_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let phase = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let slot: std::sync::Mutex<Option<(Arc<CircuitBreaker>, resilient::Ticket)>> =
        std::sync::Mutex::new(None);
    let mut missed = 0u64;
    std::thread::scope(|s| {
        let (phase, done, slot) = (&phase, &done, &slot);
        s.spawn(move || {
            for i in 1..=iters {
                while phase.load(Ordering::Acquire) < i {
                    std::hint::spin_loop();
                }
                let (b, ok) = slot.lock().unwrap().clone().unwrap();
                b.record(ok, false);
                done.store(i, Ordering::Release);
            }
        });
        for i in 1..=iters {
            let b = Arc::new(rate_breaker("review.stress", 0.3, 3));
            let t = b.try_acquire().unwrap();
            b.record(t, false);
            let ok = b.try_acquire().unwrap();
            let bad = b.try_acquire().unwrap();
            *slot.lock().unwrap() = Some((b.clone(), ok));
            phase.store(i, Ordering::Release);
            // Vary the start so the two recordings overlap at different offsets.
            for _ in 0..(i % 64) {
                std::hint::spin_loop();
            }
            b.record(bad, true);
            while done.load(Ordering::Acquire) < i {
                std::hint::spin_loop();
            }
            if b.state() == CircuitState::Closed {
                missed += 1;
            }
        }
    });
    assert_eq!(
        missed, 0,
        "{missed} of {iters} runs stayed closed at 3 calls, 1 failure (rate 0.33 >= 0.3)"
    );
}

/// Sequential baseline: the same outcomes one after the other trip the breaker in
/// either order, so a closed breaker in the stress test above is the race, not the rule.
#[test]
fn sequential_failure_then_fast_path_success_trips() {
    for failure_first in [true, false] {
        let b = rate_breaker("review.seq", 0.3, 3);
        let t = b.try_acquire().unwrap();
        b.record(t, false);
        let ok = b.try_acquire().unwrap();
        let bad = b.try_acquire().unwrap();
        if failure_first {
            b.record(bad, true);
            assert_eq!(b.state(), CircuitState::Closed);
            b.record(ok, false);
        } else {
            b.record(ok, false);
            b.record(bad, true);
        }
        assert_eq!(
            b.state(),
            CircuitState::Open,
            "failure_first = {failure_first}"
        );
    }
}

// -------------------------------------------------------------------------------------------
// 2. Tally: rejections from thread-local destructors (before and after the tally's own lease
// thread-local is destroyed) and from many short-lived threads are all counted exactly.

struct RejectOnDrop(&'static CircuitBreaker);

impl Drop for RejectOnDrop {
    fn drop(&mut self) {
        assert!(self.0.try_acquire().is_err());
    }
}

#[test]
fn rejections_from_tls_destructors_are_counted() {
    static B: std::sync::OnceLock<CircuitBreaker> = std::sync::OnceLock::new();
    let b: &'static CircuitBreaker = B.get_or_init(|| rate_breaker("review.tally", 0.5, 1));
    b.force_open();
    thread_local! {
        static GUARD: std::cell::RefCell<Option<RejectOnDrop>> = const { std::cell::RefCell::new(None) };
    }
    let threads: u64 = 40;
    for round in 0..threads {
        std::thread::spawn(move || match round % 3 {
            // Our TLS first, then the lease: the lease is destroyed first (LIFO), so the
            // destructor's rejection finds no lease and goes to the shared counter.
            0 => {
                GUARD.with(|g| *g.borrow_mut() = Some(RejectOnDrop(b)));
                assert!(b.try_acquire().is_err());
            }
            // The lease first: it outlives our destructor, which uses the slot.
            1 => {
                assert!(b.try_acquire().is_err());
                GUARD.with(|g| *g.borrow_mut() = Some(RejectOnDrop(b)));
            }
            // The lease is first taken inside the destructor (registered during teardown).
            _ => {
                GUARD.with(|g| *g.borrow_mut() = Some(RejectOnDrop(b)));
                GUARD.with(|_| ());
                assert!(b.try_acquire().is_err());
            }
        })
        .join()
        .unwrap();
    }
    assert_eq!(b.metrics().rejections, 2 * threads);
    // After all that, 16 concurrent threads still count exactly.
    let before = b.metrics().rejections;
    std::thread::scope(|s| {
        for _ in 0..20 {
            s.spawn(|| {
                for _ in 0..1000 {
                    assert!(b.try_acquire().is_err());
                }
            });
        }
    });
    assert_eq!(b.metrics().rejections - before, 20_000);
}

// -------------------------------------------------------------------------------------------
// 3. slow_call through the macro stack with an inner timeout (the timeout's completion time):
// a call of exactly `slow_call` is not slow, one a millisecond longer is.

#[resilient::circuit_breaker(threshold = 1, slow_call = "100ms", name = "review.slow")]
#[resilient::timeout("1s")]
async fn takes(d: Duration) -> Result<u32, E> {
    tokio::time::sleep(d).await;
    Ok(1)
}

#[tokio::test(start_paused = true)]
async fn slow_call_with_inner_timeout_completion_time() {
    assert_eq!(takes(ms(100)).await, Ok(1));
    assert_eq!(
        common::breaker_handle("review.slow").state(),
        CircuitState::Closed
    );
    assert_eq!(takes(ms(101)).await, Ok(1));
    assert_eq!(
        common::breaker_handle("review.slow").state(),
        CircuitState::Open
    );
}

// -------------------------------------------------------------------------------------------
// 4. A success through the macro stack (breaker > timeout, the fast path with the timeout's
// completion time) completes the sample after failures and trips the breaker.

#[resilient::circuit_breaker(failure_rate = 0.5, window = "10s", min_calls = 4, name = "review.tw")]
#[resilient::timeout("1s")]
async fn outcome(fail: bool) -> Result<u32, E> {
    tokio::time::sleep(ms(1)).await;
    if fail { Err(E::Body) } else { Ok(1) }
}

#[tokio::test(start_paused = true)]
async fn time_window_success_completing_min_calls_trips() {
    assert_eq!(outcome(false).await, Ok(1));
    assert_eq!(outcome(true).await, Err(E::Body));
    assert_eq!(outcome(true).await, Err(E::Body));
    let h = common::breaker_handle("review.tw");
    assert_eq!(h.state(), CircuitState::Closed);
    // 4 calls, 2 failures: 0.5 >= 0.5 at min_calls. The success is the deciding outcome.
    assert_eq!(outcome(false).await, Ok(1));
    assert_eq!(h.state(), CircuitState::Open);
}
