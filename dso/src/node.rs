//! The sans-IO node: holds the objects and the session table and executes calls.
//!
//! Inputs: [`Node::handle_request`], [`Node::handle_timeout`], [`Node::handle_disconnect`].
//! Outputs: drain [`Node::poll_output`] after every input; ask [`Node::poll_timeout`] for the
//! next deadline. No clock, socket or randomness inside: time is the `now_ms` argument (any
//! monotonic millisecond count the host chooses), so the simulator, the model checker and the
//! async server run exactly this code.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use crate::object::{encode, CallId};
use crate::protocol::{Action, Call, ClientAddr};
use crate::registry::{ObjectBox, Registry};
use crate::session::{Admission, CallRecord, CallResult, SessionTable};
use crate::CallError;

/// Limits of one node. Every bound is here, checked by [`NodeConfig::validate`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeConfig {
    /// Unacknowledged calls one session may have recorded (its pipelining window).
    pub session_calls_max: usize,
    /// Sessions held before the least recently used one is evicted.
    pub sessions_max: usize,
    /// Longest key.
    pub key_bytes_max: usize,
    /// Deliberate bugs for checkers to catch; all off by default.
    #[cfg(feature = "canary")]
    pub canary: Canary,
}

/// Deliberate bugs, compiled only with the `canary` feature, that checkers must catch.
#[cfg(feature = "canary")]
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Canary {
    /// Apply every call, retries included, as if new: breaks exactly-once.
    pub skip_deduplication: bool,
    /// Answer read-only calls from a copy of the objects refreshed only every few calls:
    /// breaks linearizability (stale reads).
    pub stale_reads: bool,
    /// Drop parked calls' timeouts when they fall due: breaks liveness (timed waits hang).
    pub drop_timeouts: bool,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            session_calls_max: 4096,
            sessions_max: 1 << 20,
            key_bytes_max: 4096,
            #[cfg(feature = "canary")]
            canary: Canary::default(),
        }
    }
}

impl NodeConfig {
    /// Checks that every limit is usable.
    pub fn validate(&self) -> Result<(), String> {
        if self.session_calls_max == 0 || self.sessions_max == 0 || self.key_bytes_max == 0 {
            return Err("session_calls_max, sessions_max and key_bytes_max must be positive".into());
        }
        Ok(())
    }
}

/// An effect the host must carry out.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Output {
    /// Send this answer to this client.
    Reply {
        /// The client.
        to: ClientAddr,
        /// The call answered.
        id: CallId,
        /// Its result.
        result: CallResult,
    },
}

/// What applying a method did to its caller.
enum Applied {
    Done(Vec<u8>),
    Parked { timeout_ms: Option<u64> },
}

/// A parked call: where its object lives and when it times out.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Parked {
    key: String,
    deadline_ms: Option<u64>,
}

/// The node's replicated state: objects, sessions, parked calls. Hashable for model checking.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
struct NodeState {
    objects: BTreeMap<String, ObjectBox>,
    sessions: SessionTable,
    parked: BTreeMap<CallId, Parked>,
    /// Parked calls with a timeout, by deadline.
    deadlines: BTreeSet<(u64, CallId)>,
}

/// One DSO node. Nodes compare and hash by everything but their registry (which types they
/// know, fixed at construction), so a model checker can tell their states apart.
#[derive(Clone, Debug)]
pub struct Node {
    config: NodeConfig,
    registry: Arc<Registry>,
    state: NodeState,
    /// Where to send each parked call's answer (volatile: not part of the replicated state).
    routes: BTreeMap<CallId, ClientAddr>,
    outputs: VecDeque<Output>,
    /// The stale copy the `stale_reads` canary answers reads from, and calls since its refresh.
    #[cfg(feature = "canary")]
    stale: (BTreeMap<String, ObjectBox>, u64),
}

impl PartialEq for Node {
    fn eq(&self, other: &Self) -> bool {
        self.config == other.config
            && self.state == other.state
            && self.routes == other.routes
            && self.outputs == other.outputs
    }
}

impl Eq for Node {}

impl std::hash::Hash for Node {
    fn hash<H: std::hash::Hasher>(&self, hasher: &mut H) {
        (&self.config, &self.state, &self.routes, &self.outputs).hash(hasher);
    }
}

