//! Checking histories recorded elsewhere (Jepsen, Knossos, Porcupine) against the model their
//! source defines (see `shared/histories/README.md` for the exact semantics of each).

use std::time::Duration;

use clap::ValueEnum;

use crate::checker::{check_partitions, CheckResult, Verdict};
use crate::format::edn::Edn;
use crate::format::{read_events, InputError, RawEvent};
use crate::history::{pair_events, EventKind, Operation};
use crate::model::{
    partition_by, CasRegister, KnossosCasRegister, KvInput, KvModel, Model, RegisterInput, RegisterOutput,
};

/// The models for external histories.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExternalModel {
    /// Porcupine's etcd register: starts absent; reads are strict; a failed cas saw another value.
    CasRegister,
    /// Knossos' `(cas-register 0)`: starts at 0; a nil read constrains nothing; failures took no effect.
    KnossosCasRegister,
    /// Porcupine's key-value map of strings (get/put/append), checked key by key.
    Kv,
}

impl ExternalModel {
    /// The model a file most likely uses: Jepsen log lines are etcd registers, EDN with keys is
    /// a kv store, other EDN is Knossos' register.
    pub fn guess(events: &[RawEvent], jepsen_log: bool) -> Self {
        if jepsen_log {
            ExternalModel::CasRegister
        } else if events.iter().any(|event| event.key.is_some()) {
            ExternalModel::Kv
        } else {
            ExternalModel::KnossosCasRegister
        }
    }
}

/// The verdict on one file, and a printable explanation for a violation.
#[derive(Clone, Debug)]
pub struct FileVerdict {
    /// The verdict.
    pub verdict: Verdict,
    /// Operations checked.
    pub operations: usize,
    /// For a violation: the longest linearizable prefix and the operation that could not follow.
    pub explanation: Option<String>,
}

/// Reads `text` and checks it with `model` (guessed if `None`) within `budget`.
pub fn check_text(
    text: &str,
    model: Option<ExternalModel>,
    budget: Duration,
) -> Result<FileVerdict, InputError> {
    let events = read_events(text)?;
    let jepsen_log = crate::format::detect(text) == crate::format::Format::JepsenLog;
    let model = model.unwrap_or_else(|| ExternalModel::guess(&events, jepsen_log));
    match model {
        ExternalModel::CasRegister => {
            let operations = pair_register(events, RegisterSemantics::Porcupine)?;
            Ok(verdict(&CasRegister, vec![operations], budget))
        }
        ExternalModel::KnossosCasRegister => {
            let operations = pair_register(events, RegisterSemantics::Knossos)?;
            Ok(verdict(&KnossosCasRegister, vec![operations], budget))
        }
        ExternalModel::Kv => {
            let operations = pair_kv(events)?;
            Ok(verdict(
                &KvModel,
                partition_by(operations, |op| op.input.0.clone()).into_iter().map(strip_key).collect(),
                budget,
            ))
        }
    }
}

fn strip_key(operations: Vec<KeyedKvOperation>) -> Vec<Operation<KvInput, String>> {
    operations
        .into_iter()
        .map(|op| Operation {
            process: op.process,
            input: op.input.1,
            output: op.output,
            call: op.call,
            ret: op.ret,
        })
        .collect()
}

