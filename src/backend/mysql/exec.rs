//! A statement sent as text (`statement_cache = false`: one round trip,
//! what aiomysql and PyMySQL do): the values escaped in place of the
//! `?`s, by mysql_async's escaping (the server's default sql_mode).

use mysql_async::Value as MyValue;

use super::placeholders::question_marks;
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
pub fn interpolate(sql: &str, values: &[Value]) -> String {
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
