//! Errors: what a call can be refused with (travels on the wire) and what a client sees.

use serde::{Deserialize, Serialize};

/// Why the node refused or failed a call. Sent back to the caller; never a panic on the node.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, thiserror::Error)]
pub enum CallError {
    /// No object type of this name is registered on the server.
    #[error("unknown object type `{type_name}` (register it in the server builder)")]
    UnknownType {
        /// The type name the caller asked for.
        type_name: String,
    },
    /// The type exists but has no such method.
    #[error("object type `{type_name}` has no method `{method}`")]
    UnknownMethod {
        /// The object type.
        type_name: String,
        /// The method the caller asked for.
        method: String,
    },
    /// The arguments did not decode as the method's parameter types.
    #[error("bad arguments for `{type_name}::{method}`: {reason}")]
    BadArguments {
        /// The object type.
        type_name: String,
        /// The method called.
        method: String,
        /// What the decoder said.
        reason: String,
    },
    /// An initial state sent with `create` did not decode as the type's state.
    #[error("bad initial state for `{type_name}`: {reason}")]
    BadState {
        /// The object type.
        type_name: String,
        /// What the decoder said.
        reason: String,
    },
    /// The key holds an object of another type.
    #[error("key `{key}` holds a `{stored}`, not a `{requested}`")]
    TypeMismatch {
        /// The key.
        key: String,
        /// The type stored under it.
        stored: String,
        /// The type the caller asked for.
        requested: String,
    },
    /// The key is empty and the type has no default to create it with.
    #[error("no `{type_name}` at key `{key}`: create it first with an initial state")]
    NoSuchObject {
        /// The key.
        key: String,
        /// The type the caller asked for.
        type_name: String,
    },
    /// The session has too many calls without a recorded answer the client has acknowledged.
    #[error("session has {limit} calls in flight already (session_calls_max)")]
    TooManyInFlight {
        /// The configured limit.
        limit: usize,
    },
    /// The call's sequence number is below what its session acknowledged: a stale duplicate.
    #[error("call {seq} of session {session} was already acknowledged by its client")]
    StaleCall {
        /// The session.
        session: u64,
        /// The stale sequence number.
        seq: u64,
    },
    /// The session already made a different call under this sequence number: a cloud thread
    /// replayed non-deterministically (its code took another path than in an earlier run).
    #[error(
        "call {seq} of session {session} differs from the call recorded under that number \
         (non-deterministic replay); it was not applied"
    )]
    Nondeterministic {
        /// The session.
        session: u64,
        /// The sequence number reused.
        seq: u64,
    },
    /// The key or another field is over a configured limit.
    #[error("{what} is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// Which field.
        what: String,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The key's session table evicted the session (it held `sessions_max` others used more
    /// recently): its records are gone, so a retry of one of its calls cannot be told from a
    /// new call. It is refused; whether an earlier send of the call applied is unknown.
    #[error(
        "session {session} expired at this key (evicted from a full session table): call {seq} \
         was refused, and whether an earlier send of it applied is unknown"
    )]
    SessionExpired {
        /// The session.
        session: u64,
        /// The refused sequence number.
        seq: u64,
    },
    /// The call would have grown the object past the members' size limit; it was not applied.
    #[error(
        "the object at key `{key}` would grow to {bytes} encoded bytes, over the limit of {limit} \
         (`object_bytes_max`): the call was refused and changed nothing"
    )]
    ObjectTooLarge {
        /// The key.
        key: String,
        /// The object's encoded size had the call applied.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// The object this call waited on was deleted while it was parked.
    #[error("the object at key `{key}` was deleted while this call waited on it")]
    ObjectDeleted {
        /// The key.
        key: String,
    },
}

/// What a client call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum DsoError {
    /// The server refused or failed the call.
    #[error(transparent)]
    Call(#[from] CallError),
    /// The connection failed and could not be re-established within the retry budget.
    #[error("connection to {addr} failed: {reason}")]
    Unavailable {
        /// The server address.
        addr: String,
        /// The last error seen.
        reason: String,
    },
    /// The call got no answer within its deadline (it may or may not have taken effect).
    #[error("call timed out after {after_ms} ms (it may or may not have taken effect)")]
    Timeout {
        /// The deadline that passed.
        after_ms: u64,
    },
    /// The server spoke the protocol wrongly or refused the handshake.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The server refused the client's token (none, or another than its own). A call that
    /// fails with it was not sent, unless an earlier send of it (before the server's token
    /// changed) reached a member: then it may have taken effect.
    #[error("{addr} refused this client: {reason}")]
    Unauthenticated {
        /// The server address.
        addr: String,
        /// Why, as the server said.
        reason: String,
    },
    /// The TLS handshake with a server failed: its certificate expired, is not signed by the
    /// CA trusted, or is not issued for the cluster's name; or the server does not serve TLS.
    #[error("{addr}: {reason}")]
    Tls {
        /// The server address.
        addr: String,
        /// What failed, as the handshake said.
        reason: String,
    },
    /// A reply decoded as another method's result: client and server disagree on the type.
    #[error("reply to `{expected}` was {got}")]
    MismatchedReply {
        /// The method called.
        expected: &'static str,
        /// What came back.
        got: String,
    },
    /// A result or value could not be encoded or decoded.
    #[error("codec: {0}")]
    Codec(String),
    /// The client's configuration cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl DsoError {
    /// Whether a server refused this client itself (its token, or the TLS handshake): every
    /// resend would be refused the same way.
    pub fn is_refusal(&self) -> bool {
        matches!(self, DsoError::Unauthenticated { .. } | DsoError::Tls { .. })
    }
}

/// A configuration value that cannot work (a window of zero calls hangs every call, a resend
/// interval of zero spins, a suspicion timeout shorter than a tick suspects everyone).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: `{field}` = {value}: {reason}")]
pub struct ConfigError {
    /// The setting, as named in its config struct (and, dashed, on the command line).
    pub field: &'static str,
    /// Its value.
    pub value: String,
    /// What it must be instead.
    pub reason: String,
}

impl ConfigError {
    /// `field` holds `value`, which it must not: `reason` says what it must be.
    pub fn new(field: &'static str, value: impl std::fmt::Debug, reason: impl Into<String>) -> Self {
        Self { field, value: format!("{value:?}"), reason: reason.into() }
    }

    /// Fails with `reason` about `field` unless `ok`.
    pub fn check(
        ok: bool,
        field: &'static str,
        value: impl std::fmt::Debug,
        reason: &str,
    ) -> Result<(), Self> {
        if ok {
            Ok(())
        } else {
            Err(Self::new(field, value, reason))
        }
    }
}
