//! `[[query]]`: the mix. Each query's name, weight, mode (sequential,
//! `transaction` or `parallel`) and statements, each statement's SQL with
//! as many parameters as placeholders (`$1…` for PostgreSQL, `?` for MySQL
//! and MariaDB), errors pointing into the SQL where it can.

use std::collections::HashMap;
use std::ops::Range;

use crate::scenario::limits::{MAX_NAME_CHARS, MAX_PARAMS, MAX_QUERIES, MAX_STATEMENTS};
use crate::scenario::model::{Query, QueryMode, Statement};
use crate::scenario::raw::{Given, Node, Origin, RawQuery, Table};
use crate::scenario::sql::placeholders;
use crate::scenario::sql_mysql::question_marks;

use super::checker::Checker;

const DEFAULT_WEIGHT: u32 = 1;

impl Checker<'_> {
    pub(super) fn queries(
        &mut self,
        raw: Option<Given<Vec<Given<Table<RawQuery>>>>>,
    ) -> Vec<Query> {
        let Some(raw) = raw else {
            self.error(
                0..0,
                "no `[[query]]`: the mix needs at least one, e.g. `[[query]]` with \
                 `name = \"get_user\"` and `sql = \"SELECT ...\"`",
            );
            return Vec::new();
        };
        let list_at = raw.origin();
        let raw = raw.into_inner();
        if raw.is_empty() {
            self.error(
                list_at,
                "`query` is empty: the mix needs at least one query",
            );
            return Vec::new();
        }
        if raw.len() > MAX_QUERIES {
            self.error(
                raw[MAX_QUERIES].origin(),
                format!(
                    "{} queries, more than {MAX_QUERIES}: a mix this large measures nothing \
                     a smaller one would not",
                    raw.len()
                ),
            );
            return Vec::new();
        }
        let first_at = raw[0].origin();
        let mut seen: HashMap<String, Origin> = HashMap::new();
        let mut queries = Vec::new();
        let mut weights_ok = true;
        let mut weight_sum: u64 = 0;
        let mut last_weight_at = None;
        for item in raw {
            let at = item.origin();
            let raw = item.into_inner();
            let name = match &raw.name {
                Some(name) if name.get_ref().trim().is_empty() => {
                    self.error(name.origin(), "query `name` is empty");
                    None
                }
                Some(name) if name.get_ref().chars().count() > MAX_NAME_CHARS => {
                    self.error(
                        name.origin(),
                        format!("query `name` is longer than {MAX_NAME_CHARS} characters"),
                    );
                    None
                }
                Some(name) => {
                    self.unique("query", &mut seen, name.get_ref(), name.origin());
                    Some(name.get_ref().clone())
                }
                None => {
                    self.error(at.clone(), "`[[query]]` needs a `name`");
                    None
                }
            };
            let weight = match &raw.weight {
                Some(w) => {
                    last_weight_at = Some(w.origin());
                    self.int_in("weight", w, 0, i64::from(u32::MAX))
                        .and_then(|w| u32::try_from(w).ok())
                }
                None => {
                    last_weight_at = None;
                    Some(DEFAULT_WEIGHT)
                }
            };
            match weight {
                Some(w) => weight_sum += u64::from(w),
                None => weights_ok = false,
            }
            let mode = self.query_mode(&raw);
            let statements = self.statements(&raw, at);
            if let (Some(name), Some(weight), Some(mode), Some(statements)) =
                (name, weight, mode, statements)
            {
                queries.push(Query {
                    name,
                    weight,
                    mode,
                    statements,
                });
            }
        }
        if weights_ok && weight_sum == 0 {
            self.error(
                last_weight_at.unwrap_or(first_at),
                "the query weights sum to 0: at least one query needs `weight` > 0",
            );
        } else if weights_ok && weight_sum > u64::from(u32::MAX) {
            self.error(
                last_weight_at.unwrap_or(first_at),
                format!(
                    "the query weights sum to {weight_sum}, more than {}",
                    u32::MAX
                ),
            );
        }
        queries
    }

    fn query_mode(&mut self, raw: &RawQuery) -> Option<QueryMode> {
        let transaction = raw.transaction.as_ref().is_some_and(|t| *t.get_ref());
        match &raw.parallel {
            Some(p) if *p.get_ref() && transaction => {
                self.error(
                    p.origin(),
                    "`transaction = true` and `parallel = true` cannot be combined: a \
                     transaction runs on one connection, parallel statements each on their own",
                );
                None
            }
            Some(p) if *p.get_ref() => Some(QueryMode::Parallel),
            _ if transaction => Some(QueryMode::Transaction),
            _ => Some(QueryMode::Sequential),
        }
    }

    fn statements(&mut self, raw: &RawQuery, at: Origin) -> Option<Vec<Statement>> {
        match (&raw.sql, &raw.statements) {
            (Some(_), Some(statements)) => {
                self.error(
                    statements.origin(),
                    "give either `sql` (with `params`) or `statements`, not both",
                );
                None
            }
            (None, None) => {
                self.error(
                    at,
                    "`[[query]]` needs `sql = \"...\"` or `statements = [{ sql = \"...\" }, ...]`",
                );
                None
            }
            (Some(sql), None) => Some(vec![self.statement(sql, raw.params.as_ref())?]),
            (None, Some(statements)) => {
                if let Some(params) = &raw.params {
                    self.error(
                        params.origin(),
                        "`params` goes with `sql`; with `statements`, give each statement \
                         its own `params`",
                    );
                }
                if statements.get_ref().is_empty() {
                    self.error(
                        statements.origin(),
                        "`statements` is empty: give at least one `{ sql = \"...\" }`",
                    );
                    return None;
                }
                if statements.get_ref().len() > MAX_STATEMENTS {
                    self.error(
                        statements.get_ref()[MAX_STATEMENTS].origin(),
                        format!(
                            "{} statements, more than {MAX_STATEMENTS} in one query",
                            statements.get_ref().len()
                        ),
                    );
                    return None;
                }
                let mut checked = Vec::new();
                let mut ok = raw.params.is_none();
                for item in statements.get_ref() {
                    let statement = match &item.get_ref().sql {
                        Some(sql) => self.statement(sql, item.get_ref().params.as_ref()),
                        None => {
                            self.error(item.origin(), "a statement needs `sql`");
                            None
                        }
                    };
                    match statement {
                        Some(s) => checked.push(s),
                        None => ok = false,
                    }
                }
                ok.then_some(checked)
            }
        }
    }

    fn statement(
        &mut self,
        sql: &Given<String>,
        params: Option<&Given<Vec<Given<Node>>>>,
    ) -> Option<Statement> {
        let text = self.sql_text("`sql`", sql);
        let raw_params: &[Given<Node>] = params.map_or(&[], |p| p.get_ref());
        if raw_params.len() > MAX_PARAMS {
            self.error(
                raw_params[MAX_PARAMS].origin(),
                format!(
                    "{} params, more than {MAX_PARAMS} in one statement",
                    raw_params.len()
                ),
            );
            return None;
        }
        let mut checked = Vec::new();
        let mut ok = text.is_some();
        for p in raw_params {
            match self.param(p) {
                Some(p) => checked.push(p),
                None => ok = false,
            }
        }
        if text.is_some() && self.mysql {
            self.question_marks_match(sql, raw_params);
        } else if text.is_some() {
            self.placeholders_match(sql, raw_params);
        }
        Some(Statement {
            sql: text?,
            params: checked,
        })
        .filter(|_| ok)
    }

    /// MySQL's `?`s are positional: as many params as `?`s.
    fn question_marks_match(&mut self, sql: &Given<String>, params: &[Given<Node>]) {
        let found = question_marks(sql.get_ref());
        let given = params.len();
        if found.len() > given {
            let at = self.span_in_string(sql, found[given].clone());
            self.error(
                at,
                format!(
                    "the SQL has {} `?` placeholders but {}",
                    found.len(),
                    if given == 0 {
                        "no `params` are given".to_owned()
                    } else {
                        params_given(given as u64)
                    }
                ),
            );
        } else if found.len() < given {
            let at = params[found.len()].origin();
            self.error(
                at,
                format!(
                    "{} but the SQL has {} `?` placeholders",
                    params_given(given as u64),
                    found.len()
                ),
            );
        }
    }

    /// Every `$N` must have a param and every param a `$N`: `$1..$n` for n
    /// params, none missing (PostgreSQL cannot infer an unused one's type).
    fn placeholders_match(&mut self, sql: &Given<String>, params: &[Given<Node>]) {
        let found = placeholders(sql.get_ref());
        let given = params.len() as u64;
        for p in found.iter().filter(|p| p.number == 0) {
            let at = self.span_in_string(sql, p.span.clone());
            self.error(at, "`$0` is not a placeholder: they start at $1");
        }
        let Some(highest) = found.iter().max_by_key(|p| p.number) else {
            if let Some(first) = params.first() {
                // `?`s are MySQL's, recognised when the scenario says so.
                let hint = if question_marks(sql.get_ref()).is_empty() {
                    ""
                } else {
                    " ($1, $2…; for MySQL's `?` the scenario must target MySQL: \
                     `[database.embedded] engine = \"mariadb\"` or a mysql:// `dsn`, --dsn \
                     or DATABASE_URL)"
                };
                self.error(
                    first.origin(),
                    format!(
                        "{} but the SQL has no placeholders{hint}",
                        params_given(given)
                    ),
                );
            }
            return;
        };
        let max = highest.number;
        if max > given {
            let at = self.span_in_string(sql, highest.span.clone());
            let given = if given == 0 {
                "no `params` are given".to_owned()
            } else {
                params_given(given)
            };
            self.error(at, format!("the SQL uses ${max} but {given}"));
        } else if max < given {
            // Point at the first param no placeholder takes.
            let extra = usize::try_from(max).ok().and_then(|m| params.get(m));
            let at = extra.map_or_else(|| sql.origin(), Given::origin);
            let uses = match max {
                // Only `$0`, reported above.
                0 => "has no valid placeholders".to_owned(),
                1 => "uses only $1".to_owned(),
                _ => format!("uses only $1..${max}"),
            };
            self.error(at, format!("{} but the SQL {uses}", params_given(given)));
        } else if let Some(missing) = (1..max).find(|n| !found.iter().any(|p| p.number == *n)) {
            let at = self.span_in_string(sql, highest.span.clone());
            self.error(
                at,
                format!(
                    "the SQL uses ${max} but not ${missing}: PostgreSQL cannot tell the type \
                     of a parameter the SQL does not use"
                ),
            );
        }
    }

    /// The file span of `inner`, a byte range of the string value `s`. Exact
    /// when the string is written without escapes (what SQL usually is);
    /// otherwise the span of the whole string.
    fn span_in_string(&self, s: &Given<String>, inner: Range<usize>) -> Origin {
        let Some(span) = s.span() else {
            return s.origin();
        };
        let Some(raw) = self.text.get(span.clone()) else {
            return Origin::File(span);
        };
        for delimiter in ["\"\"\"", "'''", "\"", "'"] {
            let d = delimiter.len();
            if raw.len() >= 2 * d && raw.starts_with(delimiter) && raw.ends_with(delimiter) {
                let mut start = span.start + d;
                let mut body = &raw[d..raw.len() - d];
                if d == 3 {
                    // TOML drops a newline right after the opening delimiter.
                    for newline in ["\r\n", "\n"] {
                        if let Some(rest) = body.strip_prefix(newline) {
                            start += newline.len();
                            body = rest;
                            break;
                        }
                    }
                }
                if body == s.get_ref() {
                    return Origin::File(start + inner.start..start + inner.end);
                }
                break;
            }
        }
        Origin::File(span)
    }
}

