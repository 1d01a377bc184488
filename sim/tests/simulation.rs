//! The simulator on the real node: seeds replay exactly, the correct cluster passes a sweep
//! under every fault its replication survives (safety, then liveness after the heal), and each
//! canary is caught within a bounded number of seeds.

use std::time::Duration;

#[cfg(crucial_canary)]
use crucial_dso::core::node::Canary;
use crucial_sim::checker::Verdict;
use crucial_sim::simulation::nemesis::FaultKind;
use crucial_sim::simulation::run::{SimConfig, Simulation};
use crucial_sim::simulation::verify::verify;

const BUDGET: Duration = Duration::from_secs(20);

#[test]
fn a_seed_replays_bit_for_bit() {
    let first = Simulation::new(SimConfig::new(42)).run();
    let second = Simulation::new(SimConfig::new(42)).run();
    let other = Simulation::new(SimConfig::new(43)).run();
    assert_eq!(first.trace_hash, second.trace_hash);
    assert_eq!(first.history, second.history);
    assert_ne!(first.trace_hash, other.trace_hash);
    assert!(first.events > 1000, "a run does real work ({} events)", first.events);
}

#[test]
fn correct_node_survives_a_sweep() {
    let mut operations = 0;
    for seed in 0..40 {
        let outcome = Simulation::new(SimConfig::new(seed)).run();
        let verdict = verify(&outcome, BUDGET);
        assert_eq!(
            verdict.verdict,
            Verdict::Linearizable,
            "seed {seed}: {:?} (replay: cargo run -p crucial-sim -- replay --seed {seed})",
            verdict.violation
        );
        assert_eq!(outcome.run_failure(), None, "seed {seed}");
        operations += verdict.operations;
    }
    assert!(operations > 10_000, "the sweep checked {operations} operations");
}

/// The first seed in `0..seeds` whose run fails (safety or liveness) with `canary` on, in the
/// scenario `configure` makes of the default one.
#[cfg(crucial_canary)]
fn first_failing_seed(
    canary: Canary,
    seeds: u64,
    configure: impl Fn(SimConfig) -> SimConfig,
) -> Option<(u64, String)> {
    (0..seeds).find_map(|seed| {
        let config = configure(SimConfig { canary: canary.clone(), ..SimConfig::new(seed) });
        let outcome = Simulation::new(config).run();
        let verdict = verify(&outcome, BUDGET);
        if verdict.verdict == Verdict::NotLinearizable {
            Some((seed, format!("not linearizable on {}", verdict.violation.unwrap().key)))
        } else {
            outcome.run_failure().map(|reason| (seed, reason))
        }
    })
}

/// Deleting a key keeps its session records (a tombstone): without them, a retry of a call
/// made before the delete applies again to the key's next object.
#[cfg(crucial_canary)]
#[test]
fn canary_forget_records_on_delete_is_caught() {
    let found = first_failing_seed(Canary { forget_records_on_delete: true, ..Canary::default() }, 50, |c| c);
    let (seed, reason) = found.expect("a retry applied again after a delete went unnoticed for 50 seeds");
    assert!(reason.starts_with("not linearizable"), "seed {seed} failed for another reason: {reason}");
}

#[cfg(crucial_canary)]
#[test]
fn canary_skip_deduplication_is_caught() {
    let found = first_failing_seed(Canary { skip_deduplication: true, ..Canary::default() }, 50, |c| c);
    assert!(found.is_some(), "applying retries twice went unnoticed for 50 seeds");
    eprintln!("skip_deduplication caught: seed {:?}", found);
}

#[cfg(crucial_canary)]
#[test]
fn canary_stale_reads_is_caught() {
    let found = first_failing_seed(Canary { stale_reads: true, ..Canary::default() }, 50, |c| c);
    assert!(found.is_some(), "stale reads went unnoticed for 50 seeds");
    eprintln!("stale_reads caught: seed {:?}", found);
}

