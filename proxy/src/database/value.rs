//! Binding JSON arguments as statement parameters, and decoding rows into JSON with a
//! faithful mapping per engine: exact decimals as strings, bytes as base64, times as
//! ISO 8601, JSON as JSON, arrays as arrays, NULL as null.
//!
//! Parameters are resolved into [`Bound`] values first, so that every engine binds the
//! same value the same way and a value that cannot travel exactly is refused before
//! anything is sent.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::value::RawValue;
use serde_json::Value;
use sqlx::mysql::{MySql, MySqlArguments, MySqlRow};
use sqlx::postgres::types::{Oid, PgInterval};
use sqlx::postgres::{PgArguments, PgHasArrayType, PgRow, PgTypeInfo, PgTypeKind, PgValueRef, Postgres};
use sqlx::query::Query;
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteRow};
use sqlx::{Column, Row, TypeInfo, ValueRef};

use super::error::CallError;

type PgQuery<'q> = Query<'q, Postgres, PgArguments>;
type MyQuery<'q> = Query<'q, MySql, MySqlArguments>;
type LiteQuery<'q> = Query<'q, Sqlite, SqliteArguments>;

/// The scalar types a declared parameter (or an array's items) travels as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    /// Text.
    Text,
    /// A 64-bit integer.
    Int,
    /// A double.
    Float,
    /// A boolean.
    Bool,
}

/// How a custom SQL tool declares a parameter (Toolbox `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `string`, `integer`, `float`, `boolean`.
    Scalar(Scalar),
    /// `array` of `items`: a typed array on PostgreSQL, JSON text elsewhere.
    Array(Scalar),
    /// `map` (an object): `jsonb` on PostgreSQL, JSON text elsewhere.
    Json,
}

impl Kind {
    /// The kind of a Toolbox parameter type (`string`, `integer`, `float`, `boolean`,
    /// `array` with its `items` type, `map`).
    pub fn of(kind: &str, items: Option<&str>) -> Kind {
        let scalar = |t: Option<&str>| match t {
            Some("integer") => Scalar::Int,
            Some("float") | Some("number") => Scalar::Float,
            Some("boolean") => Scalar::Bool,
            _ => Scalar::Text,
        };
        match kind {
            "array" => Kind::Array(scalar(items)),
            "map" | "object" => Kind::Json,
            other => Kind::Scalar(scalar(Some(other))),
        }
    }
}

/// A parameter resolved to the type it travels as.
#[derive(Debug, Clone, PartialEq)]
pub enum Bound {
    /// NULL of the declared kind (free SQL: text).
    Null(Kind),
    /// A boolean.
    Bool(bool),
    /// An integer within 64 bits, signed.
    Int(i64),
    /// An integer above `i64::MAX` within 64 bits, unsigned: MySQL binds it natively,
    /// PostgreSQL as `numeric`.
    UInt(u64),
    /// An integer beyond 64 bits, exact (`numeric` / `DECIMAL`).
    Decimal(rust_decimal::Decimal),
    /// A double.
    Float(f64),
    /// Text.
    Text(String),
    /// A JSON value (objects, and arrays in free SQL).
    Json(Value),
    /// A declared array parameter's items.
    Array(Scalar, Vec<Value>),
}

/// The raw JSON text of the arguments, consulted only for numbers JSON parsing could not
/// keep exact (integers beyond 64 bits become doubles in `serde_json`).
#[derive(Debug, Clone, Copy, Default)]
pub struct RawArgs<'a>(pub Option<&'a RawValue>);

impl<'a> RawArgs<'a> {
    /// The literal text of `params[i]`.
    fn param(&self, i: usize) -> Option<String> {
        #[derive(serde::Deserialize)]
        struct P<'b> {
            #[serde(borrow, default)]
            params: Option<Vec<&'b RawValue>>,
        }
        let p: P<'_> = serde_json::from_str(self.0?.get()).ok()?;
        p.params?.get(i).map(|r| r.get().to_string())
    }

    /// The literal text of the argument `name`.
    fn named(&self, name: &str) -> Option<String> {
        let m: BTreeMap<String, &RawValue> = serde_json::from_str(self.0?.get()).ok()?;
        m.get(name).map(|r| r.get().to_string())
    }
}

