//! Crucial-rs' deterministic simulator and linearizability checker.
//!
//! - [`checker`]: Wing-Gong-Lowe search with memoisation, per partition, in parallel, bounded in time;
//! - [`model`]: sequential specifications (DSO objects via their own `apply`; registers and kv for
//!   external histories);
//! - [`format`](mod@format), [`external`]: Jepsen/Knossos EDN, Jepsen log lines, JSON;
//! - [`history`]: histories in the Jepsen shape;
//! - [`simulation`]: the seeded simulator of the real nodes and clients under faults;
//! - [`processes`]: the same workload and checks against real `dso-server` processes;
//! - [`netns`], [`partitions`], [`transfers`]: those processes in network namespaces, under
//!   real partitions, with plain clients and cloud threads.

pub mod checker;
pub mod external;
pub mod format;
pub mod history;
pub mod model;
pub mod netns;
pub mod partitions;
pub mod processes;
pub mod simulation;
pub mod transfers;