#[cfg(crucial_canary)]
#[test]
fn canary_drop_timeouts_is_caught() {
    let found = first_failing_seed(Canary { drop_timeouts: true, ..Canary::default() }, 50, |c| c);
    assert!(found.is_some(), "hanging timed waits went unnoticed for 50 seeds");
    eprintln!("drop_timeouts caught: seed {:?}", found);
}

#[cfg(crucial_canary)]
#[test]
fn canary_reply_before_backup_acks_is_caught() {
    // Crashes of a primary while slow links hold its entries back from the backups; one hot
    // key, so that the crashed primary is the one everybody uses.
    let crashes = |config: SimConfig| SimConfig {
        nodes: 3,
        rf: 3,
        keys: 1,
        faults: [FaultKind::Crash, FaultKind::Delay].into(),
        fault_count: 6,
        ..config
    };
    let found =
        first_failing_seed(Canary { reply_before_backup_acks: true, ..Canary::default() }, 200, crashes);
    assert!(found.is_some(), "answers ahead of the backups went unnoticed for 200 seeds");
    eprintln!("reply_before_backup_acks caught: seed {:?}", found);
    let correct = (0..50).map(|seed| Simulation::new(crashes(SimConfig::new(seed))).run());
    for outcome in correct {
        assert_eq!(verify(&outcome, BUDGET).verdict, Verdict::Linearizable, "seed {}", outcome.config.seed);
    }
}

#[cfg(crucial_canary)]
#[test]
fn canary_accept_old_epochs_is_caught() {
    let churn = |config: SimConfig| SimConfig {
        faults: [FaultKind::Join, FaultKind::Leave, FaultKind::Loss, FaultKind::Delay].into(),
        fault_count: 8,
        ..config
    };
    let found = first_failing_seed(Canary { accept_old_epochs: true, ..Canary::default() }, 100, churn);
    assert!(found.is_some(), "a deposed primary answering went unnoticed for 100 seeds");
    eprintln!("accept_old_epochs caught: seed {:?}", found);
}

#[cfg(crucial_canary)]
#[test]
fn canary_forget_leave_is_caught() {
    // Members join, leave and are replaced during the workload: some leave is asked while a
    // configuration waits for its state transfer. Every departure must complete by the end.
    let churn = |config: SimConfig| SimConfig {
        faults: [FaultKind::Join, FaultKind::Leave, FaultKind::Replace].into(),
        fault_count: 8,
        ..config
    };
    let found =
        first_failing_seed(Canary { forget_leave_on_activation: true, ..Canary::default() }, 100, churn);
    let (seed, reason) = found.expect("forgotten departures went unnoticed for 100 seeds");
    assert!(reason.contains("asked to leave"), "seed {seed} failed for another reason: {reason}");
    for seed in 0..30 {
        let outcome = Simulation::new(churn(SimConfig::new(seed))).run();
        assert_eq!(
            outcome.liveness_failure(),
            None,
            "seed {seed}: the correct node completes its departures"
        );
    }
}

#[test]
fn losing_every_copy_stalls_instead_of_inventing_state() {
    // One copy per key: a crash loses the only copy of some keys. The cluster must not serve
    // them from nothing; it stays unavailable for them (a liveness failure), never wrong.
    let mut stalled = 0;
    for seed in 0..20 {
        let config =
            SimConfig { rf: 1, faults: [FaultKind::Crash].into(), fault_count: 2, ..SimConfig::new(seed) };
        let outcome = Simulation::new(config).run();
        assert_ne!(verify(&outcome, BUDGET).verdict, Verdict::NotLinearizable, "seed {seed}");
        stalled += usize::from(outcome.liveness_failure().is_some());
    }
    assert!(stalled > 0, "some crash must hit a member holding the only copy of a used key");
}

