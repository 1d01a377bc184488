//! Exactly-once effects under faults: threads killed at a random call and retried, half of
//! them also duplicated concurrently, leave the effects of one clean run each. The canary
//! (a fresh DSO session per attempt, so retries apply again) must be caught.

use std::time::Duration;

use crucial_threads::{
    Builder, CloudThread, Context, Executor, Invocation, InvokeOptions, Local, LocalFaults, Runnable,
    ThreadError,
};
use serde::{Deserialize, Serialize};

/// Adds 1 to the counter `key` `times` times, one call after another; returns the last value.
#[derive(Serialize, Deserialize)]
struct AddOnes {
    key: String,
    times: u64,
}

impl Runnable for AddOnes {
    const NAME: &'static str = "test.add_ones";
    type Output = i64;
    type Error = crucial_dso::DsoError;

    async fn run(self, ctx: &Context) -> Result<i64, Self::Error> {
        let counter = ctx.dso().counter(&self.key);
        let mut last = 0;
        for _ in 0..self.times {
            last = counter.add(1).await?;
        }
        Ok(last)
    }
}

crucial_threads::register!(AddOnes);

const THREADS: u64 = 12;
const ADDS: u64 = 40;

/// Runs `THREADS` threads of `ADDS` additions, every first attempt killed at a random call,
/// every other thread also duplicated at once; returns the counter's final value.
async fn counter_after_faults(seed: u64, canary: bool) -> i64 {
    let faults = LocalFaults { seed, kill_attempts_below: 1, kill_at_calls: 1..=ADDS };
    let executor = Local::builder().faults(faults).start().await.unwrap();
    let key = format!("exactly-once-{seed}");
    let mut handles = Vec::new();
    for thread in 0..THREADS {
        let mut builder = CloudThread::builder().retries(3).timeout(Duration::from_secs(30));
        if thread % 2 == 0 {
            builder = builder.backup_after(Duration::ZERO);
        }
        if canary {
            builder = canary_switch(builder);
        }
        handles.push(builder.spawn(&executor, AddOnes { key: key.clone(), times: ADDS }));
    }
    for handle in handles {
        let last = handle.join().await.expect("every thread finishes within its retries");
        assert!(last >= ADDS as i64);
    }
    executor.dso().counter(&key).get().await.unwrap()
}

#[cfg(crucial_canary)]
fn canary_switch(builder: Builder) -> Builder {
    builder.canary_fresh_session_per_attempt()
}

