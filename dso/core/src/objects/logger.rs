//! `Logger`: a shared, bounded log that cloud threads append lines to.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::shared;

/// The most lines a logger keeps; older ones are dropped first.
pub const LOGGER_LINES_MAX: usize = 10_000;

/// An append-only log of lines, numbered from 0, keeping the last [`LOGGER_LINES_MAX`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Logger {
    /// The number of the oldest line kept.
    first_line: u64,
    lines: VecDeque<String>,
}

#[shared]
impl Logger {
    /// Appends `line`; its number.
    pub fn log(&mut self, line: String) -> u64 {
        if self.lines.len() == LOGGER_LINES_MAX {
            self.lines.pop_front();
            self.first_line += 1;
        }
        self.lines.push_back(line);
        self.first_line + self.lines.len() as u64 - 1
    }

    /// Up to `limit` kept lines numbered `from` or later, with their numbers.
    pub fn read(&self, from: u64, limit: u64) -> Vec<(u64, String)> {
        let skip = from.saturating_sub(self.first_line) as usize;
        let numbers = self.first_line..;
        numbers.zip(&self.lines).skip(skip).take(limit as usize).map(|(n, line)| (n, line.clone())).collect()
    }

    /// The number of lines ever logged.
    pub fn len(&self) -> u64 {
        self.first_line + self.lines.len() as u64
    }

    /// Whether nothing was ever logged (or it was cleared).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every line and restarts numbering.
    pub fn clear(&mut self) {
        self.lines.clear();
        self.first_line = 0;
    }
}
