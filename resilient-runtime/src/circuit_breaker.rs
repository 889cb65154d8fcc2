//! The circuit breaker: a lock-free state machine over one packed atomic word.
//!
//! # Layout of the state word
//!
//! ```text
//! bits  0..3   state (Closed, Open, HalfOpen, ForcedOpen, Disabled)
//! bit   3      ramping (only meaningful in Closed)
//! bits  4..20  trial calls in flight (HalfOpen)
//! bits 20..36  successful trials in this half-open cycle
//! bits 36..41  cooldown level: consecutive failed trials (the exponent for `max_cooldown`)
//! bits 41..64  generation, bumped on every state change
//! ```
//!
//! Packing the trial bookkeeping with the state and the generation makes every decision a
//! single compare-and-swap: a trial slot is reserved atomically, a late outcome from an earlier
//! cycle fails the generation check, and a slot release can never land in a newer cycle.
//!
//! The two values a transition computes but cannot fit in the word, the end of an open period
//! and the start of a ramp, are written only by the thread whose compare-and-swap made the
//! transition, after it, and tagged with the generation they belong to. A reader that finds
//! them not yet published knows the transition happened an instant ago (a full cooldown left;
//! no time into the ramp). So a losing or late outcome never moves a deadline.
//!
//! The closed path is one atomic load at admission plus the window update at completion: no
//! lock, no allocation, and (for the count rules) no clock read on success. The one exception:
//! the first time two outcomes of a time window collide, that outcome allocates the window's
//! stripes (see [`Stripes`]), and recorders colliding at that instant wait for it, once per
//! breaker.

use crate::sync::Mutex;
use crate::sync::{AtomicU64, Ordering};
use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use crate::Error;
use crate::live::Live;

/// Which outcomes open the breaker. See DESIGN.md section 4.1 and the crate docs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TripRule {
    /// `threshold = N`: N consecutive failures open the breaker.
    Consecutive {
        /// Failures in a row that open the breaker.
        threshold: u32,
    },
    /// `threshold = N, window = "30s"`: N failures within the last `window` of time. The
    /// breaker keeps the times of the last N failures; a failure exactly `window` old is no
    /// longer within it. Successes do not reset the count (and read no clock).
    CountInWindow {
        /// Failures that open the breaker.
        threshold: u32,
        /// How recent they must be.
        window: Duration,
    },
    /// `failure_rate = r, window = "10s", min_calls = m`: over the last `window` of time (ten
    /// buckets of `window / 10`), at least `m` calls and failures / calls >= `r`. The window is
    /// the current bucket and the nine before it; buckets are aligned to the breaker's creation
    /// (its first call), so an outcome leaves the window when its bucket is ten buckets old.
    RateOverTime {
        /// Failure ratio in (0, 1] that opens the breaker.
        failure_rate: f64,
        /// Length of the sliding time window.
        window: Duration,
        /// Calls needed in the window before the rate is evaluated.
        min_calls: u32,
    },
    /// `failure_rate = r, last = n, min_calls = m`: over the last `n` recorded calls (rolling),
    /// at least `m` calls and failures / calls >= `r`.
    RateOverCalls {
        /// Failure ratio in (0, 1] that opens the breaker.
        failure_rate: f64,
        /// Size of the rolling count window.
        last: u32,
        /// Calls needed before the rate is evaluated (at most `last`).
        min_calls: u32,
    },
}

impl TripRule {
    /// The rule of a breaker declared without one: `failure_rate = 0.5, window = "30s",
    /// min_calls = 20`.
    pub const DEFAULT: TripRule = TripRule::RateOverTime {
        failure_rate: 0.5,
        window: Duration::from_secs(30),
        min_calls: 20,
    };
}

/// Everything a [`CircuitBreaker`] is configured with. Field names follow the attribute's
/// arguments; see DESIGN.md section 4.1 for their semantics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    /// The trip rule.
    pub rule: TripRule,
    /// Time in `Open` before a trial call is let through. Default 5 s.
    pub cooldown: Duration,
    /// Cap for the cooldown, which doubles on each consecutive failed trial. `None`: fixed.
    pub max_cooldown: Option<Duration>,
    /// Trial calls in flight at once in `HalfOpen`. Default: `success_threshold`.
    pub half_open_calls: u32,
    /// Successful trials that close the breaker. Default 1.
    pub success_threshold: u32,
    /// After closing, admit a linearly rising share of calls over this period. The ramp ends
    /// when this much time has passed since closing, whether or not a call came in meanwhile:
    /// an outcome after that is judged as fully closed (its reopening is not a failed trial).
    pub ramp: Option<Duration>,
    /// A call that took longer than this (strictly) counts as a failure.
    pub slow_call: Option<Duration>,
    /// An open critical breaker makes the health report unhealthy.
    pub critical: bool,
    /// The `#[timeout]` inside this breaker, if any: a half-open cycle whose slots are all
    /// taken, the newest of them for longer than `max(cooldown, inner_timeout)` (strictly), counts
    /// as a failed trial at the next call, which is then rejected with the new open period.
    pub inner_timeout: Option<Duration>,
}

impl BreakerConfig {
    /// The defaults of DESIGN.md section 4: the default rule, 5 s cooldown, one trial.
    pub const DEFAULT: BreakerConfig = BreakerConfig::new(TripRule::DEFAULT);

    /// The defaults of DESIGN.md section 4 with the given rule.
    #[must_use]
    pub const fn new(rule: TripRule) -> Self {
        BreakerConfig {
            rule,
            cooldown: Duration::from_secs(5),
            max_cooldown: None,
            half_open_calls: 1,
            success_threshold: 1,
            ramp: None,
            slow_call: None,
            critical: false,
            inner_timeout: None,
        }
    }

    /// Checks the configuration, naming the offending key.
    ///
    /// # Errors
    /// A message of the form ``"`key`: what is wrong"``.
    pub fn validate(&self) -> Result<(), String> {
        let positive = |key: &str, n: u32| {
            if n == 0 {
                Err(format!("`{key}` must be at least 1"))
            } else {
                Ok(())
            }
        };
        match self.rule {
            TripRule::Consecutive { threshold } => positive("threshold", threshold)?,
            TripRule::CountInWindow { threshold, window } => {
                positive("threshold", threshold)?;
                // The breaker keeps the times of the last `threshold` failures.
                if threshold > crate::literal::MAX_TIMED_THRESHOLD {
                    return Err(format!(
                        "`threshold` with `window` may not exceed {} (the breaker keeps that many \
                         failure times); use `failure_rate` for larger volumes",
                        crate::literal::MAX_TIMED_THRESHOLD
                    ));
                }
                if window.is_zero() {
                    return Err("`window` must be longer than zero".into());
                }
            }
            TripRule::RateOverTime {
                failure_rate,
                window,
                min_calls,
            } => {
                crate::literal::check_ratio(failure_rate)
                    .map_err(|e| format!("`failure_rate`: {e}"))?;
                if window.is_zero() {
                    return Err("`window` must be longer than zero".into());
                }
                positive("min_calls", min_calls)?;
            }
            TripRule::RateOverCalls {
                failure_rate,
                last,
                min_calls,
            } => {
                crate::literal::check_ratio(failure_rate)
                    .map_err(|e| format!("`failure_rate`: {e}"))?;
                positive("last", last)?;
                if last > crate::literal::MAX_LAST {
                    return Err(format!(
                        "`last` may not exceed {} (one bit per call is kept)",
                        crate::literal::MAX_LAST
                    ));
                }
                positive("min_calls", min_calls)?;
                if min_calls > last {
                    return Err(format!(
                        "`min_calls` ({min_calls}) may not exceed `last` ({last})"
                    ));
                }
            }
        }
        if self.cooldown.is_zero() {
            return Err("`cooldown` must be longer than zero".into());
        }
        if let Some(max) = self.max_cooldown
            && max < self.cooldown
        {
            return Err("`max_cooldown` must be at least `cooldown`".into());
        }
        positive("half_open_calls", self.half_open_calls)?;
        positive("success_threshold", self.success_threshold)?;
        if self.half_open_calls > MAX_TRIALS || self.success_threshold > MAX_TRIALS {
            return Err(format!(
                "`half_open_calls` and `success_threshold` may not exceed {MAX_TRIALS}"
            ));
        }
        if self.ramp.is_some_and(|r| r.is_zero()) {
            return Err("`ramp` must be longer than zero".into());
        }
        if self.slow_call.is_some_and(|r| r.is_zero()) {
            return Err("`slow_call` must be longer than zero".into());
        }
        Ok(())
    }
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig::new(TripRule::DEFAULT)
    }
}

/// The state of a breaker, as [`BreakerHandle::state`](crate::BreakerHandle::state) reports it.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CircuitState {
    /// Calls pass and outcomes are recorded (possibly ramping up after a recovery).
    Closed,
    /// Calls are rejected until the cooldown ends.
    Open,
    /// A limited number of trial calls decide whether to close or reopen.
    HalfOpen,
    /// Opened by hand with `force_open()`; stays open until `reset()`.
    ForcedOpen,
    /// Switched off by hand with `disable()`: every call passes, nothing is recorded.
    Disabled,
}

