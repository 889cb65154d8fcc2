//! A counter bumped without an atomic read-modify-write, for the breaker's rejections.
//!
//! Every rejection of an open breaker was a `fetch_add` on one shared counter. On x86 that is
//! a locked instruction, which waits for the thread's pending stores to drain: about 4 ns of a
//! ~47 ns rejection on one thread (measured by removing it), and on two workers rejecting at
//! once, a cache line passed back and forth on every call. Rejections come in storms (an
//! outage makes every worker reject), so each thread counts into a slot of its own instead:
//! a thread leases a slot index for its lifetime (`LEASES`, returned by a thread-local's
//! destructor), only the holder of an index writes that slot, so a plain load and store
//! suffice, and a reader sums the slots. A thread that finds every index taken (it asks once,
//! at its first rejection, and keeps the answer for its life), or that runs after its
//! thread-local was destroyed, uses the shared counter.
//!
//! The slots (and the shared counter) are allocated at a breaker's first rejection, 2 KiB: a
//! breaker that never rejects keeps one word. Each slot has a cache line pair of its own, so
//! two workers never share one.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Slot indices that can be leased at once; later threads share the fallback counter.
const SLOTS: usize = 16;

/// Taken slot indices, one bit each.
static LEASES: AtomicU32 = AtomicU32::new(0);

/// This thread's slot index, leased on first use and given back when the thread exits.
struct Lease(Option<usize>);

impl Lease {
    fn take() -> Lease {
        let mut taken = LEASES.load(Ordering::Relaxed);
        loop {
            let free = (!taken).trailing_zeros() as usize;
            if free >= SLOTS {
                return Lease(None);
            }
            // Acquire: the previous holder's writes to its slots happen before ours.
            match LEASES.compare_exchange_weak(
                taken,
                taken | 1 << free,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Lease(Some(free)),
                Err(now) => taken = now,
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(index) = self.0 {
            // Release: this thread's writes to its slots happen before the next holder's.
            LEASES.fetch_and(!(1 << index), Ordering::Release);
        }
    }
}

thread_local! {
    static LEASE: Lease = Lease::take();
}

/// The slot index this thread alone writes, if it holds one.
#[inline]
fn lease() -> Option<usize> {
    LEASE.try_with(|lease| lease.0).ok().flatten()
}

/// One counter, split across threads: one word in the breaker until its first addition.
pub(crate) struct Tally {
    slots: OnceLock<Box<Slots>>,
}

/// The shared counter and the leased slots. std's atomics even under loom: a counter that
/// only grows has no interleaving worth modelling.
#[derive(Default)]
struct Slots {
    shared: Slot,
    leased: [Slot; SLOTS],
}

#[derive(Default)]
#[repr(align(128))]
struct Slot(AtomicU64);

impl Tally {
    pub(crate) const fn new() -> Tally {
        Tally {
            slots: OnceLock::new(),
        }
    }

    /// Adds one.
    #[inline]
    pub(crate) fn add_one(&self) {
        let slots = self.slots.get_or_init(Box::default);
        if let Some(index) = lease() {
            let slot = &slots.leased[index].0;
            // Only this thread writes this slot while it holds the lease.
            slot.store(slot.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        } else {
            slots.shared.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The count: every slot and the shared counter. Additions that are still in flight may
    /// be missed, as with any counter read while others write it.
    pub(crate) fn get(&self) -> u64 {
        self.slots.get().map_or(0, |slots| {
            slots.shared.0.load(Ordering::Relaxed)
                + slots
                    .leased
                    .iter()
                    .map(|slot| slot.0.load(Ordering::Relaxed))
                    .sum::<u64>()
        })
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::Tally;

    #[test]
    fn counts_every_thread_exactly() {
        let tally = Tally::new();
        // More threads than slots, so some share the fallback counter; and threads end and
        // new ones reuse their slots.
        for _ in 0..3 {
            std::thread::scope(|s| {
                for _ in 0..24 {
                    s.spawn(|| {
                        for _ in 0..1000 {
                            tally.add_one();
                        }
                    });
                }
            });
        }
        assert_eq!(tally.get(), 3 * 24 * 1000);
    }

    #[test]
    fn a_slot_index_is_held_by_one_thread_at_a_time() {
        let barrier = std::sync::Barrier::new(8);
        let held: Vec<Option<usize>> = std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::channel();
            for _ in 0..8 {
                let tx = tx.clone();
                let barrier = &barrier;
                s.spawn(move || {
                    tx.send(super::lease()).unwrap();
                    // Every thread holds its lease until all have taken one.
                    barrier.wait();
                });
            }
            drop(tx);
            rx.iter().collect()
        });
        let mut indices: Vec<usize> = held.into_iter().flatten().collect();
        let taken = indices.len();
        indices.sort_unstable();
        indices.dedup();
        assert_eq!(indices.len(), taken, "two live threads shared a slot index");
    }
}
