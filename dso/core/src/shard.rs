//! One key's replicated state and the deterministic code that changes it.
//!
//! A shard holds the object under one key, the session records of the calls on it and its
//! parked calls. Every replica of the key applies the same admitted calls and expiries in the
//! same order through [`Shard::apply`] and [`Shard::expire`], so replicas hold equal shards:
//! de-duplication and parked waiters move with the key when it fails over or is rebalanced.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::call::{Action, Call};
use crate::object::{encode, CallId};
use crate::registry::{EncodedOutcome, ObjectBox, Registry};
use crate::session::{Admission, CallRecord, CallResult, SessionTable};
use crate::CallError;

/// Bounds on a shard's session table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionLimits {
    /// Unacknowledged calls one session may have recorded.
    pub session_calls_max: usize,
    /// Sessions held before the least recently used one is evicted.
    pub sessions_max: usize,
}

/// One key's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Shard {
    object: Option<ObjectBox>,
    sessions: SessionTable,
    /// Parked calls and how long each may wait (`None`: forever), as of the last
    /// [`crate::protocol::Entry::Remaining`].
    parked: BTreeMap<CallId, Option<u64>>,
}

/// What applying a call or an expiry did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// Calls answered, in order: the applied call first if it completed, then those it woke.
    pub answers: Vec<(CallId, CallResult)>,
    /// The applied call parked (`None`: it did not).
    pub parked: Option<Parked>,
}

/// How long a parked call waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Parked {
    /// At most this long (`None`: until woken).
    pub timeout_ms: Option<u64>,
}

/// A primary's upper bound on the encoded size of a key's object, so that calls that might
/// grow it past the limit are found without encoding the object at every call (`None`: not
/// measured yet).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SizeBound(Option<usize>);

/// The largest result of a read kept in the session records of a session that does not replay:
/// a larger one is recorded as [`CallRecord::Reread`], so that records (which travel with the
/// key) stay small beside the object however many sessions read it whole.
pub const RECORDED_READ_BYTES_MAX: usize = 4 << 10;

/// The `history` of calls from sessions that do not replay (see [`Call::history`]).
const NOT_REPLAYING: u64 = 0;

/// What one call may add to an object's encoded size beyond its encoded arguments, by the
/// bound's reckoning (a collection's length prefix, a map entry's framing).
const GROWTH_BEYOND_ARGS: usize = 64;

/// Where a replica stands in a key's log: the epoch whose primary wrote the entries it holds,
/// and how many of that epoch's entries it has applied. A later position compares greater.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LogPosition {
    /// The epoch.
    pub epoch: u64,
    /// Entries of that epoch applied.
    pub applied: u64,
}

impl LogPosition {
    /// The start of `epoch`'s log (nothing of it applied yet).
    pub fn start(epoch: u64) -> Self {
        Self { epoch, applied: 0 }
    }
}

/// One key's replicated state as a state transfer carries it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ShardCopy {
    /// The key.
    pub key: String,
    /// Its state.
    pub image: ShardImage,
    /// Where in the key's log that state stands.
    pub position: LogPosition,
}

/// A shard as it travels between replicas: the object as its type name and encoded state.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ShardImage {
    /// The object's type name and encoded state, if the key holds one.
    pub object: Option<(String, Vec<u8>)>,
    /// The session records.
    pub sessions: SessionTable,
    /// The parked calls and their timeouts.
    pub parked: BTreeMap<CallId, Option<u64>>,
}

/// A [`ShardCopy`] borrowed from its shard: encodes to the same bytes (serde encodes a
/// reference as what it refers to, and the fields come in the same order).
#[derive(Serialize)]
struct ShardCopyView<'a> {
    key: &'a str,
    image: ShardImageView<'a>,
    position: LogPosition,
}

/// A [`ShardImage`] borrowed from its shard (see [`ShardCopyView`]).
#[derive(Serialize)]
struct ShardImageView<'a> {
    object: Option<(&'a str, &'a Vec<u8>)>,
    sessions: &'a SessionTable,
    parked: &'a BTreeMap<CallId, Option<u64>>,
}

impl Shard {
    /// Client sessions with records on this key.
    pub fn sessions_held(&self) -> usize {
        self.sessions.len()
    }

    /// Call records held on this key, summed over its sessions.
    pub fn session_records(&self) -> usize {
        self.sessions.records()
    }

