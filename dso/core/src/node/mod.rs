//! The sans-IO node: one member of a DSO cluster (or a standalone server). No clock, socket or
//! randomness inside: time is the `now_ms` argument (any monotonic millisecond count the host
//! chooses), so the simulator, the model checker and the async server run exactly this code.
//!
//! # Inputs
//!
//! - [`Node::handle_request`]: a client's call, from a client the host numbers with a
//!   [`ClientAddr`]; [`Node::handle_disconnect`]: that client went away.
//! - [`Node::handle_peer`]: a message from another member.
//! - [`Node::handle_config`] or [`Node::handle_empty_store`]: what the configuration store
//!   holds, in answer to an [`Output::LoadConfig`] or an [`Output::Propose`].
//! - [`Node::handle_timeout`]: the time [`Node::poll_timeout`] asked to be woken at, or later.
//! - [`Node::bootstrap`] (a first configuration formed out of band), [`Node::leave`] (an
//!   operator's graceful stop), [`Node::suspect`] (an outside failure detector).
//!
//! After every input the node checks its invariants (in debug builds).
//!
//! # Outputs
//!
//! After every input, a host drains [`Node::poll_output`] until it returns `None` and carries
//! each output out: [`Output::Reply`] and [`Output::Redirect`] to their client,
//! [`Output::Send`] to its member, [`Output::LoadConfig`] and [`Output::Propose`] to the store
//! (whose answer comes back as `handle_config` or `handle_empty_store`), [`Output::Removed`]
//! by starting over or stopping. Then it re-arms its timer at [`Node::poll_timeout`], which any
//! input may move. Correctness does not rest on the order outputs are carried out in, nor on
//! messages arriving once or in order (the model checker delivers them in any order, any
//! number of times, or never); delivering them promptly and in order only makes it faster.
//!
//! Replication is primary-backup per key (module `replication`): the primary of a key admits and
//! applies every call, read or write, logs it, sends it to the key's backups and answers only
//! when every backup of the current epoch holds it. Configurations change by compare-and-swap in
//! a store; a new one takes effect after state transfer (module `membership`).

mod membership;
mod probe;
mod replication;
mod transfer;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use crate::cluster::{Configuration, Member, MemberId, Placement};
use crate::object::CallId;
use crate::protocol::{Call, ClientAddr, Entry, PeerMessage};
use crate::registry::{ObjectBox, Registry};
use crate::session::{Admission, CallResult};
use crate::shard::{Effects, LogPosition, Parked, SessionLimits, Shard, SizeBound};
use crate::{CallError, ConfigError};

use replication::PrimaryLog;
use transfer::Transfer;
pub use transfer::TransferProgress;

/// Limits of one node. Every bound is here, checked by [`NodeConfig::validate`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeConfig {
    /// Unacknowledged calls one session may have recorded per key (its pipelining window).
    pub session_calls_max: usize,
    /// Sessions a key's table holds before the least recently used one is evicted. Every
    /// member of a cluster must use the same: backups evict by their own limit as their
    /// primary did by its.
    pub sessions_max: usize,
    /// Longest key.
    pub key_bytes_max: usize,
    /// Largest encoded object: a call that would grow one past it is refused with
    /// [`CallError::ObjectTooLarge`] (so that every key can move in a state transfer, whose
    /// messages a member decodes up to 64 MiB). Every member of a cluster must use the same.
    pub object_bytes_max: usize,
    /// About how many bytes of shards one state-transfer message carries (a key's image is
    /// never split, so a part holds at least one key). A member builds a part, and takes one
    /// in, while it handles nothing else, heartbeats included: a part must take far less
    /// than `suspect_after_ms`, or a transfer gets its own members suspected. (One key with
    /// a large object or session table still goes whole.)
    pub transfer_bytes_max: usize,
    /// About how many bytes of log entries one resend to a lagging backup carries (a long
    /// tail goes in parts, one per tick; at least one entry each).
    pub resend_bytes_max: usize,
    /// Deliberate bugs for checkers to catch; all off by default, and refused by
    /// [`NodeConfig::validate`] unless the build has them (see [`Canary`]).
    pub canary: Canary,
}

