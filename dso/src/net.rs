//! Socket halves that work on tokio and on madsim (whose simulated `TcpStream` has no
//! `into_split`). Writers must `flush` after writing: madsim sends on flush.

use tokio::net::TcpStream;

/// The read half of a connection.
#[cfg(not(madsim))]
pub(crate) type ReadHalf = tokio::net::tcp::OwnedReadHalf;
/// The write half of a connection.
#[cfg(not(madsim))]
pub(crate) type WriteHalf = tokio::net::tcp::OwnedWriteHalf;
/// The read half of a connection.
#[cfg(madsim)]
pub(crate) type ReadHalf = tokio::io::ReadHalf<TcpStream>;
/// The write half of a connection.
#[cfg(madsim)]
pub(crate) type WriteHalf = tokio::io::WriteHalf<TcpStream>;

/// Splits a connection into halves that can be used from different tasks.
pub(crate) fn split(stream: TcpStream) -> (ReadHalf, WriteHalf) {
    #[cfg(not(madsim))]
    return stream.into_split();
    #[cfg(madsim)]
    return tokio::io::split(stream);
}
