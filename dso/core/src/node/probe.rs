//! Probing before a join (the pre-vote of this protocol).
//!
//! A proposed join stops every member from serving until the joiner holds its copies. A joiner
//! the members cannot reach (a member cut from its peers but not from the store, which the
//! others removed and which starts over under a new id) would stop them for nothing, be
//! removed as a silent joiner one suspicion later, and ask again: under a partition the
//! cluster flapped every 0.6 s, and the side that could serve did not. So a member that is not
//! listed first probes the configuration's members, and proposes to join only once
//!
//! - every member answered within `suspect_after_ms` (they reach it, and it reaches them), or
//! - the members that answered are stuck themselves: none has heard more than half of its
//!   configuration for longer than a suspicion and a quorum window (two members, one dead: it
//!   takes the joiner to outnumber the dead one, and a join stops nothing that serves). The
//!   wait matters: a member cut off on the minority side with the joiner loses its majority
//!   at once, but the majority side removes it within a suspicion, before it may answer
//!   "stuck" (and a new epoch starts its wait over).
//!
//! Removals need no probe: a member proposes one only while it hears a majority of its
//! configuration (check-quorum, in `membership`). Together the two rules keep a member that
//! cannot reach the others from disturbing them: a single partition costs the removal of the
//! cut member and, after the heal, its join.

use std::collections::BTreeMap;

use super::{ClusterTiming, Node, Phase};
use crate::cluster::{Member, MemberId};
use crate::protocol::PeerMessage;

/// Members that probed this one and are not listed: where to answer them. Bounded, since
/// anyone speaking as a member can probe.
const PROBERS_MAX: usize = 16;

/// What probing has learned, on both sides.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct Probes {
    /// On a joiner: the members of its configuration that answered a probe in its epoch,
    /// when, and whether they heard a majority of their configuration.
    replies: BTreeMap<MemberId, Answer>,
    /// On a member: joiners that probed it recently (not listed, so no configuration says
    /// where they are), with when they last did.
    probers: BTreeMap<MemberId, (String, u64)>,
    /// On a member: when it last heard a majority of its configuration (or its epoch began).
    majority_heard_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Answer {
    at_ms: u64,
    quorate: bool,
}

impl Probes {
    /// Where a recent prober listens.
    pub(super) fn prober_addr(&self, id: MemberId) -> Option<&str> {
        self.probers.get(&id).map(|(addr, _)| addr.as_str())
    }

    /// Forgets the answers of an older configuration; a new epoch starts the wait before this
    /// member may call itself stuck over.
    pub(super) fn new_epoch(&mut self, now_ms: u64) {
        self.replies.clear();
        self.majority_heard_ms = now_ms;
    }

    /// Forgets answers and probers older than `window_ms`.
    fn expire(&mut self, now_ms: u64, window_ms: u64) {
        let fresh = |at_ms: u64| now_ms.saturating_sub(at_ms) < window_ms;
        self.replies.retain(|_, answer| fresh(answer.at_ms));
        self.probers.retain(|_, (_, at_ms)| fresh(*at_ms));
    }
}

impl Node {
    /// Whether this member is a joiner that must probe before it proposes.
    fn probing(&self) -> bool {
        self.phase == Phase::Joining && self.cluster.epoch > 0 && !self.cluster.is_member(self.me.id)
    }

    /// Each tick: forgets stale answers, notes whether this member hears a majority, and a
    /// joiner probes every member of its configuration.
    pub(super) fn probe_tick(&mut self, now_ms: u64, timing: &ClusterTiming) {
        self.probes.expire(now_ms, timing.suspect_after_ms);
        if self.hears_a_majority(now_ms) {
            self.probes.majority_heard_ms = now_ms;
        }
        if !self.probing() {
            return;
        }
        let members: Vec<MemberId> =
            (self.cluster.members.iter()).map(|member| member.id).filter(|id| *id != self.me.id).collect();
        for id in members {
            self.send(id, PeerMessage::Probe { epoch: self.cluster.epoch, from: self.me.clone() });
        }
    }

