//! Soak: `SOAK_CALLS` calls (default 1 000 000) on a two-worker runtime through every policy,
//! with mixed outcomes (success, failure, slow calls that time out, panics), callers that drop
//! their calls and tasks that are aborted, while another task flips the breakers with
//! `force_open`, `reset` and `disable` (and, with the `chaos` feature, faults are injected).
//!
//! At the end: every bulkhead has all its permits back and an empty queue, no breaker is stuck
//! (each admits its trials after its cooldown: all `half_open_calls` of them), every call is
//! accounted for (successes + failures + rejections + cancellations = calls), and resident
//! memory grew by less than 10 MB. It prints those figures.
//!
//! ```text
//! SOAK_CALLS=1000000 cargo test --release --test soak -- --ignored --nocapture
//! ```

// A handler is an `async fn` by contract, whether or not it awaits anything.
#![allow(clippy::unused_async)]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use resilient::{CircuitState, Error, bulkhead, circuit_breaker, fallback, retry, timeout};
use tokio::task::JoinSet;
use tokio::time::Instant;

#[derive(Debug, Clone, PartialEq)]
enum E {
    Down,
    Res(Error),
}

impl From<Error> for E {
    fn from(e: Error) -> Self {
        E::Res(e)
    }
}

/// What a body does.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Ok,
    YieldThenOk,
    Down,
    Panic,
    /// Sleeps this many milliseconds, then succeeds (slow, or past a timeout).
    Sleep(u64),
}

const PANIC: &str = "soak body panic";

async fn body(kind: Kind) -> Result<u32, E> {
    match kind {
        Kind::Ok => Ok(1),
        Kind::YieldThenOk => {
            tokio::task::yield_now().await;
            Ok(1)
        }
        Kind::Down => Err(E::Down),
        Kind::Panic => std::panic::panic_any(PANIC),
        Kind::Sleep(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(1)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The stacks: every policy, every trip rule, in the recommended order.

static FALLBACKS: AtomicU64 = AtomicU64::new(0);

async fn cached(_e: E) -> Result<u32, E> {
    FALLBACKS.fetch_add(1, Relaxed);
    Ok(0)
}

fn body_error(e: &E) -> bool {
    *e == E::Down
}

#[fallback(cached, args = (), on = body_error, name = "soak.full")]
#[retry(attempts = 2, backoff = "1ms", name = "soak.full")]
#[circuit_breaker(
    failure_rate = 0.5,
    last = 20,
    cooldown = "20ms",
    half_open_calls = 2,
    name = "soak.full"
)]
#[timeout("5ms")]
#[bulkhead(pool = 8, queue = 16, max_wait = "5ms", name = "soak.full")]
async fn full(kind: Kind) -> Result<u32, E> {
    body(kind).await
}

#[circuit_breaker(
    threshold = 3,
    cooldown = "10ms",
    max_cooldown = "80ms",
    name = "soak.consecutive"
)]
#[bulkhead(pool = 2, queue = 4, name = "soak.consecutive")]
async fn consecutive(kind: Kind) -> Result<u32, E> {
    body(kind).await
}

#[circuit_breaker(
    failure_rate = 0.5,
    window = "50ms",
    min_calls = 10,
    cooldown = "10ms",
    ramp = "20ms",
    slow_call = "2ms",
    success_threshold = 2,
    half_open_calls = 3,
    name = "soak.rate"
)]
#[timeout("4ms")]
async fn rate(kind: Kind) -> Result<u32, E> {
    body(kind).await
}

#[circuit_breaker(
    threshold = 5,
    window = "30ms",
    cooldown = "15ms",
    name = "soak.counted"
)]
async fn counted(kind: Kind) -> Result<u32, E> {
    body(kind).await
}

#[retry(
    attempts = 3,
    backoff = "0ms",
    strategy = "constant",
    jitter = "none",
    when = body_error
)]
#[timeout("2ms")]
async fn retried(kind: Kind) -> Result<u32, E> {
    body(kind).await
}

#[bulkhead(pool = 4, queue = 2, max_wait = "2ms", name = "soak.bulkhead")]
async fn bulkheaded(kind: Kind) -> Result<u32, E> {
    body(kind).await
}

const BREAKERS: [&str; 4] = ["soak.full", "soak.consecutive", "soak.rate", "soak.counted"];
const BULKHEADS: [(&str, usize); 3] = [
    ("soak.full", 8),
    ("soak.consecutive", 2),
    ("soak.bulkhead", 4),
];

// ---------------------------------------------------------------------------------------------
// Driving it.

