//! Behaviour of `#[fallback]` (DESIGN.md section 4.5): what the handler receives, `args`,
//! `on`, errors from the handler, methods, and rejections from inner layers.
//!
//! Every policy here has its own `name`: policy state is process-global and tests run in
//! parallel.

// A handler is an `async fn` by contract, whether or not it awaits anything.
#![allow(clippy::unused_async)]

mod common;
use common::ms;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use resilient::{Error, bulkhead, circuit_breaker, fallback, retry, timeout};
use tokio::time::{Instant, sleep};

#[derive(Debug, Clone, PartialEq)]
enum E {
    Down(u32),
    Other,
    Res(Error),
}

impl From<Error> for E {
    fn from(e: Error) -> Self {
        E::Res(e)
    }
}

/// A value that counts its clones in the counter it points to.
#[derive(Debug)]
struct Counted(&'static AtomicUsize, String);

impl Clone for Counted {
    fn clone(&self) -> Self {
        self.0.fetch_add(1, Ordering::SeqCst);
        Counted(self.0, self.1.clone())
    }
}

// ---------------------------------------------------------------------------------------------
// The handler receives the original arguments followed by the error.

async fn recover(id: u32, label: String, err: E) -> Result<String, E> {
    Ok(format!("fallback {id} {label} after {err:?}"))
}

#[fallback(recover, name = "fallback.all_args")]
async fn primary(id: u32, label: String) -> Result<String, E> {
    // The body consumes its argument; the handler still gets the original.
    let consumed = label;
    if id == 0 {
        return Ok(consumed);
    }
    Err(E::Down(id))
}

#[tokio::test]
async fn the_handler_receives_the_original_arguments_and_the_error() {
    assert_eq!(
        primary(7, "books".into()).await,
        Ok("fallback 7 books after Down(7)".to_owned())
    );
    assert_eq!(
        primary(0, "ok".into()).await,
        Ok("ok".to_owned()),
        "no error, no handler"
    );
}

static HANDLER_CLONES: AtomicUsize = AtomicUsize::new(0);
static HANDLER_CALLS: AtomicU32 = AtomicU32::new(0);

async fn recover_counted(arg: Counted, fail: bool, err: E) -> Result<String, E> {
    HANDLER_CALLS.fetch_add(1, Ordering::SeqCst);
    assert!(fail);
    Ok(format!("{} {err:?}", arg.1))
}

#[fallback(recover_counted, name = "fallback.clones")]
async fn counted(arg: Counted, fail: bool) -> Result<String, E> {
    let owned = arg.1;
    if fail { Err(E::Down(1)) } else { Ok(owned) }
}

#[tokio::test]
async fn by_value_arguments_are_cloned_once_per_call() {
    let arg = || Counted(&HANDLER_CLONES, "x".into());
    assert_eq!(counted(arg(), true).await, Ok("x Down(1)".to_owned()));
    assert_eq!(HANDLER_CLONES.load(Ordering::SeqCst), 1);
    assert_eq!(counted(arg(), false).await, Ok("x".to_owned()));
    assert_eq!(
        HANDLER_CLONES.load(Ordering::SeqCst),
        2,
        "cloned before the primary call"
    );
    assert_eq!(HANDLER_CALLS.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------------------------------------
// `args = (..)` passes (and clones) only the listed arguments; `args = ()` only the error.

static SKIPPED_CLONES: AtomicUsize = AtomicUsize::new(0);

async fn only_label(label: String, err: E) -> Result<String, E> {
    Ok(format!("label {label} after {err:?}"))
}

#[fallback(only_label, args = (label), name = "fallback.args_one")]
async fn one_arg(id: u32, label: String, skipped: Counted) -> Result<String, E> {
    drop((label, skipped));
    Err(E::Down(id))
}

async fn id_and_label(id: u32, label: String, err: E) -> Result<String, E> {
    Ok(format!("{id} {label} after {err:?}"))
}

#[fallback(id_and_label, args = (id, label), name = "fallback.args_two")]
async fn two_args(id: u32, skipped: Counted, label: String) -> Result<String, E> {
    drop((label, skipped));
    Err(E::Down(id))
}

async fn only_error(err: E) -> Result<String, E> {
    Ok(format!("just {err:?}"))
}

#[fallback(only_error, args = (), name = "fallback.args_none")]
async fn no_args(id: u32, skipped: Counted) -> Result<String, E> {
    drop(skipped);
    Err(E::Down(id))
}

#[tokio::test]
async fn args_chooses_what_the_handler_receives() {
    let skipped = || Counted(&SKIPPED_CLONES, "s".into());
    assert_eq!(
        one_arg(3, "l".into(), skipped()).await,
        Ok("label l after Down(3)".to_owned())
    );
    assert_eq!(
        two_args(4, skipped(), "m".into()).await,
        Ok("4 m after Down(4)".to_owned())
    );
    assert_eq!(no_args(5, skipped()).await, Ok("just Down(5)".to_owned()));
    assert_eq!(
        SKIPPED_CLONES.load(Ordering::SeqCst),
        0,
        "arguments not passed are not cloned"
    );
}

// ---------------------------------------------------------------------------------------------
// `on`: only errors it accepts go to the handler; others propagate unchanged.

fn is_down(e: &E) -> bool {
    matches!(e, E::Down(_))
}

static ON_HANDLER_CALLS: AtomicU32 = AtomicU32::new(0);

async fn count_and_recover(err: E) -> Result<u32, E> {
    ON_HANDLER_CALLS.fetch_add(1, Ordering::SeqCst);
    match err {
        E::Down(n) => Ok(n * 100),
        other => Err(other),
    }
}

#[fallback(count_and_recover, args = (), on = is_down, name = "fallback.on")]
async fn filtered(err: E) -> Result<u32, E> {
    Err(err)
}

#[tokio::test]
async fn on_selects_the_errors_that_go_to_the_handler() {
    assert_eq!(filtered(E::Down(2)).await, Ok(200));
    assert_eq!(ON_HANDLER_CALLS.load(Ordering::SeqCst), 1);
    assert_eq!(filtered(E::Other).await, Err(E::Other));
    assert_eq!(
        ON_HANDLER_CALLS.load(Ordering::SeqCst),
        1,
        "the handler was not called"
    );
}

// ---------------------------------------------------------------------------------------------
// An error from the handler propagates.

async fn failing_handler(id: u32, err: E) -> Result<u32, E> {
    assert_eq!(err, E::Down(id));
    Err(E::Other)
}

#[fallback(failing_handler, name = "fallback.handler_error")]
async fn handler_fails(id: u32) -> Result<u32, E> {
    Err(E::Down(id))
}

#[tokio::test]
async fn an_error_from_the_handler_propagates() {
    assert_eq!(handler_fails(9).await, Err(E::Other));
}

// ---------------------------------------------------------------------------------------------
// Methods: `Self::handler`, the receiver first; `&self` and `&mut self` reborrowed,
// `self: Arc<Self>` cloned beforehand, an owned `self` cloned when `Self: Clone`.

#[derive(Debug, Clone)]
struct Service {
    name: String,
    count: u32,
}

impl Service {
    #[fallback(Self::cached, name = "fallback.ref_self")]
    async fn fetch(&self, id: u32) -> Result<String, E> {
        Err(E::Down(id + self.count))
    }

    async fn cached(&self, id: u32, err: E) -> Result<String, E> {
        Ok(format!("{} cached {id} after {err:?}", self.name))
    }

    #[fallback(Self::repair, name = "fallback.mut_self")]
    async fn bump(&mut self, by: u32) -> Result<u32, E> {
        self.count += by;
        Err(E::Down(self.count))
    }

    async fn repair(&mut self, by: u32, err: E) -> Result<u32, E> {
        assert_eq!(err, E::Down(self.count));
        self.count += by * 10;
        Ok(self.count)
    }

    #[fallback(Self::shared_handler, name = "fallback.arc_self")]
    async fn shared(self: Arc<Self>, id: u32) -> Result<String, E> {
        let moved = self;
        Err(E::Down(id + moved.count))
    }

    async fn shared_handler(self: Arc<Self>, id: u32, err: E) -> Result<String, E> {
        Ok(format!("{} arc {id} after {err:?}", self.name))
    }

    #[fallback(Self::owned_handler, name = "fallback.owned_self")]
    async fn owned(self, id: u32) -> Result<String, E> {
        let consumed = self;
        Err(E::Down(id + consumed.count))
    }

    async fn owned_handler(self, id: u32, err: E) -> Result<String, E> {
        Ok(format!("{} owned {id} after {err:?}", self.name))
    }
}

#[tokio::test]
async fn methods_use_self_handlers_with_the_receiver_first() {
    let mut svc = Service {
        name: "svc".into(),
        count: 1,
    };
    assert_eq!(
        svc.fetch(2).await,
        Ok("svc cached 2 after Down(3)".to_owned())
    );

    assert_eq!(
        svc.bump(2).await,
        Ok(23),
        "the handler sees the body's change to self"
    );
    assert_eq!(svc.count, 23);

    let arc = Arc::new(svc.clone());
    assert_eq!(
        arc.clone().shared(1).await,
        Ok("svc arc 1 after Down(24)".to_owned())
    );
    assert_eq!(
        Arc::strong_count(&arc),
        1,
        "no clone of the Arc is left behind"
    );

    assert_eq!(
        svc.owned(1).await,
        Ok("svc owned 1 after Down(24)".to_owned())
    );
}

// ---------------------------------------------------------------------------------------------
// Rejections from inner layers go to the handler converted to `E`, after the primary future
// (and whatever it held) is dropped.

static REJECTIONS_SEEN: Mutex<Vec<E>> = Mutex::new(Vec::new());

/// Records the instant it is dropped at.
struct Guard<'a>(&'a Mutex<Option<Instant>>);

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        *self.0.lock().unwrap() = Some(Instant::now());
    }
}

