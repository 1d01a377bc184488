//! The async server: an accept loop, one task per connection, one timer task, graceful
//! shutdown. Users add their own object types with [`ServerBuilder::register`]:
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use crucial_dso::server::ServerBuilder;
//! # use crucial_dso::objects::Counter as MyType;
//! let server = ServerBuilder::new()
//!     .bind("127.0.0.1:11222".parse().unwrap())
//!     .register::<MyType>() // a type written with #[shared]
//!     .start()
//!     .await?;
//! server.wait().await;
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio::task::JoinHandle;

use crate::client::{ClientConfig, Dso};
use crate::cluster::discovery::{Discovery, DiscoveryStore};
use crate::cluster::{Configuration, Member, MemberId};
use crate::core::auth::Token;
use crate::core::codec::FRAME_BYTES_MAX_DEFAULT;
use crate::core::node::{ClusterTiming, Node, NodeConfig};
use crate::core::object::{SharedObject, DECODE_BYTES_MAX};
use crate::core::registry::Registry;
use crate::host::{Access, ClusterLinks, Host};
use crate::ids::random_id;
pub use crate::links::LinkConfig;
use crate::metrics::Metrics;
use crate::metrics_http::serve_metrics;
use crate::peers::PeerLinks;
use crate::store_link::run_store;
pub use crate::tls::ServerTls;
use crate::tls::{TlsError, TlsTrust};
use crate::{ConfigError, DsoError};

/// The default listen address: loopback only, unless told otherwise.
pub const BIND_DEFAULT: &str = "127.0.0.1:11222";

/// Everything a server is configured with.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Where to listen.
    pub bind: SocketAddr,
    /// The largest frame accepted; larger ones close their connection.
    pub frame_bytes_max: usize,
    /// Connections served at once; further ones are refused.
    pub connections_max: usize,
    /// The node's limits.
    pub node: NodeConfig,
    /// Membership of a cluster; `None`: a standalone server.
    pub cluster: Option<ClusterOptions>,
    /// After serving anything, keep polling the sockets for this long before sleeping (0: never).
    /// Saves the wake-up of an idle core when the next message comes soon (a few microseconds on
    /// bare metal, tens in a virtual machine) at the cost of a core kept busy while traffic
    /// lasts. Meant for a single-threaded runtime on a core of its own.
    pub busy_poll_us: u64,
    /// How connections buffer, and how a member reaches the others.
    pub links: LinkConfig,
    /// The token every connection must present (clients and other members alike); `None`:
    /// none is asked for, which only a loopback address allows unless `insecure` is set.
    pub token: Option<Token>,
    /// TLS for every connection, from clients and from other members; `None`: plain TCP,
    /// which only a loopback address allows unless `insecure` is set.
    pub tls: Option<ServerTls>,
    /// Serve a non-loopback address without a token or without TLS: anyone who reaches the
    /// port, or reads the traffic, can read and change every object. For private networks
    /// that are protected otherwise.
    pub insecure: bool,
    /// Serve `GET /metrics` (Prometheus's text format) on this address; `None`: not served.
    /// It needs no token: keep it where only the monitoring system reaches it.
    pub metrics_bind: Option<SocketAddr>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: BIND_DEFAULT.parse().expect("valid default address"),
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            connections_max: 10_000,
            node: NodeConfig::default(),
            cluster: None,
            busy_poll_us: 0,
            links: LinkConfig::default(),
            token: None,
            tls: None,
            insecure: false,
            metrics_bind: None,
        }
    }
}

/// How a server finds and joins its cluster.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Where the configuration lives.
    pub discovery: Discovery,
    /// Endpoint of an S3-compatible service, for `s3://` discovery outside AWS.
    pub s3_endpoint: Option<String>,
    /// The address other members and clients reach this server at (default: the bound one).
    pub advertise: Option<String>,
    /// This member's id (default: random). A server that lost its state (a crash) must not
    /// come back under its old id; if it does, it notices and rejoins under a new one.
    pub member_id: Option<MemberId>,
    /// Copies of each key this member asks for when it joins.
    pub rf: usize,
    /// Heartbeats, failure detection and store polling.
    pub timing: ClusterTiming,
}