const STATE_MASK: u64 = 0b111;
const CLOSED: u64 = 0;
const OPEN: u64 = 1;
const HALF_OPEN: u64 = 2;
const FORCED_OPEN: u64 = 3;
const DISABLED: u64 = 4;
const RAMPING: u64 = 1 << 3;
const TRIALS_SHIFT: u32 = 4;
const SUCC_SHIFT: u32 = 20;
const FIELD_MASK: u64 = 0xFFFF;
const LEVEL_SHIFT: u32 = 36;
const LEVEL_BITS: u64 = 0b1_1111 << LEVEL_SHIFT;
/// The cooldown level saturates here; `2^31` times any cooldown is past any sensible cap.
const MAX_LEVEL: u32 = 31;
const GEN_SHIFT: u32 = 41;
const MAX_TRIALS: u32 = 0xFFFF;
/// What `open_gen` and `ramp_gen` hold while nothing is published: no generation (23 bits)
/// ever has this value.
const UNPUBLISHED: u64 = u64::MAX;

fn state_of(word: u64) -> u64 {
    word & STATE_MASK
}
fn trials_of(word: u64) -> u64 {
    (word >> TRIALS_SHIFT) & FIELD_MASK
}
fn successes_of(word: u64) -> u64 {
    (word >> SUCC_SHIFT) & FIELD_MASK
}
fn level_of(word: u64) -> u32 {
    u32::try_from((word & LEVEL_BITS) >> LEVEL_SHIFT).unwrap_or(MAX_LEVEL)
}
fn gen_of(word: u64) -> u64 {
    word >> GEN_SHIFT
}
/// A word for a fresh cycle: the given state and cooldown level, no trials, generation
/// advanced (it wraps after 2^23 state changes, far more than any call can live through).
fn next_cycle(word: u64, state: u64, level: u32) -> u64 {
    (gen_of(word).wrapping_add(1) << GEN_SHIFT)
        | (u64::from(level.min(MAX_LEVEL)) << LEVEL_SHIFT)
        | state
}
/// `d` in nanoseconds, saturating (584 years). In `u64` arithmetic: `as_nanos` is a `u128`
/// multiplication, and this runs on every clock read of the call path.
#[inline]
fn nanos(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(d.subsec_nanos()))
}

/// What an admitted call must report back. Created by [`CircuitBreaker::try_acquire`].
///
///
/// One `u128`, on purpose: a ticket lives in the caller's future across the call's `.await`
/// and is moved a few times on the way. A guard of a reference and one scalar is a scalar
/// pair to the compiler, moved with two register loads and stores; a struct of three or more
/// fields is copied as a block, with wide vector loads of the narrow stores that built it,
/// which the CPU cannot forward from its store buffer. Those stalls cost the count breaker's
/// success path more than all its arithmetic (measured with `perf annotate`).
#[derive(Clone, Copy)]
pub struct Ticket {
    /// Low half `generation << 2 | kind`; high half the admission time in nanoseconds since
    /// the breaker's base, read only when `slow_call` is configured ([`NOT_TIMED`] otherwise).
    bits: u128,
}

const NOT_TIMED: u64 = u64::MAX;

/// A call the breaker did not admit, with the time left until it admits a trial (see
/// [`CircuitBreaker::admit`]); counted and reported already.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rejected(Option<Duration>);

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let started = self.started();
        f.debug_struct("Ticket")
            .field("generation", &self.generation())
            .field("kind", &self.kind())
            .field("started_ns", &(started != NOT_TIMED).then_some(started))
            .finish()
    }
}

impl Ticket {
    #[inline]
    fn new(generation: u64, kind: TicketKind, started: u64) -> Self {
        Ticket {
            bits: u128::from(started) << 64 | u128::from(generation << 2 | kind as u64),
        }
    }

    #[inline]
    #[allow(clippy::cast_possible_truncation)] // the low half, on purpose
    fn tag(self) -> u64 {
        self.bits as u64
    }

    #[inline]
    fn started(self) -> u64 {
        (self.bits >> 64) as u64
    }

    #[inline]
    fn generation(self) -> u64 {
        self.tag() >> 2
    }

    #[inline]
    fn kind(self) -> TicketKind {
        match self.tag() & 3 {
            0 => TicketKind::Closed,
            1 => TicketKind::Trial,
            _ => TicketKind::Untracked,
        }
    }

    /// A closed call whose success needs no clock: the first half of the success fast path.
    #[inline]
    fn is_closed_untimed(self) -> bool {
        self.tag() & 3 == TicketKind::Closed as u64 && self.started() == NOT_TIMED
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum TicketKind {
    Closed = 0,
    Trial = 1,
    /// A disabled breaker records nothing.
    Untracked = 2,
}

/// A circuit breaker. Usually reached through an attribute or [`crate::breaker`]; usable on its
/// own with [`CircuitBreaker::call`].
pub struct CircuitBreaker {
    name: &'static str,
    settings: Live<Settings>,
    base: Instant,
    word: AtomicU64,
    /// Nanoseconds since `base` at which the open period of generation `open_gen` ends. Only the
    /// thread whose compare-and-swap opened the breaker writes it, after winning, so a late or
    /// losing outcome can never move it.
    open_until: AtomicU64,
    open_gen: AtomicU64,
    /// Nanoseconds since `base` of the newest trial admission (stuck-cycle detection).
    last_trial: AtomicU64,
    /// Nanoseconds since `base` at which the ramp of generation `ramp_gen` started; written by
    /// the thread whose compare-and-swap closed the breaker.
    ramp_start: AtomicU64,
    ramp_gen: AtomicU64,
    /// The ramp's admission credit in nanoseconds: each offered call adds the time elapsed in
    /// the ramp, and is admitted when the credit reaches the ramp's length (which is then
    /// subtracted). Integer arithmetic keeps admission exact: ten calls 1 s into a 10 s ramp
    /// add up to exactly one admission.
    ramp_credit: AtomicU64,
    rejections: crate::tally::Tally,
    window: Window,
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.name)
            .field("state", &self.state())
            .field("config", self.config())
            .finish_non_exhaustive()
    }
}

/// A snapshot of a breaker's counters.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct BreakerMetrics {
    /// The state at the time of the snapshot.
    pub state: CircuitState,
    /// Outcomes in the current window. For the `threshold` rules, which keep only failures,
    /// this equals `failures`.
    pub calls: u64,
    /// Failures in the current window (consecutive failures for `threshold` alone).
    pub failures: u64,
    /// failures / calls once `min_calls` outcomes are in the window; `None` before that and for
    /// the `threshold` rules.
    pub failure_rate: Option<f64>,
    /// Calls rejected since the breaker was created.
    pub rejections: u64,
}

impl CircuitBreaker {
    /// A closed breaker.
    ///
    /// # Errors
    /// When [`BreakerConfig::validate`] rejects the configuration.
    pub fn new(name: &'static str, config: BreakerConfig) -> Result<Self, String> {
        config.validate()?;
        Ok(CircuitBreaker {
            name,
            base: Instant::now(),
            word: AtomicU64::new(CLOSED),
            open_until: AtomicU64::new(0),
            open_gen: AtomicU64::new(UNPUBLISHED),
            last_trial: AtomicU64::new(0),
            ramp_start: AtomicU64::new(0),
            ramp_gen: AtomicU64::new(UNPUBLISHED),
            ramp_credit: AtomicU64::new(0),
            rejections: crate::tally::Tally::new(),
            window: Window::new(&config.rule),
            settings: Live::new(Settings {
                config,
                window: None,
            }),
        })
    }

    /// The breaker's name.
    #[must_use]
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The breaker's configuration.
    #[must_use]
    #[inline]
    pub fn config(&self) -> &BreakerConfig {
        &self.settings.get().config
    }

    /// The window of the current rule: the one built at creation, or the one a rule change
    /// started.
    #[inline]
    fn window(&self) -> &Window {
        self.settings.get().window.unwrap_or(&self.window)
    }

    /// Changes the configuration of a live breaker. The state is kept; a change of the trip
    /// rule starts a new, empty window. Calls admitted before the change finish under it.
    ///
    /// # Errors
    /// When [`BreakerConfig::validate`] rejects the configuration; nothing is changed then.
    pub fn reconfigure(&self, config: BreakerConfig) -> Result<(), String> {
        config.validate()?;
        let current = self.settings.get();
        let window = if current.config.rule == config.rule {
            current.window
        } else {
            Some(&*Box::leak(Box::new(Window::new(&config.rule))))
        };
        self.settings.set(Settings { config, window });
        Ok(())
    }

    /// A ticket's `started`: the time now when `slow_call` is configured.
    #[inline]
    fn admission_time(&self) -> u64 {
        match self.config().slow_call {
            Some(_) => self.now_nanos(),
            None => NOT_TIMED,
        }
    }

    #[inline]
    fn now_nanos(&self) -> u64 {
        nanos(Instant::now().saturating_duration_since(self.base))
    }

    /// The current state. Reports `HalfOpen` once the cooldown has elapsed, without taking a
    /// trial slot or emitting anything.
    #[must_use]
    pub fn state(&self) -> CircuitState {
        let word = self.word.load(Ordering::Acquire);
        match state_of(word) {
            CLOSED => CircuitState::Closed,
            OPEN => match self.open_deadline(word) {
                Some(until) if self.now_nanos() >= until => CircuitState::HalfOpen,
                _ => CircuitState::Open,
            },
            HALF_OPEN => CircuitState::HalfOpen,
            FORCED_OPEN => CircuitState::ForcedOpen,
            _ => CircuitState::Disabled,
        }
    }

    /// `true` while a closed breaker is still ramping traffic up after a recovery (until the
    /// ramp's duration has elapsed, whether or not a call has been offered since).
    #[must_use]
    pub fn is_ramping(&self) -> bool {
        let word = self.word.load(Ordering::Acquire);
        state_of(word) == CLOSED && self.ramp_elapsed(word, self.now_nanos()).is_some()
    }

