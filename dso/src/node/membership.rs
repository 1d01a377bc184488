//! Configurations, state transfer and failure detection.
//!
//! A member serves only in an *active* configuration that lists it. When a new (inactive)
//! configuration appears, every member stops serving older epochs and the new primaries pull
//! their keys from the source configuration: from enough of its members that every key's
//! source replica set answered (all but `rf - 1` of them), each of which stops serving the old
//! epoch before it answers. Since every replica of an active configuration holds every
//! acknowledged operation, the newest copy received holds them too. The primary then installs
//! its keys on their new backups and marks itself ready in the store; the mark that completes
//! the set activates the configuration.
//!
//! Members send each other heartbeats every tick; one that stays silent for
//! `suspect_after_ms` is proposed for removal, which starts the same transfer. Only a member
//! that hears from a majority of the configuration proposes removals.

use std::collections::{BTreeMap, BTreeSet};

use super::replication::PrimaryLog;
use super::{KeyState, Node, Output, Phase};
use crate::cluster::{Configuration, Member, MemberId, Placement};
use crate::protocol::{Part, PeerMessage};
use crate::shard::{Shard, ShardImage};

/// A member's progress into the inactive configuration it holds (it is dropped when the
/// epoch changes, so it always belongs to `Node::cluster`'s epoch).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Transfer {
    /// Source members whose keys this member holds (itself included if it is one).
    responded: BTreeSet<MemberId>,
    /// Parts received from source members still answering, and how many they send.
    parts_received: BTreeMap<MemberId, (u32, BTreeSet<u32>)>,
    /// Enough of the source answered.
    pulled: bool,
    /// The parts of this member's install each backup has not confirmed yet.
    installs_pending: BTreeMap<MemberId, BTreeSet<u32>>,
    /// The keys this member took from its primaries' installs: at activation it keeps, of
    /// the keys it backs up, exactly these.
    installed: BTreeSet<String>,
    /// Transferred keys this member cannot hold (their type is not registered here): while
    /// there is one, it does not mark itself ready.
    unheld: BTreeSet<String>,
}

/// A member in need of the store stops its heartbeats once the store has been silent this many
/// times `suspect_after_ms`.
const STORE_SILENCE_FACTOR: u64 = 3;

/// Pulls and install parts still unanswered are sent again every this many ticks.
const TRANSFER_RESEND_TICKS: u64 = 3;

/// A shard on the wire: key, image, version.
type ShardCopy = (String, ShardImage, (u64, u64));

impl Node {
    /// The store holds this configuration record.
    pub fn handle_config(&mut self, now_ms: u64, record: Configuration) {
        self.store_heard_ms = now_ms;
        self.take_config(now_ms, record);
    }

    /// A peer or the store told of `epoch`: if it is newer than this member's, read the store.
    pub(super) fn hear_of_epoch(&mut self, epoch: u64) {
        if epoch > self.cluster.epoch {
            self.newest_epoch_heard = self.newest_epoch_heard.max(epoch);
            self.outputs.push_back(Output::LoadConfig);
        }
    }

    /// Whether this member needs the store (it is in transition, or peers are in a newer
    /// epoch) and has not heard from it for long: it then stops sending heartbeats, so that
    /// the others remove it instead of waiting forever for a ready mark it cannot store.
    fn cut_from_store(&self, now_ms: u64, timing: &super::ClusterTiming) -> bool {
        let needs_store = !self.serving || self.newest_epoch_heard > self.cluster.epoch;
        let long_ms = timing.suspect_after_ms.saturating_mul(STORE_SILENCE_FACTOR);
        needs_store && self.phase != Phase::Joining && now_ms.saturating_sub(self.store_heard_ms) >= long_ms
    }

