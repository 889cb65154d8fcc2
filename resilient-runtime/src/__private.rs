//! Support for `#[resilient::*]` expansions. **Not public API**: anything here may change in
//! any release. Expansions name nothing else, so users need not depend on tokio or tracing.
//!
//! The expansion is one flat block in the function's own future. Every layer but the timeout
//! is a guard: `*_enter` admits the call (synchronously, or for a queued bulkhead through a
//! future that is ready at once when a permit is free) and the guard's `exit` takes the inner
//! layers' `Result<T, Outcome<E>>` and records it. Dropping a guard (the caller cancelled, or
//! the body panicked) gives its slot back. Only [`timeout`] wraps the inner layers in a future
//! of their own, since it must be able to drop them. Nesting one `async fn` per layer, as this
//! crate first did, copied each inner future into its parent and cost about twice as much.
//! [`finish`] (a stack that can reject: `E::from` called directly) or [`Stack::finish`] (a
//! `#[retry]`/`#[fallback]`-only stack) converts to the user's `E` once, outermost.
//!
//! Two shortcuts keep the success path from copying its result through memory: a breaker
//! directly around a timeout records the call inside the timeout's poll ([`Timeout::guarded`]),
//! and when the outermost layers are `#[retry]`s and `#[fallback]`s, the innermost of them
//! returns a success from the function at once ([`Retry::succeeded`], [`fallback_succeeded`]).
#![allow(
    missing_docs,
    clippy::missing_errors_doc,
    missing_debug_implementations
)]

use std::ops::ControlFlow;
use std::time::Duration;

use tokio::time::Instant;

use crate::circuit_breaker::TicketGuard;
use crate::live::Live;
use crate::{Error, Outcome};

pub use crate::registry::{BreakerSite, BulkheadSite, Decl, Registration, Site};
pub use crate::{__resilient_register as register, __resilient_site as site};
pub use crate::{BreakerConfig, BulkheadConfig, Jitter, RetryConfig, Strategy, TripRule};
pub use core::ops::ControlFlow as Flow;
pub use core::option::Option::{None, Some};
pub use core::result::Result::{Err, Ok};
pub use core::time::Duration as Dur;
pub use inventory;

/// How a stack turns a rejection into the user's error type, if it can reject at all.
pub struct Stack<E> {
    conv: Option<fn(Error) -> E>,
}

impl<E> Clone for Stack<E> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<E> Copy for Stack<E> {}

/// For stacks with a policy that can reject: requires `E: From<resilient::Error>`. The
/// expansion spans this call at the function's return type, so that is where the error lands.
#[inline]
#[must_use]
pub fn stack<E: crate::FromResilience>() -> Stack<E> {
    Stack {
        conv: Some(E::from),
    }
}

/// [`Stack::finish`] for a stack that can reject: `E::from` is called directly, so it can be
/// inlined. Through `Stack`'s function pointer the 40-byte `Error` was first copied into the
/// call's argument, right after the rejecting layer wrote it (a stalled copy, `perf annotate`).
/// The stack is taken only so that the expansion's `__stack` is used in every stack (a lone
/// timeout or bulkhead uses it nowhere else); the conversion needs nothing from it.
#[inline]
pub fn finish<T, E: crate::FromResilience>(
    _stack: Stack<E>,
    out: Result<T, Outcome<E>>,
) -> Result<T, E> {
    match out {
        Ok(v) => Ok(v),
        Err(Outcome::Failed(e)) => Err(e),
        Err(Outcome::Rejected(r)) => Err(E::from(r)),
    }
}

/// For stacks of `#[retry]` and `#[fallback]` only, which never reject.
#[inline]
#[must_use]
pub fn plain_stack<E>() -> Stack<E> {
    Stack { conv: None }
}

impl<E> Stack<E> {
    /// The outermost step of a `#[retry]`/`#[fallback]`-only stack, back to the function's own
    /// `Result<T, E>` (a stack that can reject ends in [`finish`]).
    #[inline]
    pub fn finish<T>(self, out: Result<T, Outcome<E>>) -> Result<T, E> {
        match out {
            Ok(v) => Ok(v),
            Err(o) => Err(self.error(o)),
        }
    }

