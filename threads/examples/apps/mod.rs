//! The example applications' cloud threads and shared object types, in one module so that one
//! Lambda handler binary serves them all.

#![allow(dead_code)]

pub mod kmeans;
pub mod logreg;
pub mod mandelbrot;
pub mod pi;
pub mod santa;
pub mod vector_sum;

use crucial_dso::ServerBuilder;

/// A server that knows every object type the applications use.
pub fn server() -> ServerBuilder {
    ServerBuilder::new()
        .register_with_default::<vector_sum::VectorSum>()
        .register::<mandelbrot::Image>()
        .register_with_default::<santa::Workshop>()
}

/// Fixed-point scale for sums of floats: integer sums are exact in any order, so the threads'
/// result equals the sequential reference bit for bit.
pub const FIXED_SCALE: f64 = (1u64 << 20) as f64;

/// `value` in fixed point.
pub fn to_fixed(value: f64) -> i64 {
    (value * FIXED_SCALE).round() as i64
}

/// A fixed-point value as a float.
pub fn from_fixed(value: i64) -> f64 {
    value as f64 / FIXED_SCALE
}