    /// Adopts a configuration record from the store or a peer, if it is further along.
    fn take_config(&mut self, now_ms: u64, record: Configuration) {
        if record.validate().is_err() || !record.supersedes(&self.cluster) || self.phase == Phase::Gone {
            return;
        }
        let new_epoch = record.epoch != self.cluster.epoch;
        self.cluster = record;
        let cluster = &self.cluster;
        self.suspected.retain(|id| cluster.is_member(*id));
        self.placement = Placement::new(&self.cluster);
        for member in &self.cluster.members {
            if new_epoch || !self.last_heard.contains_key(&member.id) {
                self.last_heard.insert(member.id, now_ms);
            }
        }
        if new_epoch {
            self.fence = self.fence.max(self.cluster.epoch);
            self.stop_serving();
            self.transfer = None;
        }
        let listed = self.cluster.is_member(self.me.id);
        if self.under_an_earlier_processs_id() {
            // Listed, but this process never put itself in: it restarted under the id of an
            // earlier process whose state it does not have. It must neither serve, nor answer
            // pulls, nor take installs, nor send heartbeats as that process. It takes the id
            // out itself (sparing the others a removal that needs a majority; the transfer
            // still needs the quorum of the others' copies, so this is safe), then retires so
            // that its host starts a new member under a new id.
            if new_epoch {
                tracing::error!(
                    member = self.me.id,
                    epoch = self.cluster.epoch,
                    "this member id is listed, but by an earlier process: taking it out, then starting anew"
                );
            }
            if listed {
                self.propose_membership();
            } else {
                // Out of the members (a source still lists it): done; a new member, under a
                // new id, restores the others' majority with its heartbeats.
                self.retire();
            }
            return;
        }
        if self.cluster.epoch < self.fence {
            // A newer epoch exists somewhere: find out which.
            self.outputs.push_back(Output::LoadConfig);
        } else if self.cluster.is_active() {
            if listed && !self.serving {
                self.activate(now_ms);
            } else if !listed && matches!(self.phase, Phase::Joined | Phase::Leaving) {
                self.retire();
            }
        } else if listed {
            if self.phase == Phase::Joining {
                self.phase = Phase::Joined;
            }
            if self.transfer.is_none() {
                self.start_transfer();
            }
            self.propose_ready();
        }
        self.propose_membership();
    }

    /// The store holds no configuration yet: a joining member creates the first one.
    pub fn handle_empty_store(&mut self) {
        if self.phase == Phase::Joining && self.timing.is_some() {
            let next = Configuration::initial(vec![self.me.clone()], self.rf);
            self.enter(next.epoch);
            self.outputs.push_back(Output::Propose { current: None, next });
        }
    }

    /// Starts this member in a cluster's first configuration formed out of band: every member
    /// it lists starts with it, empty, and the store holds `first` already.
    pub fn bootstrap(&mut self, now_ms: u64, first: Configuration) {
        if first.epoch == 1 && first.is_active() && first.is_member(self.me.id) {
            self.enter(first.epoch);
        }
        self.handle_config(now_ms, first);
    }

    /// Notes that this process puts its own id into the cluster; in the first configuration
    /// (nothing to take over) it is ready at once.
    fn enter(&mut self, epoch: u64) {
        self.entered = true;
        if epoch == 1 {
            self.ready_for = Some(1);
        }
    }

    /// Asks to be removed from the configuration (a graceful stop); [`Output::Removed`] follows
    /// once a configuration without this member is active, that is, once its keys moved.
    pub fn leave(&mut self) {
        match self.phase {
            // Never listed: there is nothing to hand over, and no configuration to come would
            // tell it so. A join proposal still in flight may list it yet; the others then
            // remove it as a joiner that went silent (which needs no majority).
            Phase::Joining if !self.cluster.is_member(self.me.id) => self.retire(),
            Phase::Joined | Phase::Joining => {
                self.phase = Phase::Leaving;
                self.propose_membership();
            }
            Phase::Leaving | Phase::Gone => {}
        }
    }

    /// An outside failure detector reports `member` dead: this member proposes its removal (if
    /// it hears a majority) on every tick until a configuration without it appears.
    pub fn suspect(&mut self, member: MemberId) {
        if member != self.me.id && self.cluster.is_member(member) {
            self.suspected.insert(member);
            self.propose_membership();
        }
    }

