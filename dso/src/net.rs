//! Connection halves over plain TCP or TLS, that work on tokio and on madsim (whose simulated
//! `TcpStream` has no `into_split`). Writers must `flush` after writing: madsim sends on
//! flush, and TLS encrypts on it.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The halves of a plain TCP connection.
#[cfg(not(madsim))]
type PlainRead = tokio::net::tcp::OwnedReadHalf;
#[cfg(not(madsim))]
pub(crate) type PlainWrite = tokio::net::tcp::OwnedWriteHalf;
#[cfg(madsim)]
type PlainRead = tokio::io::ReadHalf<TcpStream>;
#[cfg(madsim)]
pub(crate) type PlainWrite = tokio::io::WriteHalf<TcpStream>;

/// A TLS connection, from either end.
type TlsStream = tokio_rustls::TlsStream<TcpStream>;

/// The read half of a connection.
pub(crate) enum ReadHalf {
    Plain(PlainRead),
    Tls(tokio::io::ReadHalf<TlsStream>),
}

/// The write half of a connection.
pub(crate) enum WriteHalf {
    Plain(PlainWrite),
    Tls(TlsWrite),
}

/// The write half of a TLS connection, which closes the connection when dropped, as a plain
/// TCP write half does. (Dropping one half of a split TLS stream closes nothing: the stream
/// lives on in the read half, whose reader would wait for the other end forever, and so would
/// the other end.)
pub(crate) struct TlsWrite(Option<tokio::io::WriteHalf<TlsStream>>);

impl Drop for TlsWrite {
    fn drop(&mut self) {
        let Some(mut half) = self.0.take() else { return };
        // Outside a runtime (the process is ending) there is nobody left to tell.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                use tokio::io::AsyncWriteExt;
                // close_notify, then the TCP write side's FIN.
                let _ = tokio::time::timeout(std::time::Duration::from_secs(1), half.shutdown()).await;
            });
        }
    }
}

impl TlsWrite {
    fn half(&mut self) -> Pin<&mut tokio::io::WriteHalf<TlsStream>> {
        Pin::new(self.0.as_mut().expect("taken only when dropped"))
    }
}

/// Splits a plain connection into halves that can be used from different tasks.
pub(crate) fn split(stream: TcpStream) -> (ReadHalf, WriteHalf) {
    #[cfg(not(madsim))]
    let (read, write) = stream.into_split();
    #[cfg(madsim)]
    let (read, write) = tokio::io::split(stream);
    (ReadHalf::Plain(read), WriteHalf::Plain(write))
}

/// Splits a TLS connection into halves that can be used from different tasks.
pub(crate) fn split_tls(stream: impl Into<TlsStream>) -> (ReadHalf, WriteHalf) {
    let (read, write) = tokio::io::split(stream.into());
    (ReadHalf::Tls(read), WriteHalf::Tls(TlsWrite(Some(write))))
}

impl AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ReadHalf::Plain(half) => Pin::new(half).poll_read(cx, buf),
            ReadHalf::Tls(half) => Pin::new(half).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Plain(half) => Pin::new(half).poll_write(cx, buf),
            WriteHalf::Tls(half) => half.half().poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Plain(half) => Pin::new(half).poll_flush(cx),
            WriteHalf::Tls(half) => half.half().poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Plain(half) => Pin::new(half).poll_shutdown(cx),
            WriteHalf::Tls(half) => half.half().poll_shutdown(cx),
        }
    }
}
