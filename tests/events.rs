//! tracing events: every kind, under target `resilient`, each carrying the policy's name, at
//! the level DESIGN.md and the operations issue give (warn on opening; info on half-open and
//! close; per-call events at debug or trace).

use std::time::Duration;

use resilient::{bulkhead, circuit_breaker, fallback, retry, timeout};
use tokio::time::{advance, sleep};
use tracing::Level;

use common::E;

mod common;

use common::capture::Capture;

trait One {
    fn one(&self, name: &str, message: &str) -> common::capture::Event;
}

impl One for Capture {
    fn one(&self, name: &str, message: &str) -> common::capture::Event {
        let found = self.of(name, message);
        assert_eq!(
            found.len(),
            1,
            "one `{message}` event for {name}: {:#?}",
            self.named(name)
        );
        found.into_iter().next().unwrap()
    }
}

#[circuit_breaker(failure_rate = 0.5, last = 4, cooldown = "1s", name = "ev_breaker")]
async fn flaky(fail: bool) -> Result<(), E> {
    if fail { Err(E::Body) } else { Ok(()) }
}

#[tokio::test(start_paused = true)]
async fn breaker_transitions_and_rejections() {
    let events = Capture::install();
    for fail in [false, true, false, true] {
        let _ = flaky(fail).await;
    }
    let opened = events.one("ev_breaker", "circuit breaker opened");
    assert_eq!(opened.level, Level::WARN);
    assert_eq!(opened.get("failure_rate"), Some("0.5"));
    assert_eq!(opened.get("to"), Some("Open"));

    assert!(matches!(
        flaky(false).await,
        Err(E::R(resilient::Error::CircuitOpen { .. }))
    ));
    let rejected = events.one("ev_breaker", "call rejected");
    assert_eq!(rejected.level, Level::DEBUG);
    assert_eq!(rejected.get("reason"), Some("circuit_open"));
    assert_eq!(rejected.get("retry_after"), Some("Some(1s)"));

    advance(Duration::from_secs(1)).await;
    flaky(false).await.unwrap();
    let changes = events.of("ev_breaker", "circuit breaker state changed");
    let to: Vec<_> = changes
        .iter()
        .map(|e| (e.level, e.get("to").unwrap_or_default().to_string()))
        .collect();
    assert_eq!(
        to,
        [
            (Level::INFO, "HalfOpen".to_string()),
            (Level::INFO, "Closed".to_string())
        ]
    );

    resilient::breaker("ev_breaker").unwrap().force_open();
    let forced = events.of("ev_breaker", "circuit breaker opened");
    assert_eq!(forced.len(), 2);
    assert_eq!(forced[1].get("to"), Some("ForcedOpen"));
    resilient::breaker("ev_breaker").unwrap().reset();
}

#[timeout("50ms", name = "ev_timeout")]
async fn slow() -> Result<(), E> {
    sleep(Duration::from_secs(1)).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn timeouts() {
    let events = Capture::install();
    slow().await.unwrap_err();
    let e = events.one("ev_timeout", "timed out");
    assert_eq!(e.level, Level::DEBUG);
    assert_eq!(e.get("after"), Some("50ms"));
}

#[retry(
    attempts = 3,
    backoff = "10ms",
    strategy = "constant",
    jitter = "none",
    name = "ev_retry"
)]
async fn failing() -> Result<(), E> {
    Err(E::Body)
}

#[tokio::test(start_paused = true)]
async fn retries_carry_the_attempt_and_the_delay() {
    let events = Capture::install();
    failing().await.unwrap_err();
    let retries = events.of("ev_retry", "retrying");
    let seen: Vec<_> = retries
        .iter()
        .map(|e| {
            (
                e.level,
                e.get("attempt").unwrap_or_default().to_string(),
                e.get("delay").unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (Level::DEBUG, "2".into(), "10ms".into()),
            (Level::DEBUG, "3".into(), "10ms".into())
        ]
    );
}

async fn cached(_err: E) -> Result<u32, E> {
    Ok(0)
}

#[fallback(cached, args = (), name = "ev_fallback")]
async fn with_fallback() -> Result<u32, E> {
    Err(E::Body)
}

#[tokio::test(start_paused = true)]
async fn fallbacks() {
    let events = Capture::install();
    assert_eq!(with_fallback().await, Ok(0));
    assert_eq!(
        events.one("ev_fallback", "fallback used").level,
        Level::DEBUG
    );
}

#[bulkhead(pool = 1, queue = 1, name = "ev_bulkhead")]
async fn pooled() -> Result<(), E> {
    sleep(Duration::from_millis(100)).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn bulkhead_queueing_and_rejections() {
    let events = Capture::install();
    let running = pooled();
    let queued = pooled();
    let rejected = pooled();
    let (first, second, third) = tokio::join!(running, queued, rejected);
    assert_eq!((first, second), (Ok(()), Ok(())));
    assert!(matches!(
        third,
        Err(E::R(resilient::Error::BulkheadFull { .. }))
    ));
    let queueing = events.one("ev_bulkhead", "queued");
    assert_eq!(queueing.level, Level::TRACE);
    assert_eq!(queueing.get("depth"), Some("1"));
    let rejection = events.one("ev_bulkhead", "call rejected");
    assert_eq!(rejection.level, Level::DEBUG);
    assert_eq!(rejection.get("reason"), Some("bulkhead_full"));
}