    /// Periodic chores: heartbeats, suspicion, resends, store polling.
    pub(super) fn tick(&mut self, now_ms: u64) {
        let Some(timing) = self.timing.clone() else { return };
        if self.next_tick_ms.is_some_and(|due| now_ms > due.saturating_add(timing.suspect_after_ms / 2)) {
            // This member did not run for a while (it was paused, or its clock jumped): its
            // own silence, not its peers', explains what it did not hear meanwhile. (Ticks
            // merely late by less stay judged, so a slow host still detects failures.)
            for heard in self.last_heard.values_mut() {
                *heard = (*heard).max(now_ms);
            }
        }
        self.next_tick_ms = Some(now_ms + timing.tick_ms);
        self.ticks += 1;
        if self.phase == Phase::Gone {
            return;
        }
        let mut peers: BTreeSet<MemberId> = self.cluster.members.iter().map(|member| member.id).collect();
        if let Some(source) = &self.cluster.source {
            peers.extend(source.members.iter().map(|member| member.id));
        }
        peers.remove(&self.me.id);
        // Heartbeats feed the failure detector only; without one they are not sent.
        let speaks_for_its_id = self.entered || self.trusts_reused_ids();
        if self.cluster.epoch > 0
            && timing.suspect_after_ms != u64::MAX
            && speaks_for_its_id
            && !self.cut_from_store(now_ms, &timing)
        {
            for peer in peers {
                self.send(peer, PeerMessage::Heartbeat { epoch: self.cluster.epoch });
            }
        }
        if self.serving {
            #[cfg(feature = "canary")]
            if self.config.canary.answer_without_silent_backups {
                self.forget_silent_backups(now_ms, timing.suspect_after_ms);
            }
            self.resend_lagging();
        }
        // Unanswered pulls and unconfirmed install parts go again now and then, not every
        // tick: an answer is a whole part of the key space, so resends dominate a slow link.
        if self.ticks.is_multiple_of(TRANSFER_RESEND_TICKS) {
            self.resend_transfer();
        }
        self.propose_ready();
        self.propose_membership_at(now_ms, timing.suspect_after_ms);
        // In transition a member needs the store's news every tick; serving, pulls and
        // heartbeats bring them and the poll is a safety net.
        if !self.serving || self.ticks.is_multiple_of(timing.poll_every_ticks) {
            self.outputs.push_back(Output::LoadConfig);
        }
    }

    fn propose_membership(&mut self) {
        self.propose_membership_at(0, u64::MAX);
    }

    /// Proposes the next configuration if this member wants to join or leave, or suspects a
    /// member (silent since before `now_ms - suspect_after_ms`).
    fn propose_membership_at(&mut self, now_ms: u64, suspect_after_ms: u64) {
        if self.timing.is_none() || self.cluster.epoch == 0 {
            return;
        }
        let listed = self.cluster.is_member(self.me.id);
        let mut members = self.cluster.members.clone();
        match self.phase {
            // An earlier process's id (see `take_config`): take it out.
            Phase::Joining if self.under_an_earlier_processs_id() => {
                if !listed || members.len() == 1 {
                    return;
                }
                members.retain(|member| member.id != self.me.id);
            }
            Phase::Joining if !listed => {
                self.entered = true;
                members.push(self.me.clone());
            }
            Phase::Leaving if listed && members.len() > 1 => members.retain(|member| member.id != self.me.id),
            Phase::Joined | Phase::Leaving if listed => {
                let silent_for = |id: MemberId, after_ms: u64| {
                    let heard = self.last_heard.get(&id);
                    id != self.me.id
                        && (self.suspected.contains(&id)
                            || heard.is_some_and(|heard| now_ms.saturating_sub(*heard) >= after_ms))
                };
                let silent = |member: &Member| silent_for(member.id, suspect_after_ms);
                let heard = members.iter().filter(|member| !silent(member)).count();
                if heard * 2 > self.cluster.members.len() {
                    members.retain(|member| !silent(member));
                } else {
                    // Without a majority, only silent joiners of a pending configuration go:
                    // they hold nothing of the source, so removing them loses no copy. Other
                    // members stay: one that hears fewer than half cannot tell their death
                    // from its own deafness (an inbound cut, a stall), and removing them would
                    // leave fewer copies than asked for, one crash away from a loss.
                    let source = self.cluster.source.as_ref();
                    let joiner = |member: &Member| source.is_some_and(|source| !source.is_member(member.id));
                    members.retain(|member| !(silent(member) && joiner(member)));
                }
            }
            _ => {}
        }
        if members.len() == self.cluster.members.len()
            && members.iter().all(|m| self.cluster.members.contains(m))
        {
            return;
        }
        if self.phase == Phase::Joining && self.rf != self.cluster.rf {
            // Joining would change every key's number of copies behind the operator's back.
            tracing::error!(
                member = self.me.id,
                asked = self.rf,
                cluster = self.cluster.rf,
                "this member was started with another replication factor than the cluster's: not joining"
            );
            self.retire();
            return;
        }
        let next = self.cluster.next(members);
        self.outputs.push_back(Output::Propose { current: Some(self.cluster.clone()), next });
    }

