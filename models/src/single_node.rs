//! A stateright model of one DSO node and its clients, built from the real sans-IO [`Node`] and
//! [`ClientSession`]: clients call an `AtomicLong` over a network that may lose, duplicate and
//! reorder messages, resend unanswered calls, and the history must stay linearizable with
//! every call applied once. The `skip_deduplication` canary must be rejected.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use crucial_dso_core::client_session::{ClientSession, RetryDecision, SessionConfig};
use crucial_dso_core::node::{Canary, Node, NodeConfig, Output};
use crucial_dso_core::object::{ApplyContext, CallId, Operation, Outcome, SharedObject};
use crucial_dso_core::objects::{AtomicLong, AtomicLongOp, AtomicLongRet};
use crucial_dso_core::protocol::{Action, Call};
use crucial_dso_core::registry::Registry;
use crucial_dso_core::session::CallResult;
use stateright::actor::{Actor, ActorModel, Envelope, Id, LossyNetwork, Network, Out};
use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};
use stateright::Expectation;

/// The key every client calls.
const KEY: &str = "counter";

/// The model's size and its deliberate bugs.
#[derive(Clone, Debug)]
pub struct SingleNodeConfig {
    /// Client actors.
    pub clients: usize,
    /// Operations per client (alternating `add_and_get` and `get`).
    pub ops_per_client: usize,
    /// Resends allowed per call (each unanswered call's timer fires at most this often).
    pub resends_max: u8,
    /// Whether the network may drop messages.
    pub lossy: bool,
    /// Deliberate bugs in the node.
    pub canary: Canary,
}

impl SingleNodeConfig {
    /// The operations client `client` performs, in order.
    pub fn script(&self, client: usize) -> Vec<AtomicLongOp> {
        (0..self.ops_per_client)
            .map(|index| {
                if index % 2 == 0 {
                    AtomicLongOp::AddAndGet { delta: client as i64 + 1 }
                } else {
                    AtomicLongOp::Get {}
                }
            })
            .collect()
    }

    /// The model checker's view: actors, network, properties, history recording.
    pub fn into_model(self) -> ActorModel<DsoActor, SingleNodeConfig, History> {
        let network = Network::new_unordered_duplicating([]);
        let lossy = if self.lossy { LossyNetwork::Yes } else { LossyNetwork::No };
        let node = NodeConfig { canary: self.canary.clone(), ..NodeConfig::default() };
        let registry = Arc::new(Registry::default());
        let clients: Vec<_> = (0..self.clients)
            .map(|client| DsoActor::Client { script: self.script(client), resends_max: self.resends_max })
            .collect();
        ActorModel::new(self, History::default())
            .actor(DsoActor::Server { node, registry })
            .actors(clients)
            .init_network(network)
            .lossy_network(lossy)
            .property(Expectation::Always, "linearizable", |_, state| {
                state.history.tester.serialized_history().is_some()
            })
            .property(Expectation::Sometimes, "every call answered", |model, state| {
                state.actor_states.iter().skip(1).all(|actor| match &**actor {
                    ActorState::Client { next, pending, .. } => {
                        pending.is_none() && *next == model.cfg.ops_per_client
                    }
                    ActorState::Server(_) => true,
                })
            })
            .record_msg_out(record_invocation)
            .record_msg_in(record_return)
    }
}

/// The linearizability tester plus which call each client is waiting for (so a duplicate of an
/// old answer is not taken for the current one).
#[derive(Clone, Debug, Default, Hash, PartialEq)]
pub struct History {
    /// Invocations and returns seen so far.
    pub tester: LinearizabilityTester<Id, ObjectSpec<AtomicLong>>,
    /// Per client: the sequence number of its call in flight.
    pub waiting: BTreeMap<Id, u64>,
}

/// A DSO object's own `apply` as stateright's sequential specification (calls that complete).
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq)]
pub struct ObjectSpec<T>(pub T);

impl<T: SharedObject> SequentialSpec for ObjectSpec<T> {
    type Op = T::Op;
    type Ret = T::Ret;

    fn invoke(&mut self, op: &T::Op) -> T::Ret {
        let mut ctx = ApplyContext::new(CallId { session: 0, seq: 0 });
        match self.0.apply(op.clone(), &mut ctx) {
            Outcome::Done(ret) => ret,
            Outcome::Parked { .. } => unreachable!("the model only uses calls that complete"),
        }
    }
}

/// A message of the model.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Message {
    /// A client's call.
    Call(Call),
    /// The node's answer.
    Reply(CallId, CallResult),
}

/// The node or a client.
#[derive(Clone)]
pub enum DsoActor {
    /// The node, built from this configuration.
    Server {
        /// Its limits and canaries.
        node: NodeConfig,
        /// Its object types.
        registry: Arc<Registry>,
    },
    /// A client with its operations.
    Client {
        /// The operations, in order.
        script: Vec<AtomicLongOp>,
        /// Resends allowed per call.
        resends_max: u8,
    },
}

/// An actor's state: the real node, or a client's real session.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ActorState {
    /// The node.
    Server(Box<Node>),
    /// A client.
    Client {
        /// Its session.
        session: Box<ClientSession>,
        /// Index of the next operation to start.
        next: usize,
        /// The call in flight and the resends it has left.
        pending: Option<(u64, u8)>,
    },
}