async fn record_rejection(err: E) -> Result<u32, E> {
    REJECTIONS_SEEN.lock().unwrap().push(err);
    Ok(0)
}

#[fallback(record_rejection, args = (), name = "fallback.timeout")]
#[timeout("50ms", name = "fallback.timeout_inner")]
async fn slow(dropped: &Mutex<Option<Instant>>) -> Result<u32, E> {
    let _guard = Guard(dropped);
    sleep(Duration::from_secs(1)).await;
    Ok(1)
}

#[tokio::test(start_paused = true)]
async fn a_timeout_goes_to_the_handler_converted() {
    let dropped = Mutex::new(None);
    let start = Instant::now();
    assert_eq!(slow(&dropped).await, Ok(0));
    assert_eq!(start.elapsed(), ms(50));
    assert_eq!(*dropped.lock().unwrap(), Some(start + ms(50)));
    assert_eq!(
        *REJECTIONS_SEEN.lock().unwrap(),
        [E::Res(Error::Timeout {
            name: "fallback.timeout_inner",
            after: ms(50),
        })]
    );
}

fn only_body_errors(e: &E) -> bool {
    !matches!(e, E::Res(_))
}

async fn never_for_rejections(err: E) -> Result<u32, E> {
    panic!("the handler must not see {err:?}");
}

