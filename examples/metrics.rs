//! Serves the `resilient_*` metrics in Prometheus text format on 127.0.0.1, while a flaky
//! dependency behind a breaker, a timeout and a bulkhead is called in the background.
//!
//! `cargo run --example metrics --features metrics`, then
//! `curl http://127.0.0.1:<port>/metrics` (the port is printed). `--once` scrapes itself once,
//! prints the text and exits.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use resilient::{bulkhead, circuit_breaker, fallback, retry, timeout};

/// The dependency's error.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// The dependency failed.
    Down,
    /// A policy refused the call (the example only counts them).
    Resilience,
}

impl From<resilient::Error> for ApiError {
    fn from(_: resilient::Error) -> Self {
        ApiError::Resilience
    }
}

static CALLS: AtomicU64 = AtomicU64::new(0);

async fn cached(_err: ApiError) -> Result<u64, ApiError> {
    Ok(0)
}

/// Every third call fails, every fifth is slow.
#[fallback(cached, args = (), name = "inventory")]
#[retry(attempts = 2, backoff = "5ms", name = "inventory")]
#[circuit_breaker(failure_rate = 0.5, last = 10, cooldown = "200ms", name = "inventory")]
#[timeout("50ms", name = "inventory")]
#[bulkhead(pool = 4, name = "inventory")]
pub(crate) async fn inventory() -> Result<u64, ApiError> {
    let n = CALLS.fetch_add(1, Ordering::Relaxed);
    if n % 5 == 0 {
        tokio::time::sleep(Duration::from_millis(80)).await;
    }
    if n % 3 == 0 {
        Err(ApiError::Down)
    } else {
        Ok(n)
    }
}

/// Installs the Prometheus recorder and serves its text on an ephemeral port of 127.0.0.1.
///
/// # Panics
/// If the recorder is already installed or the port cannot be bound.
pub(crate) async fn serve() -> (SocketAddr, PrometheusHandle) {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .expect("no other metrics recorder is installed");
    let render = handle.clone();
    let app = Router::new().route("/metrics", get(move || async move { render.render() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, handle)
}

/// Calls the dependency `n` times, four at a time.
pub(crate) async fn load(n: usize) {
    for _ in 0..n / 4 {
        // Boxed: four full stacks side by side make a large future to move around.
        let _ = tokio::join!(
            Box::pin(inventory()),
            Box::pin(inventory()),
            Box::pin(inventory()),
            Box::pin(inventory())
        );
    }
}

#[tokio::main]
async fn main() {
    let once = std::env::args().any(|a| a == "--once");
    let (addr, _handle) = serve().await;
    println!("metrics at http://{addr}/metrics");
    load(200).await;
    if once {
        let text = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .expect("scrape")
            .text()
            .await
            .expect("body");
        println!("{text}");
        return;
    }
    loop {
        load(40).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