#[cfg(crucial_canary)]
#[test]
fn canary_non_authoritative_installs_is_caught_by_replica_agreement() {
    // One member's messages to another are lost while clients die with calls in flight: a
    // key's first entries reach one backup but not the member that becomes its primary.
    let split = |config: SimConfig| SimConfig {
        nodes: 3,
        rf: 3,
        faults: [FaultKind::PeerOneWay, FaultKind::ClientCrash].into(),
        ..config
    };
    let found =
        first_failing_seed(Canary { non_authoritative_installs: true, ..Canary::default() }, 200, split);
    let (seed, reason) = found.expect("non-authoritative installs went unnoticed for 200 seeds");
    assert!(reason.contains("replicas disagree"), "seed {seed} failed for another reason: {reason}");
}

#[cfg(crucial_canary)]
#[test]
fn canary_trust_reused_member_ids_is_caught() {
    let restarts = |config: SimConfig| SimConfig {
        faults: [FaultKind::Restart, FaultKind::Loss, FaultKind::Delay].into(),
        fault_count: 10,
        ..config
    };
    let found =
        first_failing_seed(Canary { trust_reused_member_ids: true, ..Canary::default() }, 200, restarts);
    assert!(found.is_some(), "members restarted under their old ids went unnoticed for 200 seeds");
    eprintln!("trust_reused_member_ids caught: seed {found:?}");
}

/// The faults that separate members from each other.
#[cfg(crucial_canary)]
const MEMBER_PARTITIONS: [FaultKind; 4] =
    [FaultKind::Halves, FaultKind::Bridge, FaultKind::IsolatePeers, FaultKind::PeerOneWay];

#[cfg(crucial_canary)]
#[test]
fn canary_answer_without_silent_backups_needs_member_partitions_and_is_caught() {
    let canary = Canary { answer_without_silent_backups: true, ..Canary::default() };
    let partitions = |config: SimConfig| SimConfig { faults: MEMBER_PARTITIONS.into(), ..config };
    let found = first_failing_seed(canary.clone(), 200, partitions);
    assert!(found.is_some(), "a primary going on alone went unnoticed for 200 seeds of member partitions");
    // Faults that never separate two members: the canary's branch never matters.
    let no_member_partition = |config: SimConfig| SimConfig {
        faults: [
            FaultKind::Loss,
            FaultKind::Delay,
            FaultKind::OneWay,
            FaultKind::Ring,
            FaultKind::ClientRetry,
        ]
        .into(),
        ..config
    };
    assert_eq!(first_failing_seed(canary, 50, no_member_partition), None);
}

/// Finding 4's rule: a member hearing fewer than half of its configuration removes no one.
/// Without it, an isolation and a crash (the `rf - 1` faults a run may have) lose every copy:
/// one member is cut from its peers while they are cut from the store, so only it can propose;
/// it removes both, then crashes before the heal. A drawn schedule makes that race rare (the
/// two sides suspect each other together and the store takes one proposal), so the schedule is
/// written out.
#[cfg(crucial_canary)]
#[test]
fn canary_remove_without_majority_is_caught() {
    use crucial_sim::simulation::nemesis::Fault;
    let fault = |kind, target, start_ms, end_ms| Fault { kind, start_ms, end_ms, target, amount: 0 };
    let isolate_then_crash = |config: SimConfig| SimConfig {
        nodes: 3,
        rf: 3,
        fault_override: Some(vec![
            fault(FaultKind::IsolatePeers, 2, 500, 2_500),
            fault(FaultKind::StoreCut, 0, 500, 2_500),
            fault(FaultKind::StoreCut, 1, 500, 2_500),
            fault(FaultKind::Crash, 2, 1_500, 2_600),
        ]),
        ..config
    };
    let canary = Canary { remove_without_majority: true, ..Canary::default() };
    let found = first_failing_seed(canary, 5, isolate_then_crash);
    let (seed, reason) = found.expect("a minority removing the members it cannot hear went unnoticed");
    // Every copy of a key lost: its configuration never activates and the calls on it never
    // complete, or they start again from nothing.
    assert!(
        reason.contains("still pending")
            || reason.starts_with("liveness")
            || reason.starts_with("not linearizable"),
        "seed {seed} failed for another reason: {reason}"
    );
    eprintln!("remove_without_majority caught: seed {seed}: {reason}");
    assert_eq!(
        first_failing_seed(Canary::default(), 20, isolate_then_crash),
        None,
        "the correct rule survives it"
    );
}

