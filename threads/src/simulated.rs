//! [`Simulated`]: cloud threads as function instances on simulated nodes under madsim (build
//! with `cargo simtest`). Each invocation gets a fresh node that runs the same worker code as a
//! Lambda function, against DSO servers on other simulated nodes, with serverless faults drawn
//! from the run's seed: cold starts, kills at the timeout, crashes mid-run, a second
//! concurrent delivery of the same invocation, and throttling. Same seed, same run.

use std::net::{IpAddr, Ipv4Addr};
use std::ops::Range;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crucial_dso::Dso;
use madsim::runtime::Handle;
use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::executor::{BoxFuture, Executor, InvokeOptions, ThreadIds};
use crate::invocation::{Invocation, Report};
use crate::worker::{self, Hooks};
use crate::DsoAccess;
use crate::{ThreadError, ThreadId};

/// The serverless faults a simulated provider injects, each per invocation.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerlessFaults {
    /// A cold start's delay before the function runs, in milliseconds.
    pub cold_start_ms: Range<u64>,
    /// Chance that an invocation crashes right after one of its first `crash_within_calls`
    /// DSO calls (the call may be applied; its answer is lost).
    pub crash_probability: f64,
    /// The range of crash points, in calls.
    pub crash_within_calls: u64,
    /// Chance that a crashing invocation hangs instead of dying (a stuck instance): the
    /// provider kills it at its timeout.
    pub hang_probability: f64,
    /// Chance that the invocation is delivered twice, the two running at once
    /// (at-least-once delivery).
    pub duplicate_probability: f64,
    /// Chance that the provider refuses the invocation for lack of capacity.
    pub throttle_probability: f64,
}

impl Default for ServerlessFaults {
    fn default() -> Self {
        ServerlessFaults {
            cold_start_ms: 0..200,
            crash_probability: 0.3,
            crash_within_calls: 20,
            hang_probability: 0.3,
            duplicate_probability: 0.3,
            throttle_probability: 0.1,
        }
    }
}

/// How many of each fault a simulated executor injected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Invocations run.
    pub invocations: u64,
    /// Cold starts with a delay.
    pub cold_starts: u64,
    /// Invocations crashed mid-run.
    pub crashes: u64,
    /// Invocations killed at their timeout.
    pub timeouts: u64,
    /// Second deliveries run concurrently.
    pub duplicates: u64,
    /// Invocations refused as throttled.
    pub throttles: u64,
}

#[derive(Debug, Default)]
struct Counters {
    invocations: AtomicU64,
    cold_starts: AtomicU64,
    crashes: AtomicU64,
    timeouts: AtomicU64,
    duplicates: AtomicU64,
    throttles: AtomicU64,
}

/// Runs each invocation on a fresh simulated node. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Simulated {
    inner: Arc<SimulatedInner>,
}

#[derive(Debug)]
struct SimulatedInner {
    members: Vec<String>,
    control: Dso,
    ids: ThreadIds,
    faults: ServerlessFaults,
    rng: Mutex<SmallRng>,
    next_host: AtomicU32,
    counters: Counters,
}

impl Simulated {
    /// An executor whose function instances use the DSO servers at `members`, with `faults`;
    /// fault choices and thread ids come from `seed` (take it from the simulation's seed).
    pub async fn start(
        members: Vec<String>,
        faults: ServerlessFaults,
        seed: u64,
    ) -> Result<Simulated, ThreadError> {
        crate::Registry::global()?;
        let control = crate::connect_control(&members, &DsoAccess::default()).await?;
        let inner = SimulatedInner {
            members,
            control,
            ids: ThreadIds::new(seed),
            faults,
            rng: Mutex::new(SmallRng::seed_from_u64(seed)),
            next_host: AtomicU32::new(0),
            counters: Counters::default(),
        };
        Ok(Simulated { inner: Arc::new(inner) })
    }

    /// The faults injected so far.
    pub fn fault_counts(&self) -> FaultCounts {
        let counters = &self.inner.counters;
        FaultCounts {
            invocations: counters.invocations.load(Ordering::Relaxed),
            cold_starts: counters.cold_starts.load(Ordering::Relaxed),
            crashes: counters.crashes.load(Ordering::Relaxed),
            timeouts: counters.timeouts.load(Ordering::Relaxed),
            duplicates: counters.duplicates.load(Ordering::Relaxed),
            throttles: counters.throttles.load(Ordering::Relaxed),
        }
    }
}

/// What the provider decided for one delivery.
struct Delivery {
    cold_start_ms: u64,
    crash_at_call: Option<u64>,
    /// At the crash point, hang until the timeout instead of dying.
    hangs: bool,
}

impl SimulatedInner {
    fn chance(&self, probability: f64) -> bool {
        self.rng.lock().random_bool(probability.clamp(0.0, 1.0))
    }

