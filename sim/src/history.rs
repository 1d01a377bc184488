//! Histories in the Jepsen shape, reduced to what a linearizability check needs: one entry per
//! operation with its input, its output (or `None` when the outcome is unknown) and the
//! interval between its invocation and its completion.

/// One operation of a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// The process (client) that issued it.
    pub process: u64,
    /// What was asked.
    pub input: I,
    /// What came back; `None` if unknown (`:info`, a timeout): it may or may not have taken
    /// effect, at any time after its invocation.
    pub output: Option<O>,
    /// When it was invoked (any monotonic unit; only the order matters).
    pub call: u64,
    /// When it completed; `u64::MAX` for unknown outcomes.
    pub ret: u64,
}

/// One line of a Jepsen-style history before invocations and completions are paired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The operation started.
    Invoke,
    /// It completed and took effect.
    Ok,
    /// It completed and took no effect.
    Fail,
    /// Its outcome is unknown.
    Info,
}

/// Pairs each process's invocation with its next completion. `time` orders events (line
/// numbers, for instance). Unmatched invocations become unknown-outcome operations.
/// `complete(invoke_value, kind, completion_value)` decides what each pair becomes: `Some(op
/// input, output)` keeps it (output `None` = unknown), `None` drops it (it constrains nothing).
pub fn pair_events<V, I, O>(
    events: Vec<(u64, u64, EventKind, V)>,
    mut complete: impl FnMut(&V, &EventKind, Option<&V>) -> Result<Option<(I, Option<O>)>, String>,
) -> Result<Vec<Operation<I, O>>, String> {
    use std::collections::BTreeMap;
    let mut open: BTreeMap<u64, (u64, V)> = BTreeMap::new();
    let mut operations = Vec::new();
    for (time, process, kind, value) in events {
        match kind {
            EventKind::Invoke => {
                if open.insert(process, (time, value)).is_some() {
                    return Err(format!("process {process} invoked twice without completing (time {time})"));
                }
            }
            kind => {
                let Some((call, invoked)) = open.remove(&process) else {
                    return Err(format!(
                        "process {process} completed an operation it never invoked (time {time})"
                    ));
                };
                if let Some((input, output)) = complete(&invoked, &kind, Some(&value))? {
                    let ret = if output.is_some() { time } else { u64::MAX };
                    operations.push(Operation { process, input, output, call, ret });
                }
            }
        }
    }
    for (process, (call, invoked)) in open {
        if let Some((input, _)) = complete(&invoked, &EventKind::Info, None)? {
            operations.push(Operation { process, input, output: None, call, ret: u64::MAX });
        }
    }
    operations.sort_by_key(|op| op.call);
    Ok(operations)
}
