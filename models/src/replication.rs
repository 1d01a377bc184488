//! Stateright models of a replicated DSO cluster, built from the real sans-IO [`Node`] (replica,
//! membership, session table), the real [`ClientSession`] and a compare-and-swap store actor.
//!
//! - [`Scenario::Crash`]: three members (rf 3), clients calling one `AtomicLong`, a nemesis
//!   that crashes up to `crashes` members and reports each crash to the others (a perfect
//!   failure detector whose reports the network may lose); survivors reconfigure through the
//!   store and take over.
//! - [`Scenario::Replace`]: two members (rf 2); a third joins (state transfer) and the first
//!   leaves while clients call.
//! - [`Scenario::Minority`]: two members (rf 2); the first crashes (`rf - 1` crashes of `rf`
//!   members) and only then does a third start and join. The survivor alone is a minority: it
//!   must not remove the dead member (it cannot tell death from its own deafness), so the key
//!   stalls until the joiner makes the live members a majority, and then serves again.
//! - [`Scenario::CutJoiner`]: two members (rf 2) serve while a third, cut from both of them
//!   (not from the store: a member the others removed under a partition, starting over), asks
//!   to join. It must probe first and never propose: a join the members cannot complete
//!   would stop them from serving for nothing.
//!
//! The key is created by its first call. With [`ReplicationConfig::cas`], each client starts
//! with a compare-and-set (non-commutative: the first to apply wins) instead of an add.
//!
//! Properties: every history linearizable; no acknowledged update missing from any replica
//! serving the store's active configuration; no member removed by a minority (in
//! [`Scenario::Minority`], the dead member stays listed until the joiner is); no unreachable
//! joiner listed (in [`Scenario::CutJoiner`]); and, so that the
//! model is not vacuous, sometimes every call answered and sometimes the membership changed as
//! the scenario intends.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use crucial_dso_core::client_session::{ClientSession, RetryDecision, SessionConfig};
use crucial_dso_core::cluster::{Configuration, Member, MemberId};
use crucial_dso_core::node::{Canary, ClusterTiming, Node, NodeConfig, Output};
use crucial_dso_core::object::{CallId, Operation, SharedObject};
use crucial_dso_core::objects::{AtomicLong, AtomicLongOp, AtomicLongRet};
use crucial_dso_core::protocol::{Action, Call, PeerMessage};
use crucial_dso_core::registry::Registry;
use crucial_dso_core::session::CallResult;
use stateright::actor::{Actor, ActorModel, Envelope, Id, LossyNetwork, Network, Out};
use stateright::semantics::{ConsistencyTester, LinearizabilityTester};
use stateright::Expectation;

use crate::single_node::ObjectSpec;

/// What happens to the membership while clients call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Three members; up to `crashes` of them crash and the survivors reconfigure.
    Crash,
    /// Two members; a third joins and the first leaves.
    Replace,
    /// Two members; the first crashes, then a third starts and joins.
    Minority,
    /// Two members serve; a third, cut from both (but not from the store), asks to join.
    CutJoiner,
}

/// The model's size and its deliberate bugs.
#[derive(Clone, Debug)]
pub struct ReplicationConfig {
    /// What happens to the membership.
    pub scenario: Scenario,
    /// Client actors.
    pub clients: usize,
    /// Operations per client (`add_and_get` of a distinct bit, then `get`, alternating).
    pub ops_per_client: usize,
    /// Each client's first operation is a compare-and-set from 0 to its bit instead of an
    /// add: only the first to apply succeeds, so the order of the clients' calls matters.
    pub cas: bool,
    /// Crashes the nemesis may inject ([`Scenario::Crash`]).
    pub crashes: usize,
    /// Whether the network may drop messages.
    pub lossy: bool,
    /// Links deliver in order and once each (as TCP does) instead of in any order, any number
    /// of times. Random walks need it: they end at the first repeated state, which
    /// redeliveries cause, and their counterexamples are rebuilt by replaying, which needs the
    /// network's deterministic order.
    pub fifo: bool,
    /// Number every message in the history, so that no state repeats: random walks, which end
    /// at the first repeated state, then go past idle polling loops (breadth-first search
    /// must leave it off, or no two paths ever meet).
    pub count_steps: bool,
    /// Deliberate bugs in the members.
    pub canary: Canary,
}

