//! The cluster as real processes: `dso-server` processes on loopback that find each other
//! through a configuration store (a file, or S3), clients running the simulator's workload
//! over TCP with every operation recorded, one member stopped mid-run (killed with SIGKILL, or
//! asked to leave with SIGTERM) and started again; the history is then checked like a simulated
//! one, and a counter that only ever grows shows whether an acknowledged increment was lost.
//! With a token and TLS, servers and clients authenticate and encrypt as a real deployment
//! does.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crucial_dso::client::{member_status, ClientConfig, MemberStatus};
use crucial_dso::cluster::Placement;
use crucial_dso::core::auth::Token;
use crucial_dso::core::client_session::SessionConfig;
use crucial_dso::core::object::{CallId, Operation, SharedObject};
use crucial_dso::core::protocol::Action;
use crucial_dso::objects::{AtomicLong, AtomicLongOp, AtomicLongRet};
use crucial_dso::tls::{TlsTrust, TLS_NAME_DEFAULT};
use crucial_dso::{Dso, DsoError};
use crucial_testkit::tls::TestCa;
use crucial_testkit::{listening_addr, spawn_announcing, Announces, Process};
use parking_lot::Mutex;

use crate::simulation::rng::Rng;
use crate::simulation::run::Recorded;
use crate::simulation::workload::{keys, operation, KeySpec, PARKING_TYPES};

/// The key whose only operation is `add_and_get(1)`: the lost-update witness.
pub const INCREMENTS: &str = "increments";

/// Where the servers keep their configuration.
#[derive(Clone, Debug)]
pub enum Store {
    /// A file in the work directory.
    File,
    /// S3 at this endpoint (a local stand-in such as moto's server), in this bucket.
    S3 {
        /// The endpoint.
        endpoint: String,
        /// The bucket (it must exist).
        bucket: String,
    },
}

/// How the primary of [`INCREMENTS`] is stopped (also `crucial-sim processes --stop`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Stop {
    /// SIGKILL: no goodbye, its memory is gone; the others suspect it and take over.
    Kill,
    /// SIGTERM: it hands its keys over and leaves the configuration, then exits.
    Leave,
}

/// A run's shape.
#[derive(Clone, Debug)]
pub struct ProcessRun {
    /// The `dso-server` executable.
    pub server: PathBuf,
    /// Where logs and the configuration file go.
    pub work_dir: PathBuf,
    /// The configuration store.
    pub store: Store,
    /// Servers.
    pub servers: usize,
    /// Copies of each key.
    pub rf: usize,
    /// Client tasks.
    pub clients: usize,
    /// Keys of the mixed workload (besides [`INCREMENTS`]).
    pub keys: usize,
    /// How long the workload runs at least.
    pub run: Duration,
    /// Operations the workload records at least: it runs on past `run` until it has them (a
    /// slow machine takes longer rather than checking less), for at most ten times `run`.
    pub operations_min: usize,
    /// When the primary of [`INCREMENTS`] is stopped (`None`: never).
    pub stop_at: Option<Duration>,
    /// How it is stopped.
    pub stop: Stop,
    /// How long the stopped server stays down.
    pub down_for: Duration,
    /// The token servers require and clients present (`None`: none).
    pub token: Option<String>,
    /// Servers serve TLS (with certificates of a CA made for the run) and speak it to each
    /// other; clients trust that CA.
    pub tls: bool,
    /// Seeds the workload.
    pub seed: u64,
    /// How long members wait before they suspect a silent peer.
    pub suspect_after_ms: u64,
    /// Clients (of `clients`) that call only types that never park: with one call at a time
    /// per client, clients all parked on semaphores and barriers would make no calls that
    /// show whether the cluster serves.
    pub steady_clients: usize,
    /// Each server's network namespace (see [`crate::netns`]), where it serves at its own
    /// service address; empty: every server on loopback, at a port of its own.
    pub namespaces: Vec<String>,
}

/// What a run recorded.
#[derive(Debug)]
pub struct ProcessOutcome {
    /// The keys and their initial states.
    pub keys: Vec<KeySpec>,
    /// Every client operation.
    pub history: Vec<Recorded>,
    /// Increments of [`INCREMENTS`] acknowledged, and those with an unknown outcome.
    pub increments: (u64, u64),
    /// The value [`INCREMENTS`] holds at the end.
    pub final_increments: i64,
    /// The address of the server stopped, if one was.
    pub stopped: Option<String>,
    /// The configuration every server reported at the end.
    pub final_status: Vec<MemberStatus>,
}