    /// Classifies an arriving call (see [`SessionTable::admit`]); only `Apply` changes the shard.
    /// A release for a session the key does not hold (never used here, or evicted) has nothing
    /// to release: it is answered without creating the session (which could evict another).
    pub fn admit(&mut self, call: &Call, limits: SessionLimits) -> Admission {
        if matches!(call.action, Action::Release) && !self.sessions.holds(call.id.session) {
            return Admission::Answered(Ok(Vec::new()));
        }
        self.sessions.admit(
            call.id,
            call.acked_below,
            || call.fingerprint(),
            limits.session_calls_max,
            limits.sessions_max,
        )
    }

    /// A backup takes a call its primary logged (see [`SessionTable::admit_logged`]); apply it
    /// next.
    pub fn admit_logged(&mut self, call: &Call, limits: SessionLimits) {
        self.sessions.admit_logged(call.id, call.acked_below, limits.sessions_max);
    }

    /// Applies a call that [`Shard::admit`] admitted, recording its outcome.
    pub fn apply(&mut self, registry: &Registry, call: &Call) -> Effects {
        let effects = self.apply_recorded(registry, call);
        // Postcondition: the call is either answered or parked, never both nor neither.
        let answered = effects.answers.iter().any(|(id, _)| *id == call.id);
        let parked = self.parked.contains_key(&call.id);
        debug_assert!(answered != parked, "{:?}: answered {answered}, parked {parked}", call.id);
        debug_assert!(!parked || effects.parked.is_some(), "{:?}: parked without saying so", call.id);
        effects
    }

    fn apply_recorded(&mut self, registry: &Registry, call: &Call) -> Effects {
        let mut effects = Effects::default();
        let fingerprint = call.fingerprint();
        let result = match &call.action {
            Action::Create { state } => self.create(registry, &call.key, &call.type_name, state),
            Action::Release => Ok(Vec::new()),
            Action::Delete => {
                let result: CallResult = Ok(encode(&self.object.take().is_some()));
                self.sessions.record(call.id, fingerprint, CallRecord::Done(result.clone()));
                effects.answers.push((call.id, result));
                self.refuse_parked(&call.key, &mut effects);
                return effects;
            }
            Action::Invoke { method, args } => {
                match self.invoke(registry, call.id, &call.key, &call.type_name, method, args) {
                    Ok(Invoked { result: Some(result), wakeups, .. }) => {
                        // A replaying session (a cloud thread) must get every answer back as it
                        // was: only other sessions' large reads are read again on retry.
                        let record = if call.history == NOT_REPLAYING
                            && wakeups.is_empty()
                            && result.len() > RECORDED_READ_BYTES_MAX
                            && self
                                .object
                                .as_ref()
                                .is_some_and(|object| object.0.is_read_only_call(method, args))
                        {
                            CallRecord::Reread
                        } else {
                            CallRecord::Done(Ok(result.clone()))
                        };
                        effects.answers.push((call.id, Ok(result)));
                        self.complete(wakeups, &mut effects);
                        self.sessions.record(call.id, fingerprint, record);
                        return effects;
                    }
                    Ok(Invoked { result: None, timeout_ms: timeout, wakeups }) => {
                        self.parked.insert(call.id, timeout);
                        self.sessions.record(call.id, fingerprint, CallRecord::Parked);
                        effects.parked = Some(Parked { timeout_ms: timeout });
                        self.complete(wakeups, &mut effects);
                        return effects;
                    }
                    Err(error) => Err(error),
                }
            }
        };
        self.sessions.record(call.id, fingerprint, CallRecord::Done(result.clone()));
        effects.answers.push((call.id, result));
        effects
    }

