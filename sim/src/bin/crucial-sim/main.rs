//! `crucial-sim`: run seeded simulations of the DSO node under faults, replay and shrink a
//! failing seed, and check histories (ours, Jepsen's, Knossos', Porcupine's) for linearizability.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

mod partitions;

use clap::{Args, Parser, Subcommand};
use crucial_dso::core::node::Canary;
use crucial_sim::checker::Verdict;
use crucial_sim::external::{check_text, ExternalModel};
use crucial_sim::processes::Stop;
use crucial_sim::simulation::availability::{partition_cost, PartitionCost};
use crucial_sim::simulation::nemesis::FaultKind;
use crucial_sim::simulation::report::violation_html;
use crucial_sim::simulation::run::{HistoryFile, SimConfig, SimOutcome, Simulation};
use crucial_sim::simulation::verify::{methods_of, verify, verify_history, RunVerdict};
use indicatif::{ProgressBar, ProgressStyle};

/// Deterministic simulation and linearizability checking for Crucial-rs.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs many seeds and checks each history; prints a table, writes reports for failures.
    Run(RunArgs),
    /// Re-runs one seed, prints its event trace and writes its report.
    Replay(SeedArgs),
    /// Reduces a failing seed's fault schedule and workload to a small failing case.
    Shrink(SeedArgs),
    /// Starts a cluster of real `dso-server` processes on loopback, runs the workload against
    /// it with every operation recorded, kills the primary of a counter with SIGKILL mid-run and
    /// starts it again, then checks the history and that no acknowledged increment was lost.
    /// Exit status: 0 all good, 1 a violation, 2 the cluster could not be run.
    Processes(ProcessArgs),
    /// Starts `dso-server` members in Linux network namespaces of their own (needs root) and
    /// runs the recorded workload from a hub namespace while real partitions come and go
    /// (packets dropped on chosen links); prints what each partition cost and checks the
    /// history. Exit status: 0 all good, 1 a violation or a bound missed, 2 it could not run.
    Partitions(partitions::PartitionArgs),
    /// Checks history files: prints `FILE<TAB>linearizable|NOT linearizable|unknown`.
    /// Exit status: 0 all linearizable, 1 any not (or unknown), 2 unreadable input.
    Check(CheckArgs),
}

#[derive(Debug, Clone, Args)]
struct Scenario {
    /// Members at the start (default: 3 to 5, chosen by the seed).
    #[arg(long)]
    nodes: Option<usize>,
    /// Copies of each key (default: 2 or 3, chosen by the seed).
    #[arg(long)]
    rf: Option<usize>,
    /// Client processes.
    #[arg(long, default_value_t = 6)]
    clients: usize,
    /// Operations per client.
    #[arg(long, default_value_t = 60)]
    ops: usize,
    /// Keys, cycling through the object types.
    #[arg(long, default_value_t = 17)]
    keys: usize,
    /// Fault kinds, comma-separated (default: every kind the rf survives; with rf 1 all but
    /// crash and replace): loss, duplication, reorder, delay, isolate, halves, one-way, ring,
    /// bridge, peer-one-way, isolate-peers, store-cut, store-flaky, crash, restart, pause,
    /// clock-jump, clock-skew, client-retry, client-crash, join, leave, replace.
    #[arg(long, value_delimiter = ',')]
    nemesis: Vec<FaultKind>,
    /// Faults per run.
    #[arg(long, default_value_t = 6)]
    faults: usize,
    /// Faults happen within this many ms from the start, each held up to half of it (a run
    /// with one partition fault is also judged for availability: see `availability`).
    #[arg(long)]
    fault_phase_ms: Option<u64>,
    /// Deliberate bugs to switch on: skip-deduplication, stale-reads, drop-timeouts,
    /// reply-before-backup-acks, accept-old-epochs, forget-leave, non-authoritative-installs,
    /// trust-reused-ids, answer-without-silent-backups, remove-without-majority,
    /// join-without-probing, quorum-from-unsuspected, client-refusals-from-duplicates,
    /// forget-records-on-delete.
    #[arg(long, value_delimiter = ',')]
    canary: Vec<String>,
}