impl ReplicationConfig {
    /// The operations client `client` performs, in order: each add sets its own bit, so the
    /// value tells exactly which adds a replica holds.
    pub fn script(&self, client: usize) -> Vec<AtomicLongOp> {
        (0..self.ops_per_client)
            .map(|index| {
                let bit = 1 << (client * self.ops_per_client + index);
                match index % 2 {
                    0 if index == 0 && self.cas => AtomicLongOp::CompareAndSet { expected: 0, update: bit },
                    0 => AtomicLongOp::AddAndGet { delta: bit },
                    _ => AtomicLongOp::Get {},
                }
            })
            .collect()
    }

    /// Members of the first configuration (the rest join later).
    fn initial_members(&self) -> Vec<Member> {
        let count = match self.scenario {
            Scenario::Crash => 3,
            Scenario::Replace | Scenario::Minority | Scenario::CutJoiner => 2,
        };
        (0..count).map(member).collect()
    }

    /// The first configuration: every initial member holds every key.
    fn initial_config(&self) -> Configuration {
        let members = self.initial_members();
        let rf = members.len();
        Configuration::initial(members, rf)
    }

    /// The key every client calls: one whose primary in the scenario's first configuration is
    /// member 0, the clients' first seed, so that a first call needs no redirect (the bounded
    /// search's depth goes to replication; redirects come with crashes and replacements).
    pub fn key(&self) -> &'static str {
        match self.scenario {
            Scenario::Crash => "counter-2",
            Scenario::Replace | Scenario::Minority | Scenario::CutJoiner => "counter",
        }
    }

    /// Whether the scenario's membership change happened in `config`.
    fn changed(&self, config: &Configuration) -> bool {
        config.is_active()
            && match self.scenario {
                Scenario::Crash => config.members.len() < MEMBERS,
                Scenario::Replace | Scenario::Minority => config.is_member(2) && !config.is_member(0),
                // Nothing changes: the members go on serving.
                Scenario::CutJoiner => !config.is_member(2),
            }
    }

    /// Whether `config` could only come from a minority removing members: in
    /// [`Scenario::Minority`], the survivor dropping the dead member before the joiner is listed.
    fn removed_by_a_minority(&self, config: &Configuration) -> bool {
        self.scenario == Scenario::Minority && !config.is_member(0) && !config.is_member(2)
    }

    /// Whether `config` lists a joiner that no member can reach ([`Scenario::CutJoiner`]).
    fn lists_an_unreachable_joiner(&self, config: &Configuration) -> bool {
        self.scenario == Scenario::CutJoiner && config.is_member(CUT_JOINER as MemberId)
    }

    /// The members whose messages member `index` never receives: in [`Scenario::CutJoiner`],
    /// the joiner and the others are cut from each other.
    fn cut_from(&self, index: usize) -> Vec<usize> {
        match (self.scenario, index) {
            (Scenario::CutJoiner, CUT_JOINER) => (0..MEMBERS).filter(|m| *m != CUT_JOINER).collect(),
            (Scenario::CutJoiner, _) => vec![CUT_JOINER],
            _ => Vec::new(),
        }
    }

    /// The model checker's view: actors, network, properties, history recording.
    pub fn into_model(self) -> ActorModel<ClusterActor, ReplicationConfig, History> {
        let network =
            if self.fifo { Network::new_ordered([]) } else { Network::new_unordered_duplicating([]) };
        let lossy = if self.lossy { LossyNetwork::Yes } else { LossyNetwork::No };
        let node = NodeConfig { canary: self.canary.clone(), ..NodeConfig::default() };
        let registry = Arc::new(Registry::default());
        let initial = self.initial_config();
        let mut model = ActorModel::new(self.clone(), History::default());
        for index in 0..MEMBERS {
            let joins_later = index >= initial.members.len();
            let config = (!joins_later).then(|| initial.clone());
            model = model.actor(ClusterActor::Member {
                member: member(index),
                rf: initial.rf,
                node: node.clone(),
                registry: registry.clone(),
                initial: config,
                dormant: joins_later && self.scenario == Scenario::Minority,
                cut_from: self.cut_from(index),
                count_ticks: self.count_steps,
            });
        }
        model = model.actor(ClusterActor::Store { initial: initial.clone() });
        model = model.actor(ClusterActor::Nemesis { scenario: self.scenario, crashes: self.crashes });
        for client in 0..self.clients {
            model = model.actor(ClusterActor::Client {
                script: self.script(client),
                initial: initial.clone(),
                key: self.key(),
            });
        }
        model
            .init_network(network)
            .lossy_network(lossy)
            .property(Expectation::Always, "linearizable", |_, state| {
                state.history.tester.serialized_history().is_some()
            })
            .property(Expectation::Always, "no acknowledged update lost", |model, state| {
                let key = model.cfg.key();
                let ClusterState::Store(Some(stored)) = &*state.actor_states[STORE] else { return true };
                let mask = state.history.acknowledged_adds;
                !stored.is_active()
                    || state.actor_states.iter().all(|actor| match &**actor {
                        ClusterState::Member { node, .. }
                            if node.is_serving() && node.configuration() == stored =>
                        {
                            counter_value(node, key).is_none_or(|value| value & mask == mask)
                        }
                        _ => true,
                    })
            })
            .property(Expectation::Always, "no member removed by a minority", |model, state| {
                let ClusterState::Store(Some(stored)) = &*state.actor_states[STORE] else { return true };
                !model.cfg.removed_by_a_minority(stored)
            })
            .property(Expectation::Always, "no unreachable joiner listed", |model, state| {
                let ClusterState::Store(Some(stored)) = &*state.actor_states[STORE] else { return true };
                !model.cfg.lists_an_unreachable_joiner(stored)
            })
            .property(Expectation::Sometimes, "every call answered", |model, state| {
                state.actor_states.iter().all(|actor| match &**actor {
                    ClusterState::Client { next, pending, .. } => {
                        pending.is_none() && *next == model.cfg.ops_per_client
                    }
                    _ => true,
                })
            })
            .property(
                Expectation::Sometimes,
                "every call answered after the membership changed",
                |model, state| {
                    let ClusterState::Store(Some(stored)) = &*state.actor_states[STORE] else { return false };
                    let done = state.actor_states.iter().all(|actor| match &**actor {
                        ClusterState::Client { next, pending, .. } => {
                            pending.is_none() && *next == model.cfg.ops_per_client
                        }
                        _ => true,
                    });
                    done && model.cfg.changed(stored)
                },
            )
            .record_msg_out(record_invocation)
            .record_msg_in(record_return)
    }
}

