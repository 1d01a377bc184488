//! Crucial-rs distributed shared objects: the user's facade and the async host.
//!
//! The facade: [`Dso`] and [`Shared`] handles, [`shared`] for your own types, the built-in
//! [`objects`], [`ServerBuilder`]. The protocol itself is the sans-IO core, re-exported as
//! [`core`] (crate `crucial-dso-core`). This crate adds what waits on the world:
//!
//! - [`server`]: the async host of a [`core::node::Node`] on tokio (or madsim under
//!   `cfg(madsim)`), its connections, peers and outboxes;
//! - [`client`]: the async client ([`Dso`], [`Shared`]) driving a
//!   [`core::client_session::ClientSession`];
//! - [`cluster`]: configuration stores (memory, file, S3) and discovery.

extern crate self as crucial_dso;

pub mod cli;
pub mod client;
pub mod cluster;
mod connection;
mod host;
mod ids;
mod links;
mod metrics;
mod metrics_http;
mod net;
mod outbox;
mod peers;
pub mod server;
mod store_link;
pub mod tls;

/// The sans-IO core: the protocol, the node, sessions, the wire format.
pub use crucial_dso_core as core;
#[doc(hidden)]
pub use crucial_dso_core::__private;
/// The built-in object types (their handles are `Shared<Type>`).
pub use crucial_dso_core::objects;

pub use client::{Dso, Shared};
pub use crucial_dso_core::{
    shared, ApplyContext, CallError, CallId, ConfigError, DsoError, Outcome, SharedObject, Value, F64,
};
pub use server::{Server, ServerBuilder};
