//! Every built-in object's full method set, called through its typed handle over real TCP
//! against an embedded server.

#![cfg(not(madsim))]

use std::time::Duration;

use crucial_dso::objects::{BarrierError, MergeFunction, ObjectError, TimedOut};
use crucial_dso::{CallError, Dso, DsoError, Server, Value, F64};

async fn embedded() -> (Server, Dso) {
    let server = Server::embedded().await.expect("embedded server starts");
    let client = server.connect().await.expect("client connects");
    (server, client)
}

#[tokio::test]
async fn atomic_long_and_int_full_method_set() {
    let (_server, dso) = embedded().await;
    let hits = dso.atomic_long("hits");
    assert_eq!(hits.get().await.unwrap(), 0);
    assert_eq!(hits.add_and_get(5).await.unwrap(), 5);
    assert_eq!(hits.get_and_add(2).await.unwrap(), 5);
    assert_eq!(hits.increment_and_get().await.unwrap(), 8);
    assert_eq!(hits.get_and_increment().await.unwrap(), 8);
    assert_eq!(hits.decrement_and_get().await.unwrap(), 8);
    assert_eq!(hits.get_and_decrement().await.unwrap(), 8);
    assert_eq!(hits.get_and_set(100).await.unwrap(), 7);
    assert!(!hits.compare_and_set(1, 2).await.unwrap());
    assert!(hits.compare_and_set(100, i64::MAX).await.unwrap());
    assert_eq!(hits.increment_and_get().await.unwrap(), i64::MIN, "wraps like Java");
    hits.set(-3).await.unwrap();
    assert_eq!(hits.get().await.unwrap(), -3);

    let small = dso.atomic_int("small");
    assert_eq!(small.add_and_get(i32::MAX).await.unwrap(), i32::MAX);
    assert_eq!(small.increment_and_get().await.unwrap(), i32::MIN);
    assert!(small.compare_and_set(i32::MIN, 1).await.unwrap());
    assert_eq!(small.get_and_set(9).await.unwrap(), 1);
}

#[tokio::test]
async fn atomic_boolean_reference_and_byte_array() {
    let (_server, dso) = embedded().await;
    let flag = dso.atomic_boolean("flag");
    assert!(!flag.get().await.unwrap());
    assert!(flag.compare_and_set(false, true).await.unwrap());
    assert!(!flag.compare_and_set(false, true).await.unwrap());
    assert!(flag.get_and_set(false).await.unwrap());
    flag.set(true).await.unwrap();
    assert!(flag.get().await.unwrap());

    let reference = dso.atomic_reference("ref");
    assert_eq!(reference.get().await.unwrap(), Value::Null);
    let point = Value::encode(&(3u8, "x".to_string()));
    assert!(reference.compare_and_set(Value::Null, point.clone()).await.unwrap());
    assert_eq!(reference.get().await.unwrap().decode::<(u8, String)>().unwrap(), (3, "x".into()));
    assert_eq!(reference.get_and_set("s").await.unwrap(), point);
    reference.set(7).await.unwrap();
    assert_eq!(reference.get().await.unwrap(), Value::Int(7));

    let bytes = dso.atomic_byte_array("bytes", 4).await.unwrap();
    assert_eq!(bytes.length().await.unwrap(), 4);
    bytes.set(1, 250).await.unwrap().unwrap();
    assert_eq!(bytes.add_and_get(1, 10).await.unwrap(), Ok(4), "wraps");
    assert_eq!(bytes.get_and_add(1, 1).await.unwrap(), Ok(4));
    assert_eq!(bytes.get_and_set(1, 9).await.unwrap(), Ok(5));
    assert_eq!(bytes.compare_and_set(1, 9, 8).await.unwrap(), Ok(true));
    assert_eq!(bytes.get(1).await.unwrap(), Ok(8));
    assert_eq!(bytes.get(4).await.unwrap(), Err(ObjectError::IndexOutOfBounds { index: 4, length: 4 }));
    assert_eq!(bytes.to_vec().await.unwrap(), vec![0, 8, 0, 0]);
    // Creating again keeps the existing object, as @Shared does.
    let again = dso.atomic_byte_array("bytes", 100).await.unwrap();
    assert_eq!(again.length().await.unwrap(), 4);
}

