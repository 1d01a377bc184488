//! The [`Lambda`] executor.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_lambda::error::{DisplayErrorContext, SdkError};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{InvocationType, LogType};
use base64::Engine;
use crucial_dso::core::auth::Token;
use crucial_dso::{Dso, Server, ServerBuilder};
use rand::{Rng, SeedableRng};

use crate::executor::{BoxFuture, ConnectedDso, DsoTarget, Executor, InvokeOptions, ThreadIds};
use crate::invocation::{Invocation, Report};
use crate::worker::decode_stored;
use crate::DsoAccess;
use crate::{ThreadError, ThreadId};

/// How the executor invokes the function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `RequestResponse`: waits for the function; the report is the response.
    RequestResponse,
    /// `Event`: queued invocation; the handler stores the report in the thread's DSO future,
    /// which the executor waits on.
    Event,
}

/// Builds a [`Lambda`] executor.
#[derive(Debug)]
pub struct LambdaBuilder {
    function: String,
    endpoint: Option<String>,
    mode: Mode,
    dso: DsoTarget,
    job: Option<u64>,
    request_bytes_max_sync: usize,
    request_bytes_max_async: usize,
    response_bytes_max: usize,
    throttled_retries: u32,
    members_in_invocations: bool,
}

impl LambdaBuilder {
    /// Invoke the function `function` (name or ARN).
    pub fn new(function: impl Into<String>) -> Self {
        LambdaBuilder {
            function: function.into(),
            endpoint: None,
            mode: Mode::RequestResponse,
            dso: DsoTarget::default(),
            job: None,
            request_bytes_max_sync: 6 << 20,
            request_bytes_max_async: 1 << 20,
            response_bytes_max: 6 << 20,
            throttled_retries: 6,
            members_in_invocations: true,
        }
    }

    /// Let the functions find the DSO in their `CRUCIAL_DSO` environment variable instead of
    /// naming the members in every invocation (for functions whose network sees the cluster
    /// under other addresses than the invoker does).
    pub fn dso_from_function_environment(mut self) -> Self {
        self.members_in_invocations = false;
        self
    }

    /// Send Invoke requests to `endpoint` (an emulator, e.g. `http://127.0.0.1:9000`).
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// The invocation mode (default `RequestResponse`).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// The DSO cluster's members, as the functions reach them.
    pub fn dso(mut self, members: Vec<String>) -> Self {
        self.dso.members = Some(members);
        self
    }

    /// The token the DSO cluster requires. It travels in each invocation's payload (never in
    /// a log line of this crate), unless the functions find the DSO in their environment
    /// ([`LambdaBuilder::dso_from_function_environment`]), where `CRUCIAL_DSO_TOKEN` holds it.
    /// The runtime's log of each payload stays off in functions that set up their logs with
    /// [`super::init_logging`]; `Event` invocations keep their payloads in AWS's queue, so
    /// prefer the environment for those.
    pub fn dso_token(mut self, token: Token) -> Self {
        self.dso.access.token = Some(token);
        self
    }

    /// Everything the DSO cluster requires (token, TLS trust, `insecure`; replaces a
    /// [`LambdaBuilder::dso_token`]). It travels in each invocation's payload (the TLS trust is
    /// the CA's certificates and a name, no secret), unless the functions find the DSO in their
    /// environment, where `CRUCIAL_DSO_TOKEN`, `CRUCIAL_DSO_TLS_CA` (the CA's PEM text) and
    /// `CRUCIAL_DSO_TLS_NAME` hold it.
    pub fn dso_access(mut self, access: DsoAccess) -> Self {
        self.dso.access = access;
        self
    }

    /// Start this server on a free loopback port and let the functions use it (for emulators
    /// running on this machine).
    pub fn embedded_server(mut self, server: ServerBuilder) -> Self {
        self.dso.server = Some(server);
        self
    }

    /// Thread ids of job `job`; a random job otherwise.
    pub fn job(mut self, job: u64) -> Self {
        self.job = Some(job);
        self
    }

    /// Payload limits in bytes: requests in `RequestResponse` mode, requests in `Event` mode,
    /// responses (defaults: Lambda's 6 MB, 1 MB and 6 MB).
    pub fn payload_limits(mut self, request_sync: usize, request_async: usize, response: usize) -> Self {
        (self.request_bytes_max_sync, self.request_bytes_max_async, self.response_bytes_max) =
            (request_sync, request_async, response);
        self
    }

    /// How many throttled Invokes in a row are tried again before the thread fails with
    /// [`ThreadError::Throttled`] (default 6).
    pub fn throttled_retries(mut self, retries: u32) -> Self {
        self.throttled_retries = retries;
        self
    }

