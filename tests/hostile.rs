//! Hostile user code: a `failure`, `when` or `on` predicate or a fallback handler that panics
//! leaves no bulkhead permit and no breaker trial slot behind, and the breaker in a consistent
//! state (the panic counts as a failure, as a panicking body does). Also: configuration
//! sources fed random documents for the policies of this binary never panic and, on `Err`,
//! change nothing.
//!
//! Every policy here has its own `name`: policy state is process-global and tests run in
//! parallel.

// A handler is an `async fn` by contract, whether or not it awaits anything.
#![allow(clippy::unused_async)]

mod common;
use common::{breaker_handle as breaker, ms};
use std::fmt::Write as _;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};
use std::time::Duration;

use futures::FutureExt;
use resilient::{CircuitState, Error, bulkhead, circuit_breaker, fallback, retry, timeout};
use tokio::time::advance;

#[derive(Debug, Clone, PartialEq)]
enum E {
    /// The predicates panic when they see this.
    Poison,
    Down,
    Res(Error),
}

impl From<Error> for E {
    fn from(e: Error) -> Self {
        E::Res(e)
    }
}

const PANIC: &str = "hostile predicate panic";

/// Hides this file's deliberate panics from the test output; others still print.
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

fn poisoned(e: &E) -> bool {
    if *e == E::Poison {
        std::panic::panic_any(PANIC);
    }
    true
}

/// Runs `fut`, which must panic with the predicates' message.
async fn panics<T>(fut: impl Future<Output = T>) {
    quiet_panics();
    let out = AssertUnwindSafe(fut).catch_unwind().await;
    let payload = out.err().expect("the call panicked");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&PANIC));
}

fn assert_bulkhead_idle(name: &str, pool: usize) {
    let h = resilient::bulkhead(name).expect("created by a call");
    assert_eq!(
        (h.in_flight(), h.queued(), h.available()),
        (0, 0, pool),
        "{name}: every permit back"
    );
}

// ---------------------------------------------------------------------------------------------
// `failure` panics: with the bulkhead inside the breaker and outside it.

#[circuit_breaker(threshold = 1, cooldown = "1s", failure = poisoned, name = "hostile.failure")]
#[timeout("1s")]
#[bulkhead(pool = 1, name = "hostile.failure")]
async fn judged(e: Option<E>) -> Result<(), E> {
    tokio::task::yield_now().await;
    e.map_or(Ok(()), Err)
}

#[tokio::test(start_paused = true)]
async fn a_panicking_failure_predicate_loses_no_slot() {
    let b = || breaker("hostile.failure");
    // Closed: the panic propagates, counts as a failure (threshold 1: open).
    panics(judged(Some(E::Poison))).await;
    assert_bulkhead_idle("hostile.failure", 1);
    assert_eq!(b().state(), CircuitState::Open);

    // Half-open, one slot: the trial's predicate panics; a failed trial, the slot returned.
    advance(ms(1000)).await;
    assert_eq!(b().state(), CircuitState::HalfOpen);
    panics(judged(Some(E::Poison))).await;
    assert_bulkhead_idle("hostile.failure", 1);
    assert_eq!(b().state(), CircuitState::Open);

    // The next trial is admitted (no slot leaked) and closes the breaker.
    advance(ms(1000)).await;
    assert_eq!(judged(None).await, Ok(()));
    assert_eq!(b().state(), CircuitState::Closed);
    assert_eq!(judged(Some(E::Down)).await, Err(E::Down));
    assert_eq!(b().state(), CircuitState::Open);
}

#[bulkhead(pool = 2, queue = 1, name = "hostile.outer_bulkhead")]
#[circuit_breaker(threshold = 2, cooldown = "1s", failure = poisoned, name = "hostile.outer_bulkhead")]
async fn judged_inside(e: Option<E>) -> Result<(), E> {
    tokio::task::yield_now().await;
    e.map_or(Ok(()), Err)
}

#[tokio::test(start_paused = true)]
async fn a_panicking_failure_predicate_under_a_bulkhead_returns_the_permit() {
    panics(judged_inside(Some(E::Poison))).await;
    assert_bulkhead_idle("hostile.outer_bulkhead", 2);
    let b = breaker("hostile.outer_bulkhead");
    assert_eq!(b.state(), CircuitState::Closed);
    assert_eq!(b.metrics().failures, 1, "the panic counted as one failure");
    panics(judged_inside(Some(E::Poison))).await;
    assert_eq!(b.state(), CircuitState::Open);
    assert_bulkhead_idle("hostile.outer_bulkhead", 2);
}

// ---------------------------------------------------------------------------------------------
// `when` panics: the attempt's permit and ticket are already back.

static WHEN_ATTEMPTS: AtomicU32 = AtomicU32::new(0);

#[retry(attempts = 3, backoff = "10ms", jitter = "none", when = poisoned)]
#[circuit_breaker(threshold = 5, cooldown = "1s", name = "hostile.when")]
#[bulkhead(pool = 1, name = "hostile.when")]
async fn retried(e: E) -> Result<(), E> {
    WHEN_ATTEMPTS.fetch_add(1, SeqCst);
    tokio::task::yield_now().await;
    Err(e)
}

