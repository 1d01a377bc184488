//! The shipped binary as users run it: `dso-server` as a real process (on a port it picks
//! itself and announces) serving clients, joining and leaving a cluster, and refusing bad flags.

#![cfg(not(madsim))]

use std::process::Command;
use std::time::Duration;

use crucial_dso::Dso;
use crucial_testkit::Process;

/// A `dso-server` process on a loopback port of its own, with `extra` flags, and its address.
fn start_server(extra: &[&str]) -> (Process, String) {
    crucial_testkit::dso_server(env!("CARGO_BIN_EXE_dso-server"), extra).unwrap()
}

#[tokio::test]
async fn dso_server_process_serves_clients() {
    let (_server, addr) = start_server(&[]);
    let client = Dso::connect(addr.clone()).await.unwrap();
    let hits = client.atomic_long("hits");
    assert_eq!(hits.add_and_get(5).await.unwrap(), 5);
    assert_eq!(Dso::connect(addr).await.unwrap().atomic_long("hits").get().await.unwrap(), 5);
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
        "--peer-coalesce-us",
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

    let (mut server, addr) = start_server(&[]);
    let config = ClientConfig {
        session: SessionConfig {
            resend_after_ms: 100,
            call_timeout_ms: Some(1_000),
            in_flight_max: 8,
            retain_records: false,
        },
        ..ClientConfig::default()
    };
    let client = Dso::connect_with(addr.clone(), config).await.unwrap();
    client.counter("c").increment().await.unwrap();
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    let started = std::time::Instant::now();
    match client.counter("c").increment().await {
        Err(DsoError::Unavailable { .. } | DsoError::Timeout { .. }) => {}
        other => panic!("a call to a dead server should fail clearly, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5), "it gives up after its call timeout");
    match Dso::connect(addr).await {
        Err(DsoError::Unavailable { .. }) => {}
        other => panic!("connecting to a dead server should be Unavailable, got {other:?}"),
    }
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
    // A generous suspicion timeout: the test shares two cores with the rest of the suite.
    let (servers, addrs): (Vec<Process>, Vec<String>) =
        (0..3).map(|_| start_server(&["--discovery", &discovery, "--suspect-after-ms", "5000"])).unzip();
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
