//! `dso-server`: one Crucial-rs DSO node serving the built-in object types over TCP, alone or
//! as a member of a replicated cluster.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use crucial_dso::cluster::discovery::Discovery;
use crucial_dso::core::node::{ClusterTiming, NodeConfig};
use crucial_dso::server::{ClusterOptions, LinkConfig, ServerBuilder, ServerConfig, BIND_DEFAULT};

/// A server allocates and frees small buffers for every call: mimalloc does that for less CPU
/// than the system allocator.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Serves Crucial-rs distributed shared objects (atomics, collections, futures, semaphores,
/// barriers, ...) to cloud threads and other clients.
///
/// To serve your own object types, build a server in your own binary with
/// `crucial_dso::ServerBuilder::new().register::<YourType>()`.
#[derive(Debug, Parser)]
#[command(version, long_version = LONG_VERSION)]
struct Args {
    /// Address to listen on. Loopback by default: the protocol has no authentication, so only
    /// bind a routable address inside a private network. Port 0 takes a free port; once
    /// listening, the server prints `listening on ADDR` on standard output (logs go to
    /// standard error).
    #[arg(long, default_value = BIND_DEFAULT)]
    bind: SocketAddr,
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

fn main() -> std::io::Result<()> {
    // Logs go to standard error; standard output carries only the `listening on` line.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
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
    runtime.enable_all().build()?.block_on(serve(args))
}

async fn serve(args: Args) -> std::io::Result<()> {
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
    };
    let server = ServerBuilder::new().config(config).start().await?;
    // A supervisor that asked for port 0 learns the port from this line.
    println!("listening on {}", server.local_addr());
    stop_signal().await?;
    if args.discovery.is_some() {
        tracing::info!(member = server.member_id(), "stop signal: handing the keys over");
        if !server.leave(LEAVE_WITHIN).await {
            tracing::warn!("the cluster did not take the keys over in time; stopping anyway");
        }
    }
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}

/// `--version`: the version and whether this build can use S3 for discovery.
#[cfg(feature = "s3")]
const LONG_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (discovery: file, s3)");
#[cfg(not(feature = "s3"))]
const LONG_VERSION: &str =
    concat!(env!("CARGO_PKG_VERSION"), " (discovery: file; build with --features s3 for s3)");

/// How long a stopping member waits for the others to take its keys over.
const LEAVE_WITHIN: Duration = Duration::from_secs(30);

/// Waits for Ctrl-C or, on Unix, SIGTERM (what process managers and `kill` send).
async fn stop_signal() -> std::io::Result<()> {
    #[cfg(all(unix, not(madsim)))]
    {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            interrupted = tokio::signal::ctrl_c() => interrupted,
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(all(unix, not(madsim))))]
    tokio::signal::ctrl_c().await
}
