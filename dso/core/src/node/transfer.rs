//! State transfer into an inactive configuration: pulls from the source, installs on backups.
//!
//! A transfer moves its keys in parts of about [`super::NodeConfig::transfer_bytes_max`]
//! encoded bytes, in key order, one part in flight per pair of members: the receiver's answer
//! to a part asks for the next one (a pull names the last key it holds; an install's
//! confirmation names the part it confirms). What is unanswered goes again only when a resend
//! interval passed without progress, so a slow link carries each part about once and no
//! member queues more than a part per peer. Nothing changes the keys a transfer reads while
//! it runs: a source stops serving before it answers a pull, and a primary installs only the
//! keys it finished pulling.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use super::{KeyState, Node};
use crate::cluster::{Configuration, MemberId, Placement};
use crate::protocol::PeerMessage;
use crate::shard::{LogPosition, Shard, ShardCopy, ShardImage};

/// A member's progress into the inactive configuration it holds (it is dropped when the
/// epoch changes, so it always belongs to `Node::cluster`'s epoch).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Transfer {
    /// Source members whose keys this member holds (itself included if it is one).
    responded: BTreeSet<MemberId>,
    /// Source members still answering: where their answer has got to.
    pulling: BTreeMap<MemberId, Progress>,
    /// Enough of the source answered.
    pulled: bool,
    /// Backups still taking this member's install: the part each has not confirmed yet.
    installing: BTreeMap<MemberId, InstallPart>,
    /// The keys this member took from its primaries' installs: at activation it keeps, of
    /// the keys it backs up, exactly these.
    pub(super) installed: BTreeSet<String>,
    /// Transferred keys this member cannot hold (their type is not registered here): while
    /// there is one, it does not mark itself ready.
    unheld: BTreeSet<String>,
}

/// How far a member's state transfer has got (for operators: see [`super::Node::transfer_progress`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransferProgress {
    /// Source members whose keys this member holds.
    pub sources_done: usize,
    /// Source members still sending their parts.
    pub sources_pending: usize,
    /// Backups still taking this member's install.
    pub backups_installing: usize,
}

impl Transfer {
    /// Where this transfer stands.
    pub(super) fn progress(&self) -> TransferProgress {
        TransferProgress {
            sources_done: self.responded.len(),
            sources_pending: self.pulling.len(),
            backups_installing: self.installing.len(),
        }
    }
}

/// How far one exchange of parts has got.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Progress {
    /// The last key of the parts done (`None`: none yet); the next part starts after it.
    after: Option<String>,
    /// A part was done since the last resend.
    moved: bool,
}

impl Progress {
    /// A part following `after` was just sent: it is not resent before a full interval.
    fn just_sent(after: Option<String>) -> Self {
        Self { after, moved: true }
    }
}

/// The install part a backup has not confirmed yet.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct InstallPart {
    progress: Progress,
    /// The part's last key, if other keys follow it (`None`: it is the install's last part).
    last_of_more: Option<String>,
}

impl Node {
    pub(super) fn start_transfer(&mut self) {
        let source = self.cluster.source.clone().expect("an inactive configuration has a source");
        let mut responded = BTreeSet::new();
        if source.is_member(self.me.id) {
            responded.insert(self.me.id);
        }
        let pulling: BTreeMap<MemberId, Progress> = (source.members.iter())
            .filter(|member| !responded.contains(&member.id))
            .map(|member| (member.id, Progress::just_sent(None)))
            .collect();
        for member in pulling.keys() {
            self.send(*member, PeerMessage::Pull { config: self.cluster.clone(), after: None });
        }
        self.transfer = Some(Transfer {
            responded,
            pulling,
            pulled: false,
            installing: BTreeMap::new(),
            installed: BTreeSet::new(),
            unheld: BTreeSet::new(),
        });
        self.check_pulled();
    }

    /// Sends again the pulls and install parts that made no progress since the last call.
    pub(super) fn resend_transfer(&mut self) {
        let Some(transfer) = &mut self.transfer else { return };
        let mut pulls = Vec::new();
        if !transfer.pulled {
            for (source, progress) in &mut transfer.pulling {
                if !std::mem::take(&mut progress.moved) {
                    pulls.push((*source, progress.after.clone()));
                }
            }
        }
        let mut installs = Vec::new();
        for (backup, part) in &mut transfer.installing {
            if !std::mem::take(&mut part.progress.moved) {
                installs.push((*backup, part.progress.after.clone()));
            }
        }
        for (source, after) in pulls {
            self.send(source, PeerMessage::Pull { config: self.cluster.clone(), after });
        }
        for (backup, after) in installs {
            self.send_install_part(backup, after);
        }
    }

