//! Primary-backup replication of each key's log within one epoch.
//!
//! The primary numbers every admitted call and expiry of a key (indices start at 1 in each
//! epoch), sends it to the key's backups and keeps it until every backup acknowledged it. An
//! answer produced at index `i` is held until every backup applied `i`; a retry answered from
//! the session table waits for the log's tail, so no client ever sees a result that one crash
//! could undo. Backups apply entries strictly in order and only in the epoch they serve.

use std::collections::{BTreeMap, VecDeque};

use super::{KeyState, Node};
use crate::cluster::MemberId;
use crate::object::CallId;
use crate::protocol::{ClientAddr, Entry, PeerMessage};
use crate::session::CallResult;
#[cfg(doc)]
use crate::shard::Shard;
use crate::shard::{LogPosition, SizeBound};

/// The primary's side of one key's log.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct PrimaryLog {
    /// The highest index each backup acknowledged.
    acked: BTreeMap<MemberId, u64>,
    /// Entries some backup still lacks; `unacked[0]` has index `first_unacked`.
    unacked: VecDeque<Entry>,
    first_unacked: u64,
    /// Answers waiting for their index to be acknowledged by every backup, in index order.
    held: VecDeque<(u64, ClientAddr, CallId, CallResult)>,
    /// A bound on the key's encoded object size (see [`Shard::refusal_for_size`]).
    pub(super) size: SizeBound,
}

impl PrimaryLog {
    /// A log at index 0 with these backups.
    pub(super) fn new(backups: &[MemberId]) -> Self {
        Self {
            acked: backups.iter().map(|backup| (*backup, 0)).collect(),
            unacked: VecDeque::new(),
            first_unacked: 1,
            held: VecDeque::new(),
            size: SizeBound::default(),
        }
    }

    /// Whether every backup holds every entry.
    pub(super) fn is_caught_up(&self) -> bool {
        self.unacked.is_empty()
    }

    /// The highest index every backup holds (`u64::MAX` without backups).
    fn everywhere(&self) -> u64 {
        self.acked.values().copied().min().unwrap_or(u64::MAX)
    }

    /// Drops the entries every backup holds and returns the answers they held back.
    fn release(&mut self) -> Vec<(u64, ClientAddr, CallId, CallResult)> {
        let everywhere = self.everywhere();
        while self.first_unacked <= everywhere && self.unacked.pop_front().is_some() {
            self.first_unacked += 1;
        }
        let mut released = Vec::new();
        while self.held.front().is_some_and(|(index, ..)| *index <= everywhere) {
            released.push(self.held.pop_front().expect("checked"));
        }
        // Postcondition: nothing every backup holds is kept, nor an answer it held back.
        debug_assert!(self.unacked.is_empty() || self.first_unacked > everywhere);
        debug_assert!(self.held.front().is_none_or(|(index, ..)| *index > everywhere));
        released
    }

    /// Asserts the log's invariants against the key's log `tail` (the last index applied):
    /// the entries kept are exactly those after `first_unacked - 1`, up to the tail; no backup
    /// acknowledged past the tail; answers are held in index order, each for an index up to
    /// the tail that some backup still lacks.
    pub(super) fn check(&self, tail: u64) {
        assert_eq!(
            self.first_unacked + self.unacked.len() as u64,
            tail + 1,
            "the unacknowledged entries end at the tail"
        );
        assert!(self.acked.values().all(|acked| *acked <= tail), "a backup acknowledged past the tail");
        let everywhere = self.everywhere();
        assert!(
            self.unacked.is_empty() || self.first_unacked > everywhere,
            "an entry every backup holds is kept"
        );
        let held = || self.held.iter().map(|(index, ..)| *index);
        assert!(held().zip(held().skip(1)).all(|(a, b)| a <= b), "answers held out of index order");
        assert!(held().all(|index| index <= tail), "an answer held for an index past the tail");
        assert!(
            self.held.front().is_none_or(|(index, ..)| *index > everywhere),
            "an answer every backup could release"
        );
    }
}

impl Node {
    /// Appends `entry` (already applied here) to `key`'s log and sends it to the backups.
    pub(super) fn append(&mut self, key: &str, entry: Entry) {
        let epoch = self.cluster.epoch;
        let state = self.keys.get_mut(key).expect("served key");
        // Precondition: the primary appends only to a log of the epoch it serves.
        debug_assert_eq!(state.position.epoch, epoch, "appending to {key:?}'s log of another epoch");
        state.position.applied += 1;
        let index = state.position.applied;
        let Some(log) = state.primary.as_mut() else { return };
        if log.acked.is_empty() {
            log.first_unacked = index + 1;
            return;
        }
        log.unacked.push_back(entry.clone());
        let backups: Vec<MemberId> = log.acked.keys().copied().collect();
        for backup in backups {
            let message =
                PeerMessage::Replicate { epoch, key: key.into(), first: index, entries: vec![entry.clone()] };
            self.send(backup, message);
        }
    }

    /// Answers `to` once the key's log tail is on every backup.
    pub(super) fn respond(&mut self, key: &str, to: ClientAddr, id: CallId, result: CallResult) {
        #[cfg(crucial_canary)]
        if self.config.canary.reply_before_backup_acks {
            self.reply(to, id, result);
            return;
        }
        let Some(state) = self.keys.get_mut(key) else { return };
        let index = state.position.applied;
        match state.primary.as_mut() {
            Some(log) if log.everywhere() < index => log.held.push_back((index, to, id, result)),
            _ => self.reply(to, id, result),
        }
    }

