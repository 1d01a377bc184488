//! Wire messages between clients and a node. Each travels in one length-prefixed frame
//! ([`crate::codec`]); the first client frame is a [`Request::Hello`] naming the protocol version.

use serde::{Deserialize, Serialize};

use crate::object::CallId;
use crate::CallError;

/// The protocol version this build speaks; a node refuses clients that speak another.
pub const PROTOCOL_VERSION: u32 = 1;

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
    /// The node closes this connection, for this reason.
    Refused {
        /// Why.
        reason: String,
    },
}
