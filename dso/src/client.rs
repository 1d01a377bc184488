//! The async client: one session per [`Dso`] (clones share it), many calls in flight at once,
//! resends with the same sequence number after a timeout or a reconnect, decided by the sans-IO
//! [`ClientSession`]. Against a cluster, each call goes to its key's primary: the client starts
//! from the address it was given, learns the configuration from the first redirect, and keeps
//! one connection per member it talks to.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Semaphore};
use tokio::time::Instant;

use crate::cluster::Configuration;
use crate::core::auth::Token;
use crate::core::client_session::{ClientSession, NotStarted, ReleasePoint, RetryDecision, SessionConfig};
use crate::core::codec::{decode_frame, encode_frame, FRAME_BYTES_MAX_DEFAULT};
use crate::core::object::{decode, encode, CallFuture, CallId, Caller, ObjectRef, SharedObject};
use crate::core::protocol::{Action, Call, CallRequest, Request, Response, PROTOCOL_VERSION};
use crate::core::session::CallResult;
use crate::net::{split, split_tls, ReadHalf, WriteHalf};
use crate::objects::{AtomicByteArray, CountDownLatch, CyclicBarrier, Matrix, Semaphore as DsoSemaphore};
use crate::tls::{describe_handshake_error, TlsTrust};
use crate::{ConfigError, DsoError};

/// Client settings.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Retry policy and in-flight window.
    pub session: SessionConfig,
    /// The session id; a random one if `None`. A cloud thread passes one derived from its id,
    /// so a re-run of the same thread replays against the server's session table.
    pub session_id: Option<u64>,
    /// Time allowed to connect and complete the handshake.
    pub connect_timeout_ms: u64,
    /// The largest frame accepted from the server (an answer may carry a whole object, up to
    /// the members' `object_bytes_max`).
    pub frame_bytes_max: usize,
    /// Fault injection: the session sends this call and then stops dead, as if its process had
    /// crashed (the call may be applied; its answer is never seen; later calls never leave).
    /// [`Dso::halted`] says when. For tests and simulators of crashing cloud threads. Calls
    /// count from this client's first (a resumed session counts only its own).
    pub halt_at_call: Option<u64>,
    /// Continue another run of the session [`ReleasePoint::session`] from where it stood (for
    /// a cloud thread's invocation that finds the thread's outcome stored and finishes
    /// releasing its records); only for sessions that retain records.
    pub resume_from: Option<ReleasePoint>,
    /// The cluster's token, for servers that require one.
    pub token: Option<Token>,
    /// TLS to servers that serve it, trusting these certificates; `None`: plain TCP.
    pub tls: Option<TlsTrust>,
    /// Send the token over plain TCP to a non-loopback address (where anyone reading the
    /// traffic learns it). Without it, such a connection fails with [`DsoError::Tls`]. For
    /// networks protected otherwise, whose servers run `insecure` too.
    pub insecure: bool,
}

impl ClientConfig {
    /// Checks that the client can work with these settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.session.validate()?;
        let positive = "must be positive";
        ConfigError::check(
            self.connect_timeout_ms > 0,
            "connect_timeout_ms",
            self.connect_timeout_ms,
            positive,
        )?;
        ConfigError::check(self.frame_bytes_max > 0, "frame_bytes_max", self.frame_bytes_max, positive)?;
        let resumable = self.resume_from.is_none() || self.session.retain_records;
        let only_replaying = "resumes only sessions that retain records";
        ConfigError::check(resumable, "resume_from", &self.resume_from, only_replaying)
    }

    /// Whether a session that started `calls_started` calls reached [`ClientConfig::halt_at_call`].
    fn halts_after(&self, calls_started: u64) -> bool {
        let resumed_at = self.resume_from.as_ref().map_or(0, |point| point.next_seq.saturating_sub(1));
        self.halt_at_call.is_some_and(|halt| calls_started.saturating_sub(resumed_at) >= halt)
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            session: SessionConfig::default(),
            session_id: None,
            connect_timeout_ms: 5_000,
            frame_bytes_max: crate::core::object::DECODE_BYTES_MAX,
            halt_at_call: None,
            resume_from: None,
            token: None,
            tls: None,
            insecure: false,
        }
    }
}

