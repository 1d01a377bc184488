//! State transfer between real cluster members over TCP: a member joining a cluster that holds
//! more than one transfer part's worth of data receives every key, in parts.

#![cfg(not(madsim))]

use std::time::Duration;

use crucial_dso::cluster::discovery::Discovery;
use crucial_dso::core::node::NodeConfig;
use crucial_dso::server::{ClusterOptions, Server, ServerBuilder, ServerConfig};
use crucial_dso::Dso;

const KEYS: usize = 40;
const BLOB_BYTES: usize = 256 << 10;
/// About 10 MiB of blobs cut into 1 MiB parts: each transfer takes several messages.
const TRANSFER_BYTES_MAX: usize = 1 << 20;

async fn member(discovery: &Discovery) -> Server {
    let config = ServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        node: NodeConfig { transfer_bytes_max: TRANSFER_BYTES_MAX, ..NodeConfig::default() },
        cluster: Some(ClusterOptions::new(discovery.clone(), 2)),
        ..ServerConfig::default()
    };
    ServerBuilder::new().config(config).start().await.expect("member starts")
}

/// Waits until `server` serves in an active configuration of `members` members.
async fn serving(server: &Server, members: usize) {
    for _ in 0..300 {
        let config = server.configuration();
        if server.is_serving() && config.members.len() == members && config.is_active() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not serving with {members} members after 15 s: {:?}", server.configuration());
}

fn blob_of(key: usize) -> Vec<u8> {
    (0..BLOB_BYTES).map(|index| (index * 31 + key * 7) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_member_receives_every_key_in_parts_and_takes_over() {
    let dir = std::env::temp_dir().join(format!("crucial-transfer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cluster.json");
    let _ = std::fs::remove_file(&path);
    let discovery: Discovery = format!("file:{}", path.display()).parse().unwrap();

    let first = member(&discovery).await;
    serving(&first, 1).await;
    let dso = Dso::connect(first.local_addr().to_string()).await.unwrap();
    for key in 0..KEYS {
        dso.blob(format!("blob-{key}")).set(blob_of(key)).await.unwrap();
    }

    // The second member pulls the keys it becomes primary of and receives copies of the others
    // from the first: about 5 MiB each way, in 1 MiB parts.
    let second = member(&discovery).await;
    serving(&second, 2).await;
    serving(&first, 2).await;

    // The first member leaves: the second, which must hold every key, serves them all.
    assert!(first.leave(Duration::from_secs(15)).await, "the first member hands over and leaves");
    serving(&second, 1).await;
    let dso = Dso::connect(second.local_addr().to_string()).await.unwrap();
    for key in 0..KEYS {
        let bytes = dso.blob(format!("blob-{key}")).get().await.unwrap();
        assert!(bytes == blob_of(key), "blob-{key} must arrive whole, got {} bytes", bytes.len());
    }
    first.shutdown().await;
    second.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
