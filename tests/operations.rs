//! Operations: the link-time strategy inventory, configuration without a rebuild (TOML, files,
//! environment; live changes; all-or-nothing rejection) and the health report.

use common::ms;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::Duration;

use resilient::config::{ConfigError, apply_toml, apply_vars, load};
use resilient::{
    CircuitState, HealthStatus, PolicyKind, bulkhead, circuit_breaker, retry, timeout,
};
use tokio::time::{Instant, sleep};

mod common;

use common::E;

/// Never called by any test: the inventory must list it anyway.
#[circuit_breaker(threshold = 3, name = "ops_never_called")]
#[timeout("150ms")]
#[allow(dead_code)]
async fn never_called() -> Result<(), E> {
    Ok(())
}

#[test]
fn the_inventory_lists_functions_that_were_never_called() {
    let all = resilient::policies();
    let mine: Vec<_> = all
        .iter()
        .filter(|p| p.function == "operations::never_called")
        .collect();
    assert_eq!(mine.len(), 2, "{all:#?}");
    assert_eq!(mine[0].kind, PolicyKind::CircuitBreaker);
    assert_eq!(mine[0].name, "ops_never_called");
    assert_eq!(mine[0].layer, 0);
    assert!(
        mine[0]
            .config
            .starts_with("threshold = 3, cooldown = \"5s\""),
        "{}",
        mine[0].config
    );
    assert_eq!(mine[1].kind, PolicyKind::Timeout);
    assert_eq!(mine[1].name, "operations::never_called");
    assert_eq!(mine[1].config, "\"150ms\"");
    assert!(mine[0].file.ends_with("operations.rs"));
    assert!(mine[0].line > 0);
    // Listing did not create the breaker.
    assert!(resilient::breaker("ops_never_called").is_none());
}

#[circuit_breaker(failure_rate = 0.5, window = "10s", min_calls = 4, name = "ops_live")]
async fn live(fail: bool) -> Result<(), E> {
    if fail { Err(E::Body) } else { Ok(()) }
}

#[tokio::test(start_paused = true)]
async fn toml_changes_a_breaker_live_and_keeps_its_state() {
    // Two failures of four calls: 0.5 would open; after the change to 0.75 it does not.
    live(true).await.unwrap_err();
    apply_toml(
        r#"
        [circuit_breaker.ops_live]
        failure_rate = 0.75
        cooldown = "10s"
        "#,
    )
    .unwrap();
    let b = resilient::breaker("ops_live").unwrap();
    let c = *b.breaker().config();
    assert_eq!(
        c.rule,
        resilient::TripRule::RateOverTime {
            failure_rate: 0.75,
            window: Duration::from_secs(10),
            min_calls: 4
        }
    );
    assert_eq!(c.cooldown, Duration::from_secs(10));
    // A rule change starts a new window and keeps the state.
    assert_eq!(b.metrics().failures, 0);
    assert_eq!(b.state(), CircuitState::Closed);
    live(true).await.unwrap_err();
    live(true).await.unwrap_err();
    live(false).await.unwrap();
    live(false).await.unwrap();
    assert_eq!(b.state(), CircuitState::Closed, "0.5 no longer opens it");
    for _ in 0..4 {
        live(true).await.unwrap_err();
    }
    assert_eq!(b.state(), CircuitState::Open, "6 of 8 is 0.75");
    match live(false).await {
        Err(E::R(resilient::Error::CircuitOpen { retry_after, .. })) => {
            assert_eq!(retry_after, Some(Duration::from_secs(10)));
        }
        other => panic!("{other:?}"),
    }
    // A different kind of rule given whole: five consecutive failures, new window, same state.
    apply_toml("[circuit_breaker.ops_live]\nthreshold = 5\n").unwrap();
    assert_eq!(
        b.breaker().config().rule,
        resilient::TripRule::Consecutive { threshold: 5 }
    );
    assert_eq!(b.state(), CircuitState::Open);
    assert_eq!(b.metrics().failures, 0);
}

