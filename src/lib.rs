//! Placeholder; replaced below.
#![doc = "resilient"]

pub use resilient_macros::{bulkhead, circuit_breaker, fallback, retry, timeout};
pub use resilient_runtime::{
    BreakerConfig, BreakerHandle, BreakerMetrics, Bulkhead, BulkheadConfig, BulkheadHandle,
    BulkheadPermit, CheckError, CircuitBreaker, CircuitState, Error, FromResilience, Jitter,
    Outcome, RetryConfig, Strategy, TripRule, breaker, bulkhead, check, parse_duration,
};

#[doc(hidden)]
pub use resilient_runtime::__private;