    /// A snapshot of the counters. Never counts as a call, never takes a trial slot.
    #[must_use]
    pub fn metrics(&self) -> BreakerMetrics {
        let generation = gen_of(self.word.load(Ordering::Acquire));
        let window = self.window();
        let (calls, failures) = window.counts(window.epoch(Instant::now(), self.base), generation);
        let failure_rate = match self.config().rule {
            TripRule::RateOverTime { min_calls, .. }
            | TripRule::RateOverCalls { min_calls, .. }
                if calls >= u64::from(min_calls) && calls > 0 =>
            {
                #[allow(clippy::cast_precision_loss)] // counts are far below 2^52
                Some(failures as f64 / calls as f64)
            }
            _ => None,
        };
        BreakerMetrics {
            state: self.state(),
            calls,
            failures,
            failure_rate,
            rejections: self.rejections.get(),
        }
    }

    /// Opens the breaker until [`reset`](Self::reset), rejecting every call with
    /// `retry_after: None`.
    pub fn force_open(&self) {
        self.manual(FORCED_OPEN, CircuitState::ForcedOpen);
    }

    /// Lets every call through and records nothing, until [`reset`](Self::reset).
    pub fn disable(&self) {
        self.manual(DISABLED, CircuitState::Disabled);
    }

    /// Back to `Closed` with an empty window and the base cooldown.
    pub fn reset(&self) {
        self.manual(CLOSED, CircuitState::Closed);
    }

    fn manual(&self, state: u64, to: CircuitState) {
        // The new generation empties the window (see `Window`).
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            match self.word.compare_exchange_weak(
                word,
                next_cycle(word, state, 0),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(w) => word = w,
            }
        }
        crate::events::transition(self.name, to, None);
    }

    /// The end of the open period of the `Open` word `word`, or `None` while the thread that
    /// opened it has not published it yet (it opened an instant ago).
    fn open_deadline(&self, word: u64) -> Option<u64> {
        let generation = gen_of(word);
        if self.open_gen.load(Ordering::Acquire) != generation {
            return None;
        }
        let until = self.open_until.load(Ordering::Acquire);
        (self.open_gen.load(Ordering::Acquire) == generation).then_some(until)
    }

    fn publish_open(&self, generation: u64, until: u64) {
        self.open_gen.store(UNPUBLISHED, Ordering::Release);
        self.open_until.store(until, Ordering::Release);
        self.open_gen.store(generation, Ordering::Release);
    }

    fn publish_ramp(&self, generation: u64, start: u64) {
        self.ramp_gen.store(UNPUBLISHED, Ordering::Release);
        self.ramp_start.store(start, Ordering::Release);
        self.ramp_credit.store(0, Ordering::Release);
        self.ramp_gen.store(generation, Ordering::Release);
    }

    /// Time into the ramp of the `Closed` word `word`, or `None` when it is not ramping: no
    /// ramp, or the ramp's duration has elapsed (the breaker is then fully closed, even if no
    /// call has cleared the flag yet).
    fn ramp_elapsed(&self, word: u64, now: u64) -> Option<u64> {
        if word & RAMPING == 0 {
            return None;
        }
        let ramp = self.config().ramp?;
        let generation = gen_of(word);
        let start = if self.ramp_gen.load(Ordering::Acquire) == generation {
            let start = self.ramp_start.load(Ordering::Acquire);
            (self.ramp_gen.load(Ordering::Acquire) == generation).then_some(start)
        } else {
            None
        };
        // Not published yet: the breaker closed an instant ago.
        let elapsed = start.map_or(0, |start| now.saturating_sub(start));
        (u128::from(elapsed) < ramp.as_nanos()).then_some(elapsed)
    }

    /// Asks to run one call. On `Ok`, the caller must run the call and hand the ticket back to
    /// [`record`](Self::record) or [`release`](Self::release), exactly once; the [`call`]
    /// family does this, including on panic and cancellation.
    ///
    /// # Errors
    /// [`Error::CircuitOpen`] when the call is not admitted. It was not run and is not
    /// recorded.
    ///
    /// [`call`]: Self::call
    #[inline]
    pub fn try_acquire(&self) -> Result<Ticket, Error> {
        self.admit().map_err(|rejected| self.rejection(rejected))
    }

    /// [`try_acquire`](Self::try_acquire) with the rejection as a bare [`Rejected`], which the
    /// caller turns into the [`Error`] where it needs one. Built deep in the out-of-line
    /// admission path and then moved up, the 40-byte error was copied with wide loads of its
    /// narrow stores, stalls that cost the rejection about a third of its time (`perf
    /// annotate`).
    #[inline]
    pub(crate) fn admit(&self) -> Result<Ticket, Rejected> {
        let word = self.word.load(Ordering::Acquire);
        if word & (STATE_MASK | RAMPING) == CLOSED {
            return Ok(Ticket::new(
                gen_of(word),
                TicketKind::Closed,
                self.admission_time(),
            ));
        }
        self.acquire_slow(word)
    }

    /// The error a rejection is reported as.
    #[inline]
    pub(crate) fn rejection(&self, rejected: Rejected) -> Error {
        Error::CircuitOpen {
            name: self.name,
            retry_after: rejected.0,
        }
    }

    #[cold]
    fn acquire_slow(&self, mut word: u64) -> Result<Ticket, Rejected> {
        let ticket = |generation, kind| Ticket::new(generation, kind, self.admission_time());
        loop {
            match state_of(word) {
                CLOSED => {
                    // Ramping (the fast path took plain Closed).
                    return if self.ramp_admits(word) {
                        Ok(ticket(gen_of(word), TicketKind::Closed))
                    } else {
                        Err(self.reject(None))
                    };
                }
                DISABLED => return Ok(ticket(gen_of(word), TicketKind::Untracked)),
                OPEN => {
                    let now = self.now_nanos();
                    let Some(until) = self.open_deadline(word) else {
                        // Opened an instant ago; the opener is publishing the deadline.
                        let left = self.cooldown_for(level_of(word));
                        return Err(self.reject(Some(left)));
                    };
                    if now < until {
                        return Err(self.reject(Some(Duration::from_nanos(until - now))));
                    }
                    // Cooldown over: this call starts a half-open cycle and takes its first
                    // slot, atomically. The admission time is published first, so a reader
                    // never sees the slot taken with an older time (that would look stuck).
                    self.last_trial.fetch_max(now, Ordering::AcqRel);
                    let next = next_cycle(word, HALF_OPEN, level_of(word)) | (1 << TRIALS_SHIFT);
                    match self.word.compare_exchange(
                        word,
                        next,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => {
                            crate::events::transition(self.name, CircuitState::HalfOpen, None);
                            return Ok(ticket(gen_of(next), TicketKind::Trial));
                        }
                        Err(w) => word = w,
                    }
                }
                HALF_OPEN => {
                    let now = self.now_nanos();
                    if trials_of(word) < u64::from(self.config().half_open_calls) {
                        self.last_trial.fetch_max(now, Ordering::AcqRel);
                        match self.word.compare_exchange(
                            word,
                            word + (1 << TRIALS_SHIFT),
                            Ordering::AcqRel,
                            Ordering::Acquire,
                        ) {
                            Ok(_) => return Ok(ticket(gen_of(word), TicketKind::Trial)),
                            Err(w) => word = w,
                        }
                        continue;
                    }
                    // Every slot is taken. If they have all been held longer than
                    // max(cooldown, inner timeout), the cycle is stuck: count it as a failed
                    // trial so the breaker cannot stay half-open forever.
                    let limit = self
                        .config()
                        .cooldown
                        .max(self.config().inner_timeout.unwrap_or(Duration::ZERO));
                    let held = now.saturating_sub(self.last_trial.load(Ordering::Acquire));
                    if u128::from(held) <= limit.as_nanos() {
                        return Err(self.reject(None));
                    }
                    match self.trip(word, true, now, None) {
                        Some(until) => {
                            return Err(
                                self.reject(Some(Duration::from_nanos(until.saturating_sub(now))))
                            );
                        }
                        None => word = self.word.load(Ordering::Acquire),
                    }
                }
                // ForcedOpen, the only state left.
                _ => return Err(self.reject(None)),
            }
        }
    }

    fn reject(&self, retry_after: Option<Duration>) -> Rejected {
        self.rejections.add_one();
        crate::events::rejected_open(self.name, retry_after);
        Rejected(retry_after)
    }

    /// The ramp's deterministic admission: each offered call adds `elapsed / ramp` to a credit
    /// and is admitted when the credit reaches 1 (kept in nanoseconds, so exactly).
    fn ramp_admits(&self, word: u64) -> bool {
        let now = self.now_nanos();
        let (Some(ramp), Some(elapsed)) = (self.config().ramp, self.ramp_elapsed(word, now)) else {
            // Ramp complete: fully closed, and the cooldown returns to its base. If the word
            // changed meanwhile, whoever changed it decided.
            let _ = self.word.compare_exchange(
                word,
                word & !(RAMPING | LEVEL_BITS),
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            return true;
        };
        let ramp = nanos(ramp);
        let mut credit = self.ramp_credit.load(Ordering::Acquire);
        loop {
            let offered = credit.saturating_add(elapsed);
            let (admit, left) = if offered >= ramp {
                (true, offered - ramp)
            } else {
                (false, offered)
            };
            match self.ramp_credit.compare_exchange_weak(
                credit,
                left,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return admit,
                Err(c) => credit = c,
            }
        }
    }

    /// Reports the outcome of an admitted call. `failure` is the caller's classification
    /// (before `slow_call`, which this method applies: a call longer than `slow_call` fails).
    #[inline]
    pub fn record(&self, ticket: Ticket, failure: bool) {
        self.record_at(ticket, failure, None);
    }

    /// [`record`](Self::record), with the time the call completed if the caller has just read
    /// the clock (an inner timeout has), which then stands in for the breaker's own reading.
    #[inline(always)]
    #[allow(clippy::inline_always)] // measured: LLVM declines `#[inline]` here (callgrind)
    pub(crate) fn record_at(&self, ticket: Ticket, failure: bool, completed: Option<Instant>) {
        // The common case, a success of a closed call that leaves the window as it is, is
        // decided here with a load or two and inlined into the caller.
        if !failure && ticket.is_closed_untimed() {
            let window = self.window();
            if window.success_is_noop(ticket.generation()) {
                return;
            }
            // A time window's success, the default rule's common case: one clock read (unless
            // an inner timeout has read it) and one compare-and-swap on the current bucket.
            if let Window::Buckets { .. } = window {
                let at = completed.unwrap_or_else(Instant::now);
                return match window.add_success(ticket.generation(), at, self.base) {
                    Added::Done => {}
                    Added::Judge(epoch) => self.judge_success(window, ticket.generation(), epoch),
                    Added::No => self.record_slow(ticket, failure, Some(at)),
                };
            }
        }
        self.record_slow(ticket, failure, completed);
    }

    fn record_slow(&self, ticket: Ticket, failure: bool, completed: Option<Instant>) {
        // `started` is set only when `slow_call` was configured at admission: check it first,
        // so the common case reads no configuration here.
        let failure = failure
            || (ticket.started() != NOT_TIMED
                && self.config().slow_call.is_some_and(|limit| {
                    let done = completed.unwrap_or_else(Instant::now);
                    let done = nanos(done.saturating_duration_since(self.base));
                    u128::from(done.saturating_sub(ticket.started())) > limit.as_nanos()
                }));
        match ticket.kind() {
            TicketKind::Untracked => {}
            TicketKind::Closed => self.record_closed(ticket.generation(), failure, completed),
            TicketKind::Trial => self.record_trial(ticket.generation(), failure),
        }
    }

    fn record_closed(&self, generation: u64, failure: bool, completed: Option<Instant>) {
        let settings = self.settings.get();
        let window = settings.window.unwrap_or(&self.window);
        // A time window needs the clock read before the generation check (see `add_to_bucket`);
        // a completion time read by an inner layer was read before it too.
        let epoch = window
            .stamps_time()
            .then(|| window.epoch(completed.unwrap_or_else(Instant::now), self.base));
        let word = self.word.load(Ordering::Acquire);
        if state_of(word) != CLOSED || gen_of(word) != generation {
            return; // admitted in an earlier cycle: changes nothing
        }
        let current = || gen_of(self.word.load(Ordering::Acquire));
        let now = || self.now_nanos();
        let Verdict::Open(rate) = window.record(
            &settings.config.rule,
            failure,
            generation,
            current,
            now,
            epoch.unwrap_or(0),
        ) else {
            return;
        };
        self.trip_closed(word, generation, rate);
    }

    /// The rule opened the closed cycle `generation`, last seen as `word`: opens the breaker,
    /// unless the cycle has ended meanwhile.
    fn trip_closed(&self, mut word: u64, generation: u64, rate: Option<f64>) {
        let now = self.now_nanos();
        loop {
            let during_ramp = self.ramp_elapsed(word, now).is_some();
            if self.trip(word, during_ramp, now, rate).is_some() {
                return;
            }
            // The word changed under us: the ramp flag was cleared (retry), or the cycle ended.
            word = self.word.load(Ordering::Acquire);
            if state_of(word) != CLOSED || gen_of(word) != generation {
                return;
            }
        }
    }

    /// After [`Window::add_success`] added a success with a failure still in the window: the
    /// rule is judged on that success too (with `min_calls`, a success can be the outcome that
    /// makes the failure rate count), as `Window::record` does after its own add.
    #[cold]
    fn judge_success(&self, window: &Window, generation: u64, epoch: u64) {
        let TripRule::RateOverTime {
            failure_rate,
            min_calls,
            ..
        } = self.settings.get().config.rule
        else {
            return;
        };
        let word = self.word.load(Ordering::Acquire);
        if state_of(word) != CLOSED || gen_of(word) != generation {
            return; // the cycle has ended: its window no longer decides anything
        }
        let (calls, failures) = window.counts(epoch, generation);
        if let Verdict::Open(rate) = rate_trips(calls, failures, min_calls, failure_rate) {
            self.trip_closed(word, generation, rate);
        }
    }

    fn record_trial(&self, generation: u64, failure: bool) {
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            if state_of(word) != HALF_OPEN || gen_of(word) != generation {
                return; // a trial of an earlier cycle, or the cycle is already decided
            }
            if failure {
                if self.trip(word, true, self.now_nanos(), None).is_some() {
                    return;
                }
                word = self.word.load(Ordering::Acquire);
                continue;
            }
            let successes = successes_of(word) + 1;
            if successes >= u64::from(self.config().success_threshold) {
                let (level, ramping) = if self.config().ramp.is_some() {
                    (level_of(word), RAMPING)
                } else {
                    (0, 0)
                };
                let next = next_cycle(word, CLOSED, level) | ramping;
                match self
                    .word
                    .compare_exchange(word, next, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => {
                        if ramping != 0 {
                            self.publish_ramp(gen_of(next), self.now_nanos());
                        }
                        crate::events::transition(self.name, CircuitState::Closed, None);
                        return;
                    }
                    Err(w) => word = w,
                }
            } else {
                let freed = if trials_of(word) > 0 {
                    word - (1 << TRIALS_SHIFT)
                } else {
                    word
                };
                match self.word.compare_exchange(
                    word,
                    freed + (1 << SUCC_SHIFT),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return,
                    Err(w) => word = w,
                }
            }
        }
    }

    /// Opens the breaker from `word` with one compare-and-swap. `failed_trial` (a failed trial,
    /// a stuck half-open cycle, or reopening during the ramp) raises the cooldown level.
    /// Returns the end of the open period, or `None` if `word` was stale and nothing changed.
    fn trip(&self, word: u64, failed_trial: bool, now: u64, rate: Option<f64>) -> Option<u64> {
        let level = if failed_trial {
            level_of(word).saturating_add(1).min(MAX_LEVEL)
        } else {
            0
        };
        let next = next_cycle(word, OPEN, level);
        self.word
            .compare_exchange(word, next, Ordering::AcqRel, Ordering::Acquire)
            .ok()?;
        // Only the winner gets here, so the deadline is written once per open period.
        let until = now.saturating_add(nanos(self.cooldown_for(level)));
        self.publish_open(gen_of(next), until);
        crate::events::transition(self.name, CircuitState::Open, rate);
        Some(until)
    }

    fn cooldown_for(&self, level: u32) -> Duration {
        let base = self.config().cooldown;
        match self.config().max_cooldown {
            None => base,
            Some(max) => {
                let factor = 1u32.checked_shl(level.min(31)).unwrap_or(u32::MAX);
                base.checked_mul(factor).unwrap_or(max).min(max)
            }
        }
    }

    /// Gives back the ticket of a call that was cancelled: nothing is recorded and a trial slot
    /// returns to its own cycle (never to a later one).
    pub fn release(&self, ticket: Ticket) {
        if ticket.kind() != TicketKind::Trial {
            return;
        }
        let mut word = self.word.load(Ordering::Acquire);
        while state_of(word) == HALF_OPEN
            && gen_of(word) == ticket.generation()
            && trials_of(word) > 0
        {
            match self.word.compare_exchange_weak(
                word,
                word - (1 << TRIALS_SHIFT),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(w) => word = w,
            }
        }
    }

    /// Runs `fut` through the breaker, for code that does not use the attributes.
    ///
    /// Every `Err` of `fut` counts as a failure. The future is not polled when the call is
    /// rejected. A panic is recorded as a failure and resumes; a drop records nothing.
    ///
    /// # Errors
    /// `fut`'s own error, or `E::from(Error::CircuitOpen { .. })` on rejection.
    pub async fn call<T, E, F>(&self, fut: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
        E: From<Error>,
    {
        let ticket = self.try_acquire()?;
        let guard = TicketGuard::new(self, ticket);
        let out = fut.await;
        guard.finish(out.is_err());
        out
    }
}