    /// A joiner asks whether this member hears it: answer with this member's epoch and whether
    /// it is quorate (a listed member that put itself in only: another joiner's view says
    /// nothing, and a process restarted under an earlier one's id must not speak for it).
    pub(super) fn on_probe(&mut self, now_ms: u64, from: Member, epoch: u64) {
        self.hear_of_epoch(epoch);
        let speaks = self.cluster.epoch > 0 && self.cluster.is_member(self.me.id) && self.entered;
        if !speaks || from.id == self.me.id {
            return;
        }
        if !self.cluster.is_member(from.id) {
            if self.probes.probers.len() >= PROBERS_MAX && !self.probes.probers.contains_key(&from.id) {
                let oldest =
                    self.probes.probers.iter().min_by_key(|(_, (_, at_ms))| *at_ms).map(|(id, _)| *id);
                if let Some(oldest) = oldest {
                    self.probes.probers.remove(&oldest);
                }
            }
            self.probes.probers.insert(from.id, (from.addr, now_ms));
        }
        let quorate = !self.stuck(now_ms);
        self.send(from.id, PeerMessage::ProbeReply { epoch: self.cluster.epoch, quorate });
    }

    /// A member answered this joiner's probe: note it, and propose the join if that was the
    /// answer it waited for.
    pub(super) fn on_probe_reply(&mut self, now_ms: u64, from: MemberId, epoch: u64, quorate: bool) {
        self.hear_of_epoch(epoch);
        if epoch != self.cluster.epoch || !self.cluster.is_member(from) {
            return;
        }
        self.probes.replies.insert(from, Answer { at_ms: now_ms, quorate });
        if self.probing() {
            self.propose_membership();
        }
    }

    /// Whether this joiner's probes allow it to propose its join (see the module's doc).
    pub(super) fn join_probed(&self) -> bool {
        if self.joins_without_probing() {
            return true;
        }
        let others: Vec<MemberId> =
            (self.cluster.members.iter()).map(|member| member.id).filter(|id| *id != self.me.id).collect();
        let answers: Vec<&Answer> = others.iter().filter_map(|id| self.probes.replies.get(id)).collect();
        let everyone = answers.len() == others.len();
        let stuck = !answers.is_empty() && answers.iter().all(|answer| !answer.quorate);
        everyone || stuck
    }

    /// Whether this member is stuck without a majority: it hears none now, and has heard none
    /// for a suspicion and a quorum window (since its epoch began, if later), so that the
    /// majority side of a partition has removed it before it says so. With an outside failure
    /// detector (`suspect_after_ms` of `u64::MAX`) the reported deaths are final at once.
    fn stuck(&mut self, now_ms: u64) -> bool {
        if self.hears_a_majority(now_ms) {
            self.probes.majority_heard_ms = now_ms;
            return false;
        }
        let Some(timing) = &self.timing else { return false };
        if timing.suspect_after_ms == u64::MAX {
            return true;
        }
        let wait_ms = timing.suspect_after_ms.saturating_add(self.quorum_window_ms(timing.suspect_after_ms));
        now_ms.saturating_sub(self.probes.majority_heard_ms) >= wait_ms
    }

    /// Whether this member heard, within its quorum window (see `quorum_window_ms`), more
    /// than half of its configuration's members (itself included, if listed).
    fn hears_a_majority(&self, now_ms: u64) -> bool {
        let Some(timing) = &self.timing else { return true };
        let window_ms = self.quorum_window_ms(timing.suspect_after_ms);
        self.members_heard(now_ms, window_ms, true) * 2 > self.cluster.members.len()
    }

    #[cfg(crucial_canary)]
    fn joins_without_probing(&self) -> bool {
        self.config.canary.join_without_probing
    }

