//! A value bound to a statement's parameter, as the workload's generators
//! draw it; each engine encodes it for its parameter's type
//! (`postgres/values.rs`, `mysql/exec.rs`). A leaf: it imports nothing.

/// A generated value. Converted to the parameter's server type at bind time.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
}