/// Hands a ticket back exactly once: on completion with its outcome (consuming the guard);
/// dropped instead, during a panic as a failure, otherwise (cancellation) by releasing it.
#[derive(Debug)]
pub(crate) struct TicketGuard<'a> {
    breaker: &'a CircuitBreaker,
    ticket: Ticket,
}

impl<'a> TicketGuard<'a> {
    #[inline]
    pub(crate) fn new(breaker: &'a CircuitBreaker, ticket: Ticket) -> Self {
        TicketGuard { breaker, ticket }
    }

    #[inline]
    pub(crate) fn breaker(&self) -> &'a CircuitBreaker {
        self.breaker
    }

    #[inline]
    pub(crate) fn finish(self, failure: bool) {
        self.finish_at(failure, None);
    }

    /// [`finish`](Self::finish) with the completion time, if already read.
    #[inline(always)]
    #[allow(clippy::inline_always)] // measured: LLVM declines `#[inline]` here (callgrind)
    pub(crate) fn finish_at(self, failure: bool, completed: Option<Instant>) {
        // Consumed without running `Drop`: the ticket goes back here, once. Moving the two
        // fields out of a `ManuallyDrop` keeps the completed call free of a drop flag.
        let this = std::mem::ManuallyDrop::new(self);
        this.breaker.record_at(this.ticket, failure, completed);
    }

    /// Ends the call without an outcome (an inner layer rejected it).
    #[inline]
    pub(crate) fn abandon(self) {
        let this = std::mem::ManuallyDrop::new(self);
        this.breaker.release(this.ticket);
    }
}

