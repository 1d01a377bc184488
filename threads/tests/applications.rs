//! The five applications on the local executor, each checked against its sequential
//! reference (the examples' own code, at test sizes).

#[path = "../examples/apps/mod.rs"]
mod apps;

use crucial_threads::{invoke_all, invoke_iterative, Builder, Executor, Local};

async fn executor() -> Local {
    Local::builder().embedded_server(apps::server()).start().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monte_carlo_pi_counts_every_hit_once() {
    let executor = executor().await;
    let workers = apps::pi::workers(8, 20_000, "pi");
    let reported: u64 = invoke_all(&executor, &Builder::default(), workers.clone())
        .await
        .into_iter()
        .map(Result::unwrap)
        .sum();
    let expected: u64 = workers.iter().map(|w| apps::pi::hits(w.samples, w.seed)).sum();
    assert_eq!(reported, expected);
    assert_eq!(executor.dso().atomic_long("pi").get().await.unwrap(), expected as i64);
    let pi = 4.0 * expected as f64 / 160_000.0;
    assert!((pi - std::f64::consts::PI).abs() < 0.02, "{pi}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kmeans_matches_the_sequential_inertia() {
    let problem =
        apps::kmeans::Problem { k: 3, dims: 2, points_per_block: 500, blocks: 8, iterations: 6, seed: 3 };
    let executor = executor().await;
    let results = invoke_all(&executor, &Builder::default(), apps::kmeans::workers(problem, "km")).await;
    let inertia: i64 = results.into_iter().map(Result::unwrap).sum();
    assert_eq!(inertia, apps::kmeans::sequential(&problem).1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logistic_regression_matches_the_sequential_accuracy() {
    let problem = apps::logreg::Problem {
        dims: 4,
        points_per_block: 400,
        blocks: 8,
        epochs: 8,
        learning_rate: 2.0,
        seed: 5,
    };
    let executor = executor().await;
    let results = invoke_all(&executor, &Builder::default(), apps::logreg::workers(problem, "lr")).await;
    let correct: u64 = results.into_iter().map(Result::unwrap).sum();
    let accuracy = correct as f64 / 3_200.0;
    let (_, expected) = apps::logreg::sequential(&problem);
    assert!((accuracy - expected).abs() <= 0.01, "{accuracy} vs {expected}");
    assert!(accuracy > 0.8, "the model learned something: {accuracy}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mandelbrot_rows_fill_the_shared_image() {
    use apps::mandelbrot::{Image, MandelbrotRows, View};
    let view = View { width: 64, height: 48, iterations_max: 64 };
    let executor = executor().await;
    let image = executor.dso().object("img", Image::new(view.width, view.height)).await.unwrap();
    let results = invoke_iterative(&executor, &Builder::default(), 5, 0..48, |rows| MandelbrotRows {
        view,
        rows,
        image: "img".into(),
    })
    .await;
    assert_eq!(results.len(), 5);
    assert!(results.into_iter().all(|result| result == Ok(true)));
    let (_, _, pixels) = image.pixels().await.unwrap();
    assert_eq!(pixels, apps::mandelbrot::sequential(&view));
    let path = std::env::temp_dir().join(format!("crucial-mandelbrot-{}.png", std::process::id()));
    apps::mandelbrot::write_png(&path, view.width, view.height, &pixels).unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() > 100);
    std::fs::remove_file(path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn santa_claus_keeps_its_invariants() {
    let executor = executor().await;
    let actors = apps::santa::actors(3, 5, 15, "santa");
    let seen: Vec<_> =
        invoke_all(&executor, &Builder::default(), actors).await.into_iter().map(Result::unwrap).collect();
    apps::santa::check(&seen, 3, 15).unwrap();
}

#[test]
fn the_santa_check_catches_a_broken_invariant() {
    use apps::santa::{Seen, Task};
    let short_team = Seen::Santa(vec![(Task::Deliver((0..8).collect()), 8)]);
    let error = apps::santa::check(&[short_team], 1, 0).unwrap_err();
    assert!(error.contains("delivery 0"), "{error}");
    let both = Seen::Santa(vec![(Task::Help(vec![1, 1, 2]), 3)]);
    assert!(apps::santa::check(&[both], 0, 3).unwrap_err().contains("help 0"));
}