fn verdict<M: Model>(
    model: &M,
    partitions: Vec<Vec<Operation<M::Input, M::Output>>>,
    budget: Duration,
) -> FileVerdict {
    let operations = partitions.iter().map(Vec::len).sum();
    let CheckResult { verdict, counterexample } = check_partitions(model, &partitions, budget);
    let explanation = counterexample.map(|counterexample| {
        let part = &partitions[counterexample.partition];
        let mut text = String::from("longest linearizable prefix:\n");
        for (index, state) in counterexample.linearized.iter().zip(&counterexample.states) {
            let op = &part[*index];
            text +=
                &format!("  process {} {:?} -> {:?}   state {:?}\n", op.process, op.input, op.output, state);
        }
        let stuck = &part[counterexample.stuck];
        text += &format!("cannot place: process {} {:?} -> {:?}", stuck.process, stuck.input, stuck.output);
        text
    });
    FileVerdict { verdict, operations, explanation }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RegisterSemantics {
    Porcupine,
    Knossos,
}

fn int(value: &Edn, line: usize) -> Result<i64, InputError> {
    match value {
        Edn::Int(number) => Ok(*number),
        other => Err(InputError::at(line, format!("expected an integer, found {other:?}"))),
    }
}

fn register_input(event: &RawEvent) -> Result<RegisterInput, InputError> {
    Ok(match (event.f.as_str(), &event.value) {
        ("read", _) => RegisterInput::Read,
        ("write", value) => RegisterInput::Write(int(value, event.line)?),
        ("cas", Edn::List(pair)) if pair.len() == 2 => {
            RegisterInput::Cas(int(&pair[0], event.line)?, int(&pair[1], event.line)?)
        }
        (f, value) => {
            return Err(InputError::at(event.line, format!("not a register operation: :{f} {value:?}")))
        }
    })
}

fn pair_register(
    events: Vec<RawEvent>,
    semantics: RegisterSemantics,
) -> Result<Vec<Operation<RegisterInput, RegisterOutput>>, InputError> {
    let timed: Vec<_> = events.into_iter().map(|e| (e.line as u64, e.process, e.kind.clone(), e)).collect();
    pair_events(timed, |invoked, kind, completed| {
        let input = register_input(invoked).map_err(|e| e.to_string())?;
        let line = completed.map_or(invoked.line, |c| c.line);
        let output = match (kind, &input) {
            // Unknown outcome: reads constrain nothing, writes and cas may have happened.
            (EventKind::Info, RegisterInput::Read) => return Ok(None),
            (EventKind::Info, _) => return Ok(Some((input, None))),
            (EventKind::Fail, RegisterInput::Cas(..)) if semantics == RegisterSemantics::Porcupine => {
                RegisterOutput::Cas(false)
            }
            (EventKind::Fail, _) => return Ok(None),
            (EventKind::Ok, RegisterInput::Read) => match completed.map(|c| &c.value) {
                Some(Edn::Nil) | None => RegisterOutput::Read(None),
                Some(value) => RegisterOutput::Read(Some(int(value, line).map_err(|e| e.to_string())?)),
            },
            (EventKind::Ok, RegisterInput::Write(_)) => RegisterOutput::Written,
            (EventKind::Ok, RegisterInput::Cas(..)) => RegisterOutput::Cas(true),
            (EventKind::Invoke, _) => unreachable!("pair_events passes completions only"),
        };
        Ok(Some((input, Some(output))))
    })
    .map_err(|message| InputError::at(0, message))
}

/// A kv operation with its key, before partitioning.
type KeyedKvOperation = Operation<(String, KvInput), String>;

fn pair_kv(events: Vec<RawEvent>) -> Result<Vec<KeyedKvOperation>, InputError> {
    let timed: Vec<_> = events.into_iter().map(|e| (e.line as u64, e.process, e.kind.clone(), e)).collect();
    pair_events(timed, |invoked, kind, completed| {
        let key =
            invoked.key.clone().ok_or_else(|| format!("line {}: kv operation without :key", invoked.line))?;
        let text = |value: &Edn| match value {
            Edn::Str(text) => Ok(text.clone()),
            Edn::Nil => Ok(String::new()),
            other => Err(format!("line {}: expected a string value, found {other:?}", invoked.line)),
        };
        let input = match invoked.f.as_str() {
            "get" => KvInput::Get,
            "put" => KvInput::Put(text(&invoked.value)?),
            "append" => KvInput::Append(text(&invoked.value)?),
            other => return Err(format!("line {}: not a kv operation: :{other}", invoked.line)),
        };
        match kind {
            EventKind::Fail => Ok(None),
            EventKind::Info if input == KvInput::Get => Ok(None),
            EventKind::Info => Ok(Some(((key, input), None))),
            _ => {
                let output = match &input {
                    KvInput::Get => text(&completed.map_or(Edn::Nil, |c| c.value.clone()))?,
                    _ => String::new(),
                };
                Ok(Some(((key, input), Some(output))))
            }
        }
    })
    .map_err(|message| InputError::at(0, message))
}
