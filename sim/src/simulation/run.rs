//! The discrete-event loop: real [`Node`]s and [`ClientSession`]s driven on a simulated clock,
//! with a simulated network and the nemesis; records every client operation.

use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use crucial_dso::client_session::{ClientSession, RetryDecision, SessionConfig};
use crucial_dso::node::{Canary, Node, NodeConfig, Output};
use crucial_dso::object::CallId;
use crucial_dso::protocol::{Action, Call};
use crucial_dso::registry::Registry;
use crucial_dso::session::CallResult;

use super::nemesis::{schedule, Fault, FaultKind};
use super::rng::Rng;
use super::workload::{keys, operation, KeySpec};

/// A run's configuration; everything random derives from `seed`.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The seed.
    pub seed: u64,
    /// Nodes (keys are spread over them by hash; each holds the only copy of its keys).
    pub nodes: usize,
    /// Client processes, each with one operation in flight.
    pub clients: usize,
    /// Operations each client issues.
    pub ops_per_client: usize,
    /// Keys (cycling through the object types).
    pub keys: usize,
    /// Fault kinds the nemesis may inject.
    pub faults: BTreeSet<FaultKind>,
    /// How many faults to schedule.
    pub fault_count: usize,
    /// Faults happen in `0..fault_phase_ms`; all heal by its end.
    pub fault_phase_ms: u64,
    /// After the fault phase: time for everything issued after the heal to complete.
    pub quiet_ms: u64,
    /// Deliberate bugs in the node.
    pub canary: Canary,
    /// Events processed at most; a run that needs more is reported as not converging.
    pub events_max: u64,
    /// Keep a readable event trace (for `replay`).
    pub trace: bool,
    /// Run exactly these faults instead of drawing them from the seed (for `shrink`).
    pub fault_override: Option<Vec<Fault>>,
}

impl SimConfig {
    /// The default sweep configuration for `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            nodes: 3,
            clients: 6,
            ops_per_client: 60,
            keys: 17,
            faults: FaultKind::survivable_without_replication(),
            fault_count: 6,
            fault_phase_ms: 3_000,
            quiet_ms: 10_000,
            canary: Canary::default(),
            events_max: 2_000_000,
            trace: false,
            fault_override: None,
        }
    }
}

/// One recorded client operation.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Recorded {
    /// The process (Jepsen-style: a client gets a new process id after an unknown outcome).
    pub process: u64,
    /// The call's id.
    pub id: CallId,
    /// The key.
    pub key: String,
    /// The object type.
    pub type_name: String,
    /// The method.
    pub method: String,
    /// The encoded arguments.
    pub args: Vec<u8>,
    /// The answer: `None` if unknown (the client gave up), `Some(Err)` if refused (no effect).
    pub output: Option<Result<Vec<u8>, String>>,
    /// Invocation order stamp.
    pub call: u64,
    /// Completion order stamp (`u64::MAX` if unknown).
    pub ret: u64,
    /// Simulated time of invocation and completion, in ms.
    pub call_ms: u64,
    /// Simulated time of completion (`u64::MAX` if unknown).
    pub ret_ms: u64,
}

/// A recorded DSO history as `replay --history-out` writes it and `check --model dso` reads it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct HistoryFile {
    /// The keys and their initial states.
    pub keys: Vec<KeySpec>,
    /// Every client operation.
    pub history: Vec<Recorded>,
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct SimOutcome {
    /// The configuration it ran with.
    pub config: SimConfig,
    /// Every client operation.
    pub history: Vec<Recorded>,
    /// The keys and their initial states.
    pub keys: Vec<KeySpec>,
    /// The faults scheduled.
    pub faults: Vec<Fault>,
    /// Events processed.
    pub events: u64,
    /// Simulated time at the end.
    pub simulated_ms: u64,
    /// Hash of every event processed, in order: equal seeds give equal hashes.
    pub trace_hash: u64,
    /// The readable trace, if asked for.
    pub trace: Vec<String>,
    /// Operations invoked after the heal that never completed (a liveness failure if any).
    pub stuck_after_heal: Vec<usize>,
    /// The run hit `events_max` before its end (a livelock, e.g. a timer re-armed forever).
    pub hit_event_limit: bool,
}

impl SimOutcome {
    /// Why the run failed to make progress, if it did.
    pub fn liveness_failure(&self) -> Option<String> {
        if self.hit_event_limit {
            return Some(format!(
                "liveness: the run needed more than {} events (livelock)",
                self.config.events_max
            ));
        }
        (!self.stuck_after_heal.is_empty()).then(|| {
            format!(
                "liveness: {} operations issued after the heal never completed",
                self.stuck_after_heal.len()
            )
        })
    }
}

