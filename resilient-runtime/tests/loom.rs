//! loom model tests of the circuit breaker's state machine and of the bulkhead's permits and
//! FIFO queue: every interleaving of a few threads (within a preemption bound) is explored.
//!
//! Run with
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p resilient-runtime --release loom -- --nocapture
//! ```
//!
//! `LOOM_MAX_PREEMPTIONS` (default here: 3) bounds the preemptions per interleaving. Each test
//! prints how many interleavings it explored.
//!
//! Time: the breaker reads tokio's clock, which outside a runtime is the real monotonic clock.
//! The models use a cooldown of 1 ns (over by the next clock read: a trip and the next read are
//! always more than a nanosecond apart, and each model sleeps a microsecond after tripping) or
//! of an hour (never over), and an `inner_timeout` of an hour (a half-open cycle is never
//! "stuck"), so every time-dependent branch goes one way in every interleaving and the models
//! stay deterministic.
#![cfg(loom)]

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize as StdAtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicUsize};
use loom::thread;
use resilient_runtime::{
    BreakerConfig, Bulkhead, BulkheadConfig, CircuitBreaker, CircuitState, Ticket, TripRule,
};

/// Runs `f` under loom with the preemption bound, and prints the interleavings explored.
fn check(name: &str, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    let runs = std::sync::Arc::new(StdAtomicUsize::new(0));
    let counter = runs.clone();
    builder.check(move || {
        counter.fetch_add(1, SeqCst);
        f();
    });
    println!(
        "loom {name}: {} interleavings (preemption bound {})",
        runs.load(SeqCst),
        builder.preemption_bound.unwrap_or(0)
    );
}

const HOUR: Duration = Duration::from_secs(3600);

fn breaker(cooldown: Duration, half_open_calls: u32, success_threshold: u32) -> CircuitBreaker {
    let mut config = BreakerConfig::new(TripRule::Consecutive { threshold: 1 });
    config.cooldown = cooldown;
    config.half_open_calls = half_open_calls;
    config.success_threshold = success_threshold;
    config.inner_timeout = Some(HOUR);
    CircuitBreaker::new("loom", config).expect("valid config")
}

/// Sleeps a microsecond of real time, which is no loom operation: a 1 ns cooldown started
/// before is then over in every interleaving.
#[allow(clippy::disallowed_methods)]
fn let_cooldown_pass() {
    std::thread::sleep(Duration::from_micros(1));
}

/// Opens a closed `threshold = 1` breaker and lets its 1 ns cooldown pass.
fn trip(b: &CircuitBreaker) {
    let t = b.try_acquire().expect("closed");
    b.record(t, true);
    let_cooldown_pass();
}

