//! `dso-server`: one Crucial-rs DSO node serving the built-in object types over TCP.

use std::net::SocketAddr;

use clap::Parser;
use crucial_dso::cluster::discovery::{join, leave, Discovery, DiscoveryStore};
use crucial_dso::cluster::placement::stable_hash;
use crucial_dso::cluster::Member;
use crucial_dso::node::NodeConfig;
use crucial_dso::server::{ServerBuilder, ServerConfig, BIND_DEFAULT};

/// Serves Crucial-rs distributed shared objects (atomics, collections, futures, semaphores,
/// barriers, ...) to cloud threads and other clients.
///
/// To serve your own object types, build a server in your own binary with
/// `crucial_dso::ServerBuilder::new().register::<YourType>()`.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on. Loopback by default: the protocol has no authentication, so only
    /// bind a routable address inside a private network.
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
    /// Client sessions held before the least recently used one is evicted.
    #[arg(long, default_value_t = NodeConfig::default().sessions_max)]
    sessions_max: usize,
    /// Join a cluster through this configuration store: `file:PATH` (processes on one machine)
    /// or `s3://bucket/prefix` (builds with the `s3` feature; credentials and region from the
    /// environment). The server adds itself on start and removes itself on a graceful stop.
    #[arg(long)]
    discovery: Option<Discovery>,
    /// Endpoint of an S3-compatible service, for `s3://` discovery outside AWS.
    #[arg(long)]
    s3_endpoint: Option<String>,
    /// The address other members and clients reach this server at (default: the bound address).
    #[arg(long)]
    advertise: Option<String>,
    /// This member's id in the cluster (default: a hash of the advertised address).
    #[arg(long)]
    member_id: Option<u64>,
    /// Worker threads of the async runtime (default: one per core). `1` runs a single-threaded
    /// runtime: lower tail latency under many clients, slightly higher latency for one.
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
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
        ..NodeConfig::default()
    };
    let config = ServerConfig {
        bind: args.bind,
        frame_bytes_max: args.frame_bytes_max,
        connections_max: args.connections_max,
        node,
    };
    let server = ServerBuilder::new().config(config).start().await?;
    let membership = match &args.discovery {
        Some(discovery) => {
            let addr = args.advertise.clone().unwrap_or_else(|| server.local_addr().to_string());
            let id = args.member_id.unwrap_or_else(|| stable_hash(addr.as_bytes()));
            let store = DiscoveryStore::open(discovery, args.s3_endpoint.as_deref())
                .await
                .map_err(std::io::Error::other)?;
            let joined = join(&store, Member { id, addr }, 1).await.map_err(std::io::Error::other)?;
            tracing::info!(
                member = id,
                epoch = joined.config.epoch,
                members = joined.config.members.len(),
                "joined the cluster"
            );
            Some((store, id))
        }
        None => None,
    };
    stop_signal().await?;
    tracing::info!("stop signal: shutting down");
    if let Some((store, id)) = membership {
        match leave(&store, id).await {
            Ok(left) => tracing::info!(epoch = left.map(|v| v.config.epoch), "left the cluster"),
            Err(error) => tracing::warn!(%error, "could not leave the cluster"),
        }
    }
    server.shutdown().await;
    Ok(())
}

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
