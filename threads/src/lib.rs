//! Cloud threads: each thread of a program runs as one serverless invocation, and the threads
//! share distributed objects through [`crucial_dso`].
//!
//! ```no_run
//! use crucial_threads::{CloudThread, Context, Local, Runnable};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Hello { n: i64 }
//!
//! #[crucial_threads::runnable]
//! impl Runnable for Hello {
//!     const NAME: &'static str = "hello";
//!     type Output = i64;
//!     type Error = crucial_dso::DsoError;
//!     async fn run(self, ctx: &Context) -> Result<i64, Self::Error> {
//!         ctx.dso().atomic_long("total").add_and_get(self.n).await
//!     }
//! }
//!
//! # async fn main_() -> Result<(), Box<dyn std::error::Error>> {
//! let executor = Local::embedded().await?; // or lambda::Lambda::builder("fn").start().await?
//! let handle = CloudThread::spawn(&executor, Hello { n: 5 });
//! assert_eq!(handle.join().await?, 5);
//! # Ok(()) }
//! ```
//!
//! # Exactly-once effects under retries and duplicates
//!
//! A thread's DSO session is derived from its [`ThreadId`]. A retry or a duplicate invocation
//! of the thread runs the same deterministic code and sends the same calls with the same
//! sequence numbers; each key's session table answers the calls it recorded with the recorded
//! result and applies only the calls it never saw. So a thread killed anywhere and re-run
//! leaves the effects of one clean run, and [`Builder::retries`] and [`Builder::backup_after`]
//! are safe.
//!
//! Retention: a thread's session never acknowledges answers, so the nodes keep every record of
//! its calls while it runs. This is bounded: a key keeps at most `session_calls_max` (4096 by
//! default) records of one session, and a thread past that fails with
//! [`ThreadError::RecordsExceeded`]. When the thread ends, its outcome is stored in a DSO
//! `Future` under [`ThreadId::result_key`] (the first stored outcome wins), and then the
//! thread releases its records with one `Release` call per key it used. An invocation that
//! starts later finds the stored outcome and returns it without running; one that was still
//! replaying when the records went has its calls refused as stale, and returns the stored
//! outcome too. The stored outcomes themselves stay (one small object per thread).
//!
//! Non-determinism: each call carries a digest of the session's earlier calls, and a node keeps
//! it with the record. A replay whose call under a recorded sequence number differs, or
//! follows a different history, is refused there (never applied); from then on the thread's
//! session refuses every further call locally and the thread fails with
//! [`ThreadError::Nondeterministic`]. A divergent call sent to a key that holds no record of
//! that number cannot be recognised by that key and is applied; the divergence is caught at
//! the next call that reaches a recorded key. So a thread must make its DSO calls one after
//! another (not from concurrently spawned tasks, whose order could change) and draw
//! randomness from [`Context::rng`].

mod access;
mod context;
mod error;
mod executor;
mod id;
mod invocation;
#[cfg(feature = "lambda")]
pub mod lambda;
mod local;
mod runnable;
mod service;
#[cfg(madsim)]
pub mod simulated;
mod thread;
pub mod worker;

pub use access::DsoAccess;
pub use context::Context;
pub use error::ThreadError;
pub use executor::{BoxFuture, Executor, InvokeOptions, ThreadIds};
pub use id::ThreadId;
pub use invocation::{Invocation, Report};
pub use local::{Local, LocalBuilder, LocalFaults};
pub use runnable::{Registry, Runnable, RunnableEntry};
pub use service::{blocks, invoke_all, invoke_iterative};
pub use thread::{Builder, CloudThread, JoinHandle};

pub use crucial_dso as dso;
pub use crucial_dso_macros::runnable;
#[doc(hidden)]
pub use inventory;

use crucial_dso::client::ClientConfig;
use crucial_dso::Dso;

/// Connects the invoker's own DSO session to the first of `members` that answers, presenting
/// `access`.
pub(crate) async fn connect_control(members: &[String], access: &DsoAccess) -> Result<Dso, ThreadError> {
    let mut reason = "no DSO member given".to_string();
    let config = access.client_config(ClientConfig::default());
    for member in members {
        match Dso::connect_with(member.clone(), config.clone()).await {
            Ok(dso) => return Ok(dso),
            Err(error) => reason = error.to_string(),
        }
    }
    Err(ThreadError::DsoUnavailable { reason })
}
