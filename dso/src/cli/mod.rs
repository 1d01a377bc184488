//! The `dso-server` command line, for any server binary: [`main`] runs one DSO node, alone
//! or as a member of a replicated cluster, serving the object types of the builder it is
//! given. `dso-server` gives it the built-in types; a binary of your own registers yours and
//! gets the same flags, settings file, TLS and graceful leave:
//!
//! ```no_run
//! # use crucial_dso::objects::Counter as MyType;
//! fn main() -> std::process::ExitCode {
//!     crucial_dso::cli::main(crucial_dso::ServerBuilder::new().register::<MyType>())
//! }
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgAction, CommandFactory, FromArgMatches, Parser, ValueEnum};
use crucial_dso::cluster::discovery::Discovery;
use crucial_dso::core::node::{ClusterTiming, NodeConfig};
use crucial_dso::server::{ClusterOptions, LinkConfig, ServerBuilder, ServerConfig, BIND_DEFAULT};
use crucial_dso::tls::TLS_NAME_DEFAULT;
use serde::{Deserialize, Serialize};
use settings_file::SettingsFile;

mod secrets;
mod settings_file;

/// Serves Crucial-rs distributed shared objects (atomics, collections, futures, semaphores,
/// barriers, ...) to cloud threads and other clients.
///
/// To serve your own object types, register them with a `crucial_dso::ServerBuilder` in a
/// binary of your own that calls `crucial_dso::cli::main` with it: same flags.
#[derive(Debug, Parser)]
#[command(name = "dso-server", version, long_version = LONG_VERSION)]
pub(crate) struct Args {
    /// Settings from a TOML file, under the flags' names (`bind = "0.0.0.0:11222"`, `rf = 3`,
    /// `token-file = "/etc/crucial/token"`, ...); a flag given on the command line wins. Paths
    /// in it are relative to the working directory, as on the command line.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print the settings in effect (flags over file over defaults) as TOML, and exit.
    #[arg(long)]
    print_config: bool,
    /// How log lines look on standard error: `text` for people, `json` (one object per line)
    /// for log collectors. `RUST_LOG` chooses what is logged (default `info`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Address to listen on. Loopback by default; any other address needs a token (see
    /// `--token-file`) and TLS (`--tls-cert`, `--tls-key`), or `--insecure`. Port 0 takes a free port; once listening, the server
    /// prints `listening on ADDR` on standard output (logs go to standard error).
    #[arg(long, default_value = BIND_DEFAULT)]
    bind: SocketAddr,
    /// A file holding the token every client and member must present (at least 16
    /// characters; a final newline is ignored). It must not be readable by other users
    /// (`chmod 600`). The token can come from the `DSO_TOKEN` environment variable instead; it
    /// is never taken on the command line, where process listings show it.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Serve a non-loopback address without a token or without TLS: anyone who reaches the
    /// port, or reads the traffic, can read and change every object. Only for a network
    /// protected otherwise. `--insecure=false`
    /// overrides a settings file that says `insecure = true`.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_value_t = false, default_missing_value = "true", action = ArgAction::Set)]
    insecure: bool,
    /// Serve TLS with this certificate chain (PEM, the server's certificate first), issued
    /// for the cluster's name (`--tls-name`). Clients and members then connect with TLS only.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM). Like the token file, it must not be readable by
    /// other users.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The CA certificates (PEM) that sign the members' certificates: a member connects to
    /// the others with TLS and checks theirs against these. Needed with `--discovery`.
    #[arg(long, requires = "tls_cert")]
    tls_ca: Option<PathBuf>,
    /// The name the members' certificates are issued for, which clients and members check
    /// (not the address they dial: one certificate serves a member at any address).
    #[arg(long, default_value = TLS_NAME_DEFAULT)]
    tls_name: String,
    /// Serve `GET /metrics` (Prometheus's text format: calls by type, call durations, keys,
    /// parked calls, sessions, epoch, transfer, bytes queued per member) on this address. It
    /// asks for no token: bind it where only the monitoring system reaches it.
    #[arg(long)]
    metrics_bind: Option<SocketAddr>,
    /// Largest frame accepted, in bytes; a larger frame closes its connection.
    #[arg(long, default_value_t = ServerConfig::default().frame_bytes_max)]
    frame_bytes_max: usize,
    /// Connections served at once; further ones are refused.
    #[arg(long, default_value_t = ServerConfig::default().connections_max)]
    connections_max: usize,
    /// Unacknowledged calls one client session may have recorded (its pipelining window).
    #[arg(long, default_value_t = NodeConfig::default().session_calls_max)]
    session_calls_max: usize,
    /// Client sessions held per key before the least recently used one is evicted (every
    /// member of a cluster must use the same).
    #[arg(long, default_value_t = NodeConfig::default().sessions_max)]
    sessions_max: usize,
    /// Largest encoded object; a call that would grow one past it is refused (every member
    /// of a cluster must use the same).
    #[arg(long, default_value_t = NodeConfig::default().object_bytes_max)]
    object_bytes_max: usize,
    /// Join a cluster through this configuration store: `file:PATH` (processes on one machine)
    /// or `s3://bucket/prefix` (builds with the `s3` feature; credentials and region from the
    /// environment). The server adds itself on start (receiving its keys before it serves)
    /// and, on SIGTERM or Ctrl-C, hands its keys over before it exits.
    #[arg(long)]
    discovery: Option<Discovery>,
    /// Copies of each key in the cluster (with `--discovery`): `rf` copies survive `rf - 1`
    /// crashes. Capped at the number of members; 1 for a single server.
    #[arg(long, default_value_t = 1)]
    rf: usize,
    /// Milliseconds without a message from a member before it is suspected and replaced.
    #[arg(long, default_value_t = ClusterTiming::default().suspect_after_ms)]
    suspect_after_ms: u64,
    /// Endpoint of an S3-compatible service, for `s3://` discovery outside AWS.
    #[arg(long)]
    s3_endpoint: Option<String>,
    /// The address other members and clients reach this server at (default: the bound address).
    #[arg(long)]
    advertise: Option<String>,
    /// This member's id in the cluster (default: random). A restarted server holds nothing:
    /// given its old id, it notices, takes that id out of the configuration and joins under
    /// a new one.
    #[arg(long)]
    member_id: Option<u64>,
    /// Worker threads of the async runtime (default: one per core). `1` runs a single-threaded
    /// runtime, without cross-thread wake-ups: the better choice where members share cores.
    #[arg(long)]
    threads: Option<usize>,
    /// Microseconds to keep polling the sockets after serving anything, before sleeping (0:
    /// off). Lower latency while traffic lasts, for a core kept busy meanwhile; use with
    /// `--threads 1` on a core of its own.
    #[arg(long, default_value_t = ServerConfig::default().busy_poll_us)]
    busy_poll_us: u64,
    /// Messages to another member sent less than this many microseconds after the previous
    /// write to it wait for the other calls ready now and leave with them in one write (0:
    /// each is written at once).
    #[arg(long, default_value_t = LinkConfig::default().peer_coalesce_us)]
    peer_coalesce_us: u64,
}

