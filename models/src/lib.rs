//! Stateright models of the Crucial-rs protocol, built from the same sans-IO state machines as
//! the server (no re-implementation): [`single_node`] (one node, exactly-once calls) and
//! [`replication`] (replicated members with crashes, joins and departures).

pub mod replication;
pub mod single_node;
