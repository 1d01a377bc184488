//! `dso-bench`: increments from N concurrent clients against one DSO server; reports
//! throughput and latency percentiles. Each client has its own connection and session and
//! keeps one call in flight, like `redis-benchmark` without pipelining.

use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use crucial_dso::{Dso, Server};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};

/// Measures `AtomicLong::increment_and_get` throughput and latency from concurrent clients.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Server to load; an embedded in-process server if absent.
    #[arg(long)]
    addr: Option<String>,
    /// Concurrent clients, each with its own connection and one call in flight.
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// Increments in total (split evenly across clients), after the warm-up.
    #[arg(long, default_value_t = 200_000)]
    ops: u64,
    /// Increments per client before measuring.
    #[arg(long, default_value_t = 200)]
    warmup_ops: u64,
    /// Worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Key every client increments (one shared counter, as `redis-benchmark -t incr`).
    #[arg(long, default_value = "bench:counter")]
    key: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    /// A human-readable line.
    Table,
    /// `clients,ops,seconds,ops_per_second,p50_us,p99_us`.
    Csv,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads).enable_all().build()?
    };
    runtime.block_on(run(args))
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let embedded = match &args.addr {
        Some(_) => None,
        None => Some(Server::embedded().await?),
    };
    let addr = match (&args.addr, &embedded) {
        (Some(addr), _) => addr.clone(),
        (None, Some(server)) => server.local_addr().to_string(),
        (None, None) => unreachable!("an embedded server was started"),
    };
    let clients = args.clients.max(1);
    let ops_per_client = (args.ops / clients as u64).max(1);
    let progress = ProgressBar::new(ops_per_client * clients as u64).with_style(
        ProgressStyle::with_template("{spinner} {bar:40} {pos}/{len} increments ({per_sec}, eta {eta})")?,
    );
    let mut connections = Vec::with_capacity(clients);
    for _ in 0..clients {
        connections.push(Dso::connect(addr.clone()).await?);
    }
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(clients));
    let started = std::sync::Arc::new(std::sync::OnceLock::new());
    let mut tasks = Vec::with_capacity(clients);
    for dso in connections {
        let (key, barrier, started, progress) =
            (args.key.clone(), barrier.clone(), started.clone(), progress.clone());
        let warmup_ops = args.warmup_ops;
        tasks.push(tokio::spawn(async move {
            let counter = dso.atomic_long(key);
            for _ in 0..warmup_ops {
                counter.increment_and_get().await?;
            }
            barrier.wait().await;
            started.get_or_init(Instant::now);
            let mut latencies = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            for done in 1..=ops_per_client {
                let sent = Instant::now();
                counter.increment_and_get().await?;
                latencies.record(sent.elapsed().as_micros().max(1) as u64)?;
                if done % 1000 == 0 {
                    progress.inc(1000);
                }
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(latencies)
        }));
    }
    let mut latencies = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for task in tasks {
        latencies.add(task.await?.map_err(|error| error.to_string())?)?;
    }
    let seconds = started.get().expect("clients started").elapsed().as_secs_f64();
    progress.finish_and_clear();
    let ops = latencies.len();
    let ops_per_second = ops as f64 / seconds;
    let (p50, p99) = (latencies.value_at_quantile(0.50), latencies.value_at_quantile(0.99));
    match args.format {
        Format::Table => println!(
            "dso increments: {clients} clients, {ops} ops in {seconds:.2} s = {ops_per_second:.0} ops/s, p50 {p50} us, p99 {p99} us"
        ),
        Format::Csv => println!("{clients},{ops},{seconds:.3},{ops_per_second:.0},{p50},{p99}"),
    }
    if let Some(server) = embedded {
        tokio::time::timeout(Duration::from_secs(5), server.shutdown()).await?;
    }
    Ok(())
}
