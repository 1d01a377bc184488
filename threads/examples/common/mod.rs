//! What every example application shares: its command line (`--executor`, `--threads`,
//! `--dso`) and the executor it asks for.

#![allow(dead_code)]

use std::sync::Arc;

use crucial_threads::{Executor, Local, ThreadError};

/// Where the cloud threads run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExecutorKind {
    /// In-process tasks (each with its own DSO session).
    Local,
    /// AWS Lambda (or an emulator at `--lambda-endpoint`); build with `--features lambda`.
    Lambda,
    /// Simulated serverless nodes with faults, under madsim: build with
    /// `cargo simrun -p crucial-threads --features sim --example NAME -- --executor sim`
    /// (`MADSIM_TEST_SEED=N` picks the seed).
    Sim,
}

/// The options every application takes.
#[derive(Clone, Debug, clap::Args)]
pub struct RunArgs {
    /// Where the cloud threads run.
    #[arg(long, value_enum, default_value_t = ExecutorKind::Local)]
    pub executor: ExecutorKind,
    /// How many cloud threads.
    #[arg(long, default_value_t = 8)]
    pub threads: usize,
    /// `embedded` (a DSO server in this process) or the members of a DSO cluster
    /// (`HOST:PORT,...`) that knows the application's object types.
    #[arg(long, default_value = "embedded")]
    pub dso: String,
    /// The Lambda function that runs the handler (`lambda` executor).
    #[arg(long, default_value = "crucial-lambda-handler")]
    pub function: String,
    /// The Lambda API endpoint, for emulators such as `cargo lambda watch` (`lambda` executor).
    #[arg(long)]
    pub lambda_endpoint: Option<String>,
    /// Invoke and wait for the response, or invoke asynchronously and take the result from
    /// the DSO (`lambda` executor).
    #[arg(long, value_enum, default_value = "request-response")]
    pub invocation: InvocationMode,
    /// Re-invocations allowed per thread after a crash, timeout or throttling.
    #[arg(long, default_value_t = 5)]
    pub retries: u32,
    /// At most this many threads run at once, the next starting as one finishes (a Lambda
    /// account's concurrency quota; applications whose threads wait for each other need at
    /// least their thread count). All at once if not given.
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// A file holding the token of the cluster given with `--dso` (`DSO_TOKEN` otherwise, if
    /// set); threads get it in their invocations.
    #[arg(long)]
    pub dso_token_file: Option<std::path::PathBuf>,
    /// The CA certificate (PEM) of the cluster given with `--dso`: connect over TLS, checking
    /// the members' certificates against it; threads get it in their invocations.
    #[arg(long)]
    pub dso_ca: Option<std::path::PathBuf>,
    /// The name the members' certificates are issued for (with `--dso-ca`).
    #[arg(long, default_value = crucial_threads::dso::tls::TLS_NAME_DEFAULT)]
    pub dso_tls_name: String,
}

/// How the `lambda` executor invokes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InvocationMode {
    /// `RequestResponse`: the result comes in the response.
    RequestResponse,
    /// `Event`: the handler puts the result in a DSO future.
    Event,
}

impl RunArgs {
    /// The executor asked for, with an embedded server that knows the applications' types when
    /// `--dso embedded`.
    pub async fn executor(&self) -> Result<Arc<dyn Executor>, ThreadError> {
        match self.executor {
            ExecutorKind::Local => {
                let builder = match self.dso.as_str() {
                    "embedded" => Local::builder().embedded_server(super::apps::server()),
                    members => Local::builder().dso(members.split(',').map(str::to_string).collect()),
                };
                Ok(Arc::new(builder.dso_access(self.dso_access()?).start().await?))
            }
            ExecutorKind::Lambda => self.lambda().await,
            ExecutorKind::Sim => self.simulated().await,
        }
    }