#[derive(Clone, Debug, Hash)]
enum Message {
    Call(Call),
    Reply(CallId, CallResult),
}

#[derive(Clone, Debug, Hash)]
enum Event {
    Deliver { to: usize, from: usize, message: Message },
    NodeTimer(usize),
    ClientTimer { client: usize, seq: u64 },
    ClientNext(usize),
    FaultStart(usize),
    FaultEnd(usize),
    RetryTick(usize),
}

struct Scheduled {
    at_ms: u64,
    order: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at_ms, self.order) == (other.at_ms, other.order)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at_ms, other.order).cmp(&(self.at_ms, self.order))
    }
}

struct SimNode {
    node: Node,
    down: bool,
    paused: bool,
    held: VecDeque<(usize, Message)>,
    /// The node's clock: `offset + now * rate / 100` (jumps move the offset, skew the rate).
    clock_offset_ms: i64,
    clock_rate_percent: i64,
    timer_at: Option<u64>,
}

struct SimClient {
    process: u64,
    session: ClientSession,
    /// The operation in flight: its sequence number and its history index.
    current: Option<(u64, usize)>,
    remaining: usize,
    sessions_started: u64,
}

/// The state of one run.
pub struct Simulation {
    config: SimConfig,
    registry: Arc<Registry>,
    now_ms: u64,
    order: u64,
    stamps: u64,
    queue: BinaryHeap<Scheduled>,
    nodes: Vec<SimNode>,
    clients: Vec<SimClient>,
    keys: Vec<KeySpec>,
    faults: Vec<Fault>,
    active: BTreeSet<usize>,
    network_rng: Rng,
    workload_rng: Rng,
    history: Vec<Recorded>,
    hasher: DefaultHasher,
    events: u64,
    trace: Vec<String>,
}

const SESSION: SessionConfig =
    SessionConfig { resend_after_ms: 100, call_timeout_ms: Some(2_000), in_flight_max: 1 };
/// No operation is issued this close to the end of a run: longer than a call may take.
const LIVENESS_GRACE_MS: u64 = 3_000;
/// The client address the setup phase uses; its answers are not recorded.
const SETUP: u64 = u64::MAX;

impl Simulation {
    /// Prepares a run: nodes, clients, keys created, faults scheduled.
    pub fn new(config: SimConfig) -> Self {
        let root = Rng::new(config.seed);
        let registry = Arc::new(Registry::default());
        let node_config = NodeConfig { canary: config.canary.clone(), ..NodeConfig::default() };
        let nodes = (0..config.nodes.max(1))
            .map(|_| SimNode {
                node: Node::new(node_config.clone(), registry.clone()).expect("valid node config"),
                down: false,
                paused: false,
                held: VecDeque::new(),
                clock_offset_ms: 0,
                clock_rate_percent: 100,
                timer_at: None,
            })
            .collect();
        let mut fault_rng = root.fork(1);
        let drawn = schedule(
            &mut fault_rng,
            &config.faults,
            config.nodes as u64,
            config.fault_phase_ms,
            config.fault_count,
        );
        let faults = config.fault_override.clone().unwrap_or(drawn);
        let clients = (0..config.clients)
            .map(|index| SimClient {
                process: index as u64,
                session: ClientSession::new(session_id(index, 0), SESSION),
                current: None,
                remaining: config.ops_per_client,
                sessions_started: 0,
            })
            .collect();
        let mut simulation = Simulation {
            keys: keys(config.keys),
            registry,
            now_ms: 0,
            order: 0,
            stamps: 0,
            queue: BinaryHeap::new(),
            nodes,
            clients,
            faults,
            active: BTreeSet::new(),
            network_rng: root.fork(2),
            workload_rng: root.fork(3),
            history: Vec::new(),
            hasher: DefaultHasher::new(),
            events: 0,
            trace: Vec::new(),
            config,
        };
        simulation.create_objects();
        for index in 0..simulation.faults.len() {
            let (start, end) = (simulation.faults[index].start_ms, simulation.faults[index].end_ms);
            simulation.schedule(start, Event::FaultStart(index));
            simulation.schedule(end, Event::FaultEnd(index));
        }
        for client in 0..simulation.clients.len() {
            let delay = simulation.workload_rng.below(10);
            simulation.schedule(delay, Event::ClientNext(client));
        }
        simulation
    }