impl Scenario {
    fn config(&self, seed: u64) -> Result<SimConfig, String> {
        let mut canary = Canary::default();
        if !self.canary.is_empty() && !cfg!(crucial_canary) {
            return Err("this crucial-sim has no deliberate bugs compiled in: run it as \
                        `cargo canaryrun --release -p crucial-sim -- ...` (it builds with `--cfg crucial_canary`)"
                .into());
        }
        for name in &self.canary {
            match name.as_str() {
                "skip-deduplication" => canary.skip_deduplication = true,
                "stale-reads" => canary.stale_reads = true,
                "drop-timeouts" => canary.drop_timeouts = true,
                "reply-before-backup-acks" => canary.reply_before_backup_acks = true,
                "accept-old-epochs" => canary.accept_old_epochs = true,
                "forget-leave" => canary.forget_leave_on_activation = true,
                "non-authoritative-installs" => canary.non_authoritative_installs = true,
                "trust-reused-ids" => canary.trust_reused_member_ids = true,
                "answer-without-silent-backups" => canary.answer_without_silent_backups = true,
                "remove-without-majority" => canary.remove_without_majority = true,
                "join-without-probing" => canary.join_without_probing = true,
                "quorum-from-unsuspected" => canary.quorum_from_unsuspected = true,
                "forget-records-on-delete" => canary.forget_records_on_delete = true,
                "client-refusals-from-duplicates" => canary.client_refusals_from_duplicates = true,
                other => return Err(format!("unknown canary {other:?}")),
            }
        }
        let defaults = SimConfig::new(seed);
        let rf = self.rf.unwrap_or(defaults.rf);
        let faults: BTreeSet<FaultKind> = if self.nemesis.is_empty() {
            FaultKind::survivable(rf)
        } else {
            self.nemesis.iter().copied().collect()
        };
        Ok(SimConfig {
            nodes: self.nodes.unwrap_or(defaults.nodes),
            rf,
            clients: self.clients,
            ops_per_client: self.ops,
            keys: self.keys,
            faults,
            fault_count: self.faults,
            fault_phase_ms: self.fault_phase_ms.unwrap_or(defaults.fault_phase_ms),
            canary,
            ..defaults
        })
    }

    /// The flags that reproduce this scenario.
    fn flags(&self) -> String {
        let mut flags = format!(
            "--clients {} --ops {} --keys {} --faults {}",
            self.clients, self.ops, self.keys, self.faults
        );
        if let Some(nodes) = self.nodes {
            flags += &format!(" --nodes {nodes}");
        }
        if let Some(rf) = self.rf {
            flags += &format!(" --rf {rf}");
        }
        if !self.nemesis.is_empty() {
            let names: Vec<String> = self.nemesis.iter().map(ToString::to_string).collect();
            flags += &format!(" --nemesis {}", names.join(","));
        }
        if let Some(fault_phase_ms) = self.fault_phase_ms {
            flags += &format!(" --fault-phase-ms {fault_phase_ms}");
        }
        if !self.canary.is_empty() {
            flags += &format!(" --canary {}", self.canary.join(","));
        }
        flags
    }
}

#[derive(Debug, Args)]
struct RunArgs {
    /// How many seeds.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    first_seed: u64,
    #[command(flatten)]
    scenario: Scenario,
    /// Write a markdown summary of the sweep here.
    #[arg(long)]
    summary: Option<PathBuf>,
    /// Where violation reports go.
    #[arg(long, default_value = "target/crucial-sim")]
    report_dir: PathBuf,
}

#[derive(Debug, Args)]
struct SeedArgs {
    /// The seed.
    #[arg(long)]
    seed: u64,
    #[command(flatten)]
    scenario: Scenario,
    /// Where the report goes.
    #[arg(long, default_value = "target/crucial-sim")]
    report_dir: PathBuf,
    /// Also write the recorded history as JSON (for `check --model dso`).
    #[arg(long)]
    history_out: Option<PathBuf>,
}

/// What `check` checks a file against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum CheckModel {
    /// Porcupine's etcd register (starts absent).
    CasRegister,
    /// Knossos' `(cas-register 0)`.
    KnossosCasRegister,
    /// Porcupine's string key-value store.
    Kv,
    /// A DSO history (JSON from `replay --history-out`): each key against its object type's `apply`.
    Dso,
}

