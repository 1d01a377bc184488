//! Atomic cells: `AtomicLong`, `AtomicInt`, `AtomicBoolean`, `AtomicReference`, and
//! `AtomicByteArray`. Integer arithmetic wraps on overflow, as in Java.

use serde::{Deserialize, Serialize};

use super::{check_index, ObjectError};
use crate::{shared, Value};

/// Declares an atomic cell holding one `$value`, with get/set/swap/compare-and-set plus `$extra`.
macro_rules! atomic_cell {
    ($(#[$doc:meta])* $name:ident, $value:ty, { $($extra:tt)* }) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub struct $name {
            value: $value,
        }

        #[shared]
        impl $name {
            /// A cell holding `value`.
            pub fn with_value(value: $value) -> Self {
                Self { value }
            }

            /// The current value.
            pub fn get(&self) -> $value {
                self.value.clone()
            }

            /// Replaces the value.
            pub fn set(&mut self, value: $value) {
                self.value = value;
            }

            /// Replaces the value, returning the old one.
            pub fn get_and_set(&mut self, value: $value) -> $value {
                std::mem::replace(&mut self.value, value)
            }

            /// Sets `update` if the value equals `expected`; whether it did.
            pub fn compare_and_set(&mut self, expected: $value, update: $value) -> bool {
                let matches = self.value == expected;
                if matches {
                    self.value = update;
                }
                matches
            }

            $($extra)*
        }
    };
}

/// Declares an atomic integer cell with Java's arithmetic methods.
macro_rules! atomic_integer {
    ($(#[$doc:meta])* $name:ident, $int:ty) => {
        atomic_cell!($(#[$doc])* $name, $int, {
            /// Adds `delta`, returning the old value.
            pub fn get_and_add(&mut self, delta: $int) -> $int {
                let old = self.value;
                self.value = old.wrapping_add(delta);
                old
            }

            /// Adds `delta`, returning the new value.
            pub fn add_and_get(&mut self, delta: $int) -> $int {
                self.value = self.value.wrapping_add(delta);
                self.value
            }

            /// Adds one, returning the old value.
            pub fn get_and_increment(&mut self) -> $int {
                self.get_and_add(1)
            }

            /// Subtracts one, returning the old value.
            pub fn get_and_decrement(&mut self) -> $int {
                self.get_and_add(-1)
            }

            /// Adds one, returning the new value.
            pub fn increment_and_get(&mut self) -> $int {
                self.add_and_get(1)
            }

            /// Subtracts one, returning the new value.
            pub fn decrement_and_get(&mut self) -> $int {
                self.add_and_get(-1)
            }
        });
    };
}

atomic_integer!(
    /// A 64-bit integer with atomic read-modify-write operations (Java's `AtomicLong`).
    AtomicLong,
    i64
);
atomic_integer!(
    /// A 32-bit integer with atomic read-modify-write operations (Java's `AtomicInteger`).
    AtomicInt,
    i32
);
atomic_cell!(
    /// A boolean with atomic swap and compare-and-set (Java's `AtomicBoolean`).
    AtomicBoolean,
    bool,
    {}
);
atomic_cell!(
    /// Any value with atomic swap and compare-and-set (Java's `AtomicReference`); compares by
    /// value equality (store serde types with [`Value::encode`]).
    AtomicReference,
    Value,
    {}
);

/// A fixed-length array of bytes with atomic per-element operations; arithmetic wraps.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AtomicByteArray {
    bytes: Vec<u8>,
}

#[shared]
impl AtomicByteArray {
    /// An array of `length` zero bytes.
    pub fn new(length: usize) -> Self {
        Self { bytes: vec![0; length] }
    }

    /// The number of elements.
    pub fn length(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// The element at `index`.
    pub fn get(&self, index: u64) -> Result<u8, ObjectError> {
        Ok(self.bytes[check_index(index, self.bytes.len())?])
    }

    /// Sets the element at `index`.
    pub fn set(&mut self, index: u64, value: u8) -> Result<(), ObjectError> {
        self.get_and_set(index, value).map(drop)
    }

    /// Sets the element at `index`, returning the old value.
    pub fn get_and_set(&mut self, index: u64, value: u8) -> Result<u8, ObjectError> {
        let slot = self.slot(index)?;
        Ok(std::mem::replace(slot, value))
    }

    /// Sets `update` at `index` if the element equals `expected`; whether it did.
    pub fn compare_and_set(&mut self, index: u64, expected: u8, update: u8) -> Result<bool, ObjectError> {
        let slot = self.slot(index)?;
        let matches = *slot == expected;
        if matches {
            *slot = update;
        }
        Ok(matches)
    }

    /// Adds `delta` at `index`, returning the old value.
    pub fn get_and_add(&mut self, index: u64, delta: u8) -> Result<u8, ObjectError> {
        let slot = self.slot(index)?;
        let old = *slot;
        *slot = old.wrapping_add(delta);
        Ok(old)
    }

    /// Adds `delta` at `index`, returning the new value.
    pub fn add_and_get(&mut self, index: u64, delta: u8) -> Result<u8, ObjectError> {
        self.get_and_add(index, delta).map(|old| old.wrapping_add(delta))
    }

    /// A copy of all elements.
    pub fn to_vec(&self) -> Vec<u8> {
        self.bytes.clone()
    }

    fn slot(&mut self, index: u64) -> Result<&mut u8, ObjectError> {
        let position = check_index(index, self.bytes.len())?;
        Ok(&mut self.bytes[position])
    }
}
