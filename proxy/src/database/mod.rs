//! Database → MCP: instance tools (`list_tables`, `describe_table`, `query`, `execute`)
//! over PostgreSQL, MySQL/MariaDB and SQLite, executed in the request phase on pooled
//! `sqlx` connections (sqlx's pool for MySQL and SQLite, [`pgpool`] for PostgreSQL). `query` can never write: it runs in a read-only transaction (PostgreSQL,
//! MySQL) or on a read-only connection (SQLite), as one prepared statement, under a
//! statement timeout, a row cap and a response-size cap.

pub mod account;
mod engine;
pub mod error;
mod pgpool;
mod server;
pub mod source;
mod sqlite;
pub mod toolbox;
mod value;

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::{Dur, Size};
use crate::runtime::{BuildContext, BuiltRoute};

pub use engine::{Engine, Usage};
pub use server::DatabaseServer;
pub use source::{EngineKind, TlsConfig, TlsMode};

/// A pooled connection idle for longer than this is pinged before it is handed out; one
/// busy a moment ago is known to be alive.
const PING_IF_IDLE_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// `type: database` server settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DatabaseServerConfig {
    /// The connection for the instance tools (optional when `tools_file` brings sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceConfig>,
    /// A Google MCP Toolbox `tools.yaml` (relative to the config file): its SQL tools are
    /// served on this route, and each toolset on `{name}.{toolset}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools_file: Option<String>,
    /// `read-only` (default): no `execute` tool. `read-write`: `execute` is served.
    #[serde(default)]
    pub access: Access,
    /// Caps on every statement.
    #[serde(default)]
    pub limits: DbLimits,
    /// Serve `query`/`execute` even when the account holds privileges that reach outside
    /// the database (superuser, server files or programs, other sessions). Off by default;
    /// every load with it on logs a warning.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_privileged_account: bool,
}

/// Whether writes are served.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// Only reads.
    #[default]
    ReadOnly,
    /// Reads and the `execute` tool.
    ReadWrite,
}

/// A database connection source: a `url`, or the same connection as fields (`engine`,
/// `host`, `port`, `database`, `user`, `password`, `tls`), never both.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// `postgres://…`, `mysql://…` (MariaDB too) or `sqlite://path` (relative to the
    /// config file). Use `${ENV}` for the password; it never appears in logs or errors,
    /// and serializes only as a fingerprint (so a changed URL rebuilds the pool on reload).
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "serialize_fingerprint")]
    pub url: Option<String>,
    /// Field form: `postgres`, `mysql`, `mariadb` or `sqlite`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineKind>,
    /// Field form: host name or address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Field form: port (default 5432 for PostgreSQL, 3306 for MySQL/MariaDB).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "deserialize_port")]
    pub port: Option<u16>,
    /// Field form: the database name (for SQLite, the file's path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Field form: login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Field form: password (use `${ENV}`); like the URL, never logged and serialized only
    /// as a fingerprint, so a changed password rebuilds the pool on reload.
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "serialize_fingerprint")]
    pub password: Option<String>,
    /// Field form: TLS settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Pool size (default 5).
    #[serde(default = "default_pool")]
    pub pool_size: u32,
    /// Connect / acquire timeout (default 5s).
    #[serde(default = "default_connect")]
    pub connect_timeout: Dur,
    /// Idle connections close after this (default 10m).
    #[serde(default = "default_idle")]
    pub idle_timeout: Dur,
    /// SQLite only: a SQL script that creates the database file when it does not exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<String>,
}

impl SourceConfig {
    /// A source for `url` with the pool settings of `base` (the defaults without one).
    pub fn for_url(url: String, base: Option<&SourceConfig>) -> SourceConfig {
        let (pool_size, connect_timeout, idle_timeout) = base.map_or((default_pool(), default_connect(), default_idle()), |b| (b.pool_size, b.connect_timeout, b.idle_timeout));
        SourceConfig { url: Some(url), engine: None, host: None, port: None, database: None, user: None, password: None, tls: None, pool_size, connect_timeout, idle_timeout, seed: None }
    }

    /// The connection URL: `url` as given, or one built from the fields with every part
    /// percent-encoded. The message of an error never contains the password.
    pub fn connection_url(&self) -> Result<String, DatabaseError> {
        self.url_or_fields().map_err(DatabaseError::Source)
    }

