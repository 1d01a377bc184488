//! One client, many calls at once, over real TCP against an embedded server.

#![cfg(not(madsim))]

use std::time::Duration;

use crucial_dso::client::ClientConfig;
use crucial_dso::{Dso, Server};

/// Calls started together on a client that is not connected yet: the first opens the link and
/// sends the others routed there with it. A regression test: that step once took the session
/// lock twice and hung the client, and every thread of its runtime with it, so the calls run
/// on a thread of their own and the test waits for them with a deadline.
#[test]
fn calls_started_together_on_a_lazy_client_all_complete() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
        let _ = done.send(runtime.expect("a runtime").block_on(increment_together(8)));
    });
    let counts = finished.recv_timeout(Duration::from_secs(30)).expect("every call completes within 30 s");
    // Each counter was incremented once, however many times its call was sent.
    assert_eq!(counts, vec![(1, 1); 8]);
}

/// Increments `counters` counters at once on one lazy client; each counter's answer and its
/// value read afterwards.
async fn increment_together(counters: usize) -> Vec<(i64, i64)> {
    let server = Server::embedded().await.expect("embedded server starts");
    let dso = Dso::lazy(vec![server.local_addr().to_string()], ClientConfig::default()).unwrap();
    let counters: Vec<_> = (0..counters).map(|i| dso.atomic_long(format!("together-{i}"))).collect();
    let mut calls = tokio::task::JoinSet::new();
    for (index, counter) in counters.iter().cloned().enumerate() {
        calls.spawn(async move { (index, counter.increment_and_get().await.expect("the call succeeds")) });
    }
    let mut answers = calls.join_all().await;
    answers.sort_unstable();
    let mut counts = Vec::new();
    for (index, answer) in answers {
        counts.push((answer, counters[index].get().await.expect("the read succeeds")));
    }
    counts
}
