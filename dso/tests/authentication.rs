//! The token handshake over real TCP: a server with a token serves only clients and members
//! that present it, and says why it refuses the others; a server never serves a non-loopback
//! address without a token unless told it is insecure.

#![cfg(not(madsim))]

use std::time::Duration;

use crucial_dso::client::{member_status, ClientConfig};
use crucial_dso::cluster::discovery::Discovery;
use crucial_dso::core::auth::Token;
use crucial_dso::server::{ClusterOptions, Server, ServerBuilder, ServerConfig};
use crucial_dso::{Dso, DsoError};

fn token(text: &str) -> Token {
    Token::new(text).expect("a valid token")
}

async fn server_with(secret: &str) -> Server {
    let builder = ServerBuilder::new().bind("127.0.0.1:0".parse().unwrap()).token(token(secret));
    builder.start().await.expect("server starts")
}

async fn connect(server: &Server, token: Option<Token>) -> Result<Dso, DsoError> {
    Dso::connect_with(server.local_addr().to_string(), ClientConfig { token, ..ClientConfig::default() })
        .await
}

/// The body of `GET /metrics` at `addr`.
async fn scrape(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response.split_once("\r\n\r\n").unwrap().1.to_string()
}

#[tokio::test]
async fn the_right_token_is_served_and_a_wrong_or_missing_one_is_refused_with_its_reason() {
    let server = server_with("the-cluster-token-0123").await;
    let dso =
        connect(&server, Some(token("the-cluster-token-0123"))).await.expect("the right token connects");
    assert_eq!(dso.atomic_long("hits").increment_and_get().await.unwrap(), 1);

    for (presented, reason) in [
        (None, "authentication failed: this server requires a token and none was given"),
        (Some(token("the-cluster-token-0124")), "authentication failed: wrong token"),
        (Some(token("the-cluster-token-01234")), "authentication failed: wrong token"),
    ] {
        match connect(&server, presented).await {
            Err(DsoError::Unauthenticated { addr, reason: said }) => {
                assert_eq!(addr, server.local_addr().to_string());
                assert_eq!(said, reason);
            }
            other => panic!("expected a refusal ({reason}), got {other:?}"),
        }
    }
    // Status requests go through the same handshake.
    let addr = server.local_addr().to_string();
    let refused = member_status(&addr, None, None, Duration::from_secs(5)).await;
    assert!(matches!(refused, Err(DsoError::Unauthenticated { .. })), "{refused:?}");
    let right = token("the-cluster-token-0123");
    member_status(&addr, Some(&right), None, Duration::from_secs(5))
        .await
        .expect("the right token gets a status");
    // The server's own client presents its token.
    server.connect().await.expect("Server::connect presents the server's token");
}

/// A refused token would be refused again on every resend: even a client that never gives up
/// on a call (as a cloud thread's session) fails it at once.
#[tokio::test]
async fn a_lazy_client_with_a_wrong_token_fails_its_call_at_once_saying_why() {
    let server = server_with("the-cluster-token-0123").await;
    let mut config = ClientConfig { token: Some(token("not-the-cluster-token")), ..ClientConfig::default() };
    config.session.call_timeout_ms = None;
    let dso = Dso::lazy(vec![server.local_addr().to_string()], config).unwrap();
    let hits = dso.atomic_long("hits");
    match tokio::time::timeout(Duration::from_secs(10), hits.get())
        .await
        .expect("the call fails without waiting for a timeout")
    {
        Err(DsoError::Unauthenticated { reason, .. }) => assert!(reason.contains("wrong token"), "{reason}"),
        other => panic!("expected the call to fail over the token, got {other:?}"),
    }
}

/// (With a token and TLS it starts: `tls.rs`.)
#[tokio::test]
async fn a_non_loopback_bind_needs_a_token_or_insecure() {
    let unspecified = "0.0.0.0:0".parse().unwrap();
    let refused = ServerBuilder::new().bind(unspecified).start().await.expect_err("no token: refused");
    assert!(refused.to_string().contains("`token`"), "{refused}");
    let insecure = ServerBuilder::new().bind(unspecified).insecure();
    insecure.start().await.expect("told insecure, it starts").shutdown().await;
}

#[test]
fn tokens_too_short_are_refused() {
    assert_eq!(Token::new("short").unwrap_err().field, "token");
}

/// Members present the cluster's token to each other: with rf 2 every write waits for the
/// backup's acknowledgement, which only arrives if the member connections were let in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_sharing_a_token_replicate_to_each_other() {
    let dir = std::env::temp_dir().join(format!("crucial-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cluster.json");
    let _ = std::fs::remove_file(&path);
    let discovery: Discovery = format!("file:{}", path.display()).parse().unwrap();
    let member = || {
        let config = ServerConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            cluster: Some(ClusterOptions::new(discovery.clone(), 2)),
            token: Some(token("the-cluster-token-0123")),
            metrics_bind: Some("127.0.0.1:0".parse().unwrap()),
            ..ServerConfig::default()
        };
        ServerBuilder::new().config(config).start()
    };
    let first = member().await.expect("first member starts");
    let second = member().await.expect("second member starts");
    for _ in 0..300 {
        let config = second.configuration();
        if second.is_serving() && first.is_serving() && config.members.len() == 2 && config.is_active() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(second.configuration().members.len(), 2, "both members serve");
    let mut config = ClientConfig { token: Some(token("the-cluster-token-0123")), ..ClientConfig::default() };
    config.session.call_timeout_ms = Some(10_000);
    let dso = Dso::connect_with(first.local_addr().to_string(), config).await.unwrap();
    for key in 0..10 {
        let counter = dso.atomic_long(format!("key-{key}"));
        assert_eq!(counter.add_and_get(5).await.expect("replicated write"), 5);
    }
    // Both members report their link to the other on /metrics.
    for (member, other) in [(&first, &second), (&second, &first)] {
        let text = scrape(member.metrics_addr().unwrap()).await;
        let link = format!("dso_peer_queued_bytes{{peer=\"{}\"}} ", other.member_id());
        assert!(text.contains(&link), "{link} in:\n{text}");
        let epoch = format!("dso_epoch {}\n", member.configuration().epoch);
        assert!(text.contains(&epoch) && text.contains("dso_serving 1\n"), "{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
