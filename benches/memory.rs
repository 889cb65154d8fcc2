//! Memory of the policies (issue 5): the size of a `last = 100` count-window breaker, and the
//! resident memory of 10 000 named policies created the way the attributes create them
//! (a per-site static, registered by name in the process-wide registry on first use).
//!
//! It also prints the size of the future each annotated `async fn` returns: the futures are
//! moved (copied) while the layers are built and awaited, so their size is a per-call cost.
//!
//! Not a criterion bench: each scenario runs in a fresh child process and reports the growth
//! of its resident set (`VmRSS`), so allocator overhead and the registry's hash maps count.
//! `cargo bench -p resilient-benches --bench memory` prints one `memory:` line per scenario.

use std::hint::black_box;

use resilient::__private::{BreakerSite, BulkheadSite, Site};
use resilient::{BreakerConfig, BulkheadConfig, CircuitBreaker, TripRule};

const POLICIES: usize = 10_000;
/// Breakers built directly for the per-breaker measurement; many, so 4 KiB pages round away.
const DIRECT: usize = 100_000;

fn count_window() -> BreakerConfig {
    BreakerConfig::new(TripRule::RateOverCalls {
        failure_rate: 0.5,
        last: 100,
        min_calls: 100,
    })
}

fn bulkhead_config() -> BulkheadConfig {
    BulkheadConfig {
        pool: 10,
        queue: 0,
        max_wait: None,
    }
}

#[path = "shared/cases.rs"]
mod cases;
use cases::{
    E, breaker_count, breaker_time, bulkhead_only, fallback_only, full_stack, op, retry_only,
    timeout_only,
};

/// Sizes of the futures the annotated functions return (never polled).
fn future_sizes() -> String {
    let sizes = [
        ("bare", size_of_val(&op(1))),
        ("breaker_count", size_of_val(&breaker_count(1))),
        ("breaker_time", size_of_val(&breaker_time(1))),
        ("timeout", size_of_val(&timeout_only(1))),
        ("bulkhead", size_of_val(&bulkhead_only(1))),
        ("retry", size_of_val(&retry_only(1))),
        ("fallback", size_of_val(&fallback_only(1))),
        ("full_stack", size_of_val(&full_stack(1))),
    ];
    sizes
        .iter()
        .map(|(n, s)| format!("{n}={s}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Resident set size of this process in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn leak_str(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// Registers `POLICIES` named policies of one kind through their sites, as the expansion of
/// `#[circuit_breaker(name = "...")]` / `#[bulkhead(name = "...")]` does on the first call.
fn named_policies(kind: &str) -> usize {
    for i in 0..POLICIES {
        let name = leak_str(format!("policy-{i:05}"));
        let site: &'static Site = Box::leak(Box::new(Site::new(name, file!(), 1)));
        match kind {
            "named_breakers_default" => {
                let s: &'static BreakerSite = Box::leak(Box::new(BreakerSite::new(
                    site,
                    Some(name),
                    BreakerConfig::DEFAULT,
                )));
                black_box(s.get());
            }
            "named_breakers_count" => {
                let s: &'static BreakerSite =
                    Box::leak(Box::new(BreakerSite::new(site, Some(name), count_window())));
                black_box(s.get());
            }
            "named_bulkheads" => {
                let s: &'static BulkheadSite = Box::leak(Box::new(BulkheadSite::new(
                    site,
                    Some(name),
                    bulkhead_config(),
                )));
                black_box(s.get());
            }
            other => panic!("unknown scenario {other}"),
        }
    }
    POLICIES
}

/// Builds `DIRECT` count-window breakers in one `Vec`: the breaker itself, its bit ring and the
/// allocator's overhead, without the registry.
fn direct_breakers() -> usize {
    let v: Vec<CircuitBreaker> = (0..DIRECT)
        .map(|_| CircuitBreaker::new("direct", count_window()).expect("valid config"))
        .collect();
    black_box(&v);
    std::mem::forget(v);
    DIRECT
}

fn child(scenario: &str) {
    // Touch the allocator and the registry first so their fixed costs are not counted.
    let warm: Vec<u8> = vec![1; 1 << 16];
    black_box(&warm);
    let _ = resilient::breaker("warm-up");
    let before = rss();
    let n = match scenario {
        "direct_count_breakers" => direct_breakers(),
        other => named_policies(other),
    };
    let after = rss();
    let grown = after.saturating_sub(before);
    #[allow(clippy::cast_precision_loss)] // small numbers
    let (mb, per) = (grown as f64 / 1e6, grown as f64 / n as f64);
    println!("memory: {scenario} n={n} rss_growth_bytes={grown} mb={mb:.2} bytes_each={per:.0}");
}

fn main() {
    if let Ok(scenario) = std::env::var("RESILIENT_MEMORY_SCENARIO") {
        child(&scenario);
        return;
    }
    // cargo bench passes `--bench`; nothing else is expected.
    println!(
        "memory: size_of CircuitBreaker={} bytes (inline; a `last = 100` ring adds {} bytes of \
         bits on the heap: 40 outcomes per generation-tagged 8-byte cell), size_of \
         BreakerSite={} bytes, size_of Bulkhead={} bytes",
        size_of::<CircuitBreaker>(),
        100_u64.div_ceil(40) * 8,
        size_of::<BreakerSite>(),
        size_of::<resilient::Bulkhead>(),
    );
    println!(
        "memory: future bytes {} (resilient::Error={}, Outcome<E>={})",
        future_sizes(),
        size_of::<resilient::Error>(),
        size_of::<resilient::Outcome<E>>()
    );
    let exe = std::env::current_exe().expect("current exe");
    for scenario in [
        "direct_count_breakers",
        "named_breakers_default",
        "named_breakers_count",
        "named_bulkheads",
    ] {
        let out = std::process::Command::new(&exe)
            .env("RESILIENT_MEMORY_SCENARIO", scenario)
            .output()
            .expect("run scenario");
        assert!(out.status.success(), "{scenario}: {out:?}");
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
}
