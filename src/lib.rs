//! Timeouts, circuit breakers, bulkheads, retries and fallbacks for async Rust, by annotation.
//!
//! ```
//! use resilient::{bulkhead, circuit_breaker, fallback, retry, timeout};
//! # #[derive(Debug)] pub struct ApiError;
//! # impl From<resilient::Error> for ApiError { fn from(_: resilient::Error) -> Self { ApiError } }
//! # type UserId = u64; type Item = u64;
//! # async fn http_get(user: UserId) -> Result<Vec<Item>, ApiError> { Ok(vec![user]) }
//!
//! async fn popular_items(_user: UserId, _err: ApiError) -> Result<Vec<Item>, ApiError> {
//!     Ok(vec![1, 2, 3])
//! }
//!
//! #[fallback(popular_items)]
//! #[retry(attempts = 2, backoff = "50ms")]
//! #[circuit_breaker(failure_rate = 0.5, window = "10s", cooldown = "5s")]
//! #[timeout("200ms")]
//! #[bulkhead(pool = 10)]
//! async fn recommendations(user: UserId) -> Result<Vec<Item>, ApiError> {
//!     http_get(user).await
//! }
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! # assert_eq!(recommendations(7).await.unwrap(), vec![7]);
//! # }
//! ```
//!
//! # The attributes
//!
//! They apply to `async fn`s: free functions, inherent and trait-impl methods with any receiver
//! (`&self`, `&mut self`, `self: Arc<Self>`), generics, lifetimes, where clauses, `impl Trait`
//! arguments, native async fns in traits and methods inside `#[async_trait]` impls. The
//! function keeps its signature; its future is `Send` whenever the body's is. The return type
//! is any `Result<T, E>`, aliases included (`std::io::Result<T>`, `anyhow::Result<T>`).
//!
//! | attribute | arguments (defaults) |
//! |---|---|
//! | [`circuit_breaker`] | trip rule (`failure_rate = 0.5, window = "30s", min_calls = 20`), `cooldown` (`"5s"`), `max_cooldown` (none), `half_open_calls` (= `success_threshold`), `success_threshold` (1), `ramp`, `slow_call`, `failure`, `critical` (false), `name` |
//! | [`timeout`] | the duration, required: `#[timeout("200ms")]` or `#[timeout(duration = "200ms")]`; `name` |
//! | [`bulkhead`](macro@bulkhead) | `pool`, required; `queue` (0); `max_wait` (unbounded, needs `queue >= 1`); `name` |
//! | [`retry`] | `attempts` (3, the first included), `backoff` (`"100ms"`), `strategy` (`"exponential"`, `"linear"`, `"constant"`), `multiplier` (2.0), `max_backoff` (`"10s"`), `jitter` (`"full"`, `"equal"`, `"none"`, `"decorrelated"`), `max_duration`, `when`, `name` |
//! | [`fallback`] | the handler path, required; `args = (..)` (all arguments); `on` (every error); `name` |
//!
//! Every attribute also takes `crate = "path"` when `resilient` is reached under another path.
//!
//! Breaker trip rules: nothing (the default above); `threshold = N` (N consecutive failures);
//! `threshold = N, window = "30s"` (N failures within the last 30 s); `failure_rate = r` with
//! `window = "10s"` (ten buckets of one second) or `last = n` (the last n calls, rolling), and
//! optional `min_calls` (default 20 for time windows, `last` for count windows);
//! `window = "10s"` alone (rate 0.5). Durations are `<integer><unit>` groups, units `ns`, `us`,
//! `ms`, `s`, `m`, `h`, largest first (`"1m30s"`). Every argument error is a compile error at
//! that argument, all reported at once.
//!
//! # Composition
//!
//! Stacked attributes compose in source order: the attribute written first is the outermost
//! layer. Whichever expands first takes in its siblings and emits one composed expansion. The
//! recommended order is `fallback > retry > circuit_breaker > timeout > bulkhead`: the timeout
//! inside the breaker so timeouts count as failures, the bulkhead innermost so a retry's
//! backoff holds no permit. A `#[timeout]` under `#[retry]` is per attempt; above it, it bounds
//! all attempts. A kind may appear twice only with a `#[retry]` between (the inner timeout
//! shorter). `#[fallback]` below `#[retry]` and `#[bulkhead]` above `#[retry]` compile with a
//! warning.
//!
//! Other attribute macros stay on the function and expand in their own turn. Written *below*
//! the policies (as `#[tokio::test]` must be), they expand after them and wrap the whole stack:
//! `#[tracing::instrument]` there gives one span per call, with every attempt and the policies'
//! own events (retries, timeouts, rejections) inside it. Written *above*, such a macro expands
//! first and rewrites the body, which the policies then wrap: `#[tracing::instrument]` there
//! gives one span per attempt, and the policies' events fall outside it.
//!
//! A policy imported under another name (`use resilient::timeout as deadline;`) is **not**
//! merged: it expands on its own, after the stack, and so becomes the outermost layer wherever
//! it is written. Write the policies under their own names (or `resilient::timeout`).
//!
//! # Errors
//!
//! When a policy in the stack can reject a call (timeout, open circuit, full bulkhead), `E`
//! must implement `From<resilient::Error>`; the compile error otherwise points at the return
//! type. Layers pass [`Outcome<E>`] between them and convert once, outermost, so a retry never
//! retries `CircuitOpen` or `BulkheadFull` but does retry an inner `Timeout`.
//! [`Error::find`] digs a rejection out of an `io::Error`, an `anyhow::Error` or any
//! `source()` chain.
//!
//! # Naming and state
//!
//! `name = "..."` shares state: every function declaring the same breaker or bulkhead name
//! uses one instance, reached at run time with [`breaker()`] and [`bulkhead()`]. Without `name`,
//! each function has its own state under the key `module_path::fn_name`. State lives in a
//! per-function `static`, shared by all callers, receivers and monomorphisations, reached by
//! one atomic load after the first call. Timers need a tokio runtime; outside one, `#[timeout]`
//! and a sleeping retry return [`Error::NoRuntime`].
//!
//! # Choices where the design leaves room
//!
//! - **What a breaker records from inner layers.** An inner `CircuitOpen`, `BulkheadFull` or
//!   `NoRuntime` rejection is not an outcome (the call never reached the dependency): the trial
//!   slot is released and nothing is recorded. An inner `Timeout` is shown to the `failure` predicate
//!   converted to `E` (without a predicate it is a failure), as are the `when` and `on`
//!   predicates of retry and fallback.
//! - **Metrics of the `threshold` rules.** They keep only failures, so
//!   [`BreakerMetrics::calls`] equals `failures` for them and `failure_rate` is `None`.
//! - **A breaker declared with only `name`** joins the breaker of that name; if it is the first
//!   site of that name to run, the breaker is created with the defaults.
//! - **Two sites, one name, different configurations:** the first one to run wins, an `error`
//!   event is emitted and [`check`] reports both sites.
//! - **Under `#[retry]` or `#[fallback]`**, the body becomes a non-`move` block, so arguments
//!   survive for the next attempt or the handler. A body that only borrows an argument `x: T`
//!   then captures `&T`, and the call's future is `Send` when `T: Sync`.
//! - **`#[async_trait]` methods** are supported with `&self` and typed receivers; a `&mut self`
//!   method inside `#[async_trait]` cannot be retried (async-trait moves `self` into its own
//!   binding). Native async fn in traits has no such limit.
//! - **A body that blocks without yielding** cannot be pre-empted by `#[timeout]`: its result
//!   is returned and a `warn` event names the overrun (on a real clock a body finishing in the
//!   very poll in which the deadline passes warns too).
//! - **`max_duration`** counts from the start of the first attempt; an attempt may start only
//!   strictly before the limit, and none starts whose delay would end at or past it.
//! - **Outside a tokio runtime**, `#[timeout]` returns [`Error::NoRuntime`] without running the
//!   body. Inside a task the check reads the task id (a thread-local) rather than cloning the
//!   runtime's handle, which costs two contended atomic operations per call on a multi-thread
//!   runtime; the only way to have a task id without a runtime, a `LocalSet` driven outside
//!   one, is caught where the timer is created, so there the body's first wait returns
//!   `NoRuntime` (after the body has started) instead of tokio's panic. A retry with a non-zero backoff returns `NoRuntime` when the stack can carry a
//!   rejection and the last error otherwise (a `#[retry]`/`#[fallback]`-only stack's `E` need
//!   not convert from `resilient::Error`); a bulkhead needs no timer unless a caller queues with
//!   `max_wait`.
//! - **A runtime built without the time driver** (no `enable_time`/`enable_all`) counts as no
//!   runtime for every policy that needs a timer: `NoRuntime`, the same answers as above. Tokio
//!   panics when a timer is created there and offers no way to ask, so the first time a thread
//!   needs a timer in a runtime, one is created under `catch_unwind` and the answer is kept for
//!   that thread and runtime. This happens only where a call is about to wait, never on a fast
//!   path. The panic hook is not touched: in a runtime with time nothing panics; in one without,
//!   the hook sees tokio's panic once per thread and runtime (by default it prints tokio's
//!   message, which says to call `enable_time`) and the call returns `NoRuntime`. Under
//!   `panic = "abort"` the process aborts with that message instead, as it did without the
//!   check. A `#[timeout]` creates its timer once the body first waits, so there the body has
//!   started when it gets `NoRuntime`; a body that never waits needs no timer and runs through.
//! - **`args = (..)`** passes the listed arguments in the listed order.

