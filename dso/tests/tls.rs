//! TLS over real TCP: a server with a certificate serves clients that trust its CA and its
//! name; a certificate that expired, that another CA signed or that names another server is
//! refused by the client saying so; plain TCP against a TLS port and TLS against a plain port
//! are each refused with a clear error; members of a cluster replicate to each other over TLS.

#![cfg(not(madsim))]

use std::time::Duration;

use crucial_dso::client::{member_status, ClientConfig};
use crucial_dso::cluster::discovery::Discovery;
use crucial_dso::core::auth::Token;
use crucial_dso::core::codec::{decode_frame, encode_frame};
use crucial_dso::core::protocol::{Request, Response, PROTOCOL_VERSION};
use crucial_dso::server::{ClusterOptions, Server, ServerBuilder, ServerConfig, ServerTls};
use crucial_dso::tls::{TlsIdentity, TlsTrust, TLS_NAME_DEFAULT};
use crucial_dso::{Dso, DsoError};
use crucial_testkit::tls::{Issued, TestCa, Validity};
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

fn identity(issued: &Issued) -> TlsIdentity {
    TlsIdentity::from_pem(issued.certificate_pem.as_bytes(), issued.key_pem.as_bytes()).expect("usable PEM")
}

fn trust(ca: &TestCa, name: &str) -> TlsTrust {
    TlsTrust::from_pem(ca.certificate_pem().as_bytes(), name).expect("a usable CA")
}

/// A standalone TLS server on loopback presenting `issued`.
async fn tls_server(issued: &Issued) -> Server {
    let tls = ServerTls { identity: identity(issued), members: None };
    ServerBuilder::new().bind("127.0.0.1:0".parse().unwrap()).tls(tls).start().await.expect("server starts")
}

async fn connect(server: &Server, tls: Option<TlsTrust>) -> Result<Dso, DsoError> {
    let config = ClientConfig { tls, ..ClientConfig::default() };
    Dso::connect_with(server.local_addr().to_string(), config).await
}