impl ProcessOutcome {
    /// Why the counter shows a lost or invented increment, if it does.
    pub fn lost_update(&self) -> Option<String> {
        let (acknowledged, unknown) = self.increments;
        let value = self.final_increments.max(0) as u64;
        if value < acknowledged {
            return Some(format!("{acknowledged} increments acknowledged but the counter reads {value}"));
        }
        (value > acknowledged + unknown).then(|| {
            format!("the counter reads {value} after {acknowledged} acknowledged and {unknown} unknown increments")
        })
    }
}

/// The server processes, killed when dropped.
pub(crate) struct Servers {
    /// The running processes (`None`: killed), stopped when dropped.
    children: Vec<Option<Process>>,
    pub(crate) addrs: Vec<String>,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    run: ProcessRun,
    /// What clients and status requests present.
    pub(crate) token: Option<Token>,
    /// What clients and status requests trust, when the servers serve TLS.
    pub(crate) tls: Option<TlsTrust>,
}

impl Servers {
    pub(crate) fn start(run: &ProcessRun) -> Result<Self, String> {
        std::fs::create_dir_all(&run.work_dir).map_err(|e| format!("{}: {e}", run.work_dir.display()))?;
        let (discovery, mut extra, envs) = match &run.store {
            Store::File => {
                let path = run.work_dir.join("cluster.json");
                let _ = std::fs::remove_file(&path);
                (format!("file:{}", path.display()), Vec::new(), Vec::new())
            }
            Store::S3 { endpoint, bucket } => {
                let prefix = format!("run-{}", run.seed);
                let envs = [
                    ("AWS_ACCESS_KEY_ID", "test"),
                    ("AWS_SECRET_ACCESS_KEY", "test"),
                    ("AWS_REGION", "us-east-1"),
                ];
                let envs = envs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
                (format!("s3://{bucket}/{prefix}"), vec!["--s3-endpoint".to_string(), endpoint.clone()], envs)
            }
        };
        let mut envs: Vec<(String, String)> = envs;
        if let Some(token) = &run.token {
            envs.push(("DSO_TOKEN".into(), token.clone()));
        }
        let mut args = vec!["--discovery".to_string(), discovery, "--rf".into(), run.rf.to_string()];
        args.extend(["--suspect-after-ms".to_string(), run.suspect_after_ms.to_string()]);
        if !run.namespaces.is_empty() {
            // Not loopback: the harness's own private network, no token or TLS asked for.
            args.push("--insecure".to_string());
        }
        args.append(&mut extra);
        let token = run.token.clone().map(Token::new).transpose().map_err(|e| e.to_string())?;
        let tls = match run.tls {
            true => Some(write_certificates(&run.work_dir, &mut args)?),
            false => None,
        };
        let mut servers =
            Servers { children: Vec::new(), addrs: Vec::new(), args, envs, run: run.clone(), token, tls };
        // Each server binds a port of its own and announces it.
        for index in 0..run.servers {
            let bind = match run.namespaces.is_empty() {
                true => "127.0.0.1:0".to_string(),
                false => crate::netns::Topology::member_addr(index),
            };
            let command = servers.command(index, &bind)?;
            let (process, addr) =
                spawn_announcing(command, Announces::Stdout, listening_addr, Duration::from_secs(10))?;
            servers.children.push(Some(process));
            servers.addrs.push(addr);
        }
        Ok(servers)
    }