    /// A backup applies entries of `key` from index `first`, in order, and acknowledges.
    pub(super) fn on_replicate(
        &mut self,
        from: MemberId,
        epoch: u64,
        key: String,
        first: u64,
        entries: Vec<Entry>,
    ) {
        if !self.accepts_replication(epoch) {
            self.hear_of_epoch(epoch);
            return;
        }
        let replicas = self.placement.replicas(&key);
        if replicas.first() != Some(&from) || !replicas.contains(&self.me.id) {
            return;
        }
        let limits = self.config.limits();
        let state = self.keys.entry(key.clone()).or_insert_with(|| KeyState {
            shard: Default::default(),
            position: LogPosition::start(epoch),
            primary: None,
        });
        let before = state.position;
        for (offset, entry) in entries.into_iter().enumerate() {
            let index = first + offset as u64;
            if index <= state.position.applied {
                continue;
            }
            if index > state.position.applied + 1 {
                break;
            }
            match entry {
                // The primary admitted it: a backup applies what was logged, whatever its own
                // limits would have said.
                Entry::Call(call) => {
                    state.shard.admit_logged(&call, limits);
                    state.shard.apply(&self.registry, &call);
                    #[cfg(crucial_canary)]
                    if self.config.canary.forget_records_on_delete {
                        state.shard.forget_records_on_delete(&call);
                    }
                }
                Entry::Expire(id) => {
                    state.shard.expire(id);
                }
                Entry::Remaining(remaining) => state.shard.set_remaining(&remaining),
                Entry::Refuse(call, error) => {
                    state.shard.admit_logged(&call, limits);
                    state.shard.refuse(&call, error);
                }
            }
            state.position.applied = index;
        }
        // Postcondition: a backup's position only moves forward, one entry at a time, so it
        // never skips an entry.
        debug_assert!(state.position >= before, "{key:?}'s log went back");
        let applied = state.position.applied;
        self.send(from, PeerMessage::Ack { epoch, key, applied });
    }

    /// Whether a backup takes log entries of `epoch`: only those of the active epoch it serves.
    fn accepts_replication(&self, epoch: u64) -> bool {
        self.serving && epoch == self.cluster.epoch
    }

    /// A backup acknowledged `key` up to `applied`: release what every backup now holds.
    pub(super) fn on_ack(&mut self, from: MemberId, epoch: u64, key: &str, applied: u64) {
        if !self.serving || epoch != self.cluster.epoch {
            return;
        }
        let Some(state) = self.keys.get_mut(key) else { return };
        let tail = state.position.applied;
        let Some(log) = state.primary.as_mut() else { return };
        let Some(acked) = log.acked.get_mut(&from) else { return };
        if applied <= *acked {
            return;
        }
        *acked = applied.min(tail);
        for (_, to, id, result) in log.release() {
            self.reply(to, id, result);
        }
    }

    /// The `answer_without_silent_backups` canary: every key's log stops waiting for the
    /// backups not heard from for `suspect_after_ms`, releasing the answers they held back.
    #[cfg(crucial_canary)]
    pub(super) fn forget_silent_backups(&mut self, now_ms: u64, suspect_after_ms: u64) {
        let heard = self.last_heard.clone();
        let silent =
            |id: &MemberId| heard.get(id).is_none_or(|at| now_ms.saturating_sub(*at) >= suspect_after_ms);
        let mut released = Vec::new();
        for state in self.keys.values_mut() {
            let Some(log) = state.primary.as_mut() else { continue };
            let tail = state.position.applied;
            for acked in log.acked.iter_mut().filter(|(id, _)| silent(id)).map(|(_, acked)| acked) {
                *acked = tail;
            }
            released.extend(log.release());
        }
        for (_, to, id, result) in released {
            self.reply(to, id, result);
        }
    }

    /// Sends every backup that lags behind the entries it lacks (lost or reordered messages),
    /// at most about `resend_bytes_max` of them per message.
    pub(super) fn resend_lagging(&mut self) {
        let epoch = self.cluster.epoch;
        let mut messages = Vec::new();
        for (key, state) in &self.keys {
            let Some(log) = &state.primary else { continue };
            for (backup, acked) in &log.acked {
                if *acked >= state.position.applied {
                    continue;
                }
                // A long tail goes a part at a time (the next part once this one is
                // acknowledged): one message of it all could pass the frame limit, and be
                // refused on every resend.
                let skip = (acked + 1 - log.first_unacked) as usize;
                let mut bytes = 0;
                let entries: Vec<Entry> = (log.unacked.iter().skip(skip))
                    .take_while(|entry| {
                        let first = bytes == 0;
                        bytes += crate::object::encoded_len(*entry);
                        first || bytes <= self.config.resend_bytes_max
                    })
                    .cloned()
                    .collect();
                messages.push((
                    *backup,
                    PeerMessage::Replicate { epoch, key: key.clone(), first: acked + 1, entries },
                ));
            }
        }
        for (to, message) in messages {
            self.send(to, message);
        }
    }
}
