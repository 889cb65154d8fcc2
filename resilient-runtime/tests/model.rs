//! Model-based property tests of the circuit breaker: random sequences of time advances, call
//! admissions and outcomes (success, failure, an error the `failure` predicate rejects, slow
//! success, panic, cancellation), manual control and state reads run against the real
//! [`CircuitBreaker`] and against [`Model`], a small sequential reference written from
//! DESIGN.md section 4.1. After every step the state, `is_ramping`, every metric and every
//! rejection's `retry_after` must agree.
//!
//! Calls are held open across steps, so outcomes arrive late, after state changes, in any
//! order. Half of them go through [`CircuitBreaker::call`] with a real body future (finished by
//! a message, panicking inside the body, or dropped), the rest through the ticket API
//! (`try_acquire`, `record`, `release`), which is how an error the `failure` predicate
//! rejects reaches the breaker: `record(ticket, false)`.
//!
//! Time is tokio's paused clock: exact, in nanoseconds since the breaker was created.
//! `PROPTEST_CASES` sets the number of cases (default 512).
#![cfg(not(loom))]

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use proptest::prelude::*;
use resilient_runtime::{
    BreakerConfig, BreakerMetrics, CircuitBreaker, CircuitState, Error, Ticket, TripRule,
};
use tokio::sync::oneshot;

const MS: u64 = 1_000_000;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---------------------------------------------------------------------------------------------
// The reference model.

