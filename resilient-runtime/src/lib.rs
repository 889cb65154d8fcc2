//! The runtime of [`resilient`](https://docs.rs/resilient): policies, the registry of named
//! breakers and bulkheads, the error type and events.
//!
//! Depend on the `resilient` crate, which re-exports everything public here together with the
//! attributes. The policies are usable without the attributes:
//!
//! ```
//! use resilient_runtime::{CircuitBreaker, BreakerConfig, TripRule, Error};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let breaker = CircuitBreaker::new("db", BreakerConfig::new(TripRule::Consecutive { threshold: 2 }))
//!     .expect("valid config");
//! for _ in 0..2 {
//!     let _ = breaker.call(async { Err::<(), _>(std::io::Error::other("down")) }).await;
//! }
//! let rejected: Result<(), std::io::Error> = breaker.call(async { Ok(()) }).await;
//! assert!(Error::find(&rejected.unwrap_err()).is_some_and(Error::is_circuit_open));
//! # }
//! ```

mod bulkhead;
#[cfg(feature = "chaos")]
pub mod chaos;
mod circuit_breaker;
pub mod config;
mod error;
mod events;
mod health;
pub(crate) mod literal;
mod live;
pub mod metrics;
mod outcome;
mod registry;
mod retry;
mod sync;
mod tally;
mod timer;

pub use bulkhead::{Bulkhead, BulkheadConfig, BulkheadPermit};
pub use circuit_breaker::{
    BreakerConfig, BreakerMetrics, CircuitBreaker, CircuitState, Ticket, TripRule,
};
pub use error::{Error, FromResilience};
pub use health::{BreakerHealth, HealthReport, HealthStatus, health};
pub use outcome::Outcome;
pub use registry::{
    BreakerHandle, BulkheadHandle, CheckError, PolicyInfo, PolicyKind, Site, breaker, bulkhead,
    check, policies,
};
pub use retry::{Jitter, RetryConfig, Strategy};

#[doc(hidden)]
pub mod __private;

/// Parses a duration in the attributes' syntax (`"200ms"`, `"1m30s"`); the same parser the
/// macros use.
///
/// # Errors
/// A message saying what is wrong and what is expected.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    literal::parse_duration(text)
}
