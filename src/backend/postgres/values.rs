//! The workload's values as PostgreSQL parameters: which server types each
//! can be bound to (checked once per statement before measuring, so a
//! mismatch is a clear error and not a stream of failed requests), the
//! integers each narrow type holds, and the binary encoding the measured
//! session (`wire.rs`) sends.

use std::error::Error as StdError;

use bytes::BytesMut;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};

use crate::backend::value::Value;

/// Whether a generated value can be bound to a parameter of type `ty`.
pub fn can_bind(value: &Value, ty: &Type) -> bool {
    let t = ty.clone();
    match value {
        Value::Int(_) => {
            matches!(
                t,
                Type::INT2 | Type::INT4 | Type::INT8 | Type::OID | Type::FLOAT4 | Type::FLOAT8
            ) || is_textual(&t)
        }
        Value::Float(_) => matches!(t, Type::FLOAT4 | Type::FLOAT8) || is_textual(&t),
        Value::Bool(_) => t == Type::BOOL || is_textual(&t),
        Value::Text(_) => is_textual(&t),
    }
}

/// The integers a parameter of type `ty` holds, for the integer types
/// narrower than the generators' i64 (None for the others).
pub fn int_bounds(ty: &Type) -> Option<(i64, i64)> {
    match *ty {
        Type::INT2 => Some((i16::MIN.into(), i16::MAX.into())),
        Type::INT4 => Some((i32::MIN.into(), i32::MAX.into())),
        Type::OID => Some((0, u32::MAX.into())),
        _ => None,
    }
}

fn is_textual(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN
    )
}

#[derive(Debug)]
struct BindError(String);
impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl StdError for BindError {}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        let out_of_range = || -> Box<dyn StdError + Sync + Send> {
            Box::new(BindError(format!("{self:?} is out of range for {ty}")))
        };
        match (self, ty.clone()) {
            (Value::Int(i), Type::INT2) => i16::try_from(*i)
                .map_err(|_| out_of_range())?
                .to_sql(ty, out),
            (Value::Int(i), Type::INT4) => i32::try_from(*i)
                .map_err(|_| out_of_range())?
                .to_sql(ty, out),
            (Value::Int(i), Type::INT8) => i.to_sql(ty, out),
            (Value::Int(i), Type::OID) => u32::try_from(*i)
                .map_err(|_| out_of_range())?
                .to_sql(ty, out),
            (Value::Int(i), Type::FLOAT4) => (*i as f32).to_sql(ty, out),
            (Value::Int(i), Type::FLOAT8) => (*i as f64).to_sql(ty, out),
            (Value::Float(f), Type::FLOAT4) => (*f as f32).to_sql(ty, out),
            (Value::Float(f), Type::FLOAT8) => f.to_sql(ty, out),
            (Value::Bool(b), Type::BOOL) => b.to_sql(ty, out),
            (v, t) if is_textual(&t) => {
                match v {
                    Value::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
                    Value::Float(f) => out.extend_from_slice(f.to_string().as_bytes()),
                    Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
                    Value::Text(s) => out.extend_from_slice(s.as_bytes()),
                }
                Ok(IsNull::No)
            }
            (v, t) => Err(Box::new(BindError(format!(
                "cannot bind {v:?} to a parameter of type {t}"
            )))),
        }
    }

    fn accepts(_ty: &Type) -> bool {
        // Checked per value in `to_sql` (and before measuring by `can_bind`).
        true
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrow_integer_types_have_bounds() {
        assert_eq!(int_bounds(&Type::INT2), Some((-32768, 32767)));
        assert_eq!(int_bounds(&Type::OID), Some((0, 4_294_967_295)));
        assert_eq!(int_bounds(&Type::INT8), None);
        assert_eq!(int_bounds(&Type::TEXT), None);
    }

    #[test]
    fn binding_checks_types_and_ranges() {
        assert!(can_bind(&Value::Int(1), &Type::INT4));
        assert!(can_bind(&Value::Int(1), &Type::TEXT));
        assert!(!can_bind(&Value::Text("x".into()), &Type::INT8));
        assert!(!can_bind(&Value::Bool(true), &Type::INT4));
        let mut buf = BytesMut::new();
        assert!(Value::Int(70_000).to_sql(&Type::INT2, &mut buf).is_err());
        assert!(Value::Int(7).to_sql(&Type::INT2, &mut buf).is_ok());
    }
}
