//! Logistic regression on cloud threads: shared gradient sums and a `CyclicBarrier` per
//! epoch. Checks the accuracy against the sequential version (within 1%).
//!
//! `cargo run -p crucial-threads --example logreg -- --threads 8`

mod apps;
mod common;

use std::process::ExitCode;

use apps::logreg::{self, Problem};
use clap::Parser;
use crucial_threads::invoke_all;

/// Logistic regression on cloud threads.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(flatten)]
    run: common::RunArgs,
    /// Features.
    #[arg(long, default_value_t = 8)]
    dims: usize,
    /// Samples per thread.
    #[arg(long, default_value_t = 10_000)]
    samples: usize,
    /// Epochs.
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// The data's seed.
    #[arg(long, default_value_t = 11)]
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
        dims: args.dims,
        points_per_block: args.samples,
        blocks: args.run.threads,
        epochs: args.epochs,
        learning_rate: 2.0,
        seed: args.seed,
    };
    let executor = args.run.executor().await?;
    let started = std::time::Instant::now();
    let results =
        invoke_all(&executor, &args.run.builder(), logreg::workers(problem, &common::run_id("logreg"))).await;
    let mut correct = 0;
    for result in results {
        correct += result?;
    }
    let accuracy = correct as f64 / (problem.blocks * problem.points_per_block) as f64;
    let (_, expected) = logreg::sequential(&problem);
    println!(
        "logistic regression: {} samples on {} cloud threads, {} epochs: accuracy {:.4} (sequential {:.4}) in {:.3} s",
        problem.blocks * problem.points_per_block,
        problem.blocks,
        problem.epochs,
        accuracy,
        expected,
        started.elapsed().as_secs_f64()
    );
    if (accuracy - expected).abs() > 0.01 {
        eprintln!("MISMATCH: accuracy differs from the sequential version by more than 1%");
        return Ok(ExitCode::FAILURE);
    }
    println!("within 1% of the sequential reference");
    Ok(ExitCode::SUCCESS)
}