    fn stop_serving(&mut self) {
        self.serving = false;
        for state in self.keys.values_mut() {
            state.primary = None;
        }
        self.parked.clear();
        self.deadlines.clear();
        self.routes.clear();
    }

    /// Starts serving the (active) configuration: keeps the keys this member replicates,
    /// opens a log for each it is primary of and re-arms its parked calls' timeouts.
    fn activate(&mut self, now_ms: u64) {
        // The first configuration has nothing to take over (its members entered ready); any
        // later one needs this member's ready mark, that is, its state transfer.
        if self.ready_for != Some(self.cluster.epoch) {
            // Listed in an active configuration this member never took state for: it is a
            // restarted process under an old identity. Holding nothing, it must not serve.
            tracing::error!(
                member = self.me.id,
                epoch = self.cluster.epoch,
                "listed without state: retiring"
            );
            self.retire();
            return;
        }
        // A member that asked to leave meanwhile still wants to.
        if self.phase == Phase::Joining || self.forgets_leave_on_activation() {
            self.phase = Phase::Joined;
        }
        self.serving = true;
        let installed = self.transfer.take().map(|transfer| transfer.installed);
        let epoch = self.cluster.epoch;
        let me = self.me.id;
        let placement = &self.placement;
        // Installs are authoritative: of the keys it backs up, a member keeps exactly those its
        // primaries installed (every part of every install arrived before anyone was ready).
        // A copy its primary lacks (an entry that reached this backup but not the new primary,
        // never acknowledged) would otherwise diverge from the key the primary creates afresh.
        // Until now such copies stayed: a later configuration may still have pulled them.
        let keeps_uninstalled = self.keeps_keys_missing_from_installs();
        self.keys.retain(|key, _| {
            let replicas = placement.replicas(key);
            let installed_here = installed.as_ref().is_none_or(|installed| installed.contains(key));
            replicas.contains(&me) && (replicas[0] == me || installed_here || keeps_uninstalled)
        });
        let mut parked = Vec::new();
        for (key, state) in &mut self.keys {
            state.version = (epoch, 0);
            let replicas = placement.replicas(key);
            if replicas[0] == me {
                state.primary = Some(PrimaryLog::new(&replicas[1..]));
                parked.extend(state.shard.parked().map(|(id, timeout)| (id, key.clone(), timeout)));
            }
        }
        for (id, key, timeout) in parked {
            self.park(now_ms, id, key, timeout);
        }
        tracing::info!(member = me, epoch, keys = self.keys.len(), "serving");
    }

    #[cfg(feature = "canary")]
    fn forgets_leave_on_activation(&self) -> bool {
        self.config.canary.forget_leave_on_activation
    }

    #[cfg(not(feature = "canary"))]
    fn forgets_leave_on_activation(&self) -> bool {
        false
    }

