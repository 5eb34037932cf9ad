//! Binding JSON arguments as statement parameters, and decoding rows into JSON with a
//! faithful mapping per engine: exact decimals as strings, bytes as base64, times as
//! ISO 8601, JSON as JSON, arrays as arrays, NULL as null.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;
use sqlx::mysql::{MySql, MySqlArguments, MySqlRow};
use sqlx::postgres::types::PgInterval;
use sqlx::postgres::{PgArguments, PgRow, Postgres};
use sqlx::query::Query;
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteRow};
use sqlx::{Column, Row, TypeInfo, ValueRef};

type PgQuery<'q> = Query<'q, Postgres, PgArguments>;
type MyQuery<'q> = Query<'q, MySql, MySqlArguments>;
type LiteQuery<'q> = Query<'q, Sqlite, SqliteArguments>;

/// One binding rule for every engine; only how structured values travel differs.
macro_rules! bind_values {
    ($q:expr, $params:expr, $structured:expr) => {{
        let mut q = $q;
        for p in $params {
            q = match p {
                Value::Null => q.bind(None::<String>),
                Value::Bool(b) => q.bind(*b),
                Value::Number(n) if n.is_i64() => q.bind(n.as_i64()),
                Value::Number(n) => q.bind(n.as_f64()),
                Value::String(s) => q.bind(s.clone()),
                other => q.bind($structured(other)),
            };
        }
        q
    }};
}

/// Binds JSON values in order (`$1`, `$2`, …); structured values go as `jsonb`.
pub fn bind_pg<'q>(q: PgQuery<'q>, params: &[Value]) -> PgQuery<'q> {
    bind_values!(q, params, |v: &Value| sqlx::types::Json(v.clone()))
}

/// Binds JSON values in order (`?`); structured values go as JSON text.
pub fn bind_my<'q>(q: MyQuery<'q>, params: &[Value]) -> MyQuery<'q> {
    bind_values!(q, params, |v: &Value| v.to_string())
}

/// Binds JSON values in order (`?`/`?N`); structured values go as JSON text.
pub fn bind_lite<'q>(q: LiteQuery<'q>, params: &[Value]) -> LiteQuery<'q> {
    bind_values!(q, params, |v: &Value| v.to_string())
}

fn b64(bytes: Vec<u8>) -> Value {
    Value::String(STANDARD.encode(bytes))
}

fn float(f: f64) -> Value {
    serde_json::Number::from_f64(f).map(Value::Number).unwrap_or_else(|| Value::String(f.to_string()))
}

/// ISO 8601 duration of a PostgreSQL interval (`P1Y2M3DT4H5M6.5S`).
pub fn iso_interval(i: &PgInterval) -> String {
    let (years, months) = (i.months / 12, i.months % 12);
    let secs = i.microseconds as f64 / 1e6;
    let (h, rem) = ((secs / 3600.0).trunc(), secs % 3600.0);
    let (m, s) = ((rem / 60.0).trunc(), rem % 60.0);
    let mut out = String::from("P");
    for (n, u) in [(years as f64, "Y"), (months as f64, "M"), (i.days as f64, "D")] {
        if n != 0.0 {
            out.push_str(&format!("{n}{u}"));
        }
    }
    if h != 0.0 || m != 0.0 || s != 0.0 {
        out.push('T');
        for (n, u) in [(h, "H"), (m, "M"), (s, "S")] {
            if n != 0.0 {
                out.push_str(&format!("{n}{u}"));
            }
        }
    }
    if out == "P" {
        out.push_str("T0S");
    }
    out
}

macro_rules! try_as {
    ($row:expr, $i:expr, $t:ty, $f:expr) => {
        $row.try_get::<$t, _>($i).ok().map($f)
    };
}

/// One PostgreSQL row as JSON values.
pub fn pg_row(row: &PgRow) -> Vec<Value> {
    (0..row.len()).map(|i| pg_value(row, i)).collect()
}

