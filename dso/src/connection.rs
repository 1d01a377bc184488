//! One client connection on the server: bytes to frames, frames to the node, answers back.
//! A malformed, oversized or out-of-order frame closes this connection (with a `Refused` frame
//! saying why); other connections are untouched.

use std::net::SocketAddr;
use std::sync::Arc;
#[cfg(not(madsim))]
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::cluster::MemberId;
use crate::core::auth::{AuthError, Token};
use crate::core::codec::{decode_frame, encode_frame, DecodeError};
use crate::core::object::DECODE_BYTES_MAX;
use crate::core::protocol::{Call, ClientAddr, PeerMessage, Request, Response, PROTOCOL_VERSION};
use crate::host::Host;
use crate::net::{split, split_tls, ReadHalf, WriteHalf};
use crate::outbox::{socket, Outbox};
#[cfg(not(madsim))]
use crate::tls::HANDSHAKE_TIMEOUT;
use crate::tls::TLS_HANDSHAKE_BYTE;

/// Why a connection ended early.
#[derive(Debug, thiserror::Error)]
enum ConnectionError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("{0}")]
    Protocol(String),
    #[error(transparent)]
    Unauthenticated(#[from] AuthError),
}

/// Serves one connection until the client leaves, misbehaves, or the server shuts down.
pub(crate) async fn serve(host: Arc<Host>, stream: TcpStream, mut shutdown: watch::Receiver<bool>) {
    let peer = stream.peer_addr().ok();
    let _ = stream.set_nodelay(true);
    // Opening (a first byte, a handshake) may take seconds: a shutdown does not wait for it.
    let opened = tokio::select! {
        opened = open(&host, stream, peer) => opened,
        _ = shutdown.changed() => None,
    };
    let Some((mut reader, writer, member_certified)) = opened else { return };
    let outbox = Arc::new(Outbox::new(Some(socket(writer))));
    let addr = host.connect(outbox.clone());
    let mut connection = Connection {
        host: host.clone(),
        addr,
        outbox,
        input: Vec::with_capacity(8192),
        calls: Vec::new(),
        messages: Vec::new(),
        greeted: false,
        peer: None,
        member_certified,
    };
    // The writer's wake-up and the shutdown signal are waited on across turns of the loop,
    // not registered anew at each read.
    let outbox = connection.outbox.clone();
    let mut wake = std::pin::pin!(outbox.wake.notified());
    let mut stopping = std::pin::pin!(shutdown.changed());
    let outcome = loop {
        let reading = connection.outbox.pending_bytes() < host.client_backlog_bytes_max;
        tokio::select! {
            // In this order, so that a ready read (the usual wake-up) polls nothing else: pending
            // answers are written inline when read input is handled, the writer's turn comes
            // when no input is ready or reading stopped at the backlog bound, and shutdown is
            // seen at the next turn without input.
            biased;
            // Only the reads race; handling and writing run to completion (writes are not
            // cancel-safe).
            read = reader.read_buf(&mut connection.input), if reading => match connection.on_read(read) {
                Ok(true) => {}
                Ok(false) => break Ok(()),
                Err(error) => break Err(error),
            },
            _ = &mut wake => {
                wake.set(outbox.wake.notified());
                if let Err(error) = connection.outbox.write_pending().await {
                    break Err(error.into());
                }
            }
            _ = &mut stopping => break Ok(()),
        }
    };
    if let Err(error) = outcome {
        tracing::warn!(?peer, %error, "closing connection");
        let refusal = match &error {
            ConnectionError::Io(_) => None,
            ConnectionError::Unauthenticated(_) => {
                Some(Response::Unauthenticated { reason: error.to_string() })
            }
            ConnectionError::Decode(_) | ConnectionError::Protocol(_) => {
                Some(Response::Refused { reason: error.to_string() })
            }
        };
        if let Some(refusal) = refusal {
            connection.outbox.queue(|frames| encode_frame(&refusal, frames));
            let _ = connection.outbox.write_pending().await;
        }
    }
    host.disconnect(addr);
}

