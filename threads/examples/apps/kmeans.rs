//! k-means on generated data with known clusters: each thread owns a block of points; every
//! iteration it adds its per-cluster sums to one shared `VectorSum` per cluster, waits on a
//! `CyclicBarrier`, and reads the new centroids. Sums are fixed point, so the result equals the
//! sequential version's exactly.

use crucial_threads::{Context, Runnable};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::vector_sum::VectorSum;
use super::{from_fixed, to_fixed};

/// The problem: data, clusters, iterations.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// Clusters.
    pub k: usize,
    /// Dimensions.
    pub dims: usize,
    /// Points per block (one block per thread).
    pub points_per_block: usize,
    /// Blocks (threads).
    pub blocks: usize,
    /// Iterations.
    pub iterations: usize,
    /// The data's seed.
    pub seed: u64,
}

impl Problem {
    /// The true centers the data is drawn around.
    pub fn centers(&self) -> Vec<Vec<f64>> {
        let mut rng = SmallRng::seed_from_u64(self.seed);
        (0..self.k).map(|_| (0..self.dims).map(|_| rng.random_range(-100.0..100.0)).collect()).collect()
    }

    /// The points of block `block`: each near one of the centers.
    pub fn block(&self, block: usize) -> Vec<Vec<f64>> {
        let centers = self.centers();
        let mut rng =
            SmallRng::seed_from_u64(self.seed ^ (block as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        (0..self.points_per_block)
            .map(|_| {
                let center = &centers[rng.random_range(0..self.k)];
                center
                    .iter()
                    .map(|c| c + rng.random_range(-10.0..10.0) + rng.random_range(-10.0..10.0))
                    .collect()
            })
            .collect()
    }

    /// The starting centroids: the first `k` points of block 0.
    pub fn initial_centroids(&self) -> Vec<Vec<f64>> {
        let mut first = Problem { points_per_block: self.k, ..*self }.block(0);
        first.truncate(self.k);
        first
    }
}

/// Per cluster: the fixed-point sum of its points' coordinates and their count.
pub type ClusterSums = Vec<(Vec<i64>, u64)>;

/// Per-cluster sums of one block.
pub fn partial_sums(points: &[Vec<f64>], centroids: &[Vec<f64>]) -> ClusterSums {
    let mut sums: ClusterSums = centroids.iter().map(|c| (vec![0; c.len()], 0)).collect();
    for point in points {
        let (nearest, _) = nearest(point, centroids);
        let (sum, count) = &mut sums[nearest];
        for (total, x) in sum.iter_mut().zip(point) {
            *total += to_fixed(*x);
        }
        *count += 1;
    }
    sums
}

/// The nearest centroid's index and the squared distance to it.
pub fn nearest(point: &[f64], centroids: &[Vec<f64>]) -> (usize, f64) {
    let mut best = (0, f64::INFINITY);
    for (index, centroid) in centroids.iter().enumerate() {
        let distance: f64 = point.iter().zip(centroid).map(|(x, c)| (x - c) * (x - c)).sum();
        if distance < best.1 {
            best = (index, distance);
        }
    }
    best
}

/// The centroid of a cluster from its sums (the old one if the cluster is empty).
pub fn centroid(sum: &[i64], count: u64, old: &[f64]) -> Vec<f64> {
    match count {
        0 => old.to_vec(),
        _ => sum.iter().map(|total| from_fixed(*total) / count as f64).collect(),
    }
}

/// Sum of squared distances to the nearest centroid, in fixed point (exact in any order).
pub fn inertia(points: &[Vec<f64>], centroids: &[Vec<f64>]) -> i64 {
    points.iter().map(|point| to_fixed(nearest(point, centroids).1)).sum()
}

/// The sequential reference: final centroids and inertia.
pub fn sequential(problem: &Problem) -> (Vec<Vec<f64>>, i64) {
    let blocks: Vec<_> = (0..problem.blocks).map(|block| problem.block(block)).collect();
    let mut centroids = problem.initial_centroids();
    for _ in 0..problem.iterations {
        let mut totals: ClusterSums = vec![(vec![0; problem.dims], 0); problem.k];
        for points in &blocks {
            for (total, (sum, count)) in totals.iter_mut().zip(partial_sums(points, &centroids)) {
                total.0.iter_mut().zip(sum).for_each(|(t, s)| *t += s);
                total.1 += count;
            }
        }
        centroids =
            totals.iter().zip(&centroids).map(|((sum, count), old)| centroid(sum, *count, old)).collect();
    }
    let inertia = blocks.iter().map(|points| inertia(points, &centroids)).sum();
    (centroids, inertia)
}

/// One thread of the parallel version: its block's share of the inertia at the end.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KMeansWorker {
    /// The problem.
    pub problem: Problem,
    /// This thread's block.
    pub block: usize,
    /// Prefix of this run's keys.
    pub run: String,
}

#[crucial_threads::runnable]
impl Runnable for KMeansWorker {
    const NAME: &'static str = "apps.kmeans";
    type Output = i64;
    type Error = crucial_dso::DsoError;

    async fn run(self, ctx: &Context) -> Result<i64, Self::Error> {
        let problem = self.problem;
        let points = problem.block(self.block);
        let barrier =
            ctx.dso().cyclic_barrier(format!("{}.barrier", self.run), problem.blocks as u64).await?;
        let mut centroids = problem.initial_centroids();
        for iteration in 0..problem.iterations {
            let sums = partial_sums(&points, &centroids);
            for (cluster, (sum, count)) in sums.into_iter().enumerate() {
                accumulator(ctx, &self.run, iteration, cluster).add(sum, count).await?;
            }
            barrier
                .wait(None)
                .await?
                .map_err(|error| crucial_dso::DsoError::Codec(format!("barrier: {error:?}")))?;
            let mut next = Vec::with_capacity(problem.k);
            for (cluster, old) in centroids.iter().enumerate() {
                let (sum, count) = accumulator(ctx, &self.run, iteration, cluster).total().await?;
                next.push(centroid(&sum, count, old));
            }
            centroids = next;
        }
        Ok(inertia(&points, &centroids))
    }
}

fn accumulator(ctx: &Context, run: &str, iteration: usize, cluster: usize) -> crucial_dso::Shared<VectorSum> {
    ctx.dso().handle::<VectorSum>(format!("{run}.it{iteration}.c{cluster}"))
}

/// The threads' runnables.
pub fn workers(problem: Problem, run: &str) -> Vec<KMeansWorker> {
    (0..problem.blocks).map(|block| KMeansWorker { problem, block, run: run.to_string() }).collect()
}
