//! The storefront scenario, shared by `examples/storefront/main.rs` and `tests/storefront.rs`.
//!
//! Three downstream HTTP services (recommendations, profiles, inventory) run on 127.0.0.1
//! ephemeral ports, each with a [`Control`] that makes it slower, failing or hanging. Two
//! gateways serve `GET /product/{user}/{item}` by calling all three concurrently: the
//! resilient one through the annotated functions below, the naive one through the same calls
//! with no attributes. A load generator drives each gateway over HTTP through the same
//! [`Phase`]s and returns a [`Report`].

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use indicatif::{ProgressBar, ProgressStyle};
use resilient::{CircuitState, bulkhead, circuit_breaker, fallback, retry, timeout};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep};

/// The resilient gateway's breaker names, one per dependency.
pub(crate) const RECOMMENDATIONS: &str = "storefront.recommendations";
/// See [`RECOMMENDATIONS`].
pub(crate) const PROFILES: &str = "storefront.profiles";
/// See [`RECOMMENDATIONS`].
pub(crate) const INVENTORY: &str = "storefront.inventory";
/// Every breaker of the resilient gateway.
pub(crate) const BREAKERS: [&str; 3] = [RECOMMENDATIONS, PROFILES, INVENTORY];

/// The three parts of a product page, in the order of [`BREAKERS`].
const PARTS: [&str; 3] = ["recommendations", "profile", "inventory"];

/// The latency budget the resilient gateway must meet at the 99th percentile.
pub(crate) const P99_BUDGET: Duration = Duration::from_millis(500);

// ------------------------------------------------------------------------------------------
// Downstream services
// ------------------------------------------------------------------------------------------

/// What a downstream service can be told to do.
#[derive(Debug, Default)]
pub(crate) struct Control {
    extra_latency_ms: AtomicU64,
    failing: AtomicBool,
    hanging: AtomicBool,
}

impl Control {
    /// Adds this much latency to every answer.
    pub(crate) fn set_latency(&self, extra: Duration) {
        let ms = u64::try_from(extra.as_millis()).unwrap_or(u64::MAX);
        self.extra_latency_ms.store(ms, Ordering::Relaxed);
    }

    /// Answers `503 Service Unavailable` while `on`.
    pub(crate) fn set_failing(&self, on: bool) {
        self.failing.store(on, Ordering::Relaxed);
    }

    /// Accepts requests but never answers while `on`; held requests are answered once it is
    /// turned off.
    pub(crate) fn set_hanging(&self, on: bool) {
        self.hanging.store(on, Ordering::Relaxed);
    }

    fn heal(&self) {
        self.set_latency(Duration::ZERO);
        self.set_failing(false);
        self.set_hanging(false);
    }
}

/// Which downstream service a server plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Recommendations,
    Profiles,
    Inventory,
}

#[derive(Debug)]
struct Service {
    kind: Kind,
    control: Arc<Control>,
    served: AtomicU64,
}

/// A cheap deterministic hash (splitmix64's finaliser), for fake data and jitter.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn hash_str(s: &str) -> u64 {
    s.bytes().fold(0, |h, b| mix(h ^ u64::from(b)))
}

async fn serve_dependency(State(svc): State<Arc<Service>>, Path(key): Path<String>) -> Response {
    let n = svc.served.fetch_add(1, Ordering::Relaxed);
    let control = &svc.control;
    // A normal answer takes 5 to 15 ms.
    let base = 5 + mix(n) % 11;
    sleep(Duration::from_millis(
        base + control.extra_latency_ms.load(Ordering::Relaxed),
    ))
    .await;
    while control.hanging.load(Ordering::Relaxed) {
        sleep(Duration::from_millis(25)).await;
    }
    if control.failing.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "service unavailable").into_response();
    }
    let h = hash_str(&key);
    let tier = ["bronze", "silver", "gold"][usize::try_from(h % 3).unwrap_or(0)];
    let body = match svc.kind {
        Kind::Recommendations => json!([
            format!("sku-{}", h % 97),
            format!("sku-{}", (h >> 8) % 97),
            format!("sku-{}", (h >> 16) % 97),
        ]),
        Kind::Profiles => json!({
            "user": key,
            "name": format!("Customer {}", h % 10_000),
            "tier": tier,
        }),
        Kind::Inventory => json!({ "item": key, "in_stock": h % 7 != 0, "count": h % 50 }),
    };
    json_response(StatusCode::OK, &body)
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Serves `router` on an ephemeral loopback port.
async fn spawn_server(router: Router) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind an ephemeral port on 127.0.0.1");
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .await
            .expect("the server runs until aborted");
    });
    (addr, task)
}