#[test]
fn every_fault_kind_is_injected_and_some_overlap_a_state_transfer() {
    let mut injected = std::collections::BTreeMap::<FaultKind, (usize, usize)>::new();
    for seed in 0..60 {
        let outcome = Simulation::new(SimConfig { fault_count: 10, ..SimConfig::new(seed) }).run();
        assert_eq!(outcome.run_failure(), None, "seed {seed}");
        for (fault, during) in outcome.faults.iter().zip(&outcome.faults_during_transfer) {
            let counts = injected.entry(fault.kind).or_default();
            counts.0 += 1;
            counts.1 += usize::from(*during);
        }
    }
    for kind in FaultKind::survivable(2) {
        let (count, during_transfer) = injected.get(&kind).copied().unwrap_or_default();
        assert!(count > 0, "{kind} never injected");
        assert!(during_transfer > 0, "{kind} never overlapped a state transfer ({count} injected)");
    }
}

#[test]
fn the_workload_calls_every_method_of_every_type() {
    use crucial_sim::simulation::verify::methods_of;
    use crucial_sim::simulation::workload::TYPES;
    let mut answered = std::collections::BTreeSet::new();
    for seed in 0..30 {
        let outcome = Simulation::new(SimConfig::new(seed)).run();
        for record in outcome.history.iter().filter(|record| matches!(record.output, Some(Ok(_)))) {
            answered.insert((record.type_name.clone(), record.method.clone()));
        }
    }
    for type_name in TYPES.iter().copied().chain(["Stack"]) {
        assert!(!methods_of(type_name).is_empty(), "{type_name} has methods");
        for method in methods_of(type_name) {
            assert!(
                answered.contains(&(type_name.to_string(), method.to_string())),
                "{type_name}::{method} was never answered"
            );
        }
    }
}

#[test]
fn sessions_keep_several_calls_in_flight_and_keys_are_created_while_faults_last() {
    use crucial_dso::core::object::decode;
    use crucial_sim::simulation::workload::CREATE;
    let (mut overlapping, mut created, mut found_existing) = (0, 0, 0);
    for seed in 0..16 {
        let outcome = Simulation::new(SimConfig::new(seed)).run();
        let history = &outcome.history;
        let during_faults = |call_ms: u64| call_ms < outcome.config.fault_phase_ms;
        // Two calls of one session open at the same time, both answered.
        let mut overlapping_here = 0;
        for (index, first) in history.iter().enumerate() {
            let answered = |ret: u64| ret != u64::MAX;
            overlapping_here += (history[index + 1..].iter())
                .filter(|second| second.id.session == first.id.session && second.call < first.ret)
                .filter(|second| answered(first.ret) && answered(second.ret))
                .count();
        }
        overlapping += overlapping_here;
        for record in history.iter().filter(|record| record.method == CREATE && during_faults(record.call_ms))
        {
            match &record.output {
                Some(Ok(bytes)) if decode::<bool>(bytes) == Ok(true) => created += 1,
                Some(Ok(_)) => found_existing += 1,
                _ => {}
            }
        }
        assert!(overlapping_here > 0, "seed {seed}: no session had two calls in flight");
        assert_eq!(verify(&outcome, Duration::from_secs(30)).verdict, Verdict::Linearizable, "seed {seed}");
    }
    assert!(overlapping > 100, "answered calls of one session overlapped {overlapping} times");
    assert!(
        created > 10 && found_existing > 10,
        "creates during faults: {created} created, {found_existing} found one"
    );
}
