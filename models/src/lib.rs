//! Stateright models of the Crucial-rs protocol, built from the same sans-IO state machines as
//! the server (no re-implementation): [`single_node`] today; replication and reconfiguration
//! models come with replication (issue 4).

pub mod single_node;
