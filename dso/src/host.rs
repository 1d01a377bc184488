//! The host's shared core: one [`Node`] behind a lock, the routing table from client addresses
//! to connections, the links to other members and to the configuration store, and the clock.
//! Connection tasks, the timer task and the store task feed the node through [`Host::drive`],
//! which routes its outputs; no protocol decision is taken here.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use crate::cluster::Configuration;
use crate::core::auth::Token;
use crate::core::codec::encode_frame;
use crate::core::node::{Node, Output};
use crate::core::protocol::{ClientAddr, Response};
use crate::links::LinkConfig;
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::peers::PeerLinks;
use crate::tls::TlsAcceptor;

/// How long one input may hold the node before the host logs it.
const SLOW_DRIVE: std::time::Duration = std::time::Duration::from_millis(50);

/// A cluster member's links: to the other members, to the store task, and the signal that
/// an active configuration no longer lists this member.
pub(crate) struct ClusterLinks {
    pub(crate) peers: PeerLinks,
    pub(crate) store: mpsc::UnboundedSender<StoreRequest>,
    pub(crate) removed: Notify,
}

/// What a connection must get through: the TLS handshake, if the server serves TLS, then the
/// token check, if it asks for one.
pub(crate) struct Access {
    pub(crate) token: Option<Token>,
    pub(crate) tls: Option<TlsAcceptor>,
}

/// State shared by a server's tasks.
pub(crate) struct Host {
    node: Mutex<Node>,
    /// Each client connection's outbox, by address (a B-tree: cheaper than hashing per answer).
    connections: Mutex<BTreeMap<ClientAddr, Arc<Outbox>>>,
    next_addr: AtomicU64,
    /// Wakes the timer task when the node's next deadline moved earlier.
    pub(crate) deadline_moved: Notify,
    /// Whether drives are tracked for a busy-poll task (the next two fields).
    busy_poll: bool,
    /// Signalled after every drive when busy polling: wakes the busy-poll task.
    pub(crate) activity: Notify,
    /// When the node was last driven, in microseconds since `started` (when busy polling).
    last_activity_us: AtomicU64,
    started: Instant,
    pub(crate) frame_bytes_max: usize,
    /// Bytes of answers a client connection may have waiting before it is no longer read.
    pub(crate) client_backlog_bytes_max: usize,
    /// Present on a cluster member.
    pub(crate) cluster: Option<ClusterLinks>,
    /// The token connections must present, if any.
    pub(crate) token: Option<Token>,
    /// What accepts TLS handshakes, if the server serves TLS.
    pub(crate) tls: Option<TlsAcceptor>,
    /// What `/metrics` shows, when it is served.
    pub(crate) metrics: Option<Metrics>,
}

impl Host {
    /// A host for `node`; `busy_poll`: a busy-poll task follows its drives; `access`: what
    /// connections must get through; `metrics`: counted when `/metrics` is served.
    pub(crate) fn new(
        node: Node,
        frame_bytes_max: usize,
        links: &LinkConfig,
        cluster: Option<ClusterLinks>,
        busy_poll: bool,
        access: Access,
        metrics: Option<Metrics>,
    ) -> Self {
        Self {
            cluster,
            token: access.token,
            tls: access.tls,
            metrics,
            busy_poll,
            node: Mutex::new(node),
            connections: Mutex::new(BTreeMap::new()),
            next_addr: AtomicU64::new(1),
            deadline_moved: Notify::new(),
            activity: Notify::new(),
            last_activity_us: AtomicU64::new(0),
            started: Instant::now(),
            frame_bytes_max,
            client_backlog_bytes_max: links.client_backlog_bytes_max,
        }
    }