/// A connection to a DSO server with its session. Cheap to clone; clones share both.
#[derive(Clone)]
pub struct Dso {
    inner: Arc<Inner>,
}

impl fmt::Debug for Dso {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dso").field("seed", &self.inner.seed).field("session", &self.session_id()).finish()
    }
}

struct Inner {
    /// The first address the client was given (the session routes by all of them).
    seed: String,
    config: ClientConfig,
    started: Instant,
    session: Mutex<ClientSession>,
    /// Callers waiting for an answer, by sequence number.
    /// (B-tree maps here: a few entries with short keys, cheaper than hashing them.)
    pending: Mutex<BTreeMap<u64, oneshot::Sender<CallResult>>>,
    /// The live connections' write halves, by address.
    links: tokio::sync::Mutex<BTreeMap<String, Link>>,
    /// Calls redirected to a newer configuration, to resend at once; `redirect` wakes them.
    redirected: Mutex<BTreeSet<u64>>,
    redirect: tokio::sync::Notify,
    /// Bounds calls in flight (the session's window).
    window: Semaphore,
    /// Set once the session reached `halt_at_call`; `halt` wakes whoever waits for that.
    halted: std::sync::atomic::AtomicBool,
    halt: tokio::sync::Notify,
    generations: AtomicU64,
}

struct Link {
    writer: WriteHalf,
    generation: u64,
}

impl Dso {
    /// Connects with default settings.
    pub async fn connect(addr: impl Into<String>) -> Result<Dso, DsoError> {
        Self::connect_with(addr, ClientConfig::default()).await
    }

    /// Connects with `config`; fails if the server cannot be reached now.
    pub async fn connect_with(addr: impl Into<String>, config: ClientConfig) -> Result<Dso, DsoError> {
        let dso = Self::unconnected(vec![addr.into()], config)?;
        let seed = dso.inner.seed.clone();
        let link = Inner::open_link(&dso.inner, &seed).await?;
        dso.inner.links.lock().await.insert(seed, link);
        Ok(dso)
    }

    /// A client that connects on its first call: to the first of `members`, or, if that one
    /// cannot be reached, to the others in turn. A cloud thread that makes no call opens no
    /// connection. Unreachable members make calls wait and resend until their timeout.
    pub fn lazy(members: Vec<String>, config: ClientConfig) -> Result<Dso, DsoError> {
        Self::unconnected(members, config)
    }

    fn unconnected(members: Vec<String>, config: ClientConfig) -> Result<Dso, DsoError> {
        config.validate()?;
        if members.is_empty() {
            return Err(ConfigError::new("members", &members, "name at least one member's address").into());
        }
        let session_id = config.session_id.unwrap_or_else(crate::ids::random_id);
        let seed = members.first().cloned().unwrap_or_default();
        let mut session = ClientSession::new(session_id, config.session.clone()).with_seeds(members);
        if let Some(point) = config.resume_from.clone() {
            session = session.resumed_at(point);
        }
        let inner = Arc::new(Inner {
            seed,
            started: Instant::now(),
            session: Mutex::new(session),
            pending: Mutex::new(BTreeMap::new()),
            links: tokio::sync::Mutex::new(BTreeMap::new()),
            redirected: Mutex::new(BTreeSet::new()),
            redirect: tokio::sync::Notify::new(),
            window: Semaphore::new(config.session.in_flight_max),
            halted: std::sync::atomic::AtomicBool::new(false),
            halt: tokio::sync::Notify::new(),
            generations: AtomicU64::new(0),
            config,
        });
        Ok(Dso { inner })
    }

    /// This client's session id.
    pub fn session_id(&self) -> u64 {
        self.inner.session.lock().id()
    }

    /// How many calls this session has started (its last sequence number).
    pub fn calls_started(&self) -> u64 {
        self.inner.session.lock().calls_started()
    }

