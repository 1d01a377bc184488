//! Configuration stores behave as one linearizable compare-and-swap register: creation happens
//! once, a replace names the version it replaces, and racing writers never lose an update.

#![cfg(not(madsim))]

use std::sync::Arc;

use crucial_dso::cluster::{
    ConfigStore, Configuration, FileConfigStore, Member, MemoryConfigStore, StoreError,
};

fn config(epoch: u64, members: u64) -> Configuration {
    let members = (1..=members).map(|id| Member { id, addr: format!("127.0.0.1:{}", 11000 + id) }).collect();
    Configuration { epoch, members, rf: 1 }
}

/// The register's contract, for any store.
async fn compare_and_swap_contract(store: &impl ConfigStore) {
    assert_eq!(store.load().await.unwrap(), None);
    let first = store.create(&config(1, 1)).await.unwrap();
    assert_eq!(store.create(&config(1, 2)).await, Err(StoreError::Conflict), "created once");
    let second = store.replace(&first.version, &config(2, 2)).await.unwrap();
    assert_eq!(
        store.replace(&first.version, &config(3, 3)).await,
        Err(StoreError::Conflict),
        "stale version"
    );
    assert_eq!(store.load().await.unwrap(), Some(second.clone()));
    let invalid = Configuration { rf: 5, ..config(3, 2) };
    assert!(matches!(store.replace(&second.version, &invalid).await, Err(StoreError::Invalid(_))));
}

/// `writers` tasks each raise the epoch `rounds` times by load + replace, retrying conflicts.
async fn racing_writers_lose_nothing<S: ConfigStore + 'static>(stores: Vec<Arc<S>>, rounds: u64) {
    stores[0].create(&config(0, 1)).await.unwrap();
    let writers: Vec<_> = stores
        .into_iter()
        .map(|store| {
            tokio::spawn(async move {
                let mut done = 0;
                while done < rounds {
                    let current = store.load().await.unwrap().expect("created");
                    let next = Configuration { epoch: current.config.epoch + 1, ..current.config.clone() };
                    match store.replace(&current.version, &next).await {
                        Ok(_) => done += 1,
                        Err(StoreError::Conflict) => tokio::task::yield_now().await,
                        Err(other) => panic!("{other}"),
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
}

#[tokio::test]
async fn memory_store_is_a_compare_and_swap_register() {
    compare_and_swap_contract(&MemoryConfigStore::default()).await;
    let store = Arc::new(MemoryConfigStore::default());
    racing_writers_lose_nothing(vec![store.clone(), store.clone(), store.clone()], 50).await;
    assert_eq!(store.load().await.unwrap().unwrap().config.epoch, 150);
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
    // Separate handles, each opening the files itself, as separate processes would.
    let stores: Vec<_> = (0..3).map(|_| Arc::new(FileConfigStore::new(&path))).collect();
    racing_writers_lose_nothing(stores, 30).await;
    assert_eq!(FileConfigStore::new(&path).load().await.unwrap().unwrap().config.epoch, 90);

    std::fs::write(&path, b"not json").unwrap();
    assert!(matches!(FileConfigStore::new(&path).load().await, Err(StoreError::Corrupt(_))));
}
