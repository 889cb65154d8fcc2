//! Return types written through aliases: `std::io::Result<T>` (the runtime converts a
//! rejection to an `io::Error`), `anyhow::Result<T>`, a local alias, and `Box<dyn Error>`.
//! The macro never looks at the return type's spelling; the requirement is a trait bound.

use resilient::{bulkhead, circuit_breaker, fallback, retry, timeout};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[timeout("1ms")]
async fn io_slow() -> std::io::Result<()> {
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    Ok(())
}

#[retry(attempts = 2, backoff = "0s")]
#[circuit_breaker(threshold = 3)]
async fn io_read(path: &str) -> std::io::Result<usize> {
    if path.is_empty() {
        return Err(std::io::Error::new(std::io::ErrorKind::NotFound, "empty"));
    }
    Ok(path.len())
}

#[timeout("1ms")]
#[bulkhead(pool = 1)]
async fn anyhow_slow() -> anyhow::Result<u32> {
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    Ok(1)
}

async fn zero(_e: anyhow::Error) -> anyhow::Result<u32> {
    Ok(0)
}

#[fallback(zero, args = ())]
#[retry(attempts = 2, backoff = "0s")]
async fn anyhow_parse(s: &str) -> anyhow::Result<u32> {
    let n: u32 = s.parse()?;
    anyhow::ensure!(n > 0, "zero");
    Ok(n)
}

#[timeout("1s")]
async fn boxed(s: &str) -> Res<u32> {
    Ok(s.parse()?)
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let e = io_slow().await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        assert!(resilient::Error::find(&e).is_some_and(resilient::Error::is_timeout));
        assert_eq!(io_read("abc").await.unwrap(), 3);
        assert_eq!(
            io_read("").await.unwrap_err().kind(),
            std::io::ErrorKind::NotFound
        );
        let e = anyhow_slow().await.unwrap_err();
        assert!(
            e.downcast_ref::<resilient::Error>()
                .is_some_and(resilient::Error::is_timeout)
        );
        assert_eq!(anyhow_parse("7").await.unwrap(), 7);
        assert_eq!(anyhow_parse("x").await.unwrap(), 0);
        assert_eq!(boxed("5").await.unwrap(), 5);
        assert!(boxed("x").await.is_err());
    });
}