impl Drop for TicketGuard<'_> {
    /// Only an unfinished call (cancelled, or its body panicked) gets here.
    #[cold]
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.breaker.record(self.ticket, true);
        } else {
            self.breaker.release(self.ticket);
        }
    }
}

/// The configuration and, after a rule change, the window that rule started.
struct Settings {
    config: BreakerConfig,
    window: Option<&'static Window>,
}

/// The outcomes a trip rule looks at.
///
/// # Why every part of a window carries a generation
///
/// An outcome belongs to the cycle in which its call was admitted (DESIGN.md 4.1). A recorder
/// checks the state word's generation and then writes the window; a thread preempted between
/// the two, across a state change, would otherwise write an earlier cycle's outcome into the
/// next cycle's window. So nothing clears a window at a transition: each atomic cell holds the
/// generation its value belongs to (`generation << 40 | value`), a cell of another generation
/// reads as empty, and only a recorder whose generation is still the breaker's current one may
/// start a cell afresh (its compare-and-swap fails if a newer recorder got there first). A stale
/// recorder can therefore only write into cells that the current cycle already treats as
/// empty. The success path stays a plain load for the count rules.
///
/// Known limits, both far outside what a running service meets: the generation is 23 bits and
/// a bucket's stamp 24, so a cell left untouched across exactly 2^23 state changes (or a bucket
/// whose epoch and generation distance wraps 2^24) would read as current again, which traffic
/// prevents by rewriting each bucket as time reaches it (a striped window clears the other
/// sets' copy at the same moment, see [`Stripes::clear_stale`]), so only a breaker idle for
/// that long meets it; and a recorder preempted for a whole time window between its clock read
/// and its bucket write restarts that bucket (and clears its other sets' copies) with its old
/// stamp, dropping up to a tenth of the window's outcomes (a writer cannot tell "my bucket is
/// ten epochs stale" from "this bucket is stale" without another clock read).
enum Window {
    /// Consecutive failures (a tagged cell).
    Consecutive(AtomicU64),
    /// Times of the last `threshold` failures (nanoseconds since `base`), oldest first, and the
    /// generation they belong to. Only failures touch it, so the lock is off the success path.
    Timed(Mutex<(u64, std::collections::VecDeque<u64>)>),
    /// A ring of the last `last` outcomes, 40 to a tagged cell; the next position (kept in
    /// `0..2 * len`: at or past `len` the ring is full) and the failure count, both tagged.
    Calls(Ring),
    /// Ten buckets; each word packs (stamp: 24 bits, calls: 20 bits, failures: 20 bits). The
    /// stamp is the bucket's epoch (`now / width`) plus ten per generation, so an earlier
    /// cycle's bucket always looks at least ten epochs old and drops out of the window; see
    /// [`add_to_bucket`] for why the recorder reads the clock before its generation check.
    Buckets {
        buckets: [AtomicU64; 10],
        width: u64,
        /// The epoch of the newest failure recorded (plus one; zero: none), kept by
        /// `fetch_max`. A success with no failure in the last ten buckets cannot trip the
        /// rule, so it skips the sum over the buckets. Outcomes of any cycle count here, which
        /// only ever makes a success evaluate when it need not.
        last_failure: AtomicU64,
        /// More sets of ten buckets, one per recording thread, once recorders have collided.
        stripes: Stripes,
    },
}

const BUCKET_FIELD: u64 = (1 << 20) - 1;
const EPOCH_MASK: u64 = (1 << 24) - 1;
/// Bits of a tagged cell below the generation.
const TAG_SHIFT: u32 = 40;
const PAYLOAD: u64 = (1 << TAG_SHIFT) - 1;
/// Ring outcomes per tagged cell.
const RING_CELL: u64 = 40;

/// The value `cell` holds for `generation` (a cell of another generation is empty).
#[inline]
fn tagged_read(cell: &AtomicU64, generation: u64) -> u64 {
    let v = cell.load(Ordering::Acquire);
    if v >> TAG_SHIFT == generation {
        v & PAYLOAD
    } else {
        0
    }
}

/// Replaces the value `cell` holds for `generation` with `f(value)`, and returns
/// `(old, new)`; `None` when `generation` is no longer the breaker's (`current`), so the
/// outcome belongs to no window any more.
fn tagged_update(
    cell: &AtomicU64,
    generation: u64,
    current: &impl Fn() -> u64,
    f: impl Fn(u64) -> u64,
) -> Option<(u64, u64)> {
    let mut cur = cell.load(Ordering::Acquire);
    loop {
        let old = if cur >> TAG_SHIFT == generation {
            cur & PAYLOAD
        } else if current() == generation {
            0 // another cycle's value: this cycle starts the cell afresh
        } else {
            return None;
        };
        let new = f(old) & PAYLOAD;
        match cell.compare_exchange_weak(
            cur,
            (generation << TAG_SHIFT) | new,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => return Some((old, new)),
            Err(c) => cur = c,
        }
    }
}

impl Window {
    fn new(rule: &TripRule) -> Window {
        match *rule {
            TripRule::Consecutive { .. } => Window::Consecutive(AtomicU64::new(0)),
            TripRule::CountInWindow { threshold, .. } => Window::Timed(Mutex::new((
                0,
                // Grows to `threshold` entries with the failures themselves.
                std::collections::VecDeque::with_capacity((threshold as usize).min(64)),
            ))),
            TripRule::RateOverCalls { last, .. } => Window::Calls(Ring {
                bits: (0..u64::from(last).div_ceil(RING_CELL))
                    .map(|_| AtomicU64::new(0))
                    .collect(),
                len: u64::from(last),
                next: AtomicU64::new(0),
                failures: AtomicU64::new(0),
            }),
            TripRule::RateOverTime { window, .. } => Window::Buckets {
                buckets: Default::default(),
                width: u64::try_from(window.as_nanos() / 10)
                    .unwrap_or(u64::MAX)
                    .max(1),
                last_failure: AtomicU64::new(0),
                stripes: Stripes::new(),
            },
        }
    }

    /// Whether a success of a call admitted in `generation` would change nothing, so it can
    /// skip the rest of `record`. Needs no generation check of the breaker: a stale success
    /// changes nothing either.
    #[inline]
    fn success_is_noop(&self, generation: u64) -> bool {
        match self {
            // Nothing to reset.
            Window::Consecutive(n) => tagged_read(n, generation) == 0,
            // Only failures are kept.
            Window::Timed(_) => true,
            // A full ring without failures: the slot a success would overwrite holds a
            // success too.
            Window::Calls(ring) => {
                tagged_read(&ring.failures, generation) == 0
                    && tagged_read(&ring.next, generation) >= ring.len
            }
            // Every call counts towards the rate.
            Window::Buckets { .. } => false,
        }
    }

    /// A time window's success at `at` in the common case: one compare-and-swap into the
    /// bucket already started for this period and cycle. [`Added::No`] leaves the success to
    /// [`Window::record`] (a bucket to restart, a collision, a full bucket).
    ///
    /// As in `record`, `last_failure` is read after the add: a failure recorded at the same
    /// moment either sees this success in its own judgement of the rule, or is seen here
    /// (both sides are sequentially consistent), and then [`Added::Judge`] asks the caller to
    /// judge the rule on this success.
    ///
    /// No check of the breaker's cycle is needed before the add: a success of an ended cycle
    /// lands where no later cycle counts it. The bucket's stamp matched this period and cycle,
    /// and a stamp is written (by a restart in `add_to_bucket`) only after its writer read the
    /// clock in that period and then found its cycle current. Stamps alias (`bucket_stamp(e,
    /// g)` equals `bucket_stamp(e - 10, g + 1)`), so the bucket may instead be a later cycle's,
    /// from ten periods earlier; a reader of that cycle counts it only while it is less than
    /// ten periods old, that is, a reader whose clock reading is earlier than this success's
    /// `at`, which needs a call that lasted most of the window across the change of cycle,
    /// and then shows that one reader one extra success.
    #[inline]
    fn add_success(&self, generation: u64, at: Instant, base: Instant) -> Added {
        let Window::Buckets {
            buckets,
            last_failure,
            stripes,
            ..
        } = self
        else {
            return Added::No;
        };
        let epoch = self.epoch(at, base);
        let set = stripes.set(buckets);
        let bucket = &set[usize::try_from(epoch % 10).unwrap_or(0)];
        let cur = bucket.load(Ordering::Acquire);
        // A full bucket is scaled down by the general path (`add_to_bucket`).
        if cur >> 40 != bucket_stamp(epoch, generation)
            || (cur >> 20) & BUCKET_FIELD == BUCKET_FIELD
        {
            return Added::No;
        }
        // Sequentially consistent, as in `add_to_bucket`. A strong compare-and-swap fails only
        // when the bucket changed: another recorder collided with this one.
        if bucket
            .compare_exchange(cur, cur + (1 << 20), Ordering::SeqCst, Ordering::Acquire)
            .is_err()
        {
            stripes.contended();
            return Added::No;
        }
        if failure_in_window(last_failure, epoch) {
            Added::Judge(epoch)
        } else {
            Added::Done
        }
    }

