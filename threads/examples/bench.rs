//! Cloud-thread benchmarks, each beside its floor or native counterpart in the same run;
//! prints a markdown table of medians and ratios (`deploy/bench-threads.sh` writes it to
//! `reports/threads.md`).
//!
//! `cargo run --release -p crucial-threads --example bench -- --rounds 7`
//! (add `--features lambda --lambda-endpoint http://127.0.0.1:9000` for the Invoke latency
//! through `cargo lambda watch`).

mod apps;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apps::kmeans::{self, Problem};
use clap::Parser;
use crucial_threads::{invoke_all, Builder, CloudThread, Context, Local, Runnable};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

/// Cloud-thread benchmarks.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Repetitions of each measurement (medians are reported).
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// The Lambda API endpoint of a `cargo lambda watch` serving `crucial-lambda-handler`
    /// (needs `--features lambda`); the Invoke latency is skipped without it.
    #[arg(long)]
    lambda_endpoint: Option<String>,
    /// The anchors measured in the same run (`bench/anchors/lithops_anchor.py`'s JSON:
    /// `spawn_join_100_s`, `barrier_round_us`).
    #[arg(long)]
    anchors: Option<std::path::PathBuf>,
}

/// Figures of the anchors the issue names, measured beside ours.
#[derive(Debug, Default, Deserialize)]
struct Anchors {
    /// Lithops (localhost backend): seconds to run and collect 100 no-op calls.
    spawn_join_100_s: Option<f64>,
    /// Lithops' Redis-backed `multiprocessing.Barrier`, 8 parties: one round, in microseconds.
    barrier_round_us: Option<f64>,
}

/// Does nothing.
#[derive(Serialize, Deserialize)]
struct Noop;

impl Runnable for Noop {
    const NAME: &'static str = "bench.noop";
    type Output = ();
    type Error = String;

    async fn run(self, _ctx: &Context) -> Result<(), String> {
        Ok(())
    }
}

/// Waits on one barrier `rounds` times; returns each round's duration in nanoseconds.
#[derive(Serialize, Deserialize)]
struct BarrierRounds {
    key: String,
    parties: u64,
    rounds: usize,
}

impl Runnable for BarrierRounds {
    const NAME: &'static str = "bench.barrier";
    type Output = Vec<u64>;
    type Error = crucial_dso::DsoError;

    async fn run(self, ctx: &Context) -> Result<Vec<u64>, Self::Error> {
        let barrier = ctx.dso().cyclic_barrier(&self.key, self.parties).await?;
        barrier.wait(None).await?.ok();
        let mut rounds = Vec::with_capacity(self.rounds);
        for _ in 0..self.rounds {
            let started = Instant::now();
            barrier.wait(None).await?.ok();
            rounds.push(started.elapsed().as_nanos() as u64);
        }
        Ok(rounds)
    }
}