    /// Runs to the end and returns what happened.
    pub fn run(mut self) -> SimOutcome {
        let end_ms = self.config.fault_phase_ms + self.config.quiet_ms;
        while let Some(Scheduled { at_ms, event, .. }) = self.queue.pop() {
            if at_ms > end_ms || self.events >= self.config.events_max {
                break;
            }
            self.now_ms = at_ms;
            self.events += 1;
            (at_ms, &event).hash(&mut self.hasher);
            if self.config.trace {
                self.trace.push(format!("{at_ms:>7} ms  {event:?}"));
            }
            self.dispatch(event);
            if self.clients.iter().all(|client| client.remaining == 0 && client.current.is_none()) {
                break;
            }
        }
        let heal_ms = self.config.fault_phase_ms;
        let stuck_after_heal = (self.history.iter().enumerate())
            .filter(|(_, op)| op.call_ms >= heal_ms && !matches!(op.output, Some(Ok(_))))
            .map(|(index, _)| index)
            .collect();
        SimOutcome {
            hit_event_limit: self.events >= self.config.events_max,
            keys: self.keys,
            faults: self.faults,
            events: self.events,
            simulated_ms: self.now_ms,
            trace_hash: self.hasher.finish(),
            trace: self.trace,
            history: self.history,
            stuck_after_heal,
            config: self.config,
        }
    }

    fn schedule(&mut self, at_ms: u64, event: Event) {
        self.order += 1;
        self.queue.push(Scheduled { at_ms, order: self.order, event });
    }

    fn stamp(&mut self) -> u64 {
        self.stamps += 1;
        self.stamps
    }

    /// Creates the objects that need an initial state, directly on their nodes, before the run.
    fn create_objects(&mut self) {
        for (index, key) in self.keys.clone().into_iter().enumerate() {
            let Some(state) = key.initial.clone() else { continue };
            let node = self.node_of(&key.key);
            let call = Call {
                id: CallId { session: u64::MAX, seq: index as u64 + 1 },
                acked_below: 0,
                key: key.key,
                type_name: key.type_name,
                action: Action::Create { state },
            };
            self.nodes[node].node.handle_request(0, SETUP, call);
            while self.nodes[node].node.poll_output().is_some() {}
        }
    }

    fn node_of(&self, key: &str) -> usize {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        (hasher.finish() % self.nodes.len() as u64) as usize
    }

    fn dispatch(&mut self, event: Event) {
        match event {
            Event::Deliver { to, from, message } => self.on_deliver(to, from, message),
            Event::NodeTimer(node) => self.on_node_timer(node),
            Event::ClientTimer { client, seq } => self.on_client_timer(client, seq),
            Event::ClientNext(client) => self.on_client_next(client),
            Event::FaultStart(index) => self.on_fault_start(index),
            Event::FaultEnd(index) => self.on_fault_end(index),
            Event::RetryTick(index) => self.on_retry_tick(index),
        }
    }

    // ---- network -------------------------------------------------------------------------

    fn endpoint_of_client(&self, client: usize) -> usize {
        self.nodes.len() + client
    }

    fn active_kinds(&self) -> impl Iterator<Item = &Fault> {
        self.active.iter().map(|index| &self.faults[*index])
    }

    fn link_blocked(&self, from: usize, to: usize) -> bool {
        let nodes = self.nodes.len();
        let endpoints = nodes + self.clients.len();
        self.active_kinds().any(|fault| {
            let target = fault.target as usize;
            match fault.kind {
                FaultKind::IsolateNode => from == target || to == target,
                FaultKind::Halves => (from < endpoints / 2) != (to < endpoints / 2),
                FaultKind::OneWay => from == target && to >= nodes,
                FaultKind::Ring => {
                    let (node, client) = if from < nodes { (from, to) } else { (to, from) };
                    let home = (client - nodes) % nodes;
                    node != home && node != (home + 1) % nodes
                }
                _ => false,
            }
        })
    }

    fn send(&mut self, from: usize, to: usize, message: Message) {
        if self.link_blocked(from, to) {
            return;
        }
        let kinds: BTreeSet<FaultKind> = self.active_kinds().map(|fault| fault.kind).collect();
        let rng = &mut self.network_rng;
        if kinds.contains(&FaultKind::Loss) && rng.chance(0.15) {
            return;
        }
        let copies = if kinds.contains(&FaultKind::Duplication) && rng.chance(0.15) { 2 } else { 1 };
        for _ in 0..copies {
            let mut latency = self.network_rng.between(1, 3);
            if kinds.contains(&FaultKind::Reorder) && self.network_rng.chance(0.2) {
                latency += self.network_rng.between(5, 60);
            }
            if kinds.contains(&FaultKind::Delay) {
                // Heavy tail: mostly small, sometimes far beyond the resend interval.
                let draw = self.network_rng.below(1000);
                latency += if draw < 900 { draw / 100 } else { (draw - 880) * 4 };
            }
            let at = self.now_ms + latency;
            self.schedule(at, Event::Deliver { to, from, message: message.clone() });
        }
    }

