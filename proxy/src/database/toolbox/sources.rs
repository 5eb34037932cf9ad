//! Toolbox sources (`postgres`, `mysql`, `mariadb`, `sqlite`) as connection URLs. Their
//! fields are Toolbox's (`host`, `port`, `database`, `user`, `password`, `queryParams`, …);
//! the driver options in `queryParams` are translated to sqlx's, and an option sqlx does
//! not have is a load error rather than a setting quietly lost.

use std::time::Duration;

use serde_json::{Map, Value};

use super::keys;
use crate::database::source::{self, EngineKind};

/// A database source of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// Name.
    pub name: String,
    /// The engine, for checking that each tool's kind fits its source.
    pub engine: EngineKind,
    /// Connection URL built from the source's fields.
    pub url: String,
    /// PostgreSQL `connectTimeout`: replaces the pool's connect timeout.
    pub connect_timeout: Option<Duration>,
    /// MySQL `queryTimeout`: lowers the statement timeout of this source's tools.
    pub query_timeout: Option<Duration>,
}

/// Source types that need Google's connectors, which the gateway does not have.
const CONNECTOR_TYPES: [&str; 4] = ["cloud-sql-postgres", "alloydb-postgres", "cloud-sql-mysql", "cloud-sql-mssql"];

/// Reads a source of type `ty` (its `kind`/`type` and `name` already taken out).
pub fn parse(name: &str, ty: &str, body: &Map<String, Value>) -> Result<Source, String> {
    let at = format!("source `{name}`");
    let engine = match ty {
        "postgres" => EngineKind::Postgres,
        "mysql" => EngineKind::Mysql,
        "mariadb" => EngineKind::Mariadb,
        "sqlite" => EngineKind::Sqlite,
        "" => return Err(format!("{at}: missing `type`")),
        t if CONNECTOR_TYPES.contains(&t) => {
            return Err(format!("{at}: type `{t}` connects through Google's Cloud SQL / AlloyDB connector (project, region, instance), which the gateway does not have; give the instance's address as a `postgres` or `mysql` source"))
        }
        t => return Err(format!("{at}: type `{t}` is not supported (postgres, mysql, mariadb, sqlite)")),
    };
    if engine == EngineKind::Sqlite {
        keys::check(body, &["database"], &at)?;
        let url = source::sqlite_url(&keys::required_text(body, "database", &at)?).map_err(|e| format!("{at}: {e}"))?;
        return Ok(Source { name: name.to_string(), engine, url, connect_timeout: None, query_timeout: None });
    }
    keys::check(body, known_keys(engine), &at)?;
    let mut params = query_params(engine, keys::mapping(body, "queryParams", &at)?, &at)?;
    if let Some(mode) = keys::text(body, "sslmode", &at)? {
        if params.iter().any(|(k, _)| k == "sslmode") {
            return Err(format!("{at}: `sslmode` is given twice (as a field and in `queryParams`)"));
        }
        params.push(("sslmode".into(), pg_sslmode(&mode, &at)?));
    }
    check_read_only(body, &at)?;
    let port = match keys::text(body, "port", &at)? {
        Some(p) => Some(p.trim().parse::<u16>().map_err(|_| format!("{at}: `port` {p} is not a port number"))?),
        None => None,
    };
    let (host, user, database) = (keys::required_text(body, "host", &at)?, keys::required_text(body, "user", &at)?, keys::required_text(body, "database", &at)?);
    let password = keys::text(body, "password", &at)?;
    let url = source::network_url(&source::Endpoint { engine, host: &host, port, user: &user, password: password.as_deref(), database: &database, params }).map_err(|e| format!("{at}: {e}"))?;
    Ok(Source { name: name.to_string(), engine, url, connect_timeout: connect_timeout(body, &at)?, query_timeout: query_timeout(body, &at)? })
}

fn known_keys(engine: EngineKind) -> &'static [&'static str] {
    match engine {
        EngineKind::Postgres => &["host", "port", "user", "password", "database", "queryParams", "sslmode", "connectTimeout", "readOnly"],
        EngineKind::Mysql => &["host", "port", "user", "password", "database", "queryParams", "queryTimeout", "readOnly"],
        EngineKind::Mariadb | EngineKind::Sqlite => &["host", "port", "user", "password", "database", "queryParams"],
    }
}