    fn error(self, o: Outcome<E>) -> E {
        match (o, self.conv) {
            (Outcome::Failed(e), _) => e,
            (Outcome::Rejected(r), Some(conv)) => conv(r),
            // A plain stack has no layer that rejects, so no `Rejected` reaches here.
            (Outcome::Rejected(r), None) => {
                unreachable!("resilient: rejection {r} in a stack without rejecting policies")
            }
        }
    }

    fn converted(self, o: &Outcome<E>) -> Option<E> {
        match o {
            Outcome::Failed(_) => None,
            Outcome::Rejected(r) => self.conv.map(|c| c(r.clone())),
        }
    }
}

/// A user predicate over `&E` (`failure`, `when`, `on`), or none.
pub trait Classify<E> {
    /// Does the predicate accept this error? Rejections are shown to it converted to `E`.
    fn accepts(&self, stack: Stack<E>, outcome: &Outcome<E>) -> bool;
}

/// No predicate: every error is accepted.
pub struct Every;

impl<E> Classify<E> for Every {
    #[inline]
    fn accepts(&self, _: Stack<E>, _: &Outcome<E>) -> bool {
        true
    }
}

/// A user predicate `fn(&E) -> bool`.
pub struct Pred<P>(pub P);

impl<E, P: Fn(&E) -> bool> Classify<E> for Pred<P> {
    fn accepts(&self, stack: Stack<E>, outcome: &Outcome<E>) -> bool {
        match outcome {
            Outcome::Failed(e) => (self.0)(e),
            Outcome::Rejected(_) => stack.converted(outcome).is_none_or(|e| (self.0)(&e)),
        }
    }
}

/// The innermost step: the body's `Result<T, E>` into the stack's currency. With the `chaos`
/// feature, faults injected into any of `policies` act here.
#[cfg(feature = "chaos")]
#[inline]
pub async fn body<T, E, F>(policies: &'static [Decl], fut: F) -> Result<T, Outcome<E>>
where
    F: Future<Output = Result<T, E>>,
{
    match crate::chaos::verdict(policies) {
        crate::chaos::Verdict::Run => {}
        // Without a runtime with time there is no timer: the latency fault is skipped rather
        // than panic.
        crate::chaos::Verdict::Delay(d) => {
            if !d.is_zero() && crate::timer::available() {
                tokio::time::sleep(d).await;
            }
        }
        crate::chaos::Verdict::Fail(name) => {
            return Err(Outcome::Rejected(Error::Injected { name }));
        }
        crate::chaos::Verdict::Hang => std::future::pending::<()>().await,
    }
    fut.await.map_err(Outcome::Failed)
}

/// The innermost step: the body's `Result<T, E>` into the stack's currency. Without the
/// `chaos` feature this is a plain mapping future (no state of its own).
#[cfg(not(feature = "chaos"))]
#[inline]
pub fn body<T, E, F>(policies: &'static [Decl], fut: F) -> Body<F>
where
    F: Future<Output = Result<T, E>>,
{
    let _ = policies;
    Body { fut }
}

#[cfg(not(feature = "chaos"))]
pin_project_lite::pin_project! {
    /// The future [`body`] returns.
    pub struct Body<F> {
        #[pin]
        fut: F,
    }
}

#[cfg(not(feature = "chaos"))]
impl<T, E, F> Future for Body<F>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<T, Outcome<E>>;

    #[inline]
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        self.project()
            .fut
            .poll(cx)
            .map(|r| r.map_err(Outcome::Failed))
    }
}

/// `#[circuit_breaker]`: admits the call, or rejects it with `CircuitOpen`.
///
/// The rejection is a plain [`Error`], not an `Outcome<E>`: the expansion matches on this
/// value around the inner layers' `.await`, and a temporary holding the user's `E` there would
/// make the whole future `!Send` whenever `E` is (say, `Box<dyn Error>`).
#[inline(always)]
#[allow(clippy::inline_always)] // measured: LLVM declines `#[inline]` here (callgrind)
pub fn breaker_enter(site: &'static BreakerSite) -> Result<BreakerCall, Error> {
    let breaker = site.get();
    let ticket = match breaker.admit() {
        Ok(ticket) => ticket,
        Err(rejected) => return Err(breaker.rejection(rejected)),
    };
    Ok(BreakerCall {
        guard: TicketGuard::new(breaker, ticket),
        timer: crate::metrics::Timer::start(),
    })
}

