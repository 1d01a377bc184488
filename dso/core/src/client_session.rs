//! The sans-IO client session: numbers calls, remembers them until answered, decides when to
//! resend (with the same sequence number), where to send (each key's primary in the
//! configuration learned from redirects, then the other members, then the addresses it was
//! given) and when to give up. The async client (in the host crate) and the simulator drive
//! it; it does no I/O and reads no clock.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::call::{Action, Call};
use crate::cluster::{Configuration, Routing};
use crate::object::CallId;
use crate::session::CallResult;
use crate::{CallError, ConfigError};

/// Retry policy of a session.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SessionConfig {
    /// Resend an unanswered call after this long.
    pub resend_after_ms: u64,
    /// Give up on a call after this long (`None`: never, e.g. for long barrier waits).
    pub call_timeout_ms: Option<u64>,
    /// Calls in flight at once; more are refused until some are answered.
    pub in_flight_max: usize,
    /// Never acknowledge answers, so that the nodes keep every call's record until
    /// it sends an [`Action::Release`] (which acknowledges every call before it): a cloud thread's session, whose re-run replays its calls
    /// and must find each answer recorded. Each key then holds at most the node's
    /// `session_calls_max` records of the session; past that its calls fail with
    /// [`crate::CallError::TooManyInFlight`].
    pub retain_records: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            resend_after_ms: 1_000,
            call_timeout_ms: Some(60_000),
            in_flight_max: 1024,
            retain_records: false,
        }
    }
}

impl SessionConfig {
    /// Checks that the policy can work: a window of no calls would hang every call, a resend
    /// interval of zero would resend without pause, a timeout of zero gives up at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = "must be positive";
        ConfigError::check(self.in_flight_max > 0, "in_flight_max", self.in_flight_max, positive)?;
        ConfigError::check(self.resend_after_ms > 0, "resend_after_ms", self.resend_after_ms, positive)?;
        ConfigError::check(self.call_timeout_ms != Some(0), "call_timeout_ms", self.call_timeout_ms, positive)
    }
}

/// An unanswered call.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct InFlight {
    call: Call,
    resend_at_ms: u64,
    give_up_at_ms: Option<u64>,
    /// Resends since the session last learned a configuration: after [`RESENDS_TO_PRIMARY`]
    /// unanswered ones, each resend also goes to another member in turn (a primary cut off
    /// from this client, or a former one that never learns the new configuration, answers no
    /// resend; any member redirects).
    resends: u32,
}

/// Unanswered resends to a key's primary before each resend also tries another member.
pub const RESENDS_TO_PRIMARY: u32 = 2;

/// What to do about an unanswered call whose timer fired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetryDecision {
    /// Resend this (same id).
    Resend(Call),
    /// Stop waiting: the call may or may not have taken effect.
    GiveUp,
    /// Not due yet, or already answered.
    Wait,
}

/// Why [`ClientSession::start_call`] started nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotStarted {
    /// `in_flight_max` calls are unanswered.
    WindowFull,
    /// A node refused an earlier call because of the session itself (see
    /// [`ClientSession::refusal`]): a replaying session that went astray makes no call the
    /// earlier run never made.
    Refused(CallError),
}

/// Where a session that retains records stands: enough for another run of the same session to
/// send the releases this one would send, under the same sequence numbers and history, so that
/// a key that took a release answers it from its record and one that did not applies it. A
/// cloud thread stores it with its outcome: whichever invocation finds the outcome finishes the
/// release an interrupted one began.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReleasePoint {
    /// The session.
    pub session: u64,
    /// The sequence number of the session's next call.
    pub next_seq: u64,
    /// The digest of the calls before it.
    pub history: u64,
    /// The keys holding records of the session, in the order they are released.
    pub keys: Vec<String>,
}

