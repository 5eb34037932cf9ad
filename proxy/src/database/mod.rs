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

/// A database connection source.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// `postgres://…`, `mysql://…` (MariaDB too) or `sqlite://path` (relative to the
    /// config file). Use `${ENV}` for the password; it never appears in logs or errors,
    /// and serializes only as a fingerprint (so a changed URL rebuilds the pool on reload).
    #[serde(serialize_with = "serialize_fingerprint")]
    pub url: String,
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

fn serialize_fingerprint<S: serde::Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(fingerprint(url))
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
        let defaults = cfg.source.clone();
        let mut engines = std::collections::BTreeMap::new();
        for (sname, s) in &tb.sources {
            let src = SourceConfig { url: s.url.clone(), seed: None, ..defaults.clone().unwrap_or_else(|| SourceConfig { url: String::new(), pool_size: default_pool(), connect_timeout: default_connect(), idle_timeout: default_idle(), seed: None }) };
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

    #[test]
    fn sqlite_paths_resolve_against_the_config_folder() {
        assert_eq!(sqlite_path("sqlite://demo/h.db?mode=ro", Path::new("/etc/mcpgate")).unwrap(), Path::new("/etc/mcpgate/demo/h.db"));
        assert_eq!(sqlite_path("sqlite:///var/h.db", Path::new("/etc")).unwrap(), Path::new("/var/h.db"));
    }
}
