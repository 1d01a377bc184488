//! Outgoing connections to the other members: one task per member writes its messages in
//! order on one TCP connection (opened with a `PeerHello`), reconnecting when it breaks.
//! While a member cannot be reached its messages are dropped: the protocol resends what
//! matters on its next tick, and a dead member must not make this one buffer without end.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::cluster::MemberId;
use crate::codec::encode_frame;
use crate::protocol::{PeerMessage, Request, PROTOCOL_VERSION};

/// How long to wait for a connection to another member.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1_000);
/// The pause between attempts to reach a member that did not answer.
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);

/// The senders to every member this one has talked to, by sender and receiver.
#[derive(Debug, Default)]
pub(crate) struct PeerLinks {
    senders: Mutex<HashMap<(MemberId, MemberId, String), mpsc::UnboundedSender<PeerMessage>>>,
}

impl PeerLinks {
    /// Queues `message` from member `from` (this one) for member `to` at `addr`, starting
    /// the writer task if needed.
    pub(crate) fn send(&self, from: MemberId, to: MemberId, addr: &str, message: PeerMessage) {
        let mut senders = self.senders.lock();
        let key = (from, to, addr.to_string());
        if let Some(sender) = senders.get(&key) {
            if sender.send(message.clone()).is_ok() {
                return;
            }
        }
        let (sender, receiver) = mpsc::unbounded_channel();
        let _ = sender.send(message);
        tokio::spawn(write_to_member(from, addr.to_string(), receiver));
        senders.insert(key, sender);
    }

    /// Stops the writers to members no longer in `keep` and those of former identities of
    /// this member (their tasks end with their channel).
    pub(crate) fn retain(&self, me: MemberId, keep: impl Fn(MemberId) -> bool) {
        self.senders.lock().retain(|(from, to, _), _| *from == me && keep(*to));
    }
}

/// Writes the messages for one member until its channel closes.
async fn write_to_member(me: MemberId, addr: String, mut messages: mpsc::UnboundedReceiver<PeerMessage>) {
    let mut frames = Vec::new();
    loop {
        let Some(first) = messages.recv().await else { return };
        let mut stream = match connect(me, &addr).await {
            Ok(stream) => stream,
            Err(error) => {
                tracing::debug!(%addr, %error, "member unreachable; dropping its messages for now");
                while messages.try_recv().is_ok() {}
                tokio::time::sleep(RECONNECT_PAUSE).await;
                continue;
            }
        };
        let mut next = Some(first);
        while let Some(message) = next.take() {
            encode_frame(&Request::Peer(message), &mut frames);
            while let Ok(more) = messages.try_recv() {
                encode_frame(&Request::Peer(more), &mut frames);
            }
            let written = stream.write_all(&frames).await.and(stream.flush().await);
            frames.clear();
            if let Err(error) = written {
                tracing::debug!(%addr, %error, "connection to member lost");
                break;
            }
            next = messages.recv().await;
            if next.is_none() {
                return;
            }
        }
    }
}

async fn connect(me: MemberId, addr: &str) -> std::io::Result<TcpStream> {
    let timed_out = || std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
    let mut stream =
        tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await.map_err(|_| timed_out())??;
    let _ = stream.set_nodelay(true);
    let mut hello = Vec::new();
    encode_frame(&Request::PeerHello { protocol_version: PROTOCOL_VERSION, from: me }, &mut hello);
    stream.write_all(&hello).await?;
    stream.flush().await?;
    Ok(stream)
}