/// The reason of a TLS refusal, or a panic saying what came instead.
fn tls_refusal(result: Result<Dso, DsoError>) -> String {
    match result {
        Err(DsoError::Tls { reason, .. }) => reason,
        other => panic!("expected a TLS refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_client_trusting_the_ca_and_the_name_is_served_over_tls() {
    let ca = TestCa::new("test CA");
    let server = tls_server(&ca.issue(TLS_NAME_DEFAULT, Validity::Current)).await;
    let dso = connect(&server, Some(trust(&ca, TLS_NAME_DEFAULT))).await.expect("TLS connects");
    let hits = dso.atomic_long("hits");
    for expected in 1..=100 {
        assert_eq!(hits.increment_and_get().await.unwrap(), expected);
    }
    // Large answers cross TLS records whole.
    let blob = dso.atomic_byte_array("blob", 1 << 20).await.unwrap();
    blob.set(1_000_000, 7).await.unwrap().unwrap();
    assert_eq!(blob.get(1_000_000).await.unwrap(), Ok(7));
    let status = member_status(
        &server.local_addr().to_string(),
        None,
        Some(&trust(&ca, TLS_NAME_DEFAULT)),
        Duration::from_secs(5),
    )
    .await
    .expect("status over TLS");
    assert!(status.serving);
}

#[tokio::test]
async fn an_expired_certificate_another_cas_or_another_names_is_refused_by_the_client() {
    let ca = TestCa::new("test CA");
    let expired = tls_server(&ca.issue(TLS_NAME_DEFAULT, Validity::Expired)).await;
    let reason = tls_refusal(connect(&expired, Some(trust(&ca, TLS_NAME_DEFAULT))).await);
    assert!(reason.contains("expired"), "{reason}");

    let other_ca = TestCa::new("another CA");
    let foreign = tls_server(&other_ca.issue(TLS_NAME_DEFAULT, Validity::Current)).await;
    let reason = tls_refusal(connect(&foreign, Some(trust(&ca, TLS_NAME_DEFAULT))).await);
    assert!(reason.contains("UnknownIssuer"), "{reason}");

    let misnamed = tls_server(&ca.issue("another-cluster", Validity::Current)).await;
    let reason = tls_refusal(connect(&misnamed, Some(trust(&ca, TLS_NAME_DEFAULT))).await);
    assert!(reason.contains("not valid for name"), "{reason}");
}

#[tokio::test]
async fn plain_tcp_to_a_tls_port_is_told_to_use_tls() {
    let ca = TestCa::new("test CA");
    let server = tls_server(&ca.issue(TLS_NAME_DEFAULT, Validity::Current)).await;
    let reason = tls_refusal(connect(&server, None).await);
    assert!(reason.contains("serves TLS only"), "{reason}");
    // A client that never gives up on a call (as a cloud thread's session) fails it at once.
    let mut config = ClientConfig::default();
    config.session.call_timeout_ms = None;
    let lazy = Dso::lazy(vec![server.local_addr().to_string()], config).unwrap();
    let hits = lazy.atomic_long("hits");
    match tokio::time::timeout(Duration::from_secs(10), hits.get()).await.expect("fails at once") {
        Err(DsoError::Tls { reason, .. }) => assert!(reason.contains("serves TLS only"), "{reason}"),
        other => panic!("expected the call to fail for want of TLS, got {other:?}"),
    }
    // The server goes on serving TLS clients.
    let dso = connect(&server, Some(trust(&ca, TLS_NAME_DEFAULT))).await.expect("TLS still connects");
    assert_eq!(dso.atomic_long("hits").increment_and_get().await.unwrap(), 1);
}

/// Dropping one half of a TLS stream closes nothing by itself: a dropped client must still
/// close its connection, or the server holds it (and a connection slot) for ever.
#[tokio::test]
async fn a_dropped_tls_client_closes_its_connection() {
    let ca = TestCa::new("test CA");
    let issued = ca.issue(TLS_NAME_DEFAULT, Validity::Current);
    let config = ServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        tls: Some(ServerTls { identity: identity(&issued), members: None }),
        metrics_bind: Some("127.0.0.1:0".parse().unwrap()),
        ..ServerConfig::default()
    };
    let server = ServerBuilder::new().config(config).start().await.unwrap();
    let metrics = server.metrics_addr().unwrap();
    let open = || async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(metrics).await.unwrap();
        stream.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").await.unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).await.unwrap();
        let line = text.lines().find(|line| line.starts_with("dso_connections ")).unwrap().to_string();
        line["dso_connections ".len()..].parse::<usize>().unwrap()
    };
    for _ in 0..5 {
        let dso = connect(&server, Some(trust(&ca, TLS_NAME_DEFAULT))).await.unwrap();
        dso.atomic_long("hits").increment_and_get().await.unwrap();
    }
    let mut connections = open().await;
    for _ in 0..100 {
        if connections == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        connections = open().await;
    }
    assert_eq!(connections, 0, "every dropped client's connection was closed");
}

#[tokio::test]
async fn tls_to_a_plain_port_is_refused_and_asks_whether_the_server_serves_tls() {
    let ca = TestCa::new("test CA");
    let server = Server::embedded().await.unwrap();
    let reason = tls_refusal(connect(&server, Some(trust(&ca, TLS_NAME_DEFAULT))).await);
    assert!(reason.contains("does the server serve TLS?"), "{reason}");
    // The server goes on serving plain clients.
    let dso = connect(&server, None).await.expect("plain still connects");
    assert_eq!(dso.atomic_long("hits").increment_and_get().await.unwrap(), 1);
}

