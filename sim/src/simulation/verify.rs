//! Checks a simulated history: each key's operations against its type's own `apply`
//! (P-compositionality: keys are independent), in parallel, within a time budget.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crucial_dso::core::object::{decode, Operation as _, SharedObject};
use crucial_dso::objects::CyclicBarrier;

use super::run::{Recorded, SimOutcome};
use super::user_type::Stack;
use super::workload::{KeySpec, CREATE, DELETE};
use crate::checker::{check_partitions, Verdict};
use crate::history::Operation;
use crate::model::{ObjectAction, ObjectAnswer, ObjectCall, ObjectModel};

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
    /// Keys the check gave no verdict on (its budget ran out, its search outgrew its bound, or
    /// the key's type has no model): why a verdict is unknown.
    pub undecided: Vec<String>,
}

impl RunVerdict {
    /// The verdict, naming the keys without one when it is unknown.
    pub fn describe(&self) -> String {
        match &self.verdict {
            Verdict::Unknown => format!("Unknown (no verdict on {})", self.undecided.join(", ")),
            verdict => format!("{verdict:?}"),
        }
    }
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

/// Evaluates `$body` with `$T` naming the type called `$name` (a built-in, or the simulator's
/// user type), or `$otherwise`.
macro_rules! with_builtin {
    ($name:expr, $T:ident => $body:expr, otherwise $otherwise:expr) => {
        crucial_dso::core::with_builtin!($name, $T => $body, otherwise match $name {
            "Stack" => {
                type $T = Stack;
                $body
            }
            _ => $otherwise,
        })
    };
}

/// Types checked for linearizability against their `apply`. `CyclicBarrier` is not one of
/// them: its parties complete together (one wakeup shared by several callers), which a single
/// linearization point per call cannot express; [`check_barrier`] checks it instead.
pub fn checkable(type_name: &str) -> bool {
    type_name != "CyclicBarrier"
}

/// The barrier's own safety property: a party that got through without being the last to
/// arrive (`Ok(index > 0)`) overlaps, in real time, a wait that tripped the barrier (`Ok(0)`,
/// or a wait whose outcome is unknown). An early wakeup breaks it.
pub fn check_barrier(indices: &[usize], history: &[Recorded]) -> Result<(), usize> {
    use crucial_dso::objects::CyclicBarrierRet;
    let result = |index: usize| -> Option<Option<CyclicBarrierRet>> {
        let record = &history[index];
        if record.method != "wait" {
            return None;
        }
        match &record.output {
            None => Some(None),
            Some(Ok(bytes)) => CyclicBarrier::decode_ret("wait", bytes).ok().map(Some),
            Some(Err(_)) => None,
        }
    };
    let tripped: Vec<usize> = (indices.iter().copied())
        .filter(|index| matches!(result(*index), Some(None) | Some(Some(CyclicBarrierRet::Wait(Ok(0))))))
        .collect();
    for &waiter in indices {
        if !matches!(result(waiter), Some(Some(CyclicBarrierRet::Wait(Ok(index)))) if index > 0) {
            continue;
        }
        let (call, ret) = (history[waiter].call, history[waiter].ret);
        let overlaps =
            |other: &usize| *other != waiter && history[*other].call < ret && call < history[*other].ret;
        if !tripped.iter().any(overlaps) {
            return Err(waiter);
        }
    }
    Ok(())
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
    // Keys are independent (P-compositionality): check them in parallel, stop at a violation.
    let checked: Vec<(&KeySpec, &Vec<usize>)> =
        keys.iter().filter_map(|key| by_key.get(key.key.as_str()).map(|indices| (key, indices))).collect();
    let operations = checked.iter().map(|(_, indices)| indices.len()).sum();
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    // Small histories (a sweep's, already parallel across seeds) are not worth a thread.
    const PARALLEL_OPERATIONS_MIN: usize = 5_000;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = if operations < PARALLEL_OPERATIONS_MIN { 1 } else { cores.min(checked.len().max(1)) };
    let mut results: Vec<(usize, KeyResult)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut found = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let position = next.fetch_add(1, Ordering::Relaxed);
                        let Some((key, indices)) = checked.get(position) else { break };
                        let result = check_any_key(key, indices, history, budget);
                        if matches!(result, Err(Some(_))) {
                            stop.store(true, Ordering::Relaxed);
                        }
                        found.push((position, result));
                    }
                    found
                })
            })
            .collect();
        handles.into_iter().flat_map(|handle| handle.join().expect("checker worker panicked")).collect()
    });
    results.sort_by_key(|(position, _)| *position);
    let mut undecided = Vec::new();
    for (position, result) in results {
        match result {
            Ok(()) => {}
            Err(None) => undecided.push(checked[position].0.key.clone()),
            Err(Some(violation)) => {
                return RunVerdict {
                    verdict: Verdict::NotLinearizable,
                    violation: Some(violation),
                    operations,
                    undecided,
                }
            }
        }
    }
    let verdict = if undecided.is_empty() { Verdict::Linearizable } else { Verdict::Unknown };
    RunVerdict { verdict, violation: None, operations, undecided }
}

