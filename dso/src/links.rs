//! How connections buffer, and how a member reaches the others: settings of the host's links.

/// How connections buffer, and how a member reaches the others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkConfig {
    /// Bytes of answers a client connection may have waiting before the server stops reading
    /// its calls (a client that does not read its answers is not served more).
    pub client_backlog_bytes_max: usize,
    /// Bytes queued for one member past which further messages to it are dropped (the protocol
    /// resends what matters): a slow member costs this one no more memory. Must exceed the
    /// node's `transfer_bytes_max` and `resend_bytes_max`, so that a state transfer's part or
    /// a resend fits behind what is queued.
    pub peer_backlog_bytes_max: usize,
    /// How long to wait for a connection to another member.
    pub peer_connect_timeout_ms: u64,
    /// The pause between attempts to reach a member that did not answer.
    pub peer_reconnect_pause_ms: u64,
    /// Messages to a member written less than this long after the previous write to it are
    /// left to its writer task, which runs once the tasks ready now (other clients' calls)
    /// have queued theirs: under load they leave together, in one write and one read at the
    /// other end. Messages further apart are written at once. 0: always at once.
    pub peer_coalesce_us: u64,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            client_backlog_bytes_max: 4 << 20,
            peer_backlog_bytes_max: 64 << 20,
            peer_connect_timeout_ms: 1_000,
            peer_reconnect_pause_ms: 200,
            peer_coalesce_us: 100,
        }
    }
}