#[tokio::test]
async fn counter_list_set() {
    let (_server, dso) = embedded().await;
    let counter = dso.counter("c");
    assert_eq!(counter.increment().await.unwrap(), 1);
    assert_eq!(counter.add(10).await.unwrap(), 11);
    assert_eq!(counter.decrement().await.unwrap(), 10);
    assert_eq!(counter.get().await.unwrap(), 10);
    assert_eq!(counter.reset().await.unwrap(), 10);
    assert_eq!(counter.get().await.unwrap(), 0);

    let list = dso.list("l");
    assert!(list.is_empty().await.unwrap());
    list.add("a").await.unwrap();
    list.add_all(vec![Value::from("b"), Value::from("c")]).await.unwrap();
    list.add_at(0, "z").await.unwrap().unwrap();
    assert_eq!(
        list.add_at(9, "q").await.unwrap(),
        Err(ObjectError::IndexOutOfBounds { index: 9, length: 5 })
    );
    assert_eq!(list.get(1).await.unwrap(), Ok(Value::from("a")));
    assert_eq!(list.set(1, "A").await.unwrap(), Ok(Value::from("a")));
    assert_eq!(list.index_of("c").await.unwrap(), Some(3));
    assert!(list.contains("b").await.unwrap());
    assert!(list.remove("b").await.unwrap());
    assert!(!list.remove("b").await.unwrap());
    assert_eq!(list.remove_at(0).await.unwrap(), Ok(Value::from("z")));
    assert_eq!(list.size().await.unwrap(), 2);
    assert_eq!(list.sub_list(0, 1).await.unwrap(), Ok(vec![Value::from("A")]));
    assert_eq!(list.to_vec().await.unwrap(), vec![Value::from("A"), Value::from("c")]);
    list.clear().await.unwrap();
    assert_eq!(list.size().await.unwrap(), 0);

    let set = dso.set("s");
    assert!(set.add(3).await.unwrap());
    assert!(!set.add(3).await.unwrap());
    assert!(set.add_all(vec![Value::from(1), Value::from(2)]).await.unwrap());
    assert!(set.contains(2).await.unwrap());
    assert!(set.remove(2).await.unwrap());
    assert!(set.remove_all(vec![Value::from(1), Value::from(9)]).await.unwrap());
    assert_eq!(set.to_vec().await.unwrap(), vec![Value::from(3)]);
    assert_eq!(set.size().await.unwrap(), 1);
    set.clear().await.unwrap();
    assert!(set.is_empty().await.unwrap());
}