/// `Err(None)`: unknown (budget, or a type without a model); `Err(Some(v))`: a violation.
type KeyResult = Result<(), Option<Violation>>;

/// Checks one key with its type's model (or the barrier's own property).
fn check_any_key(key: &KeySpec, indices: &[usize], history: &[Recorded], budget: Duration) -> KeyResult {
    // A call naming another type than the key's must have been refused.
    let (matching, mismatched): (Vec<usize>, Vec<usize>) =
        indices.iter().partition(|index| history[**index].type_name == key.type_name);
    if let Some(&stuck) = mismatched.iter().find(|index| matches!(history[**index].output, Some(Ok(_)))) {
        return Err(Some(Violation { key: key.key.clone(), prefix: Vec::new(), states: Vec::new(), stuck }));
    }
    let indices = &matching[..];
    if !checkable(&key.type_name) {
        return check_barrier(indices, history).map_err(|stuck| {
            Some(Violation { key: key.key.clone(), prefix: Vec::new(), states: Vec::new(), stuck })
        });
    }
    with_builtin!(key.type_name.as_str(), T => check_key::<T>(key, indices, history, budget), otherwise Err(None))
}

/// Every method of the object type `type_name` (built-in, or the simulator's user type).
pub fn methods_of(type_name: &str) -> &'static [&'static str] {
    with_builtin!(type_name, T => <<T as SharedObject>::Op as crucial_dso::core::object::Operation>::METHODS, otherwise &[])
}

/// Whether `method` of `type_name` answers with the waiters it holds (which the model, where
/// a waiting call linearizes when it completes, never has): its answer is not checked.
pub fn observes_waiters(type_name: &str, method: &str) -> bool {
    matches!((type_name, method), ("Semaphore", "queue_length"))
}