static SLOW_CALLS: AtomicU32 = AtomicU32::new(0);

#[timeout("100ms", name = "ops_timeout")]
async fn slow() -> Result<(), E> {
    SLOW_CALLS.fetch_add(1, SeqCst);
    sleep(ms(200)).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_live_timeout_change_applies_to_calls_started_after_it() {
    let first = tokio::spawn(slow());
    tokio::task::yield_now().await;
    apply_vars([("RESILIENT__TIMEOUT__OPS_TIMEOUT__DURATION", "300ms")]).unwrap();
    // The call already running keeps its 100 ms deadline.
    assert!(matches!(
        first.await.unwrap(),
        Err(E::R(resilient::Error::Timeout { .. }))
    ));
    let start = Instant::now();
    assert_eq!(slow().await, Ok(()));
    assert_eq!(start.elapsed(), ms(200));
}

static RETRIED: AtomicU32 = AtomicU32::new(0);

#[retry(attempts = 2, backoff = "0s", name = "ops.retry::x")]
async fn retried() -> Result<(), E> {
    RETRIED.fetch_add(1, SeqCst);
    Err(E::Body)
}

#[tokio::test(start_paused = true)]
async fn env_names_are_upper_cased_with_every_other_character_an_underscore() {
    retried().await.unwrap_err();
    assert_eq!(RETRIED.load(SeqCst), 2);
    apply_vars([
        ("RESILIENT__RETRY__OPS_RETRY__X__ATTEMPTS", "4"),
        ("UNRELATED", "ignored"),
    ])
    .unwrap();
    retried().await.unwrap_err();
    assert_eq!(RETRIED.load(SeqCst), 6);
}

#[bulkhead(pool = 1, name = "ops_pool")]
async fn pooled() -> Result<(), E> {
    sleep(ms(100)).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_bulkhead_pool_can_grow_and_shrink_live() {
    let a = tokio::spawn(pooled());
    tokio::task::yield_now().await;
    assert!(matches!(
        pooled().await,
        Err(E::R(resilient::Error::BulkheadFull { .. }))
    ));
    apply_toml("[bulkhead.ops_pool]\npool = 2\n").unwrap();
    let b = tokio::spawn(pooled());
    tokio::task::yield_now().await;
    let h = resilient::bulkhead("ops_pool").unwrap();
    assert_eq!(h.in_flight(), 2);
    // Shrinking keeps the in-flight permits and admits no one until below the new pool.
    apply_toml("[bulkhead.ops_pool]\npool = 1\n").unwrap();
    assert!(matches!(
        pooled().await,
        Err(E::R(resilient::Error::BulkheadFull { .. }))
    ));
    a.await.unwrap().unwrap();
    b.await.unwrap().unwrap();
    assert_eq!(h.in_flight(), 0);
    assert_eq!(h.available(), 1);
}

fn rejected(result: Result<(), ConfigError>) -> ConfigError {
    result.expect_err("the configuration should have been rejected")
}

#[timeout("250ms", name = "ops_untouched_timeout")]
#[bulkhead(pool = 3, name = "ops_untouched_pool")]
async fn untouched_pool() -> Result<(), E> {
    Ok(())
}

#[circuit_breaker(threshold = 2, name = "ops_untouched")]
async fn untouched() -> Result<(), E> {
    Ok(())
}

#[tokio::test]
async fn every_rejection_names_the_source_policy_and_key_and_applies_nothing() {
    untouched().await.unwrap();
    untouched_pool().await.unwrap();
    let before = *resilient::breaker("ops_untouched")
        .unwrap()
        .breaker()
        .config();

    let e = rejected(apply_toml(
        "[circuit_breaker.ops_untouched]\ncooldown = \"9s\"\n[circuit_breaker.nope]\nthreshold = 1\n",
    ));
    assert_eq!(e.source, "TOML");
    assert_eq!(e.policy.as_deref(), Some("circuit_breaker.nope"));
    assert_eq!(e.line, Some(3));
    assert!(
        e.message
            .contains("no circuit_breaker policy is named `nope`"),
        "{e}"
    );

    let e = rejected(apply_toml(
        "[circuit_breaker.ops_untouched]\ncooldown = \"9s\"\ntreshold = 4\n",
    ));
    assert_eq!(e.key.as_deref(), Some("treshold"));
    assert_eq!(e.line, Some(3));
    assert!(e.message.contains("did you mean `threshold`"), "{e}");

    let e = rejected(apply_toml(
        "[circuit_breaker.ops_untouched]\ncooldown = \"9 s\"\n",
    ));
    assert_eq!(e.key.as_deref(), Some("cooldown"));
    assert!(
        e.to_string()
            .starts_with("TOML:2: [circuit_breaker.ops_untouched] `cooldown`: "),
        "{e}"
    );

    let e = rejected(apply_toml(
        "[circuit_breaker.ops_untouched]\nfailure_rate = 1.5\nwindow = \"10s\"\n",
    ));
    assert_eq!(e.key.as_deref(), Some("failure_rate"));
    assert!(e.message.contains("(0, 1]"), "{e}");

    let e = rejected(apply_toml("[circuit_breaker.ops_untouched]\nlast = 50\n"));
    assert!(e.message.contains("whole new rule"), "{e}");

    let e = rejected(apply_toml(
        "[circuit_breaker.ops_untouched]\nfailure = \"x\"\n",
    ));
    assert!(e.message.contains("fixed at compile time"), "{e}");

    let e = rejected(apply_toml(
        "[circuit_breaker.ops_untouched]\ncooldown = \"9s\"\n[bulkhead.ops_pool\npool = 3\n",
    ));
    assert_eq!(e.line, Some(3));
    assert!(e.message.contains("invalid TOML"), "{e}");

    let e = rejected(apply_toml("[timeoutt.x]\nduration = \"1s\"\n"));
    assert!(e.message.contains("did you mean `timeout`"), "{e}");

    // Valid entries for a timeout and a bulkhead, then a bad one: nothing applies.
    let e = rejected(apply_toml(
        "[timeout.ops_untouched_timeout]\nduration = \"1s\"\n[bulkhead.ops_untouched_pool]\npool = 7\nqueue = -1\n",
    ));
    assert_eq!(e.key.as_deref(), Some("queue"));
    assert_eq!(e.line, Some(5));
    let e = rejected(apply_toml("[bulkhead.ops_untouched_pool]\npool = 0\n"));
    assert_eq!(e.key.as_deref(), Some("pool"));

    let e = rejected(apply_vars([(
        "RESILIENT__CIRCUIT_BREAKER__OPS_UNTOUCHED__COOLDOWN",
        "fast",
    )]));
    assert_eq!(e.source, "environment");
    assert_eq!(e.key.as_deref(), Some("cooldown"));
    assert_eq!(e.policy.as_deref(), Some("circuit_breaker.ops_untouched"));

    let e = rejected(apply_vars([(
        "RESILIENT__CIRCUIT_BREAKER__NOPE__COOLDOWN",
        "1s",
    )]));
    assert_eq!(
        e.key.as_deref(),
        Some("RESILIENT__CIRCUIT_BREAKER__NOPE__COOLDOWN")
    );

    let e = rejected(apply_vars([("RESILIENT__GADGET__X__Y", "1")]));
    assert!(e.message.contains("KIND one of"), "{e}");

    let path = std::env::temp_dir().join(format!("resilient-ops-{}.toml", std::process::id()));
    std::fs::write(&path, "[circuit_breaker.ops_untouched]\n\ncooldown = 5\n").unwrap();
    let e = rejected(load(&path));
    assert_eq!(e.source, path.display().to_string());
    assert_eq!(e.line, Some(3));
    assert!(e.message.contains("found a number"), "{e}");
    let e = rejected(load(path.with_extension("missing")));
    assert!(e.message.contains("cannot read"), "{e}");
    std::fs::remove_file(&path).unwrap();

    // Nothing of any rejected source was applied, though some of its entries were valid.
    assert_eq!(
        *resilient::breaker("ops_untouched")
            .unwrap()
            .breaker()
            .config(),
        before
    );
    assert_eq!(
        resilient::bulkhead("ops_untouched_pool").map(|b| b.bulkhead().config().pool),
        Some(3)
    );
    let timeout = resilient::policies()
        .into_iter()
        .find(|p| p.name == "ops_untouched_timeout")
        .expect("declared");
    assert_eq!(timeout.config, "\"250ms\"");
}

#[test]
fn hostile_configuration_text_never_panics() {
    // Nothing to apply is fine.
    for text in ["", "[circuit_breaker]"] {
        assert_eq!(apply_toml(text), Ok(()), "{text:?}");
    }
    // Everything else is refused, without a panic.
    for text in [
        "[",
        "]]]",
        "circuit_breaker = 1",
        "[circuit_breaker.\"\"]",
        "[retry.x]\nattempts = -1",
        "[a.b.c.d]",
        "\u{0}",
        "[timeout.\"::\"]\nduration = []",
        "[bulkhead.ops_pool]\npool = 99999999999999999999",
    ] {
        assert!(apply_toml(text).is_err(), "{text:?}");
    }
    for (k, v) in [
        ("RESILIENT__", ""),
        ("RESILIENT____", "x"),
        ("RESILIENT__TIMEOUT__", "1s"),
        ("RESILIENT__TIMEOUT____DURATION", "1s"),
    ] {
        assert!(apply_vars([(k, v)]).is_err(), "{k}");
    }
}

#[circuit_breaker(threshold = 1, cooldown = "1s", name = "ops_health_plain")]
async fn plain(fail: bool) -> Result<(), E> {
    if fail { Err(E::Body) } else { Ok(()) }
}

#[circuit_breaker(
    threshold = 1,
    cooldown = "1s",
    critical = true,
    name = "ops_health_critical"
)]
async fn critical(fail: bool) -> Result<(), E> {
    if fail { Err(E::Body) } else { Ok(()) }
}

