//! `/metrics` over real HTTP: what a server reports in Prometheus's text format after some
//! calls, and what it answers to anything else.

#![cfg(not(madsim))]

use std::net::SocketAddr;
use std::time::Duration;

use crucial_dso::server::{ServerBuilder, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The response to `GET path` at `addr`: its status line and body.
async fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n").as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut response))
        .await
        .unwrap()
        .unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    (head.lines().next().unwrap().to_string(), body.to_string())
}

/// The value of the sample `name` (with its labels) in `text`.
fn sample(text: &str, name: &str) -> f64 {
    let line = text.lines().find(|line| line.starts_with(&format!("{name} "))).unwrap_or_else(|| {
        panic!("no sample {name} in:\n{text}");
    });
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn metrics_count_calls_time_them_and_report_the_node() {
    let config = ServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        metrics_bind: Some("127.0.0.1:0".parse().unwrap()),
        ..ServerConfig::default()
    };
    let server = ServerBuilder::new().config(config).start().await.unwrap();
    let metrics = server.metrics_addr().expect("metrics are served");
    let dso = server.connect().await.unwrap();
    for key in ["a", "b", "c"] {
        dso.atomic_long(key).add_and_get(2).await.unwrap();
    }
    dso.counter("hits").add(1).await.unwrap();
    let unknown = dso.call_raw("x", "NoSuchType", crucial_dso::core::protocol::Action::Release).await;
    assert!(unknown.is_ok(), "a release needs no type: {unknown:?}");

    let (status, text) = get(metrics, "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(sample(&text, "dso_calls_total{type=\"AtomicLong\"}"), 3.0);
    assert_eq!(sample(&text, "dso_calls_total{type=\"Counter\"}"), 1.0);
    assert_eq!(sample(&text, "dso_calls_total{type=\"other\"}"), 1.0, "names no type has are lumped");
    assert_eq!(sample(&text, "dso_call_duration_seconds_count"), 5.0, "every call was answered and timed");
    assert_eq!(sample(&text, "dso_call_duration_seconds_bucket{le=\"+Inf\"}"), 5.0);
    assert!(sample(&text, "dso_call_duration_seconds_sum") > 0.0);
    assert_eq!(sample(&text, "dso_keys"), 5.0, "four objects and the released key");
    assert_eq!(sample(&text, "dso_key_sessions"), 4.0, "one session on each of four keys");
    assert_eq!(sample(&text, "dso_parked_calls"), 0.0);
    assert_eq!(sample(&text, "dso_serving"), 1.0);
    assert_eq!(sample(&text, "dso_epoch"), 1.0, "a standalone server's one configuration");
    assert_eq!(sample(&text, "dso_connections"), 1.0);
    assert!(text.contains("# TYPE dso_call_duration_seconds histogram"), "{text}");

    let (status, _) = get(metrics, "/other").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    drop(dso);
}

#[tokio::test]
async fn without_metrics_bind_nothing_more_listens() {
    let server = ServerBuilder::new().bind("127.0.0.1:0".parse().unwrap()).start().await.unwrap();
    assert_eq!(server.metrics_addr(), None);
}