    /// Why the primary must refuse `call` without applying it, if it would leave the object
    /// over `bytes_max` encoded bytes. The bound grows by each accepted call's arguments (plus
    /// 64 bytes); only when it passes the limit is the call tried on a copy and the result
    /// measured (and always for a first call on an empty key, which creates the object). A
    /// method that grows its object by more than that per call (none of the built-ins does)
    /// can pass the limit until the bound catches up: for up to
    /// `(limit - measured) / (arguments + 64)` such calls.
    pub fn refusal_for_size(
        &self,
        registry: &Registry,
        call: &Call,
        bound: &mut SizeBound,
        bytes_max: usize,
    ) -> Option<CallError> {
        let too_large = |bytes: usize| CallError::ObjectTooLarge {
            key: call.key.clone(),
            bytes: bytes as u64,
            limit: bytes_max as u64,
        };
        let (method, args, object) = match (&call.action, &self.object) {
            (Action::Create { state }, None) => {
                // Accepted, the object is the state as sent: measured at the next call.
                bound.0 = None;
                return (state.len() > bytes_max).then(|| too_large(state.len()));
            }
            (Action::Invoke { method, args }, Some(object))
                if object.0.type_name() == call.type_name && !object.0.is_read_only_call(method, args) =>
            {
                let measured = bound.0.unwrap_or_else(|| object.0.encode_state().len());
                let grown = measured.saturating_add(args.len()).saturating_add(GROWTH_BEYOND_ARGS);
                if grown <= bytes_max {
                    bound.0 = Some(grown);
                    return None;
                }
                bound.0 = Some(object.0.encode_state().len());
                (method, args, object.clone())
            }
            // A first call on an empty key creates the default object: always tried.
            (Action::Invoke { method, args }, None) => match registry.create_default(&call.type_name) {
                Ok(Some(object)) => (method, args, object),
                _ => return None,
            },
            // Calls that read, fail or create nothing new leave sizes alone.
            _ => return None,
        };
        let mut trial = object;
        if trial.0.apply_encoded(call.id, method, args).is_err() {
            return None;
        }
        let bytes = trial.0.encode_state().len();
        if bytes > bytes_max {
            return Some(too_large(bytes));
        }
        bound.0 = Some(bytes);
        None
    }

    /// Records that the primary refused an admitted call without applying it.
    pub fn refuse(&mut self, call: &Call, error: CallError) -> Effects {
        let result: CallResult = Err(error);
        self.sessions.record(call.id, call.fingerprint(), CallRecord::Done(result.clone()));
        Effects { answers: vec![(call.id, result)], parked: None }
    }

    /// Times out parked call `id`: its timeout answer and the calls that this unblocks.
    pub fn expire(&mut self, id: CallId) -> Effects {
        let mut effects = Effects::default();
        if !self.parked.contains_key(&id) {
            return effects;
        }
        let Some(object) = self.object.as_mut() else { return effects };
        let expired = object.0.expire_encoded(id);
        let mut completed = Vec::new();
        if let Some(answer) = expired.result {
            completed.push((id, answer));
        }
        completed.extend(expired.wakeups);
        self.complete(completed, &mut effects);
        effects
    }

    /// Sets the time left to timed parked calls (ids no longer parked, or parked without a
    /// timeout, are passed over).
    pub fn set_remaining(&mut self, remaining: &[(CallId, u64)]) {
        for (id, left) in remaining {
            if let Some(Some(timeout)) = self.parked.get_mut(id) {
                *timeout = *left;
            }
        }
    }