    /// The command starting server `index` bound to `bind`, its log appended to its file.
    fn command(&self, index: usize, bind: &str) -> Result<Command, String> {
        let log = self.run.work_dir.join(format!("server-{index}.log"));
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(&log).map_err(|e| e.to_string())?;
        let mut command = match self.run.namespaces.get(index) {
            Some(namespace) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", namespace]).arg(&self.run.server);
                command
            }
            None => Command::new(&self.run.server),
        };
        command.args(["--bind", bind]).args(&self.args).envs(self.envs.iter().cloned());
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        Ok(command)
    }

    /// Kills server `index` with SIGKILL: no goodbye, its memory is gone.
    fn kill(&mut self, index: usize) {
        self.children[index] = None;
    }

    /// Sends server `index` SIGTERM and waits (at most `within`) until it has handed its keys
    /// over and exited; `dso-server` exits with success only if the cluster took its keys.
    async fn leave(&mut self, index: usize, within: Duration) -> Result<(), String> {
        let Some(process) = self.children[index].as_mut() else { return Ok(()) };
        let pid = libc::pid_t::try_from(process.0.id()).map_err(|e| e.to_string())?;
        // SAFETY: a plain syscall on the pid of a child this struct owns and has not reaped.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            return Err(format!("SIGTERM to {pid}: {}", std::io::Error::last_os_error()));
        }
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            match process.0.try_wait().map_err(|e| e.to_string())? {
                Some(status) if status.success() => {
                    self.children[index] = None;
                    return Ok(());
                }
                Some(status) => return Err(format!("server {index} did not hand its keys over: {status}")),
                None => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        Err(format!("server {index} did not exit within {within:?} of SIGTERM"))
    }

    /// Starts server `index` again at the address it had (the port its killed process freed),
    /// as a restarted host would.
    fn restart(&mut self, index: usize) -> Result<(), String> {
        let mut command = self.command(index, &self.addrs[index])?;
        let child =
            command.spawn().map_err(|e| format!("cannot start {}: {e}", self.run.server.display()))?;
        self.children[index] = Some(Process(child));
        Ok(())
    }

    /// Waits until every server reports the same active configuration listing all of them.
    pub(crate) async fn settled(&self, within: Duration) -> Result<Vec<MemberStatus>, String> {
        let deadline = Instant::now() + within;
        let mut last = String::new();
        while Instant::now() < deadline {
            let mut statuses = Vec::new();
            for addr in &self.addrs {
                match member_status(addr, self.token.as_ref(), self.tls.as_ref(), Duration::from_millis(500))
                    .await
                {
                    Ok(status) => statuses.push(status),
                    Err(error) => last = error.to_string(),
                }
            }
            let agreed = statuses.len() == self.addrs.len()
                && statuses.iter().all(|status| {
                    status.serving
                        && status.config == statuses[0].config
                        && status.config.members.len() == self.addrs.len()
                });
            if agreed {
                return Ok(statuses);
            }
            if let Some(first) = statuses.first() {
                last = format!("epoch {} with {} members", first.config.epoch, first.config.members.len());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("the cluster did not settle within {within:?} (last seen: {last})"))
    }
}

/// Writes a CA made for the run and a certificate it signs into `dir`, adds the flags that
/// make a server use them to `args`, and returns what clients trust.
fn write_certificates(dir: &Path, args: &mut Vec<String>) -> Result<TlsTrust, String> {
    let ca = TestCa::new("crucial-sim processes CA");
    let mut files = ca.write_server_files(dir, TLS_NAME_DEFAULT).map_err(|e| e.to_string())?;
    args.append(&mut files.args);
    TlsTrust::from_pem(ca.certificate_pem().as_bytes(), TLS_NAME_DEFAULT).map_err(|e| e.to_string())
}

/// The shared recording of every client's operations.
pub(crate) struct Recorder {
    history: Mutex<Vec<Recorded>>,
    stamps: AtomicU64,
    /// What the recorded times (`call_ms`, `ret_ms`) count from.
    pub(crate) started: Instant,
}

impl Recorder {
    fn stamp(&self) -> (u64, u64) {
        (self.stamps.fetch_add(1, Ordering::SeqCst), self.started.elapsed().as_millis() as u64)
    }
}

/// The clients' settings, presenting `token` and speaking TLS with `tls`.
fn client(token: Option<Token>, tls: Option<TlsTrust>) -> ClientConfig {
    ClientConfig {
        session: SessionConfig {
            resend_after_ms: 300,
            call_timeout_ms: Some(8_000),
            in_flight_max: 1,
            retain_records: false,
        },
        session_id: None,
        connect_timeout_ms: 1_000,
        frame_bytes_max: crucial_dso::core::codec::FRAME_BYTES_MAX_DEFAULT,
        halt_at_call: None,
        resume_from: None,
        token,
        tls,
        insecure: false,
    }
}

/// How long a leaving server may take to hand its keys over (the server's own bound is 30 s).
const LEAVE_WITHIN: Duration = Duration::from_secs(45);

