//! Captures the `resilient` tracing events of a test binary.
//!
//! One global subscriber, installed on first use, rather than one per thread: with thread-local
//! subscribers, tests running in parallel race tracing's callsite interest cache and an event is
//! now and then not delivered. Every test uses its own policy names, so reading by name
//! isolates them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use tracing::Level;

/// One event: its level and every field, rendered as text.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub(crate) level: Level,
    pub(crate) fields: BTreeMap<String, String>,
}

impl Event {
    /// A field's text (`Debug` for non-strings), if the event has it.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }
}

struct Visitor<'a>(&'a mut BTreeMap<String, String>);

impl tracing::field::Visit for Visitor<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}"));
    }
}

/// Every event under target `resilient` since the binary started.
#[derive(Clone, Default)]
pub(crate) struct Capture(Arc<Mutex<Vec<Event>>>);

impl Capture {
    /// The binary's capture, installed as the global subscriber on first use.
    pub(crate) fn install() -> Capture {
        static GLOBAL: OnceLock<Capture> = OnceLock::new();
        GLOBAL
            .get_or_init(|| {
                let capture = Capture::default();
                tracing::subscriber::set_global_default(capture.clone())
                    .expect("no other global subscriber in this test binary");
                capture
            })
            .clone()
    }

    /// Events naming the policy `name`.
    pub(crate) fn named(&self, name: &str) -> Vec<Event> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.get("name") == Some(name))
            .cloned()
            .collect()
    }

    /// Events naming `name` whose message contains `message`.
    pub(crate) fn of(&self, name: &str, message: &str) -> Vec<Event> {
        self.named(name)
            .into_iter()
            .filter(|e| e.get("message").is_some_and(|m| m.contains(message)))
            .collect()
    }
}

impl tracing::Subscriber for Capture {
    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target() == "resilient"
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Visitor(&mut fields));
        self.0.lock().unwrap().push(Event {
            level: *event.metadata().level(),
            fields,
        });
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
