//! Per-call overhead of the five attributes against a bare call and against the peers users
//! would pick instead (issue 5): failsafe, recloser, tower-resilience, tower and backon, plus
//! tokio's own `timeout` and `Semaphore`.
//!
//! Every case runs the same trivial `async fn op(x: u64) -> Result<u64, E>` that returns at
//! once. Each is measured twice:
//!
//! - `current_thread/<case>`: one task on a current-thread runtime calls it in a loop;
//! - `two_workers/<case>`: two tasks on a 2-worker runtime call it at the same time through one
//!   shared policy (the same static, or clones of one `Arc`-backed peer policy); the time is
//!   per call as seen by each worker (the slower worker's loop time / iterations).
//!
//! The loop runs inside one `block_on`, so no per-iteration runtime entry is measured. A sample
//! is timed with the looping thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), so other work on a
//! shared machine does not inflate it; `BENCH_CLOCK=wall` times wall-clock instead. Run it with
//! `benches/run.sh`, which also turns criterion's medians into a table of ratios.

// Wall time is measured with `std::time::Instant`, as criterion does: the measurement must not
// go through tokio's pausable clock (which the crate's own code is required to use).
#![allow(clippy::disallowed_methods)]

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use resilient::{BreakerConfig, CircuitBreaker, TripRule};
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;
use tower::{Service, ServiceBuilder, ServiceExt};

#[path = "shared/cases.rs"]
mod cases;
use cases::{
    E, FAIL, breaker_consecutive, breaker_count, breaker_forced_open, breaker_open, breaker_time,
    breaker_time_unsaturated, bulkhead_only, fallback_handler, fallback_only, full_stack,
    full_stack_count, full_stack_unsaturated, op, retry_only, timeout_only, work,
};

// ---------------------------------------------------------------------------------------
// References the targets are stated against.
// ---------------------------------------------------------------------------------------

/// The "ideal hand-written lock-free breaker wrapper": one load of the state on admission, a
/// read (and a write only if there is something to reset) of a failure counter on success.
#[derive(Debug, Default)]
struct IdealBreaker {
    open: AtomicU32,
    failures: AtomicU32,
}

impl IdealBreaker {
    /// A hand-written future rather than an `async fn`: in the spawned loop, the `async fn`'s
    /// state machine was copied right after being built (wide loads of narrow stores, which
    /// the CPU cannot forward) and cost 13.6 ns instead of 3.7; an ideal wrapper avoids that.
    fn call<T, F: Future<Output = Result<T, E>>>(&self, fut: F) -> IdealCall<'_, F> {
        IdealCall {
            breaker: self,
            fut: (self.open.load(Ordering::Acquire) == 0).then_some(fut),
        }
    }
}

pin_project_lite::pin_project! {
    struct IdealCall<'a, F> {
        breaker: &'a IdealBreaker,
        #[pin]
        fut: Option<F>,
    }
}

impl<T, F: Future<Output = Result<T, E>>> Future for IdealCall<'_, F> {
    type Output = Result<T, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(fut) = this.fut.as_pin_mut() else {
            return Poll::Ready(Err(E::Down));
        };
        let out = ready!(fut.poll(cx));
        let breaker = this.breaker;
        if out.is_ok() {
            if breaker.failures.load(Ordering::Relaxed) != 0 {
                breaker.failures.store(0, Ordering::Relaxed);
            }
        } else if breaker.failures.fetch_add(1, Ordering::AcqRel) + 1 >= 5 {
            breaker.open.store(1, Ordering::Release);
        }
        Poll::Ready(out)
    }
}

// ---------------------------------------------------------------------------------------
// Prototypes: the same work through the runtime's public API, without the expansion. They show
// what the runtime primitives cost by themselves (the difference to the `ours_*` cases is the
// expansion's own share), and `proto_flat_stack` what a hand-written flat stack costs. (They
// were written when the expansion nested one `async fn` per layer; it is flat now too.)
// ---------------------------------------------------------------------------------------

fn count_config() -> BreakerConfig {
    BreakerConfig::new(TripRule::RateOverCalls {
        failure_rate: 0.5,
        last: 100,
        min_calls: 100,
    })
}

fn time_config() -> BreakerConfig {
    BreakerConfig::new(TripRule::RateOverTime {
        failure_rate: 0.5,
        window: Duration::from_secs(10),
        min_calls: 20,
    })
}

