//! The configuration (epoch, members, replication factor), where each key lives (consistent
//! hashing) and how clients route by it. Replication and membership live in [`crate::node`];
//! the stores that hold configurations live in the host.

pub mod config;
pub mod placement;
pub mod routing;

pub use config::{Configuration, Member, MemberId};
pub use placement::Placement;
pub use routing::Routing;