    fn retire(&mut self) {
        self.stop_serving();
        self.keys.clear();
        self.transfer = None;
        self.phase = Phase::Gone;
        self.next_tick_ms = None;
        self.outputs.push_back(Output::Removed);
    }

    fn start_transfer(&mut self) {
        let source = self.cluster.source.clone().expect("an inactive configuration has a source");
        let mut responded = BTreeSet::new();
        if source.is_member(self.me.id) {
            responded.insert(self.me.id);
        }
        self.transfer = Some(Transfer {
            responded,
            parts_received: BTreeMap::new(),
            pulled: false,
            installs_pending: BTreeMap::new(),
            installed: BTreeSet::new(),
            unheld: BTreeSet::new(),
        });
        self.resend_transfer();
        self.check_pulled();
    }

    /// (Re)sends the pulls still unanswered and the installs still unconfirmed.
    fn resend_transfer(&mut self) {
        let Some(transfer) = self.transfer.clone() else { return };
        let Some(source) = self.cluster.source.clone() else { return };
        if !transfer.pulled {
            for member in source.members.iter().filter(|m| !transfer.responded.contains(&m.id)) {
                self.send(member.id, PeerMessage::Pull { config: self.cluster.clone() });
            }
        }
        for (backup, pending) in transfer.installs_pending {
            self.install(backup, |part| pending.contains(&part));
        }
    }

    /// Sends `backup` the parts of this member's install that `wanted` picks (the same parts
    /// every time: nothing changes the held keys while a configuration waits for its
    /// transfers); returns every part's index.
    fn install(&mut self, backup: MemberId, wanted: impl Fn(u32) -> bool) -> BTreeSet<u32> {
        let shards = self.images_for(|replicas| replicas[0] == self.me.id && replicas[1..].contains(&backup));
        let epoch = self.cluster.epoch;
        let mut indices = BTreeSet::new();
        for (part, shards) in in_parts(shards, self.config.transfer_bytes_max) {
            indices.insert(part.index);
            if wanted(part.index) {
                self.send(backup, PeerMessage::Install { epoch, part, shards });
            }
        }
        indices
    }

    /// The held keys whose replicas in the current configuration satisfy `wanted`.
    fn images_for(&self, wanted: impl Fn(&[MemberId]) -> bool) -> Vec<ShardCopy> {
        (self.keys.iter())
            .filter(|(key, _)| wanted(&self.placement.replicas(key)))
            .map(|(key, state)| (key.clone(), state.shard.image(), state.version))
            .collect()
    }

    /// A member of configuration `config` asks for the keys it will be primary of.
    pub(super) fn on_pull(&mut self, now_ms: u64, from: MemberId, config: Configuration) {
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
        if self.phase == Phase::Gone || !self.entered {
            return;
        }
        // Only the keys whose placement changed for the puller: a key it replicated in the
        // source it holds already, with every acknowledged operation.
        let placement = Placement::new(&config);
        let before = config.source.as_ref().map(Placement::of_source);
        let moved = |key: &str| before.as_ref().is_none_or(|before| !before.replicas(key).contains(&from));
        let shards: Vec<ShardCopy> = (self.keys.iter())
            .filter(|(key, _)| placement.primary(key) == from && moved(key))
            .map(|(key, state)| (key.clone(), state.shard.image(), state.version))
            .collect();
        for (part, shards) in in_parts(shards, self.config.transfer_bytes_max) {
            self.send(from, PeerMessage::Shards { epoch: config.epoch, part, shards });
        }
    }

    /// Whether the configuration lists this member's id (as a member or in its source) while
    /// this process never put it there: the id is an earlier process's, whose state it lacks.
    fn under_an_earlier_processs_id(&self) -> bool {
        let source = self.cluster.source.as_ref();
        let listed = self.cluster.is_member(self.me.id) || source.is_some_and(|s| s.is_member(self.me.id));
        listed && !self.entered && !self.trusts_reused_ids()
    }

