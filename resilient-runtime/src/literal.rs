//! Literal syntax shared by the attribute macros and the runtime.
//!
//! This one file is compiled into both `resilient-macros` (through `#[path]`) and
//! `resilient-runtime`, so a duration or ratio accepted in an attribute is accepted in a
//! configuration source and vice versa. It must stay dependency-free and panic-free.

use std::fmt::Write as _;
use std::time::Duration;

/// Parses `<integer><unit>` groups (`ns`, `us`, `ms`, `s`, `m`, `h`) in strictly descending unit
/// order without spaces: `"200ms"`, `"30s"`, `"1m30s"`, `"1500us"`.
///
/// Returns a message describing what is wrong; the caller adds where.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    const EXPECTED: &str = "expected a duration like \"200ms\", \"30s\" or \"1m30s\" \
                            (units ns, us, ms, s, m, h, largest first, no spaces)";
    if text.is_empty() {
        return Err(format!("empty duration; {EXPECTED}"));
    }
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut total: u128 = 0;
    // Rank of the last unit seen, to enforce descending order; larger = coarser.
    let mut last_rank = u8::MAX;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(format!("`{text}` is not a duration: {EXPECTED}"));
        }
        let number: u128 = text[start..i]
            .parse()
            .map_err(|_| format!("`{text}` has a number too large for a duration"))?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let (rank, nanos_per_unit): (u8, u128) = match &text[unit_start..i] {
            "h" => (5, 3_600_000_000_000),
            "m" => (4, 60_000_000_000),
            "s" => (3, 1_000_000_000),
            "ms" => (2, 1_000_000),
            "us" => (1, 1_000),
            "ns" => (0, 1),
            "" => {
                return Err(format!(
                    "`{text}` lacks a unit after `{number}`: {EXPECTED}"
                ));
            }
            other => {
                return Err(format!(
                    "`{text}` has an unknown unit `{other}`: {EXPECTED}"
                ));
            }
        };
        if rank >= last_rank {
            return Err(format!(
                "`{text}` repeats a unit or lists a smaller unit before a larger one: {EXPECTED}"
            ));
        }
        last_rank = rank;
        total = number
            .checked_mul(nanos_per_unit)
            .and_then(|n| n.checked_add(total))
            .ok_or_else(|| format!("`{text}` is too large for a duration"))?;
    }
    let secs = u64::try_from(total / 1_000_000_000)
        .map_err(|_| format!("`{text}` is too large for a duration"))?;
    // The remainder is below 1e9, so it fits a u32.
    let nanos = u32::try_from(total % 1_000_000_000).unwrap_or(0);
    Ok(Duration::new(secs, nanos))
}

/// Writes a duration in the syntax [`parse_duration`] reads: `"1m30s"`, `"200ms"`, `"0s"`.
#[allow(
    dead_code,
    reason = "the runtime lists configurations with it; the macros do not"
)]
pub(crate) fn format_duration(d: Duration) -> String {
    let mut nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("h", 3_600_000_000_000u128),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ] {
        if nanos >= size {
            let _ = write!(out, "{}{unit}", nanos / size);
            nanos %= size;
        }
    }
    out
}

/// Checks a ratio is a finite number in (0, 1].
pub(crate) fn check_ratio(value: f64) -> Result<f64, String> {
    if value.is_finite() && value > 0.0 && value <= 1.0 {
        Ok(value)
    } else {
        Err(format!(
            "expected a ratio in (0, 1], like 0.5; found {value}"
        ))
    }
}

/// Largest `threshold` of a `threshold` + `window` rule: the breaker keeps that many times.
#[allow(dead_code, reason = "each crate uses the caps it checks")]
pub(crate) const MAX_TIMED_THRESHOLD: u32 = 100_000;
/// Largest `last`: one bit per call, 125 kB at this size.
#[allow(dead_code, reason = "each crate uses the caps it checks")]
pub(crate) const MAX_LAST: u32 = 1_000_000;

/// Every argument of `#[circuit_breaker]`, in the order the docs list them.
pub(crate) const BREAKER_KEYS: &[&str] = &[
    "threshold",
    "window",
    "failure_rate",
    "last",
    "min_calls",
    "cooldown",
    "max_cooldown",
    "half_open_calls",
    "success_threshold",
    "ramp",
    "slow_call",
    "failure",
    "critical",
    "name",
    "crate",
];
/// Every argument of `#[timeout]`.
pub(crate) const TIMEOUT_KEYS: &[&str] = &["duration", "name", "crate"];
/// Every argument of `#[bulkhead]`.
pub(crate) const BULKHEAD_KEYS: &[&str] = &["pool", "queue", "max_wait", "name", "crate"];
/// Every argument of `#[retry]`.
pub(crate) const RETRY_KEYS: &[&str] = &[
    "attempts",
    "backoff",
    "strategy",
    "multiplier",
    "max_backoff",
    "jitter",
    "max_duration",
    "when",
    "name",
    "crate",
];
/// Every argument of `#[fallback]` (besides the handler).
pub(crate) const FALLBACK_KEYS: &[&str] = &["args", "on", "name", "crate"];
/// Arguments fixed at compile time: identity, paths and code, never configuration.
#[allow(
    dead_code,
    reason = "the runtime's configuration refuses them; the macros do not"
)]
pub(crate) const FIXED_KEYS: &[&str] =
    &["name", "crate", "failure", "when", "on", "args", "handler"];

/// Levenshtein distance, for did-you-mean suggestions on misspelled keys.
#[allow(
    dead_code,
    reason = "the macros use it; the runtime will for config keys"
)]
pub(crate) fn did_you_mean<'a>(found: &str, candidates: &[&'a str]) -> Option<&'a str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1];
            for (j, cb) in b.iter().enumerate() {
                let cost = usize::from(ca != *cb);
                cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
            }
            prev = cur;
        }
        prev[b.len()]
    }
    candidates
        .iter()
        .map(|c| (distance(found, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1500us"), Ok(Duration::from_micros(1500)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(
            parse_duration("1h2m3s4ms5us6ns").map(|d| d.as_nanos()),
            Ok(3_723_004_005_006)
        );
        for bad in [
            "",
            "ms",
            "200",
            "20O ms",
            "200 ms",
            "1s1m",
            "1s1s",
            "1d",
            "-1s",
            "99999999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn ratios() {
        assert!(check_ratio(0.5).is_ok());
        assert!(check_ratio(1.0).is_ok());
        for bad in [0.0, -0.1, 1.01, f64::NAN, f64::INFINITY] {
            assert!(check_ratio(bad).is_err());
        }
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("treshold", &["threshold", "window"]),
            Some("threshold")
        );
        assert_eq!(did_you_mean("zzz", &["threshold", "window"]), None);
    }
}