static PROTO_COUNT: LazyLock<CircuitBreaker> =
    LazyLock::new(|| CircuitBreaker::new("proto-count", count_config()).expect("valid"));
static PROTO_TIME: LazyLock<CircuitBreaker> =
    LazyLock::new(|| CircuitBreaker::new("proto-time", time_config()).expect("valid"));
static PROTO_STACK_BREAKER: LazyLock<CircuitBreaker> =
    LazyLock::new(|| CircuitBreaker::new("proto-stack", time_config()).expect("valid"));
static PROTO_PERMITS: Semaphore = Semaphore::const_new(10);

/// `CircuitBreaker::try_acquire` + `record` called directly around the body.
async fn proto_breaker(breaker: &CircuitBreaker, x: u64) -> Result<u64, E> {
    let ticket = breaker.try_acquire()?;
    let out = op(x).await;
    breaker.record(ticket, out.is_err());
    out
}

/// The full stack's success path written flat: fallback > retry(2) > breaker (time window) >
/// timeout(200ms) > bulkhead(10), one `async fn` with synchronous admission and completion
/// around a single `tokio::time::timeout`.
async fn proto_flat_stack(x: u64) -> Result<u64, E> {
    let mut attempt = 1;
    let out = loop {
        let out = match PROTO_STACK_BREAKER.try_acquire() {
            Err(e) => Err(E::from(e)),
            Ok(ticket) => {
                let out = match PROTO_PERMITS.try_acquire() {
                    Err(_) => Err(E::from(resilient::Error::BulkheadFull { name: "proto" })),
                    Ok(_permit) => tokio::time::timeout(Duration::from_millis(200), op(x))
                        .await
                        .unwrap_or(Err(E::Down)),
                };
                PROTO_STACK_BREAKER.record(ticket, out.is_err());
                out
            }
        };
        if out.is_ok() || attempt >= 2 {
            break out;
        }
        attempt += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    match out {
        Ok(v) => Ok(v),
        Err(e) => fallback_handler(x, e).await,
    }
}

// ---------------------------------------------------------------------------------------
// The measurement harness.
// ---------------------------------------------------------------------------------------

fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("current-thread runtime")
}

fn two_workers() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("2-worker runtime")
}

/// Which runtime a group measures on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    CurrentThread,
    TwoWorkers,
}

/// What a sample's time is: this thread's CPU time by default, which the other work sharing
/// the machine does not inflate (a descheduled thread accrues none); `BENCH_CLOCK=wall` measures
/// wall time instead. Both are read on the thread that runs the loop.
#[derive(Debug, Clone, Copy)]
struct Stamp {
    wall: Instant,
    cpu: Option<Duration>,
    thread: std::thread::ThreadId,
}

static USE_WALL: LazyLock<bool> =
    LazyLock::new(|| std::env::var("BENCH_CLOCK").is_ok_and(|v| v == "wall"));

impl Stamp {
    fn now() -> Stamp {
        let cpu = if *USE_WALL {
            None
        } else {
            cpu_time::ThreadTime::try_now()
                .ok()
                .map(|t| t.as_duration())
        };
        Stamp {
            wall: Instant::now(),
            cpu,
            thread: std::thread::current().id(),
        }
    }

    /// Time since `self`; wall time if CPU time is off, unavailable, or the task moved to
    /// another thread in between.
    fn elapsed(self) -> Duration {
        let end = Stamp::now();
        match (self.cpu, end.cpu) {
            (Some(a), Some(b)) if self.thread == end.thread => b.saturating_sub(a),
            _ => self.wall.elapsed(),
        }
    }
}

/// Waits (spinning) until both workers have arrived, so their loops overlap. The harness spawns
/// the second task only after the first arrived, so the two are on different workers.
fn rendezvous(ready: &AtomicUsize) {
    ready.fetch_add(1, Ordering::AcqRel);
    while ready.load(Ordering::Acquire) < 2 {
        std::hint::spin_loop();
    }
}

/// Defines one case: `init` (async, run inside the runtime) builds the policy, which is cloned
/// per worker in two-worker mode; `call` is one call of the loop, with `$s` the policy and `$x`
/// the argument. The loop's result goes through `black_box`.
/// The measured loop of one task: `iters` calls, each result kept alive, and the time taken.
macro_rules! timed_loop {
    ($iters:expr, |$x:ident| $call:expr) => {{
        let start = Stamp::now();
        for i in 0..$iters {
            let $x = black_box(i);
            let out = $call;
            black_box(&out);
        }
        start.elapsed()
    }};
}