/// Text that only a build with the deliberate bugs' code contains (CI looks for it in the
/// binaries it ships, and must not find it).
#[cfg(crucial_canary)]
pub const CANARY_BUILD_MARKER: &str = "crucial-canary-build-c4n4ry";

/// Deliberate bugs that checkers must catch. Their code is compiled only with `--cfg
/// crucial_canary`, which only the test commands set (`cargo canarytest`, `cargo canaryrun`,
/// `cargo simtest`): no binary built the usual way has them, and its nodes refuse to start
/// with any switched on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Canary {
    /// Apply every call, retries included, as if new: breaks exactly-once.
    pub skip_deduplication: bool,
    /// Answer read-only calls from a copy of the objects refreshed only every few calls:
    /// breaks linearizability (stale reads).
    pub stale_reads: bool,
    /// Drop parked calls' timeouts when they fall due: breaks liveness (timed waits hang).
    pub drop_timeouts: bool,
    /// Answer as soon as the primary applied a call, before the backups hold it: a crash of
    /// the primary loses acknowledged operations.
    pub reply_before_backup_acks: bool,
    /// A member that handed its state to a newer epoch keeps serving and acknowledging log
    /// entries of its old epoch (no fencing): a deposed primary keeps answering operations
    /// that the new configuration never sees.
    pub accept_old_epochs: bool,
    /// A member asked to leave while a configuration was not yet active forgets it when that
    /// configuration activates: its departure never completes (a bug this project once had).
    pub forget_leave_on_activation: bool,
    /// A backup keeps the keys its new primary's install does not mention (installs are not
    /// authoritative): a key whose first entry reached it but not the new primary diverges.
    pub non_authoritative_installs: bool,
    /// A member restarted under the id of an earlier process is taken for that process: it
    /// answers pulls with nothing and counts as a source that answered.
    pub trust_reused_member_ids: bool,
    /// A primary stops waiting for backups it has not heard from for `suspect_after_ms` and
    /// answers without them: on the far side of a partition between members, it goes on
    /// alone while the others reconfigure and serve the same keys.
    pub answer_without_silent_backups: bool,
    /// A member that hears fewer than half of its configuration removes the members it does
    /// not hear anyway: a survivor of `rf - 1` crashes serves alone at once, and a member on
    /// the minority side of a partition removes the live majority.
    pub remove_without_majority: bool,
    /// A member that is not listed proposes to join without probing the members first: one
    /// cut from its peers but not from the store rejoins again and again, and each pending
    /// join stops the members that could serve (the flapping a real partition once caused).
    pub join_without_probing: bool,
    /// A member counts every peer it does not suspect yet towards the majority that lets it
    /// remove others (no quorum window): one cut from all its peers at once removes the
    /// first to cross `suspect_after_ms` with a "majority" of itself and a peer it has not
    /// heard from for almost as long, and the configuration it stores can never activate.
    pub quorum_from_unsuspected: bool,
    /// Not the node's: a client session takes a refusal of its whole session from any
    /// answer, duplicates too (see `ClientSession::with_refusals_from_duplicates`); the
    /// simulator gives its clients this bug.
    pub client_refusals_from_duplicates: bool,
    /// A delete drops the key's session records with its object (no tombstone): a retry of a
    /// call made before the delete applies again to whatever the key holds next.
    pub forget_records_on_delete: bool,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            session_calls_max: 4096,
            sessions_max: 1 << 20,
            key_bytes_max: 4096,
            object_bytes_max: 16 << 20,
            transfer_bytes_max: 256 << 10,
            resend_bytes_max: 8 << 20,
            canary: Canary::default(),
        }
    }
}