#![doc(test(no_crate_inject, attr(deny(warnings), allow(dead_code))))]

/// Circuit breaker: stops calling a dependency that keeps failing, then lets trial calls
/// through after a cooldown. See the crate docs for the arguments and DESIGN.md section 4.1.
///
/// ```
/// # #[derive(Debug)] struct E; impl From<resilient::Error> for E { fn from(_: resilient::Error) -> Self { E } }
/// #[resilient::circuit_breaker(failure_rate = 0.5, last = 20, cooldown = "10s", name = "payments")]
/// async fn charge(cents: u64) -> Result<u64, E> { Ok(cents) }
/// ```
pub use resilient_macros::circuit_breaker;

/// Timeout: the inner future is dropped at the deadline and the call returns
/// [`Error::Timeout`].
///
/// ```
/// # #[derive(Debug)] struct E; impl From<resilient::Error> for E { fn from(_: resilient::Error) -> Self { E } }
/// #[resilient::timeout("200ms")]
/// async fn profile(id: u64) -> Result<u64, E> { Ok(id) }
/// ```
pub use resilient_macros::timeout;

/// Bulkhead: at most `pool` calls at once, `queue` more waiting in FIFO order, the rest
/// rejected with [`Error::BulkheadFull`].
///
/// ```
/// # #[derive(Debug)] struct E; impl From<resilient::Error> for E { fn from(_: resilient::Error) -> Self { E } }
/// #[resilient::bulkhead(pool = 10, queue = 5, max_wait = "50ms")]
/// async fn inventory(sku: u64) -> Result<bool, E> { Ok(sku > 0) }
/// ```
pub use resilient_macros::bulkhead;