    /// Completes once the session stopped dead at [`ClientConfig::halt_at_call`].
    pub async fn halted(&self) {
        loop {
            let notified = self.inner.halt.notified();
            if self.inner.halted.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    /// The first call of this session that a node refused because of the session itself: a
    /// different call under a recorded sequence number
    /// ([`crate::CallError::Nondeterministic`]), a call whose record was already released
    /// ([`crate::CallError::StaleCall`]) or one over the records a key keeps per session
    /// ([`crate::CallError::TooManyInFlight`]).
    pub fn session_refusal(&self) -> Option<crate::CallError> {
        self.inner.session.lock().refusal().cloned()
    }

    /// Where this session stands, for another run of it to release its records
    /// ([`ClientConfig::resume_from`]).
    pub fn release_point(&self) -> ReleasePoint {
        self.inner.session.lock().release_point()
    }

    /// Releases the records the nodes keep of this session's calls on every key it used (see
    /// [`SessionConfig::retain_records`]): one [`Action::Release`] per key. A cloud thread
    /// does this once its result is stored.
    /// Every key is tried; the first error is returned after the rest were released, and the
    /// keys whose release went unanswered stay listed for another try.
    pub async fn release_records(&self) -> Result<(), DsoError> {
        let keys: Vec<String> = self.inner.session.lock().unreleased_keys().map(str::to_string).collect();
        let mut first_error = None;
        for key in keys {
            if let Err(error) = self.call_raw(&key, "", Action::Release).await {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// A handle to the `T` under `key`, without contacting the server.
    pub fn handle<T: SharedObject>(&self, key: impl Into<String>) -> Shared<T> {
        let key: String = key.into();
        let handle = T::Handle::from(ObjectRef::new(Arc::new(self.clone()), key.clone().into()));
        Shared { handle, dso: self.clone(), key }
    }

    /// Deletes the object under `key`, whatever its type: the key becomes absent, as if never
    /// created, and a later call creates the default again. Answers whether the key held an
    /// object. Calls parked on it fail with [`crate::CallError::ObjectDeleted`].
    pub async fn delete(&self, key: &str) -> Result<bool, DsoError> {
        let existed = self.call_raw(key, "", Action::Delete).await?;
        decode::<bool>(&existed).map_err(DsoError::Codec)
    }

    /// Creates the `T` under `key` with `initial` unless the key holds one (then that one is
    /// used, as Crucial's `@Shared` does), and returns its handle.
    pub async fn object<T: SharedObject>(
        &self,
        key: impl Into<String>,
        initial: T,
    ) -> Result<Shared<T>, DsoError> {
        let key = key.into();
        let created = self.call_raw(&key, T::TYPE_NAME, Action::Create { state: encode(&initial) }).await?;
        decode::<bool>(&created).map_err(DsoError::Codec)?;
        Ok(self.handle(key))
    }

    /// Sends one encoded action and waits for its encoded answer, resending as the session decides.
    ///
    /// Once a node refused a call because of the session itself ([`Dso::session_refusal`]),
    /// every later call fails with that refusal without being sent, except releases.
    pub async fn call_raw(&self, key: &str, type_name: &str, action: Action) -> Result<Vec<u8>, DsoError> {
        let inner = &self.inner;
        let _permit = inner.window.acquire().await.expect("the window is never closed");
        if inner.config.halts_after(inner.session.lock().calls_started()) {
            return inner.stop_dead().await;
        }
        let (answer_tx, mut answer) = oneshot::channel();
        let started = {
            let mut session = inner.session.lock();
            let started = session.start_call(inner.now_ms(), key.to_string(), type_name.to_string(), action);
            started.map(|call| (call.id, call_frame(call)))
        };
        let (id, frame) = match started {
            Ok(started) => started,
            Err(NotStarted::Refused(refusal)) => return Err(DsoError::Call(refusal)),
            Err(NotStarted::WindowFull) => unreachable!("the window semaphore bounds calls in flight"),
        };
        let seq = id.seq;
        tracing::debug!(key, type_name, seq, "dso call");
        inner.pending.lock().insert(seq, answer_tx);
        let abandon = AbandonOnDrop { inner, seq };
        let mut last_error = None;
        // One place sends (a larger future otherwise): the first send, then each resend.
        let mut to_send = Some(frame);
        loop {
            if let Some(frame) = to_send.take() {
                last_error = match inner.send(id, frame).await {
                    Ok(()) => None,
                    // A refused token or certificate is refused again on every resend: the
                    // call fails now.
                    Err((_, refused)) if refused.is_refusal() => return Err(refused),
                    Err((addr, error)) => Some((addr, error.to_string())),
                };
                if inner.config.halts_after(seq) {
                    return inner.stop_dead().await;
                }
            }
            let Some(deadline) = inner.session.lock().call_deadline(seq) else {
                // Answered between the check and now: the answer is in the channel.
                break;
            };
            tokio::select! {
                result = &mut answer => {
                    std::mem::forget(abandon);
                    return result.map_err(|_| DsoError::Protocol("client shut down".into()))?.map_err(DsoError::from);
                }
                _ = tokio::time::sleep_until(inner.instant_at(deadline)) => {}
                _ = inner.redirect.notified() => {
                    if inner.redirected.lock().remove(&seq) {
                        let unanswered = inner.session.lock().unanswered();
                        to_send = unanswered.iter().find(|call| call.id.seq == seq).map(call_frame);
                    }
                    continue;
                }
            }
            let decision = inner.session.lock().handle_call_timeout(inner.now_ms(), seq);
            match decision {
                RetryDecision::Resend(call) => to_send = Some(call_frame(&call)),
                RetryDecision::Wait => {}
                RetryDecision::GiveUp => {
                    inner.pending.lock().remove(&seq);
                    std::mem::forget(abandon);
                    let after_ms = inner.config.session.call_timeout_ms.unwrap_or_default();
                    return Err(match last_error {
                        Some((addr, reason)) => DsoError::Unavailable { addr, reason },
                        None => DsoError::Timeout { after_ms },
                    });
                }
            }
        }
        std::mem::forget(abandon);
        answer.await.map_err(|_| DsoError::Protocol("client shut down".into()))?.map_err(DsoError::from)
    }
}

/// The `tracing` target of the client's connects, for following a client through a partition
/// without a line per call (`RUST_LOG=crucial_dso::links=debug`).
const LINKS: &str = "crucial_dso::links";

/// How long a copy of a call sent to another member may wait for its link's socket (see
/// [`Inner::also_send`]).
const ALSO_SEND_WRITE: Duration = Duration::from_millis(100);

/// `call` as a frame.
fn call_frame(call: &Call) -> Vec<u8> {
    let mut frame = Vec::new();
    encode_frame(&CallRequest(call), &mut frame);
    frame
}

/// Forgets a call whose caller stopped waiting (its future was dropped).
struct AbandonOnDrop<'a> {
    inner: &'a Inner,
    seq: u64,
}

impl Drop for AbandonOnDrop<'_> {
    fn drop(&mut self) {
        self.inner.pending.lock().remove(&self.seq);
        self.inner.session.lock().abandon(self.seq);
    }
}

impl Inner {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Marks the session halted and never returns (see [`ClientConfig::halt_at_call`]).
    async fn stop_dead<T>(&self) -> T {
        self.halted.store(true, Ordering::Release);
        self.halt.notify_waiters();
        std::future::pending().await
    }

    fn instant_at(&self, ms: u64) -> Instant {
        self.started + Duration::from_millis(ms)
    }

    /// Sends the frame of call `id` to the first address the session routes it to that takes
    /// it (its primary, then the others: any member redirects). An error (the last address
    /// tried and why) is left to the retry timer.
    async fn send(self: &Arc<Inner>, id: CallId, frame: Vec<u8>) -> Result<(), (String, DsoError)> {
        let (targets, also) = {
            let session = self.session.lock();
            (session.targets(id.seq), session.also_ask(id.seq))
        };
        let mut failure: Option<(String, DsoError)> = None;
        for addr in targets {
            match self.send_to(&addr, &frame, id).await {
                Ok(()) => {
                    if let Some(other) = also.filter(|other| *other != addr) {
                        self.also_send(other, frame);
                    }
                    return Ok(());
                }
                // A refusal is the error to report, whichever target refused.
                Err(error) => {
                    if !failure.as_ref().is_some_and(|(_, failed)| failed.is_refusal()) {
                        failure = Some((addr, error));
                    }
                }
            }
        }
        // No target: the call was answered meanwhile.
        failure.map_or(Ok(()), Err)
    }

    /// Sends a call's frame to member `addr` too (past the first resends any member may know
    /// the configuration the call needs), without holding up this or any other call: in the
    /// background, over the live link if there is one (a write that does not go at once drops
    /// that link: the member may be cut off), else over a new link connected without holding
    /// the links. Whatever fails here is left to the next resend.
    fn also_send(self: &Arc<Inner>, addr: String, frame: Vec<u8>) {
        let inner = self.clone();
        tokio::spawn(async move {
            {
                let mut links = inner.links.lock().await;
                if let Some(live) = links.get_mut(&addr) {
                    match tokio::time::timeout(ALSO_SEND_WRITE, write_and_flush(&mut live.writer, &frame))
                        .await
                    {
                        Ok(Ok(())) => return,
                        _ => links.remove(&addr),
                    };
                }
            }
            let Ok(mut fresh) = Inner::open_link(&inner, &addr).await else { return };
            if write_and_flush(&mut fresh.writer, &frame).await.is_ok() {
                inner.links.lock().await.entry(addr).or_insert(fresh);
            }
        });
    }

    /// Writes the frame of call `id` to `addr`, connecting first if needed; on a new
    /// connection the other unanswered calls routed there go too.
    async fn send_to(self: &Arc<Inner>, addr: &str, frame: &[u8], id: CallId) -> Result<(), DsoError> {
        let mut links = self.links.lock().await;
        if let Some(live) = links.get_mut(addr) {
            if write_and_flush(&mut live.writer, frame).await.is_ok() {
                return Ok(());
            }
            links.remove(addr);
        }
        // Boxed: connecting is rare, and its future would otherwise make every call's larger.
        let connecting = Instant::now();
        let fresh = Box::pin(self.reconnect(addr, frame, id)).await;
        let took_ms = connecting.elapsed().as_millis() as u64;
        match &fresh {
            Ok(_) => tracing::debug!(target: LINKS, addr, seq = id.seq, took_ms, "linked to a member"),
            Err(error) => {
                tracing::debug!(target: LINKS, addr, seq = id.seq, took_ms, %error, "no link to a member")
            }
        }
        links.insert(addr.to_string(), fresh?);
        Ok(())
    }

    /// Opens a link to `addr` and writes the frame of call `id` on it, with the other
    /// unanswered calls routed there.
    async fn reconnect(self: &Arc<Inner>, addr: &str, frame: &[u8], id: CallId) -> Result<Link, DsoError> {
        let mut fresh = Inner::open_link(self, addr).await?;
        let mut frames = frame.to_vec();
        {
            // One lock for the list and the routes (the session lock is not reentrant).
            let session = self.session.lock();
            for unanswered in session.unanswered() {
                let primary = session.primary_addr(&unanswered.key).unwrap_or(&self.seed);
                if unanswered.id != id && primary == addr {
                    encode_frame(&CallRequest(&unanswered), &mut frames);
                }
            }
        }
        let unavailable =
            |error: std::io::Error| DsoError::Unavailable { addr: addr.into(), reason: error.to_string() };
        write_and_flush(&mut fresh.writer, &frames).await.map_err(unavailable)?;
        Ok(fresh)
    }

    /// Connects to `addr`, shakes hands, and starts the reader task.
    async fn open_link(inner: &Arc<Inner>, addr: &str) -> Result<Link, DsoError> {
        let unavailable = |reason: String| DsoError::Unavailable { addr: addr.to_string(), reason };
        let timeout = Duration::from_millis(inner.config.connect_timeout_ms);
        let handshake = async {
            let (mut reader, mut writer) = dial(addr, &inner.config).await?;
            let mut hello = Vec::new();
            let token = inner.config.token.clone();
            encode_frame(&Request::Hello { protocol_version: PROTOCOL_VERSION, token }, &mut hello);
            write_and_flush(&mut writer, &hello).await.map_err(|e| unavailable(e.to_string()))?;
            let mut buffer = Vec::with_capacity(8192);
            match read_response(&mut reader, &mut buffer, inner.config.frame_bytes_max).await? {
                Response::Welcome { protocol_version, .. } if protocol_version == PROTOCOL_VERSION => {}
                other => return Err(handshake_refusal(addr, other)),
            }
            Ok::<_, DsoError>((reader, writer, buffer))
        };
        let (reader, writer, buffer) = tokio::time::timeout(timeout, handshake)
            .await
            .map_err(|_| unavailable(format!("no handshake within {} ms", timeout.as_millis())))??;
        let generation = inner.generations.fetch_add(1, Ordering::Relaxed) + 1;
        tokio::spawn(read_answers(Arc::downgrade(inner), reader, buffer, addr.to_string(), generation));
        Ok(Link { writer, generation })
    }
}

/// Connects to `addr`, over TLS if `config` says so; refuses to carry its token in clear
/// text off this machine unless it is `insecure`.
async fn dial(addr: &str, config: &ClientConfig) -> Result<(ReadHalf, WriteHalf), DsoError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|error| DsoError::Unavailable { addr: addr.to_string(), reason: error.to_string() })?;
    let _ = stream.set_nodelay(true);
    match &config.tls {
        None => {
            let refusal = match stream.peer_addr() {
                Ok(peer) => clear_text_refusal(peer, config),
                // Where it goes is unknown: only a client without a token may go on.
                Err(error) => config.token.is_some().then(|| format!("no peer address ({error})")),
            };
            match refusal {
                Some(reason) => Err(DsoError::Tls { addr: addr.to_string(), reason }),
                None => Ok(split(stream)),
            }
        }
        Some(trust) => match trust.connect(stream).await {
            Ok(stream) => Ok(split_tls(stream)),
            // What the handshake itself refused (a certificate, or a server without TLS) is
            // refused again on every try; a timeout or a closed connection may pass.
            Err(error) if error.kind() == std::io::ErrorKind::InvalidData => {
                Err(DsoError::Tls { addr: addr.to_string(), reason: describe_handshake_error(&error) })
            }
            Err(error) => Err(DsoError::Unavailable {
                addr: addr.to_string(),
                reason: format!("TLS handshake: {error}"),
            }),
        },
    }
}

/// Why `config` may not be used over plain TCP to `peer`: its token would cross a network in
/// clear text.
fn clear_text_refusal(peer: std::net::SocketAddr, config: &ClientConfig) -> Option<String> {
    // (An IPv4-mapped IPv6 loopback address is loopback too.)
    let exposed = config.token.is_some() && !config.insecure && !peer.ip().to_canonical().is_loopback();
    exposed.then(|| {
        format!(
            "refusing to send the token in clear text to {peer}, which is not a loopback address: \
             give the cluster's CA (ClientConfig::tls), or set ClientConfig::insecure for a \
             network protected otherwise"
        )
    })
}

/// The error for a handshake the server at `addr` answered with `response` instead of a welcome.
fn handshake_refusal(addr: &str, response: Response) -> DsoError {
    match response {
        Response::Unauthenticated { reason } => DsoError::Unauthenticated { addr: addr.to_string(), reason },
        Response::Refused { reason } => DsoError::Protocol(format!("server refused: {reason}")),
        Response::TlsRequired { reason } => DsoError::Tls { addr: addr.to_string(), reason },
        other => DsoError::Protocol(format!("unexpected answer to the handshake: {other:?}")),
    }
}

async fn write_and_flush(writer: &mut WriteHalf, bytes: &[u8]) -> std::io::Result<()> {
    writer.write_all(bytes).await?;
    writer.flush().await
}

/// Reads one response, buffering partial frames in `buffer`.
async fn read_response(
    reader: &mut ReadHalf,
    buffer: &mut Vec<u8>,
    frame_bytes_max: usize,
) -> Result<Response, DsoError> {
    loop {
        match decode_frame::<Response>(buffer, frame_bytes_max) {
            Ok(Some((response, used))) => {
                buffer.drain(..used);
                return Ok(response);
            }
            Ok(None) => {}
            Err(error) => return Err(DsoError::Protocol(error.to_string())),
        }
        match reader.read_buf(buffer).await {
            Ok(0) => return Err(DsoError::Protocol("server closed the connection".into())),
            Ok(_) => {}
            Err(error) => return Err(DsoError::Protocol(error.to_string())),
        }
    }
}

/// Completes waiting callers as answers arrive, and follows redirects; ends with the connection.
async fn read_answers(
    inner: Weak<Inner>,
    mut reader: ReadHalf,
    mut buffer: Vec<u8>,
    addr: String,
    generation: u64,
) {
    let frame_bytes_max = match inner.upgrade() {
        Some(inner) => inner.config.frame_bytes_max,
        None => return,
    };
    let error = loop {
        let response = match read_response(&mut reader, &mut buffer, frame_bytes_max).await {
            Ok(response) => response,
            Err(error) => break error,
        };
        let Some(inner) = inner.upgrade() else { return };
        match response {
            Response::Reply { id, result } => {
                let waiting = inner.session.lock().handle_reply(id, &result);
                if waiting {
                    if let Some(waiter) = inner.pending.lock().remove(&id.seq) {
                        let _ = waiter.send(result);
                    }
                }
            }
            Response::Redirect { id, config } => {
                // A newer configuration: resend the call to its primary now (an older one is
                // ignored; the call is resent on its timer).
                let epoch = config.epoch;
                if inner.session.lock().handle_redirect(id, config) {
                    tracing::debug!(target: LINKS, addr, seq = id.seq, epoch, "redirected to a newer configuration");
                    inner.redirected.lock().insert(id.seq);
                    inner.redirect.notify_waiters();
                }
            }
            Response::Refused { reason }
            | Response::Unauthenticated { reason }
            | Response::TlsRequired { reason } => {
                break DsoError::Protocol(format!("server refused: {reason}"))
            }
            Response::Welcome { .. } | Response::Status { .. } => {
                break DsoError::Protocol("unexpected welcome or status".into())
            }
        }
    };
    tracing::debug!(%error, "connection lost; unanswered calls will be resent");
    if let Some(inner) = inner.upgrade() {
        let mut links = inner.links.lock().await;
        if links.get(&addr).is_some_and(|live| live.generation == generation) {
            links.remove(&addr);
        }
    }
}

/// A member's view of the cluster, as [`member_status`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberStatus {
    /// Its id.
    pub member: crate::cluster::MemberId,
    /// Whether it serves clients.
    pub serving: bool,
    /// The latest configuration it has seen.
    pub config: Configuration,
}

