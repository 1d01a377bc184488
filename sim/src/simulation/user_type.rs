//! A user-defined object type, registered like an application's own: the simulator exercises
//! the path through `#[shared]` and the registry that user types take, not only built-ins.

use crucial_dso::shared;
use serde::{Deserialize, Serialize};

/// A stack of small numbers (pushes and pops do not commute).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Stack {
    items: Vec<i64>,
}

#[shared]
impl Stack {
    /// Pushes `item`; the new depth.
    pub fn push(&mut self, item: i64) -> u64 {
        self.items.push(item);
        self.items.len() as u64
    }

    /// Pops the top item, if any.
    pub fn pop(&mut self) -> Option<i64> {
        self.items.pop()
    }

    /// The top item, if any.
    pub fn peek(&self) -> Option<i64> {
        self.items.last().copied()
    }

    /// The depth.
    pub fn depth(&self) -> u64 {
        self.items.len() as u64
    }
}
