//! The bytes bound for one socket, written in the order they were queued.
//!
//! Whoever produced frames queues them (under the node's lock, so frames leave in the order
//! the node emitted them) and then calls [`Outbox::flush`], which writes them straight onto
//! the socket when no write is under way and the socket takes them now: the common case, with
//! no task wake-up. Whatever the socket does not take at once is left to the outbox's writer
//! (a task woken through [`Outbox::wake`]), which calls [`Outbox::write_pending`]. Frames
//! queued by several producers meanwhile leave together in one write. Under load,
//! [`Outbox::flush_or_coalesce`] leaves even a writable socket to the writer, so that the
//! frames of every task ready now leave together.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::net::WriteHalf;

/// One socket's queue of outgoing bytes and its writer's wake-up.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    state: Mutex<State>,
    /// Signals the writer: bytes wait that the inline path could not write, or the outbox closed.
    pub(crate) wake: Notify,
}

#[derive(Debug, Default)]
struct State {
    socket: Option<Arc<Socket>>,
    /// Bytes not yet written, oldest first.
    queued: Vec<u8>,
    /// The writer is writing bytes it took: everything else waits behind them.
    writing: bool,
    /// How many bytes the writer took and is writing.
    writing_bytes: usize,
    /// The outbox was dropped by its owner: its writer ends.
    closed: bool,
    /// The writer was asked to write what is queued (see [`Outbox::flush_or_coalesce`]):
    /// frames queued meanwhile wait for it.
    coalescing: bool,
    /// When bytes last left, inline or by the writer.
    last_write: Option<Instant>,
}

impl Outbox {
    /// An outbox writing to `socket` (or, with `None`, waiting for [`Outbox::connected`]).
    pub(crate) fn new(socket: Option<Socket>) -> Self {
        Self {
            state: Mutex::new(State { socket: socket.map(Arc::new), ..State::default() }),
            wake: Notify::new(),
        }
    }

    /// Appends frames with `encode`; they go out at the next flush.
    pub(crate) fn queue(&self, encode: impl FnOnce(&mut Vec<u8>)) {
        encode(&mut self.state.lock().queued);
    }

    /// Writes what is queued now if nothing else is being written and the socket takes it;
    /// leaves the rest to the writer.
    pub(crate) fn flush(&self) {
        self.flush_locked(self.state.lock());
    }

    fn flush_locked(&self, mut state: MutexGuard<'_, State>) {
        if state.queued.is_empty() {
            return;
        }
        // On `WouldBlock` or an error the bytes stay queued: the writer waits for the socket,
        // or meets the error again on its own write and handles it.
        let written = match (&state.socket, state.writing) {
            (Some(socket), false) => write_now(socket, &state.queued).unwrap_or(0),
            _ => 0,
        };
        state.queued.drain(..written);
        if written > 0 {
            state.last_write = Some(Instant::now());
        }
        if state.queued.is_empty() {
            // Nothing left for a coalescing writer to take.
            state.coalescing = false;
            return;
        }
        drop(state);
        self.wake.notify_one();
    }

    /// Like [`Outbox::flush`] when the last write was at least `window` ago and no coalesced
    /// write is pending; otherwise (under load) leaves what is queued to the writer, which
    /// first lets every task ready now queue its frames, so that they leave together in one
    /// write. The decision and the inline write happen under one lock, and the writer is
    /// woken every time bytes are left to it.
    pub(crate) fn flush_or_coalesce(&self, window: Duration) {
        let mut state = self.state.lock();
        if state.queued.is_empty() {
            return;
        }
        let recent = state.last_write.is_some_and(|at| at.elapsed() < window);
        if !recent && !state.coalescing {
            return self.flush_locked(state);
        }
        state.coalescing = true;
        drop(state);
        self.wake.notify_one();
    }

    /// Whether the outbox has a socket to write to.
    pub(crate) fn is_connected(&self) -> bool {
        self.state.lock().socket.is_some()
    }

    /// Drops the bytes waiting (their receiver cannot be reached).
    pub(crate) fn discard_pending(&self) {
        let mut state = self.state.lock();
        state.queued.clear();
        state.coalescing = false;
    }

    /// How many bytes wait to be written or are being written.
    pub(crate) fn pending_bytes(&self) -> usize {
        let state = self.state.lock();
        state.queued.len() + state.writing_bytes
    }

    /// Gives the outbox a (new) socket.
    pub(crate) fn connected(&self, socket: Socket) {
        self.state.lock().socket = Some(Arc::new(socket));
    }

    /// Ends the writer.
    pub(crate) fn close(&self) {
        self.state.lock().closed = true;
        self.wake.notify_one();
    }

