//! `invoke_all` with a concurrency cap: no more threads run at once than the cap, and the
//! results come back in the order of the runnables.

use std::time::Duration;

use crucial_threads::{invoke_all, Builder, Context, Local, Runnable};
use serde::{Deserialize, Serialize};

/// Counts itself in while it runs (the counter `key`); returns its index and how many ran
/// when it started, itself included.
#[derive(Serialize, Deserialize)]
struct CountsOverlap {
    key: String,
    index: u64,
}

impl Runnable for CountsOverlap {
    const NAME: &'static str = "test.counts_overlap";
    type Output = (u64, i64);
    type Error = crucial_dso::DsoError;

    async fn run(self, ctx: &Context) -> Result<(u64, i64), Self::Error> {
        let running = ctx.dso().counter(&self.key);
        let at_once = running.add(1).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        running.add(-1).await?;
        Ok((self.index, at_once))
    }
}

crucial_threads::register!(CountsOverlap);

const THREADS: u64 = 16;

/// The most threads that ran at once under `builder`'s settings.
async fn most_at_once(builder: Builder, key: &str) -> i64 {
    let executor = Local::embedded().await.unwrap();
    let runnables = (0..THREADS).map(|index| CountsOverlap { key: key.into(), index }).collect();
    let results = invoke_all(&executor, &builder, runnables).await;
    assert_eq!(results.len(), THREADS as usize);
    let mut most = 0;
    for (index, result) in results.into_iter().enumerate() {
        let (returned, at_once) = result.expect("every thread finishes");
        assert_eq!(returned, index as u64, "results come back in the runnables' order");
        most = most.max(at_once);
    }
    most
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capped_invoke_all_runs_at_most_its_cap_at_once() {
    let capped = most_at_once(Builder::default().concurrency(3), "capped").await;
    assert!((1..=3).contains(&capped), "at most 3 at once, saw {capped}");
    // The same threads without a cap overlap more: each holds its place for 100 ms.
    let uncapped = most_at_once(Builder::default(), "uncapped").await;
    assert!(uncapped > 3, "all start at once without a cap, saw {uncapped} at most");
}