/// A call admitted by a breaker. Dropped without [`exit`](Self::exit) (cancelled, or the body
/// panicked), its ticket goes back through the breaker's ticket guard: released, or a failure
/// on panic.
pub struct BreakerCall {
    guard: TicketGuard<'static>,
    timer: crate::metrics::Timer,
}

impl BreakerCall {
    /// Records the inner layers' result. Inner `CircuitOpen`, `BulkheadFull` and `NoRuntime`
    /// rejections are not outcomes (the call never reached the dependency); every other error
    /// goes through `failure`.
    #[inline(always)]
    #[allow(clippy::inline_always)] // measured: LLVM declines `#[inline]` here (callgrind)
    pub fn exit<T, E, C: Classify<E>>(
        self,
        stack: Stack<E>,
        failure: C,
        out: Result<T, Outcome<E>>,
    ) -> Result<T, Outcome<E>> {
        self.exit_at(stack, failure, out, None)
    }

    #[inline(always)]
    #[allow(clippy::inline_always)] // measured: LLVM declines `#[inline]` here (callgrind)
    #[allow(clippy::needless_pass_by_value)] // the expansion passes the predicate by value
    fn exit_at<T, E, C: Classify<E>>(
        self,
        stack: Stack<E>,
        failure: C,
        out: Result<T, Outcome<E>>,
        completed: Option<Instant>,
    ) -> Result<T, Outcome<E>> {
        let BreakerCall { guard, timer } = self;
        let name = guard.breaker().name();
        // The predicate runs while the guard still owns the ticket: if it panics, the ticket
        // goes back as a failure. `None`: an inner rejection, not an outcome.
        let failed = match &out {
            Ok(_) => Some(false),
            Err(o) if o.never_reached_dependency() => None,
            Err(o) => Some(failure.accepts(stack, o)),
        };
        match failed {
            Some(failed) => guard.finish_at(failed, completed),
            None => guard.abandon(),
        }
        timer.stop(name);
        let label = if failed == Some(true) {
            "failure"
        } else {
            crate::metrics::outcome(&out)
        };
        crate::metrics::call(name, label);
        out
    }
}

/// The static an expansion declares for a `#[timeout]`.
#[derive(Debug)]
pub struct TimeoutSite {
    pub(crate) site: &'static Site,
    name: Option<&'static str>,
    pub(crate) limit: Live<Duration>,
}

impl TimeoutSite {
    pub(crate) fn explicit(&self) -> bool {
        self.name.is_some()
    }

    #[must_use]
    pub const fn new(site: &'static Site, name: Option<&'static str>, limit: Duration) -> Self {
        TimeoutSite {
            site,
            name,
            limit: Live::new(limit),
        }
    }

    /// `name`, or the function's key.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self.name {
            Some(n) => n,
            None => self.site.key,
        }
    }
}