#[tokio::test]
async fn map_with_merge_and_sorted_map_with_top_k() {
    let (_server, dso) = embedded().await;
    let map = dso.map("m");
    assert_eq!(map.put("a", 1).await.unwrap(), None);
    assert_eq!(map.put_if_absent("a", 5).await.unwrap(), Some(Value::from(1)));
    assert_eq!(map.put_if_absent("b", 2).await.unwrap(), None);
    assert_eq!(map.merge("a", 10, MergeFunction::Sum).await.unwrap(), Ok(Value::from(11)));
    assert_eq!(map.merge("new", 4, MergeFunction::Max).await.unwrap(), Ok(Value::from(4)));
    assert!(matches!(map.merge("a", "x", MergeFunction::Sum).await.unwrap(), Err(ObjectError::Merge { .. })));
    let batch = vec![
        (Value::from("a"), Value::from(1)),
        (Value::from("c"), Value::from(7)),
        (Value::from("a"), Value::from(1)),
    ];
    assert_eq!(map.merge_all(batch, MergeFunction::Sum).await.unwrap(), Ok(()));
    assert_eq!(map.get("a").await.unwrap(), Some(Value::from(13)));
    let bad = vec![(Value::from("c"), Value::from(1)), (Value::from("a"), Value::from("x"))];
    assert!(map.merge_all(bad, MergeFunction::Sum).await.unwrap().is_err());
    assert_eq!(map.get("c").await.unwrap(), Some(Value::from(7)), "merge_all is all or nothing");
    map.put_all(vec![(Value::from("d"), Value::from(0.5))]).await.unwrap();
    assert_eq!(map.merge("d", 1, MergeFunction::Sum).await.unwrap(), Ok(Value::from(1.5)));
    assert_eq!(map.merge("s", "x", MergeFunction::Concat).await.unwrap(), Ok(Value::from("x")));
    assert_eq!(map.merge("s", "y", MergeFunction::Concat).await.unwrap(), Ok(Value::from("xy")));
    assert_eq!(map.merge("s", "z", MergeFunction::KeepExisting).await.unwrap(), Ok(Value::from("xy")));
    assert_eq!(map.merge("s", "z", MergeFunction::Replace).await.unwrap(), Ok(Value::from("z")));
    assert_eq!(map.merge("new", 1, MergeFunction::Min).await.unwrap(), Ok(Value::from(1)));
    assert!(map.contains_key("b").await.unwrap());
    assert_eq!(map.remove("b").await.unwrap(), Some(Value::from(2)));
    assert_eq!(map.size().await.unwrap(), 5);
    assert_eq!(map.keys().await.unwrap().len(), 5);
    assert_eq!(map.values().await.unwrap().len(), 5);
    assert_eq!(map.entries().await.unwrap()[0], (Value::from("a"), Value::from(13)));
    map.clear().await.unwrap();
    assert!(map.is_empty().await.unwrap());

    let scores = dso.sorted_map("scores");
    for score in [5, 1, 9, 3] {
        scores.put(score, format!("p{score}")).await.unwrap();
    }
    let top: Vec<_> = scores.top(2).await.unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(top, vec![Value::from(9), Value::from(5)]);
    assert_eq!(scores.first().await.unwrap().unwrap().0, Value::from(1));
    assert_eq!(scores.last().await.unwrap().unwrap().0, Value::from(9));
    assert_eq!(scores.range(2, 6).await.unwrap().len(), 2);
    assert!(scores.range(6, 2).await.unwrap().is_empty());
    assert_eq!(scores.get(3).await.unwrap(), Some(Value::from("p3")));
    assert_eq!(scores.remove(3).await.unwrap(), Some(Value::from("p3")));
    assert_eq!(scores.size().await.unwrap(), 3);
    scores.clear().await.unwrap();
    assert_eq!(scores.size().await.unwrap(), 0);
}