/// The three running downstream services.
#[derive(Debug)]
pub(crate) struct Services {
    pub(crate) recommendations: Arc<Control>,
    pub(crate) profiles: Arc<Control>,
    pub(crate) inventory: Arc<Control>,
    downstream: Downstream,
    tasks: Vec<JoinHandle<()>>,
}

impl Services {
    /// Starts the three services.
    pub(crate) async fn start() -> Self {
        let mut tasks = Vec::new();
        let mut start = async |kind: Kind, route: &str| {
            let control = Arc::new(Control::default());
            let svc = Arc::new(Service {
                kind,
                control: control.clone(),
                served: AtomicU64::new(0),
            });
            let router = Router::new()
                .route(&format!("/{route}/{{key}}"), get(serve_dependency))
                .with_state(svc);
            let (addr, task) = spawn_server(router).await;
            tasks.push(task);
            (control, format!("http://{addr}/{route}"))
        };
        let (recommendations, rec_url) = start(Kind::Recommendations, "recommendations").await;
        let (profiles, prof_url) = start(Kind::Profiles, "profiles").await;
        let (inventory, inv_url) = start(Kind::Inventory, "inventory").await;
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("a plain HTTP client builds");
        Self {
            recommendations,
            profiles,
            inventory,
            downstream: Downstream {
                client,
                recommendations: rec_url,
                profiles: prof_url,
                inventory: inv_url,
            },
            tasks,
        }
    }

    /// Sets every service as `phase` wants it.
    pub(crate) fn apply(&self, phase: Phase) {
        for c in [&self.recommendations, &self.profiles, &self.inventory] {
            c.heal();
        }
        match phase {
            Phase::Healthy | Phase::Recovery => {}
            Phase::RecommendationsSlow => self.recommendations.set_latency(SLOW),
            Phase::InventoryFailing => self.inventory.set_failing(true),
            Phase::ProfilesHanging => self.profiles.set_hanging(true),
        }
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// How slow the recommendations service is in [`Phase::RecommendationsSlow`].
const SLOW: Duration = Duration::from_secs(2);

// ------------------------------------------------------------------------------------------
// The gateway's downstream calls
// ------------------------------------------------------------------------------------------

/// Where the downstream services are, and the client the gateways reach them with.
#[derive(Debug, Clone)]
pub(crate) struct Downstream {
    client: reqwest::Client,
    recommendations: String,
    profiles: String,
    inventory: String,
}

/// Why a downstream call failed.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The service answered with this non-success status.
    Status(u16),
    /// The request could not be sent or its answer not read.
    Transport(String),
    /// The answer was not what the gateway expects.
    Body(String),
    /// A policy rejected or cut the call.
    Resilience(resilient::Error),
}

impl CallError {
    /// Worth one retry: a 5xx answer or a connection problem. A timeout is not (the service
    /// is slow, and a second wait would blow the page's budget), nor is a rejection.
    fn is_transient(&self) -> bool {
        match self {
            CallError::Status(s) => *s >= 500,
            CallError::Transport(_) => true,
            CallError::Body(_) | CallError::Resilience(_) => false,
        }
    }
}

impl From<resilient::Error> for CallError {
    fn from(e: resilient::Error) -> Self {
        CallError::Resilience(e)
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Status(s) => write!(f, "service answered {s}"),
            CallError::Transport(e) => write!(f, "transport error: {e}"),
            CallError::Body(e) => write!(f, "bad answer: {e}"),
            CallError::Resilience(e) => e.fmt(f),
        }
    }
}

async fn get_json(client: &reqwest::Client, url: String) -> Result<Value, CallError> {
    let transport = |e: reqwest::Error| CallError::Transport(e.to_string());
    let response = client.get(url).send().await.map_err(transport)?;
    let status = response.status();
    if !status.is_success() {
        return Err(CallError::Status(status.as_u16()));
    }
    let text = response.text().await.map_err(transport)?;
    serde_json::from_str(&text).map_err(|e| CallError::Body(e.to_string()))
}