    /// Sends `backup` the part of this member's install that follows key `after`; returns
    /// that part's last key if more keys follow it.
    fn send_install_part(&mut self, backup: MemberId, after: Option<String>) -> Option<String> {
        let me = self.me.id;
        let (shards, more) =
            self.next_part(after.as_deref(), |replicas| replicas[0] == me && replicas[1..].contains(&backup));
        let last_of_more = more.then(|| shards.last().map(|copy| copy.key.clone())).flatten();
        let epoch = self.cluster.epoch;
        self.send(backup, PeerMessage::Install { epoch, after, shards, more });
        last_of_more
    }

    /// The held keys after `after` whose replicas in the current configuration satisfy
    /// `wanted`, as many as fit in about `transfer_bytes_max` encoded bytes (at least one),
    /// and whether more such keys follow.
    fn next_part(&self, after: Option<&str>, wanted: impl Fn(&[MemberId]) -> bool) -> (Vec<ShardCopy>, bool) {
        self.part_of(after, |key| wanted(&self.placement.replicas(key)))
    }

    /// As [`Node::next_part`], for the keys `wanted` picks by name.
    fn part_of(&self, after: Option<&str>, wanted: impl Fn(&str) -> bool) -> (Vec<ShardCopy>, bool) {
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut shards = Vec::new();
        let mut bytes = 0;
        for (key, state) in self.keys.range::<str, _>((start, Bound::Unbounded)) {
            if !wanted(key) {
                continue;
            }
            let room = self.config.transfer_bytes_max.saturating_sub(bytes);
            let (size, copy) =
                state.shard.copy_if(key, state.position, |size| shards.is_empty() || size <= room);
            let Some(copy) = copy else { return (shards, true) };
            bytes += size;
            shards.push(copy);
        }
        (shards, false)
    }

    /// A member of configuration `config` asks for the part of the keys it will be primary of
    /// that follows key `after`.
    pub(super) fn on_pull(
        &mut self,
        now_ms: u64,
        from: MemberId,
        config: Configuration,
        after: Option<String>,
    ) {
        if config.epoch < self.fence || config.validate().is_err() {
            return;
        }
        if !self.fences_on_pull() {
            // The canary: hand the state over but go on serving the old epoch.
        } else if config.supersedes(&self.cluster) {
            self.take_config(now_ms, config.clone());
        }
        if self.fences_on_pull() {
            // Fenced: nothing of an older epoch is served or acknowledged from here on.
            self.fence = self.fence.max(config.epoch);
            if self.serving && self.cluster.epoch < self.fence {
                self.stop_serving();
            }
        }
        // A member that holds nothing it can vouch for (retired, or a process restarted under
        // an earlier one's id) must not answer: an empty answer would count as a source's.
        if self.phase == super::Phase::Gone || !self.entered {
            return;
        }
        // Only the keys whose placement changed for the puller: a key it replicated in the
        // source it holds already, with every acknowledged operation.
        let placement = Placement::new(&config);
        let before = config.source.as_ref().map(Placement::of_source);
        let moved = |key: &str| before.as_ref().is_none_or(|before| !before.replicas(key).contains(&from));
        let (shards, more) =
            self.part_of(after.as_deref(), |key| placement.primary(key) == from && moved(key));
        self.send(from, PeerMessage::Shards { epoch: config.epoch, after, shards, more });
    }

    #[cfg(crucial_canary)]
    fn fences_on_pull(&self) -> bool {
        !self.config.canary.accept_old_epochs
    }

    #[cfg(not(crucial_canary))]
    fn fences_on_pull(&self) -> bool {
        true
    }

