//! The five applications as cloud threads on simulated serverless nodes (madsim, `cargo simtest`),
//! with every serverless fault drawn from the seed: cold starts, crashes mid-run, concurrent
//! duplicate deliveries, throttling, timeouts, and client retries. Each seed must give the
//! sequential answers, and a counter that K threads add to M times each must end at K x M with
//! every acknowledged value distinct (a linearizable counter). The canary (a fresh session per
//! retry) must over-count.
//!
//! `MADSIM_TEST_NUM=1000 cargo simtest -p crucial-threads --features sim --test simulated`
//! sweeps 1000 seeds; `MADSIM_TEST_SEED=N` replays one; `CRUCIAL_SWEEP_OUT=FILE` appends one
//! line of fault counts per seed.

#![cfg(madsim)]

#[path = "../examples/apps/mod.rs"]
mod apps;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crucial_threads::simulated::{FaultCounts, ServerlessFaults, Simulated};
use crucial_threads::{invoke_all, Builder, Context, Executor, Runnable};
use madsim::runtime::Handle;
use serde::{Deserialize, Serialize};

/// Adds 1 to a counter `times` times; returns the values its adds returned.
#[derive(Clone, Serialize, Deserialize)]
struct AddOnes {
    key: String,
    times: u64,
}

impl Runnable for AddOnes {
    const NAME: &'static str = "sim.add_ones";
    type Output = Vec<i64>;
    type Error = crucial_dso::DsoError;

    async fn run(self, ctx: &Context) -> Result<Vec<i64>, Self::Error> {
        let counter = ctx.dso().counter(&self.key);
        let mut values = Vec::new();
        for _ in 0..self.times {
            values.push(counter.add(1).await?);
        }
        Ok(values)
    }
}

crucial_threads::register!(AddOnes);

const DSO: u8 = 1;
const INVOKER: u8 = 2;

fn host(index: u8) -> IpAddr {
    IpAddr::from([192, 0, 2, index])
}

fn replay() -> String {
    let seed = Handle::current().seed();
    format!(
        "replay: MADSIM_TEST_SEED={seed} cargo simtest -p crucial-threads --features sim --test simulated"
    )
}

/// Starts the DSO server node and runs `driver` on an invoker node.
async fn with_cluster<T: Send + 'static>(
    driver: impl FnOnce(Vec<String>) -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>
        + Send
        + 'static,
) -> T {
    let handle = Handle::current();
    let addr = SocketAddr::new(host(DSO), 11222);
    handle.create_node().name("dso").ip(host(DSO)).build().spawn(async move {
        // A simulated private network: no token.
        let server = apps::server().bind(addr).insecure().start().await.unwrap();
        server.wait().await;
    });
    madsim::time::sleep(Duration::from_millis(100)).await;
    let invoker = handle.create_node().name("invoker").ip(host(INVOKER)).build();
    invoker.spawn(driver(vec![addr.to_string()])).await.unwrap()
}

/// Generous retries; a speculative duplicate for any invocation slower than 20 s.
fn builder() -> Builder {
    Builder::default().retries(30).timeout(Duration::from_secs(60)).backup_after(Duration::from_secs(20))
}

/// The counter workload: `threads` x `times` adds; the final value and every value returned.
async fn counter_run(
    executor: &Simulated,
    builder: &Builder,
    key: &str,
    threads: usize,
    times: u64,
) -> (i64, Vec<i64>) {
    let runnables = vec![AddOnes { key: key.into(), times }; threads];
    let mut values = Vec::new();
    for result in invoke_all(executor, builder, runnables).await {
        values
            .extend(result.unwrap_or_else(|error| panic!("a counter thread failed: {error} ({})", replay())));
    }
    values.sort_unstable();
    (executor.dso().counter(key).get().await.unwrap(), values)
}