/// The connection's halves, after a TLS handshake if the server serves TLS, and whether the
/// client presented a member certificate; `None` if it could not be opened (logged; a client
/// speaking plain TCP to a TLS port is told so).
async fn open(
    host: &Host,
    stream: TcpStream,
    peer: Option<SocketAddr>,
) -> Option<(ReadHalf, WriteHalf, bool)> {
    let Some(acceptor) = &host.tls else {
        let (reader, writer) = split(stream);
        return Some((reader, writer, false));
    };
    // madsim's sockets cannot peek: simulated clients always speak TLS to a TLS server.
    #[cfg(not(madsim))]
    match first_byte(&stream).await {
        None => return None,
        Some(TLS_HANDSHAKE_BYTE) => {}
        Some(_) => {
            tracing::warn!(?peer, "plain TCP on a port that serves TLS only: refusing the connection");
            refuse_plain(stream).await;
            return None;
        }
    }
    match acceptor.accept(stream).await {
        Ok((stream, certified)) => {
            let (reader, writer) = split_tls(stream);
            Some((reader, writer, certified))
        }
        Err(error) => {
            tracing::warn!(?peer, %error, "TLS handshake failed: closing the connection");
            None
        }
    }
}

/// The first byte the client sent, without taking it; `None` if it sent none in time.
#[cfg(not(madsim))]
async fn first_byte(stream: &TcpStream) -> Option<u8> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await {
        Ok(Ok(1)) => Some(first[0]),
        _ => None,
    }
}

/// Tells a client that spoke plain TCP to a TLS port why it is refused, in a plain frame it
/// can read, and closes. Its hello is read first: closing with unread bytes would reset the
/// connection, and the client could lose the refusal.
#[cfg(not(madsim))]
async fn refuse_plain(mut stream: TcpStream) {
    use tokio::io::AsyncWriteExt;
    let linger = Duration::from_secs(1);
    let mut unread = vec![0u8; 4096];
    let _ = tokio::time::timeout(linger, stream.read(&mut unread)).await;
    let refusal = Response::TlsRequired {
        reason: "this server serves TLS only: connect with TLS, trusting the cluster's CA \
                 (ClientConfig::tls)"
            .into(),
    };
    let mut frame = Vec::new();
    encode_frame(&refusal, &mut frame);
    if stream.write_all(&frame).await.is_ok() && stream.shutdown().await.is_ok() {
        // Until the client closes: then nothing it sent is left unread.
        let _ = tokio::time::timeout(linger, stream.read(&mut unread)).await;
    }
}

struct Connection {
    host: Arc<Host>,
    addr: ClientAddr,
    /// Where this connection's answers are queued.
    outbox: Arc<Outbox>,
    /// Bytes read and not yet decoded.
    input: Vec<u8>,
    /// The calls and member messages decoded from one read (kept to reuse their room).
    calls: Vec<Call>,
    messages: Vec<PeerMessage>,
    greeted: bool,
    /// The member at the other end, if this is a member's connection.
    peer: Option<MemberId>,
    /// The client presented a certificate the members' CA signed.
    member_certified: bool,
}

