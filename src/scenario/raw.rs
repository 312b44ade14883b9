//! The scenario as given: serde structs that mirror the TOML of the
//! scenario format of docs/scenarios.md one to one, each value a [`Given`] that
//! remembers where it came from: the byte span of the file it was read
//! from, or the command-line flag that replaced it (`flags.rs` puts the
//! flags' values here, so one checker checks both).
//!
//! Nothing is checked here beyond TOML syntax, key names and value types;
//! `check/` turns these into the domain types of `model.rs`. Almost every
//! field is an `Option` so that a missing key is reported by the checker,
//! which can say what the key is for, rather than by serde.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A byte range of the scenario file.
    File(Range<usize>),
    /// A command-line flag, named as it is typed (`--duration`).
    Flag(&'static str),
}

impl From<Range<usize>> for Origin {
    fn from(span: Range<usize>) -> Origin {
        Origin::File(span)
    }
}

/// A raw value and where it came from. Read from the file, it holds the
/// span toml reports; set by a flag, the flag's name.
#[derive(Debug, Clone, PartialEq)]
pub struct Given<T> {
    value: T,
    origin: Origin,
}

impl<T> Given<T> {
    /// A value the flag `flag` gives.
    pub fn flag(flag: &'static str, value: T) -> Given<T> {
        Given {
            value,
            origin: Origin::Flag(flag),
        }
    }

    /// A value found at `origin` (a part of a larger value).
    pub fn at(value: T, origin: Origin) -> Given<T> {
        Given { value, origin }
    }

    pub fn get_ref(&self) -> &T {
        &self.value
    }

    pub fn value_mut(&mut self) -> &mut T {
        &mut self.value
    }

    pub fn into_inner(self) -> T {
        self.value
    }

    pub fn origin(&self) -> Origin {
        self.origin.clone()
    }