/// `#[timeout]`: the inner future is dropped at the deadline.
///
/// The inner future is polled before the deadline is checked (tokio's order), so a body that
/// completes in the poll in which the deadline passes returns its result. A body that blocks
/// without yielding cannot be pre-empted: its result is returned and a `warn` event names the
/// overrun. A caller dropping this future is not a timeout and emits nothing.
///
/// The runtime check and the clock read (the deadline) happen here, before the first poll, so
/// outside a runtime the body never starts (see `in_runtime` for the one exception, a
/// `LocalSet` driven outside any runtime, where the body's first `Pending` returns the
/// `NoRuntime` error instead of creating a timer). The timer itself is created only when the body
/// first returns `Pending`: a body that completes in its first poll never pays for one
/// (tokio's `timeout` creates its timer up front). A plain future rather than an `async fn`:
/// the expansion awaits it at once, and a hand-written state machine adds no copy of `fut`.
#[inline]
pub fn timeout<T, E, F>(site: &'static TimeoutSite, fut: F) -> Timeout<F>
where
    F: Future<Output = Result<T, Outcome<E>>>,
{
    if !in_runtime() {
        return Timeout::NoRuntime { site };
    }
    let limit = *site.limit.get();
    let start = Instant::now();
    // A limit too large for the clock never expires.
    match start.checked_add(limit) {
        Some(deadline) => Timeout::Timed {
            site,
            start,
            deadline,
            fut,
            timer: None,
        },
        None => Timeout::Unlimited { fut },
    }
}

/// Whether this thread is inside a tokio runtime, for the timeout's check before the body
/// starts. Inside a task, where nearly every call runs, the task id answers from a
/// thread-local. Elsewhere (a runtime's `block_on` future) the runtime's handle is looked up,
/// which clones and drops its `Arc`: two atomic read-modify-writes on a line every worker
/// shares, about 12 ns on one thread and 40 on two workers (BENCHMARKS.md). A task id without
/// a runtime is possible only for a `LocalSet` driven outside one; the timer's creation checks
/// the handle itself, so that case gets `NoRuntime` too, after the body's first poll.
#[inline]
pub(crate) fn in_runtime() -> bool {
    tokio::task::try_id().is_some() || tokio::runtime::Handle::try_current().is_ok()
}

pin_project_lite::pin_project! {
    /// The future [`timeout`] returns.
    #[project = TimeoutProj]
    pub enum Timeout<F> {
        NoRuntime { site: &'static TimeoutSite },
        // Timed out, or found no timer after the body started: the body is gone, and a poll
        // after that is `Pending`. (`site` only because pin-project-lite needs a field.)
        Done { site: &'static TimeoutSite },
        Unlimited { #[pin] fut: F },
        Timed {
            site: &'static TimeoutSite,
            start: Instant,
            // `start` plus the limit in force when the call started (a live change applies to
            // later calls).
            deadline: Instant,
            #[pin] fut: F,
            // Created at the first `Pending` of `fut`. Polled outside tokio's cooperative
            // budget, as tokio's own `Timeout` does once the body has spent it: a body that
            // always exhausts the budget must still time out.
            #[pin] timer: Option<tokio::task::Unconstrained<tokio::time::Sleep>>,
        },
    }
}

impl<T, E, F> Timeout<F>
where
    F: Future<Output = Result<T, Outcome<E>>>,
{
    /// Polls the call. When it completes before its deadline, `completed` gets the time this
    /// read then. (Returned beside the result, as a tuple, the result was copied through
    /// memory where the success and timed-out paths join, with a stalled load: `perf
    /// annotate`.)
    #[inline]
    fn poll_at(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        completed: &mut Option<Instant>,
    ) -> std::task::Poll<Result<T, Outcome<E>>> {
        use std::task::Poll;
        let (site, error) = match self.as_mut().project() {
            TimeoutProj::NoRuntime { site } => (*site, Error::NoRuntime { name: site.name() }),
            // Polled again after timing out: there is nothing left to run.
            TimeoutProj::Done { .. } => return Poll::Pending,
            TimeoutProj::Unlimited { fut } => return fut.poll(cx),
            TimeoutProj::Timed {
                site,
                start,
                deadline,
                fut,
                mut timer,
            } => {
                // The body first, then the deadline (tokio's order).
                if let Poll::Ready(out) = fut.poll(cx) {
                    *completed = Some(finished(site, *start, *deadline, &out));
                    return Poll::Ready(out);
                }
                let site = *site;
                if timer.is_none() && !crate::timer::available() {
                    // `in_runtime` trusted a task id; creating the timer needs the runtime
                    // itself, with its time driver (`timer::available`).
                    (site, Error::NoRuntime { name: site.name() })
                } else {
                    if timer.is_none() {
                        timer.set(Some(tokio::task::unconstrained(tokio::time::sleep_until(
                            *deadline,
                        ))));
                    }
                    match timer.as_pin_mut().map(|t| t.poll(cx)) {
                        Some(Poll::Ready(())) => (site, timed_out(site, *start, *deadline)),
                        _ => return Poll::Pending,
                    }
                }
            }
        };
        // The body (and its permits, and the user's `Drop`s) goes now, before the caller acts
        // on the error: a breaker around records it next.
        self.set(Timeout::Done { site });
        Poll::Ready(Err(Outcome::Rejected(error)))
    }

    /// The same call under a breaker directly around this timeout: when it completes, the
    /// breaker records it with the time the timeout read at completion (one clock read fewer
    /// per call), inside this future's poll.
    #[inline]
    pub fn guarded<C: Classify<E>>(
        self,
        call: BreakerCall,
        stack: Stack<E>,
        failure: C,
    ) -> Guarded<F, C, E> {
        Guarded {
            timeout: self,
            exit: Some((call, failure)),
            stack,
        }
    }
}

impl<T, E, F> Future for Timeout<F>
where
    F: Future<Output = Result<T, Outcome<E>>>,
{
    type Output = Result<T, Outcome<E>>;

    #[inline]
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        self.poll_at(cx, &mut None)
    }
}

pin_project_lite::pin_project! {
    /// The future [`Timeout::guarded`] returns.
    pub struct Guarded<F, C, E> {
        #[pin]
        timeout: Timeout<F>,
        // Taken when the call completes. Dropped before that (cancelled, or the body
        // panicked), the breaker call's own guard gives the ticket back.
        exit: Option<(BreakerCall, C)>,
        stack: Stack<E>,
    }
}

impl<T, E, F, C> Future for Guarded<F, C, E>
where
    F: Future<Output = Result<T, Outcome<E>>>,
    C: Classify<E>,
{
    type Output = Result<T, Outcome<E>>;

    #[inline]
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.project();
        let mut completed = None;
        let std::task::Poll::Ready(out) = this.timeout.poll_at(cx, &mut completed) else {
            return std::task::Poll::Pending;
        };
        std::task::Poll::Ready(match this.exit.take() {
            Some((call, failure)) => call.exit_at(*this.stack, failure, out, completed),
            // Only a poll after completion gets here, and only after a timeout (a completed
            // body panics when polled again, as any `async` block does); the timeout is `Done`
            // and never answers, so this is unreachable in practice.
            None => out,
        })
    }
}

/// A timed call completed before its deadline: the time it completed, with an overrun
/// warning when the body ran past the deadline without yielding. Inlined into the poll: the
/// completed call's path is one clock read and a comparison; the rest is out of line.
#[inline(always)]
#[allow(clippy::inline_always)] // measured: LLVM declines `#[inline]` here (callgrind)
fn finished<T, E>(
    site: &'static TimeoutSite,
    start: Instant,
    deadline: Instant,
    out: &Result<T, Outcome<E>>,
) -> Instant {
    let now = Instant::now();
    // The limit and the time taken are derived only when reported: an `Instant`
    // subtraction is ~55 instructions of std code, which a completed call does not need.
    if now > deadline {
        overran(site, start, deadline, now);
    }
    #[cfg(feature = "metrics")]
    {
        metrics::histogram!("resilient_call_duration_seconds", "name" => site.name())
            .record(now.saturating_duration_since(start).as_secs_f64());
        crate::metrics::call(site.name(), crate::metrics::outcome(out));
    }
    #[cfg(not(feature = "metrics"))]
    let _ = out;
    now
}

/// The deadline passed first: the event, the metrics and the error.
#[cold]
fn timed_out(site: &'static TimeoutSite, start: Instant, deadline: Instant) -> Error {
    let limit = deadline.saturating_duration_since(start);
    #[cfg(feature = "metrics")]
    {
        metrics::histogram!("resilient_call_duration_seconds", "name" => site.name())
            .record(limit.as_secs_f64());
        crate::metrics::call(site.name(), "timeout");
    }
    crate::events::timed_out(site.name(), limit);
    Error::Timeout {
        name: site.name(),
        after: limit,
    }
}

#[cold]
fn overran(site: &'static TimeoutSite, start: Instant, deadline: Instant, now: Instant) {
    let limit = deadline.saturating_duration_since(start);
    let took = now.saturating_duration_since(start);
    tracing::warn!(
        target: "resilient",
        name = site.name(),
        limit = ?limit,
        took = ?took,
        "call overran its timeout without yielding; its result is returned"
    );
}

/// `#[bulkhead]`: a permit at once when one is free, else a place in the queue (or
/// `BulkheadFull`). The future is ready on its first poll when a permit is free. Its
/// rejection is a plain [`Error`] for the reason given at [`breaker_enter`].
#[inline(always)]
#[allow(clippy::inline_always)] // measured: LLVM declines `#[inline]` here (perf annotate)
pub fn bulkhead_enter(site: &'static BulkheadSite) -> BulkheadEnter {
    BulkheadEnter {
        enter: site.get().enter(),
    }
}

/// The future [`bulkhead_enter`] returns.
pub struct BulkheadEnter {
    enter: crate::bulkhead::Enter<'static>,
}

impl Future for BulkheadEnter {
    /// A refusal is the bulkhead's own prebuilt error, by reference: see
    /// [`crate::bulkhead::Enter`]. [`rejected`] copies it out.
    type Output = Result<BulkheadCall, &'static Error>;

    #[inline]
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.enter).poll(cx).map(|permit| {
            let permit = permit?;
            crate::metrics::bulkhead_levels(permit.bulkhead());
            Ok(BulkheadCall {
                permit,
                timer: crate::metrics::Timer::start(),
            })
        })
    }
}

