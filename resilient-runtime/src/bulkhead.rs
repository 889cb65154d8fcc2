//! The bulkhead: at most `pool` calls at once, up to `queue` more waiting in FIFO order.
//!
//! It is a small fair semaphore of its own rather than tokio's, so that the loom model tests
//! (`tests/loom.rs`, built with `--cfg loom`) can explore every interleaving of acquire, release,
//! waiter drop and reconfiguration: its atomics and its mutex come from the `sync` shim.
//!
//! # How permits move
//!
//! - One atomic word packs `held`, the permits given out (running calls, plus waiters that were
//!   handed a permit but have not been polled since), and `queued`, the queue's length. The
//!   common case, a free permit and nobody waiting, takes no lock: arrival is one
//!   compare-and-swap of the word, release one subtraction.
//! - The queue itself lives behind the mutex; `queued` changes only under it. A caller takes a
//!   free permit at once only when nobody is queued (no barging past waiters).
//! - A release whose subtraction shows someone queued takes the lock and hands a permit to the
//!   waiter at the front, which is removed from the queue in the same critical section: the
//!   queue holds only callers still waiting.
//! - No wake-up is lost because joining the queue is a compare-and-swap of the same word: a
//!   release either comes first (the newcomer then finds the free permit and takes it) or
//!   comes after and sees the newcomer queued (and hands it a permit under the lock).
//! - A waiter whose id is no longer in the queue was handed a permit. If it is dropped before
//!   it sees the permit, its drop releases that permit (to the next waiter): never lost.
//! - The queue's ids increase from front to back, so a waiter finds itself by binary search.
//!
//! Invariant: whenever the queue is not empty and no release is in progress, `held >= pool`.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::Error;
use crate::sync::{AtomicU64, AtomicUsize, Mutex, Ordering::AcqRel, Ordering::Acquire};

const HELD: u64 = u32::MAX as u64;
const ONE_QUEUED: u64 = 1 << 32;

/// `held` of a word.
fn held(word: u64) -> usize {
    (word & HELD) as usize
}

/// `queued` of a word.
fn queued(word: u64) -> usize {
    (word >> 32) as usize
}

/// The largest `pool` and `queue` accepted: each is a 32-bit half of the bulkhead's word.
const MAX_POOL: usize = u32::MAX as usize;

/// Everything a [`Bulkhead`] is configured with. See DESIGN.md section 4.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkheadConfig {
    /// Executions at once.
    pub pool: usize,
    /// Callers that may wait for a permit, first in first out. Default 0.
    pub queue: usize,
    /// How long a queued caller waits before giving up. `None`: as long as it takes.
    pub max_wait: Option<Duration>,
}

impl BulkheadConfig {
    /// Checks the configuration, naming the offending key.
    ///
    /// # Errors
    /// A message of the form ``"`key`: what is wrong"``.
    pub fn validate(&self) -> Result<(), String> {
        if self.pool == 0 {
            return Err("`pool` must be at least 1".into());
        }
        if self.pool > MAX_POOL {
            return Err(format!("`pool` may not exceed {MAX_POOL}"));
        }
        if self.queue > MAX_POOL {
            return Err(format!("`queue` may not exceed {MAX_POOL}"));
        }
        if self.max_wait.is_some() && self.queue == 0 {
            return Err(
                "`max_wait` needs `queue` of at least 1: without a queue nobody waits".into(),
            );
        }
        if self.max_wait.is_some_and(|d| d.is_zero()) {
            return Err("`max_wait` must be longer than zero".into());
        }
        Ok(())
    }
}

/// A bulkhead. The permit of an admitted call is an RAII guard: released on success, error,
/// panic and drop, exactly once. A queued caller that is dropped leaves the queue at once.
///
/// The configuration can be changed while calls run, with [`Bulkhead::reconfigure`].
pub struct Bulkhead {
    name: &'static str,
    /// The errors a refused caller gets, built once: the admission path hands out references
    /// (see [`Enter`]).
    full: Error,
    no_runtime: Error,
    /// `queued << 32 | held`: callers waiting, and permits given out (running calls and
    /// waiters handed a permit they have not seen yet).
    word: AtomicU64,
    /// `config.pool`, written under the lock by `reconfigure`.
    pool: AtomicUsize,
    state: Mutex<State>,
}