/// `Err(None)`: unknown (budget); `Err(Some(v))`: a violation.
fn check_key<T: SharedObject + Default>(
    key: &KeySpec,
    indices: &[usize],
    history: &[Recorded],
    budget: Duration,
) -> Result<(), Option<Violation>> {
    let initial = match &key.initial {
        Some(state) => Some(decode::<T>(state).map_err(|_| None)?),
        None => None,
    };
    let mut kept = Vec::new();
    let mut operations = Vec::new();
    for &index in indices {
        let record = &history[index];
        let answer = match &record.output {
            // Refused calls took no effect and constrain nothing.
            Some(Err(_)) => continue,
            Some(Ok(bytes)) => Some(bytes),
            None => None,
        };
        let (action, output) = if record.method == DELETE {
            let deleted = |bytes: &Vec<u8>| decode::<bool>(bytes).expect("a delete answers a bool");
            (ObjectAction::Delete, answer.map(|bytes| ObjectAnswer::Deleted(deleted(bytes))))
        } else if record.method == CREATE {
            let state = decode::<T>(&record.args).expect("the workload creates valid states");
            let created = |bytes: &Vec<u8>| decode::<bool>(bytes).expect("a create answers a bool");
            (ObjectAction::Create(state), answer.map(|bytes| ObjectAnswer::Created(created(bytes))))
        } else {
            let op = <T::Op as crucial_dso::core::object::Operation>::decode(&record.method, &record.args)
                .expect("valid workload op");
            let ret = |bytes: &Vec<u8>| {
                T::decode_ret(&record.method, bytes).expect("the node encodes valid results")
            };
            // What only the waiters see is unknown to a model whose calls linearize when they
            // complete (it never holds a waiter).
            let seen = answer.filter(|_| !observes_waiters(&key.type_name, &record.method));
            (ObjectAction::Invoke(op), seen.map(|bytes| ObjectAnswer::Ret(ret(bytes))))
        };
        kept.push(index);
        operations.push(Operation {
            process: record.process,
            input: ObjectCall { id: record.id, action },
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
        let creates = record.method == CREATE;
        if record.method == DELETE {
            let output = match &record.output {
                None => "unknown".to_string(),
                Some(Err(error)) => format!("refused: {error}"),
                Some(Ok(bytes)) => {
                    decode::<bool>(bytes).map_or_else(|e| e.to_string(), |found| format!("deleted: {found}"))
                }
            };
            return format!("Delete -> {output}");
        }
        let op = if creates {
            decode::<T>(&record.args).map_or_else(|e| e.to_string(), |state| format!("Create({state:?})"))
        } else {
            T::Op::decode(&record.method, &record.args).map_or_else(|e| e.to_string(), |op| format!("{op:?}"))
        };
        let output = match &record.output {
            None => "unknown".to_string(),
            Some(Err(error)) => format!("refused: {error}"),
            Some(Ok(bytes)) if creates => {
                decode::<bool>(bytes).map_or_else(|e| e.to_string(), |created| format!("created: {created}"))
            }
            Some(Ok(bytes)) => {
                T::decode_ret(&record.method, bytes).map_or_else(|e| e, |ret| format!("{ret:?}"))
            }
        };
        format!("{op} -> {output}")
    }
    with_builtin!(record.type_name.as_str(), T => typed::<T>(record), otherwise format!("{}::{}", record.type_name, record.method))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crucial_dso::core::object::{encode, CallId};

    fn wait(process: u64, call: u64, ret: u64, index: Option<u64>) -> Recorded {
        Recorded {
            process,
            id: CallId { session: process, seq: 1 },
            key: "barrier".into(),
            type_name: "CyclicBarrier".into(),
            method: "wait".into(),
            args: encode(&(None::<u64>,)),
            output: index.map(|index| Ok(encode(&Ok::<u64, crucial_dso::objects::BarrierError>(index)))),
            call,
            ret: if index.is_some() { ret } else { u64::MAX },
            call_ms: call,
            ret_ms: ret,
        }
    }

    #[test]
    fn an_unknown_verdict_names_the_keys_without_one() {
        // A barrier's key is checked by its own property; a type with no model gets no verdict.
        let mut history = vec![wait(1, 1, 4, Some(1)), wait(2, 2, 3, Some(0))];
        let mut unmodelled = wait(3, 5, 6, Some(0));
        unmodelled.key = "mystery".into();
        unmodelled.type_name = "NoSuchType".into();
        history.push(unmodelled);
        let keys = [("barrier", "CyclicBarrier"), ("mystery", "NoSuchType")]
            .map(|(key, type_name)| KeySpec { key: key.into(), type_name: type_name.into(), initial: None });
        let verdict = verify_history(&keys, &history, Duration::from_secs(5));
        assert_eq!(verdict.verdict, Verdict::Unknown);
        assert_eq!(verdict.undecided, vec!["mystery".to_string()]);
        assert_eq!(verdict.describe(), "Unknown (no verdict on mystery)");
        let decided = verify_history(&keys[..1], &history[..2], Duration::from_secs(5));
        assert_eq!(decided.verdict, Verdict::Linearizable);
        assert_eq!(decided.describe(), "Linearizable");
    }

    #[test]
    fn barrier_parties_must_overlap_the_party_that_tripped_it() {
        let together = [wait(1, 1, 4, Some(1)), wait(2, 2, 3, Some(0))];
        assert_eq!(check_barrier(&[0, 1], &together), Ok(()));
        let early = [wait(1, 1, 2, Some(1)), wait(2, 3, 4, Some(0))];
        assert_eq!(check_barrier(&[0, 1], &early), Err(0), "returned before the last party arrived");
        let unknown_tripper = [wait(1, 1, 4, Some(1)), wait(2, 2, 0, None)];
        assert_eq!(
            check_barrier(&[0, 1], &unknown_tripper),
            Ok(()),
            "an unknown outcome may have tripped it"
        );
    }
}