    /// The bucket period (`(at - base) / width`) of a time window at `at`; 0 for the other
    /// windows. Converting an `Instant` to nanoseconds is std's `Instant` subtraction (~55
    /// instructions, about 6 ns of the time window's success path, measured by removing it),
    /// so each thread keeps the start and end of the last few periods it computed, as
    /// `Instant`s: a time in a cached period costs two comparisons. An entry is keyed by the
    /// base and the width, which alone decide every period, so an entry left by another
    /// window (one created at a freed window's address, or sharing the entry) is either
    /// right for this one too or does not match.
    #[inline]
    fn epoch(&self, at: Instant, base: Instant) -> u64 {
        let Window::Buckets { width, .. } = self else {
            return 0;
        };
        #[cfg(not(loom))]
        let slot = epoch_slot(self);
        #[cfg(not(loom))]
        if let Some(epoch) = cached_epoch(slot, base, *width, at) {
            return epoch;
        }
        let epoch = nanos(at.saturating_duration_since(base)) / width;
        #[cfg(not(loom))]
        cache_epoch(slot, base, *width, epoch);
        epoch
    }

    /// Whether [`record`](Self::record) needs the clock read before the generation check.
    fn stamps_time(&self) -> bool {
        matches!(self, Window::Buckets { .. })
    }

    /// Records one outcome of a call admitted in `generation` and evaluates the rule (after
    /// successes too). `current` reads the breaker's generation now; `now` the time in
    /// nanoseconds (for the failure times of a count-in-window rule); `epoch` is the bucket
    /// period of the outcome (time windows, see [`Window::epoch`]).
    fn record(
        &self,
        rule: &TripRule,
        failure: bool,
        generation: u64,
        current: impl Fn() -> u64,
        now: impl Fn() -> u64,
        epoch: u64,
    ) -> Verdict {
        // A success that changes nothing writes nothing: keeps the lines shared.
        if !failure && self.success_is_noop(generation) {
            return Verdict::Stay;
        }
        match (self, *rule) {
            (Window::Consecutive(n), TripRule::Consecutive { threshold }) => {
                if failure {
                    let Some((_, count)) =
                        tagged_update(n, generation, &current, |c| (c + 1).min(PAYLOAD))
                    else {
                        return Verdict::Stay;
                    };
                    Verdict::open_if(count >= u64::from(threshold), None)
                } else {
                    tagged_update(n, generation, &current, |_| 0);
                    Verdict::Stay
                }
            }
            // Only failures reach here: successes are no-ops for this rule.
            (Window::Timed(times), TripRule::CountInWindow { threshold, window }) => {
                let mut guard = times
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let (owner, times) = &mut *guard;
                if *owner != generation {
                    // Under the lock, so no newer recorder can slip in between.
                    if current() != generation {
                        return Verdict::Stay;
                    }
                    *owner = generation;
                    times.clear();
                }
                // Read under the lock, so the times stay in order.
                let now = now();
                if times.len() == threshold as usize {
                    times.pop_front();
                }
                times.push_back(now);
                let oldest = times.front().copied().unwrap_or(now);
                Verdict::open_if(
                    times.len() == threshold as usize
                        && u128::from(now.saturating_sub(oldest)) < window.as_nanos(),
                    None,
                )
            }
            (
                Window::Calls(ring),
                TripRule::RateOverCalls {
                    failure_rate,
                    min_calls,
                    ..
                },
            ) => match ring.record(failure, generation, &current) {
                Some((calls, failures)) => rate_trips(calls, failures, min_calls, failure_rate),
                None => Verdict::Stay,
            },
            (
                Window::Buckets {
                    buckets,
                    last_failure,
                    stripes,
                    ..
                },
                TripRule::RateOverTime {
                    failure_rate,
                    min_calls,
                    ..
                },
            ) => {
                if failure {
                    last_failure.fetch_max(epoch.saturating_add(1), Ordering::AcqRel);
                }
                let set = stripes.set(buckets);
                let Some(written) = add_to_bucket(set, epoch, failure, generation, &current) else {
                    return Verdict::Stay;
                };
                if written.restarted {
                    stripes.clear_stale(buckets, set, epoch, generation, &current);
                }
                if written.contended {
                    stripes.contended();
                }
                if !failure && !failure_in_window(last_failure, epoch) {
                    return Verdict::Stay;
                }
                let (calls, fails) = self.counts(epoch, generation);
                rate_trips(calls, fails, min_calls, failure_rate)
            }
            _ => Verdict::Stay,
        }
    }

    /// (calls, failures) in the window of cycle `generation`; `epoch` is the current bucket
    /// period (time windows only).
    fn counts(&self, epoch: u64, generation: u64) -> (u64, u64) {
        match self {
            Window::Consecutive(n) => {
                let n = tagged_read(n, generation);
                (n, n)
            }
            Window::Timed(times) => {
                let guard = times
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let n = if guard.0 == generation {
                    guard.1.len() as u64
                } else {
                    0
                };
                (n, n)
            }
            Window::Calls(ring) => {
                let calls = tagged_read(&ring.next, generation).min(ring.len);
                (
                    calls,
                    ring_failures(tagged_read(&ring.failures, generation), calls),
                )
            }
            Window::Buckets {
                buckets, stripes, ..
            } => {
                let stamp = bucket_stamp(epoch, generation);
                let add = |(c, f): (u64, u64), b: &AtomicU64| {
                    // Sequentially consistent: see `add_to_bucket`.
                    let w = b.load(Ordering::SeqCst);
                    let age = stamp.wrapping_sub(w >> 40) & EPOCH_MASK;
                    if w != 0 && age < 10 {
                        (c + ((w >> 20) & BUCKET_FIELD), f + (w & BUCKET_FIELD))
                    } else {
                        (c, f)
                    }
                };
                let base = buckets.iter().fold((0, 0), add);
                stripes
                    .sets()
                    .fold(base, |sum, set| set.iter().fold(sum, add))
            }
        }
    }
}

/// The outcomes of the last `len` calls of a `last = N` rule.
struct Ring {
    /// 40 outcomes to a tagged cell, a set bit is a failure.
    bits: Box<[AtomicU64]>,
    len: u64,
    /// The next position, tagged, kept in `0..2 * len`: at or past `len` the ring is full.
    next: AtomicU64,
    /// Failures in the ring, tagged.
    failures: AtomicU64,
}

impl Ring {
    /// Records one outcome of cycle `generation`. Returns the (calls, failures) the rule must
    /// evaluate, or `None` when there is nothing to decide (the cycle ended, or a success in a
    /// full ring, which cannot raise the rate).
    fn record(
        &self,
        failure: bool,
        generation: u64,
        current: &impl Fn() -> u64,
    ) -> Option<(u64, u64)> {
        let len = self.len;
        let advance = |p: u64| if p + 1 < 2 * len { p + 1 } else { len };
        let (pos, _) = tagged_update(&self.next, generation, current, advance)?;
        let slot = pos % len;
        let cell = &self.bits[usize::try_from(slot / RING_CELL).unwrap_or(0)];
        let mask = 1u64 << (slot % RING_CELL);
        let set = |w: u64| if failure { w | mask } else { w & !mask };
        let (old, _) = tagged_update(cell, generation, current, set)?;
        // The count moves by whole failures entering and leaving the ring. Two recorders of
        // one slot (the ring lapped in between) can run the decrement before the increment it
        // undoes, so the arithmetic wraps within the cell and a transiently "negative" count
        // reads as zero (`ring_failures`).
        let delta: Option<fn(u64) -> u64> = match (failure, old & mask != 0) {
            (true, false) => Some(|c| c.wrapping_add(1)),
            (false, true) => Some(|c| c.wrapping_sub(1)),
            _ => None,
        };
        let total = match delta {
            Some(f) => tagged_update(&self.failures, generation, current, f)?.1,
            None => tagged_read(&self.failures, generation),
        };
        // Once the ring is full a success cannot raise the rate, and the rule was evaluated
        // after the outcome it replaces: nothing to decide.
        if !failure && pos >= len {
            return None;
        }
        let calls = (pos + 1).min(len);
        Some((calls, ring_failures(total, calls)))
    }
}

/// The ring's failure count as the rule sees it: a transiently wrapped count (see
/// [`Window::record`]) is zero, and never more than the calls in the ring.
fn ring_failures(count: u64, calls: u64) -> u64 {
    if count > PAYLOAD / 2 {
        0
    } else {
        count.min(calls)
    }
}

/// Whether a time window at period `epoch` still holds a failure: one leaves it once its
/// bucket is ten buckets old. `last_failure` is the newest failure's period plus one (0: none).
/// Only then can a success change the rule's verdict.
#[inline]
fn failure_in_window(last_failure: &AtomicU64, epoch: u64) -> bool {
    let newest = last_failure.load(Ordering::Acquire);
    newest != 0 && epoch.saturating_sub(newest - 1) < 10
}

/// The stamp of the bucket that `now` falls in, for cycle `generation`: ten epochs further per
/// generation, so buckets of earlier cycles are always at least ten epochs old.
fn bucket_stamp(epoch: u64, generation: u64) -> u64 {
    epoch.wrapping_add(generation.wrapping_mul(10)) & EPOCH_MASK
}

/// What [`Window::add_success`] did.
enum Added {
    /// Added, and no failure is in the window.
    Done,
    /// Added, with a failure in the window: the rule must be judged at this period.
    Judge(u64),
    /// Nothing written: record the success the general way.
    No,
}

/// What [`add_to_bucket`] did.
#[derive(Clone, Copy)]
struct Written {
    /// The bucket held another stamp and was started afresh.
    restarted: bool,
    /// Another recorder changed the bucket under this one.
    contended: bool,
}

