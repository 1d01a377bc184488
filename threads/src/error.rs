//! [`ThreadError`]: every way a cloud thread can fail, told apart.

use serde::{Deserialize, Serialize};

/// Why a cloud thread gave no result. Travels in invocation reports (JSON), so a Lambda
/// handler's errors arrive typed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ThreadError {
    /// The runnable's `run` returned its own error.
    #[error("thread {thread} failed: {message}")]
    Failed {
        /// The thread.
        thread: String,
        /// The error, as the runnable's error type displays it.
        message: String,
    },
    /// The runnable panicked.
    #[error("thread {thread} panicked: {message}")]
    Panicked {
        /// The thread.
        thread: String,
        /// The panic's message.
        message: String,
    },
    /// The thread ran past its timeout and was stopped.
    #[error("thread {thread} timed out after {after_ms} ms")]
    TimedOut {
        /// The thread.
        thread: String,
        /// The timeout.
        after_ms: u64,
    },
    /// The provider could not run the invocation, or it crashed: the provider's words.
    #[error("invocation of thread {thread} failed: {reason}")]
    Invocation {
        /// The thread.
        thread: String,
        /// What the provider (or the local executor) said.
        reason: String,
    },
    /// The provider kept refusing for lack of capacity.
    #[error("thread {thread} was throttled {attempts} times in a row: {reason}")]
    Throttled {
        /// The thread.
        thread: String,
        /// Invocations refused.
        attempts: u32,
        /// The provider's last words.
        reason: String,
    },
    /// The invocation's payload or result is over what the provider accepts.
    #[error("thread {thread}: the {what} is {size} bytes, over the limit of {limit}")]
    PayloadTooLarge {
        /// The thread.
        thread: String,
        /// `"request"` or `"response"`.
        what: String,
        /// Its size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// A retry or duplicate of the thread issued a different DSO call than an earlier run did
    /// under the same sequence number: the thread's code is not deterministic. The call was
    /// refused, not applied.
    #[error("thread {thread} replayed non-deterministically: {detail}")]
    Nondeterministic {
        /// The thread.
        thread: String,
        /// The node's refusal.
        detail: String,
    },
    /// The thread made more DSO calls on one key than a node keeps records of per session.
    #[error("thread {thread}: {detail} (a cloud thread may make at most that many calls per key)")]
    RecordsExceeded {
        /// The thread.
        thread: String,
        /// The node's refusal.
        detail: String,
    },
    /// No runnable is registered under this name where the thread ran.
    #[error("no runnable named `{name}` is registered (register it with `crucial_threads::register!`)")]
    UnknownRunnable {
        /// The name asked for.
        name: String,
    },
    /// Two runnable types are registered under one name.
    #[error("two runnable types are registered as `{name}`: names must be unique")]
    DuplicateRunnable {
        /// The name registered twice.
        name: String,
    },
    /// The runnable could not be encoded or decoded as the invocation's input.
    #[error("bad input for runnable `{name}`: {reason}")]
    BadInput {
        /// The runnable.
        name: String,
        /// What serde said.
        reason: String,
    },
    /// The thread's result did not decode as the runnable's `Output`.
    #[error("the result of thread {thread} does not decode as its output type: {reason}")]
    BadOutput {
        /// The thread.
        thread: String,
        /// What serde said.
        reason: String,
    },
    /// The DSO cluster could not be reached.
    #[error("DSO unavailable: {reason}")]
    DsoUnavailable {
        /// The client's error.
        reason: String,
    },
}

impl ThreadError {
    /// Whether another invocation may succeed where this one failed: crashes, timeouts,
    /// throttling and unreachable services. A runnable's own error, a panic or a
    /// non-deterministic replay would only repeat.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            ThreadError::TimedOut { .. }
                | ThreadError::Invocation { .. }
                | ThreadError::Throttled { .. }
                | ThreadError::DsoUnavailable { .. }
        )
    }
}