/// Runs the `dso-server` command line (flags from this process's arguments), serving the
/// object types `builder` registered; its configuration comes from the flags.
pub fn main(builder: ServerBuilder) -> ExitCode {
    match run(builder) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("dso-server: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The format of log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The command line, with the settings of `--config` under the flags given.
fn args() -> Result<Args, String> {
    let matches = Args::command().get_matches();
    let mut args = Args::from_arg_matches(&matches).map_err(|error| error.to_string())?;
    if let Some(path) = args.config.clone() {
        SettingsFile::read(&path)?.apply(&mut args, &matches)?;
    }
    Ok(args)
}

fn run(builder: ServerBuilder) -> std::io::Result<()> {
    let args = args().map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidInput, error))?;
    if args.print_config {
        print!("{}", SettingsFile::of(&args).to_toml());
        return Ok(());
    }
    // Logs go to standard error; standard output carries only the `listening on` line.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter);
    match args.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    // One thread: a single-threaded runtime, no work stealing or cross-thread wake-ups.
    let mut runtime = match args.threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(threads) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(threads);
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    runtime.enable_all().build()?.block_on(serve(args, builder))
}

async fn serve(args: Args, builder: ServerBuilder) -> std::io::Result<()> {
    let token = secrets::token(args.token_file.as_deref(), std::env::var(secrets::TOKEN_VARIABLE).ok())?;
    let tls = secrets::tls(&args)?;
    let node = NodeConfig {
        session_calls_max: args.session_calls_max,
        sessions_max: args.sessions_max,
        object_bytes_max: args.object_bytes_max,
        ..NodeConfig::default()
    };
    let cluster = args.discovery.clone().map(|discovery| ClusterOptions {
        discovery,
        s3_endpoint: args.s3_endpoint.clone(),
        advertise: args.advertise.clone(),
        member_id: args.member_id,
        rf: args.rf,
        timing: ClusterTiming { suspect_after_ms: args.suspect_after_ms, ..ClusterTiming::default() },
    });
    let config = ServerConfig {
        bind: args.bind,
        frame_bytes_max: args.frame_bytes_max,
        connections_max: args.connections_max,
        node,
        cluster,
        busy_poll_us: args.busy_poll_us,
        links: LinkConfig { peer_coalesce_us: args.peer_coalesce_us, ..LinkConfig::default() },
        token,
        tls,
        insecure: args.insecure,
        metrics_bind: args.metrics_bind,
    };
    let server = builder.config(config).start().await?;
    // Installed before the server says it listens: a stop signal from then on is a leave.
    let stop = StopSignal::install()?;
    // A supervisor that asked for port 0 learns the ports from these lines.
    println!("listening on {}", server.local_addr());
    if let Some(addr) = server.metrics_addr() {
        println!("metrics on http://{addr}/metrics");
    }
    stop.wait().await?;
    let mut handed_over = true;
    if args.discovery.is_some() {
        tracing::info!(member = server.member_id(), "stop signal: handing the keys over");
        handed_over = server.leave(LEAVE_WITHIN).await;
        if !handed_over {
            tracing::warn!("the cluster did not take the keys over in time; stopping anyway");
        }
    }
    tracing::info!("shutting down");
    server.shutdown().await;
    // A supervisor learns from the exit status whether the keys were handed over.
    match handed_over {
        true => Ok(()),
        false => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("the cluster did not take this member's keys over within {LEAVE_WITHIN:?}"),
        )),
    }
}

