//! The Santa Claus problem on cloud threads: Santa, nine reindeer and the elves share a
//! monitor object that parks them and a semaphore. Checks the invariants: Santa helps exactly
//! three elves or delivers with all nine reindeer harnessed, one task at a time.
//!
//! `cargo run -p crucial-threads --example santa -- --threads 6`

mod apps;
mod common;

use std::process::ExitCode;

use apps::santa;
use clap::Parser;
use crucial_threads::invoke_all;

/// The Santa Claus problem on cloud threads (`--threads` elves, plus Santa and nine reindeer).
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(flatten)]
    run: common::RunArgs,
    /// Deliveries (rounds of the reindeer).
    #[arg(long, default_value_t = 3)]
    rounds: u64,
    /// Requests for help the elves make in all (a multiple of 3).
    #[arg(long, default_value_t = 12)]
    requests: u64,
}

#[tokio::main]
async fn main() -> Result<ExitCode, Box<dyn std::error::Error + Send + Sync>> {
    common::init_tracing();
    let args = Args::parse();
    common::run_app(move || run(args)).await
}

async fn run(args: Args) -> Result<ExitCode, Box<dyn std::error::Error + Send + Sync>> {
    let elves = args.run.threads as u64;
    if !args.requests.is_multiple_of(santa::ELVES_PER_HELP) || elves < santa::ELVES_PER_HELP {
        eprintln!(
            "--requests must be a multiple of {0} and --threads (elves) at least {0}",
            santa::ELVES_PER_HELP
        );
        return Ok(ExitCode::FAILURE);
    }
    let executor = args.run.executor().await?;
    let started = std::time::Instant::now();
    let actors = santa::actors(args.rounds, elves, args.requests, &common::run_id("santa"));
    let threads = actors.len();
    let mut seen = Vec::new();
    for result in invoke_all(&executor, &args.run.builder(), actors).await {
        seen.push(result?);
    }
    println!(
        "santa: {} deliveries and {} helps by {threads} cloud threads in {:.3} s",
        args.rounds,
        args.requests / santa::ELVES_PER_HELP,
        started.elapsed().as_secs_f64()
    );
    if let Err(broken) = santa::check(&seen, args.rounds, args.requests) {
        eprintln!("INVARIANT BROKEN: {broken}");
        return Ok(ExitCode::FAILURE);
    }
    println!("every invariant holds");
    Ok(ExitCode::SUCCESS)
}
