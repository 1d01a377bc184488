//! Cluster building blocks: the configuration (epoch, members, replication factor), where each
//! key lives (consistent hashing), how clients route by it, the linearizable store that holds
//! it, and discovery (which store). Replication and membership live in [`crate::node`].

pub mod config;
pub mod discovery;
pub mod placement;
pub mod routing;
#[cfg(feature = "s3")]
pub mod s3;
pub mod store;

pub use config::{Configuration, Member, MemberId};
pub use placement::Placement;
pub use routing::Routing;
pub use store::FileConfigStore;
pub use store::{ConfigStore, MemoryConfigStore, StoreError, Versioned};
