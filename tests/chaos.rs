//! Chaos injection (feature `chaos`): each fault, probabilities with a seeded generator, guard
//! removal, `RESILIENT_CHAOS` parsing and its errors. Run with
//! `cargo test --features chaos --test chaos`.
#![cfg(feature = "chaos")]

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::Duration;

use resilient::chaos::{self, Fault};
use resilient::{CircuitState, circuit_breaker, retry, timeout};
use tokio::time::Instant;

#[derive(Debug, Clone, PartialEq)]
enum E {
    R(resilient::Error),
}

impl From<resilient::Error> for E {
    fn from(e: resilient::Error) -> Self {
        E::R(e)
    }
}

static RAN: AtomicU32 = AtomicU32::new(0);

#[circuit_breaker(threshold = 3, name = "chaos_target")]
#[timeout("1s", name = "chaos_timeout")]
async fn target() -> Result<u32, E> {
    RAN.fetch_add(1, SeqCst);
    Ok(7)
}

#[tokio::test(start_paused = true)]
async fn latency_error_and_hang_act_at_the_body_inside_every_layer() {
    // Latency: the body runs after the delay.
    let guard = chaos::inject("chaos_target", Fault::latency(Duration::from_millis(300))).unwrap();
    let start = Instant::now();
    assert_eq!(target().await, Ok(7));
    assert_eq!(start.elapsed(), Duration::from_millis(300));
    drop(guard);
    let start = Instant::now();
    assert_eq!(target().await, Ok(7));
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "the guard removed the fault"
    );

    // Hang: the inner timeout ends it (named by the timeout's own name, as a fault on it).
    let guard = chaos::inject("chaos_timeout", Fault::hang()).unwrap();
    let start = Instant::now();
    assert!(matches!(
        target().await,
        Err(E::R(resilient::Error::Timeout { .. }))
    ));
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    drop(guard);

    // Error: the body does not run; the breaker counts each as a failure and opens.
    let before = RAN.load(SeqCst);
    let guard = chaos::inject("chaos_target", Fault::error()).unwrap();
    for _ in 0..2 {
        assert_eq!(
            target().await,
            Err(E::R(resilient::Error::Injected {
                name: "chaos_target"
            }))
        );
    }
    assert_eq!(RAN.load(SeqCst), before);
    // The hang above was the first failure: three in a row open the breaker.
    assert_eq!(
        resilient::breaker("chaos_target").unwrap().state(),
        CircuitState::Open
    );
    drop(guard);
    resilient::breaker("chaos_target").unwrap().reset();
    assert_eq!(target().await, Ok(7));
}

static DRAWN: AtomicU32 = AtomicU32::new(0);

#[timeout("1s", name = "chaos_probability")]
async fn sometimes() -> Result<(), E> {
    DRAWN.fetch_add(1, SeqCst);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn probabilities_hold_statistically() {
    chaos::seed(42);
    let _guard = chaos::inject("chaos_probability", Fault::error().probability(0.3)).unwrap();
    let mut failed = 0u32;
    for _ in 0..10_000 {
        if sometimes().await.is_err() {
            failed += 1;
        }
    }
    // Binomial(10 000, 0.3): mean 3000, standard deviation about 46; six sigmas either side.
    assert!((2_725..=3_275).contains(&failed), "{failed}");
    assert_eq!(DRAWN.load(SeqCst), 10_000 - failed);
}

#[retry(attempts = 2, backoff = "0s", name = "chaos_plain")]
async fn plain() -> Result<(), E> {
    Ok(())
}

#[test]
fn refusals_name_the_entry() {
    let e = chaos::inject("chaos_nobody", Fault::hang()).unwrap_err();
    assert_eq!(e.entry, "chaos_nobody");
    // A retry-only stack's error type need not convert from resilient::Error.
    let e = chaos::inject("chaos_plain", Fault::error()).unwrap_err();
    assert!(e.message.contains("only retry and fallback"), "{e}");
    let _guard = chaos::inject("chaos_plain", Fault::latency(Duration::ZERO)).unwrap();
    futures::executor::block_on(plain()).unwrap();
}

#[circuit_breaker(threshold = 3, name = "chaos_spec_a")]
#[timeout("10s", name = "chaos_spec_b")]
async fn spec_target() -> Result<u32, E> {
    Ok(1)
}

#[tokio::test(start_paused = true)]
async fn resilient_chaos_specifications() {
    let guards = chaos::apply("chaos_spec_a=latency:2s@1.0; chaos_spec_b=error@0.0").unwrap();
    let start = Instant::now();
    assert_eq!(spec_target().await, Ok(1));
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(guards.len(), 2);
    drop(guards);
    for (spec, entry) in [
        ("chaos_spec_a=latency:2s;oops", "oops"),
        ("chaos_spec_a=latency", "chaos_spec_a=latency"),
        ("chaos_spec_a=error@1.5", "chaos_spec_a=error@1.5"),
        ("chaos_spec_a=boom", "chaos_spec_a=boom"),
        ("chaos_spec_b=hang;nobody=error", "nobody"),
        ("nobody=error", "nobody"),
    ] {
        let e = chaos::apply(spec).unwrap_err();
        assert_eq!(e.entry, entry, "{spec}: {e}");
    }
    // A rejected specification leaves nothing injected (the valid hang before `nobody` too).
    let start = Instant::now();
    assert_eq!(spec_target().await, Ok(1));
    assert_eq!(start.elapsed(), Duration::ZERO);
}