async fn sweep(members: Vec<String>) -> FaultCounts {
    let seed = Handle::current().seed();
    let executor = Simulated::start(members, ServerlessFaults::default(), seed).await.unwrap();
    let builder = builder();

    let workers = apps::pi::workers(6, 2_000, "pi");
    let hits: u64 =
        invoke_all(&executor, &builder, workers.clone()).await.into_iter().map(|r| r.unwrap()).sum();
    let expected: u64 = workers.iter().map(|w| apps::pi::hits(w.samples, w.seed)).sum();
    assert_eq!(hits, expected, "pi: threads' hits ({})", replay());
    assert_eq!(
        executor.dso().atomic_long("pi").get().await.unwrap(),
        expected as i64,
        "pi: shared counter ({})",
        replay()
    );

    let problem =
        apps::kmeans::Problem { k: 3, dims: 2, points_per_block: 40, blocks: 4, iterations: 3, seed };
    let inertia: i64 = invoke_all(&executor, &builder, apps::kmeans::workers(problem, "km"))
        .await
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("k-means: {e} ({})", replay())))
        .sum();
    assert_eq!(inertia, apps::kmeans::sequential(&problem).1, "k-means: inertia ({})", replay());

    let problem = apps::logreg::Problem {
        dims: 3,
        points_per_block: 50,
        blocks: 4,
        epochs: 3,
        learning_rate: 2.0,
        seed,
    };
    let correct: u64 = invoke_all(&executor, &builder, apps::logreg::workers(problem, "lr"))
        .await
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("logistic regression: {e} ({})", replay())))
        .sum();
    let (_, expected) = apps::logreg::sequential(&problem);
    assert!(
        (correct as f64 / 200.0 - expected).abs() <= 0.01,
        "logistic regression: accuracy ({})",
        replay()
    );

    let view = apps::mandelbrot::View { width: 24, height: 16, iterations_max: 32 };
    let image =
        executor.dso().object("img", apps::mandelbrot::Image::new(view.width, view.height)).await.unwrap();
    let rows = crucial_threads::invoke_iterative(&executor, &builder, 4, 0..16, |rows| {
        apps::mandelbrot::MandelbrotRows { view, rows, image: "img".into() }
    })
    .await;
    assert!(rows.into_iter().all(|r| r == Ok(true)), "mandelbrot: rows ({})", replay());
    assert_eq!(
        image.pixels().await.unwrap().2,
        apps::mandelbrot::sequential(&view),
        "mandelbrot: pixels ({})",
        replay()
    );

    let actors = apps::santa::actors(2, 3, 6, "santa");
    let seen: Vec<_> = invoke_all(&executor, &builder, actors)
        .await
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("santa: {e} ({})", replay())))
        .collect();
    apps::santa::check(&seen, 2, 6).unwrap_or_else(|broken| panic!("santa: {broken} ({})", replay()));

    let (threads, times) = (6, 10);
    let (total, values) = counter_run(&executor, &builder, "counter", threads, times).await;
    let expected = (threads as u64 * times) as i64;
    assert_eq!(total, expected, "counter: exactly-once ({})", replay());
    assert_eq!(values, (1..=expected).collect::<Vec<_>>(), "counter: acknowledged values ({})", replay());
    executor.fault_counts()
}

#[madsim::test]
async fn applications_give_the_sequential_answers_under_serverless_faults() {
    let counts = with_cluster(|members| Box::pin(sweep(members))).await;
    assert!(counts.invocations > 0);
    if let Some(path) = std::env::var_os("CRUCIAL_SWEEP_OUT") {
        use std::io::Write;
        let mut out = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
        let FaultCounts { invocations, cold_starts, crashes, timeouts, duplicates, throttles } = counts;
        writeln!(
            out,
            "{} {invocations} {cold_starts} {crashes} {timeouts} {duplicates} {throttles}",
            Handle::current().seed()
        )
        .unwrap();
    }
}

#[madsim::test]
async fn the_fresh_session_canary_over_counts() {
    let seed = Handle::current().seed();
    let (total, expected) = with_cluster(move |members| {
        Box::pin(async move {
            let faults = ServerlessFaults {
                crash_probability: 0.5,
                crash_within_calls: 10,
                ..ServerlessFaults::default()
            };
            let executor = Simulated::start(members, faults, seed).await.unwrap();
            let builder = builder().canary_fresh_session_per_attempt();
            let mut total = 0;
            for round in 0..3 {
                total += counter_run(&executor, &builder, &format!("canary{round}"), 8, 10).await.0;
            }
            (total, 3 * 8 * 10)
        })
    })
    .await;
    assert!(total > expected, "the canary went unnoticed: {total} adds counted ({})", replay());
}
