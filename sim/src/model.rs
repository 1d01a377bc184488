//! Sequential specifications for the checker. The DSO objects' model is their own `apply`
//! ([`ObjectModel`]); the others describe external histories exactly as their sources define
//! them (see `shared/histories/README.md`).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::hash::Hash;

use crucial_dso::core::object::{ApplyContext, CallId, Outcome, SharedObject};

/// A sequential specification.
pub trait Model: Sync {
    /// The specification's state.
    type State: Clone + Eq + Hash + Debug + Send;
    /// An operation's input.
    type Input: Clone + Debug + Send + Sync;
    /// An operation's output.
    type Output: Clone + Debug + Send + Sync;

    /// The initial state.
    fn init(&self) -> Self::State;

    /// The state after `input` if it can produce `output` from `state` (`None` output: unknown,
    /// anything goes); `None` if it cannot. With a `None` output it must always give a state:
    /// the checker leaves a call of unknown outcome unplaced where nothing observes it, which
    /// is the same as placing it last only if it can be placed anywhere.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;
}

/// A compare-and-set register that starts absent (Porcupine's etcd model): reads return the
/// value or nil strictly; a failed cas asserts the value differed from `from`.
#[derive(Clone, Copy, Debug, Default)]
pub struct CasRegister;

/// A register operation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RegisterInput {
    /// Read the value.
    Read,
    /// Write a value.
    Write(i64),
    /// Set `to` if the value is `from`.
    Cas(i64, i64),
}

/// A register operation's result.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RegisterOutput {
    /// What a read saw (`None`: absent, or for Knossos: unobserved).
    Read(Option<i64>),
    /// A write completed.
    Written,
    /// Whether a cas matched.
    Cas(bool),
}

impl Model for CasRegister {
    type State = Option<i64>;
    type Input = RegisterInput;
    type Output = RegisterOutput;

    fn init(&self) -> Option<i64> {
        None
    }

