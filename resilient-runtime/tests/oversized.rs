//! A configuration the validator accepts must not take the process down. In a file of its
//! own: had the bug it pins come back, it would abort the whole test binary (an allocation
//! failure is no panic).
#![cfg(not(loom))]

use std::time::Duration;

use resilient_runtime::{BreakerConfig, TripRule};

#[test]
fn huge_counts_are_refused_and_the_largest_allowed_ones_are_cheap() {
    let timed = |threshold| {
        BreakerConfig::new(TripRule::CountInWindow {
            threshold,
            window: Duration::from_secs(1),
        })
    };
    let calls = |last| {
        BreakerConfig::new(TripRule::RateOverCalls {
            failure_rate: 0.5,
            last,
            min_calls: 1,
        })
    };
    for config in [
        timed(u32::MAX),
        timed(100_001),
        calls(u32::MAX),
        calls(1_000_001),
    ] {
        let message = config.validate().unwrap_err();
        assert!(message.contains("may not exceed"), "{message}");
    }
    for config in [timed(100_000), calls(1_000_000)] {
        let breaker = resilient_runtime::CircuitBreaker::new("largest", config).unwrap();
        let ticket = breaker.try_acquire().unwrap();
        breaker.record(ticket, true);
    }
}
