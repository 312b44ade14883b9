//! A statement's `params`: parameter generators (`{ int = [lo, hi] }`,
//! `{ zipf = { max = N, s = S } }`, `{ text = len }`, `{ choice = [...] }`)
//! and plain literals, read from the spanned tree of `raw::Node`.

use crate::scenario::limits::MAX_TEXT_LEN;
use crate::scenario::model::{Literal, Param};
use crate::scenario::raw::{Given, Node};

use super::checker::Checker;
use super::values::describe;

const GENERATORS: &str = "expected one of `{ int = [lo, hi] }`, `{ zipf = { max = N, s = S } }`, \
                          `{ text = len }`, `{ choice = [a, b, ...] }`, or a plain value";

impl Checker<'_> {
    pub(super) fn param(&mut self, p: &Given<Node>) -> Option<Param> {
        match p.get_ref() {
            Node::Table(entries) => match entries.as_slice() {
                [(key, value)] => self.generator(key, value),
                _ => {
                    let found = match entries.len() {
                        0 => "none".to_owned(),
                        n => format!("{n} keys"),
                    };
                    self.error(
                        p.origin(),
                        format!(
                            "a parameter table needs exactly one generator, found {found}: {GENERATORS}"
                        ),
                    );
                    None
                }
            },
            Node::Array(_) => {
                self.error(
                    p.origin(),
                    format!("an array is not a parameter: {GENERATORS}"),
                );
                None
            }
            _ => self.literal(p, "a parameter").map(Param::Literal),
        }
    }

    fn generator(&mut self, key: &Given<String>, value: &Given<Node>) -> Option<Param> {
        match key.get_ref().as_str() {
            "int" => {
                let bounds = match value.get_ref() {
                    Node::Array(items) => match items.as_slice() {
                        [lo, hi] => match (lo.get_ref(), hi.get_ref()) {
                            (Node::Int(lo), Node::Int(hi)) => Some((*lo, *hi)),
                            _ => None,
                        },
                        _ => None,
                    },
                    _ => None,
                };
                let Some((lo, hi)) = bounds else {
                    self.error(
                        value.origin(),
                        format!(
                            "`int` needs two integers `[lo, hi]`, found {}",
                            describe(value.get_ref())
                        ),
                    );
                    return None;
                };
                if lo > hi {
                    self.error(
                        value.origin(),
                        format!("`int` range [{lo}, {hi}]: lo ({lo}) is larger than hi ({hi})"),
                    );
                    return None;
                }
                Some(Param::Int { lo, hi })
            }
            "zipf" => self.zipf(value),
            "text" => match value.get_ref() {
                Node::Int(len) if (1..=MAX_TEXT_LEN).contains(len) => Some(Param::Text {
                    len: usize::try_from(*len).ok()?,
                }),
                other => {
                    self.error(
                        value.origin(),
                        format!(
                            "`text` needs a length from 1 to {MAX_TEXT_LEN}, found {}",
                            describe(other)
                        ),
                    );
                    None
                }
            },
            "choice" => match value.get_ref() {
                Node::Array(items) if items.is_empty() => {
                    self.error(value.origin(), "`choice` is empty: give at least one value");
                    None
                }
                Node::Array(items) => {
                    let mut literals = Vec::new();
                    for item in items {
                        literals.push(self.literal(item, "a `choice` value"));
                    }
                    literals
                        .into_iter()
                        .collect::<Option<Vec<_>>>()
                        .map(Param::Choice)
                }
                other => {
                    self.error(
                        value.origin(),
                        format!(
                            "`choice` needs an array of values, found {}",
                            describe(other)
                        ),
                    );
                    None
                }
            },
            other => {
                self.error(
                    key.origin(),
                    format!("unknown parameter generator `{other}`: {GENERATORS}"),
                );
                None
            }
        }
    }

    fn zipf(&mut self, value: &Given<Node>) -> Option<Param> {
        let Node::Table(entries) = value.get_ref() else {
            self.error(
                value.origin(),
                format!(
                    "`zipf` needs a table `{{ max = N, s = S }}`, found {}",
                    describe(value.get_ref())
                ),
            );
            return None;
        };
        let (mut max, mut s) = (None, None);
        let mut ok = true;
        for (key, v) in entries {
            match (key.get_ref().as_str(), v.get_ref()) {
                ("max", Node::Int(n)) if *n >= 1 => max = u64::try_from(*n).ok(),
                ("max", other) => {
                    self.error(
                        v.origin(),
                        format!(
                            "`zipf` `max` must be an integer >= 1, found {}",
                            describe(other)
                        ),
                    );
                    ok = false;
                }
                ("s", Node::Int(n)) if *n > 0 => s = Some(*n as f64),
                ("s", Node::Float(f)) if f.is_finite() && *f > 0.0 => s = Some(*f),
                ("s", other) => {
                    self.error(
                        v.origin(),
                        format!(
                            "`zipf` exponent `s` must be a number > 0, found {}",
                            describe(other)
                        ),
                    );
                    ok = false;
                }
                (other, _) => {
                    self.error(
                        key.origin(),
                        format!("unknown key `{other}` in `zipf`: expected `max` and `s`"),
                    );
                    ok = false;
                }
            }
        }
        if ok && max.is_none() {
            self.error(
                value.origin(),
                "`zipf` needs `max`, the largest value drawn (>= 1)",
            );
        }
        if ok && s.is_none() {
            self.error(
                value.origin(),
                "`zipf` needs `s`, the exponent (> 0, e.g. 1.1)",
            );
        }
        Some(Param::Zipf { max: max?, s: s? }).filter(|_| ok)
    }

    fn literal(&mut self, v: &Given<Node>, what: &str) -> Option<Literal> {
        match v.get_ref() {
            Node::Int(i) => Some(Literal::Int(*i)),
            Node::Float(f) => Some(Literal::Float(*f)),
            Node::Bool(b) => Some(Literal::Bool(*b)),
            Node::String(s) => Some(Literal::Text(s.clone())),
            other => {
                self.error(
                    v.origin(),
                    format!(
                        "{what} must be an integer, float, boolean or string, found {}",
                        other.type_name()
                    ),
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{first_error, flags, ok};
    use crate::scenario::model::{Literal, Param};

    /// A query whose `params` are `params` (on line 8), for as many
    /// placeholders as `n`.
    fn with(n: usize, params: &str) -> String {
        let sql: Vec<String> = (1..=n).map(|i| format!("${i}")).collect();
        format!(
            "[[strategy]]\nname = \"f\"\nkind = \"fresh\"\n\n[[query]]\nname = \"q\"\n\
             sql = \"SELECT {}\"\nparams = [{params}]\n",
            sql.join(", ")
        )
    }

    #[test]
    fn generators_and_literals() {
        let s = ok(
            &with(
                8,
                "{ zipf = { max = 1000, s = 1.1 } }, { zipf = { s = 2, max = 5 } }, \
                 { choice = [1, 'a', true, 2.5] }, 7, -1.5, false, 'x', { int = [-3, 3] }",
            ),
            &flags(),
        );
        assert_eq!(
            s.queries[0].statements[0].params,
            [
                Param::Zipf { max: 1000, s: 1.1 },
                Param::Zipf { max: 5, s: 2.0 },
                Param::Choice(vec![
                    Literal::Int(1),
                    Literal::Text("a".into()),
                    Literal::Bool(true),
                    Literal::Float(2.5)
                ]),
                Param::Literal(Literal::Int(7)),
                Param::Literal(Literal::Float(-1.5)),
                Param::Literal(Literal::Bool(false)),
                Param::Literal(Literal::Text("x".into())),
                Param::Int { lo: -3, hi: 3 },
            ]
        );
        let s = ok(&with(1, "{ text = 1000000 }"), &flags());
        assert_eq!(
            s.queries[0].statements[0].params,
            [Param::Text { len: 1_000_000 }]
        );
    }

    #[test]
    fn generator_errors_point_at_the_value() {
        let cases = [
            (
                "{ int = [5, 1] }",
                "t.toml:8:19: `int` range [5, 1]: lo (5) is larger than hi (1)",
            ),
            (
                "{ int = [1] }",
                "t.toml:8:19: `int` needs two integers `[lo, hi]`, found an array",
            ),
            (
                "{ zipf = { max = 0, s = 1 } }",
                "t.toml:8:28: `zipf` `max` must be an integer >= 1, found 0",
            ),
            (
                "{ zipf = { max = 5, s = 0.0 } }",
                "t.toml:8:35: `zipf` exponent `s` must be a number > 0, found 0.0",
            ),
            (
                "{ zipf = { max = 5 } }",
                "t.toml:8:20: `zipf` needs `s`, the exponent (> 0, e.g. 1.1)",
            ),
            (
                "{ zipf = { max = 5, s = 1, q = 2 } }",
                "t.toml:8:38: unknown key `q` in `zipf`: expected `max` and `s`",
            ),
            (
                "{ text = 0 }",
                "t.toml:8:20: `text` needs a length from 1 to 1000000, found 0",
            ),
            (
                "{ choice = [] }",
                "t.toml:8:22: `choice` is empty: give at least one value",
            ),
            (
                "{ choice = [[1]] }",
                "t.toml:8:23: a `choice` value must be an integer, float, boolean or string, \
                 found an array",
            ),
            (
                "{ uuid = 4 }",
                "t.toml:8:13: unknown parameter generator `uuid`: expected one of \
                 `{ int = [lo, hi] }`, `{ zipf = { max = N, s = S } }`, `{ text = len }`, \
                 `{ choice = [a, b, ...] }`, or a plain value",
            ),
            (
                "{ int = [1, 2], text = 3 }",
                "t.toml:8:11: a parameter table needs exactly one generator, found 2 keys: \
                 expected one of `{ int = [lo, hi] }`, `{ zipf = { max = N, s = S } }`, \
                 `{ text = len }`, `{ choice = [a, b, ...] }`, or a plain value",
            ),
            (
                "[1, 2]",
                "t.toml:8:11: an array is not a parameter: expected one of `{ int = [lo, hi] }`, \
                 `{ zipf = { max = N, s = S } }`, `{ text = len }`, `{ choice = [a, b, ...] }`, \
                 or a plain value",
            ),
        ];
        for (param, expected) in cases {
            assert_eq!(first_error(&with(1, param)), expected, "{param}");
        }
    }
}