    /// Builds the AWS client (credentials and region from the standard chain) and connects to
    /// the DSO.
    pub async fn start(self) -> Result<Lambda, ThreadError> {
        let ConnectedDso { members, control, embedded, access } = self.dso.connect().await?;
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .retry_config(aws_config::retry::RetryConfig::disabled());
        if let Some(endpoint) = &self.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let client = aws_sdk_lambda::Client::new(&loader.load().await);
        let inner = LambdaInner {
            client,
            function: self.function,
            mode: self.mode,
            members,
            control,
            ids: self.job.map_or_else(ThreadIds::random, ThreadIds::new),
            request_bytes_max: match self.mode {
                Mode::RequestResponse => self.request_bytes_max_sync,
                Mode::Event => self.request_bytes_max_async,
            },
            response_bytes_max: self.response_bytes_max,
            throttled_retries: self.throttled_retries,
            members_in_invocations: self.members_in_invocations,
            _embedded: embedded,
            access,
        };
        Ok(Lambda { inner: Arc::new(inner) })
    }
}

/// Runs cloud threads as AWS Lambda invocations of one handler function ([`super::serve`]).
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct Lambda {
    inner: Arc<LambdaInner>,
}

impl Lambda {
    /// Settings for invoking `function`.
    pub fn builder(function: impl Into<String>) -> LambdaBuilder {
        LambdaBuilder::new(function)
    }
}

#[derive(Debug)]
struct LambdaInner {
    client: aws_sdk_lambda::Client,
    function: String,
    mode: Mode,
    members: Vec<String>,
    control: Dso,
    ids: ThreadIds,
    request_bytes_max: usize,
    response_bytes_max: usize,
    throttled_retries: u32,
    members_in_invocations: bool,
    _embedded: Option<Server>,
    access: DsoAccess,
}

/// What one Invoke request came to.
enum Sent {
    /// The function ran (or, in `Event` mode, was queued): its response.
    Done(aws_sdk_lambda::operation::invoke::InvokeOutput),
    /// Refused for lack of capacity: try again later.
    Throttled(String),
}

impl LambdaInner {
    async fn invoke(&self, invocation: Invocation, options: InvokeOptions) -> Result<Report, ThreadError> {
        let thread = invocation.thread;
        let payload = serde_json::to_vec(&invocation).map_err(|error| ThreadError::BadInput {
            name: invocation.name.clone(),
            reason: error.to_string(),
        })?;
        if payload.len() > self.request_bytes_max {
            return Err(too_large(thread, "request", payload.len(), self.request_bytes_max));
        }
        let mut throttled = 0;
        let output = loop {
            let sent =
                tokio::time::timeout(options.timeout + Duration::from_secs(5), self.send(thread, &payload))
                    .await
                    .map_err(|_| timed_out(thread, options.timeout))??;
            match sent {
                Sent::Done(output) => break output,
                Sent::Throttled(reason) if throttled >= self.throttled_retries => {
                    return Err(ThreadError::Throttled {
                        thread: thread.to_string(),
                        attempts: throttled + 1,
                        reason,
                    })
                }
                Sent::Throttled(reason) => {
                    throttled += 1;
                    let pause = backoff(throttled);
                    tracing::info!(%thread, %reason, ?pause, "throttled; trying again");
                    tokio::time::sleep(pause).await;
                }
            }
        };
        if let Some(kind) = output.function_error() {
            let body = output.payload().map(|body| body.as_ref()).unwrap_or_default();
            return Err(function_error(thread, &format!("function error ({kind})"), body));
        }
        match self.mode {
            Mode::RequestResponse => self.read_response(thread, &output),
            Mode::Event => self.await_event(thread, options.timeout).await,
        }
    }

    /// One Invoke request.
    async fn send(&self, thread: ThreadId, payload: &[u8]) -> Result<Sent, ThreadError> {
        let (invocation_type, log_type) = match self.mode {
            Mode::RequestResponse => (InvocationType::RequestResponse, LogType::Tail),
            Mode::Event => (InvocationType::Event, LogType::None),
        };
        let request = (self.client.invoke())
            .function_name(&self.function)
            .invocation_type(invocation_type)
            .log_type(log_type)
            .payload(Blob::new(payload));
        match request.send().await {
            Ok(output) => Ok(Sent::Done(output)),
            Err(SdkError::ServiceError(failure)) => {
                let status = failure.raw().status().as_u16();
                if status == 429 || failure.err().is_too_many_requests_exception() {
                    return Ok(Sent::Throttled(format!("HTTP {status}: {}", failure.err())));
                }
                // Emulators answer a function's error with HTTP 500 and the error as the body.
                match failure.raw().body().bytes() {
                    Some(body) if !body.is_empty() => {
                        Err(function_error(thread, &format!("HTTP {status}"), body))
                    }
                    _ => Err(invocation_failed(thread, format!("HTTP {status}: {}", failure.err()))),
                }
            }
            Err(error) => Err(invocation_failed(thread, DisplayErrorContext(&error).to_string())),
        }
    }