/// Members are actors `0..MEMBERS` (member id = actor id), then the store, the nemesis and
/// the clients (session id = actor id).
const MEMBERS: usize = 3;
const STORE: usize = MEMBERS;
const FIRST_CLIENT: usize = MEMBERS + 2;
/// The joiner of [`Scenario::CutJoiner`].
const CUT_JOINER: usize = 2;

fn member(index: usize) -> Member {
    Member { id: index as MemberId, addr: format!("member-{index}") }
}

/// The counter's value at a member, if it holds the key.
fn counter_value(node: &Node, key: &str) -> Option<i64> {
    let object = node.object(key)?;
    object.0.as_any().downcast_ref::<AtomicLong>().map(AtomicLong::get)
}

/// The linearizability tester, which call each client waits for, which adds were acknowledged.
#[derive(Clone, Debug, Default, Hash, PartialEq)]
pub struct History {
    /// Invocations and returns seen so far.
    pub tester: LinearizabilityTester<Id, ObjectSpec<AtomicLong>>,
    /// Per client: the sequence number of its call in flight.
    pub waiting: BTreeMap<Id, u64>,
    /// The bits of every acknowledged `add_and_get` and successful `compare_and_set`.
    pub acknowledged_adds: i64,
    /// Messages so far, if [`ReplicationConfig::count_steps`].
    pub steps: u64,
}