impl ClusterOptions {
    /// Joins through `discovery` asking for `rf` copies of each key, with the defaults for
    /// the rest: the bound address advertised, a random id, AWS's S3 endpoint, default timing.
    pub fn new(discovery: Discovery, rf: usize) -> Self {
        Self {
            discovery,
            s3_endpoint: None,
            advertise: None,
            member_id: None,
            rf,
            timing: ClusterTiming::default(),
        }
    }
}

/// Builds a server: configuration plus the object types it knows (built-ins always).
#[derive(Debug, Default)]
pub struct ServerBuilder {
    config: ServerConfig,
    registry: Registry,
}

impl ServerBuilder {
    /// A builder with default configuration and the built-in types.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets the listen address (port 0 picks a free port).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.config.bind = addr;
        self
    }

    /// Sets the largest accepted frame.
    pub fn frame_bytes_max(mut self, bytes: usize) -> Self {
        self.config.frame_bytes_max = bytes;
        self
    }

    /// Sets the node's limits.
    pub fn node_config(mut self, node: NodeConfig) -> Self {
        self.config.node = node;
        self
    }

    /// Makes the server a member of a cluster.
    pub fn cluster(mut self, options: ClusterOptions) -> Self {
        self.config.cluster = Some(options);
        self
    }

    /// Adds a user type; its objects are created with `Dso::object(key, initial)`.
    pub fn register<T: SharedObject>(mut self) -> Self {
        self.registry.register::<T>();
        self
    }

    /// Adds a user type whose objects start as `T::default()` on first use.
    pub fn register_with_default<T: SharedObject + Default>(mut self) -> Self {
        self.registry.register_with_default::<T>();
        self
    }

    /// The token every connection must present (see [`ServerConfig::token`]).
    pub fn token(mut self, token: Token) -> Self {
        self.config.token = Some(token);
        self
    }

    /// Serves TLS (see [`ServerConfig::tls`]).
    pub fn tls(mut self, tls: ServerTls) -> Self {
        self.config.tls = Some(tls);
        self
    }

    /// Serve a non-loopback address without a token or TLS (see [`ServerConfig::insecure`]).
    pub fn insecure(mut self) -> Self {
        self.config.insecure = true;
        self
    }

    /// Binds and starts serving (and, for a cluster member, joins the cluster).
    pub async fn start(self) -> std::io::Result<Server> {
        let invalid = |reason: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, reason);
        let bad_config = |error: ConfigError| std::io::Error::new(std::io::ErrorKind::InvalidInput, error);
        self.config.validate().map_err(bad_config)?;
        let connections_max = self.config.connections_max as u32;
        let registry = Arc::new(self.registry);
        let busy_poll = self.config.busy_poll_us > 0;
        let listener = TcpListener::bind(self.config.bind).await?;
        let local_addr = listener.local_addr()?;
        let metrics_listener = match self.config.metrics_bind {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        };
        let metrics_addr = metrics_listener.as_ref().map(TcpListener::local_addr).transpose()?;
        let metrics = metrics_listener.as_ref().map(|_| Metrics::new(registry.clone()));
        let tls_error = |error: TlsError| std::io::Error::new(std::io::ErrorKind::InvalidInput, error);
        let tls = self.config.tls.as_ref();
        let acceptor =
            tls.map(|tls| tls.identity.acceptor(tls.members.as_ref())).transpose().map_err(tls_error)?;
        let access = Access { token: self.config.token.clone(), tls: acceptor };
        let members_trust = tls.and_then(|tls| tls.members.clone());
        // Towards the other members, this one presents its own certificate.
        let member_links_trust = tls
            .and_then(|tls| tls.members.as_ref().map(|trust| trust.presenting(&tls.identity)))
            .transpose()
            .map_err(tls_error)?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let (host, membership) = match self.config.cluster.clone() {
            None => {
                let node = Node::new(self.config.node.clone(), registry).map_err(bad_config)?;
                (
                    Arc::new(Host::new(
                        node,
                        self.config.frame_bytes_max,
                        &self.config.links,
                        None,
                        busy_poll,
                        access,
                        metrics,
                    )),
                    None,
                )
            }
            Some(options) => {
                let store = DiscoveryStore::open(&options.discovery, options.s3_endpoint.as_deref())
                    .await
                    .map_err(invalid)?;
                let membership = Arc::new(Membership {
                    options: options.clone(),
                    addr: options.advertise.clone().unwrap_or_else(|| local_addr.to_string()),
                    node: self.config.node.clone(),
                    registry,
                    leaving: AtomicBool::new(false),
                    left: Notify::new(),
                });
                let node =
                    membership.new_member(options.member_id.unwrap_or_else(random_id)).map_err(bad_config)?;
                let (requests, requests_rx) = mpsc::unbounded_channel();
                let peers =
                    PeerLinks::new(self.config.links.clone(), self.config.token.clone(), member_links_trust);
                let links = ClusterLinks { peers, store: requests, removed: Notify::new() };
                let host = Arc::new(Host::new(
                    node,
                    self.config.frame_bytes_max,
                    &self.config.links,
                    Some(links),
                    busy_poll,
                    access,
                    metrics,
                ));
                tasks.push(tokio::spawn(run_store(host.clone(), store, requests_rx, shutdown_rx.clone())));
                tasks.push(tokio::spawn(run_membership(
                    host.clone(),
                    membership.clone(),
                    shutdown_rx.clone(),
                )));
                // The new member's first output asks for the configuration.
                host.drive("start", |_, _| {});
                (host, Some(membership))
            }
        };
        let connections = Arc::new(Semaphore::new(connections_max as usize));
        tasks.push(tokio::spawn(run_timer(host.clone(), shutdown_rx.clone())));
        if busy_poll {
            let window = Duration::from_micros(self.config.busy_poll_us);
            tasks.push(tokio::spawn(run_busy_poll(host.clone(), window, shutdown_rx.clone())));
        }
        if let Some(listener) = metrics_listener {
            tasks.push(tokio::spawn(serve_metrics(listener, host.clone(), shutdown_rx.clone())));
        }
        tasks.push(tokio::spawn(accept_loop(
            listener,
            host.clone(),
            connections,
            connections_max,
            shutdown_rx,
        )));
        tracing::info!(%local_addr, ?metrics_addr, "dso server listening");
        Ok(Server { local_addr, metrics_addr, shutdown, tasks, host, membership, members_trust })
    }
}

