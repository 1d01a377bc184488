//! `/metrics`: what a server is doing, in Prometheus's text format, on a port of its own
//! (`ServerConfig::metrics_bind`). Counted by the host (calls by type, each call's time from
//! arrival to answer); read from the node when scraped (keys, parked calls, sessions, epoch,
//! transfer), and from the links (bytes queued per member).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::core::object::CallId;
use crate::core::protocol::ClientAddr;
use crate::core::registry::Registry;
use crate::host::Host;

/// Upper bounds of the call-duration buckets, in seconds.
const BUCKETS: [f64; 14] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0];

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
        self.started.lock().entry(id).or_insert((Instant::now(), from));
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

    /// Everything, in Prometheus's text format.
    fn render(&self, host: &Host) -> String {
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
        let gauge = |value: usize| vec![(String::new(), value.to_string())];
        let (keys, parked, sessions, epoch, serving, transfer) = host.with_node(|node| {
            let keys = node.held_keys().count();
            let serving = usize::from(node.is_serving());
            (
                keys,
                node.parked_calls(),
                node.key_sessions(),
                node.configuration().epoch,
                serving,
                node.transfer_progress(),
            )
        });
        metric("dso_keys", "gauge", "Keys this member holds.", &gauge(keys));
        metric("dso_parked_calls", "gauge", "Calls waiting parked on this member.", &gauge(parked));
        metric(
            "dso_key_sessions",
            "gauge",
            "Client sessions with records, summed over keys.",
            &gauge(sessions),
        );
        metric(
            "dso_epoch",
            "gauge",
            "The epoch of the configuration this member knows.",
            &gauge(epoch as usize),
        );
        metric("dso_serving", "gauge", "1 while this member serves clients.", &gauge(serving));
        let (pending, installing) = transfer.map_or((0, 0), |t| (t.sources_pending, t.backups_installing));
        let help = "Source members still sending this member its keys (0: no transfer running).";
        metric("dso_transfer_sources_pending", "gauge", help, &gauge(pending));
        let help = "Backups still taking this member's install (0: no transfer running).";
        metric("dso_transfer_backups_installing", "gauge", help, &gauge(installing));
        metric("dso_connections", "gauge", "Open client and member connections.", &gauge(host.connections()));
        let queued: Vec<_> = (host.cluster.iter())
            .flat_map(|cluster| cluster.peers.queued_bytes())
            .map(|(peer, bytes)| (format!("{{peer=\"{peer}\"}}"), bytes.to_string()))
            .collect();
        metric("dso_peer_queued_bytes", "gauge", "Bytes waiting to be sent to each member.", &queued);
        text
    }
}

/// Answers `GET /metrics` on `listener` until shutdown.
pub(crate) async fn serve_metrics(
    listener: TcpListener,
    host: Arc<Host>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(answer(stream, host.clone()));
                }
                Err(error) => tracing::warn!(%error, "metrics: accept failed"),
            },
            _ = shutdown.changed() => return,
        }
    }
}

/// The largest request head read.
const REQUEST_BYTES_MAX: usize = 8192;

/// Reads one HTTP request and answers it: the metrics for `GET /metrics`, 404 otherwise.
async fn answer(mut stream: TcpStream, host: Arc<Host>) {
    let mut request = Vec::new();
    let read_head = async {
        let mut buffer = [0u8; 1024];
        while !request.windows(4).any(|window| window == b"\r\n\r\n") && request.len() < REQUEST_BYTES_MAX {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => request.extend_from_slice(&buffer[..read]),
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(5), read_head).await.is_err() {
        return;
    }
    let first_line = request.split(|byte| *byte == b'\r').next().unwrap_or_default();
    let (status, body) = match first_line.split(|byte| *byte == b' ').take(2).collect::<Vec<_>>()[..] {
        [b"GET", b"/metrics"] => {
            let metrics = host.metrics.as_ref().expect("served only with metrics");
            ("200 OK", metrics.render(&host))
        }
        _ => ("404 Not Found", "only GET /metrics is served here\n".to_string()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}