/// One client session.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientSession {
    session: u64,
    next_seq: u64,
    /// Digest of the calls started so far (kept only by sessions that retain records).
    history: u64,
    /// Keys holding records of this session not yet released (only for sessions that retain
    /// records).
    unreleased: BTreeSet<String>,
    /// The first refusal of a call because of the session itself; no call but releases starts
    /// after it.
    refusal: Option<Box<CallError>>,
    in_flight: BTreeMap<u64, InFlight>,
    config: SessionConfig,
    /// The addresses the session was given, tried before a redirect told the configuration.
    seeds: Vec<String>,
    /// The configuration learned from redirects.
    routing: Option<Routing>,
    /// The deliberate bug of [`ClientSession::with_refusals_from_duplicates`].
    #[cfg(crucial_canary)]
    takes_refusals_from_duplicates: bool,
}

impl ClientSession {
    /// A session with id `session` (unique per client; a cloud thread derives it from its id).
    pub fn new(session: u64, config: SessionConfig) -> Self {
        Self {
            session,
            next_seq: 1,
            history: if config.retain_records { 1 } else { 0 },
            unreleased: BTreeSet::new(),
            refusal: None,
            in_flight: BTreeMap::new(),
            config,
            seeds: Vec::new(),
            routing: None,
            #[cfg(crucial_canary)]
            takes_refusals_from_duplicates: false,
        }
    }

    /// This session, routing calls through `seeds` (members' addresses, the first one first)
    /// until a redirect tells it the configuration.
    pub fn with_seeds(mut self, seeds: Vec<String>) -> Self {
        self.seeds = seeds;
        self
    }

    /// A member answered call `id` with the configuration it serves in. Whether it is newer
    /// than the one routed by: then every unanswered call should go out again, to its
    /// primary in that configuration.
    pub fn handle_redirect(&mut self, id: CallId, config: Configuration) -> bool {
        if id.session != self.session {
            return false;
        }
        let learned = match &mut self.routing {
            Some(routing) => routing.learn(config),
            None => {
                self.routing = Some(Routing::new(config));
                true
            }
        };
        if learned {
            // A new primary for every call: each starts over with it.
            for in_flight in self.in_flight.values_mut() {
                in_flight.resends = 0;
            }
        }
        learned
    }

    /// Where the primary of `key` listens, as far as the session knows (else its first seed).
    pub fn primary_addr(&self, key: &str) -> Option<&str> {
        let primary = self.routing.as_ref().and_then(|routing| routing.primary_addr(key));
        primary.or(self.seeds.first().map(String::as_str))
    }

    /// Where to send unanswered call `seq`, in order: the key's primary, then the other
    /// members and seeds (a connection refused moves on to the next). Empty for a call not in
    /// flight. See [`ClientSession::also_ask`] for the member a resend also goes to.
    pub fn targets(&self, seq: u64) -> Vec<String> {
        let Some(in_flight) = self.in_flight.get(&seq) else { return Vec::new() };
        let members =
            self.routing.iter().flat_map(|routing| &routing.config().members).map(|m| m.addr.as_str());
        let mut targets: Vec<String> = Vec::new();
        let candidates = self
            .primary_addr(&in_flight.call.key)
            .into_iter()
            .chain(members)
            .chain(self.seeds.iter().map(String::as_str));
        for addr in candidates {
            if !targets.iter().any(|known| known == addr) {
                targets.push(addr.to_string());
            }
        }
        targets
    }

    /// Where unanswered call `seq` also goes, besides its first reachable target: after
    /// [`RESENDS_TO_PRIMARY`] unanswered resends, each resend also asks the next of the other
    /// members and seeds in turn. The primary keeps getting every resend (it may only be
    /// slow), and a member that is not the key's primary answers with a redirect, so a
    /// client whose primary was cut off learns the new configuration at its next resend
    /// after one exists, not a resend later.
    pub fn also_ask(&self, seq: u64) -> Option<String> {
        let turns = self.in_flight.get(&seq)?.resends.checked_sub(RESENDS_TO_PRIMARY + 1)?;
        let targets = self.targets(seq);
        (targets.len() > 1).then(|| targets[1 + turns as usize % (targets.len() - 1)].clone())
    }

