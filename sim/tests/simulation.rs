//! The simulator on the real node: seeds replay exactly, the correct node passes a sweep under
//! every survivable fault (safety, then liveness after the heal), and each canary is caught
//! within a bounded number of seeds.

use std::time::Duration;

use crucial_dso::node::Canary;
use crucial_sim::checker::Verdict;
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
        assert_eq!(outcome.liveness_failure(), None, "seed {seed}");
        operations += verdict.operations;
    }
    assert!(operations > 10_000, "the sweep checked {operations} operations");
}

/// The first seed in `0..seeds` whose run fails (safety or liveness) with `canary` on.
fn first_failing_seed(canary: Canary, seeds: u64) -> Option<(u64, String)> {
    (0..seeds).find_map(|seed| {
        let config = SimConfig { canary: canary.clone(), ..SimConfig::new(seed) };
        let outcome = Simulation::new(config).run();
        let verdict = verify(&outcome, BUDGET);
        if verdict.verdict == Verdict::NotLinearizable {
            Some((seed, format!("not linearizable on {}", verdict.violation.unwrap().key)))
        } else {
            outcome.liveness_failure().map(|reason| (seed, reason))
        }
    })
}

#[test]
fn canary_skip_deduplication_is_caught() {
    let found = first_failing_seed(Canary { skip_deduplication: true, ..Canary::default() }, 50);
    assert!(found.is_some(), "applying retries twice went unnoticed for 50 seeds");
    eprintln!("skip_deduplication caught: seed {:?}", found);
}

#[test]
fn canary_stale_reads_is_caught() {
    let found = first_failing_seed(Canary { stale_reads: true, ..Canary::default() }, 50);
    assert!(found.is_some(), "stale reads went unnoticed for 50 seeds");
    eprintln!("stale_reads caught: seed {:?}", found);
}

#[test]
fn canary_drop_timeouts_is_caught() {
    let found = first_failing_seed(Canary { drop_timeouts: true, ..Canary::default() }, 50);
    assert!(found.is_some(), "hanging timed waits went unnoticed for 50 seeds");
    eprintln!("drop_timeouts caught: seed {:?}", found);
}

#[test]
fn crashing_the_only_copy_loses_acknowledged_state_and_the_checker_sees_it() {
    use crucial_sim::simulation::nemesis::FaultKind;
    let caught = (0..50).any(|seed| {
        let config = SimConfig { faults: [FaultKind::Crash].into(), fault_count: 3, ..SimConfig::new(seed) };
        verify(&Simulation::new(config).run(), BUDGET).verdict == Verdict::NotLinearizable
    });
    assert!(caught, "crashes wipe single-copy nodes; some seed must show lost acknowledged updates");
}
