//! The scenario file as written: serde structs that mirror the TOML of
//! the README's scenario format one to one, with the byte span of every value.
//!
//! Nothing is checked here beyond TOML syntax, key names and value types;
//! `check.rs` turns these into the domain types of `model.rs`. Almost every
//! field is an `Option` so that a missing key is reported by the checker,
//! which can say what the key is for, rather than by serde.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    pub name: Option<Spanned<String>>,
    pub description: Option<Spanned<String>>,
    pub run: Option<Spanned<Table<RawRun>>>,
    pub database: Option<Spanned<Table<RawDatabase>>>,
    pub setup: Option<Spanned<Table<RawSetup>>>,
    pub strategy: Option<Spanned<Vec<Spanned<Table<RawStrategy>>>>>,
    pub query: Option<Spanned<Vec<Spanned<Table<RawQuery>>>>>,
    pub sweep: Option<Spanned<Table<RawSweep>>>,
    pub pgbouncer: Option<Spanned<Table<RawPgBouncer>>>,
    pub network: Option<Spanned<Table<RawNetwork>>>,
}

/// `[network]`: the link emulator between poolbench and the database.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    pub rtt: Option<Spanned<String>>,
    pub jitter: Option<Spanned<String>>,
}

/// `[pgbouncer]`: settings of the embedded PgBouncer (`via = "pgbouncer"`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPgBouncer {
    pub pool_mode: Option<Spanned<String>>,
    pub default_pool_size: Option<Spanned<i64>>,
    pub max_client_conn: Option<Spanned<i64>>,
}

/// A value the format says is a table. serde's derived structs also take
/// an array and read it by position (`run = ["10s", "2s", 8]` would set
/// the duration, the warm-up and the concurrency), which no key of a
/// scenario allows: this wrapper accepts a table only.
#[derive(Debug)]
pub struct Table<T>(pub T);

impl<T> Table<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Table<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// How a table is named in "expected a table …" messages.
pub trait TableName {
    const NAME: &'static str;
}

impl<'de, T: Deserialize<'de> + TableName> Deserialize<'de> for Table<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TableVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de> + TableName> Visitor<'de> for TableVisitor<T> {
            type Value = Table<T>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a table {}", T::NAME)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Table<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Table)
            }
        }

        deserializer.deserialize_map(TableVisitor(PhantomData))
    }
}

macro_rules! table_names {
    ($($ty:ty => $name:expr),* $(,)?) => {
        $(impl TableName for $ty {
            const NAME: &'static str = $name;
        })*
    };
}

table_names! {
    RawRun => "`[run]`",
    RawRetry => "`[run.retry]`",
    RawDatabase => "`[database]`",
    RawEmbedded => "`[database.embedded]`",
    RawSetup => "`[setup]`",
    RawStrategy => "`[[strategy]]`",
    RawQuery => "`[[query]]`",
    RawStatement => "`{ sql = \"...\" }`",
    RawSweep => "`[sweep]`",
    RawPgBouncer => "`[pgbouncer]`",
    RawNetwork => "`[network]`",
}