    /// Milliseconds since the host started: the node's clock.
    pub(crate) fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// How long ago the node was last driven.
    pub(crate) fn since_activity(&self) -> std::time::Duration {
        let last = std::time::Duration::from_micros(self.last_activity_us.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    /// The instant at which the node's clock reads `ms`.
    pub(crate) fn instant_at(&self, ms: u64) -> Instant {
        self.started + std::time::Duration::from_millis(ms)
    }

    /// Registers a connection whose answers go to `outbox`; returns its address.
    pub(crate) fn connect(&self, outbox: Arc<Outbox>) -> ClientAddr {
        let addr = self.next_addr.fetch_add(1, Ordering::Relaxed);
        self.connections.lock().insert(addr, outbox);
        addr
    }

    /// How many connections are open.
    pub(crate) fn connections(&self) -> usize {
        self.connections.lock().len()
    }

    /// Forgets a connection.
    pub(crate) fn disconnect(&self, addr: ClientAddr) {
        self.connections.lock().remove(&addr);
        if let Some(metrics) = &self.metrics {
            metrics.connection_closed(addr);
        }
        self.node.lock().handle_disconnect(addr);
    }

    /// Runs `read` on the node.
    pub(crate) fn with_node<R>(&self, read: impl FnOnce(&Node) -> R) -> R {
        read(&self.node.lock())
    }

    /// Replaces the node (a removed member starting over under a new identity). The timer task
    /// is woken: the retired node had no deadline, so it sleeps until told, and the new one's
    /// first tick (which probes the members before it may join) would otherwise never come.
    pub(crate) fn replace_node(&self, node: Node) {
        *self.node.lock() = node;
        self.deadline_moved.notify_one();
    }

    /// The node's next deadline.
    pub(crate) fn poll_timeout(&self) -> Option<u64> {
        self.node.lock().poll_timeout()
    }

    /// Feeds the node with `input` (`what`, for the log when it holds the node long), then
    /// routes every output. Frames are queued on their connection's or member's outbox while
    /// the node is locked (so each outbox gets them in the node's order) and flushed after it
    /// is released, one write per outbox.
    pub(crate) fn drive(&self, what: &'static str, input: impl FnOnce(&mut Node, u64)) {
        let mut touched: Vec<Arc<Outbox>> = Vec::new();
        let mut to_members: Vec<Arc<Outbox>> = Vec::new();
        let (before, after, held) = {
            let mut node = self.node.lock();
            let locked_at = std::time::Instant::now();
            let before = node.poll_timeout();
            input(&mut node, self.now_ms());
            while let Some(output) = node.poll_output() {
                let (outbox, list) = match output {
                    Output::Reply { to, id, result } => {
                        if let Some(metrics) = &self.metrics {
                            metrics.call_answered(id);
                        }
                        (self.queue_response(to, Response::Reply { id, result }), &mut touched)
                    }
                    Output::Redirect { to, id, config } => {
                        if let Some(metrics) = &self.metrics {
                            metrics.call_redirected(id);
                        }
                        (self.queue_response(to, Response::Redirect { id, config }), &mut touched)
                    }
                    Output::Send { to, message } => match (&self.cluster, node.member_addr(to)) {
                        (Some(cluster), Some(addr)) => {
                            (Some(cluster.peers.queue(node.id(), to, addr, message)), &mut to_members)
                        }
                        _ => (None, &mut to_members),
                    },
                    other => {
                        self.to_cluster(other);
                        (None, &mut touched)
                    }
                };
                if let Some(outbox) = outbox {
                    if !list.iter().any(|seen| Arc::ptr_eq(seen, &outbox)) {
                        list.push(outbox);
                    }
                }
            }
            (before, node.poll_timeout(), locked_at.elapsed())
        };
        if held >= SLOW_DRIVE {
            // Peers and clients waited meanwhile: a member busy this long may be suspected.
            tracing::warn!(input = what, held_ms = held.as_millis() as u64, "the node was busy");
        }
        for outbox in touched {
            outbox.flush();
        }
        if let Some(cluster) = &self.cluster {
            for outbox in to_members {
                cluster.peers.flush(&outbox);
            }
        }
        if self.busy_poll {
            self.last_activity_us.store(self.started.elapsed().as_micros() as u64, Ordering::Relaxed);
            self.activity.notify_one();
        }
        if after.is_some() && after != before {
            self.deadline_moved.notify_one();
        }
    }

    /// Queues `response` on the outbox of connection `to`, if it is still open (a client whose
    /// connection closed retries elsewhere).
    fn queue_response(&self, to: ClientAddr, response: Response) -> Option<Arc<Outbox>> {
        let outbox = self.connections.lock().get(&to)?.clone();
        outbox.queue(|frames| encode_frame(&response, frames));
        Some(outbox)
    }

    /// Hands a store request or a removal to the member's tasks.
    fn to_cluster(&self, output: Output) {
        let Some(cluster) = &self.cluster else { return };
        let request = match output {
            Output::LoadConfig => StoreRequest::Load,
            Output::Propose { current, next } => StoreRequest::Propose { current, next: Box::new(next) },
            Output::Removed => {
                cluster.removed.notify_one();
                return;
            }
            Output::Reply { .. } | Output::Redirect { .. } | Output::Send { .. } => return,
        };
        let _ = cluster.store.send(request);
    }
}

/// What the node asks of the store.
#[derive(Debug)]
pub(crate) enum StoreRequest {
    /// Read the configuration.
    Load,
    /// Store `next` if the store still holds `current`.
    Propose {
        /// The expected record (`None`: none yet).
        current: Option<Configuration>,
        /// The record to store.
        next: Box<Configuration>,
    },
}
