//! `cluster-bench` as the benchmark scripts run it: against an in-process DSO server, a real
//! `redis-server`, and a real Redis primary with two replicas (`redis-wait`), each run ending
//! in one CSV line of plausible figures; and a clear error (after `WAIT`'s 5 s bound) where the
//! replicas asked for are not there.
//!
//! The Redis cases are skipped (with a message) where `redis-server` is missing, except under
//! CI, which installs it.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crucial_testkit::{redis_with_dir, spawn_on_free_port, Process};

fn cluster_bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cluster-bench"))
        .args(["--clients", "3", "--ops", "200", "--warmup-ops", "5", "--format", "csv"])
        .args(args)
        .output()
        .unwrap()
}

/// Checks a successful run's CSV line: `clients,ops,seconds,ops_per_second,p50_us,p99_us`.
fn assert_measured(output: Output) {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let line = String::from_utf8(output.stdout).unwrap();
    let fields: Vec<&str> = line.trim().split(',').collect();
    assert_eq!(fields.len(), 6, "clients,ops,seconds,ops_per_second,p50_us,p99_us: {line}");
    assert_eq!(fields[..2], ["3", "600"], "3 clients of 200 operations: {line}");
    assert!(fields[3].parse::<f64>().unwrap() > 0.0, "{line}");
    let (p50, p99): (u64, u64) = (fields[4].parse().unwrap(), fields[5].parse().unwrap());
    assert!(0 < p50 && p50 <= p99, "{line}");
}

#[test]
fn measures_an_in_process_dso_server() {
    assert_measured(cluster_bench(&["--system", "dso", "--workload", "rmw"]));
    assert_measured(cluster_bench(&["--system", "dso", "--workload", "put"]));
}

/// A `redis-server` on a port of its own (its files in a directory of its own, `name`),
/// replicating `primary` if given.
fn redis_server(name: &str, primary: Option<u16>) -> (Process, u16) {
    let dir = std::env::temp_dir().join(format!("crucial-bench-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dir = dir.canonicalize().unwrap();
    let command = |port: u16| {
        let mut command = Command::new("redis-server");
        command.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]);
        command.args(["--repl-diskless-sync-delay", "0"]).arg("--dir").arg(&dir);
        if let Some(primary) = primary {
            command.args(["--replicaof", "127.0.0.1", &primary.to_string()]);
        }
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        command
    };
    spawn_on_free_port(command, redis_with_dir(&dir), Duration::from_secs(10)).unwrap()
}

fn redis_available() -> bool {
    if Command::new("redis-server").arg("--version").output().is_ok_and(|out| out.status.success()) {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "redis-server is needed under CI (apt-get install redis-server)"
    );
    eprintln!("skipping: redis-server is not installed");
    false
}

/// Waits until the primary at `port` has `replicas` replicas online.
fn wait_for_replicas(port: u16, replicas: usize) {
    let mut connection =
        redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap().get_connection().unwrap();
    for _ in 0..200 {
        let info: String = redis::cmd("INFO").arg("replication").query(&mut connection).unwrap();
        if info.matches("state=online").count() == replicas {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the primary on port {port} never had {replicas} replicas online");
}

#[test]
fn measures_redis_and_redis_with_wait() {
    if !redis_available() {
        return;
    }
    let (_primary, port) = redis_server("primary", None);
    let endpoint = format!("127.0.0.1:{port}");
    assert_measured(cluster_bench(&["--system", "redis", "--endpoints", &endpoint]));

    let _replicas = [redis_server("replica-1", Some(port)), redis_server("replica-2", Some(port))];
    wait_for_replicas(port, 2);
    for workload in ["rmw", "put"] {
        assert_measured(cluster_bench(&[
            "--system",
            "redis-wait",
            "--endpoints",
            &endpoint,
            "--workload",
            workload,
        ]));
    }
    let last_written: i64 = redis::Client::open(format!("redis://{endpoint}/"))
        .unwrap()
        .get_connection()
        .and_then(|mut connection| redis::cmd("GET").arg("bench-0").query(&mut connection))
        .unwrap();
    assert!(last_written > 0, "the writes reached the primary");

    let output = cluster_bench(&["--system", "redis-wait", "--endpoints", &endpoint, "--wait-replicas", "3"]);
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("only 2 replicas acknowledged") && error.contains("3 replicas online"), "{error}");
}