/// Retry: runs the call again on error, with backoff and jitter. Owned arguments are cloned
/// per attempt; `&mut` arguments and receivers are reborrowed.
///
/// ```
/// # #[derive(Debug)] struct E;
/// fn is_transient(_: &E) -> bool { true }
/// #[resilient::retry(attempts = 3, backoff = "50ms", jitter = "equal", when = is_transient)]
/// async fn fetch(key: String) -> Result<String, E> { Ok(key) }
/// ```
pub use resilient_macros::retry;

/// Fallback: on error, returns `handler(<arguments>, err).await` instead.
///
/// ```
/// # #[derive(Debug)] struct E;
/// async fn guest(_id: u64, _err: E) -> Result<String, E> { Ok("guest".into()) }
/// #[resilient::fallback(guest)]
/// async fn profile(id: u64) -> Result<String, E> { Ok(id.to_string()) }
/// ```
pub use resilient_macros::fallback;

pub use resilient_runtime::{
    BreakerConfig, BreakerHandle, BreakerHealth, BreakerMetrics, Bulkhead, BulkheadConfig,
    BulkheadHandle, BulkheadPermit, CheckError, CircuitBreaker, CircuitState, Error,
    FromResilience, HealthReport, HealthStatus, Jitter, Outcome, PolicyInfo, PolicyKind,
    RetryConfig, Site, Strategy, Ticket, TripRule, breaker, bulkhead, check, config, health,
    parse_duration, policies,
};

/// Chaos injection (feature `chaos`): see [`chaos::inject`].
#[cfg(feature = "chaos")]
pub use resilient_runtime::chaos;

/// The metrics the `metrics` feature records.
pub use resilient_runtime::metrics;

#[doc(hidden)]
pub use resilient_runtime::__private;
