//! `Counter`: a shared tally (Crucial's counter), simpler than an `AtomicLong`.

use serde::{Deserialize, Serialize};

use crate::shared;

/// A tally that threads add to; arithmetic wraps.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Counter {
    count: i64,
}

#[shared]
impl Counter {
    /// Adds one; the new count.
    pub fn increment(&mut self) -> i64 {
        self.add(1)
    }

    /// Subtracts one; the new count.
    pub fn decrement(&mut self) -> i64 {
        self.add(-1)
    }

    /// Adds `delta`; the new count.
    pub fn add(&mut self, delta: i64) -> i64 {
        self.count = self.count.wrapping_add(delta);
        self.count
    }

    /// The count.
    pub fn get(&self) -> i64 {
        self.count
    }

    /// Sets the count to zero; the count before.
    pub fn reset(&mut self) -> i64 {
        std::mem::take(&mut self.count)
    }
}