/// `(generation, is_trial)` of a ticket. The fields are private; their `Debug` is not.
fn ticket_info(t: &Ticket) -> (u64, bool) {
    let text = format!("{t:?}");
    let generation = text
        .split("generation: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.trim().parse().ok())
        .expect("a ticket's Debug shows its generation");
    (generation, text.contains("kind: Trial"))
}

/// Trial tickets held now, per generation; asserts no generation ever holds more than `p`.
/// A std mutex: the bookkeeping must not add interleavings of its own.
#[derive(Default)]
struct Trials {
    held: std::sync::Mutex<HashMap<u64, u32>>,
}

impl Trials {
    fn admitted(&self, t: &Ticket, p: u32) {
        let (generation, trial) = ticket_info(t);
        if trial {
            let mut held = self.held.lock().unwrap();
            let n = held.entry(generation).or_default();
            *n += 1;
            assert!(
                *n <= p,
                "{n} trials in flight in one half-open cycle, at most {p} allowed"
            );
        }
    }

    fn finished(&self, t: &Ticket) {
        let (generation, trial) = ticket_info(t);
        if trial {
            *self.held.lock().unwrap().get_mut(&generation).unwrap() -= 1;
        }
    }
}

/// After every thread is done, no trial is in flight: a half-open breaker (or an open one past
/// its cooldown) admits exactly `p` trials, and rejects the next one. One more would mean a
/// double release; one fewer, a leaked slot.
fn assert_exactly_p_slots(b: &CircuitBreaker, p: u32) {
    match b.state() {
        CircuitState::HalfOpen => {
            let tickets: Vec<_> = (0..p)
                .map(|i| {
                    b.try_acquire()
                        .unwrap_or_else(|e| panic!("slot {i} of {p} leaked: {e}"))
                })
                .collect();
            assert!(tickets.iter().all(|t| ticket_info(t).1));
            assert!(
                b.try_acquire().is_err(),
                "more than {p} slots: one was released twice"
            );
            for t in tickets {
                b.release(t);
            }
        }
        CircuitState::Closed => {}
        other => panic!("unexpected state {other:?}"),
    }
}

mod loom_breaker {
    use super::*;

    /// Concurrent admission in half-open, with recording, cancellation and state reads racing:
    /// at most p trials at once, and afterwards exactly p slots (none leaked, none doubled).
    #[test]
    fn half_open_admits_at_most_p() {
        check("breaker half_open_admits_at_most_p", || {
            let b = Arc::new(breaker(Duration::from_nanos(1), 2, 3));
            trip(&b);
            let trials = Arc::new(Trials::default());
            let mut threads = Vec::new();
            // One caller succeeds, one is cancelled.
            for success in [true, false] {
                let (b, trials) = (b.clone(), trials.clone());
                threads.push(thread::spawn(move || {
                    if let Ok(t) = b.try_acquire() {
                        trials.admitted(&t, 2);
                        trials.finished(&t);
                        if success {
                            b.record(t, false);
                        } else {
                            b.release(t);
                        }
                    }
                }));
            }
            // This one reads state and metrics (which must take no slot), then calls.
            assert_eq!(b.state(), CircuitState::HalfOpen);
            assert_eq!(b.metrics().calls, 0);
            if let Ok(t) = b.try_acquire() {
                trials.admitted(&t, 2);
                trials.finished(&t);
                b.record(t, false);
            }
            for t in threads {
                t.join().unwrap();
            }
            // No failure was recorded: never open again. Success threshold 3 with at most 2
            // successes: still half-open.
            assert_eq!(b.state(), CircuitState::HalfOpen);
            assert_exactly_p_slots(&b, 2);
        });
    }

    /// However many callers arrive at once after the cooldown, exactly p are admitted.
    #[test]
    fn exactly_p_of_many_simultaneous_callers_run() {
        check("breaker exactly_p_of_many_simultaneous_callers_run", || {
            let b = Arc::new(breaker(Duration::from_nanos(1), 2, 2));
            trip(&b);
            let admitted = Arc::new(AtomicUsize::new(0));
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let (b, admitted) = (b.clone(), admitted.clone());
                    thread::spawn(move || {
                        if b.try_acquire().is_ok() {
                            admitted.fetch_add(1, SeqCst);
                        }
                    })
                })
                .collect();
            if b.try_acquire().is_ok() {
                admitted.fetch_add(1, SeqCst);
            }
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(admitted.load(SeqCst), 2, "exactly p trials of 3 callers");
            assert_eq!(b.metrics().rejections, 1);
            assert_eq!(b.state(), CircuitState::HalfOpen);
        });
    }

    /// A failed trial reopens and the next cycle starts while the other trial of the old cycle
    /// is still being handed back (cancelled, or succeeding late): the old cycle's ticket
    /// neither frees a slot of the new cycle nor decides it, and no slot is lost.
    #[test]
    fn old_cycle_tickets_never_touch_a_new_cycle() {
        for late_success in [false, true] {
            check(
                "breaker old_cycle_tickets_never_touch_a_new_cycle",
                move || {
                    let b = Arc::new(breaker(Duration::from_nanos(1), 2, 1));
                    trip(&b);
                    let trials = Arc::new(Trials::default());
                    let (a, late) = (b.try_acquire().unwrap(), b.try_acquire().unwrap());
                    trials.admitted(&a, 2);
                    trials.admitted(&late, 2);
                    let fails = {
                        let (b, trials) = (b.clone(), trials.clone());
                        thread::spawn(move || {
                            // A trial fails: reopen (1 ns cooldown), then a trial of a new cycle.
                            trials.finished(&a);
                            b.record(a, true);
                            let_cooldown_pass();
                            if let Ok(t) = b.try_acquire() {
                                trials.admitted(&t, 2);
                                trials.finished(&t);
                                b.release(t);
                            }
                        })
                    };
                    trials.finished(&late);
                    if late_success {
                        b.record(late, false);
                    } else {
                        b.release(late);
                    }
                    if let Ok(t) = b.try_acquire() {
                        trials.admitted(&t, 2);
                        trials.finished(&t);
                        b.release(t);
                    }
                    fails.join().unwrap();
                    let state = b.state();
                    assert_ne!(
                        state,
                        CircuitState::Open,
                        "open with its 1 ns cooldown over"
                    );
                    assert_exactly_p_slots(&b, 2);
                },
            );
        }
    }

    /// Two failures race to trip a closed breaker: it opens exactly once (one open period,
    /// which neither late outcome extends), and the window is empty once open.
    #[test]
    fn concurrent_failures_open_once() {
        check("breaker concurrent_failures_open_once", || {
            let b = Arc::new(breaker(HOUR, 1, 1));
            let (t1, t2) = (b.try_acquire().unwrap(), b.try_acquire().unwrap());
            let other = {
                let b = b.clone();
                thread::spawn(move || b.record(t1, true))
            };
            b.record(t2, true);
            other.join().unwrap();
            assert_eq!(b.state(), CircuitState::Open);
            match b.try_acquire() {
                Err(resilient_runtime::Error::CircuitOpen {
                    retry_after: Some(left),
                    ..
                }) => assert!(left > Duration::from_secs(3540), "{left:?}"),
                other => panic!("expected an open rejection, got {other:?}"),
            }
        });
    }

    /// Regression (found by this model): an outcome that passed its generation check just
    /// before another thread changed the state used to land in the next cycle's freshly
    /// cleared window. Sequence: `t = try_acquire()` (Closed, generation 0); thread A
    /// `record(t, true)` passes the check and is preempted; thread B `reset()` moves to
    /// generation 1; thread A adds its failure to generation 1's window. The outcome belongs
    /// to the cycle it was admitted in (DESIGN.md 4.1) and `reset` promises an empty window
    /// (DESIGN.md 6). Windows now tag every cell with its generation; checked for each rule.
    #[test]
    fn stale_closed_outcome_is_not_counted_in_a_later_cycle() {
        let rules = [
            ("consecutive", TripRule::Consecutive { threshold: 2 }),
            (
                "count_in_window",
                TripRule::CountInWindow {
                    threshold: 2,
                    window: HOUR,
                },
            ),
            (
                "rate_over_calls",
                TripRule::RateOverCalls {
                    failure_rate: 1.0,
                    last: 3,
                    min_calls: 3,
                },
            ),
            (
                "rate_over_time",
                TripRule::RateOverTime {
                    failure_rate: 1.0,
                    window: HOUR,
                    min_calls: 3,
                },
            ),
        ];
        for (name, rule) in rules {
            check(&format!("breaker stale_closed_outcome {name}"), move || {
                let mut config = BreakerConfig::new(rule);
                config.cooldown = HOUR;
                let b = Arc::new(CircuitBreaker::new("loom", config).unwrap());
                let stale = b.try_acquire().unwrap();
                let recorder = {
                    let b = b.clone();
                    thread::spawn(move || b.record(stale, true))
                };
                b.reset();
                recorder.join().unwrap();
                // Recorded before the reset: gone with it. After: ignored, an earlier cycle's.
                let m = b.metrics();
                assert_eq!(
                    (m.calls, m.failures),
                    (0, 0),
                    "{name}: a stale outcome is in the new window"
                );
                // The new cycle's own outcomes count from zero.
                let t = b.try_acquire().unwrap();
                b.record(t, true);
                assert_eq!(b.metrics().failures, 1, "{name}");
                assert_eq!(b.state(), CircuitState::Closed, "{name}");
            });
        }
    }

    /// A time-window breaker (`min_calls = 3`, an hour's window and cooldown) whose current
    /// bucket one success has started, so that the next success takes the fast path
    /// (`Window::add_success`).
    fn started_time_window(failure_rate: f64) -> Arc<CircuitBreaker> {
        let mut config = BreakerConfig::new(TripRule::RateOverTime {
            failure_rate,
            window: HOUR,
            min_calls: 3,
        });
        config.cooldown = HOUR;
        let b = Arc::new(CircuitBreaker::new("loom", config).unwrap());
        let t = b.try_acquire().unwrap();
        b.record(t, false);
        b
    }

    /// The time window's success fast path (`Window::add_success`) skips the cycle check and
    /// relies on the bucket's stamp: a success admitted before a reset, racing with the reset
    /// and with the new cycle's first success into the same bucket, must not count in the new
    /// cycle, whether it lands before the reset (in the old cycle's started bucket) or after.
    #[test]
    fn stale_success_on_the_fast_path_is_not_counted_in_a_later_cycle() {
        check("breaker stale_success fast path", || {
            let b = started_time_window(1.0);
            let stale = b.try_acquire().unwrap();
            let recorder = {
                let b = b.clone();
                thread::spawn(move || b.record(stale, false))
            };
            b.reset();
            let t = b.try_acquire().unwrap();
            b.record(t, false);
            recorder.join().unwrap();
            assert_eq!(b.metrics().calls, 1, "only the new cycle's own success");
        });
    }

    /// Regression (found in review): the time window's success fast path read `last_failure`
    /// before its compare-and-swap, so a failure could record and judge the rule entirely in
    /// between, without seeing the success, while the success judged nothing. With `min_calls`
    /// that success is the outcome that opens the breaker (DESIGN.md 4.1: the rule is
    /// evaluated after every recorded outcome, successes included). It now reads
    /// `last_failure` after its add, as the general path does.
    #[test]
    fn fast_path_success_racing_a_failure_still_trips() {
        check("breaker fast-path success racing a failure", || {
            let b = started_time_window(0.3);
            let ok = b.try_acquire().unwrap();
            let bad = b.try_acquire().unwrap();
            let success = {
                let b = b.clone();
                thread::spawn(move || b.record(ok, false))
            };
            b.record(bad, true);
            success.join().unwrap();
            // 3 calls, 1 failure: 0.33 >= 0.3 with min_calls reached, whichever came last.
            assert_eq!(b.state(), CircuitState::Open, "{:?}", b.metrics());
        });
    }

    /// The same across a whole open, half-open, closed round: a closed-state outcome held
    /// through it does not count in the next closed cycle, while that cycle's trial closes it.
    #[test]
    fn stale_outcome_across_a_recovery_round() {
        check("breaker stale_outcome_round", || {
            let mut config = BreakerConfig::new(TripRule::Consecutive { threshold: 2 });
            config.cooldown = Duration::from_nanos(1);
            config.inner_timeout = Some(HOUR);
            let b = Arc::new(CircuitBreaker::new("loom", config).unwrap());
            let stale = b.try_acquire().unwrap();
            let recorder = {
                let b = b.clone();
                thread::spawn(move || b.record(stale, true))
            };
            // Open (two fresh failures), recover through one trial, closed again.
            for _ in 0..2 {
                if let Ok(t) = b.try_acquire() {
                    b.record(t, true);
                }
            }
            let_cooldown_pass();
            if let Ok(t) = b.try_acquire() {
                b.record(t, false);
            }
            recorder.join().unwrap();
            if b.state() == CircuitState::Closed {
                assert_eq!(
                    b.metrics().failures,
                    0,
                    "a stale failure survived the round"
                );
            }
        });
    }

    /// Manual control races with a trial: `force_open` always wins (nothing leaves
    /// `ForcedOpen` but a manual call), and after `reset` the breaker is fully usable.
    #[test]
    fn manual_control_races_with_trials() {
        check("breaker manual_control_races_with_trials", || {
            let b = Arc::new(breaker(Duration::from_nanos(1), 1, 1));
            trip(&b);
            let trial = {
                let b = b.clone();
                thread::spawn(move || {
                    if let Ok(t) = b.try_acquire() {
                        b.record(t, false);
                    }
                })
            };
            b.force_open();
            trial.join().unwrap();
            assert_eq!(b.state(), CircuitState::ForcedOpen);
            assert!(b.try_acquire().is_err());
            b.reset();
            assert_eq!(b.state(), CircuitState::Closed);
            assert_eq!(b.metrics().failures, 0);
            trip(&b);
            let t = b.try_acquire().expect("a trial after reset and a new trip");
            b.release(t);
            assert_exactly_p_slots(&b, 1);
        });
    }

    /// `disable` and `reset` race with outcomes: a disabled breaker records nothing.
    #[test]
    fn disable_races_with_outcomes() {
        check("breaker disable_races_with_outcomes", || {
            let b = Arc::new(breaker(HOUR, 1, 1));
            let t = b.try_acquire().unwrap();
            let off = {
                let b = b.clone();
                thread::spawn(move || b.disable())
            };
            let late = b.try_acquire();
            b.record(t, true);
            off.join().unwrap();
            if let Ok(late) = late {
                b.record(late, true);
            }
            // Whatever the order, the last transition was `disable`, or a trip before it.
            assert_eq!(b.state(), CircuitState::Disabled);
            // A disabled breaker records nothing, and shows no earlier cycle's outcome.
            assert_eq!(b.metrics().failures, 0);
            let before = b.metrics();
            let t = b.try_acquire().expect("disabled admits");
            b.record(t, true);
            assert_eq!(b.state(), CircuitState::Disabled);
            assert_eq!(b.metrics(), before);
        });
    }
}

