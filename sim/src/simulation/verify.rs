//! Checks a simulated history: each key's operations against its type's own `apply`
//! (P-compositionality: keys are independent), in parallel, within a time budget.

use std::collections::BTreeMap;
use std::time::Duration;

use crucial_dso::object::{decode, Operation as _, SharedObject};
use crucial_dso::objects::{
    AtomicBoolean, AtomicByteArray, AtomicInt, AtomicLong, AtomicReference, Blob, CountDownLatch, Counter,
    CyclicBarrier, Future, List, Logger, Map, Matrix, Semaphore, Set, SortedMap,
};

use super::run::{Recorded, SimOutcome};
use super::workload::KeySpec;
use crate::checker::{check_partitions, Verdict};
use crate::history::Operation;
use crate::model::{ObjectCall, ObjectModel};

/// The verdict on a run and, for a violation, a description of it.
#[derive(Clone, Debug)]
pub struct RunVerdict {
    /// Linearizability of every checked key.
    pub verdict: Verdict,
    /// For a violation: the key, the longest linearizable prefix and the operation that could
    /// not be placed (history indices), and the object states along the prefix.
    pub violation: Option<Violation>,
    /// Operations checked.
    pub operations: usize,
}

/// A linearizability violation on one key.
#[derive(Clone, Debug)]
pub struct Violation {
    /// The key.
    pub key: String,
    /// History indices of the longest linearizable prefix, in linearization order.
    pub prefix: Vec<usize>,
    /// Object state after each prefix operation (Debug form).
    pub states: Vec<String>,
    /// History index of the operation that could not be placed.
    pub stuck: usize,
}

/// Evaluates `$body` with `$T` naming the built-in type called `$name`, or `$otherwise`.
macro_rules! with_builtin {
    ($name:expr, $T:ident => $body:expr, otherwise $otherwise:expr) => {
        match $name {
            "AtomicLong" => {
                type $T = AtomicLong;
                $body
            }
            "AtomicInt" => {
                type $T = AtomicInt;
                $body
            }
            "AtomicBoolean" => {
                type $T = AtomicBoolean;
                $body
            }
            "AtomicReference" => {
                type $T = AtomicReference;
                $body
            }
            "AtomicByteArray" => {
                type $T = AtomicByteArray;
                $body
            }
            "Counter" => {
                type $T = Counter;
                $body
            }
            "List" => {
                type $T = List;
                $body
            }
            "Set" => {
                type $T = Set;
                $body
            }
            "Map" => {
                type $T = Map;
                $body
            }
            "SortedMap" => {
                type $T = SortedMap;
                $body
            }
            "Matrix" => {
                type $T = Matrix;
                $body
            }
            "Blob" => {
                type $T = Blob;
                $body
            }
            "Future" => {
                type $T = Future;
                $body
            }
            "Semaphore" => {
                type $T = Semaphore;
                $body
            }
            "CyclicBarrier" => {
                type $T = CyclicBarrier;
                $body
            }
            "CountDownLatch" => {
                type $T = CountDownLatch;
                $body
            }
            "Logger" => {
                type $T = Logger;
                $body
            }
            _ => $otherwise,
        }
    };
}

/// Types the checker models; `CyclicBarrier` is not one of them: its parties complete together
/// (a wakeup shared by several callers), which a single linearization point cannot express.
pub fn checkable(type_name: &str) -> bool {
    type_name != "CyclicBarrier"
}

/// Checks every key of `outcome`'s history.
pub fn verify(outcome: &SimOutcome, budget: Duration) -> RunVerdict {
    verify_history(&outcome.keys, &outcome.history, budget)
}

/// Checks every key of a recorded history.
pub fn verify_history(keys: &[KeySpec], history: &[Recorded], budget: Duration) -> RunVerdict {
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, record) in history.iter().enumerate() {
        by_key.entry(&record.key).or_default().push(index);
    }
    let mut operations = 0;
    let mut unknown = false;
    for key in keys {
        let Some(indices) = by_key.get(key.key.as_str()) else { continue };
        if !checkable(&key.type_name) {
            continue;
        }
        operations += indices.len();
        // A type without a model here cannot be judged: the verdict is unknown, not a pass.
        let result = with_builtin!(key.type_name.as_str(), T => check_key::<T>(key, indices, history, budget), otherwise Err(None));
        match result {
            Ok(()) => {}
            Err(None) => unknown = true,
            Err(Some(violation)) => {
                return RunVerdict {
                    verdict: Verdict::NotLinearizable,
                    violation: Some(violation),
                    operations,
                }
            }
        }
    }
    let verdict = if unknown { Verdict::Unknown } else { Verdict::Linearizable };
    RunVerdict { verdict, violation: None, operations }
}

/// `Err(None)`: unknown (budget); `Err(Some(v))`: a violation.
fn check_key<T: SharedObject + Default>(
    key: &KeySpec,
    indices: &[usize],
    history: &[Recorded],
    budget: Duration,
) -> Result<(), Option<Violation>> {
    let initial = match &key.initial {
        Some(state) => decode::<T>(state).map_err(|_| None)?,
        None => T::default(),
    };
    let mut kept = Vec::new();
    let mut operations = Vec::new();
    for &index in indices {
        let record = &history[index];
        let output = match &record.output {
            // Refused calls took no effect and constrain nothing.
            Some(Err(_)) => continue,
            Some(Ok(bytes)) => {
                Some(T::decode_ret(&record.method, bytes).expect("the node encodes valid results"))
            }
            None => None,
        };
        let op = <T::Op as crucial_dso::object::Operation>::decode(&record.method, &record.args)
            .expect("valid workload op");
        kept.push(index);
        operations.push(Operation {
            process: record.process,
            input: ObjectCall { id: record.id, op },
            output,
            call: record.call,
            ret: record.ret,
        });
    }
    let model = ObjectModel::new(initial);
    let result = check_partitions(&model, &[operations], budget);
    match result.verdict {
        Verdict::Linearizable => Ok(()),
        Verdict::Unknown => Err(None),
        Verdict::NotLinearizable => {
            let counterexample = result.counterexample.expect("a violation has a counterexample");
            Err(Some(Violation {
                key: key.key.clone(),
                prefix: counterexample.linearized.iter().map(|i| kept[*i]).collect(),
                states: counterexample.states.iter().map(|state| format!("{state:?}")).collect(),
                stuck: kept[counterexample.stuck],
            }))
        }
    }
}

/// A readable line for one recorded operation: `method(args) -> result`.
pub fn describe(record: &Recorded) -> String {
    fn typed<T: SharedObject>(record: &Recorded) -> String {
        let op = T::Op::decode(&record.method, &record.args)
            .map_or_else(|e| e.to_string(), |op| format!("{op:?}"));
        let output = match &record.output {
            None => "unknown".to_string(),
            Some(Err(error)) => format!("refused: {error}"),
            Some(Ok(bytes)) => {
                T::decode_ret(&record.method, bytes).map_or_else(|e| e, |ret| format!("{ret:?}"))
            }
        };
        format!("{op} -> {output}")
    }
    with_builtin!(record.type_name.as_str(), T => typed::<T>(record), otherwise format!("{}::{}", record.type_name, record.method))
}
