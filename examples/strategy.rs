//! Prints the whole resilience strategy of this binary, generated from the code itself: every
//! annotated function, its policies outermost first, their effective configuration and where
//! they are declared. Nothing is called first: the policies register at link time.
//!
//! `cargo run --example strategy`. Set `RESILIENT__TIMEOUT__PROFILES__DURATION=350ms` (or any
//! other override) to see configuration from the environment applied.

use resilient::{bulkhead, circuit_breaker, fallback, retry, timeout};

/// The error every dependency returns.
#[derive(Debug)]
pub struct ApiError;

impl From<resilient::Error> for ApiError {
    fn from(_: resilient::Error) -> Self {
        ApiError
    }
}

async fn popular_items(_user: u64, _err: ApiError) -> Result<Vec<u64>, ApiError> {
    Ok(vec![])
}

async fn guest(_user: u64, _err: ApiError) -> Result<String, ApiError> {
    Ok("guest".into())
}

/// Recommendations: the full stack in the recommended order.
///
/// # Errors
/// When the dependency fails and no fallback answers.
#[fallback(popular_items)]
#[retry(attempts = 2, backoff = "50ms")]
#[circuit_breaker(threshold = 5, window = "30s", name = "recommendations")]
#[timeout("200ms")]
#[bulkhead(pool = 10, name = "recommendations")]
pub async fn recommendations(user: u64) -> Result<Vec<u64>, ApiError> {
    Ok(vec![user])
}

/// Profiles: a critical dependency.
///
/// # Errors
/// When the dependency fails and no fallback answers.
#[fallback(guest)]
#[circuit_breaker(failure_rate = 0.5, last = 20, critical = true, name = "profiles")]
#[timeout("200ms", name = "profiles")]
pub async fn profile(user: u64) -> Result<String, ApiError> {
    Ok(user.to_string())
}

/// Payments: no fallback, a longer timeout, a queue.
///
/// # Errors
/// When the dependency fails and no fallback answers.
#[circuit_breaker(
    failure_rate = 0.25,
    window = "1m",
    min_calls = 50,
    cooldown = "30s",
    max_cooldown = "5m",
    ramp = "1m"
)]
#[timeout("2s")]
#[bulkhead(pool = 4, queue = 16, max_wait = "500ms")]
pub async fn charge(cents: u64) -> Result<u64, ApiError> {
    Ok(cents)
}

fn main() {
    if let Err(e) = resilient::config::apply_env() {
        eprintln!("configuration refused: {e}");
        std::process::exit(2);
    }
    let policies = resilient::policies();
    let rows: Vec<[String; 5]> = policies
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let first = i == 0 || policies[i - 1].function != p.function;
            [
                if first {
                    p.function.to_string()
                } else {
                    String::new()
                },
                format!("{}{}", "  ".repeat(p.layer), p.kind),
                p.name.to_string(),
                if first {
                    format!("{}:{}", p.file, p.line)
                } else {
                    String::new()
                },
                p.config.clone(),
            ]
        })
        .collect();
    let header = [
        "function",
        "policy (outermost first)",
        "name",
        "declared at",
        "configuration",
    ];
    let width = |c: usize| {
        rows.iter()
            .map(|r| r[c].len())
            .chain([header[c].len()])
            .max()
            .unwrap_or(0)
    };
    let widths = [width(0), width(1), width(2), width(3)];
    let line = |r: [&str; 5]| {
        println!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        );
    };
    line(header);
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3], &r[4]]);
    }
    let mut functions: Vec<_> = policies.iter().map(|p| p.function).collect();
    functions.dedup();
    println!(
        "\n{} policies in {} functions",
        policies.len(),
        functions.len()
    );
}
