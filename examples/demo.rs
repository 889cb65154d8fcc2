//! A product page that calls a flaky recommendation service, protected by the five attributes.
//!
//! `cargo run --example demo`. The service fails for a while, then recovers; watch the breaker
//! open, the fallback answer, and the breaker close again. Runs in about three seconds.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use resilient::{CircuitState, bulkhead, circuit_breaker, fallback, retry, timeout};
use tokio::time::{Instant, sleep};

#[derive(Debug)]
enum ApiError {
    Unavailable,
    Resilience(resilient::Error),
}

impl From<resilient::Error> for ApiError {
    fn from(e: resilient::Error) -> Self {
        ApiError::Resilience(e)
    }
}

/// The simulated dependency: healthy, then down (slow and failing), then healthy again.
static DOWN: AtomicBool = AtomicBool::new(false);
static REACHED: AtomicU32 = AtomicU32::new(0);

async fn remote_recommendations(user: u64) -> Result<Vec<String>, ApiError> {
    REACHED.fetch_add(1, Ordering::Relaxed);
    if DOWN.load(Ordering::Relaxed) {
        sleep(Duration::from_millis(300)).await; // slower than our timeout
        return Err(ApiError::Unavailable);
    }
    sleep(Duration::from_millis(20)).await;
    Ok(vec![format!("picked for user {user}")])
}

async fn popular_items(_user: u64, err: ApiError) -> Result<Vec<String>, ApiError> {
    let why = match err {
        ApiError::Unavailable => "service error".to_string(),
        ApiError::Resilience(e) => e.to_string(),
    };
    Ok(vec![format!("popular (cached), because: {why}")])
}

#[fallback(popular_items)]
#[retry(attempts = 2, backoff = "50ms")]
#[circuit_breaker(
    failure_rate = 0.5,
    last = 6,
    cooldown = "500ms",
    name = "recommendations"
)]
#[timeout("200ms")]
#[bulkhead(pool = 10)]
async fn recommendations(user: u64) -> Result<Vec<String>, ApiError> {
    remote_recommendations(user).await
}

#[tokio::main]
async fn main() {
    let start = Instant::now();
    let breaker = || resilient::breaker("recommendations").map(|b| b.state());
    let mut last_state = None;
    for round in 0..24u64 {
        match round {
            6 => {
                DOWN.store(true, Ordering::Relaxed);
                println!("--- the recommendation service goes down ---");
            }
            14 => {
                DOWN.store(false, Ordering::Relaxed);
                println!("--- the recommendation service recovers ---");
            }
            _ => {}
        }
        let t = Instant::now();
        let answer = recommendations(round).await;
        match answer {
            Ok(items) => println!(
                "request {round:>2}: {:>4} ms  {items:?}",
                t.elapsed().as_millis()
            ),
            Err(e) => println!("request {round:>2}: error {e:?}"),
        }
        let state = breaker();
        if state != last_state {
            println!(
                "    breaker is now {:?}",
                state.unwrap_or(CircuitState::Closed)
            );
            last_state = state;
        }
        sleep(Duration::from_millis(100)).await;
    }
    println!(
        "\n24 requests in {:.1}s; the service was reached {} times; breaker {:?}",
        start.elapsed().as_secs_f64(),
        REACHED.load(Ordering::Relaxed),
        breaker().unwrap_or(CircuitState::Closed)
    );
}