#[cfg(not(crucial_canary))]
fn canary_switch(_builder: Builder) -> Builder {
    unreachable!("the canary runs only in builds with `--cfg crucial_canary` (cargo canarytest)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_retried_and_duplicated_threads_add_exactly_once() {
    for seed in 1..=5 {
        assert_eq!(counter_after_faults(seed, false).await, (THREADS * ADDS) as i64, "seed {seed}");
    }
}

#[cfg(crucial_canary)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fresh_session_canary_is_caught() {
    for seed in 1..=3 {
        let total = counter_after_faults(seed, true).await;
        assert!(total > (THREADS * ADDS) as i64, "seed {seed}: the canary must over-count, got {total}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_after_completion_returns_the_stored_result_without_running() {
    let executor = Local::embedded().await.unwrap();
    let handle = CloudThread::spawn(&executor, AddOnes { key: "done".into(), times: 3 });
    let thread = handle.thread_id();
    assert_eq!(handle.join().await, Ok(3));
    let late = Invocation {
        thread,
        session: thread.session(),
        attempt: 7,
        name: AddOnes::NAME.into(),
        input: serde_json::to_value(AddOnes { key: "done".into(), times: 3 }).unwrap(),
        dso: executor.dso_members(),
        dso_token: executor.dso_access().token,
        dso_tls: executor.dso_access().tls,
        dso_insecure: false,
    };
    let options = InvokeOptions { timeout: Duration::from_secs(10) };
    let report = executor.invoke(late, options).await.unwrap();
    assert!(report.stored, "the late duplicate must not run");
    assert_eq!(report.outcome, Ok(serde_json::json!(3)));
    assert_eq!(executor.dso().counter("done").get().await.unwrap(), 3);
}

/// Adds `1 + attempt` (non-deterministic: a retry sends another call under the same number),
/// then reads the counter.
#[derive(Serialize, Deserialize)]
struct AddsItsAttempt;

impl Runnable for AddsItsAttempt {
    const NAME: &'static str = "test.adds_its_attempt";
    type Output = i64;
    type Error = crucial_dso::DsoError;

    async fn run(self, ctx: &Context) -> Result<i64, Self::Error> {
        let counter = ctx.dso().counter("nondeterministic");
        counter.add(1 + i64::from(ctx.attempt())).await?;
        counter.get().await
    }
}

crucial_threads::register!(AddsItsAttempt);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_deterministic_replay_is_refused_not_applied() {
    // Killed at its second call, so the first (the one a retry changes) was answered and applied.
    let faults = LocalFaults { seed: 1, kill_attempts_below: 1, kill_at_calls: 2..=2 };
    let executor = Local::builder().faults(faults).start().await.unwrap();
    let handle = CloudThread::builder().retries(2).spawn(&executor, AddsItsAttempt);
    match handle.join().await {
        Err(ThreadError::Nondeterministic { detail, .. }) => {
            assert!(detail.contains("non-deterministic"), "{detail}")
        }
        other => panic!("expected a non-deterministic replay, got {other:?}"),
    }
    assert_eq!(
        executor.dso().counter("nondeterministic").get().await.unwrap(),
        1,
        "only the first run's call applied"
    );
}

/// Adds 1 twice to each of its keys, in turn: each key holds two records of the thread's
/// session until the thread's release leaves one (the release's own).
#[derive(Serialize, Deserialize)]
struct AddsTwiceToEach {
    keys: Vec<String>,
}

impl Runnable for AddsTwiceToEach {
    const NAME: &'static str = "test.adds_twice_to_each";
    type Output = ();
    type Error = crucial_dso::DsoError;

    async fn run(self, ctx: &Context) -> Result<(), Self::Error> {
        for key in &self.keys {
            let counter = ctx.dso().counter(key);
            counter.add(1).await?;
            counter.add(1).await?;
        }
        Ok(())
    }
}

crucial_threads::register!(AddsTwiceToEach);

const RELEASED_KEYS: u64 = 3;

/// Runs one `AddsTwiceToEach` thread on a server of its own, its first attempt killed right
/// after sending its call number `kill_at` if given; the session records the server holds
/// then, and how long the thread took.
async fn records_left_by_one_thread(kill_at: Option<u64>) -> (usize, Duration) {
    let server = crucial_dso::Server::embedded().await.unwrap();
    let mut executor = Local::builder().dso(vec![server.local_addr().to_string()]);
    if let Some(call) = kill_at {
        executor =
            executor.faults(LocalFaults { seed: 0, kill_attempts_below: 1, kill_at_calls: call..=call });
    }
    let executor = executor.start().await.unwrap();
    let keys = (0..RELEASED_KEYS).map(|key| format!("released-{key}")).collect();
    let started = std::time::Instant::now();
    let handle = CloudThread::builder().retries(2).spawn(&executor, AddsTwiceToEach { keys });
    assert_eq!(handle.join().await, Ok(()), "killed at call {kill_at:?}");
    let took = started.elapsed();
    for key in 0..RELEASED_KEYS {
        let total = executor.dso().counter(format!("released-{key}")).get().await.unwrap();
        assert_eq!(total, 2, "killed at call {kill_at:?}: key {key} added to exactly once");
    }
    (server.session_records(), took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_killed_while_releasing_is_retried_and_its_records_released() {
    let (clean, _) = records_left_by_one_thread(None).await;
    // One release record per key (unreleased, each would hold two), and the invoker's session's
    // last call on each key it used: the thread's result and the three counters read back.
    assert_eq!(clean, 2 * RELEASED_KEYS as usize + 1, "an unkilled thread releases every key");
    let calls = 2 * RELEASED_KEYS;
    // Kill points past the thread's own calls land on its releases, one per key.
    for kill_at in calls + 1..=calls + RELEASED_KEYS {
        let (records, took) = records_left_by_one_thread(Some(kill_at)).await;
        assert_eq!(records, clean, "killed at release call {kill_at}: the retry releases what is left");
        assert!(
            took < Duration::from_secs(5),
            "killed at release call {kill_at}: the kill ends the invocation (took {took:?}, where waiting \
             out the release timeout takes 10 s)"
        );
    }
}