    /// A part of a source member's answer to this member's pulls: the keys after `after`.
    pub(super) fn on_shards(
        &mut self,
        from: MemberId,
        epoch: u64,
        after: Option<String>,
        shards: Vec<ShardCopy>,
        more: bool,
    ) {
        let current = epoch == self.cluster.epoch;
        let Some(transfer) = self.transfer.as_mut().filter(|transfer| current && !transfer.pulled) else {
            return;
        };
        // Only the part asked for counts: anything else is a resent answer already taken. (A
        // part that says more follows holds at least one key; one that does not is malformed.)
        if more && shards.is_empty() {
            return;
        }
        let Some(progress) = transfer.pulling.get_mut(&from).filter(|progress| progress.after == after)
        else {
            return;
        };
        let next = if more { shards.last().map(|copy| copy.key.clone()) } else { None };
        match next {
            Some(last) => {
                progress.after = Some(last.clone());
                progress.moved = true;
                self.send(from, PeerMessage::Pull { config: self.cluster.clone(), after: Some(last) });
            }
            None => {
                transfer.pulling.remove(&from);
                transfer.responded.insert(from);
            }
        }
        for ShardCopy { key, image, position } in shards {
            if self.placement.primary(&key) != self.me.id {
                continue;
            }
            if self.keys.get(&key).is_some_and(|held| held.position >= position) {
                continue;
            }
            self.adopt(key, image, position);
        }
        self.check_pulled();
    }

    /// Holds a transferred key. A key whose type is not registered here cannot be held: the
    /// member then never marks itself ready (it would serve without that key), says why, and
    /// asks to leave, so that the others go on without it.
    fn adopt(&mut self, key: String, image: ShardImage, position: LogPosition) {
        match Shard::from_image(image, &self.registry) {
            Ok(shard) => {
                self.keys.insert(key, KeyState { shard, position, primary: None });
            }
            Err(error) => {
                tracing::error!(
                    %key,
                    %error,
                    "cannot hold a transferred key: its type is not registered here; leaving the cluster"
                );
                if let Some(transfer) = &mut self.transfer {
                    transfer.unheld.insert(key);
                }
                self.leave();
            }
        }
    }

    /// Enough of the source answered once every key's source replica set has a responder:
    /// the install on the backups starts.
    fn check_pulled(&mut self) {
        let Some(source) = &self.cluster.source else { return };
        let Some(transfer) = &mut self.transfer else { return };
        let needed = source.members.len() + 1 - source.effective_rf();
        let answered = source.members.iter().filter(|m| transfer.responded.contains(&m.id)).count();
        if transfer.pulled || answered < needed {
            return;
        }
        transfer.pulled = true;
        transfer.pulling.clear();
        let backups: Vec<MemberId> =
            self.cluster.members.iter().map(|member| member.id).filter(|id| *id != self.me.id).collect();
        let installing = (backups.into_iter())
            .map(|backup| {
                let last_of_more = self.send_install_part(backup, None);
                (backup, InstallPart { progress: Progress::just_sent(None), last_of_more })
            })
            .collect();
        if let Some(transfer) = &mut self.transfer {
            transfer.installing = installing;
        }
        self.propose_ready();
    }

    /// A primary of the configuration being installed sends this backup the part of its keys
    /// that follows key `after`.
    pub(super) fn on_install(
        &mut self,
        from: MemberId,
        epoch: u64,
        after: Option<String>,
        shards: Vec<ShardCopy>,
    ) {
        if epoch != self.cluster.epoch || epoch < self.fence {
            self.hear_of_epoch(epoch);
            return;
        }
        if !self.cluster.is_active() {
            let Some(transfer) = &mut self.transfer else { return };
            let from_primary: Vec<ShardCopy> =
                shards.into_iter().filter(|copy| self.placement.primary(&copy.key) == from).collect();
            transfer.installed.extend(from_primary.iter().map(|copy| copy.key.clone()));
            for ShardCopy { key, image, position } in from_primary {
                self.adopt(key, image, position);
            }
        }
        self.send(from, PeerMessage::Installed { epoch, after });
    }

    /// Backup `from` holds the part of this member's install that follows key `after`: the
    /// next part goes, or the install is done.
    pub(super) fn on_installed(&mut self, from: MemberId, epoch: u64, after: Option<String>) {
        let current = epoch == self.cluster.epoch;
        let Some(transfer) = &mut self.transfer else { return };
        let Some(part) =
            transfer.installing.get_mut(&from).filter(|part| current && part.progress.after == after)
        else {
            return;
        };
        match part.last_of_more.take() {
            Some(last) => {
                part.progress = Progress::just_sent(Some(last.clone()));
                let last_of_more = self.send_install_part(from, Some(last));
                if let Some(part) = self.transfer.as_mut().and_then(|t| t.installing.get_mut(&from)) {
                    part.last_of_more = last_of_more;
                }
            }
            None => {
                transfer.installing.remove(&from);
                self.propose_ready();
            }
        }
    }