/// Adds one outcome to the bucket of `now`, starting the bucket afresh if it holds another
/// stamp. Returns `None` if the outcome's cycle has ended and nothing was written.
///
/// Sequentially consistent, like the loads of [`Window::counts`]: once a window is striped,
/// two recorders writing different sets and then summing every set must not both miss the
/// other's outcome (the store-buffering shape, which acquire/release allows), or neither would
/// trip at the outcome that reached the rule. On x86 and 64-bit ARM this costs nothing more.
///
/// A bucket is restarted only while `generation` is still the breaker's (`current`), and by
/// compare-and-swap, so a stale recorder never wipes a newer cycle's bucket. It can still
/// restart a bucket no newer recorder has touched yet, with its own stamp; that stamp is at
/// least ten epochs behind every reader of a later cycle provided the stale recorder's `now`
/// is no later than theirs, which holds because it read the clock before its generation check
/// (and they after the transition that ended its cycle).
fn add_to_bucket(
    buckets: &[AtomicU64; 10],
    epoch: u64,
    failure: bool,
    generation: u64,
    current: &impl Fn() -> u64,
) -> Option<Written> {
    let stamp = bucket_stamp(epoch, generation);
    let mut contended = false;
    let bucket = &buckets[usize::try_from(epoch % 10).unwrap_or(0)];
    let mut cur = bucket.load(Ordering::Acquire);
    loop {
        let (calls, fails) = if cur >> 40 == stamp {
            ((cur >> 20) & BUCKET_FIELD, cur & BUCKET_FIELD)
        } else if current() == generation {
            (0, 0)
        } else {
            return None;
        };
        // A full bucket (2^20 - 1 calls in one tenth of the window) is halved, counts and
        // failures alike, so its failure rate stays what it was: capping the calls while the
        // failures kept counting would raise the rate and open the breaker falsely.
        let (calls, fails) = if calls == BUCKET_FIELD {
            (calls >> 1, fails >> 1)
        } else {
            (calls, fails)
        };
        let calls = calls + 1;
        let fails = fails + u64::from(failure);
        let next = (stamp << 40) | (calls << 20) | fails;
        match bucket.compare_exchange_weak(cur, next, Ordering::SeqCst, Ordering::Acquire) {
            Ok(_) => {
                return Some(Written {
                    restarted: cur >> 40 != stamp,
                    contended,
                });
            }
            Err(c) => {
                // A weak compare-and-swap may fail spuriously; only a changed bucket is
                // another recorder.
                contended |= c != cur;
                cur = c;
            }
        }
    }
}

/// Extra sets of a time window's ten buckets, so that threads recording at once do not all
/// write one shared bucket (every outcome of a time window is a compare-and-swap on the bucket
/// of the current tenth of the window; on two workers, that cache line moving between cores
/// cost more than the rest of the call). Made the first time two recorders collide on a
/// bucket, so a breaker that never sees concurrent outcomes keeps its ten words; after that,
/// each thread records into the set its index picks, and moves to the next set whenever it
/// collides again (the rehash of Java's `LongAdder`). Readers sum every set, so the window's
/// counts are those of one set of ten buckets; each bucket keeps the stamp rules of
/// [`add_to_bucket`] on its own. Under `--cfg loom` no sets are ever made (see `contended`):
/// the loom models check the unstriped window (a set is just ten more buckets).
#[derive(Default)]
struct Stripes {
    /// A thin pointer (a boxed `Vec`), to keep every breaker's window small.
    #[allow(clippy::box_collection)]
    sets: std::sync::OnceLock<Box<Vec<BucketSet>>>,
}

/// Ten buckets on a cache line pair of their own.
#[derive(Default)]
#[repr(align(128))]
struct BucketSet([AtomicU64; 10]);

thread_local! {
    /// This thread's stripe index (`usize::MAX`: none yet).
    static STRIPE: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

impl Stripes {
    /// No sets yet. Reads the stripe count now, with the window, rather than at the first
    /// collision: it asks the OS (once per process), which the recording path should not.
    fn new() -> Stripes {
        stripe_count();
        Stripes::default()
    }

    /// The buckets this thread records into: `base` until recorders have collided.
    #[inline]
    fn set<'a>(&'a self, base: &'a [AtomicU64; 10]) -> &'a [AtomicU64; 10] {
        match self.sets.get() {
            // The count is a power of two: a mask, not a division.
            Some(sets) => &sets[stripe_index() & (sets.len() - 1)].0,
            None => base,
        }
    }

    /// After a collision: make the sets the first time, later move this thread to another.
    #[cold]
    fn contended(&self) {
        if cfg!(loom) {
            return; // the loom models explore the unstriped window
        }
        if self.sets.get().is_some() {
            // A thread that wrote the base set before the sets existed has no index yet: it
            // takes one in turn, then moves on from it. Outside a thread-local's lifetime (a
            // call from a TLS destructor) there is nothing to move.
            let next = stripe_index().wrapping_add(1);
            let _ = STRIPE.try_with(|s| s.set(next));
        } else {
            self.sets.get_or_init(|| {
                Box::new((0..stripe_count()).map(|_| BucketSet::default()).collect())
            });
        }
    }

    /// After a recorder started the bucket of `now` afresh in its own set (`own`): the same
    /// bucket of every other set, and of the base set, goes back to empty if it is stale. An
    /// unstriped window rewrites each bucket whenever traffic reaches it, so a bucket is never
    /// left untouched for the 2^24 widths after which its stamp would read as current again
    /// (only a fully idle breaker can meet that). With stripes, the base set and any set no
    /// thread uses any more are never rewritten; clearing them here keeps that guarantee.
    /// Each clear is a compare-and-swap of the stale value read, by a recorder whose cycle is
    /// still current (the rules of [`add_to_bucket`]), so it never wipes a bucket another
    /// recorder has just started.
    #[cold]
    fn clear_stale(
        &self,
        base: &[AtomicU64; 10],
        own: &[AtomicU64; 10],
        epoch: u64,
        generation: u64,
        current: &impl Fn() -> u64,
    ) {
        if self.sets.get().is_none() {
            return;
        }
        let stamp = bucket_stamp(epoch, generation);
        let slot = usize::try_from(epoch % 10).unwrap_or(0);
        for set in std::iter::once(base).chain(self.sets()) {
            if std::ptr::eq(set, own) {
                continue;
            }
            let cell = &set[slot];
            let w = cell.load(Ordering::Acquire);
            let stale = w != 0 && stamp.wrapping_sub(w >> 40) & EPOCH_MASK >= 10;
            if stale && current() == generation {
                let _ = cell.compare_exchange(w, 0, Ordering::SeqCst, Ordering::Relaxed);
            }
        }
    }

    fn sets(&self) -> impl Iterator<Item = &[AtomicU64; 10]> {
        self.sets
            .get()
            .into_iter()
            .flat_map(|sets| sets.iter())
            .map(|set| &set.0)
    }
}

/// This thread's stripe index: handed out in turn on first use, so concurrent threads start
/// on different sets.
fn stripe_index() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    STRIPE
        .try_with(|s| {
            let mut index = s.get();
            if index == usize::MAX {
                index = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                s.set(index);
            }
            index
        })
        .unwrap_or(0)
}

/// Sets per striped window: the machine's parallelism rounded up to a power of two, 2 to 16
/// (128 bytes each).
fn stripe_count() -> usize {
    static COUNT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *COUNT.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(4, std::num::NonZero::get)
            .clamp(2, 16)
            .next_power_of_two()
    })
}

/// One bucket period of time windows with this base and width, as `Instant`s.
#[cfg(not(loom))]
#[derive(Clone, Copy)]
struct CachedEpoch {
    base: Instant,
    width: u64,
    start: Instant,
    end: Instant,
    epoch: u64,
}

/// Entries per thread, picked by the window's address: a thread recording into a few windows
/// in turn keeps each one's period.
#[cfg(not(loom))]
const EPOCH_CACHE: usize = 8;

#[cfg(not(loom))]
thread_local! {
    static EPOCHS: [std::cell::Cell<Option<CachedEpoch>>; EPOCH_CACHE] =
        const { [const { std::cell::Cell::new(None) }; EPOCH_CACHE] };
}

/// The cache entry of a window: windows live inside breakers (hundreds of bytes apart), so the
/// address bits above 128 spread them.
#[cfg(not(loom))]
fn epoch_slot(window: &Window) -> usize {
    (std::ptr::from_ref(window).addr() >> 7) % EPOCH_CACHE
}

/// The period that `at` falls in for a window of this base and width, if this thread has it
/// cached in `slot`. (Outside a thread-local's lifetime, a call from a TLS destructor, nothing
/// is cached.)
#[cfg(not(loom))]
#[inline]
fn cached_epoch(slot: usize, base: Instant, width: u64, at: Instant) -> Option<u64> {
    EPOCHS
        .try_with(|cache| cache[slot].get())
        .ok()
        .flatten()
        .filter(|c| c.width == width && c.base == base && c.start <= at && at < c.end)
        .map(|c| c.epoch)
}

#[cfg(not(loom))]
#[cold]
fn cache_epoch(slot: usize, base: Instant, width: u64, epoch: u64) {
    let offset = |n: u64| {
        n.checked_mul(width)
            .and_then(|ns| base.checked_add(Duration::from_nanos(ns)))
    };
    if let (Some(start), Some(end)) = (offset(epoch), offset(epoch.saturating_add(1))) {
        let _ = EPOCHS.try_with(|cache| {
            cache[slot].set(Some(CachedEpoch {
                base,
                width,
                start,
                end,
                epoch,
            }));
        });
    }
}

/// What the trip rule says after an outcome.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Verdict {
    Stay,
    /// Open; the failure rate that did it, for the rate rules.
    Open(Option<f64>),
}

impl Verdict {
    fn open_if(open: bool, rate: Option<f64>) -> Verdict {
        if open {
            Verdict::Open(rate)
        } else {
            Verdict::Stay
        }
    }
}