/// Runs the cluster, the workload and the kill; returns what was recorded.
pub async fn run_processes(run: ProcessRun) -> Result<ProcessOutcome, String> {
    let mut servers = Servers::start(&run)?;
    let initial = servers.settled(Duration::from_secs(30)).await?;
    let workload = Running::start(&servers, &run).await?;
    let mut stopped = None;
    if let Some(stop_at) = run.stop_at {
        tokio::time::sleep(stop_at).await;
        // The primary of the witness key: its takeover is what must not lose increments.
        let primary = Placement::new(&initial[0].config).primary(INCREMENTS);
        let addr = initial[0].config.addr_of(primary).map(str::to_string);
        let index = addr.as_ref().and_then(|addr| servers.addrs.iter().position(|a| a == addr)).unwrap_or(0);
        match run.stop {
            Stop::Kill => {
                tracing::info!(addr = %servers.addrs[index], "killing the primary with SIGKILL");
                servers.kill(index);
            }
            Stop::Leave => {
                tracing::info!(addr = %servers.addrs[index], "asking the primary to leave with SIGTERM");
                servers.leave(index, LEAVE_WITHIN).await?;
            }
        }
        stopped = Some(servers.addrs[index].clone());
        tokio::time::sleep(run.down_for).await;
        servers.restart(index)?;
    }
    let mut outcome = workload.finish(&servers).await?;
    outcome.stopped = stopped;
    Ok(outcome)
}

