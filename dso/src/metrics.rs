//! What `/metrics` shows (served by [`crate::metrics_http`]), in Prometheus's text format:
//! counted by the host (calls by type, each call's time from arrival to answer), and read from
//! the node and the links when scraped (a [`Snapshot`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::cluster::MemberId;
use crate::core::node::TransferProgress;
use crate::core::object::CallId;
use crate::core::protocol::ClientAddr;
use crate::core::registry::Registry;

/// Upper bounds of the call-duration buckets, in seconds.
const BUCKETS: [f64; 14] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0];

/// The most calls timed at once.
const UNANSWERED_MAX: usize = 100_000;

/// How long a call stays timed without an answer.
const UNANSWERED_FOR_MAX: Duration = Duration::from_secs(600);

/// What the host counts for `/metrics`.
pub(crate) struct Metrics {
    registry: Arc<Registry>,
    /// Calls received, by registered type (`other`: a name no type has).
    calls: Mutex<BTreeMap<&'static str, u64>>,
    /// Calls not answered yet: when each arrived, and on which connection.
    started: Mutex<BTreeMap<CallId, (Instant, ClientAddr)>>,
    durations: Mutex<Durations>,
}

/// A histogram of call durations.
#[derive(Default)]
struct Durations {
    /// Calls in each bucket of [`BUCKETS`] (not cumulative), then those slower than all.
    counts: [u64; BUCKETS.len() + 1],
    seconds: f64,
}

impl Metrics {
    /// Counters for a server of the types in `registry`.
    pub(crate) fn new(registry: Arc<Registry>) -> Self {
        Self {
            registry,
            calls: Mutex::new(BTreeMap::new()),
            started: Mutex::new(BTreeMap::new()),
            durations: Mutex::new(Durations::default()),
        }
    }

    /// Call `id` on a `type_name` object arrived on connection `from`.
    pub(crate) fn call_arrived(&self, id: CallId, type_name: &str, from: ClientAddr) {
        let name = self.registry.type_name(type_name).unwrap_or("other");
        *self.calls.lock().entry(name).or_default() += 1;
        let mut started = self.started.lock();
        // Past the bound, calls go untimed until older ones are answered or forgotten.
        if started.len() < UNANSWERED_MAX {
            started.entry(id).or_insert((Instant::now(), from));
        }
    }

    /// Forgets calls unanswered for longer than [`UNANSWERED_FOR_MAX`]: dropped by the node
    /// (a member that stopped serving, a call the client resent elsewhere) or parked that long.
    fn forget_stale(&self) {
        self.started.lock().retain(|_, (arrived, _)| arrived.elapsed() < UNANSWERED_FOR_MAX);
    }

    /// Call `id` was answered (its first answer counts).
    pub(crate) fn call_answered(&self, id: CallId) {
        let Some((arrived, _)) = self.started.lock().remove(&id) else { return };
        let seconds = arrived.elapsed().as_secs_f64();
        let bucket = BUCKETS.iter().position(|bound| seconds <= *bound).unwrap_or(BUCKETS.len());
        let mut durations = self.durations.lock();
        durations.counts[bucket] += 1;
        durations.seconds += seconds;
    }

    /// Call `id` went elsewhere (redirected): no answer will be timed here.
    pub(crate) fn call_redirected(&self, id: CallId) {
        self.started.lock().remove(&id);
    }

    /// Connection `addr` closed: its calls will not be answered on it.
    pub(crate) fn connection_closed(&self, addr: ClientAddr) {
        self.started.lock().retain(|_, (_, from)| *from != addr);
    }

    /// Everything, in Prometheus's text format, with the node and links as `now` shows them.
    pub(crate) fn render(&self, now: &Snapshot) -> String {
        self.forget_stale();
        let mut text = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
            let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(text, "{name}{labels} {value}");
            }
        };
        let calls: Vec<_> = (self.calls.lock().iter())
            .map(|(name, count)| (format!("{{type=\"{name}\"}}"), count.to_string()))
            .collect();
        metric("dso_calls_total", "counter", "Calls received, by object type.", &calls);
        let (counts, seconds) = {
            let durations = self.durations.lock();
            (durations.counts, durations.seconds)
        };
        let mut buckets = Vec::new();
        let mut cumulative = 0;
        for (index, count) in counts.iter().enumerate() {
            cumulative += count;
            let bound = BUCKETS.get(index).map_or("+Inf".to_string(), f64::to_string);
            buckets.push((format!("_bucket{{le=\"{bound}\"}}"), cumulative.to_string()));
        }
        buckets.push(("_sum".into(), seconds.to_string()));
        buckets.push(("_count".into(), cumulative.to_string()));
        let help = "Time from a call's arrival to its answer (after its backups hold it).";
        metric("dso_call_duration_seconds", "histogram", help, &buckets);
        let gauge = |value: u64| vec![(String::new(), value.to_string())];
        let count = |value: usize| gauge(value as u64);
        metric("dso_keys", "gauge", "Keys this member holds.", &count(now.keys));
        metric("dso_parked_calls", "gauge", "Calls waiting parked on this member.", &count(now.parked));
        let help = "Client sessions with records, summed over keys.";
        metric("dso_key_sessions", "gauge", help, &count(now.sessions));
        let help = "The epoch of the configuration this member knows.";
        metric("dso_epoch", "gauge", help, &gauge(now.epoch));
        metric("dso_serving", "gauge", "1 while this member serves clients.", &gauge(now.serving.into()));
        let transfer = now.transfer.map_or((0, 0), |t| (t.sources_pending, t.backups_installing));
        let help = "Source members still sending this member its keys (0: no transfer running).";
        metric("dso_transfer_sources_pending", "gauge", help, &count(transfer.0));
        let help = "Backups still taking this member's install (0: no transfer running).";
        metric("dso_transfer_backups_installing", "gauge", help, &count(transfer.1));
        let help = "Open client and member connections.";
        metric("dso_connections", "gauge", help, &count(now.connections));
        let queued: Vec<_> = (now.queued.iter())
            .map(|(peer, bytes)| (format!("{{peer=\"{peer}\"}}"), bytes.to_string()))
            .collect();
        metric("dso_peer_queued_bytes", "gauge", "Bytes waiting to be sent to each member.", &queued);
        text
    }
}

/// The node's and the links' state at a scrape.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) keys: usize,
    pub(crate) parked: usize,
    pub(crate) sessions: usize,
    pub(crate) epoch: u64,
    pub(crate) serving: bool,
    pub(crate) transfer: Option<TransferProgress>,
    pub(crate) connections: usize,
    /// Bytes waiting for each member.
    pub(crate) queued: Vec<(MemberId, usize)>,
}
