//! Every configuration rejects the values that cannot work with a typed error naming the
//! setting, before anything binds, connects or hangs.

#![cfg(not(madsim))]

use std::sync::Arc;

use crucial_dso::client::ClientConfig;
use crucial_dso::cluster::discovery::Discovery;
use crucial_dso::cluster::Member;
use crucial_dso::core::client_session::SessionConfig;
use crucial_dso::core::node::{ClusterTiming, Node, NodeConfig};
use crucial_dso::core::registry::Registry;
use crucial_dso::server::{ClusterOptions, LinkConfig, ServerBuilder, ServerConfig};
use crucial_dso::{ConfigError, Dso, DsoError};

/// The setting a client configuration is refused for.
fn client_refusal(config: ClientConfig) -> &'static str {
    match Dso::lazy(vec!["127.0.0.1:1".into()], config) {
        Err(DsoError::Config(ConfigError { field, .. })) => field,
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[test]
fn client_settings_that_would_hang_or_spin_are_refused() {
    let session = |session: SessionConfig| ClientConfig { session, ..ClientConfig::default() };
    let window = session(SessionConfig { in_flight_max: 0, ..SessionConfig::default() });
    assert_eq!(client_refusal(window), "in_flight_max", "a window of no calls hangs every call");
    let spin = session(SessionConfig { resend_after_ms: 0, ..SessionConfig::default() });
    assert_eq!(client_refusal(spin), "resend_after_ms", "resending without pause spins");
    let instant = session(SessionConfig { call_timeout_ms: Some(0), ..SessionConfig::default() });
    assert_eq!(client_refusal(instant), "call_timeout_ms");
    assert_eq!(
        client_refusal(ClientConfig { connect_timeout_ms: 0, ..ClientConfig::default() }),
        "connect_timeout_ms"
    );
    assert_eq!(
        client_refusal(ClientConfig { frame_bytes_max: 0, ..ClientConfig::default() }),
        "frame_bytes_max"
    );
    let no_members = Dso::lazy(Vec::new(), ClientConfig::default());
    assert!(
        matches!(no_members, Err(DsoError::Config(ConfigError { field: "members", .. }))),
        "{no_members:?}"
    );
    assert!(Dso::lazy(vec!["127.0.0.1:1".into()], ClientConfig::default()).is_ok());
}

#[test]
fn timings_that_suspect_everyone_are_refused() {
    let member = |timing: ClusterTiming, rf: usize| {
        let me = Member { id: 1, addr: "m1".into() };
        Node::member(NodeConfig::default(), Arc::new(Registry::default()), me, rf, timing)
            .err()
            .map(|e| e.field)
    };
    let tick = ClusterTiming::default().tick_ms;
    let hasty = ClusterTiming { suspect_after_ms: tick, ..ClusterTiming::default() };
    assert_eq!(member(hasty, 2), Some("suspect_after_ms"), "suspected before a heartbeat can arrive");
    assert_eq!(member(ClusterTiming { tick_ms: 0, ..ClusterTiming::default() }, 2), Some("tick_ms"));
    assert_eq!(
        member(ClusterTiming { poll_every_ticks: 0, ..ClusterTiming::default() }, 2),
        Some("poll_every_ticks")
    );
    assert_eq!(member(ClusterTiming::default(), 0), Some("rf"));
    assert_eq!(member(ClusterTiming::default(), 2), None);
}

#[test]
fn node_limits_that_cannot_work_are_refused() {
    let node = |config: NodeConfig| Node::new(config, Arc::new(Registry::default())).err().map(|e| e.field);
    assert_eq!(node(NodeConfig { sessions_max: 0, ..NodeConfig::default() }), Some("sessions_max"));
    assert_eq!(node(NodeConfig { session_calls_max: 0, ..NodeConfig::default() }), Some("session_calls_max"));
    assert_eq!(node(NodeConfig { key_bytes_max: 0, ..NodeConfig::default() }), Some("key_bytes_max"));
    assert_eq!(
        node(NodeConfig { object_bytes_max: usize::MAX, ..NodeConfig::default() }),
        Some("object_bytes_max")
    );
    assert_eq!(
        node(NodeConfig { transfer_bytes_max: 0, ..NodeConfig::default() }),
        Some("transfer_bytes_max")
    );
    assert_eq!(node(NodeConfig::default()), None);
}

/// A build without the deliberate bugs' code (any `cargo build` or `cargo test`) refuses a
/// configuration that switches one on, rather than running it as if it were off.
#[cfg(not(crucial_canary))]
#[test]
fn a_build_without_the_canaries_refuses_a_canary() {
    use crucial_dso::core::node::Canary;
    let canary = Canary { skip_deduplication: true, ..Canary::default() };
    let refused = Node::new(NodeConfig { canary, ..NodeConfig::default() }, Arc::new(Registry::default()));
    assert_eq!(refused.err().map(|error| error.field), Some("canary"));
}

#[tokio::test]
async fn a_server_refuses_to_start_with_settings_that_cannot_work() {
    let refused = |config: ServerConfig| async move {
        let Err(error) = ServerBuilder::new().config(config).start().await else { panic!("it started") };
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
        let config_error = error.get_ref().and_then(|inner| inner.downcast_ref::<ConfigError>()).cloned();
        config_error.expect("the error names the setting").field
    };
    let local = || ServerConfig { bind: "127.0.0.1:0".parse().unwrap(), ..ServerConfig::default() };
    assert_eq!(refused(ServerConfig { connections_max: 0, ..local() }).await, "connections_max");
    assert_eq!(refused(ServerConfig { frame_bytes_max: 8, ..local() }).await, "frame_bytes_max");
    let node = NodeConfig { sessions_max: 0, ..NodeConfig::default() };
    assert_eq!(refused(ServerConfig { node, ..local() }).await, "sessions_max");
    let links = |links: LinkConfig| ServerConfig { links, ..local() };
    let no_backlog = LinkConfig { client_backlog_bytes_max: 0, ..LinkConfig::default() };
    assert_eq!(refused(links(no_backlog)).await, "client_backlog_bytes_max");
    let part = NodeConfig::default().transfer_bytes_max;
    let narrow = LinkConfig { peer_backlog_bytes_max: part, ..LinkConfig::default() };
    assert_eq!(refused(links(narrow)).await, "peer_backlog_bytes_max", "a transfer part must fit");
    let hasty = LinkConfig { peer_connect_timeout_ms: 0, ..LinkConfig::default() };
    assert_eq!(refused(links(hasty)).await, "peer_connect_timeout_ms");
    let spinning = LinkConfig { peer_reconnect_pause_ms: 0, ..LinkConfig::default() };
    assert_eq!(refused(links(spinning)).await, "peer_reconnect_pause_ms");
    let cluster = |rf: usize, timing: ClusterTiming| ClusterOptions {
        timing,
        ..ClusterOptions::new(Discovery::File(std::env::temp_dir().join("never-written.json")), rf)
    };
    let member = |rf, timing| ServerConfig { cluster: Some(cluster(rf, timing)), ..local() };
    assert_eq!(refused(member(0, ClusterTiming::default())).await, "rf");
    let hasty = ClusterTiming { suspect_after_ms: 1, ..ClusterTiming::default() };
    assert_eq!(refused(member(2, hasty)).await, "suspect_after_ms");
}