impl NodeConfig {
    /// Checks that every limit is usable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = "must be positive";
        ConfigError::check(
            self.session_calls_max > 0,
            "session_calls_max",
            self.session_calls_max,
            positive,
        )?;
        ConfigError::check(self.sessions_max > 0, "sessions_max", self.sessions_max, positive)?;
        ConfigError::check(self.key_bytes_max > 0, "key_bytes_max", self.key_bytes_max, positive)?;
        let object_max = crate::object::DECODE_BYTES_MAX / 4;
        ConfigError::check(
            (1..=object_max).contains(&self.object_bytes_max),
            "object_bytes_max",
            self.object_bytes_max,
            &format!(
                "must be in 1..={object_max} (a quarter of what a member decodes, so that an object \
                 and its session records move in one message)"
            ),
        )?;
        let message_max = crate::object::DECODE_BYTES_MAX / 2;
        for (name, value) in
            [("transfer_bytes_max", self.transfer_bytes_max), ("resend_bytes_max", self.resend_bytes_max)]
        {
            ConfigError::check(
                (1..=message_max).contains(&value),
                name,
                value,
                &format!("must be in 1..={message_max} (half of what a member decodes)"),
            )?;
        }
        ConfigError::check(
            cfg!(crucial_canary) || self.canary == Canary::default(),
            "canary",
            &self.canary,
            "this build has no deliberate bugs (they need `--cfg crucial_canary`: cargo canarytest, cargo canaryrun)",
        )
    }

    fn limits(&self) -> SessionLimits {
        SessionLimits { session_calls_max: self.session_calls_max, sessions_max: self.sessions_max }
    }
}

/// How a cluster member paces its background work.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClusterTiming {
    /// Heartbeats, resends and configuration proposals happen every tick.
    pub tick_ms: u64,
    /// A member not heard from for this long is suspected and proposed for removal
    /// (`u64::MAX`: no failure detection and no heartbeats; see [`Node::suspect`]).
    pub suspect_after_ms: u64,
    /// A serving member reads the configuration store every this many ticks (one in
    /// transition reads it every tick).
    pub poll_every_ticks: u64,
}

impl Default for ClusterTiming {
    fn default() -> Self {
        Self { tick_ms: 100, suspect_after_ms: 1_500, poll_every_ticks: 5 }
    }
}

impl ClusterTiming {
    /// Checks that the timing can work: ticks happen, and a member is suspected only after
    /// more than a tick of silence (heartbeats go out once a tick).
    pub fn validate(&self) -> Result<(), ConfigError> {
        ConfigError::check(self.tick_ms > 0, "tick_ms", self.tick_ms, "must be positive")?;
        ConfigError::check(
            self.poll_every_ticks > 0,
            "poll_every_ticks",
            self.poll_every_ticks,
            "must be positive",
        )?;
        ConfigError::check(
            self.suspect_after_ms > self.tick_ms,
            "suspect_after_ms",
            self.suspect_after_ms,
            &format!("must be more than tick_ms ({}): heartbeats go out once a tick", self.tick_ms),
        )
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
    /// Tell this client that another member serves the call's key.
    Redirect {
        /// The client.
        to: ClientAddr,
        /// The call.
        id: CallId,
        /// The configuration this member serves in.
        config: Configuration,
    },
    /// Send a message to another member.
    Send {
        /// The member.
        to: MemberId,
        /// The message.
        message: PeerMessage,
    },
    /// Read the configuration store and feed the result to [`Node::handle_config`] (or
    /// [`Node::handle_empty_store`]).
    LoadConfig,
    /// Replace the stored configuration by `next` if it still is `current` (compare-and-swap;
    /// `current: None` creates it), then read the store again.
    Propose {
        /// What the store must hold for the change to apply.
        current: Option<Configuration>,
        /// The configuration to store.
        next: Configuration,
    },
    /// An active configuration no longer lists this member: it holds nothing any more. A
    /// host that wants it back starts a new member (under a new id).
    Removed,
}

/// One key as this member holds it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct KeyState {
    shard: Shard,
    /// The epoch of the log the shard follows and the index of the last entry applied.
    position: LogPosition,
    /// Present while this member is the key's serving primary.
    primary: Option<PrimaryLog>,
}