    /// The session id.
    pub fn id(&self) -> u64 {
        self.session
    }

    /// How many calls the session has started (its last sequence number).
    pub fn calls_started(&self) -> u64 {
        self.next_seq - 1
    }

    /// Starts a call, unless the window is full or the session was refused (releases still
    /// start then); the call to send is the one the session keeps for resends.
    pub fn start_call(
        &mut self,
        now_ms: u64,
        key: String,
        type_name: String,
        action: Action,
    ) -> Result<&Call, NotStarted> {
        if self.in_flight.len() >= self.config.in_flight_max {
            return Err(NotStarted::WindowFull);
        }
        let releases = matches!(action, Action::Release);
        if let Some(refusal) = self.refusal.as_deref().filter(|_| !releases) {
            return Err(NotStarted::Refused(refusal.clone()));
        }
        if self.config.retain_records && !releases && !self.unreleased.contains(&key) {
            self.unreleased.insert(key.clone());
        }
        let id = CallId { session: self.session, seq: self.next_seq };
        let acked_below = match action {
            Action::Release => id.seq,
            _ => self.acked_below(&key),
        };
        self.next_seq += 1;
        let call = Call { id, acked_below, key, type_name, action, history: self.history };
        if self.config.retain_records {
            // Never 0, which marks sessions that do not replay.
            self.history = call.fingerprint().max(1);
        }
        let give_up_at_ms = self.config.call_timeout_ms.map(|timeout| now_ms.saturating_add(timeout));
        let resend_at_ms = now_ms.saturating_add(self.config.resend_after_ms);
        let in_flight = InFlight { call, resend_at_ms, give_up_at_ms, resends: 0 };
        Ok(&self.in_flight.entry(id.seq).or_insert(in_flight).call)
    }

    /// An answer arrived; whether the call was still waiting for it. Only such an answer
    /// counts: a late copy of an answer already taken (a resend that was in flight when the
    /// first copy was answered, then refused as already acknowledged) is not news, and must
    /// not refuse the session. A refusal because of the session itself (a non-deterministic
    /// replay, a call whose record was released, too many records on one key, records a
    /// replaying session needs evicted) stops the session from starting further calls.
    pub fn handle_reply(&mut self, id: CallId, result: &CallResult) -> bool {
        if id.session != self.session {
            return false;
        }
        let Some(answered) = self.in_flight.remove(&id.seq) else {
            // A session that retains its records acknowledges nothing, so no answer of it is
            // ever refused as already acknowledged: a late one that refuses it (its records
            // released by another run, a replay that diverged in a call it stopped waiting
            // for) still says something true of the session.
            if self.config.retain_records || self.takes_refusals_from_duplicates() {
                self.note_refusal(result);
            }
            return false;
        };
        if answered.call.action == Action::Release {
            self.unreleased.remove(&answered.call.key);
        }
        self.note_refusal(result);
        true
    }

    fn note_refusal(&mut self, result: &CallResult) {
        let refusal = match result {
            Err(
                error @ (CallError::Nondeterministic { .. }
                | CallError::StaleCall { .. }
                | CallError::TooManyInFlight { .. }),
            ) => Some(error),
            // A replaying session cannot replay without its records.
            Err(error @ CallError::SessionExpired { .. }) if self.config.retain_records => Some(error),
            _ => None,
        };
        if let Some(error) = refusal {
            self.refusal.get_or_insert_with(|| Box::new(error.clone()));
        }
    }

    #[cfg(crucial_canary)]
    fn takes_refusals_from_duplicates(&self) -> bool {
        self.takes_refusals_from_duplicates
    }

    #[cfg(not(crucial_canary))]
    fn takes_refusals_from_duplicates(&self) -> bool {
        false
    }

