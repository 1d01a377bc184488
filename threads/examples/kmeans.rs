//! k-means on cloud threads: one shared centroid accumulator per cluster and a `CyclicBarrier`
//! per iteration, on generated data with known clusters. Checks the inertia against the
//! sequential version.
//!
//! `cargo run -p crucial-threads --example kmeans -- --threads 8`

mod apps;
mod common;

use std::process::ExitCode;

use apps::kmeans::{self, Problem};
use clap::Parser;
use crucial_threads::invoke_all;

/// k-means on cloud threads.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(flatten)]
    run: common::RunArgs,
    /// Clusters.
    #[arg(long, default_value_t = 4)]
    k: usize,
    /// Dimensions.
    #[arg(long, default_value_t = 2)]
    dims: usize,
    /// Points per thread.
    #[arg(long, default_value_t = 20_000)]
    points: usize,
    /// Iterations.
    #[arg(long, default_value_t = 10)]
    iterations: usize,
    /// The data's seed.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

#[tokio::main]
async fn main() -> Result<ExitCode, Box<dyn std::error::Error + Send + Sync>> {
    common::init_tracing();
    let args = Args::parse();
    common::run_app(move || run(args)).await
}

async fn run(args: Args) -> Result<ExitCode, Box<dyn std::error::Error + Send + Sync>> {
    let problem = Problem {
        k: args.k,
        dims: args.dims,
        points_per_block: args.points,
        blocks: args.run.threads,
        iterations: args.iterations,
        seed: args.seed,
    };
    let executor = args.run.executor().await?;
    let started = std::time::Instant::now();
    let results =
        invoke_all(&executor, &args.run.builder(), kmeans::workers(problem, &common::run_id("kmeans"))).await;
    let mut inertia = 0;
    for result in results {
        inertia += result?;
    }
    let elapsed = started.elapsed();
    let (_, expected) = kmeans::sequential(&problem);
    println!(
        "k-means: k {}, {} points on {} cloud threads, {} iterations: inertia {:.3} in {:.3} s",
        problem.k,
        problem.points_per_block * problem.blocks,
        problem.blocks,
        problem.iterations,
        apps::from_fixed(inertia),
        elapsed.as_secs_f64()
    );
    if inertia != expected {
        eprintln!("MISMATCH: sequential inertia {:.3}", apps::from_fixed(expected));
        return Ok(ExitCode::FAILURE);
    }
    println!("matches the sequential reference");
    Ok(ExitCode::SUCCESS)
}