impl CheckModel {
    fn external(self) -> Option<ExternalModel> {
        match self {
            CheckModel::CasRegister => Some(ExternalModel::CasRegister),
            CheckModel::KnossosCasRegister => Some(ExternalModel::KnossosCasRegister),
            CheckModel::Kv => Some(ExternalModel::Kv),
            CheckModel::Dso => None,
        }
    }
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// The model; guessed from each file when absent (Jepsen logs: cas-register; EDN with keys:
    /// kv; other EDN: knossos-cas-register; a DSO history from `replay --history-out`: dso).
    #[arg(long, value_enum)]
    model: Option<CheckModel>,
    /// Seconds allowed per file before answering `unknown`.
    #[arg(long, default_value_t = 60)]
    budget_secs: u64,
    /// Check each file this many times and add a third column: the median check time in
    /// microseconds (parsing excluded).
    #[arg(long)]
    repeat: Option<usize>,
    /// History files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

const CHECK_BUDGET: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    // The simulated members' own logs (faults they survive) stay quiet unless RUST_LOG asks;
    // logs go to stderr, so that a replay's trace on stdout is the same every time.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,crucial_dso=off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match Cli::parse().command {
        Command::Run(args) => run(args),
        Command::Replay(args) => replay(args),
        Command::Shrink(args) => shrink(args),
        Command::Check(args) => return check(args),
        Command::Processes(args) => processes(args),
        Command::Partitions(args) => partitions::partitions(args),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// The real-process cluster's shape.
#[derive(Debug, Args)]
struct ClusterArgs {
    /// The `dso-server` executable (default: the one next to this executable).
    #[arg(long)]
    server: Option<PathBuf>,
    /// Servers to start (each in a namespace of its own for `partitions`).
    #[arg(long, default_value_t = 3)]
    servers: usize,
    /// Copies of each key.
    #[arg(long, default_value_t = 3)]
    rf: usize,
}

#[derive(Debug, Args)]
struct ProcessArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Client tasks.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Keys of the mixed workload (the counter comes on top).
    #[arg(long, default_value_t = 8)]
    keys: usize,
    /// How long the workload runs, in ms.
    #[arg(long, default_value_t = 6_000)]
    run_ms: u64,
    /// When the counter's primary is stopped, in ms after the start (0: never).
    #[arg(long, default_value_t = 2_000)]
    stop_at_ms: u64,
    /// How it is stopped: `kill` (SIGKILL) or `leave` (SIGTERM: it hands its keys over).
    #[arg(long, value_enum, default_value_t = Stop::Kill)]
    stop: Stop,
    /// How long the stopped server stays down, in ms.
    #[arg(long, default_value_t = 1_500)]
    down_ms: u64,
    /// Servers require a token (a fresh random one) and clients present it.
    #[arg(long)]
    with_token: bool,
    /// Servers serve TLS with certificates of a CA made for the run (written to the work
    /// directory) and speak it to each other; clients trust that CA.
    #[arg(long)]
    with_tls: bool,
    /// Keep the configuration in S3 at this endpoint (e.g. a local moto server) instead of a file.
    #[arg(long)]
    s3_endpoint: Option<String>,
    /// The S3 bucket (it must exist).
    #[arg(long, default_value = "crucial")]
    bucket: String,
    /// Where server logs and the configuration file go.
    #[arg(long, default_value = "target/crucial-processes")]
    work_dir: PathBuf,
    /// Seeds the workload.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// A fresh token for one run (32 hex characters from the process's random hasher keys).
fn random_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let word = || std::collections::hash_map::RandomState::new().build_hasher().finish();
    format!("{:016x}{:016x}", word(), word())
}

