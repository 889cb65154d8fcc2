//! Whether a timer can be created here, so that a policy needing one returns
//! `Error::NoRuntime` instead of tokio's panic (DESIGN.md 5).
//!
//! A timer needs a tokio runtime *with its time driver*. A missing runtime is easy to see
//! (`Handle::try_current`), but tokio has no query for the time driver: creating a timer in a
//! runtime built without `enable_time` panics. So the first timer a thread needs in a runtime
//! is tried once under `catch_unwind`, with that thread's panic message held back, and the
//! answer is kept per thread for that runtime (runtime ids are never reused). Every caller is
//! on a path that is about to wait anyway (a body that returned `Pending` under `#[timeout]`, a
//! retry's backoff, a bulkhead queue with `max_wait`, a chaos delay), never on a call's fast
//! path.

use std::cell::Cell;
use std::sync::{Arc, Mutex, PoisonError};

/// Held while a probe has its hook installed. Two probes at once would each put back what the
/// other installed, and could leave a hook that drops a thread's panic messages for good.
static PROBING: Mutex<()> = Mutex::new(());

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
    if let Some((known, enabled)) = KNOWN.with(Cell::get)
        && known == id
    {
        return enabled;
    }
    let enabled = probe();
    KNOWN.with(|k| k.set(Some((id, enabled))));
    enabled
}

/// Creates (and drops, unpolled: it registers nothing) one timer in the current runtime.
///
/// While it runs, the panic hook passes other threads' panics on to the hook that was
/// installed, and drops only this thread's, so tokio's "timers are disabled" message is not
/// printed for a panic that is caught here. The installed hook is put back afterwards. Code
/// that sets its own panic hook while a probe runs can have it replaced by the one the probe
/// puts back; programs set their hook once, at start-up.
#[cold]
fn probe() -> bool {
    let attempt =
        || std::panic::catch_unwind(|| drop(tokio::time::sleep(std::time::Duration::ZERO))).is_ok();
    // The hook cannot be changed while this thread unwinds (a policy called from a `Drop`
    // during a panic); then the timer is tried with the message left as it is.
    if std::thread::panicking() {
        return attempt();
    }
    let _probing = PROBING.lock().unwrap_or_else(PoisonError::into_inner);
    let this_thread = std::thread::current().id();
    let installed = Arc::new(std::panic::take_hook());
    let forward = Arc::clone(&installed);
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() != this_thread {
            forward(info);
        }
    }));
    let enabled = attempt();
    // Dropping the temporary hook drops `forward`, so `installed` is the only owner again,
    // unless another thread is running the temporary hook right now.
    drop(std::panic::take_hook());
    match Arc::try_unwrap(installed) {
        Ok(hook) => std::panic::set_hook(hook),
        Err(shared) => std::panic::set_hook(Box::new(move |info| shared(info))),
    }
    enabled
}

#[cfg(test)]
mod tests {
    use super::{PROBING, PoisonError, available};

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

    #[test]
    fn the_installed_panic_hook_is_put_back() {
        use std::cell::Cell;
        use std::sync::atomic::{AtomicUsize, Ordering};
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            // Other tests run beside this one and may panic on purpose: count this thread's.
            static COUNTED: Cell<bool> = const { Cell::new(false) };
        }
        COUNTED.with(|c| c.set(true));
        // Other tests' probes run beside this one: the hook is changed while none runs, as a
        // program sets its hook at start-up.
        let lock = || PROBING.lock().unwrap_or_else(PoisonError::into_inner);
        let probing = lock();
        let before = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {
            if COUNTED.with(Cell::get) {
                CALLS.fetch_add(1, Ordering::SeqCst);
            }
        }));
        drop(probing);
        let without = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        assert!(!without.block_on(async { available() }));
        assert_eq!(
            CALLS.load(Ordering::SeqCst),
            0,
            "the caught panic did not reach the hook"
        );
        let _probing = lock();
        let caught = std::panic::catch_unwind(|| panic!("after the probe"));
        assert!(caught.is_err());
        assert_eq!(
            CALLS.load(Ordering::SeqCst),
            1,
            "the hook installed before the probe is in place again"
        );
        std::panic::set_hook(before);
    }
}