/// Everything behind the bulkhead's lock.
struct State {
    config: BulkheadConfig,
    /// Callers waiting, oldest first; ids strictly increase from front to back.
    waiters: VecDeque<Waiter>,
    /// The id of the next caller to queue.
    next_id: u64,
}

struct Waiter {
    id: u64,
    /// `None` until the waiting future is polled.
    waker: Option<Waker>,
}

impl State {
    fn position(&self, id: u64) -> Result<usize, usize> {
        self.waiters.binary_search_by_key(&id, |w| w.id)
    }
}

impl fmt::Debug for Bulkhead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config = self.config();
        let word = self.word.load(Acquire);
        let (held, queued) = (held(word), queued(word));
        f.debug_struct("Bulkhead")
            .field("name", &self.name)
            .field("config", &config)
            .field("in_flight", &held)
            .field("queued", &queued)
            .field("available", &config.pool.saturating_sub(held))
            .finish_non_exhaustive()
    }
}

/// Proof of admission into a [`Bulkhead`]; dropping it frees the place (exactly once).
pub struct BulkheadPermit<'a> {
    bulkhead: &'a Bulkhead,
}

impl fmt::Debug for BulkheadPermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkheadPermit")
            .field("bulkhead", &self.bulkhead.name)
            .finish()
    }
}

impl<'a> BulkheadPermit<'a> {
    /// The bulkhead this permit belongs to.
    #[must_use]
    pub fn bulkhead(&self) -> &'a Bulkhead {
        self.bulkhead
    }
}

impl Drop for BulkheadPermit<'_> {
    fn drop(&mut self) {
        self.bulkhead.release();
    }
}

