//! The `metrics` feature: every metric name and label, recorded through the `metrics` facade
//! (a debugging recorder), and the Prometheus example's endpoint scraped over HTTP.
//! Run with `cargo test --features metrics --test metrics`.
#![cfg(feature = "metrics")]
// Gauges hold small integers exactly (state codes, permit counts).
#![allow(clippy::float_cmp)]

use std::collections::HashMap;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use resilient::{bulkhead, circuit_breaker, fallback, retry, timeout};

mod common;

use common::E;

async fn zero(_e: E) -> Result<u32, E> {
    Ok(0)
}

#[fallback(zero, args = (), name = "m_fb")]
#[retry(attempts = 2, backoff = "1ms", jitter = "none", name = "m_retry")]
#[circuit_breaker(threshold = 2, cooldown = "1s", name = "m_cb")]
#[timeout("50ms", name = "m_to")]
#[bulkhead(pool = 1, name = "m_bh")]
async fn stacked(mode: u8) -> Result<u32, E> {
    match mode {
        0 => Ok(1),
        1 => Err(E::Body),
        _ => {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok(2)
        }
    }
}

#[bulkhead(pool = 1, name = "m_bulkhead")]
async fn pooled() -> Result<(), E> {
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(())
}

type Key = (String, Vec<(String, String)>);

fn values(snapshotter: &Snapshotter) -> HashMap<Key, DebugValue> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let k = key.key();
            let mut labels: Vec<(String, String)> = k
                .labels()
                .map(|l| (l.key().to_string(), l.value().to_string()))
                .collect();
            labels.sort();
            ((k.name().to_string(), labels), value)
        })
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<_> = pairs
        .iter()
        .map(|(a, b)| ((*a).to_string(), (*b).to_string()))
        .collect();
    v.sort();
    v
}

fn counter(m: &HashMap<Key, DebugValue>, name: &str, pairs: &[(&str, &str)]) -> u64 {
    match m.get(&(name.to_string(), labels(pairs))) {
        Some(DebugValue::Counter(n)) => *n,
        other => panic!(
            "{name}{pairs:?}: {other:?}\nall: {:#?}",
            m.keys().collect::<Vec<_>>()
        ),
    }
}

fn gauge(m: &HashMap<Key, DebugValue>, name: &str, pairs: &[(&str, &str)]) -> f64 {
    match m.get(&(name.to_string(), labels(pairs))) {
        Some(DebugValue::Gauge(g)) => g.into_inner(),
        other => panic!("{name}{pairs:?}: {other:?}"),
    }
}

#[test]
#[allow(clippy::too_many_lines)] // one scenario, then one assertion per metric
fn every_metric_name_and_label() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            assert_eq!(stacked(0).await, Ok(1));
            // Two failed attempts open the breaker (threshold 2); the fallback answers.
            assert_eq!(stacked(1).await, Ok(0));
            // Rejected by the open breaker; no retry; the fallback answers.
            assert_eq!(stacked(0).await, Ok(0));
            resilient::breaker("m_cb").unwrap().reset();
            // A timeout, retried, then a success.
            assert_eq!(stacked(2).await, Ok(0));
            let (a, b) = tokio::join!(pooled(), pooled());
            assert!(a.is_ok() && matches!(b, Err(E::R(resilient::Error::BulkheadFull { .. }))));
        });
    });
    let m = values(&snapshotter);
    let c = |name: &str, outcome: &str| {
        counter(
            &m,
            "resilient_calls_total",
            &[("name", name), ("outcome", outcome)],
        )
    };
    // Each layer counts its own calls under its own name.
    assert_eq!((c("m_fb", "success"), c("m_fb", "fallback")), (1, 3));
    assert_eq!((c("m_retry", "success"), c("m_retry", "failure")), (1, 3));
    assert_eq!(
        (
            c("m_cb", "success"),
            c("m_cb", "failure"),
            c("m_cb", "rejected")
        ),
        (1, 4, 1)
    );
    assert_eq!(
        (
            c("m_to", "success"),
            c("m_to", "failure"),
            c("m_to", "timeout")
        ),
        (1, 2, 2)
    );
    // The attempts that timed out were dropped inside the bulkhead: not counted there.
    assert_eq!((c("m_bh", "success"), c("m_bh", "failure")), (1, 2));
    assert_eq!(
        (c("m_bulkhead", "success"), c("m_bulkhead", "rejected")),
        (1, 1)
    );
    assert_eq!(
        counter(&m, "resilient_retries_total", &[("name", "m_retry")]),
        2
    );
    assert_eq!(
        counter(&m, "resilient_fallbacks_total", &[("name", "m_fb")]),
        3
    );
    assert_eq!(
        counter(&m, "resilient_timeouts_total", &[("name", "m_to")]),
        2
    );
    assert_eq!(
        counter(
            &m,
            "resilient_bulkhead_rejections_total",
            &[("name", "m_bulkhead")]
        ),
        1
    );
    let t = |to: &str| {
        counter(
            &m,
            "resilient_circuit_transitions_total",
            &[("name", "m_cb"), ("to", to)],
        )
    };
    assert_eq!((t("open"), t("closed")), (2, 1));
    assert_eq!(
        gauge(&m, "resilient_circuit_state", &[("name", "m_cb")]),
        2.0,
        "open"
    );
    assert_eq!(
        gauge(
            &m,
            "resilient_bulkhead_in_flight",
            &[("name", "m_bulkhead")]
        ),
        0.0
    );
    assert_eq!(
        gauge(&m, "resilient_bulkhead_queued", &[("name", "m_bulkhead")]),
        0.0
    );
    for (name, n) in [("m_cb", 5), ("m_to", 5), ("m_bh", 3)] {
        match m.get(&(
            "resilient_call_duration_seconds".to_string(),
            labels(&[("name", name)]),
        )) {
            Some(DebugValue::Histogram(h)) => assert_eq!(h.len(), n, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[path = "../examples/metrics.rs"]
#[allow(dead_code)]
mod example;

#[tokio::test]
async fn the_example_serves_prometheus_text_over_http() {
    let (addr, _handle) = example::serve().await;
    example::load(40).await;
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "resilient_calls_total",
        "resilient_circuit_state",
        "resilient_bulkhead_in_flight",
        "resilient_call_duration_seconds",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    assert!(text.contains("name=\"inventory\""), "{text}");
}
