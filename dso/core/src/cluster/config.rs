//! A cluster configuration: who the members are in which epoch, and how many copies of each key
//! there are. Every change of membership is a new configuration with a higher epoch, installed by
//! compare-and-swap in a configuration store (the host's `ConfigStore`).
//!
//! A new configuration starts *inactive*: it names the last active configuration as its
//! `source`, and nobody serves until every member has pulled its keys' state from the source
//! and marked itself `ready`; the member whose mark completes the set activates it (clears
//! `source`). Every replica of an active configuration holds every acknowledged operation,
//! which is what makes the source a safe place to take state from.

use serde::{Deserialize, Serialize};

/// A member's identity. A restarted server has lost its state, so it joins under a new one.
pub type MemberId = u64;

/// One server of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Member {
    /// Its identity.
    pub id: MemberId,
    /// Where clients and peers reach it (`host:port`).
    pub addr: String,
}

/// The last active configuration, which an inactive one takes its state from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Source {
    /// Its epoch.
    pub epoch: u64,
    /// Its members.
    pub members: Vec<Member>,
    /// Its replication factor (as configured).
    pub rf: usize,
}

/// The cluster's membership in one epoch.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Configuration {
    /// Increases with every change; replicas refuse messages from other epochs.
    pub epoch: u64,
    /// The members, in any order (placement sorts them by id).
    pub members: Vec<Member>,
    /// Copies of each key wanted; placement uses `min(rf, members)`.
    pub rf: usize,
    /// While the configuration is inactive: the configuration its state comes from.
    #[serde(default)]
    pub source: Option<Source>,
    /// While inactive: the members that hold their state and may serve.
    #[serde(default)]
    pub ready: Vec<MemberId>,
}

impl Configuration {
    /// The first configuration of a cluster: active, with nothing to take over.
    pub fn initial(members: Vec<Member>, rf: usize) -> Self {
        Configuration { epoch: 1, members, rf, source: None, ready: Vec::new() }
    }

    /// Checks the invariants: at least one member, distinct ids, `rf >= 1`, ready members listed.
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
        if self.rf == 0 {
            return Err("rf must be at least 1".into());
        }
        if self.ready.iter().any(|id| !self.is_member(*id)) {
            return Err("only members can be ready".into());
        }
        Ok(())
    }

    /// Whether members serve in this configuration (its state transfer is complete).
    pub fn is_active(&self) -> bool {
        self.source.is_none()
    }

    /// Copies each key has: `rf`, capped at the number of members.
    pub fn effective_rf(&self) -> usize {
        self.rf.min(self.members.len()).max(1)
    }

    /// Whether `id` is a member.
    pub fn is_member(&self, id: MemberId) -> bool {
        self.members.iter().any(|member| member.id == id)
    }

    /// The address of member `id`.
    pub fn addr_of(&self, id: MemberId) -> Option<&str> {
        self.members.iter().find(|member| member.id == id).map(|member| member.addr.as_str())
    }

    /// The (inactive) configuration that follows this one with `members`: it takes its state
    /// from this one if this one is active, else from the same source as this one.
    pub fn next(&self, mut members: Vec<Member>) -> Configuration {
        members.sort();
        let source = match &self.source {
            Some(source) => source.clone(),
            None => Source { epoch: self.epoch, members: self.members.clone(), rf: self.rf },
        };
        Configuration { epoch: self.epoch + 1, members, rf: self.rf, source: Some(source), ready: Vec::new() }
    }

    /// This configuration with `id` marked ready; activated if that makes every member ready.
    pub fn with_ready(&self, id: MemberId) -> Configuration {
        let mut next = self.clone();
        if !next.ready.contains(&id) {
            next.ready.push(id);
            next.ready.sort_unstable();
        }
        if next.members.iter().all(|member| next.ready.contains(&member.id)) {
            next.source = None;
            next.ready.clear();
        }
        next
    }

    /// Whether this record is further along than `other`: a later epoch, or the same epoch
    /// activated or with more members ready.
    pub fn supersedes(&self, other: &Configuration) -> bool {
        let progress = |config: &Configuration| (config.epoch, config.is_active(), config.ready.len());
        progress(self) > progress(other)
    }
}

impl Source {
    /// Copies each key had in the source: `rf`, capped at its members.
    pub fn effective_rf(&self) -> usize {
        self.rf.min(self.members.len()).max(1)
    }

    /// Whether `id` was a member of the source.
    pub fn is_member(&self, id: MemberId) -> bool {
        self.members.iter().any(|member| member.id == id)
    }
}