    /// The field-form keys that are set, by name.
    fn fields_given(&self) -> Vec<&'static str> {
        let set =
            [("engine", self.engine.is_some()), ("host", self.host.is_some()), ("port", self.port.is_some()), ("database", self.database.is_some()), ("user", self.user.is_some()), ("password", self.password.is_some()), ("tls", self.tls.is_some())];
        set.into_iter().filter(|(_, given)| *given).map(|(name, _)| name).collect()
    }

    fn url_or_fields(&self) -> Result<String, String> {
        let given = self.fields_given();
        match (&self.url, self.engine) {
            (Some(_), _) if !given.is_empty() => Err(format!("give either `url` or the connection fields, not both (found `url` and `{}`)", given.join("`, `"))),
            (Some(url), _) => Ok(url.trim().to_string()),
            (None, None) if given.is_empty() => Err("`url` or `engine` (with `host`, `database`, `user`, …) is required".into()),
            (None, None) => Err(format!("`engine` (postgres, mysql, mariadb or sqlite) is required with `{}`", given.join("`, `"))),
            (None, Some(EngineKind::Sqlite)) => self.sqlite_fields(),
            (None, Some(engine)) => self.network_fields(engine),
        }
    }

    fn sqlite_fields(&self) -> Result<String, String> {
        let network = [("host", self.host.is_some()), ("port", self.port.is_some()), ("user", self.user.is_some()), ("password", self.password.is_some()), ("tls", self.tls.is_some())];
        if let Some((name, _)) = network.iter().find(|(_, given)| *given) {
            return Err(format!("`{name}` does not apply to SQLite (a file: give `database`, its path)"));
        }
        source::sqlite_url(self.database.as_deref().unwrap_or(""))
    }

    fn network_fields(&self, engine: EngineKind) -> Result<String, String> {
        let need = |v: &Option<String>, name: &str| v.as_deref().filter(|s| !s.trim().is_empty()).map(str::to_owned).ok_or_else(|| format!("`{name}` is required"));
        let params = match &self.tls {
            Some(tls) => tls.params(engine)?,
            None => Vec::new(),
        };
        let (host, user, database) = (need(&self.host, "host")?, need(&self.user, "user")?, need(&self.database, "database")?);
        source::network_url(&source::Endpoint { engine, host: &host, port: self.port, user: &user, password: self.password.as_deref(), database: &database, params })
    }
}

impl DatabaseServerConfig {
    /// Checks at load what serde cannot: a source is a URL or fields, never both, and the
    /// fields make a connection. Returns the field and the message.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if let Some(src) = &self.source {
            src.url_or_fields().map_err(|m| ("source".to_string(), m))?;
        }
        Ok(())
    }
}

fn deserialize_port<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    // A number, or a string of one: `port: ${DB_PORT}` substitutes to a string.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Port {
        Number(u16),
        Text(String),
    }
    match Option::<Port>::deserialize(d)? {
        None => Ok(None),
        Some(Port::Number(n)) => Ok(Some(n)),
        Some(Port::Text(t)) => t.trim().parse().map(Some).map_err(|_| serde::de::Error::custom(format!("`port`: `{t}` is not a port number"))),
    }
}

fn serialize_fingerprint<S: serde::Serializer>(secret: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(v) => s.serialize_u64(fingerprint(v)),
        None => s.serialize_none(),
    }
}

fn default_pool() -> u32 {
    5
}
fn default_connect() -> Dur {
    Dur(std::time::Duration::from_secs(5))
}
fn default_idle() -> Dur {
    Dur(std::time::Duration::from_secs(600))
}

/// Statement caps.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DbLimits {
    /// Per-statement timeout (default 5s).
    #[serde(default = "default_statement_timeout")]
    pub statement_timeout: Dur,
    /// Rows returned at most (default 1000); more sets `truncated: true`.
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// Result size at most (default 1MiB of JSON); more sets `truncated: true`.
    #[serde(default = "default_max_bytes")]
    pub max_response_bytes: Size,
}

fn default_statement_timeout() -> Dur {
    Dur(std::time::Duration::from_secs(5))
}
fn default_max_rows() -> usize {
    1000
}
fn default_max_bytes() -> Size {
    Size(1 << 20)
}

impl Default for DbLimits {
    fn default() -> Self {
        DbLimits { statement_timeout: default_statement_timeout(), max_rows: default_max_rows(), max_response_bytes: default_max_bytes() }
    }
}

