//! Property tests: retry delays (DESIGN.md 4.4), the bulkhead against a reference model
//! (DESIGN.md 4.3, live reconfiguration included), and hostile input to the parsers and
//! validators, which must never panic.
//!
//! `PROPTEST_CASES` sets the number of cases of each property (default 512; the retry and
//! parser properties run ten times that, as they are cheap).
#![cfg(not(loom))]

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use proptest::prelude::*;
use resilient_runtime::{
    BreakerConfig, Bulkhead, BulkheadConfig, BulkheadPermit, Error, Jitter, RetryConfig,
    Strategy as Growth, TripRule,
};

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(512)
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Retry delays.

/// Durations from nothing to `Duration::MAX`, weighted towards the realistic.
fn duration() -> impl proptest::strategy::Strategy<Value = Duration> {
    prop_oneof![
        4 => (0u64..=60_000).prop_map(Duration::from_millis),
        2 => (0u64..=u64::from(u32::MAX)).prop_map(Duration::from_nanos),
        1 => any::<u64>().prop_map(Duration::from_nanos),
        1 => (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        1 => Just(Duration::MAX),
        1 => Just(Duration::ZERO),
    ]
}

fn retry_config() -> impl proptest::strategy::Strategy<Value = RetryConfig> {
    let strategy =
        prop::sample::select(vec![Growth::Exponential, Growth::Linear, Growth::Constant]);
    let jitter = prop::sample::select(vec![
        Jitter::Full,
        Jitter::Equal,
        Jitter::None,
        Jitter::Decorrelated,
    ]);
    let multiplier = prop_oneof![
        Just(1.0),
        Just(2.0),
        1.0f64..=10.0,
        1.0f64..=1e6,
        Just(f64::MAX)
    ];
    (duration(), duration(), strategy, jitter, multiplier).prop_map(
        |(a, b, strategy, jitter, multiplier)| RetryConfig {
            attempts: 3,
            backoff: a.min(b),
            max_backoff: a.max(b),
            strategy,
            jitter,
            multiplier,
            max_duration: None,
        },
    )
}

/// Retry numbers: small, large, and the very largest.
fn attempt() -> impl proptest::strategy::Strategy<Value = u32> {
    prop_oneof![
        4 => 1u32..=64,
        2 => any::<u32>(),
        1 => Just(u32::MAX),
        1 => Just(u32::MAX - 1),
    ]
}

/// Uniform `[0, 1)`, with its ends.
fn unit() -> impl proptest::strategy::Strategy<Value = f64> {
    prop_oneof![
        4 => 0.0f64..1.0,
        1 => Just(0.0),
        1 => Just(1.0 - f64::EPSILON / 2.0),
    ]
}

/// `backoff * multiplier^(k-1)`, `backoff * k` or `backoff`, capped: the exact value for the
/// integer strategies, an `f64` estimate for the exponential one.
fn expected_base(c: &RetryConfig, k: u32) -> (f64, bool) {
    let cap = c.max_backoff.as_secs_f64();
    let b = c.backoff.as_secs_f64();
    match c.strategy {
        Growth::Constant => (b, true),
        Growth::Linear => {
            let exact = c.backoff.as_nanos() * u128::from(k);
            let capped = exact.min(c.max_backoff.as_nanos());
            #[allow(clippy::cast_precision_loss)]
            let secs = capped as f64 / 1e9;
            (secs, true)
        }
        Growth::Exponential => {
            let raw = b * c.multiplier.powf(f64::from(k - 1));
            (if raw.is_finite() { raw.min(cap) } else { cap }, false)
        }
    }
}

proptest! {
    #![proptest_config(config(cases() * 10))]

    /// Every strategy and jitter stays within its bounds for any retry number up to
    /// `u32::MAX`, without overflow or panic.
    #[test]
    fn retry_delays_are_within_bounds(
        c in retry_config(),
        k in attempt(),
        previous in prop::option::of(duration()),
        r in unit(),
    ) {
        let d = c.base_delay(k);
        prop_assert!(d <= c.max_backoff, "{d:?} above the cap");
        // At least `backoff` (the first retry waits exactly that): exactly so up to a day;
        // beyond, the exponential strategy's `f64` may round a nanosecond down.
        if c.backoff <= Duration::from_secs(86_400) || c.strategy != Growth::Exponential {
            prop_assert!(d >= c.backoff, "{d:?} below the base delay {:?}", c.backoff);
        } else {
            prop_assert!(d.as_secs_f64() >= c.backoff.as_secs_f64() * (1.0 - 1e-12));
        }
        let (expected, exact) = expected_base(&c, k.max(1));
        if exact {
            if c.strategy == Growth::Linear {
                let nanos = (c.backoff.as_nanos() * u128::from(k.max(1))).min(c.max_backoff.as_nanos());
                prop_assert_eq!(d.as_nanos(), nanos);
            } else {
                prop_assert_eq!(d, c.backoff);
            }
        } else {
            let got = d.as_secs_f64();
            prop_assert!(
                (got - expected).abs() <= expected * 1e-9 + 1e-9,
                "exponential: {got} s, expected {expected} s"
            );
        }

        let j = c.delay(k, previous, r);
        match c.jitter {
            Jitter::None => prop_assert_eq!(j, d),
            Jitter::Full => prop_assert!(j <= d, "full jitter {j:?} above {d:?}"),
            Jitter::Equal => prop_assert!(j >= d / 2 && j <= d, "equal jitter {j:?} outside [{:?}, {d:?}]", d / 2),
            Jitter::Decorrelated => {
                let high = previous.unwrap_or(c.backoff).saturating_mul(3).max(c.backoff);
                prop_assert!(j >= c.backoff.min(c.max_backoff), "decorrelated {j:?} below the base delay");
                prop_assert!(j <= c.max_backoff, "decorrelated {j:?} above the cap");
                prop_assert!(j <= high, "decorrelated {j:?} above 3x the previous delay");
            }
        }
    }

    /// Before the cap the delay never shrinks from one retry to the next (and after it, it
    /// stays at the cap).
    #[test]
    fn retry_delays_are_monotone(c in retry_config(), k in attempt()) {
        let k = k.clamp(1, u32::MAX - 1);
        let (a, b) = (c.base_delay(k), c.base_delay(k + 1));
        prop_assert!(a <= b, "retry {k}: {a:?}, retry {}: {b:?}", k + 1);
        if a == c.max_backoff {
            prop_assert_eq!(b, c.max_backoff);
        }
    }
}

/// The whole sequence of a default-like retry, every jitter: no panic up to `u32::MAX`.
#[test]
fn retry_delays_do_not_overflow_at_the_largest_attempts() {
    for jitter in [
        Jitter::Full,
        Jitter::Equal,
        Jitter::None,
        Jitter::Decorrelated,
    ] {
        for strategy in [Growth::Exponential, Growth::Linear, Growth::Constant] {
            for max_backoff in [Duration::from_secs(10), Duration::MAX] {
                let c = RetryConfig {
                    strategy,
                    jitter,
                    max_backoff,
                    ..RetryConfig::DEFAULT
                };
                let mut previous = None;
                for k in (u32::MAX - 1000..=u32::MAX).chain(1..1000) {
                    let d = c.delay(k, previous, 0.999_999_999);
                    assert!(d <= max_backoff);
                    previous = Some(d);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The bulkhead against a reference model.

#[derive(Debug, Clone)]
enum BOp {
    /// A caller arrives and is polled once.
    Arrive,
    /// A running call ends (success, error, panic and drop all just drop the permit).
    Finish(usize),
    /// A queued caller gives up.
    GiveUp(usize),
    /// A queued caller is polled again.
    Poll(usize),
    /// Live reconfiguration.
    Reconfigure { pool: usize, queue: usize },
}

fn bulkhead_op() -> impl proptest::strategy::Strategy<Value = BOp> {
    prop_oneof![
        5 => Just(BOp::Arrive),
        4 => any::<usize>().prop_map(BOp::Finish),
        2 => any::<usize>().prop_map(BOp::GiveUp),
        3 => any::<usize>().prop_map(BOp::Poll),
        1 => (1usize..=4, 0usize..=3).prop_map(|(pool, queue)| BOp::Reconfigure { pool, queue }),
    ]
}

type AcquireFuture<'a> = Pin<Box<dyn Future<Output = Result<BulkheadPermit<'a>, Error>> + 'a>>;

fn poll_once<'a>(f: &mut AcquireFuture<'a>) -> Poll<Result<BulkheadPermit<'a>, Error>> {
    f.as_mut().poll(&mut Context::from_waker(Waker::noop()))
}

/// The model: permits given out, and the queue of waiter ids (granted ones leave it).
#[derive(Debug)]
struct BModel {
    pool: usize,
    queue: usize,
    held: usize,
    waiting: VecDeque<u64>,
    granted: Vec<u64>,
}

impl BModel {
    fn grant(&mut self) {
        while self.held < self.pool {
            let Some(id) = self.waiting.pop_front() else {
                break;
            };
            self.held += 1;
            self.granted.push(id);
        }
    }
}

proptest! {
    #![proptest_config(config(cases()))]

    /// Never more than `pool` running (after a shrink: no admission until in flight drops
    /// below it), FIFO service, a waiter that gives up leaves at once, and every permit comes
    /// back: the real bulkhead agrees with the model at every step.
    #[test]
    fn bulkhead_agrees_with_the_model(
        pool in 1usize..=4,
        queue in 0usize..=3,
        ops in prop::collection::vec(bulkhead_op(), 1..120),
    ) {
        let bh = Bulkhead::new("prop", BulkheadConfig { pool, queue, max_wait: None }).unwrap();
        let mut m = BModel { pool, queue, held: 0, waiting: VecDeque::new(), granted: Vec::new() };
        let mut running: Vec<BulkheadPermit<'_>> = Vec::new();
        let mut waiters: Vec<(u64, AcquireFuture<'_>)> = Vec::new();
        let mut next = 0u64;
        for (step, op) in ops.iter().enumerate() {
            match *op {
                BOp::Arrive => {
                    let mut f: AcquireFuture<'_> = Box::pin(bh.acquire());
                    let expected = if m.waiting.is_empty() && m.held < m.pool {
                        m.held += 1;
                        "admitted"
                    } else if m.waiting.len() >= m.queue {
                        "full"
                    } else {
                        m.waiting.push_back(next);
                        "queued"
                    };
                    let got = match poll_once(&mut f) {
                        Poll::Ready(Ok(p)) => { running.push(p); "admitted" }
                        Poll::Ready(Err(Error::BulkheadFull { .. })) => "full",
                        Poll::Ready(Err(e)) => panic!("unexpected {e}"),
                        Poll::Pending => { waiters.push((next, f)); "queued" }
                    };
                    prop_assert_eq!(got, expected, "step {}", step);
                    next += 1;
                }
                BOp::Finish(i) if !running.is_empty() => {
                    drop(running.remove(i % running.len()));
                    m.held -= 1;
                    m.grant();
                }
                BOp::GiveUp(i) if !waiters.is_empty() => {
                    let (id, f) = waiters.remove(i % waiters.len());
                    drop(f);
                    if let Some(at) = m.waiting.iter().position(|w| *w == id) {
                        m.waiting.remove(at);
                    } else {
                        // Handed a permit it never took: the permit goes on.
                        m.granted.retain(|g| *g != id);
                        m.held -= 1;
                        m.grant();
                    }
                }
                BOp::Poll(i) if !waiters.is_empty() => {
                    let at = i % waiters.len();
                    let id = waiters[at].0;
                    let expected = m.granted.contains(&id);
                    match poll_once(&mut waiters[at].1) {
                        Poll::Ready(Ok(p)) => {
                            prop_assert!(expected, "step {}: waiter {} served out of turn", step, id);
                            running.push(p);
                            drop(waiters.remove(at));
                            m.granted.retain(|g| *g != id);
                        }
                        Poll::Ready(Err(e)) => panic!("unexpected {e}"),
                        Poll::Pending => prop_assert!(!expected, "step {}: waiter {} not served", step, id),
                    }
                }
                BOp::Reconfigure { pool, queue } => {
                    bh.reconfigure(BulkheadConfig { pool, queue, max_wait: None }).unwrap();
                    m.pool = pool;
                    m.queue = queue;
                    m.grant();
                }
                _ => {}
            }
            prop_assert_eq!(
                (bh.in_flight(), bh.queued(), bh.available()),
                (m.held, m.waiting.len(), m.pool.saturating_sub(m.held)),
                "step {} ({:?}); model {:?}", step, op, m
            );
            prop_assert_eq!(running.len() + m.granted.len(), m.held, "permits conserved");
        }
        drop(waiters);
        drop(running);
        prop_assert_eq!((bh.in_flight(), bh.queued(), bh.available()), (0, 0, m.pool));
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile input: parsers and validators never panic.

/// Strings that look like durations: digit runs (some huge), units real and not, separators.
fn durationish() -> impl proptest::strategy::Strategy<Value = String> {
    let piece = prop_oneof![
        "[0-9]{1,3}",
        "[0-9]{15,45}",
        Just("0".to_string()),
        Just("18446744073709551615".to_string()),
        Just("340282366920938463463374607431768211455".to_string()),
    ];
    let unit = prop::sample::select(vec![
        "ns", "us", "ms", "s", "m", "h", "", "d", "µs", "S", "MS", " ", "-", ".", "e9",
    ]);
    prop::collection::vec((piece, unit), 0..6).prop_map(|v| {
        v.into_iter().fold(String::new(), |mut s, (n, u)| {
            s.push_str(&n);
            s.push_str(u);
            s
        })
    })
}

proptest! {
    #![proptest_config(config(cases() * 10))]

    #[test]
    fn parse_duration_never_panics_on_any_string(s in any::<String>()) {
        let _ = resilient_runtime::parse_duration(&s);
    }

    #[test]
    fn parse_duration_never_panics_on_any_bytes(b in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = resilient_runtime::parse_duration(&String::from_utf8_lossy(&b));
    }

    /// On near-misses too; and what it accepts is exactly the sum of its groups.
    #[test]
    fn parse_duration_is_exact_on_durationish_strings(s in durationish()) {
        if let Ok(d) = resilient_runtime::parse_duration(&s) {
            let mut total: u128 = 0;
            let mut digits = String::new();
            let mut chars = s.chars().peekable();
            while let Some(c) = chars.next() {
                if c.is_ascii_digit() {
                    digits.push(c);
                    continue;
                }
                let mut unit = c.to_string();
                while chars.peek().is_some_and(char::is_ascii_alphabetic) {
                    unit.push(chars.next().unwrap());
                }
                let per = match unit.as_str() {
                    "h" => 3_600_000_000_000u128,
                    "m" => 60_000_000_000,
                    "s" => 1_000_000_000,
                    "ms" => 1_000_000,
                    "us" => 1_000,
                    "ns" => 1,
                    other => panic!("accepted unknown unit {other:?} in {s:?}"),
                };
                total += digits.parse::<u128>().unwrap() * per;
                digits.clear();
            }
            prop_assert!(digits.is_empty(), "accepted a number without a unit: {:?}", s);
            prop_assert_eq!(d.as_nanos(), total, "{:?}", s);
        }
    }

    /// The TOML and environment parsers (here with no policy registered) answer with an
    /// `Err`, never a panic, on arbitrary documents and variables.
    #[test]
    fn config_sources_never_panic(text in any::<String>(), key in any::<String>(), value in any::<String>()) {
        let _ = resilient_runtime::config::apply_toml(&text);
        let _ = resilient_runtime::config::apply_toml(&format!("[circuit_breaker.x]\n{text}"));
        let _ = resilient_runtime::config::apply_vars([
            (format!("RESILIENT__{key}"), value.clone()),
            (format!("RESILIENT__BULKHEAD__{key}__POOL"), value),
        ]);
    }

    /// Validators take any field values: `Ok` or a message, never a panic.
    #[test]
    fn validators_never_panic(
        a in duration(), b in duration(), c in prop::option::of(duration()),
        n in any::<u32>(), m in any::<u32>(), rate in any::<f64>(), big in any::<usize>(),
    ) {
        let rules = [
            TripRule::Consecutive { threshold: n },
            TripRule::CountInWindow { threshold: n, window: a },
            TripRule::RateOverCalls { failure_rate: rate, last: n, min_calls: m },
            TripRule::RateOverTime { failure_rate: rate, window: a, min_calls: m },
        ];
        for rule in rules {
            let mut config = BreakerConfig::new(rule);
            config.cooldown = a;
            config.max_cooldown = Some(b);
            config.half_open_calls = n;
            config.success_threshold = m;
            config.ramp = c;
            config.slow_call = c;
            config.inner_timeout = c;
            // (Huge counts allocate their window up front: see tests/oversized.rs.)
            if config.validate().is_ok() && n <= 10_000 && m <= 10_000 {
                // A valid config builds a breaker that takes a call.
                let breaker = resilient_runtime::CircuitBreaker::new("prop", config).unwrap();
                let _ = breaker.metrics();
            }
        }
        let _ = BulkheadConfig { pool: big, queue: big, max_wait: c }.validate();
        let _ = RetryConfig {
            attempts: n,
            backoff: a,
            max_backoff: b,
            multiplier: rate,
            max_duration: c,
            ..RetryConfig::DEFAULT
        }
        .validate();
    }
}