/// A call holding a bulkhead permit; dropping it (cancellation, panic) returns the permit.
pub struct BulkheadCall {
    permit: crate::bulkhead::BulkheadPermit<'static>,
    timer: crate::metrics::Timer,
}

impl BulkheadCall {
    /// Returns the permit and counts the inner layers' result.
    #[inline]
    pub fn exit<T, E>(self, out: Result<T, Outcome<E>>) -> Result<T, Outcome<E>> {
        let BulkheadCall { permit, timer } = self;
        let bulkhead = permit.bulkhead();
        drop(permit);
        timer.stop(bulkhead.name());
        crate::metrics::bulkhead_levels(bulkhead);
        crate::metrics::call(bulkhead.name(), crate::metrics::outcome(&out));
        out
    }
}

/// The static an expansion declares for a `#[retry]`.
#[derive(Debug)]
pub struct RetrySite {
    pub(crate) site: &'static Site,
    name: Option<&'static str>,
    pub(crate) config: Live<RetryConfig>,
}

impl RetrySite {
    pub(crate) fn explicit(&self) -> bool {
        self.name.is_some()
    }

    #[must_use]
    pub const fn new(site: &'static Site, name: Option<&'static str>, config: RetryConfig) -> Self {
        RetrySite {
            site,
            name,
            config: Live::new(config),
        }
    }

