//! `cluster-bench`: one load generator for a DSO cluster and an etcd cluster, so that both are
//! measured the same way. Each client has its own connection, keeps one operation in flight
//! and works on its own key; latencies go into one histogram.
//!
//! Workloads:
//! - `rmw`, a linearizable read-modify-write: DSO `AtomicLong::increment_and_get`; etcd a
//!   transaction that compares the value last read and puts its increment (the client reads
//!   again and retries on conflict);
//! - `put`, a plain write: DSO `AtomicLong::set`; etcd `put`.
//!
//! `--system loopback` measures the floor instead: a 64-byte TCP echo through a thread of this
//! process, so a report can say how many network round trips a system's latency amounts to.

use std::sync::Arc;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use crucial_dso::Dso;
use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Measures throughput and latency of one workload against DSO or etcd.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The system under load.
    #[arg(long, value_enum)]
    system: System,
    /// Its members' client addresses, comma-separated (`host:port`); not used by `loopback`.
    #[arg(long, value_delimiter = ',')]
    endpoints: Vec<String>,
    /// The workload.
    #[arg(long, value_enum, default_value_t = Workload::Rmw)]
    workload: Workload,
    /// Concurrent clients.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Operations per client, after the warm-up.
    #[arg(long, default_value_t = 2_000)]
    ops: u64,
    /// Operations per client before measuring.
    #[arg(long, default_value_t = 100)]
    warmup_ops: u64,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum System {
    /// A DSO cluster (`dso-server --discovery ... --rf N`).
    Dso,
    /// An etcd cluster.
    Etcd,
    /// No system: a TCP echo on loopback (one blocking thread per client), the floor any
    /// system's latency is made of.
    Loopback,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Workload {
    /// Linearizable read-modify-write of a counter.
    Rmw,
    /// Plain writes.
    Put,
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// One client's connection, able to run the workload's operation.
enum Connection {
    Dso(Dso),
    Etcd { client: Box<Client>, last: Option<i64> },
    Loopback(TcpStream),
}

impl Connection {
    async fn open(system: System, endpoints: &[String], client: usize) -> Result<Self, Failure> {
        if endpoints.is_empty() && !matches!(system, System::Loopback) {
            return Err("--endpoints: at least one address is needed".into());
        }
        Ok(match system {
            System::Dso => Connection::Dso(Dso::connect(endpoints[client % endpoints.len()].clone()).await?),
            System::Etcd => {
                let urls: Vec<String> =
                    endpoints.iter().map(|endpoint| format!("http://{endpoint}")).collect();
                Connection::Etcd { client: Box::new(Client::connect(urls, None).await?), last: None }
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
            (Connection::Dso(dso), Workload::Rmw) => {
                dso.atomic_long(key).increment_and_get().await?;
            }
            (Connection::Dso(dso), Workload::Put) => dso.atomic_long(key).set(step as i64).await?,
            (Connection::Etcd { client, last }, Workload::Rmw) => etcd_increment(client, last, key).await?,
            (Connection::Etcd { client, .. }, Workload::Put) => {
                client.put(key, step.to_string(), None).await?;
            }
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

/// Compare-and-put of `last + 1`, reading the current value first when `last` is unknown or
/// the comparison failed.
async fn etcd_increment(client: &mut Client, last: &mut Option<i64>, key: &str) -> Result<(), Failure> {
    loop {
        let current = match *last {
            Some(value) => value,
            None => {
                let response = client.get(key, None).await?;
                let value = response.kvs().first().map(|kv| kv.value_str().map(str::parse::<i64>));
                match value {
                    Some(parsed) => parsed??,
                    None => 0,
                }
            }
        };
        let guard = if current == 0 && last.is_none() {
            Compare::create_revision(key, CompareOp::Equal, 0)
        } else {
            Compare::value(key, CompareOp::Equal, current.to_string())
        };
        let txn = Txn::new().when([guard]).and_then([TxnOp::put(key, (current + 1).to_string(), None)]);
        if client.txn(txn).await?.succeeded() {
            *last = Some(current + 1);
            return Ok(());
        }
        *last = None;
    }
}

fn main() -> Result<(), Failure> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> Result<(), Failure> {
    let clients = args.clients.max(1);
    let barrier = Arc::new(tokio::sync::Barrier::new(clients));
    let started = Arc::new(std::sync::OnceLock::new());
    let mut tasks = Vec::with_capacity(clients);
    for client in 0..clients {
        let mut connection = Connection::open(args.system, &args.endpoints, client).await?;
        let (barrier, started, workload) = (barrier.clone(), started.clone(), args.workload);
        let (ops, warmup_ops) = (args.ops, args.warmup_ops);
        let key = format!("bench-{client}");
        tasks.push(tokio::spawn(async move {
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
            }
            Ok::<_, Failure>(latencies)
        }));
    }
    let mut latencies = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for task in tasks {
        latencies.add(task.await??)?;
    }
    let seconds = started.get().expect("clients started").elapsed().as_secs_f64();
    let ops = latencies.len();
    let (p50, p99) = (latencies.value_at_quantile(0.50), latencies.value_at_quantile(0.99));
    // clients,ops,seconds,ops_per_second,p50_us,p99_us
    println!("{clients},{ops},{seconds:.3},{:.0},{p50},{p99}", ops as f64 / seconds);
    Ok(())
}