/// [`Bulkhead::acquire`]'s work as a plain future: the arrival happens when it is created, so
/// a free permit (or a full bulkhead) is a ready value, and only a queued caller has a future
/// to wait on (boxed twice, so that the pointer is thin: queueing is the slow path).
///
/// Every variant is one pointer and its output is a permit or a reference to the bulkhead's
/// own prebuilt error, so this future and its output are each a tag and a pointer, moved in
/// registers. With the 40-byte [`Error`] in them they were copied as blocks right after being
/// built, stalls that cost the admitted call about a third of its time (`perf annotate`).
pub(crate) enum Enter<'a> {
    Admitted(BulkheadPermit<'a>),
    Refused(&'a Error),
    Queued(Box<Queued<'a>>),
    /// Polled to completion, whichever way it arrived (polled again, only a misuse gets
    /// here): `Pending`, never a second permit.
    Done,
}

type Queued<'a> = Pin<Box<dyn Future<Output = Result<BulkheadPermit<'a>, &'a Error>> + Send + 'a>>;

impl<'a> Future for Enter<'a> {
    type Output = Result<BulkheadPermit<'a>, &'a Error>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Whatever completes leaves `Done` behind. The wait is polled in place: taking it out
        // and back on every `Pending` cost the admitted path 14 instructions (callgrind).
        if let Enter::Queued(wait) = &mut *self {
            let out = std::task::ready!(wait.as_mut().as_mut().poll(cx));
            *self = Enter::Done;
            return Poll::Ready(out);
        }
        match std::mem::replace(&mut *self, Enter::Done) {
            Enter::Admitted(permit) => Poll::Ready(Ok(permit)),
            Enter::Refused(error) => Poll::Ready(Err(error)),
            Enter::Queued(_) | Enter::Done => Poll::Pending,
        }
    }
}

/// What a caller found on arrival.
enum Arrival<'a> {
    /// A free permit, taken.
    Admitted,
    /// Queued, with the guard that leaves the queue (or passes a granted permit on) when
    /// dropped, and the `max_wait` in force when it arrived. The guard exists from the moment
    /// the caller joins the queue, so no way of giving up (a future dropped before its first
    /// poll, a panic in an event subscriber) can leave a waiter behind.
    Queued(Waiting<'a>, Option<Duration>),
}

impl Bulkhead {
    /// A bulkhead with all permits free.
    ///
    /// # Errors
    /// When [`BulkheadConfig::validate`] rejects the configuration.
    pub fn new(name: &'static str, config: BulkheadConfig) -> Result<Self, String> {
        config.validate()?;
        Ok(Bulkhead {
            name,
            full: Error::BulkheadFull { name },
            no_runtime: Error::NoRuntime { name },
            word: AtomicU64::new(0),
            pool: AtomicUsize::new(config.pool),
            state: Mutex::new(State {
                config,
                waiters: VecDeque::new(),
                next_id: 0,
            }),
        })
    }

    /// Runs `f` under the lock. Nothing in `f` calls user code or wakes a task, so no panic
    /// can leave the state half-updated; a poisoned lock is used as it is.
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut state)
    }

    /// The bulkhead's name.
    #[must_use]
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The bulkhead's configuration now (a copy: [`reconfigure`](Self::reconfigure) may
    /// change it at any time).
    #[must_use]
    pub fn config(&self) -> BulkheadConfig {
        self.with(|s| s.config)
    }

    /// Calls running now (permits given out). After a reconfiguration to a smaller pool this
    /// may exceed `pool` until the extra calls finish.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        held(self.word.load(Acquire))
    }

    /// Callers waiting for a permit now.
    #[must_use]
    pub fn queued(&self) -> usize {
        queued(self.word.load(Acquire))
    }

    /// Free permits now.
    #[must_use]
    pub fn available(&self) -> usize {
        self.pool
            .load(Acquire)
            .saturating_sub(held(self.word.load(Acquire)))
    }

    /// Changes the configuration of a live bulkhead.
    ///
    /// - A larger `pool` hands the new permits to queued callers at once.
    /// - A smaller `pool` admits no one until the calls in flight drop below it; calls in
    ///   flight keep their permits.
    /// - `queue` and `max_wait` apply to callers arriving after the change; callers already
    ///   queued keep their place (even beyond a smaller `queue`) and their deadline.
    ///
    /// # Errors
    /// When [`BulkheadConfig::validate`] rejects `config`; nothing changes then.
    pub fn reconfigure(&self, config: BulkheadConfig) -> Result<(), String> {
        config.validate()?;
        let wake = self.with(|s| {
            s.config = config;
            self.pool.store(config.pool, crate::sync::Ordering::Release);
            let mut wake = Vec::new();
            while let Some(waiter) = self.grant(s) {
                wake.extend(waiter.waker);
            }
            wake
        });
        wake.into_iter().for_each(Waker::wake);
        Ok(())
    }

    /// Changes the word by `f` (which returns `None` to leave it), by compare-and-swap;
    /// returns whether it changed.
    #[inline]
    fn update(&self, mut f: impl FnMut(u64, usize) -> Option<u64>) -> bool {
        let pool = self.pool.load(Acquire);
        let mut word = self.word.load(Acquire);
        while let Some(next) = f(word, pool) {
            match self.word.compare_exchange_weak(word, next, AcqRel, Acquire) {
                Ok(_) => return true,
                Err(w) => word = w,
            }
        }
        false
    }

    /// Under the lock: hands a free permit to the first waiter, if there are both, and
    /// returns that waiter (a waiter not polled yet has no waker: it finds its permit at its
    /// first poll). The permit and the waiter's place change in one step.
    fn grant(&self, state: &mut State) -> Option<Waiter> {
        let handed =
            self.update(|w, pool| (queued(w) > 0 && held(w) < pool).then(|| w - ONE_QUEUED + 1));
        if handed {
            state.waiters.pop_front()
        } else {
            None
        }
    }

    /// Gives a permit back; if someone is queued, hands a permit to the first waiter.
    #[inline]
    fn release(&self) {
        if queued(self.word.fetch_sub(1, AcqRel)) != 0 {
            self.release_slow();
        }
    }

    /// Takes a free permit if nobody is queued.
    #[inline]
    fn take_free(&self) -> bool {
        self.update(|w, pool| (queued(w) == 0 && held(w) < pool).then(|| w + 1))
    }

    #[cold]
    fn release_slow(&self) {
        if let Some(waker) = self.with(|s| self.grant(s).and_then(|w| w.waker)) {
            waker.wake();
        }
    }

    /// Takes a free permit, or a place in the queue, or fails at once.
    #[inline]
    fn arrive(&self) -> Result<Arrival<'_>, &Error> {
        // Nobody queued and a permit free: one compare-and-swap, no lock.
        if self.take_free() {
            return Ok(Arrival::Admitted);
        }
        self.arrive_slow()
    }

    fn arrive_slow(&self) -> Result<Arrival<'_>, &Error> {
        let name = self.name;
        // `None`: admitted; `Some`: queued, with its guard, `max_wait` and the queue's length.
        let arrival = self.with(|state| {
            let config = state.config;
            // Only a queued caller with `max_wait` needs a timer, hence a runtime with time.
            let no_runtime = config.max_wait.is_some() && !crate::timer::available();
            // One step decides: take the permit a release freed since the lock-free try, or
            // join the queue, or neither (full, or no runtime to wait with).
            let (mut admitted, mut full) = (false, false);
            let joined = self.update(|w, pool| {
                admitted = queued(w) == 0 && held(w) < pool;
                full = queued(w) >= config.queue;
                if admitted {
                    Some(w + 1)
                } else if full || no_runtime {
                    None
                } else {
                    Some(w + ONE_QUEUED)
                }
            });
            if admitted {
                return Ok(None);
            }
            if !joined {
                return Err(if full { &self.full } else { &self.no_runtime });
            }
            let id = state.next_id;
            state.next_id += 1;
            state.waiters.push_back(Waiter { id, waker: None });
            let waiting = Waiting {
                bulkhead: self,
                id,
                done: false,
            };
            Ok(Some((waiting, config.max_wait, state.waiters.len())))
        });
        match arrival {
            Ok(None) => Ok(Arrival::Admitted),
            Ok(Some((waiting, max_wait, depth))) => {
                crate::events::bulkhead_queued(name, depth);
                Ok(Arrival::Queued(waiting, max_wait))
            }
            Err(e) => {
                if matches!(e, Error::BulkheadFull { .. }) {
                    crate::events::bulkhead_rejected(name);
                }
                Err(e)
            }
        }
    }

    /// Takes a permit, waiting in the queue if there is room.
    ///
    /// # Errors
    /// [`Error::BulkheadFull`] when the pool and the queue are full, or after `max_wait`;
    /// [`Error::NoRuntime`] when the caller would queue with a `max_wait` outside a tokio
    /// runtime (the timer needs one).
    #[inline]
    pub async fn acquire(&self) -> Result<BulkheadPermit<'_>, Error> {
        self.enter().await.map_err(Error::clone)
    }

    /// Arrives now: see [`Enter`].
    #[inline]
    pub(crate) fn enter(&self) -> Enter<'_> {
        match self.arrive() {
            Ok(Arrival::Admitted) => Enter::Admitted(BulkheadPermit { bulkhead: self }),
            Ok(Arrival::Queued(waiting, max_wait)) => {
                Enter::Queued(Box::new(Box::pin(self.wait(waiting, max_wait))))
            }
            Err(e) => Enter::Refused(e),
        }
    }

    /// Waits in the queue. `waiting` is moved into this future when it is created, so dropping
    /// the future, polled or not, drops the guard.
    async fn wait<'a>(
        &'a self,
        mut waiting: Waiting<'a>,
        max_wait: Option<Duration>,
    ) -> Result<BulkheadPermit<'a>, &'a Error> {
        match max_wait {
            None => Ok((&mut waiting).await),
            // The inner future is polled before the timer, so a permit handed over by the
            // deadline is taken; one handed over just after goes back through `Waiting`'s drop.
            Some(limit) => {
                if let Ok(permit) = tokio::time::timeout(limit, &mut waiting).await {
                    return Ok(permit);
                }
                drop(waiting);
                crate::events::bulkhead_rejected(self.name);
                Err(&self.full)
            }
        }
    }

    /// Runs `fut` while holding a permit, for code that does not use the attributes.
    ///
    /// # Errors
    /// `fut`'s own error, or `E::from(Error::BulkheadFull { .. })`.
    pub async fn call<T, E, F>(&self, fut: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
        E: From<Error>,
    {
        let _permit = self.acquire().await?;
        fut.await
    }
}

