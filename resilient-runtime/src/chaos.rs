//! Chaos injection (feature `chaos`): latency, errors or hangs injected into the calls of any
//! named policy, with a probability, for as long as a guard lives. Faults act at the body,
//! inside all layers, so every policy sees them as it would see the real thing.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use resilient_runtime::chaos::{self, Fault};
//! use std::time::Duration;
//! // No annotated function is named "nothing" in this doctest, so inject refuses.
//! assert!(chaos::inject("nothing", Fault::latency(Duration::from_secs(2)).probability(0.5)).is_err());
//! # }
//! ```
//!
//! A running binary can take its faults from the environment:
//! `RESILIENT_CHAOS="recommendations=latency:2s@0.5;inventory=error@1.0"` and
//! [`apply_env`]. Entries are `name=kind[:duration][@probability]`, kinds `latency:<duration>`,
//! `error` and `hang`; the probability defaults to 1.0.
//!
//! An injected error is `resilient::Error::Injected`, which reaches the caller converted to its
//! `E`: only a stack that already needs `From<resilient::Error>` (one with a breaker, timeout or
//! bulkhead) can carry it, so [`inject`] refuses an error fault for any other. It counts as a
//! failure for breakers and retries like any error.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::registry::{Decl, PolicyKind, Registration};

/// What to inject.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fault {
    kind: FaultKind,
    probability: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum FaultKind {
    Latency(Duration),
    Error,
    Hang,
}

impl Fault {
    /// Delays the body by `d` before it runs.
    #[must_use]
    pub fn latency(d: Duration) -> Fault {
        Fault {
            kind: FaultKind::Latency(d),
            probability: 1.0,
        }
    }

    /// Fails the call with `resilient::Error::Injected` instead of running the body.
    #[must_use]
    pub fn error() -> Fault {
        Fault {
            kind: FaultKind::Error,
            probability: 1.0,
        }
    }

    /// The body never completes (until a timeout or the caller drops the call).
    #[must_use]
    pub fn hang() -> Fault {
        Fault {
            kind: FaultKind::Hang,
            probability: 1.0,
        }
    }

    /// Injects into this share of calls (clamped to `[0, 1]`; `NaN` means never).
    #[must_use]
    pub fn probability(mut self, p: f64) -> Fault {
        self.probability = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
        self
    }
}

/// Why a fault was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChaosError {
    /// The offending entry or policy name.
    pub entry: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ChaosError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "chaos entry `{}`: {}", self.entry, self.message)
    }
}

impl std::error::Error for ChaosError {}

struct Active {
    id: u64,
    name: String,
    fault: Fault,
}

/// Number of active faults: the call path reads only this while there are none.
static COUNT: AtomicUsize = AtomicUsize::new(0);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static FAULTS: Mutex<Vec<Active>> = Mutex::new(Vec::new());
/// The seeded generator that decides probabilities (splitmix64); reseed with [`seed`].
static RNG: AtomicU64 = AtomicU64::new(0x5EED_5EED_5EED_5EED);

/// Makes the probability draws reproducible from now on.
pub fn seed(seed: u64) {
    RNG.store(seed, Ordering::Relaxed);
}

fn draw() -> f64 {
    let mut z = RNG
        .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    #[allow(clippy::cast_precision_loss)] // 53 bits are exact
    let unit = (z >> 11) as f64 / (1u64 << 53) as f64;
    unit
}

/// Removes its fault when dropped.
#[derive(Debug)]
#[must_use = "the fault is removed when the guard is dropped"]
pub struct ChaosGuard {
    id: u64,
}

impl Drop for ChaosGuard {
    fn drop(&mut self) {
        let mut faults = FAULTS.lock().unwrap_or_else(PoisonError::into_inner);
        faults.retain(|f| f.id != self.id);
        COUNT.store(faults.len(), Ordering::Release);
    }
}

/// Injects `fault` into every call of every stack with a policy named `name`, until the
/// guard is dropped.
///
/// # Errors
/// When no annotated function has a policy of that name, or for an error fault, when one of
/// those stacks cannot carry a `resilient::Error` (no breaker, timeout or bulkhead).
pub fn inject(name: &str, fault: Fault) -> Result<ChaosGuard, ChaosError> {
    let err = |message: String| ChaosError {
        entry: name.to_string(),
        message,
    };
    let stacks: Vec<&'static Registration> = inventory::iter::<Registration>
        .into_iter()
        .filter(|r| r.policies.iter().any(|d| d.name() == name))
        .collect();
    if stacks.is_empty() {
        return Err(err("no annotated function has a policy of this name".into()));
    }
    if fault.kind == FaultKind::Error
        && let Some(r) = stacks
            .iter()
            .find(|r| !r.policies.iter().any(|d| rejects(*d)))
    {
        return Err(err(format!(
            "an error fault needs a stack whose error type converts from resilient::Error; {} has \
             only retry and fallback",
            r.site.key
        )));
    }
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let mut faults = FAULTS.lock().unwrap_or_else(PoisonError::into_inner);
    faults.push(Active {
        id,
        name: name.to_string(),
        fault,
    });
    COUNT.store(faults.len(), Ordering::Release);
    Ok(ChaosGuard { id })
}

