//! The configuration-store contract, shared by the tests of every store.

use std::sync::Arc;

use crucial_dso::cluster::{ConfigStore, Configuration, Member, StoreError};

/// A configuration of `members` loopback members in `epoch`.
pub fn config(epoch: u64, members: u64) -> Configuration {
    let members = (1..=members).map(|id| Member { id, addr: format!("127.0.0.1:{}", 11000 + id) }).collect();
    Configuration { epoch, ..Configuration::initial(members, 1) }
}

/// A compare-and-swap register's contract, on an empty store.
pub async fn compare_and_swap_contract(store: &impl ConfigStore) {
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
    let invalid = Configuration { rf: 0, ..config(3, 2) };
    assert!(matches!(store.replace(&second.version, &invalid).await, Err(StoreError::Invalid(_))));
}

/// Each store handle raises the epoch `rounds` times by load + replace, retrying conflicts, all
/// at once; returns the final epoch, which must be the starting one plus every success.
pub async fn racing_writers<S: ConfigStore + 'static>(stores: Vec<Arc<S>>, rounds: u64) -> u64 {
    let reader = stores[0].clone();
    let writers: Vec<_> = stores
        .into_iter()
        .map(|store| {
            tokio::spawn(async move {
                let mut done = 0;
                while done < rounds {
                    let current = store.load().await.unwrap().expect("created before the race");
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
    reader.load().await.unwrap().expect("created").config.epoch
}
