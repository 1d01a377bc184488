//! The Redis side: one connection (the `redis` crate) to the primary, `INCR` or `SET`, and for
//! `redis-wait` a `WAIT` for the replicas after each.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;

use crate::{Failure, Workload};

/// A connection to a Redis primary.
pub struct RedisClient {
    connection: MultiplexedConnection,
    /// Replicas each write waits for (`WAIT`); 0 sends no `WAIT`.
    wait_replicas: usize,
}

/// How long a `WAIT` may block: it returns as soon as the replicas acknowledged, so this bound
/// only turns a missing replica into an error instead of a hang (`WAIT n 0` would block for
/// ever).
const WAIT_MS_MAX: u64 = 5_000;

impl RedisClient {
    /// Connects to the primary at `endpoint` (`host:port`).
    pub async fn connect(endpoint: &str, wait_replicas: usize) -> Result<Self, Failure> {
        let client = redis::Client::open(format!("redis://{endpoint}/"))?;
        // No response timeout: a slow answer is a measurement, not a failure.
        let config = AsyncConnectionConfig::new().set_response_timeout(None);
        let connection = client.get_multiplexed_async_connection_with_config(&config).await?;
        Ok(RedisClient { connection, wait_replicas })
    }

    /// One operation of `workload` on `key`; `step` is the value a put writes.
    pub async fn run(&mut self, workload: Workload, key: &str, step: u64) -> Result<(), Failure> {
        match workload {
            Workload::Rmw => {
                let _: i64 = redis::cmd("INCR").arg(key).query_async(&mut self.connection).await?;
            }
            Workload::Put => {
                let () = redis::cmd("SET").arg(key).arg(step).query_async(&mut self.connection).await?;
            }
        }
        if self.wait_replicas > 0 {
            let replicas = self.wait_replicas;
            let acknowledged: usize =
                redis::cmd("WAIT").arg(replicas).arg(WAIT_MS_MAX).query_async(&mut self.connection).await?;
            if acknowledged < replicas {
                let within = Duration::from_millis(WAIT_MS_MAX);
                return Err(format!(
                    "WAIT {replicas}: only {acknowledged} replicas acknowledged the write within {within:?}: \
                     has the primary {replicas} replicas online?"
                )
                .into());
            }
        }
        Ok(())
    }
}
