//! AWS Lambda: the [`Lambda`] executor (invokes a function per cloud thread through
//! `aws-sdk-lambda`) and [`serve`], the handler that runs in the function.
//!
//! Modes: [`Mode::RequestResponse`] waits for the function and reads the report from the
//! response; [`Mode::Event`] invokes asynchronously and waits for the report in the DSO
//! `Future` the handler stores it in ([`crate::ThreadId::result_key`]). The SDK's own retries
//! are off (a retried Invoke is a second invocation); [`crate::Builder::retries`] decides. A
//! throttled Invoke (429) is tried again after a jittered, growing pause, and reported as
//! [`crate::ThreadError::Throttled`] if it persists. Credentials and region come from the standard
//! AWS chain; `endpoint` points the client at an emulator such as `cargo lambda watch`.

mod executor;
mod handler;

pub use executor::{Lambda, LambdaBuilder, Mode};
pub use handler::serve;

/// The target under which the Lambda runtime logs each invocation's payload (at `trace`),
/// token included.
const PAYLOAD_LOG_TARGET: &str = "lambda_runtime::layers::api_response";

/// Sets up the function's logs: `RUST_LOG` as usual, except that the runtime's log of each
/// payload stays off whatever `RUST_LOG` says (the payload carries the DSO's token). Call it
/// first in the function's `main`.
pub fn init_logging() {
    let filter = log_filter(&std::env::var("RUST_LOG").unwrap_or_default());
    tracing_subscriber::fmt().with_env_filter(filter).without_time().init();
}

/// `directives` (as in `RUST_LOG`), with the runtime's payload log capped below `trace`.
fn log_filter(directives: &str) -> tracing_subscriber::EnvFilter {
    let cap = format!("{PAYLOAD_LOG_TARGET}=debug").parse().expect("a valid directive");
    tracing_subscriber::EnvFilter::builder().parse_lossy(directives).add_directive(cap)
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    /// The payload log stays off even when everything is asked for, by name or at large.
    #[test]
    fn the_payload_log_stays_off_whatever_rust_log_says() {
        for (directives, others_on) in [
            ("trace", true),
            ("lambda_runtime=trace", true),
            ("lambda_runtime::layers::api_response=trace", false),
        ] {
            let subscriber = tracing_subscriber::registry().with(super::log_filter(directives));
            tracing::subscriber::with_default(subscriber, || {
                let payload = tracing::event_enabled!(target: "lambda_runtime::layers::api_response", tracing::Level::TRACE);
                let other = tracing::event_enabled!(target: "lambda_runtime::runtime", tracing::Level::TRACE);
                assert!(!payload, "{directives}: the payload log is off");
                assert_eq!(other, others_on, "{directives}: other trace logs follow RUST_LOG");
            });
        }
    }
}