    /// The deliberate bug of a client that took a refusal from any answer, duplicates too
    /// (as the async client once did): a late duplicate of an answered call, refused as
    /// already acknowledged, then failed every later call of the session.
    #[cfg(crucial_canary)]
    pub fn with_refusals_from_duplicates(mut self) -> Self {
        self.takes_refusals_from_duplicates = true;
        self
    }

    /// The first call refused because of the session itself, if any.
    pub fn refusal(&self) -> Option<&CallError> {
        self.refusal.as_deref()
    }

    /// The keys holding records of this session that no answered release has freed yet.
    pub fn unreleased_keys(&self) -> impl Iterator<Item = &str> {
        self.unreleased.iter().map(String::as_str)
    }

    /// Where this session stands, for another run of it to release its records.
    pub fn release_point(&self) -> ReleasePoint {
        let keys = self.unreleased.iter().cloned().collect();
        ReleasePoint { session: self.session, next_seq: self.next_seq, history: self.history, keys }
    }

    /// This session, before it starts any call of its own, continued as the session of `point`
    /// from where another run of that session stood (see [`ReleasePoint`]).
    pub fn resumed_at(mut self, point: ReleasePoint) -> Self {
        debug_assert_eq!(self.next_seq, 1, "a session resumes before its first call");
        self.session = point.session;
        self.next_seq = point.next_seq.max(1);
        self.history = point.history;
        self.unreleased = point.keys.into_iter().collect();
        self
    }

    /// The timer of call `seq` fired at `now_ms`.
    pub fn handle_call_timeout(&mut self, now_ms: u64, seq: u64) -> RetryDecision {
        let Some(key) = self.in_flight.get(&seq).map(|in_flight| in_flight.call.key.clone()) else {
            return RetryDecision::Wait;
        };
        let acked_below = self.acked_below(&key);
        let Some(in_flight) = self.in_flight.get_mut(&seq) else { return RetryDecision::Wait };
        if in_flight.give_up_at_ms.is_some_and(|give_up| now_ms >= give_up) {
            self.in_flight.remove(&seq);
            return RetryDecision::GiveUp;
        }
        if now_ms < in_flight.resend_at_ms {
            return RetryDecision::Wait;
        }
        in_flight.resend_at_ms = now_ms.saturating_add(self.config.resend_after_ms);
        in_flight.resends = in_flight.resends.saturating_add(1);
        if !matches!(in_flight.call.action, Action::Release) {
            in_flight.call.acked_below = acked_below;
        }
        RetryDecision::Resend(in_flight.call.clone())
    }

    /// When call `seq` next needs attention, if it is unanswered.
    pub fn call_deadline(&self, seq: u64) -> Option<u64> {
        let in_flight = self.in_flight.get(&seq)?;
        Some(in_flight.give_up_at_ms.map_or(in_flight.resend_at_ms, |g| g.min(in_flight.resend_at_ms)))
    }

