//! The storefront: a product page that must answer in under 500 ms while its dependencies
//! misbehave, served by a gateway protected by the five attributes and, for comparison, by
//! the same gateway without them.
//!
//! `cargo run --release --example storefront [-- --quick] [-- --json]`
//!
//! Three real HTTP services (recommendations, profiles, inventory) and two gateways serving
//! `GET /product/{user}/{item}` run on 127.0.0.1. A load generator drives each gateway through
//! five phases: healthy, recommendations slow (2 s), inventory failing, profiles hanging,
//! recovery. At the end, one table per gateway. The run takes under a minute (`--quick`: about
//! twenty seconds) and exits non-zero if the resilient gateway's p99 reaches 500 ms or it
//! returns an error in any phase.
//!
//! With `--features metrics`, the gateway's `resilient_*` metrics are also served in Prometheus
//! text format on 127.0.0.1 during the run, and their totals are printed at the end.

mod scenario;

use std::process::ExitCode;

use scenario::{Report, Settings};

#[tokio::main]
async fn main() -> ExitCode {
    let mut settings = Settings::full();
    let mut json = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--quick" => settings = Settings::quick(),
            "--json" => json = true,
            "-h" | "--help" => {
                println!("usage: storefront [--quick] [--json]");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!(
                    "storefront: unknown argument {other:?}; usage: storefront [--quick] [--json]"
                );
                return ExitCode::from(2);
            }
        }
    }
    if !json {
        println!(
            "storefront: 3 services and 2 gateways on 127.0.0.1, {} users, {} per phase",
            settings.users,
            scenario::fmt_duration(settings.phase)
        );
    }
    #[cfg(feature = "metrics")]
    let metrics = metrics_endpoint::serve(!json).await;
    let report: Report = scenario::run(&settings).await;
    let violations = report.violations();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.to_json()).expect("JSON values serialise")
        );
    } else {
        print!("{}", report.render());
        #[cfg(feature = "metrics")]
        metrics_endpoint::summary(&metrics);
        if violations.is_empty() {
            println!(
                "\nOK: the resilient gateway kept p99 under {} with no errors in every phase.",
                scenario::fmt_duration(scenario::P99_BUDGET)
            );
        }
    }
    if violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        for v in &violations {
            eprintln!("FAILED: resilient gateway, {v}");
        }
        ExitCode::FAILURE
    }
}

/// The metrics endpoint of the `metrics` feature.
#[cfg(feature = "metrics")]
mod metrics_endpoint {
    use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

    /// Installs the Prometheus recorder and serves `/metrics` on an ephemeral port.
    pub(crate) async fn serve(announce: bool) -> PrometheusHandle {
        let handle = PrometheusBuilder::new()
            .install_recorder()
            .expect("no other metrics recorder is installed");
        let render = handle.clone();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || async move { render.render() }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        if announce {
            let addr = listener.local_addr().expect("local address");
            println!("metrics: http://{addr}/metrics (Prometheus text, while the run lasts)");
        }
        tokio::spawn(async move { axum::serve(listener, app).await });
        handle
    }

    /// The call and transition totals, as the endpoint reports them.
    pub(crate) fn summary(handle: &PrometheusHandle) {
        println!("\nmetrics endpoint, totals at the end:");
        for line in handle.render().lines() {
            if line.starts_with("resilient_calls_total")
                || line.starts_with("resilient_circuit_transitions_total")
                || line.starts_with("resilient_fallbacks_total")
            {
                println!("  {line}");
            }
        }
    }
}