/// Whether a double is an integer too large for 64 bits: what `serde_json` makes of an
/// integer literal it cannot hold exactly (or of a float literal such as `1e20`).
fn beyond_64_bits(f: f64) -> bool {
    // -2^63 and 2^64, both exact in a double.
    f.fract() == 0.0 && !(f > i64::MIN as f64 && f < u64::MAX as f64)
}

/// An integer literal beyond 64 bits, exactly, or a clear refusal.
fn big_integer(literal: &str, what: &str) -> Result<Bound, CallError> {
    literal
        .trim()
        .parse::<rust_decimal::Decimal>()
        .map(Bound::Decimal)
        .map_err(|_| CallError::Argument(format!("{what}: the integer {} has more digits than can be bound exactly (28 at most); pass it as a string and cast it in SQL, e.g. $1::numeric", literal.trim())))
}

/// A JSON number as the type that keeps it exact; `literal` gives its text when JSON
/// parsing could not.
fn number(n: &serde_json::Number, literal: impl FnOnce() -> Option<String>, what: &str) -> Result<Bound, CallError> {
    if let Some(i) = n.as_i64() {
        return Ok(Bound::Int(i));
    }
    if let Some(u) = n.as_u64() {
        return Ok(Bound::UInt(u));
    }
    let f = n.as_f64().unwrap_or(f64::NAN);
    if beyond_64_bits(f) {
        if let Some(text) = literal().filter(|t| !t.contains(['.', 'e', 'E'])) {
            return big_integer(&text, what);
        }
    }
    Ok(Bound::Float(f))
}

/// The `params` of a free-SQL call (`query`, `execute`): each JSON value as the type that
/// keeps it exact.
pub fn free_params(values: &[Value], raw: RawArgs<'_>) -> Result<Vec<Bound>, CallError> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            Ok(match v {
                Value::Null => Bound::Null(Kind::Scalar(Scalar::Text)),
                Value::Bool(b) => Bound::Bool(*b),
                Value::Number(n) => number(n, || raw.param(i), &format!("params[{i}]"))?,
                Value::String(s) => Bound::Text(s.clone()),
                other => Bound::Json(other.clone()),
            })
        })
        .collect()
}

/// A custom SQL tool's parameter `name` of declared `kind`, bound by that kind whatever
/// the JSON looks like: a `float` parameter given `5` still travels as a double, so a
/// prepared statement always sees the same parameter types. Takes the value, so strings
/// and arrays move rather than copy.
pub fn typed_param(name: &str, v: Value, kind: Kind, raw: RawArgs<'_>) -> Result<Bound, CallError> {
    Ok(match (kind, v) {
        (_, Value::Null) => Bound::Null(kind),
        (Kind::Scalar(Scalar::Int), Value::Number(n)) => match number(&n, || raw.named(name), &format!("`{name}`"))? {
            Bound::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Bound::Int(f as i64),
            Bound::Float(f) if f.fract() == 0.0 => big_integer(&format!("{f:.0}"), &format!("`{name}`"))?,
            other => other,
        },
        (Kind::Scalar(Scalar::Float), Value::Number(n)) => Bound::Float(n.as_f64().unwrap_or(f64::NAN)),
        (Kind::Scalar(Scalar::Bool), Value::Bool(b)) => Bound::Bool(b),
        (Kind::Scalar(_), Value::String(s)) => Bound::Text(s),
        (Kind::Scalar(_), other) => Bound::Text(other.to_string()),
        (Kind::Array(item), Value::Array(items)) => Bound::Array(item, items),
        (_, other) => Bound::Json(other),
    })
}

/// Refuses what SQLite cannot hold exactly (its integers are 64-bit signed).
pub fn check_sqlite(params: &[Bound]) -> Result<(), CallError> {
    match params.iter().position(|p| matches!(p, Bound::UInt(_) | Bound::Decimal(_))) {
        Some(i) => Err(CallError::Argument(format!("parameter {}: SQLite integers are 64-bit signed; pass a larger integer as a string", i + 1))),
        None => Ok(()),
    }
}

fn texts(items: &[Value]) -> Vec<Option<String>> {
    items.iter().map(|v| if v.is_null() { None } else { Some(v.as_str().map_or_else(|| v.to_string(), str::to_owned)) }).collect()
}

