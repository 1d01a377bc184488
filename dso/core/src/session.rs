//! The node's session table: what makes a call take effect once across retries.
//!
//! Each session records the result of every call its client has not yet acknowledged (calls
//! below the client's `acked_below` are forgotten). A retry of a recorded call gets the recorded
//! result; a retry of a parked call re-attaches to the waiter. A call that reuses a recorded
//! sequence number for a different call (a cloud thread whose replay is not deterministic) is
//! refused, never applied. The table is part of the replicated state: every replica applies the
//! same calls in the same order and holds the same table.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::object::CallId;
use crate::CallError;

/// The result of a call, as sent back.
pub type CallResult = Result<Vec<u8>, CallError>;

/// What the table knows of one call.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CallRecord {
    /// Applied; the caller waits for a wakeup.
    Parked,
    /// Applied; this is its result.
    Done(CallResult),
    /// Applied, a read whose result was too large to keep (see
    /// [`crate::shard::RECORDED_READ_BYTES_MAX`]): a retry reads again, which changes nothing
    /// and answers within the retried call's lifetime.
    Reread,
}

/// A recorded call: what it was ([`crate::protocol::Call::fingerprint`]) and what it did.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct Recorded {
    fingerprint: u64,
    record: CallRecord,
}

/// One client session's recorded calls.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct Session {
    /// Calls below this were acknowledged by the client and forgotten here.
    acked_below: u64,
    /// Unacknowledged calls by sequence number.
    calls: BTreeMap<u64, Recorded>,
    /// When the session was last used, in table ticks (for eviction).
    last_used: u64,
    /// The session was evicted once and came back: calls up to this number without a record
    /// are refused as expired (any may be a retry or replay of one applied before).
    expired_up_to: u64,
}

/// How the table sees an arriving call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Never seen: apply it, then [`SessionTable::record`] what happened.
    Apply,
    /// A retry of a call that completed: answer this again.
    Answered(CallResult),
    /// A retry of a parked call: route its eventual answer to the new sender.
    StillParked,
    /// Below what the client acknowledged: a stale duplicate.
    Stale,
    /// The session has `session_calls_max` unacknowledged calls.
    Full,
    /// A different call was recorded under this sequence number: the client is replaying
    /// non-deterministically. Refused, never applied.
    Diverged,
    /// The session was evicted: its records are gone. Refused, never applied.
    Expired,
}

/// The session table, bounded in sessions and in unacknowledged calls per session.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SessionTable {
    sessions: BTreeMap<u64, Session>,
    /// Sessions by `last_used`, oldest first.
    by_last_use: BTreeMap<u64, u64>,
    ticks: u64,
    /// Sessions evicted (the last [`evictions_remembered`] of them), with the highest sequence number
    /// each had used here and their eviction's number: calls up to that number are refused
    /// as expired (any may be a late retry of one applied); later ones start the session anew.
    evicted: BTreeMap<u64, (u64, u64)>,
    /// `(eviction number, session)`, oldest first.
    evicted_order: std::collections::VecDeque<(u64, u64)>,
    evictions: u64,
}

impl SessionTable {
    /// Classifies an arriving call; `fingerprint` is asked for only when a call is recorded
    /// under its sequence number. Only a call to apply changes the table (it forgets what the
    /// call's `acked_below` releases, and evicts the least recently used session if a new one
    /// would exceed `sessions_max`): duplicates leave it as it was, so replicas that apply the
    /// same calls hold the same table, and a network that repeats messages does not grow the
    /// state space.
    pub fn admit(
        &mut self,
        id: CallId,
        acked_below: u64,
        fingerprint: impl FnOnce() -> u64,
        session_calls_max: usize,
        sessions_max: usize,
    ) -> Admission {
        let admission = match self.sessions.get(&id.session) {
            None if self.evicted.get(&id.session).is_some_and(|(high, _)| id.seq <= *high) => {
                Admission::Expired
            }
            None if id.seq < acked_below => Admission::Stale,
            None => Admission::Apply,
            Some(session) => {
                let acked = acked_below.max(session.acked_below);
                if id.seq < acked {
                    Admission::Stale
                } else {
                    match session.calls.get(&id.seq) {
                        Some(recorded) if recorded.fingerprint != fingerprint() => Admission::Diverged,
                        Some(Recorded { record: CallRecord::Done(result), .. }) => {
                            Admission::Answered(result.clone())
                        }
                        Some(Recorded { record: CallRecord::Parked, .. }) => Admission::StillParked,
                        Some(Recorded { record: CallRecord::Reread, .. }) => Admission::Apply,
                        None if id.seq <= session.expired_up_to => Admission::Expired,
                        None if session.calls.len() >= session_calls_max
                            && session.calls.range(acked..).count() >= session_calls_max =>
                        {
                            Admission::Full
                        }
                        None => Admission::Apply,
                    }
                }
            }
        };
        if admission == Admission::Apply {
            self.enter(id.session, acked_below, sessions_max);
        }
        admission
    }

