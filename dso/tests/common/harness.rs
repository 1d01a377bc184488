//! A deterministic in-memory cluster of sans-IO nodes for regression tests of the protocol:
//! the test decides which peer messages arrive, which members reach the store, and when time
//! passes. No threads, sockets or sleeps.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use crucial_dso::cluster::{Configuration, Member, MemberId, Placement};
use crucial_dso::core::node::{ClusterTiming, Node, NodeConfig, Output};
use crucial_dso::core::object::{CallId, Operation};
use crucial_dso::core::protocol::{Action, Call, PeerMessage};
use crucial_dso::core::registry::Registry;
use crucial_dso::core::session::CallResult;
use crucial_dso::objects::CounterOp;

/// Ticks every 10 ms, suspects after 100 ms.
pub const TIMING: ClusterTiming = ClusterTiming { tick_ms: 10, suspect_after_ms: 100, poll_every_ticks: 1 };

/// A peer message in flight.
#[derive(Clone, Debug)]
pub struct InFlight {
    pub from: MemberId,
    pub to: MemberId,
    pub message: PeerMessage,
}

/// The cluster, its store and its network.
pub struct Harness {
    pub registry: Arc<Registry>,
    pub config: NodeConfig,
    pub rf: usize,
    pub nodes: BTreeMap<MemberId, Node>,
    pub store: Option<Configuration>,
    pub now_ms: u64,
    pub network: VecDeque<InFlight>,
    /// Members whose store requests are lost.
    pub store_cut: BTreeSet<MemberId>,
    /// Peer links `(from, to)` that lose every message.
    pub cut: BTreeSet<(MemberId, MemberId)>,
    pub replies: Vec<(CallId, CallResult)>,
    pub removed: Vec<MemberId>,
}

impl Harness {
    /// `members` (ids 1..=members) in one active configuration with `rf` copies.
    pub fn new(members: u64, rf: usize) -> Self {
        Self::with_config(members, rf, NodeConfig::default())
    }

    /// Like [`Harness::new`], every member with `config`.
    pub fn with_config(members: u64, rf: usize, config: NodeConfig) -> Self {
        Self::with_registry(members, rf, config, Arc::new(Registry::default()))
    }

    /// Like [`Harness::with_config`], every member knowing the types of `registry`.
    pub fn with_registry(members: u64, rf: usize, config: NodeConfig, registry: Arc<Registry>) -> Self {
        let mut harness = Harness {
            registry,
            config,
            rf,
            nodes: BTreeMap::new(),
            store: None,
            now_ms: 0,
            network: VecDeque::new(),
            store_cut: BTreeSet::new(),
            cut: BTreeSet::new(),
            replies: Vec::new(),
            removed: Vec::new(),
        };
        let listed = (1..=members).map(member).collect();
        harness.store = Some(Configuration::initial(listed, rf));
        for id in 1..=members {
            let node = Node::member(harness.config.clone(), harness.registry.clone(), member(id), rf, TIMING)
                .expect("valid node");
            harness.nodes.insert(id, node);
            let first = harness.stored().clone();
            harness.nodes.get_mut(&id).expect("inserted").bootstrap(0, first);
            harness.drain(id);
        }
        harness.run_until_quiet();
        harness
    }

    /// Starts a new, empty member under `id` (a restart under the same id if it ran before).
    pub fn start(&mut self, id: MemberId) {
        let node = Node::member(self.config.clone(), self.registry.clone(), member(id), self.rf, TIMING)
            .expect("valid node");
        self.nodes.insert(id, node);
        self.drain(id);
    }

    /// Starts `node` (built by the test) and carries out its first outputs.
    pub fn start_node(&mut self, node: Node) {
        let id = node.id();
        self.nodes.insert(id, node);
        self.drain(id);
    }

    /// Kills member `id` (its state is gone).
    pub fn crash(&mut self, id: MemberId) {
        self.nodes.remove(&id);
    }

    /// The stored configuration.
    pub fn stored(&self) -> &Configuration {
        self.store.as_ref().expect("bootstrapped")
    }

    /// A key whose replicas in `config` are exactly `replicas`, in order.
    pub fn key_placed(config: &Configuration, replicas: &[MemberId]) -> String {
        let placement = Placement::new(config);
        (0..100_000)
            .map(|i| format!("key-{i}"))
            .find(|key| placement.replicas(key) == replicas)
            .expect("some key is placed so")
    }

    /// Sends `call` from client 7 to member `to` and processes its outputs.
    pub fn call(&mut self, to: MemberId, call: Call) {
        let now = self.now_ms;
        if let Some(node) = self.nodes.get_mut(&to) {
            node.handle_request(now, 7, call);
        }
        self.drain(to);
    }

    /// Adds `delta` to the counter `key` through its primary (session `session`, call 1) and
    /// checks the write was acknowledged.
    pub fn acknowledged_add(&mut self, session: u64, key: &str, delta: i64) {
        let write = add(session, 1, key, delta);
        let primary = Placement::new(self.stored()).primary(key);
        self.call(primary, write.clone());
        self.run_until_quiet();
        assert!(matches!(self.answer(write.id), Some(Ok(_))), "the write to {key} is acknowledged");
    }

