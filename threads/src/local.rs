//! [`Local`]: cloud threads as in-process tasks, each with its own DSO session. The default
//! executor: with no DSO given it starts an embedded server. It still encodes every
//! invocation and report as JSON, so a type that could not travel to a Lambda function fails
//! here too.

use std::sync::Arc;

use crucial_dso::core::auth::Token;
use crucial_dso::{Dso, Server, ServerBuilder};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::executor::{BoxFuture, ConnectedDso, DsoTarget, Executor, InvokeOptions, ThreadIds};
use crate::id::mix;
use crate::invocation::{Invocation, Report};
use crate::worker::{self, Hooks};
use crate::DsoAccess;
use crate::{ThreadError, ThreadId};

/// Faults the local executor injects, from a seed (for tests of exactly-once effects).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalFaults {
    /// The seed of the fault choices.
    pub seed: u64,
    /// Invocations with an attempt number below this are killed right after sending their DSO
    /// call number `n`, drawn uniformly from `kill_at_calls` (a thread that makes fewer calls
    /// finishes). The call sent last may or may not apply; every earlier one was answered.
    /// Each invocation's draw depends only on the seed, the thread's index and the attempt
    /// (not on the order invocations start), so a seed reproduces a run's kills.
    pub kill_attempts_below: u32,
    /// The range of the kill point, in calls (numbered from 1).
    pub kill_at_calls: std::ops::RangeInclusive<u64>,
}

/// The in-process executor. Cheap to clone; clones share the DSO connection and the job.
#[derive(Clone, Debug)]
pub struct Local {
    inner: Arc<LocalInner>,
}

#[derive(Debug)]
struct LocalInner {
    members: Vec<String>,
    /// The invoker's own session: stored results, event deliveries.
    control: Dso,
    ids: ThreadIds,
    faults: Option<LocalFaults>,
    /// The embedded server, if this executor started one (stops with the executor).
    _embedded: Option<Server>,
    /// What threads present to the DSO.
    access: DsoAccess,
}

impl Local {
    /// An executor with an embedded DSO server on loopback.
    pub async fn embedded() -> Result<Local, ThreadError> {
        LocalBuilder::default().start().await
    }

    /// An executor whose threads use the DSO cluster at `members` (`HOST:PORT`, any member).
    pub async fn connect(members: Vec<String>) -> Result<Local, ThreadError> {
        LocalBuilder::default().dso(members).start().await
    }

    /// Settings beyond the defaults.
    pub fn builder() -> LocalBuilder {
        LocalBuilder::default()
    }
}

/// Builds a [`Local`] executor.
#[derive(Debug, Default)]
pub struct LocalBuilder {
    dso: DsoTarget,
    job: Option<u64>,
    faults: Option<LocalFaults>,
}

impl LocalBuilder {
    /// Use the DSO cluster at `members` instead of an embedded server.
    pub fn dso(mut self, members: Vec<String>) -> Self {
        self.dso.members = Some(members);
        self
    }

    /// The token the DSO cluster requires (the embedded server, if any, then requires it too);
    /// threads get it in their invocations.
    pub fn dso_token(mut self, token: Token) -> Self {
        self.dso.access.token = Some(token);
        self
    }

    /// Everything the DSO cluster given with [`LocalBuilder::dso`] requires (token, TLS trust,
    /// `insecure`; replaces a [`LocalBuilder::dso_token`]); threads get it in their invocations.
    pub fn dso_access(mut self, access: DsoAccess) -> Self {
        self.dso.access = access;
        self
    }

    /// The embedded server to start (to register the program's own object types); it is
    /// bound to a free loopback port. Ignored with [`LocalBuilder::dso`].
    pub fn embedded_server(mut self, server: ServerBuilder) -> Self {
        self.dso.server = Some(server);
        self
    }

    /// Thread ids of job `job` (to replay a whole program run); a random job otherwise.
    pub fn job(mut self, job: u64) -> Self {
        self.job = Some(job);
        self
    }

    /// Inject `faults`.
    pub fn faults(mut self, faults: LocalFaults) -> Self {
        self.faults = Some(faults);
        self
    }

    /// Starts the executor (and the embedded server, if no cluster was given).
    pub async fn start(self) -> Result<Local, ThreadError> {
        let ConnectedDso { members, control, embedded, access } = self.dso.connect().await?;
        let ids = self.job.map_or_else(ThreadIds::random, ThreadIds::new);
        let inner = LocalInner { members, control, ids, faults: self.faults, _embedded: embedded, access };
        Ok(Local { inner: Arc::new(inner) })
    }
}