    /// Marks this member ready in the store once it holds its keys and its backups hold theirs.
    pub(super) fn propose_ready(&mut self) {
        let Some(transfer) = &self.transfer else { return };
        let done = transfer.pulled && transfer.installing.is_empty() && transfer.unheld.is_empty();
        if !done || self.cluster.is_active() || self.cluster.ready.contains(&self.me.id) {
            return;
        }
        self.ready_for = Some(self.cluster.epoch);
        let next = self.cluster.with_ready(self.me.id);
        self.outputs.push_back(super::Output::Propose { current: Some(self.cluster.clone()), next });
    }

    /// Whether this member finished pulling (for tests).
    #[cfg(test)]
    pub(super) fn has_pulled(&self) -> bool {
        self.transfer.as_ref().is_some_and(|transfer| transfer.pulled)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::cluster::Member;
    use crate::node::{ClusterTiming, NodeConfig, Output};
    use crate::registry::Registry;

    fn member(id: u64) -> Member {
        Member { id, addr: format!("m{id}") }
    }

    fn sent(node: &mut Node) -> Vec<(MemberId, PeerMessage)> {
        std::iter::from_fn(|| node.poll_output())
            .filter_map(|output| match output {
                Output::Send { to, message } => Some((to, message)),
                _ => None,
            })
            .collect()
    }

    fn blob(bytes: usize) -> ShardImage {
        ShardImage {
            object: Some(("Blob".into(), crate::object::encode(&vec![7u8; bytes]))),
            sessions: Default::default(),
            parked: Default::default(),
        }
    }

    #[test]
    fn a_pull_is_answered_in_parts_of_whole_keys_one_at_a_time() {
        let registry = Arc::new(Registry::default());
        let config = NodeConfig { transfer_bytes_max: 300, ..NodeConfig::default() };
        let mut source = Node::member(config, registry, member(1), 1, ClusterTiming::default()).unwrap();
        let first = Configuration::initial(vec![member(1)], 1);
        source.bootstrap(0, first.clone());
        let second = first.next(vec![member(1), member(2)]);
        let placement = Placement::new(&second);
        // Keys of various sizes that member 2 will be primary of; the big one travels alone.
        let mut keys: Vec<String> =
            (0..100).map(|i| format!("k{i:03}")).filter(|k| placement.primary(k) == 2).collect();
        keys.truncate(4);
        let sizes = [100, 100, 1_000, 10];
        for (key, size) in keys.iter().zip(sizes) {
            let shard = Shard::from_image(blob(size), &source.registry).unwrap();
            source.keys.insert(
                key.clone(),
                KeyState { shard, position: LogPosition { epoch: 1, applied: 1 }, primary: None },
            );
        }
        while source.poll_output().is_some() {}
        let mut parts = Vec::new();
        let mut after = None;
        loop {
            source.handle_peer(1, 2, PeerMessage::Pull { config: second.clone(), after: after.clone() });
            let answers: Vec<_> = (sent(&mut source).into_iter())
                .filter(|(_, message)| matches!(message, PeerMessage::Shards { .. }))
                .collect();
            let [(2, PeerMessage::Shards { shards, more, after: answered, .. })] = answers.as_slice() else {
                panic!("one part answers one pull: {answers:?}");
            };
            assert_eq!(answered, &after);
            parts.push(shards.iter().map(|copy| copy.key.clone()).collect::<Vec<_>>());
            if !more {
                break;
            }
            after = shards.last().map(|copy| copy.key.clone());
        }
        let expected = vec![keys[..2].to_vec(), vec![keys[2].clone()], vec![keys[3].clone()]];
        assert_eq!(parts, expected, "whole keys, in order, about 300 bytes a part; a big key alone");
    }

    #[test]
    fn a_pull_moves_on_only_with_the_part_it_asked_for() {
        let registry = Arc::new(Registry::default());
        let mut node =
            Node::member(NodeConfig::default(), registry, member(2), 2, ClusterTiming::default()).unwrap();
        let first = Configuration::initial(vec![member(1)], 2);
        node.handle_config(0, first.clone());
        // Member 1 answers its probe: it proposes its join (so the next configuration is its own).
        node.handle_peer(0, 1, PeerMessage::ProbeReply { epoch: 1, quorate: true });
        while node.poll_output().is_some() {}
        node.handle_config(1, first.next(vec![member(1), member(2)]));
        let pulls = sent(&mut node);
        assert!(
            matches!(pulls.as_slice(), [(1, PeerMessage::Pull { after: None, .. })]),
            "one pull, from the start: {pulls:?}"
        );
        let copy = |key: &str| ShardCopy {
            key: key.to_string(),
            image: blob(1),
            position: LogPosition { epoch: 1, applied: 1 },
        };
        let shards = |epoch, after: Option<&str>, keys: &[&str], more| PeerMessage::Shards {
            epoch,
            after: after.map(str::to_string),
            shards: keys.iter().map(|key| copy(key)).collect(),
            more,
        };
        node.handle_peer(2, 1, shards(2, Some("b"), &[], false));
        assert!(!node.has_pulled(), "an answer to a pull never sent is ignored");
        node.handle_peer(2, 1, shards(2, None, &["a", "b"], true));
        let next = sent(&mut node);
        assert!(
            matches!(next.as_slice(), [(1, PeerMessage::Pull { after: Some(b), .. })] if b == "b"),
            "the next pull starts after the last key received: {next:?}"
        );
        node.handle_peer(3, 1, shards(2, None, &["a", "b"], true));
        assert!(sent(&mut node).is_empty(), "a resent answer to the first pull asks nothing again");
        node.handle_peer(4, 1, shards(1, Some("b"), &[], false));
        assert!(!node.has_pulled(), "an answer for another epoch is ignored");
        node.handle_peer(5, 1, shards(2, Some("b"), &["c"], false));
        assert!(node.has_pulled(), "the last part arrived");
    }

    #[test]
    fn an_install_sends_its_next_part_when_the_backup_confirms_one() {
        let registry = Arc::new(Registry::default());
        let config = NodeConfig { transfer_bytes_max: 50, ..NodeConfig::default() };
        let mut node = Node::member(config, registry, member(1), 2, ClusterTiming::default()).unwrap();
        let first = Configuration::initial(vec![member(1)], 2);
        node.bootstrap(0, first.clone());
        let second = first.next(vec![member(1), member(2)]);
        let placement = Placement::new(&second);
        // Three keys member 1 will be primary of, in key order; each fills a part.
        let keys: Vec<String> =
            (0..100).map(|i| format!("k{i:03}")).filter(|k| placement.primary(k) == 1).take(3).collect();
        for key in &keys {
            let shard = Shard::from_image(blob(40), &node.registry).unwrap();
            node.keys.insert(
                key.clone(),
                KeyState { shard, position: LogPosition { epoch: 1, applied: 1 }, primary: None },
            );
        }
        node.handle_config(1, second.clone());
        let (a, b, c) = (keys[0].clone(), keys[1].clone(), keys[2].clone());
        let installs = |sent: Vec<(MemberId, PeerMessage)>| -> Vec<(Option<String>, Vec<String>)> {
            (sent.into_iter())
                .filter_map(|(_, message)| match message {
                    PeerMessage::Install { after, shards, .. } => {
                        Some((after, shards.into_iter().map(|copy| copy.key).collect()))
                    }
                    _ => None,
                })
                .collect()
        };
        assert_eq!(installs(sent(&mut node)), vec![(None, vec![a.clone()])], "one part in flight");
        node.handle_peer(2, 2, PeerMessage::Installed { epoch: 2, after: Some(b.clone()) });
        assert!(installs(sent(&mut node)).is_empty(), "a confirmation of another part moves nothing");
        node.handle_peer(3, 2, PeerMessage::Installed { epoch: 2, after: None });
        assert_eq!(installs(sent(&mut node)), vec![(Some(a.clone()), vec![b.clone()])]);
        node.handle_peer(4, 2, PeerMessage::Installed { epoch: 2, after: Some(a) });
        assert_eq!(installs(sent(&mut node)), vec![(Some(b.clone()), vec![c])]);
        assert_ne!(node.ready_for, Some(2), "the last part is not confirmed yet");
        node.handle_peer(5, 2, PeerMessage::Installed { epoch: 2, after: Some(b) });
        assert_eq!(node.ready_for, Some(2), "every part confirmed: ready");
    }
}
