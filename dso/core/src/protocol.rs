//! Wire messages between clients and a node. Each travels in one length-prefixed frame
//! ([`crate::codec`]); the first client frame is a [`Request::Hello`] naming the protocol version.

use serde::{Deserialize, Serialize};

use crate::cluster::{Configuration, MemberId};
use crate::object::CallId;
use crate::shard::ShardImage;
use crate::CallError;

/// The protocol version this build speaks; a node refuses clients that speak another.
pub const PROTOCOL_VERSION: u32 = 4;

/// Identifies a connected client at a node (a connection in the server, a client in a simulator).
pub type ClientAddr = u64;

/// A client's frame.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Request {
    /// The handshake: the first frame on every connection.
    Hello {
        /// The client's [`PROTOCOL_VERSION`].
        protocol_version: u32,
    },
    /// One call on one object.
    Call(Call),
    /// The handshake of another member (instead of `Hello`): the connection carries
    /// [`Request::Peer`] frames from member `from` from now on.
    PeerHello {
        /// The member's [`PROTOCOL_VERSION`].
        protocol_version: u32,
        /// Who is calling.
        from: MemberId,
    },
    /// A message from another member.
    Peer(PeerMessage),
    /// Asks the member for its view of the cluster (answered with [`Response::Status`]).
    Status,
}

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

/// A node's frame.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Response {
    /// The handshake answer.
    Welcome {
        /// The node's [`PROTOCOL_VERSION`].
        protocol_version: u32,
        /// The largest frame the node accepts.
        frame_bytes_max: u32,
    },
    /// The answer to a call.
    Reply {
        /// The call answered.
        id: CallId,
        /// Its encoded result, or why it failed.
        result: Result<Vec<u8>, CallError>,
    },
    /// This member does not serve the call's key: here is the configuration that says who does.
    Redirect {
        /// The call redirected.
        id: CallId,
        /// The configuration the member serves in.
        config: Configuration,
    },
    /// A member's view of the cluster.
    Status {
        /// Its id.
        member: MemberId,
        /// Whether it serves clients.
        serving: bool,
        /// The latest configuration it has seen.
        config: Configuration,
    },
    /// The node closes this connection, for this reason.
    Refused {
        /// Why.
        reason: String,
    },
}

/// One replicated step of a key's log, applied in the primary's order by every replica.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Entry {
    /// An admitted call.
    Call(Call),
    /// A parked call's timeout, decided by the primary's clock.
    Expire(CallId),
    /// The time left to each of the key's timed parked calls, by the primary's clock: a new
    /// primary re-parks them with what is left, not their whole timeout.
    Remaining(Vec<(CallId, u64)>),
    /// An admitted call the primary refused without applying it (it would have grown the
    /// object past the size limit): replicas record the refusal, so a retry gets it too.
    Refuse(Call, CallError),
}

/// Messages between members. Each names the epoch it belongs to; replicas ignore other epochs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PeerMessage {
    /// "I am alive", for failure detection.
    Heartbeat {
        /// The sender's epoch.
        epoch: u64,
    },
    /// A member of an inactive configuration asks for the shards it will be primary of, one
    /// part at a time. The receiver stops serving older epochs before it answers (fencing).
    Pull {
        /// The new configuration.
        config: Configuration,
        /// The last key of the parts received so far (`None`: the first part is asked for).
        after: Option<String>,
    },
    /// One part of the answer to a pull: shards the receiver holds that the puller will be
    /// primary of, in key order, about [`crate::node::NodeConfig::transfer_bytes_max`] bytes
    /// (at least one key), so that no frame outgrows what a member decodes.
    Shards {
        /// The new configuration's epoch.
        epoch: u64,
        /// The pull's `after`: the part holds the keys that follow it.
        after: Option<String>,
        /// Key, state, and the `(epoch, index)` of the last entry applied to it.
        shards: Vec<(String, ShardImage, (u64, u64))>,
        /// More keys follow this part (pull again after its last key).
        more: bool,
    },
    /// A new primary hands a backup its copies before the configuration activates, one part
    /// at a time (cut as a pull's answer is).
    Install {
        /// The new configuration's epoch.
        epoch: u64,
        /// The part holds the keys that follow this one (`None`: the first part).
        after: Option<String>,
        /// Key, state, and version.
        shards: Vec<(String, ShardImage, (u64, u64))>,
        /// More parts follow this one.
        more: bool,
    },
    /// The backup holds one part of what the primary installed; the primary sends the next.
    Installed {
        /// The epoch of the install.
        epoch: u64,
        /// The confirmed part's `after`.
        after: Option<String>,
    },
    /// Log entries of one key, from index `first`, primary to backup.
    Replicate {
        /// The primary's epoch.
        epoch: u64,
        /// The key.
        key: String,
        /// The index of `entries[0]` (indices start at 1 in every epoch).
        first: u64,
        /// The entries.
        entries: Vec<Entry>,
    },
    /// Backup to primary: every entry up to `applied` is applied here.
    Ack {
        /// The epoch.
        epoch: u64,
        /// The key.
        key: String,
        /// The highest index applied.
        applied: u64,
    },
}