/// One DSO node. Nodes compare and hash by everything but their registry (which types they
/// know, fixed at construction), so a model checker can tell their states apart.
#[derive(Clone, Debug)]
pub struct Node {
    config: NodeConfig,
    registry: Arc<Registry>,
    me: Member,
    /// Copies of each key this member asks for when it joins.
    rf: usize,
    /// `None`: a standalone node (one member, no peers, no store).
    timing: Option<ClusterTiming>,
    /// The latest configuration record seen.
    cluster: Configuration,
    placement: Placement,
    /// The highest epoch seen anywhere: nothing older is served or accepted.
    fence: u64,
    /// Serving as primary and backup in `cluster`, which is active.
    serving: bool,
    keys: BTreeMap<String, KeyState>,
    transfer: Option<Transfer>,
    /// This member's lifecycle: whether it asks to join, has joined, asks to leave.
    phase: Phase,
    /// This process put its id into the cluster (proposed itself, or started in the first
    /// configuration): a listing of its id is its own, not an earlier process's under the
    /// same id (which held state this one never had).
    entered: bool,
    /// The newest epoch peers spoke of (see `Node::hear_of_epoch`).
    newest_epoch_heard: u64,
    /// When the store last answered (`Node::handle_config`).
    store_heard_ms: u64,
    /// The epoch this member marked itself ready in (it may activate that one).
    ready_for: Option<u64>,
    /// Parked calls of served keys: their key and deadline (volatile, re-armed on failover).
    parked: BTreeMap<CallId, (String, Option<u64>)>,
    deadlines: BTreeSet<(u64, CallId)>,
    /// Where to send each unanswered call's answer (volatile).
    routes: BTreeMap<CallId, ClientAddr>,
    last_heard: BTreeMap<MemberId, u64>,
    /// Probes a joiner sent and answered, and joiners that probed this member (see `probe`).
    probes: probe::Probes,
    /// When a pending configuration left this joined member out before it held anything.
    left_out_at_ms: Option<u64>,
    /// How often it asked to join again since it last served (each time it waits twice as
    /// long, so that a joiner the others keep taking out does not restart transfers forever).
    rejoins: u32,
    /// Members reported dead by an outside failure detector ([`Node::suspect`]).
    suspected: BTreeSet<MemberId>,
    next_tick_ms: Option<u64>,
    ticks: u64,
    outputs: VecDeque<Output>,
    /// The stale copy the `stale_reads` canary answers reads from, and calls since its refresh.
    #[cfg(crucial_canary)]
    stale: (BTreeMap<String, Shard>, u64),
}

/// Where a member is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Phase {
    /// Not yet listed: asks to be added.
    Joining,
    /// Listed (or was).
    Joined,
    /// Asks to be removed.
    Leaving,
    /// Removed from an active configuration; holds nothing.
    Gone,
}

impl PartialEq for Node {
    fn eq(&self, other: &Self) -> bool {
        self.config == other.config
            && self.me == other.me
            && self.cluster == other.cluster
            && self.fence == other.fence
            && self.serving == other.serving
            && self.keys == other.keys
            && self.transfer == other.transfer
            && self.phase == other.phase
            && self.entered == other.entered
            && self.newest_epoch_heard == other.newest_epoch_heard
            && self.ready_for == other.ready_for
            && self.parked == other.parked
            && self.deadlines == other.deadlines
            && self.routes == other.routes
            && self.suspected == other.suspected
            && self.probes == other.probes
            && self.outputs == other.outputs
    }
}

impl Eq for Node {}

impl std::hash::Hash for Node {
    fn hash<H: std::hash::Hasher>(&self, hasher: &mut H) {
        (&self.config, &self.me, &self.cluster, self.fence, self.serving, &self.keys).hash(hasher);
        (&self.transfer, self.phase, self.entered, self.ready_for, &self.parked, &self.deadlines)
            .hash(hasher);
        (&self.routes, &self.suspected, &self.probes, &self.outputs).hash(hasher);
    }
}

impl Node {
    /// A standalone node: the only member of its own cluster, serving every key.
    pub fn new(config: NodeConfig, registry: Arc<Registry>) -> Result<Self, ConfigError> {
        let me = Member { id: 0, addr: String::new() };
        let cluster = Configuration::initial(vec![me.clone()], 1);
        let mut node = Self::build(config, registry, me, 1, None, cluster)?;
        node.serving = true;
        node.phase = Phase::Joined;
        node.entered = true;
        Ok(node)
    }

