//! The thread side of an invocation, the same under every executor (in-process, in a Lambda
//! handler, on a simulated node): look for a stored result, run the runnable in the thread's DSO
//! session, store the result, release the session's records.
//!
//! Exactly-once: the session comes from the thread id, so a retry or duplicate sends the same
//! calls with the same sequence numbers, and each key's session table answers those it recorded
//! without applying them again. The records outlive the session's answers (the session never
//! acknowledges, [`crucial_dso::core::client_session::SessionConfig::retain_records`]) until the
//! thread's result is stored under [`ThreadId::result_key`]; then one
//! [`crucial_dso::core::protocol::Action::Release`] per key drops them. An invocation that starts
//! after that finds the stored result and returns it without running; one that was still
//! replaying when the records went gets its calls refused as stale, and it too returns the
//! stored result.
//!
//! The release phase replays like the rest: the stored result carries where the thread's
//! session stood ([`Report::records`]), and every invocation that finds it sends the same
//! releases under the same sequence numbers. A kill during the release is a kill (the retry
//! finishes the release), and a duplicate frees what a crashed invocation left.

use std::sync::Arc;

use crucial_dso::client::ClientConfig;
use crucial_dso::core::client_session::{ReleasePoint, SessionConfig};
use crucial_dso::{CallError, Dso, DsoError, Value};
use tracing::Instrument;

use crate::invocation::{Invocation, Report};
use crate::runnable::{Registry, RunFailure};
use crate::{Context, ThreadError, ThreadId};

/// Faults an executor injects into an invocation (for tests and the simulator).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hooks {
    /// Kill the invocation right after it sent its DSO call number `kill_at_call` (that call
    /// may be applied, its answer is never seen), as a crash of the function would.
    pub kill_at_call: Option<u64>,
}

/// Runs one invocation; `None` if a hook killed it.
pub async fn run(control: &Dso, mut invocation: Invocation, hooks: Hooks) -> Option<Report> {
    let thread = invocation.thread;
    let entry = match Registry::global().and_then(|registry| registry.get(&invocation.name)) {
        Ok(entry) => entry,
        Err(error) => return Some(store(control, thread, Report::error(error)).await.report()),
    };
    match stored_report(control, thread).await {
        Ok(Some(report)) => return released(&invocation, hooks, report).await,
        Ok(None) => {}
        Err(error) => return Some(Report::error(unavailable(error))),
    }
    if invocation.dso.is_empty() {
        return Some(Report::error(ThreadError::DsoUnavailable { reason: "no DSO member given".into() }));
    }
    let dso = thread_session(&invocation, hooks, None);
    let ctx = Arc::new(Context::new(thread, invocation.attempt, dso.clone()));
    let running = match entry.start(std::mem::take(&mut invocation.input), ctx.clone()) {
        Ok(running) => running,
        Err(error) => return Some(store(control, thread, Report::error(error)).await.report()),
    };
    let span = ctx.span().clone();
    let mut task = tokio::spawn(running.instrument(span));
    let joined = tokio::select! {
        joined = &mut task => joined,
        () = dso.halted() => {
            task.abort();
            return None;
        }
    };
    let outcome = match joined {
        Ok(Ok(output)) => Ok(output),
        Ok(Err(RunFailure::Failed(message))) => Err(failure(thread, &dso, message)),
        Ok(Err(RunFailure::Output(reason))) => {
            Err(ThreadError::BadOutput { thread: thread.to_string(), reason })
        }
        Err(join) if join.is_panic() => {
            Err(ThreadError::Panicked { thread: thread.to_string(), message: panic_message(join) })
        }
        Err(join) => Err(ThreadError::Invocation { thread: thread.to_string(), reason: join.to_string() }),
    };
    if matches!(dso.session_refusal(), Some(CallError::StaleCall { .. })) {
        // Another invocation finished the thread and released its records meanwhile.
        if let Ok(Some(report)) = stored_report(control, thread).await {
            return released(&invocation, hooks, report).await;
        }
    }
    let records = Some(dso.release_point());
    let report = Report { outcome, logs: ctx.take_logs(), stored: false, records };
    match store(control, thread, report).await {
        Stored::Mine(report) => release(thread, &dso).await.then(|| without_records(report)),
        // Every invocation releases from the point stored with the outcome, whatever its own.
        Stored::Earlier(report) => released(&invocation, hooks, report).await,
        Stored::Not(report) => Some(without_records(report)),
    }
}

/// A stored result, once its thread's records are released from where they stood when it was
/// stored (the invocation that stored it may have been killed releasing them); `None` if a
/// hook killed this invocation while it released.
async fn released(invocation: &Invocation, hooks: Hooks, mut report: Report) -> Option<Report> {
    let point = report.records.take().filter(|point| !point.keys.is_empty());
    match point {
        Some(point) if !invocation.dso.is_empty() => {
            let dso = thread_session(invocation, hooks, Some(point));
            release(invocation.thread, &dso).await.then_some(report)
        }
        _ => Some(report),
    }
}

