//! Availability under one partition, in the simulator: with one member cut off (from its
//! peers, from everything, in one direction, from the store) the calls of clients that reach
//! the majority complete within a bound and the partition costs a bounded number of
//! configurations; a joiner that proposes without probing (the flapping a real partition
//! caused) is caught, and so is a client that takes a late duplicate answer as a refusal of
//! its whole session (the "already acknowledged" failure).

use std::time::Duration;

#[cfg(crucial_canary)]
use crucial_dso::core::node::Canary;
use crucial_sim::checker::Verdict;
use crucial_sim::simulation::availability::{
    partition_cost, EPOCHS_PER_PARTITION_MAX, SUSPECT_AFTER_MS, WAIT_SUSPICIONS_MAX,
};
use crucial_sim::simulation::nemesis::FaultKind;
use crucial_sim::simulation::run::{SimConfig, Simulation};
use crucial_sim::simulation::verify::verify;

const BUDGET: Duration = Duration::from_secs(20);

/// One fault of `kind`, held up to 3 s, in the default cluster of `seed`.
fn one_partition(kind: FaultKind, seed: u64) -> SimConfig {
    SimConfig { faults: [kind].into(), fault_count: 1, fault_phase_ms: 6_000, ..SimConfig::new(seed) }
}

#[test]
fn one_member_cut_off_costs_a_bounded_wait_and_two_configurations() {
    let kinds = [FaultKind::IsolatePeers, FaultKind::IsolateNode, FaultKind::PeerOneWay, FaultKind::StoreCut];
    let mut removals = 0;
    for kind in kinds {
        for seed in 0..30 {
            let outcome = Simulation::new(one_partition(kind, seed)).run();
            assert_eq!(verify(&outcome, BUDGET).verdict, Verdict::Linearizable, "{kind}, seed {seed}");
            assert_eq!(outcome.run_failure(), None, "{kind}, seed {seed}");
            let cost = partition_cost(&outcome).expect("one partition");
            assert!(
                cost.longest_wait_ms <= WAIT_SUSPICIONS_MAX * SUSPECT_AFTER_MS,
                "{kind}, seed {seed}: {cost:?}"
            );
            assert!(cost.epochs <= EPOCHS_PER_PARTITION_MAX, "{kind}, seed {seed}: {cost:?}");
            removals += usize::from(cost.epochs >= 2);
        }
    }
    // Not vacuous: most partitions outlast a suspicion and cost a removal and a join.
    assert!(removals > 60, "only {removals} of 120 partitions led to a removal");
}

#[test]
fn a_split_costs_a_bounded_number_of_configurations() {
    for kind in [FaultKind::Halves, FaultKind::Bridge] {
        for seed in 0..30 {
            let outcome = Simulation::new(one_partition(kind, seed)).run();
            assert_eq!(verify(&outcome, BUDGET).verdict, Verdict::Linearizable, "{kind}, seed {seed}");
            assert_eq!(outcome.run_failure(), None, "{kind}, seed {seed}");
        }
    }
}

/// The first seed in `0..seeds` whose run fails with `canary` on, in `configure`'s scenario.
#[cfg(crucial_canary)]
fn first_failure(canary: &Canary, seeds: u64, configure: impl Fn(u64) -> SimConfig) -> Option<(u64, String)> {
    (0..seeds).find_map(|seed| {
        let outcome = Simulation::new(SimConfig { canary: canary.clone(), ..configure(seed) }).run();
        let verdict = verify(&outcome, BUDGET);
        if verdict.verdict == Verdict::NotLinearizable {
            return Some((seed, "not linearizable".to_string()));
        }
        outcome.run_failure().map(|reason| (seed, reason))
    })
}

#[cfg(crucial_canary)]
#[test]
fn canary_join_without_probing_is_caught_by_availability() {
    let canary = Canary { join_without_probing: true, ..Canary::default() };
    let cut_from_peers = |seed| one_partition(FaultKind::IsolatePeers, seed);
    let (seed, reason) = first_failure(&canary, 50, cut_from_peers)
        .expect("rejoining without probing went unnoticed for 50 seeds");
    assert!(reason.starts_with("availability"), "seed {seed} failed for another reason: {reason}");
}

#[cfg(crucial_canary)]
#[test]
fn canary_quorum_from_unsuspected_is_caught_by_availability() {
    let canary = Canary { quorum_from_unsuspected: true, ..Canary::default() };
    let cut_from_peers = |seed| SimConfig { nodes: 3, rf: 3, ..one_partition(FaultKind::IsolatePeers, seed) };
    let (seed, reason) = first_failure(&canary, 300, cut_from_peers)
        .expect("a cut member removing a peer with a stale majority went unnoticed for 300 seeds");
    assert!(reason.starts_with("availability"), "seed {seed} failed for another reason: {reason}");
}

#[cfg(crucial_canary)]
#[test]
fn canary_client_refusals_from_duplicates_is_caught() {
    let canary = Canary { client_refusals_from_duplicates: true, ..Canary::default() };
    let late_copies = |seed| SimConfig {
        faults: [FaultKind::Delay, FaultKind::Reorder, FaultKind::Duplication, FaultKind::ClientRetry].into(),
        ..SimConfig::new(seed)
    };
    let (seed, reason) = first_failure(&canary, 100, late_copies)
        .expect("a session refused by a late duplicate went unnoticed for 100 seeds");
    assert!(reason.contains("session was refused"), "seed {seed} failed for another reason: {reason}");
    assert!(reason.contains("already acknowledged"), "seed {seed}: {reason}");
}