impl History {
    /// This history after one more message (if steps are counted).
    fn step(&self, cfg: &ReplicationConfig) -> Option<History> {
        cfg.count_steps.then(|| History { steps: self.steps + 1, ..self.clone() })
    }
}

/// A message of the model.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Message {
    /// A client's call.
    Call(Call),
    /// A member's answer.
    Reply(CallId, CallResult),
    /// A member does not serve the key: the configuration it serves in.
    Redirect(CallId, Configuration),
    /// Between members.
    Peer(PeerMessage),
    /// Read the store.
    Load,
    /// Compare-and-swap on the store.
    Propose(Option<Configuration>, Configuration),
    /// The store's record.
    Stored(Option<Configuration>),
    /// Nemesis to member: you are dead.
    Crash,
    /// Nemesis to member: this member died (a failure detector's report).
    Suspect(MemberId),
    /// Nemesis to member: leave the cluster gracefully.
    Leave,
    /// Nemesis to a dormant member: start (and join).
    Start,
}

/// The actors: members, the store, the nemesis, clients.
#[derive(Clone)]
pub enum ClusterActor {
    /// A member (the real node).
    Member {
        /// Its identity.
        member: Member,
        /// The copies it asks for.
        rf: usize,
        /// Its limits and canaries.
        node: NodeConfig,
        /// Its object types.
        registry: Arc<Registry>,
        /// The configuration it starts in (`None`: it joins).
        initial: Option<Configuration>,
        /// It starts only when the nemesis says so ([`Message::Start`]).
        dormant: bool,
        /// Members whose messages it never receives (a partition that lasts the whole run).
        cut_from: Vec<usize>,
        /// Count ticks in the state ([`ReplicationConfig::count_steps`]).
        count_ticks: bool,
    },
    /// The configuration store: a compare-and-swap register.
    Store {
        /// The first configuration.
        initial: Configuration,
    },
    /// Injects the scenario's membership changes.
    Nemesis {
        /// Which.
        scenario: Scenario,
        /// Crashes allowed.
        crashes: usize,
    },
    /// A client with its operations; it routes as the real client does (its session learns
    /// configurations from redirects only, starting from the members' addresses as seeds).
    Client {
        /// The operations, in order.
        script: Vec<AtomicLongOp>,
        /// The configuration whose members' addresses are its seeds.
        initial: Configuration,
        /// The key it calls.
        key: &'static str,
    },
}

/// An actor's state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClusterState {
    /// A running member, and its ticks so far (counted only with
    /// [`ReplicationConfig::count_steps`], so that an idle tick is a step too).
    Member {
        /// The node.
        node: Box<Node>,
        /// Ticks so far.
        ticks: u64,
    },
    /// A crashed member.
    Crashed,
    /// A member not started yet.
    Dormant,
    /// The store's record.
    Store(Option<Configuration>),
    /// The nemesis: crashes left.
    Nemesis(usize),
    /// A client.
    Client {
        /// Its session (which also routes its calls).
        session: Box<ClientSession>,
        /// Index of the next operation to start.
        next: usize,
        /// The call in flight and the resends it has left.
        pending: Option<(u64, u8)>,
    },
}

/// Timers: a member's tick, a client's resend, the nemesis acting on a member.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// A member's periodic chores.
    Tick,
    /// A client's resend.
    Resend,
    /// The nemesis acts on this member.
    Strike(usize),
}

/// Resends per call: enough to outlast a lost message and a failover, and for the resends
/// past [`crucial_dso_core::client_session::RESENDS_TO_PRIMARY`] to ask each other member
/// once (a client learns a configuration only from a redirect).
const RESENDS_MAX: u8 = 5;
const SESSION: SessionConfig =
    SessionConfig { resend_after_ms: 1, call_timeout_ms: None, in_flight_max: 1, retain_records: false };