/// A call admitted by the model: the cycle it belongs to, whether it is a trial, when.
#[derive(Debug, Clone, Copy)]
struct MTicket {
    cycle: u64,
    kind: MKind,
    started: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MKind {
    Closed,
    Trial,
    Untracked,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum MState {
    /// `ramp_start`: set while a ramp may be running (cleared by the first call after it).
    Closed {
        ramp_start: Option<u64>,
    },
    Open {
        until: u64,
    },
    HalfOpen {
        trials: u64,
        successes: u64,
    },
    ForcedOpen,
    Disabled,
}

/// DESIGN.md 4.1, written as plainly as possible: a list of the outcomes recorded in the
/// current cycle, and the rule evaluated over it from scratch.
#[derive(Debug)]
struct Model {
    config: BreakerConfig,
    now: u64,
    state: MState,
    /// Bumped on every state change; tickets of an earlier cycle change nothing.
    cycle: u64,
    /// Consecutive failed trials: the exponent of the cooldown (with `max_cooldown`).
    level: u32,
    /// `(time, failure)` of every outcome recorded since the last state change.
    window: Vec<(u64, bool)>,
    rejections: u64,
    /// Time of the newest trial admission, for the stuck-cycle rule.
    last_trial: u64,
    /// Ramp admission credit, in nanoseconds (admitted at `ramp`).
    credit: u64,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Model {
    fn new(config: BreakerConfig) -> Self {
        Model {
            config,
            now: 0,
            state: MState::Closed { ramp_start: None },
            cycle: 0,
            level: 0,
            window: Vec::new(),
            rejections: 0,
            last_trial: 0,
            credit: 0,
        }
    }

    fn cooldown(&self, level: u32) -> u64 {
        let base = nanos(self.config.cooldown);
        match self.config.max_cooldown {
            None => base,
            Some(max) => base.saturating_mul(1u64 << level.min(31)).min(nanos(max)),
        }
    }

    /// Time into the ramp, while it runs.
    fn ramp_elapsed(&self) -> Option<u64> {
        match (self.state, self.config.ramp) {
            (
                MState::Closed {
                    ramp_start: Some(start),
                },
                Some(ramp),
            ) if self.now - start < nanos(ramp) => Some(self.now - start),
            _ => None,
        }
    }

    fn change(&mut self, state: MState) {
        self.state = state;
        self.cycle += 1;
        self.window.clear();
    }

    /// Opens; a failed trial (or a reopening during the ramp) doubles the next cooldown.
    fn trip(&mut self, failed_trial: bool) {
        self.level = if failed_trial {
            (self.level + 1).min(31)
        } else {
            0
        };
        let until = self.now + self.cooldown(self.level);
        self.change(MState::Open { until });
    }

    fn reject(&mut self, retry_after: Option<u64>) -> Result<MTicket, Option<Duration>> {
        self.rejections += 1;
        Err(retry_after.map(Duration::from_nanos))
    }

    fn state(&self) -> CircuitState {
        match self.state {
            MState::Closed { .. } => CircuitState::Closed,
            MState::Open { until } if self.now >= until => CircuitState::HalfOpen,
            MState::Open { .. } => CircuitState::Open,
            MState::HalfOpen { .. } => CircuitState::HalfOpen,
            MState::ForcedOpen => CircuitState::ForcedOpen,
            MState::Disabled => CircuitState::Disabled,
        }
    }

    fn ticket(&self, kind: MKind) -> MTicket {
        MTicket {
            cycle: self.cycle,
            kind,
            started: self.now,
        }
    }

    fn acquire(&mut self) -> Result<MTicket, Option<Duration>> {
        let p = u64::from(self.config.half_open_calls);
        match self.state {
            MState::Closed { ramp_start: None } => Ok(self.ticket(MKind::Closed)),
            MState::Closed {
                ramp_start: Some(_),
            } => {
                let Some(elapsed) = self.ramp_elapsed() else {
                    // The ramp is over: fully closed, base cooldown.
                    self.state = MState::Closed { ramp_start: None };
                    self.level = 0;
                    return Ok(self.ticket(MKind::Closed));
                };
                let ramp = nanos(self.config.ramp.unwrap());
                self.credit += elapsed;
                if self.credit >= ramp {
                    self.credit -= ramp;
                    Ok(self.ticket(MKind::Closed))
                } else {
                    self.reject(None)
                }
            }
            MState::Disabled => Ok(self.ticket(MKind::Untracked)),
            MState::ForcedOpen => self.reject(None),
            MState::Open { until } => {
                if self.now < until {
                    return self.reject(Some(until - self.now));
                }
                self.change(MState::HalfOpen {
                    trials: 1,
                    successes: 0,
                });
                self.last_trial = self.now;
                Ok(self.ticket(MKind::Trial))
            }
            MState::HalfOpen { trials, successes } => {
                if trials < p {
                    self.state = MState::HalfOpen {
                        trials: trials + 1,
                        successes,
                    };
                    self.last_trial = self.now;
                    return Ok(self.ticket(MKind::Trial));
                }
                let limit = self
                    .config
                    .cooldown
                    .max(self.config.inner_timeout.unwrap_or(Duration::ZERO));
                if self.now - self.last_trial <= nanos(limit) {
                    return self.reject(None);
                }
                // Stuck: every slot held for too long counts as a failed trial.
                self.trip(true);
                let MState::Open { until } = self.state else {
                    unreachable!()
                };
                self.reject(Some(until - self.now))
            }
        }
    }

    fn record(&mut self, t: MTicket, failure: bool) {
        let slow = self
            .config
            .slow_call
            .is_some_and(|limit| self.now - t.started > nanos(limit));
        let failure = failure || slow;
        if t.cycle != self.cycle {
            return;
        }
        match (t.kind, self.state) {
            (MKind::Closed, MState::Closed { .. }) => {
                self.window.push((self.now, failure));
                if self.rule_trips() {
                    let during_ramp = self.ramp_elapsed().is_some();
                    self.trip(during_ramp);
                }
            }
            (MKind::Trial, MState::HalfOpen { trials, successes }) => {
                if failure {
                    self.trip(true);
                } else if successes + 1 >= u64::from(self.config.success_threshold) {
                    let ramp_start = self.config.ramp.map(|_| self.now);
                    if ramp_start.is_none() {
                        self.level = 0;
                    }
                    self.credit = 0;
                    self.change(MState::Closed { ramp_start });
                } else {
                    self.state = MState::HalfOpen {
                        trials: trials.saturating_sub(1),
                        successes: successes + 1,
                    };
                }
            }
            _ => {}
        }
    }

    fn release(&mut self, t: MTicket) {
        if let (MKind::Trial, MState::HalfOpen { trials, successes }) = (t.kind, self.state)
            && t.cycle == self.cycle
            && trials > 0
        {
            self.state = MState::HalfOpen {
                trials: trials - 1,
                successes,
            };
        }
    }

    fn manual(&mut self, state: MState) {
        self.level = 0;
        self.change(state);
    }

    /// `(calls, failures)` in the window now, per rule.
    fn counts(&self) -> (u64, u64) {
        let failures_of = |outcomes: &[(u64, bool)]| outcomes.iter().filter(|o| o.1).count() as u64;
        match self.config.rule {
            TripRule::Consecutive { .. } => {
                let n = self.window.iter().rev().take_while(|o| o.1).count() as u64;
                (n, n)
            }
            TripRule::CountInWindow { threshold, .. } => {
                // The times of the last `threshold` failures are kept.
                let n = failures_of(&self.window).min(u64::from(threshold));
                (n, n)
            }
            TripRule::RateOverCalls { last, .. } => {
                let from = self.window.len().saturating_sub(last as usize);
                let kept = &self.window[from..];
                (kept.len() as u64, failures_of(kept))
            }
            TripRule::RateOverTime { window, .. } => {
                // Ten buckets of window / 10, aligned to the breaker's creation: an outcome is
                // in the window until its bucket is ten buckets old.
                let width = (nanos(window) / 10).max(1);
                let current = self.now / width;
                let kept: Vec<_> = self
                    .window
                    .iter()
                    .copied()
                    .filter(|(t, _)| current - t / width < 10)
                    .collect();
                (kept.len() as u64, failures_of(&kept))
            }
        }
    }

    fn rule_trips(&self) -> bool {
        let rate_trips = |failure_rate: f64, min_calls: u32| {
            let (calls, failures) = self.counts();
            calls > 0 && calls >= u64::from(min_calls) && {
                #[allow(clippy::cast_precision_loss)]
                let rate = failures as f64 / calls as f64;
                rate >= failure_rate
            }
        };
        match self.config.rule {
            TripRule::Consecutive { threshold } => self.counts().1 >= u64::from(threshold),
            TripRule::CountInWindow { threshold, window } => {
                let times: Vec<u64> = self.window.iter().filter(|o| o.1).map(|o| o.0).collect();
                times.len() >= threshold as usize
                    && self.now - times[times.len() - threshold as usize] < nanos(window)
            }
            TripRule::RateOverCalls {
                failure_rate,
                min_calls,
                ..
            }
            | TripRule::RateOverTime {
                failure_rate,
                min_calls,
                ..
            } => rate_trips(failure_rate, min_calls),
        }
    }

    fn metrics(&self) -> (CircuitState, u64, u64, Option<f64>, u64) {
        let (calls, failures) = self.counts();
        let rate = match self.config.rule {
            TripRule::RateOverCalls { min_calls, .. }
            | TripRule::RateOverTime { min_calls, .. }
                if calls > 0 && calls >= u64::from(min_calls) =>
            {
                #[allow(clippy::cast_precision_loss)]
                Some(failures as f64 / calls as f64)
            }
            _ => None,
        };
        (self.state(), calls, failures, rate, self.rejections)
    }
}

// ---------------------------------------------------------------------------------------------
// The operations.

/// How a held call ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Success,
    Failure,
    /// An `Err` the `failure` predicate rejects: counts as a success.
    NotAFailure,
    Panic,
    Cancel,
}

#[derive(Debug, Clone)]
enum Op {
    Advance(u64),
    /// Offer a call and hold it if admitted; `future`: through `call` with a real body.
    Start {
        future: bool,
    },
    /// End the `i % held`-th held call.
    Finish {
        i: usize,
        end: End,
    },
    /// A whole call at once: admitted, then ended.
    Call {
        future: bool,
        end: End,
    },
    /// A call that succeeds after `ms` (slow if that is beyond `slow_call`).
    SlowCall(u64),
    ForceOpen,
    Disable,
    Reset,
}

fn end() -> impl Strategy<Value = End> {
    prop_oneof![
        4 => Just(End::Success),
        4 => Just(End::Failure),
        1 => Just(End::NotAFailure),
        1 => Just(End::Panic),
        1 => Just(End::Cancel),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::sample::select(vec![0u64, 1, 5, 10, 49, 50, 99, 100, 101, 150, 250, 400, 1000])
            .prop_map(Op::Advance),
        4 => any::<bool>().prop_map(|future| Op::Start { future }),
        4 => (any::<usize>(), end()).prop_map(|(i, end)| Op::Finish { i, end }),
        8 => (any::<bool>(), end()).prop_map(|(future, end)| Op::Call { future, end }),
        1 => prop::sample::select(vec![10u64, 50, 100, 200, 300]).prop_map(Op::SlowCall),
        1 => Just(Op::ForceOpen),
        1 => Just(Op::Disable),
        1 => Just(Op::Reset),
    ]
}

fn rule() -> impl Strategy<Value = TripRule> {
    let rate = prop::sample::select(vec![0.25, 0.5, 0.6, 0.75, 1.0]);
    prop_oneof![
        (1u32..=4).prop_map(|threshold| TripRule::Consecutive { threshold }),
        (1u32..=4, 1u64..=5).prop_map(|(threshold, w)| TripRule::CountInWindow {
            threshold,
            window: ms(100 * w),
        }),
        (rate.clone(), 1u32..=6, 1u32..=6).prop_map(|(failure_rate, last, m)| {
            TripRule::RateOverCalls {
                failure_rate,
                last,
                min_calls: m.min(last),
            }
        }),
        (rate, 1u64..=10, 1u32..=5).prop_map(|(failure_rate, w, min_calls)| {
            TripRule::RateOverTime {
                failure_rate,
                window: ms(100 * w),
                min_calls,
            }
        }),
    ]
}

fn config() -> impl Strategy<Value = BreakerConfig> {
    (
        rule(),
        1u64..=5,
        prop::option::of(1u64..=4),
        1u32..=3,
        1u32..=3,
        prop::option::weighted(0.3, prop::sample::select(vec![100u64, 250, 500])),
        prop::option::weighted(0.3, prop::sample::select(vec![50u64, 100, 200])),
        prop::option::weighted(0.3, prop::sample::select(vec![50u64, 300, 1000])),
    )
        .prop_map(|(rule, cd, max, p, s, ramp, slow, inner)| {
            let mut c = BreakerConfig::new(rule);
            c.cooldown = ms(100 * cd);
            c.max_cooldown = max.map(|m| ms(100 * cd * m));
            c.half_open_calls = p;
            c.success_threshold = s;
            c.ramp = ramp.map(ms);
            c.slow_call = slow.map(ms);
            c.inner_timeout = inner.map(ms);
            c
        })
}

// ---------------------------------------------------------------------------------------------
// Driving the real breaker.

#[derive(Debug)]
enum E {
    Body,
    Rejected(Error),
}

impl From<Error> for E {
    fn from(e: Error) -> Self {
        E::Rejected(e)
    }
}

/// The message a held body waits for.
#[derive(Debug)]
enum Verdict {
    Ok,
    Err,
    Panic,
}

type CallFuture<'a> = Pin<Box<dyn Future<Output = Result<(), E>> + 'a>>;

/// A call in flight on the real breaker.
enum Held<'a> {
    Future(CallFuture<'a>, oneshot::Sender<Verdict>),
    Ticket(Ticket),
}

const PANIC: &str = "model-test body panic";

fn poll<F: Future + ?Sized>(fut: Pin<&mut F>) -> std::thread::Result<Poll<F::Output>> {
    std::panic::catch_unwind(AssertUnwindSafe(|| {
        fut.poll(&mut Context::from_waker(Waker::noop()))
    }))
}

fn call_future(b: &CircuitBreaker) -> (CallFuture<'_>, oneshot::Sender<Verdict>) {
    let (tx, rx) = oneshot::channel();
    let fut = b.call(async move {
        match rx.await {
            Ok(Verdict::Ok) => Ok(()),
            Ok(Verdict::Err) => Err(E::Body),
            Ok(Verdict::Panic) => std::panic::panic_any(PANIC),
            Err(_) => std::future::pending().await,
        }
    });
    (Box::pin(fut), tx)
}

/// Offers a call to the real breaker: `Ok(held)` or `Err(retry_after)`.
fn start(b: &CircuitBreaker, future: bool) -> Result<Held<'_>, Option<Duration>> {
    let open = |e: Error| match e {
        Error::CircuitOpen { retry_after, .. } => retry_after,
        other => panic!("unexpected rejection {other}"),
    };
    if future {
        let (mut fut, tx) = call_future(b);
        match poll(fut.as_mut()).expect("no panic at admission") {
            Poll::Pending => Ok(Held::Future(fut, tx)),
            Poll::Ready(Err(E::Rejected(e))) => Err(open(e)),
            Poll::Ready(other) => panic!("the body completed without a verdict: {other:?}"),
        }
    } else {
        b.try_acquire().map(Held::Ticket).map_err(open)
    }
}

fn finish(b: &CircuitBreaker, held: Held<'_>, end: End) {
    match held {
        Held::Ticket(t) => match end {
            End::Success | End::NotAFailure => b.record(t, false),
            // A panic through the ticket API is what the guard does: record a failure.
            End::Failure | End::Panic => b.record(t, true),
            End::Cancel => b.release(t),
        },
        Held::Future(mut fut, tx) => {
            let verdict = match end {
                // Through `call`, every `Err` is a failure; an error the predicate rejects is
                // an `Ok` as far as the breaker is concerned.
                End::Success | End::NotAFailure => Verdict::Ok,
                End::Failure => Verdict::Err,
                End::Panic => Verdict::Panic,
                End::Cancel => {
                    drop(fut);
                    return;
                }
            };
            tx.send(verdict).expect("the body is waiting");
            match (poll(fut.as_mut()), end) {
                (Err(panic), End::Panic) => {
                    assert_eq!(panic.downcast_ref::<&str>(), Some(&PANIC));
                }
                (Ok(Poll::Ready(Ok(()))), End::Success | End::NotAFailure)
                | (Ok(Poll::Ready(Err(E::Body))), End::Failure) => {}
                (other, end) => panic!("{end:?} ended as {:?}", other.map(|p| p.is_ready())),
            }
        }
    }
}

fn real_metrics(b: &CircuitBreaker) -> (CircuitState, u64, u64, Option<f64>, u64) {
    let BreakerMetrics {
        state,
        calls,
        failures,
        failure_rate,
        rejections,
        ..
    } = b.metrics();
    (state, calls, failures, failure_rate, rejections)
}

fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&PANIC) {
                default(info);
            }
        }));
    });
}

