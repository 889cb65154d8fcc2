//! The bulkhead: at most `pool` calls at once, up to `queue` more waiting in FIFO order.

use std::fmt;
use crate::sync::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::Error;

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
        if self.pool > Semaphore::MAX_PERMITS {
            return Err(format!("`pool` may not exceed {}", Semaphore::MAX_PERMITS));
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
pub struct Bulkhead {
    name: &'static str,
    config: BulkheadConfig,
    permits: Semaphore,
    queued: AtomicUsize,
}

impl fmt::Debug for Bulkhead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("in_flight", &self.in_flight())
            .field("queued", &self.queued())
            .field("available", &self.available())
            .finish_non_exhaustive()
    }
}

/// Proof of admission into a [`Bulkhead`]; dropping it frees the place.
#[derive(Debug)]
pub struct BulkheadPermit<'a> {
    _permit: SemaphorePermit<'a>,
}

/// Decrements the queue count however the wait ends (permit, timeout or drop).
struct QueuePlace<'a>(&'a AtomicUsize);

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
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
            config,
            permits: Semaphore::new(config.pool),
            queued: AtomicUsize::new(0),
        })
    }

    /// The bulkhead's name.
    #[must_use]
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The bulkhead's configuration.
    #[must_use]
    pub fn config(&self) -> &BulkheadConfig {
        &self.config
    }

    /// Calls running now.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.config
            .pool
            .saturating_sub(self.permits.available_permits())
    }

    /// Callers waiting for a permit now.
    #[must_use]
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Free permits now.
    #[must_use]
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }

    /// Takes a permit, waiting in the queue if there is room.
    ///
    /// # Errors
    /// [`Error::BulkheadFull`] when the pool and the queue are full, or after `max_wait`.
    #[inline]
    pub async fn acquire(&self) -> Result<BulkheadPermit<'_>, Error> {
        if let Ok(permit) = self.permits.try_acquire() {
            return Ok(BulkheadPermit { _permit: permit });
        }
        self.acquire_queued().await
    }

    async fn acquire_queued(&self) -> Result<BulkheadPermit<'_>, Error> {
        let full = || {
            crate::events::bulkhead_rejected(self.name);
            Error::BulkheadFull { name: self.name }
        };
        // Reserve a queue place, or give up at once.
        let mut queued = self.queued.load(Ordering::Acquire);
        loop {
            if queued >= self.config.queue {
                return Err(full());
            }
            match self.queued.compare_exchange_weak(
                queued,
                queued + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(q) => queued = q,
            }
        }
        let _place = QueuePlace(&self.queued);
        crate::events::bulkhead_queued(self.name, queued + 1);
        // tokio's semaphore is fair (FIFO), and dropping `acquire()` leaves its wait list.
        let wait = self.permits.acquire();
        let permit = match self.config.max_wait {
            None => wait.await,
            Some(limit) => {
                if tokio::runtime::Handle::try_current().is_err() {
                    return Err(Error::NoRuntime { name: self.name });
                }
                match tokio::time::timeout(limit, wait).await {
                    Ok(p) => p,
                    Err(_) => return Err(full()),
                }
            }
        };
        // The semaphore is never closed, so `acquire` cannot fail; treat it as full if it did.
        permit
            .map(|p| BulkheadPermit { _permit: p })
            .map_err(|_| full())
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
