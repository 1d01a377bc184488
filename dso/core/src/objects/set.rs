//! `Set`: a set of distinct values (Java's `Set`), iterated in value order.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::{shared, Value};

/// A set of distinct values.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Set {
    elements: BTreeSet<Value>,
}

#[shared]
impl Set {
    /// Adds `value`; whether it was new.
    pub fn add(&mut self, value: Value) -> bool {
        self.elements.insert(value)
    }

    /// Adds every value; whether any was new.
    pub fn add_all(&mut self, values: Vec<Value>) -> bool {
        values.into_iter().fold(false, |changed, value| self.elements.insert(value) | changed)
    }

    /// Removes `value`; whether it was there.
    pub fn remove(&mut self, value: Value) -> bool {
        self.elements.remove(&value)
    }

    /// Removes every value given; whether any was there.
    pub fn remove_all(&mut self, values: Vec<Value>) -> bool {
        values.iter().fold(false, |changed, value| self.elements.remove(value) | changed)
    }

    /// Whether `value` is in the set.
    pub fn contains(&self, value: Value) -> bool {
        self.elements.contains(&value)
    }

    /// The number of values.
    pub fn size(&self) -> u64 {
        self.elements.len() as u64
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }

    /// Removes every value.
    pub fn clear(&mut self) {
        self.elements.clear();
    }

    /// The values in order.
    pub fn to_vec(&self) -> Vec<Value> {
        self.elements.iter().cloned().collect()
    }
}
