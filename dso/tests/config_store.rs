//! The memory and file configuration stores behave as one linearizable compare-and-swap
//! register: creation happens once, a replace names the version it replaces, and racing
//! writers never lose an update.

#![cfg(not(madsim))]

mod common;

use std::sync::Arc;

use common::{compare_and_swap_contract, config, racing_writers};
use crucial_dso::cluster::{ConfigStore, FileConfigStore, MemoryConfigStore, StoreError};

#[tokio::test]
async fn memory_store_is_a_compare_and_swap_register() {
    compare_and_swap_contract(&MemoryConfigStore::default()).await;
    let store = Arc::new(MemoryConfigStore::default());
    store.create(&config(0, 1)).await.unwrap();
    assert_eq!(racing_writers(vec![store.clone(), store.clone(), store], 50).await, 150);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_store_is_a_compare_and_swap_register_across_handles() {
    let dir = std::env::temp_dir().join(format!("crucial-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("contract.json");
    let _ = std::fs::remove_file(&path);
    compare_and_swap_contract(&FileConfigStore::new(&path)).await;

    let path = dir.join("race.json");
    let _ = std::fs::remove_file(&path);
    FileConfigStore::new(&path).create(&config(0, 1)).await.unwrap();
    // Separate handles, each opening the files itself, as separate processes would.
    let stores: Vec<_> = (0..3).map(|_| Arc::new(FileConfigStore::new(&path))).collect();
    assert_eq!(racing_writers(stores, 30).await, 90);

    std::fs::write(&path, b"not json").unwrap();
    assert!(matches!(FileConfigStore::new(&path).load().await, Err(StoreError::Corrupt(_))));
}

#[test]
fn discovery_names_parse_or_say_what_is_wrong() {
    use crucial_dso::cluster::discovery::Discovery;

    assert_eq!("file:/tmp/c.json".parse::<Discovery>(), Ok(Discovery::File("/tmp/c.json".into())));
    assert_eq!(
        "s3://bucket/a/b".parse::<Discovery>(),
        Ok(Discovery::S3 { bucket: "bucket".into(), prefix: "a/b".into() })
    );
    assert!("s3:///x".parse::<Discovery>().is_err());
    assert!("file:".parse::<Discovery>().is_err());
}