/// Ticks carry heartbeats, resends, polls; suspicion comes only from the nemesis.
const TIMING: ClusterTiming =
    ClusterTiming { tick_ms: 1, suspect_after_ms: u64::MAX, poll_every_ticks: u64::MAX };

fn any_time() -> std::ops::Range<std::time::Duration> {
    std::time::Duration::from_millis(1)..std::time::Duration::from_millis(2)
}

impl ClusterActor {
    /// Carries out a member's outputs; member ids are actor ids.
    fn drain(node: &mut Node, o: &mut Out<Self>) {
        let store = Id::from(STORE);
        while let Some(output) = node.poll_output() {
            match output {
                Output::Reply { to, id, result } => o.send(Id::from(to as usize), Message::Reply(id, result)),
                Output::Redirect { to, id, config } => {
                    o.send(Id::from(to as usize), Message::Redirect(id, config))
                }
                Output::Send { to, message } => o.send(Id::from(to as usize), Message::Peer(message)),
                Output::LoadConfig => o.send(store, Message::Load),
                Output::Propose { current, next } => o.send(store, Message::Propose(current, next)),
                // A removed member holds nothing and stays quiet; the model does not restart it.
                Output::Removed => {}
            }
        }
        if node.poll_timeout().is_some() {
            o.set_timer(Timer::Tick, any_time());
        }
    }

    /// Starts a member's node: in its initial configuration, or joining.
    fn start_member(&self, o: &mut Out<Self>) -> ClusterState {
        let ClusterActor::Member { member, rf, node, registry, initial, .. } = self else {
            unreachable!("only members start nodes")
        };
        let mut state = Node::member(node.clone(), registry.clone(), member.clone(), *rf, TIMING)
            .expect("valid member config");
        if let Some(config) = initial {
            state.bootstrap(0, config.clone());
        }
        Self::drain(&mut state, o);
        ClusterState::Member { node: Box::new(state), ticks: 0 }
    }

    fn start_next(key: &str, script: &[AtomicLongOp], state: &mut ClusterState, o: &mut Out<Self>) {
        let ClusterState::Client { session, next, pending } = state else { return };
        let resends = RESENDS_MAX;
        let Some(op) = script.get(*next) else { return };
        let action = Action::Invoke { method: op.method().to_string(), args: op.encode_args() };
        let call = session
            .start_call(0, key.into(), AtomicLong::TYPE_NAME.into(), action)
            .expect("one call at a time")
            .clone();
        *next += 1;
        *pending = Some((call.id.seq, resends));
        for target in targets(session, call.id.seq) {
            o.send(target, Message::Call(call.clone()));
        }
        o.set_timer(Timer::Resend, any_time());
    }
}

/// The members the session sends call `seq` to next: its first target, and past the first
/// resends another member too (see [`ClientSession::targets`], [`ClientSession::also_ask`]).
fn targets(session: &ClientSession, seq: u64) -> Vec<Id> {
    let member = |addr: String| addr.strip_prefix("member-")?.parse::<usize>().ok().map(Id::from);
    let first = session.targets(seq).into_iter().next().and_then(member);
    let also = session.also_ask(seq).and_then(member).filter(|also| Some(*also) != first);
    first.into_iter().chain(also).collect()
}

impl Actor for ClusterActor {
    type Msg = Message;
    type State = ClusterState;
    type Timer = Timer;
    type Storage = ();
    type Random = ();

