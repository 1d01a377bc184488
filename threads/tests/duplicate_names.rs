//! Two runnable types under one name: the executor refuses to start, naming it.

use crucial_threads::{Context, Local, Runnable, ThreadError};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct First;

#[derive(Serialize, Deserialize)]
struct Second;

macro_rules! noop_runnable {
    ($type:ty) => {
        impl Runnable for $type {
            const NAME: &'static str = "test.same_name";
            type Output = ();
            type Error = String;

            async fn run(self, _ctx: &Context) -> Result<(), String> {
                Ok(())
            }
        }
    };
}

noop_runnable!(First);
noop_runnable!(Second);
crucial_threads::register!(First, Second);

#[tokio::test]
async fn a_duplicate_name_fails_at_start_up() {
    match Local::embedded().await {
        Err(error @ ThreadError::DuplicateRunnable { .. }) => {
            assert!(error.to_string().contains("`test.same_name`"), "{error}")
        }
        other => panic!("expected a duplicate name, got {other:?}"),
    }
}
