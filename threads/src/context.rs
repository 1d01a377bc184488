//! [`Context`]: what a running cloud thread is given.

use std::sync::atomic::{AtomicU64, Ordering};

use crucial_dso::Dso;
use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::id::{mix, ThreadId};

/// A cloud thread's view of the world: its DSO client (bound to the thread's own session, so a
/// re-run replays), its id, a deterministic RNG, its `tracing` span and its log.
#[derive(Debug)]
pub struct Context {
    thread: ThreadId,
    attempt: u32,
    dso: Dso,
    span: tracing::Span,
    rngs_handed_out: AtomicU64,
    logs: Mutex<Vec<String>>,
}

impl Context {
    pub(crate) fn new(thread: ThreadId, attempt: u32, dso: Dso) -> Self {
        let span = tracing::info_span!("cloud_thread", thread = %thread, attempt);
        Context {
            thread,
            attempt,
            dso,
            span,
            rngs_handed_out: AtomicU64::new(0),
            logs: Mutex::new(Vec::new()),
        }
    }

    /// The DSO client of this thread's session. Every call it makes is numbered in the
    /// session; a retry of the thread gets the recorded answers back.
    pub fn dso(&self) -> &Dso {
        &self.dso
    }

    /// The thread's id.
    pub fn thread_id(&self) -> ThreadId {
        self.thread
    }

    /// Which invocation of the thread this is (0 for the first; retries and duplicates count
    /// up). For logs only: a thread's effects must not depend on it.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// A random number generator seeded from the thread id: the n-th call in a thread returns
    /// the same generator in every invocation of that thread, so replays draw the same numbers.
    pub fn rng(&self) -> SmallRng {
        let draw = self.rngs_handed_out.fetch_add(1, Ordering::Relaxed);
        SmallRng::seed_from_u64(mix(self.thread.seed() ^ draw))
    }

    /// The thread's span (field `thread`); the runtime runs the thread inside it, so every DSO
    /// call it makes is logged there.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Logs a line: kept with the thread's result (see [`crate::JoinHandle::join_with_logs`])
    /// and emitted as a `tracing` event in the thread's span.
    pub fn log(&self, line: impl Into<String>) {
        let line = line.into();
        tracing::info!(parent: &self.span, "{line}");
        self.logs.lock().push(line);
    }

    pub(crate) fn take_logs(&self) -> Vec<String> {
        std::mem::take(&mut *self.logs.lock())
    }
}
