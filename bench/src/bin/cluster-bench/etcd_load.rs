//! The etcd side (the `etcd-client` crate): a read-modify-write is a compare-and-put
//! transaction, a put is a plain `put`.

use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};

use crate::{Failure, Workload};

/// A connection to an etcd cluster and the value this client last wrote to its key.
pub struct EtcdClient {
    client: Client,
    last: Option<i64>,
}

impl EtcdClient {
    /// Connects to the cluster's `endpoints` (`host:port` each).
    pub async fn connect(endpoints: &[String]) -> Result<Self, Failure> {
        let urls: Vec<String> = endpoints.iter().map(|endpoint| format!("http://{endpoint}")).collect();
        Ok(EtcdClient { client: Client::connect(urls, None).await?, last: None })
    }

    /// One operation of `workload` on `key`; `step` is the value a put writes.
    pub async fn run(&mut self, workload: Workload, key: &str, step: u64) -> Result<(), Failure> {
        match workload {
            Workload::Rmw => self.increment(key).await,
            Workload::Put => {
                self.client.put(key, step.to_string(), None).await?;
                Ok(())
            }
        }
    }

    /// Compare-and-put of `last + 1`, reading the current value first when `last` is unknown
    /// or the comparison failed.
    async fn increment(&mut self, key: &str) -> Result<(), Failure> {
        loop {
            let current = match self.last {
                Some(value) => value,
                None => {
                    let response = self.client.get(key, None).await?;
                    match response.kvs().first().map(|kv| kv.value_str().map(str::parse::<i64>)) {
                        Some(parsed) => parsed??,
                        None => 0,
                    }
                }
            };
            let guard = if current == 0 && self.last.is_none() {
                Compare::create_revision(key, CompareOp::Equal, 0)
            } else {
                Compare::value(key, CompareOp::Equal, current.to_string())
            };
            let txn = Txn::new().when([guard]).and_then([TxnOp::put(key, (current + 1).to_string(), None)]);
            if self.client.txn(txn).await?.succeeded() {
                self.last = Some(current + 1);
                return Ok(());
            }
            self.last = None;
        }
    }
}