#[tokio::test(start_paused = true)]
async fn a_panicking_retry_predicate_stops_the_retry_and_holds_nothing() {
    panics(retried(E::Poison)).await;
    assert_eq!(WHEN_ATTEMPTS.load(SeqCst), 1, "no attempt after the panic");
    assert_bulkhead_idle("hostile.when", 1);
    let b = breaker("hostile.when");
    assert_eq!(b.state(), CircuitState::Closed);
    assert_eq!(
        b.metrics().failures,
        1,
        "the attempt's own failure, recorded once"
    );
    // Still fully usable.
    assert_eq!(retried(E::Down).await, Err(E::Down));
    assert_eq!(WHEN_ATTEMPTS.load(SeqCst), 4);
    assert_bulkhead_idle("hostile.when", 1);
}

// ---------------------------------------------------------------------------------------------
// `on` and the handler panic.

async fn panicking_handler(_e: E) -> Result<(), E> {
    std::panic::panic_any(PANIC)
}

#[fallback(panicking_handler, args = (), name = "hostile.handler")]
#[circuit_breaker(threshold = 1, cooldown = "1s", name = "hostile.handler")]
#[bulkhead(pool = 1, name = "hostile.handler")]
async fn with_handler(e: Option<E>) -> Result<(), E> {
    tokio::task::yield_now().await;
    e.map_or(Ok(()), Err)
}

async fn recover(_e: E) -> Result<(), E> {
    Ok(())
}

#[fallback(recover, args = (), on = poisoned, name = "hostile.on")]
#[circuit_breaker(
    threshold = 1,
    cooldown = "1s",
    half_open_calls = 2,
    success_threshold = 2,
    name = "hostile.on"
)]
#[bulkhead(pool = 1, queue = 1, name = "hostile.on")]
async fn with_on(e: Option<E>) -> Result<(), E> {
    tokio::task::yield_now().await;
    e.map_or(Ok(()), Err)
}

#[tokio::test(start_paused = true)]
async fn a_panicking_fallback_handler_or_on_predicate_holds_nothing() {
    // The handler panics after the breaker recorded the failure: open, permit back.
    panics(with_handler(Some(E::Down))).await;
    assert_bulkhead_idle("hostile.handler", 1);
    assert_eq!(breaker("hostile.handler").state(), CircuitState::Open);
    // A rejection goes to the handler too, which panics: nothing held either.
    panics(with_handler(None)).await;
    assert_eq!(breaker("hostile.handler").metrics().rejections, 1);
    advance(ms(1000)).await;
    assert_eq!(with_handler(None).await, Ok(()), "the trial is admitted");
    assert_eq!(breaker("hostile.handler").state(), CircuitState::Closed);

    // `on` panics on the body's error: the breaker recorded it, the permit is back.
    panics(with_on(Some(E::Poison))).await;
    assert_bulkhead_idle("hostile.on", 1);
    let b = breaker("hostile.on");
    assert_eq!(b.state(), CircuitState::Open);
    advance(ms(1000)).await;
    // Two trial slots; the first trial's `on` panics after its (failed) outcome reopened the
    // breaker. The next cycle still has both slots.
    panics(with_on(Some(E::Poison))).await;
    assert_eq!(b.state(), CircuitState::Open);
    advance(ms(1000)).await;
    assert_eq!(with_on(None).await, Ok(()));
    assert_eq!(with_on(None).await, Ok(()));
    assert_eq!(b.state(), CircuitState::Closed);
    assert_bulkhead_idle("hostile.on", 1);
}

// ---------------------------------------------------------------------------------------------
// Many callers at once, a third of whose predicates panic, on two worker threads.

