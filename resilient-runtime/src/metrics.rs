//! Metrics through the `metrics` facade (feature `metrics`), so users pick their exporter.
//! Without the feature every function here is an empty inline and the call path has no
//! metrics code at all.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `resilient_calls_total` | counter | `name`, `outcome` (`success`, `failure`, `rejected`, `timeout`, `fallback`) |
//! | `resilient_circuit_state` | gauge | `name` (0 closed, 1 half-open, 2 open, 3 forced open, 4 disabled) |
//! | `resilient_circuit_transitions_total` | counter | `name`, `to` |
//! | `resilient_retries_total` | counter | `name` |
//! | `resilient_fallbacks_total` | counter | `name` |
//! | `resilient_timeouts_total` | counter | `name` |
//! | `resilient_bulkhead_in_flight` | gauge | `name` |
//! | `resilient_bulkhead_queued` | gauge | `name` |
//! | `resilient_bulkhead_rejections_total` | counter | `name` |
//! | `resilient_call_duration_seconds` | histogram | `name` |
//!
//! Every policy layer counts its own calls under its own name: a breaker counts success,
//! failure and rejected; a timeout success, failure and timeout; a bulkhead success, failure
//! and rejected; a retry the final success or failure; a fallback success, failure or
//! fallback (the handler answered). The duration histogram is recorded by the layers that face
//! the dependency: circuit breaker, timeout and bulkhead, from admission to completion.

#![cfg_attr(not(feature = "metrics"), allow(unused_variables, clippy::unused_self))]

use crate::CircuitState;

/// The values of `resilient_circuit_state`.
#[must_use]
pub fn state_code(state: CircuitState) -> u8 {
    match state {
        CircuitState::Closed => 0,
        CircuitState::HalfOpen => 1,
        CircuitState::Open => 2,
        CircuitState::ForcedOpen => 3,
        CircuitState::Disabled => 4,
    }
}

#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
fn state_label(state: CircuitState) -> &'static str {
    match state {
        CircuitState::Closed => "closed",
        CircuitState::HalfOpen => "half_open",
        CircuitState::Open => "open",
        CircuitState::ForcedOpen => "forced_open",
        CircuitState::Disabled => "disabled",
    }
}

#[inline]
pub(crate) fn call(name: &'static str, outcome: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("resilient_calls_total", "name" => name, "outcome" => outcome).increment(1);
}

#[inline]
pub(crate) fn transition(name: &'static str, to: CircuitState) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!("resilient_circuit_transitions_total", "name" => name, "to" => state_label(to))
            .increment(1);
        metrics::gauge!("resilient_circuit_state", "name" => name).set(f64::from(state_code(to)));
    }
}

#[inline]
pub(crate) fn created(name: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::gauge!("resilient_circuit_state", "name" => name).set(0.0);
}

#[inline]
pub(crate) fn retry(name: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("resilient_retries_total", "name" => name).increment(1);
}

#[inline]
pub(crate) fn fallback(name: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("resilient_fallbacks_total", "name" => name).increment(1);
}

#[inline]
pub(crate) fn timeout(name: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("resilient_timeouts_total", "name" => name).increment(1);
}

#[inline]
pub(crate) fn bulkhead_rejected(name: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("resilient_bulkhead_rejections_total", "name" => name).increment(1);
}

#[inline]
pub(crate) fn bulkhead_levels(bulkhead: &crate::Bulkhead) {
    #[cfg(feature = "metrics")]
    {
        #[allow(clippy::cast_precision_loss)] // permit counts are far below 2^52
        let (in_flight, queued) = (bulkhead.in_flight() as f64, bulkhead.queued() as f64);
        metrics::gauge!("resilient_bulkhead_in_flight", "name" => bulkhead.name()).set(in_flight);
        metrics::gauge!("resilient_bulkhead_queued", "name" => bulkhead.name()).set(queued);
    }
}

/// Measures one layer's call for `resilient_call_duration_seconds`; nothing without the
/// feature (no clock read).
pub(crate) struct Timer {
    #[cfg(feature = "metrics")]
    start: tokio::time::Instant,
}

impl Timer {
    #[inline]
    pub(crate) fn start() -> Timer {
        Timer {
            #[cfg(feature = "metrics")]
            start: tokio::time::Instant::now(),
        }
    }

    #[inline]
    pub(crate) fn stop(self, name: &'static str) {
        #[cfg(feature = "metrics")]
        metrics::histogram!("resilient_call_duration_seconds", "name" => name)
            .record(self.start.elapsed().as_secs_f64());
    }
}

/// The outcome label of a layer's result.
#[inline]
pub(crate) fn outcome<T, E>(out: &Result<T, crate::Outcome<E>>) -> &'static str {
    match out {
        Ok(_) => "success",
        Err(crate::Outcome::Rejected(crate::Error::Timeout { .. })) => "timeout",
        Err(crate::Outcome::Rejected(
            crate::Error::CircuitOpen { .. } | crate::Error::BulkheadFull { .. },
        )) => "rejected",
        Err(_) => "failure",
    }
}