/// Wakes a loom thread parked in [`block_on`].
struct Unpark(thread::Thread);

impl std::task::Wake for Unpark {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.unpark();
    }
}

/// Drives `fut` to completion on the current loom thread, parking it while pending (loom's
/// own `block_on` needs a cargo feature of loom).
fn block_on<F: Future>(fut: F) -> F::Output {
    let waker = Waker::from(std::sync::Arc::new(Unpark(thread::current())));
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut Context::from_waker(&waker)) {
            return out;
        }
        thread::park();
    }
}

/// Polls `fut` once with a waker that does nothing.
fn poll_once<F: Future>(fut: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

fn bulkhead(pool: usize, queue: usize) -> &'static Bulkhead {
    // Leaked so threads and permits can borrow it for `'static`: a few hundred bytes per
    // interleaving.
    Box::leak(Box::new(
        Bulkhead::new(
            "loom",
            BulkheadConfig {
                pool,
                queue,
                max_wait: None,
            },
        )
        .unwrap(),
    ))
}

fn assert_idle(bh: &Bulkhead, pool: usize) {
    assert_eq!(
        (bh.in_flight(), bh.queued(), bh.available()),
        (0, 0, pool),
        "every permit back, nobody queued"
    );
}

mod loom_bulkhead {
    use super::*;

