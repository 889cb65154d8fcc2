//! The error every policy returns when it refuses or abandons a call.

use std::fmt;
use std::time::Duration;

/// Why a policy refused or abandoned a call.
///
/// Every variant carries the `name` of the policy that produced it, as a `&'static str`, so
/// building a rejection never allocates. The enum is `#[non_exhaustive]`: match with a
/// wildcard arm, or use the `is_*` helpers.
///
/// Annotated functions return their own error type `E`; when a policy in the stack can reject
/// (`#[timeout]`, `#[circuit_breaker]`, `#[bulkhead]`), `E` must implement
/// `From<resilient::Error>`. `std::io::Error` does (see the `From` impl below), and
/// `anyhow::Error` and `Box<dyn std::error::Error + Send + Sync>` accept it through their
/// blanket conversions.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The call did not complete within the `#[timeout]` limit and was dropped.
    Timeout {
        /// The timeout policy's name.
        name: &'static str,
        /// The limit that was exceeded.
        after: Duration,
    },
    /// The circuit breaker refused the call without running it.
    CircuitOpen {
        /// The breaker's name.
        name: &'static str,
        /// Time left until the breaker lets a trial call through: `None` for a half-open
        /// rejection (all trial slots taken), a ramp rejection or a forced-open breaker.
        retry_after: Option<Duration>,
    },
    /// The bulkhead had no free permit and no free queue place, or the caller waited longer
    /// than `max_wait`.
    BulkheadFull {
        /// The bulkhead's name.
        name: &'static str,
    },
    /// A fault injected on purpose (chaos testing).
    Injected {
        /// The policy whose calls the fault was injected into.
        name: &'static str,
    },
    /// A policy that needs a timer was called outside a tokio runtime, or in one built without
    /// the time driver.
    NoRuntime {
        /// The policy that needed the runtime.
        name: &'static str,
    },
}

impl Error {
    /// The name of the policy that produced this error.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Error::Timeout { name, .. }
            | Error::CircuitOpen { name, .. }
            | Error::BulkheadFull { name }
            | Error::Injected { name }
            | Error::NoRuntime { name } => name,
        }
    }

    /// `true` for [`Error::Timeout`].
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// `true` for [`Error::CircuitOpen`].
    #[must_use]
    pub fn is_circuit_open(&self) -> bool {
        matches!(self, Error::CircuitOpen { .. })
    }

    /// `true` for [`Error::BulkheadFull`].
    #[must_use]
    pub fn is_bulkhead_full(&self) -> bool {
        matches!(self, Error::BulkheadFull { .. })
    }

    /// Finds a `resilient::Error` in `err` or anywhere in its `source()` chain, including inside
    /// an `std::io::Error` built by this crate's `From` impl.
    ///
    /// ```
    /// use resilient_runtime::Error;
    /// let io: std::io::Error = Error::BulkheadFull { name: "db" }.into();
    /// assert!(Error::find(&io).is_some_and(Error::is_bulkhead_full));
    /// ```
    #[must_use]
    pub fn find<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a Error> {
        let mut cur: Option<&'a (dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = cur {
            if let Some(found) = e.downcast_ref::<Error>() {
                return Some(found);
            }
            // `io::Error::source()` skips the wrapped error itself, so look inside it first.
            if let Some(io) = e.downcast_ref::<std::io::Error>()
                && let Some(inner) = io.get_ref()
                && let Some(found) = inner.downcast_ref::<Error>()
            {
                return Some(found);
            }
            cur = e.source();
        }
        None
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Timeout { name, after } => {
                write!(f, "timeout \"{name}\" elapsed after {after:?}")
            }
            Error::CircuitOpen {
                name,
                retry_after: Some(after),
            } if *after >= Duration::from_secs(1) => write!(
                f,
                "circuit breaker \"{name}\" is open; retry after {:.1}s",
                after.as_secs_f64()
            ),
            Error::CircuitOpen {
                name,
                retry_after: Some(after),
            } => write!(
                f,
                "circuit breaker \"{name}\" is open; retry after {}ms",
                after.as_nanos().div_ceil(1_000_000)
            ),
            Error::CircuitOpen {
                name,
                retry_after: None,
            } => write!(
                f,
                "circuit breaker \"{name}\" is not admitting calls now \
                 (half-open with every trial slot taken, ramping up, or forced open)"
            ),
            Error::BulkheadFull { name } => write!(f, "bulkhead \"{name}\" is full"),
            Error::Injected { name } => write!(f, "fault injected into \"{name}\""),
            Error::NoRuntime { name } => write!(
                f,
                "policy \"{name}\" needs a tokio runtime with time enabled, and none is running"
            ),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for std::io::Error {
    /// `TimedOut` for [`Error::Timeout`], `Other` otherwise; the original error is kept inside
    /// and [`Error::find`] gets it back.
    fn from(err: Error) -> Self {
        let kind = if err.is_timeout() {
            std::io::ErrorKind::TimedOut
        } else {
            std::io::ErrorKind::Other
        };
        std::io::Error::new(kind, err)
    }
}

/// The bound an annotated function's error type must meet when a policy in its stack can
/// reject a call. Implemented for every `E: From<resilient::Error>`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot carry a resilience failure (timeout, open circuit, full bulkhead)",
    label = "this error type needs `From<resilient::Error>`",
    note = "implement `From<resilient::Error>` for `{Self}`, or return `std::io::Result`, `anyhow::Result` or `Result<T, Box<dyn Error + Send + Sync>>`"
)]
pub trait FromResilience: From<Error> {}

impl<E: From<Error>> FromResilience for E {}