    /// The parked calls and how long each may wait.
    pub fn parked(&self) -> impl Iterator<Item = (CallId, Option<u64>)> + '_ {
        self.parked.iter().map(|(id, timeout)| (*id, *timeout))
    }

    /// The object, if the key holds one.
    pub fn object(&self) -> Option<&ObjectBox> {
        self.object.as_ref()
    }

    /// `key`'s copy at `position`, if `fits` its encoded size, and that size. The size is
    /// counted from the shard itself, so a transfer sizes its parts without copying session
    /// tables it will not send; the object's state is encoded once either way.
    pub fn copy_if(
        &self,
        key: &str,
        position: LogPosition,
        fits: impl FnOnce(usize) -> bool,
    ) -> (usize, Option<ShardCopy>) {
        let object = (self.object.as_ref()).map(|object| (object.0.type_name(), object.0.encode_state()));
        let image = ShardImageView {
            object: object.as_ref().map(|(type_name, state)| (*type_name, state)),
            sessions: &self.sessions,
            parked: &self.parked,
        };
        let size = crate::object::encoded_len(&ShardCopyView { key, image, position });
        if !fits(size) {
            return (size, None);
        }
        let image = ShardImage {
            object: object.map(|(type_name, state)| (type_name.to_string(), state)),
            sessions: self.sessions.clone(),
            parked: self.parked.clone(),
        };
        (size, Some(ShardCopy { key: key.to_string(), image, position }))
    }

    /// The shard as it travels between replicas.
    pub fn image(&self) -> ShardImage {
        ShardImage {
            object: (self.object.as_ref())
                .map(|object| (object.0.type_name().to_string(), object.0.encode_state())),
            sessions: self.sessions.clone(),
            parked: self.parked.clone(),
        }
    }

    /// Rebuilds a shard from its image; fails if the object's type is unknown here.
    pub fn from_image(image: ShardImage, registry: &Registry) -> Result<Shard, CallError> {
        let object = match image.object {
            Some((type_name, state)) => Some(registry.create(&type_name, &state)?),
            None => None,
        };
        Ok(Shard { object, sessions: image.sessions, parked: image.parked })
    }

    fn create(&mut self, registry: &Registry, key: &str, type_name: &str, state: &[u8]) -> CallResult {
        if let Some(existing) = &self.object {
            return match existing.0.type_name() {
                stored if stored == type_name => Ok(encode(&false)),
                stored => Err(CallError::TypeMismatch {
                    key: key.into(),
                    stored: stored.into(),
                    requested: type_name.into(),
                }),
            };
        }
        self.object = Some(registry.create(type_name, state)?);
        Ok(encode(&true))
    }

    fn invoke(
        &mut self,
        registry: &Registry,
        id: CallId,
        key: &str,
        type_name: &str,
        method: &str,
        args: &[u8],
    ) -> Result<Invoked, CallError> {
        let object = match &mut self.object {
            Some(object) if object.0.type_name() != type_name => {
                return Err(CallError::TypeMismatch {
                    stored: object.0.type_name().into(),
                    key: key.into(),
                    requested: type_name.into(),
                })
            }
            Some(object) => object,
            None => {
                let Some(object) = registry.create_default(type_name)? else {
                    return Err(CallError::NoSuchObject { key: key.into(), type_name: type_name.into() });
                };
                // Created only if the call applies: a bad call leaves the key empty.
                let mut object = object;
                let outcome = object.0.apply_encoded(id, method, args)?;
                self.object = Some(object);
                return Ok(Invoked::from(outcome));
            }
        };
        Ok(Invoked::from(object.0.apply_encoded(id, method, args)?))
    }

    /// The `forget_records_on_delete` canary: after a logged delete, the session records go
    /// too.
    #[cfg(crucial_canary)]
    pub fn forget_records_on_delete(&mut self, call: &Call) {
        if call.action == Action::Delete {
            self.sessions = SessionTable::default();
        }
    }

    /// Answers every parked call [`CallError::ObjectDeleted`]: their object is gone.
    fn refuse_parked(&mut self, key: &str, effects: &mut Effects) {
        for waiter in std::mem::take(&mut self.parked).into_keys() {
            let result: CallResult = Err(CallError::ObjectDeleted { key: key.into() });
            self.sessions.complete(waiter, result.clone());
            effects.answers.push((waiter, result));
        }
    }

    /// Completes parked calls with their answers, in order.
    fn complete(&mut self, completed: Vec<(CallId, Vec<u8>)>, effects: &mut Effects) {
        for (waiter, answer) in completed {
            self.parked.remove(&waiter);
            let result: CallResult = Ok(answer);
            self.sessions.complete(waiter, result.clone());
            effects.answers.push((waiter, result));
        }
    }
}

/// What invoking a method did: the caller's answer (`None`: parked, for at most `timeout_ms`)
/// and the calls it woke.
struct Invoked {
    result: Option<Vec<u8>>,
    timeout_ms: Option<u64>,
    wakeups: Vec<(CallId, Vec<u8>)>,
}

