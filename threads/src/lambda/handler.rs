//! The Lambda handler: [`serve`] runs in the function and serves every registered runnable.

use std::sync::Arc;

use crucial_dso::core::auth::Token;
use crucial_dso::tls::{TlsTrust, TLS_NAME_DEFAULT};
use crucial_dso::Dso;
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use tokio::sync::Mutex;

use crate::invocation::{Invocation, Report};
use crate::worker::{self, Hooks};
use crate::{DsoAccess, Registry, ThreadError};

/// The function's DSO client for stored results, kept while the function stays warm.
#[derive(Default)]
struct Control {
    connected: Mutex<Option<Connected>>,
}

/// The warm client, and the members and token it was made for.
struct Connected {
    members: Vec<String>,
    access: DsoAccess,
    dso: Dso,
}

impl Control {
    /// A client for `members` presenting `access`, reusing the warm one if it is for the same.
    async fn for_members(&self, members: &[String], access: DsoAccess) -> Result<Dso, ThreadError> {
        let mut connected = self.connected.lock().await;
        if let Some(known) = connected.as_ref() {
            if known.members == members && known.access == access {
                return Ok(known.dso.clone());
            }
        }
        let dso = crate::connect_control(members, &access).await?;
        *connected = Some(Connected { members: members.to_vec(), access, dso: dso.clone() });
        Ok(dso)
    }
}

/// Runs the Lambda handler: rebuilds each invocation's runnable by name, connects to the DSO
/// members named in the invocation (or in the `CRUCIAL_DSO` environment variable,
/// `HOST:PORT,...`, with the token in `CRUCIAL_DSO_TOKEN` if the cluster requires one), runs it, stores its result in the DSO and returns its report. Fails at
/// start-up if two runnables share a name. Call it from the function's `main`.
pub async fn serve() -> Result<(), lambda_runtime::Error> {
    Registry::global()?;
    let control = Arc::new(Control::default());
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let control = control.clone();
        async move { handle(&control, event.payload).await }
    }))
    .await
}

/// Runs one invocation. What keeps it from running at all (a payload that is no invocation, an
/// unreachable DSO) is a function error, so the provider reports it (and, for `Event`
/// invocations, retries it); a [`ThreadError`] travels as its JSON under
/// [`THREAD_ERROR_TYPE`].
async fn handle(control: &Control, payload: serde_json::Value) -> Result<serde_json::Value, Diagnostic> {
    let mut invocation: Invocation = serde_json::from_value(payload).map_err(|error| Diagnostic {
        error_type: "crucial_threads::BadPayload".into(),
        error_message: format!("the payload is not a cloud-thread invocation: {error}"),
    })?;
    if invocation.dso.is_empty() {
        let members = std::env::var("CRUCIAL_DSO").unwrap_or_default();
        invocation.dso = members.split(',').filter(|member| !member.is_empty()).map(str::to_string).collect();
    }
    if invocation.dso_token.is_none() {
        if let Ok(secret) = std::env::var("CRUCIAL_DSO_TOKEN") {
            invocation.dso_token = Some(Token::new(secret).map_err(|error| Diagnostic {
                error_type: "crucial_threads::BadToken".into(),
                error_message: format!("CRUCIAL_DSO_TOKEN: {error}"),
            })?);
        }
    }
    if invocation.dso_tls.is_none() {
        invocation.dso_tls = tls_from_environment()?;
    }
    let dso =
        control.for_members(&invocation.dso, invocation.dso_access()).await.map_err(|error| Diagnostic {
            error_type: THREAD_ERROR_TYPE.into(),
            error_message: serde_json::to_string(&error).expect("a thread error is plain data"),
        })?;
    let report: Report = worker::run(&dso, invocation, Hooks::default()).await.expect("no hook kills it");
    Ok(serde_json::to_value(&report).expect("a report is plain data"))
}

/// The TLS trust in `CRUCIAL_DSO_TLS_CA` (the CA's PEM text) and `CRUCIAL_DSO_TLS_NAME`
/// (default [`TLS_NAME_DEFAULT`]), if the CA is set.
fn tls_from_environment() -> Result<Option<TlsTrust>, Diagnostic> {
    let Ok(ca) = std::env::var("CRUCIAL_DSO_TLS_CA") else { return Ok(None) };
    let name = std::env::var("CRUCIAL_DSO_TLS_NAME").unwrap_or_else(|_| TLS_NAME_DEFAULT.to_string());
    TlsTrust::from_pem(ca.as_bytes(), &name).map(Some).map_err(|error| Diagnostic {
        error_type: "crucial_threads::BadTls".into(),
        error_message: format!("CRUCIAL_DSO_TLS_CA, CRUCIAL_DSO_TLS_NAME: {error}"),
    })
}

/// The `errorType` of a function error that carries a [`ThreadError`] as JSON.
pub(crate) const THREAD_ERROR_TYPE: &str = "crucial_threads::ThreadError";