    /// The span in the file; None for a flag's value.
    pub fn span(&self) -> Option<Range<usize>> {
        match &self.origin {
            Origin::File(span) => Some(span.clone()),
            Origin::Flag(_) => None,
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Given<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<T>::deserialize(deserializer)?;
        Ok(Given {
            origin: Origin::File(spanned.span()),
            value: spanned.into_inner(),
        })
    }
}

/// An integer key read into a wider type (`seed`), with serde's own
/// message for a value that is not an integer.
fn widen<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Given<i128>>, D::Error> {
    let value = Option::<Given<i64>>::deserialize(deserializer)?;
    Ok(value.map(|v| Given {
        value: i128::from(v.value),
        origin: v.origin,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    pub name: Option<Given<String>>,
    pub description: Option<Given<String>>,
    pub run: Option<Given<Table<RawRun>>>,
    pub database: Option<Given<Table<RawDatabase>>>,
    pub setup: Option<Given<Table<RawSetup>>>,
    pub strategy: Option<Given<Vec<Given<Table<RawStrategy>>>>>,
    pub query: Option<Given<Vec<Given<Table<RawQuery>>>>>,
    pub sweep: Option<Given<Table<RawSweep>>>,
    pub pgbouncer: Option<Given<Table<RawPgBouncer>>>,
    pub network: Option<Given<Table<RawNetwork>>>,
    /// `--only`: the strategies to keep (all when empty); no file key.
    #[serde(skip)]
    pub only: Vec<Given<String>>,
}

/// `[network]`: the link emulator between poolbench and the database.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    pub rtt: Option<Given<String>>,
    pub jitter: Option<Given<String>>,
}

/// `[pgbouncer]`: settings of the embedded PgBouncer (`via = "pgbouncer"`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPgBouncer {
    pub pool_mode: Option<Given<String>>,
    pub default_pool_size: Option<Given<i64>>,
    pub max_client_conn: Option<Given<i64>>,
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
    pub pool_sizes: Option<Given<Vec<Given<i64>>>>,
    pub concurrency: Option<Given<Vec<Given<i64>>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRun {
    pub duration: Option<Given<String>>,
    pub warmup: Option<Given<String>>,
    pub concurrency: Option<Given<i64>>,
    /// i128: the file's integers are i64 (a negative one is refused by the
    /// checker), `--seed` is any u64.
    #[serde(default, deserialize_with = "widen")]
    pub seed: Option<Given<i128>>,
    pub rounds: Option<Given<i64>>,
    pub request_timeout: Option<Given<String>>,
    pub max_error_rate: Option<Given<f64>>,
    pub retry: Option<Given<Table<RawRetry>>>,
    /// Open loop: arrivals per second (an integer or a float).
    pub rate: Option<Given<Node>>,
    pub arrival: Option<Given<String>>,
    pub max_in_flight: Option<Given<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    pub on: Option<Given<Vec<Given<String>>>>,
    pub max_attempts: Option<Given<i64>>,
    pub backoff: Option<Given<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabase {
    pub dsn: Option<Given<String>>,
    pub embedded: Option<Given<Table<RawEmbedded>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmbedded {
    pub engine: Option<Given<String>>,
    pub auth: Option<Given<String>>,
    pub tls: Option<Given<bool>>,
    pub max_connections: Option<Given<i64>>,
    pub scram_iterations: Option<Given<i64>>,
    pub tls_version: Option<Given<String>>,
    pub sslnegotiation: Option<Given<String>>,
    pub channel_binding: Option<Given<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSetup {
    pub sql: Option<Given<String>>,
}

/// One `[[strategy]]`. The pool keys are accepted for every kind so that the
/// checker can say "only applies to kind = \"pool\"" instead of serde's
/// generic "unknown field".
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStrategy {
    pub name: Option<Given<String>>,
    pub kind: Option<Given<String>>,
    pub max_size: Option<Given<i64>>,
    pub min_size: Option<Given<i64>>,
    pub wait_timeout: Option<Given<String>>,
    pub recycling: Option<Given<String>>,
    pub instances: Option<Given<i64>>,
    pub like: Option<Given<String>>,
    pub max_lifetime: Option<Given<String>>,
    pub lifetime_jitter: Option<Given<Node>>,
    pub idle_timeout: Option<Given<String>>,
    pub min_idle: Option<Given<i64>>,
    pub check: Option<Given<Node>>,
    pub check_query: Option<Given<String>>,
    pub reset: Option<Given<Node>>,
    pub keepalive: Option<Given<String>>,
    pub statement_cache: Option<Given<bool>>,
    pub dsn: Option<Given<String>>,
    pub via: Option<Given<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuery {
    pub name: Option<Given<String>>,
    pub weight: Option<Given<i64>>,
    pub sql: Option<Given<String>>,
    pub params: Option<Given<Vec<Given<Node>>>>,
    pub statements: Option<Given<Vec<Given<Table<RawStatement>>>>>,
    pub transaction: Option<Given<bool>>,
    pub parallel: Option<Given<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStatement {
    pub sql: Option<Given<String>>,
    pub params: Option<Given<Vec<Given<Node>>>>,
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
    Array(Vec<Given<Node>>),
    /// Keys in file order.
    Table(Vec<(Given<String>, Given<Node>)>),
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
        while let Some(item) = seq.next_element::<Given<Node>>()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Given<String>>()? {
            let value = map.next_value::<Given<Node>>()?;
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
        p: Given<Node>,
    }

    #[test]
    fn node_keeps_nested_spans() {
        let text = "p = { zipf = { max = 10, s = 1.1 } }";
        let doc: Doc = toml::from_str(text).unwrap();
        let Node::Table(entries) = doc.p.get_ref() else {
            panic!("not a table: {:?}", doc.p)
        };
        let (key, value) = &entries[0];
        assert_eq!(&text[key.span().unwrap()], "zipf");
        let Node::Table(inner) = value.get_ref() else {
            panic!()
        };
        assert_eq!(&text[inner[1].1.span().unwrap()], "1.1");
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