impl From<EncodedOutcome> for Invoked {
    fn from(outcome: EncodedOutcome) -> Self {
        Invoked { result: outcome.result, timeout_ms: outcome.timeout_ms, wakeups: outcome.wakeups }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: SessionLimits = SessionLimits { session_calls_max: 8, sessions_max: 8 };

    fn call(seq: u64, acked_below: u64, action: Action) -> Call {
        let id = CallId { session: 3, seq };
        Call { id, acked_below, key: "k".into(), type_name: "Counter".into(), action, history: 0 }
    }

    fn add() -> Action {
        Action::Invoke { method: "add".into(), args: encode(&(1i64,)) }
    }

    #[test]
    fn a_release_drops_the_records_before_it_and_later_replays_are_stale() {
        let registry = Registry::default();
        let mut shard = Shard::default();
        let first = call(1, 1, add());
        assert_eq!(shard.admit(&first, LIMITS), Admission::Apply);
        let answer = shard.apply(&registry, &first).answers[0].1.clone();
        assert_eq!(shard.admit(&first, LIMITS), Admission::Answered(answer), "retained for replays");
        let release = call(2, 2, Action::Release);
        assert_eq!(shard.admit(&release, LIMITS), Admission::Apply);
        assert_eq!(shard.apply(&registry, &release).answers, vec![(release.id, Ok(Vec::new()))]);
        assert_eq!(shard.admit(&first, LIMITS), Admission::Stale);
    }

    #[test]
    fn a_delete_empties_the_key_and_a_retry_from_before_it_is_answered_not_applied_again() {
        let registry = Registry::default();
        let mut shard = Shard::default();
        let first = call(1, 1, add());
        assert_eq!(shard.admit(&first, LIMITS), Admission::Apply);
        let added = shard.apply(&registry, &first).answers[0].1.clone();
        let delete = call(2, 1, Action::Delete);
        assert_eq!(shard.admit(&delete, LIMITS), Admission::Apply);
        assert_eq!(shard.apply(&registry, &delete).answers, vec![(delete.id, Ok(encode(&true)))]);
        assert!(shard.object().is_none(), "the key is absent");
        assert_eq!(
            shard.admit(&first, LIMITS),
            Admission::Answered(added),
            "a retry is answered from the records"
        );
        assert!(shard.object().is_none(), "and does not bring the object back");
        let again = call(3, 1, Action::Delete);
        assert_eq!(shard.admit(&again, LIMITS), Admission::Apply);
        assert_eq!(shard.apply(&registry, &again).answers, vec![(again.id, Ok(encode(&false)))]);
        let next = call(4, 1, add());
        assert_eq!(shard.admit(&next, LIMITS), Admission::Apply);
        assert_eq!(shard.apply(&registry, &next).answers, vec![(next.id, Ok(added_to_default()))]);
    }

    /// What `add(1)` answers on a new `Counter`.
    fn added_to_default() -> Vec<u8> {
        let registry = Registry::default();
        let mut shard = Shard::default();
        let first = call(1, 1, add());
        shard.admit(&first, LIMITS);
        shard.apply(&registry, &first).answers.remove(0).1.expect("add applies")
    }

    #[test]
    fn a_delete_answers_the_calls_parked_on_the_object() {
        let registry = Registry::default();
        let mut shard = Shard::default();
        let latch =
            |seq: u64, action: Action| Call { type_name: "CountDownLatch".into(), ..call(seq, 1, action) };
        let create = latch(1, Action::Create { state: encode(&crate::objects::CountDownLatch::new(1)) });
        shard.admit(&create, LIMITS);
        shard.apply(&registry, &create);
        let wait = latch(2, Action::Invoke { method: "wait".into(), args: encode(&(None::<u64>,)) });
        shard.admit(&wait, LIMITS);
        assert!(shard.apply(&registry, &wait).parked.is_some(), "the wait parks");
        let delete = latch(3, Action::Delete);
        shard.admit(&delete, LIMITS);
        let deleted = Err(CallError::ObjectDeleted { key: "k".into() });
        assert_eq!(
            shard.apply(&registry, &delete).answers,
            vec![(delete.id, Ok(encode(&true))), (wait.id, deleted.clone())]
        );
        assert_eq!(shard.parked().count(), 0);
        assert_eq!(
            shard.admit(&wait, LIMITS),
            Admission::Answered(deleted),
            "a retry of the wait gets the same"
        );
    }

    #[test]
    fn a_copy_is_sized_as_it_encodes_and_made_only_if_it_fits() {
        let registry = Registry::default();
        let mut shard = Shard::default();
        let position = LogPosition { epoch: 7, applied: 300 };
        let sized = |shard: &Shard| {
            let (size, copy) = shard.copy_if("k", position, |_| true);
            let copy = copy.expect("everything fits");
            assert_eq!(copy, ShardCopy { key: "k".into(), image: shard.image(), position });
            (size, encode(&copy).len())
        };
        let (counted, encoded) = sized(&shard);
        assert_eq!(counted, encoded, "no object, no sessions");
        for seq in 1..=5 {
            let add = Call { id: CallId { session: seq * 1_000_003, seq }, ..call(seq, 0, add()) };
            assert_eq!(shard.admit(&add, LIMITS), Admission::Apply);
            shard.apply(&registry, &add);
        }
        shard.parked.insert(CallId { session: 9, seq: 1 }, Some(1_500));
        shard.parked.insert(CallId { session: 10, seq: 2 }, None);
        let (counted, encoded) = sized(&shard);
        assert!(shard.object.is_some() && shard.sessions.len() == 5);
        assert_eq!(counted, encoded, "an object, five sessions with records, two parked calls");
        let (size, copy) = shard.copy_if("k", position, |size| size < counted);
        assert_eq!((size, copy), (counted, None), "sized, not copied");
    }

    #[test]
    fn a_release_for_an_unknown_session_creates_nothing() {
        let mut shard = Shard::default();
        assert_eq!(shard.admit(&call(5, 5, Action::Release), LIMITS), Admission::Answered(Ok(Vec::new())));
        assert!(shard.sessions.is_empty());
    }
}
