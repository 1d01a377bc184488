//! `cluster-bench`: one load generator for DSO, Redis and etcd, so that every system is
//! measured the same way. Each client has its own connection, keeps one operation in flight
//! and works on its own key; latencies go into one histogram.
//!
//! Workloads:
//! - `rmw`, a read-modify-write: DSO `AtomicLong::increment_and_get`; Redis `INCR`; etcd a
//!   transaction that compares the value last read and puts its increment (the client reads
//!   again and retries on conflict);
//! - `put`, a plain write: DSO `AtomicLong::set`; Redis `SET`; etcd `put`.
//!
//! `--system redis-wait` follows each Redis write with `WAIT <replicas> 5000`, which returns as
//! soon as that many replicas hold it (the 5 s bound only turns a missing replica into an error): the closest in-memory analogue of DSO's primary-backup
//! replication. `--system loopback` measures the floor instead: a 64-byte TCP echo through a
//! thread of this process, so a report can say how many network round trips a latency is.

#[cfg(feature = "etcd")]
mod etcd_load;
mod redis_load;

use std::sync::Arc;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use crucial_dso::client::ClientConfig;
use crucial_dso::core::auth::Token;
use crucial_dso::objects::AtomicLong;
use crucial_dso::tls::TlsTrust;
use crucial_dso::{Dso, Server, Shared};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Measures throughput and latency of one workload against DSO, Redis or etcd.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The system under load.
    #[arg(long, value_enum)]
    system: System,
    /// Its client addresses, comma-separated (`host:port`): every member of a DSO or etcd
    /// cluster, the primary of Redis. With `--system dso` and none, an in-process server.
    #[arg(long, value_delimiter = ',')]
    endpoints: Vec<String>,
    /// The workload.
    #[arg(long, value_enum, default_value_t = Workload::Rmw)]
    workload: Workload,
    /// Concurrent clients, each with its own connection and key.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Operations per client, after the warm-up.
    #[arg(long, default_value_t = 2_000)]
    ops: u64,
    /// Operations per client before measuring.
    #[arg(long, default_value_t = 100)]
    warmup_ops: u64,
    /// Replicas each write waits for with `--system redis-wait`.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    wait_replicas: u16,
    /// Worker threads of the load generator's runtime (1: a single-threaded runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// With `--system dso`: connect over TLS, trusting the CA certificates in this PEM file.
    #[arg(long)]
    tls_ca: Option<std::path::PathBuf>,
    /// With `--tls-ca`: the name the members' certificates are issued for.
    #[arg(long, default_value = crucial_dso::tls::TLS_NAME_DEFAULT)]
    tls_name: String,
    /// With `--system dso`: present the token in this file (its first line).
    #[arg(long)]
    token_file: Option<std::path::PathBuf>,
}

impl Args {
    /// The DSO client's settings: TLS and the token, if asked for.
    fn dso_client(&self) -> Result<ClientConfig, Failure> {
        let tls = match &self.tls_ca {
            Some(path) => Some(TlsTrust::from_pem(&std::fs::read(path)?, &self.tls_name)?),
            None => None,
        };
        let token = match &self.token_file {
            Some(path) => Some(Token::new(std::fs::read_to_string(path)?.trim_end())?),
            None => None,
        };
        Ok(ClientConfig { tls, token, ..ClientConfig::default() })
    }
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum System {
    /// DSO (`dso-server`, one member or a cluster).
    Dso,
    /// A Redis server.
    Redis,
    /// A Redis primary with replicas: each write, then `WAIT <replicas>`.
    RedisWait,
    /// An etcd cluster (needs a build with the `etcd` feature).
    Etcd,
    /// No system: a TCP echo on loopback (one blocking thread per client), the floor any
    /// system's latency is made of.
    Loopback,
}

/// What each client does, one operation at a time.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Workload {
    /// Linearizable read-modify-write of a counter.
    Rmw,
    /// Plain writes.
    Put,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    /// A human-readable line.
    Table,
    /// `clients,ops,seconds,ops_per_second,p50_us,p99_us`.
    Csv,
}

/// Any failure of a run, reported to the user as it is.
pub type Failure = Box<dyn std::error::Error + Send + Sync>;

/// One client's connection, able to run the workload's operation.
enum Connection {
    /// The client's counter: a handle is made once, as an application holds it.
    Dso(Shared<AtomicLong>),
    Redis(redis_load::RedisClient),
    #[cfg(feature = "etcd")]
    Etcd(Box<etcd_load::EtcdClient>),
    Loopback(TcpStream),
}

impl Connection {
    async fn open(args: &Args, endpoints: &[String], client: usize, key: &str) -> Result<Self, Failure> {
        if endpoints.is_empty() && args.system != System::Loopback {
            return Err("--endpoints: at least one address is needed".into());
        }
        Ok(match args.system {
            System::Dso => {
                let dso = Dso::connect_with(endpoints[client % endpoints.len()].clone(), args.dso_client()?)
                    .await?;
                Connection::Dso(dso.atomic_long(key))
            }
            System::Redis => Connection::Redis(redis_load::RedisClient::connect(&endpoints[0], 0).await?),
            System::RedisWait => Connection::Redis(
                redis_load::RedisClient::connect(&endpoints[0], args.wait_replicas.into()).await?,
            ),
            #[cfg(feature = "etcd")]
            System::Etcd => Connection::Etcd(Box::new(etcd_load::EtcdClient::connect(endpoints).await?)),
            #[cfg(not(feature = "etcd"))]
            System::Etcd => {
                return Err(
                    "this cluster-bench was built without etcd: cargo build -p crucial-bench --features etcd"
                        .into(),
                )
            }
            System::Loopback => {
                let stream = TcpStream::connect(spawn_echo()?).await?;
                stream.set_nodelay(true)?;
                Connection::Loopback(stream)
            }
        })
    }