    /// `name`, or the function's key.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self.name {
            Some(n) => n,
            None => self.site.key,
        }
    }
}

/// One call's retry state. The attempt loop itself is in the expansion, so each attempt can
/// rebind (clone, reborrow) the function's arguments.
///
/// `max_duration` is measured from the start of the first attempt: an attempt may start only
/// strictly before that much time has passed, so a retry whose delay would end at or past it
/// is not waited for (the last error is returned at once), and the limit is checked again
/// after the sleep, since timers round up to the millisecond.
///
/// Outside a tokio runtime a non-zero backoff cannot be slept: a stack that can carry a
/// rejection returns `Error::NoRuntime` naming the retry; a stack of `#[retry]` and
/// `#[fallback]` alone (whose `E` need not convert from `resilient::Error`) returns the last
/// error unchanged. Neither panics.
///
/// Each attempt's result goes to [`next`](Retry::next), which decides synchronously: return
/// it, or keep the error and the backoff for [`pause`](Retry::pause), which sleeps. The
/// common case, a success, never builds a future.
pub struct Retry<T, E> {
    site: &'static RetrySite,
    stack: Stack<E>,
    attempt: u32,
    started: Option<Instant>,
    previous: Option<Duration>,
    /// Between `next` deciding to retry and `pause`: the error to return if the pause ends the
    /// retry (out of time), and the delay.
    pending: Option<(Outcome<E>, Duration)>,
    _result: std::marker::PhantomData<fn() -> T>,
}

