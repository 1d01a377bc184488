//! Real processes: three `dso-server` processes on loopback (rf 3) find each other through a
//! configuration file, or through S3 (moto's server, started here), while clients run the
//! simulator's workload over TCP; the primary of a counter is killed with SIGKILL mid-run (or,
//! with a token and TLS required, asked to leave with SIGTERM) and started again (it rejoins as a new
//! member). The recorded history must be linearizable and no acknowledged increment may be lost.

#![cfg(not(madsim))]

mod server;

use std::process::Command;
use std::time::Duration;

use crucial_sim::checker::Verdict;
use crucial_sim::processes::{run_processes, ProcessOutcome, ProcessRun, Stop, Store};
use crucial_sim::simulation::verify::verify_history;

/// Whether servers and clients authenticate and encrypt.
#[derive(Clone, Copy)]
enum Security {
    Off,
    /// A token and TLS, as a real deployment.
    TokenAndTls,
}

fn run(store: Store, stop: Stop, security: Security, name: &str) -> ProcessOutcome {
    let secured = matches!(security, Security::TokenAndTls);
    let run = ProcessRun {
        server: server::dso_server(),
        work_dir: std::env::temp_dir().join(format!("crucial-processes-{name}-{}", std::process::id())),
        store,
        servers: 3,
        rf: 3,
        clients: 4,
        keys: 8,
        run: Duration::from_millis(5_000),
        operations_min: 1_500,
        stop_at: Some(Duration::from_millis(1_500)),
        stop,
        down_for: Duration::from_millis(1_500),
        token: secured.then(|| "a-token-for-this-run-0123".to_string()),
        tls: secured,
        seed: 11,
        suspect_after_ms: 1_000,
        steady_clients: 0,
        namespaces: Vec::new(),
    };
    let work_dir = run.work_dir.clone();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(run_processes(run)).unwrap_or_else(|error| {
        let logs: String = (0..3)
            .map(|index| {
                std::fs::read_to_string(work_dir.join(format!("server-{index}.log"))).unwrap_or_default()
            })
            .collect();
        let tail: String = logs.lines().rev().take(30).collect::<Vec<_>>().join("\n");
        panic!("{error}\nlast server log lines (newest first):\n{tail}")
    })
}

fn assert_correct(outcome: &ProcessOutcome) {
    assert!(outcome.stopped.is_some());
    assert!(outcome.history.len() > 1_000, "only {} operations ran", outcome.history.len());
    let (acknowledged, _) = outcome.increments;
    assert!(acknowledged > 100, "only {acknowledged} increments were acknowledged");
    assert_eq!(outcome.lost_update(), None);
    let verdict = verify_history(&outcome.keys, &outcome.history, Duration::from_secs(60));
    assert_eq!(verdict.verdict, Verdict::Linearizable, "{:?}", verdict.violation);
    let config = &outcome.final_status[0].config;
    assert!(config.epoch >= 5, "three joins, the removal of the stopped member and its return: {config:?}");
}

#[test]
fn a_killed_primary_loses_nothing_with_file_discovery() {
    assert_correct(&run(Store::File, Stop::Kill, Security::Off, "file"));
}

/// SIGTERM under load, with a token and TLS on (as deployed): the primary hands its keys over
/// and leaves, then comes back as a new member; no acknowledged operation is lost.
#[test]
fn a_primary_leaving_under_load_loses_nothing_with_a_token_and_tls() {
    assert_correct(&run(Store::File, Stop::Leave, Security::TokenAndTls, "leave"));
}

/// moto's server on a loopback port of its own, with one bucket; stopped on drop.
fn moto_with_bucket(bucket: &str) -> crucial_testkit::Moto {
    let moto = crucial_testkit::moto().unwrap();
    let create = format!(
        "import boto3; boto3.client('s3', endpoint_url='{}', region_name='us-east-1', \
         aws_access_key_id='test', aws_secret_access_key='test').create_bucket(Bucket='{bucket}')",
        moto.endpoint
    );
    assert!(
        Command::new("python3").args(["-c", &create]).status().unwrap().success(),
        "bucket creation failed"
    );
    moto
}

#[test]
fn a_killed_primary_loses_nothing_with_s3_discovery() {
    let moto = moto_with_bucket("crucial");
    let store = Store::S3 { endpoint: moto.endpoint.clone(), bucket: "crucial".into() };
    assert_correct(&run(store, Stop::Kill, Security::Off, "s3"));
}