#[circuit_breaker(threshold = 1000, cooldown = "50ms", half_open_calls = 2, failure = poisoned, name = "hostile.storm")]
#[timeout("20ms")]
#[bulkhead(pool = 3, queue = 4, name = "hostile.storm")]
async fn storm(i: u32) -> Result<(), E> {
    tokio::time::sleep(Duration::from_micros(u64::from(i % 5) * 100)).await;
    match i % 3 {
        0 => Err(E::Poison),
        1 => Err(E::Down),
        _ => Ok(()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_panicking_predicates_leaves_nothing_behind() {
    quiet_panics();
    assert_eq!(storm(2).await, Ok(()));
    let mut tasks = Vec::new();
    for i in 0..600u32 {
        tasks.push(tokio::spawn(storm(i)));
        if i % 50 == 0 {
            // Trip it now and then, so trials run (and panic) too.
            breaker("hostile.storm").breaker().force_open();
            breaker("hostile.storm").reset();
        }
    }
    let mut panicked = 0;
    for t in tasks {
        if t.await.is_err_and(|e| e.is_panic()) {
            panicked += 1;
        }
    }
    assert!(panicked > 0);
    assert_bulkhead_idle("hostile.storm", 3);
    // Trip it, wait the cooldown: both trial slots are free.
    let b = breaker("hostile.storm").breaker();
    for _ in 0..1000 {
        if let Ok(t) = b.try_acquire() {
            b.record(t, true);
        }
        if b.state() == CircuitState::Open {
            break;
        }
    }
    tokio::time::sleep(ms(60)).await;
    let trials: Vec<_> = (0..2)
        .map(|_| b.try_acquire().expect("a free trial slot"))
        .collect();
    assert!(b.try_acquire().is_err(), "no third slot");
    for t in trials {
        b.record(t, false);
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration sources, fed random documents that name this binary's policies.

/// A tiny deterministic generator: the test needs spread, not quality.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[usize::try_from(self.next() % items.len() as u64).unwrap()]
    }
}

const KINDS: [&str; 7] = [
    "circuit_breaker",
    "bulkhead",
    "timeout",
    "retry",
    "fallback",
    "bogus",
    "",
];
const NAMES: [&str; 5] = [
    "hostile.config",
    "\"hostile.config\"",
    "nope",
    "",
    "hostile.config.x",
];
const KEYS: [&str; 19] = [
    "threshold",
    "cooldown",
    "max_cooldown",
    "failure_rate",
    "window",
    "last",
    "min_calls",
    "half_open_calls",
    "success_threshold",
    "ramp",
    "slow_call",
    "critical",
    "pool",
    "queue",
    "max_wait",
    "name",
    "failure",
    "bogus",
    "",
];
const VALUES: [&str; 23] = [
    "0",
    "1",
    "-1",
    "3",
    "18446744073709551616",
    "1.5",
    "0.5",
    "nan",
    "inf",
    "true",
    "\"1s\"",
    "\"0s\"",
    "\"1s1s\"",
    "\"99999999999999999999h\"",
    "\"\"",
    "\"200 ms\"",
    "[1, 2]",
    "{ a = 1 }",
    "\"\u{0}\"",
    "'''x'''",
    "1e400",
    "0x10",
    "\"ms\"",
];

/// A TOML document of one to three tables of one to four keys, from the lists above; one in
/// ten is also cut short at a random byte and ends in junk.
fn random_document(rng: &mut Rng) -> String {
    let mut doc = String::new();
    for _ in 0..=rng.next() % 3 {
        let _ = writeln!(doc, "[{}.{}]", rng.pick(&KINDS), rng.pick(&NAMES));
        for _ in 0..=rng.next() % 3 {
            let _ = writeln!(doc, "{} = {}", rng.pick(&KEYS), rng.pick(&VALUES));
        }
    }
    if rng.next() % 10 == 0 {
        let cut = usize::try_from(rng.next() % (doc.len() as u64 + 1)).unwrap();
        doc = String::from_utf8_lossy(&doc.as_bytes()[..cut]).into_owned() + "]\"=";
    }
    doc
}

static CONFIG_TOUCHED: AtomicBool = AtomicBool::new(false);

#[circuit_breaker(threshold = 3, cooldown = "1s", name = "hostile.config")]
#[bulkhead(pool = 2, queue = 1, name = "hostile.config")]
async fn configured() -> Result<(), E> {
    CONFIG_TOUCHED.store(true, SeqCst);
    Ok(())
}

#[tokio::test]
async fn configuration_sources_never_panic_and_change_nothing_on_err() {
    configured().await.unwrap();
    let b = breaker("hostile.config").breaker();
    let h = resilient::bulkhead("hostile.config").unwrap();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let (mut ok, mut err) = (0u32, 0u32);
    for _ in 0..20_000 {
        let doc = random_document(&mut rng);
        let before = (b.config().to_owned(), h.bulkhead().config());
        let applied = std::panic::catch_unwind(|| resilient::config::apply_toml(&doc))
            .unwrap_or_else(|_| panic!("apply_toml panicked on:\n{doc}"));
        if applied.is_ok() {
            ok += 1;
        } else {
            err += 1;
            assert_eq!(
                (b.config().to_owned(), h.bulkhead().config()),
                before,
                "an Err changed something:\n{doc}"
            );
        }
        let var = format!(
            "RESILIENT__{}__{}__{}",
            rng.pick(&KINDS).to_ascii_uppercase(),
            rng.pick(&["HOSTILE_CONFIG", "X", "", "HOSTILE__CONFIG"]),
            rng.pick(&KEYS).to_ascii_uppercase()
        );
        let value = rng.pick(&VALUES).trim_matches('"').to_string();
        assert!(
            std::panic::catch_unwind(|| resilient::config::apply_vars([(
                var.clone(),
                value.clone()
            )]))
            .is_ok(),
            "apply_vars panicked on {var}={value}"
        );
    }
    assert!(ok > 0 && err > 0, "{ok} applied, {err} refused");
    // Whatever was applied, the policies still work.
    resilient::config::apply_toml(
        "[circuit_breaker.\"hostile.config\"]\nthreshold = 3\ncooldown = \"1s\"\n\
         [bulkhead.\"hostile.config\"]\npool = 2\nqueue = 1\n",
    )
    .unwrap();
    b.reset();
    configured().await.unwrap();
    assert!(CONFIG_TOUCHED.load(SeqCst));
    assert_bulkhead_idle("hostile.config", 2);
}
