//! Mandelbrot on cloud threads: `invoke_iterative` over the rows into a user-defined shared
//! `Image`; writes a PNG and checks every pixel against the sequential version.
//!
//! `cargo run -p crucial-threads --example mandelbrot -- --threads 8 --out mandelbrot.png`

mod apps;
mod common;

use std::path::PathBuf;
use std::process::ExitCode;

use apps::mandelbrot::{self, Image, MandelbrotRows, View};
use clap::Parser;
use crucial_threads::{invoke_iterative, Executor};

/// Mandelbrot on cloud threads.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(flatten)]
    run: common::RunArgs,
    /// Width in pixels.
    #[arg(long, default_value_t = 800)]
    width: u32,
    /// Height in pixels.
    #[arg(long, default_value_t = 600)]
    height: u32,
    /// Iterations per pixel.
    #[arg(long, default_value_t = 256)]
    iterations: u32,
    /// Where to write the PNG.
    #[arg(long, default_value = "mandelbrot.png")]
    out: PathBuf,
}

#[tokio::main]
async fn main() -> Result<ExitCode, Box<dyn std::error::Error + Send + Sync>> {
    common::init_tracing();
    let args = Args::parse();
    common::run_app(move || run(args)).await
}

async fn run(args: Args) -> Result<ExitCode, Box<dyn std::error::Error + Send + Sync>> {
    let view = View { width: args.width, height: args.height, iterations_max: args.iterations };
    let executor = args.run.executor().await?;
    let key = common::run_id("mandelbrot");
    let image = executor.dso().object(&key, Image::new(view.width, view.height)).await?;
    let started = std::time::Instant::now();
    let results = invoke_iterative(
        &executor,
        &args.run.builder(),
        args.run.threads,
        0..u64::from(view.height),
        |rows| MandelbrotRows { view, rows, image: key.clone() },
    )
    .await;
    for result in results {
        if !result? {
            eprintln!("a thread's rows did not fit the image");
            return Ok(ExitCode::FAILURE);
        }
    }
    let elapsed = started.elapsed();
    let (width, height, pixels) = image.pixels().await?;
    mandelbrot::write_png(&args.out, width, height, &pixels)?;
    println!(
        "mandelbrot {width}x{height} on {} cloud threads in {:.3} s: {}",
        args.run.threads,
        elapsed.as_secs_f64(),
        args.out.display()
    );
    if pixels != mandelbrot::sequential(&view) {
        eprintln!("MISMATCH: the image differs from the sequential reference");
        return Ok(ExitCode::FAILURE);
    }
    println!("every pixel matches the sequential reference");
    Ok(ExitCode::SUCCESS)
}