fn status_of(name: &str) -> Option<HealthStatus> {
    resilient::health()
        .breakers()
        .iter()
        .find(|b| b.name == name)
        .map(|b| b.status)
}

#[tokio::test(start_paused = true)]
async fn health_follows_the_breakers() {
    plain(false).await.unwrap();
    critical(false).await.unwrap();
    assert_eq!(status_of("ops_health_plain"), Some(HealthStatus::Healthy));
    plain(true).await.unwrap_err();
    assert_eq!(status_of("ops_health_plain"), Some(HealthStatus::Degraded));
    assert!(resilient::health().status() >= HealthStatus::Degraded);
    critical(true).await.unwrap_err();
    assert_eq!(
        status_of("ops_health_critical"),
        Some(HealthStatus::Unhealthy)
    );
    assert_eq!(resilient::health().status(), HealthStatus::Unhealthy);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        status_of("ops_health_critical"),
        Some(HealthStatus::Degraded),
        "half-open"
    );
    critical(false).await.unwrap();
    plain(false).await.unwrap();
    assert_eq!(
        status_of("ops_health_critical"),
        Some(HealthStatus::Healthy)
    );
    assert_eq!(status_of("ops_health_plain"), Some(HealthStatus::Healthy));
    resilient::breaker("ops_health_critical")
        .unwrap()
        .force_open();
    assert_eq!(
        status_of("ops_health_critical"),
        Some(HealthStatus::Unhealthy)
    );
    resilient::breaker("ops_health_critical").unwrap().reset();
}
