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

/// A bulkhead's counts are 32-bit halves of one word: larger `pool` and `queue` are refused
/// with the key named, and the largest allowed ones work.
#[tokio::test]
async fn bulkhead_counts_above_32_bits_are_refused() {
    use resilient_runtime::{Bulkhead, BulkheadConfig};
    let max = u32::MAX as usize;
    for (config, key) in [
        (
            BulkheadConfig {
                pool: max + 1,
                queue: 0,
                max_wait: None,
            },
            "`pool`",
        ),
        (
            BulkheadConfig {
                pool: 1,
                queue: max + 1,
                max_wait: None,
            },
            "`queue`",
        ),
    ] {
        let message = config.validate().unwrap_err();
        assert!(message.starts_with(key), "{message}");
    }
    let largest = Bulkhead::new(
        "largest",
        BulkheadConfig {
            pool: max,
            queue: max,
            max_wait: None,
        },
    )
    .unwrap();
    assert_eq!(largest.available(), max);
    let permit = largest.acquire().await.unwrap();
    assert_eq!((largest.in_flight(), largest.available()), (1, max - 1));
    drop(permit);
    assert_eq!(largest.available(), max);
}