/// Why a database server could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// The URL is not usable (the message never contains the password).
    #[error("source.url: {0}")]
    Url(String),
    /// The SQLite seed script failed.
    #[error("source.seed: {0}")]
    Seed(String),
    /// The connection fields of `source:` do not make a connection.
    #[error("source: {0}")]
    Source(String),
    /// The Toolbox file is unusable.
    #[error("tools_file `{0}`: {1}")]
    Toolbox(String, String),
    /// Neither a source nor a tools file.
    #[error("a database server needs `source` or `tools_file`")]
    Empty,
}

/// Replaces the password of a URL-looking string and any occurrence of it elsewhere.
pub fn scrub(text: &str, url: &str) -> String {
    let mut out = text.to_string();
    if let Ok(u) = url::Url::parse(url) {
        if let Some(p) = u.password().filter(|p| !p.is_empty()) {
            out = out.replace(p, "***");
            let decoded = percent_encoding::percent_decode_str(p).decode_utf8_lossy().into_owned();
            out = out.replace(&decoded, "***");
        }
    }
    out
}

/// Builds the route for a `type: database` server. Pools connect lazily, so a database
/// that is down at load does not stop the gateway: calls say so until it is back.
pub async fn build(name: &str, cfg: &DatabaseServerConfig, cx: &BuildContext<'_>) -> Result<Vec<BuiltRoute>, DatabaseError> {
    let usage = |source| Usage { server: name, source, allow_privileged: cfg.allow_privileged_account, read_write: cfg.access == Access::ReadWrite };
    let engine = match &cfg.source {
        Some(src) => {
            let e = Arc::new(Engine::connect(src, cx.base_dir, &cfg.limits, usage(None)).await?);
            log::info!("server `{name}`: {} pool of {} (lazy)", e.kind(), src.pool_size);
            e.probe();
            Some(e)
        }
        None => None,
    };
    let mut custom = Vec::new();
    let mut toolsets = std::collections::BTreeMap::new();
    if let Some(file) = &cfg.tools_file {
        let path = cx.base_dir.join(file);
        let text = tokio::fs::read_to_string(&path).await.map_err(|e| DatabaseError::Toolbox(file.clone(), e.to_string()))?;
        let tb = toolbox::parse(&text).map_err(|e| DatabaseError::Toolbox(file.clone(), e))?;
        let mut engines = std::collections::BTreeMap::new();
        for (sname, s) in &tb.sources {
            let src = toolbox_source(s, cfg.source.as_ref());
            // SQLite paths in a Toolbox file are relative to that file.
            let dir = path.parent().unwrap_or(cx.base_dir);
            let e = Arc::new(Engine::connect(&src, dir, &cfg.limits, usage(Some(sname))).await.map_err(|e| DatabaseError::Toolbox(file.clone(), format!("source `{sname}`: {e}")))?);
            e.probe();
            engines.insert(sname.clone(), e);
        }
        for t in tb.tools {
            let engine = engines[&t.source].clone();
            custom.push((t, engine));
        }
        toolsets = tb.toolsets;
    }
    if engine.is_none() && custom.is_empty() {
        return Err(DatabaseError::Empty);
    }
    let mut routes = Vec::new();
    for (set, names) in &toolsets {
        let tools: Vec<_> = custom.iter().filter(|(t, _)| names.contains(&t.name)).cloned().collect();
        let server = DatabaseServer::new(None, tools, cfg.access, cfg.limits.clone());
        routes.push(BuiltRoute { name: format!("{name}.{set}"), description: Some(format!("toolset `{set}` of `{name}`")), server: Arc::new(server) });
    }
    let server = DatabaseServer::new(engine, custom, cfg.access, cfg.limits.clone());
    routes.insert(0, BuiltRoute { name: name.to_string(), description: None, server: Arc::new(server) });
    Ok(routes)
}

/// Logs, at every load (also when a reload keeps the server's pools), that a server
/// serves free SQL whatever its account may do.
pub fn warn_at_load(name: &str, cfg: &DatabaseServerConfig) {
    if cfg.allow_privileged_account {
        log::warn!("server `{name}`: allow_privileged_account is on: query/execute are served even over an account that can run programs, read or write server files or end other sessions (docs/DATABASE.md)");
    }
}

/// The pool of a Toolbox source: the server's `source` pool settings (when it has one),
/// with the source's own `connectTimeout` when the file gives one.
fn toolbox_source(s: &toolbox::Source, server: Option<&SourceConfig>) -> SourceConfig {
    let mut src = SourceConfig::for_url(s.url.clone(), server);
    if let Some(t) = s.connect_timeout {
        src.connect_timeout = Dur(t);
    }
    src
}