    fn delivery(&self) -> Delivery {
        let mut rng = self.rng.lock();
        let range = &self.faults.cold_start_ms;
        let cold_start_ms = if range.is_empty() { range.start } else { rng.random_range(range.clone()) };
        let crashes = rng.random_bool(self.faults.crash_probability.clamp(0.0, 1.0));
        let crash_at_call = crashes.then(|| rng.random_range(1..=self.faults.crash_within_calls.max(1)));
        let hangs = rng.random_bool(self.faults.hang_probability.clamp(0.0, 1.0));
        Delivery { cold_start_ms, crash_at_call, hangs }
    }

    /// A simulated host address for a new function instance (TEST-NET-2, simulated only).
    fn next_ip(&self) -> IpAddr {
        let n = self.next_host.fetch_add(1, Ordering::Relaxed);
        IpAddr::V4(Ipv4Addr::new(198, 51, (n >> 8) as u8 % 250, (n & 0xff) as u8 % 250 + 2))
    }

    /// Runs one delivery of `invocation` on a fresh node; `Err` if it crashed or timed out.
    async fn deliver(
        self: Arc<Self>,
        invocation: Invocation,
        options: InvokeOptions,
    ) -> Result<Report, ThreadError> {
        let thread = invocation.thread;
        let delivery = self.delivery();
        let counters = &self.counters;
        counters.invocations.fetch_add(1, Ordering::Relaxed);
        if delivery.cold_start_ms > 0 {
            counters.cold_starts.fetch_add(1, Ordering::Relaxed);
        }
        let name = format!("fn-{thread}-{}", invocation.attempt);
        let node = Handle::current().create_node().name(name).ip(self.next_ip()).build();
        let members = self.members.clone();
        let hooks = Hooks { kill_at_call: delivery.crash_at_call };
        let run = node.spawn(async move {
            tokio::time::sleep(Duration::from_millis(delivery.cold_start_ms)).await;
            let control = crate::connect_control(&members, &DsoAccess::default()).await.map_err(Some)?;
            match worker::run(&control, invocation, hooks).await {
                Some(report) => Ok(report),
                None if delivery.hangs => std::future::pending().await,
                None => Err(None),
            }
        });
        let outcome = tokio::time::timeout(options.timeout, run).await;
        Handle::current().kill(node.id());
        match outcome {
            Err(_) => {
                counters.timeouts.fetch_add(1, Ordering::Relaxed);
                Err(ThreadError::TimedOut {
                    thread: thread.to_string(),
                    after_ms: options.timeout.as_millis() as u64,
                })
            }
            Ok(Ok(Ok(report))) => Ok(report),
            Ok(Ok(Err(Some(error)))) => Err(error),
            Ok(Ok(Err(None))) => {
                counters.crashes.fetch_add(1, Ordering::Relaxed);
                Err(ThreadError::Invocation {
                    thread: thread.to_string(),
                    reason: "the function instance crashed".into(),
                })
            }
            Ok(Err(join)) => {
                Err(ThreadError::Invocation { thread: thread.to_string(), reason: join.to_string() })
            }
        }
    }
}

impl Executor for Simulated {
    fn invoke(
        &self,
        invocation: Invocation,
        options: InvokeOptions,
    ) -> BoxFuture<'static, Result<Report, ThreadError>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let thread = invocation.thread;
            if inner.chance(inner.faults.throttle_probability) {
                inner.counters.throttles.fetch_add(1, Ordering::Relaxed);
                return Err(ThreadError::Throttled {
                    thread: thread.to_string(),
                    attempts: 1,
                    reason: "simulated: rate exceeded".into(),
                });
            }
            if !inner.chance(inner.faults.duplicate_probability) {
                return inner.deliver(invocation, options).await;
            }
            inner.counters.duplicates.fetch_add(1, Ordering::Relaxed);
            let first = tokio::spawn(inner.clone().deliver(invocation.clone(), options));
            let second = tokio::spawn(inner.clone().deliver(invocation, options));
            let (first, second) = (first.await, second.await);
            let joined = |result: Result<Result<Report, ThreadError>, _>| {
                result.unwrap_or_else(|join: tokio::task::JoinError| {
                    Err(ThreadError::Invocation { thread: thread.to_string(), reason: join.to_string() })
                })
            };
            match (joined(first), joined(second)) {
                (Ok(report), _) | (Err(_), Ok(report)) => Ok(report),
                (Err(error), Err(_)) => Err(error),
            }
        })
    }

    fn dso_members(&self) -> Vec<String> {
        self.inner.members.clone()
    }

    /// Simulated servers sit on a simulated private network, without a token or TLS.
    fn dso_access(&self) -> DsoAccess {
        DsoAccess::default()
    }

    fn next_thread_id(&self) -> ThreadId {
        self.inner.ids.next()
    }

    fn dso(&self) -> &Dso {
        &self.inner.control
    }
}