#[fallback(never_for_rejections, args = (), on = only_body_errors, name = "fallback.on_rejection")]
#[timeout("50ms", name = "fallback.on_rejection_inner")]
async fn slow_filtered() -> Result<u32, E> {
    sleep(Duration::from_secs(1)).await;
    Ok(1)
}

#[tokio::test(start_paused = true)]
async fn on_sees_rejections_converted() {
    assert_eq!(
        slow_filtered().await,
        Err(E::Res(Error::Timeout {
            name: "fallback.on_rejection_inner",
            after: ms(50),
        }))
    );
}

async fn check_permit_released(err: E) -> Result<usize, E> {
    assert_eq!(err, E::Down(0));
    let h = resilient::bulkhead("fallback.permit").expect("created by the call");
    Ok(h.available())
}

#[fallback(check_permit_released, args = (), name = "fallback.permit_fallback")]
#[bulkhead(pool = 1, name = "fallback.permit")]
async fn holds_permit() -> Result<usize, E> {
    Err(E::Down(0))
}

#[tokio::test]
async fn the_handler_runs_after_the_primary_future_is_dropped() {
    assert_eq!(
        holds_permit().await,
        Ok(1),
        "the permit was back before the handler ran"
    );
}

static BREAKER_SEEN: Mutex<Vec<E>> = Mutex::new(Vec::new());

async fn record_breaker(err: E) -> Result<u32, E> {
    BREAKER_SEEN.lock().unwrap().push(err);
    Ok(0)
}

#[fallback(record_breaker, args = (), name = "fallback.breaker")]
#[circuit_breaker(threshold = 1, cooldown = "5s", name = "fallback.breaker_inner")]
async fn behind_breaker(ran: &AtomicU32) -> Result<u32, E> {
    ran.fetch_add(1, Ordering::SeqCst);
    Err(E::Down(1))
}

#[tokio::test(start_paused = true)]
async fn an_open_circuit_goes_to_the_handler_converted() {
    let ran = AtomicU32::new(0);
    assert_eq!(behind_breaker(&ran).await, Ok(0));
    assert_eq!(behind_breaker(&ran).await, Ok(0));
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    assert_eq!(
        *BREAKER_SEEN.lock().unwrap(),
        [
            E::Down(1),
            E::Res(Error::CircuitOpen {
                name: "fallback.breaker_inner",
                retry_after: Some(Duration::from_secs(5)),
            }),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Above `#[retry]`, the handler runs once, with the last error, after every attempt.

static AFTER_RETRY_CLONES: AtomicUsize = AtomicUsize::new(0);

async fn after_retries(arg: Counted, attempts: &AtomicU32, err: E) -> Result<String, E> {
    Ok(format!(
        "{} after {} attempts: {err:?}",
        arg.1,
        attempts.load(Ordering::SeqCst)
    ))
}

#[fallback(after_retries, name = "fallback.retry")]
#[retry(
    attempts = 3,
    backoff = "10ms",
    jitter = "none",
    name = "fallback.retry_inner"
)]
async fn retried(arg: Counted, attempts: &AtomicU32) -> Result<String, E> {
    drop(arg);
    Err(E::Down(attempts.fetch_add(1, Ordering::SeqCst) + 1))
}

#[tokio::test(start_paused = true)]
async fn above_retry_the_handler_gets_the_last_error_once() {
    let attempts = AtomicU32::new(0);
    let start = Instant::now();
    let out = retried(Counted(&AFTER_RETRY_CLONES, "a".into()), &attempts).await;
    assert_eq!(out, Ok("a after 3 attempts: Down(3)".to_owned()));
    assert_eq!(start.elapsed(), ms(30));
    // One clone for the handler, one per attempt.
    assert_eq!(AFTER_RETRY_CLONES.load(Ordering::SeqCst), 4);
}
