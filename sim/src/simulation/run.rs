//! The discrete-event loop: real [`Node`]s and [`ClientSession`]s driven on a simulated clock,
//! with a simulated network and the nemesis; records every client operation. Clients route
//! exactly as the async client does, through their session: they learn configurations only
//! from redirects.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use crucial_dso::cluster::{Configuration, Member, MemberId, Placement};
use crucial_dso::core::client_session::{ClientSession, NotStarted, RetryDecision, SessionConfig};
use crucial_dso::core::node::{Canary, ClusterTiming, Node, NodeConfig, Output};
use crucial_dso::core::object::CallId;
use crucial_dso::core::protocol::{Action, Call, PeerMessage};
use crucial_dso::core::registry::Registry;
use crucial_dso::core::session::CallResult;
use crucial_dso::core::shard::{LogPosition, Shard};
use crucial_dso::CallError;

use super::nemesis::{schedule, Fault, FaultKind};
use super::rng::Rng;
use super::user_type::Stack;
use super::workload::{initial_state, keys, operation, waits_forever, KeySpec, CREATE, DELETE};

/// A run's configuration; everything random derives from `seed`.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The seed.
    pub seed: u64,
    /// Members at the start (keys are placed on them by consistent hashing).
    pub nodes: usize,
    /// Copies of each key.
    pub rf: usize,
    /// Client processes; each keeps up to [`LANES_MAX`] calls in flight on its session.
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
    /// The default sweep configuration for `seed`: 3 to 5 members, rf 2 or 3, every fault.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            nodes: 3 + (seed % 3) as usize,
            rf: 2 + (seed / 3 % 2) as usize,
            clients: 6,
            ops_per_client: 60,
            keys: 17,
            faults: FaultKind::survivable(2),
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

impl HistoryFile {
    /// Writes `keys` and `history` to `path` in this file's JSON form, streaming (a long real
    /// run records millions of operations: no copy of them, no whole-file string).
    pub fn write(keys: &[KeySpec], history: &[Recorded], path: &std::path::Path) -> Result<(), String> {
        #[derive(serde::Serialize)]
        struct Borrowed<'a> {
            keys: &'a [KeySpec],
            history: &'a [Recorded],
        }
        let error = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        let file = std::fs::File::create(path).map_err(|e| error(&e))?;
        let mut writer = std::io::BufWriter::new(file);
        serde_json::to_writer(&mut writer, &Borrowed { keys, history }).map_err(|e| error(&e))?;
        std::io::Write::flush(&mut writer).map_err(|e| error(&e))
    }
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
    /// Members asked to leave (and neither crashed nor replaced since) that were still members
    /// at the end, with the simulated time they were asked at (a liveness failure if any).
    pub departures_stuck: Vec<(MemberId, u64)>,
    /// The run hit `events_max` before its end (a livelock, e.g. a timer re-armed forever).
    pub hit_event_limit: bool,
    /// Keys whose replicas started an epoch from different copies, and, after quiescence,
    /// keys whose replicas in the final active configuration hold different states or session
    /// records (or why agreement could not be checked).
    pub replica_disagreements: Vec<String>,
    /// For each fault: whether it was active while a configuration waited for its state
    /// transfer.
    pub faults_during_transfer: Vec<bool>,
    /// Store answers lost after their compare-and-swap or read applied (indeterminate).
    pub store_answers_lost: u64,
    /// Operations whose session was evicted before they were answered (outcome unknown).
    pub expired: BTreeSet<usize>,
    /// Configurations stored from the first fault's start to the end of the run.
    pub epochs_since_first_fault: u64,
    /// Refusals of a client's whole session (already acknowledged, non-deterministic, too
    /// many records): a plain client never earns one, so each is a protocol error that
    /// reached a user.
    pub session_refusals: Vec<String>,
}

impl SimOutcome {
    /// Why the run failed, apart from its history's linearizability: replicas that disagree
    /// once everything settled, or no progress.
    pub fn run_failure(&self) -> Option<String> {
        if let Some(first) = self.replica_disagreements.first() {
            return Some(format!(
                "replicas disagree: {first} ({} keys in all)",
                self.replica_disagreements.len()
            ));
        }
        if let Some(first) = self.session_refusals.first() {
            return Some(format!(
                "a plain client's session was refused: {first} ({} in all)",
                self.session_refusals.len()
            ));
        }
        self.liveness_failure().or_else(|| super::availability::availability_failure(self))
    }

