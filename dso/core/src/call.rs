//! A client's call: which object, what to do, under which session number; and its stable
//! fingerprint, by which a replay sending another call under a recorded number is refused.

use serde::{Deserialize, Serialize};

use crate::object::CallId;

/// One call: an operation on the object under `key`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Call {
    /// Session and sequence; a retry carries the same id.
    pub id: CallId,
    /// Every call of this session below this sequence number has been answered (or abandoned):
    /// the node may forget their recorded results.
    pub acked_below: u64,
    /// The object's key.
    pub key: String,
    /// The object's registered type name.
    pub type_name: String,
    /// What to do.
    pub action: Action,
    /// A digest of the session's earlier calls, in order (0 for sessions that do not replay,
    /// never 0 for those that do): part of the fingerprint, so that a replay that went another
    /// way before this call is refused here even if this call itself is the same.
    pub history: u64,
}

/// What a call does to its object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Action {
    /// Create the object with this encoded state unless the key holds one already; answers
    /// an encoded `bool`: whether it was created.
    Create {
        /// The encoded initial state.
        state: Vec<u8>,
    },
    /// Invoke a method with encoded arguments; answers the type's encoded result enum.
    Invoke {
        /// The method name.
        method: String,
        /// The encoded argument tuple.
        args: Vec<u8>,
    },
    /// Changes no object: applied only for its `acked_below`, which releases the session's
    /// records on this key. A cloud thread sends one to each key it used once its result is
    /// stored (until then its records are kept for replays); it needs no object at the key.
    Release,
}

impl Call {
    /// What the call asks for (key, type, action and history, not its id), as a stable 64-bit hash
    /// (FNV-1a): the session table keeps it beside each record, so that a replay sending a
    /// different call under a recorded sequence number is refused instead of applied.
    pub fn fingerprint(&self) -> u64 {
        let mut hash = Fnv1a::default();
        hash.field(&self.history.to_le_bytes());
        hash.field(self.key.as_bytes());
        hash.field(self.type_name.as_bytes());
        match &self.action {
            Action::Create { state } => {
                hash.field(b"create");
                hash.field(state);
            }
            Action::Invoke { method, args } => {
                hash.field(method.as_bytes());
                hash.field(args);
            }
            Action::Release => hash.field(b"release"),
        }
        hash.0
    }
}

/// FNV-1a, 64 bits: stable across builds and platforms (replicas built apart must agree).
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    /// Hashes `bytes` preceded by their length, so that field boundaries count.
    fn field(&mut self, bytes: &[u8]) {
        for byte in (bytes.len() as u64).to_le_bytes().iter().chain(bytes) {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}