fn processes(args: ProcessArgs) -> Result<ExitCode, String> {
    use crucial_sim::processes::{run_processes, ProcessRun, Store};
    let server = match args.cluster.server {
        Some(server) => server,
        None => std::env::current_exe().map_err(|e| e.to_string())?.with_file_name("dso-server"),
    };
    let store = match args.s3_endpoint {
        Some(endpoint) => Store::S3 { endpoint, bucket: args.bucket },
        None => Store::File,
    };
    let run = ProcessRun {
        server,
        work_dir: args.work_dir,
        store,
        servers: args.cluster.servers,
        rf: args.cluster.rf,
        clients: args.clients,
        keys: args.keys,
        run: Duration::from_millis(args.run_ms),
        operations_min: 0,
        stop_at: (args.stop_at_ms > 0).then(|| Duration::from_millis(args.stop_at_ms)),
        stop: args.stop,
        down_for: Duration::from_millis(args.down_ms),
        token: args.with_token.then(random_token),
        tls: args.with_tls,
        seed: args.seed,
        suspect_after_ms: 1_000,
        steady_clients: 0,
        namespaces: Vec::new(),
    };
    let stop = run.stop;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let outcome = runtime.block_on(run_processes(run))?;
    let verdict = verify_history(&outcome.keys, &outcome.history, Duration::from_secs(60));
    let (acknowledged, unknown) = outcome.increments;
    println!("operations recorded: {}", outcome.history.len());
    println!("stopped ({stop:?}): {}", outcome.stopped.as_deref().unwrap_or("nobody"));
    println!("final configuration: epoch {}", outcome.final_status[0].config.epoch);
    println!(
        "increments: {acknowledged} acknowledged, {unknown} unknown, counter reads {}",
        outcome.final_increments
    );
    println!("history: {:?}", verdict.verdict);
    let lost = outcome.lost_update();
    if let Some(lost) = &lost {
        println!("LOST UPDATE: {lost}");
    }
    Ok(if verdict.verdict == Verdict::Linearizable && lost.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Why a run failed, if it did.
fn failure(outcome: &SimOutcome, verdict: &RunVerdict) -> Option<String> {
    if verdict.verdict == Verdict::NotLinearizable {
        let key = &verdict.violation.as_ref().expect("violations carry details").key;
        return Some(format!("NOT linearizable on {key}"));
    }
    outcome.run_failure()
}

/// The command that replays `seed` (with the deliberate bugs' build if the scenario needs it).
fn replay_command(seed: u64, scenario: &Scenario) -> String {
    let cargo = if scenario.canary.is_empty() { "run" } else { "canaryrun" };
    format!("cargo {cargo} --release -p crucial-sim -- replay --seed {seed} {}", scenario.flags())
}

fn write_report(
    dir: &Path,
    outcome: &SimOutcome,
    verdict: &RunVerdict,
    replay: &str,
) -> Result<Option<PathBuf>, String> {
    let Some(violation) = &verdict.violation else { return Ok(None) };
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join(format!("violation-seed-{}.html", outcome.config.seed));
    std::fs::write(&path, violation_html(outcome, violation, replay))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Some(path))
}

struct SeedResult {
    seed: u64,
    operations: usize,
    events: u64,
    simulated_ms: u64,
    /// Per fault kind: injected, and of those active during a state transfer.
    faults: BTreeMap<FaultKind, (u64, u64)>,
    /// Per (type, method): answered, refused, unknown.
    calls: BTreeMap<(String, String), [u64; 3]>,
    /// What the run's one partition cost, if its only fault was one.
    partition: Option<PartitionCost>,
    failure: Option<String>,
}

fn run(args: RunArgs) -> Result<ExitCode, String> {
    args.scenario.config(0)?;
    let progress = ProgressBar::new(args.seeds).with_style(
        ProgressStyle::with_template("{spinner} {bar:40} {pos}/{len} seeds ({per_sec}, eta {eta}) {msg}")
            .map_err(|e| e.to_string())?,
    );
    let started = Instant::now();
    let next = AtomicU64::new(0);
    let results = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= args.seeds {
                    return;
                }
                let seed = args.first_seed + index;
                let outcome = Simulation::new(args.scenario.config(seed).expect("validated")).run();
                let verdict = verify(&outcome, CHECK_BUDGET);
                let failure = failure(&outcome, &verdict);
                if let Some(reason) = &failure {
                    let replay = replay_command(seed, &args.scenario);
                    let report = write_report(&args.report_dir, &outcome, &verdict, &replay).ok().flatten();
                    let message = format!(
                        "seed {seed}: {reason}\n  replay: {replay}{}",
                        report.map(|p| format!("\n  report: {}", p.display())).unwrap_or_default()
                    );
                    if progress.is_hidden() {
                        eprintln!("{message}");
                    } else {
                        progress.println(message);
                    }
                }
                let mut faults = BTreeMap::<FaultKind, (u64, u64)>::new();
                for (fault, during) in outcome.faults.iter().zip(&outcome.faults_during_transfer) {
                    let counts = faults.entry(fault.kind).or_default();
                    counts.0 += 1;
                    counts.1 += u64::from(*during);
                }
                let mut calls = BTreeMap::<(String, String), [u64; 3]>::new();
                for record in &outcome.history {
                    let outcome = match record.output {
                        Some(Ok(_)) => 0,
                        Some(Err(_)) => 1,
                        None => 2,
                    };
                    calls.entry((record.type_name.clone(), record.method.clone())).or_default()[outcome] += 1;
                }
                results.lock().expect("no panics while holding it").push(SeedResult {
                    seed,
                    operations: outcome.history.len(),
                    events: outcome.events,
                    simulated_ms: outcome.simulated_ms,
                    faults,
                    calls,
                    partition: partition_cost(&outcome),
                    failure,
                });
                progress.inc(1);
            });
        }
    });
    progress.finish_and_clear();
    let wall = started.elapsed();
    let results = results.into_inner().expect("workers done");
    let summary = summarize(&results, wall, &args);
    println!("{summary}");
    if let Some(path) = &args.summary {
        std::fs::write(path, &summary).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let failed = results.iter().any(|r| r.failure.is_some());
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn summarize(results: &[SeedResult], wall: Duration, args: &RunArgs) -> String {
    let operations: usize = results.iter().map(|r| r.operations).sum();
    let events: u64 = results.iter().map(|r| r.events).sum();
    let simulated_ms: u64 = results.iter().map(|r| r.simulated_ms).sum();
    let mut faults: BTreeMap<FaultKind, (u64, u64)> = BTreeMap::new();
    let mut calls: BTreeMap<(String, String), [u64; 3]> = BTreeMap::new();
    for result in results {
        for (kind, (count, during)) in &result.faults {
            let total = faults.entry(*kind).or_default();
            total.0 += count;
            total.1 += during;
        }
        for (method, counts) in &result.calls {
            let total = calls.entry(method.clone()).or_default();
            for (sum, count) in total.iter_mut().zip(counts) {
                *sum += count;
            }
        }
    }
    // Every method of every type the workload uses, drawn or not.
    for (type_name, _) in calls.clone().into_keys() {
        for method in methods_of(&type_name) {
            calls.entry((type_name.clone(), method.to_string())).or_default();
        }
    }
    let failures: Vec<String> =
        results.iter().filter_map(|r| r.failure.as_ref().map(|f| format!("seed {}: {f}", r.seed))).collect();
    let seconds = wall.as_secs_f64();
    let mut text = String::from("| measure | value |\n|---|---:|\n");
    text +=
        &format!("| seeds | {} ({}..{}) |\n", results.len(), args.first_seed, args.first_seed + args.seeds);
    text += &format!("| scenario | `{}` |\n", args.scenario.flags());
    text += &format!("| operations recorded | {operations} |\n");
    text += &format!("| failures | {} |\n", failures.len());
    text += &format!("| wall time | {seconds:.2} s |\n");
    text += &format!("| simulated time | {:.1} s |\n", simulated_ms as f64 / 1000.0);
    text += &format!("| simulated : real | {:.0} : 1 |\n", simulated_ms as f64 / 1000.0 / seconds);
    text += &format!("| events | {events} |\n");
    text += &format!("| events per second (simulation and checking) | {:.0} |\n", events as f64 / seconds);
    text += "\n| fault kind | injected | during a state transfer |\n|---|---:|---:|\n";
    for (kind, (count, during)) in faults {
        text += &format!("| {kind} | {count} | {during} |\n");
    }
    text += "\n| type | method | answered | refused | unknown |\n|---|---|---:|---:|---:|\n";
    for ((type_name, method), [answered, refused, unknown]) in calls {
        text += &format!("| {type_name} | {method} | {answered} | {refused} | {unknown} |\n");
    }
    text += &partition_table(results);
    for failure in failures {
        text += &format!("\n- {failure}");
    }
    text
}

/// Per partition kind, for runs whose only fault was one: how long the longest call waited
/// (median and worst over the runs) and how many configurations the partition cost.
fn partition_table(results: &[SeedResult]) -> String {
    let mut by_kind: BTreeMap<FaultKind, Vec<PartitionCost>> = BTreeMap::new();
    for cost in results.iter().filter_map(|result| result.partition) {
        by_kind.entry(cost.kind).or_default().push(cost);
    }
    if by_kind.is_empty() {
        return String::new();
    }
    let mut text = String::from(
        "\n| partition | runs | held (median ms) | longest wait: median / max (ms) | epochs: median / max |\n\
         |---|---:|---:|---:|---:|\n",
    );
    for (kind, costs) in by_kind {
        let median = |mut values: Vec<u64>| {
            values.sort_unstable();
            (values[values.len() / 2], values[values.len() - 1])
        };
        let (held, _) = median(costs.iter().map(|cost| cost.held_ms).collect());
        let (wait, wait_max) = median(costs.iter().map(|cost| cost.longest_wait_ms).collect());
        let (epochs, epochs_max) = median(costs.iter().map(|cost| cost.epochs).collect());
        text += &format!(
            "| {kind} | {} | {held} | {wait} / {wait_max} | {epochs} / {epochs_max} |\n",
            costs.len()
        );
    }
    text
}

fn replay(args: SeedArgs) -> Result<ExitCode, String> {
    let config = SimConfig { trace: true, ..args.scenario.config(args.seed)? };
    let outcome = Simulation::new(config).run();
    for line in &outcome.trace {
        println!("{line}");
    }
    if let Some(path) = &args.history_out {
        HistoryFile::write(&outcome.keys, &outcome.history, path)?;
    }
    let verdict = verify(&outcome, CHECK_BUDGET);
    let replay = replay_command(args.seed, &args.scenario);
    let report = write_report(&args.report_dir, &outcome, &verdict, &replay)?;
    for (fault, during_transfer) in outcome.faults.iter().zip(&outcome.faults_during_transfer) {
        let transfer = if *during_transfer { ", during a state transfer" } else { "" };
        println!(
            "fault {} on slot {} from {} to {} ms (amount {}){transfer}",
            fault.kind, fault.target, fault.start_ms, fault.end_ms, fault.amount
        );
    }
    println!(
        "trace hash {:016x}, {} events, {} operations",
        outcome.trace_hash,
        outcome.events,
        outcome.history.len()
    );
    match failure(&outcome, &verdict) {
        Some(reason) => {
            println!(
                "seed {}: {reason}{}",
                args.seed,
                report.map(|p| format!(" (report: {})", p.display())).unwrap_or_default()
            );
            Ok(ExitCode::from(1))
        }
        None => {
            println!("seed {}: linearizable, live", args.seed);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn shrink(args: SeedArgs) -> Result<ExitCode, String> {
    let mut config = args.scenario.config(args.seed)?;
    let fails = |config: &SimConfig| {
        let outcome = Simulation::new(config.clone()).run();
        let verdict = verify(&outcome, CHECK_BUDGET);
        failure(&outcome, &verdict).map(|reason| (outcome, verdict, reason))
    };
    let Some((first, _, reason)) = fails(&config) else {
        println!("seed {} does not fail: nothing to shrink", args.seed);
        return Ok(ExitCode::SUCCESS);
    };
    let before =
        (first.faults.len(), config.clients, config.ops_per_client, first.history.len(), config.keys);
    // Keep the kind of failure (safety or liveness) while shrinking.
    let liveness = reason.starts_with("liveness");
    let fails = |config: &SimConfig| {
        fails(config).filter(|(_, _, reason)| reason.starts_with("liveness") == liveness)
    };
    config.fault_override = Some(first.faults.clone());
    // Drop faults one at a time while the run still fails.
    let mut index = 0;
    while index < config.fault_override.as_ref().map_or(0, Vec::len) {
        let mut candidate = config.clone();
        candidate.fault_override.as_mut().expect("set above").remove(index);
        if fails(&candidate).is_some() {
            config = candidate;
        } else {
            index += 1;
        }
    }
    // Fewer operations, then fewer clients, while it still fails: try big cuts first.
    let smaller =
        |n: usize| [n / 2, n * 3 / 4, n.saturating_sub(1)].into_iter().filter(move |m| *m >= 1 && *m < n);
    while let Some(ops) = smaller(config.ops_per_client)
        .find(|ops| fails(&SimConfig { ops_per_client: *ops, ..config.clone() }).is_some())
    {
        config.ops_per_client = ops;
    }
    while let Some(clients) =
        smaller(config.clients).find(|c| fails(&SimConfig { clients: *c, ..config.clone() }).is_some())
    {
        config.clients = clients;
    }
    while let Some(keys) =
        smaller(config.keys).find(|k| fails(&SimConfig { keys: *k, ..config.clone() }).is_some())
    {
        config.keys = keys;
    }
    let (outcome, verdict, final_reason) = fails(&config).expect("the shrunk case still fails");
    let faults = config.fault_override.clone().unwrap_or_default();
    println!("seed {}: {reason}", args.seed);
    println!(
        "shrunk from {} faults, {} clients x {} ops ({} operations), {} keys to {} faults, {} clients x {} ops ({} operations), {} keys: {final_reason}",
        before.0,
        before.1,
        before.2,
        before.3,
        before.4,
        faults.len(),
        config.clients,
        config.ops_per_client,
        outcome.history.len(),
        config.keys
    );
    for fault in &faults {
        println!(
            "  fault: {} on node {} from {} to {} ms",
            fault.kind, fault.target, fault.start_ms, fault.end_ms
        );
    }
    let replay = replay_command(args.seed, &args.scenario);
    if let Some(path) =
        write_report(&args.report_dir, &outcome, &verdict, &format!("{replay} (then shrunk as above)"))?
    {
        println!("report: {}", path.display());
    }
    Ok(ExitCode::from(1))
}

/// A file's verdict and, for a violation, why.
type FileCheck = Result<(Verdict, Option<String>), String>;

/// Checks one file's text with `model` (guessed if `None`).
fn check_file(text: &str, model: Option<CheckModel>, budget: Duration) -> FileCheck {
    let is_dso_history = text.trim_start().starts_with('{') && text.contains("\"history\"");
    if model == Some(CheckModel::Dso) || (model.is_none() && is_dso_history) {
        let file: HistoryFile = serde_json::from_str(text).map_err(|e| format!("line {}: {e}", e.line()))?;
        let verdict = verify_history(&file.keys, &file.history, budget);
        let explanation = match &verdict.violation {
            Some(v) => {
                Some(format!("key {}: operation {} cannot follow the prefix {:?}", v.key, v.stuck, v.prefix))
            }
            None => (verdict.verdict == Verdict::Unknown).then(|| verdict.describe()),
        };
        return Ok((verdict.verdict, explanation));
    }
    let result = check_text(text, model.and_then(CheckModel::external), budget).map_err(|e| e.to_string())?;
    Ok((result.verdict, result.explanation))
}

/// The median time to check `text` (already read), in microseconds.
fn median_check_micros(text: &str, model: Option<CheckModel>, budget: Duration, runs: usize) -> u128 {
    let mut times: Vec<u128> = (0..runs.max(1))
        .map(|_| {
            let started = Instant::now();
            let _ = check_file(text, model, budget);
            started.elapsed().as_micros()
        })
        .collect();
    times.sort_unstable();
    times[times.len() / 2]
}

fn check(args: CheckArgs) -> ExitCode {
    let mut worst = 0u8;
    for file in &args.files {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(error) => {
                eprintln!("{}: {error}", file.display());
                worst = 2;
                continue;
            }
        };
        let budget = Duration::from_secs(args.budget_secs);
        match check_file(&text, args.model, budget) {
            Ok((verdict_kind, explanation)) => {
                let verdict = match verdict_kind {
                    Verdict::Linearizable => "linearizable",
                    Verdict::NotLinearizable => "NOT linearizable",
                    Verdict::Unknown => "unknown",
                };
                match args.repeat {
                    Some(runs) => println!(
                        "{}\t{verdict}\t{}",
                        file.display(),
                        median_check_micros(&text, args.model, budget, runs)
                    ),
                    None => println!("{}\t{verdict}", file.display()),
                }
                if verdict_kind != Verdict::Linearizable {
                    if let Some(explanation) = explanation {
                        eprintln!("{}:\n{explanation}", file.display());
                    }
                    worst = worst.max(1);
                }
            }
            Err(error) => {
                eprintln!("{}: unreadable: {error}", file.display());
                worst = 2;
            }
        }
    }
    ExitCode::from(worst)
}