/// `[sweep]`: the grid `poolbench sweep` measures (its flags override it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSweep {
    pub pool_sizes: Option<Spanned<Vec<Spanned<i64>>>>,
    pub concurrency: Option<Spanned<Vec<Spanned<i64>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRun {
    pub duration: Option<Spanned<String>>,
    pub warmup: Option<Spanned<String>>,
    pub concurrency: Option<Spanned<i64>>,
    pub seed: Option<Spanned<i64>>,
    pub rounds: Option<Spanned<i64>>,
    pub request_timeout: Option<Spanned<String>>,
    pub max_error_rate: Option<Spanned<f64>>,
    pub retry: Option<Spanned<Table<RawRetry>>>,
    /// Open loop: arrivals per second (an integer or a float).
    pub rate: Option<Spanned<Node>>,
    pub arrival: Option<Spanned<String>>,
    pub max_in_flight: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    pub on: Option<Spanned<Vec<Spanned<String>>>>,
    pub max_attempts: Option<Spanned<i64>>,
    pub backoff: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabase {
    pub dsn: Option<Spanned<String>>,
    pub embedded: Option<Spanned<Table<RawEmbedded>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmbedded {
    pub engine: Option<Spanned<String>>,
    pub auth: Option<Spanned<String>>,
    pub tls: Option<Spanned<bool>>,
    pub max_connections: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSetup {
    pub sql: Option<Spanned<String>>,
}

/// One `[[strategy]]`. The pool keys are accepted for every kind so that the
/// checker can say "only applies to kind = \"pool\"" instead of serde's
/// generic "unknown field".
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStrategy {
    pub name: Option<Spanned<String>>,
    pub kind: Option<Spanned<String>>,
    pub max_size: Option<Spanned<i64>>,
    pub min_size: Option<Spanned<i64>>,
    pub wait_timeout: Option<Spanned<String>>,
    pub recycling: Option<Spanned<String>>,
    pub instances: Option<Spanned<i64>>,
    pub statement_cache: Option<Spanned<bool>>,
    pub dsn: Option<Spanned<String>>,
    pub via: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuery {
    pub name: Option<Spanned<String>>,
    pub weight: Option<Spanned<i64>>,
    pub sql: Option<Spanned<String>>,
    pub params: Option<Spanned<Vec<Spanned<Node>>>>,
    pub statements: Option<Spanned<Vec<Spanned<Table<RawStatement>>>>>,
    pub transaction: Option<Spanned<bool>>,
    pub parallel: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStatement {
    pub sql: Option<Spanned<String>>,
    pub params: Option<Spanned<Vec<Spanned<Node>>>>,
}

/// Any TOML value but a datetime, with the span of every nested value.
/// (toml hands a datetime to `visit_map` under a private key that cannot be
/// read as a spanned key, so a datetime fails here; `toml_message` rewords
/// that failure. No parameter may be a datetime anyway.)
///
/// Parameters take several shapes (a literal or a one-key generator table);
/// serde's `untagged` enums would lose the spans, and `toml::Value` keeps only
/// the outer one, so parameters are read as this tree and sorted by hand.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Int(i64),
    Float(f64),
    Bool(bool),
    String(String),
    Array(Vec<Spanned<Node>>),
    /// Keys in file order.
    Table(Vec<(Spanned<String>, Spanned<Node>)>),
}

impl Node {
    /// The TOML type name, for "expected …, found …" messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Node::Int(_) => "an integer",
            Node::Float(_) => "a float",
            Node::Bool(_) => "a boolean",
            Node::String(_) => "a string",
            Node::Array(_) => "an array",
            Node::Table(_) => "a table",
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a TOML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        i64::try_from(v)
            .map(Node::Int)
            .map_err(|_| E::custom(format!("integer {v} is too large (at most {})", i64::MAX)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Node>>()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let value = map.next_value::<Spanned<Node>>()?;
            entries.push((key, value));
        }
        Ok(Node::Table(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Doc {
        p: Spanned<Node>,
    }

    #[test]
    fn node_keeps_nested_spans() {
        let text = "p = { zipf = { max = 10, s = 1.1 } }";
        let doc: Doc = toml::from_str(text).unwrap();
        let Node::Table(entries) = doc.p.get_ref() else {
            panic!("not a table: {:?}", doc.p)
        };
        let (key, value) = &entries[0];
        assert_eq!(&text[key.span()], "zipf");
        let Node::Table(inner) = value.get_ref() else {
            panic!()
        };
        assert_eq!(&text[inner[1].1.span()], "1.1");
        assert_eq!(inner[1].1.get_ref(), &Node::Float(1.1));
    }

    #[test]
    fn node_refuses_datetimes_with_a_span() {
        let text = "p = 1979-05-27T07:32:00Z";
        let err = toml::from_str::<Doc>(text).unwrap_err();
        assert_eq!(err.span(), Some(4..text.len()));
        assert!(err.message().contains("$__toml_private_datetime"), "{err}");
    }
}
