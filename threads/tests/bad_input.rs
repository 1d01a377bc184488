//! Bad input gets a distinct, clear `ThreadError`, never a hang: an unknown runnable, a panic,
//! a result that does not decode, an unreachable DSO, a timeout, input that does not decode.

use std::time::Duration;

use crucial_threads::{
    CloudThread, Context, Executor, Invocation, InvokeOptions, Local, Runnable, ThreadError,
};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Panics;

impl Runnable for Panics {
    const NAME: &'static str = "test.panics";
    type Output = ();
    type Error = String;

    async fn run(self, _ctx: &Context) -> Result<(), String> {
        panic!("the runnable gave up")
    }
}

#[derive(Serialize, Deserialize)]
struct Fails;

impl Runnable for Fails {
    const NAME: &'static str = "test.fails";
    type Output = ();
    type Error = String;

    async fn run(self, ctx: &Context) -> Result<(), String> {
        ctx.log("about to fail");
        Err("no luck".into())
    }
}

/// Returns a string where its caller expects a number (a client built against another version).
#[derive(Serialize, Deserialize)]
struct SaysHello;

impl Runnable for SaysHello {
    const NAME: &'static str = "test.says_hello";
    type Output = String;
    type Error = String;

    async fn run(self, _ctx: &Context) -> Result<String, String> {
        Ok("hello".into())
    }
}

/// The caller's view of `SaysHello`: same name, another output type.
#[derive(Serialize, Deserialize)]
struct ExpectsNumber;

impl Runnable for ExpectsNumber {
    const NAME: &'static str = "test.says_hello";
    type Output = u64;
    type Error = String;

    async fn run(self, _ctx: &Context) -> Result<u64, String> {
        unreachable!("only spawned, never registered")
    }
}

#[derive(Serialize, Deserialize)]
struct Sleeps;

impl Runnable for Sleeps {
    const NAME: &'static str = "test.sleeps";
    type Output = ();
    type Error = String;

    async fn run(self, _ctx: &Context) -> Result<(), String> {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(())
    }
}

/// Adds 1 to one counter `times` times.
#[derive(Serialize, Deserialize)]
struct ManyAdds {
    times: u64,
}

impl Runnable for ManyAdds {
    const NAME: &'static str = "test.many_adds";
    type Output = ();
    type Error = crucial_dso::DsoError;

    async fn run(self, ctx: &Context) -> Result<(), Self::Error> {
        for _ in 0..self.times {
            ctx.dso().counter("many").add(1).await?;
        }
        Ok(())
    }
}

crucial_threads::register!(Panics, Fails, SaysHello, Sleeps, ManyAdds);

fn invocation(executor: &Local, name: &str, input: serde_json::Value) -> Invocation {
    let thread = executor.next_thread_id();
    Invocation {
        thread,
        session: thread.session(),
        attempt: 0,
        name: name.into(),
        input,
        dso: executor.dso_members(),
        dso_token: executor.dso_access().token,
        dso_tls: executor.dso_access().tls,
        dso_insecure: false,
    }
}

const OPTIONS: InvokeOptions = InvokeOptions { timeout: Duration::from_secs(10) };

#[tokio::test]
async fn an_unknown_runnable_is_a_typed_error() {
    let executor = Local::embedded().await.unwrap();
    let report = executor
        .invoke(invocation(&executor, "no.such.runnable", serde_json::json!(null)), OPTIONS)
        .await
        .unwrap();
    assert_eq!(report.outcome, Err(ThreadError::UnknownRunnable { name: "no.such.runnable".into() }));
}

#[tokio::test]
async fn input_that_does_not_decode_is_bad_input() {
    let executor = Local::embedded().await.unwrap();
    let report = executor
        .invoke(invocation(&executor, "test.sleeps", serde_json::json!({"x": 1})), OPTIONS)
        .await
        .unwrap();
    assert!(
        matches!(report.outcome, Err(ThreadError::BadInput { ref name, .. }) if name == "test.sleeps"),
        "{report:?}"
    );
}

#[tokio::test]
async fn a_panic_comes_back_with_its_message() {
    let executor = Local::embedded().await.unwrap();
    match CloudThread::spawn(&executor, Panics).join().await {
        Err(ThreadError::Panicked { message, .. }) => assert_eq!(message, "the runnable gave up"),
        other => panic!("expected a panic, got {other:?}"),
    }
}

#[tokio::test]
async fn the_runnables_error_and_logs_come_back() {
    let executor = Local::embedded().await.unwrap();
    let (result, logs) = CloudThread::spawn(&executor, Fails).join_with_logs().await;
    assert!(
        matches!(result, Err(ThreadError::Failed { ref message, .. }) if message == "no luck"),
        "{result:?}"
    );
    assert_eq!(logs, vec!["about to fail".to_string()]);
}

#[tokio::test]
async fn a_result_that_does_not_decode_is_bad_output() {
    let executor = Local::embedded().await.unwrap();
    match CloudThread::spawn(&executor, ExpectsNumber).join().await {
        Err(ThreadError::BadOutput { reason, .. }) => assert!(reason.contains("expected u64"), "{reason}"),
        other => panic!("expected bad output, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_dso_is_reported_at_once() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let started = std::time::Instant::now();
    match Local::connect(vec![addr]).await {
        Err(ThreadError::DsoUnavailable { reason }) => assert!(reason.contains("refused"), "{reason}"),
        other => panic!("expected an unavailable DSO, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_thread_past_its_timeout_is_stopped() {
    let executor = Local::embedded().await.unwrap();
    let handle =
        CloudThread::builder().timeout(Duration::from_millis(200)).retries(1).spawn(&executor, Sleeps);
    assert!(matches!(handle.join().await, Err(ThreadError::TimedOut { after_ms: 200, .. })));
}

#[tokio::test]
async fn a_thread_past_the_records_a_key_keeps_gets_a_clear_error() {
    let node = crucial_dso::core::node::NodeConfig { session_calls_max: 8, ..Default::default() };
    let server = crucial_dso::ServerBuilder::new().node_config(node);
    let executor = Local::builder().embedded_server(server).start().await.unwrap();
    match CloudThread::spawn(&executor, ManyAdds { times: 20 }).join().await {
        Err(ThreadError::RecordsExceeded { detail, .. }) => {
            assert!(detail.contains("session_calls_max"), "{detail}")
        }
        other => panic!("expected the records bound, got {other:?}"),
    }
    assert_eq!(executor.dso().counter("many").get().await.unwrap(), 8, "nothing applied past the bound");
}
