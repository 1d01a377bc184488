//! A cluster configuration: who the members are in which epoch, and how many copies of each key
//! there are. Every change of membership is a new configuration with a higher epoch, installed by
//! compare-and-swap in a [`super::ConfigStore`].

use serde::{Deserialize, Serialize};

/// A member's identity, stable across restarts of the same server.
pub type MemberId = u64;

/// One server of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Member {
    /// Its identity.
    pub id: MemberId,
    /// Where clients and peers reach it (`host:port`).
    pub addr: String,
}

/// The cluster's membership in one epoch.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Configuration {
    /// Increases with every change; replicas refuse messages from other epochs.
    pub epoch: u64,
    /// The members, in any order (placement sorts them by id).
    pub members: Vec<Member>,
    /// Copies of each key (`1..=members.len()`).
    pub rf: usize,
}

impl Configuration {
    /// Checks the invariants: at least one member, distinct ids, `1 <= rf <= members`.
    pub fn validate(&self) -> Result<(), String> {
        if self.members.is_empty() {
            return Err("a configuration needs at least one member".into());
        }
        let mut ids: Vec<MemberId> = self.members.iter().map(|member| member.id).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != self.members.len() {
            return Err("member ids must be distinct".into());
        }
        if self.rf == 0 || self.rf > self.members.len() {
            return Err(format!("rf {} must be between 1 and the {} members", self.rf, self.members.len()));
        }
        Ok(())
    }

    /// The configuration that follows this one with `members` (same rf, capped at the members).
    pub fn next(&self, members: Vec<Member>) -> Configuration {
        let rf = self.rf.min(members.len()).max(1);
        Configuration { epoch: self.epoch + 1, members, rf }
    }
}
