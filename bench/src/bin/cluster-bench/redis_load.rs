//! The Redis side: one connection (the `redis` crate) to the primary, `INCR` or `SET`, and for
//! `redis-wait` a `WAIT` for the replicas after each.

use redis::aio::MultiplexedConnection;

use crate::{Failure, Workload};

/// A connection to a Redis primary.
pub struct RedisClient {
    connection: MultiplexedConnection,
    /// Replicas each write waits for (`WAIT n 0`); 0 sends no `WAIT`.
    wait_replicas: usize,
}

impl RedisClient {
    /// Connects to the primary at `endpoint` (`host:port`).
    pub async fn connect(endpoint: &str, wait_replicas: usize) -> Result<Self, Failure> {
        let client = redis::Client::open(format!("redis://{endpoint}/"))?;
        Ok(RedisClient { connection: client.get_multiplexed_async_connection().await?, wait_replicas })
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
            let acknowledged: usize = redis::cmd("WAIT")
                .arg(replicas)
                .arg(0)
                .query_async(&mut self.connection)
                .await
                .map_err(|error| match error.is_timeout() {
                    true => format!("WAIT {replicas} 0 got no answer in time: has the primary {replicas} replicas online?"),
                    false => format!("WAIT {replicas} 0: {error}"),
                })?;
            if acknowledged < self.wait_replicas {
                return Err(format!(
                    "WAIT {replicas} 0: only {acknowledged} replicas acknowledged the write"
                )
                .into());
            }
        }
        Ok(())
    }
}