macro_rules! case {
    ($g:expr, $rt:expr, $mode:expr, $name:expr, |$s:ident| $init:expr, |$x:ident| $call:expr) => {{
        let rt: &Runtime = $rt;
        let mode: Mode = $mode;
        $g.bench_function($name, |b| {
            b.iter_custom(|iters| match mode {
                // In a spawned task, where a service's calls run (its handlers are tasks), not
                // in `block_on`'s own future: that differs only for code that asks whether it
                // is in a task (our `#[timeout]`'s runtime check; see BENCHMARKS.md).
                Mode::CurrentThread => rt.block_on(async {
                    tokio::spawn(async move {
                        #[allow(unused_mut, unused_variables, clippy::let_unit_value)]
                        let mut $s = $init;
                        timed_loop!(iters, |$x| $call)
                    })
                    .await
                    .expect("bench task")
                }),
                Mode::TwoWorkers => rt.block_on(async {
                    #[allow(clippy::let_unit_value)]
                    let shared = $init;
                    let ready = Arc::new(AtomicUsize::new(0));
                    let mut tasks = Vec::with_capacity(2);
                    for k in 0..2 {
                        #[allow(
                            unused_mut,
                            unused_variables,
                            clippy::let_unit_value,
                            clippy::clone_on_copy
                        )]
                        let mut $s = shared.clone();
                        let arrived = Arc::clone(&ready);
                        tasks.push(tokio::spawn(async move {
                            rendezvous(&arrived);
                            timed_loop!(iters, |$x| $call)
                        }));
                        // The second task is spawned only once the first runs (and so holds
                        // its worker, spinning): spawned together, one worker could take both
                        // from the injection queue and spin on the first forever while the
                        // second waits behind it and the other worker sleeps.
                        while ready.load(Ordering::Acquire) <= k {
                            tokio::task::yield_now().await;
                        }
                    }
                    let mut slowest = Duration::ZERO;
                    for t in tasks {
                        slowest = slowest.max(t.await.expect("bench task"));
                    }
                    slowest
                }),
            });
        });
    }};
}

/// Checks during set-up that a case does what its name says.
fn expect_ok<T: std::fmt::Debug, Er: std::fmt::Debug>(what: &str, r: &Result<T, Er>) {
    assert!(r.is_ok(), "{what}: expected success, got {r:?}");
}

fn expect_rejected<T: std::fmt::Debug, Er: std::fmt::Debug>(what: &str, r: &Result<T, Er>) {
    assert!(r.is_err(), "{what}: expected a rejection, got {r:?}");
}

fn tower_breaker_layer() -> tower_resilience::circuitbreaker::CircuitBreakerLayer {
    tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
        .failure_rate_threshold(0.5)
        .sliding_window_size(100)
        .wait_duration_in_open(Duration::from_secs(3600))
        .build()
        .expect("tower-resilience breaker config")
}

/// `op` as a tower service.
type OpService = tower::util::ServiceFn<fn(u64) -> std::future::Ready<Result<u64, E>>>;

fn op_service() -> OpService {
    tower::service_fn(|x: u64| std::future::ready(work(x)))
}

