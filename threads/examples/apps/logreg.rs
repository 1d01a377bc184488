//! Logistic regression by full-batch gradient descent: each thread owns a block of labelled
//! points; every epoch it adds its gradient to a shared `VectorSum`, waits on a
//! `CyclicBarrier`, and applies the summed gradient to its copy of the weights (every thread
//! computes the same weights). Fixed-point sums make it equal the sequential version.

use crucial_threads::{Context, Runnable};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::vector_sum::VectorSum;
use super::{from_fixed, to_fixed};

/// The problem: data, epochs, learning rate.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// Features.
    pub dims: usize,
    /// Points per block (one block per thread).
    pub points_per_block: usize,
    /// Blocks (threads).
    pub blocks: usize,
    /// Epochs.
    pub epochs: usize,
    /// Learning rate.
    pub learning_rate: f64,
    /// The data's seed.
    pub seed: u64,
}

/// A labelled point.
pub type Sample = (Vec<f64>, bool);

impl Problem {
    /// The true weights (last one: the bias).
    fn truth(&self) -> Vec<f64> {
        let mut rng = SmallRng::seed_from_u64(self.seed);
        (0..=self.dims).map(|_| rng.random_range(-2.0..2.0)).collect()
    }

    /// The samples of block `block`, labelled by the true weights with 5% label noise.
    pub fn block(&self, block: usize) -> Vec<Sample> {
        let truth = self.truth();
        let mut rng =
            SmallRng::seed_from_u64(self.seed ^ (block as u64 + 7).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        (0..self.points_per_block)
            .map(|_| {
                let x: Vec<f64> = (0..self.dims).map(|_| rng.random_range(-1.0..1.0)).collect();
                let label = score(&truth, &x) > 0.0;
                (x, label ^ (rng.random_range(0.0..1.0) < 0.05))
            })
            .collect()
    }
}

fn score(weights: &[f64], x: &[f64]) -> f64 {
    let (bias, w) = weights.split_last().expect("weights end with the bias");
    w.iter().zip(x).map(|(w, x)| w * x).sum::<f64>() + bias
}

/// The fixed-point gradient of the log loss over `samples`.
pub fn gradient(samples: &[Sample], weights: &[f64]) -> Vec<i64> {
    let mut total = vec![0; weights.len()];
    for (x, label) in samples {
        let error = 1.0 / (1.0 + (-score(weights, x)).exp()) - f64::from(u8::from(*label));
        for (t, xi) in total.iter_mut().zip(x.iter().chain([&1.0])) {
            *t += to_fixed(error * xi);
        }
    }
    total
}

/// One gradient step with a summed gradient over `count` samples.
pub fn step(weights: &[f64], gradient: &[i64], count: u64, learning_rate: f64) -> Vec<f64> {
    weights.iter().zip(gradient).map(|(w, g)| w - learning_rate * from_fixed(*g) / count as f64).collect()
}

/// Correctly classified samples.
pub fn correct(samples: &[Sample], weights: &[f64]) -> u64 {
    samples.iter().filter(|(x, label)| (score(weights, x) > 0.0) == *label).count() as u64
}

/// The sequential reference: final weights and accuracy.
pub fn sequential(problem: &Problem) -> (Vec<f64>, f64) {
    let blocks: Vec<_> = (0..problem.blocks).map(|block| problem.block(block)).collect();
    let mut weights = vec![0.0; problem.dims + 1];
    for _ in 0..problem.epochs {
        let mut total = vec![0i64; weights.len()];
        for samples in &blocks {
            total.iter_mut().zip(gradient(samples, &weights)).for_each(|(t, g)| *t += g);
        }
        weights =
            step(&weights, &total, (problem.blocks * problem.points_per_block) as u64, problem.learning_rate);
    }
    let right: u64 = blocks.iter().map(|samples| correct(samples, &weights)).sum();
    (weights, right as f64 / (problem.blocks * problem.points_per_block) as f64)
}

/// One thread: its block's correctly classified samples at the end.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LogRegWorker {
    /// The problem.
    pub problem: Problem,
    /// This thread's block.
    pub block: usize,
    /// Prefix of this run's keys.
    pub run: String,
}

#[crucial_threads::runnable]
impl Runnable for LogRegWorker {
    const NAME: &'static str = "apps.logreg";
    type Output = u64;
    type Error = crucial_dso::DsoError;

    async fn run(self, ctx: &Context) -> Result<u64, Self::Error> {
        let problem = self.problem;
        let samples = problem.block(self.block);
        let barrier =
            ctx.dso().cyclic_barrier(format!("{}.barrier", self.run), problem.blocks as u64).await?;
        let mut weights = vec![0.0; problem.dims + 1];
        for epoch in 0..problem.epochs {
            let sum = ctx.dso().handle::<VectorSum>(format!("{}.epoch{epoch}", self.run));
            sum.add(gradient(&samples, &weights), samples.len() as u64).await?;
            barrier
                .wait(None)
                .await?
                .map_err(|error| crucial_dso::DsoError::Codec(format!("barrier: {error:?}")))?;
            let (total, count) = sum.total().await?;
            weights = step(&weights, &total, count, problem.learning_rate);
        }
        Ok(correct(&samples, &weights))
    }
}

/// The threads' runnables.
pub fn workers(problem: Problem, run: &str) -> Vec<LogRegWorker> {
    (0..problem.blocks).map(|block| LogRegWorker { problem, block, run: run.to_string() }).collect()
}
