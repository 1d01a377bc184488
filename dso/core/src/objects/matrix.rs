//! `Matrix`: a dense matrix of floats, e.g. shared model weights that workers add gradients to.

use serde::{Deserialize, Serialize};

use super::{check_index, ObjectError};
use crate::{shared, F64};

/// A dense `rows x columns` matrix of floats, row-major.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Matrix {
    rows: u64,
    columns: u64,
    cells: Vec<F64>,
}

#[shared]
impl Matrix {
    /// A `rows x columns` matrix of zeros.
    pub fn new(rows: u64, columns: u64) -> Self {
        Self { rows, columns, cells: vec![F64(0.0); (rows * columns) as usize] }
    }

    /// `(rows, columns)`.
    pub fn dimensions(&self) -> (u64, u64) {
        (self.rows, self.columns)
    }

    /// The cell at `(row, column)`.
    pub fn get(&self, row: u64, column: u64) -> Result<F64, ObjectError> {
        Ok(self.cells[self.position(row, column)?])
    }

    /// Sets the cell at `(row, column)`.
    pub fn set(&mut self, row: u64, column: u64, value: F64) -> Result<(), ObjectError> {
        let position = self.position(row, column)?;
        self.cells[position] = value;
        Ok(())
    }

    /// Adds `delta` to the cell at `(row, column)`; the new value.
    pub fn add(&mut self, row: u64, column: u64, delta: F64) -> Result<F64, ObjectError> {
        let position = self.position(row, column)?;
        self.cells[position].0 += delta.0;
        Ok(self.cells[position])
    }

    /// One row.
    pub fn row(&self, row: u64) -> Result<Vec<F64>, ObjectError> {
        let start = self.row_start(row)?;
        Ok(self.cells[start..start + self.columns as usize].to_vec())
    }

    /// Replaces one row.
    pub fn set_row(&mut self, row: u64, values: Vec<F64>) -> Result<(), ObjectError> {
        let start = self.row_start(row)?;
        Self::check_length(self.columns, &values)?;
        self.cells[start..start + values.len()].copy_from_slice(&values);
        Ok(())
    }

    /// Adds a whole matrix of the same shape, given row-major, cell by cell.
    pub fn add_all(&mut self, deltas: Vec<F64>) -> Result<(), ObjectError> {
        Self::check_length(self.cells.len() as u64, &deltas)?;
        for (cell, delta) in self.cells.iter_mut().zip(deltas) {
            cell.0 += delta.0;
        }
        Ok(())
    }

    /// Sets every cell to `value`.
    pub fn fill(&mut self, value: F64) {
        self.cells.fill(value);
    }

    /// All cells, row-major.
    pub fn to_vec(&self) -> Vec<F64> {
        self.cells.clone()
    }

    fn position(&self, row: u64, column: u64) -> Result<usize, ObjectError> {
        Ok(self.row_start(row)? + check_index(column, self.columns as usize)?)
    }

    fn row_start(&self, row: u64) -> Result<usize, ObjectError> {
        Ok(check_index(row, self.rows as usize)? * self.columns as usize)
    }

    fn check_length(expected: u64, values: &[F64]) -> Result<(), ObjectError> {
        match values.len() as u64 {
            got if got == expected => Ok(()),
            got => Err(ObjectError::LengthMismatch { expected, got }),
        }
    }
}