/// `SplitMix64`: the call's number decides everything about it, reproducibly.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn kind_of(r: u64) -> Kind {
    match r % 100 {
        0..=39 => Kind::Ok,
        40..=79 => Kind::YieldThenOk,
        80..=89 => Kind::Down,
        90 => Kind::Panic,
        91..=96 => Kind::Sleep(1),
        _ => Kind::Sleep(6),
    }
}

/// How a call ended, as its caller saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Success,
    Failure,
    Rejection,
    Cancellation,
}

/// Calls that ended in an error injected by the `chaos` feature (counted among failures).
static INJECTED: AtomicU64 = AtomicU64::new(0);

fn classify(out: &Result<u32, E>) -> Class {
    match out {
        Err(E::Res(Error::Injected { .. })) => {
            INJECTED.fetch_add(1, Relaxed);
            Class::Failure
        }
        Ok(_) => Class::Success,
        Err(E::Res(Error::CircuitOpen { .. } | Error::BulkheadFull { .. })) => Class::Rejection,
        Err(_) => Class::Failure,
    }
}

/// One call through stack `r % 6`; every 29th caller drops its call after the first poll.
async fn one_call(i: u64) -> Class {
    let r = mix(i);
    let kind = kind_of(r >> 8);
    let mut fut: std::pin::Pin<Box<dyn Future<Output = Result<u32, E>> + Send>> = match r % 6 {
        0 => Box::pin(full(kind)),
        1 => Box::pin(consecutive(kind)),
        2 => Box::pin(rate(kind)),
        3 => Box::pin(counted(kind)),
        4 => Box::pin(retried(kind)),
        _ => Box::pin(bulkheaded(kind)),
    };
    if (r >> 40) % 29 == 0 {
        match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(out) => return classify(&out),
            Poll::Pending => {
                drop(fut);
                return Class::Cancellation;
            }
        }
    }
    classify(&fut.await)
}

/// Resident memory in bytes, from `/proc/self/statm` and the kernel's page size.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("resident pages");
    let page_kb: u64 = std::fs::read_to_string("/proc/self/smaps")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("KernelPageSize:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(4);
    pages * page_kb * 1024
}

fn quiet_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&PANIC) {
            default(info);
        }
    }));
}

#[derive(Debug, Default)]
struct Tally {
    successes: u64,
    failures: u64,
    panics: u64,
    rejections: u64,
    cancellations: u64,
    aborted: u64,
}

impl Tally {
    fn add(&mut self, joined: Result<Class, tokio::task::JoinError>) {
        match joined {
            Ok(Class::Success) => self.successes += 1,
            Ok(Class::Failure) => self.failures += 1,
            Ok(Class::Rejection) => self.rejections += 1,
            Ok(Class::Cancellation) => self.cancellations += 1,
            Err(e) if e.is_panic() => {
                self.failures += 1;
                self.panics += 1;
            }
            Err(_) => {
                self.cancellations += 1;
                self.aborted += 1;
            }
        }
    }

    fn total(&self) -> u64 {
        self.successes + self.failures + self.rejections + self.cancellations
    }
}

/// Flips random breakers until told to stop; returns how many flips it made.
async fn flipper(stop: Arc<AtomicBool>) -> u64 {
    let mut flips = 0u64;
    let mut r = 0x5EED_u64;
    while !stop.load(Relaxed) {
        tokio::time::sleep(Duration::from_millis(1)).await;
        r = mix(r);
        let name = BREAKERS[usize::try_from(r % BREAKERS.len() as u64).unwrap()];
        let Some(b) = resilient::breaker(name) else {
            continue;
        };
        match (r >> 16) % 8 {
            0 => b.force_open(),
            1 => b.disable(),
            2 | 3 => b.reset(),
            _ => continue,
        }
        flips += 1;
    }
    flips
}