    /// What the cluster given with `--dso` requires: the token and the TLS trust, if given.
    pub fn dso_access(&self) -> Result<crucial_threads::DsoAccess, ThreadError> {
        use crucial_threads::dso::core::auth::Token;
        use crucial_threads::dso::tls::TlsTrust;
        let unusable =
            |what: &str, reason: String| ThreadError::DsoUnavailable { reason: format!("{what}: {reason}") };
        let token = match (&self.dso_token_file, std::env::var("DSO_TOKEN")) {
            (Some(path), _) => {
                Some(std::fs::read_to_string(path).map_err(|e| unusable("--dso-token-file", e.to_string()))?)
            }
            (None, Ok(token)) => Some(token),
            (None, Err(_)) => None,
        };
        let token = token
            .map(|text| Token::new(text.trim_end()).map_err(|e| unusable("the DSO token", e.to_string())))
            .transpose()?;
        let tls = match &self.dso_ca {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| unusable("--dso-ca", e.to_string()))?;
                Some(
                    TlsTrust::from_pem(&pem, &self.dso_tls_name)
                        .map_err(|e| unusable("--dso-ca", e.to_string()))?,
                )
            }
            None => None,
        };
        Ok(crucial_threads::DsoAccess { token, tls, insecure: false })
    }

    /// The settings every thread of the application gets.
    pub fn builder(&self) -> crucial_threads::Builder {
        let mut builder = crucial_threads::Builder::default().retries(self.retries);
        if let Some(threads) = self.concurrency {
            builder = builder.concurrency(threads);
        }
        match self.executor {
            ExecutorKind::Sim => builder
                .timeout(std::time::Duration::from_secs(60))
                .backup_after(std::time::Duration::from_secs(20)),
            _ => builder,
        }
    }

    /// A simulated DSO server node and the simulated executor (faults from the seed).
    #[cfg(madsim)]
    async fn simulated(&self) -> Result<Arc<dyn Executor>, ThreadError> {
        use crucial_threads::simulated::{ServerlessFaults, Simulated};
        let handle = madsim::runtime::Handle::current();
        let addr = std::net::SocketAddr::from(([192, 0, 2, 1], 11222));
        handle.create_node().name("dso").ip(addr.ip()).build().spawn(async move {
            // A simulated private network: no token.
            let server = super::apps::server()
                .bind(addr)
                .insecure()
                .start()
                .await
                .expect("the simulated server starts");
            server.wait().await;
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let executor =
            Simulated::start(vec![addr.to_string()], ServerlessFaults::default(), handle.seed()).await?;
        eprintln!("simulated serverless faults, seed {} (MADSIM_TEST_SEED replays it)", handle.seed());
        Ok(Arc::new(executor))
    }

    #[cfg(not(madsim))]
    async fn simulated(&self) -> Result<Arc<dyn Executor>, ThreadError> {
        Err(ThreadError::Invocation {
            thread: String::new(),
            reason:
                "the simulated executor runs under madsim: `cargo simrun -p crucial-threads --features sim \
                     --example NAME -- --executor sim`"
                    .into(),
        })
    }

    #[cfg(feature = "lambda")]
    async fn lambda(&self) -> Result<Arc<dyn Executor>, ThreadError> {
        use crucial_threads::lambda::{Lambda, Mode};
        let mode = match self.invocation {
            InvocationMode::RequestResponse => Mode::RequestResponse,
            InvocationMode::Event => Mode::Event,
        };
        let mut builder = Lambda::builder(&self.function).mode(mode);
        if let Some(endpoint) = &self.lambda_endpoint {
            builder = builder.endpoint(endpoint);
        }
        builder = match self.dso.as_str() {
            "embedded" => builder.embedded_server(super::apps::server()),
            members => builder.dso(members.split(',').map(str::to_string).collect()),
        };
        Ok(Arc::new(builder.dso_access(self.dso_access()?).start().await?))
    }

    #[cfg(not(feature = "lambda"))]
    async fn lambda(&self) -> Result<Arc<dyn Executor>, ThreadError> {
        Err(ThreadError::Invocation {
            thread: String::new(),
            reason: "this build has no Lambda executor: build with `--features crucial-threads/lambda`"
                .into(),
        })
    }
}

/// Runs the application where the executor can reach the network: under madsim, on a
/// simulated invoker node (the simulation's main node has no address); otherwise here.
pub async fn run_app<F, Fut>(app: F) -> Fut::Output
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    #[cfg(madsim)]
    {
        let invoker = madsim::runtime::Handle::current()
            .create_node()
            .name("invoker")
            .ip([192, 0, 2, 2].into())
            .build();
        invoker.spawn(app()).await.expect("the invoker node runs to the end")
    }
    #[cfg(not(madsim))]
    {
        app().await
    }
}

/// Logs to stderr as `RUST_LOG` says (warnings by default).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

/// A run id for key prefixes, distinct per run.
pub fn run_id(app: &str) -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{app}.{nanos:x}")
}