/// Asks the server at `addr` for its view of the cluster (for tools and tests), presenting
/// `token` if the server requires one, over TLS with `tls` (a token goes over plain TCP only
/// to a loopback address).
pub async fn member_status(
    addr: &str,
    token: Option<&Token>,
    tls: Option<&TlsTrust>,
    timeout: Duration,
) -> Result<MemberStatus, DsoError> {
    let unavailable = |reason: String| DsoError::Unavailable { addr: addr.to_string(), reason };
    let exchange = async {
        let config = ClientConfig { token: token.cloned(), tls: tls.cloned(), ..ClientConfig::default() };
        let (mut reader, mut writer) = dial(addr, &config).await?;
        let mut frames = Vec::new();
        let hello = Request::Hello { protocol_version: PROTOCOL_VERSION, token: token.cloned() };
        encode_frame(&hello, &mut frames);
        encode_frame(&Request::Status, &mut frames);
        write_and_flush(&mut writer, &frames).await.map_err(|e| unavailable(e.to_string()))?;
        let mut buffer = Vec::new();
        loop {
            match read_response(&mut reader, &mut buffer, FRAME_BYTES_MAX_DEFAULT).await? {
                Response::Welcome { .. } => {}
                Response::Status { member, serving, config } => {
                    return Ok(MemberStatus { member, serving, config })
                }
                other => return Err(handshake_refusal(addr, other)),
            }
        }
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| unavailable("no status in time".into()))?
}