/// The client's resend timer.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Resend;

/// The node is actor 0; clients are actors 1.. (their session ids).
fn server() -> Id {
    Id::from(0)
}
const SESSION: SessionConfig =
    SessionConfig { resend_after_ms: 1, call_timeout_ms: None, in_flight_max: 1, retain_records: false };

impl DsoActor {
    fn start_next(script: &[AtomicLongOp], resends_max: u8, state: &mut ActorState, o: &mut Out<Self>) {
        let ActorState::Client { session, next, pending } = state else { return };
        let Some(op) = script.get(*next) else { return };
        let action = Action::Invoke { method: op.method().to_string(), args: op.encode_args() };
        let call = session
            .start_call(0, KEY.into(), AtomicLong::TYPE_NAME.into(), action)
            .expect("one call at a time")
            .clone();
        *next += 1;
        *pending = Some((call.id.seq, resends_max));
        o.send(server(), Message::Call(call));
        if resends_max > 0 {
            o.set_timer(Resend, model_timeout());
        }
    }
}

fn model_timeout() -> std::ops::Range<std::time::Duration> {
    std::time::Duration::from_millis(1)..std::time::Duration::from_millis(2)
}

impl Actor for DsoActor {
    type Msg = Message;
    type State = ActorState;
    type Timer = Resend;
    type Storage = ();
    type Random = ();

    fn on_start(&self, id: Id, _storage: &Option<()>, o: &mut Out<Self>) -> ActorState {
        match self {
            DsoActor::Server { node, registry } => ActorState::Server(Box::new(
                Node::new(node.clone(), registry.clone()).expect("valid node config"),
            )),
            DsoActor::Client { script, resends_max } => {
                let mut state = ActorState::Client {
                    session: Box::new(ClientSession::new(usize::from(id) as u64, SESSION)),
                    next: 0,
                    pending: None,
                };
                Self::start_next(script, *resends_max, &mut state, o);
                state
            }
        }
    }

    fn on_msg(&self, _id: Id, state: &mut Cow<ActorState>, src: Id, msg: Message, o: &mut Out<Self>) {
        match (self, msg) {
            (DsoActor::Server { .. }, Message::Call(call)) => {
                let ActorState::Server(node) = state.to_mut() else { return };
                node.handle_request(0, usize::from(src) as u64, call);
                while let Some(Output::Reply { to, id, result }) = node.poll_output() {
                    o.send(Id::from(to as usize), Message::Reply(id, result));
                }
            }
            (DsoActor::Client { script, resends_max }, Message::Reply(id, result)) => {
                let ActorState::Client { session, .. } = &**state else { return };
                if !session.clone().handle_reply(id, &result) {
                    return;
                }
                let state = state.to_mut();
                if let ActorState::Client { session, pending, .. } = state {
                    session.handle_reply(id, &result);
                    *pending = None;
                }
                o.cancel_timer(Resend);
                Self::start_next(script, *resends_max, state, o);
            }
            _ => {}
        }
    }

    fn on_timeout(&self, _id: Id, state: &mut Cow<ActorState>, _timer: &Resend, o: &mut Out<Self>) {
        let ActorState::Client { pending: Some((seq, resends_left)), .. } = &**state else { return };
        if *resends_left == 0 {
            return;
        }
        let (seq, resends_left) = (*seq, *resends_left - 1);
        let ActorState::Client { session, pending, .. } = state.to_mut() else { return };
        *pending = Some((seq, resends_left));
        // Each firing is one resend interval later in the session's clock.
        let now = 1_000 * u64::from(u8::MAX - resends_left);
        if let RetryDecision::Resend(call) = session.handle_call_timeout(now, seq) {
            o.send(server(), Message::Call(call));
        }
        if resends_left > 0 {
            o.set_timer(Resend, model_timeout());
        }
    }
}

fn record_invocation(
    cfg: &SingleNodeConfig,
    history: &History,
    envelope: Envelope<&Message>,
) -> Option<History> {
    let Message::Call(call) = envelope.msg else { return None };
    if history.waiting.get(&envelope.src) == Some(&call.id.seq) {
        return None; // a resend: the operation is already in flight
    }
    let op = cfg.script(call.id.session as usize - 1).get(call.id.seq as usize - 1)?.clone();
    let mut next = history.clone();
    next.tester.on_invoke(envelope.src, op).ok()?;
    next.waiting.insert(envelope.src, call.id.seq);
    Some(next)
}

fn record_return(cfg: &SingleNodeConfig, history: &History, envelope: Envelope<&Message>) -> Option<History> {
    let Message::Reply(id, Ok(bytes)) = envelope.msg else { return None };
    if history.waiting.get(&envelope.dst) != Some(&id.seq) {
        return None; // a duplicate of an answer already taken
    }
    let op = cfg.script(id.session as usize - 1).get(id.seq as usize - 1)?.clone();
    let ret: AtomicLongRet = AtomicLong::decode_ret(op.method(), bytes).ok()?;
    let mut next = history.clone();
    next.tester.on_return(envelope.dst, ret).ok()?;
    next.waiting.remove(&envelope.dst);
    Some(next)
}
