//! `crucial-models`: exhaustive model checking of the DSO protocol with stateright, built from
//! the same sans-IO state machines as the server.

use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand, ValueEnum};
use crucial_dso_core::node::Canary;
use crucial_models::replication::{ReplicationConfig, Scenario};
use crucial_models::single_node::SingleNodeConfig;
use stateright::{Checker, CheckerBuilder, Model, UniformChooser};

/// Model checks Crucial-rs protocol state machines.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Explores every reachable state breadth-first (up to --depth) and checks the properties;
    /// prints states, unique states, depth, time and states per second, and a counterexample
    /// path on failure. Exit status: 0 all properties hold, 1 one does not, 2 bad arguments.
    Check(ModelArgs),
    /// Serves stateright's Explorer (a web UI) for the model.
    Explore {
        #[command(flatten)]
        model: ModelArgs,
        /// Where the Explorer listens.
        #[arg(long, default_value = "127.0.0.1:3000")]
        addr: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModelName {
    /// One node and its clients calling an AtomicLong over a lossy, duplicating network.
    SingleNode,
    /// Three replicas (rf 3); up to --crashes of them crash and the survivors reconfigure.
    Replication,
    /// Two replicas; a third joins with state transfer and the first leaves, during calls.
    Reconfiguration,
    /// Two replicas (rf 2); the first crashes, the survivor (a minority) must wait, and serves
    /// again once a third member has joined.
    Minority,
    /// Two replicas (rf 2) serve while a third, cut from both (not from the store), asks to
    /// join: it must probe them first and never propose a join they cannot complete.
    CutJoiner,
}

#[derive(Debug, Args)]
struct ModelArgs {
    /// The model.
    #[arg(value_enum)]
    model: ModelName,
    /// Client actors.
    #[arg(long, default_value_t = 2)]
    clients: usize,
    /// Operations per client.
    #[arg(long, default_value_t = 1)]
    ops: usize,
    /// Resends per call (single-node).
    #[arg(long, default_value_t = 1)]
    resends: u8,
    /// Crashes the nemesis may inject (replication).
    #[arg(long, default_value_t = 1)]
    crashes: usize,
    /// Explore paths up to this many steps (0: no bound for a search; random walks default to
    /// 300 steps, as each walk otherwise runs forever).
    #[arg(long, default_value_t = 0)]
    depth: usize,
    /// A network that never drops messages.
    #[arg(long)]
    lossless: bool,
    /// Each client starts with a compare-and-set from 0 to its bit (only the first applied
    /// succeeds) instead of an add (replication, reconfiguration).
    #[arg(long)]
    cas: bool,

    /// A deliberate bug to switch on: skip-deduplication, stale-reads,
    /// reply-before-backup-acks, accept-old-epochs, remove-without-majority,
    /// join-without-probing.
    #[arg(long)]
    canary: Option<String>,
    /// Checker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Instead of breadth-first search, walk random paths (stateright's simulation checker)
    /// until this many states were visited; reaches depths a full search cannot.
    #[arg(long)]
    random_walks: Option<usize>,
    /// Seed of the random walks.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl ModelArgs {
    fn canary(&self) -> Result<Canary, String> {
        let mut canary = Canary::default();
        if self.canary.is_some() && !cfg!(crucial_canary) {
            return Err("this crucial-models has no deliberate bugs compiled in: run it as \
                        `cargo canaryrun --release -p crucial-models -- ...` (it builds with `--cfg crucial_canary`)"
                .into());
        }
        match self.canary.as_deref() {
            None => {}
            Some("skip-deduplication") => canary.skip_deduplication = true,
            Some("stale-reads") => canary.stale_reads = true,
            Some("reply-before-backup-acks") => canary.reply_before_backup_acks = true,
            Some("accept-old-epochs") => canary.accept_old_epochs = true,
            Some("remove-without-majority") => canary.remove_without_majority = true,
            Some("join-without-probing") => canary.join_without_probing = true,
            Some(other) => return Err(format!("unknown canary {other:?}")),
        }
        Ok(canary)
    }

    fn single_node(&self) -> Result<SingleNodeConfig, String> {
        Ok(SingleNodeConfig {
            clients: self.clients,
            ops_per_client: self.ops,
            resends_max: self.resends,
            lossy: !self.lossless,
            canary: self.canary()?,
        })
    }

    fn replication(&self, scenario: Scenario) -> Result<ReplicationConfig, String> {
        Ok(ReplicationConfig {
            scenario,
            clients: self.clients,
            ops_per_client: self.ops,
            cas: self.cas,
            crashes: self.crashes,
            lossy: !self.lossless,
            // Random walks run on in-order links (see `ReplicationConfig::fifo`).
            fifo: self.random_walks.is_some(),
            count_steps: self.random_walks.is_some(),
            canary: self.canary()?,
        })
    }

    /// Runs `action` on the checker builder of the chosen model.
    fn with_checker<R>(&self, action: impl Visit<R>) -> Result<R, String> {
        let depth = match (self.depth, self.random_walks) {
            (0, Some(_)) => WALK_DEPTH_DEFAULT,
            (depth, _) => depth,
        };
        Ok(match self.model {
            ModelName::SingleNode => action.visit(bounded(self.single_node()?.into_model().checker(), depth)),
            ModelName::Replication => {
                action.visit(bounded(self.replication(Scenario::Crash)?.into_model().checker(), depth))
            }
            ModelName::Reconfiguration => {
                action.visit(bounded(self.replication(Scenario::Replace)?.into_model().checker(), depth))
            }
            ModelName::Minority => {
                action.visit(bounded(self.replication(Scenario::Minority)?.into_model().checker(), depth))
            }
            ModelName::CutJoiner => {
                action.visit(bounded(self.replication(Scenario::CutJoiner)?.into_model().checker(), depth))
            }
        })
    }
}

/// How long a random walk runs unless `--depth` says otherwise.
const WALK_DEPTH_DEFAULT: usize = 300;

/// The builder limited to paths of `depth` steps (0: unlimited).
fn bounded<M: Model>(builder: CheckerBuilder<M>, depth: usize) -> CheckerBuilder<M> {
    match depth {
        0 => builder,
        depth => builder.target_max_depth(depth),
    }
}

/// Something to do with a checker builder of any model.
trait Visit<R> {
    fn visit<M>(self, builder: CheckerBuilder<M>) -> R
    where
        M: Model + Send + Sync + 'static,
        M::State: std::fmt::Debug + std::hash::Hash + Send + Sync + Clone + PartialEq,
        M::Action: std::fmt::Debug + Send + Sync + Clone + PartialEq;
}

/// A breadth-first check (or random walks) with a report.
struct CheckRun {
    threads: usize,
    random_walks: Option<usize>,
    seed: u64,
    /// Limited in depth or sampled: states not reached may exist.
    bounded: bool,
}

impl Visit<ExitCode> for CheckRun {
    fn visit<M>(self, builder: CheckerBuilder<M>) -> ExitCode
    where
        M: Model + Send + Sync + 'static,
        M::State: std::fmt::Debug + std::hash::Hash + Send + Sync + Clone + PartialEq,
        M::Action: std::fmt::Debug + Send + Sync + Clone + PartialEq,
    {
        let started = Instant::now();
        let builder = builder.threads(self.threads);
        let checker: Box<dyn Checker<M>> = match self.random_walks {
            Some(states) => Box::new(
                builder.target_state_count(states).spawn_simulation(self.seed, UniformChooser).join(),
            ),
            None => Box::new(builder.spawn_bfs().join()),
        };
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "states {}, unique {}, max depth {}, {seconds:.2} s, {:.0} states/s",
            checker.state_count(),
            checker.unique_state_count(),
            checker.max_depth(),
            checker.state_count() as f64 / seconds
        );
        let mut failed = false;
        for property in checker.model().properties() {
            let discovery = checker.discovery(property.name);
            let holds = match property.expectation {
                stateright::Expectation::Always | stateright::Expectation::Eventually => discovery.is_none(),
                stateright::Expectation::Sometimes => discovery.is_some(),
            };
            // A state a bounded search or a sample of walks did not reach is no violation.
            let unreached =
                !holds && property.expectation == stateright::Expectation::Sometimes && self.bounded;
            let verdict = match (holds, unreached) {
                (true, _) => "holds",
                (false, true) => "not reached within the bound",
                (false, false) => "VIOLATED",
            };
            println!("{:?} {:?}: {verdict}", property.expectation, property.name);
            if !holds && !unreached {
                failed = true;
                if let Some(path) = discovery {
                    println!("counterexample:");
                    for action in path.into_actions() {
                        println!("  {action:?}");
                    }
                }
            }
        }
        if failed {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        }
    }
}

/// Serves the Explorer.
struct ExploreRun {
    threads: usize,
    addr: String,
}

impl Visit<ExitCode> for ExploreRun {
    fn visit<M>(self, builder: CheckerBuilder<M>) -> ExitCode
    where
        M: Model + Send + Sync + 'static,
        M::State: std::fmt::Debug + std::hash::Hash + Send + Sync + Clone + PartialEq,
        M::Action: std::fmt::Debug + Send + Sync + Clone + PartialEq,
    {
        println!("Explorer on http://{}", self.addr);
        builder.threads(self.threads).serve(self.addr);
        ExitCode::SUCCESS
    }
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Check(args) => args.with_checker(CheckRun {
            threads: args.threads,
            random_walks: args.random_walks,
            seed: args.seed,
            bounded: args.depth > 0 || args.random_walks.is_some(),
        }),
        Command::Explore { model, addr } => model.with_checker(ExploreRun { threads: model.threads, addr }),
    };
    result.unwrap_or_else(|message| {
        eprintln!("error: {message}");
        ExitCode::from(2)
    })
}
