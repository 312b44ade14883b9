//! A statement as the workload runs it, on any engine: how it reaches the
//! server ([`Statements`]: named or unnamed) and what the server said of
//! its parameters when the session checked it ([`Described`]), which each
//! parameter's [`ParamType`] checks the workload's values against.

use std::fmt;

use tokio_postgres::types::Type;

use super::postgres::values::{can_bind, int_bounds};
use super::value::Value;

/// How a request's statements reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Statements {
    /// Prepared under a name and kept on the connection (`statement_cache =
    /// true`): a pooled connection prepares each statement once (MySQL:
    /// the binary protocol, the driver caching each connection's
    /// statements).
    Named,
    /// Unnamed, parsed, bound and run in one round trip, nothing kept: works
    /// through transaction pooling, where the next statement may run on
    /// another server connection (MySQL: the text protocol, the values in
    /// place of the `?`s).
    Unnamed,
}

/// What the server said of a statement's parameters when it was checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Described {
    /// Not checked against a server (yet): nothing is known, and no
    /// parameter types are sent (PostgreSQL infers them).
    #[default]
    Unchecked,
    /// PostgreSQL: each parameter's type as the server inferred it. The
    /// values are encoded as these, and unnamed statements send them so
    /// that they take one round trip.
    Postgres(Vec<Type>),
    /// MySQL: how many parameters the server counts; it reports no types
    /// to check the values against.
    MySql { params: usize },
}

impl Described {
    /// How many parameters the server expects.
    pub fn param_count(&self) -> usize {
        match self {
            Described::Unchecked => 0,
            Described::Postgres(types) => types.len(),
            Described::MySql { params } => *params,
        }
    }

    /// Each parameter's type, in order.
    pub fn params(&self) -> impl Iterator<Item = ParamType<'_>> {
        let (typed, untyped): (&[Type], usize) = match self {
            Described::Unchecked => (&[], 0),
            Described::Postgres(types) => (types, 0),
            Described::MySql { params } => (&[], *params),
        };
        typed
            .iter()
            .map(ParamType::Postgres)
            .chain(std::iter::repeat_n(ParamType::Untyped, untyped))
    }

    /// The PostgreSQL types to encode the values as (none unless the
    /// statement was described by PostgreSQL).
    pub fn postgres_types(&self) -> &[Type] {
        match self {
            Described::Postgres(types) => types,
            Described::Unchecked | Described::MySql { .. } => &[],
        }
    }
}

/// One parameter's type on the server.
#[derive(Debug, Clone, Copy)]
pub enum ParamType<'a> {
    Postgres(&'a Type),
    /// The server gives none (MySQL): any value goes, converted by it.
    Untyped,
}

impl ParamType<'_> {
    /// Whether `value` can be bound to it.
    pub fn accepts(&self, value: &Value) -> bool {
        match self {
            ParamType::Postgres(ty) => can_bind(value, ty),
            ParamType::Untyped => true,
        }
    }

    /// The integers it holds, when narrower than the generators' i64.
    pub fn int_bounds(&self) -> Option<(i64, i64)> {
        match self {
            ParamType::Postgres(ty) => int_bounds(ty),
            ParamType::Untyped => None,
        }
    }
}

/// The type's name on the server (`int4`, `text`).
impl fmt::Display for ParamType<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamType::Postgres(ty) => ty.fmt(f),
            ParamType::Untyped => f.write_str("unknown"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_engine_describes_its_parameters() {
        let pg = Described::Postgres(vec![Type::INT2, Type::TEXT]);
        assert_eq!(pg.param_count(), 2);
        let types: Vec<String> = pg.params().map(|p| p.to_string()).collect();
        assert_eq!(types, ["int2", "text"]);
        let first = pg.params().next().unwrap();
        assert_eq!(first.int_bounds(), Some((-32768, 32767)));
        assert!(!first.accepts(&Value::Text("x".into())));
        assert_eq!(pg.postgres_types(), [Type::INT2, Type::TEXT]);

        let my = Described::MySql { params: 3 };
        assert_eq!(my.param_count(), 3);
        assert_eq!(my.params().count(), 3);
        assert!(my.params().all(|p| p.accepts(&Value::Bool(true))));
        assert!(my.params().all(|p| p.int_bounds().is_none()));
        assert!(my.postgres_types().is_empty());

        assert_eq!(Described::default().params().count(), 0);
    }
}