    fn step(
        &self,
        state: &Option<i64>,
        input: &RegisterInput,
        output: Option<&RegisterOutput>,
    ) -> Option<Option<i64>> {
        match (input, output) {
            (RegisterInput::Read, None) => Some(*state),
            (RegisterInput::Read, Some(RegisterOutput::Read(seen))) => (seen == state).then_some(*state),
            (RegisterInput::Write(value), None | Some(RegisterOutput::Written)) => Some(Some(*value)),
            (RegisterInput::Cas(from, to), output) => {
                let matches = *state == Some(*from);
                match output {
                    None => Some(if matches { Some(*to) } else { *state }),
                    Some(RegisterOutput::Cas(ok)) if *ok == matches => {
                        Some(if matches { Some(*to) } else { *state })
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

/// Knossos' `(cas-register 0)`: starts at 0; a read whose completion carries nil constrains
/// nothing; failed operations were removed from the history (they took no effect).
#[derive(Clone, Copy, Debug, Default)]
pub struct KnossosCasRegister;

impl Model for KnossosCasRegister {
    type State = i64;
    type Input = RegisterInput;
    type Output = RegisterOutput;

    fn init(&self) -> i64 {
        0
    }

    fn step(&self, state: &i64, input: &RegisterInput, output: Option<&RegisterOutput>) -> Option<i64> {
        match (input, output) {
            (RegisterInput::Read, None | Some(RegisterOutput::Read(None))) => Some(*state),
            (RegisterInput::Read, Some(RegisterOutput::Read(Some(seen)))) => {
                (seen == state).then_some(*state)
            }
            (RegisterInput::Write(value), None | Some(RegisterOutput::Written)) => Some(*value),
            (RegisterInput::Cas(from, to), None) => Some(if state == from { *to } else { *state }),
            (RegisterInput::Cas(from, to), Some(RegisterOutput::Cas(true))) => (state == from).then_some(*to),
            _ => None,
        }
    }
}

/// One key of Porcupine's key-value store: a string, initially empty.
#[derive(Clone, Copy, Debug, Default)]
pub struct KvModel;

/// A key-value operation (on the partition's one key).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvInput {
    /// Read the value.
    Get,
    /// Replace the value.
    Put(String),
    /// Append to the value.
    Append(String),
}

impl Model for KvModel {
    type State = String;
    type Input = KvInput;
    /// What a get returned (ignored for put and append).
    type Output = String;

    fn init(&self) -> String {
        String::new()
    }

    fn step(&self, state: &String, input: &KvInput, output: Option<&String>) -> Option<String> {
        match input {
            KvInput::Get => output.is_none_or(|seen| seen == state).then(|| state.clone()),
            KvInput::Put(value) => Some(value.clone()),
            KvInput::Append(value) => Some(format!("{state}{value}")),
        }
    }
}

/// A DSO object type's own `apply` as the model, for one key that may start absent. A call
/// on an absent key creates the type's default object first (as a member does); a `Create`
/// sets the state it carries only if the key is absent; a `Delete` makes the key absent. A call that would park linearizes
/// when it completes: it can be placed only where `apply` completes it at once, or, if it
/// returned its timeout answer, where it would park (the answer is what `expire` gives).
pub struct ObjectModel<T> {
    initial: Option<T>,
}

impl<T: SharedObject> ObjectModel<T> {
    /// A model starting from `initial` (the state created at setup), or absent.
    pub fn new(initial: Option<T>) -> Self {
        Self { initial }
    }
}

/// An object call in a history: the caller's id (objects record waiters by it) and what it
/// does.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectCall<T: SharedObject> {
    /// The caller.
    pub id: CallId,
    /// What the call does.
    pub action: ObjectAction<T>,
}

/// What an object call does.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ObjectAction<T: SharedObject> {
    /// Creates the object with this state unless the key holds one.
    Create(T),
    /// Applies an operation (to the default object if the key is absent).
    Invoke(T::Op),
    /// Deletes the object: the key becomes absent.
    Delete,
}

/// What an object call answered.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ObjectAnswer<R> {
    /// Whether a `Create` created the object.
    Created(bool),
    /// Whether a `Delete` found an object to delete.
    Deleted(bool),
    /// An operation's result.
    Ret(R),
}

impl<T: SharedObject + Default> Model for ObjectModel<T> {
    type State = Option<T>;
    type Input = ObjectCall<T>;
    type Output = ObjectAnswer<T::Ret>;

    fn init(&self) -> Option<T> {
        self.initial.clone()
    }

    fn step(
        &self,
        state: &Option<T>,
        input: &ObjectCall<T>,
        output: Option<&ObjectAnswer<T::Ret>>,
    ) -> Option<Option<T>> {
        let op = match &input.action {
            ObjectAction::Create(created) => {
                let answer = ObjectAnswer::Created(state.is_none());
                let next = state.clone().unwrap_or_else(|| created.clone());
                return output.is_none_or(|seen| *seen == answer).then_some(Some(next));
            }
            ObjectAction::Delete => {
                let answer = ObjectAnswer::Deleted(state.is_some());
                return output.is_none_or(|seen| *seen == answer).then_some(None);
            }
            ObjectAction::Invoke(op) => op,
        };
        let current = state.clone().unwrap_or_default();
        let mut next = current.clone();
        let mut ctx = ApplyContext::new(input.id);
        match next.apply(op.clone(), &mut ctx) {
            Outcome::Done(ret) => {
                output.is_none_or(|seen| *seen == ObjectAnswer::Ret(ret)).then_some(Some(next))
            }
            // Unknown outcome: as if it parked, holding no waiter (the model never holds one);
            // parking on an absent key created it.
            Outcome::Parked { .. } if output.is_none() => Some(Some(current)),
            Outcome::Parked { .. } => {
                let answer = next.expire(input.id, &mut ApplyContext::new(input.id))?;
                (output == Some(&ObjectAnswer::Ret(answer))).then_some(Some(next))
            }
        }
    }
}

/// Splits operations by a partition key, keeping each part in order (P-compositionality: a
/// history is linearizable iff each key's sub-history is).
pub fn partition_by<I, O, K: Ord>(
    operations: Vec<crate::history::Operation<I, O>>,
    key: impl Fn(&crate::history::Operation<I, O>) -> K,
) -> Vec<Vec<crate::history::Operation<I, O>>> {
    let mut parts: BTreeMap<K, Vec<_>> = BTreeMap::new();
    for operation in operations {
        parts.entry(key(&operation)).or_default().push(operation);
    }
    parts.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::{check_partitions, Verdict};
    use crate::history::Operation;
    use crucial_dso::objects::{Counter, CounterOp, CounterRet};

    type Call = ObjectCall<Counter>;
    type Answer = ObjectAnswer<CounterRet>;

    /// An operation of `process` from stamp `call` to `ret`.
    fn op(
        process: u64,
        call: u64,
        ret: u64,
        action: ObjectAction<Counter>,
        output: Answer,
    ) -> Operation<Call, Answer> {
        let input = ObjectCall { id: CallId { session: process, seq: call }, action };
        Operation { process, input, output: Some(output), call, ret }
    }

    fn create(value: i64) -> ObjectAction<Counter> {
        let mut counter = Counter::default();
        counter.add(value);
        ObjectAction::Create(counter)
    }

    fn verdict(history: Vec<Operation<Call, Answer>>) -> Verdict {
        let model = ObjectModel::<Counter>::new(None);
        check_partitions(&model, &[history], std::time::Duration::from_secs(5)).verdict
    }

    #[test]
    fn an_absent_key_is_created_once_by_a_create_or_by_a_first_call() {
        let get = || ObjectAction::Invoke(CounterOp::Get {});
        let created_then_read = vec![
            op(1, 1, 2, create(5), ObjectAnswer::Created(true)),
            op(2, 3, 4, create(7), ObjectAnswer::Created(false)),
            op(3, 5, 6, get(), ObjectAnswer::Ret(CounterRet::Get(5))),
        ];
        assert_eq!(verdict(created_then_read), Verdict::Linearizable);
        let two_winners = vec![
            op(1, 1, 3, create(5), ObjectAnswer::Created(true)),
            op(2, 2, 4, create(7), ObjectAnswer::Created(true)),
        ];
        assert_eq!(verdict(two_winners), Verdict::NotLinearizable);
        let created_after_a_call_created_it = vec![
            op(1, 1, 2, get(), ObjectAnswer::Ret(CounterRet::Get(0))),
            op(2, 3, 4, create(5), ObjectAnswer::Created(true)),
        ];
        assert_eq!(verdict(created_after_a_call_created_it), Verdict::NotLinearizable);
        let state_lost = vec![
            op(1, 1, 2, create(5), ObjectAnswer::Created(true)),
            op(2, 3, 4, get(), ObjectAnswer::Ret(CounterRet::Get(0))),
        ];
        assert_eq!(verdict(state_lost), Verdict::NotLinearizable);
    }

    #[test]
    fn a_delete_leaves_the_key_absent_and_reads_after_it_see_the_default() {
        let get =
            |value| (ObjectAction::Invoke(CounterOp::Get {}), ObjectAnswer::Ret(CounterRet::Get(value)));
        let read = |process, call, value| {
            let (action, answer) = get(value);
            op(process, call, call + 1, action, answer)
        };
        let deleted = |process, call, found| {
            op(process, call, call + 1, ObjectAction::Delete, ObjectAnswer::Deleted(found))
        };
        let deleted_then_default = vec![
            op(1, 1, 2, create(5), ObjectAnswer::Created(true)),
            deleted(2, 3, true),
            deleted(3, 5, false),
            read(1, 7, 0),
            op(2, 9, 10, create(7), ObjectAnswer::Created(false)),
        ];
        assert_eq!(verdict(deleted_then_default), Verdict::Linearizable);
        let read_after_the_delete_sees_the_old_state =
            vec![op(1, 1, 2, create(5), ObjectAnswer::Created(true)), deleted(2, 3, true), read(1, 5, 5)];
        assert_eq!(verdict(read_after_the_delete_sees_the_old_state), Verdict::NotLinearizable);
        let two_deletes_found_it = vec![
            op(1, 1, 2, create(5), ObjectAnswer::Created(true)),
            deleted(2, 3, true),
            deleted(3, 5, true),
        ];
        assert_eq!(verdict(two_deletes_found_it), Verdict::NotLinearizable);
    }
}