    #[cfg(not(crucial_canary))]
    fn joins_without_probing(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::cluster::{Configuration, Member};
    use crate::node::{ClusterTiming, Node, NodeConfig, Output};
    use crate::protocol::PeerMessage;
    use crate::registry::Registry;

    fn member(id: u64) -> Member {
        Member { id, addr: format!("m{id}") }
    }

    fn drain(node: &mut Node) -> Vec<Output> {
        std::iter::from_fn(|| node.poll_output()).collect()
    }

    fn proposals(outputs: &[Output]) -> usize {
        outputs.iter().filter(|output| matches!(output, Output::Propose { .. })).count()
    }

    fn joiner() -> Node {
        let registry = Arc::new(Registry::default());
        let timing = ClusterTiming { tick_ms: 100, suspect_after_ms: 400, poll_every_ticks: 5 };
        let mut node = Node::member(NodeConfig::default(), registry, member(9), 3, timing).unwrap();
        let active = Configuration::initial(vec![member(1), member(2)], 3);
        node.handle_config(0, active);
        node
    }

    #[test]
    fn a_joiner_proposes_only_once_every_member_answered() {
        let mut node = joiner();
        let outputs = drain(&mut node);
        assert_eq!(proposals(&outputs), 0, "no proposal before any probe was answered: {outputs:?}");
        node.handle_timeout(100);
        let probes = drain(&mut node)
            .into_iter()
            .filter(|output| matches!(output, Output::Send { message: PeerMessage::Probe { .. }, .. }))
            .count();
        assert_eq!(probes, 2, "it probes both members");
        node.handle_peer(110, 1, PeerMessage::ProbeReply { epoch: 1, quorate: true });
        assert_eq!(proposals(&drain(&mut node)), 0, "member 2 (quorate without it) has not answered");
        node.handle_peer(120, 2, PeerMessage::ProbeReply { epoch: 1, quorate: true });
        let outputs = drain(&mut node);
        assert!(
            outputs.iter().any(|o| matches!(o, Output::Propose { next, .. } if next.is_member(9))),
            "both answered: it proposes its join: {outputs:?}"
        );
    }

    #[test]
    fn an_answer_goes_stale_after_suspect_after_ms() {
        let mut node = joiner();
        node.handle_peer(10, 1, PeerMessage::ProbeReply { epoch: 1, quorate: true });
        node.handle_timeout(500);
        drain(&mut node);
        node.handle_peer(510, 2, PeerMessage::ProbeReply { epoch: 1, quorate: true });
        assert_eq!(proposals(&drain(&mut node)), 0, "member 1's answer is 500 ms old");
    }

    #[test]
    fn a_joiner_helps_members_that_hear_no_majority() {
        let mut node = joiner();
        drain(&mut node);
        node.handle_peer(10, 1, PeerMessage::ProbeReply { epoch: 1, quorate: false });
        let outputs = drain(&mut node);
        assert_eq!(proposals(&outputs), 1, "member 1 is stuck (member 2 dead): join to outnumber it");
    }

    #[test]
    fn a_member_answers_a_probe_with_its_view() {
        let registry = Arc::new(Registry::default());
        let timing = ClusterTiming { tick_ms: 100, suspect_after_ms: 400, poll_every_ticks: 5 };
        let mut node = Node::member(NodeConfig::default(), registry, member(1), 3, timing).unwrap();
        let first = Configuration::initial(vec![member(1), member(2), member(3)], 3);
        node.bootstrap(0, first);
        drain(&mut node);
        node.handle_peer(1_000, 2, PeerMessage::Heartbeat { epoch: 1 });
        node.handle_peer(1_000, 9, PeerMessage::Probe { epoch: 1, from: member(9) });
        let outputs = drain(&mut node);
        let reply = PeerMessage::ProbeReply { epoch: 1, quorate: true };
        assert_eq!(outputs, vec![Output::Send { to: 9, message: reply }], "hears itself and member 2");
        assert_eq!(node.member_addr(9), Some("m9"), "the prober's address, to answer it");
        // Member 2 goes silent: no majority from 1,200 ms on (its heartbeat at 1,000 is 200 ms
        // old), but the member calls itself stuck only 600 ms (a suspicion and a quorum
        // window) after it last heard one.
        node.handle_peer(1_500, 9, PeerMessage::Probe { epoch: 1, from: member(9) });
        let reply = PeerMessage::ProbeReply { epoch: 1, quorate: true };
        let outputs = drain(&mut node);
        assert_eq!(
            outputs,
            vec![Output::Send { to: 9, message: reply }],
            "no majority for 500 ms: not yet stuck"
        );
        node.handle_peer(1_600, 9, PeerMessage::Probe { epoch: 1, from: member(9) });
        let reply = PeerMessage::ProbeReply { epoch: 1, quorate: false };
        let outputs = drain(&mut node);
        assert_eq!(outputs, vec![Output::Send { to: 9, message: reply }], "none for 600 ms: stuck");
    }
}
