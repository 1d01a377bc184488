//! Outgoing connections to the other members: one TCP connection per member (opened with a
//! `PeerHello`), written in order. A message goes straight onto the socket when nothing is
//! queued before it and the socket takes it now (the common case: no task wake-up on the
//! replication path); otherwise it is queued for the member's writer task, which also
//! (re)connects. While a member cannot be reached its messages are dropped: the protocol
//! resends what matters on its next tick, and a dead member must not make this one buffer
//! without end.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::cluster::MemberId;
use crate::codec::encode_frame;
use crate::protocol::{PeerMessage, Request, PROTOCOL_VERSION};

/// How long to wait for a connection to another member.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1_000);
/// The pause between attempts to reach a member that did not answer.
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);

/// The links to every member this one has talked to, by sender and receiver.
#[derive(Debug, Default)]
pub(crate) struct PeerLinks {
    links: Mutex<HashMap<(MemberId, MemberId), Arc<Link>>>,
}

/// One member's connection: its address, the socket, the bytes queued for the writer task,
/// its wake-up.
#[derive(Debug)]
struct Link {
    addr: String,
    state: Mutex<LinkState>,
    wake: Notify,
}

impl Link {
    /// Ends the writer task.
    fn close(&self) {
        self.state.lock().closed = true;
        self.wake.notify_one();
    }
}

#[derive(Debug, Default)]
struct LinkState {
    socket: Option<Arc<Socket>>,
    /// Frames (or the rest of one) the writer task must write before anything else.
    queued: Vec<u8>,
    /// The writer task is writing: nothing may go out before it is done.
    writing: bool,
    /// The link was dropped: its writer task ends.
    closed: bool,
}

impl PeerLinks {
    /// Sends `message` from member `from` (this one) to member `to` at `addr`.
    pub(crate) fn send(&self, from: MemberId, to: MemberId, addr: &str, message: PeerMessage) {
        let link = {
            let mut links = self.links.lock();
            match links.get(&(from, to)) {
                Some(link) if link.addr == addr => link.clone(),
                stale => {
                    // A member's address changed (or the first message): a new connection.
                    if let Some(old) = stale {
                        old.close();
                    }
                    let link = Arc::new(Link {
                        addr: addr.to_string(),
                        state: Default::default(),
                        wake: Notify::new(),
                    });
                    tokio::spawn(write_queued(link.clone(), from));
                    links.insert((from, to), link.clone());
                    link
                }
            }
        };
        let mut frame = Vec::new();
        encode_frame(&Request::Peer(message), &mut frame);
        let mut state = link.state.lock();
        if state.queued.is_empty() && !state.writing {
            if let Some(socket) = &state.socket {
                match write_now(socket, &frame) {
                    Ok(written) if written == frame.len() => return,
                    Ok(written) => {
                        frame.drain(..written);
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => state.socket = None,
                }
            }
        }
        state.queued.extend_from_slice(&frame);
        drop(state);
        link.wake.notify_one();
    }

    /// Drops the links to members no longer in `keep` and those of former identities of this
    /// member (their writer tasks end).
    pub(crate) fn retain(&self, me: MemberId, keep: impl Fn(MemberId) -> bool) {
        self.links.lock().retain(|(from, to), link| {
            let kept = *from == me && keep(*to);
            if !kept {
                link.close();
            }
            kept
        });
    }
}

/// Writes what is queued for one member, connecting first when needed, until the link closes.
async fn write_queued(link: Arc<Link>, from: MemberId) {
    let addr = link.addr.as_str();
    loop {
        link.wake.notified().await;
        loop {
            let (socket, bytes) = {
                let mut state = link.state.lock();
                if state.closed {
                    return;
                }
                if state.queued.is_empty() {
                    break;
                }
                state.writing = true;
                (state.socket.clone(), std::mem::take(&mut state.queued))
            };
            let socket = match socket {
                Some(socket) => Ok(socket),
                None => connect(from, addr).await.map(Arc::new),
            };
            let written = match socket {
                Ok(socket) => write_all(&socket, &bytes).await.map(|()| socket),
                Err(error) => Err(error),
            };
            let failed = {
                let mut state = link.state.lock();
                state.writing = false;
                match written {
                    Ok(socket) => {
                        state.socket = Some(socket);
                        false
                    }
                    Err(error) => {
                        tracing::debug!(%addr, %error, "member unreachable; dropping its messages for now");
                        state.socket = None;
                        state.queued.clear();
                        true
                    }
                }
            };
            if failed {
                tokio::time::sleep(RECONNECT_PAUSE).await;
            }
        }
    }
}

async fn connect(me: MemberId, addr: &str) -> std::io::Result<Socket> {
    let timed_out = || std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
    let stream =
        tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await.map_err(|_| timed_out())??;
    let _ = stream.set_nodelay(true);
    let socket = Socket::from(stream);
    let mut hello = Vec::new();
    encode_frame(&Request::PeerHello { protocol_version: PROTOCOL_VERSION, from: me }, &mut hello);
    write_all(&socket, &hello).await?;
    Ok(socket)
}

/// The socket, shared by the sending path and the writer task.
#[cfg(not(madsim))]
type Socket = TcpStream;
/// Under madsim (whose sockets cannot be written through a shared reference) every write goes
/// through the writer task.
#[cfg(madsim)]
type Socket = tokio::sync::Mutex<TcpStream>;

/// Writes what the socket takes without waiting.
#[cfg(not(madsim))]
fn write_now(socket: &Socket, bytes: &[u8]) -> std::io::Result<usize> {
    socket.try_write(bytes)
}

#[cfg(madsim)]
fn write_now(_socket: &Socket, _bytes: &[u8]) -> std::io::Result<usize> {
    Err(std::io::ErrorKind::WouldBlock.into())
}

#[cfg(not(madsim))]
async fn write_all(socket: &Socket, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        socket.writable().await?;
        match socket.try_write(bytes) {
            Ok(written) => bytes = &bytes[written..],
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

#[cfg(madsim)]
async fn write_all(socket: &Socket, bytes: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut stream = socket.lock().await;
    stream.write_all(bytes).await?;
    stream.flush().await
}