/// `--version`: the version and whether this build can use S3 for discovery.
#[cfg(feature = "s3")]
const LONG_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (discovery: file, s3)");
#[cfg(not(feature = "s3"))]
const LONG_VERSION: &str =
    concat!(env!("CARGO_PKG_VERSION"), " (discovery: file; build with --features s3 for s3)");

/// How long a stopping member waits for the others to take its keys over.
const LEAVE_WITHIN: Duration = Duration::from_secs(30);

/// Ctrl-C or, on Unix, SIGTERM (what process managers and `kill` send): the signal to stop.
struct StopSignal {
    #[cfg(all(unix, not(madsim)))]
    terminate: tokio::signal::unix::Signal,
}

impl StopSignal {
    /// Takes over SIGTERM (whose default would end the process at once).
    fn install() -> std::io::Result<StopSignal> {
        Ok(StopSignal {
            #[cfg(all(unix, not(madsim)))]
            terminate: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?,
        })
    }

    /// Until Ctrl-C or SIGTERM.
    // (Under madsim there is no SIGTERM to take over: nothing in it changes.)
    #[cfg_attr(madsim, allow(unused_mut))]
    async fn wait(mut self) -> std::io::Result<()> {
        #[cfg(all(unix, not(madsim)))]
        tokio::select! {
            interrupted = tokio::signal::ctrl_c() => interrupted,
            _ = self.terminate.recv() => Ok(()),
        }
        #[cfg(not(all(unix, not(madsim))))]
        tokio::signal::ctrl_c().await
    }
}
