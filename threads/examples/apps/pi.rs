//! Monte Carlo pi, as in the Crucial paper: every thread throws darts at the unit square and
//! adds its hits inside the quarter circle to one shared `AtomicLong`.

use crucial_threads::{Context, Runnable};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// One thread's share of the darts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PiWorker {
    /// Darts to throw.
    pub samples: u64,
    /// The seed of this thread's darts.
    pub seed: u64,
    /// The `AtomicLong` that sums the hits.
    pub key: String,
}

#[crucial_threads::runnable]
impl Runnable for PiWorker {
    const NAME: &'static str = "apps.pi";
    type Output = u64;
    type Error = crucial_dso::DsoError;

    async fn run(self, ctx: &Context) -> Result<u64, Self::Error> {
        let hits = hits(self.samples, self.seed);
        ctx.dso().atomic_long(&self.key).add_and_get(hits as i64).await?;
        Ok(hits)
    }
}

/// Darts inside the quarter circle, out of `samples` drawn from `seed`.
pub fn hits(samples: u64, seed: u64) -> u64 {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut inside = 0;
    for _ in 0..samples {
        let (x, y): (f64, f64) = (rng.random(), rng.random());
        inside += u64::from(x * x + y * y <= 1.0);
    }
    inside
}

/// The threads' runnables: `threads` shares of `samples` darts in all.
pub fn workers(threads: usize, samples_per_thread: u64, key: &str) -> Vec<PiWorker> {
    (0..threads as u64)
        .map(|seed| PiWorker { samples: samples_per_thread, seed, key: key.to_string() })
        .collect()
}