impl ServerConfig {
    /// Checks every setting before anything binds.
    pub fn validate(&self) -> Result<(), ConfigError> {
        ConfigError::check(
            (64..=DECODE_BYTES_MAX).contains(&self.frame_bytes_max),
            "frame_bytes_max",
            self.frame_bytes_max,
            &format!("must be in 64..={DECODE_BYTES_MAX}"),
        )?;
        ConfigError::check(
            (1..=1 << 20).contains(&self.connections_max),
            "connections_max",
            self.connections_max,
            "must be in 1..=2^20",
        )?;
        self.node.validate()?;
        let links = &self.links;
        let positive = "must be positive";
        let client_backlog = links.client_backlog_bytes_max;
        ConfigError::check(client_backlog > 0, "client_backlog_bytes_max", client_backlog, positive)?;
        let message_max = self.node.transfer_bytes_max.max(self.node.resend_bytes_max);
        ConfigError::check(
            links.peer_backlog_bytes_max > message_max,
            "peer_backlog_bytes_max",
            links.peer_backlog_bytes_max,
            &format!(
                "must exceed transfer_bytes_max and resend_bytes_max ({message_max}): a transfer \
                 part or a resend must fit"
            ),
        )?;
        let connect = links.peer_connect_timeout_ms;
        ConfigError::check(connect > 0, "peer_connect_timeout_ms", connect, positive)?;
        let pause = links.peer_reconnect_pause_ms;
        ConfigError::check(pause > 0, "peer_reconnect_pause_ms", pause, positive)?;
        let exposed = !self.bind.ip().is_loopback() && !self.insecure;
        ConfigError::check(
            self.token.is_some() || !exposed,
            "token",
            &self.token,
            &format!(
                "is needed to serve {}, which is not a loopback address: anyone reaching it could read \
                 and change every object (give a token, with dso-server --token-file or DSO_TOKEN, or \
                 set `insecure`, --insecure, for a network protected otherwise)",
                self.bind
            ),
        )?;
        ConfigError::check(
            self.tls.is_some() || !exposed,
            "tls",
            &self.tls,
            &format!(
                "is needed to serve {}, which is not a loopback address: the token and every object \
                 would cross the network in clear text (give a certificate and its key, with \
                 dso-server --tls-cert and --tls-key, or set `insecure`, --insecure, for a network \
                 protected otherwise)",
                self.bind
            ),
        )?;
        if let Some(cluster) = &self.cluster {
            ConfigError::check(cluster.rf > 0, "rf", cluster.rf, "must be positive")?;
            if let Some(tls) = &self.tls {
                ConfigError::check(
                    tls.members.is_some(),
                    "tls.members",
                    &tls.members,
                    "must be given to a cluster member serving TLS: it connects to the others over TLS \
                     and checks their certificates against it (dso-server --tls-ca)",
                )?;
            }
            cluster.timing.validate()?;
        }
        Ok(())
    }
}

