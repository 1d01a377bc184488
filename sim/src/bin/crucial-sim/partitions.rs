//! `crucial-sim partitions`: real partitions between `dso-server` processes in network
//! namespaces, with what each cost and the history checked.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use crucial_sim::checker::Verdict;
use crucial_sim::netns::{self, Partition, Topology};
use crucial_sim::partitions::{run_partitions, session_refusals, unanswered, PartitionPlan, PartitionRound};
use crucial_sim::processes::{ProcessRun, Stop, Store};
use crucial_sim::simulation::run::HistoryFile;
use crucial_sim::simulation::verify::verify_history;
use crucial_sim::transfers::TransferOutcome;
use indicatif::{ProgressBar, ProgressStyle};

/// Goals per partition (reported, not enforced: times depend on the machine): the longest
/// wait of a call while one member is cut, the time until the cluster is whole after the
/// heal, and the configurations one partition costs.
const WAIT_GOAL_MS: u64 = 1_500;
const WHOLE_GOAL_MS: u64 = 2_000;
const EPOCHS_GOAL: u64 = 4;

#[derive(Debug, Args)]
pub struct PartitionArgs {
    #[command(flatten)]
    cluster: super::ClusterArgs,
    /// Partition kinds, used in turn, comma-separated: pair-cut, one-way, peers-cut, isolated,
    /// bridge, store-cut (default: all; store-cut needs `--store s3`).
    #[arg(long, value_delimiter = ',')]
    kinds: Vec<Partition>,
    /// Partitions in all.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// How long each partition is held, in ms.
    #[arg(long, default_value_t = 5_000)]
    hold_ms: u64,
    /// How long the cluster runs healed after each partition, in ms (at least until whole).
    #[arg(long, default_value_t = 4_000)]
    healed_ms: u64,
    /// The members' `--suspect-after-ms`.
    #[arg(long, default_value_t = 400)]
    suspect_after_ms: u64,
    /// Client tasks.
    #[arg(long, default_value_t = 6)]
    clients: usize,
    /// Of those, clients that never call types whose calls park (semaphores, barriers,
    /// latches, futures): the calls that show whether the cluster serves.
    #[arg(long, default_value_t = 4)]
    steady_clients: usize,
    /// Cloud threads per wave of the transfer workload (0: none): each moves amounts between
    /// accounts, half with a backup started at once, every first attempt killed at a random
    /// call and retried.
    #[arg(long, default_value_t = 8)]
    threads_per_wave: u64,
    /// A wave of cloud threads starts at most this often, in ms (each thread leaves its
    /// stored outcome behind: unpaced waves grow the cluster by thousands of keys a minute).
    #[arg(long, default_value_t = 1_000)]
    wave_interval_ms: u64,
    /// Keys of the mixed workload (the counter comes on top).
    #[arg(long, default_value_t = 8)]
    keys: usize,
    /// The configuration store: `s3` (moto's server in the hub, reached by each member over a
    /// link of its own; needs a dso-server built with `--features s3`) or `file`.
    #[arg(long, value_enum, default_value_t = StoreKind::S3)]
    store: StoreKind,
    /// Names the namespaces (`PREFIX-hub`, `PREFIX-m0`, ...); any of that name are replaced.
    #[arg(long, default_value = "crp")]
    prefix: String,
    /// Where server logs and the configuration file go.
    #[arg(long, default_value = "target/crucial-partitions")]
    work_dir: PathBuf,
    /// Seeds the workload and the targets.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also write the per-kind summary (markdown) here.
    #[arg(long)]
    summary: Option<PathBuf>,
    /// Also write the recorded history as JSON (for `check --model dso`).
    #[arg(long)]
    history_out: Option<PathBuf>,
    /// Also write each partition's figures as JSON lines.
    #[arg(long)]
    rounds_out: Option<PathBuf>,
}

/// Where the members keep their configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// moto's S3 server in the hub namespace.
    S3,
    /// A file all namespaces share (it cannot be cut).
    File,
}

