//! A member's link to the configuration store: one task reads and compare-and-swaps the
//! stored configuration as the node asks ([`crate::core::node::Output::LoadConfig`],
//! [`crate::core::node::Output::Propose`]) and feeds what it read back to the node.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::cluster::discovery::DiscoveryStore;
use crate::cluster::{ConfigStore, Configuration, StoreError, Versioned};
use crate::host::{Host, StoreRequest};

/// Serves the node's store requests until shutdown. Requests that queued up meanwhile are
/// handled together: every proposal in order, then one read whose result the node gets.
pub(crate) async fn run_store(
    host: Arc<Host>,
    store: DiscoveryStore,
    mut requests: mpsc::UnboundedReceiver<StoreRequest>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last: Option<Versioned> = None;
    loop {
        let first = tokio::select! {
            request = requests.recv() => match request {
                Some(request) => request,
                None => return,
            },
            _ = shutdown.changed() => return,
        };
        let mut batch = vec![first];
        while let Ok(more) = requests.try_recv() {
            batch.push(more);
        }
        for request in batch {
            if let StoreRequest::Propose { current, next } = request {
                propose(&store, &mut last, current, *next).await;
            }
        }
        match store.load().await {
            Ok(record) => {
                last = record.clone();
                feed(&host, record.map(|versioned| versioned.config));
            }
            Err(error) => tracing::warn!(%error, "cannot read the cluster configuration"),
        }
    }
}

/// Compare-and-swap against the version last read; a proposal made on another record than
/// that one is stale and dropped (the node proposes again after the next read).
async fn propose(
    store: &DiscoveryStore,
    last: &mut Option<Versioned>,
    current: Option<Configuration>,
    next: Configuration,
) {
    if last.as_ref().map(|versioned| &versioned.config) != current.as_ref() {
        return;
    }
    let written = match last.as_ref() {
        None => store.create(&next).await,
        Some(versioned) => store.replace(&versioned.version, &next).await,
    };
    match written {
        Ok(versioned) => {
            tracing::info!(
                epoch = versioned.config.epoch,
                active = versioned.config.is_active(),
                "configuration stored"
            );
            *last = Some(versioned);
        }
        Err(StoreError::Conflict) => {}
        Err(error) => tracing::warn!(%error, "cannot store the cluster configuration"),
    }
}

/// Gives the node what the store holds, and stops writing to members it no longer knows.
fn feed(host: &Host, record: Option<Configuration>) {
    host.drive("store", |node, now_ms| match record {
        Some(config) => node.handle_config(now_ms, config),
        None => node.handle_empty_store(),
    });
    if let Some(cluster) = &host.cluster {
        host.with_node(|node| cluster.peers.retain(node.id(), |id| node.member_addr(id).is_some()));
    }
}
