//! Whether a timer can be created here, so that a policy needing one returns
//! `Error::NoRuntime` instead of tokio's panic (DESIGN.md 5).
//!
//! A timer needs a tokio runtime *with its time driver*. A missing runtime is easy to see
//! (`Handle::try_current`), but tokio has no query for the time driver: creating a timer in a
//! runtime built without `enable_time` panics. So the first time a thread needs a timer in a
//! runtime, one is created (and dropped unpolled, which registers nothing) under
//! `catch_unwind`, and the answer is kept for that thread and runtime (runtime ids are never
//! reused). Every caller is on a path that is about to wait anyway (a body that returned
//! `Pending` under `#[timeout]`, a retry's backoff, a bulkhead queue with `max_wait`, a chaos
//! delay), never on a call's fast path.
//!
//! The panic hook is left alone. In a runtime with the time driver nothing panics, so the probe
//! is invisible. In one without, the hook sees tokio's panic once per thread and runtime (by
//! default it prints tokio's message, which says to call `enable_time`), and the call returns
//! `NoRuntime`. Swapping the hook to hide that message would race with panics on other threads
//! and with code setting its own hook, in every program, for the sake of a misconfigured one.
//! Under `panic = "abort"` nothing can be caught: the process aborts with tokio's message, as
//! it would without this check.

use std::cell::Cell;

thread_local! {
    /// The runtime this thread last asked about, and whether it has a time driver.
    static KNOWN: Cell<Option<(tokio::runtime::Id, bool)>> = const { Cell::new(None) };
}

/// Is this thread inside a tokio runtime that can create timers?
pub(crate) fn available() -> bool {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return false;
    };
    let id = handle.id();
    if let Ok(Some((known, enabled))) = KNOWN.try_with(Cell::get)
        && known == id
    {
        return enabled;
    }
    let enabled = probe();
    let _ = KNOWN.try_with(|k| k.set(Some((id, enabled))));
    enabled
}

/// Creates and drops one timer in the current runtime.
#[cold]
fn probe() -> bool {
    std::panic::catch_unwind(|| drop(tokio::time::sleep(std::time::Duration::ZERO))).is_ok()
}

#[cfg(test)]
mod tests {
    use super::available;

    #[test]
    fn no_runtime_has_no_timers() {
        assert!(!available());
    }

    #[test]
    fn a_runtime_with_time_has_timers() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        assert!(rt.block_on(async { available() }));
        // Asked again: the cached answer.
        assert!(rt.block_on(async { available() }));
    }

    #[test]
    fn a_runtime_without_time_has_no_timers_and_a_later_one_is_asked_afresh() {
        let without = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        assert!(!without.block_on(async { available() }));
        assert!(!without.block_on(async { available() }));
        let with = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        assert!(
            with.block_on(async { available() }),
            "the answer is kept per runtime, not per thread"
        );
    }
}
