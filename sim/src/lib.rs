//! Crucial-rs' deterministic simulator and linearizability checker.
//!
//! - [`checker`]: Wing-Gong-Lowe search with memoisation, per partition, in parallel, bounded in time;
//! - [`model`]: sequential specifications (DSO objects via their own `apply`; registers and kv for
//!   external histories);
//! - [`format`](mod@format), [`external`]: Jepsen/Knossos EDN, Jepsen log lines, JSON;
//! - [`history`]: histories in the Jepsen shape.

pub mod checker;
pub mod external;
pub mod format;
pub mod history;
pub mod model;
pub mod simulation;
