//! The [`Executor`] trait: where cloud threads run.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crucial_dso::{Dso, Server, ServerBuilder};

use crate::access::DsoAccess;
use crate::invocation::{Invocation, Report};
use crate::{ThreadError, ThreadId};

/// A boxed, sendable future (what [`Executor::invoke`] returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Limits of one invocation, from [`crate::Builder`]. Memory is not one of them: on Lambda it is
/// the function's (`deploy/lambda.sh --memory`), the same for every invocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvokeOptions {
    /// The invocation is stopped after this long.
    pub timeout: Duration,
}

/// Runs invocations of cloud threads: in-process ([`crate::Local`]), on AWS Lambda
/// (`Lambda`, feature `lambda`), or on simulated nodes.
pub trait Executor: Send + Sync + 'static {
    /// Runs one invocation to its end and returns its report, or why the provider could not
    /// run it (crash, timeout, throttling, payload limits). Never retries: the caller does.
    fn invoke(
        &self,
        invocation: Invocation,
        options: InvokeOptions,
    ) -> BoxFuture<'static, Result<Report, ThreadError>>;

    /// The DSO members named in invocations, for threads to connect to (`HOST:PORT`; empty:
    /// the function finds them itself).
    fn dso_members(&self) -> Vec<String>;

    /// What threads are handed in invocations to reach the DSO: its token, if it requires
    /// one, and the TLS trust, if it serves TLS (neither where the function finds them itself).
    fn dso_access(&self) -> DsoAccess;

    /// A fresh thread id in this executor's job.
    fn next_thread_id(&self) -> ThreadId;

    /// The invoker's own DSO client (its own session): for the program's calls outside cloud
    /// threads, stored results and event deliveries.
    fn dso(&self) -> &Dso;
}

impl<E: Executor + ?Sized> Executor for Arc<E> {
    fn invoke(
        &self,
        invocation: Invocation,
        options: InvokeOptions,
    ) -> BoxFuture<'static, Result<Report, ThreadError>> {
        (**self).invoke(invocation, options)
    }

    fn dso_members(&self) -> Vec<String> {
        (**self).dso_members()
    }

    fn dso_access(&self) -> DsoAccess {
        (**self).dso_access()
    }

    fn next_thread_id(&self) -> ThreadId {
        (**self).next_thread_id()
    }

    fn dso(&self) -> &Dso {
        (**self).dso()
    }
}

/// Hands out thread ids of one job, in spawn order.
#[derive(Debug)]
pub struct ThreadIds {
    job: u64,
    next_index: AtomicU64,
}

impl ThreadIds {
    /// Ids of job `job`.
    pub fn new(job: u64) -> Self {
        ThreadIds { job, next_index: AtomicU64::new(0) }
    }

    /// Ids of a random job (a program run that does not want to replay an earlier one).
    pub fn random() -> Self {
        use rand::{RngCore, SeedableRng};
        ThreadIds::new(rand::rngs::SmallRng::from_os_rng().next_u64())
    }

    /// The next id.
    pub fn next(&self) -> ThreadId {
        ThreadId { job: self.job, index: self.next_index.fetch_add(1, Ordering::Relaxed) }
    }
}

/// Where an executor's threads find the DSO: a running cluster, or a server the executor
/// starts on a free loopback port (it stops with the executor).
#[derive(Debug, Default)]
pub(crate) struct DsoTarget {
    /// The cluster's members, if given.
    pub members: Option<Vec<String>>,
    /// The server to start when no cluster is given (built-in types only by default).
    pub server: Option<ServerBuilder>,
    /// What the cluster requires (an embedded server then requires the token too; it serves
    /// plain TCP on loopback, so TLS needs a cluster given by its members).
    pub access: DsoAccess,
}

/// An executor's DSO, reached.
#[derive(Debug)]
pub(crate) struct ConnectedDso {
    /// The members threads are told about.
    pub members: Vec<String>,
    /// The invoker's own session.
    pub control: Dso,
    /// The server the executor started, if any.
    pub embedded: Option<Server>,
    /// What threads present.
    pub access: DsoAccess,
}

impl DsoTarget {
    /// Checks the runnable registry, starts the embedded server if needed and connects the
    /// invoker's session.
    pub async fn connect(self) -> Result<ConnectedDso, ThreadError> {
        crate::Registry::global()?;
        let (members, embedded) = match self.members {
            Some(members) => (members, None),
            None => {
                let mut server = self.server.unwrap_or_default().bind(SocketAddr::from(([127, 0, 0, 1], 0)));
                if self.access.tls.is_some() {
                    return Err(ThreadError::DsoUnavailable {
                        reason: "TLS needs the DSO cluster's members (dso(...)): the embedded server \
                                 serves plain TCP on loopback"
                            .into(),
                    });
                }
                if let Some(token) = &self.access.token {
                    server = server.token(token.clone());
                }
                let server = server
                    .start()
                    .await
                    .map_err(|error| ThreadError::DsoUnavailable { reason: error.to_string() })?;
                (vec![server.local_addr().to_string()], Some(server))
            }
        };
        let control = crate::connect_control(&members, &self.access).await?;
        Ok(ConnectedDso { members, control, embedded, access: self.access })
    }
}
