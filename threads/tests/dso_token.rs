//! Cloud threads against a DSO that requires a token (and serves TLS): the executor hands
//! what it takes to every thread in its invocation, and the token never shows in what gets
//! printed or logged.

use std::time::Duration;

use crucial_threads::dso::core::auth::Token;
use crucial_threads::DsoAccess;
use crucial_threads::{CloudThread, Context, Executor, InvokeOptions, Local, Runnable, ThreadError};
use serde::{Deserialize, Serialize};

const SECRET: &str = "a-cluster-token-0123456789";

/// Adds `n` to the counter `key`; returns its new value.
#[derive(Serialize, Deserialize)]
struct Add {
    key: String,
    n: i64,
}

impl Runnable for Add {
    const NAME: &'static str = "test.token_add";
    type Output = i64;
    type Error = crucial_dso::DsoError;

    async fn run(self, ctx: &Context) -> Result<i64, Self::Error> {
        ctx.dso().counter(&self.key).add(self.n).await
    }
}

crucial_threads::register!(Add);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_present_the_executors_token_and_it_never_shows() {
    let executor = Local::builder().dso_token(Token::new(SECRET).unwrap()).start().await.unwrap();
    let handles: Vec<_> =
        (0..4).map(|_| CloudThread::spawn(&executor, Add { key: "total".into(), n: 5 })).collect();
    for handle in handles {
        handle.join().await.expect("a thread with the token runs");
    }
    assert_eq!(executor.dso().counter("total").get().await.unwrap(), 20);

    // An invocation with another token: the thread cannot reach the DSO and says why.
    let thread = executor.next_thread_id();
    let invocation = crucial_threads::Invocation {
        thread,
        session: thread.session(),
        attempt: 0,
        name: Add::NAME.into(),
        input: serde_json::to_value(Add { key: "total".into(), n: 1 }).unwrap(),
        dso: executor.dso_members(),
        dso_token: Some(Token::new("another-token-0123456789").unwrap()),
        dso_tls: None,
        dso_insecure: false,
    };
    let shown = format!("{invocation:?}");
    assert!(!shown.contains("another-token") && shown.contains("<redacted>"), "{shown}");
    let options = InvokeOptions { timeout: Duration::from_secs(30) };
    let report = executor.invoke(invocation, options).await.unwrap();
    match report.outcome {
        Err(ThreadError::Failed { message, .. }) => assert!(message.contains("wrong token"), "{message}"),
        other => panic!("expected the thread to fail over the token, got {other:?}"),
    }
    assert_eq!(
        executor.dso().counter("total").get().await.unwrap(),
        20,
        "the refused thread changed nothing"
    );
}

/// A cluster serving TLS with a token, as deployed: threads get the token and the CA in their
/// invocations and reach it over TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_reach_a_tls_cluster_with_the_executors_trust() {
    use crucial_testkit::tls::{TestCa, Validity};
    use crucial_threads::dso::server::{ServerBuilder, ServerTls};
    use crucial_threads::dso::tls::{TlsIdentity, TlsTrust, TLS_NAME_DEFAULT};
    let ca = TestCa::new("test CA");
    let issued = ca.issue(TLS_NAME_DEFAULT, Validity::Current);
    let identity =
        TlsIdentity::from_pem(issued.certificate_pem.as_bytes(), issued.key_pem.as_bytes()).unwrap();
    let server = ServerBuilder::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .token(Token::new(SECRET).unwrap())
        .tls(ServerTls { identity, members: None })
        .start()
        .await
        .unwrap();
    let trust = TlsTrust::from_pem(ca.certificate_pem().as_bytes(), TLS_NAME_DEFAULT).unwrap();
    let executor = Local::builder()
        .dso(vec![server.local_addr().to_string()])
        .dso_access(DsoAccess {
            token: Some(Token::new(SECRET).unwrap()),
            tls: Some(trust.clone()),
            insecure: false,
        })
        .start()
        .await
        .unwrap();
    assert_eq!(executor.dso_access().tls, Some(trust));
    let handles: Vec<_> =
        (0..4).map(|_| CloudThread::spawn(&executor, Add { key: "tls-total".into(), n: 3 })).collect();
    for handle in handles {
        handle.join().await.expect("a thread reaches the TLS cluster");
    }
    assert_eq!(executor.dso().counter("tls-total").get().await.unwrap(), 12);
}
