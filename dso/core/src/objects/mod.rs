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

/// The one list of the built-in types, in the order the simulator's workload cycles through
/// them (the parking ones among the first eight): calls `$callback!` with every type, each
/// followed by `=> accessor` if it starts as its default on first use (the client's accessor of
/// that name gives its handle) or alone if it needs an initial state. Extra tokens after a `;`
/// are passed on after the list. The registry, the client's accessors, the simulator's workload
/// and its checker all read it.
#[macro_export]
macro_rules! for_each_builtin {
    ($($callback:ident)::+ $(; $($extra:tt)*)?) => {
        $($callback)::+! {
            [
                AtomicLong => atomic_long,
                AtomicReference => atomic_reference,
                Map => map,
                List => list,
                Future => future,
                Semaphore,
                CountDownLatch,
                CyclicBarrier,
                AtomicInt => atomic_int,
                AtomicBoolean => atomic_boolean,
                AtomicByteArray,
                Counter => counter,
                Set => set,
                SortedMap => sorted_map,
                Matrix,
                Blob => blob,
                Logger => logger,
            ]
            $($($extra)*)?
        }
    };
}

/// Evaluates `$body` with `$T` naming the built-in type whose name is `$name`, or `$otherwise`.
#[macro_export]
macro_rules! with_builtin {
    ($name:expr, $T:ident => $body:expr, otherwise $otherwise:expr) => {
        $crate::for_each_builtin!($crate::__with_builtin_arms; $crate, $name, $T => $body, otherwise $otherwise)
    };
}

/// The match behind [`with_builtin!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __with_builtin_arms {
    (
        [$($Type:ident $(=> $accessor:ident)?,)*]
        $krate:tt, $name:expr, $T:ident => $body:expr, otherwise $otherwise:expr
    ) => {
        match $name {
            $(name if name == <$krate::objects::$Type as $krate::SharedObject>::TYPE_NAME => {
                type $T = $krate::objects::$Type;
                $body
            })*
            _ => $otherwise,
        }
    };
}

/// The names of the built-in types, in [`for_each_builtin!`]'s order.
pub const BUILTIN_TYPE_NAMES: &[&str] = {
    macro_rules! names {
        ([$($Type:ident $(=> $accessor:ident)?,)*]) => {
            &[$(<$Type as crate::SharedObject>::TYPE_NAME,)*]
        };
    }
    for_each_builtin!(names)
};