#[allow(clippy::too_many_lines)] // one flat list of cases reads best
fn cases(g: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, mode: Mode) {
    // --- the baseline and the references -------------------------------------------------
    case!(g, rt, mode, "bare", |s| (), |x| op(x).await);
    case!(
        g,
        rt,
        mode,
        "ref_ideal_breaker",
        |s| Arc::new(IdealBreaker::default()),
        |x| s.call(op(x)).await
    );
    case!(g, rt, mode, "ref_clock_read", |s| (), |x| {
        black_box(tokio::time::Instant::now());
        op(x).await
    });

    case!(g, rt, mode, "ref_handle_try_current", |s| (), |x| {
        black_box(tokio::runtime::Handle::try_current().is_ok());
        op(x).await
    });

    // --- ours ------------------------------------------------------------------------------
    case!(g, rt, mode, "ours_breaker_count", |s| (), |x| {
        breaker_count(x).await
    });
    case!(g, rt, mode, "ours_breaker_time", |s| (), |x| breaker_time(
        x
    )
    .await);
    case!(g, rt, mode, "ours_breaker_time_unsaturated", |s| (), |x| {
        breaker_time_unsaturated(x).await
    });
    case!(g, rt, mode, "ours_breaker_consecutive", |s| (), |x| {
        breaker_consecutive(x).await
    });
    case!(g, rt, mode, "ours_timeout", |s| (), |x| timeout_only(x)
        .await);
    case!(g, rt, mode, "ours_bulkhead", |s| (), |x| bulkhead_only(x)
        .await);
    case!(g, rt, mode, "ours_retry", |s| (), |x| retry_only(x).await);
    case!(g, rt, mode, "ours_fallback", |s| (), |x| fallback_only(x)
        .await);
    case!(
        g,
        rt,
        mode,
        "ours_open_rejection",
        |s| {
            let _ = breaker_open(FAIL).await;
            expect_rejected("ours_open_rejection", &breaker_open(1).await);
        },
        |x| breaker_open(x).await
    );
    case!(
        g,
        rt,
        mode,
        "ours_forced_open_rejection",
        |s| {
            let _ = breaker_forced_open(1).await;
            resilient::breaker("bench-forced-open")
                .expect("registered")
                .force_open();
            expect_rejected("ours_forced_open_rejection", &breaker_forced_open(1).await);
        },
        |x| breaker_forced_open(x).await
    );
    case!(g, rt, mode, "ours_full_stack", |s| (), |x| full_stack(x)
        .await);
    case!(g, rt, mode, "ours_full_stack_unsaturated", |s| (), |x| {
        full_stack_unsaturated(x).await
    });
    case!(g, rt, mode, "ours_full_stack_count", |s| (), |x| {
        full_stack_count(x).await
    });

    // --- prototypes: the runtime primitives without the expansion ---------------------------
    case!(g, rt, mode, "proto_breaker_count_direct", |s| (), |x| {
        proto_breaker(&PROTO_COUNT, x).await
    });
    case!(g, rt, mode, "proto_breaker_time_direct", |s| (), |x| {
        proto_breaker(&PROTO_TIME, x).await
    });
    case!(g, rt, mode, "proto_flat_stack", |s| (), |x| {
        proto_flat_stack(x).await
    });

    // --- tokio ---------------------------------------------------------------------------
    case!(g, rt, mode, "tokio_timeout", |s| (), |x| {
        tokio::time::timeout(Duration::from_secs(1), op(x)).await
    });
    case!(
        g,
        rt,
        mode,
        "semaphore_try_acquire",
        |s| Arc::new(Semaphore::new(10)),
        |x| {
            let _permit = s.try_acquire().expect("a free permit");
            op(x).await
        }
    );
    case!(
        g,
        rt,
        mode,
        "semaphore_acquire",
        |s| Arc::new(Semaphore::new(10)),
        |x| {
            let _permit = s.acquire().await.expect("open semaphore");
            op(x).await
        }
    );

    // --- failsafe --------------------------------------------------------------------------
    case!(
        g,
        rt,
        mode,
        "failsafe_consecutive",
        |s| {
            use failsafe::{backoff, failure_policy};
            failsafe::Config::new()
                .failure_policy(failure_policy::consecutive_failures(
                    5,
                    backoff::constant(Duration::from_secs(5)),
                ))
                .build()
        },
        |x| failsafe::futures::CircuitBreaker::call(&s, op(x)).await
    );
    case!(
        g,
        rt,
        mode,
        "failsafe_default",
        |s| failsafe::Config::new().build(),
        |x| failsafe::futures::CircuitBreaker::call(&s, op(x)).await
    );
    case!(
        g,
        rt,
        mode,
        "failsafe_open_rejection",
        |s| {
            use failsafe::{backoff, failure_policy};
            let cb = failsafe::Config::new()
                .failure_policy(failure_policy::consecutive_failures(
                    1,
                    backoff::constant(Duration::from_secs(3600)),
                ))
                .build();
            let _ = failsafe::futures::CircuitBreaker::call(&cb, op(FAIL)).await;
            expect_rejected(
                "failsafe_open_rejection",
                &failsafe::futures::CircuitBreaker::call(&cb, op(1)).await,
            );
            cb
        },
        |x| failsafe::futures::CircuitBreaker::call(&s, op(x)).await
    );

    // --- recloser --------------------------------------------------------------------------
    case!(
        g,
        rt,
        mode,
        "recloser",
        |s| recloser::AsyncRecloser::from(recloser::Recloser::custom().build()),
        |x| s.call(op(x)).await
    );
    case!(
        g,
        rt,
        mode,
        "recloser_open_rejection",
        |s| {
            let r = recloser::AsyncRecloser::from(
                recloser::Recloser::custom()
                    .closed_len(1)
                    .open_wait(Duration::from_secs(3600))
                    .build(),
            );
            for _ in 0..3 {
                let _ = r.call(op(FAIL)).await;
            }
            expect_rejected("recloser_open_rejection", &r.call(op(1)).await);
            r
        },
        |x| s.call(op(x)).await
    );

    // --- tower-resilience ----------------------------------------------------------------
    case!(
        g,
        rt,
        mode,
        "tower_resilience_breaker",
        |s| ServiceBuilder::new()
            .layer(tower_breaker_layer())
            .service(op_service()),
        |x| s.ready().await.expect("ready").call(x).await
    );
    case!(
        g,
        rt,
        mode,
        "tower_resilience_open_rejection",
        |s| {
            let mut svc = ServiceBuilder::new()
                .layer(
                    tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
                        .failure_rate_threshold(0.5)
                        .sliding_window_size(1)
                        .minimum_number_of_calls(1)
                        .wait_duration_in_open(Duration::from_secs(3600))
                        .build()
                        .expect("tower-resilience breaker config"),
                )
                .service(op_service());
            for _ in 0..3 {
                let _ = svc.ready().await.expect("ready").call(FAIL).await;
            }
            let probe = match svc.ready().await {
                Ok(s) => s.call(1).await,
                Err(e) => Err(e),
            };
            expect_rejected("tower_resilience_open_rejection", &probe);
            svc
        },
        |x| match s.ready().await {
            Ok(svc) => svc.call(x).await,
            Err(e) => Err(e),
        }
    );
    case!(
        g,
        rt,
        mode,
        "tower_resilience_stack",
        |s| ServiceBuilder::new()
            .layer(tower_breaker_layer())
            .layer(
                tower_resilience::timelimiter::TimeLimiterLayer::builder()
                    .timeout_duration(Duration::from_secs(1))
                    .build(),
            )
            .layer(
                tower_resilience::bulkhead::BulkheadLayer::builder()
                    .max_concurrent_calls(10)
                    .build()
                    .expect("tower-resilience bulkhead config"),
            )
            .service(op_service()),
        |x| s.ready().await.expect("ready").call(x).await
    );

    // --- tower -----------------------------------------------------------------------------
    case!(
        g,
        rt,
        mode,
        "tower_timeout_concurrency_limit",
        |s| ServiceBuilder::new()
            .timeout(Duration::from_secs(1))
            .concurrency_limit(10)
            .service(op_service()),
        |x| s.ready().await.expect("ready").call(x).await
    );

    // --- backon ----------------------------------------------------------------------------
    case!(g, rt, mode, "backon", |s| (), |x| (|| op(x))
        .retry(ExponentialBuilder::default())
        .await);
}