fn rate_trips(calls: u64, failures: u64, min_calls: u32, failure_rate: f64) -> Verdict {
    if calls == 0 || calls < u64::from(min_calls) {
        return Verdict::Stay;
    }
    #[allow(clippy::cast_precision_loss)] // counts are far below 2^52
    let rate = failures as f64 / calls as f64;
    Verdict::open_if(rate >= failure_rate, Some(rate))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{BreakerConfig, CircuitBreaker, CircuitState, TripRule, Window};
    use std::time::Duration;

    fn time_window(min_calls: u32) -> CircuitBreaker {
        CircuitBreaker::new(
            "striped",
            BreakerConfig::new(TripRule::RateOverTime {
                failure_rate: 0.5,
                window: Duration::from_secs(3600),
                min_calls,
            }),
        )
        .expect("valid")
    }

    /// The time window's success fast path (`Window::add_success`) adds only into a bucket
    /// stamped for the ticket's own cycle: a success admitted before a reset does not count in
    /// the cycle the reset started, whether it finds that cycle's bucket started or not.
    #[test]
    fn a_success_from_an_earlier_cycle_is_not_counted() {
        let breaker = time_window(100);
        // Started bucket of the old cycle, and a ticket admitted in it.
        record(&breaker, 1, 0);
        let old = breaker.try_acquire().expect("closed");
        let old_too = breaker.try_acquire().expect("closed");
        breaker.reset();
        // The old cycle's bucket is still there: the stale success may land in it (the fast
        // path), but nobody in the new cycle counts it.
        breaker.record(old, false);
        assert_eq!(breaker.metrics().calls, 0);
        // The new cycle starts the bucket; a stale success then goes the general way.
        record(&breaker, 1, 0);
        breaker.record(old_too, false);
        assert_eq!(breaker.metrics().calls, 1);
        assert_eq!(breaker.metrics().failures, 0);
    }

    /// A full bucket is halved, calls and failures alike, so its failure rate is kept: 2^20 - 1
    /// calls of which a third failed stay a third failed, where capping the calls alone would
    /// have let further failures raise the rate.
    #[test]
    fn a_full_bucket_is_halved_keeping_its_rate() {
        let breaker = time_window(1);
        let Window::Buckets { buckets, .. } = breaker.window() else {
            panic!("a time window");
        };
        record(&breaker, 1, 0);
        let bucket = buckets
            .iter()
            .find(|b| b.load(super::Ordering::Acquire) != 0)
            .expect("the started bucket");
        let full = super::BUCKET_FIELD;
        let third = full / 3;
        let stamp = bucket.load(super::Ordering::Acquire) >> 40;
        bucket.store(stamp << 40 | full << 20 | third, super::Ordering::Release);
        record(&breaker, 1, 0);
        let m = breaker.metrics();
        assert_eq!((m.calls, m.failures), ((full >> 1) + 1, third >> 1));
        record(&breaker, 0, 1);
        let m = breaker.metrics();
        assert_eq!((m.calls, m.failures), ((full >> 1) + 2, (third >> 1) + 1));
        let rate = m.failure_rate.expect("past min_calls");
        assert!((rate - 1.0 / 3.0).abs() < 1e-3, "rate {rate}");
    }

    /// Sets of buckets in use, and how many of them hold any outcome.
    fn sets(breaker: &CircuitBreaker) -> (usize, usize) {
        let Window::Buckets { stripes, .. } = breaker.window() else {
            panic!("a time window");
        };
        let sets: Vec<_> = stripes.sets().collect();
        let used = sets
            .iter()
            .filter(|set| set.iter().any(|b| b.load(super::Ordering::Acquire) != 0))
            .count();
        (sets.len(), used)
    }

    fn stripe(breaker: &CircuitBreaker) {
        let Window::Buckets { stripes, .. } = breaker.window() else {
            panic!("a time window");
        };
        stripes.contended();
    }

    fn record(breaker: &CircuitBreaker, successes: u32, failures: u32) {
        for failure in (0..successes)
            .map(|_| false)
            .chain((0..failures).map(|_| true))
        {
            let ticket = breaker.try_acquire().expect("closed");
            breaker.record(ticket, failure);
        }
    }

    #[test]
    fn a_window_without_concurrent_recorders_keeps_its_ten_buckets() {
        let breaker = time_window(1_000_000);
        record(&breaker, 500, 5);
        assert_eq!(sets(&breaker), (0, 0));
        assert_eq!(breaker.metrics().calls, 505);
    }

    /// Once striped, every thread's outcomes still count, in one window.
    #[test]
    fn a_striped_window_counts_every_thread_s_outcomes() {
        let breaker = time_window(1_000_000);
        record(&breaker, 7, 1);
        stripe(&breaker);
        std::thread::scope(|s| {
            for k in 0..4 {
                let breaker = &breaker;
                s.spawn(move || {
                    // Indices are handed out in turn across the whole test binary; fix them
                    // so that which sets are used does not depend on other tests.
                    super::STRIPE.with(|i| i.set(k));
                    record(breaker, 1000, 10);
                });
            }
        });
        let m = breaker.metrics();
        assert_eq!((m.calls, m.failures), (4 * 1010 + 8, 4 * 10 + 1));
        let (made, used) = sets(&breaker);
        assert!(made >= 2, "{made} sets");
        assert_eq!(used, made.min(4), "each thread records into its own set");
        assert_eq!(m.state, CircuitState::Closed);
    }

    /// A set nobody writes any more, and the base set, must not come back when the stamps
    /// wrap (every 2^24 bucket widths): the first outcome of each bucket period clears the
    /// stale copies of that bucket in every other set, as an unstriped window rewrites it.
    #[tokio::test(start_paused = true)]
    async fn abandoned_sets_do_not_come_back_when_stamps_wrap() {
        let breaker = CircuitBreaker::new(
            "striped-wrap",
            BreakerConfig::new(TripRule::RateOverTime {
                failure_rate: 0.5,
                // Buckets of 1 ms: the stamps wrap after 2^24 ms (4.7 h).
                window: Duration::from_millis(10),
                min_calls: 1_000_000,
            }),
        )
        .expect("valid");
        let on = |index: usize, n: u32| {
            super::STRIPE.with(|i| i.set(index));
            record(&breaker, n, 0);
        };
        on(0, 15); // the base set, bucket 0
        stripe(&breaker);
        on(1, 7); // set 1, bucket 0
        on(0, 3); // set 0, bucket 0
        assert_eq!(breaker.metrics().calls, 25);
        // Bucket 0's next period: set 0 starts it afresh and clears the others' copies.
        tokio::time::advance(Duration::from_millis(10)).await;
        on(0, 1);
        assert_eq!(breaker.metrics().calls, 1);
        // Exactly when the first period's stamp comes round again, nothing old is counted.
        tokio::time::advance(Duration::from_millis((1 << 24) - 10)).await;
        assert_eq!(breaker.metrics().calls, 0);
        on(0, 1);
        assert_eq!(breaker.metrics().calls, 1);
    }

    /// The per-thread period cache gives the period the division would, at every boundary,
    /// for windows that share a cache entry, and for a window created after another.
    #[tokio::test(start_paused = true)]
    async fn cached_periods_are_the_divided_ones() {
        let base = tokio::time::Instant::now();
        // Nine windows for eight cache entries: at least two share one, and all widths differ
        // (7 ns to 5 ms) while the base is the same, so an entry matched on the wrong key
        // gives a wrong period.
        let windows: Vec<Window> = [
            Duration::from_millis(10),
            Duration::from_millis(30),
            Duration::from_nanos(70),
            Duration::from_micros(10),
            Duration::from_millis(20),
            Duration::from_nanos(100),
            Duration::from_micros(33),
            Duration::from_millis(1),
            Duration::from_millis(50),
        ]
        .iter()
        .map(|&window| {
            Window::new(&TripRule::RateOverTime {
                failure_rate: 0.5,
                window,
                min_calls: 1,
            })
        })
        .collect();
        let mut times = vec![base];
        for step in [1, 6, 7, 999_999, 1_000_000, 1_000_001, 2_999_999, 3_000_000] {
            times.push(base + Duration::from_nanos(step));
        }
        times.push(base + Duration::from_secs(3600));
        for _ in 0..3 {
            for at in &times {
                for w in &windows {
                    let Window::Buckets { width, .. } = w else {
                        panic!("a time window");
                    };
                    let divided = super::nanos(at.saturating_duration_since(base)) / width;
                    assert_eq!(
                        w.epoch(*at, base),
                        divided,
                        "{at:?} in a window of width {width}"
                    );
                }
            }
            times.reverse();
        }
        // Before the base (a completion time read before the breaker existed): period 0.
        let early = base;
        tokio::time::advance(Duration::from_millis(5)).await;
        let later = tokio::time::Instant::now();
        assert_eq!(windows[0].epoch(early, later), 0);
    }

    /// The rule sees the sum over every set: it opens at exactly the outcome that reaches it,
    /// whichever thread recorded the others.
    #[test]
    fn a_striped_window_opens_at_the_exact_outcome() {
        let breaker = time_window(10);
        stripe(&breaker);
        std::thread::scope(|s| {
            s.spawn(|| record(&breaker, 5, 0));
        });
        std::thread::scope(|s| {
            s.spawn(|| record(&breaker, 0, 4));
        });
        assert_eq!(breaker.state(), CircuitState::Closed);
        let m = breaker.metrics();
        assert_eq!((m.calls, m.failures), (9, 4));
        record(&breaker, 0, 1);
        assert_eq!(breaker.state(), CircuitState::Open);
    }
}