/// Binds in order (`$1`, `$2`, …); JSON goes as `jsonb`, declared arrays as arrays.
pub fn bind_pg<'q>(mut q: PgQuery<'q>, params: &'q [Bound]) -> PgQuery<'q> {
    use rust_decimal::Decimal;
    for p in params {
        q = match p {
            Bound::Null(Kind::Scalar(Scalar::Text)) => q.bind(None::<String>),
            Bound::Null(Kind::Scalar(Scalar::Int)) => q.bind(None::<i64>),
            Bound::Null(Kind::Scalar(Scalar::Float)) => q.bind(None::<f64>),
            Bound::Null(Kind::Scalar(Scalar::Bool)) => q.bind(None::<bool>),
            Bound::Null(Kind::Json) => q.bind(None::<sqlx::types::Json<Value>>),
            Bound::Null(Kind::Array(Scalar::Text)) => q.bind(None::<Vec<String>>),
            Bound::Null(Kind::Array(Scalar::Int)) => q.bind(None::<Vec<i64>>),
            Bound::Null(Kind::Array(Scalar::Float)) => q.bind(None::<Vec<f64>>),
            Bound::Null(Kind::Array(Scalar::Bool)) => q.bind(None::<Vec<bool>>),
            Bound::Bool(b) => q.bind(*b),
            Bound::Int(i) => q.bind(*i),
            Bound::UInt(u) => q.bind(Decimal::from(*u)),
            Bound::Decimal(d) => q.bind(*d),
            Bound::Float(f) => q.bind(*f),
            Bound::Text(s) => q.bind(s.as_str()),
            Bound::Json(v) => q.bind(sqlx::types::Json(v)),
            Bound::Array(Scalar::Text, items) => q.bind(texts(items)),
            Bound::Array(Scalar::Int, items) => q.bind(items.iter().map(Value::as_i64).collect::<Vec<_>>()),
            Bound::Array(Scalar::Float, items) => q.bind(items.iter().map(Value::as_f64).collect::<Vec<_>>()),
            Bound::Array(Scalar::Bool, items) => q.bind(items.iter().map(Value::as_bool).collect::<Vec<_>>()),
        };
    }
    q
}

/// One binding rule for MySQL and SQLite, which have no arrays: structured values go as
/// JSON text.
macro_rules! bind_plain {
    ($q:expr, $params:expr, $uint:expr, $decimal:expr) => {{
        let mut q = $q;
        for p in $params {
            q = match p {
                Bound::Null(Kind::Scalar(Scalar::Int)) => q.bind(None::<i64>),
                Bound::Null(Kind::Scalar(Scalar::Float)) => q.bind(None::<f64>),
                Bound::Null(Kind::Scalar(Scalar::Bool)) => q.bind(None::<bool>),
                Bound::Null(_) => q.bind(None::<String>),
                Bound::Bool(b) => q.bind(*b),
                Bound::Int(i) => q.bind(*i),
                Bound::UInt(u) => $uint(q, *u),
                Bound::Decimal(d) => $decimal(q, *d),
                Bound::Float(f) => q.bind(*f),
                Bound::Text(s) => q.bind(s.as_str()),
                Bound::Json(v) => q.bind(v.to_string()),
                Bound::Array(_, items) => q.bind(Value::Array(items.clone()).to_string()),
            };
        }
        q
    }};
}

/// Binds in order (`?`); unsigned and decimal integers natively.
pub fn bind_my<'q>(q: MyQuery<'q>, params: &'q [Bound]) -> MyQuery<'q> {
    bind_plain!(q, params, |q: MyQuery<'q>, u: u64| q.bind(u), |q: MyQuery<'q>, d: rust_decimal::Decimal| q.bind(d))
}

/// Binds in order (`?`/`?N`); [`check_sqlite`] has refused what SQLite cannot hold.
pub fn bind_lite<'q>(q: LiteQuery<'q>, params: &'q [Bound]) -> LiteQuery<'q> {
    bind_plain!(q, params, |q: LiteQuery<'q>, u: u64| q.bind(u.to_string()), |q: LiteQuery<'q>, d: rust_decimal::Decimal| q.bind(d.to_string()))
}

