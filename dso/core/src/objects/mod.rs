//! Built-in shared objects: the `java.util.concurrent` / Crucial set, each a plain Rust type
//! whose `#[shared]` methods are its operations.

mod atomic;
mod barrier;
mod blob;
mod counter;
mod future;
mod latch;
mod list;
mod logger;
mod map;
mod matrix;
mod semaphore;
mod set;
mod sorted_map;

pub use atomic::*;
pub use barrier::*;
pub use blob::*;
pub use counter::*;
pub use future::*;
pub use latch::*;
pub use list::*;
pub use logger::*;
pub use map::*;
pub use matrix::*;
pub use semaphore::*;
pub use set::*;
pub use sorted_map::*;

use serde::{Deserialize, Serialize};

use crate::registry::Registry;

/// A built-in operation's typed failure (returned as a value, never a panic on the node).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
pub enum ObjectError {
    /// An index past the end.
    #[error("index {index} out of bounds for length {length}")]
    IndexOutOfBounds {
        /// The index asked for.
        index: u64,
        /// The current length.
        length: u64,
    },
    /// A row or vector of the wrong length.
    #[error("expected {expected} elements, got {got}")]
    LengthMismatch {
        /// The length required.
        expected: u64,
        /// The length given.
        got: u64,
    },
    /// A merge function that does not apply to these values.
    #[error("cannot merge: {reason}")]
    Merge {
        /// Why.
        reason: String,
    },
}

/// A parked call that ran out of time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[error("timed out")]
pub struct TimedOut;

/// Checks `index < length`.
fn check_index(index: u64, length: usize) -> Result<usize, ObjectError> {
    if index < length as u64 {
        Ok(index as usize)
    } else {
        Err(ObjectError::IndexOutOfBounds { index, length: length as u64 })
    }
}

/// Registers every built-in type (those without a natural empty state need an initial one).
pub(crate) fn register_builtins(registry: &mut Registry) {
    registry
        .register_with_default::<AtomicLong>()
        .register_with_default::<AtomicInt>()
        .register_with_default::<AtomicBoolean>()
        .register_with_default::<AtomicReference>()
        .register::<AtomicByteArray>()
        .register_with_default::<Counter>()
        .register_with_default::<List>()
        .register_with_default::<Set>()
        .register_with_default::<Map>()
        .register_with_default::<SortedMap>()
        .register::<Matrix>()
        .register_with_default::<Blob>()
        .register_with_default::<Future>()
        .register::<Semaphore>()
        .register::<CyclicBarrier>()
        .register::<CountDownLatch>()
        .register_with_default::<Logger>();
}