impl<T, E> Retry<T, E> {
    #[inline]
    #[must_use]
    pub fn new(site: &'static RetrySite, stack: Stack<E>) -> Self {
        Retry {
            site,
            stack,
            attempt: 1,
            started: site.config.get().max_duration.map(|_| Instant::now()),
            previous: None,
            pending: None,
            _result: std::marker::PhantomData,
        }
    }

    /// Has `max_duration` run out by `extra` from now?
    fn out_of_time(&self, extra: Duration) -> bool {
        match (self.site.config.get().max_duration, self.started) {
            (Some(limit), Some(started)) => started.elapsed().saturating_add(extra) >= limit,
            _ => false,
        }
    }

    /// An attempt succeeded and the expansion returns its value from the function at once
    /// (the retry is among the outermost layers): records what [`next`](Self::next) would.
    #[inline]
    pub fn succeeded<V>(&self, value: V) -> V {
        crate::metrics::call(self.site.name(), "success");
        value
    }

    /// Decides after an attempt: `Break` with the result to return, or `Continue` when another
    /// attempt follows [`pause`](Self::pause).
    #[inline]
    pub fn next<C: Classify<E>>(
        &mut self,
        out: Result<T, Outcome<E>>,
        when: C,
    ) -> ControlFlow<Result<T, Outcome<E>>> {
        let flow = match out {
            Ok(v) => ControlFlow::Break(Ok(v)),
            Err(err) => self.decide(err, when),
        };
        if let ControlFlow::Break(result) = &flow {
            crate::metrics::call(
                self.site.name(),
                if result.is_ok() { "success" } else { "failure" },
            );
        }
        flow
    }

    #[allow(clippy::needless_pass_by_value)] // the expansion passes the predicate by value
    fn decide<C: Classify<E>>(
        &mut self,
        err: Outcome<E>,
        when: C,
    ) -> ControlFlow<Result<T, Outcome<E>>> {
        let config = self.site.config.get();
        if self.attempt >= config.attempts {
            return ControlFlow::Break(Err(err));
        }
        if err.never_reached_dependency() || !when.accepts(self.stack, &err) {
            return ControlFlow::Break(Err(err));
        }
        let delay = config.delay(self.attempt, self.previous, crate::retry::random_unit());
        if self.out_of_time(delay) {
            return ControlFlow::Break(Err(err));
        }
        if !delay.is_zero() && !crate::timer::available() {
            let name = self.site.name();
            return ControlFlow::Break(Err(match self.stack.conv {
                Some(_) => Outcome::Rejected(Error::NoRuntime { name }),
                None => err,
            }));
        }
        self.pending = Some((err, delay));
        ControlFlow::Continue(())
    }

    /// Sleeps the backoff that [`next`](Self::next) chose: `Continue` to run the next attempt,
    /// or `Break` with the last error when `max_duration` ran out during the sleep. Dropping
    /// this future during the sleep stops the retry.
    pub async fn pause(&mut self) -> ControlFlow<Result<T, Outcome<E>>> {
        let Some((err, delay)) = self.pending.take() else {
            return ControlFlow::Continue(()); // `next` did not ask for a pause: nothing to wait
        };
        crate::events::retrying(self.site.name(), self.attempt + 1, delay);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
            // The timer may wake up to a millisecond late.
            if self.out_of_time(Duration::ZERO) {
                crate::metrics::call(self.site.name(), "failure");
                return ControlFlow::Break(Err(err));
            }
        }
        self.previous = Some(delay);
        self.attempt += 1;
        ControlFlow::Continue(())
    }
}

/// The static an expansion declares for a `#[fallback]`.
#[derive(Debug)]
pub struct FallbackSite {
    pub(crate) site: &'static Site,
    name: Option<&'static str>,
    /// The handler's path as written, for the strategy listing.
    pub(crate) handler: &'static str,
}

impl FallbackSite {
    pub(crate) fn explicit(&self) -> bool {
        self.name.is_some()
    }

    #[must_use]
    pub const fn new(
        site: &'static Site,
        name: Option<&'static str>,
        handler: &'static str,
    ) -> Self {
        FallbackSite {
            site,
            name,
            handler,
        }
    }

