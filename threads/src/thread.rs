//! [`CloudThread`]: `std::thread::spawn`, where the thread is one serverless invocation.

use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::executor::{Executor, InvokeOptions};
use crate::invocation::{Invocation, Report};
use crate::{Runnable, ThreadError, ThreadId};

/// Spawns cloud threads: `CloudThread::spawn(&executor, runnable)` in place of
/// `std::thread::spawn(closure)`.
#[derive(Debug)]
pub struct CloudThread;

impl CloudThread {
    /// Starts `runnable` as a cloud thread with default settings (no retries).
    pub fn spawn<E: Executor + Clone, R: Runnable>(executor: &E, runnable: R) -> JoinHandle<R::Output> {
        Builder::default().spawn(executor, runnable)
    }

    /// Settings for one thread.
    pub fn builder() -> Builder {
        Builder::default()
    }
}

/// A cloud thread's settings: name, timeout, memory, retries and speculative duplicates.
#[derive(Clone, Debug)]
pub struct Builder {
    name: Option<String>,
    options: InvokeOptions,
    retries: u32,
    backup_after: Option<Duration>,
    concurrency: Option<usize>,
    #[cfg(crucial_canary)]
    fresh_session_per_attempt: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            name: None,
            options: InvokeOptions { timeout: Duration::from_secs(900) },
            retries: 0,
            backup_after: None,
            concurrency: None,
            #[cfg(crucial_canary)]
            fresh_session_per_attempt: false,
        }
    }
}

impl Builder {
    /// A name for logs and errors (the thread id otherwise).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Each invocation is stopped after `timeout` (default 900 s, Lambda's maximum).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = timeout;
        self
    }

    /// Re-invokes the thread up to `retries` times after a crash, a timeout, throttling or an
    /// unreachable service. Safe: a re-run replays the calls already applied.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// If an invocation has not finished after `after`, starts a second one of the same thread
    /// and takes whichever finishes first (both apply each DSO call once between them).
    pub fn backup_after(mut self, after: Duration) -> Self {
        self.backup_after = Some(after);
        self
    }

    /// For [`crate::invoke_all`] and [`crate::invoke_iterative`]: at most `threads` threads run at
    /// once, the next starting as one finishes (a Lambda account has a concurrency quota; the
    /// default starts them all at once). Threads that wait for each other (a barrier of `n`
    /// parties) need at least `n`, or they wait for ever.
    pub fn concurrency(mut self, threads: usize) -> Self {
        self.concurrency = Some(threads.max(1));
        self
    }

    /// The cap of [`Builder::concurrency`], if set.
    pub fn concurrency_limit(&self) -> Option<usize> {
        self.concurrency
    }

    /// Canary: every attempt gets a fresh DSO session, so retries apply their calls again.
    /// Exactly-once checks must catch it.
    #[cfg(crucial_canary)]
    pub fn canary_fresh_session_per_attempt(mut self) -> Self {
        self.fresh_session_per_attempt = true;
        self
    }

    /// Starts `runnable` as a cloud thread on `executor`.
    pub fn spawn<E: Executor + Clone, R: Runnable>(self, executor: &E, runnable: R) -> JoinHandle<R::Output> {
        let thread = executor.next_thread_id();
        let label = self.name.clone().unwrap_or_else(|| thread.to_string());
        let input = serde_json::to_value(&runnable)
            .map_err(|error| ThreadError::BadInput { name: R::NAME.to_string(), reason: error.to_string() });
        let supervisor = Supervisor { executor: executor.clone(), builder: self, thread, name: R::NAME };
        let task = tokio::spawn(async move {
            match input {
                Ok(input) => supervisor.run(input).await,
                Err(error) => Report::error(error),
            }
        });
        JoinHandle { thread, label, task, _output: PhantomData }
    }
}