fn b64(bytes: &[u8]) -> Value {
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

/// The text of a PostgreSQL `numeric` in its binary wire form, with every digit (as
/// PostgreSQL prints it), including `NaN` and `±Infinity`; `None` when the bytes are not a
/// numeric.
pub fn pg_numeric_text(b: &[u8]) -> Option<String> {
    use std::fmt::Write as _;
    let word = |i: usize| b.get(i..i + 2).map(|w| u16::from_be_bytes([w[0], w[1]]));
    let (ndigits, weight, sign, dscale) = (word(0)? as usize, word(2)? as i16, word(4)?, word(6)?);
    match sign {
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        0x0000 | 0x4000 => {}
        _ => return None,
    }
    if b.len() != 8 + 2 * ndigits {
        return None;
    }
    // Base-10000 digits; positions outside the stored ones are zero.
    let digit = |pos: i32| if pos >= 0 && (pos as usize) < ndigits { word(8 + 2 * pos as usize).unwrap_or(0) } else { 0 };
    let mut out = String::with_capacity(4 * ndigits + 8);
    if sign == 0x4000 {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        for pos in 0..=i32::from(weight) {
            // Writing into a String cannot fail.
            let _ = if pos == 0 { write!(out, "{}", digit(pos)) } else { write!(out, "{:04}", digit(pos)) };
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut frac = String::with_capacity(dscale as usize + 4);
        let mut pos = i32::from(weight) + 1;
        while frac.len() < dscale as usize {
            let _ = write!(frac, "{:04}", digit(pos));
            pos += 1;
        }
        frac.truncate(dscale as usize);
        out.push_str(&frac);
    }
    Some(out)
}

/// A PostgreSQL `numeric` decoded exactly (see [`pg_numeric_text`]).
struct Numeric(String);

const NUMERIC: Oid = Oid(1700);
const NUMERIC_ARRAY: Oid = Oid(1231);

impl sqlx::Type<Postgres> for Numeric {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(NUMERIC)
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        ty.oid() == Some(NUMERIC)
    }
}

impl PgHasArrayType for Numeric {
    fn array_type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(NUMERIC_ARRAY)
    }
}

impl<'r> sqlx::Decode<'r, Postgres> for Numeric {
    fn decode(value: PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let bytes = value.as_bytes()?;
        pg_numeric_text(bytes).map(Numeric).ok_or_else(|| "not a numeric in binary form".into())
    }
}

macro_rules! try_as {
    ($row:expr, $i:expr, $t:ty, $f:expr) => {
        $row.try_get::<$t, _>($i).ok().map($f)
    };
}

/// The size of a row on the wire, read before anything of it is decoded: a row whose
/// values alone exceed the caller's budget is not copied into JSON at all.
pub fn pg_raw_size(row: &PgRow) -> usize {
    (0..row.len()).map(|i| row.try_get_raw(i).ok().and_then(|r| r.as_bytes().ok()).map_or(0, <[u8]>::len)).sum()
}

/// See [`pg_raw_size`].
pub fn my_raw_size(row: &MySqlRow) -> usize {
    (0..row.len()).map(|i| row.try_get_unchecked::<&[u8], _>(i).map_or(0, <[u8]>::len)).sum()
}

/// One PostgreSQL row as JSON values.
pub fn pg_row(row: &PgRow) -> Vec<Value> {
    (0..row.len()).map(|i| pg_value(row, i)).collect()
}

fn pg_value(row: &PgRow, i: usize) -> Value {
    let Ok(raw) = row.try_get_raw(i) else { return Value::Null };
    if raw.is_null() {
        return Value::Null;
    }
    let info = row.columns()[i].type_info();
    // A domain travels as its base type; an enum as its label.
    let base = match info.kind() {
        PgTypeKind::Domain(base) => base.clone(),
        _ => info.clone(),
    };
    if matches!(base.kind(), PgTypeKind::Enum(_)) {
        return row.try_get_unchecked::<String, _>(i).map(Value::String).unwrap_or(Value::Null);
    }
    let ty = base.name().to_ascii_uppercase();
    let v = match ty.as_str() {
        "BOOL" => try_as!(row, i, bool, Value::from),
        "INT2" => try_as!(row, i, i16, Value::from),
        "INT4" => try_as!(row, i, i32, Value::from),
        "INT8" => try_as!(row, i, i64, Value::from),
        "OID" => try_as!(row, i, sqlx::postgres::types::Oid, |o| Value::from(o.0)),
        "FLOAT4" => try_as!(row, i, f32, |f| float(f as f64)),
        "FLOAT8" => try_as!(row, i, f64, float),
        "NUMERIC" => raw.as_bytes().ok().and_then(pg_numeric_text).map(Value::String),
        "BYTEA" => raw.as_bytes().ok().map(b64),
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
        "NUMERIC[]" | "_NUMERIC" => try_as!(row, i, Vec<Option<Numeric>>, |v| Value::Array(v.into_iter().map(|d| d.map_or(Value::Null, |d| Value::String(d.0))).collect())),
        "TEXT[]" | "_TEXT" | "VARCHAR[]" | "_VARCHAR" => try_as!(row, i, Vec<Option<String>>, Value::from),
        "UUID[]" | "_UUID" => try_as!(row, i, Vec<Option<uuid::Uuid>>, |v| Value::Array(v.into_iter().map(|u| u.map_or(Value::Null, |u| Value::String(u.to_string()))).collect())),
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" | "XML" | "CITEXT" => row.try_get_unchecked::<String, _>(i).ok().map(Value::String),
        _ => None,
    };
    v.unwrap_or_else(|| opaque(raw.as_bytes().unwrap_or_default(), &ty))
}