fn params_given(n: u64) -> String {
    if n == 1 {
        "1 param is given".to_owned()
    } else {
        format!("{n} params are given")
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{errors, first_error, flags, ok};
    use crate::scenario::model::QueryMode;

    const STRATEGY: &str = "[[strategy]]\nname = \"f\"\nkind = \"fresh\"\n\n";

    /// One query with `keys`, which start on line 6.
    fn one(keys: &str) -> String {
        format!("{STRATEGY}[[query]]\n{keys}\n")
    }

    #[test]
    fn modes_weights_and_statements() {
        let text = format!(
            "{STRATEGY}[[query]]\nname = \"a\"\nweight = 0\nsql = \"SELECT 1\"\n\
             [[query]]\nname = \"b\"\nweight = 5\ntransaction = true\nsql = \"SELECT 2\"\n\
             [[query]]\nname = \"c\"\nparallel = true\nstatements = [{{ sql = \"SELECT 3\" }}, \
             {{ sql = \"SELECT $1\", params = [1] }}]\n"
        );
        let q: Vec<_> = ok(&text, &flags())
            .queries
            .iter()
            .map(|q| (q.name.clone(), q.weight, q.mode, q.statements.len()))
            .collect();
        assert_eq!(
            q,
            [
                ("a".to_owned(), 0, QueryMode::Sequential, 1),
                ("b".to_owned(), 5, QueryMode::Transaction, 1),
                ("c".to_owned(), 1, QueryMode::Parallel, 2),
            ]
        );
    }

    #[test]
    fn query_errors_point_at_the_value() {
        assert_eq!(
            first_error(&one("name = \"q\"\nweight = 0\nsql = \"SELECT 1\"")),
            "t.toml:7:10: the query weights sum to 0: at least one query needs `weight` > 0"
        );
        assert_eq!(
            first_error(&one("name = \"q\"\nweight = -1\nsql = \"SELECT 1\"")),
            "t.toml:7:10: `weight` must be at least 0, found -1"
        );
        assert_eq!(
            first_error(&one("name = \"\"\nsql = \"SELECT 1\"")),
            "t.toml:6:8: query `name` is empty"
        );
        assert_eq!(
            first_error(&one("sql = \"SELECT 1\"")),
            "t.toml:5:1: `[[query]]` needs a `name`"
        );
        assert_eq!(
            first_error(&one(
                "name = \"q\"\ntransaction = true\nparallel = true\nsql = \"SELECT 1\""
            )),
            "t.toml:8:12: `transaction = true` and `parallel = true` cannot be combined: a \
             transaction runs on one connection, parallel statements each on their own"
        );
        assert_eq!(
            first_error(&one("name = \"q\"")),
            "t.toml:5:1: `[[query]]` needs `sql = \"...\"` or `statements = [{ sql = \"...\" }, ...]`"
        );
        assert_eq!(
            first_error(&one("name = \"q\"\nsql = \"SELECT 1\"\nstatements = []")),
            "t.toml:8:14: give either `sql` (with `params`) or `statements`, not both"
        );
        assert_eq!(
            first_error(&one("name = \"q\"\nstatements = []")),
            "t.toml:7:14: `statements` is empty: give at least one `{ sql = \"...\" }`"
        );
        assert_eq!(
            first_error(&one("name = \"q\"\nsql = \" \"")),
            "t.toml:7:7: `sql` is blank"
        );
        let twice = format!(
            "{}[[query]]\nname = \"q\"\nsql = \"SELECT 2\"\n",
            one("name = \"q\"\nsql = \"SELECT 1\"")
        );
        assert_eq!(
            first_error(&twice),
            "t.toml:9:8: query name `q` is used twice (first on line 6)"
        );
        assert!(first_error(STRATEGY).starts_with("t.toml:1:1: no `[[query]]`"));
    }

    #[test]
    fn errors_name_the_place_and_come_in_file_order() {
        let text = "[[strategy]]\nname = \"a b\"\nkind = \"fresh\"\n\n[[strategy]]\nname = \"p\"\n\
                    kind = \"pool\"\nmax_size = 4\nmin_size = 5\n\n[[query]]\nname = \"q\"\n\
                    sql = \"SELECT 1\"\n";
        let err = errors(text, &flags());
        let first = err.find("t.toml:2:8: strategy `name` \"a b\" contains ' '");
        let second = err.find("t.toml:9:12: `min_size` (5) is larger than `max_size` (4)");
        assert!(
            first.is_some() && second.is_some() && first < second,
            "{err}"
        );
    }

    #[test]
    fn placeholder_errors_point_into_the_sql() {
        assert_eq!(
            first_error(&one(
                "name = \"q\"\nsql = \"SELECT $2, $1\"\nparams = [1, 2, 3]"
            )),
            "t.toml:8:17: 3 params are given but the SQL uses only $1..$2"
        );
        assert_eq!(
            first_error(&one(
                "name = \"q\"\nsql = \"SELECT $1, $3\"\nparams = [1, 2, 3]"
            )),
            "t.toml:7:19: the SQL uses $3 but not $2: PostgreSQL cannot tell the type of a \
             parameter the SQL does not use"
        );
        // Escapes shift offsets: then the whole string is underlined.
        assert_eq!(
            first_error(&one("name = \"q\"\nsql = \"SELECT \\\"x\\\", $1\"")),
            "t.toml:7:7: the SQL uses $1 but no `params` are given"
        );
        let e = errors(
            &one("name = \"q\"\nsql = \"SELECT $0\"\nparams = [1]"),
            &flags(),
        );
        assert!(e.contains("t.toml:7:15: `$0` is not a placeholder"), "{e}");
        assert!(
            e.contains("1 param is given but the SQL has no valid placeholders"),
            "{e}"
        );
        assert_eq!(
            first_error(&one("name = \"q\"\nsql = \"SELECT ?\"\nparams = [1]")),
            "t.toml:8:11: 1 param is given but the SQL has no placeholders ($1, $2…; for \
             MySQL's `?` the scenario must target MySQL: `[database.embedded] engine = \
             \"mariadb\"` or a mysql:// `dsn`, --dsn or DATABASE_URL)"
        );
    }

    #[test]
    fn mysql_takes_question_marks() {
        let mysql =
            |keys: &str| format!("[database.embedded]\nengine = \"mariadb\"\n{}", one(keys));
        let s = ok(
            &mysql("name = \"q\"\nsql = \"SELECT ?, ?\"\nparams = [1, 2]"),
            &flags(),
        );
        assert_eq!(s.queries[0].statements[0].params.len(), 2);
        assert_eq!(
            first_error(&mysql("name = \"q\"\nsql = \"SELECT ?, ?\"\nparams = [1]")),
            "t.toml:9:18: the SQL has 2 `?` placeholders but 1 param is given"
        );
        assert_eq!(
            first_error(&mysql("name = \"q\"\nsql = \"SELECT ?\"\nparams = [1, 2]")),
            "t.toml:10:14: 2 params are given but the SQL has 1 `?` placeholders"
        );
    }
}
