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
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::client::{ClientConfig, Dso};
use crate::codec::FRAME_BYTES_MAX_DEFAULT;
use crate::host::Host;
use crate::node::{Node, NodeConfig};
use crate::object::{SharedObject, DECODE_BYTES_MAX};
use crate::registry::Registry;
use crate::DsoError;

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
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: BIND_DEFAULT.parse().expect("valid default address"),
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            connections_max: 10_000,
            node: NodeConfig::default(),
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

    /// Binds and starts serving.
    pub async fn start(self) -> std::io::Result<Server> {
        let invalid = |reason: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, reason);
        let node = Node::new(self.config.node.clone(), Arc::new(self.registry)).map_err(invalid)?;
        if !(64..=DECODE_BYTES_MAX).contains(&self.config.frame_bytes_max) {
            let bytes = self.config.frame_bytes_max;
            return Err(invalid(format!("frame_bytes_max {bytes} is not in 64..={DECODE_BYTES_MAX}")));
        }
        let listener = TcpListener::bind(self.config.bind).await?;
        let local_addr = listener.local_addr()?;
        let host = Arc::new(Host::new(node, self.config.frame_bytes_max));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let connections_max = u32::try_from(self.config.connections_max)
            .ok()
            .filter(|max| (1..=1 << 20).contains(max))
            .ok_or_else(|| {
                invalid(format!("connections_max {} is not in 1..=2^20", self.config.connections_max))
            })?;
        let connections = Arc::new(Semaphore::new(connections_max as usize));
        let timer = tokio::spawn(run_timer(host.clone(), shutdown_rx.clone()));
        let accept = tokio::spawn(accept_loop(listener, host, connections, connections_max, shutdown_rx));
        tracing::info!(%local_addr, "dso server listening");
        Ok(Server { local_addr, shutdown, tasks: vec![accept, timer] })
    }
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
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

    /// A client connected to this server with default settings.
    pub async fn connect(&self) -> Result<Dso, DsoError> {
        Dso::connect_with(self.local_addr.to_string(), ClientConfig::default()).await
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

/// Feeds the node its deadlines: sleeps until the next one, or until it moves earlier.
async fn run_timer(host: Arc<Host>, mut shutdown: watch::Receiver<bool>) {
    let mut no_frames = Vec::new();
    loop {
        let deadline = host.poll_timeout().map(|ms| host.instant_at(ms));
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => host.drive(0, &mut no_frames, |node, now_ms| node.handle_timeout(now_ms)),
            _ = host.deadline_moved.notified() => {}
            _ = shutdown.changed() => return,
        }
        debug_assert!(no_frames.is_empty(), "address 0 is never a connection");
    }
}
