//! The executor service: many threads at once, as Crucial's `invokeAll` and
//! `invokeIterativeTask`, with a progress bar on a terminal.

use std::ops::Range;

use indicatif::{ProgressBar, ProgressStyle};

use crate::executor::Executor;
use crate::{Builder, Runnable, ThreadError};

/// Runs every runnable as a cloud thread (with `builder`'s settings) and returns their results
/// in order.
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
    let handles: Vec<_> =
        runnables.into_iter().map(|runnable| builder.clone().spawn(executor, runnable)).collect();
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        results.push(handle.join().await);
        progress.inc(1);
    }
    progress.finish_and_clear();
    results
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
