//! The Lambda function of every example application: one handler binary that serves all their
//! runnables (a program of your own links its runnables into its own handler, the same three
//! lines). Build it for Lambda with `cargo lambda build --release -p crucial-threads --bin
//! crucial-lambda-handler --features lambda`; run it locally under `cargo lambda watch` with
//! the same arguments.

#[path = "../../examples/apps/mod.rs"]
mod apps;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    crucial_threads::lambda::init_logging();
    crucial_threads::lambda::serve().await
}