/// The plain calls, shared by both gateways.
async fn fetch_recommendations(deps: &Downstream, user: &str) -> Result<Value, CallError> {
    let url = format!("{}/{user}", deps.recommendations);
    get_json(&deps.client, url).await
}

async fn fetch_profile(deps: &Downstream, user: &str) -> Result<Value, CallError> {
    let url = format!("{}/{user}", deps.profiles);
    get_json(&deps.client, url).await
}

async fn fetch_inventory(deps: &Downstream, item: &str) -> Result<Value, CallError> {
    let url = format!("{}/{item}", deps.inventory);
    get_json(&deps.client, url).await
}

/// A part of the page, and why it came from a fallback if it did.
#[derive(Debug)]
pub(crate) struct Part {
    value: Value,
    degraded: Option<String>,
}

impl Part {
    fn fresh(value: Value) -> Self {
        Self {
            value,
            degraded: None,
        }
    }

    fn fallback(value: Value, why: &CallError) -> Self {
        Self {
            value,
            degraded: Some(why.to_string()),
        }
    }
}

/// Cached popular items, served when recommendations cannot be had.
async fn popular_items(_deps: &Downstream, _user: &str, err: CallError) -> Result<Part, CallError> {
    Ok(Part::fallback(json!(["sku-1", "sku-2", "sku-3"]), &err))
}

/// A guest profile, served when the user's profile cannot be had.
async fn guest_profile(_deps: &Downstream, user: &str, err: CallError) -> Result<Part, CallError> {
    Ok(Part::fallback(
        json!({ "user": user, "name": "Guest", "tier": "guest" }),
        &err,
    ))
}

/// "Assume in stock", served when inventory cannot be had.
async fn assume_in_stock(
    _deps: &Downstream,
    item: &str,
    err: CallError,
) -> Result<Part, CallError> {
    Ok(Part::fallback(
        json!({ "item": item, "in_stock": true, "count": null }),
        &err,
    ))
}

#[fallback(popular_items)]
#[retry(attempts = 2, backoff = "50ms", jitter = "none", when = CallError::is_transient)]
#[circuit_breaker(
    threshold = 5,
    window = "30s",
    cooldown = "2s",
    name = "storefront.recommendations"
)]
#[timeout("200ms")]
#[bulkhead(pool = 10, name = "storefront.recommendations")]
async fn recommendations(deps: &Downstream, user: &str) -> Result<Part, CallError> {
    fetch_recommendations(deps, user).await.map(Part::fresh)
}

#[fallback(guest_profile)]
#[retry(attempts = 2, backoff = "50ms", jitter = "none", when = CallError::is_transient)]
#[circuit_breaker(
    threshold = 5,
    window = "30s",
    cooldown = "2s",
    name = "storefront.profiles"
)]
#[timeout("200ms")]
#[bulkhead(pool = 10, name = "storefront.profiles")]
async fn profile(deps: &Downstream, user: &str) -> Result<Part, CallError> {
    fetch_profile(deps, user).await.map(Part::fresh)
}

#[fallback(assume_in_stock)]
#[retry(attempts = 2, backoff = "50ms", jitter = "none", when = CallError::is_transient)]
#[circuit_breaker(
    threshold = 5,
    window = "30s",
    cooldown = "2s",
    name = "storefront.inventory"
)]
#[timeout("200ms")]
#[bulkhead(pool = 10, name = "storefront.inventory")]
async fn inventory(deps: &Downstream, item: &str) -> Result<Part, CallError> {
    fetch_inventory(deps, item).await.map(Part::fresh)
}

// ------------------------------------------------------------------------------------------
// The gateways
// ------------------------------------------------------------------------------------------

/// Which gateway: with the attributes or without.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gateway {
    /// The annotated calls: timeouts, breakers, bulkheads, a retry and fallbacks.
    Resilient,
    /// The same calls, no attributes.
    Naive,
}

impl Gateway {
    /// Both, in the order the scenario runs them.
    pub(crate) const ALL: [Gateway; 2] = [Gateway::Resilient, Gateway::Naive];

    /// `"resilient"` or `"naive"`.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Gateway::Resilient => "resilient",
            Gateway::Naive => "naive",
        }
    }
}

#[derive(Debug)]
struct GatewayState {
    kind: Gateway,
    deps: Downstream,
}

