//! `SortedMap`: a map kept in key order, with range and top-k queries (e.g. best scores).

use std::collections::BTreeMap;
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use crate::{shared, Value};

/// A map kept in key order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SortedMap {
    entries: BTreeMap<Value, Value>,
}

#[shared]
impl SortedMap {
    /// Sets `key` to `value`, returning the old value.
    pub fn put(&mut self, key: Value, value: Value) -> Option<Value> {
        self.entries.insert(key, value)
    }

    /// The value at `key`.
    pub fn get(&self, key: Value) -> Option<Value> {
        self.entries.get(&key).cloned()
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: Value) -> Option<Value> {
        self.entries.remove(&key)
    }

    /// The number of entries.
    pub fn size(&self) -> u64 {
        self.entries.len() as u64
    }

    /// The entry with the smallest key.
    pub fn first(&self) -> Option<(Value, Value)> {
        self.entries.first_key_value().map(|(k, v)| (k.clone(), v.clone()))
    }

    /// The entry with the largest key.
    pub fn last(&self) -> Option<(Value, Value)> {
        self.entries.last_key_value().map(|(k, v)| (k.clone(), v.clone()))
    }

    /// The entries with `from <= key < to`, in key order.
    pub fn range(&self, from: Value, to: Value) -> Vec<(Value, Value)> {
        if from >= to {
            return Vec::new();
        }
        self.entries
            .range((Bound::Included(from), Bound::Excluded(to)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The `k` entries with the largest keys, largest first.
    pub fn top(&self, k: u64) -> Vec<(Value, Value)> {
        self.entries.iter().rev().take(k as usize).map(|(key, value)| (key.clone(), value.clone())).collect()
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}