crucial_threads::register!(Noop, BarrierRounds);

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// A table row: what, ours, the counterpart, ratio, the anchor and ours over it, goal.
struct Row {
    what: &'static str,
    ours: String,
    other: String,
    ratio: f64,
    anchor: String,
    goal: &'static str,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let anchors: Anchors = match &args.anchors {
        Some(path) => serde_json::from_str(&std::fs::read_to_string(path)?)?,
        None => Anchors::default(),
    };
    let executor = Local::builder().embedded_server(apps::server()).start().await?;
    let progress = ProgressBar::new(5 * args.rounds as u64);
    let mut rows = Vec::new();

    // 1. Spawn + join of 1,000 no-op cloud threads vs 1,000 no-op tokio tasks.
    let (mut ours, mut floor) = (Vec::new(), Vec::new());
    for _ in 0..args.rounds {
        let started = Instant::now();
        let handles: Vec<_> = (0..1000).map(|_| CloudThread::spawn(&executor, Noop)).collect();
        for handle in handles {
            handle.join().await?;
        }
        ours.push(ms(started.elapsed()));
        let started = Instant::now();
        let tasks: Vec<_> = (0..1000).map(|_| tokio::spawn(async {})).collect();
        for task in tasks {
            task.await?;
        }
        floor.push(ms(started.elapsed()));
        progress.inc(1);
    }
    let (ours, floor) = (median(ours), median(floor));
    rows.push(Row {
        what: "spawn + join 1,000 no-op cloud threads (local executor) vs 1,000 no-op `tokio::spawn`",
        ours: format!("{ours:.1} ms"),
        other: format!("{floor:.3} ms"),
        ratio: ours / floor,
        anchor: anchors.spawn_join_100_s.map_or_else(String::new, |s| {
            format!(
                "Lithops 3.8 localhost, **100** no-op calls: {:.1} s ({:.1}x ours for 1,000)",
                s,
                s * 1e3 / ours
            )
        }),
        goal: "< 200 ms total",
    });

    // 2. One barrier round of 8 cloud threads vs `std::sync::Barrier` with 8 threads.
    let (mut ours, mut floor) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        let runnables = (0..8)
            .map(|_| BarrierRounds { key: format!("bench.barrier.{round}"), parties: 8, rounds: 200 })
            .collect();
        let results = invoke_all(&executor, &Builder::default(), runnables).await;
        let per_round: Vec<f64> =
            results[0].as_ref().map_err(Clone::clone)?.iter().map(|ns| *ns as f64 / 1e3).collect();
        ours.push(median(per_round));
        floor.push(native_barrier_round_us(8, 200));
        progress.inc(1);
    }
    let (ours, floor) = (median(ours), median(floor));
    rows.push(Row {
        what: "one barrier round, 8 cloud threads through the DSO vs 8 threads on `std::sync::Barrier`",
        ours: format!("{ours:.1} us"),
        other: format!("{floor:.1} us"),
        ratio: ours / floor,
        anchor: anchors.barrier_round_us.map_or_else(String::new, |us| {
            format!("Lithops Redis-backed `Barrier`, 8 parties: {:.1} ms ({:.0}x ours)", us / 1e3, us / ours)
        }),
        goal: "< 1 ms median",
    });

    // 3. k-means: cloud threads vs plain std::thread, same data, k, iterations, parallelism.
    let problem = Problem { k: 4, dims: 2, points_per_block: 100_000, blocks: 2, iterations: 10, seed: 7 };
    let (mut ours, mut native) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        let started = Instant::now();
        let results =
            invoke_all(&executor, &Builder::default(), kmeans::workers(problem, &format!("bench.km{round}")))
                .await;
        let inertia: i64 = results.into_iter().map(Result::unwrap).sum();
        ours.push(ms(started.elapsed()));
        let started = Instant::now();
        let native_inertia = native_kmeans(problem);
        native.push(ms(started.elapsed()));
        assert_eq!(inertia, native_inertia, "both versions compute the same clustering");
        progress.inc(1);
    }
    let (ours, native) = (median(ours), median(native));
    rows.push(Row {
        what: "k-means, 2 x 100k points, k 4, 10 iterations: cloud threads (local) vs `std::thread`",
        ours: format!("{ours:.1} ms"),
        other: format!("{native:.1} ms"),
        ratio: ours / native,
        anchor: String::new(),
        goal: "<= 1.3x",
    });

    // 4. Monte Carlo pi, 8 x 1M samples: cloud threads vs native threads.
    let (mut ours, mut native) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        let workers = apps::pi::workers(8, 1_000_000, &format!("bench.pi{round}"));
        let started = Instant::now();
        let hits: u64 = invoke_all(&executor, &Builder::default(), workers.clone())
            .await
            .into_iter()
            .map(Result::unwrap)
            .sum();
        ours.push(ms(started.elapsed()));
        let started = Instant::now();
        let native_hits = native_pi(&workers);
        native.push(ms(started.elapsed()));
        assert_eq!(hits, native_hits);
        progress.inc(1);
    }
    let (ours, native) = (median(ours), median(native));
    rows.push(Row {
        what: "Monte Carlo pi, 8 x 1M samples: cloud threads (local) vs `std::thread`",
        ours: format!("{ours:.1} ms"),
        other: format!("{native:.1} ms"),
        ratio: ours / native,
        anchor: String::new(),
        goal: "<= 1.2x",
    });
    progress.inc(args.rounds as u64);
    progress.finish_and_clear();

    println!("| measurement | cloud threads | floor / native | ratio | anchor (same run) | goal |");
    println!("|---|---|---|---|---|---|");
    for row in &rows {
        println!(
            "| {} | {} | {} | {:.2}x | {} | {} |",
            row.what, row.ours, row.other, row.ratio, row.anchor, row.goal
        );
    }
    if let Some(endpoint) = &args.lambda_endpoint {
        lambda_latency(endpoint, args.rounds).await?;
    }
    Ok(())
}