    fn on_deliver(&mut self, to: usize, from: usize, message: Message) {
        match message {
            Message::Call(call) => {
                let node = &mut self.nodes[to];
                if node.down {
                    return;
                }
                if node.paused {
                    node.held.push_back((from, Message::Call(call)));
                    return;
                }
                let client = (from - self.nodes.len()) as u64;
                let now = self.node_now(to);
                self.nodes[to].node.handle_request(now, client, call);
                self.after_node_input(to);
            }
            Message::Reply(id, result) => self.on_reply(to - self.nodes.len(), id, result),
        }
    }

    // ---- nodes ---------------------------------------------------------------------------

    fn node_now(&self, node: usize) -> u64 {
        let slot = &self.nodes[node];
        (slot.clock_offset_ms + self.now_ms as i64 * slot.clock_rate_percent / 100).max(0) as u64
    }

    fn after_node_input(&mut self, node: usize) {
        while let Some(Output::Reply { to, id, result }) = self.nodes[node].node.poll_output() {
            if to != SETUP {
                let client_endpoint = self.endpoint_of_client(to as usize);
                self.send(node, client_endpoint, Message::Reply(id, result));
            }
        }
        if let Some(local) = self.nodes[node].node.poll_timeout() {
            // The global time at which the node's clock reads `local`, rounded up so the timer
            // never fires before it; a deadline already due fires now.
            let slot = &self.nodes[node];
            let global = if local <= self.node_now(node) {
                self.now_ms
            } else {
                let scaled = (local as i64 - slot.clock_offset_ms) * 100;
                (scaled.div_euclid(slot.clock_rate_percent) + 1).max(self.now_ms as i64 + 1) as u64
            };
            if self.nodes[node].timer_at.is_none_or(|at| global < at || at < self.now_ms) {
                self.nodes[node].timer_at = Some(global);
                self.schedule(global, Event::NodeTimer(node));
            }
        }
    }

    fn on_node_timer(&mut self, node: usize) {
        let slot = &mut self.nodes[node];
        if slot.timer_at == Some(self.now_ms) {
            slot.timer_at = None;
        }
        if slot.down || slot.paused {
            return;
        }
        let now = self.node_now(node);
        self.nodes[node].node.handle_timeout(now);
        self.after_node_input(node);
    }

    // ---- clients -------------------------------------------------------------------------

    fn on_client_next(&mut self, client: usize) {
        // Near the end, issue nothing new: every operation issued has time to complete (or
        // give up) before the run stops, so the liveness check judges only what it should.
        let last_issue_ms =
            (self.config.fault_phase_ms + self.config.quiet_ms).saturating_sub(LIVENESS_GRACE_MS);
        if self.now_ms > last_issue_ms {
            self.clients[client].remaining = 0;
        }
        if self.clients[client].remaining == 0 || self.clients[client].current.is_some() {
            return;
        }
        self.clients[client].remaining -= 1;
        let key = self.keys[self.workload_rng.below(self.keys.len() as u64) as usize].clone();
        let (method, args) = operation(&mut self.workload_rng, &key);
        let action = Action::Invoke { method: method.clone(), args: args.clone() };
        let now = self.now_ms;
        let call = (self.clients[client].session.start_call(
            now,
            key.key.clone(),
            key.type_name.to_string(),
            action,
        ))
        .expect("one call in flight per client");
        let stamp = self.stamp();
        self.history.push(Recorded {
            process: self.clients[client].process,
            id: call.id,
            key: key.key.clone(),
            type_name: key.type_name.clone(),
            method,
            args,
            output: None,
            call: stamp,
            ret: u64::MAX,
            call_ms: now,
            ret_ms: u64::MAX,
        });
        self.clients[client].current = Some((call.id.seq, self.history.len() - 1));
        self.send_call(client, call);
    }

    fn send_call(&mut self, client: usize, call: Call) {
        let seq = call.id.seq;
        let node = self.node_of(&call.key);
        let from = self.endpoint_of_client(client);
        self.send(from, node, Message::Call(call));
        if let Some(deadline) = self.clients[client].session.call_deadline(seq) {
            self.schedule(deadline, Event::ClientTimer { client, seq });
        }
    }

