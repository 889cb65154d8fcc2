//! The storefront scenario (`examples/storefront`), quick version, over loopback: the resilient
//! gateway keeps its p99 under 500 ms with no errors through every phase, the naive one does
//! not, and the recommendations breaker opens and later closes.
//!
//! Real HTTP and real time: the bounds are the scenario's own promises, far from the values a
//! healthy run shows, so a loaded machine does not make the test flaky.

#[path = "../examples/storefront/scenario.rs"]
mod scenario;

use std::time::Duration;

use resilient::CircuitState;
use scenario::{Gateway, P99_BUDGET, Phase, RECOMMENDATIONS, Settings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_storefront_scenario_keeps_the_resilient_gateway_within_budget() {
    let settings = Settings {
        progress: false,
        ..Settings::quick()
    };
    let report = scenario::run(&settings).await;
    // Shown when an assertion fails.
    println!("{}", report.render());

    for phase in Phase::ALL {
        let p = report.phase(Gateway::Resilient, phase);
        assert!(p.requests > 0, "resilient, {}: no requests", phase.label());
        assert!(
            p.p99 < P99_BUDGET,
            "resilient, {}: p99 {:?} is not under {P99_BUDGET:?}",
            phase.label(),
            p.p99
        );
        assert_eq!(p.errors, 0, "resilient, {}: errors", phase.label());
    }
    assert!(report.violations().is_empty(), "{:?}", report.violations());
    assert_eq!(report.to_json()["violations"], serde_json::json!([]));

    let slow = report.phase(Gateway::Naive, Phase::RecommendationsSlow);
    assert!(
        slow.p99 > Duration::from_secs(1),
        "naive, recommendations slow: p99 {:?} should be above 1 s",
        slow.p99
    );

    let recommendations: Vec<(Phase, CircuitState)> = report
        .transitions()
        .filter(|(_, t)| t.breaker == RECOMMENDATIONS)
        .map(|(phase, t)| (phase, t.to))
        .collect();
    let opened = recommendations
        .iter()
        .position(|&(_, to)| to == CircuitState::Open)
        .unwrap_or_else(|| panic!("the recommendations breaker never opened: {recommendations:?}"));
    assert!(
        recommendations[opened..]
            .iter()
            .any(|&(_, to)| to == CircuitState::Closed),
        "the recommendations breaker opened but never closed again: {recommendations:?}"
    );
    assert_eq!(
        recommendations[opened].0,
        Phase::RecommendationsSlow,
        "the recommendations breaker should open while the service is slow: {recommendations:?}"
    );
}