    /// A cluster member that will join the configuration it reads from the store, asking for
    /// `rf` copies of each key. It serves once a configuration that lists it is active.
    pub fn member(
        config: NodeConfig,
        registry: Arc<Registry>,
        me: Member,
        rf: usize,
        timing: ClusterTiming,
    ) -> Result<Self, ConfigError> {
        ConfigError::check(rf > 0, "rf", rf, "must be positive")?;
        timing.validate()?;
        let placeholder = Configuration { epoch: 0, ..Configuration::initial(vec![me.clone()], rf) };
        let mut node = Self::build(config, registry, me, rf, Some(timing), placeholder)?;
        node.next_tick_ms = Some(0);
        node.outputs.push_back(Output::LoadConfig);
        Ok(node)
    }

    fn build(
        config: NodeConfig,
        registry: Arc<Registry>,
        me: Member,
        rf: usize,
        timing: Option<ClusterTiming>,
        cluster: Configuration,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        #[cfg(crucial_canary)]
        if config.canary != Canary::default() {
            tracing::warn!(canary = ?config.canary, "{CANARY_BUILD_MARKER}: deliberate bugs switched on");
        }
        Ok(Self {
            config,
            registry,
            me,
            rf,
            timing,
            placement: Placement::new(&cluster),
            fence: cluster.epoch,
            cluster,
            serving: false,
            keys: BTreeMap::new(),
            transfer: None,
            phase: Phase::Joining,
            entered: false,
            newest_epoch_heard: 0,
            store_heard_ms: 0,
            ready_for: None,
            parked: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            routes: BTreeMap::new(),
            last_heard: BTreeMap::new(),
            probes: probe::Probes::default(),
            left_out_at_ms: None,
            rejoins: 0,
            suspected: BTreeSet::new(),
            next_tick_ms: None,
            ticks: 0,
            outputs: VecDeque::new(),
            #[cfg(crucial_canary)]
            stale: (BTreeMap::new(), 0),
        })
    }

    /// This member's identity.
    pub fn id(&self) -> MemberId {
        self.me.id
    }

    /// This member as configurations list it.
    pub fn identity(&self) -> &Member {
        &self.me
    }

    /// The latest configuration this member has seen.
    pub fn configuration(&self) -> &Configuration {
        &self.cluster
    }

    /// Where member `id` listens, as the current configuration or its source lists it (or,
    /// for a joiner that probed this member recently, as its probe said).
    pub fn member_addr(&self, id: MemberId) -> Option<&str> {
        let source = self.cluster.source.iter().flat_map(|source| &source.members);
        (self.cluster.members.iter().chain(source))
            .find(|member| member.id == id)
            .map(|member| member.addr.as_str())
            .or_else(|| self.probes.prober_addr(id))
    }

    /// Whether this member serves clients (listed in an active configuration it holds state for).
    pub fn is_serving(&self) -> bool {
        self.serving
    }

    /// How many calls wait parked on this member (blocked until woken or timed out).
    pub fn parked_calls(&self) -> usize {
        self.parked.len()
    }

