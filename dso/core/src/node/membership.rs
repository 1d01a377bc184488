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

use std::collections::BTreeSet;

use super::replication::PrimaryLog;
use super::{Node, Output, Phase};
use crate::cluster::{Configuration, Member, MemberId, Placement};
use crate::protocol::PeerMessage;
use crate::shard::LogPosition;

/// A member in need of the store stops its heartbeats once the store has been silent this many
/// times `suspect_after_ms`.
const STORE_SILENCE_FACTOR: u64 = 3;

/// A joined member left out of a pending configuration asks to join again once it has waited
/// this many times `suspect_after_ms` without that configuration activating (doubled at each
/// new attempt, up to `2^REJOIN_DOUBLINGS_MAX` times, until it serves).
const REJOIN_AFTER_SUSPECTS: u64 = 3;
const REJOIN_DOUBLINGS_MAX: u32 = 6;
/// Mixes a member id into its rejoin jitter (an odd constant: ids that differ in few bits
/// still wait differently).
const JITTER_MIX: u64 = 0x9e37_79b9_7f4a_7c15;

/// A serving primary logs its timed parked calls' remaining time every this many ticks.
const REMAINING_LOG_TICKS: u64 = 10;

/// Pulls and install parts that made no progress are sent again every this many ticks.
const TRANSFER_RESEND_TICKS: u64 = 3;

