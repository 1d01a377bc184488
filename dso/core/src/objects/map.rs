//! `Map`: a key-value map (Java's `Map`), with `merge` / `merge_all` by a named merge function.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ObjectError;
use crate::{shared, Value, F64};

/// How `merge` combines an existing value with a new one. Named, because functions cannot
/// travel to the server; each is deterministic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MergeFunction {
    /// The new value replaces the old.
    Replace,
    /// The old value stays.
    KeepExisting,
    /// Numeric sum (ints wrap; an int and a float give a float).
    Sum,
    /// The smaller, by value order.
    Min,
    /// The larger, by value order.
    Max,
    /// Concatenation of two strings, two byte strings or two lists.
    Concat,
}

impl MergeFunction {
    /// Combines `old` with `new`.
    pub fn merge(self, old: &Value, new: Value) -> Result<Value, ObjectError> {
        Ok(match (self, old, new) {
            (MergeFunction::Replace, _, new) => new,
            (MergeFunction::KeepExisting, old, _) => old.clone(),
            (MergeFunction::Min, old, new) => new.min(old.clone()),
            (MergeFunction::Max, old, new) => new.max(old.clone()),
            (MergeFunction::Sum, Value::Int(a), Value::Int(b)) => Value::Int(a.wrapping_add(b)),
            (MergeFunction::Sum, Value::Float(a), Value::Float(b)) => Value::Float(F64(a.0 + b.0)),
            (MergeFunction::Sum, Value::Int(a), Value::Float(b)) => Value::Float(F64(*a as f64 + b.0)),
            (MergeFunction::Sum, Value::Float(a), Value::Int(b)) => Value::Float(F64(a.0 + b as f64)),
            (MergeFunction::Concat, Value::Str(a), Value::Str(b)) => Value::Str(a.clone() + &b),
            (MergeFunction::Concat, Value::Bytes(a), Value::Bytes(b)) => {
                Value::Bytes([a.as_slice(), &b].concat())
            }
            (MergeFunction::Concat, Value::List(a), Value::List(b)) => {
                Value::List([a.as_slice(), &b].concat())
            }
            (function, old, new) => {
                return Err(ObjectError::Merge { reason: format!("{function:?} of {old:?} and {new:?}") })
            }
        })
    }
}

/// A key-value map.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Map {
    entries: BTreeMap<Value, Value>,
}

#[shared]
impl Map {
    /// The value at `key`.
    pub fn get(&self, key: Value) -> Option<Value> {
        self.entries.get(&key).cloned()
    }

    /// Sets `key` to `value`, returning the old value.
    pub fn put(&mut self, key: Value, value: Value) -> Option<Value> {
        self.entries.insert(key, value)
    }

    /// Sets `key` to `value` unless it has one; the value it had.
    pub fn put_if_absent(&mut self, key: Value, value: Value) -> Option<Value> {
        match self.entries.get(&key) {
            Some(existing) => Some(existing.clone()),
            None => self.entries.insert(key, value),
        }
    }

    /// Sets every pair, in order.
    pub fn put_all(&mut self, entries: Vec<(Value, Value)>) {
        self.entries.extend(entries);
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: Value) -> Option<Value> {
        self.entries.remove(&key)
    }

    /// Whether `key` has a value.
    pub fn contains_key(&self, key: Value) -> bool {
        self.entries.contains_key(&key)
    }

    /// The number of entries.
    pub fn size(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// The keys in order.
    pub fn keys(&self) -> Vec<Value> {
        self.entries.keys().cloned().collect()
    }

    /// The values in key order.
    pub fn values(&self) -> Vec<Value> {
        self.entries.values().cloned().collect()
    }

    /// The entries in key order.
    pub fn entries(&self) -> Vec<(Value, Value)> {
        self.entries.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Sets `key` to `value` if absent, else to `function(old, value)`; the resulting value.
    pub fn merge(&mut self, key: Value, value: Value, function: MergeFunction) -> Result<Value, ObjectError> {
        let merged = match self.entries.get(&key) {
            Some(old) => function.merge(old, value)?,
            None => value,
        };
        self.entries.insert(key, merged.clone());
        Ok(merged)
    }

    /// Merges every pair with `function`, all or nothing: on an error the map is unchanged.
    pub fn merge_all(
        &mut self,
        entries: Vec<(Value, Value)>,
        function: MergeFunction,
    ) -> Result<(), ObjectError> {
        let mut staged = BTreeMap::new();
        for (key, value) in entries {
            let merged = match staged.get(&key).or_else(|| self.entries.get(&key)) {
                Some(old) => function.merge(old, value)?,
                None => value,
            };
            staged.insert(key, merged);
        }
        self.entries.extend(staged);
        Ok(())
    }
}