impl Caller for Dso {
    fn invoke_encoded<'a>(
        &'a self,
        key: &'a str,
        type_name: &'static str,
        method: &'static str,
        args: Vec<u8>,
    ) -> CallFuture<'a> {
        Box::pin(self.call_raw(key, type_name, Action::Invoke { method: method.to_string(), args }))
    }
}

/// A shared object's typed handle: derefs to the generated `<Type>Handle`, whose async methods
/// are the type's operations (`hits.add_and_get(5).await?`).
#[derive(Clone, Debug)]
pub struct Shared<T: SharedObject> {
    handle: T::Handle,
    dso: Dso,
    key: String,
}

impl<T: SharedObject> Shared<T> {
    /// Deletes the object (see [`Dso::delete`]); answers whether the key held one. (A type's
    /// own method named `delete` stays reachable through the handle: `(*shared).delete()`.)
    pub async fn delete(&self) -> Result<bool, DsoError> {
        self.dso.delete(&self.key).await
    }
}

impl<T: SharedObject> Deref for Shared<T> {
    type Target = T::Handle;
    fn deref(&self) -> &T::Handle {
        &self.handle
    }
}

/// One accessor per built-in that springs into being on first use (its default), named as in
/// [`crucial_dso_core::for_each_builtin!`].
macro_rules! default_object_accessors {
    ([$($Type:ident $(=> $accessor:ident)?,)*]) => {
        impl Dso {
            $($(
                #[doc = concat!("The `", stringify!($Type), "` under `key` (the type's default until first changed).")]
                pub fn $accessor(&self, key: impl Into<String>) -> Shared<crate::objects::$Type> {
                    self.handle(key)
                }
            )?)*
        }
    };
}