/// `readOnly: true` asks Toolbox to refuse an account that can write; the gateway's
/// guarantee is a read-only server instead, so the request is not taken silently.
fn check_read_only(body: &Map<String, Value>, at: &str) -> Result<(), String> {
    match body.get("readOnly") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(()),
        Some(Value::Bool(true)) => Err(format!("{at}: `readOnly: true` (Toolbox's privilege check) is not supported: serve these tools from a server with `access: read-only`, where every statement runs in a read-only transaction")),
        Some(_) => Err(format!("{at}: `readOnly` must be true or false")),
    }
}

fn connect_timeout(body: &Map<String, Value>, at: &str) -> Result<Option<Duration>, String> {
    match body.get("connectTimeout") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64().filter(|s| *s >= 1) {
            Some(secs) => Ok(Some(Duration::from_secs(secs))),
            None => Err(format!("{at}: `connectTimeout` must be a whole number of seconds, at least 1")),
        },
    }
}

fn query_timeout(body: &Map<String, Value>, at: &str) -> Result<Option<Duration>, String> {
    match keys::text(body, "queryTimeout", at)? {
        None => Ok(None),
        Some(t) => humantime::parse_duration(t.trim()).map(Some).map_err(|e| format!("{at}: `queryTimeout` `{t}` is not a duration such as 30s: {e}")),
    }
}

const PG_SSLMODES: [&str; 6] = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"];

fn pg_sslmode(mode: &str, at: &str) -> Result<String, String> {
    PG_SSLMODES.contains(&mode).then(|| mode.to_string()).ok_or_else(|| format!("{at}: sslmode `{mode}` is not one of {}", PG_SSLMODES.join(", ")))
}

/// Translates `queryParams` into sqlx URL options; empty values are skipped, as Toolbox
/// skips them.
fn query_params(engine: EngineKind, given: Option<&Map<String, Value>>, at: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (key, value) in given.into_iter().flatten() {
        let place = format!("{at}, queryParams");
        let value = match value {
            Value::String(s) => s.clone(),
            v @ (Value::Number(_) | Value::Bool(_)) => v.to_string(),
            _ => return Err(format!("{place}: `{key}` must be a text value")),
        };
        if value.is_empty() {
            continue;
        }
        let option = match engine {
            EngineKind::Postgres => pg_option(key, &value, &place)?,
            _ => my_option(key, &value, &place)?,
        };
        if let Some(option) = option {
            out.push(option);
        }
    }
    Ok(out)
}

fn pg_option(key: &str, value: &str, at: &str) -> Result<Option<(String, String)>, String> {
    Ok(Some(match key {
        "sslmode" => (key.to_string(), pg_sslmode(value, at)?),
        "sslrootcert" | "sslcert" | "sslkey" => (key.to_string(), source::absolute_file(key, value).map_err(|e| format!("{at}: {e}"))?),
        "application_name" => (key.to_string(), value.to_string()),
        _ => return Err(format!("{at}: `{key}` is not supported (sslmode, sslrootcert, sslcert, sslkey, application_name)")),
    }))
}

