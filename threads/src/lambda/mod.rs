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