    #[cfg(feature = "canary")]
    fn trusts_reused_ids(&self) -> bool {
        self.config.canary.trust_reused_member_ids
    }

    #[cfg(not(feature = "canary"))]
    fn trusts_reused_ids(&self) -> bool {
        false
    }

    #[cfg(feature = "canary")]
    fn keeps_keys_missing_from_installs(&self) -> bool {
        self.config.canary.non_authoritative_installs
    }

    #[cfg(not(feature = "canary"))]
    fn keeps_keys_missing_from_installs(&self) -> bool {
        false
    }

    #[cfg(feature = "canary")]
    fn fences_on_pull(&self) -> bool {
        !self.config.canary.accept_old_epochs
    }

    #[cfg(not(feature = "canary"))]
    fn fences_on_pull(&self) -> bool {
        true
    }

    /// One part of a source member's answer to this member's pull.
    pub(super) fn on_shards(&mut self, from: MemberId, epoch: u64, part: Part, shards: Vec<ShardCopy>) {
        let current = epoch == self.cluster.epoch;
        let Some(transfer) = &mut self.transfer else { return };
        if !current || transfer.pulled || transfer.responded.contains(&from) || part.index >= part.count {
            return;
        }
        let (count, received) = transfer.parts_received.entry(from).or_insert((part.count, BTreeSet::new()));
        if *count != part.count {
            // An answer cut differently (the member answered again): start counting over.
            *count = part.count;
            received.clear();
        }
        received.insert(part.index);
        if received.len() == part.count as usize {
            transfer.parts_received.remove(&from);
            transfer.responded.insert(from);
        }
        for (key, image, version) in shards {
            if self.placement.primary(&key) != self.me.id {
                continue;
            }
            if self.keys.get(&key).is_some_and(|held| held.version >= version) {
                continue;
            }
            self.adopt(key, image, version);
        }
        self.check_pulled();
    }

