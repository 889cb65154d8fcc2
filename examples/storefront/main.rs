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
    let report: Report = scenario::run(&settings).await;
    let violations = report.violations();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.to_json()).expect("JSON values serialise")
        );
    } else {
        print!("{}", report.render());
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