/// The workload running against a cluster: its clients and what they record.
pub(crate) struct Running {
    keys: Vec<KeySpec>,
    config: ClientConfig,
    pub(crate) recorder: Arc<Recorder>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Creates the keys that need an initial state and starts the clients, which run until
    /// `run.run` passed and `run.operations_min` operations are recorded.
    pub(crate) async fn start(servers: &Servers, run: &ProcessRun) -> Result<Running, String> {
        let mut keys = keys(run.keys);
        keys.push(KeySpec { key: INCREMENTS.into(), type_name: AtomicLong::TYPE_NAME.into(), initial: None });
        let config = client(servers.token.clone(), servers.tls.clone());
        let setup =
            Dso::connect_with(servers.addrs[0].clone(), config.clone()).await.map_err(|e| e.to_string())?;
        for key in &keys {
            if let Some(state) = key.initial.clone() {
                setup
                    .call_raw(&key.key, &key.type_name, Action::Create { state })
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        let recorder = Arc::new(Recorder {
            history: Mutex::new(Vec::new()),
            stamps: AtomicU64::new(0),
            started: Instant::now(),
        });
        let started = Instant::now();
        let until = Until {
            run: started + run.run,
            deadline: started + run.run * 10,
            operations_min: run.operations_min,
        };
        let workload = Workload {
            clients: run.clients,
            seed: run.seed,
            keys: keys.clone(),
            addrs: servers.addrs.clone(),
            config: config.clone(),
            steady_clients: run.steady_clients,
        };
        let workers = (0..run.clients)
            .map(|client| tokio::spawn(client_loop(client, workload.clone(), recorder.clone(), until)))
            .collect();
        Ok(Running { keys, config, recorder, workers })
    }

    /// Waits for the clients, reads the witness counter once the cluster settled, and returns
    /// what was recorded.
    pub(crate) async fn finish(self, servers: &Servers) -> Result<ProcessOutcome, String> {
        let Running { keys, config, recorder, workers } = self;
        for worker in workers {
            worker.await.map_err(|e| e.to_string())?;
        }
        let final_status = servers.settled(Duration::from_secs(30)).await?;
        let reader = Dso::connect_with(servers.addrs[0].clone(), config).await.map_err(|e| e.to_string())?;
        let final_increments =
            record_call(&reader, &recorder, u64::MAX, 0, &keys[keys.len() - 1], get_op()).await;
        let final_increments = match final_increments {
            Some(Ok(bytes)) => match AtomicLong::decode_ret("get", &bytes) {
                Ok(AtomicLongRet::Get(value)) => value,
                other => return Err(format!("the final read decoded as {other:?}")),
            },
            other => return Err(format!("the final read failed: {other:?}")),
        };
        let history = std::mem::take(&mut *recorder.history.lock());
        let witness = history.iter().filter(|op| op.key == INCREMENTS && op.method == "add_and_get");
        let (acknowledged, unknown) = witness.fold((0, 0), |(acked, unknown), op| match &op.output {
            Some(Ok(_)) => (acked + 1, unknown),
            None => (acked, unknown + 1),
            Some(Err(_)) => (acked, unknown),
        });
        Ok(ProcessOutcome {
            keys,
            history,
            increments: (acknowledged, unknown),
            final_increments,
            stopped: None,
            final_status,
        })
    }
}

fn get_op() -> (String, Vec<u8>) {
    let op = AtomicLongOp::Get {};
    (op.method().to_string(), op.encode_args())
}

/// When the workload stops: once `run` passed and `operations_min` operations are recorded, or
/// at `deadline`.
#[derive(Clone, Copy)]
struct Until {
    run: Instant,
    deadline: Instant,
    operations_min: usize,
}

impl Until {
    fn reached(&self, recorder: &Recorder) -> bool {
        let now = Instant::now();
        now >= self.deadline || (now >= self.run && recorder.history.lock().len() >= self.operations_min)
    }
}

/// What every client of a run works with.
#[derive(Clone)]
struct Workload {
    clients: usize,
    seed: u64,
    keys: Vec<KeySpec>,
    addrs: Vec<String>,
    config: ClientConfig,
    steady_clients: usize,
}

/// One client: random operations (a third of them increments of the witness) until `until`;
/// after an unknown outcome it continues as a new process with a new session.
async fn client_loop(client: usize, workload: Workload, recorder: Arc<Recorder>, until: Until) {
    let Workload { clients, seed, keys, addrs, config, steady_clients } = workload;
    // The keys this client calls besides the witness (the last key).
    let steady = client < steady_clients;
    let callable: Vec<&KeySpec> = (keys[..keys.len() - 1].iter())
        .filter(|key| !steady || !PARKING_TYPES.contains(&key.type_name.as_str()))
        .collect();
    let mut rng = Rng::new(seed ^ (client as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut process = client as u64;
    let mut dso = None;
    while !until.reached(&recorder) {
        if dso.is_none() {
            let seed_addr = &addrs[rng.below(addrs.len() as u64) as usize];
            match Dso::connect_with(seed_addr.clone(), config.clone()).await {
                Ok(connected) => dso = Some(connected),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        let client_dso = dso.as_ref().expect("connected above");
        let (key, op) = if rng.below(3) == 0 {
            let increment = AtomicLongOp::AddAndGet { delta: 1 };
            (&keys[keys.len() - 1], (increment.method().to_string(), increment.encode_args()))
        } else {
            let key = callable[rng.below(callable.len() as u64) as usize];
            (key, operation(&mut rng, key))
        };
        if record_call(client_dso, &recorder, process, client as u64, key, op).await.is_none() {
            process += clients as u64;
            dso = None;
        }
    }
}

/// Calls `op` on `key` and records it; the output (`None`: unknown).
async fn record_call(
    dso: &Dso,
    recorder: &Recorder,
    process: u64,
    client: u64,
    key: &KeySpec,
    (method, args): (String, Vec<u8>),
) -> Option<Result<Vec<u8>, String>> {
    let (call, call_ms) = recorder.stamp();
    let action = Action::Invoke { method: method.clone(), args: args.clone() };
    let output = match dso.call_raw(&key.key, &key.type_name, action).await {
        Ok(bytes) => Some(Ok(bytes)),
        Err(DsoError::Call(error)) => Some(Err(error.to_string())),
        Err(_) => None,
    };
    let (ret, ret_ms) = if output.is_some() { recorder.stamp() } else { (u64::MAX, u64::MAX) };
    recorder.history.lock().push(Recorded {
        process,
        id: CallId { session: dso.session_id(), seq: client },
        key: key.key.clone(),
        type_name: key.type_name.clone(),
        method,
        args,
        output: output.clone(),
        call,
        ret,
        call_ms,
        ret_ms,
    });
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(acknowledged: u64, unknown: u64, counter: i64) -> ProcessOutcome {
        ProcessOutcome {
            keys: Vec::new(),
            history: Vec::new(),
            increments: (acknowledged, unknown),
            final_increments: counter,
            stopped: None,
            final_status: Vec::new(),
        }
    }

    #[test]
    fn the_counter_flags_lost_and_invented_increments() {
        assert!(outcome(10, 0, 9).lost_update().unwrap().contains("10 increments acknowledged"));
        assert!(outcome(10, 2, 13).lost_update().is_some(), "more than acknowledged plus unknown");
        assert_eq!(outcome(10, 2, 11).lost_update(), None, "an unknown increment may or may not count");
        assert_eq!(outcome(10, 0, 10).lost_update(), None);
    }
}
