//! What travels to an invocation (an [`Invocation`], the function's input) and back from it (a
//! [`Report`], the function's output). Both are JSON, as a Lambda function's payloads are, and
//! every executor encodes them, so a type that cannot travel fails on the local executor too.

use serde::{Deserialize, Serialize};

use crate::access::DsoAccess;
use crate::{ThreadError, ThreadId};
use crucial_dso::core::auth::Token;
use crucial_dso::core::client_session::ReleasePoint;
use crucial_dso::tls::TlsTrust;

/// One invocation of a cloud thread.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Invocation {
    /// The thread.
    pub thread: ThreadId,
    /// The DSO session the thread's calls use: [`ThreadId::session`], the same for every
    /// invocation of the thread, which is what makes retries and duplicates replay.
    pub session: u64,
    /// 0 for the first invocation; retries and speculative duplicates count up.
    pub attempt: u32,
    /// The registered name of the runnable.
    pub name: String,
    /// The runnable, as JSON.
    pub input: serde_json::Value,
    /// DSO members to connect to (`HOST:PORT`); empty: the handler's `CRUCIAL_DSO` variable.
    #[serde(default)]
    pub dso: Vec<String>,
    /// The DSO's token, if it requires one; `None`: the handler's `CRUCIAL_DSO_TOKEN`
    /// variable, if set. Never shown: its `Debug` is redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dso_token: Option<Token>,
    /// Whom to trust over TLS, if the DSO serves it; `None`: the handler's
    /// `CRUCIAL_DSO_TLS_CA` and `CRUCIAL_DSO_TLS_NAME` variables, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dso_tls: Option<TlsTrust>,
    /// Whether the token may cross the network in clear text ([`crate::DsoAccess::insecure`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dso_insecure: bool,
}

impl Invocation {
    /// What the thread presents to the DSO.
    pub fn dso_access(&self) -> DsoAccess {
        DsoAccess { token: self.dso_token.clone(), tls: self.dso_tls.clone(), insecure: self.dso_insecure }
    }
}

/// How an invocation ended: the thread's output or why there is none, and its log lines.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The runnable's output as JSON, or the error.
    pub outcome: Result<serde_json::Value, ThreadError>,
    /// The thread's log lines ([`crate::Context::log`]).
    #[serde(default)]
    pub logs: Vec<String>,
    /// Whether the answer is the result an earlier invocation stored: the thread had already
    /// finished and this invocation did not run it.
    #[serde(default)]
    pub stored: bool,
    /// Where the thread's session stood when this outcome was stored: whichever invocation
    /// finds the outcome releases the thread's records from there, finishing what a killed one
    /// began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<ReleasePoint>,
}

impl Report {
    /// A report of an invocation that ran nothing and failed with `error`.
    pub fn error(error: ThreadError) -> Report {
        Report { outcome: Err(error), logs: Vec::new(), stored: false, records: None }
    }

    /// Encodes the report as its JSON payload.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a report is plain JSON data")
    }
}
