//! Deleting objects over real TCP against an embedded server: the key becomes absent, a later
//! call finds the default (of whatever type it asks for), and calls parked on the object are
//! answered with `ObjectDeleted` instead of waiting for ever.

#![cfg(not(madsim))]

use std::time::Duration;

use crucial_dso::{CallError, Dso, DsoError, Server};

async fn embedded() -> (Server, Dso) {
    let server = Server::embedded().await.expect("embedded server starts");
    let client = server.connect().await.expect("client connects");
    (server, client)
}

#[tokio::test]
async fn a_deleted_key_is_absent_and_a_later_call_finds_the_default_of_its_type() {
    let (_server, dso) = embedded().await;
    let hits = dso.atomic_long("hits");
    assert_eq!(hits.add_and_get(5).await.unwrap(), 5);
    assert!(hits.delete().await.unwrap(), "the key held an object");
    assert!(!dso.delete("hits").await.unwrap(), "and then none");
    assert_eq!(hits.get().await.unwrap(), 0, "the default again");
    assert!(hits.delete().await.unwrap());
    // Absent, the key takes any type: no type mismatch with the deleted counter.
    assert!(!dso.atomic_boolean("hits").get().await.unwrap());
    assert!(!dso.delete("never-used").await.unwrap());
}

#[tokio::test]
async fn a_call_parked_on_a_deleted_object_fails_with_object_deleted() {
    let (server, dso) = embedded().await;
    let latch = dso.count_down_latch("gate", 1).await.unwrap();
    let waiter = server.connect().await.unwrap();
    let waiting = tokio::spawn(async move {
        waiter.handle::<crucial_dso::objects::CountDownLatch>("gate").wait(None).await
    });
    // The wait parks on the member; give it time to arrive, then delete the latch under it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "the wait parks while the count is 1");
    assert!(latch.delete().await.unwrap());
    let answer = tokio::time::timeout(Duration::from_secs(5), waiting).await.expect("answered").unwrap();
    match answer {
        Err(DsoError::Call(CallError::ObjectDeleted { key })) => assert_eq!(key, "gate"),
        other => panic!("expected ObjectDeleted, got {other:?}"),
    }
    // A latch has no default: the absent key says so.
    assert!(matches!(latch.count().await, Err(DsoError::Call(CallError::NoSuchObject { .. }))));
}