    /// `name`, or the function's key.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self.name {
            Some(n) => n,
            None => self.site.key,
        }
    }
}

/// `#[fallback]` among the outermost layers, when the expansion returns a success from the
/// function at once: records what [`fallback`] would.
#[inline]
pub fn fallback_succeeded<V>(site: &'static FallbackSite, value: V) -> V {
    crate::metrics::call(site.name(), "success");
    value
}

/// `#[fallback]`: `Continue(err)` when the handler should run with `err`, else `Break` with
/// the result to return.
#[inline]
#[allow(clippy::needless_pass_by_value)] // the expansion passes the predicate by value
pub fn fallback<T, E, C: Classify<E>>(
    site: &'static FallbackSite,
    stack: Stack<E>,
    on: C,
    out: Result<T, Outcome<E>>,
) -> ControlFlow<Result<T, Outcome<E>>, E> {
    match out {
        Ok(v) => {
            crate::metrics::call(site.name(), "success");
            ControlFlow::Break(Ok(v))
        }
        Err(o) if on.accepts(stack, &o) => match o {
            Outcome::Failed(e) => {
                crate::events::fallback(site.name());
                ControlFlow::Continue(e)
            }
            Outcome::Rejected(r) => {
                if let Some(conv) = stack.conv {
                    crate::events::fallback(site.name());
                    ControlFlow::Continue(conv(r))
                } else {
                    crate::metrics::call(site.name(), "failure");
                    ControlFlow::Break(Err(Outcome::Rejected(r)))
                }
            }
        },
        Err(o) => {
            crate::metrics::call(site.name(), "failure");
            ControlFlow::Break(Err(o))
        }
    }
}

/// A layer's rejection in the stack's currency: a breaker's [`Error`], or a bulkhead's
/// prebuilt one by reference.
#[inline]
pub fn rejected<T, E>(error: impl Rejection) -> Result<T, Outcome<E>> {
    Err(Outcome::Rejected(error.into_error()))
}

/// What [`rejected`] accepts: an [`Error`], or a reference to a prebuilt one.
pub trait Rejection {
    /// The error, owned.
    fn into_error(self) -> Error;
}

impl Rejection for Error {
    #[inline]
    fn into_error(self) -> Error {
        self
    }
}

impl Rejection for &Error {
    #[inline]
    fn into_error(self) -> Error {
        self.clone()
    }
}

/// The handler's `Result<T, E>` back into the stack's currency.
#[inline]
pub fn lift<T, E>(out: Result<T, E>) -> Result<T, Outcome<E>> {
    out.map_err(Outcome::Failed)
}

/// The bound behind `#[retry]`'s per-attempt copies and `#[fallback]`'s argument copies, so a
/// missing `Clone` says why it is needed. The expansion spans the call at the parameter.
#[diagnostic::on_unimplemented(
    message = "`#[retry]` and `#[fallback]` need their own copy of this argument, so `{Self}` must be `Clone`",
    label = "each attempt (or the fallback handler) gets a clone of this argument",
    note = "derive or implement `Clone` for `{Self}`, take the argument by reference, or leave it out with `#[fallback(handler, args = (..))]`"
)]
pub trait CloneArg: Clone {}

impl<T: Clone> CloneArg for T {}

#[inline]
#[must_use]
pub fn clone_arg<T: CloneArg>(x: &T) -> T {
    x.clone()
}

/// `static __RESILIENT_SITE: Site = site!("fn_name");`: the function's key, file and line (of
/// the attribute).
#[doc(hidden)]
#[macro_export]
macro_rules! __resilient_site {
    ($name:literal) => {
        $crate::__private::Site::new(
            ::core::concat!(::core::module_path!(), "::", $name),
            ::core::file!(),
            ::core::line!(),
        )
    };
}

/// Submits a function's policies for `resilient::policies()`, at link time.
#[doc(hidden)]
#[macro_export]
macro_rules! __resilient_register {
    ($site:ident, $policies:ident) => {
        $crate::__private::inventory::submit!($crate::__private::Registration {
            site: &$site,
            policies: &$policies,
        });
    };
}
