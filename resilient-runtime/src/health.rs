//! A health summary of every circuit breaker, for readiness endpoints and dashboards.

use std::fmt;

use crate::CircuitState;

/// Overall health, worst first when compared: `Unhealthy > Degraded > Healthy`.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HealthStatus {
    /// Every breaker is closed (and not ramping) or disabled.
    Healthy,
    /// Some breaker is open, half-open, forced open or ramping up after a recovery.
    Degraded,
    /// A breaker declared `critical = true` is open or forced open.
    Unhealthy,
}

/// One breaker's line in a [`HealthReport`].
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BreakerHealth {
    /// The breaker's name.
    pub name: &'static str,
    /// Its state when the report was taken.
    pub state: CircuitState,
    /// Closed, but still admitting only part of the traffic after a recovery.
    pub ramping: bool,
    /// Declared `critical = true`.
    pub critical: bool,
    /// What this breaker contributes to the overall status.
    pub status: HealthStatus,
}

/// What [`health`] returns.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone, PartialEq)]
pub struct HealthReport {
    status: HealthStatus,
    breakers: Vec<BreakerHealth>,
}

impl HealthReport {
    /// The worst status of any breaker; `Healthy` when there are none.
    #[must_use]
    pub fn status(&self) -> HealthStatus {
        self.status
    }

    /// Every breaker created so far, sorted by name.
    #[must_use]
    pub fn breakers(&self) -> &[BreakerHealth] {
        &self.breakers
    }
}

impl fmt::Display for HealthReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:?}", self.status)?;
        for b in &self.breakers {
            writeln!(
                f,
                "  {:<40} {:?}{}{}",
                b.name,
                b.state,
                if b.ramping { " (ramping)" } else { "" },
                if b.critical { " [critical]" } else { "" }
            )?;
        }
        Ok(())
    }
}

/// A snapshot of every breaker's state. Reading it takes no trial slot and counts as no call.
#[must_use]
pub fn health() -> HealthReport {
    let breakers: Vec<BreakerHealth> = crate::registry::all_breakers()
        .into_iter()
        .map(|(name, b)| {
            let state = b.state();
            let ramping = b.is_ramping();
            let critical = b.config().critical;
            let status = match state {
                CircuitState::Open | CircuitState::ForcedOpen if critical => {
                    HealthStatus::Unhealthy
                }
                CircuitState::Open | CircuitState::ForcedOpen | CircuitState::HalfOpen => {
                    HealthStatus::Degraded
                }
                CircuitState::Closed if ramping => HealthStatus::Degraded,
                CircuitState::Closed | CircuitState::Disabled => HealthStatus::Healthy,
            };
            BreakerHealth {
                name,
                state,
                ramping,
                critical,
                status,
            }
        })
        .collect();
    let status = breakers
        .iter()
        .map(|b| b.status)
        .max()
        .unwrap_or(HealthStatus::Healthy);
    HealthReport { status, breakers }
}