    fn on_start(&self, id: Id, _storage: &Option<()>, o: &mut Out<Self>) -> ClusterState {
        match self {
            ClusterActor::Member { dormant: true, .. } => ClusterState::Dormant,
            ClusterActor::Member { .. } => self.start_member(o),
            ClusterActor::Store { initial } => ClusterState::Store(Some(initial.clone())),
            ClusterActor::Nemesis { scenario, crashes } => {
                match scenario {
                    Scenario::Crash if *crashes > 0 => {
                        (0..MEMBERS).for_each(|m| o.set_timer(Timer::Strike(m), any_time()))
                    }
                    Scenario::Crash => {}
                    // Member 0 leaves (member 2 joins by itself at start), or crashes (and
                    // then member 2 starts).
                    Scenario::Replace | Scenario::Minority => o.set_timer(Timer::Strike(0), any_time()),
                    // The joiner starts by itself, cut off; nothing else happens.
                    Scenario::CutJoiner => {}
                }
                ClusterState::Nemesis(*crashes)
            }
            ClusterActor::Client { script, initial, key } => {
                let mut state = ClusterState::Client {
                    session: Box::new(
                        ClientSession::new(usize::from(id) as u64, SESSION)
                            .with_seeds(initial.members.iter().map(|member| member.addr.clone()).collect()),
                    ),
                    next: 0,
                    pending: None,
                };
                Self::start_next(key, script, &mut state, o);
                state
            }
        }
    }