    /// Runs one operation on `key`; `step` is the client's operation count.
    async fn run(&mut self, workload: Workload, key: &str, step: u64) -> Result<(), Failure> {
        match (self, workload) {
            (Connection::Dso(counter), Workload::Rmw) => {
                counter.increment_and_get().await?;
            }
            (Connection::Dso(counter), Workload::Put) => counter.set(step as i64).await?,
            (Connection::Redis(redis), workload) => redis.run(workload, key, step).await?,
            #[cfg(feature = "etcd")]
            (Connection::Etcd(etcd), workload) => etcd.run(workload, key, step).await?,
            (Connection::Loopback(stream), _) => {
                let mut message = [0u8; ECHO_BYTES];
                message[..8].copy_from_slice(&step.to_le_bytes());
                stream.write_all(&message).await?;
                stream.read_exact(&mut message).await?;
            }
        }
        Ok(())
    }
}

/// The size of a loopback echo message (about a small call's frame).
const ECHO_BYTES: usize = 64;

/// Starts a thread that echoes one connection's messages; returns where it listens.
fn spawn_echo() -> std::io::Result<std::net::SocketAddr> {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || -> std::io::Result<()> {
        let (mut stream, _) = listener.accept()?;
        stream.set_nodelay(true)?;
        let mut message = [0u8; ECHO_BYTES];
        loop {
            stream.read_exact(&mut message)?;
            stream.write_all(&message)?;
        }
    });
    Ok(addr)
}

fn main() -> Result<(), Failure> {
    let args = Args::parse();
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads).enable_all().build()?
    };
    runtime.block_on(run(args))
}

/// What one run measured.
struct Measurement {
    clients: usize,
    latencies: Histogram<u64>,
    seconds: f64,
}

async fn run(args: Args) -> Result<(), Failure> {
    // With no endpoints, DSO is served from this process (a quick try, not a measurement).
    let embedded = match (args.system, args.endpoints.is_empty()) {
        (System::Dso, true) => Some(Server::embedded().await?),
        _ => None,
    };
    let endpoints = match &embedded {
        Some(server) => vec![server.local_addr().to_string()],
        None => args.endpoints.clone(),
    };
    let measurement = measure(&args, &endpoints).await?;
    if let Some(server) = embedded {
        server.shutdown().await;
    }
    let Measurement { clients, latencies, seconds } = measurement;
    let ops = latencies.len();
    let ops_per_second = ops as f64 / seconds;
    let (p50, p99) = (latencies.value_at_quantile(0.50), latencies.value_at_quantile(0.99));
    match args.format {
        Format::Table => println!(
            "{} {}: {clients} clients, {ops} ops in {seconds:.2} s = {ops_per_second:.0} ops/s, p50 {p50} us, p99 {p99} us",
            name(args.system),
            name(args.workload)
        ),
        Format::Csv => println!("{clients},{ops},{seconds:.3},{ops_per_second:.0},{p50},{p99}"),
    }
    Ok(())
}

/// The name the command line gives `value`.
fn name(value: impl ValueEnum) -> String {
    value.to_possible_value().map(|possible| possible.get_name().to_string()).unwrap_or_default()
}

/// Opens every client's connection, warms up, then runs the measured operations together.
async fn measure(args: &Args, endpoints: &[String]) -> Result<Measurement, Failure> {
    let clients = args.clients.max(1);
    let barrier = Arc::new(tokio::sync::Barrier::new(clients));
    let started = Arc::new(std::sync::OnceLock::new());
    let progress = ProgressBar::new(args.ops * clients as u64).with_style(ProgressStyle::with_template(
        "{spinner} {bar:40} {pos}/{len} operations ({per_sec}, eta {eta})",
    )?);
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..clients {
        let key = format!("bench-{client}");
        let mut connection = Connection::open(args, endpoints, client, &key).await?;
        let (barrier, started, progress, workload) =
            (barrier.clone(), started.clone(), progress.clone(), args.workload);
        let (ops, warmup_ops) = (args.ops, args.warmup_ops);
        tasks.spawn(async move {
            for step in 0..warmup_ops {
                connection.run(workload, &key, step).await?;
            }
            barrier.wait().await;
            started.get_or_init(Instant::now);
            let mut latencies = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            for step in 0..ops {
                let sent = Instant::now();
                connection.run(workload, &key, warmup_ops + step).await?;
                latencies.record(sent.elapsed().as_micros().max(1) as u64)?;
                if step % 1_000 == 999 {
                    progress.inc(1_000);
                }
            }
            Ok::<_, Failure>(latencies)
        });
    }
    // The first client to fail ends the run (the others, maybe waiting at the barrier for it,
    // are dropped with the set).
    let mut latencies = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    while let Some(finished) = tasks.join_next().await {
        latencies.add(finished??)?;
    }
    let seconds = started.get().ok_or("no client started")?.elapsed().as_secs_f64();
    progress.finish_and_clear();
    Ok(Measurement { clients, latencies, seconds })
}