    /// Holds a transferred key. A key whose type is not registered here cannot be held: the
    /// member then never marks itself ready (it would serve without that key), says why, and
    /// asks to leave, so that the others go on without it.
    fn adopt(&mut self, key: String, image: ShardImage, version: (u64, u64)) {
        match Shard::from_image(image, &self.registry) {
            Ok(shard) => {
                self.keys.insert(key, KeyState { shard, version, primary: None });
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

    /// Enough of the source answered once every key's source replica set has a responder.
    fn check_pulled(&mut self) {
        let Some(source) = &self.cluster.source else { return };
        let Some(transfer) = &mut self.transfer else { return };
        let needed = source.members.len() + 1 - source.effective_rf();
        let answered = source.members.iter().filter(|m| transfer.responded.contains(&m.id)).count();
        if transfer.pulled || answered < needed {
            return;
        }
        transfer.pulled = true;
        transfer.parts_received.clear();
        let backups: BTreeSet<MemberId> =
            self.cluster.members.iter().map(|member| member.id).filter(|id| *id != self.me.id).collect();
        // Every part goes out now; the tick resends those not confirmed.
        let installs_pending =
            backups.into_iter().map(|backup| (backup, self.install(backup, |_| true))).collect();
        if let Some(transfer) = &mut self.transfer {
            transfer.installs_pending = installs_pending;
        }
        self.propose_ready();
    }

    pub(super) fn on_install(&mut self, from: MemberId, epoch: u64, part: Part, shards: Vec<ShardCopy>) {
        if epoch != self.cluster.epoch || epoch < self.fence {
            self.hear_of_epoch(epoch);
            return;
        }
        if !self.cluster.is_active() {
            let Some(transfer) = &mut self.transfer else { return };
            let from_primary: Vec<ShardCopy> =
                shards.into_iter().filter(|(key, ..)| self.placement.primary(key) == from).collect();
            transfer.installed.extend(from_primary.iter().map(|(key, ..)| key.clone()));
            for (key, image, version) in from_primary {
                self.adopt(key, image, version);
            }
        }
        self.send(from, PeerMessage::Installed { epoch, part: part.index });
    }

    pub(super) fn on_installed(&mut self, from: MemberId, epoch: u64, part: u32) {
        let current = epoch == self.cluster.epoch;
        let Some(transfer) = &mut self.transfer else { return };
        let Some(pending) = transfer.installs_pending.get_mut(&from).filter(|_| current) else { return };
        if pending.remove(&part) && pending.is_empty() {
            transfer.installs_pending.remove(&from);
            self.propose_ready();
        }
    }

    /// Marks this member ready in the store once it holds its keys and its backups hold theirs.
    fn propose_ready(&mut self) {
        let Some(transfer) = &self.transfer else { return };
        let done = transfer.pulled && transfer.installs_pending.is_empty() && transfer.unheld.is_empty();
        if !done || self.cluster.is_active() || self.cluster.ready.contains(&self.me.id) {
            return;
        }
        self.ready_for = Some(self.cluster.epoch);
        let next = self.cluster.with_ready(self.me.id);
        self.outputs.push_back(Output::Propose { current: Some(self.cluster.clone()), next });
    }
}

/// Cuts `shards` into parts of about `bytes_max` encoded bytes each (a shard bigger than that
/// travels alone); always at least one part, so that an empty answer is an answer too.
fn in_parts(shards: Vec<ShardCopy>, bytes_max: usize) -> Vec<(Part, Vec<ShardCopy>)> {
    let mut parts: Vec<Vec<ShardCopy>> = vec![Vec::new()];
    let mut bytes = 0;
    for shard in shards {
        let size = crate::object::encode(&shard).len();
        let current = parts.last_mut().expect("never empty");
        if !current.is_empty() && bytes + size > bytes_max {
            parts.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        parts.last_mut().expect("never empty").push(shard);
    }
    let count = parts.len() as u32;
    (0..count).zip(parts).map(|(index, shards)| (Part { index, count }, shards)).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::cluster::Member;
    use crate::node::{ClusterTiming, NodeConfig};
    use crate::registry::Registry;

    fn member(id: u64) -> Member {
        Member { id, addr: format!("m{id}") }
    }

    #[test]
    fn transfers_are_cut_into_parts_of_whole_keys() {
        let copy = |key: &str, bytes: usize| {
            let image = ShardImage {
                object: Some(("Blob".into(), vec![7; bytes])),
                sessions: Default::default(),
                parked: Default::default(),
            };
            (key.to_string(), image, (1, 0))
        };
        let parts = in_parts(vec![copy("a", 100), copy("b", 100), copy("c", 1_000), copy("d", 10)], 300);
        let keys: Vec<Vec<&str>> =
            parts.iter().map(|(_, shards)| shards.iter().map(|(key, ..)| key.as_str()).collect()).collect();
        assert_eq!(keys, vec![vec!["a", "b"], vec!["c"], vec!["d"]], "a big key travels alone, never split");
        let numbering: Vec<(u32, u32)> = parts.iter().map(|(part, _)| (part.index, part.count)).collect();
        assert_eq!(numbering, vec![(0, 3), (1, 3), (2, 3)]);
        let empty = in_parts(Vec::new(), 300);
        assert_eq!(empty.len(), 1, "an empty answer is one (empty) part");
        assert!(empty[0].1.is_empty());
    }

    #[test]
    fn a_pull_is_answered_once_every_part_arrived() {
        let registry = Arc::new(Registry::default());
        let mut node =
            Node::member(NodeConfig::default(), registry, member(2), 2, ClusterTiming::default()).unwrap();
        let first = Configuration::initial(vec![member(1)], 2);
        node.handle_config(0, first.clone());
        node.handle_config(1, first.next(vec![member(1), member(2)]));
        let pulled = |node: &Node| node.transfer.as_ref().is_some_and(|transfer| transfer.pulled);
        assert!(!pulled(&node), "member 1 has not answered");
        let part = |index| Part { index, count: 3 };
        node.handle_peer(2, 1, PeerMessage::Shards { epoch: 2, part: part(0), shards: vec![] });
        node.handle_peer(2, 1, PeerMessage::Shards { epoch: 2, part: part(2), shards: vec![] });
        node.handle_peer(2, 1, PeerMessage::Shards { epoch: 2, part: part(2), shards: vec![] });
        assert!(!pulled(&node), "part 1 of 3 is missing");
        node.handle_peer(
            2,
            1,
            PeerMessage::Shards { epoch: 2, part: Part { index: 5, count: 3 }, shards: vec![] },
        );
        assert!(!pulled(&node), "a part outside the count is ignored");
        node.handle_peer(3, 1, PeerMessage::Shards { epoch: 2, part: part(1), shards: vec![] });
        assert!(pulled(&node), "every part arrived");
    }

    #[test]
    fn a_process_under_an_earlier_ones_id_takes_it_out_and_answers_no_pull() {
        let registry = Arc::new(Registry::default());
        let mut node =
            Node::member(NodeConfig::default(), registry, member(3), 2, ClusterTiming::default()).unwrap();
        let first = Configuration::initial(vec![member(1), member(2), member(3)], 2);
        node.handle_config(0, first.clone());
        let outputs: Vec<Output> = std::iter::from_fn(|| node.poll_output()).collect();
        assert!(
            outputs.iter().any(|o| matches!(o, Output::Propose { next, .. } if !next.is_member(3))),
            "it takes the id out: {outputs:?}"
        );
        assert!(!node.is_serving());
        node.handle_peer(1, 1, PeerMessage::Pull { config: first.next(vec![member(1), member(2)]) });
        let answers: Vec<Output> = std::iter::from_fn(|| node.poll_output())
            .filter(|o| matches!(o, Output::Send { message: PeerMessage::Shards { .. }, .. }))
            .collect();
        assert_eq!(answers, vec![], "an empty answer would count as the earlier process's");
        node.handle_timeout(1_000);
        let heartbeats = std::iter::from_fn(|| node.poll_output())
            .filter(|o| matches!(o, Output::Send { message: PeerMessage::Heartbeat { .. }, .. }))
            .count();
        assert_eq!(heartbeats, 0, "it does not speak for the earlier process");
    }

    #[test]
    fn a_member_asked_to_leave_before_it_is_listed_retires_at_once() {
        let registry = Arc::new(Registry::default());
        let mut node =
            Node::member(NodeConfig::default(), registry, member(3), 2, ClusterTiming::default()).unwrap();
        node.handle_config(0, Configuration::initial(vec![member(1), member(2)], 2));
        while node.poll_output().is_some() {}
        node.leave();
        let outputs: Vec<Output> = std::iter::from_fn(|| node.poll_output()).collect();
        assert_eq!(outputs, vec![Output::Removed], "no configuration will ever tell it it is out");
        assert_eq!(node.poll_timeout(), None, "it does nothing any more");
    }

    #[test]
    fn a_leave_asked_during_a_transfer_survives_the_activation() {
        let registry = Arc::new(Registry::default());
        let timing = ClusterTiming::default();
        let mut node = Node::member(NodeConfig::default(), registry, member(1), 2, timing).unwrap();
        let first = Configuration::initial(vec![member(1)], 2);
        node.bootstrap(0, first.clone());
        let second = first.next(vec![member(1), member(2)]);
        node.handle_config(1, second.clone());
        node.handle_peer(2, 2, PeerMessage::Installed { epoch: 2, part: 0 });
        assert_eq!(node.ready_for, Some(2), "pulled from itself, installed on member 2: ready");
        node.leave();
        while node.poll_output().is_some() {}
        node.handle_config(3, second.with_ready(1).with_ready(2));
        assert!(node.is_serving());
        let proposals: Vec<Output> = std::iter::from_fn(|| node.poll_output())
            .filter(|output| matches!(output, Output::Propose { next, .. } if !next.is_member(1)))
            .collect();
        assert_eq!(proposals.len(), 1, "it still proposes to leave once the configuration is active");
    }
}
