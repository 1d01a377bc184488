//! Cluster building blocks: the configuration, placement and routing (from the core), the
//! linearizable stores that hold configurations, and discovery (which store). Replication and
//! membership live in [`crate::core::node`].

pub mod discovery;
#[cfg(feature = "s3")]
pub mod s3;
pub mod store;

pub use crucial_dso_core::cluster::{config, placement, routing};
pub use crucial_dso_core::cluster::{Configuration, Member, MemberId, Placement, Routing};
pub use store::FileConfigStore;
pub use store::{ConfigStore, MemoryConfigStore, StoreError, Versioned};