/// The URL fingerprint for change detection across reloads.
pub fn fingerprint(url: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    url.hash(&mut h);
    h.finish()
}

/// Resolves a `sqlite://relative/path` against the config folder.
pub fn sqlite_path(url: &str, base_dir: &Path) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    let p = Path::new(path);
    Some(if p.is_absolute() { p.to_path_buf() } else { base_dir.join(p) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_scrubbed() {
        let url = "postgres://app:s3cr%21t@db:5432/shop";
        assert_eq!(scrub("password authentication failed: s3cr!t / s3cr%21t", url), "password authentication failed: *** / ***");
    }

    fn source(yaml: &str) -> SourceConfig {
        serde_yaml::from_str(yaml).expect("source")
    }

    #[test]
    fn a_source_is_a_url_or_fields() {
        assert_eq!(source("url: \" postgres://app@db/shop \"").connection_url().unwrap(), "postgres://app@db/shop");
        let pg = source("{engine: postgres, host: db.internal, port: \"6432\", database: shop, user: app, password: \"p@ss word\", tls: {mode: verify-full, ca_file: /etc/ssl/db-ca.pem}}");
        assert_eq!(pg.connection_url().unwrap(), "postgres://app:p%40ss%20word@db.internal:6432/shop?sslmode=verify-full&sslrootcert=%2Fetc%2Fssl%2Fdb-ca.pem");
        let my = source("{engine: mariadb, host: 127.0.0.1, database: test, user: root, tls: {mode: require}}");
        assert_eq!(my.connection_url().unwrap(), "mysql://root@127.0.0.1:3306/test?ssl-mode=REQUIRED");
        assert_eq!(source("{engine: sqlite, database: demo/h.db}").connection_url().unwrap(), "sqlite://demo/h.db");
    }

    #[test]
    fn source_mistakes_are_named_without_the_password() {
        let cases = [
            ("{url: \"postgres://a@b/c\", host: b, password: hunter2}", "give either `url` or the connection fields, not both (found `url` and `host`, `password`)"),
            ("{pool_size: 3}", "`url` or `engine` (with `host`, `database`, `user`, …) is required"),
            ("{host: db, user: app, password: hunter2}", "`engine` (postgres, mysql, mariadb or sqlite) is required with `host`, `user`, `password`"),
            ("{engine: postgres, database: d, user: u, password: hunter2}", "`host` is required"),
            ("{engine: mysql, host: h, database: d, password: hunter2}", "`user` is required"),
            ("{engine: sqlite, database: x.db, password: hunter2}", "`password` does not apply to SQLite (a file: give `database`, its path)"),
            ("{engine: postgres, host: h, database: d, user: u, tls: {mode: require, ca_file: ca.pem}}", "`tls.ca_file` must be an absolute path (got `ca.pem`)"),
        ];
        for (yaml, want) in cases {
            let e = source(yaml).connection_url().unwrap_err().to_string();
            assert_eq!(e, format!("source: {want}"), "{yaml}");
            assert!(!e.contains("hunter2"));
        }
        assert!(serde_yaml::from_str::<SourceConfig>("{engine: oracle}").is_err());
        assert!(serde_yaml::from_str::<SourceConfig>("{engine: postgres, port: \"54x\"}").unwrap_err().to_string().contains("`54x` is not a port number"));
        assert!(serde_yaml::from_str::<SourceConfig>("{engine: postgres, tls: {mode: require, verify: true}}").is_err());
    }

    #[test]
    fn secrets_serialize_as_fingerprints_that_change_with_them() {
        let text = |pw: &str| serde_json::to_string(&source(&format!("{{engine: postgres, host: h, database: d, user: u, password: {pw}}}"))).unwrap();
        assert!(!text("hunter2").contains("hunter2"));
        assert_ne!(text("hunter2"), text("hunter3"), "a changed password rebuilds the pool on reload");
        let url = serde_json::to_string(&source("url: \"postgres://u:hunter2@h/d\"")).unwrap();
        assert!(!url.contains("hunter2") && url.contains("\"url\":"));
    }

    #[test]
    fn sqlite_paths_resolve_against_the_config_folder() {
        assert_eq!(sqlite_path("sqlite://demo/h.db?mode=ro", Path::new("/etc/mcpgate")).unwrap(), Path::new("/etc/mcpgate/demo/h.db"));
        assert_eq!(sqlite_path("sqlite:///var/h.db", Path::new("/etc")).unwrap(), Path::new("/var/h.db"));
    }
}