async fn product(
    State(gw): State<Arc<GatewayState>>,
    Path((user, item)): Path<(String, String)>,
) -> Response {
    let deps = &gw.deps;
    let parts = match gw.kind {
        Gateway::Resilient => {
            let (r, p, i) = tokio::join!(
                recommendations(deps, &user),
                profile(deps, &user),
                inventory(deps, &item)
            );
            [r, p, i]
        }
        Gateway::Naive => {
            let (r, p, i) = tokio::join!(
                fetch_recommendations(deps, &user),
                fetch_profile(deps, &user),
                fetch_inventory(deps, &item)
            );
            [r.map(Part::fresh), p.map(Part::fresh), i.map(Part::fresh)]
        }
    };
    let mut page = serde_json::Map::new();
    page.insert("user".into(), user.into());
    page.insert("item".into(), item.into());
    let mut degraded = Vec::new();
    let mut reasons = serde_json::Map::new();
    for (name, part) in PARTS.into_iter().zip(parts) {
        match part {
            Ok(part) => {
                page.insert(name.into(), part.value);
                if let Some(why) = part.degraded {
                    degraded.push(Value::from(name));
                    reasons.insert(name.into(), why.into());
                }
            }
            Err(e) => {
                let body = json!({ "error": format!("{name}: {e}") });
                return json_response(StatusCode::BAD_GATEWAY, &body);
            }
        }
    }
    page.insert("degraded".into(), degraded.into());
    page.insert("reasons".into(), reasons.into());
    json_response(StatusCode::OK, &Value::Object(page))
}

async fn start_gateway(kind: Gateway, deps: Downstream) -> (SocketAddr, JoinHandle<()>) {
    let router = Router::new()
        .route("/product/{user}/{item}", get(product))
        .with_state(Arc::new(GatewayState { kind, deps }));
    spawn_server(router).await
}

// ------------------------------------------------------------------------------------------
// The load generator
// ------------------------------------------------------------------------------------------

/// A phase of the scenario: what the downstream services do while the load runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Every service answers in 5 to 15 ms.
    Healthy,
    /// Recommendations take 2 s more.
    RecommendationsSlow,
    /// Inventory answers 503.
    InventoryFailing,
    /// Profiles accept requests and never answer.
    ProfilesHanging,
    /// Everything healthy again.
    Recovery,
}

impl Phase {
    /// The phases in the order they run.
    pub(crate) const ALL: [Phase; 5] = [
        Phase::Healthy,
        Phase::RecommendationsSlow,
        Phase::InventoryFailing,
        Phase::ProfilesHanging,
        Phase::Recovery,
    ];

    /// A short name for tables and JSON.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Phase::Healthy => "healthy",
            Phase::RecommendationsSlow => "recommendations slow",
            Phase::InventoryFailing => "inventory failing",
            Phase::ProfilesHanging => "profiles hanging",
            Phase::Recovery => "recovery",
        }
    }
}

/// How hard and how long to drive each gateway.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// How long each phase sends new requests.
    pub(crate) phase: Duration,
    /// Concurrent users, each sending one request at a time.
    pub(crate) users: u64,
    /// Mean pause between a user's requests (uniform in [0.5, 1.5] times this).
    pub(crate) think: Duration,
    /// A user gives up on a request after this long (counted as an error).
    pub(crate) give_up: Duration,
    /// Show a progress bar per phase (on stderr, when it is a terminal).
    pub(crate) progress: bool,
}

impl Settings {
    /// The full run: under a minute.
    pub(crate) fn full() -> Self {
        Self {
            phase: Duration::from_secs(4),
            users: 16,
            think: Duration::from_millis(30),
            give_up: Duration::from_millis(2500),
            progress: true,
        }
    }

    /// The quick run: about twenty seconds.
    pub(crate) fn quick() -> Self {
        Self {
            phase: Duration::from_millis(1500),
            ..Self::full()
        }
    }
}

/// What one request to the gateway came back as.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// A page with every part fresh.
    Complete,
    /// A page with these parts (bits in [`PARTS`] order) from fallbacks.
    Degraded(u8),
    /// No page: an error status, a transport error or a request given up on.
    Error,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    latency: Duration,
    answer: Answer,
}