    /// Delivers the network's messages for which `keep` holds (the others are lost) until no
    /// message is left.
    pub fn deliver(&mut self, mut keep: impl FnMut(&InFlight) -> bool) {
        let mut rounds = 0;
        while let Some(message) = self.network.pop_front() {
            rounds += 1;
            assert!(rounds < 1_000_000, "the cluster never quiets down");
            if self.cut.contains(&(message.from, message.to)) || !keep(&message) {
                continue;
            }
            let now = self.now_ms;
            if let Some(node) = self.nodes.get_mut(&message.to) {
                node.handle_peer(now, message.from, message.message);
                self.drain(message.to);
            }
        }
    }

    /// Delivers everything.
    pub fn run_until_quiet(&mut self) {
        self.deliver(|_| true);
    }

    /// Lets `ms` pass tick by tick, delivering every message (`keep` filters them).
    pub fn advance(&mut self, ms: u64, mut keep: impl FnMut(&InFlight) -> bool) {
        let end = self.now_ms + ms;
        while self.now_ms < end {
            self.now_ms += 1;
            let due: Vec<MemberId> = (self.nodes.iter())
                .filter(|(_, node)| node.poll_timeout().is_some_and(|at| at <= self.now_ms))
                .map(|(id, _)| *id)
                .collect();
            for id in due {
                let now = self.now_ms;
                if let Some(node) = self.nodes.get_mut(&id) {
                    node.handle_timeout(now);
                }
                self.drain(id);
            }
            self.deliver(&mut keep);
        }
    }

    /// Carries out member `id`'s outputs; the store answers at once.
    pub fn drain(&mut self, id: MemberId) {
        let mut removed = false;
        loop {
            let Some(node) = self.nodes.get_mut(&id) else { return };
            let Some(output) = node.poll_output() else { break };
            match output {
                Output::Reply { id: call, result, .. } => self.replies.push((call, result)),
                Output::Redirect { .. } => {}
                Output::Send { to, message } => self.network.push_back(InFlight { from: id, to, message }),
                Output::LoadConfig => self.answer_from_store(id),
                Output::Propose { current, next } => {
                    if self.store_cut.contains(&id) {
                        continue;
                    }
                    if self.store == current && next.validate().is_ok() {
                        self.store = Some(next);
                    }
                    self.answer_from_store(id);
                }
                // Every output goes out, as a host flushes them, before the member stops.
                Output::Removed => removed = true,
            }
        }
        if removed {
            self.nodes.remove(&id);
            self.removed.push(id);
        }
    }

    fn answer_from_store(&mut self, id: MemberId) {
        if self.store_cut.contains(&id) {
            return;
        }
        let now = self.now_ms;
        let Some(node) = self.nodes.get_mut(&id) else { return };
        match self.store.clone() {
            Some(record) => node.handle_config(now, record),
            None => node.handle_empty_store(),
        }
    }

    /// The answer to call `id`, if it arrived.
    pub fn answer(&self, id: CallId) -> Option<&CallResult> {
        self.replies.iter().rev().find(|(call, _)| *call == id).map(|(_, result)| result)
    }

    /// Every pair of serving replicas of a key in the stored (active) configuration that hold
    /// different versions or shards of it: `(key, replica, primary)`.
    pub fn disagreements(&self) -> Vec<(String, MemberId, MemberId)> {
        let config = self.stored();
        assert!(config.is_active(), "agreement is checked in an active configuration");
        let placement = Placement::new(config);
        let keys: BTreeSet<String> =
            self.nodes.values().flat_map(|node| node.held_keys().map(str::to_string)).collect();
        let mut found = Vec::new();
        for key in keys {
            let replicas = placement.replicas(&key);
            let held =
                |id: &MemberId| self.nodes.get(id).filter(|node| node.is_serving()).map(|n| n.replica(&key));
            let Some(primary) = held(&replicas[0]) else { continue };
            for backup in &replicas[1..] {
                if let Some(copy) = held(backup) {
                    if copy != primary {
                        found.push((key.clone(), *backup, replicas[0]));
                    }
                }
            }
        }
        found
    }
}

/// Member `id` at address `m{id}`.
pub fn member(id: MemberId) -> Member {
    Member { id, addr: format!("m{id}") }
}

/// Call `seq` of `session` (every earlier one answered) doing `action` on the `type_name` at
/// `key`.
pub fn call(session: u64, seq: u64, key: &str, type_name: &str, action: Action) -> Call {
    Call {
        id: CallId { session, seq },
        acked_below: seq,
        key: key.into(),
        type_name: type_name.into(),
        action,
        history: 0,
    }
}

/// The action invoking `op`.
pub fn invoke(op: impl Operation) -> Action {
    Action::Invoke { method: op.method().to_string(), args: op.encode_args() }
}

/// A counter call: `add(delta)`.
pub fn add(session: u64, seq: u64, key: &str, delta: i64) -> Call {
    call(session, seq, key, "Counter", invoke(CounterOp::Add { delta }))
}

/// A counter read.
pub fn get(session: u64, seq: u64, key: &str) -> Call {
    call(session, seq, key, "Counter", invoke(CounterOp::Get {}))
}