#[tokio::test]
async fn matrix_blob_logger() {
    let (_server, dso) = embedded().await;
    let weights = dso.matrix("w", 2, 3).await.unwrap();
    assert_eq!(weights.dimensions().await.unwrap(), (2, 3));
    weights.set(1, 2, 1.5).await.unwrap().unwrap();
    assert_eq!(weights.add(1, 2, 1.0).await.unwrap(), Ok(F64(2.5)));
    assert_eq!(weights.get(1, 2).await.unwrap(), Ok(F64(2.5)));
    assert_eq!(weights.get(2, 0).await.unwrap(), Err(ObjectError::IndexOutOfBounds { index: 2, length: 2 }));
    weights.add_all(vec![F64(1.0); 6]).await.unwrap().unwrap();
    assert_eq!(weights.row(1).await.unwrap(), Ok(vec![F64(1.0), F64(1.0), F64(3.5)]));
    assert_eq!(
        weights.set_row(0, vec![F64(0.0)]).await.unwrap(),
        Err(ObjectError::LengthMismatch { expected: 3, got: 1 })
    );
    weights.set_row(0, vec![F64(7.0); 3]).await.unwrap().unwrap();
    weights.fill(0.25).await.unwrap();
    assert_eq!(weights.to_vec().await.unwrap(), vec![F64(0.25); 6]);

    let blob = dso.blob("b");
    assert!(blob.is_empty().await.unwrap());
    blob.set(b"hello".to_vec()).await.unwrap();
    assert_eq!(blob.append(b" world".to_vec()).await.unwrap(), 11);
    assert_eq!(blob.read(6, 100).await.unwrap(), Ok(b"world".to_vec()));
    assert_eq!(blob.get().await.unwrap(), b"hello world".to_vec());
    assert_eq!(blob.len().await.unwrap(), 11);
    blob.clear().await.unwrap();
    assert_eq!(blob.len().await.unwrap(), 0);

    let log = dso.logger("log");
    assert_eq!(log.log("one").await.unwrap(), 0);
    assert_eq!(log.log("two").await.unwrap(), 1);
    assert_eq!(log.read(1, 10).await.unwrap(), vec![(1, "two".to_string())]);
    assert_eq!(log.len().await.unwrap(), 2);
    log.clear().await.unwrap();
    assert!(log.is_empty().await.unwrap());
}

/// Waits until `count` calls are parked on `server` (the call under test arrived and parks),
/// failing after a generous deadline instead of guessing with a sleep.
async fn parked_on(server: &Server, count: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while server.parked_calls() != count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} calls parked, not {count}",
            server.parked_calls()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test]
async fn future_get_parks_until_set_and_times_out() {
    let (server, dso) = embedded().await;
    let other = server.connect().await.unwrap();
    let result = dso.future("f");
    assert_eq!(result.get(Some(0)).await.unwrap(), Err(TimedOut));
    assert_eq!(result.get(Some(50)).await.unwrap(), Err(TimedOut), "times out after 50 ms");
    let waiter = tokio::spawn({
        let result = dso.future("f");
        async move { result.get(None).await }
    });
    parked_on(&server, 1).await;
    assert!(!waiter.is_finished(), "get parks while unset");
    assert!(!result.is_done().await.unwrap());
    assert!(other.future("f").set(42).await.unwrap());
    assert_eq!(waiter.await.unwrap().unwrap(), Ok(Value::from(42)));
    assert!(!result.set(43).await.unwrap(), "set once");
    assert_eq!(result.try_get().await.unwrap(), Some(Value::from(42)));
    assert!(result.is_done().await.unwrap());
}

#[tokio::test]
async fn semaphore_barrier_latch_over_the_network() {
    let (server, dso) = embedded().await;
    let permits = dso.semaphore("sem", 1).await.unwrap();
    assert!(permits.acquire(1, None).await.unwrap());
    let second = server.connect().await.unwrap();
    let blocked = tokio::spawn({
        let permits = second.handle::<crucial_dso::objects::Semaphore>("sem");
        async move { permits.acquire(1, None).await }
    });
    parked_on(&server, 1).await;
    assert!(!blocked.is_finished());
    assert_eq!(permits.queue_length().await.unwrap(), 1);
    permits.release(1).await.unwrap();
    assert!(blocked.await.unwrap().unwrap());
    assert!(!permits.acquire(1, Some(30)).await.unwrap(), "times out");
    assert!(!permits.try_acquire(1).await.unwrap());
    permits.release(3).await.unwrap();
    assert_eq!(permits.drain_permits().await.unwrap(), 3);
    assert_eq!(permits.available_permits().await.unwrap(), 0);

    let barrier = dso.cyclic_barrier("bar", 3).await.unwrap();
    let mut parties = Vec::new();
    for _ in 0..3 {
        let client = server.connect().await.unwrap();
        parties.push(tokio::spawn(async move {
            client.cyclic_barrier("bar", 3).await.unwrap().wait(None).await.unwrap()
        }));
    }
    let mut indices: Vec<_> = Vec::new();
    for party in parties {
        indices.push(party.await.unwrap().unwrap());
    }
    indices.sort();
    assert_eq!(indices, vec![0, 1, 2]);
    assert_eq!(barrier.generation().await.unwrap(), 1);
    assert_eq!(barrier.parties().await.unwrap(), 3);
    assert_eq!(barrier.wait(Some(20)).await.unwrap(), Err(BarrierError::Timeout));
    assert!(barrier.is_broken().await.unwrap());
    assert_eq!(barrier.wait(None).await.unwrap(), Err(BarrierError::Broken));
    barrier.reset().await.unwrap();
    assert!(!barrier.is_broken().await.unwrap());
    assert_eq!(barrier.number_waiting().await.unwrap(), 0);

    let latch = dso.count_down_latch("latch", 2).await.unwrap();
    assert!(!latch.wait(Some(10)).await.unwrap());
    let opened = tokio::spawn({
        let latch = second.handle::<crucial_dso::objects::CountDownLatch>("latch");
        async move { latch.wait(None).await }
    });
    latch.count_down().await.unwrap();
    assert_eq!(latch.count().await.unwrap(), 1);
    latch.count_down().await.unwrap();
    assert!(opened.await.unwrap().unwrap());
    assert!(latch.wait(None).await.unwrap());
}