impl Node {
    /// The store holds this configuration record.
    pub fn handle_config(&mut self, now_ms: u64, record: Configuration) {
        self.store_heard_ms = now_ms;
        self.take_config(now_ms, record);
        self.check_invariants();
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
    pub(super) fn take_config(&mut self, now_ms: u64, record: Configuration) {
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
            // Only members and the source's are heard from (probers have their own bounded map).
            let source = self.cluster.source.as_ref();
            let listed = |id: MemberId| cluster.is_member(id) || source.is_some_and(|s| s.is_member(id));
            self.last_heard.retain(|id, _| listed(*id));
            self.probes.new_epoch(now_ms);
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
            } else if !listed && self.phase == Phase::Joining {
                // Asked to join again, but the configuration that left it out activated: what
                // it holds is nobody's copy now, and it joins the new one empty.
                self.keys.clear();
            }
        } else if !listed && self.phase == Phase::Joined {
            // Left out of a pending configuration (taken for silent: a joiner before it held
            // anything, or a member of the source): if that configuration does not activate
            // (and retire this member) soon, this member asks again (see
            // `propose_membership_at`): the configuration may need it to outnumber a dead one.
            self.left_out_at_ms.get_or_insert(now_ms);
        } else if listed {
            self.left_out_at_ms = None;
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
        self.check_invariants();
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
            // A member of the source asking to join again holds copies that pulls need: it
            // leaves once a configuration without it is active, like any member.
            Phase::Joining if !self.cluster.is_member(self.me.id) && !self.in_source() => self.retire(),
            Phase::Joined | Phase::Joining => {
                self.phase = Phase::Leaving;
                self.propose_membership();
            }
            Phase::Leaving | Phase::Gone => {}
        }
        self.check_invariants();
    }

    /// An outside failure detector reports `member` dead: this member proposes its removal (if
    /// it hears a majority) on every tick until a configuration without it appears.
    pub fn suspect(&mut self, member: MemberId) {
        if member != self.me.id && self.cluster.is_member(member) {
            self.suspected.insert(member);
            self.propose_membership();
        }
        self.check_invariants();
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
            #[cfg(crucial_canary)]
            if self.config.canary.answer_without_silent_backups {
                self.forget_silent_backups(now_ms, timing.suspect_after_ms);
            }
            self.resend_lagging();
            if self.ticks.is_multiple_of(REMAINING_LOG_TICKS) {
                self.log_remaining(now_ms);
            }
        }
        // Unanswered pulls and unconfirmed install parts go again now and then, not every
        // tick: an answer is a whole part of the key space, so resends dominate a slow link.
        if self.ticks.is_multiple_of(TRANSFER_RESEND_TICKS) {
            self.resend_transfer();
        }
        self.propose_ready();
        self.probe_tick(now_ms, &timing);
        self.propose_membership_at(now_ms, timing.suspect_after_ms);
        // In transition a member needs the store's news every tick; serving, pulls and
        // heartbeats bring them and the poll is a safety net.
        if !self.serving || self.ticks.is_multiple_of(timing.poll_every_ticks) {
            self.outputs.push_back(Output::LoadConfig);
        }
    }

    pub(super) fn propose_membership(&mut self) {
        self.propose_membership_at(0, u64::MAX);
    }

    /// Proposes the next configuration if this member wants to join or leave, or suspects a
    /// member (silent since before `now_ms - suspect_after_ms`).
    fn propose_membership_at(&mut self, now_ms: u64, suspect_after_ms: u64) {
        if self.timing.is_none() || self.cluster.epoch == 0 {
            return;
        }
        let listed = self.cluster.is_member(self.me.id);
        let backoff = 1u64 << self.rejoins.min(REJOIN_DOUBLINGS_MAX);
        // Jitter (up to one more suspicion, drawn from the member's random id) keeps members
        // left out together from asking again together.
        let jitter_ms =
            self.me.id.rotate_left(self.rejoins).wrapping_mul(JITTER_MIX) % suspect_after_ms.max(1);
        let rejoin_after_ms =
            suspect_after_ms.saturating_mul(REJOIN_AFTER_SUSPECTS * backoff).saturating_add(jitter_ms);
        let in_source = self.in_source();
        if self.phase == Phase::Joined
            && !listed
            && self.rf == self.cluster.rf
            && self.left_out_at_ms.is_some_and(|at| now_ms.saturating_sub(at) >= rejoin_after_ms)
            && (!in_source || self.hears_a_minority_of_the_members(now_ms, suspect_after_ms))
        {
            // The configuration that left it out did not activate: it may need this member to
            // outnumber a dead one (two members, one dead, hear no majority of themselves).
            // A member of the source asks only if it hears some of the members but not most
            // (they send it heartbeats): one cut off from all of them would only restart
            // their transfer, and most of them alive can remove the dead ones themselves.
            self.phase = Phase::Joining;
            self.left_out_at_ms = None;
            self.rejoins += 1;
            // What an aborted transfer brought to a joiner is nobody's copy: the next one
            // brings it anew. A member of the source keeps its copies: pulls need them.
            if !in_source {
                self.keys.clear();
            }
        }
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
                // Only once the members answered its probes: a join they cannot complete
                // would stop them for nothing (see `probe`). (A joiner with another rf goes on
                // to be refused below, reachable or not.)
                if self.rf == self.cluster.rf && !self.join_probed() {
                    return;
                }
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
                // The majority must be fresh, not merely unsuspected: a member cut from all its
                // peers at once sees them cross `suspect_after_ms` a tick or two apart, and
                // would otherwise remove the first with a "majority" of itself and a peer it
                // has not heard for almost as long.
                let quorum_window_ms = self.quorum_window_ms(suspect_after_ms);
                let heard = members.iter().filter(|member| !silent_for(member.id, quorum_window_ms)).count();
                if heard * 2 > self.cluster.members.len() || self.removes_without_majority() {
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
                if members.len() < self.cluster.members.len() {
                    self.log_removal(now_ms, suspect_after_ms, &members);
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

    /// How recently a member must have been heard to count towards the majority that lets
    /// this member remove others: half of `suspect_after_ms` (at least two ticks, at most all
    /// of it), so that peers that went silent together cannot look like a majority.
    pub(super) fn quorum_window_ms(&self, suspect_after_ms: u64) -> u64 {
        #[cfg(crucial_canary)]
        if self.config.canary.quorum_from_unsuspected {
            return suspect_after_ms;
        }
        let tick_ms = self.timing.as_ref().map_or(0, |timing| timing.tick_ms);
        (suspect_after_ms / 2).max(tick_ms.saturating_mul(2)).min(suspect_after_ms)
    }

    pub(super) fn stop_serving(&mut self) {
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
        self.rejoins = 0;
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
            state.position = LogPosition::start(epoch);
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

    #[cfg(crucial_canary)]
    fn forgets_leave_on_activation(&self) -> bool {
        self.config.canary.forget_leave_on_activation
    }

    #[cfg(not(crucial_canary))]
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

    /// Whether the source of a pending configuration lists this member.
    fn in_source(&self) -> bool {
        self.cluster.source.as_ref().is_some_and(|source| source.is_member(self.me.id))
    }

    /// Says which members this one is about to propose removing and how long ago it heard
    /// each member: what an operator needs to tell a dead member from a slow one. Said on the
    /// tick a removed member's silence crosses `suspect_after_ms` (or for a reported death),
    /// not on every tick the proposal waits for the store.
    fn log_removal(&self, now_ms: u64, suspect_after_ms: u64, kept: &[Member]) {
        let age = |id: MemberId| self.last_heard.get(&id).map(|at| now_ms.saturating_sub(*at));
        let removed: Vec<MemberId> = (self.cluster.members.iter().map(|member| member.id))
            .filter(|id| !kept.iter().any(|member| member.id == *id))
            .collect();
        let tick_ms = self.timing.as_ref().map_or(0, |timing| timing.tick_ms);
        let just_silent = |id: &MemberId| {
            self.suspected.contains(id)
                || age(*id).is_none_or(|ms| ms < suspect_after_ms.saturating_add(tick_ms))
        };
        if !removed.iter().any(just_silent) {
            return;
        }
        let heard_ms_ago: Vec<(MemberId, Option<u64>)> = (self.cluster.members.iter())
            .filter(|member| member.id != self.me.id)
            .map(|member| (member.id, age(member.id)))
            .collect();
        tracing::info!(
            member = self.me.id,
            epoch = self.cluster.epoch,
            ?removed,
            ?heard_ms_ago,
            "proposing to remove silent members"
        );
    }

    /// Whether this member heard, within the last `suspect_after_ms`, some of the
    /// configuration's members but not more than half of them.
    fn hears_a_minority_of_the_members(&self, now_ms: u64, suspect_after_ms: u64) -> bool {
        let heard = self.members_heard(now_ms, suspect_after_ms, false);
        heard > 0 && heard * 2 <= self.cluster.members.len()
    }

    /// How many of the configuration's members this member heard within `window_ms` and does
    /// not suspect; itself among them if `counting_itself` (and it is listed).
    pub(super) fn members_heard(&self, now_ms: u64, window_ms: u64, counting_itself: bool) -> usize {
        let heard = |member: &&Member| {
            !self.suspected.contains(&member.id)
                && (self.last_heard.get(&member.id)).is_some_and(|at| now_ms.saturating_sub(*at) < window_ms)
        };
        (self.cluster.members.iter())
            .filter(|member| (counting_itself && member.id == self.me.id) || heard(member))
            .count()
    }

    /// Whether the configuration lists this member's id (as a member or in its source) while
    /// this process never put it there: the id is an earlier process's, whose state it lacks.
    fn under_an_earlier_processs_id(&self) -> bool {
        let source = self.cluster.source.as_ref();
        let listed = self.cluster.is_member(self.me.id) || source.is_some_and(|s| s.is_member(self.me.id));
        listed && !self.entered && !self.trusts_reused_ids()
    }

    #[cfg(crucial_canary)]
    fn removes_without_majority(&self) -> bool {
        self.config.canary.remove_without_majority
    }

    #[cfg(not(crucial_canary))]
    fn removes_without_majority(&self) -> bool {
        false
    }

    #[cfg(crucial_canary)]
    fn trusts_reused_ids(&self) -> bool {
        self.config.canary.trust_reused_member_ids
    }

    #[cfg(not(crucial_canary))]
    fn trusts_reused_ids(&self) -> bool {
        false
    }

    #[cfg(crucial_canary)]
    fn keeps_keys_missing_from_installs(&self) -> bool {
        self.config.canary.non_authoritative_installs
    }

    #[cfg(not(crucial_canary))]
    fn keeps_keys_missing_from_installs(&self) -> bool {
        false
    }
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
        node.handle_peer(
            1,
            1,
            PeerMessage::Pull { config: first.next(vec![member(1), member(2)]), after: None },
        );
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
        node.handle_peer(2, 2, PeerMessage::Installed { epoch: 2, after: None });
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