/// The report as the invoker gets it: the release point is for invocations of the thread, and
/// its keys could make the answer large.
fn without_records(report: Report) -> Report {
    Report { records: None, ..report }
}

/// How long releasing a finished thread's records may take before the thread ends without
/// (they then stay until evicted; the thread's result is stored either way).
const RELEASE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Releases the thread's records once its outcome is stored (never before: a duplicate that
/// found no stored outcome would replay against released records); `false` if a hook killed
/// the invocation meanwhile.
async fn release(thread: ThreadId, dso: &Dso) -> bool {
    let released = tokio::select! {
        released = tokio::time::timeout(RELEASE_TIMEOUT, dso.release_records()) => released,
        () = dso.halted() => return false,
    };
    match released {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%thread, %error, "some of the thread's records stay until evicted"),
        Err(_) => {
            tracing::warn!(%thread, "releasing the thread's records timed out; they stay until evicted")
        }
    }
    true
}

/// The error a runnable's own failure stands for: a refusal of the thread's session says more
/// than the runnable's message.
fn failure(thread: ThreadId, dso: &Dso, message: String) -> ThreadError {
    let thread = thread.to_string();
    match dso.session_refusal() {
        Some(refusal @ CallError::Nondeterministic { .. }) => {
            ThreadError::Nondeterministic { thread, detail: refusal.to_string() }
        }
        Some(refusal @ CallError::TooManyInFlight { .. }) => {
            ThreadError::RecordsExceeded { thread, detail: refusal.to_string() }
        }
        _ => ThreadError::Failed { thread, message },
    }
}

fn unavailable(error: DsoError) -> ThreadError {
    ThreadError::DsoUnavailable { reason: error.to_string() }
}

/// The report an earlier invocation of `thread` stored, if any.
pub async fn stored_report(control: &Dso, thread: ThreadId) -> Result<Option<Report>, DsoError> {
    match control.future(thread.result_key()).try_get().await? {
        Some(value) => decode_stored(thread, value).map(Some),
        None => Ok(None),
    }
}

/// Decodes a stored report, marking it as stored.
pub(crate) fn decode_stored(thread: ThreadId, value: Value) -> Result<Report, DsoError> {
    let Value::Str(json) = value else {
        return Err(DsoError::Codec(format!("the result of thread {thread} is not a report")));
    };
    let report: Report = serde_json::from_str(&json).map_err(|error| DsoError::Codec(error.to_string()))?;
    Ok(Report { stored: true, ..report })
}

/// Where a thread's outcome stands once [`store`] tried to store a report.
enum Stored {
    /// The report is the thread's outcome.
    Mine(Report),
    /// Another invocation stored the outcome first: its report (this one's if it could not be
    /// read back; every invocation of a thread reports the same outcome).
    Earlier(Report),
    /// Nothing could be stored: the report as it was.
    Not(Report),
}

impl Stored {
    /// The report, without its release point.
    fn report(self) -> Report {
        match self {
            Stored::Mine(report) | Stored::Earlier(report) | Stored::Not(report) => without_records(report),
        }
    }
}

/// Stores `report` as the thread's result unless one is stored already (then that one wins).
async fn store(control: &Dso, thread: ThreadId, report: Report) -> Stored {
    let json = String::from_utf8(report.to_json()).expect("JSON is UTF-8");
    match control.future(thread.result_key()).set(Value::Str(json)).await {
        Ok(true) => Stored::Mine(report),
        Ok(false) => match stored_report(control, thread).await {
            Ok(Some(stored)) => Stored::Earlier(stored),
            _ => Stored::Earlier(report),
        },
        Err(error) => {
            tracing::warn!(%thread, %error, "could not store the thread's result");
            Stored::Not(report)
        }
    }
}

/// The thread's own session (records retained for replays), connecting on its first call;
/// continuing from `resume_from` to finish a release.
fn thread_session(invocation: &Invocation, hooks: Hooks, resume_from: Option<ReleasePoint>) -> Dso {
    let config = invocation.dso_access().client_config(ClientConfig {
        session_id: Some(invocation.session),
        session: SessionConfig { call_timeout_ms: None, retain_records: true, ..SessionConfig::default() },
        halt_at_call: hooks.kill_at_call,
        resume_from,
        ..ClientConfig::default()
    });
    Dso::lazy(invocation.dso.clone(), config).expect("a thread session's configuration is valid")
}

/// The message of the panic that ended a task.
#[cfg(not(madsim))]
fn panic_message(join: tokio::task::JoinError) -> String {
    match join.into_panic().downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(message) => message.to_string(),
            Err(_) => "a panic without a message".into(),
        },
    }
}

/// The message of the panic that ended a task (madsim's join errors carry no payload).
#[cfg(madsim)]
fn panic_message(join: tokio::task::JoinError) -> String {
    join.to_string()
}