/// Runs `ops` on a fresh breaker and the model, comparing after every step.
fn run(config: BreakerConfig, ops: &[Op]) -> Result<(), TestCaseError> {
    quiet_panics();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let b = CircuitBreaker::new("model", config).expect("valid config");
        let mut m = Model::new(config);
        let mut held: Vec<(Held<'_>, MTicket)> = Vec::new();
        for (step, op) in ops.iter().enumerate() {
            let ctx = format!("step {step} ({op:?}); model before it: {m:?}");
            let admit = |future: bool, m: &mut Model| -> Result<_, TestCaseError> {
                match (start(&b, future), m.acquire()) {
                    (Ok(h), Ok(t)) => Ok(Some((h, t))),
                    (Err(r), Err(mr)) => {
                        prop_assert_eq!(r, mr, "retry_after at {}", ctx);
                        Ok(None)
                    }
                    (r, mt) => Err(TestCaseError::fail(format!(
                        "admission differs: real {:?}, model {:?} at {}",
                        r.map(|_| ()),
                        mt.map(|_| ()),
                        ctx
                    ))),
                }
            };
            match *op {
                Op::Advance(n) => {
                    tokio::time::advance(ms(n)).await;
                    m.now += n * MS;
                }
                Op::Start { future } => {
                    if let Some(h) = admit(future, &mut m)? {
                        held.push(h);
                    }
                }
                Op::Finish { i, end } => {
                    if !held.is_empty() {
                        let (h, t) = held.remove(i % held.len());
                        finish(&b, h, end);
                        model_end(&mut m, t, end);
                    }
                }
                Op::Call { future, end } => {
                    if let Some((h, t)) = admit(future, &mut m)? {
                        finish(&b, h, end);
                        model_end(&mut m, t, end);
                    }
                }
                Op::SlowCall(n) => {
                    if let Some((h, t)) = admit(true, &mut m)? {
                        tokio::time::advance(ms(n)).await;
                        m.now += n * MS;
                        finish(&b, h, End::Success);
                        model_end(&mut m, t, End::Success);
                    }
                }
                Op::ForceOpen => {
                    b.force_open();
                    m.manual(MState::ForcedOpen);
                }
                Op::Disable => {
                    b.disable();
                    m.manual(MState::Disabled);
                }
                Op::Reset => {
                    b.reset();
                    m.manual(MState::Closed { ramp_start: None });
                }
            }
            prop_assert_eq!(b.state(), m.state(), "state after {}", ctx);
            prop_assert_eq!(
                b.is_ramping(),
                m.ramp_elapsed().is_some(),
                "is_ramping after {}",
                ctx
            );
            prop_assert_eq!(real_metrics(&b), m.metrics(), "metrics after {}", ctx);
        }
        // Whatever is still held ends by cancellation: nothing may be left behind.
        for (h, t) in held.drain(..) {
            finish(&b, h, End::Cancel);
            m.release(t);
        }
        prop_assert_eq!(real_metrics(&b), m.metrics(), "metrics at the end");
        Ok(())
    })
}

