//! The nemesis: which faults a run injects, and their schedule, all drawn from the seed.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use super::rng::Rng;

/// A kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// Messages dropped at random.
    Loss,
    /// Messages delivered twice.
    Duplication,
    /// Messages held back long enough to overtake one another.
    Reorder,
    /// A heavy-tailed latency distribution.
    Delay,
    /// One node cut off from everyone.
    IsolateNode,
    /// The members split into a majority and a minority, clients on both sides; the store
    /// stays reachable from both.
    Halves,
    /// The members split in two groups that cannot reach each other, one member (the target)
    /// reaching both; clients on both sides.
    Bridge,
    /// One member's messages to one other member are lost; the reverse direction works.
    PeerOneWay,
    /// One member cut from every other member, but not from clients or the store.
    IsolatePeers,
    /// One member cannot reach the configuration store; everything else works.
    StoreCut,
    /// The store misbehaves: requests lost before they apply, compare-and-swaps that applied
    /// but whose answer is lost (indeterminate), and latency spikes.
    StoreFlaky,
    /// A member crashes and restarts at once under the same member id, empty (an operator or
    /// a process manager reusing `--member-id`).
    Restart,
    /// Replies lost on one node's outgoing links only.
    OneWay,
    /// Each client reaches only a ring-neighbourhood of nodes (a bridge when there are two).
    Ring,
    /// A node crashes (volatile state lost) and later restarts empty.
    Crash,
    /// A node stops processing, then resumes with the messages that queued meanwhile.
    Pause,
    /// A node's clock jumps (its timers fire early or late).
    ClockJump,
    /// A node's clock runs slow or fast for a while.
    ClockSkew,
    /// Client calls time out and are retried (short resend interval).
    ClientRetry,
    /// Half the clients die with their calls in flight, never retried (a cloud thread killed
    /// mid-call); each continues as a new process.
    ClientCrash,
    /// A new member joins (with state transfer) and leaves again when the fault ends.
    Join,
    /// A member leaves gracefully (its keys move first), then rejoins as a new member.
    Leave,
    /// A member crashes and a new, empty member takes its place at once.
    Replace,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 23] = [
        FaultKind::Loss,
        FaultKind::Duplication,
        FaultKind::Reorder,
        FaultKind::Delay,
        FaultKind::IsolateNode,
        FaultKind::Halves,
        FaultKind::Bridge,
        FaultKind::PeerOneWay,
        FaultKind::IsolatePeers,
        FaultKind::StoreCut,
        FaultKind::StoreFlaky,
        FaultKind::Restart,
        FaultKind::OneWay,
        FaultKind::Ring,
        FaultKind::Crash,
        FaultKind::Pause,
        FaultKind::ClockJump,
        FaultKind::ClockSkew,
        FaultKind::ClientRetry,
        FaultKind::ClientCrash,
        FaultKind::Join,
        FaultKind::Leave,
        FaultKind::Replace,
    ];

    /// The kinds a cluster with `rf` copies of each key survives: all of them with two copies
    /// or more; with one copy, everything but losing a member's state (crash, replace, restart).
    pub fn survivable(rf: usize) -> BTreeSet<FaultKind> {
        let loses_state =
            |kind: &FaultKind| matches!(kind, FaultKind::Crash | FaultKind::Replace | FaultKind::Restart);
        FaultKind::ALL.into_iter().filter(|kind| rf >= 2 || !loses_state(kind)).collect()
    }

    /// Whether the fault takes a member out of the cluster (by crash, departure or
    /// suspicion): a run injects at most `rf - 1` of these, the failures `rf` copies survive.
    pub fn impairs_member(self) -> bool {
        matches!(
            self,
            FaultKind::Crash
                | FaultKind::Replace
                | FaultKind::Restart
                | FaultKind::Leave
                | FaultKind::Pause
                | FaultKind::IsolateNode
                | FaultKind::Halves
                | FaultKind::Bridge
                | FaultKind::PeerOneWay
                | FaultKind::IsolatePeers
                | FaultKind::StoreCut
        )
    }

    fn name(self) -> &'static str {
        match self {
            FaultKind::Loss => "loss",
            FaultKind::Duplication => "duplication",
            FaultKind::Reorder => "reorder",
            FaultKind::Delay => "delay",
            FaultKind::IsolateNode => "isolate",
            FaultKind::Halves => "halves",
            FaultKind::Bridge => "bridge",
            FaultKind::PeerOneWay => "peer-one-way",
            FaultKind::IsolatePeers => "isolate-peers",
            FaultKind::StoreCut => "store-cut",
            FaultKind::StoreFlaky => "store-flaky",
            FaultKind::Restart => "restart",
            FaultKind::OneWay => "one-way",
            FaultKind::Ring => "ring",
            FaultKind::Crash => "crash",
            FaultKind::Pause => "pause",
            FaultKind::ClockJump => "clock-jump",
            FaultKind::ClockSkew => "clock-skew",
            FaultKind::ClientRetry => "client-retry",
            FaultKind::ClientCrash => "client-crash",
            FaultKind::Join => "join",
            FaultKind::Leave => "leave",
            FaultKind::Replace => "replace",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FaultKind {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        FaultKind::ALL.into_iter().find(|kind| kind.name() == text).ok_or_else(|| {
            let names: Vec<_> = FaultKind::ALL.iter().map(|k| k.name()).collect();
            format!("unknown fault {text:?} (one of: {})", names.join(", "))
        })
    }
}

/// One scheduled fault: active from `start_ms` to `end_ms` on `target` (a node index, where
/// the kind has one).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Fault {
    /// The kind.
    pub kind: FaultKind,
    /// When it starts.
    pub start_ms: u64,
    /// When it heals.
    pub end_ms: u64,
    /// The node it hits (kinds that target one).
    pub target: u64,
    /// The fault's size, in -1000..=1000: the jump in ms for `ClockJump`, a twentieth of the
    /// rate change in percent for `ClockSkew`.
    pub amount: i64,
}

/// Draws a fault schedule: `count` faults of the enabled kinds within `0..fault_phase_ms`, at
/// most `impairing_max` of them [`FaultKind::impairs_member`].
pub fn schedule(
    rng: &mut Rng,
    kinds: &BTreeSet<FaultKind>,
    nodes: u64,
    fault_phase_ms: u64,
    count: usize,
    impairing_max: usize,
) -> Vec<Fault> {
    let kinds: Vec<FaultKind> = kinds.iter().copied().collect();
    let harmless: Vec<FaultKind> = kinds.iter().copied().filter(|kind| !kind.impairs_member()).collect();
    if kinds.is_empty() || fault_phase_ms == 0 {
        return Vec::new();
    }
    let mut impairing = 0;
    let mut faults: Vec<Fault> = (0..count)
        .filter_map(|_| {
            let mut kind = *rng.pick(&kinds);
            if kind.impairs_member() {
                if impairing >= impairing_max {
                    if harmless.is_empty() {
                        return None;
                    }
                    kind = *rng.pick(&harmless);
                } else {
                    impairing += 1;
                }
            }
            let start_ms = rng.below(fault_phase_ms);
            let end_ms = (start_ms + rng.between(50, fault_phase_ms / 2 + 50)).min(fault_phase_ms);
            let amount = rng.between(0, 2_000) as i64 - 1_000;
            Some(Fault { kind, start_ms, end_ms, target: rng.below(nodes.max(1)), amount })
        })
        .collect();
    faults.sort_by_key(|fault| (fault.start_ms, fault.end_ms));
    faults
}