    /// Notes a new call of `session`: creates the session (evicting if full), forgets the
    /// calls below `acked_below` and marks the session used.
    fn enter(&mut self, id: u64, acked_below: u64, sessions_max: usize) {
        if !self.sessions.contains_key(&id) && self.sessions.len() >= sessions_max {
            self.evict_oldest(sessions_max);
        }
        let expired_up_to = self.evicted.remove(&id).map(|(high, _)| high);
        let session = self.sessions.entry(id).or_default();
        if let Some(high) = expired_up_to {
            session.expired_up_to = session.expired_up_to.max(high);
        }
        if acked_below > session.acked_below {
            session.acked_below = acked_below;
            while session.calls.first_key_value().is_some_and(|(seq, _)| *seq < acked_below) {
                session.calls.pop_first();
            }
        }
        self.ticks += 1;
        self.by_last_use.remove(&session.last_used);
        session.last_used = self.ticks;
        self.by_last_use.insert(self.ticks, id);
        self.check_invariants(sessions_max);
    }

    /// What holds after every change (checked in debug builds): the use order lists each held
    /// session once, at its last use; a held session is not also among the evicted; no more
    /// sessions than `sessions_max` are held (a backup enters what its primary admitted,
    /// within the same limit) and no more evictions than [`evictions_remembered`] are kept;
    /// no session keeps a record below what its client acknowledged.
    fn check_invariants(&self, sessions_max: usize) {
        if !cfg!(debug_assertions) {
            return;
        }
        assert_eq!(self.by_last_use.len(), self.sessions.len(), "one use-order entry per session");
        for (tick, id) in &self.by_last_use {
            let session = self.sessions.get(id).expect("the use order lists only held sessions");
            assert_eq!(session.last_used, *tick, "session {id} listed at another use than its last");
            assert!(
                session.calls.keys().all(|seq| *seq >= session.acked_below),
                "an acknowledged record kept"
            );
            assert!(!self.evicted.contains_key(id), "session {id} both held and evicted");
        }
        assert!(self.sessions.len() <= sessions_max.max(1), "more sessions than sessions_max");
        assert!(
            self.evicted_order.len() <= evictions_remembered(sessions_max),
            "too many evictions remembered"
        );
    }

    /// Records what applying the call `id` with `fingerprint` did.
    pub fn record(&mut self, id: CallId, fingerprint: u64, record: CallRecord) {
        if let Some(session) = self.sessions.get_mut(&id.session) {
            if id.seq >= session.acked_below {
                session.calls.insert(id.seq, Recorded { fingerprint, record });
            }
        }
    }

    /// Records the answer of a parked call that was woken or timed out. A call whose session
    /// was evicted or which was acknowledged meanwhile is not recorded.
    pub fn complete(&mut self, id: CallId, result: CallResult) {
        let recorded = self.sessions.get_mut(&id.session).and_then(|session| session.calls.get_mut(&id.seq));
        if let Some(recorded) = recorded {
            recorded.record = CallRecord::Done(result);
        }
    }

    /// Whether the table holds session `session`.
    pub fn holds(&self, session: u64) -> bool {
        self.sessions.contains_key(&session)
    }

    /// The number of sessions held.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// The call records held, summed over sessions.
    pub fn records(&self) -> usize {
        self.sessions.values().map(|session| session.calls.len()).sum()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// A backup takes a call its primary logged: the session is entered whatever this table's
    /// own limits say (the primary admitted the call; every replica must apply it).
    pub fn admit_logged(&mut self, id: CallId, acked_below: u64, sessions_max: usize) {
        self.enter(id.session, acked_below, sessions_max);
    }

    /// Evicts the least recently used session, remembering it among the last
    /// [`evictions_remembered`] evicted with the highest sequence number it used (its late
    /// retries are refused, not applied again).
    fn evict_oldest(&mut self, sessions_max: usize) {
        let Some((_, session)) = self.by_last_use.pop_first() else { return };
        tracing::warn!(session, "session table full: evicting the least recently used session");
        let Some(evicted) = self.sessions.remove(&session) else { return };
        let high = (evicted.calls.keys().next_back().copied().unwrap_or(0))
            .max(evicted.acked_below.saturating_sub(1))
            .max(evicted.expired_up_to);
        self.evictions += 1;
        self.evicted.insert(session, (high, self.evictions));
        self.evicted_order.push_back((self.evictions, session));
        while self.evicted_order.len() > evictions_remembered(sessions_max) {
            let Some((number, forgotten)) = self.evicted_order.pop_front() else { break };
            if self.evicted.get(&forgotten).is_some_and(|(_, latest)| *latest == number) {
                self.evicted.remove(&forgotten);
            }
        }
    }
}

/// How many evicted sessions a table remembers: `sessions_max`, and never fewer than
/// [`EVICTIONS_REMEMBERED_MIN`], so that a small table under churn (many short sessions on one
/// key) still refuses the late copies of calls that a session evicted a moment ago had made.
pub fn evictions_remembered(sessions_max: usize) -> usize {
    sessions_max.max(EVICTIONS_REMEMBERED_MIN)
}

/// The fewest evicted sessions a table remembers (a few tens of KiB per key, and only on keys
/// whose tables overflowed).
pub const EVICTIONS_REMEMBERED_MIN: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    fn id(seq: u64) -> CallId {
        CallId { session: 7, seq }
    }