/// Sanity checks before anything is timed: the closed cases succeed.
fn check_closed_paths(rt: &Runtime) {
    rt.block_on(async {
        expect_ok("bare", &op(1).await);
        expect_ok("breaker_count", &breaker_count(1).await);
        expect_ok("breaker_time", &breaker_time(1).await);
        expect_ok("breaker_consecutive", &breaker_consecutive(1).await);
        expect_ok("timeout", &timeout_only(1).await);
        expect_ok("bulkhead", &bulkhead_only(1).await);
        expect_ok("retry", &retry_only(1).await);
        expect_ok("fallback", &fallback_only(1).await);
        expect_ok("full_stack", &full_stack(1).await);
        expect_ok("full_stack_count", &full_stack_count(1).await);
        assert_eq!(
            fallback_only(FAIL).await.ok(),
            Some(0),
            "fallback handler runs"
        );
    });
}

fn overhead(c: &mut Criterion) {
    let ct = current_thread();
    check_closed_paths(&ct);
    let mut g = c.benchmark_group("current_thread");
    cases(&mut g, &ct, Mode::CurrentThread);
    g.finish();

    let mt = two_workers();
    let mut g = c.benchmark_group("two_workers");
    cases(&mut g, &mt, Mode::TwoWorkers);
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(800))
        .sample_size(30)
        .nresamples(10_000)
        .without_plots()
}

criterion_group! {
    name = benches;
    config = config();
    targets = overhead
}
criterion_main!(benches);
