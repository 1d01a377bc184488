//! `GET /metrics` over HTTP on a port of its own (`ServerConfig::metrics_bind`): a bounded
//! number of scrapes at once, each bounded in time.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use crate::host::Host;
use crate::metrics::Snapshot;

/// Scrapes served at once; more connections are closed at once.
const SCRAPES_MAX: usize = 8;

/// How long a scrape may take to send its request or read the answer.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// Answers `GET /metrics` on `listener` until shutdown, [`SCRAPES_MAX`] at a time.
pub(crate) async fn serve_metrics(
    listener: TcpListener,
    host: Arc<Host>,
    mut shutdown: watch::Receiver<bool>,
) {
    let scrapes = Arc::new(Semaphore::new(SCRAPES_MAX));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Over the bound the connection is closed unanswered (dropped).
                    if let Ok(permit) = scrapes.clone().try_acquire_owned() {
                        let host = host.clone();
                        tokio::spawn(async move {
                            let _ = tokio::time::timeout(SCRAPE_TIMEOUT, answer(stream, host)).await;
                            drop(permit);
                        });
                    }
                }
                Err(error) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(%error, "metrics: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}

/// The largest request head read.
const REQUEST_BYTES_MAX: usize = 8192;

/// Reads one HTTP request and answers it: the metrics for `GET /metrics`, 404 otherwise (the
/// caller bounds the time it takes).
async fn answer(mut stream: TcpStream, host: Arc<Host>) {
    let mut request = Vec::new();
    let mut buffer = [0u8; 1024];
    while !request.windows(4).any(|window| window == b"\r\n\r\n") && request.len() < REQUEST_BYTES_MAX {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => request.extend_from_slice(&buffer[..read]),
        }
    }
    let first_line = request.split(|byte| *byte == b'\r').next().unwrap_or_default();
    let (status, body) = match first_line.split(|byte| *byte == b' ').take(2).collect::<Vec<_>>()[..] {
        [b"GET", b"/metrics"] => {
            let metrics = host.metrics.as_ref().expect("served only with metrics");
            ("200 OK", metrics.render(&snapshot(&host)))
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

/// The node's and the links' state now.
fn snapshot(host: &Host) -> Snapshot {
    let mut now = host.with_node(|node| Snapshot {
        keys: node.key_count(),
        parked: node.parked_calls(),
        sessions: node.key_sessions(),
        epoch: node.configuration().epoch,
        serving: node.is_serving(),
        transfer: node.transfer_progress(),
        ..Snapshot::default()
    });
    now.connections = host.connections();
    now.queued = host.cluster.iter().flat_map(|cluster| cluster.peers.queued_bytes()).collect();
    now
}