    /// How many keys this member holds (served, replicated or in transfer).
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Client sessions with records on this member, summed over its keys (a session that used
    /// several keys counts once per key).
    pub fn key_sessions(&self) -> usize {
        self.keys.values().map(|state| state.shard.sessions_held()).sum()
    }

    /// Call records of client sessions on this member, summed over its keys (what a cloud
    /// thread's release frees). Walks every session: for tests and tools, not for metrics.
    pub fn session_records(&self) -> usize {
        self.keys.values().map(|state| state.shard.session_records()).sum()
    }

    /// How far this member's state transfer has got, while one runs.
    pub fn transfer_progress(&self) -> Option<TransferProgress> {
        self.transfer.as_ref().map(Transfer::progress)
    }

    /// The object this member holds under `key`, if any (for checkers and tools).
    pub fn object(&self, key: &str) -> Option<&ObjectBox> {
        self.keys.get(key).and_then(|state| state.shard.object())
    }

    /// The keys this member holds (served, replicated or in transfer).
    pub fn held_keys(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// A key as this member holds it, for checkers: the log position it is at (epoch, index)
    /// and its shard (object, session records, parked calls).
    pub fn replica(&self, key: &str) -> Option<(LogPosition, &Shard)> {
        self.keys.get(key).map(|state| (state.position, &state.shard))
    }

    /// The next deadline at which [`Node::handle_timeout`] has work, if any.
    pub fn poll_timeout(&self) -> Option<u64> {
        let deadline = self.deadlines.first().map(|(deadline, _)| *deadline);
        match (deadline, self.next_tick_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
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
        if !self.serving || self.placement.primary(&call.key) != self.me.id {
            // A member in transition stays silent (the client resends); one that knows who
            // serves the key says so.
            if self.cluster.is_active() && self.cluster.epoch >= self.fence && self.cluster.epoch > 0 {
                self.outputs.push_back(Output::Redirect { to: from, id, config: self.cluster.clone() });
            }
            return;
        }
        let limits = self.config.limits();
        let skip = self.skips_deduplication();
        let state = self.serve_key(&call.key);
        let admission = if skip { Admission::Apply } else { state.shard.admit(&call, limits) };
        match admission {
            Admission::Apply => self.apply_new(now_ms, from, call),
            Admission::Answered(result) => self.respond(&call.key, from, id, result),
            Admission::StillParked => {
                self.routes.insert(id, from);
            }
            Admission::Stale => {
                self.reply(from, id, Err(CallError::StaleCall { session: id.session, seq: id.seq }))
            }
            Admission::Full => {
                self.reply(from, id, Err(CallError::TooManyInFlight { limit: self.config.session_calls_max }))
            }
            Admission::Diverged => {
                self.reply(from, id, Err(CallError::Nondeterministic { session: id.session, seq: id.seq }))
            }
            Admission::Expired => {
                self.reply(from, id, Err(CallError::SessionExpired { session: id.session, seq: id.seq }))
            }
        }
        self.check_invariants();
    }

    /// Time has advanced to `now_ms`: parked calls whose deadline passed get their timeout
    /// answer (logged like a call, so backups expire them too); cluster chores run each tick.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now_ms {
                break;
            }
            self.deadlines.pop_first();
            #[cfg(crucial_canary)]
            if self.config.canary.drop_timeouts {
                if let Some(parked) = self.parked.get_mut(&id) {
                    parked.1 = None;
                }
                continue;
            }
            self.expire(id);
        }
        if self.next_tick_ms.is_some_and(|tick| tick <= now_ms) {
            self.tick(now_ms);
        }
        self.check_invariants();
    }

    /// Client `from` went away: its parked calls stay parked but have nowhere to be answered
    /// until the client retries them.
    pub fn handle_disconnect(&mut self, from: ClientAddr) {
        self.routes.retain(|_, to| *to != from);
        self.check_invariants();
    }

    /// A message from member `from`.
    pub fn handle_peer(&mut self, now_ms: u64, from: MemberId, message: PeerMessage) {
        if self.phase == Phase::Gone {
            // Retired: it holds nothing and answers nothing.
            return;
        }
        self.last_heard.insert(from, now_ms);
        match message {
            PeerMessage::Heartbeat { epoch } => self.hear_of_epoch(epoch),
            PeerMessage::Pull { config, after } => self.on_pull(now_ms, from, config, after),
            PeerMessage::Shards { epoch, after, shards, more } => {
                self.on_shards(from, epoch, after, shards, more)
            }
            PeerMessage::Install { epoch, after, shards, more: _ } => {
                self.on_install(from, epoch, after, shards)
            }
            PeerMessage::Installed { epoch, after } => self.on_installed(from, epoch, after),
            PeerMessage::Replicate { epoch, key, first, entries } => {
                self.on_replicate(from, epoch, key, first, entries)
            }
            PeerMessage::Ack { epoch, key, applied } => self.on_ack(from, epoch, &key, applied),
            PeerMessage::Probe { epoch, from: prober } if prober.id == from => {
                self.on_probe(now_ms, prober, epoch)
            }
            PeerMessage::Probe { .. } => {
                tracing::warn!(from, "a probe that names another member than its sender; ignored")
            }
            PeerMessage::ProbeReply { epoch, quorate } => self.on_probe_reply(now_ms, from, epoch, quorate),
        }
        self.check_invariants();
    }