    fn on_client_timer(&mut self, client: usize, seq: u64) {
        let now = self.now_ms;
        match self.clients[client].session.handle_call_timeout(now, seq) {
            RetryDecision::Resend(call) => self.send_call(client, call),
            RetryDecision::Wait => {
                if let Some(deadline) = self.clients[client].session.call_deadline(seq) {
                    self.schedule(deadline, Event::ClientTimer { client, seq });
                }
            }
            RetryDecision::GiveUp => {
                // Unknown outcome: this process is done; the client continues as a new one.
                let state = &mut self.clients[client];
                state.current = None;
                state.process += self.config.clients as u64;
                state.sessions_started += 1;
                state.session = ClientSession::new(session_id(client, state.sessions_started), SESSION);
                self.schedule(now + 1, Event::ClientNext(client));
            }
        }
    }

    fn on_reply(&mut self, client: usize, id: CallId, result: CallResult) {
        if !self.clients[client].session.handle_reply(id) {
            return;
        }
        let Some((seq, index)) = self.clients[client].current.take() else { return };
        debug_assert_eq!(seq, id.seq);
        let stamp = self.stamp();
        let record = &mut self.history[index];
        record.output = Some(result.map_err(|error| error.to_string()));
        record.ret = stamp;
        record.ret_ms = self.now_ms;
        // Spread each client's operations over the fault phase and into the quiet period, so
        // that the liveness check after the heal has operations to judge.
        let think_max = 2 * self.config.fault_phase_ms / self.config.ops_per_client.max(1) as u64;
        let think = self.workload_rng.between(0, think_max);
        self.schedule(self.now_ms + think, Event::ClientNext(client));
    }

    // ---- nemesis -------------------------------------------------------------------------

    fn on_fault_start(&mut self, index: usize) {
        self.active.insert(index);
        let fault = self.faults[index].clone();
        let node = fault.target as usize % self.nodes.len();
        match fault.kind {
            FaultKind::Crash => {
                let slot = &mut self.nodes[node];
                slot.down = true;
                slot.held.clear();
                let config = NodeConfig { canary: self.config.canary.clone(), ..NodeConfig::default() };
                slot.node = Node::new(config, self.registry.clone()).expect("valid node config");
            }
            FaultKind::Pause => self.nodes[node].paused = true,
            FaultKind::ClockJump => {
                self.nodes[node].clock_offset_ms += fault.amount;
                self.on_node_timer(node);
            }
            // The node's clock runs 50% slower to 50% faster until the fault ends.
            FaultKind::ClockSkew => self.set_clock_rate(node, 100 + fault.amount / 20),
            FaultKind::ClientRetry => self.on_retry_tick(index),
            _ => {}
        }
    }

    fn on_fault_end(&mut self, index: usize) {
        self.active.remove(&index);
        let fault = self.faults[index].clone();
        let node = fault.target as usize % self.nodes.len();
        match fault.kind {
            FaultKind::Crash => self.nodes[node].down = false,
            FaultKind::ClockSkew => self.set_clock_rate(node, 100),
            FaultKind::Pause => {
                self.nodes[node].paused = false;
                while let Some((from, message)) = self.nodes[node].held.pop_front() {
                    self.on_deliver(node, from, message);
                }
                self.on_node_timer(node);
            }
            _ => {}
        }
    }

    /// Changes a node's clock rate without a jump: its local time continues from where it is.
    fn set_clock_rate(&mut self, node: usize, rate_percent: i64) {
        let local = self.node_now(node) as i64;
        let slot = &mut self.nodes[node];
        slot.clock_rate_percent = rate_percent.max(1);
        slot.clock_offset_ms = local - self.now_ms as i64 * slot.clock_rate_percent / 100;
        self.on_node_timer(node);
    }

    /// Client retries: every client with a call in flight resends it now, then again in 10 ms
    /// while the fault lasts.
    fn on_retry_tick(&mut self, index: usize) {
        if !self.active.contains(&index) {
            return;
        }
        for client in 0..self.clients.len() {
            let unanswered = self.clients[client].session.unanswered();
            for call in unanswered {
                let (node, from) = (self.node_of(&call.key), self.endpoint_of_client(client));
                self.send(from, node, Message::Call(call));
            }
        }
        self.schedule(self.now_ms + 10, Event::RetryTick(index));
    }
}

/// A distinct session id per client and per restart of that client.
fn session_id(client: usize, restart: u64) -> u64 {
    ((client as u64) << 32) | restart
}