/// The median barrier round of `parties` OS threads on `std::sync::Barrier`, in microseconds.
fn native_barrier_round_us(parties: usize, rounds: usize) -> f64 {
    let barrier = Arc::new(std::sync::Barrier::new(parties));
    let threads: Vec<_> = (0..parties)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                (0..rounds)
                    .map(|_| {
                        let started = Instant::now();
                        barrier.wait();
                        started.elapsed().as_nanos() as f64 / 1e3
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let rounds: Vec<Vec<f64>> = threads.into_iter().map(|thread| thread.join().unwrap()).collect();
    median(rounds[0].clone())
}

/// k-means on `std::thread`s with a mutex-guarded accumulator and `std::sync::Barrier`.
fn native_kmeans(problem: Problem) -> i64 {
    let barrier = Arc::new(std::sync::Barrier::new(problem.blocks));
    let sums: Arc<Vec<Mutex<kmeans::ClusterSums>>> = Arc::new(
        (0..problem.iterations).map(|_| Mutex::new(vec![(vec![0; problem.dims], 0); problem.k])).collect(),
    );
    let threads: Vec<_> = (0..problem.blocks)
        .map(|block| {
            let (barrier, sums) = (barrier.clone(), sums.clone());
            std::thread::spawn(move || {
                let points = problem.block(block);
                let mut centroids = problem.initial_centroids();
                for iteration in 0..problem.iterations {
                    let partial = kmeans::partial_sums(&points, &centroids);
                    {
                        let mut totals = sums[iteration].lock().unwrap();
                        for (total, (sum, count)) in totals.iter_mut().zip(partial) {
                            total.0.iter_mut().zip(sum).for_each(|(t, s)| *t += s);
                            total.1 += count;
                        }
                    }
                    barrier.wait();
                    let totals = sums[iteration].lock().unwrap().clone();
                    centroids = totals
                        .iter()
                        .zip(&centroids)
                        .map(|((s, c), old)| kmeans::centroid(s, *c, old))
                        .collect();
                }
                kmeans::inertia(&points, &centroids)
            })
        })
        .collect();
    threads.into_iter().map(|thread| thread.join().unwrap()).sum()
}

/// Monte Carlo pi on `std::thread`s adding to one atomic.
fn native_pi(workers: &[apps::pi::PiWorker]) -> u64 {
    let total = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = workers
        .iter()
        .map(|worker| {
            let (total, worker) = (total.clone(), worker.clone());
            std::thread::spawn(move || {
                total.fetch_add(apps::pi::hits(worker.samples, worker.seed), Ordering::Relaxed)
            })
        })
        .collect();
    threads.into_iter().for_each(|thread| {
        thread.join().unwrap();
    });
    total.load(Ordering::Relaxed)
}

#[cfg(feature = "lambda")]
async fn lambda_latency(endpoint: &str, rounds: usize) -> Result<(), Box<dyn std::error::Error>> {
    use crucial_threads::lambda::Lambda;
    let lambda = Lambda::builder("crucial-lambda-handler")
        .endpoint(endpoint)
        .embedded_server(apps::server())
        .start()
        .await?;
    // The handler knows the applications' runnables: a one-dart pi thread is the no-op.
    let tiny = || apps::pi::PiWorker { samples: 1, seed: 0, key: "bench.latency".into() };
    let started = Instant::now();
    CloudThread::spawn(&lambda, tiny()).join().await?;
    let first = ms(started.elapsed());
    let mut later = Vec::new();
    for _ in 0..rounds.max(5) * 3 {
        let started = Instant::now();
        CloudThread::spawn(&lambda, tiny()).join().await?;
        later.push(ms(started.elapsed()));
    }
    let local = {
        let executor = Local::builder().embedded_server(apps::server()).start().await?;
        let mut samples = Vec::new();
        for _ in 0..rounds.max(5) * 3 {
            let started = Instant::now();
            CloudThread::spawn(&executor, tiny()).join().await?;
            samples.push(ms(started.elapsed()));
        }
        median(samples)
    };
    let later = median(later);
    println!();
    println!(
        "| one-dart pi thread invoked through `cargo lambda watch` (RequestResponse) | latency | local executor | ratio |"
    );
    println!("|---|---|---|---|");
    println!("| first call (function starts) | {first:.1} ms | | |");
    println!("| later calls (median) | {later:.2} ms | {local:.3} ms | {:.1}x |", later / local);
    Ok(())
}

#[cfg(not(feature = "lambda"))]
async fn lambda_latency(_endpoint: &str, _rounds: usize) -> Result<(), Box<dyn std::error::Error>> {
    Err("the Invoke latency needs `--features lambda`".into())
}