    #[cfg(crucial_canary)]
    fn skips_deduplication(&self) -> bool {
        self.config.canary.skip_deduplication
    }

    #[cfg(not(crucial_canary))]
    fn skips_deduplication(&self) -> bool {
        false
    }

    /// The state of a key this member serves as primary, created empty on first use.
    fn serve_key(&mut self, key: &str) -> &mut KeyState {
        if !self.keys.contains_key(key) {
            let backups = self.placement.replicas(key).split_off(1);
            let state = KeyState {
                shard: Shard::default(),
                position: LogPosition::start(self.cluster.epoch),
                primary: Some(PrimaryLog::new(&backups)),
            };
            self.keys.insert(key.to_string(), state);
        }
        self.keys.get_mut(key).expect("inserted above")
    }

    fn apply_new(&mut self, now_ms: u64, from: ClientAddr, call: Call) {
        #[cfg(crucial_canary)]
        if let Some(result) = self.stale_read(&call) {
            self.reply(from, call.id, result);
            return;
        }
        let (id, key) = (call.id, call.key.clone());
        let bytes_max = self.config.object_bytes_max;
        let state = self.keys.get_mut(&key).expect("served key");
        let mut unbounded = SizeBound::default();
        let bound = state.primary.as_mut().map_or(&mut unbounded, |log| &mut log.size);
        let (effects, entry) = match state.shard.refusal_for_size(&self.registry, &call, bound, bytes_max) {
            Some(error) => (state.shard.refuse(&call, error.clone()), Entry::Refuse(call, error)),
            None => (state.shard.apply(&self.registry, &call), Entry::Call(call)),
        };
        #[cfg(crucial_canary)]
        if let (true, Entry::Call(call)) = (self.config.canary.forget_records_on_delete, &entry) {
            state.shard.forget_records_on_delete(call);
        }
        self.append(&key, entry);
        if let Some(Parked { timeout_ms }) = effects.parked {
            self.routes.insert(id, from);
            self.park(now_ms, id, key.clone(), timeout_ms);
        }
        self.finish(&key, effects, Some((id, from)));
    }

    /// The `stale_reads` canary: answers a read-only call from the stale copy.
    #[cfg(crucial_canary)]
    fn stale_read(&mut self, call: &Call) -> Option<CallResult> {
        const REFRESH_CALLS: u64 = 8;
        if !self.config.canary.stale_reads {
            return None;
        }
        self.stale.1 += 1;
        if self.stale.1.is_multiple_of(REFRESH_CALLS) {
            self.stale.0 = self.keys.iter().map(|(key, state)| (key.clone(), state.shard.clone())).collect();
        }
        let crate::protocol::Action::Invoke { method, args } = &call.action else { return None };
        let shard = self.stale.0.get_mut(&call.key)?;
        let object = shard.object().filter(|object| object.0.type_name() == call.type_name)?;
        if !object.0.is_read_only_call(method, args) {
            return None;
        }
        let effects = shard.apply(&self.registry, call);
        effects.answers.into_iter().next().map(|(_, result)| result)
    }

    fn park(&mut self, now_ms: u64, id: CallId, key: String, timeout_ms: Option<u64>) {
        let deadline_ms = timeout_ms.map(|timeout| now_ms.saturating_add(timeout));
        // Only a node applying a call twice (the de-duplication canary) parks an id again.
        if let Some((_, Some(old))) = self.parked.get(&id) {
            self.deadlines.remove(&(*old, id));
        }
        if let Some(deadline) = deadline_ms {
            self.deadlines.insert((deadline, id));
        }
        self.parked.insert(id, (key, deadline_ms));
    }

