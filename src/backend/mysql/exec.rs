//! One statement on a MySQL connection, as an application would send it:
//! prepared (the binary protocol, `statement_cache = true`: the driver
//! keeps each connection's statements, so a pooled connection prepares
//! once and a fresh one every time), or as text with the values escaped
//! in place of the `?`s (`statement_cache = false`: one round trip, what
//! aiomysql and PyMySQL do); every row read.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value as MyValue};

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

/// Runs `sql` with `values` and reads every row: named, by the binary
/// protocol (COM_STMT_PREPARE once per connection, then COM_STMT_EXECUTE);
/// unnamed, by the text protocol (COM_QUERY with the values in the text).
pub async fn run_statement(
    conn: &mut Conn,
    sql: &str,
    values: &[Value],
    statements: Statements,
) -> Result<(), mysql_async::Error> {
    match statements {
        Statements::Named => {
            let params: Vec<MyValue> = values.iter().map(to_mysql).collect();
            let _: Vec<Row> = conn.exec(sql, params).await?;
        }
        Statements::Unnamed => {
            let _: Vec<Row> = conn.query(interpolate(sql, values)).await?;
        }
    }
    Ok(())
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