/// Go's MySQL driver options, and sqlx's own TLS ones, as sqlx options.
fn my_option(key: &str, value: &str, at: &str) -> Result<Option<(String, String)>, String> {
    let mode = |m: &str| Ok(Some(("ssl-mode".to_string(), m.to_string())));
    match (key, value) {
        ("tls", "true") => mode("VERIFY_IDENTITY"),
        ("tls", "skip-verify") => mode("REQUIRED"),
        ("tls", "preferred") => mode("PREFERRED"),
        ("tls", "false") => mode("DISABLED"),
        ("tls", other) => Err(format!("{at}: tls `{other}` is not supported (true, skip-verify, preferred, false; give a CA file as `ssl-ca`)")),
        ("ssl-mode", m) if ["DISABLED", "PREFERRED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY"].contains(&m.to_ascii_uppercase().as_str()) => mode(&m.to_ascii_uppercase()),
        ("ssl-mode", m) => Err(format!("{at}: ssl-mode `{m}` is not one of DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY")),
        ("ssl-ca" | "ssl-cert" | "ssl-key", path) => Ok(Some((key.to_string(), source::absolute_file(key, path).map_err(|e| format!("{at}: {e}"))?))),
        ("charset", c) if c.contains(',') => Err(format!("{at}: charset `{c}`: give one character set")),
        ("charset" | "collation", v) => Ok(Some((key.to_string(), v.to_string()))),
        // The gateway always decodes dates and times (as ISO 8601), which is what
        // `parseTime=true` asks of Go's driver.
        ("parseTime", "true") => Ok(None),
        ("parseTime", _) => Err(format!("{at}: `parseTime` other than true is not supported: dates and times always come back as ISO 8601")),
        _ => Err(format!("{at}: `{key}` is not supported (tls, charset, collation, parseTime, ssl-mode, ssl-ca, ssl-cert, ssl-key)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn source(ty: &str, v: Value) -> Result<Source, String> {
        parse("db", ty, v.as_object().unwrap_or(&Map::new()))
    }

    #[test]
    fn postgres_fields_and_query_params_become_the_url() {
        let s = source(
            "postgres",
            json!({"host": "10.0.0.5", "port": "6432", "database": "shop", "user": "app", "password": "s3cr@t", "queryParams": {"sslmode": "verify-full", "sslrootcert": "/etc/ssl/ca.pem", "application_name": "my app"}, "connectTimeout": 3}),
        )
        .unwrap();
        assert_eq!(s.url, "postgres://app:s3cr%40t@10.0.0.5:6432/shop?sslmode=verify-full&sslrootcert=%2Fetc%2Fssl%2Fca.pem&application_name=my+app");
        assert_eq!(s.connect_timeout, Some(Duration::from_secs(3)));
        let s = source("postgres", json!({"host": "h", "database": "d", "user": "u", "sslmode": "require"})).unwrap();
        assert_eq!(s.url, "postgres://u@h:5432/d?sslmode=require");
    }

    #[test]
    fn mysql_driver_options_are_translated() {
        let s = source("mysql", json!({"host": "h", "database": "d", "user": "u", "password": "", "queryTimeout": "30s", "queryParams": {"tls": "skip-verify", "charset": "utf8mb4", "parseTime": "true", "loc": ""}})).unwrap();
        assert_eq!(s.url, "mysql://u@h:3306/d?ssl-mode=REQUIRED&charset=utf8mb4");
        assert_eq!(s.query_timeout, Some(Duration::from_secs(30)));
        assert_eq!(source("mariadb", json!({"host": "h", "database": "d", "user": "u", "queryParams": {"tls": "true"}})).unwrap().url, "mysql://u@h:3306/d?ssl-mode=VERIFY_IDENTITY");
    }

    #[test]
    fn unsupported_source_settings_are_refused_by_name() {
        let base = json!({"host": "h", "database": "d", "user": "u"});
        let with = |k: &str, v: Value| {
            let mut b = base.clone();
            b[k] = v;
            b
        };
        let cases = [
            ("postgres", with("queryExecMode", json!("simple_protocol")), "source `db`: `queryExecMode` is not supported"),
            ("postgres", with("queryParams", json!({"options": "-c statement_timeout=0"})), "source `db`, queryParams: `options` is not supported"),
            ("postgres", with("queryParams", json!({"sslrootcert": "ca.pem"})), "`sslrootcert` must be an absolute path"),
            ("postgres", with("readOnly", json!(true)), "`readOnly: true` (Toolbox's privilege check) is not supported"),
            ("postgres", with("sslmode", json!("sometimes")), "sslmode `sometimes` is not one of"),
            ("mysql", with("queryParams", json!({"multiStatements": "true"})), "`multiStatements` is not supported"),
            ("mysql", with("queryParams", json!({"tls": "custom"})), "tls `custom` is not supported"),
            ("mariadb", with("queryTimeout", json!("5s")), "unknown key `queryTimeout`"),
            ("postgres", with("port", json!("54x")), "`port` 54x is not a port number"),
            ("cloud-sql-postgres", json!({"project": "p"}), "Google's Cloud SQL / AlloyDB connector"),
            ("bigquery", json!({}), "type `bigquery` is not supported"),
            ("sqlite", json!({"database": "x.db", "host": "h"}), "source `db`: unknown key `host`"),
            ("postgres", json!({"host": "h", "database": "d"}), "source `db`: missing `user`"),
        ];
        for (ty, body, want) in cases {
            let e = source(ty, body).unwrap_err();
            assert!(e.contains(want), "{ty}: {e}");
        }
        assert!(!source("postgres", with("password", json!("hunter2"))).map(|s| s.url).unwrap_or_default().is_empty());
    }
}