fn model_end(m: &mut Model, t: MTicket, end: End) {
    match end {
        End::Success | End::NotAFailure => m.record(t, false),
        End::Failure | End::Panic => m.record(t, true),
        End::Cancel => m.release(t),
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(512)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 20_000,
        ..ProptestConfig::default()
    })]

    /// The breaker and the model agree on states, metrics and rejections at every step.
    #[test]
    fn breaker_agrees_with_the_model(config in config(), ops in prop::collection::vec(op(), 1..80)) {
        run(config, &ops)?;
    }
}

/// The model itself, on the examples DESIGN.md spells out.
#[test]
fn the_model_follows_the_design_examples() {
    // A count window always holds exactly the last N outcomes: after 100 successes and then N
    // failures the breaker is open.
    let mut c = BreakerConfig::new(TripRule::RateOverCalls {
        failure_rate: 1.0,
        last: 5,
        min_calls: 5,
    });
    c.cooldown = ms(100);
    let ops: Vec<Op> = std::iter::repeat_n(
        Op::Call {
            future: false,
            end: End::Success,
        },
        100,
    )
    .chain(std::iter::repeat_n(
        Op::Call {
            future: true,
            end: End::Failure,
        },
        5,
    ))
    .collect();
    run(c, &ops).unwrap();
    let mut m = Model::new(c);
    for op in &ops {
        if let Op::Call { end, .. } = op {
            let t = m.acquire().unwrap();
            model_end(&mut m, t, *end);
        }
    }
    assert_eq!(m.state(), CircuitState::Open);
}