    /// Logs, for every key with timed parked calls, the time each has left, so that a new
    /// primary after a failover keeps their deadlines (up to the interval between these
    /// entries) instead of restarting their timeouts.
    fn log_remaining(&mut self, now_ms: u64) {
        let mut by_key: BTreeMap<String, Vec<(CallId, u64)>> = BTreeMap::new();
        for (id, (key, deadline)) in &self.parked {
            if let Some(deadline) = deadline {
                by_key.entry(key.clone()).or_default().push((*id, deadline.saturating_sub(now_ms)));
            }
        }
        for (key, remaining) in by_key {
            // Not while a backup lags: an unreachable one would otherwise grow the log.
            let caught_up =
                |state: &&mut KeyState| state.primary.as_ref().is_some_and(PrimaryLog::is_caught_up);
            let Some(state) = self.keys.get_mut(&key).filter(caught_up) else { continue };
            state.shard.set_remaining(&remaining);
            self.append(&key, Entry::Remaining(remaining));
        }
    }

    fn expire(&mut self, id: CallId) {
        let Some((key, _)) = self.parked.get(&id).cloned() else { return };
        let Some(state) = self.keys.get_mut(&key) else { return };
        let effects = state.shard.expire(id);
        if effects.answers.is_empty() {
            return;
        }
        self.append(&key, Entry::Expire(id));
        self.finish(&key, effects, None);
    }

    /// Routes the answers of applied calls (held until the backups hold the entry); `caller`:
    /// the call just applied and who sent it, answered without a route when not parked.
    fn finish(&mut self, key: &str, effects: Effects, mut caller: Option<(CallId, ClientAddr)>) {
        for (id, result) in effects.answers {
            if let Some((_, Some(deadline))) = self.parked.remove(&id) {
                self.deadlines.remove(&(deadline, id));
            }
            let route = self.routes.remove(&id);
            // The caller gets one answer (a canary that skips deduplication can answer the
            // same id twice in one step; the second had no route).
            let to = match caller {
                Some((applied, from)) if applied == id => caller.take().map(|_| from),
                _ => route,
            };
            if let Some(to) = to {
                self.respond(key, to, id, result);
            }
        }
    }

    fn reply(&mut self, to: ClientAddr, id: CallId, result: CallResult) {
        self.outputs.push_back(Output::Reply { to, id, result });
    }

    fn send(&mut self, to: MemberId, message: PeerMessage) {
        self.outputs.push_back(Output::Send { to, message });
    }

    /// What holds after every input (checked in debug builds: tests, fuzzing, the simulator's
    /// test runs).
    fn check_invariants(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        let timed = self.parked.values().filter(|(_, deadline)| deadline.is_some()).count();
        assert_eq!(timed, self.deadlines.len(), "every timed parked call has one deadline");
        for (deadline, id) in &self.deadlines {
            let parked = self.parked.get(id).map(|(_, at)| *at);
            assert_eq!(parked, Some(Some(*deadline)), "a deadline of {id:?} that is not its parked call's");
        }
        if self.serving {
            assert!(self.cluster.epoch >= self.fence, "serving a fenced epoch");
            assert!(
                self.cluster.is_active() && self.cluster.is_member(self.me.id),
                "serving outside an active configuration that lists this member"
            );
            for (key, _) in self.parked.values() {
                let primary = self.keys.get(key).is_some_and(|state| state.primary.is_some());
                assert!(primary, "a call parked on {key:?}, which this member is not primary of");
            }
            for (key, state) in &self.keys {
                let Some(log) = &state.primary else { continue };
                assert_eq!(
                    state.position.epoch, self.cluster.epoch,
                    "{key:?}'s primary log is of another epoch"
                );
                log.check(state.position.applied);
            }
        } else {
            assert!(
                self.parked.is_empty() && self.deadlines.is_empty(),
                "calls parked on a member not serving"
            );
            let logs = self.keys.values().filter(|state| state.primary.is_some()).count();
            assert_eq!(logs, 0, "a primary log on a member not serving");
        }
        if self.phase == Phase::Gone {
            assert!(
                !self.serving && self.keys.is_empty() && self.transfer.is_none(),
                "a retired member holds state"
            );
        }
    }
}