    /// Why the run failed to make progress, if it did.
    pub fn liveness_failure(&self) -> Option<String> {
        if self.hit_event_limit {
            return Some(format!(
                "liveness: the run needed more than {} events (livelock)",
                self.config.events_max
            ));
        }
        if let Some((member, asked_ms)) = self.departures_stuck.first() {
            return Some(format!(
                "liveness: member {member}, asked to leave at {asked_ms} ms, was still a member at the end \
                 ({} departures stuck)",
                self.departures_stuck.len()
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
    Redirect(CallId, Configuration),
    Peer { from: MemberId, to: MemberId, message: PeerMessage },
}

/// A request to the simulated configuration store (S3): a read, or a compare-and-swap.
#[derive(Clone, Debug, Hash)]
struct StoreRequest {
    slot: usize,
    member: MemberId,
    proposal: Option<(Option<Configuration>, Configuration)>,
}

#[derive(Clone, Debug, Hash)]
enum Event {
    Deliver {
        to: usize,
        from: usize,
        message: Message,
    },
    NodeTimer(usize),
    /// The store applies a request (its linearization point) and answers after a delay.
    StoreApply(StoreRequest),
    StoreAnswer {
        slot: usize,
        member: MemberId,
        record: Option<Configuration>,
    },
    /// A new member starts in this slot (after a crash, a removal or for a join).
    Start(usize),
    ClientTimer {
        client: usize,
        session: u64,
        seq: u64,
    },
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

/// A machine that runs at most one member at a time.
struct Slot {
    /// The member running here (`None`: crashed, removed, or a spare never started).
    node: Option<Node>,
    /// The member and epoch it was last seen serving in (to notice each activation).
    serving: Option<(MemberId, u64)>,
    /// Members started here so far (each start is a new identity).
    starts: u64,
    paused: bool,
    /// Stays empty after a removal (a spare whose join fault ended).
    stay_out: bool,
    held: VecDeque<(usize, Message)>,
    /// The slot's clock: `offset + now * rate / 100` (jumps move the offset, skew the rate).
    clock_offset_ms: i64,
    clock_rate_percent: i64,
    timer_at: Option<u64>,
}

/// A client process: one session with several calls in flight at once, as an application's
/// tasks share one client. Each lane is a Jepsen process with one call at a time.
struct SimClient {
    /// The real client session: numbering, retries, and routing learned from redirects.
    session: ClientSession,
    /// Each lane's process id (a lane takes a new one after an unknown outcome).
    lanes: Vec<u64>,
    /// The calls in flight, by sequence number: their lane and history index.
    in_flight: BTreeMap<u64, InFlightOp>,
    remaining: usize,
    sessions_started: u64,
}

/// A call a client has in flight.
#[derive(Clone, Copy)]
struct InFlightOp {
    lane: usize,
    index: usize,
}

/// The state of one run.
pub struct Simulation {
    config: SimConfig,
    registry: Arc<Registry>,
    now_ms: u64,
    order: u64,
    stamps: u64,
    queue: BinaryHeap<Scheduled>,
    slots: Vec<Slot>,
    /// Which slot runs each member.
    member_slots: BTreeMap<MemberId, usize>,
    /// The simulated store's record.
    store: Option<Configuration>,
    /// Members asked to leave that have not been removed yet, with when they were asked.
    departing: BTreeMap<MemberId, u64>,
    /// The first members' addresses: what clients are given to start from.
    seeds: Vec<String>,
    clients: Vec<SimClient>,
    keys: Vec<KeySpec>,
    faults: Vec<Fault>,
    active: BTreeSet<usize>,
    network_rng: Rng,
    workload_rng: Rng,
    history: Vec<Recorded>,
    /// Faults that were active while a configuration waited for its state transfer.
    transfer_overlaps: BTreeSet<usize>,
    /// Each member's copies of the keys it replicates, at the moment it started serving an
    /// epoch, by epoch.
    activations: BTreeMap<u64, Vec<(MemberId, Copies)>>,
    /// Keys whose replicas started an epoch from different states.
    activation_disagreements: Vec<String>,
    /// Store answers lost after their request applied.
    store_answers_lost: u64,
    /// The store's epoch when the first fault started.
    epoch_at_first_fault: Option<u64>,
    /// Refusals of a plain client's whole session (see [`SimOutcome::session_refusals`]).
    session_refusals: Vec<String>,
    /// Operations whose session expired (evicted) before they were answered: the call
    /// refused for it and the others its client had in flight. Outcome unknown.
    expired: BTreeSet<usize>,
    /// The next unused process id.
    next_process: u64,
    hasher: DefaultHasher,
    events: u64,
    trace: Vec<String>,
}

const SESSION: SessionConfig = SessionConfig {
    resend_after_ms: 100,
    call_timeout_ms: Some(2_000),
    in_flight_max: LANES_MAX,
    retain_records: false,
};
/// Calls a client keeps in flight at most (client `c` keeps `1 + c % LANES_MAX`).
pub const LANES_MAX: usize = 3;
/// Members tick every 20 ms and suspect a peer silent for 300 ms.
const TIMING: ClusterTiming = ClusterTiming { tick_ms: 20, suspect_after_ms: 300, poll_every_ticks: 10 };
/// No operation is issued this close to the end of a run: longer than a call may take.
const LIVENESS_GRACE_MS: u64 = 3_000;
/// The client address the setup phase uses; its answers are not recorded.
const SETUP: u64 = u64::MAX;
/// State transfers travel in parts of about this many bytes (a few keys each).
const TRANSFER_BYTES_MAX: usize = 256;
/// The share of calls on keys created at setup that name another type.
const MISMATCH_SHARE: f64 = 0.03;
/// The share of operations on young keys (see [`Simulation::young_key`]).
const YOUNG_KEY_SHARE: f64 = 0.25;
/// The share of operations on young keys that create them with a state of their own.
const CREATE_SHARE: f64 = 0.2;
/// The share of operations on young keys that delete them (a later call creates the key
/// again: its default, or a state of its own).
const DELETE_SHARE: f64 = 0.06;
/// A new generation of young keys this often.
const YOUNG_KEY_MS: u64 = 300;
/// The types of young keys: created by their first call, with non-commuting operations.
/// `Stack` is a user type, registered as an application registers its own.
const YOUNG_KEY_TYPES: [&str; 5] = ["Counter", "List", "Map", "AtomicReference", "Stack"];
/// After the workload, how long the cluster runs on to settle before replicas are compared.
const QUIESCE_MS: u64 = 3_000;
/// Sessions each key holds: fewer than the clients' sessions over a run, so keys evict.
const SESSIONS_MAX: usize = 4;
/// Spare slots for members that join during the run.
const SPARE_SLOTS: usize = 2;
/// The simulated store fails this share of requests (the caller retries on its next tick).
const STORE_ERROR_RATE: f64 = 0.05;
/// While the store is flaky: the share of requests lost before they apply, and the share of
/// answers lost after they applied.
const STORE_FLAKY_ERROR_RATE: f64 = 0.15;

impl Simulation {
    /// Prepares a run: members, clients, keys created, faults scheduled.
    pub fn new(config: SimConfig) -> Self {
        let root = Rng::new(config.seed);
        let mut registry = Registry::default();
        registry.register_with_default::<Stack>();
        let registry = Arc::new(registry);
        let members = config.nodes.max(1);
        let slots = (0..members + SPARE_SLOTS)
            .map(|_| Slot {
                node: None,
                serving: None,
                starts: 0,
                paused: false,
                stay_out: false,
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
            members as u64,
            config.fault_phase_ms,
            config.fault_count,
            impairing_budget(config.rf, config.fault_count),
        );
        let faults = config.fault_override.clone().unwrap_or(drawn);
        let mut simulation = Simulation {
            keys: keys(config.keys),
            registry,
            now_ms: 0,
            order: 0,
            stamps: 0,
            queue: BinaryHeap::new(),
            slots,
            member_slots: BTreeMap::new(),
            store: None,
            departing: BTreeMap::new(),
            seeds: Vec::new(),
            clients: Vec::new(),
            faults,
            active: BTreeSet::new(),
            network_rng: root.fork(2),
            workload_rng: root.fork(3),
            history: Vec::new(),
            transfer_overlaps: BTreeSet::new(),
            activations: BTreeMap::new(),
            activation_disagreements: Vec::new(),
            store_answers_lost: 0,
            epoch_at_first_fault: None,
            session_refusals: Vec::new(),
            expired: BTreeSet::new(),
            next_process: 0,
            hasher: DefaultHasher::new(),
            events: 0,
            trace: Vec::new(),
            config,
        };
        simulation.bootstrap(members);
        for index in 0..simulation.faults.len() {
            let (start, end) = (simulation.faults[index].start_ms, simulation.faults[index].end_ms);
            simulation.schedule(start, Event::FaultStart(index));
            simulation.schedule(end, Event::FaultEnd(index));
        }
        for client in 0..simulation.clients.len() {
            for _ in 0..simulation.clients[client].lanes.len() {
                let delay = simulation.workload_rng.below(10);
                simulation.schedule(delay, Event::ClientNext(client));
            }
        }
        simulation
    }

    /// Starts the first members in one active configuration, creates the objects that need an
    /// initial state (replicated like any call), and sets up the clients.
    fn bootstrap(&mut self, members: usize) {
        for slot in 0..members {
            self.start_member(slot);
        }
        let listed = (0..members)
            .map(|slot| self.slots[slot].node.as_ref().expect("started").identity().clone())
            .collect();
        let initial = Configuration::initial(listed, self.config.rf);
        self.store = Some(initial.clone());
        for slot in 0..members {
            self.with_node(slot, |node, now| node.bootstrap(now, initial.clone()));
        }
        self.settle();
        for (index, key) in self.keys.clone().into_iter().enumerate() {
            let Some(state) = key.initial.clone() else { continue };
            let primary = Placement::new(&initial).primary(&key.key);
            let call = Call {
                id: CallId { session: u64::MAX, seq: index as u64 + 1 },
                acked_below: 0,
                key: key.key,
                type_name: key.type_name,
                action: Action::Create { state },
                history: 0,
            };
            let slot = self.member_slots[&primary];
            self.with_node(slot, |node, now| node.handle_request(now, SETUP, call));
            self.settle();
        }
        self.seeds = initial.members.iter().map(|member| member.addr.clone()).collect();
        for index in 0..self.config.clients {
            let session = self.new_session(index, 0);
            let lanes = (0..1 + index % LANES_MAX).map(|_| self.new_process()).collect();
            let remaining = self.config.ops_per_client;
            let client =
                SimClient { session, lanes, in_flight: BTreeMap::new(), remaining, sessions_started: 0 };
            self.clients.push(client);
        }
        for slot in 0..self.slots.len() {
            self.arm_timer(slot);
        }
    }

    /// Delivers peer messages at once until every member is quiet (setup only: no faults, no
    /// time passing, the store as it is).
    fn settle(&mut self) {
        loop {
            let mut messages = Vec::new();
            for slot in &mut self.slots {
                let Some(node) = slot.node.as_mut() else { continue };
                while let Some(output) = node.poll_output() {
                    if let Output::Send { to, message } = output {
                        messages.push((node.id(), to, message));
                    }
                }
            }
            if messages.is_empty() {
                return;
            }
            for (from, to, message) in messages {
                let slot = self.member_slots[&to];
                self.with_node(slot, |node, now| node.handle_peer(now, from, message));
            }
        }
    }

    /// Runs to the end and returns what happened.
    pub fn run(mut self) -> SimOutcome {
        let end_ms = self.config.fault_phase_ms + self.config.quiet_ms;
        self.process_until(end_ms, |simulation| {
            let clients = &simulation.clients;
            let clients_done =
                clients.iter().all(|client| client.remaining == 0 && client.in_flight.is_empty());
            clients_done && simulation.departing.is_empty()
        });
        self.quiesce();
        let mut replica_disagreements = std::mem::take(&mut self.activation_disagreements);
        replica_disagreements.extend(self.replica_disagreements());
        let faults_during_transfer =
            (0..self.faults.len()).map(|index| self.transfer_overlaps.contains(&index)).collect();
        let heal_ms = self.config.fault_phase_ms;
        let key_types: BTreeMap<&str, &str> =
            self.keys.iter().map(|key| (key.key.as_str(), key.type_name.as_str())).collect();
        let stuck_after_heal = (self.history.iter().enumerate())
            .filter(|(index, op)| {
                let mismatched = key_types.get(op.key.as_str()) != Some(&op.type_name.as_str());
                // Answered; refused for naming the wrong type; refused for an expired session
                // (outcome unknown, but completed); or waiting without a timeout, rightly.
                let finished = matches!(op.output, Some(Ok(_)))
                    || (mismatched && op.output.is_some())
                    || self.expired.contains(index)
                    || waits_forever(&op.type_name, &op.method, &op.args);
                op.call_ms >= heal_ms && !finished
            })
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
            departures_stuck: self.departing.into_iter().collect(),
            replica_disagreements,
            faults_during_transfer,
            store_answers_lost: self.store_answers_lost,
            epochs_since_first_fault: store_epoch(&self.store) - self.epoch_at_first_fault.unwrap_or(0),
            expired: self.expired,
            session_refusals: self.session_refusals,
            config: self.config,
        }
    }

    /// After the workload: lets the cluster run on, with every fault healed and no new call,
    /// until it settles (replication caught up, pending configurations complete).
    fn quiesce(&mut self) {
        let end_ms = self.now_ms.max(self.config.fault_phase_ms) + QUIESCE_MS;
        self.active.clear();
        self.process_until(end_ms, |_| false);
    }

    /// Processes events in time order until `end_ms`, the event limit, or `done` says so.
    fn process_until(&mut self, end_ms: u64, done: impl Fn(&Self) -> bool) {
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
            if done(self) {
                break;
            }
        }
    }

    /// Every key whose replicas in the stored configuration disagree: each serving replica
    /// must hold the primary's log position, object, session records and parked calls.
    fn replica_disagreements(&self) -> Vec<String> {
        let Some(config) = self.store.as_ref() else { return Vec::new() };
        if !config.is_active() {
            return vec![format!("configuration {} still pending after quiescence", config.epoch)];
        }
        let serving = |id: MemberId| {
            let slot = *self.member_slots.get(&id)?;
            let node = self.slots[slot].node.as_ref()?;
            (node.id() == id && node.is_serving() && node.configuration().epoch == config.epoch)
                .then_some(node)
        };
        let placement = Placement::new(config);
        let keys: BTreeSet<&str> = (self.slots.iter())
            .filter_map(|slot| slot.node.as_ref())
            .filter(|node| node.is_serving())
            .flat_map(|node| node.held_keys())
            .collect();
        let mut found = Vec::new();
        for key in keys {
            let replicas = placement.replicas(key);
            let Some(primary) = serving(replicas[0]) else { continue };
            for backup in replicas[1..].iter().filter_map(|id| serving(*id)) {
                let (theirs, ours) = (backup.replica(key), primary.replica(key));
                if theirs != ours {
                    let position = |copy: Option<(LogPosition, _)>| copy.map(|(position, _)| position);
                    found.push(format!(
                        "{key}: member {} at {:?} holds {:?}, its primary {} at {:?} holds {:?}",
                        backup.id(),
                        position(theirs),
                        theirs.and_then(|(_, shard)| shard.object()),
                        primary.id(),
                        position(ours),
                        ours.and_then(|(_, shard)| shard.object()),
                    ));
                }
            }
        }
        found
    }

    fn schedule(&mut self, at_ms: u64, event: Event) {
        self.order += 1;
        self.queue.push(Scheduled { at_ms, order: self.order, event });
    }

    fn stamp(&mut self) -> u64 {
        self.stamps += 1;
        self.stamps
    }

    fn dispatch(&mut self, event: Event) {
        match event {
            Event::Deliver { to, from, message } => self.on_deliver(to, from, message),
            Event::NodeTimer(slot) => self.on_node_timer(slot),
            Event::StoreApply(request) => self.on_store_apply(request),
            Event::StoreAnswer { slot, member, record } => self.on_store_answer(slot, member, record),
            Event::Start(slot) => {
                if self.slots[slot].node.is_none() && !self.slots[slot].stay_out {
                    self.start_member(slot);
                    self.after_node_input(slot);
                }
            }
            Event::ClientTimer { client, session, seq } => {
                if self.clients[client].session.id() == session {
                    self.on_client_timer(client, seq);
                }
            }
            Event::ClientNext(client) => self.on_client_next(client),
            Event::FaultStart(index) => self.on_fault_start(index),
            Event::FaultEnd(index) => self.on_fault_end(index),
            Event::RetryTick(index) => self.on_retry_tick(index),
        }
    }

    // ---- network -------------------------------------------------------------------------

    fn endpoint_of_client(&self, client: usize) -> usize {
        self.slots.len() + client
    }

    fn active_kinds(&self) -> impl Iterator<Item = &Fault> {
        self.active.iter().map(|index| &self.faults[*index])
    }

    /// Whether the link between two endpoints (slots, then clients; `STORE` for the store) is cut.
    fn link_blocked(&self, from: usize, to: usize) -> bool {
        let slots = self.slots.len();
        let members = self.config.nodes.max(1);
        let is_slot = |endpoint: usize| endpoint < slots;
        self.active_kinds().any(|fault| {
            let target = fault.target as usize % members;
            match fault.kind {
                FaultKind::IsolateNode => from == target || to == target,
                FaultKind::Halves | FaultKind::Bridge => {
                    from != STORE
                        && to != STORE
                        && self.split_side(fault, from).apart(self.split_side(fault, to))
                }
                FaultKind::OneWay => from == target && to >= slots && to != STORE,
                FaultKind::PeerOneWay => from == target && to == one_way_peer(fault, members),
                FaultKind::IsolatePeers => {
                    is_slot(from) && is_slot(to) && (from == target || to == target) && from != to
                }
                FaultKind::StoreCut => (from == target && to == STORE) || (from == STORE && to == target),
                FaultKind::Ring => {
                    // Clients reach only two neighbouring slots; members reach each other.
                    let (node, client) = match (from < slots, to < slots) {
                        (true, false) if to != STORE => (from, to),
                        (false, true) if from != STORE => (to, from),
                        _ => return false,
                    };
                    let home = (client - slots) % slots;
                    node != home && node != (home + 1) % slots
                }
                _ => false,
            }
        })
    }

    /// Where `endpoint` (not the store) is in the split a `Halves` or `Bridge` fault makes:
    /// members by the fault's target; spare slots and clients alternate between the sides.
    fn split_side(&self, fault: &Fault, endpoint: usize) -> Side {
        let members = self.config.nodes.max(1);
        let alternate = |index: usize| if index.is_multiple_of(2) { Side::A } else { Side::B };
        if endpoint >= self.slots.len() {
            return alternate(endpoint - self.slots.len());
        }
        if endpoint >= members {
            return alternate(endpoint - members);
        }
        let target = fault.target as usize % members;
        let offset = (endpoint + members - target) % members;
        match fault.kind {
            // The minority: the target and the members after it, fewer than half.
            FaultKind::Halves if offset < (members - 1) / 2 => Side::B,
            FaultKind::Halves => Side::A,
            FaultKind::Bridge if offset == 0 => Side::Both,
            _ => alternate(offset),
        }
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
            let latency = self.latency(&kinds);
            let at = self.now_ms + latency;
            self.schedule(at, Event::Deliver { to, from, message: message.clone() });
        }
    }

    fn latency(&mut self, kinds: &BTreeSet<FaultKind>) -> u64 {
        let rng = &mut self.network_rng;
        let mut latency = rng.between(1, 3);
        if kinds.contains(&FaultKind::Reorder) && rng.chance(0.2) {
            latency += rng.between(5, 60);
        }
        if kinds.contains(&FaultKind::Delay) {
            // Heavy tail: mostly small, sometimes far beyond the resend interval.
            let draw = rng.below(1000);
            latency += if draw < 900 { draw / 100 } else { (draw - 880) * 4 };
        }
        latency
    }

    fn on_deliver(&mut self, to: usize, from: usize, message: Message) {
        if to >= self.slots.len() {
            let client = to - self.slots.len();
            match message {
                Message::Reply(id, result) => self.on_reply(client, id, result),
                Message::Redirect(id, config) => self.on_redirect(client, id, config),
                Message::Call(_) | Message::Peer { .. } => {}
            }
            return;
        }
        if self.slots[to].node.is_none() {
            return;
        }
        if self.slots[to].paused {
            self.slots[to].held.push_back((from, message));
            return;
        }
        match message {
            Message::Call(call) => {
                let client = (from - self.slots.len()) as u64;
                self.with_node(to, |node, now| node.handle_request(now, client, call));
            }
            Message::Peer { from: sender, to: member, message } => {
                if self.slots[to].node.as_ref().is_some_and(|node| node.id() == member) {
                    self.with_node(to, |node, now| node.handle_peer(now, sender, message));
                }
            }
            Message::Reply(..) | Message::Redirect(..) => {}
        }
        self.after_node_input(to);
    }

    // ---- store ---------------------------------------------------------------------------

    fn store_request(
        &mut self,
        slot: usize,
        member: MemberId,
        proposal: Option<(Option<Configuration>, Configuration)>,
    ) {
        let flaky = self.active_kinds().any(|fault| fault.kind == FaultKind::StoreFlaky);
        let error_rate = if flaky { STORE_FLAKY_ERROR_RATE } else { STORE_ERROR_RATE };
        if self.link_blocked(slot, STORE) || self.network_rng.chance(error_rate) {
            return;
        }
        let latency = self.store_latency(flaky);
        self.schedule(self.now_ms + latency, Event::StoreApply(StoreRequest { slot, member, proposal }));
    }

    /// One way to or from the store: a few ms, sometimes far more while it is flaky.
    fn store_latency(&mut self, flaky: bool) -> u64 {
        if flaky && self.network_rng.chance(0.2) {
            self.network_rng.between(200, 1_500)
        } else {
            self.network_rng.between(3, 25)
        }
    }

    fn on_store_apply(&mut self, request: StoreRequest) {
        if let Some((current, next)) = request.proposal {
            if self.store == current && next.validate().is_ok() {
                self.store = Some(next);
                if !next_active(&self.store) {
                    self.transfer_overlaps.extend(self.active.iter().copied());
                }
            }
        }
        let flaky = self.active_kinds().any(|fault| fault.kind == FaultKind::StoreFlaky);
        if flaky && self.network_rng.chance(STORE_FLAKY_ERROR_RATE) {
            // Applied, but the answer is lost: the member does not know whether its
            // compare-and-swap took effect.
            self.store_answers_lost += 1;
            return;
        }
        let latency = self.store_latency(flaky);
        let answer =
            Event::StoreAnswer { slot: request.slot, member: request.member, record: self.store.clone() };
        self.schedule(self.now_ms + latency, answer);
    }

    fn on_store_answer(&mut self, slot: usize, member: MemberId, record: Option<Configuration>) {
        let alive = self.slots[slot].node.as_ref().is_some_and(|node| node.id() == member);
        if !alive || self.slots[slot].paused || self.link_blocked(slot, STORE) {
            return;
        }
        self.with_node(slot, |node, now| match record {
            Some(record) => node.handle_config(now, record),
            None => node.handle_empty_store(),
        });
        self.after_node_input(slot);
    }

    // ---- members -------------------------------------------------------------------------

    /// Starts a new member (a new identity, empty) in `slot`; it joins through the store.
    fn start_member(&mut self, slot: usize) {
        self.slots[slot].starts += 1;
        let id = slot as u64 * 1_000 + self.slots[slot].starts;
        self.start_member_as(slot, id);
    }

    /// Starts a member, empty, under `id` in `slot` (a new id, or its old one for a restart).
    fn start_member_as(&mut self, slot: usize, id: MemberId) {
        let state = &mut self.slots[slot];
        let member = Member { id, addr: format!("sim-{slot}") };
        // Small transfer parts and resends: every state transfer and long tail here travels
        // in several.
        let node_config = NodeConfig {
            canary: self.config.canary.clone(),
            transfer_bytes_max: TRANSFER_BYTES_MAX,
            resend_bytes_max: TRANSFER_BYTES_MAX,
            sessions_max: SESSIONS_MAX,
            ..NodeConfig::default()
        };
        let node = Node::member(node_config, self.registry.clone(), member, self.config.rf, TIMING)
            .expect("valid member config");
        state.node = Some(node);
        state.held.clear();
        self.member_slots.insert(id, slot);
    }

    fn stop_member(&mut self, slot: usize) {
        let state = &mut self.slots[slot];
        // A member that crashes while leaving is removed by failure detection instead.
        if let Some(node) = state.node.take() {
            self.departing.remove(&node.id());
        }
        state.held.clear();
        state.paused = false;
    }

    fn with_node(&mut self, slot: usize, input: impl FnOnce(&mut Node, u64)) {
        let now = self.node_now(slot);
        if let Some(node) = self.slots[slot].node.as_mut() {
            input(node, now);
        }
    }

    fn node_now(&self, slot: usize) -> u64 {
        let state = &self.slots[slot];
        (state.clock_offset_ms + self.now_ms as i64 * state.clock_rate_percent / 100).max(0) as u64
    }

    fn after_node_input(&mut self, slot: usize) {
        self.note_activation(slot);
        let mut removed = false;
        loop {
            let Some(node) = self.slots[slot].node.as_mut() else { return };
            let id = node.id();
            let Some(output) = node.poll_output() else { break };
            match output {
                Output::Reply { to, id, result } => {
                    if to != SETUP {
                        let client = self.endpoint_of_client(to as usize);
                        self.send(slot, client, Message::Reply(id, result));
                    }
                }
                Output::Redirect { to, id, config } => {
                    let client = self.endpoint_of_client(to as usize);
                    self.send(slot, client, Message::Redirect(id, config));
                }
                Output::Send { to, message } => {
                    if let Some(&target) = self.member_slots.get(&to) {
                        self.send(slot, target, Message::Peer { from: id, to, message });
                    }
                }
                Output::LoadConfig => self.store_request(slot, id, None),
                Output::Propose { current, next } => self.store_request(slot, id, Some((current, next))),
                // What it output before and after goes out too, as a host flushes it.
                Output::Removed => removed = true,
            }
        }
        if removed {
            self.stop_member(slot);
            let delay = self.workload_rng.between(100, 400);
            self.schedule(self.now_ms + delay, Event::Start(slot));
            return;
        }
        self.arm_timer(slot);
    }

    /// If the member in `slot` just started serving an epoch, compares its copies with those
    /// of the other replicas that started it: nothing of an epoch applies before a replica
    /// serves it, so every replica of a key starts the epoch from the same state.
    fn note_activation(&mut self, slot: usize) {
        let state = &mut self.slots[slot];
        let Some(node) = state.node.as_ref().filter(|node| node.is_serving()) else { return };
        let (me, epoch) = (node.id(), node.configuration().epoch);
        if state.serving == Some((me, epoch)) {
            return;
        }
        state.serving = Some((me, epoch));
        let placement = Placement::new(node.configuration());
        let copies: Copies = (node.held_keys())
            .filter(|key| placement.replicas(key).contains(&me))
            .filter_map(|key| node.replica(key).map(|(_, shard)| (key.to_string(), shard.clone())))
            .collect();
        let started = self.activations.entry(epoch).or_default();
        for (other, theirs) in started.iter() {
            let keys: BTreeSet<&String> = copies.keys().chain(theirs.keys()).collect();
            for key in keys {
                let replicas = placement.replicas(key);
                let (ours, others) = (copies.get(key), theirs.get(key));
                if replicas.contains(&me) && replicas.contains(other) && ours != others {
                    self.activation_disagreements.push(format!(
                        "{key}: members {me} and {other} started epoch {epoch} from different copies \
                         ({:?} and {:?})",
                        ours.and_then(Shard::object),
                        others.and_then(Shard::object)
                    ));
                }
            }
        }
        started.push((me, copies));
    }

    fn arm_timer(&mut self, slot: usize) {
        let Some(local) = self.slots[slot].node.as_ref().and_then(Node::poll_timeout) else { return };
        // The global time at which the slot's clock reads `local`, rounded up so the timer
        // never fires before it; a deadline already due fires now.
        let state = &self.slots[slot];
        let global = if local <= self.node_now(slot) {
            self.now_ms
        } else {
            let scaled = (local as i64 - state.clock_offset_ms) * 100;
            (scaled.div_euclid(state.clock_rate_percent) + 1).max(self.now_ms as i64 + 1) as u64
        };
        if self.slots[slot].timer_at.is_none_or(|at| global < at || at < self.now_ms) {
            self.slots[slot].timer_at = Some(global);
            self.schedule(global, Event::NodeTimer(slot));
        }
    }

    fn on_node_timer(&mut self, slot: usize) {
        let state = &mut self.slots[slot];
        if state.timer_at == Some(self.now_ms) {
            state.timer_at = None;
        }
        if state.node.is_none() || state.paused {
            return;
        }
        self.with_node(slot, |node, now| node.handle_timeout(now));
        self.after_node_input(slot);
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
        let state = &self.clients[client];
        if state.remaining == 0 {
            return;
        }
        let busy = |lane: &usize| state.in_flight.values().any(|op| op.lane == *lane);
        let Some(lane) = (0..state.lanes.len()).find(|lane| !busy(lane)) else { return };
        let young = self.workload_rng.chance(YOUNG_KEY_SHARE);
        let key = if young {
            self.young_key()
        } else {
            self.keys[self.workload_rng.below(self.keys.len() as u64) as usize].clone()
        };
        // Now and then a call names the wrong type: on a key created at setup it must be
        // refused without effect.
        let created: Vec<&KeySpec> = self.keys.iter().filter(|spec| spec.initial.is_some()).collect();
        let spoken = if self.workload_rng.chance(MISMATCH_SHARE) && key.initial.is_some() {
            (*self.workload_rng.pick(&created)).clone()
        } else {
            key.clone()
        };
        // Young keys are raced for by calls that create them with a state of their own and
        // calls that create them with the default.
        let (method, args, action) = if young && self.workload_rng.chance(CREATE_SHARE) {
            let state = initial_state(&mut self.workload_rng, &self.registry, &key.type_name);
            (CREATE.to_string(), state.clone(), Action::Create { state })
        } else if young && self.workload_rng.chance(DELETE_SHARE) {
            (DELETE.to_string(), Vec::new(), Action::Delete)
        } else {
            let (method, args) = operation(&mut self.workload_rng, &spoken);
            (method.clone(), args.clone(), Action::Invoke { method, args })
        };
        let now = self.now_ms;
        let started =
            self.clients[client].session.start_call(now, key.key.clone(), spoken.type_name.clone(), action);
        let call = match started.cloned() {
            Ok(call) => call,
            Err(not_started) => {
                // The session was refused for itself (see `ClientSession::handle_reply`): the
                // client starts over with a new one. A plain session never should be.
                if let NotStarted::Refused(error) = not_started {
                    self.session_refusals.push(format!("client {client} at {now} ms: {error}"));
                }
                self.restart_client(client, false);
                return;
            }
        };
        self.clients[client].remaining -= 1;
        let stamp = self.stamp();
        self.history.push(Recorded {
            process: self.clients[client].lanes[lane],
            id: call.id,
            key: key.key.clone(),
            type_name: spoken.type_name,
            method,
            args,
            output: None,
            call: stamp,
            ret: u64::MAX,
            call_ms: now,
            ret_ms: u64::MAX,
        });
        let op = InFlightOp { lane, index: self.history.len() - 1 };
        self.clients[client].in_flight.insert(call.id.seq, op);
        let seq = call.id.seq;
        self.send_call(client, call);
        self.arm_client_timer(client, seq);
    }

    /// A key of the current generation: a new one every `YOUNG_KEY_MS`, created by its first
    /// call, which several clients then race to use (during faults too).
    fn young_key(&mut self) -> KeySpec {
        let generation = self.now_ms / YOUNG_KEY_MS;
        let type_name = YOUNG_KEY_TYPES[(generation % YOUNG_KEY_TYPES.len() as u64) as usize];
        let name = format!("young-{}-{generation}", type_name.to_lowercase());
        if let Some(known) = self.keys.iter().find(|key| key.key == name) {
            return known.clone();
        }
        let key = KeySpec { key: name, type_name: type_name.to_string(), initial: None };
        self.keys.push(key.clone());
        key
    }
    /// A client session as a client process starts one: routing through the first members'
    /// addresses (each client starting at another one) until a redirect tells it more.
    fn new_session(&self, client: usize, restart: u64) -> ClientSession {
        let mut seeds = self.seeds.clone();
        let turn = client % seeds.len().max(1);
        seeds.rotate_left(turn);
        let session = ClientSession::new(session_id(client, restart), SESSION).with_seeds(seeds);
        #[cfg(crucial_canary)]
        if self.config.canary.client_refusals_from_duplicates {
            return session.with_refusals_from_duplicates();
        }
        session
    }
    /// Sends a call where the client session routes it: to the first of its targets that
    /// accepts a connection (a slot running a member; a crashed one refuses it at once).
    /// Past the first resends it goes to another member too (see `ClientSession::also_ask`).
    fn send_call(&mut self, client: usize, call: Call) {
        let session = &self.clients[client].session;
        let (targets, also) = (session.targets(call.id.seq), session.also_ask(call.id.seq));
        let slot_of = |addr: &str| addr.strip_prefix("sim-").and_then(|slot| slot.parse::<usize>().ok());
        let running = |slot: &usize| self.slots.get(*slot).is_some_and(|state| state.node.is_some());
        let Some(slot) = targets.iter().filter_map(|addr| slot_of(addr)).find(running) else { return };
        let from = self.endpoint_of_client(client);
        let other = also.as_deref().and_then(slot_of).filter(|other| *other != slot && running(other));
        self.send(from, slot, Message::Call(call.clone()));
        if let Some(other) = other {
            self.send(from, other, Message::Call(call));
        }
    }
    fn arm_client_timer(&mut self, client: usize, seq: u64) {
        let session = &self.clients[client].session;
        if let Some(deadline) = session.call_deadline(seq) {
            let event = Event::ClientTimer { client, session: session.id(), seq };
            self.schedule(deadline, event);
        }
    }

    fn on_client_timer(&mut self, client: usize, seq: u64) {
        let now = self.now_ms;
        match self.clients[client].session.handle_call_timeout(now, seq) {
            RetryDecision::Resend(call) => {
                self.send_call(client, call);
                self.arm_client_timer(client, seq);
            }
            RetryDecision::Wait => self.arm_client_timer(client, seq),
            RetryDecision::GiveUp => self.give_up(client, seq),
        }
    }

    /// The session gave up on call `seq`: its outcome is unknown, so its lane's process is
    /// done and the lane goes on as a new process; the session goes on too.
    fn give_up(&mut self, client: usize, seq: u64) {
        let Some(op) = self.clients[client].in_flight.remove(&seq) else { return };
        self.clients[client].lanes[op.lane] = self.new_process();
        self.schedule(self.now_ms + 1, Event::ClientNext(client));
    }

    /// The client's process dies with its calls in flight (outcomes unknown; `expired`: its
    /// session was evicted), and starts again as new processes on a new session.
    fn restart_client(&mut self, client: usize, expired: bool) {
        let abandoned = std::mem::take(&mut self.clients[client].in_flight);
        if expired {
            self.expired.extend(abandoned.values().map(|op| op.index));
        }
        for lane in 0..self.clients[client].lanes.len() {
            self.clients[client].lanes[lane] = self.new_process();
            self.schedule(self.now_ms + 1 + lane as u64, Event::ClientNext(client));
        }
        let state = &mut self.clients[client];
        state.sessions_started += 1;
        let restart = state.sessions_started;
        self.clients[client].session = self.new_session(client, restart);
    }

    fn new_process(&mut self) -> u64 {
        self.next_process += 1;
        self.next_process - 1
    }

    fn on_redirect(&mut self, client: usize, id: CallId, config: Configuration) {
        if self.clients[client].session.handle_redirect(id, config) {
            let unanswered = self.clients[client].session.unanswered();
            for call in unanswered {
                self.send_call(client, call);
            }
        }
    }

    fn on_reply(&mut self, client: usize, id: CallId, result: CallResult) {
        if !self.clients[client].session.handle_reply(id, &result) {
            return;
        }
        let Some(op) = self.clients[client].in_flight.remove(&id.seq) else { return };
        if matches!(result, Err(CallError::SessionExpired { .. })) {
            // Refused now, but a retry may have applied before the eviction: the outcome is
            // unknown, and the session is of no use any more.
            self.expired.insert(op.index);
            self.restart_client(client, true);
            return;
        }
        let stamp = self.stamp();
        let record = &mut self.history[op.index];
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
        self.epoch_at_first_fault.get_or_insert(store_epoch(&self.store));
        if !next_active(&self.store) {
            self.transfer_overlaps.insert(index);
        }
        let fault = self.faults[index].clone();
        let members = self.config.nodes.max(1);
        let slot = fault.target as usize % members;
        match fault.kind {
            FaultKind::Crash => self.stop_member(slot),
            FaultKind::Replace => {
                self.stop_member(slot);
                self.start_member(slot);
                self.after_node_input(slot);
            }
            FaultKind::Restart => {
                if let Some(id) = self.slots[slot].node.as_ref().map(Node::id) {
                    self.stop_member(slot);
                    self.start_member_as(slot, id);
                    self.after_node_input(slot);
                }
            }
            FaultKind::Leave => self.ask_to_leave(slot),
            FaultKind::Join => {
                let spare = members + fault.target as usize % SPARE_SLOTS;
                if self.slots[spare].node.is_none() {
                    self.slots[spare].stay_out = false;
                    self.start_member(spare);
                    self.after_node_input(spare);
                }
            }
            FaultKind::Pause => self.slots[slot].paused = true,
            FaultKind::ClockJump => {
                self.slots[slot].clock_offset_ms += fault.amount;
                self.on_node_timer(slot);
            }
            // The slot's clock runs 50% slower to 50% faster until the fault ends.
            FaultKind::ClockSkew => self.set_clock_rate(slot, 100 + fault.amount / 20),
            FaultKind::ClientRetry => self.on_retry_tick(index),
            // Half the clients die with their calls in flight (a cloud thread killed mid-call).
            FaultKind::ClientCrash => {
                for client in (0..self.clients.len()).filter(|c| c % 2 == fault.target as usize % 2) {
                    if !self.clients[client].in_flight.is_empty() {
                        self.restart_client(client, false);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_fault_end(&mut self, index: usize) {
        self.active.remove(&index);
        let fault = self.faults[index].clone();
        let members = self.config.nodes.max(1);
        let slot = fault.target as usize % members;
        match fault.kind {
            FaultKind::Crash if self.slots[slot].node.is_none() => {
                self.start_member(slot);
                self.after_node_input(slot);
            }
            FaultKind::Join => {
                let spare = members + fault.target as usize % SPARE_SLOTS;
                self.slots[spare].stay_out = true;
                self.ask_to_leave(spare);
            }
            FaultKind::ClockSkew => self.set_clock_rate(slot, 100),
            FaultKind::Pause => {
                self.slots[slot].paused = false;
                while let Some((from, message)) = self.slots[slot].held.pop_front() {
                    self.on_deliver(slot, from, message);
                }
                self.on_node_timer(slot);
            }
            _ => {}
        }
    }

    /// Asks the member in `slot`, if any, to leave gracefully; it must be gone by the end.
    fn ask_to_leave(&mut self, slot: usize) {
        if let Some(node) = self.slots[slot].node.as_ref() {
            self.departing.entry(node.id()).or_insert(self.now_ms);
        }
        self.with_node(slot, |node, _| node.leave());
        self.after_node_input(slot);
    }

    /// Changes a slot's clock rate without a jump: its local time continues from where it is.
    fn set_clock_rate(&mut self, slot: usize, rate_percent: i64) {
        let local = self.node_now(slot) as i64;
        let state = &mut self.slots[slot];
        state.clock_rate_percent = rate_percent.max(1);
        state.clock_offset_ms = local - self.now_ms as i64 * state.clock_rate_percent / 100;
        self.on_node_timer(slot);
    }

    /// Client retries: every client with a call in flight resends it now, then again in 10 ms
    /// while the fault lasts.
    fn on_retry_tick(&mut self, index: usize) {
        if !self.active.contains(&index) {
            return;
        }
        for client in 0..self.clients.len() {
            for call in self.clients[client].session.unanswered() {
                self.send_call(client, call);
            }
        }
        self.schedule(self.now_ms + 10, Event::RetryTick(index));
    }
}

/// The store's endpoint, for [`Simulation::link_blocked`].
const STORE: usize = usize::MAX;

/// A member's copies of the keys it replicates.
type Copies = BTreeMap<String, Shard>;

/// A side of a split network.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    A,
    B,
    /// A bridge: reaches both sides.
    Both,
}

impl Side {
    fn apart(self, other: Side) -> bool {
        matches!((self, other), (Side::A, Side::B) | (Side::B, Side::A))
    }
}

/// The member whose messages from the target a `PeerOneWay` fault loses.
fn one_way_peer(fault: &Fault, members: usize) -> usize {
    let target = fault.target as usize % members;
    (target + 1 + fault.amount.unsigned_abs() as usize % members.saturating_sub(1).max(1)) % members
}

/// How many members a run may take out ([`FaultKind::impairs_member`]): the `rf - 1` failures
/// that `rf` copies survive. Single-copy runs leave out the faults that lose state instead
/// (see [`FaultKind::survivable`]), and survive any number of the others.
fn impairing_budget(rf: usize, fault_count: usize) -> usize {
    if rf <= 1 {
        fault_count
    } else {
        rf - 1
    }
}

/// Whether the stored configuration is active (or absent).
fn store_epoch(store: &Option<Configuration>) -> u64 {
    store.as_ref().map_or(0, |config| config.epoch)
}

fn next_active(store: &Option<Configuration>) -> bool {
    store.as_ref().is_none_or(Configuration::is_active)
}

/// A distinct session id per client and per restart of that client.
fn session_id(client: usize, restart: u64) -> u64 {
    ((client as u64) << 32) | restart
}