pub fn partitions(args: PartitionArgs) -> Result<ExitCode, String> {
    netns::available().map_err(|error| format!("cannot create network namespaces (root needed): {error}"))?;
    let server = match args.cluster.server {
        Some(server) => server,
        None => std::env::current_exe().map_err(|e| e.to_string())?.with_file_name("dso-server"),
    };
    let mut kinds = if args.kinds.is_empty() { Partition::ALL.to_vec() } else { args.kinds.clone() };
    if args.store == StoreKind::File {
        kinds.retain(|kind| *kind != Partition::StoreCut);
    }
    if kinds.is_empty() {
        return Err("no partition kind to run (store-cut needs --store s3)".into());
    }
    let topology = Topology::create(&args.prefix, args.cluster.servers)?;
    let (_store_process, store) = match args.store {
        StoreKind::S3 => {
            let process = topology.start_store("crucial")?;
            (Some(process), Store::S3 { endpoint: netns::STORE_ENDPOINT.into(), bucket: "crucial".into() })
        }
        StoreKind::File => (None, Store::File),
    };
    let run = ProcessRun {
        server,
        work_dir: std::path::absolute(&args.work_dir).map_err(|e| e.to_string())?,
        store,
        servers: args.cluster.servers,
        rf: args.cluster.rf,
        clients: args.clients,
        keys: args.keys,
        run: Duration::from_millis((args.hold_ms + args.healed_ms) * args.rounds as u64 + 3_000),
        operations_min: 0,
        stop_at: None,
        stop: Stop::Kill,
        down_for: Duration::ZERO,
        token: None,
        tls: false,
        seed: args.seed,
        suspect_after_ms: args.suspect_after_ms,
        steady_clients: args.steady_clients,
        namespaces: (0..args.cluster.servers).map(|member| topology.member(member)).collect(),
    };
    let plan = PartitionPlan {
        kinds,
        rounds: args.rounds,
        hold: Duration::from_millis(args.hold_ms),
        healed: Duration::from_millis(args.healed_ms),
        seed: args.seed,
        threads_per_wave: args.threads_per_wave,
        wave_interval: Duration::from_millis(args.wave_interval_ms),
    };
    // This thread, and the runtime's threads it starts, live in the hub: they reach the
    // members as clients do.
    topology.enter_hub()?;
    let progress = ProgressBar::new(args.rounds as u64).with_style(
        ProgressStyle::with_template("{spinner} {bar:40} {pos}/{len} partitions (eta {eta}) {msg}")
            .map_err(|e| e.to_string())?,
    );
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let outcome = runtime.block_on(run_partitions(run, &topology, &plan, |round| {
        progress.set_message(format!("{} on m{}: {} epochs", round.kind, round.target, round.epochs));
        progress.inc(1);
    }));
    progress.finish_and_clear();
    drop(topology);
    let outcome = outcome?;
    // The measurements first: a check that runs out of memory or time keeps them.
    if let Some(path) = &args.history_out {
        HistoryFile::write(&outcome.run.keys, &outcome.run.history, path)?;
    }
    if let Some(path) = &args.rounds_out {
        let lines: Vec<String> = outcome.rounds.iter().map(|round| format!("{round:?}")).collect();
        std::fs::write(path, lines.join("\n") + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let verdict = verify_history(&outcome.run.keys, &outcome.run.history, Duration::from_secs(120));
    let refusals = session_refusals(&outcome.run.history);
    let summary = summarize(&outcome.rounds);
    println!("{summary}");
    let (acknowledged, unknown) = outcome.run.increments;
    println!("operations recorded: {}", outcome.run.history.len());
    println!(
        "increments: {acknowledged} acknowledged, {unknown} unknown, counter reads {}",
        outcome.run.final_increments
    );
    println!("calls refused for their session: {}", refusals.len());
    let unanswered = unanswered(&outcome.run.history);
    println!("calls that do not park left without an answer: {unanswered}");
    let threads_failure = outcome.threads.as_ref().and_then(threads_failure);
    let threads = outcome.threads.as_ref().map_or_else(|| "none".to_string(), ToString::to_string);
    println!("cloud threads: {threads}");
    if let Some(failure) = &threads_failure {
        println!("CLOUD THREADS: {failure}");
    }
    println!("history: {}", verdict.describe());
    if let Some(path) = &args.summary {
        let text = format!(
            "{summary}\noperations recorded: {}; calls refused for their session: {}; calls that do not park \
             left without an answer: {unanswered}; history: {}; lost update: {}; cloud threads: {threads}\n",
            outcome.run.history.len(),
            refusals.len(),
            verdict.describe(),
            outcome.run.lost_update().unwrap_or_else(|| "none".into()),
        );
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let lost = outcome.run.lost_update();
    if let Some(lost) = &lost {
        println!("LOST UPDATE: {lost}");
    }
    for refused in &refusals {
        println!("REFUSED: {refused:?}");
    }
    let never_whole = outcome.rounds.iter().filter(|round| round.whole_after_heal_ms.is_none()).count();
    let good = verdict.verdict == Verdict::Linearizable
        && lost.is_none()
        && refusals.is_empty()
        && unanswered == 0
        && never_whole == 0
        && threads_failure.is_none();
    Ok(if good { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Per kind: partitions, and the median and worst of each cost, against the goals.
fn summarize(rounds: &[PartitionRound]) -> String {
    let mut by_kind: BTreeMap<Partition, Vec<&PartitionRound>> = BTreeMap::new();
    for round in rounds {
        by_kind.entry(round.kind).or_default().push(round);
    }
    let mut text = String::from(
        "| partition | count | longest wait of a call, median / max (ms) | longest silence, median / max (ms) \
         | whole after the heal, median / max (ms) | epochs, median / max |\n|---|---:|---:|---:|---:|---:|\n",
    );
    let spread = |mut values: Vec<u64>| {
        values.sort_unstable();
        format!("{} / {}", values[values.len() / 2], values[values.len() - 1])
    };
    for (kind, rounds) in &by_kind {
        let whole = rounds.iter().map(|round| round.whole_after_heal_ms.unwrap_or(u64::MAX)).collect();
        text += &format!(
            "| {kind} | {} | {} | {} | {} | {} |\n",
            rounds.len(),
            spread(rounds.iter().map(|round| round.longest_wait_ms).collect()),
            spread(rounds.iter().map(|round| round.longest_silence_ms).collect()),
            spread(whole),
            spread(rounds.iter().map(|round| round.epochs).collect()),
        );
    }
    let missed = |bound: u64, value: fn(&PartitionRound) -> u64| {
        rounds.iter().filter(|round| value(round) > bound).count()
    };
    text += &format!(
        "\nGoals: a call waits at most {WAIT_GOAL_MS} ms (missed in {} of {} partitions), the cluster is whole \
         within {WHOLE_GOAL_MS} ms of the heal (missed in {}), at most {EPOCHS_GOAL} epochs per partition \
         (missed in {}).\n",
        missed(WAIT_GOAL_MS, |round| round.longest_wait_ms),
        rounds.len(),
        missed(WHOLE_GOAL_MS, |round| round.whole_after_heal_ms.unwrap_or(u64::MAX)),
        missed(EPOCHS_GOAL, |round| round.epochs),
    );
    text
}

/// Why the cloud threads' run went wrong, if it did: a failed thread or plain call, a wrong
/// balance, a transfer counted twice or lost.
fn threads_failure(threads: &TransferOutcome) -> Option<String> {
    if let Some(first) = threads.failed.first() {
        return Some(format!("{} threads failed; first: {first}", threads.failed.len()));
    }
    if let Some(first) = threads.plain_failures.first() {
        return Some(format!("{} plain calls failed; first: {first}", threads.plain_failures.len()));
    }
    if let Some(first) = threads.wrong_balances.first() {
        return Some(format!("{} balances wrong; first: {first}", threads.wrong_balances.len()));
    }
    (threads.done.0 != threads.done.1)
        .then(|| format!("{} transfers counted, {} planned", threads.done.0, threads.done.1))
}