/// What a cluster member needs to start over under a new identity, and its leaving state.
struct Membership {
    options: ClusterOptions,
    addr: String,
    node: NodeConfig,
    registry: Arc<crate::core::registry::Registry>,
    leaving: AtomicBool,
    /// Signalled once a configuration without this member is active after it asked to leave.
    left: Notify,
}

impl Membership {
    fn new_member(&self, id: MemberId) -> Result<Node, ConfigError> {
        let me = Member { id, addr: self.addr.clone() };
        Node::member(
            self.node.clone(),
            self.registry.clone(),
            me,
            self.options.rf,
            self.options.timing.clone(),
        )
    }
}

/// Reacts to this member's removal: after a requested leave, reports it; otherwise (it was
/// suspected, or came back under a crashed member's id) starts over as a new member.
///
/// The new member takes a new id rather than keeping the old one: the removed member dropped
/// its keys (they are nobody's copy once the configuration without it is active), and under a
/// new id nothing meant for the old one (installs and log entries of the epochs it served,
/// the others' record of what it held) can be taken for the new, empty one. It costs nothing
/// while it cannot reach the others: it probes them and asks to join only once they answer
/// (`crucial_dso_core` node's `probe`), so a partition costs its removal and one join.
async fn run_membership(host: Arc<Host>, membership: Arc<Membership>, mut shutdown: watch::Receiver<bool>) {
    let Some(cluster) = &host.cluster else { return };
    loop {
        tokio::select! {
            _ = cluster.removed.notified() => {}
            _ = shutdown.changed() => return,
        }
        if membership.leaving.load(Ordering::Relaxed) {
            membership.left.notify_one();
            return;
        }
        let id = random_id();
        tracing::warn!(member = id, "removed from the cluster; joining again as a new member");
        match membership.new_member(id) {
            Ok(node) => {
                host.replace_node(node);
                cluster.peers.retain(id, |_| false);
                host.drive("rejoin", |_, _| {});
            }
            Err(error) => tracing::error!(%error, "cannot start a new member"),
        }
    }
}

/// A running server.
pub struct Server {
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    host: Arc<Host>,
    membership: Option<Arc<Membership>>,
    /// The trust for TLS connections to members (this one included), if it serves TLS.
    members_trust: Option<TlsTrust>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("local_addr", &self.local_addr).finish()
    }
}

