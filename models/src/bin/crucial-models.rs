//! `crucial-models`: exhaustive model checking of the DSO protocol with stateright, built from
//! the same sans-IO state machines as the server.

use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand, ValueEnum};
use crucial_dso::node::Canary;
use crucial_models::single_node::SingleNodeConfig;
use stateright::{Checker, Model};

/// Model checks Crucial-rs protocol state machines.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Explores every reachable state breadth-first and checks the properties; prints states,
    /// unique states, depth, time and states per second, and a counterexample path on failure.
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
    /// Resends per call.
    #[arg(long, default_value_t = 1)]
    resends: u8,
    /// A network that never drops messages (it still duplicates and reorders).
    #[arg(long)]
    lossless: bool,
    /// A deliberate bug to switch on: skip-deduplication, stale-reads.
    #[arg(long)]
    canary: Option<String>,
    /// Checker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

impl ModelArgs {
    fn config(&self) -> Result<SingleNodeConfig, String> {
        let canary = match self.canary.as_deref() {
            None => Canary::default(),
            Some("skip-deduplication") => Canary { skip_deduplication: true, ..Canary::default() },
            Some("stale-reads") => Canary { stale_reads: true, ..Canary::default() },
            Some(other) => return Err(format!("unknown canary {other:?}")),
        };
        let ModelName::SingleNode = self.model;
        Ok(SingleNodeConfig {
            clients: self.clients,
            ops_per_client: self.ops,
            resends_max: self.resends,
            lossy: !self.lossless,
            canary,
        })
    }
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check(args) => match args.config() {
            Ok(config) => check(config, args.threads),
            Err(message) => {
                eprintln!("error: {message}");
                ExitCode::from(2)
            }
        },
        Command::Explore { model, addr } => match model.config() {
            Ok(config) => {
                println!("Explorer on http://{addr}");
                config.into_model().checker().threads(model.threads).serve(addr);
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("error: {message}");
                ExitCode::from(2)
            }
        },
    }
}

fn check(config: SingleNodeConfig, threads: usize) -> ExitCode {
    let started = Instant::now();
    let checker = config.into_model().checker().threads(threads).spawn_bfs().join();
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
        println!(
            "{:?} {:?}: {}",
            property.expectation,
            property.name,
            if holds { "holds" } else { "VIOLATED" }
        );
        if !holds {
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