/// A value of a type without a mapping here. Its binary form is text for some types and
/// not for others, so it is text only when it reads as text, else base64 with its type.
fn opaque(bytes: &[u8], ty: &str) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) => Value::String(s.to_string()),
        _ => Value::String(format!("<{ty} value, binary, base64: {}>", STANDARD.encode(bytes))),
    }
}

/// One MySQL/MariaDB row as JSON values.
pub fn my_row(row: &MySqlRow) -> Vec<Value> {
    (0..row.len()).map(|i| my_value(row, i)).collect()
}

/// Whether a MySQL column holds text: its collation is not `binary`. (The column's
/// BINARY flag also marks text with a `_bin` collation, such as MariaDB's JSON columns.)
fn my_text(info: &sqlx::mysql::MySqlTypeInfo) -> bool {
    <str as sqlx::Type<MySql>>::compatible(info)
}

/// Whether a MariaDB column may be a `JSON` column: MariaDB sends those as `LONGTEXT`
/// with a binary collation, so only the table's check constraint tells (see
/// `engine::MySqlJson`).
pub fn my_maybe_json(col: &sqlx::mysql::MySqlColumn) -> Option<(String, String)> {
    let info = col.type_info();
    if !(my_text(info) && matches!(info.name(), "LONGBLOB" | "LONGTEXT" | "BLOB" | "TEXT")) {
        return None;
    }
    let origin = col.origin();
    let t = origin.table_column()?;
    Some((t.table.to_string(), t.name.to_string()))
}

