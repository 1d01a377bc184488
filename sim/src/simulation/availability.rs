//! Availability under one partition, judged like safety: a run whose only fault cuts one
//! member off (from its peers, from everything, in one direction, or from the store) must let
//! the rest of the cluster serve within a bound, and must cost a bounded number of
//! configurations. Safety alone was not enough: a cluster whose cut member rejoined again and
//! again (each pending join stopping the members that could serve) stayed linearizable while
//! it served nothing for the whole partition.

use super::nemesis::FaultKind;
use super::run::SimOutcome;
use super::workload::PARKING_TYPES;

/// The longest a call of a client that reaches the majority may take while one member is cut
/// off, in multiples of the members' `suspect_after_ms` (300 ms in the simulator): suspicion
/// (1), the removal's transfer and store round trips, the client's resends and redirect to the
/// new primary, and after the heal the cut member's join (its transfer), with room for the
/// simulator's store latency and its 5% of lost store requests. The real-process harness
/// reports its waits against 1.5 s with `--suspect-after-ms 400` (measured, not asserted).
pub const WAIT_SUSPICIONS_MAX: u64 = 5;
/// The simulator's `suspect_after_ms` (see `run::TIMING`).
pub const SUSPECT_AFTER_MS: u64 = 300;
/// Configurations one partition may cost: the cut member's removal, its join after the heal,
/// and one more of each for a cut whose sides both hear a majority (a pair cut: either end may
/// be removed first, and the other then may follow if the first removal raced).
pub const EPOCHS_PER_PARTITION_MAX: u64 = 4;

/// Whether `kind` cuts a single member off while every client still reaches a majority of the
/// members: the faults the bound on waits applies to.
pub fn cuts_one_member(kind: FaultKind) -> bool {
    matches!(
        kind,
        FaultKind::IsolateNode | FaultKind::IsolatePeers | FaultKind::PeerOneWay | FaultKind::StoreCut
    )
}

/// Whether `kind` is a partition whose cost in configurations is bounded.
pub fn is_partition(kind: FaultKind) -> bool {
    cuts_one_member(kind) || matches!(kind, FaultKind::Halves | FaultKind::Bridge)
}

/// What one partition cost a run: the longest wait of a call that does not park (from the
/// fault's start on; a call given up counts as waiting until the end), and the epochs stored
/// from the fault's start to the end of the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionCost {
    /// The fault.
    pub kind: FaultKind,
    /// How long it was held.
    pub held_ms: u64,
    /// The longest wait of a call that does not park, in ms.
    pub longest_wait_ms: u64,
    /// Configurations stored from the fault's start to the end of the run.
    pub epochs: u64,
}

/// The cost of a run's one partition, if its only fault is one.
pub fn partition_cost(outcome: &SimOutcome) -> Option<PartitionCost> {
    let [fault] = outcome.faults.as_slice() else { return None };
    if !is_partition(fault.kind) {
        return None;
    }
    let longest_wait_ms = (outcome.history.iter().enumerate())
        .filter(|(_, op)| op.call_ms >= fault.start_ms && !PARKING_TYPES.contains(&op.type_name.as_str()))
        .filter(|(index, _)| !outcome.expired.contains(index))
        .map(|(_, op)| match op.output {
            Some(_) => op.ret_ms - op.call_ms,
            None => outcome.simulated_ms.saturating_sub(op.call_ms),
        })
        .max()
        .unwrap_or(0);
    Some(PartitionCost {
        kind: fault.kind,
        held_ms: fault.end_ms - fault.start_ms,
        longest_wait_ms,
        epochs: outcome.epochs_since_first_fault,
    })
}

/// Why a run's one partition cost more than its bounds, if it did.
pub fn availability_failure(outcome: &SimOutcome) -> Option<String> {
    let cost = partition_cost(outcome)?;
    let wait_max_ms = WAIT_SUSPICIONS_MAX * SUSPECT_AFTER_MS;
    if cuts_one_member(cost.kind) && cost.longest_wait_ms > wait_max_ms {
        return Some(format!(
            "availability: under {} (held {} ms) a call of a client that reaches the majority waited \
             {} ms (at most {wait_max_ms} ms)",
            cost.kind, cost.held_ms, cost.longest_wait_ms
        ));
    }
    (cost.epochs > EPOCHS_PER_PARTITION_MAX).then(|| {
        format!(
            "availability: {} (held {} ms) cost {} configurations (at most {EPOCHS_PER_PARTITION_MAX})",
            cost.kind, cost.held_ms, cost.epochs
        )
    })
}
