//! Outgoing connections to the other members: one TCP connection per member (opened with a
//! `PeerHello`), its frames kept in an [`Outbox`]: queued in the order the node sent them,
//! written inline when the socket takes them and the link was idle (no task wake-up for a lone
//! call), otherwise by the link's writer task, which also (re)connects and, under load, takes
//! the frames of every call ready at once in one write (`peer_coalesce_us`). While a
//! member cannot be reached, or has more than `peer_backlog_bytes_max` bytes waiting for it, its
//! messages are dropped: the protocol resends what matters on its next tick, and a dead or
//! slow member must not make this one buffer without end.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::cluster::MemberId;
use crate::core::codec::encode_frame;
use crate::core::protocol::{PeerMessage, Request, PROTOCOL_VERSION};
use crate::links::LinkConfig;
use crate::net::split;
use crate::outbox::{socket, Outbox, Socket};

/// The links to every member this one has talked to, by sender and receiver.
#[derive(Debug)]
pub(crate) struct PeerLinks {
    links: Mutex<HashMap<(MemberId, MemberId), Link>>,
    config: Arc<LinkConfig>,
}

/// One member's connection: its address and its outbox.
#[derive(Debug)]
struct Link {
    addr: String,
    outbox: Arc<Outbox>,
}

impl PeerLinks {
    /// No links yet; they will follow `config`.
    pub(crate) fn new(config: LinkConfig) -> Self {
        Self { links: Mutex::new(HashMap::new()), config: Arc::new(config) }
    }

    /// Queues `message` from member `from` (this one) to member `to` at `addr`; the returned
    /// outbox sends it at its next flush (see [`PeerLinks::flush`]).
    pub(crate) fn queue(
        &self,
        from: MemberId,
        to: MemberId,
        addr: &str,
        message: PeerMessage,
    ) -> Arc<Outbox> {
        let mut links = self.links.lock();
        let outbox = match links.get(&(from, to)) {
            Some(link) if link.addr == addr => link.outbox.clone(),
            stale => {
                // A member's address changed (or the first message): a new connection.
                if let Some(old) = stale {
                    old.outbox.close();
                }
                let outbox = Arc::new(Outbox::new(None));
                tokio::spawn(write_queued(outbox.clone(), from, addr.to_string(), self.config.clone()));
                links.insert((from, to), Link { addr: addr.to_string(), outbox: outbox.clone() });
                outbox
            }
        };
        drop(links);
        let backlog = self.config.peer_backlog_bytes_max;
        if outbox.pending_bytes() < backlog {
            outbox.queue(|frames| encode_frame(&Request::Peer(message), frames));
        } else {
            tracing::debug!(to, addr, "member behind by {backlog} bytes; dropping a message to it");
        }
        outbox
    }

    /// Sends what `outbox` (a member's, from [`PeerLinks::queue`]) has queued: now, or with
    /// the messages of the tasks ready now when the link is busy (`peer_coalesce_us`).
    pub(crate) fn flush(&self, outbox: &Outbox) {
        outbox.flush_or_coalesce(Duration::from_micros(self.config.peer_coalesce_us));
    }

    /// Drops the links to members no longer in `keep` and those of former identities of this
    /// member (their writer tasks end).
    pub(crate) fn retain(&self, me: MemberId, keep: impl Fn(MemberId) -> bool) {
        self.links.lock().retain(|(from, to), link| {
            let kept = *from == me && keep(*to);
            if !kept {
                link.outbox.close();
            }
            kept
        });
    }
}

/// Writes what the inline path left for one member, connecting first when needed, until the
/// link closes.
async fn write_queued(outbox: Arc<Outbox>, from: MemberId, addr: String, config: Arc<LinkConfig>) {
    let pause = Duration::from_millis(config.peer_reconnect_pause_ms);
    let connect_timeout = Duration::from_millis(config.peer_connect_timeout_ms);
    loop {
        outbox.wake.notified().await;
        if outbox.is_closed() {
            return;
        }
        if outbox.pending_bytes() == 0 {
            continue;
        }
        // Let the tasks ready now (other connections' calls) queue their messages first: they
        // leave in this write.
        tokio::task::yield_now().await;
        if !outbox.is_connected() {
            match connect(from, &addr, connect_timeout).await {
                Ok(socket) => outbox.connected(socket),
                Err(error) => {
                    tracing::debug!(%addr, %error, "member unreachable; dropping its messages for now");
                    outbox.discard_pending();
                    tokio::time::sleep(pause).await;
                    continue;
                }
            }
        }
        if let Err(error) = outbox.write_pending().await {
            tracing::debug!(%addr, %error, "member unreachable; dropping its messages for now");
            tokio::time::sleep(pause).await;
        }
    }
}

/// Connects to the member at `addr` and introduces this one.
async fn connect(me: MemberId, addr: &str, timeout: Duration) -> std::io::Result<Socket> {
    let timed_out = || std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
    let mut stream =
        tokio::time::timeout(timeout, TcpStream::connect(addr)).await.map_err(|_| timed_out())??;
    let _ = stream.set_nodelay(true);
    let mut hello = Vec::new();
    encode_frame(&Request::PeerHello { protocol_version: PROTOCOL_VERSION, from: me }, &mut hello);
    stream.write_all(&hello).await?;
    stream.flush().await?;
    // Members never answer on this connection: only the write half is kept.
    let (_, writer) = split(stream);
    Ok(socket(writer))
}