/// A refused certificate is refused again on every resend: even a client that never gives up
/// on a call (as a cloud thread's session) fails it at once.
#[tokio::test]
async fn a_lazy_client_refusing_the_certificate_fails_its_call_at_once() {
    let ca = TestCa::new("test CA");
    let server = tls_server(&ca.issue(TLS_NAME_DEFAULT, Validity::Expired)).await;
    let mut config = ClientConfig { tls: Some(trust(&ca, TLS_NAME_DEFAULT)), ..ClientConfig::default() };
    config.session.call_timeout_ms = None;
    let dso = Dso::lazy(vec![server.local_addr().to_string()], config).unwrap();
    let hits = dso.atomic_long("hits");
    let call = tokio::time::timeout(Duration::from_secs(10), hits.get());
    match call.await.expect("the call fails without waiting for a timeout") {
        Err(DsoError::Tls { reason, .. }) => assert!(reason.contains("expired"), "{reason}"),
        other => panic!("expected the call to fail over the certificate, got {other:?}"),
    }
}

#[tokio::test]
async fn a_non_loopback_bind_needs_tls_and_a_token_or_insecure() {
    let ca = TestCa::new("test CA");
    let issued = ca.issue(TLS_NAME_DEFAULT, Validity::Current);
    let tls = ServerTls { identity: identity(&issued), members: None };
    let token = Token::new("the-cluster-token-0123").unwrap();
    let unspecified = "0.0.0.0:0".parse().unwrap();
    let token_only = ServerBuilder::new().bind(unspecified).token(token.clone());
    let refused = token_only.start().await.expect_err("a token without TLS: refused");
    assert!(refused.to_string().contains("`tls`") && refused.to_string().contains("clear text"), "{refused}");
    let tls_only = ServerBuilder::new().bind(unspecified).tls(tls.clone());
    let refused = tls_only.start().await.expect_err("TLS without a token: refused");
    assert!(refused.to_string().contains("`token`"), "{refused}");
    let both = ServerBuilder::new().bind(unspecified).token(token).tls(tls.clone());
    both.start().await.expect("with both it starts").shutdown().await;
}

#[test]
fn unusable_pem_is_refused_naming_what_is_wrong() {
    let error = TlsIdentity::from_pem(b"not a certificate", b"not a key").unwrap_err();
    assert_eq!(error.what, "certificate chain");
    let ca = TestCa::new("test CA");
    let issued = ca.issue(TLS_NAME_DEFAULT, Validity::Current);
    let error = TlsIdentity::from_pem(issued.certificate_pem.as_bytes(), b"no key here").unwrap_err();
    assert_eq!(error.what, "private key");
    let other = ca.issue(TLS_NAME_DEFAULT, Validity::Current);
    let error =
        TlsIdentity::from_pem(issued.certificate_pem.as_bytes(), other.key_pem.as_bytes()).unwrap_err();
    assert_eq!(error.what, "certificate chain", "a key that is not the certificate's: {error}");
    assert_eq!(TlsTrust::from_pem(b"", TLS_NAME_DEFAULT).unwrap_err().what, "CA");
    assert_eq!(TlsTrust::from_pem(ca.certificate_pem().as_bytes(), "not a name!").unwrap_err().what, "name");
}

fn member_config(discovery: &Discovery, tls: ServerTls, token: &Token) -> ServerConfig {
    ServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        cluster: Some(ClusterOptions::new(discovery.clone(), 2)),
        token: Some(token.clone()),
        tls: Some(tls),
        ..ServerConfig::default()
    }
}