/// Manual states are undone by hand (they are meant to stay); then, after the longest
/// cooldown, each breaker admits all its trial slots (or, closed, a call). Returns the states.
async fn assert_no_breaker_is_stuck() -> Vec<String> {
    for name in BREAKERS {
        let b = resilient::breaker(name).expect(name);
        if matches!(b.state(), CircuitState::ForcedOpen | CircuitState::Disabled) {
            b.reset();
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut states = Vec::new();
    for name in BREAKERS {
        let b = resilient::breaker(name).expect(name).breaker();
        let state = b.state();
        states.push(format!("{name}: {state:?}"));
        let wanted = if state == CircuitState::Closed {
            1
        } else {
            assert_eq!(
                state,
                CircuitState::HalfOpen,
                "{name} is stuck in {state:?}"
            );
            b.config().half_open_calls
        };
        let mut tickets = Vec::new();
        // A ramping breaker admits a growing share of offered calls: offer enough of them.
        for _ in 0..10_000 {
            if tickets.len() == wanted as usize {
                break;
            }
            match b.try_acquire() {
                Ok(t) => tickets.push(t),
                Err(e) => assert!(
                    state == CircuitState::Closed,
                    "{name} ({state:?}) rejected a trial: {e}; a slot is stuck"
                ),
            }
        }
        assert_eq!(tickets.len(), wanted as usize, "{name} admitted too few");
        for t in tickets {
            b.release(t);
        }
    }

    states
}

async fn run(calls: u64) {
    // Every policy exists before the baseline is taken.
    for i in 0..64 {
        // Some of these panic: in a task of their own.
        let _ = tokio::spawn(one_call(i)).await;
    }
    let rss_before = rss();
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let flips = tokio::spawn(flipper(stop.clone()));
    #[cfg(feature = "chaos")]
    let _faults = chaos_faults();

    let mut tally = Tally::default();
    let mut tasks = JoinSet::new();
    for i in 0..calls {
        while tasks.len() >= 256 {
            tally.add(tasks.join_next().await.expect("a task"));
        }
        if i % 128 == 127 {
            // Let time pass, so cooldowns end and trials run while the calls go on.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let abort = tasks.spawn(one_call(i));
        if mix(i ^ 0xAB) % 97 == 0 {
            abort.abort();
        }
    }
    while let Some(joined) = tasks.join_next().await {
        tally.add(joined);
    }
    stop.store(true, Relaxed);
    let flips = flips.await.expect("the flipper");
    let elapsed = started.elapsed();

    // Every call is accounted for.
    assert_eq!(tally.total(), calls, "{tally:?}");

    // Every bulkhead has all its permits back and an empty queue.
    for (name, pool) in BULKHEADS {
        let h = resilient::bulkhead(name).expect(name);
        assert_eq!(
            (h.in_flight(), h.queued(), h.available()),
            (0, 0, pool),
            "bulkhead {name}"
        );
    }

    let states = assert_no_breaker_is_stuck().await;

    let rss_after = rss();
    let grown = rss_after.saturating_sub(rss_before);
    #[allow(clippy::cast_precision_loss)]
    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "soak: {calls} calls in {elapsed:.1?} on 2 workers; successes {} (fallbacks served {}), \
         failures {} (panics {}, injected {}), rejections {}, cancellations {} (aborted tasks {}); \
         breaker flips {flips}; bulkheads idle; breakers {}; \
         resident memory {:.1} MB -> {:.1} MB (grew {:.2} MB)",
        tally.successes,
        FALLBACKS.load(Relaxed),
        tally.failures,
        tally.panics,
        INJECTED.load(Relaxed),
        tally.rejections,
        tally.cancellations,
        tally.aborted,
        states.join(", "),
        mb(rss_before),
        mb(rss_after),
        mb(grown),
    );
    assert!(tally.successes > 0 && tally.failures > 0 && tally.rejections > 0);
    assert!(tally.cancellations > 0 && tally.panics > 0);
    if cfg!(feature = "chaos") {
        assert!(
            INJECTED.load(Relaxed) > 0,
            "the chaos feature injected nothing"
        );
    }
    assert!(
        grown < 10 * 1024 * 1024,
        "resident memory grew {:.2} MB",
        mb(grown)
    );
}

/// Faults injected into every named policy for the whole run (feature `chaos`).
#[cfg(feature = "chaos")]
fn chaos_faults() -> Vec<resilient::chaos::ChaosGuard> {
    use resilient::chaos::{Fault, inject};
    let mut guards = Vec::new();
    for name in [
        "soak.full",
        "soak.consecutive",
        "soak.rate",
        "soak.bulkhead",
    ] {
        guards.push(inject(name, Fault::error().probability(0.02)).expect("inject an error"));
        guards.push(
            inject(
                name,
                Fault::latency(Duration::from_millis(1)).probability(0.02),
            )
            .expect("inject latency"),
        );
    }
    guards
}

#[test]
#[ignore = "soak: run with `--ignored`; SOAK_CALLS sets the number of calls (default 1 000 000)"]
fn soak() {
    let calls = std::env::var("SOAK_CALLS")
        .ok()
        .and_then(|s| s.replace('_', "").parse().ok())
        .unwrap_or(1_000_000);
    quiet_panics();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(run(calls));
}