crucial_dso_core::for_each_builtin!(default_object_accessors);

impl Dso {
    /// The `Semaphore` under `key`, created with `permits` if absent.
    pub async fn semaphore(
        &self,
        key: impl Into<String>,
        permits: u64,
    ) -> Result<Shared<DsoSemaphore>, DsoError> {
        self.object(key, DsoSemaphore::new(permits)).await
    }

    /// The `CyclicBarrier` under `key`, created for `parties` if absent.
    pub async fn cyclic_barrier(
        &self,
        key: impl Into<String>,
        parties: u64,
    ) -> Result<Shared<CyclicBarrier>, DsoError> {
        self.object(key, CyclicBarrier::new(parties)).await
    }

    /// The `CountDownLatch` under `key`, created with `count` if absent.
    pub async fn count_down_latch(
        &self,
        key: impl Into<String>,
        count: u64,
    ) -> Result<Shared<CountDownLatch>, DsoError> {
        self.object(key, CountDownLatch::new(count)).await
    }

    /// The `Matrix` under `key`, created as `rows x columns` zeros if absent.
    pub async fn matrix(
        &self,
        key: impl Into<String>,
        rows: u64,
        columns: u64,
    ) -> Result<Shared<Matrix>, DsoError> {
        self.object(key, Matrix::new(rows, columns)).await
    }