impl LocalInner {
    fn hooks(&self, invocation: &Invocation) -> Hooks {
        let kill_at_call = (self.faults.as_ref())
            .and_then(|faults| faults.kill_point(invocation.thread.index, invocation.attempt));
        Hooks { kill_at_call }
    }
}

impl LocalFaults {
    /// The call after which attempt `attempt` of thread number `index` is killed, if it is.
    fn kill_point(&self, index: u64, attempt: u32) -> Option<u64> {
        if attempt >= self.kill_attempts_below {
            return None;
        }
        let (first, last) = (*self.kill_at_calls.start(), *self.kill_at_calls.end());
        let draw = mix(mix(self.seed ^ index) ^ u64::from(attempt));
        Some(SmallRng::seed_from_u64(draw).random_range(first.max(1)..=last.max(first).max(1)))
    }
}

impl Executor for Local {
    fn invoke(
        &self,
        invocation: Invocation,
        options: InvokeOptions,
    ) -> BoxFuture<'static, Result<Report, ThreadError>> {
        let inner = self.inner.clone();
        let thread = invocation.thread;
        let payload = serde_json::to_vec(&invocation);
        Box::pin(async move {
            let payload = payload.map_err(|error| bad_input(&invocation.name, error))?;
            let invocation: Invocation =
                serde_json::from_slice(&payload).map_err(|error| bad_input(&invocation.name, error))?;
            let hooks = inner.hooks(&invocation);
            let running = inner.clone();
            let mut task =
                tokio::spawn(async move { worker::run(&running.control, invocation, hooks).await });
            let report = tokio::select! {
                joined = &mut task => joined,
                _ = tokio::time::sleep(options.timeout) => {
                    task.abort();
                    return Err(ThreadError::TimedOut { thread: thread.to_string(), after_ms: options.timeout.as_millis() as u64 });
                }
            };
            match report {
                Ok(Some(report)) => round_trip(thread, &report),
                Ok(None) => Err(ThreadError::Invocation {
                    thread: thread.to_string(),
                    reason: "killed mid-run (injected fault)".into(),
                }),
                Err(join) => {
                    Err(ThreadError::Invocation { thread: thread.to_string(), reason: join.to_string() })
                }
            }
        })
    }

    fn dso_members(&self) -> Vec<String> {
        self.inner.members.clone()
    }

    fn dso_access(&self) -> DsoAccess {
        self.inner.access.clone()
    }

    fn next_thread_id(&self) -> ThreadId {
        self.inner.ids.next()
    }

    fn dso(&self) -> &Dso {
        &self.inner.control
    }
}

/// Encodes and decodes a report, as a provider's response would be.
fn round_trip(thread: ThreadId, report: &Report) -> Result<Report, ThreadError> {
    serde_json::from_slice(&report.to_json()).map_err(|error| ThreadError::Invocation {
        thread: thread.to_string(),
        reason: format!("bad report: {error}"),
    })
}

fn bad_input(name: &str, error: serde_json::Error) -> ThreadError {
    ThreadError::BadInput { name: name.to_string(), reason: error.to_string() }
}

#[cfg(test)]
mod tests {
    use super::LocalFaults;

    #[test]
    fn a_kill_point_depends_on_the_seed_thread_and_attempt_only() {
        let faults = LocalFaults { seed: 9, kill_attempts_below: 2, kill_at_calls: 3..=40 };
        let points: Vec<_> = (0..200).map(|index| faults.kill_point(index, 0)).collect();
        // Drawn again in reverse order, as invocations that start in another order would.
        let again: Vec<_> = (0..200).rev().map(|index| faults.kill_point(index, 0)).collect();
        assert!(points.iter().eq(again.iter().rev()), "the order of draws does not matter");
        assert!(points.iter().all(|point| point.is_some_and(|call| (3..=40).contains(&call))));
        let distinct: std::collections::BTreeSet<_> = points.iter().collect();
        assert!(distinct.len() > 20, "threads draw different points: {distinct:?}");
        assert!((0..200).any(|index| faults.kill_point(index, 1) != faults.kill_point(index, 0)));
        assert_eq!(faults.kill_point(5, 2), None, "attempts from kill_attempts_below on are not killed");
        let other_seed = LocalFaults { seed: 10, ..faults.clone() };
        assert_ne!(points, (0..200).map(|index| other_seed.kill_point(index, 0)).collect::<Vec<_>>());
    }
}