/// A breaker state change seen while polling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Transition {
    /// When, since the start of the phase.
    pub(crate) at: Duration,
    /// The breaker's name.
    pub(crate) breaker: &'static str,
    /// The state before.
    pub(crate) from: CircuitState,
    /// The state after.
    pub(crate) to: CircuitState,
}

/// The results of one phase against one gateway.
#[derive(Debug, Clone)]
pub(crate) struct PhaseReport {
    /// Which phase.
    pub(crate) phase: Phase,
    /// How long it took, draining included.
    pub(crate) elapsed: Duration,
    /// Requests sent.
    pub(crate) requests: u64,
    /// Latency percentiles (nearest rank) and maximum.
    pub(crate) p50: Duration,
    /// See [`PhaseReport::p50`].
    pub(crate) p95: Duration,
    /// See [`PhaseReport::p50`].
    pub(crate) p99: Duration,
    /// See [`PhaseReport::p50`].
    pub(crate) max: Duration,
    /// Pages with every part fresh.
    pub(crate) complete: u64,
    /// Pages with at least one part from a fallback.
    pub(crate) degraded: u64,
    /// Per part (in the order recommendations, profile, inventory), pages where it was
    /// degraded.
    pub(crate) degraded_parts: [u64; 3],
    /// Requests that got no page.
    pub(crate) errors: u64,
    /// Breaker state changes during the phase (resilient gateway only).
    pub(crate) transitions: Vec<Transition>,
}

impl PhaseReport {
    fn new(
        phase: Phase,
        elapsed: Duration,
        mut samples: Vec<Sample>,
        transitions: Vec<Transition>,
    ) -> Self {
        samples.sort_by_key(|s| s.latency);
        let n = samples.len();
        let pct = |p: usize| {
            // Nearest rank: the smallest value with at least p % of the samples at or below it.
            if n == 0 {
                Duration::ZERO
            } else {
                samples[(n * p).div_ceil(100).max(1) - 1].latency
            }
        };
        let mut report = Self {
            phase,
            elapsed,
            requests: n as u64,
            p50: pct(50),
            p95: pct(95),
            p99: pct(99),
            max: samples.last().map_or(Duration::ZERO, |s| s.latency),
            complete: 0,
            degraded: 0,
            degraded_parts: [0; 3],
            errors: 0,
            transitions,
        };
        for s in &samples {
            match s.answer {
                Answer::Complete => report.complete += 1,
                Answer::Degraded(bits) => {
                    report.degraded += 1;
                    for (i, count) in report.degraded_parts.iter_mut().enumerate() {
                        if bits & (1 << i) != 0 {
                            *count += 1;
                        }
                    }
                }
                Answer::Error => report.errors += 1,
            }
        }
        report
    }

    fn share(&self, count: u64) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            ratio(count, self.requests)
        }
    }
}

#[allow(clippy::cast_precision_loss)] // request counts are far below 2^52
fn ratio(a: u64, b: u64) -> f64 {
    a as f64 / b as f64
}

/// The results of the phases against one gateway.
#[derive(Debug, Clone)]
pub(crate) struct GatewayReport {
    /// Which gateway.
    pub(crate) gateway: Gateway,
    /// One report per phase, in [`Phase::ALL`] order.
    pub(crate) phases: Vec<PhaseReport>,
}

/// The results of a whole run.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    /// The settings it ran with.
    pub(crate) settings: Settings,
    /// One report per gateway, in [`Gateway::ALL`] order.
    pub(crate) gateways: Vec<GatewayReport>,
    /// `resilient::health()` at the end.
    pub(crate) health: resilient::HealthReport,
    /// Wall time of the whole run.
    pub(crate) elapsed: Duration,
}

/// Polls the resilient gateway's breakers and records every state change it sees.
#[derive(Debug, Default)]
struct Watcher {
    seen: Mutex<Vec<(Instant, Transition)>>,
}

