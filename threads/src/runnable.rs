//! Runnables and their registry: what a cloud thread runs, found by a stable name so that one
//! handler binary (a Lambda function) can rebuild any of them from its input.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Context, ThreadError};

/// The body of a cloud thread: a serde type (its fields are the thread's input) with an async
/// `run`. Register each type: `#[crucial_threads::runnable]` on its `impl Runnable` block, or
/// [`crate::register!`].
///
/// `run` must be deterministic given the runnable, the results of its DSO calls and
/// [`Context::rng`]: a retried or duplicated invocation replays it, and its DSO calls are
/// answered from the records of the earlier run. Issue DSO calls in a deterministic order
/// (await them one after another, or join a fixed set).
pub trait Runnable: Serialize + DeserializeOwned + Send + 'static {
    /// The stable name the type is registered and invoked by.
    const NAME: &'static str;
    /// What the thread returns (travels back as JSON).
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// The thread's own error (travels back as its `Display` text).
    type Error: std::fmt::Display + Send + 'static;

    /// Runs the thread.
    fn run(self, ctx: &Context) -> impl Future<Output = Result<Self::Output, Self::Error>> + Send;
}

/// How an erased run ended without an output: the runnable's error, or an output that did not
/// encode.
pub(crate) enum RunFailure {
    Failed(String),
    Output(String),
}

pub(crate) type RunFuture = Pin<Box<dyn Future<Output = Result<serde_json::Value, RunFailure>> + Send>>;

/// One registered runnable type (built by [`crate::register!`]).
#[derive(Debug)]
pub struct RunnableEntry {
    name: &'static str,
    start: fn(serde_json::Value, Arc<Context>) -> Result<RunFuture, String>,
}

impl RunnableEntry {
    /// The entry of runnable type `T`.
    pub const fn of<T: Runnable>() -> Self {
        RunnableEntry { name: T::NAME, start: start_erased::<T> }
    }

    /// Decodes the runnable from `input` and starts it in `ctx`.
    pub(crate) fn start(
        &self,
        input: serde_json::Value,
        ctx: Arc<Context>,
    ) -> Result<RunFuture, ThreadError> {
        (self.start)(input, ctx)
            .map_err(|reason| ThreadError::BadInput { name: self.name.to_string(), reason })
    }
}

inventory::collect!(RunnableEntry);

fn start_erased<T: Runnable>(input: serde_json::Value, ctx: Arc<Context>) -> Result<RunFuture, String> {
    let runnable: T = serde_json::from_value(input).map_err(|error| error.to_string())?;
    Ok(Box::pin(async move {
        match runnable.run(&ctx).await {
            Ok(output) => {
                serde_json::to_value(&output).map_err(|error| RunFailure::Output(error.to_string()))
            }
            Err(error) => Err(RunFailure::Failed(error.to_string())),
        }
    }))
}

/// Registers runnable types under their [`Runnable::NAME`]s, for impls that cannot carry
/// `#[crucial_threads::runnable]` (written by another macro, say):
/// `crucial_threads::register!(Pi, KMeansWorker);`.
#[macro_export]
macro_rules! register {
    ($($runnable:ty),+ $(,)?) => {
        $( $crate::inventory::submit! { $crate::RunnableEntry::of::<$runnable>() } )+
    };
}

/// Every runnable linked into this program, by name.
#[derive(Debug)]
pub struct Registry {
    entries: BTreeMap<&'static str, &'static RunnableEntry>,
}

impl Registry {
    /// The registry of this program, built once; fails if two types share a name.
    pub fn global() -> Result<&'static Registry, ThreadError> {
        static REGISTRY: OnceLock<Result<Registry, ThreadError>> = OnceLock::new();
        REGISTRY
            .get_or_init(|| Registry::build(inventory::iter::<RunnableEntry>))
            .as_ref()
            .map_err(Clone::clone)
    }

    fn build<'a>(
        entries: impl IntoIterator<Item = &'static RunnableEntry> + 'a,
    ) -> Result<Registry, ThreadError> {
        let mut by_name = BTreeMap::new();
        for entry in entries {
            if by_name.insert(entry.name, entry).is_some() {
                return Err(ThreadError::DuplicateRunnable { name: entry.name.to_string() });
            }
        }
        Ok(Registry { entries: by_name })
    }

    /// The runnable registered as `name`.
    pub fn get(&self, name: &str) -> Result<&'static RunnableEntry, ThreadError> {
        self.entries.get(name).copied().ok_or_else(|| ThreadError::UnknownRunnable { name: name.to_string() })
    }

    /// The registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.entries.keys().copied()
    }
}
