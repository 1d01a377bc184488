//! Sequential specifications for the checker. The DSO objects' model is their own `apply`
//! ([`ObjectModel`]); the others describe external histories exactly as their sources define
//! them (see `shared/histories/README.md`).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::hash::Hash;

use crucial_dso::object::{ApplyContext, CallId, Outcome, SharedObject};

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
    /// anything goes); `None` if it cannot.
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

/// A DSO object type's own `apply` as the model. A call that would park linearizes when it
/// completes: it can be placed only where `apply` completes it at once, or, if it returned its
/// timeout answer, where it would park (the answer is what `expire` gives).
pub struct ObjectModel<T> {
    initial: T,
}

impl<T: SharedObject> ObjectModel<T> {
    /// A model starting from `initial` (the state `create` gave, or the default).
    pub fn new(initial: T) -> Self {
        Self { initial }
    }
}

/// An object call in a history: the caller's id (objects record waiters by it) and the op.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectCall<Op> {
    /// The caller.
    pub id: CallId,
    /// The operation.
    pub op: Op,
}

impl<T: SharedObject> Model for ObjectModel<T> {
    type State = T;
    type Input = ObjectCall<T::Op>;
    type Output = T::Ret;

    fn init(&self) -> T {
        self.initial.clone()
    }

    fn step(&self, state: &T, input: &ObjectCall<T::Op>, output: Option<&T::Ret>) -> Option<T> {
        let mut next = state.clone();
        let mut ctx = ApplyContext::new(input.id);
        match next.apply(input.op.clone(), &mut ctx) {
            Outcome::Done(ret) => output.is_none_or(|seen| *seen == ret).then_some(next),
            // Unknown outcome: as if it never took effect (it would have parked).
            Outcome::Parked { .. } if output.is_none() => Some(state.clone()),
            Outcome::Parked { .. } => {
                let answer = next.expire(input.id, &mut ApplyContext::new(input.id))?;
                (output == Some(&answer)).then_some(next)
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