    #[test]
    fn retries_get_the_recorded_answer_until_acknowledged() {
        let mut table = SessionTable::default();
        assert_eq!(table.admit(id(1), 1, || 9, 8, 8), Admission::Apply);
        table.record(id(1), 9, CallRecord::Done(Ok(vec![42])));
        assert_eq!(table.admit(id(1), 1, || 9, 8, 8), Admission::Answered(Ok(vec![42])));
        assert_eq!(table.admit(id(2), 2, || 9, 8, 8), Admission::Apply);
        assert_eq!(table.admit(id(1), 2, || 9, 8, 8), Admission::Stale);
    }

    #[test]
    fn a_different_call_under_a_recorded_sequence_number_is_refused() {
        let mut table = SessionTable::default();
        assert_eq!(table.admit(id(1), 1, || 9, 8, 8), Admission::Apply);
        table.record(id(1), 9, CallRecord::Parked);
        assert_eq!(table.admit(id(1), 1, || 10, 8, 8), Admission::Diverged);
        table.complete(id(1), Ok(vec![1]));
        assert_eq!(table.admit(id(1), 1, || 10, 8, 8), Admission::Diverged);
        assert_eq!(table.admit(id(1), 1, || 9, 8, 8), Admission::Answered(Ok(vec![1])));
    }

    #[test]
    fn parked_calls_reattach_and_limits_hold() {
        let mut table = SessionTable::default();
        assert_eq!(table.admit(id(1), 1, || 0, 1, 8), Admission::Apply);
        table.record(id(1), 0, CallRecord::Parked);
        assert_eq!(table.admit(id(1), 1, || 0, 1, 8), Admission::StillParked);
        assert_eq!(table.admit(id(2), 1, || 0, 1, 8), Admission::Full);
    }

    #[test]
    fn an_evicted_session_is_refused_as_expired_not_applied_again() {
        let mut table = SessionTable::default();
        assert_eq!(table.admit(CallId { session: 1, seq: 1 }, 1, || 0, 8, 2), Admission::Apply);
        table.record(CallId { session: 1, seq: 1 }, 0, CallRecord::Done(Ok(vec![1])));
        for session in 2..4 {
            table.admit(CallId { session, seq: 1 }, 1, || 0, 8, 2);
        }
        assert_eq!(table.admit(CallId { session: 1, seq: 1 }, 1, || 0, 8, 2), Admission::Expired);
        assert_eq!(
            table.admit(CallId { session: 1, seq: 2 }, 1, || 0, 8, 2),
            Admission::Apply,
            "a call the session never made here starts it anew"
        );
        assert_eq!(
            table.admit(CallId { session: 1, seq: 1 }, 1, || 0, 8, 2),
            Admission::Expired,
            "the session came back, but a replay of what it did before is still refused"
        );
        for session in 4..EVICTIONS_REMEMBERED_MIN as u64 + 8 {
            table.admit(CallId { session, seq: 1 }, 1, || 0, 8, 2);
        }
        assert!(
            table.evicted.len() <= EVICTIONS_REMEMBERED_MIN,
            "only the last EVICTIONS_REMEMBERED_MIN evictions are remembered"
        );
        assert_eq!(
            table.admit(CallId { session: 1, seq: 1 }, 1, || 0, 8, 2),
            Admission::Apply,
            "a session forgotten that long ago is taken for a new one"
        );
    }

    #[test]
    fn least_recently_used_session_is_evicted() {
        let mut table = SessionTable::default();
        for session in 0..3 {
            table.admit(CallId { session, seq: 1 }, 1, || 0, 8, 2);
        }
        assert_eq!(table.len(), 2);
        assert!(!table.sessions.contains_key(&0));
    }
}
