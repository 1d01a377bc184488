//! The deterministic simulator and linearizability checker of Crucial-rs (its own issue).
//! For now it re-exports the sans-IO core it will drive.

pub use crucial_dso::{client_session, node};