#[tokio::test]
async fn wrong_type_and_missing_objects_are_typed_errors() {
    let (_server, dso) = embedded().await;
    dso.counter("k").increment().await.unwrap();
    match dso.atomic_long("k").get().await {
        Err(DsoError::Call(CallError::TypeMismatch { stored, requested, .. })) => {
            assert_eq!((stored.as_str(), requested.as_str()), ("Counter", "AtomicLong"));
        }
        other => panic!("expected a type mismatch, got {other:?}"),
    }
    match dso.handle::<crucial_dso::objects::Semaphore>("nothing").available_permits().await {
        Err(DsoError::Call(CallError::NoSuchObject { .. })) => {}
        other => panic!("expected NoSuchObject, got {other:?}"),
    }
}

#[tokio::test]
async fn shutdown_waits_for_connections_to_close() {
    let (server, dso) = embedded().await;
    let parked = tokio::spawn({
        let future = dso.future("never");
        async move { future.get(None).await }
    });
    parked_on(&server, 1).await;
    tokio::time::timeout(Duration::from_secs(5), server.shutdown())
        .await
        .expect("shutdown ends every connection task and returns");
    assert!(
        !parked.is_finished() || parked.await.unwrap().is_err(),
        "a parked call is not answered with a value"
    );
}

#[tokio::test]
async fn a_busy_polling_server_shares_its_thread_and_stops() {
    // This test's runtime has one thread, shared by the server's busy-poll task, its other
    // tasks and the client: the poller must let them all run, then stop with the server.
    let config = crucial_dso::server::ServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        busy_poll_us: 50_000,
        ..Default::default()
    };
    let server = crucial_dso::server::ServerBuilder::new().config(config).start().await.unwrap();
    let dso = server.connect().await.unwrap();
    let hits = dso.atomic_long("hits");
    for expected in 1..=200 {
        let value = tokio::time::timeout(Duration::from_secs(5), hits.increment_and_get())
            .await
            .expect("answered while the server polls")
            .unwrap();
        assert_eq!(value, expected);
    }
    let parked = dso.future("later");
    let waiter = tokio::spawn(async move { parked.get(Some(20)).await });
    let timed_out = tokio::time::timeout(Duration::from_secs(5), waiter).await.expect("timers fire").unwrap();
    assert!(matches!(timed_out, Ok(Err(TimedOut))), "a parked call times out: {timed_out:?}");
    drop(dso);
    tokio::time::timeout(Duration::from_secs(5), server.shutdown())
        .await
        .expect("the poller ends with the server");
}
