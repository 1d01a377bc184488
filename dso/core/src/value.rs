//! [`Value`]: the element type of the built-in collections, futures and references.
//!
//! The server stores elements without knowing the program's types, so built-in collections hold
//! a self-describing value with a total order, equality and hash (floats compare by
//! `f64::total_cmp`). Any serde type fits through [`Value::encode`] / [`Value::decode`].

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::DsoError;

/// A 64-bit float with a total order (`f64::total_cmp`), so it can live in hashed, ordered state.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct F64(pub f64);

impl PartialEq for F64 {
    fn eq(&self, other: &Self) -> bool {
        self.0.total_cmp(&other.0) == Ordering::Equal
    }
}
impl Eq for F64 {}
impl PartialOrd for F64 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for F64 {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}
impl Hash for F64 {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state);
    }
}
impl From<f64> for F64 {
    fn from(value: f64) -> Self {
        F64(value)
    }
}

/// A self-describing value; variants order as listed, then by content.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Value {
    /// No value.
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// A float.
    Float(F64),
    /// A string.
    Str(String),
    /// Raw bytes (also what [`Value::encode`] produces).
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<Value>),
    /// A map with string keys.
    Map(BTreeMap<String, Value>),
}

impl Value {
    /// Wraps any serde value as bytes.
    pub fn encode<T: Serialize>(value: &T) -> Value {
        Value::Bytes(crate::object::encode(value))
    }

    /// Reads back a value stored with [`Value::encode`].
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, DsoError> {
        match self {
            Value::Bytes(bytes) => crate::object::decode(bytes).map_err(DsoError::Codec),
            other => Err(DsoError::Codec(format!("expected encoded bytes, found {other:?}"))),
        }
    }

    /// The integer inside, if this is an `Int`.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(value) => Some(*value),
            _ => None,
        }
    }

    /// The float inside, if this is a `Float`.
    pub fn as_float(&self) -> Option<f64> {
        match self {
            Value::Float(value) => Some(value.0),
            _ => None,
        }
    }

    /// The string inside, if this is a `Str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(value) => Some(value),
            _ => None,
        }
    }
}

impl From<bool> for Value {
    fn from(value: bool) -> Self {
        Value::Bool(value)
    }
}
impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Value::Int(value)
    }
}
impl From<i32> for Value {
    fn from(value: i32) -> Self {
        Value::Int(value.into())
    }
}
impl From<u32> for Value {
    fn from(value: u32) -> Self {
        Value::Int(value.into())
    }
}
impl From<f64> for Value {
    fn from(value: f64) -> Self {
        Value::Float(F64(value))
    }
}
impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Value::Str(value.to_string())
    }
}
impl From<String> for Value {
    fn from(value: String) -> Self {
        Value::Str(value)
    }
}
impl From<Vec<u8>> for Value {
    fn from(value: Vec<u8>) -> Self {
        Value::Bytes(value)
    }
}
impl From<Vec<Value>> for Value {
    fn from(value: Vec<Value>) -> Self {
        Value::List(value)
    }
}