fn my_value(row: &MySqlRow, i: usize) -> Value {
    if row.try_get_raw(i).map(|r| r.is_null()).unwrap_or(true) {
        return Value::Null;
    }
    let info = row.columns()[i].type_info();
    let ty = info.name().to_ascii_uppercase();
    let v = match ty.as_str() {
        "BOOLEAN" => try_as!(row, i, bool, Value::from),
        "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" => try_as!(row, i, i64, Value::from),
        "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "MEDIUMINT UNSIGNED" | "INT UNSIGNED" | "BIGINT UNSIGNED" => try_as!(row, i, u64, Value::from),
        "YEAR" => try_as!(row, i, u16, Value::from),
        "FLOAT" => try_as!(row, i, f32, |f| float(f as f64)),
        "DOUBLE" => try_as!(row, i, f64, float),
        // DECIMAL travels as text: every digit, whatever its precision (up to 65).
        "DECIMAL" => row.try_get_unchecked::<String, _>(i).ok().map(Value::String),
        "DATE" => try_as!(row, i, chrono::NaiveDate, |d| Value::String(d.to_string())),
        "TIME" => try_as!(row, i, chrono::NaiveTime, |t| Value::String(t.to_string())),
        "DATETIME" => try_as!(row, i, chrono::NaiveDateTime, |t| Value::String(t.format("%Y-%m-%dT%H:%M:%S%.f").to_string())),
        "TIMESTAMP" => try_as!(row, i, chrono::DateTime<chrono::Utc>, |t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))),
        "JSON" => try_as!(row, i, serde_json::Value, |v| v),
        "BIT" | "GEOMETRY" => row.try_get_unchecked::<&[u8], _>(i).ok().map(b64),
        _ if my_text(info) => row.try_get_unchecked::<String, _>(i).ok().map(Value::String),
        _ => row.try_get_unchecked::<&[u8], _>(i).ok().map(b64),
    };
    v.unwrap_or_else(|| opaque(row.try_get_unchecked::<&[u8], _>(i).unwrap_or_default(), &ty))
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
                "BLOB" => row.try_get_unchecked::<&[u8], _>(i).map(b64).unwrap_or(Value::Null),
                _ => row.try_get_unchecked::<String, _>(i).map(Value::String).unwrap_or(Value::Null),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn intervals_are_iso_8601() {
        assert_eq!(iso_interval(&PgInterval { months: 14, days: 3, microseconds: 3_723_500_000 }), "P1Y2M3DT1H2M3.5S");
        assert_eq!(iso_interval(&PgInterval { months: 0, days: 0, microseconds: 0 }), "PT0S");
    }

    /// The binary form PostgreSQL sends: ndigits, weight, sign, dscale, base-10000 digits.
    fn numeric(weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut b = Vec::new();
        for w in [digits.len() as u16, weight as u16, sign, dscale] {
            b.extend_from_slice(&w.to_be_bytes());
        }
        for d in digits {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b
    }

    #[test]
    fn numerics_keep_every_digit() {
        // 1e29: one digit 10 at weight 7 (10 * 10000^7).
        assert_eq!(pg_numeric_text(&numeric(7, 0, 0, &[10])).unwrap(), "100000000000000000000000000000");
        assert_eq!(pg_numeric_text(&numeric(0, 0x4000, 3, &[12, 3400])).unwrap(), "-12.340");
        assert_eq!(pg_numeric_text(&numeric(-2, 0, 6, &[1200])).unwrap(), "0.000012");
        assert_eq!(pg_numeric_text(&numeric(-2, 0, 8, &[12])).unwrap(), "0.00000012");
        assert_eq!(pg_numeric_text(&numeric(0, 0, 0, &[])).unwrap(), "0");
        assert_eq!(pg_numeric_text(&numeric(0, 0, 2, &[])).unwrap(), "0.00");
        assert_eq!(pg_numeric_text(&numeric(0, 0xC000, 0, &[])).unwrap(), "NaN");
        assert_eq!(pg_numeric_text(&numeric(0, 0xF000, 0, &[])).unwrap(), "-Infinity");
        assert!(pg_numeric_text(&[0, 1]).is_none());
    }

    #[test]
    fn integers_beyond_64_bits_are_exact_or_refused() {
        let raw: Box<RawValue> = RawValue::from_string(r#"{"sql": "x", "params": [9223372036854775808, 100000000000000000000, 1e20, 1234567890123456789012345678901234, 7, 1.5]}"#.into()).unwrap();
        let args: Value = serde_json::from_str(raw.get()).unwrap();
        let values = args["params"].as_array().unwrap();
        let err = free_params(values, RawArgs(Some(&raw))).unwrap_err().to_string();
        assert!(err.contains("params[3]") && err.contains("as a string"), "{err}");
        let ok = free_params(&values[..3], RawArgs(Some(&raw))).unwrap();
        assert_eq!(ok[0], Bound::UInt(9223372036854775808));
        assert_eq!(ok[1], Bound::Decimal("100000000000000000000".parse().unwrap()));
        assert_eq!(ok[2], Bound::Float(1e20), "a float literal stays a float");
        assert_eq!(free_params(&values[4..], RawArgs(Some(&raw))).unwrap(), [Bound::Int(7), Bound::Float(1.5)]);
        assert!(check_sqlite(&ok).is_err());
    }

    #[test]
    fn declared_kinds_decide_the_type() {
        let none = RawArgs(None);
        assert_eq!(typed_param("f", json!(5), Kind::of("float", None), none).unwrap(), Bound::Float(5.0));
        assert_eq!(typed_param("i", json!(5.0), Kind::of("integer", None), none).unwrap(), Bound::Int(5));
        assert_eq!(typed_param("i", Value::Null, Kind::of("integer", None), none).unwrap(), Bound::Null(Kind::Scalar(Scalar::Int)));
        assert_eq!(typed_param("a", json!([1, 2]), Kind::of("array", Some("integer")), none).unwrap(), Bound::Array(Scalar::Int, vec![json!(1), json!(2)]));
        assert_eq!(typed_param("m", json!({"k": 1}), Kind::of("map", None), none).unwrap(), Bound::Json(json!({"k": 1})));
    }

    #[test]
    fn opaque_values_are_text_only_when_they_read_as_text() {
        assert_eq!(opaque(b"(1,2)", "POINT"), json!("(1,2)"));
        assert_eq!(opaque(&[2, 0, 0, 0, 4], "INT4RANGE"), json!("<INT4RANGE value, binary, base64: AgAAAAQ=>"));
    }
}