    /// The `AtomicByteArray` under `key`, created with `length` zeros if absent.
    pub async fn atomic_byte_array(
        &self,
        key: impl Into<String>,
        length: usize,
    ) -> Result<Shared<AtomicByteArray>, DsoError> {
        self.object(key, AtomicByteArray::new(length)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_crosses_a_network_in_clear_text_only_when_told_insecure() {
        let token = Some(Token::new("the-cluster-token-0123").unwrap());
        let remote: std::net::SocketAddr = "10.0.0.7:11222".parse().unwrap();
        let local: std::net::SocketAddr = "127.0.0.1:11222".parse().unwrap();
        let with_token = ClientConfig { token, ..ClientConfig::default() };
        let refusal = clear_text_refusal(remote, &with_token).expect("refused");
        assert!(refusal.contains("10.0.0.7:11222") && refusal.contains("ClientConfig::tls"), "{refusal}");
        assert_eq!(clear_text_refusal(local, &with_token), None, "loopback never leaves the machine");
        let mapped: std::net::SocketAddr = "[::ffff:127.0.0.1]:11222".parse().unwrap();
        assert_eq!(clear_text_refusal(mapped, &with_token), None, "nor does mapped loopback");
        let insecure = ClientConfig { insecure: true, ..with_token };
        assert_eq!(clear_text_refusal(remote, &insecure), None);
        assert_eq!(clear_text_refusal(remote, &ClientConfig::default()), None, "no token, nothing to leak");
    }
}