fn pg_value(row: &PgRow, i: usize) -> Value {
    if row.try_get_raw(i).map(|r| r.is_null()).unwrap_or(true) {
        return Value::Null;
    }
    let ty = row.columns()[i].type_info().name().to_ascii_uppercase();
    let v = match ty.as_str() {
        "BOOL" => try_as!(row, i, bool, Value::from),
        "INT2" => try_as!(row, i, i16, Value::from),
        "INT4" => try_as!(row, i, i32, Value::from),
        "INT8" => try_as!(row, i, i64, Value::from),
        "OID" => try_as!(row, i, sqlx::postgres::types::Oid, |o| Value::from(o.0)),
        "FLOAT4" => try_as!(row, i, f32, |f| float(f as f64)),
        "FLOAT8" => try_as!(row, i, f64, float),
        "NUMERIC" => try_as!(row, i, rust_decimal::Decimal, |d| Value::String(d.to_string())),
        "BYTEA" => try_as!(row, i, Vec<u8>, b64),
        "DATE" => try_as!(row, i, chrono::NaiveDate, |d| Value::String(d.to_string())),
        "TIME" => try_as!(row, i, chrono::NaiveTime, |t| Value::String(t.to_string())),
        "TIMESTAMP" => try_as!(row, i, chrono::NaiveDateTime, |t| Value::String(t.format("%Y-%m-%dT%H:%M:%S%.f").to_string())),
        "TIMESTAMPTZ" => try_as!(row, i, chrono::DateTime<chrono::Utc>, |t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))),
        "INTERVAL" => try_as!(row, i, PgInterval, |v| Value::String(iso_interval(&v))),
        "UUID" => try_as!(row, i, uuid::Uuid, |u| Value::String(u.to_string())),
        "JSON" | "JSONB" => try_as!(row, i, serde_json::Value, |v| v),
        "INET" | "CIDR" => try_as!(row, i, sqlx::types::ipnetwork::IpNetwork, |n| Value::String(n.to_string())),
        "BOOL[]" | "_BOOL" => try_as!(row, i, Vec<Option<bool>>, Value::from),
        "INT2[]" | "_INT2" => try_as!(row, i, Vec<Option<i16>>, Value::from),
        "INT4[]" | "_INT4" => try_as!(row, i, Vec<Option<i32>>, Value::from),
        "INT8[]" | "_INT8" => try_as!(row, i, Vec<Option<i64>>, Value::from),
        "FLOAT8[]" | "_FLOAT8" => try_as!(row, i, Vec<Option<f64>>, |v| Value::Array(v.into_iter().map(|f| f.map_or(Value::Null, float)).collect())),
        "NUMERIC[]" | "_NUMERIC" => try_as!(row, i, Vec<Option<rust_decimal::Decimal>>, |v| Value::Array(v.into_iter().map(|d| d.map_or(Value::Null, |d| Value::String(d.to_string()))).collect())),
        "TEXT[]" | "_TEXT" | "VARCHAR[]" | "_VARCHAR" => try_as!(row, i, Vec<Option<String>>, Value::from),
        "UUID[]" | "_UUID" => try_as!(row, i, Vec<Option<uuid::Uuid>>, |v| Value::Array(v.into_iter().map(|u| u.map_or(Value::Null, |u| Value::String(u.to_string()))).collect())),
        _ => None,
    };
    // Text types, enums and anything else with a text form.
    v.or_else(|| row.try_get_unchecked::<String, _>(i).ok().map(Value::String)).unwrap_or_else(|| Value::String(format!("<{ty} value>")))
}

/// One MySQL/MariaDB row as JSON values.
pub fn my_row(row: &MySqlRow) -> Vec<Value> {
    (0..row.len()).map(|i| my_value(row, i)).collect()
}

fn my_value(row: &MySqlRow, i: usize) -> Value {
    if row.try_get_raw(i).map(|r| r.is_null()).unwrap_or(true) {
        return Value::Null;
    }
    let ty = row.columns()[i].type_info().name().to_ascii_uppercase();
    let v = match ty.as_str() {
        "BOOLEAN" => try_as!(row, i, bool, Value::from),
        "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" => try_as!(row, i, i64, Value::from),
        "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "MEDIUMINT UNSIGNED" | "INT UNSIGNED" | "BIGINT UNSIGNED" => try_as!(row, i, u64, Value::from),
        "YEAR" => try_as!(row, i, u16, Value::from),
        "FLOAT" => try_as!(row, i, f32, |f| float(f as f64)),
        "DOUBLE" => try_as!(row, i, f64, float),
        "DECIMAL" => try_as!(row, i, rust_decimal::Decimal, |d| Value::String(d.to_string())),
        "DATE" => try_as!(row, i, chrono::NaiveDate, |d| Value::String(d.to_string())),
        "TIME" => try_as!(row, i, chrono::NaiveTime, |t| Value::String(t.to_string())),
        "DATETIME" => try_as!(row, i, chrono::NaiveDateTime, |t| Value::String(t.format("%Y-%m-%dT%H:%M:%S%.f").to_string())),
        "TIMESTAMP" => try_as!(row, i, chrono::DateTime<chrono::Utc>, |t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))),
        "JSON" => try_as!(row, i, serde_json::Value, |v| v),
        "BINARY" | "VARBINARY" | "BLOB" | "TINYBLOB" | "MEDIUMBLOB" | "LONGBLOB" | "BIT" | "GEOMETRY" => try_as!(row, i, Vec<u8>, b64),
        _ => None,
    };
    v.or_else(|| row.try_get_unchecked::<String, _>(i).ok().map(Value::String))
        .or_else(|| row.try_get_unchecked::<Vec<u8>, _>(i).ok().map(b64))
        .unwrap_or_else(|| Value::String(format!("<{ty} value>")))
}

/// One SQLite row as JSON values, by each value's storage class.
pub fn lite_row(row: &SqliteRow) -> Vec<Value> {
    (0..row.len())
        .map(|i| {
            let Ok(raw) = row.try_get_raw(i) else { return Value::Null };
            if raw.is_null() {
                return Value::Null;
            }
            let class = raw.type_info().name().to_ascii_uppercase();
            match class.as_str() {
                "INTEGER" | "BOOLEAN" => row.try_get_unchecked::<i64, _>(i).map(Value::from).unwrap_or(Value::Null),
                "REAL" | "NUMERIC" => row.try_get_unchecked::<f64, _>(i).map(float).unwrap_or(Value::Null),
                "BLOB" => row.try_get_unchecked::<Vec<u8>, _>(i).map(b64).unwrap_or(Value::Null),
                _ => row.try_get_unchecked::<String, _>(i).map(Value::String).unwrap_or(Value::Null),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_are_iso_8601() {
        assert_eq!(iso_interval(&PgInterval { months: 14, days: 3, microseconds: 3_723_500_000 }), "P1Y2M3DT1H2M3.5S");
        assert_eq!(iso_interval(&PgInterval { months: 0, days: 0, microseconds: 0 }), "PT0S");
    }
}