    /// The earliest deadline over all unanswered calls.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.in_flight.keys().filter_map(|seq| self.call_deadline(*seq)).min()
    }

    /// Every unanswered call, oldest first, for resending on a new connection.
    pub fn unanswered(&self) -> Vec<Call> {
        (self.in_flight.values())
            .map(|in_flight| match in_flight.call.action {
                Action::Release => in_flight.call.clone(),
                _ => Call { acked_below: self.acked_below(&in_flight.call.key), ..in_flight.call.clone() },
            })
            .collect()
    }

    /// Abandons a call (its caller went away); it counts as acknowledged from now on.
    pub fn abandon(&mut self, seq: u64) {
        self.in_flight.remove(&seq);
    }

    /// What the session's calls on `key` acknowledge to that key's records: every call below
    /// the oldest one on `key` still unanswered (calls on other keys have no records there, so
    /// a long wait elsewhere holds nothing back), or nothing for a session that retains its
    /// records.
    fn acked_below(&self, key: &str) -> u64 {
        if self.config.retain_records {
            return 1;
        }
        (self.in_flight.values())
            .find(|in_flight| in_flight.call.key == key)
            .map_or(self.next_seq, |in_flight| in_flight.call.id.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invoke() -> Action {
        Action::Invoke { method: "get".into(), args: vec![] }
    }

    #[test]
    fn resends_keep_the_sequence_number_and_acknowledge_answered_calls() {
        let config = SessionConfig {
            resend_after_ms: 10,
            call_timeout_ms: Some(100),
            in_flight_max: 2,
            retain_records: false,
        };
        let mut session = ClientSession::new(5, config);
        let first = session.start_call(0, "k".into(), "Counter".into(), invoke()).unwrap().clone();
        let second = session.start_call(0, "k".into(), "Counter".into(), invoke()).unwrap().clone();
        assert_eq!((first.id.seq, second.id.seq, second.acked_below), (1, 2, 1));
        assert_eq!(
            session.start_call(0, "k".into(), "Counter".into(), invoke()),
            Err(NotStarted::WindowFull),
            "window is full"
        );
        assert_eq!(session.handle_call_timeout(5, 2), RetryDecision::Wait);
        assert!(session.handle_reply(first.id, &Ok(Vec::new())));
        let late = Err(CallError::StaleCall { session: 5, seq: first.id.seq });
        assert!(!session.handle_reply(first.id, &late), "a duplicate answer is not news");
        assert_eq!(session.refusal(), None, "a late copy refused as acknowledged refuses nothing");
        match session.handle_call_timeout(10, 2) {
            RetryDecision::Resend(call) => assert_eq!((call.id, call.acked_below), (second.id, 2)),
            other => panic!("expected a resend, got {other:?}"),
        }
        assert_eq!(session.handle_call_timeout(100, 2), RetryDecision::GiveUp);
        assert_eq!(session.poll_timeout(), None);
    }

    #[test]
    fn calls_go_to_the_primary_learned_from_redirects_and_resends_also_to_the_others_in_turn() {
        use crate::cluster::{Member, Placement};
        let config = SessionConfig { resend_after_ms: 10, call_timeout_ms: None, ..SessionConfig::default() };
        let mut session = ClientSession::new(5, config).with_seeds(vec!["seed".into()]);
        let call = session.start_call(0, "k".into(), "Counter".into(), invoke()).unwrap().clone();
        assert_eq!(session.targets(call.id.seq), vec!["seed".to_string()], "no configuration yet");
        let members = (1..=3).map(|id| Member { id, addr: format!("m{id}") }).collect();
        let cluster = Configuration::initial(members, 2);
        assert!(session.handle_redirect(call.id, cluster.clone()));
        assert!(!session.handle_redirect(call.id, cluster.clone()), "nothing new");
        let primary = format!("m{}", Placement::new(&cluster).primary("k"));
        let first = session.targets(call.id.seq);
        assert_eq!((first[0].as_str(), first.len()), (primary.as_str(), 4), "primary, two others, the seed");
        let mut asked = Vec::new();
        for round in 1..=8 {
            assert!(matches!(session.handle_call_timeout(round * 10, call.id.seq), RetryDecision::Resend(_)));
            assert_eq!(session.targets(call.id.seq)[0], primary, "every resend goes to the primary");
            asked.push(session.also_ask(call.id.seq));
        }
        assert_eq!(&asked[..2], &[None, None], "the first resends go to the primary only");
        let others: Vec<String> = asked[2..].iter().map(|other| other.clone().expect("asked")).collect();
        let tried: std::collections::BTreeSet<&String> = others.iter().collect();
        assert_eq!(
            tried.len(),
            3,
            "then each resend also to another member or the seed, in turn: {others:?}"
        );
        assert!(!tried.contains(&primary));
        assert_eq!(others[..3], others[3..], "round after round");
        let newer = cluster.next(cluster.members.clone());
        assert!(session.handle_redirect(call.id, newer));
        assert!(matches!(session.handle_call_timeout(90, call.id.seq), RetryDecision::Resend(_)));
        assert_eq!(session.also_ask(call.id.seq), None, "a new configuration starts the turns over");
    }

    #[test]
    fn a_long_wait_on_one_key_holds_back_no_acknowledgement_on_another() {
        let mut session = ClientSession::new(5, SessionConfig::default());
        let parked =
            session.start_call(0, "barrier".into(), "CyclicBarrier".into(), invoke()).unwrap().clone();
        let mut last = None;
        for _ in 0..5_000 {
            let call = session.start_call(0, "k".into(), "Counter".into(), invoke()).unwrap().clone();
            assert!(session.handle_reply(call.id, &Ok(Vec::new())));
            last = Some(call);
        }
        let last = last.unwrap();
        assert_eq!(last.acked_below, last.id.seq, "every earlier call on k was answered");
        let next_on_barrier =
            session.start_call(0, "barrier".into(), "CyclicBarrier".into(), invoke()).unwrap().clone();
        assert_eq!(next_on_barrier.acked_below, parked.id.seq, "the parked call is still unanswered");
    }

    #[test]
    fn a_retaining_session_acknowledges_nothing_until_it_releases() {
        let config = SessionConfig { retain_records: true, ..SessionConfig::default() };
        let mut session = ClientSession::new(5, config);
        let first = session.start_call(0, "k".into(), "Counter".into(), invoke()).unwrap().clone();
        assert!(session.handle_reply(first.id, &Ok(Vec::new())));
        let second = session.start_call(0, "k".into(), "Counter".into(), invoke()).unwrap().clone();
        assert_eq!(second.acked_below, 1, "the first answer stays recorded for replays");
        assert!(session.handle_reply(second.id, &Ok(Vec::new())));
        assert_eq!(session.unreleased_keys().collect::<Vec<_>>(), vec!["k"]);
        let release = session.start_call(0, "k".into(), String::new(), Action::Release).unwrap().clone();
        assert_eq!((release.id.seq, release.acked_below, &release.action), (3, 3, &Action::Release));
        assert_eq!(session.calls_started(), 3);
        assert!(session.handle_reply(release.id, &Ok(Vec::new())));
        assert_eq!(session.unreleased_keys().count(), 0, "an answered release frees the key");
    }

    #[test]
    fn a_resumed_session_sends_the_releases_of_the_run_it_continues() {
        let config = SessionConfig { retain_records: true, ..SessionConfig::default() };
        let mut first_run = ClientSession::new(5, config.clone());
        for key in ["b", "a", "b"] {
            let call = first_run.start_call(0, key.into(), "Counter".into(), invoke()).unwrap().clone();
            assert!(first_run.handle_reply(call.id, &Ok(Vec::new())));
        }
        let point = first_run.release_point();
        assert_eq!(point.keys, vec!["a", "b"]);
        let mut other_run = ClientSession::new(6, config).resumed_at(point);
        for key in ["a", "b"] {
            let released =
                first_run.start_call(0, key.into(), String::new(), Action::Release).unwrap().clone();
            let again = other_run.start_call(0, key.into(), String::new(), Action::Release).unwrap().clone();
            assert_eq!(again, released, "the same call under the same sequence number and history");
            assert_eq!(again.fingerprint(), released.fingerprint());
        }
    }

    #[test]
    fn after_a_session_refusal_only_releases_start() {
        let config = SessionConfig { retain_records: true, ..SessionConfig::default() };
        let mut session = ClientSession::new(5, config);
        let first = session.start_call(0, "k".into(), "Counter".into(), invoke()).unwrap().clone();
        let refusal = CallError::Nondeterministic { session: 5, seq: first.id.seq };
        assert!(session.handle_reply(first.id, &Err(refusal.clone())));
        assert_eq!(session.refusal(), Some(&refusal));
        assert_eq!(
            session.start_call(0, "j".into(), "Counter".into(), invoke()),
            Err(NotStarted::Refused(refusal))
        );
        assert!(session.start_call(0, "k".into(), String::new(), Action::Release).is_ok());
    }
}