fn rejects(d: Decl) -> bool {
    matches!(
        d.kind(),
        PolicyKind::CircuitBreaker | PolicyKind::Timeout | PolicyKind::Bulkhead
    )
}

/// Parses a `RESILIENT_CHAOS` value into (policy name, fault) pairs.
///
/// # Errors
/// A [`ChaosError`] naming the first malformed entry.
pub fn parse(spec: &str) -> Result<Vec<(String, Fault)>, ChaosError> {
    let mut out = Vec::new();
    for entry in spec.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let err = |message: &str| ChaosError {
            entry: entry.to_string(),
            message: message.to_string(),
        };
        let (name, rest) = entry
            .split_once('=')
            .ok_or_else(|| err("expected name=kind[:duration][@probability]"))?;
        let name = name.trim();
        if name.is_empty() {
            return Err(err("the policy name is empty"));
        }
        let (kind, probability) = match rest.rsplit_once('@') {
            Some((k, p)) => {
                let p: f64 = p
                    .trim()
                    .parse()
                    .map_err(|_| err("the probability after `@` must be a number in [0, 1]"))?;
                if !(0.0..=1.0).contains(&p) {
                    return Err(err("the probability after `@` must be a number in [0, 1]"));
                }
                (k.trim(), p)
            }
            None => (rest.trim(), 1.0),
        };
        let fault = match kind.split_once(':') {
            Some(("latency", d)) => {
                Fault::latency(crate::literal::parse_duration(d.trim()).map_err(|m| err(&m))?)
            }
            None if kind == "error" => Fault::error(),
            None if kind == "hang" => Fault::hang(),
            None if kind == "latency" => return Err(err("latency needs a duration: latency:2s")),
            _ => return Err(err("the kind is one of latency:<duration>, error, hang")),
        };
        out.push((name.to_string(), fault.probability(probability)));
    }
    Ok(out)
}

/// Injects every fault of the `RESILIENT_CHAOS` environment variable (none if unset). Keep the
/// guards for as long as the faults should last.
///
/// # Errors
/// A [`ChaosError`] naming the offending entry; then nothing is injected.
pub fn apply_env() -> Result<Vec<ChaosGuard>, ChaosError> {
    match std::env::var("RESILIENT_CHAOS") {
        Ok(spec) => apply(&spec),
        Err(_) => Ok(Vec::new()),
    }
}

/// [`apply_env`] for a given specification.
///
/// # Errors
/// As [`apply_env`].
pub fn apply(spec: &str) -> Result<Vec<ChaosGuard>, ChaosError> {
    let parsed = parse(spec)?;
    let mut guards = Vec::with_capacity(parsed.len());
    for (name, fault) in parsed {
        // Dropping the guards gathered so far undoes a partial application.
        guards.push(inject(&name, fault)?);
    }
    Ok(guards)
}

/// What the body adapter does for one call: nothing, a delay, an error or a hang.
pub(crate) enum Verdict {
    Run,
    Delay(Duration),
    Fail(&'static str),
    Hang,
}

/// Decides for one call of a stack with these policies. One relaxed load when no fault is set.
#[inline]
pub(crate) fn verdict(policies: &'static [Decl]) -> Verdict {
    if COUNT.load(Ordering::Acquire) == 0 {
        return Verdict::Run;
    }
    verdict_slow(policies)
}

#[cold]
fn verdict_slow(policies: &'static [Decl]) -> Verdict {
    let faults = FAULTS.lock().unwrap_or_else(PoisonError::into_inner);
    for f in faults.iter() {
        let Some(decl) = policies.iter().find(|d| d.name() == f.name) else {
            continue;
        };
        if f.fault.probability < 1.0 && draw() >= f.fault.probability {
            continue;
        }
        return match f.fault.kind {
            FaultKind::Latency(d) => Verdict::Delay(d),
            FaultKind::Error => Verdict::Fail(decl.name()),
            FaultKind::Hang => Verdict::Hang,
        };
    }
    Verdict::Run
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_syntax() {
        let parsed =
            parse("recommendations=latency:2s@0.5; inventory=error@1.0;profiles=hang").unwrap();
        assert_eq!(
            parsed[0],
            (
                "recommendations".into(),
                Fault::latency(Duration::from_secs(2)).probability(0.5)
            )
        );
        assert_eq!(parsed[1], ("inventory".into(), Fault::error()));
        assert_eq!(parsed[2], ("profiles".into(), Fault::hang()));
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn malformed_entries_are_named() {
        for (spec, bad) in [
            ("a=latency:2s;b", "b"),
            ("a=latency", "a=latency"),
            ("a=latency:2 s", "a=latency:2 s"),
            ("a=error@2", "a=error@2"),
            ("a=error@x", "a=error@x"),
            ("=error", "=error"),
            ("a=explode", "a=explode"),
        ] {
            let e = parse(spec).unwrap_err();
            assert_eq!(e.entry, bad, "{spec}: {e}");
        }
    }
}