/// Owns a spawned cloud thread: `join` waits for its result.
#[derive(Debug)]
pub struct JoinHandle<T> {
    thread: ThreadId,
    label: String,
    task: tokio::task::JoinHandle<Report>,
    _output: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> JoinHandle<T> {
    /// The thread's id.
    pub fn thread_id(&self) -> ThreadId {
        self.thread
    }

    /// Waits for the thread: its output, or why there is none.
    pub async fn join(self) -> Result<T, ThreadError> {
        self.join_with_logs().await.0
    }

    /// Waits for the thread: its output (or error) and the lines it logged.
    pub async fn join_with_logs(self) -> (Result<T, ThreadError>, Vec<String>) {
        let report = match self.task.await {
            Ok(report) => report,
            Err(join) => {
                return (
                    Err(ThreadError::Invocation { thread: self.label, reason: join.to_string() }),
                    Vec::new(),
                )
            }
        };
        let output = report.outcome.and_then(|value| {
            serde_json::from_value(value).map_err(|error| ThreadError::BadOutput {
                thread: self.label.clone(),
                reason: error.to_string(),
            })
        });
        (output, report.logs)
    }
}

/// Invokes one thread until it has a result or no retry is left.
struct Supervisor<E> {
    executor: E,
    builder: Builder,
    thread: ThreadId,
    name: &'static str,
}

impl<E: Executor> Supervisor<E> {
    async fn run(&self, input: serde_json::Value) -> Report {
        let mut attempt = 0;
        let mut retries_left = self.builder.retries;
        loop {
            let result = match self.builder.backup_after {
                Some(after) => {
                    let result = self.race(&input, attempt, after).await;
                    attempt += 2;
                    result
                }
                None => {
                    let result = self.invoke(&input, attempt).await;
                    attempt += 1;
                    result
                }
            };
            match result {
                Ok(report) => return report,
                Err(error) if error.is_retriable() && retries_left > 0 => {
                    retries_left -= 1;
                    tracing::info!(thread = %self.thread, %error, retries_left, "retrying the cloud thread");
                }
                Err(error) => return Report::error(error),
            }
        }
    }

    fn invoke(
        &self,
        input: &serde_json::Value,
        attempt: u32,
    ) -> crate::executor::BoxFuture<'static, Result<Report, ThreadError>> {
        let access = self.executor.dso_access();
        let invocation = Invocation {
            thread: self.thread,
            session: self.session(attempt),
            attempt,
            name: self.name.to_string(),
            input: input.clone(),
            dso: self.executor.dso_members(),
            dso_token: access.token,
            dso_tls: access.tls,
            dso_insecure: access.insecure,
        };
        let invoked = self.executor.invoke(invocation, self.builder.options);
        // A report of a failure that another invocation may not meet counts as that failure.
        Box::pin(async move {
            invoked.await.and_then(|report| match report.outcome {
                Err(error) if error.is_retriable() => Err(error),
                _ => Ok(report),
            })
        })
    }

    /// Invokes the thread, and a second time if the first has not finished after `after`;
    /// the first result wins, an error only if both fail.
    async fn race(
        &self,
        input: &serde_json::Value,
        attempt: u32,
        after: Duration,
    ) -> Result<Report, ThreadError> {
        let mut first = self.invoke(input, attempt);
        tokio::select! {
            result = &mut first => return result,
            _ = tokio::time::sleep(after) => {}
        }
        let mut second = self.invoke(input, attempt + 1);
        tokio::select! {
            result = &mut first => match result {
                Ok(report) => Ok(report),
                Err(error) => second.await.map_err(|_| error),
            },
            result = &mut second => match result {
                Ok(report) => Ok(report),
                Err(error) => first.await.map_err(|_| error),
            },
        }
    }

    #[cfg(crucial_canary)]
    fn session(&self, attempt: u32) -> u64 {
        match self.builder.fresh_session_per_attempt {
            true => crate::id::mix(self.thread.session() ^ u64::from(attempt)),
            false => self.thread.session(),
        }
    }

    #[cfg(not(crucial_canary))]
    fn session(&self, _attempt: u32) -> u64 {
        self.thread.session()
    }
}
