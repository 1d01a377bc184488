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
    /// Deletes the object: the key becomes absent, as if never created, and a later call
    /// creates the default again; answers an encoded `bool`: whether the key held an object.
    /// Calls parked on the object are answered [`crate::CallError::ObjectDeleted`]. The key's
    /// session records stay, so a retry of a call made before the delete is answered from
    /// them instead of applied to whatever the key holds next (except a read whose answer was
    /// too large to record, which reads the key again, as any retried large read does).
    Delete,
}

impl Call {
    /// What the call asks for (key, type, action and history, not its id), as a stable 64-bit
    /// hash: the session table keeps it beside each record, so that a replay sending a different
    /// call under a recorded sequence number is refused instead of applied.
    pub fn fingerprint(&self) -> u64 {
        let mut hash = WordHash::default();
        hash.word(self.history);
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
            Action::Delete => hash.field(b"delete"),
        }
        hash.0
    }
}

/// A 64-bit hash that takes eight bytes per step, each step a bijection of the state xor the
/// word (a multiply by an odd constant, then an xorshift): stable across builds and platforms
/// (replicas built apart must agree), and a call's fingerprint costs a few dozen steps.
struct WordHash(u64);

impl Default for WordHash {
    fn default() -> Self {
        WordHash(0xcbf2_9ce4_8422_2325)
    }
}

impl WordHash {
    fn word(&mut self, word: u64) {
        self.0 = (self.0 ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 ^= self.0 >> 29;
    }

    /// Hashes `bytes` preceded by their length, so that field boundaries count.
    fn field(&mut self, bytes: &[u8]) {
        self.word(bytes.len() as u64);
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.word(u64::from_le_bytes(word.try_into().expect("chunks of eight bytes")));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.word(u64::from_le_bytes(last));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(key: &str, method: &str, args: &[u8]) -> Call {
        Call {
            id: CallId { session: 1, seq: 1 },
            acked_below: 0,
            key: key.into(),
            type_name: "AtomicLong".into(),
            action: Action::Invoke { method: method.into(), args: args.to_vec() },
            history: 0,
        }
    }

    #[test]
    fn the_fingerprint_ignores_the_id_and_sees_every_field_and_boundary() {
        let base = call("key", "add_and_get", &[1]);
        let mut retry = base.clone();
        retry.id.seq = 9;
        retry.acked_below = 5;
        assert_eq!(base.fingerprint(), retry.fingerprint(), "a retry is the same call");
        let mut replayed = base.clone();
        replayed.history = 7;
        let others = [
            call("kez", "add_and_get", &[1]),
            call("key", "add_and_get", &[2]),
            call("key", "get_and_add", &[1]),
            call("ke", "yadd_and_get", &[1]),
            call("key", "add_and_get", &[1, 0]),
            call("key-longer-than-eight-bytes", "add_and_get", &[1]),
            replayed,
        ];
        for other in others {
            assert_ne!(base.fingerprint(), other.fingerprint(), "{other:?}");
        }
    }
}
