//! Cloud threads through the real Lambda Invoke API: the example handler runs under
//! `cargo lambda watch` on a loopback port it could bind (installed from PyPI if missing), the `Lambda`
//! executor invokes it in both modes, and Monte Carlo pi and k-means (8 concurrent threads
//! waiting on one barrier) give the sequential answers, also against a `crucial-apps-server`
//! process that requires a token and serves TLS, as deployed. Also: a payload over the limit, an
//! unreachable DSO reported by the function (HTTP 500 from the emulator), and an endpoint
//! that refuses connections, each a distinct `ThreadError`.
//!
//! Skipped (with a message) where `cargo lambda` cannot be had, except under CI.

#[path = "../examples/apps/mod.rs"]
mod apps;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crucial_threads::lambda::{Lambda, Mode};
use crucial_threads::{
    invoke_all, Builder, CloudThread, Executor, Invocation, InvokeOptions, Runnable, ThreadError,
};

const THREADS: usize = 8;

/// `cargo lambda watch` serving the example handler; stopped on drop.
struct Emulator {
    _process: crucial_testkit::Process,
    endpoint: String,
}

fn cargo_lambda_available() -> bool {
    let works =
        || Command::new("cargo").args(["lambda", "--version"]).output().is_ok_and(|out| out.status.success());
    if works() {
        return true;
    }
    let _ = Command::new("python3").args(["-m", "pip", "install", "--quiet", "cargo-lambda"]).status();
    works()
}

fn start_emulator() -> Option<Emulator> {
    if !cargo_lambda_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "cargo lambda is needed under CI (pip install cargo-lambda)"
        );
        eprintln!("skipping: cargo lambda is not available");
        return None;
    }
    std::env::set_var("AWS_ACCESS_KEY_ID", "test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    std::env::set_var("AWS_REGION", "us-east-1");
    let log = |port: u16| std::env::temp_dir().join(format!("crucial-cargo-lambda-watch-{port}.log"));
    // `cargo lambda watch` cannot bind port 0 (it takes 0 for its default, 9000): it gets a
    // candidate port, and another if it could not bind that one.
    let watch = |port: u16| {
        let file = std::fs::File::create(log(port)).unwrap();
        let mut command = Command::new("cargo");
        command
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .args(["lambda", "watch", "--ignore-changes", "-p", "crucial-threads"])
            .args(["--bin", "crucial-lambda-handler", "--features", "lambda"])
            .args(["--invoke-address", "127.0.0.1", "--invoke-port", &port.to_string()])
            .args(["--concurrency", "16", "--timeout", "300"])
            .stdin(Stdio::null())
            // Its "starting Runtime server" line goes to standard output.
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        command
    };
    // Ready: it says it serves this port, and the port takes connections.
    let ready = |port: u16| {
        let serving = format!("runtime_addr=127.0.0.1:{port}");
        std::fs::read_to_string(log(port)).is_ok_and(|text| text.contains(&serving))
            && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    };
    let (process, port) = crucial_testkit::spawn_on_free_port(watch, ready, Duration::from_secs(60))
        .unwrap_or_else(|error| {
            panic!(
                "{error} (its logs: {})",
                std::env::temp_dir().join("crucial-cargo-lambda-watch-*.log").display()
            )
        });
    Some(Emulator { _process: process, endpoint: format!("http://127.0.0.1:{port}") })
}

async fn lambda(emulator: &Emulator, mode: Mode) -> Lambda {
    Lambda::builder("crucial-lambda-handler")
        .endpoint(&emulator.endpoint)
        .mode(mode)
        .embedded_server(apps::server())
        .start()
        .await
        .unwrap()
}

async fn pi_and_kmeans(executor: &Lambda) {
    let builder = Builder::default().timeout(Duration::from_secs(240));
    let workers = apps::pi::workers(THREADS, 50_000, "pi");
    let hits: u64 =
        invoke_all(executor, &builder, workers.clone()).await.into_iter().map(Result::unwrap).sum();
    let expected: u64 = workers.iter().map(|w| apps::pi::hits(w.samples, w.seed)).sum();
    assert_eq!(hits, expected);
    assert_eq!(executor.dso().atomic_long("pi").get().await.unwrap(), expected as i64);

    let problem = apps::kmeans::Problem {
        k: 3,
        dims: 2,
        points_per_block: 300,
        blocks: THREADS,
        iterations: 4,
        seed: 9,
    };
    let results = invoke_all(executor, &builder, apps::kmeans::workers(problem, "km")).await;
    let inertia: i64 = results.into_iter().map(Result::unwrap).sum();
    assert_eq!(inertia, apps::kmeans::sequential(&problem).1);
}