/// With rf 2 every write waits for the backup's acknowledgement, which only arrives if the
/// members reached each other over TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_replicate_to_each_other_over_tls() {
    let dir = std::env::temp_dir().join(format!("crucial-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cluster.json");
    let _ = std::fs::remove_file(&path);
    let discovery: Discovery = format!("file:{}", path.display()).parse().unwrap();
    let ca = TestCa::new("test CA");
    let token = Token::new("the-cluster-token-0123").unwrap();
    let tls = || ServerTls {
        identity: identity(&ca.issue(TLS_NAME_DEFAULT, Validity::Current)),
        members: Some(trust(&ca, TLS_NAME_DEFAULT)),
    };
    let mut untrusting = member_config(&discovery, tls(), &token);
    untrusting.tls.as_mut().unwrap().members = None;
    let refused = ServerBuilder::new().config(untrusting).start().await.expect_err("a member must trust");
    assert!(refused.to_string().contains("tls.members"), "{refused}");

    let first = ServerBuilder::new().config(member_config(&discovery, tls(), &token)).start().await.unwrap();
    let second = ServerBuilder::new().config(member_config(&discovery, tls(), &token)).start().await.unwrap();
    for _ in 0..300 {
        let config = second.configuration();
        if second.is_serving() && first.is_serving() && config.members.len() == 2 && config.is_active() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(second.configuration().members.len(), 2, "both members serve");
    let dso = first.connect().await.expect("Server::connect speaks TLS with the members' trust");
    for key in 0..10 {
        let counter = dso.atomic_long(format!("key-{key}"));
        assert_eq!(counter.add_and_get(5).await.expect("replicated write"), 5);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Introduces `stream`'s end as member 7 presenting `token`; the first frame the server
/// answered before it closed, if any.
async fn answer_to_member_hello(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    token: Option<Token>,
) -> Option<Response> {
    let mut frame = Vec::new();
    encode_frame(&Request::PeerHello { protocol_version: PROTOCOL_VERSION, from: 7, token }, &mut frame);
    stream.write_all(&frame).await.unwrap();
    stream.flush().await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    decode_frame::<Response>(&answer, 1 << 20).ok().flatten().map(|(response, _)| response)
}

/// The token alone, which every client holds, does not make a member: a connection that
/// introduces itself as one must have presented a certificate the members' CA signed.
#[tokio::test]
async fn a_client_with_the_token_but_no_member_certificate_cannot_speak_as_a_member() {
    let ca = TestCa::new("test CA");
    let token = Token::new("the-cluster-token-0123").unwrap();
    let tls = ServerTls {
        identity: identity(&ca.issue(TLS_NAME_DEFAULT, Validity::Current)),
        members: Some(trust(&ca, TLS_NAME_DEFAULT)),
    };
    let dir = std::env::temp_dir().join(format!("crucial-tls-member-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let discovery: Discovery = format!("file:{}", dir.join("cluster.json").display()).parse().unwrap();
    let server = ServerBuilder::new().config(member_config(&discovery, tls, &token)).start().await.unwrap();
    // A TLS client that trusts the CA and presents no certificate, as every client does.
    let mut roots = rustls::RootCertStore::empty();
    for certificate in rustls_pki_types::CertificateDer::pem_slice_iter(ca.certificate_pem().as_bytes()) {
        roots.add(certificate.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(server.local_addr()).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from(TLS_NAME_DEFAULT).unwrap();
    let stream = connector.connect(name, tcp).await.expect("the handshake needs no certificate");
    match answer_to_member_hello(stream, Some(token)).await {
        Some(Response::Unauthenticated { reason }) => {
            assert!(reason.contains("a member must present a certificate"), "{reason}")
        }
        other => panic!("expected the member hello to be refused, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A member hello is for cluster members only: to a standalone server it could otherwise
/// carry membership messages that retire the server's keys.
#[tokio::test]
async fn a_standalone_server_refuses_member_hellos() {
    let server = Server::embedded().await.unwrap();
    let stream = tokio::net::TcpStream::connect(server.local_addr()).await.unwrap();
    match answer_to_member_hello(stream, None).await {
        Some(Response::Refused { reason }) => {
            assert!(reason.contains("no cluster member"), "{reason}")
        }
        other => panic!("expected the member hello to be refused, got {other:?}"),
    }
}

#[test]
fn a_ca_file_holding_a_private_key_is_refused() {
    let ca = TestCa::new("test CA");
    let issued = ca.issue(TLS_NAME_DEFAULT, Validity::Current);
    let with_key = format!("{}{}", ca.certificate_pem(), issued.key_pem);
    let error = TlsTrust::from_pem(with_key.as_bytes(), TLS_NAME_DEFAULT).unwrap_err();
    assert!(error.reason.contains("private key"), "{error}");
}