    fn on_msg(&self, _id: Id, state: &mut Cow<ClusterState>, src: Id, msg: Message, o: &mut Out<Self>) {
        match (self, &**state, msg) {
            (ClusterActor::Member { .. }, ClusterState::Member { .. }, Message::Crash) => {
                *state.to_mut() = ClusterState::Crashed;
            }
            (ClusterActor::Member { .. }, ClusterState::Dormant, Message::Start) => {
                *state.to_mut() = self.start_member(o);
            }
            (ClusterActor::Member { cut_from, .. }, ClusterState::Member { .. }, _)
                if cut_from.contains(&usize::from(src)) => {}
            (ClusterActor::Member { .. }, ClusterState::Member { .. }, msg) => {
                let ClusterState::Member { node, .. } = state.to_mut() else { return };
                match msg {
                    Message::Call(call) => node.handle_request(0, usize::from(src) as u64, call),
                    Message::Peer(message) => node.handle_peer(0, usize::from(src) as MemberId, message),
                    Message::Stored(Some(config)) => node.handle_config(0, config),
                    Message::Stored(None) => node.handle_empty_store(),
                    Message::Suspect(member) => node.suspect(member),
                    Message::Leave => node.leave(),
                    _ => return,
                }
                Self::drain(node, o);
            }
            (ClusterActor::Store { .. }, ClusterState::Store(current), msg) => {
                let record = match msg {
                    Message::Load => current.clone(),
                    Message::Propose(expected, next) => {
                        if *current == expected && next.validate().is_ok() {
                            *state.to_mut() = ClusterState::Store(Some(next.clone()));
                            Some(next)
                        } else {
                            current.clone()
                        }
                    }
                    _ => return,
                };
                o.send(src, Message::Stored(record));
            }
            (ClusterActor::Client { script, key, .. }, ClusterState::Client { .. }, msg) => {
                let ClusterState::Client { session, pending, .. } = state.to_mut() else { return };
                match msg {
                    Message::Reply(id, result) => {
                        if !session.handle_reply(id, &result) {
                            return;
                        }
                        *pending = None;
                        o.cancel_timer(Timer::Resend);
                        Self::start_next(key, script, state.to_mut(), o);
                    }
                    Message::Redirect(id, config) => {
                        if !session.handle_redirect(id, config) {
                            return;
                        }
                        for call in session.unanswered() {
                            for target in targets(session, call.id.seq) {
                                o.send(target, Message::Call(call.clone()));
                            }
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    fn on_timeout(&self, _id: Id, state: &mut Cow<ClusterState>, timer: &Timer, o: &mut Out<Self>) {
        match (self, &**state, timer) {
            (ClusterActor::Member { count_ticks, .. }, ClusterState::Member { .. }, Timer::Tick) => {
                let ClusterState::Member { node, ticks } = state.to_mut() else { return };
                *ticks += u64::from(*count_ticks);
                let Some(now) = node.poll_timeout() else { return };
                node.handle_timeout(now);
                Self::drain(node, o);
            }
            (
                ClusterActor::Client { .. },
                ClusterState::Client { pending: Some((seq, left)), .. },
                Timer::Resend,
            ) => {
                let (seq, left) = (*seq, *left);
                if left == 0 {
                    return;
                }
                let ClusterState::Client { session, pending, .. } = state.to_mut() else { return };
                *pending = Some((seq, left - 1));
                // Each firing is one resend interval later in the session's clock.
                let now = 1_000 * u64::from(RESENDS_MAX - left + 1);
                if let RetryDecision::Resend(call) = session.handle_call_timeout(now, seq) {
                    for target in targets(session, seq) {
                        o.send(target, Message::Call(call.clone()));
                    }
                }
                if left > 1 {
                    o.set_timer(Timer::Resend, any_time());
                }
            }
            (ClusterActor::Nemesis { scenario, .. }, ClusterState::Nemesis(left), Timer::Strike(target)) => {
                match scenario {
                    Scenario::Crash => {
                        if *left == 0 {
                            return;
                        }
                        let left = *left - 1;
                        *state.to_mut() = ClusterState::Nemesis(left);
                        o.send(Id::from(*target), Message::Crash);
                        for other in (0..MEMBERS).filter(|m| m != target) {
                            o.send(Id::from(other), Message::Suspect(*target as MemberId));
                        }
                        if left == 0 {
                            for other in 0..MEMBERS {
                                o.cancel_timer(Timer::Strike(other));
                            }
                        }
                    }
                    Scenario::Replace => o.send(Id::from(*target), Message::Leave),
                    // Member 0 crashes and the survivor is told; then member 2 starts (and is
                    // told too: it would suspect member 0 by itself).
                    Scenario::Minority if *target == 0 => {
                        o.send(Id::from(0), Message::Crash);
                        o.send(Id::from(1), Message::Suspect(0));
                        o.set_timer(Timer::Strike(2), any_time());
                    }
                    Scenario::Minority => {
                        o.send(Id::from(*target), Message::Start);
                        o.send(Id::from(*target), Message::Suspect(0));
                    }
                    Scenario::CutJoiner => {}
                }
            }
            _ => {}
        }
    }
}

fn record_invocation(
    cfg: &ReplicationConfig,
    history: &History,
    envelope: Envelope<&Message>,
) -> Option<History> {
    let Message::Call(call) = envelope.msg else { return history.step(cfg) };
    if history.waiting.get(&envelope.src) == Some(&call.id.seq) {
        return history.step(cfg); // a resend: the operation is already in flight
    }
    let mut next = history.step(cfg).unwrap_or_else(|| history.clone());
    let client = call.id.session as usize - FIRST_CLIENT;
    let op = cfg.script(client).get(call.id.seq as usize - 1)?.clone();
    next.tester.on_invoke(envelope.src, op).ok()?;
    next.waiting.insert(envelope.src, call.id.seq);
    Some(next)
}

fn record_return(
    cfg: &ReplicationConfig,
    history: &History,
    envelope: Envelope<&Message>,
) -> Option<History> {
    let Message::Reply(id, Ok(bytes)) = envelope.msg else { return history.step(cfg) };
    if history.waiting.get(&envelope.dst) != Some(&id.seq) {
        return history.step(cfg); // a duplicate of an answer already taken
    }
    let mut next = history.step(cfg).unwrap_or_else(|| history.clone());
    let client = id.session as usize - FIRST_CLIENT;
    let op = cfg.script(client).get(id.seq as usize - 1)?.clone();
    let ret: AtomicLongRet = AtomicLong::decode_ret(op.method(), bytes).ok()?;
    next.tester.on_return(envelope.dst, ret.clone()).ok()?;
    next.waiting.remove(&envelope.dst);
    // The key is created by its first call; every update sets a distinct bit (a
    // compare-and-set only from 0), so a replica's value says which acknowledged updates it holds.
    match (op, ret) {
        (AtomicLongOp::AddAndGet { delta }, _) => next.acknowledged_adds |= delta,
        (AtomicLongOp::CompareAndSet { update, .. }, AtomicLongRet::CompareAndSet(true)) => {
            next.acknowledged_adds |= update
        }
        _ => {}
    }
    Some(next)
}
