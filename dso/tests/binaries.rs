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

#[tokio::test]
async fn dso_server_process_serves_clients() {
    let addr = format!("127.0.0.1:{}", free_loopback_port());
    let _server = Running(
        Command::new(env!("CARGO_BIN_EXE_dso-server"))
            .args(["--bind", &addr])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut client = None;
    for _ in 0..100 {
        match Dso::connect(addr.clone()).await {
            Ok(connected) => {
                client = Some(connected);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let client = client.expect("dso-server accepts connections within 5 s");
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
    use crucial_dso::client_session::SessionConfig;
    use crucial_dso::DsoError;

    let addr = format!("127.0.0.1:{}", free_loopback_port());
    match Dso::connect(addr.clone()).await {
        Err(DsoError::Unavailable { .. }) => {}
        other => panic!("connecting to nothing should be Unavailable, got {other:?}"),
    }

    let mut server = Running(
        Command::new(env!("CARGO_BIN_EXE_dso-server"))
            .args(["--bind", &addr])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let config = ClientConfig {
        session: SessionConfig { resend_after_ms: 100, call_timeout_ms: Some(1_000), in_flight_max: 8 },
        ..ClientConfig::default()
    };
    let mut client = None;
    for _ in 0..100 {
        if let Ok(connected) = Dso::connect_with(addr.clone(), config.clone()).await {
            client = Some(connected);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let client = client.expect("dso-server accepts connections within 5 s");
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
