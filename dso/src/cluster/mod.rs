//! Cluster building blocks: the configuration (epoch, members, replication factor), where each
//! key lives (consistent hashing), the linearizable store that holds the configuration, and
//! discovery (joining and leaving through that store).
//! Replication and membership changes build on these (issue 4 in the tracker).

pub mod config;
pub mod discovery;
pub mod placement;
#[cfg(feature = "s3")]
pub mod s3;
pub mod store;

pub use config::{Configuration, Member, MemberId};
pub use placement::Placement;
pub use store::FileConfigStore;
pub use store::{ConfigStore, MemoryConfigStore, StoreError, Versioned};