    /// Whether the owner closed the outbox.
    pub(crate) fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    /// The writer's job: writes everything queued, including what is queued meanwhile. On an
    /// error the socket and the bytes still queued are dropped, and the error returned.
    pub(crate) async fn write_pending(&self) -> std::io::Result<()> {
        loop {
            let (socket, bytes) = {
                let mut state = self.state.lock();
                if state.queued.is_empty() {
                    state.coalescing = false;
                    return Ok(());
                }
                let Some(socket) = state.socket.clone() else {
                    state.coalescing = false;
                    return Err(std::io::ErrorKind::NotConnected.into());
                };
                state.writing = true;
                state.writing_bytes = state.queued.len();
                (socket, std::mem::take(&mut state.queued))
            };
            let written = write_all(&socket, &bytes).await;
            let mut state = self.state.lock();
            state.writing = false;
            state.writing_bytes = 0;
            state.last_write = Some(Instant::now());
            if let Err(error) = written {
                state.socket = None;
                state.queued.clear();
                state.coalescing = false;
                return Err(error);
            }
        }
    }
}

/// The writing side of a connection, shared by the inline path and the writer.
pub(crate) enum Socket {
    /// A plain TCP connection, written inline whenever it takes the bytes at once.
    #[cfg(not(madsim))]
    Direct(crate::net::PlainWrite),
    /// A connection written only by the writer: TLS (which encrypts as it writes and has no
    /// write that cannot wait), and every socket under madsim (which cannot be written
    /// through a shared reference).
    Queued(tokio::sync::Mutex<WriteHalf>),
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            #[cfg(not(madsim))]
            Socket::Direct(_) => f.write_str("Socket::Direct"),
            Socket::Queued(_) => f.write_str("Socket::Queued"),
        }
    }
}

/// Wraps a connection's write half for an outbox.
pub(crate) fn socket(half: WriteHalf) -> Socket {
    match half {
        #[cfg(not(madsim))]
        WriteHalf::Plain(half) => Socket::Direct(half),
        half => Socket::Queued(tokio::sync::Mutex::new(half)),
    }
}

/// Writes what the socket takes without waiting.
// (Under madsim every socket is queued: the bytes are never looked at.)
#[cfg_attr(madsim, allow(unused_variables))]
fn write_now(socket: &Socket, bytes: &[u8]) -> std::io::Result<usize> {
    match socket {
        #[cfg(not(madsim))]
        Socket::Direct(half) => half.try_write(bytes),
        Socket::Queued(_) => Err(std::io::ErrorKind::WouldBlock.into()),
    }
}

/// Writes all of `bytes`, waiting for the socket as needed.
async fn write_all(socket: &Socket, bytes: &[u8]) -> std::io::Result<()> {
    match socket {
        #[cfg(not(madsim))]
        Socket::Direct(half) => write_all_direct(half, bytes).await,
        Socket::Queued(half) => {
            use tokio::io::AsyncWriteExt;
            let mut half = half.lock().await;
            half.write_all(bytes).await?;
            half.flush().await
        }
    }
}

#[cfg(not(madsim))]
async fn write_all_direct(half: &crate::net::PlainWrite, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        half.writable().await?;
        match half.try_write(bytes) {
            Ok(written) => bytes = &bytes[written..],
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;

    /// Regression: an inline flush that emptied the queue while a coalesced write was pending
    /// left the outbox marked as coalescing, and later bytes were left to a writer nobody woke.
    #[tokio::test]
    async fn bytes_left_to_the_writer_always_wake_it() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let _server = listener.accept().await.unwrap();
        let (_reader, writer) = crate::net::split(client);
        let outbox = Outbox::new(Some(socket(writer)));
        let window = Duration::from_secs(60);
        let woken = || tokio::time::timeout(Duration::from_secs(1), outbox.wake.notified());

        // A first write goes out inline; the link then counts as busy for a minute.
        outbox.queue(|bytes| bytes.push(1));
        outbox.flush_or_coalesce(window);
        assert_eq!(outbox.pending_bytes(), 0);
        // Under load the bytes are left to the writer, which is woken.
        outbox.queue(|bytes| bytes.push(2));
        outbox.flush_or_coalesce(window);
        assert_eq!(outbox.pending_bytes(), 1);
        woken().await.expect("the writer is woken");
        // An inline flush from elsewhere takes them before the writer runs...
        outbox.flush();
        assert_eq!(outbox.pending_bytes(), 0);
        // ...and the next bytes left to the writer wake it again.
        outbox.queue(|bytes| bytes.push(3));
        outbox.flush_or_coalesce(window);
        assert_eq!(outbox.pending_bytes(), 1);
        woken().await.expect("the writer is woken for every byte left to it");
    }
}