impl Connection {
    /// Handles every whole frame after a read; `Ok(false)` at a clean EOF.
    fn on_read(&mut self, read: std::io::Result<usize>) -> Result<bool, ConnectionError> {
        let read = match read {
            // A TLS client that closed without saying so (most do): an end like any other,
            // since frames carry their length and a cut one is caught below.
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
            read => read,
        };
        if read? == 0 {
            if !self.input.is_empty() {
                return Err(ConnectionError::Protocol(format!(
                    "connection closed inside a frame ({} bytes left)",
                    self.input.len()
                )));
            }
            return Ok(false);
        }
        if !self.greeted && self.input.first() == Some(&TLS_HANDSHAKE_BYTE) {
            return Err(ConnectionError::Protocol(
                "a TLS handshake on a port that serves plain TCP: this server has no certificate \
                 (dso-server --tls-cert, --tls-key); connect without TLS or give it one"
                    .into(),
            ));
        }
        let mut used = 0;
        loop {
            // Members send state transfers: their frames may be as large as decoding allows.
            let limit = if self.peer.is_some() { DECODE_BYTES_MAX } else { self.host.frame_bytes_max };
            let Some((request, length)) = decode_frame::<Request>(&self.input[used..], limit)? else { break };
            used += length;
            match (request, self.peer) {
                (Request::Hello { protocol_version, token }, _) => self.on_hello(protocol_version, token)?,
                (Request::PeerHello { .. }, None) if self.host.cluster.is_none() => {
                    return Err(ConnectionError::Protocol(
                        "a member hello to a server that is no cluster member".into(),
                    ));
                }
                (Request::PeerHello { protocol_version, from, token }, None) if !self.greeted => {
                    self.check_version(protocol_version)?;
                    self.check_token(token)?;
                    self.check_member_certificate()?;
                    self.greeted = true;
                    self.peer = Some(from);
                }
                (Request::Call(call), None) if self.greeted => self.calls.push(call),
                (Request::Status, None) if self.greeted => {
                    let status = self.host.with_node(|node| Response::Status {
                        member: node.id(),
                        serving: node.is_serving(),
                        config: node.configuration().clone(),
                    });
                    self.outbox.queue(|frames| encode_frame(&status, frames));
                }
                (Request::Peer(message), Some(_)) => self.messages.push(message),
                (other, _) => {
                    let what: String = format!("{other:?}").chars().take(60).collect();
                    let when = if self.greeted { "on this connection" } else { "before hello" };
                    return Err(ConnectionError::Protocol(format!("unexpected frame {when}: {what}")));
                }
            }
        }
        self.input.drain(..used);
        self.on_calls();
        self.on_peer_messages();
        self.outbox.flush();
        Ok(true)
    }

    fn check_version(&self, protocol_version: u32) -> Result<(), ConnectionError> {
        if protocol_version != PROTOCOL_VERSION {
            return Err(ConnectionError::Protocol(format!(
                "protocol version {protocol_version}, this server speaks {PROTOCOL_VERSION}"
            )));
        }
        Ok(())
    }

    /// Lets the connection in if the server asks for no token or it presented the server's.
    fn check_token(&self, token: Option<Token>) -> Result<(), AuthError> {
        match &self.host.token {
            Some(expected) => expected.admits(token.as_ref()),
            None => Ok(()),
        }
    }

    /// Lets a member in if the server asks members for no certificate or it presented one.
    fn check_member_certificate(&self) -> Result<(), AuthError> {
        let required = self.host.tls.as_ref().is_some_and(|tls| tls.members_certified);
        match required && !self.member_certified {
            true => Err(AuthError::NotAMember),
            false => Ok(()),
        }
    }

    fn on_peer_messages(&mut self) {
        let Some(from) = self.peer.filter(|_| !self.messages.is_empty()) else { return };
        let messages = &mut self.messages;
        self.host.drive("peer messages", |node, now_ms| {
            for message in messages.drain(..) {
                node.handle_peer(now_ms, from, message);
            }
        });
    }

    fn on_hello(&mut self, protocol_version: u32, token: Option<Token>) -> Result<(), ConnectionError> {
        if self.greeted {
            return Err(ConnectionError::Protocol("a second hello".into()));
        }
        self.check_version(protocol_version)?;
        self.check_token(token)?;
        self.greeted = true;
        let welcome = Response::Welcome {
            protocol_version: PROTOCOL_VERSION,
            frame_bytes_max: self.host.frame_bytes_max as u32,
        };
        self.outbox.queue(|frames| encode_frame(&welcome, frames));
        Ok(())
    }

    fn on_calls(&mut self) {
        if self.calls.is_empty() {
            return;
        }
        let (addr, calls) = (self.addr, &mut self.calls);
        if let Some(metrics) = &self.host.metrics {
            for call in calls.iter() {
                metrics.call_arrived(call.id, &call.type_name, addr);
            }
        }
        self.host.drive("calls", |node, now_ms| {
            for call in calls.drain(..) {
                node.handle_request(now_ms, addr, call);
            }
        });
    }
}
