//! Real partitions between real processes: three `dso-server` members (rf 3) in network
//! namespaces of their own, the recorded workload running from a hub namespace, the
//! configuration in moto's S3 server there, and one partition of every kind (pair cut, one
//! direction, a member cut from its peers, from everything, a bridge member, from the store), each held past suspicion and healed, while waves of cloud
//! threads (killed, retried, raced by backups) move amounts between accounts. The history must
//! be linearizable, no acknowledged increment lost, no call refused for its session, every
//! cloud thread and plain call done with every movement applied once, and the cluster whole
//! again after every heal. (How long each partition stalled the clients is
//! measured, not asserted: `deploy/partitions.sh` reports it.)
//!
//! Needs root and network namespaces: CI has both (and fails if it cannot create them);
//! elsewhere the test says why it skips.

#![cfg(not(madsim))]

mod server;

use std::time::Duration;

use crucial_sim::checker::Verdict;
use crucial_sim::netns::{self, Partition, Topology};
use crucial_sim::partitions::{run_partitions, session_refusals, unanswered, PartitionPlan};
use crucial_sim::processes::{ProcessRun, Stop, Store};
use crucial_sim::simulation::verify::verify_history;

#[test]
fn every_kind_of_partition_heals_with_nothing_lost() {
    if let Err(error) = netns::available() {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root and must create namespaces: {error}");
        eprintln!("SKIPPED: cannot create network namespaces here (root needed): {error}");
        return;
    }
    let prefix = format!("crt{}", std::process::id() % 10_000);
    let topology = Topology::create(&prefix, 3).unwrap();
    // The configuration store: moto's S3 server in the hub, so that it can be cut.
    let _store = topology.start_store("crucial").unwrap();
    let plan = PartitionPlan {
        kinds: Partition::ALL.to_vec(),
        rounds: Partition::ALL.len(),
        hold: Duration::from_millis(2_000),
        healed: Duration::from_millis(2_500),
        seed: 3,
        threads_per_wave: 6,
        wave_interval: Duration::from_millis(500),
    };
    let run = ProcessRun {
        server: server::dso_server(),
        work_dir: std::env::temp_dir().join(format!("crucial-partitions-{}", std::process::id())),
        store: Store::S3 { endpoint: netns::STORE_ENDPOINT.into(), bucket: "crucial".into() },
        servers: 3,
        rf: 3,
        clients: 6,
        keys: 8,
        run: Duration::from_millis(4_500 * plan.rounds as u64 + 1_000),
        operations_min: 0,
        stop_at: None,
        stop: Stop::Kill,
        down_for: Duration::ZERO,
        token: None,
        tls: false,
        seed: 3,
        suspect_after_ms: 400,
        steady_clients: 4,
        namespaces: (0..3).map(|member| topology.member(member)).collect(),
    };
    // This test's thread and the runtime's threads live in the hub, as clients do.
    topology.enter_hub().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let outcome = runtime.block_on(run_partitions(run, &topology, &plan, |_| {})).unwrap();
    for round in &outcome.rounds {
        eprintln!("{round:?}");
        assert!(round.whole_after_heal_ms.is_some(), "the cluster never became whole again: {round:?}");
    }
    assert_eq!(outcome.rounds.len(), Partition::ALL.len());
    let removals = outcome.rounds.iter().filter(|round| round.epochs >= 2).count();
    assert!(removals >= 3, "partitions held past suspicion must cost removals: {:?}", outcome.rounds);
    assert!(outcome.run.history.len() > 500, "only {} operations ran", outcome.run.history.len());
    assert_eq!(session_refusals(&outcome.run.history), Vec::<&_>::new());
    assert_eq!(unanswered(&outcome.run.history), 0, "every call that does not park was answered");
    assert_eq!(outcome.run.lost_update(), None);
    let threads = outcome.threads.expect("the cloud threads ran");
    assert!(threads.threads >= 12, "only {} cloud threads ran", threads.threads);
    assert_eq!(threads.failed, Vec::<String>::new(), "every cloud thread finishes within its retries");
    assert_eq!(threads.plain_failures, Vec::<String>::new(), "the program's own calls never fail");
    assert_eq!(threads.wrong_balances, Vec::<String>::new(), "every movement applied exactly once");
    assert_eq!(threads.done.0, threads.done.1, "every transfer counted exactly once");
    let verdict = verify_history(&outcome.run.keys, &outcome.run.history, Duration::from_secs(60));
    assert_eq!(verdict.verdict, Verdict::Linearizable, "{:?}", verdict.violation);
}
