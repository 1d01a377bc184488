//! Monte Carlo pi on cloud threads: each thread throws darts and adds its hits to a shared
//! `AtomicLong`. Checks the total against a sequential run of the same darts.
//!
//! `cargo run -p crucial-threads --example pi -- --threads 8 --samples 1000000`

mod apps;
mod common;

use std::process::ExitCode;

use clap::Parser;
use crucial_threads::{invoke_all, Executor};

/// Monte Carlo pi on cloud threads.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(flatten)]
    run: common::RunArgs,
    /// Darts per thread.
    #[arg(long, default_value_t = 1_000_000)]
    samples: u64,
}

#[tokio::main]
async fn main() -> Result<ExitCode, Box<dyn std::error::Error + Send + Sync>> {
    common::init_tracing();
    let args = Args::parse();
    common::run_app(move || run(args)).await
}

async fn run(args: Args) -> Result<ExitCode, Box<dyn std::error::Error + Send + Sync>> {
    let executor = args.run.executor().await?;
    let key = common::run_id("pi");
    let started = std::time::Instant::now();
    let workers = apps::pi::workers(args.run.threads, args.samples, &key);
    let results = invoke_all(&executor, &args.run.builder(), workers.clone()).await;
    let mut reported = 0;
    for result in results {
        reported += result?;
    }
    let hits = executor.dso().atomic_long(&key).get().await? as u64;
    let elapsed = started.elapsed();
    let expected: u64 = workers.iter().map(|w| apps::pi::hits(w.samples, w.seed)).sum();
    let darts = args.samples * args.run.threads as u64;
    println!(
        "pi ~ {:.6} from {darts} darts on {} cloud threads in {:.3} s",
        4.0 * hits as f64 / darts as f64,
        args.run.threads,
        elapsed.as_secs_f64()
    );
    if hits != expected || reported != expected {
        eprintln!("MISMATCH: the shared counter holds {hits} hits, the threads reported {reported}, the sequential reference says {expected}");
        return Ok(ExitCode::FAILURE);
    }
    println!("matches the sequential reference ({hits} hits)");
    Ok(ExitCode::SUCCESS)
}
