//! Retry: attempts, backoff strategies and jitter.

use std::cell::Cell;
use std::time::Duration;

/// How the base delay grows with each retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// `backoff * multiplier^(k-1)` for retry k.
    Exponential,
    /// `backoff * k` for retry k.
    Linear,
    /// `backoff` every time.
    Constant,
}

/// How each computed delay is randomised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// Uniform in `[0, d]` (AWS's "full jitter"; the default).
    Full,
    /// Uniform in `[d/2, d]`.
    Equal,
    /// Exactly `d`.
    None,
    /// `min(max_backoff, U[backoff, 3 * previous delay])` (AWS's decorrelated jitter).
    Decorrelated,
}

/// Everything a retry is configured with. See DESIGN.md section 4.4.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryConfig {
    /// Runs in total, the first included. Default 3.
    pub attempts: u32,
    /// The base delay. Default 100 ms.
    pub backoff: Duration,
    /// Default exponential.
    pub strategy: Strategy,
    /// Growth factor of the exponential strategy, at least 1. Default 2.
    pub multiplier: f64,
    /// Cap on any delay. Default 10 s.
    pub max_backoff: Duration,
    /// Default full.
    pub jitter: Jitter,
    /// No attempt starts this long after the first, nor one whose delay would end past it.
    pub max_duration: Option<Duration>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig::DEFAULT
    }
}

impl RetryConfig {
    /// 3 attempts, 100 ms exponential backoff (x2) capped at 10 s, full jitter.
    pub const DEFAULT: RetryConfig = RetryConfig {
        attempts: 3,
        backoff: Duration::from_millis(100),
        strategy: Strategy::Exponential,
        multiplier: 2.0,
        max_backoff: Duration::from_secs(10),
        jitter: Jitter::Full,
        max_duration: None,
    };
}

impl RetryConfig {
    /// Checks the configuration, naming the offending key.
    ///
    /// # Errors
    /// A message of the form ``"`key`: what is wrong"``.
    pub fn validate(&self) -> Result<(), String> {
        if self.attempts == 0 {
            return Err("`attempts` must be at least 1 (it counts the first call)".into());
        }
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0) {
            return Err(format!(
                "`multiplier` must be a finite number of at least 1.0; found {}",
                self.multiplier
            ));
        }
        if self.max_backoff < self.backoff {
            return Err("`max_backoff` must be at least `backoff`".into());
        }
        if self.max_duration.is_some_and(|d| d.is_zero()) {
            return Err("`max_duration` must be longer than zero".into());
        }
        Ok(())
    }

    /// The capped delay before retry `k` (1 for the first retry), before jitter. Saturating:
    /// any `k` up to `u32::MAX` gives a delay of at most `max_backoff`.
    #[must_use]
    pub fn base_delay(&self, k: u32) -> Duration {
        let k = k.max(1);
        let raw = match self.strategy {
            Strategy::Constant => Some(self.backoff),
            Strategy::Linear => self.backoff.checked_mul(k),
            Strategy::Exponential => {
                let factor = self.multiplier.powf(f64::from(k - 1));
                let secs = self.backoff.as_secs_f64() * factor;
                Duration::try_from_secs_f64(secs).ok()
            }
        };
        raw.map_or(self.max_backoff, |d| d.min(self.max_backoff))
    }

    /// The delay before retry `k` with jitter applied. `previous` is the delay actually used
    /// before the previous retry (decorrelated jitter only); `random` yields uniform `[0, 1)`.
    #[must_use]
    pub fn delay(&self, k: u32, previous: Option<Duration>, random: f64) -> Duration {
        let d = self.base_delay(k);
        match self.jitter {
            Jitter::None => d,
            Jitter::Full => d.mul_f64(random),
            Jitter::Equal => d / 2 + d.saturating_sub(d / 2).mul_f64(random),
            Jitter::Decorrelated => {
                let low = self.backoff;
                let high = previous.unwrap_or(self.backoff).saturating_mul(3).max(low);
                (low + high.saturating_sub(low).mul_f64(random)).min(self.max_backoff)
            }
        }
    }
}

/// Uniform `[0, 1)` from a per-thread xorshift generator seeded from std's random hasher keys.
/// Jitter needs spread, not cryptographic quality.
pub(crate) fn random_unit() -> f64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(0x9E37_79B9_7F4A_7C15);
            h.finish() | 1
        });
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        #[allow(clippy::cast_precision_loss)] // 53 bits are exact
        let unit = (x >> 11) as f64 / (1u64 << 53) as f64;
        unit
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(strategy: Strategy) -> RetryConfig {
        RetryConfig {
            strategy,
            jitter: Jitter::None,
            ..RetryConfig::default()
        }
    }

    #[test]
    fn strategies() {
        let ms = Duration::from_millis;
        let e = cfg(Strategy::Exponential);
        assert_eq!(
            [1, 2, 3, 4].map(|k| e.base_delay(k)),
            [ms(100), ms(200), ms(400), ms(800)]
        );
        let l = cfg(Strategy::Linear);
        assert_eq!(
            [1, 2, 3].map(|k| l.base_delay(k)),
            [ms(100), ms(200), ms(300)]
        );
        let c = cfg(Strategy::Constant);
        assert_eq!([1, 9].map(|k| c.base_delay(k)), [ms(100), ms(100)]);
    }

    #[test]
    fn saturates_without_overflow() {
        for s in [Strategy::Exponential, Strategy::Linear, Strategy::Constant] {
            let c = cfg(s);
            for k in [64, 1000, u32::MAX - 1, u32::MAX] {
                assert!(c.base_delay(k) <= c.max_backoff);
            }
        }
        assert_eq!(
            cfg(Strategy::Exponential).base_delay(u32::MAX),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn jitter_bounds() {
        let d = Duration::from_millis(400);
        let mut c = cfg(Strategy::Exponential);
        for r in [0.0, 0.25, 0.999_999] {
            c.jitter = Jitter::Full;
            assert!(c.delay(3, None, r) <= d);
            c.jitter = Jitter::Equal;
            assert!(c.delay(3, None, r) >= d / 2 && c.delay(3, None, r) <= d);
            c.jitter = Jitter::Decorrelated;
            let x = c.delay(3, Some(Duration::from_millis(300)), r);
            assert!(x >= c.backoff && x <= Duration::from_millis(900));
        }
    }

    #[test]
    fn random_is_in_unit_interval() {
        for _ in 0..10_000 {
            let r = random_unit();
            assert!((0.0..1.0).contains(&r));
        }
    }
}