    /// Three callers through a pool of one with a queue of two: never two at once, everyone
    /// runs, every permit comes back.
    #[test]
    fn never_more_than_pool_run() {
        check("bulkhead never_more_than_pool_run", || {
            let bh = bulkhead(1, 2);
            let running = Arc::new(AtomicUsize::new(0));
            let call = {
                let running = running.clone();
                move || {
                    let permit = block_on(bh.acquire()).expect("queued, not full");
                    assert_eq!(running.fetch_add(1, SeqCst), 0, "two calls at once");
                    running.fetch_sub(1, SeqCst);
                    drop(permit);
                }
            };
            let threads: Vec<_> = (0..2).map(|_| thread::spawn(call.clone())).collect();
            call();
            for t in threads {
                t.join().unwrap();
            }
            assert_idle(bh, 1);
        });
    }

    /// A waiter dropped while its permit is being handed to it: the permit is passed on or
    /// returned, never lost, and the dropped waiter leaves the queue.
    #[test]
    fn a_dropped_waiter_loses_no_permit() {
        check("bulkhead a_dropped_waiter_loses_no_permit", || {
            let bh = bulkhead(1, 1);
            let held = block_on(bh.acquire()).unwrap();
            let waiter = thread::spawn(move || {
                let mut wait = pin!(bh.acquire());
                match poll_once(wait.as_mut()) {
                    // Queued: give up.
                    Poll::Pending => {}
                    Poll::Ready(permit) => drop(permit.expect("a place in the queue")),
                }
            });
            drop(held);
            waiter.join().unwrap();
            assert_idle(bh, 1);
            let again = block_on(bh.acquire()).expect("the permit is back");
            drop(again);
        });
    }

