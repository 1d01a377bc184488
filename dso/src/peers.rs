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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::cluster::MemberId;
use crate::core::auth::Token;
use crate::core::codec::{decode_frame, encode_frame, FRAME_BYTES_MAX_DEFAULT};
use crate::core::protocol::{PeerMessage, Request, Response, PROTOCOL_VERSION};
use crate::links::LinkConfig;
use crate::net::{split, split_tls, ReadHalf};
use crate::outbox::{socket, Outbox, Socket};
use crate::tls::{describe_handshake_error, TlsTrust};

/// The links to every member this one has talked to, by sender and receiver.
#[derive(Debug)]
pub(crate) struct PeerLinks {
    links: Mutex<HashMap<(MemberId, MemberId), Link>>,
    config: Arc<LinkConfig>,
    /// The cluster's token, presented to every member this one connects to.
    token: Option<Token>,
    /// The trust for TLS connections to members; `None`: plain TCP.
    tls: Option<TlsTrust>,
}

/// One member's connection: its address and its outbox.
#[derive(Debug)]
struct Link {
    addr: String,
    outbox: Arc<Outbox>,
}

impl PeerLinks {
    /// No links yet; they will follow `config`, present `token`, and speak TLS with `tls`.
    pub(crate) fn new(config: LinkConfig, token: Option<Token>, tls: Option<TlsTrust>) -> Self {
        Self { links: Mutex::new(HashMap::new()), config: Arc::new(config), token, tls }
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
                let hello = PeerHello {
                    from,
                    token: self.token.clone(),
                    tls: self.tls.clone(),
                    addr: addr.to_string(),
                };
                tokio::spawn(write_queued(outbox.clone(), hello, self.config.clone()));
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

    /// Bytes waiting to be sent, for each member this one has a link to.
    pub(crate) fn queued_bytes(&self) -> Vec<(MemberId, usize)> {
        self.links.lock().iter().map(|((_, to), link)| (*to, link.outbox.pending_bytes())).collect()
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

/// How this member introduces itself to another: who it is, the token, the TLS trust, and
/// where the other is.
struct PeerHello {
    from: MemberId,
    token: Option<Token>,
    tls: Option<TlsTrust>,
    addr: String,
}

/// Writes what the inline path left for one member, connecting first when needed, until the
/// link closes.
async fn write_queued(outbox: Arc<Outbox>, hello: PeerHello, config: Arc<LinkConfig>) {
    let addr = &hello.addr;
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
            let timed_out = || std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
            let connected = tokio::time::timeout(connect_timeout, connect(&hello)).await;
            match connected.unwrap_or_else(|_| Err(timed_out())) {
                Ok(socket) => outbox.connected(socket),
                // A certificate refused, or a member without TLS: not a passing outage.
                Err(error) if error.kind() == std::io::ErrorKind::InvalidData => {
                    tracing::error!(%addr, %error, "TLS to a member failed; dropping its messages for now");
                    outbox.discard_pending();
                    tokio::time::sleep(pause).await;
                    continue;
                }
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

/// Connects to the member at `hello.addr` (over TLS if the cluster speaks it) and introduces
/// this one.
async fn connect(hello: &PeerHello) -> std::io::Result<Socket> {
    let stream = TcpStream::connect(&hello.addr).await?;
    let _ = stream.set_nodelay(true);
    let (reader, mut writer) = match &hello.tls {
        Some(trust) => split_tls(
            trust
                .connect(stream)
                .await
                .map_err(|error| std::io::Error::new(error.kind(), describe_handshake_error(&error)))?,
        ),
        None => split(stream),
    };
    let mut frame = Vec::new();
    let request = Request::PeerHello {
        protocol_version: PROTOCOL_VERSION,
        from: hello.from,
        token: hello.token.clone(),
    };
    encode_frame(&request, &mut frame);
    writer.write_all(&frame).await?;
    writer.flush().await?;
    // Members answer on this connection only to refuse it.
    tokio::spawn(report_refusal(reader, hello.addr.clone()));
    Ok(socket(writer))
}

/// Logs why the member at `addr` closed this member's connection, if it said (a wrong token,
/// another protocol version).
async fn report_refusal(mut reader: ReadHalf, addr: String) {
    let mut buffer = Vec::new();
    while matches!(reader.read_buf(&mut buffer).await, Ok(read) if read > 0) {
        match decode_frame::<Response>(&buffer, FRAME_BYTES_MAX_DEFAULT) {
            Ok(None) => continue,
            Ok(Some((
                Response::Unauthenticated { reason }
                | Response::Refused { reason }
                | Response::TlsRequired { reason },
                _,
            ))) => {
                tracing::error!(%addr, %reason, "a member refused this member's connection");
            }
            Ok(Some((other, _))) => tracing::warn!(%addr, ?other, "unexpected answer from a member"),
            Err(error) => tracing::warn!(%addr, %error, "undecodable answer from a member"),
        }
        return;
    }
}
