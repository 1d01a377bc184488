//! The shipped binaries as users run them: `dso-server` as a real process serving a client,
//! and `dso-bench` producing a measurement.

#![cfg(not(madsim))]

use std::process::{Command, Stdio};
use std::time::Duration;

use crucial_dso::Dso;

fn free_loopback_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Kills the child process when the test ends, however it ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `dso-server` process bound to `addr`, with `extra` flags.
fn start_server(addr: &str, extra: &[&str]) -> Running {
    Running(
        Command::new(env!("CARGO_BIN_EXE_dso-server"))
            .args(["--bind", addr])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// A client of the server at `addr`, once it accepts connections (within 5 s).
async fn connect_when_ready(addr: &str, config: crucial_dso::client::ClientConfig) -> Dso {
    for _ in 0..100 {
        if let Ok(connected) = Dso::connect_with(addr.to_string(), config.clone()).await {
            return connected;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("dso-server at {addr} did not accept connections within 5 s");
}

#[tokio::test]
async fn dso_server_process_serves_clients() {
    let addr = format!("127.0.0.1:{}", free_loopback_port());
    let _server = start_server(&addr, &[]);
    let client = connect_when_ready(&addr, Default::default()).await;
    let hits = client.atomic_long("hits");
    assert_eq!(hits.add_and_get(5).await.unwrap(), 5);
    assert_eq!(Dso::connect(addr).await.unwrap().atomic_long("hits").get().await.unwrap(), 5);
}

#[test]
fn dso_bench_reports_a_measurement() {
    let output = Command::new(env!("CARGO_BIN_EXE_dso-bench"))
        .args(["--clients", "3", "--ops", "300", "--warmup-ops", "5", "--format", "csv"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let line = String::from_utf8(output.stdout).unwrap();
    let fields: Vec<&str> = line.trim().split(',').collect();
    assert_eq!(fields.len(), 6, "clients,ops,seconds,ops_per_second,p50_us,p99_us: {line}");
    assert_eq!(fields[0], "3");
    assert_eq!(fields[1], "300");
    assert!(fields[3].parse::<f64>().unwrap() > 0.0);
    assert!(fields[4].parse::<u64>().unwrap() <= fields[5].parse::<u64>().unwrap(), "p50 <= p99");
}

#[test]
fn dso_server_help_documents_every_flag() {
    let output = Command::new(env!("CARGO_BIN_EXE_dso-server")).arg("--help").output().unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in [
        "--bind",
        "--frame-bytes-max",
        "--connections-max",
        "--session-calls-max",
        "--sessions-max",
        "--threads",
    ] {
        assert!(help.contains(flag), "--help mentions {flag}");
    }
    assert!(help.contains("127.0.0.1:11222"), "the default bind is loopback");
}

#[tokio::test]
async fn a_dead_server_gives_a_clear_error_not_a_hang() {
    use crucial_dso::client::ClientConfig;
    use crucial_dso::core::client_session::SessionConfig;
    use crucial_dso::DsoError;

    let addr = format!("127.0.0.1:{}", free_loopback_port());
    match Dso::connect(addr.clone()).await {
        Err(DsoError::Unavailable { .. }) => {}
        other => panic!("connecting to nothing should be Unavailable, got {other:?}"),
    }

    let mut server = start_server(&addr, &[]);
    let config = ClientConfig {
        session: SessionConfig {
            resend_after_ms: 100,
            call_timeout_ms: Some(1_000),
            in_flight_max: 8,
            retain_records: false,
        },
        ..ClientConfig::default()
    };
    let client = connect_when_ready(&addr, config).await;
    client.counter("c").increment().await.unwrap();
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    let started = std::time::Instant::now();
    match client.counter("c").increment().await {
        Err(DsoError::Unavailable { .. } | DsoError::Timeout { .. }) => {}
        other => panic!("a call to a dead server should fail clearly, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5), "it gives up after its call timeout");
}

/// The configuration in `path`, once `ready` accepts it (polled for up to 30 s).
async fn wait_for_config(
    path: &std::path::Path,
    ready: impl Fn(&crucial_dso::cluster::Configuration) -> bool,
) -> crucial_dso::cluster::Configuration {
    use crucial_dso::cluster::{ConfigStore, FileConfigStore};
    let store = FileConfigStore::new(path);
    for _ in 0..600 {
        if let Ok(Some(current)) = store.load().await {
            if ready(&current.config) {
                return current.config;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the configuration in {} never got ready", path.display());
}

#[tokio::test]
async fn servers_join_and_leave_through_file_discovery() {
    let dir = std::env::temp_dir().join(format!("crucial-discovery-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cluster.json");
    let _ = std::fs::remove_file(&path);
    let discovery = format!("file:{}", path.display());
    let addrs: Vec<String> = (0..3).map(|_| format!("127.0.0.1:{}", free_loopback_port())).collect();
    let servers: Vec<Running> =
        // A generous suspicion timeout: the test shares two cores with the rest of the suite.
        addrs.iter().map(|addr| start_server(addr, &["--discovery", &discovery, "--suspect-after-ms", "5000"])).collect();
    let joined = wait_for_config(&path, |config| config.members.len() == 3 && config.is_active()).await;
    let mut listed: Vec<&str> = joined.members.iter().map(|member| member.addr.as_str()).collect();
    listed.sort_unstable();
    let mut expected: Vec<&str> = addrs.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(listed, expected);
    assert!(joined.epoch >= 3, "one epoch per join at least");

    // A graceful stop (SIGTERM) hands the member's keys over, in a new epoch, then exits.
    let mut servers = servers;
    let leaving = &mut servers[1];
    let status = Command::new("kill").args(["-TERM", &leaving.0.id().to_string()]).status().unwrap();
    assert!(status.success());
    let left = wait_for_config(&path, |config| config.members.len() == 2 && config.is_active()).await;
    assert!(left.epoch > joined.epoch);
    assert!(left.members.iter().all(|member| member.addr != addrs[1]));
    let exited = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        leaving.0.try_wait().unwrap().is_some()
    });
    assert!(exited, "the leaving server exits once its keys moved");
}

#[test]
fn an_unknown_discovery_scheme_is_refused_with_a_clear_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_dso-server"))
        .args(["--discovery", "zk://nowhere"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("use file:PATH or s3://bucket/prefix"));
}