    /// The report in a `RequestResponse` answer, with the function's log tail.
    fn read_response(
        &self,
        thread: ThreadId,
        output: &aws_sdk_lambda::operation::invoke::InvokeOutput,
    ) -> Result<Report, ThreadError> {
        let body = output.payload().map(|blob| blob.as_ref()).unwrap_or_default();
        if body.len() > self.response_bytes_max {
            return Err(too_large(thread, "response", body.len(), self.response_bytes_max));
        }
        let mut report: Report = serde_json::from_slice(body)
            .map_err(|error| invocation_failed(thread, format!("the response is not a report: {error}")))?;
        if let Some(tail) = output.log_result() {
            let decoded = base64::engine::general_purpose::STANDARD.decode(tail).unwrap_or_default();
            report
                .logs
                .extend(String::from_utf8_lossy(&decoded).lines().map(|line| format!("[lambda] {line}")));
        }
        Ok(report)
    }

    /// Waits for the report an `Event` invocation stores in the thread's future.
    async fn await_event(&self, thread: ThreadId, timeout: Duration) -> Result<Report, ThreadError> {
        let future = self.control.future(thread.result_key());
        let value = (future.get(Some(timeout.as_millis() as u64)).await)
            .map_err(|error| ThreadError::DsoUnavailable { reason: error.to_string() })?
            .map_err(|_| timed_out(thread, timeout))?;
        decode_stored(thread, value)
            .map(|report| Report { stored: false, ..report })
            .map_err(|error| invocation_failed(thread, error.to_string()))
    }
}

impl Executor for Lambda {
    fn invoke(
        &self,
        invocation: Invocation,
        options: InvokeOptions,
    ) -> BoxFuture<'static, Result<Report, ThreadError>> {
        let inner = self.inner.clone();
        Box::pin(async move { inner.invoke(invocation, options).await })
    }

    fn dso_members(&self) -> Vec<String> {
        match self.inner.members_in_invocations {
            true => self.inner.members.clone(),
            false => Vec::new(),
        }
    }

    fn dso_access(&self) -> DsoAccess {
        match self.inner.members_in_invocations {
            true => self.inner.access.clone(),
            false => DsoAccess::default(),
        }
    }

    fn next_thread_id(&self) -> ThreadId {
        self.inner.ids.next()
    }

    fn dso(&self) -> &Dso {
        &self.inner.control
    }
}

/// The pause before throttled try `attempt` (from 1): 100 ms doubling up to 6.4 s, with full
/// jitter so that throttled threads do not come back in step.
fn backoff(attempt: u32) -> Duration {
    let ceiling_ms = 100u64 << attempt.min(6);
    let mut rng = rand::rngs::SmallRng::from_os_rng();
    Duration::from_millis(rng.random_range(ceiling_ms / 2..=ceiling_ms))
}

fn too_large(thread: ThreadId, what: &str, size: usize, limit: usize) -> ThreadError {
    ThreadError::PayloadTooLarge { thread: thread.to_string(), what: what.into(), size, limit }
}

fn timed_out(thread: ThreadId, timeout: Duration) -> ThreadError {
    ThreadError::TimedOut { thread: thread.to_string(), after_ms: timeout.as_millis() as u64 }
}

/// The error a function error's body stands for: the [`ThreadError`] the handler sent, or an
/// invocation failure with the provider's words.
fn function_error(thread: ThreadId, context: &str, body: &[u8]) -> ThreadError {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct FunctionError {
        error_type: String,
        error_message: String,
    }
    match serde_json::from_slice::<FunctionError>(body) {
        Ok(error) if error.error_type == super::handler::THREAD_ERROR_TYPE => {
            serde_json::from_str(&error.error_message)
                .unwrap_or_else(|_| invocation_failed(thread, format!("{context}: {}", error.error_message)))
        }
        Ok(error) => {
            invocation_failed(thread, format!("{context}: {}: {}", error.error_type, error.error_message))
        }
        Err(_) => invocation_failed(thread, format!("{context}: {}", String::from_utf8_lossy(body))),
    }
}

fn invocation_failed(thread: ThreadId, reason: String) -> ThreadError {
    ThreadError::Invocation { thread: thread.to_string(), reason }
}