impl Node {
    /// A node with no objects that knows the types in `registry`.
    pub fn new(config: NodeConfig, registry: Arc<Registry>) -> Result<Self, String> {
        config.validate()?;
        Ok(Self {
            config,
            registry,
            state: NodeState::default(),
            routes: BTreeMap::new(),
            outputs: VecDeque::new(),
            #[cfg(feature = "canary")]
            stale: (BTreeMap::new(), 0),
        })
    }

    /// The next deadline at which [`Node::handle_timeout`] has work, if any.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.state.deadlines.first().map(|(deadline, _)| *deadline)
    }

    /// The next effect to carry out.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// A call from client `from`.
    pub fn handle_request(&mut self, now_ms: u64, from: ClientAddr, call: Call) {
        let id = call.id;
        if call.key.len() > self.config.key_bytes_max {
            let error = CallError::TooLarge {
                what: "key".into(),
                size: call.key.len(),
                limit: self.config.key_bytes_max,
            };
            self.reply(from, id, Err(error));
            return;
        }
        match self.admit(&call) {
            Admission::Apply => self.on_new_call(now_ms, from, call),
            Admission::Answered(result) => self.reply(from, id, result),
            Admission::StillParked => {
                self.routes.insert(id, from);
            }
            Admission::Stale => {
                self.reply(from, id, Err(CallError::StaleCall { session: id.session, seq: id.seq }))
            }
            Admission::Full => {
                self.reply(from, id, Err(CallError::TooManyInFlight { limit: self.config.session_calls_max }))
            }
        }
        self.check_invariants();
    }

    /// Time has advanced to `now_ms`: parked calls whose deadline passed get their timeout answer.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        while let Some(&(deadline, id)) = self.state.deadlines.first() {
            if deadline > now_ms {
                break;
            }
            self.state.deadlines.pop_first();
            #[cfg(feature = "canary")]
            if self.config.canary.drop_timeouts {
                if let Some(parked) = self.state.parked.get_mut(&id) {
                    parked.deadline_ms = None;
                }
                continue;
            }
            self.on_parked_timeout(id);
        }
        self.check_invariants();
    }

    /// Client `from` went away: its parked calls stay parked but have nowhere to be answered
    /// until the client retries them.
    pub fn handle_disconnect(&mut self, from: ClientAddr) {
        self.routes.retain(|_, to| *to != from);
    }

    fn admit(&mut self, call: &Call) -> Admission {
        #[cfg(feature = "canary")]
        if self.config.canary.skip_deduplication {
            return Admission::Apply;
        }
        self.state.sessions.admit(
            call.id,
            call.acked_below,
            self.config.session_calls_max,
            self.config.sessions_max,
        )
    }

    fn on_new_call(&mut self, now_ms: u64, from: ClientAddr, call: Call) {
        let id = call.id;
        let result = match call.action {
            Action::Create { state } => self.create(call.key, &call.type_name, &state),
            Action::Invoke { method, args } => {
                match self.invoke(id, &call.key, &call.type_name, &method, &args) {
                    Ok(Applied::Done(result)) => Ok(result),
                    Ok(Applied::Parked { timeout_ms }) => {
                        self.park(now_ms, from, id, call.key, timeout_ms);
                        return;
                    }
                    Err(error) => Err(error),
                }
            }
        };
        self.state.sessions.record(id, CallRecord::Done(result.clone()));
        self.reply(from, id, result);
    }

    fn create(&mut self, key: String, type_name: &str, state: &[u8]) -> CallResult {
        if let Some(existing) = self.state.objects.get(&key) {
            return match existing.0.type_name() {
                stored if stored == type_name => Ok(encode(&false)),
                stored => {
                    Err(CallError::TypeMismatch { key, stored: stored.into(), requested: type_name.into() })
                }
            };
        }
        let object = self.registry.create(type_name, state)?;
        self.state.objects.insert(key, object);
        Ok(encode(&true))
    }

    /// Applies a method and completes the calls it wakes.
    fn invoke(
        &mut self,
        id: CallId,
        key: &str,
        type_name: &str,
        method: &str,
        args: &[u8],
    ) -> Result<Applied, CallError> {
        #[cfg(feature = "canary")]
        if let Some(stale) = self.stale_read(id, key, type_name, method, args) {
            return stale;
        }
        let outcome = match self.state.objects.get_mut(key) {
            Some(object) if object.0.type_name() != type_name => {
                return Err(CallError::TypeMismatch {
                    stored: object.0.type_name().into(),
                    key: key.into(),
                    requested: type_name.into(),
                })
            }
            Some(object) => object.0.apply_encoded(id, method, args)?,
            None => {
                let Some(mut object) = self.registry.create_default(type_name)? else {
                    return Err(CallError::NoSuchObject { key: key.into(), type_name: type_name.into() });
                };
                let outcome = object.0.apply_encoded(id, method, args)?;
                self.state.objects.insert(key.into(), object);
                outcome
            }
        };
        for (waiter, result) in outcome.wakeups {
            self.complete_parked(waiter, Ok(result));
        }
        Ok(match outcome.result {
            Some(result) => Applied::Done(result),
            None => Applied::Parked { timeout_ms: outcome.timeout_ms },
        })
    }

    /// The `stale_reads` canary: answers a read-only call from the stale copy.
    #[cfg(feature = "canary")]
    fn stale_read(
        &mut self,
        id: CallId,
        key: &str,
        type_name: &str,
        method: &str,
        args: &[u8],
    ) -> Option<Result<Applied, CallError>> {
        const REFRESH_CALLS: u64 = 8;
        if !self.config.canary.stale_reads {
            return None;
        }
        self.stale.1 += 1;
        if self.stale.1.is_multiple_of(REFRESH_CALLS) {
            self.stale.0 = self.state.objects.clone();
        }
        let object = self.stale.0.get_mut(key).filter(|object| object.0.type_name() == type_name)?;
        if !object.0.is_read_only_call(method, args) {
            return None;
        }
        Some(object.0.apply_encoded(id, method, args).map(|outcome| match outcome.result {
            Some(result) => Applied::Done(result),
            None => Applied::Parked { timeout_ms: outcome.timeout_ms },
        }))
    }

    fn park(&mut self, now_ms: u64, from: ClientAddr, id: CallId, key: String, timeout_ms: Option<u64>) {
        let deadline_ms = timeout_ms.map(|timeout| now_ms.saturating_add(timeout));
        // Only a node applying a call twice (the de-duplication canary) parks an id again.
        if let Some(Parked { deadline_ms: Some(old), .. }) = self.state.parked.get(&id) {
            self.state.deadlines.remove(&(*old, id));
        }
        if let Some(deadline) = deadline_ms {
            self.state.deadlines.insert((deadline, id));
        }
        self.state.parked.insert(id, Parked { key, deadline_ms });
        self.state.sessions.record(id, CallRecord::Parked);
        self.routes.insert(id, from);
    }

    fn on_parked_timeout(&mut self, id: CallId) {
        let Some(parked) = self.state.parked.get(&id) else { return };
        let object = self.state.objects.get_mut(&parked.key).expect("a parked call's object exists");
        let expired = object.0.expire_encoded(id);
        if let Some(answer) = expired.result {
            self.complete_parked(id, Ok(answer));
        }
        for (waiter, result) in expired.wakeups {
            self.complete_parked(waiter, Ok(result));
        }
    }

    fn complete_parked(&mut self, id: CallId, result: CallResult) {
        if let Some(Parked { deadline_ms: Some(deadline), .. }) = self.state.parked.remove(&id) {
            self.state.deadlines.remove(&(deadline, id));
        }
        self.state.sessions.record(id, CallRecord::Done(result.clone()));
        if let Some(to) = self.routes.remove(&id) {
            self.reply(to, id, result);
        }
    }

    fn reply(&mut self, to: ClientAddr, id: CallId, result: CallResult) {
        self.outputs.push_back(Output::Reply { to, id, result });
    }

    fn check_invariants(&self) {
        if cfg!(debug_assertions) {
            let timed = self.state.parked.values().filter(|parked| parked.deadline_ms.is_some()).count();
            assert_eq!(timed, self.state.deadlines.len(), "every timed parked call has one deadline");
        }
    }
}
