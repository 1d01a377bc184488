//! Whole-stack deterministic test under madsim (`cargo simtest`): a real server and several real
//! clients on simulated hosts; the server is cut off mid-run and the partition heals. Every
//! acknowledged increment must be counted exactly once: the values the clients got back are
//! exactly `1..=final`. With de-duplication switched off (the `skip_deduplication` canary) the
//! resends that the partition provokes are applied twice, and the check catches it.
//!
//! Runs one seed by default; `MADSIM_TEST_NUM=20` runs twenty, `MADSIM_TEST_SEED` picks one.
//! `CRUCIAL_CANARY=skip_deduplication` switches the canary on for the main test too, to watch it fail.

#![cfg(madsim)]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crucial_dso::client::ClientConfig;
use crucial_dso::core::client_session::SessionConfig;
use crucial_dso::core::node::NodeConfig;
use crucial_dso::{Dso, ServerBuilder};
use madsim::net::NetSim;
use madsim::runtime::Handle;

const CLIENTS: u64 = 4;
const INCREMENTS_PER_CLIENT: usize = 40;

/// What a run observed.
struct Observed {
    /// Every value an acknowledged `increment_and_get` returned.
    acknowledged: Vec<i64>,
    /// The counter's value after the run.
    final_value: i64,
}

/// A simulated host's address (TEST-NET-1: documentation addresses, simulated only).
fn host(index: u8) -> IpAddr {
    IpAddr::from([192, 0, 2, index])
}

async fn run(skip_deduplication: bool) -> Observed {
    let handle = Handle::current();
    let server_addr = SocketAddr::new(host(1), 11222);
    let server_host = handle.create_node().name("server").ip(host(1)).build();
    let mut node = NodeConfig::default();
    node.canary.skip_deduplication = skip_deduplication;
    server_host.spawn(async move {
        // A simulated private network: no token.
        let server =
            ServerBuilder::new().bind(server_addr).insecure().node_config(node).start().await.unwrap();
        server.wait().await;
    });
    madsim::time::sleep(Duration::from_millis(100)).await;

    let config = ClientConfig {
        session: SessionConfig {
            resend_after_ms: 200,
            call_timeout_ms: None,
            in_flight_max: 16,
            retain_records: false,
        },
        ..ClientConfig::default()
    };
    let mut clients = Vec::new();
    for index in 0..CLIENTS {
        let client_host =
            handle.create_node().name(format!("client-{index}")).ip(host(10 + index as u8)).build();
        let config = config.clone();
        clients.push(client_host.spawn(async move {
            let dso = Dso::connect_with(server_addr.to_string(), config).await.unwrap();
            let counter = dso.atomic_long("hits");
            let mut values = Vec::new();
            for _ in 0..INCREMENTS_PER_CLIENT {
                values.push(counter.increment_and_get().await.unwrap());
                madsim::time::sleep(Duration::from_millis(20)).await;
            }
            values
        }));
    }

    // Cut the server off while the clients are busy, then heal.
    madsim::time::sleep(Duration::from_millis(300)).await;
    NetSim::current().clog_node(server_host.id());
    madsim::time::sleep(Duration::from_secs(2)).await;
    NetSim::current().unclog_node(server_host.id());

    let mut acknowledged = Vec::new();
    for client in clients {
        acknowledged.extend(client.await.unwrap());
    }
    let checker_host = handle.create_node().name("checker").ip(host(99)).build();
    let final_value = checker_host
        .spawn(async move {
            let dso = Dso::connect(server_addr.to_string()).await.unwrap();
            dso.atomic_long("hits").get().await.unwrap()
        })
        .await
        .unwrap();
    acknowledged.sort_unstable();
    Observed { acknowledged, final_value }
}

fn counted_exactly_once(observed: &Observed) -> bool {
    let expected: Vec<i64> = (1..=observed.final_value).collect();
    observed.acknowledged == expected
}

#[madsim::test]
async fn acknowledged_increments_are_counted_exactly_once_across_a_partition() {
    let canary = std::env::var("CRUCIAL_CANARY").is_ok_and(|value| value == "skip_deduplication");
    let observed = run(canary).await;
    assert_eq!(observed.acknowledged.len(), CLIENTS as usize * INCREMENTS_PER_CLIENT);
    assert!(
        counted_exactly_once(&observed),
        "seed {}: {} acknowledged increments but the counter reads {} (replay: MADSIM_TEST_SEED={} cargo simtest -p crucial-dso --features sim --test madsim_partition)",
        Handle::current().seed(),
        observed.acknowledged.len(),
        observed.final_value,
        Handle::current().seed(),
    );
}

#[madsim::test]
async fn the_check_catches_switched_off_deduplication() {
    let observed = run(true).await;
    assert!(
        !counted_exactly_once(&observed),
        "seed {}: with de-duplication off the partition's resends should be applied twice",
        Handle::current().seed()
    );
    assert!(observed.final_value > observed.acknowledged.len() as i64);
}
