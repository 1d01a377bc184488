//! History input formats: Jepsen/Knossos EDN (a vector or list of maps, or one map per line as
//! in Porcupine's kv files), Jepsen's `jepsen.util` log lines (Porcupine's etcd files), and
//! JSON (an array of objects with the same fields). All become [`RawEvent`]s.

pub mod edn;

use crate::history::EventKind;
use edn::Edn;

/// One invocation or completion as written in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEvent {
    /// The 1-based line it came from.
    pub line: usize,
    /// `:process`.
    pub process: u64,
    /// `:type`.
    pub kind: EventKind,
    /// `:f`, without the colon.
    pub f: String,
    /// `:key`, if any.
    pub key: Option<String>,
    /// `:value`.
    pub value: Edn,
}

/// Unreadable input, with the line at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct InputError {
    /// Where.
    pub line: usize,
    /// What.
    pub message: String,
}

impl InputError {
    /// An error at `line`.
    pub fn at(line: usize, message: impl Into<String>) -> Self {
        Self { line, message: message.into() }
    }
}

/// The formats [`read_events`] recognises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// EDN: one collection of maps, or one map per line.
    Edn,
    /// `INFO jepsen.util - PROC :TYPE :F VALUE` lines.
    JepsenLog,
    /// A JSON array of event objects.
    Json,
}

/// Guesses the format from the text.
pub fn detect(text: &str) -> Format {
    let start = text.trim_start();
    if text.contains("jepsen.util") {
        Format::JepsenLog
    } else if start.starts_with('[')
        && start[1..].trim_start().starts_with('{')
        && start.contains("\"process\"")
    {
        Format::Json
    } else {
        Format::Edn
    }
}

/// Reads every event of a history file.
pub fn read_events(text: &str) -> Result<Vec<RawEvent>, InputError> {
    match detect(text) {
        Format::JepsenLog => read_jepsen_log(text),
        Format::Json => read_json(text),
        Format::Edn => read_edn(text),
    }
}

fn read_edn(text: &str) -> Result<Vec<RawEvent>, InputError> {
    let values = edn::parse_all(text).map_err(|error| InputError::at(error.line, error.message))?;
    let mut events = Vec::new();
    for (line, value) in values {
        match value {
            Edn::List(items) => {
                // Line numbers inside one collection: count from its start.
                for (offset, item) in items.into_iter().enumerate() {
                    events.extend(event_from_map(line + offset, &item)?);
                }
            }
            map @ Edn::Map(_) => events.extend(event_from_map(line, &map)?),
            other => {
                return Err(InputError::at(
                    line,
                    format!("expected a map or a collection of maps, found {other:?}"),
                ))
            }
        }
    }
    Ok(events)
}

/// One event from a map; `None` for the nemesis's own events (`:process :nemesis`), which are
/// not client operations.
fn event_from_map(line: usize, map: &Edn) -> Result<Option<RawEvent>, InputError> {
    let field = |name: &str| map.get(name).ok_or_else(|| InputError::at(line, format!("missing :{name}")));
    let process = match field("process")? {
        Edn::Keyword(name) if name == "nemesis" => return Ok(None),
        Edn::Int(process) if *process >= 0 => *process as u64,
        other => {
            return Err(InputError::at(
                line,
                format!(":process must be a non-negative integer, found {other:?}"),
            ))
        }
    };
    let kind = match field("type")? {
        Edn::Keyword(kind) => kind_from(line, kind)?,
        other => return Err(InputError::at(line, format!(":type must be a keyword, found {other:?}"))),
    };
    let f = match field("f")? {
        Edn::Keyword(f) | Edn::Str(f) => f.clone(),
        other => return Err(InputError::at(line, format!(":f must be a keyword, found {other:?}"))),
    };
    let key = match map.get("key") {
        None => None,
        Some(Edn::Str(key)) | Some(Edn::Keyword(key)) => Some(key.clone()),
        Some(Edn::Int(key)) => Some(key.to_string()),
        Some(other) => return Err(InputError::at(line, format!(":key must be a string, found {other:?}"))),
    };
    Ok(Some(RawEvent { line, process, kind, f, key, value: map.get("value").cloned().unwrap_or(Edn::Nil) }))
}

fn kind_from(line: usize, kind: &str) -> Result<EventKind, InputError> {
    Ok(match kind {
        "invoke" => EventKind::Invoke,
        "ok" => EventKind::Ok,
        "fail" => EventKind::Fail,
        "info" => EventKind::Info,
        other => return Err(InputError::at(line, format!("unknown :type :{other}"))),
    })
}

fn read_jepsen_log(text: &str) -> Result<Vec<RawEvent>, InputError> {
    let mut events = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let Some(position) = raw.find("jepsen.util - ") else { continue };
        let rest = &raw[position + "jepsen.util - ".len()..];
        let mut fields = rest.split_whitespace();
        let (Some(process), Some(kind), Some(f)) = (fields.next(), fields.next(), fields.next()) else {
            return Err(InputError::at(line, "expected PROCESS :TYPE :F VALUE"));
        };
        let process =
            process.parse().map_err(|_| InputError::at(line, format!("bad process {process:?}")))?;
        let kind = kind_from(line, kind.trim_start_matches(':'))?;
        let value_text = fields.collect::<Vec<_>>().join(" ");
        let value = match edn::parse_all(&value_text).map_err(|e| InputError::at(line, e.message))?.pop() {
            Some((_, value)) => value,
            None => Edn::Nil,
        };
        events.push(RawEvent {
            line,
            process,
            kind,
            f: f.trim_start_matches(':').to_string(),
            key: None,
            value,
        });
    }
    Ok(events)
}

fn read_json(text: &str) -> Result<Vec<RawEvent>, InputError> {
    let values: Vec<serde_json::Value> =
        serde_json::from_str(text).map_err(|e| InputError::at(e.line(), e.to_string()))?;
    let mut events = Vec::new();
    for (index, value) in values.iter().enumerate() {
        events.extend(event_from_map(index + 1, &edn_from_json(value, true))?);
    }
    Ok(events)
}

/// JSON to EDN: strings under `type` and `f` become keywords.
fn edn_from_json(value: &serde_json::Value, top: bool) -> Edn {
    use serde_json::Value as J;
    match value {
        J::Null => Edn::Nil,
        J::Bool(b) => Edn::Bool(*b),
        J::Number(n) => n.as_i64().map_or_else(|| Edn::Str(n.to_string()), Edn::Int),
        J::String(s) => Edn::Str(s.clone()),
        J::Array(items) => Edn::List(items.iter().map(|item| edn_from_json(item, false)).collect()),
        J::Object(fields) => Edn::Map(
            fields
                .iter()
                .map(|(name, field)| {
                    let value = match (top, name.as_str(), field) {
                        (true, "type" | "f", J::String(s)) => Edn::Keyword(s.clone()),
                        _ => edn_from_json(field, false),
                    };
                    (Edn::Keyword(name.clone()), value)
                })
                .collect(),
        ),
    }
}
