//! One statement on a MySQL connection, as an application would send it:
//! prepared (the binary protocol, `statement_cache = true`: the driver
//! keeps each connection's statements, so a pooled connection prepares
//! once and a fresh one every time), or as text with the values escaped
//! in place of the `?`s (`statement_cache = false`: one round trip, what
//! aiomysql and PyMySQL do); every row read.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Statement, Value as MyValue};

use super::placeholders::question_marks;
use crate::backend::statement::Statements;
use crate::backend::value::Value;

fn to_mysql(v: &Value) -> MyValue {
    match v {
        Value::Int(i) => MyValue::Int(*i),
        Value::Float(f) => MyValue::Double(*f),
        Value::Bool(b) => MyValue::Int(i64::from(*b)),
        Value::Text(s) => MyValue::Bytes(s.as_bytes().to_vec()),
    }
}

/// `sql` with each `?` replaced by its value as an SQL literal.
fn interpolate(sql: &str, values: &[Value]) -> String {
    let mut out = String::with_capacity(sql.len() + 16 * values.len());
    let mut last = 0;
    for (range, value) in question_marks(sql).into_iter().zip(values) {
        out.push_str(&sql[last..range.start]);
        // Backslashes escaped, as the server's default sql_mode reads them.
        out.push_str(&to_mysql(value).as_sql(false));
        last = range.end;
    }
    out.push_str(&sql[last..]);
    out
}

/// The statements a connection prepared, kept by poolbench too, so that a
/// request hands the driver its statement instead of its SQL, which the
/// driver would parse for named parameters and look up by its text on
/// every request. At most [`KEPT`], well under the driver's own cache (32
/// statements, whose evicted ones it closes on the server): a connection
/// that needs more stops keeping them and goes back to the driver's lookup.
#[derive(Default)]
pub struct Prepared {
    kept: Vec<(Box<str>, Statement)>,
    off: bool,
}

/// How many statements a connection keeps.
const KEPT: usize = 16;

impl Prepared {
    /// Forgets them (the server's were dropped: COM_RESET_CONNECTION, or
    /// an error the statement may not have survived).
    pub fn clear(&mut self) {
        self.kept.clear();
    }

    fn get(&self, sql: &str) -> Option<&Statement> {
        self.kept
            .iter()
            .find(|(s, _)| **s == *sql)
            .map(|(_, st)| st)
    }

    /// The statement for `sql`: kept, or prepared (by the driver, which
    /// caches it too) and kept; None once this connection keeps none.
    async fn statement(
        &mut self,
        conn: &mut Conn,
        sql: &str,
    ) -> Result<Option<Statement>, mysql_async::Error> {
        if self.off {
            return Ok(None);
        }
        if let Some(kept) = self.get(sql) {
            return Ok(Some(kept.clone()));
        }
        if self.kept.len() == KEPT {
            self.off = true;
            self.kept.clear();
            return Ok(None);
        }
        let statement = conn.prep(sql).await?;
        self.kept.push((sql.into(), statement.clone()));
        Ok(Some(statement))
    }
}

/// Runs `sql` with `values` and reads every row: named, by the binary
/// protocol (COM_STMT_PREPARE once per connection, then COM_STMT_EXECUTE);
/// unnamed, by the text protocol (COM_QUERY with the values in the text).
pub async fn run_statement(
    conn: &mut Conn,
    prepared: &mut Prepared,
    sql: &str,
    values: &[Value],
    statements: Statements,
) -> Result<(), mysql_async::Error> {
    let done = match statements {
        Statements::Named => {
            let params: Vec<MyValue> = values.iter().map(to_mysql).collect();
            match prepared.statement(conn, sql).await {
                Ok(Some(statement)) => match conn.exec_iter(statement, params).await {
                    Ok(rows) => rows.drop_result().await,
                    Err(e) => Err(e),
                },
                Ok(None) => conn.exec_drop(sql, params).await,
                Err(e) => Err(e),
            }
        }
        Statements::Unnamed => conn
            .query::<Row, _>(interpolate(sql, values))
            .await
            .map(drop),
    };
    if done.is_err() {
        prepared.clear();
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_protocol_escapes_values_in_place() {
        let sql = "SELECT '?', ? , ?, ?, ?";
        let values = [
            Value::Int(-7),
            Value::Text("it's \\ x".into()),
            Value::Bool(true),
            Value::Float(1.5),
        ];
        assert_eq!(
            interpolate(sql, &values),
            r"SELECT '?', -7 , 'it\'s \\ x', 1, 1.5"
        );
    }
}