impl Server {
    /// An embedded server: built-in types, loopback, a free port. What examples and tests use.
    pub async fn embedded() -> std::io::Result<Server> {
        ServerBuilder::new().bind(SocketAddr::from(([127, 0, 0, 1], 0))).start().await
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address `/metrics` is served on, if it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// This server's member id (0 for a standalone server).
    pub fn member_id(&self) -> MemberId {
        self.host.with_node(Node::id)
    }

    /// The latest cluster configuration this server has seen.
    pub fn configuration(&self) -> Configuration {
        self.host.with_node(|node| node.configuration().clone())
    }

    /// Whether this server serves clients (for a member: listed in an active configuration).
    pub fn is_serving(&self) -> bool {
        self.host.with_node(Node::is_serving)
    }

    /// Call records of client sessions this server holds, summed over its keys (walks every
    /// session: for tests and tools).
    pub fn session_records(&self) -> usize {
        self.host.with_node(Node::session_records)
    }

    /// How many calls wait parked on this server (blocked until woken or timed out).
    pub fn parked_calls(&self) -> usize {
        self.host.with_node(Node::parked_calls)
    }

    /// Leaves the cluster gracefully: asks for a configuration without this member and waits
    /// (up to `within`) until one is active, that is, until its keys have moved. Whether it
    /// got there. A standalone server has nothing to leave.
    pub async fn leave(&self, within: Duration) -> bool {
        let Some(membership) = &self.membership else { return true };
        membership.leaving.store(true, Ordering::Relaxed);
        let left = membership.left.notified();
        self.host.drive("leave", |node, _| node.leave());
        tokio::time::timeout(within, left).await.is_ok()
    }

    /// A client connected to this server with default settings, the server's token and, if it
    /// serves TLS, its trust for members ([`ServerTls::members`]).
    pub async fn connect(&self) -> Result<Dso, DsoError> {
        let config = ClientConfig {
            token: self.host.token.clone(),
            tls: self.members_trust.clone(),
            ..ClientConfig::default()
        };
        Dso::connect_with(self.local_addr.to_string(), config).await
    }

    /// Runs until the accept loop ends (on shutdown).
    pub async fn wait(mut self) {
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }

    /// Stops accepting, closes every connection, and waits for the tasks to end.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        self.wait().await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Accepts connections until shutdown, then waits for every connection task to end (each
/// holds one of the `connections_max` permits until it does).
async fn accept_loop(
    listener: TcpListener,
    host: Arc<Host>,
    connections: Arc<Semaphore>,
    connections_max: u32,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => {
                let _ = connections.acquire_many(connections_max).await;
                return;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::warn!("connections_max reached: refusing a connection");
            drop(stream);
            continue;
        };
        let (host, shutdown) = (host.clone(), shutdown.clone());
        tokio::spawn(async move {
            crate::connection::serve(host, stream, shutdown).await;
            drop(permit);
        });
    }
}

/// Keeps the runtime polling its sockets for `window` after the node was last driven, so that
/// a message arriving meanwhile finds the thread awake.
async fn run_busy_poll(host: Arc<Host>, window: Duration, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = host.activity.notified() => {}
            _ = shutdown.changed() => return,
        }
        while host.since_activity() < window {
            // Another process waiting for this core gets it; then the runtime polls its
            // sockets (without sleeping) before it runs this task again.
            std::thread::yield_now();
            tokio::task::yield_now().await;
        }
    }
}

/// Feeds the node its deadlines: sleeps until the next one, or until it moves earlier.
async fn run_timer(host: Arc<Host>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let deadline = host.poll_timeout().map(|ms| host.instant_at(ms));
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => host.drive("timer", |node, now_ms| node.handle_timeout(now_ms)),
            _ = host.deadline_moved.notified() => {}
            _ = shutdown.changed() => return,
        }
    }
}