impl Watcher {
    fn spawn(self: &Arc<Self>) -> JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let state = |name| resilient::breaker(name).map_or(CircuitState::Closed, |b| b.state());
            let mut last = BREAKERS.map(state);
            loop {
                sleep(Duration::from_millis(5)).await;
                for (name, last) in BREAKERS.iter().zip(&mut last) {
                    let now = state(name);
                    if now != *last {
                        let t = Transition {
                            at: Duration::ZERO,
                            breaker: name,
                            from: *last,
                            to: now,
                        };
                        this.seen
                            .lock()
                            .expect("not poisoned")
                            .push((Instant::now(), t));
                        *last = now;
                    }
                }
            }
        })
    }

    /// Every change seen so far, timed from `since`.
    fn take(&self, since: Instant) -> Vec<Transition> {
        let seen = std::mem::take(&mut *self.seen.lock().expect("not poisoned"));
        seen.into_iter()
            .map(|(when, t)| Transition {
                at: when.saturating_duration_since(since),
                ..t
            })
            .collect()
    }
}

/// Puts the resilient gateway's breakers back to `Closed`, for a fresh run in one process.
pub(crate) fn reset_breakers() {
    for name in BREAKERS {
        if let Some(b) = resilient::breaker(name) {
            b.reset();
        }
    }
}

/// Runs every phase against both gateways.
pub(crate) async fn run(settings: &Settings) -> Report {
    let started = Instant::now();
    reset_breakers();
    let services = Services::start().await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(settings.give_up)
        .build()
        .expect("a plain HTTP client builds");
    let watcher = Arc::new(Watcher::default());
    let mut gateways = Vec::new();
    for gateway in Gateway::ALL {
        let (addr, task) = start_gateway(gateway, services.downstream.clone()).await;
        let watch = (gateway == Gateway::Resilient).then(|| watcher.spawn());
        let mut phases = Vec::new();
        for (i, phase) in Phase::ALL.into_iter().enumerate() {
            services.apply(phase);
            let bar = progress_bar(settings, gateway, i, phase);
            let start = Instant::now();
            let samples = drive(&client, addr, settings, &bar).await;
            let elapsed = start.elapsed();
            let transitions = watcher.take(start);
            let report = PhaseReport::new(phase, elapsed, samples, transitions);
            bar.finish_with_message(bar_summary(&report));
            phases.push(report);
        }
        services.apply(Phase::Healthy);
        if let Some(w) = watch {
            w.abort();
        }
        task.abort();
        gateways.push(GatewayReport { gateway, phases });
    }
    Report {
        settings: settings.clone(),
        gateways,
        health: resilient::health(),
        elapsed: started.elapsed(),
    }
}

fn progress_bar(settings: &Settings, gateway: Gateway, i: usize, phase: Phase) -> ProgressBar {
    if !settings.progress {
        return ProgressBar::hidden();
    }
    let len = u64::try_from(settings.phase.as_millis()).unwrap_or(u64::MAX);
    let style = ProgressStyle::with_template("{prefix:<34} [{bar:24}] {msg}")
        .expect("a valid template")
        .progress_chars("=> ");
    let bar = ProgressBar::new(len).with_style(style);
    bar.set_prefix(format!(
        "{:<9} {}/5 {}",
        gateway.label(),
        i + 1,
        phase.label()
    ));
    bar
}

fn bar_summary(r: &PhaseReport) -> String {
    format!(
        "{} requests, p99 {}, {:.0}% degraded, {} errors",
        r.requests,
        fmt_duration(r.p99),
        100.0 * r.share(r.degraded),
        r.errors
    )
}