/// A queued caller. Ready once it was handed a permit; dropped while queued, it leaves the
/// queue; dropped after being handed a permit it has not taken, it gives the permit back.
struct Waiting<'a> {
    bulkhead: &'a Bulkhead,
    id: u64,
    /// The permit was taken (by a `Ready`): the drop has nothing to do.
    done: bool,
}

impl<'a> Future for Waiting<'a> {
    type Output = BulkheadPermit<'a>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.done {
            // Polled again after `Ready`: only a misuse gets here; never hand out a second
            // permit.
            return Poll::Pending;
        }
        let id = self.id;
        let granted = self.bulkhead.with(|state| match state.position(id) {
            Ok(at) => {
                match &mut state.waiters[at].waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    slot => *slot = Some(cx.waker().clone()),
                }
                false
            }
            Err(_) => true,
        });
        if !granted {
            return Poll::Pending;
        }
        self.done = true;
        Poll::Ready(BulkheadPermit {
            bulkhead: self.bulkhead,
        })
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let id = self.id;
        let bulkhead = self.bulkhead;
        let waker = bulkhead.with(|state| {
            if let Ok(at) = state.position(id) {
                state.waiters.remove(at);
                bulkhead.word.fetch_sub(ONE_QUEUED, AcqRel);
                None
            } else {
                // Handed a permit it never took: pass it on.
                bulkhead.word.fetch_sub(1, AcqRel);
                bulkhead.grant(state).and_then(|w| w.waker)
            }
        });
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{Bulkhead, BulkheadConfig, Enter};
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    /// An arrival polled again after it completed, admitted at once or after queueing, is
    /// `Pending` and hands out no second permit.
    #[test]
    fn a_completed_arrival_polled_again_gives_nothing() {
        let bulkhead = Bulkhead::new(
            "enter.repoll",
            BulkheadConfig {
                pool: 1,
                queue: 1,
                max_wait: None,
            },
        )
        .expect("valid");
        let mut cx = Context::from_waker(Waker::noop());
        let mut first = pin!(bulkhead.enter());
        let Poll::Ready(Ok(permit)) = first.as_mut().poll(&mut cx) else {
            panic!("a free permit");
        };
        assert!(first.as_mut().poll(&mut cx).is_pending());
        let mut queued = pin!(bulkhead.enter());
        assert!(matches!(*queued, Enter::Queued(_)));
        assert!(queued.as_mut().poll(&mut cx).is_pending());
        drop(permit);
        let Poll::Ready(Ok(permit)) = queued.as_mut().poll(&mut cx) else {
            panic!("the freed permit, handed to the queued caller");
        };
        assert!(queued.as_mut().poll(&mut cx).is_pending());
        assert_eq!((bulkhead.queued(), bulkhead.in_flight()), (0, 1));
        drop(permit);
        assert_eq!((bulkhead.queued(), bulkhead.in_flight()), (0, 0));
    }
}
