//! Wire messages between clients and a node. Each travels in one length-prefixed frame
//! ([`crate::codec`]); the first client frame is a [`Request::Hello`] naming the protocol version
//! and presenting the cluster's token, if it has one ([`crate::auth`]).

use serde::{Deserialize, Serialize};

use crate::auth::Token;
pub use crate::call::{Action, Call};
use crate::cluster::{Configuration, Member, MemberId};
use crate::object::CallId;
use crate::shard::ShardCopy;
use crate::CallError;

/// The protocol version this build speaks; a node refuses clients that speak another.
pub const PROTOCOL_VERSION: u32 = 8;

/// Identifies a connected client at a node (a connection in the server, a client in a simulator).
pub type ClientAddr = u64;

/// A client's frame.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Request {
    /// The handshake: the first frame on every connection.
    Hello {
        /// The client's [`PROTOCOL_VERSION`].
        protocol_version: u32,
        /// The cluster's token, for a server that requires one.
        token: Option<Token>,
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
        /// The cluster's token, for a member that requires one.
        token: Option<Token>,
    },
    /// A message from another member.
    Peer(PeerMessage),
    /// Asks the member for its view of the cluster (answered with [`Response::Status`]).
    Status,
}

/// [`Request::Call`] by reference: encodes exactly as `Request::Call(call.clone())` does, for
/// a client that sends the call its session keeps without copying it.
#[derive(Clone, Copy, Debug)]
pub struct CallRequest<'a>(pub &'a Call);

impl Serialize for CallRequest<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // `Call` is `Request`'s second variant.
        serializer.serialize_newtype_variant("Request", 1, "Call", self.0)
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
    /// The node refused the handshake's token (none, or another than its own) and closes
    /// this connection.
    Unauthenticated {
        /// Why.
        reason: String,
    },
    /// A client spoke plain TCP to a node that serves TLS only; the node closes the
    /// connection. (Sent in plain text before any handshake, so it is the last variant: a
    /// client of any version decodes the ones before it the same way.)
    TlsRequired {
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
        shards: Vec<ShardCopy>,
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
        shards: Vec<ShardCopy>,
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
    /// A member that is not listed asks a member of its configuration whether they reach
    /// each other, before it proposes to join (see the node's `probe` module).
    Probe {
        /// The sender's epoch.
        epoch: u64,
        /// The sender and where to answer it (no configuration lists it yet).
        from: Member,
    },
    /// The answer to a [`PeerMessage::Probe`].
    ProbeReply {
        /// The answering member's epoch.
        epoch: u64,
        /// Whether it hears more than half of its configuration's members: a joiner may need
        /// to outnumber a dead member only where the members cannot remove it themselves.
        quorate: bool,
    },
}
