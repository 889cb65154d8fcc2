//! `#[tracing::instrument]` beside the resilience attributes (DESIGN.md 3: other attributes
//! stay on the function). Written below the policies, as the crate docs recommend, the policies
//! expand first and leave it on the function they emit, so its span wraps the whole stack: one
//! span per call, with every attempt and the policies' own events inside it. Written above, it
//! expands first and rewrites the body, which the policies then wrap: one span per attempt,
//! and the policies' events outside it.
//!
//! This binary installs its own subscriber: it records which span is current when each
//! `resilient` event is emitted.

mod common;

use std::cell::RefCell;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use common::{E, ms};
use resilient::{Error, circuit_breaker, retry, timeout};

/// `(event message, policy name, innermost span entered on this thread)`.
type Seen = (String, String, Option<&'static str>);

#[derive(Clone, Default)]
struct Spans {
    names: Arc<Mutex<Vec<&'static str>>>,
    events: Arc<Mutex<Vec<Seen>>>,
}

thread_local! {
    static STACK: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

struct Fields(Option<String>, Option<String>);

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "name" {
            self.1 = Some(value.into());
        }
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.0 = Some(format!("{value:?}")),
            "name" => self.1 = Some(format!("{value:?}")),
            _ => {}
        }
    }
}

impl tracing::Subscriber for Spans {
    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::always()
    }
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut names = self.names.lock().unwrap();
        names.push(span.metadata().name());
        tracing::span::Id::from_u64(names.len() as u64)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if event.metadata().target() != "resilient" {
            return;
        }
        let mut fields = Fields(None, None);
        event.record(&mut fields);
        let current = STACK.with(|s| s.borrow().last().copied());
        let span = current.map(|id| {
            let index = usize::try_from(id - 1).unwrap();
            self.names.lock().unwrap()[index]
        });
        self.events.lock().unwrap().push((
            fields.0.unwrap_or_default(),
            fields.1.unwrap_or_default(),
            span,
        ));
    }
    fn enter(&self, span: &tracing::span::Id) {
        STACK.with(|s| s.borrow_mut().push(span.into_u64()));
    }
    fn exit(&self, _: &tracing::span::Id) {
        STACK.with(|s| s.borrow_mut().pop());
    }
}

fn spans() -> &'static Spans {
    static GLOBAL: OnceLock<Spans> = OnceLock::new();
    GLOBAL.get_or_init(|| {
        let spans = Spans::default();
        tracing::subscriber::set_global_default(spans.clone()).expect("the only subscriber");
        spans
    })
}

/// The spans current at the `resilient` events naming `policy`, in order.
fn spans_at(policy: &str) -> Vec<(String, Option<&'static str>)> {
    spans()
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, name, _)| name == policy)
        .map(|(message, _, span)| (message.clone(), *span))
        .collect()
}

static ABOVE_CALLS: AtomicU32 = AtomicU32::new(0);

#[tracing::instrument(skip_all)]
#[retry(
    name = "instrument-above",
    attempts = 3,
    backoff = "10ms",
    jitter = "none"
)]
#[timeout(name = "instrument-above-timeout", duration = "50ms")]
async fn above(hang_first: bool) -> Result<u32, E> {
    let n = ABOVE_CALLS.fetch_add(1, Ordering::SeqCst);
    if hang_first && n == 0 {
        std::future::pending::<()>().await;
    }
    if n < 2 { Err(E::Body) } else { Ok(n) }
}

static BELOW_CALLS: AtomicU32 = AtomicU32::new(0);

#[retry(
    name = "instrument-below",
    attempts = 3,
    backoff = "10ms",
    jitter = "none"
)]
#[circuit_breaker(name = "instrument-below-breaker", threshold = 10)]
#[tracing::instrument(skip_all)]
#[timeout(name = "instrument-below-timeout", duration = "50ms")]
async fn below(hang_first: bool) -> Result<u32, E> {
    let n = BELOW_CALLS.fetch_add(1, Ordering::SeqCst);
    if hang_first && n == 0 {
        std::future::pending::<()>().await;
    }
    if n < 2 { Err(E::Body) } else { Ok(n) }
}

/// Every span named `name` created so far.
fn created(name: &str) -> usize {
    spans()
        .names
        .lock()
        .unwrap()
        .iter()
        .filter(|n| **n == name)
        .count()
}

#[tokio::test(start_paused = true)]
async fn instrument_above_the_policies_gives_each_attempt_its_own_span() {
    spans();
    let started = tokio::time::Instant::now();
    // Attempt 1 hangs and times out, attempt 2 fails, attempt 3 succeeds.
    assert_eq!(above(true).await, Ok(2));
    assert_eq!(ABOVE_CALLS.load(Ordering::SeqCst), 3);
    assert_eq!(started.elapsed(), ms(50 + 10 + 20));
    assert_eq!(created("above"), 3, "one span per attempt");

    let retries = spans_at("instrument-above");
    assert_eq!(retries.len(), 2, "two retries: {retries:?}");
    for (message, span) in &retries {
        assert!(message.contains("retrying"), "{message}");
        assert_eq!(*span, None, "the retry decides outside the attempt's span");
    }
    let timeouts = spans_at("instrument-above-timeout");
    assert_eq!(timeouts.len(), 1, "{timeouts:?}");
    assert_eq!(timeouts[0].1, None);
}

#[tokio::test(start_paused = true)]
async fn instrument_below_the_policies_wraps_the_whole_stack() {
    spans();
    let started = tokio::time::Instant::now();
    assert_eq!(below(true).await, Ok(2));
    assert_eq!(BELOW_CALLS.load(Ordering::SeqCst), 3);
    assert_eq!(started.elapsed(), ms(50 + 10 + 20));
    assert_eq!(created("below"), 1, "one span for the whole call");

    // Even the outermost layer's events are inside the span.
    let retries = spans_at("instrument-below");
    assert_eq!(retries.len(), 2, "{retries:?}");
    assert!(
        retries.iter().all(|(_, span)| *span == Some("below")),
        "{retries:?}"
    );
    // The timeout written under `#[tracing::instrument]` is still one of the policies
    // (absorbed by the first resilience attribute): per attempt, under the retry.
    let timeouts = spans_at("instrument-below-timeout");
    assert_eq!(timeouts.len(), 1, "{timeouts:?}");
    assert_eq!(timeouts[0].1, Some("below"));
    let breaker = resilient::breaker("instrument-below-breaker").expect("registered");
    assert_eq!(breaker.state(), resilient::CircuitState::Closed);
}

#[tracing::instrument(err, skip_all)]
#[timeout(name = "instrument-err", duration = "10ms")]
async fn with_err_field() -> Result<(), Rejected> {
    std::future::pending::<()>().await;
    Ok(())
}

/// `#[tracing::instrument(err)]` needs `Display`; a user error type wrapping ours gets it.
#[derive(Debug, PartialEq)]
struct Rejected(Error);

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rejected: {}", self.0)
    }
}

impl From<Error> for Rejected {
    fn from(e: Error) -> Self {
        Rejected(e)
    }
}

#[tokio::test(start_paused = true)]
async fn instrument_err_sees_the_policy_rejection_as_the_functions_error() {
    spans();
    let err = with_err_field().await.expect_err("timed out");
    assert!(err.0.is_timeout(), "{err:?}");
}
