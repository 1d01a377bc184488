//! `List`: an ordered sequence of values (Java's `List`).

use serde::{Deserialize, Serialize};

use super::{check_index, ObjectError};
use crate::{shared, Value};

/// An ordered sequence of values.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct List {
    elements: Vec<Value>,
}

#[shared]
impl List {
    /// Appends `value`.
    pub fn add(&mut self, value: Value) {
        self.elements.push(value);
    }

    /// Inserts `value` at `index` (at most the length), shifting later elements.
    pub fn add_at(&mut self, index: u64, value: Value) -> Result<(), ObjectError> {
        let position = check_index(index, self.elements.len() + 1)?;
        self.elements.insert(position, value);
        Ok(())
    }

    /// Appends every value, in order.
    pub fn add_all(&mut self, values: Vec<Value>) {
        self.elements.extend(values);
    }

    /// The element at `index`.
    pub fn get(&self, index: u64) -> Result<Value, ObjectError> {
        Ok(self.elements[check_index(index, self.elements.len())?].clone())
    }

    /// Replaces the element at `index`, returning the old one.
    pub fn set(&mut self, index: u64, value: Value) -> Result<Value, ObjectError> {
        let position = check_index(index, self.elements.len())?;
        Ok(std::mem::replace(&mut self.elements[position], value))
    }

    /// Removes and returns the element at `index`.
    pub fn remove_at(&mut self, index: u64) -> Result<Value, ObjectError> {
        let position = check_index(index, self.elements.len())?;
        Ok(self.elements.remove(position))
    }

    /// Removes the first element equal to `value`; whether there was one.
    pub fn remove(&mut self, value: Value) -> bool {
        match self.elements.iter().position(|element| *element == value) {
            Some(position) => {
                self.elements.remove(position);
                true
            }
            None => false,
        }
    }

    /// Whether some element equals `value`.
    pub fn contains(&self, value: Value) -> bool {
        self.elements.contains(&value)
    }

    /// The index of the first element equal to `value`.
    pub fn index_of(&self, value: Value) -> Option<u64> {
        self.elements.iter().position(|element| *element == value).map(|p| p as u64)
    }

    /// The number of elements.
    pub fn size(&self) -> u64 {
        self.elements.len() as u64
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }

    /// Removes every element.
    pub fn clear(&mut self) {
        self.elements.clear();
    }

    /// The elements from `from` (inclusive) to `to` (exclusive).
    pub fn sub_list(&self, from: u64, to: u64) -> Result<Vec<Value>, ObjectError> {
        let end = check_index(to, self.elements.len() + 1)?;
        let start = check_index(from, end + 1)?;
        Ok(self.elements[start..end].to_vec())
    }

    /// A copy of all elements.
    pub fn to_vec(&self) -> Vec<Value> {
        self.elements.clone()
    }
}