    /// First in, first out: a waiter queued first is served before a later one, even while a
    /// waiter between them gives up concurrently with the release.
    #[test]
    fn the_queue_is_fifo_under_drops() {
        check("bulkhead the_queue_is_fifo_under_drops", || {
            let bh = bulkhead(1, 2);
            let held = block_on(bh.acquire()).unwrap();
            // Two waiters, in this order.
            let mut quitter = Box::pin(bh.acquire());
            assert!(poll_once(quitter.as_mut()).is_pending());
            let first_served = Arc::new(AtomicBool::new(false));
            let mut first = Box::pin(bh.acquire());
            assert!(poll_once(first.as_mut()).is_pending());
            assert_eq!(bh.queued(), 2);

            let releaser = thread::spawn(move || drop(held));
            let late = {
                let first_served = first_served.clone();
                thread::spawn(move || {
                    // Arrives after both; may find the queue full (the quitter still in it).
                    if let Ok(permit) = block_on(bh.acquire()) {
                        assert!(
                            first_served.load(SeqCst),
                            "a later arrival was served before an earlier waiter"
                        );
                        drop(permit);
                    }
                })
            };
            drop(quitter);
            let permit = block_on(first).expect("the first waiter is served");
            first_served.store(true, SeqCst);
            drop(permit);
            releaser.join().unwrap();
            late.join().unwrap();
            assert_idle(bh, 1);
        });
    }

    /// A larger pool frees permits at once, for waiters already queued, while permits are
    /// released concurrently; then a smaller pool admits no one until in flight drops below.
    #[test]
    fn reconfigure_races_with_release() {
        check("bulkhead reconfigure_races_with_release", || {
            let bh = bulkhead(1, 2);
            let held = block_on(bh.acquire()).unwrap();
            let mut waiter = Box::pin(bh.acquire());
            assert!(poll_once(waiter.as_mut()).is_pending());
            let grow = thread::spawn(move || {
                bh.reconfigure(BulkheadConfig {
                    pool: 2,
                    queue: 2,
                    max_wait: None,
                })
                .unwrap();
            });
            let releaser = thread::spawn(move || drop(held));
            // Served by whichever comes first: the bigger pool or the release.
            let permit = block_on(waiter).unwrap();
            grow.join().unwrap();
            releaser.join().unwrap();
            assert_eq!((bh.in_flight(), bh.queued(), bh.available()), (1, 0, 1));
            drop(permit);
            assert_idle(bh, 2);
        });
    }
}