/// Sends requests from `settings.users` users for `settings.phase`, then waits for the ones
/// in flight.
async fn drive(
    client: &reqwest::Client,
    gateway: SocketAddr,
    settings: &Settings,
    bar: &ProgressBar,
) -> Vec<Sample> {
    let start = Instant::now();
    let deadline = start + settings.phase;
    let sent = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let count = settings.users;
    let users: Vec<JoinHandle<Vec<Sample>>> = (0..count)
        .map(|u| {
            let client = client.clone();
            let think = settings.think;
            let (sent, failed) = (Arc::clone(&sent), Arc::clone(&failed));
            tokio::spawn(async move {
                let mut samples = Vec::new();
                let mut seed = mix(u + 1);
                // Users arrive spread over two think times, not all in the same instant.
                sleep(think.mul_f64(2.0 * ratio(u, count))).await;
                while Instant::now() < deadline {
                    seed = mix(seed);
                    let url = format!(
                        "http://{gateway}/product/user-{}/sku-{}",
                        seed % 1000,
                        (seed >> 20) % 97
                    );
                    let t = Instant::now();
                    let answer = ask(&client, url).await;
                    samples.push(Sample {
                        latency: t.elapsed(),
                        answer,
                    });
                    sent.fetch_add(1, Ordering::Relaxed);
                    if matches!(answer, Answer::Error) {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    // Uniform in [think / 2, 3 * think / 2].
                    let pause = think / 2 + think.mul_f64(ratio(mix(seed) % 1001, 1000));
                    sleep(pause).await;
                }
                samples
            })
        })
        .collect();
    let ticker = {
        let bar = bar.clone();
        let (sent, failed) = (Arc::clone(&sent), Arc::clone(&failed));
        tokio::spawn(async move {
            loop {
                let ms = start.elapsed().as_millis();
                bar.set_position(u64::try_from(ms).unwrap_or(u64::MAX));
                let (s, f) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
                let draining = if Instant::now() >= deadline {
                    ", draining"
                } else {
                    ""
                };
                bar.set_message(format!("{s} requests, {f} errors{draining}"));
                sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let mut samples = Vec::new();
    for user in users {
        samples.extend(user.await.expect("a user task does not panic"));
    }
    ticker.abort();
    samples
}

async fn ask(client: &reqwest::Client, url: String) -> Answer {
    let Ok(response) = client.get(url).send().await else {
        return Answer::Error;
    };
    if response.status() != reqwest::StatusCode::OK {
        return Answer::Error;
    }
    let Ok(text) = response.text().await else {
        return Answer::Error;
    };
    let Ok(page) = serde_json::from_str::<Value>(&text) else {
        return Answer::Error;
    };
    let Some(degraded) = page.get("degraded").and_then(Value::as_array) else {
        return Answer::Error;
    };
    let bits = degraded
        .iter()
        .filter_map(|d| PARTS.iter().position(|p| Some(*p) == d.as_str()))
        .fold(0u8, |bits, i| bits | (1 << i));
    if bits == 0 {
        Answer::Complete
    } else {
        Answer::Degraded(bits)
    }
}

// ------------------------------------------------------------------------------------------
// Reporting
// ------------------------------------------------------------------------------------------

/// `12 ms` below a second, `2.01 s` above.
pub(crate) fn fmt_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

fn fmt_state(s: CircuitState) -> &'static str {
    match s {
        CircuitState::Closed => "closed",
        CircuitState::Open => "open",
        CircuitState::HalfOpen => "half-open",
        CircuitState::ForcedOpen => "forced-open",
        CircuitState::Disabled => "disabled",
    }
}

/// The transitions of one phase, grouped by breaker: `recommendations closed>open>half-open`.
fn fmt_transitions(ts: &[Transition]) -> String {
    let mut out = String::new();
    for name in BREAKERS {
        let mine: Vec<&Transition> = ts.iter().filter(|t| t.breaker == name).collect();
        let Some(first) = mine.first() else { continue };
        if !out.is_empty() {
            out.push_str("; ");
        }
        let short = name.trim_start_matches("storefront.");
        let _ = write!(out, "{short} {}", fmt_state(first.from));
        for t in mine {
            let _ = write!(out, ">{}", fmt_state(t.to));
        }
    }
    if out.is_empty() {
        out.push('-');
    }
    out
}

impl Report {
    /// Why the resilient gateway missed its promise, if it did: a p99 at or above
    /// [`P99_BUDGET`] or an error, per phase.
    pub(crate) fn violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        for g in self
            .gateways
            .iter()
            .filter(|g| g.gateway == Gateway::Resilient)
        {
            for p in &g.phases {
                if p.p99 >= P99_BUDGET {
                    out.push(format!(
                        "{}: p99 {} is not under {}",
                        p.phase.label(),
                        fmt_duration(p.p99),
                        fmt_duration(P99_BUDGET)
                    ));
                }
                if p.errors > 0 {
                    out.push(format!("{}: {} errors", p.phase.label(), p.errors));
                }
            }
        }
        out
    }

    /// One phase of one gateway.
    #[cfg_attr(not(test), allow(dead_code))] // for tests/storefront.rs
    pub(crate) fn phase(&self, gateway: Gateway, phase: Phase) -> &PhaseReport {
        self.gateways
            .iter()
            .find(|g| g.gateway == gateway)
            .and_then(|g| g.phases.iter().find(|p| p.phase == phase))
            .expect("every gateway runs every phase")
    }

    /// Every breaker transition observed, in order, with the phase it happened in.
    #[cfg_attr(not(test), allow(dead_code))] // for tests/storefront.rs
    pub(crate) fn transitions(&self) -> impl Iterator<Item = (Phase, &Transition)> {
        self.gateways
            .iter()
            .flat_map(|g| g.phases.iter())
            .flat_map(|p| p.transitions.iter().map(move |t| (p.phase, t)))
    }

    /// The tables: one per gateway, one row per phase, then the final health.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        for g in &self.gateways {
            let title = match g.gateway {
                Gateway::Resilient => {
                    "resilient gateway: timeout 200ms, breaker 5 failures/30s, bulkhead 10, \
                     1 retry after 50ms, fallbacks"
                }
                Gateway::Naive => "naive gateway: the same calls, no attributes",
            };
            let _ = writeln!(out, "\n{title}");
            let _ = writeln!(
                out,
                "{:<21} {:>6} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>7}  breaker transitions",
                "phase", "reqs", "p50", "p95", "p99", "max", "complete", "degraded", "errors"
            );
            for p in &g.phases {
                let transitions = match g.gateway {
                    Gateway::Resilient => fmt_transitions(&p.transitions),
                    Gateway::Naive => "(no breakers)".to_string(),
                };
                let _ = writeln!(
                    out,
                    "{:<21} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8.1}% {:>8.1}% {:>7}  {}",
                    p.phase.label(),
                    p.requests,
                    fmt_duration(p.p50),
                    fmt_duration(p.p95),
                    fmt_duration(p.p99),
                    fmt_duration(p.max),
                    100.0 * p.share(p.complete),
                    100.0 * p.share(p.degraded),
                    p.errors,
                    transitions
                );
            }
        }
        let _ = write!(out, "\nresilient::health() at the end: {}", self.health);
        let _ = writeln!(
            out,
            "{} users per phase, {} per phase, whole run {}",
            self.settings.users,
            fmt_duration(self.settings.phase),
            fmt_duration(self.elapsed)
        );
        out
    }

    /// The same results as JSON.
    pub(crate) fn to_json(&self) -> Value {
        // Milliseconds, to a tenth.
        let ms = |d: Duration| (d.as_secs_f64() * 10_000.0).round() / 10.0;
        let gateways: Vec<Value> = self
            .gateways
            .iter()
            .map(|g| {
                let phases: Vec<Value> = g
                    .phases
                    .iter()
                    .map(|p| {
                        let transitions: Vec<Value> = p
                            .transitions
                            .iter()
                            .map(|t| {
                                json!({
                                    "at_ms": ms(t.at),
                                    "breaker": t.breaker,
                                    "from": fmt_state(t.from),
                                    "to": fmt_state(t.to),
                                })
                            })
                            .collect();
                        json!({
                            "phase": p.phase.label(),
                            "elapsed_ms": ms(p.elapsed),
                            "requests": p.requests,
                            "p50_ms": ms(p.p50),
                            "p95_ms": ms(p.p95),
                            "p99_ms": ms(p.p99),
                            "max_ms": ms(p.max),
                            "complete": p.complete,
                            "complete_share": p.share(p.complete),
                            "degraded": p.degraded,
                            "degraded_share": p.share(p.degraded),
                            "degraded_parts": {
                                "recommendations": p.degraded_parts[0],
                                "profile": p.degraded_parts[1],
                                "inventory": p.degraded_parts[2],
                            },
                            "errors": p.errors,
                            "breaker_transitions": transitions,
                        })
                    })
                    .collect();
                json!({ "gateway": g.gateway.label(), "phases": phases })
            })
            .collect();
        let breakers: Vec<Value> = self
            .health
            .breakers()
            .iter()
            .map(|b| json!({ "name": b.name, "state": fmt_state(b.state), "status": format!("{:?}", b.status) }))
            .collect();
        json!({
            "settings": {
                "phase_ms": ms(self.settings.phase),
                "users": self.settings.users,
                "think_ms": ms(self.settings.think),
                "give_up_ms": ms(self.settings.give_up),
            },
            "gateways": gateways,
            "health": { "status": format!("{:?}", self.health.status()), "breakers": breakers },
            "p99_budget_ms": ms(P99_BUDGET),
            "violations": self.violations(),
            "elapsed_ms": ms(self.elapsed),
        })
    }
}
