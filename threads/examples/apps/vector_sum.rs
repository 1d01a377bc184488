//! `VectorSum`: a user-defined shared object that adds up integer vectors and counts them (the
//! k-means centroid accumulators and the regression's gradient sums).

use crucial_dso::shared;
use serde::{Deserialize, Serialize};

/// A running sum of fixed-point vectors and how many items they stand for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VectorSum {
    sum: Vec<i64>,
    count: u64,
}

#[shared]
impl VectorSum {
    /// Adds `values` (element-wise, growing the sum as needed) standing for `count` items.
    pub fn add(&mut self, values: Vec<i64>, count: u64) {
        if self.sum.len() < values.len() {
            self.sum.resize(values.len(), 0);
        }
        for (total, value) in self.sum.iter_mut().zip(values) {
            *total = total.wrapping_add(value);
        }
        self.count += count;
    }

    /// The sum and the count.
    pub fn total(&self) -> (Vec<i64>, u64) {
        (self.sum.clone(), self.count)
    }
}