/// A duplicate of a finished thread that arrives while its outcome is kept (see
/// `deploy/lambda.sh --help` for the window) runs nothing and answers the stored outcome.
async fn a_late_duplicate_returns_the_stored_outcome(executor: &Lambda) {
    let worker = || apps::pi::workers(1, 1_000, "late").remove(0);
    let handle = CloudThread::spawn(executor, worker());
    let thread = handle.thread_id();
    let hits = handle.join().await.unwrap();
    let access = executor.dso_access();
    let late = Invocation {
        thread,
        session: thread.session(),
        attempt: 7,
        name: apps::pi::PiWorker::NAME.into(),
        input: serde_json::to_value(worker()).unwrap(),
        dso: executor.dso_members(),
        dso_token: access.token,
        dso_tls: access.tls,
        dso_insecure: access.insecure,
    };
    let report = executor.invoke(late, InvokeOptions { timeout: Duration::from_secs(60) }).await.unwrap();
    assert!(report.stored, "the late duplicate must not run");
    assert_eq!(report.outcome, Ok(serde_json::json!(hits)));
    assert_eq!(executor.dso().atomic_long("late").get().await.unwrap(), hits as i64, "counted once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pi_and_kmeans_through_cargo_lambda_watch_in_both_modes() {
    let Some(emulator) = start_emulator() else { return };
    let request_response = lambda(&emulator, Mode::RequestResponse).await;
    // The first call builds and starts the function: give it time.
    let warm = Builder::default().timeout(Duration::from_secs(280));
    let first = invoke_all(&request_response, &warm, apps::pi::workers(1, 10, "warm-up")).await;
    assert_eq!(first.len(), 1);
    first.into_iter().for_each(|result| {
        result.unwrap();
    });
    pi_and_kmeans(&request_response).await;
    a_late_duplicate_returns_the_stored_outcome(&request_response).await;
    pi_and_kmeans(&lambda(&emulator, Mode::Event).await).await;

    // A payload over the limit never leaves.
    let small = Lambda::builder("crucial-lambda-handler")
        .endpoint(&emulator.endpoint)
        .payload_limits(256, 256, 1 << 20)
        .embedded_server(apps::server())
        .start()
        .await
        .unwrap();
    let big = apps::kmeans::KMeansWorker {
        problem: apps::kmeans::Problem {
            k: 1,
            dims: 1,
            points_per_block: 1,
            blocks: 1,
            iterations: 1,
            seed: 0,
        },
        block: 0,
        run: "x".repeat(300),
    };
    match crucial_threads::CloudThread::spawn(&small, big).join().await {
        Err(ThreadError::PayloadTooLarge { what, limit: 256, .. }) => assert_eq!(what, "request"),
        other => panic!("expected a payload over the limit, got {other:?}"),
    }

    // The function finds no DSO (no `CRUCIAL_DSO` in its environment): its function error
    // (HTTP 500 from the emulator) comes back as the typed error it sent.
    let no_members = Lambda::builder("crucial-lambda-handler")
        .endpoint(&emulator.endpoint)
        .dso_from_function_environment()
        .embedded_server(apps::server())
        .start()
        .await
        .unwrap();
    match crucial_threads::CloudThread::spawn(&no_members, apps::pi::workers(1, 1, "k").remove(0))
        .join()
        .await
    {
        Err(ThreadError::DsoUnavailable { reason }) => assert!(reason.contains("no DSO member"), "{reason}"),
        other => panic!("expected the function's unavailable DSO, got {other:?}"),
    }

    // As deployed: the examples' types on a server process of their own that requires a token
    // and serves TLS; the executor hands both to the threads in their invocations.
    let secured = SecuredServer::start();
    let executor = Lambda::builder("crucial-lambda-handler")
        .endpoint(&emulator.endpoint)
        .dso(vec![secured.addr.clone()])
        .dso_access(crucial_threads::DsoAccess {
            token: Some(secured.token.clone()),
            tls: Some(secured.trust.clone()),
            insecure: false,
        })
        .start()
        .await
        .unwrap();
    pi_and_kmeans(&executor).await;
}

/// A `crucial-apps-server` process on loopback with a token and TLS (a CA made for the test).
struct SecuredServer {
    _process: crucial_testkit::Process,
    _dir: TempDir,
    addr: String,
    token: crucial_threads::dso::core::auth::Token,
    trust: crucial_threads::dso::tls::TlsTrust,
}

/// A directory removed on drop.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl SecuredServer {
    fn start() -> Self {
        use crucial_testkit::tls::{write_private, TestCa};
        use crucial_threads::dso::tls::{TlsTrust, TLS_NAME_DEFAULT};
        let dir = TempDir(std::env::temp_dir().join(format!("crucial-secured-{}", std::process::id())));
        std::fs::create_dir_all(&dir.0).unwrap();
        let secret = "a-token-for-the-lambda-test-0123";
        write_private(&dir.0.join("token"), secret).unwrap();
        let ca = TestCa::new("test CA");
        let files = ca.write_server_files(&dir.0, TLS_NAME_DEFAULT).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_crucial-apps-server"));
        command.args(["--bind", "127.0.0.1:0", "--token-file"]).arg(dir.0.join("token")).args(&files.args);
        let announces = crucial_testkit::Announces::Stdout;
        let (process, addr) = crucial_testkit::spawn_announcing(
            command,
            announces,
            crucial_testkit::listening_addr,
            Duration::from_secs(10),
        )
        .unwrap();
        Self {
            _process: process,
            _dir: dir,
            addr,
            token: crucial_threads::dso::core::auth::Token::new(secret).unwrap(),
            trust: TlsTrust::from_pem(ca.certificate_pem().as_bytes(), TLS_NAME_DEFAULT).unwrap(),
        }
    }
}

#[tokio::test]
async fn an_endpoint_that_refuses_is_an_invocation_error() {
    std::env::set_var("AWS_ACCESS_KEY_ID", "test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    std::env::set_var("AWS_REGION", "us-east-1");
    // A port nothing listens on: one just closed.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let endpoint = format!("http://127.0.0.1:{closed}");
    let executor =
        Lambda::builder("f").endpoint(endpoint).embedded_server(apps::server()).start().await.unwrap();
    let started = Instant::now();
    match crucial_threads::CloudThread::spawn(&executor, apps::pi::workers(1, 1, "k").remove(0)).join().await
    {
        Err(ThreadError::Invocation { reason, .. }) => {
            assert!(reason.to_lowercase().contains("connect"), "{reason}")
        }
        other => panic!("expected an invocation failure, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(30));
}
