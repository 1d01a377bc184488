//! The executor service: many threads at once, as Crucial's `invokeAll` and
//! `invokeIterativeTask`, with a progress bar on a terminal.

use std::ops::Range;

use indicatif::{ProgressBar, ProgressStyle};

use crate::executor::Executor;
use crate::{Builder, Runnable, ThreadError};

/// Runs every runnable as a cloud thread (with `builder`'s settings, at most
/// [`Builder::concurrency`] at once) and returns their results in order. Threads are spawned in
/// order (so their ids are too); the progress bar counts them as they finish.
pub async fn invoke_all<E, R>(
    executor: &E,
    builder: &Builder,
    runnables: Vec<R>,
) -> Vec<Result<R::Output, ThreadError>>
where
    E: Executor + Clone,
    R: Runnable,
{
    let progress = progress_bar(runnables.len() as u64, R::NAME);
    let cap = builder.concurrency_limit().unwrap_or(usize::MAX);
    let mut results: Vec<Option<Result<R::Output, ThreadError>>> = runnables.iter().map(|_| None).collect();
    let (finished_tx, mut finished) = tokio::sync::mpsc::unbounded_channel();
    let mut waiting = runnables.into_iter().enumerate();
    let mut running = 0;
    loop {
        while running < cap {
            let Some((index, runnable)) = waiting.next() else { break };
            let handle = builder.clone().spawn(executor, runnable);
            let finished_tx = finished_tx.clone();
            tokio::spawn(async move { finished_tx.send((index, handle.join().await)) });
            running += 1;
        }
        if running == 0 {
            break;
        }
        let (index, result) = finished.recv().await.expect("a sender is held here");
        results[index] = Some(result);
        running -= 1;
        progress.inc(1);
    }
    progress.finish_and_clear();
    results.into_iter().map(|result| result.expect("every thread finished")).collect()
}

/// A parallel for: splits `range` into `workers` contiguous blocks of near-equal length (static
/// block partitioning), runs `task(block)` for each as a cloud thread, and returns their
/// results in block order.
pub async fn invoke_iterative<E, R>(
    executor: &E,
    builder: &Builder,
    workers: usize,
    range: Range<u64>,
    task: impl Fn(Range<u64>) -> R,
) -> Vec<Result<R::Output, ThreadError>>
where
    E: Executor + Clone,
    R: Runnable,
{
    let runnables = blocks(workers, range).into_iter().map(task).collect();
    invoke_all(executor, builder, runnables).await
}

/// `range` cut into `workers` contiguous blocks whose lengths differ by at most one (fewer if
/// the range is shorter than `workers`).
pub fn blocks(workers: usize, range: Range<u64>) -> Vec<Range<u64>> {
    let length = range.end.saturating_sub(range.start);
    let workers = (workers.max(1) as u64).min(length.max(1));
    (0..workers)
        .map(|block| range.start + block * length / workers..range.start + (block + 1) * length / workers)
        .filter(|block| !block.is_empty() || length == 0)
        .collect()
}

fn progress_bar(threads: u64, name: &str) -> ProgressBar {
    let progress = ProgressBar::new(threads);
    progress.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} threads ({elapsed})")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    progress.set_message(name.to_string());
    progress
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cover_the_range_in_near_equal_parts() {
        assert_eq!(blocks(3, 0..10), vec![0..3, 3..6, 6..10]);
        assert_eq!(blocks(4, 5..7), vec![5..6, 6..7]);
        assert_eq!(blocks(2, 0..0), vec![0..0]);
    }
}
