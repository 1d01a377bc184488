//! `Blob`: a byte string that threads read, replace and append to.

use serde::{Deserialize, Serialize};

use super::{check_index, ObjectError};
use crate::shared;

/// A byte string.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Blob {
    bytes: Vec<u8>,
}

#[shared]
impl Blob {
    /// All bytes.
    pub fn get(&self) -> Vec<u8> {
        self.bytes.clone()
    }

    /// Replaces the bytes.
    pub fn set(&mut self, bytes: Vec<u8>) {
        self.bytes = bytes;
    }

    /// Appends `bytes`; the new length.
    pub fn append(&mut self, bytes: Vec<u8>) -> u64 {
        self.bytes.extend_from_slice(&bytes);
        self.bytes.len() as u64
    }

    /// Up to `length` bytes from `offset` (at most the current length).
    pub fn read(&self, offset: u64, length: u64) -> Result<Vec<u8>, ObjectError> {
        let start = check_index(offset, self.bytes.len() + 1)?;
        let end = start.saturating_add(length as usize).min(self.bytes.len());
        Ok(self.bytes[start..end].to_vec())
    }

    /// The number of bytes.
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Removes every byte.
    pub fn clear(&mut self) {
        self.bytes.clear();
    }
}
