//! tracing events, all under target `resilient` and carrying the policy's name.
//!
//! Per-call events are at `debug` or `trace`; state changes at `info`/`warn`. With no
//! subscriber, each is one relaxed load of the callsite's interest.

use std::time::Duration;

use crate::CircuitState;

pub(crate) fn transition(name: &'static str, to: CircuitState, failure_rate: Option<f64>) {
    crate::metrics::transition(name, to);
    match to {
        CircuitState::Open | CircuitState::ForcedOpen => tracing::warn!(
            target: "resilient",
            name,
            to = ?to,
            failure_rate,
            "circuit breaker opened"
        ),
        _ => tracing::info!(target: "resilient", name, to = ?to, "circuit breaker state changed"),
    }
}

pub(crate) fn rejected_open(name: &'static str, retry_after: Option<Duration>) {
    crate::metrics::call(name, "rejected");
    tracing::debug!(
        target: "resilient",
        name,
        reason = "circuit_open",
        retry_after = ?retry_after,
        "call rejected"
    );
}

pub(crate) fn bulkhead_rejected(name: &'static str) {
    crate::metrics::bulkhead_rejected(name);
    crate::metrics::call(name, "rejected");
    tracing::debug!(target: "resilient", name, reason = "bulkhead_full", "call rejected");
}

pub(crate) fn bulkhead_queued(name: &'static str, depth: usize) {
    tracing::trace!(target: "resilient", name, depth, "call queued in bulkhead");
}

pub(crate) fn timed_out(name: &'static str, after: Duration) {
    crate::metrics::timeout(name);
    tracing::debug!(target: "resilient", name, after = ?after, "call timed out");
}

pub(crate) fn retrying(name: &'static str, attempt: u32, delay: Duration) {
    crate::metrics::retry(name);
    tracing::debug!(target: "resilient", name, attempt, delay = ?delay, "retrying call");
}

pub(crate) fn fallback(name: &'static str) {
    crate::metrics::fallback(name);
    crate::metrics::call(name, "fallback");
    tracing::debug!(target: "resilient", name, "fallback used");
}

pub(crate) fn conflict(message: &str) {
    tracing::error!(target: "resilient", message, "conflicting policy declarations");
}
