//! The gateway's YAML config: plain `serde` structs, `${ENV}` substitution, and validation
//! done once at load. Runtime code never sees a [`Config`]; it reads the immutable
//! [`crate::runtime::Snapshot`] built from one.

mod env;
mod keys;
pub mod units;

/// Expands `${VAR}` / `${VAR:-default}` / `${VAR:?message}` in one string (also used for
/// Toolbox files).
pub fn env_expand(text: &str) -> Result<String, String> {
    env::expand(text)
}

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_yaml::Value as Yaml;
use thiserror::Error;

pub use units::{Dur, Size};

/// A config file that cannot be used, with the file, the server and the field it is about.
#[derive(Debug, Error)]
#[error("{file}: {}{message}", context.as_deref().map(|c| format!("{c}: ")).unwrap_or_default())]
pub struct ConfigError {
    /// The config file.
    pub file: String,
    /// Where in the file: `server \`x\`, field \`spec\``.
    pub context: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    fn new(file: &Path, context: Option<String>, message: impl Into<String>) -> Self {
        ConfigError { file: file.display().to_string(), context, message: message.into() }
    }
}

/// The whole gateway config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Addresses the MCP listener binds (default loopback only).
    #[serde(default = "default_listen")]
    pub listen: Vec<String>,
    /// The admin listener (metrics, health, admin API).
    #[serde(default)]
    pub admin: AdminConfig,
    /// Session tokens.
    #[serde(default)]
    pub session: SessionConfig,
    /// Request limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Connection limits and deadlines of the MCP listener.
    #[serde(default)]
    pub connections: crate::listener::ConnectionsConfig,
    /// Origin and Host validation.
    #[serde(default)]
    pub security: SecurityConfig,
    /// Defaults for upstream calls, overridable per server.
    #[serde(default)]
    pub upstream: UpstreamDefaults,
    /// How callers authenticate (API keys, JWT issuers, the OAuth protected resource).
    #[serde(default)]
    pub auth: crate::auth::AuthConfig,
    /// Named callers: their keys, groups and own upstream credentials.
    #[serde(default)]
    pub consumers: Vec<crate::auth::ConsumerConfig>,
    /// Where rate-limit and quota counters live.
    #[serde(default)]
    pub quotas: crate::policy::quota::QuotaStoreConfig,
    /// Pingora's own server settings (`threads`, `pid_file`, `upgrade_sock`,
    /// `grace_period_seconds`, ...), passed through unchanged. Read at start only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pingora: Option<Yaml>,
    /// The MCP servers this gateway serves.
    #[serde(default, skip_deserializing)]
    pub servers: Vec<ServerConfig>,
    /// The file this config was read from.
    #[serde(skip)]
    pub path: PathBuf,
    /// Values `${ENV}` references took inside each server's entry, by server name, except
    /// in fields that only locate or describe it (`spec`, `base_url`, `file`, timeouts):
    /// REST and OpenAPI servers scrub them from what clients see.
    #[serde(skip)]
    pub env_values: std::collections::BTreeMap<String, Vec<String>>,
}

fn default_listen() -> Vec<String> {
    vec!["127.0.0.1:8080".into()]
}

/// The admin listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address (default `127.0.0.1:9090`); empty disables the admin listener.
    #[serde(default = "default_admin_listen")]
    pub listen: String,
    /// Bearer token the admin listener requires (`Authorization: Bearer <token>`), plain
    /// or as `sha256:<hex>` (`mcpgate hash-key`). Required when `listen` is not loopback;
    /// `/healthz` and `/readyz` stay open for probes.
    #[serde(default, skip_serializing)]
    pub token: Option<String>,
}

fn default_admin_listen() -> String {
    "127.0.0.1:9090".into()
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig { listen: default_admin_listen(), token: None }
    }
}

/// Session token settings (docs/SESSIONS.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    /// 32-byte key, base64 or hex, that seals session tokens. Gateways sharing a key accept
    /// each other's sessions. When absent or empty an ephemeral key is generated (with a
    /// warning).
    #[serde(default, skip_serializing)]
    pub key: Option<String>,
    /// Absolute session lifetime (default 24h).
    #[serde(default = "default_session_ttl")]
    pub ttl: Dur,
    /// A session unused this long ends (default 30m).
    #[serde(default = "default_idle_ttl")]
    pub idle_ttl: Dur,
    /// Most sessions in use this gateway tracks (default 1000000, about 32 MB of table);
    /// at the cap new sessions are refused with 503 and sessions in use keep working.
    #[serde(default = "default_max_active")]
    pub max_active: usize,
    /// Most ended sessions remembered until their tokens expire (default 4000000, about
    /// 70 MB at most); beyond it ended sessions stay in the active table, never forgotten.
    #[serde(default = "default_max_ended")]
    pub max_ended: usize,
    /// New sessions (`initialize`, legacy SSE GETs) per second per client IP (IPv6: per
    /// /64), sustained (default 20); 0 disables the limit. Over it: 429 with Retry-After.
    #[serde(default = "default_initialize_rate")]
    pub initialize_rate: u32,
    /// New sessions a client may open at once (default 100; at least `initialize_rate`).
    #[serde(default = "default_initialize_burst")]
    pub initialize_burst: u32,
    /// Redis URL (`redis://host:6379/0`) where ended sessions are shared by the fleet and
    /// survive restarts. Unset: ended sessions are known to this process only.
    #[serde(default, skip_serializing)]
    pub redis: Option<String>,
}

fn default_session_ttl() -> Dur {
    Dur(std::time::Duration::from_secs(24 * 3600))
}
fn default_idle_ttl() -> Dur {
    Dur(std::time::Duration::from_secs(30 * 60))
}
fn default_max_active() -> usize {
    1_000_000
}
fn default_max_ended() -> usize {
    4_000_000
}
fn default_initialize_rate() -> u32 {
    20
}
fn default_initialize_burst() -> u32 {
    100
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            key: None,
            ttl: default_session_ttl(),
            idle_ttl: default_idle_ttl(),
            max_active: default_max_active(),
            max_ended: default_max_ended(),
            initialize_rate: default_initialize_rate(),
            initialize_burst: default_initialize_burst(),
            redis: None,
        }
    }
}

/// Request limits on the MCP listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest accepted request body (default 1MiB); larger gets 413.
    #[serde(default = "default_max_body")]
    pub max_request_body: Size,
    /// Largest accepted request header block (default 32KiB); larger gets 431.
    #[serde(default = "default_max_header")]
    pub max_request_headers: Size,
    /// Largest JSON-RPC batch (default 64 messages), on both transports.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// Legacy SSE: most streams open at once on this gateway (default 10000); a GET beyond
    /// it gets 503 with `Retry-After`.
    #[serde(default = "default_max_sse_streams")]
    pub max_sse_streams: usize,
    /// Legacy SSE: most POSTed bodies of one session being worked on at once (default 16);
    /// a POST beyond it gets 429 with `Retry-After` and is not run. Read when a stream opens.
    #[serde(default = "default_max_sse_inflight")]
    pub max_sse_inflight: usize,
    /// Legacy SSE: most reply bytes queued for one stream (default 4MiB). A full queue
    /// holds further replies back (their POSTs count as in flight), so a client that stops
    /// reading meets 429s. Read when a stream opens.
    #[serde(default = "default_max_sse_queued")]
    pub max_sse_queued: Size,
    /// Legacy SSE: a stream whose client has not taken a write for this long is closed
    /// (default 30s); its session ends and its queued replies and work are dropped.
    #[serde(default = "default_sse_write_timeout")]
    pub sse_write_timeout: Dur,
}

fn default_max_body() -> Size {
    Size(1 << 20)
}
fn default_max_header() -> Size {
    Size(32 << 10)
}
fn default_max_batch() -> usize {
    64
}
fn default_max_sse_streams() -> usize {
    10_000
}
fn default_max_sse_inflight() -> usize {
    16
}
fn default_max_sse_queued() -> Size {
    Size(4 << 20)
}
fn default_sse_write_timeout() -> Dur {
    Dur(std::time::Duration::from_secs(30))
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_request_body: default_max_body(),
            max_request_headers: default_max_header(),
            max_batch: default_max_batch(),
            max_sse_streams: default_max_sse_streams(),
            max_sse_inflight: default_max_sse_inflight(),
            max_sse_queued: default_max_sse_queued(),
            sse_write_timeout: default_sse_write_timeout(),
        }
    }
}

impl LimitsConfig {
    /// The legacy SSE limits must leave a stream able to work: at least one stream, one
    /// message in flight and 1KiB of queue, and counts the queue's semaphore can hold.
    fn check_sse(&self) -> Result<(), (&'static str, &'static str)> {
        if self.max_sse_streams == 0 {
            return Err(("field `limits.max_sse_streams`", "must be positive"));
        }
        if !(1..=1 << 20).contains(&self.max_sse_inflight) {
            return Err(("field `limits.max_sse_inflight`", "must be between 1 and 1048576"));
        }
        if !(1 << 10..=u32::MAX as usize).contains(&self.max_sse_queued.0) {
            return Err(("field `limits.max_sse_queued`", "must be between 1KiB and 4GiB"));
        }
        if self.sse_write_timeout.0.is_zero() {
            return Err(("field `limits.sse_write_timeout`", "must be positive"));
        }
        Ok(())
    }
}

/// DNS-rebinding protection.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    /// Accepted `Origin` values (exact, e.g. `https://app.example.com`) besides loopback
    /// origins. `*` accepts any (not recommended).
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Accepted `Host` values (host or host:port) besides loopback names. When empty and
    /// the gateway listens on a non-loopback address, any Host is accepted.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

/// Defaults for upstream calls.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamDefaults {
    /// Connect timeout (default 5s).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Dur,
    /// Whole-call timeout (default 30s).
    #[serde(default = "default_call_timeout")]
    pub timeout: Dur,
    /// Response bytes kept for a tool result (default 4MiB); beyond it the result is
    /// truncated with a note.
    #[serde(default = "default_max_response")]
    pub max_response_bytes: Size,
    /// How a REST tools/call reaches its API: always `connector` (Pingora's pooled
    /// connector, from the request phase). Accepted so configs that name it keep loading;
    /// the `proxy` mode is gone (a call finishing in Pingora's synchronous body filter
    /// could never run an async step after it, such as settling a quota).
    #[serde(default)]
    pub mode: UpstreamMode,
    /// Largest OpenAPI document set (the spec and the files its `$ref`s name, together)
    /// read for one server (default 16MiB); a larger one fails that server's build.
    #[serde(default = "default_max_spec")]
    pub max_spec_bytes: Size,
    /// Deadline for fetching one server's OpenAPI documents by URL, connecting included
    /// (default 10s), so an unanswering spec URL cannot hold a reload.
    #[serde(default = "default_spec_timeout")]
    pub spec_timeout: Dur,
}

/// See [`UpstreamDefaults::mode`].
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamMode {
    /// Pingora's connector, from `request_filter`.
    #[default]
    Connector,
    /// The removed proxy-phase mode: parsed only to refuse it with a clear message.
    Proxy,
}

fn default_connect_timeout() -> Dur {
    Dur(std::time::Duration::from_secs(5))
}
fn default_call_timeout() -> Dur {
    Dur(std::time::Duration::from_secs(30))
}
fn default_max_response() -> Size {
    Size(4 << 20)
}
fn default_max_spec() -> Size {
    Size(16 << 20)
}
fn default_spec_timeout() -> Dur {
    Dur(std::time::Duration::from_secs(10))
}

impl Default for UpstreamDefaults {
    fn default() -> Self {
        UpstreamDefaults {
            connect_timeout: default_connect_timeout(),
            timeout: default_call_timeout(),
            max_response_bytes: default_max_response(),
            mode: UpstreamMode::default(),
            max_spec_bytes: default_max_spec(),
            spec_timeout: default_spec_timeout(),
        }
    }
}

/// One entry of `servers:`.
#[derive(Debug, Clone, Serialize)]
pub struct ServerConfig {
    /// Route name: the server is served at `/mcp/{name}`.
    pub name: String,
    /// Shown in listings.
    pub description: Option<String>,
    /// Who may use the server and which tools (`policy:`). Not part of the serialized
    /// entry, which fingerprints what the server is built from: a policy change re-applies
    /// rules without refetching a spec or reconnecting a database.
    #[serde(skip_serializing)]
    pub policy: crate::policy::AccessConfig,
    /// The kind-specific settings.
    #[serde(flatten)]
    pub kind: ServerKind,
}

/// The kinds of server, by their `type:` value.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerKind {
    /// `type: openapi`: an OpenAPI/Swagger document turned into tools.
    Openapi(crate::openapi::OpenApiServerConfig),
    /// `type: rest`: hand-written REST tools (Higress YAML format).
    Rest(crate::rest::RestServerConfig),
    /// `type: database`: instance and SQL tools over a database.
    Database(crate::database::DatabaseServerConfig),
}

impl ServerKind {
    /// The `type:` value.
    pub fn type_name(&self) -> &'static str {
        match self {
            ServerKind::Openapi(_) => "openapi",
            ServerKind::Rest(_) => "rest",
            ServerKind::Database(_) => "database",
        }
    }
}

/// Whether `name` can be an HTTP header name.
pub fn valid_header_name(name: &str) -> bool {
    http::HeaderName::from_bytes(name.as_bytes()).is_ok()
}

/// Whether `name` can be a route name.
pub fn valid_server_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl Config {
    /// Reads, substitutes `${ENV}` references in, and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::new(path, None, format!("cannot read config: {e}")))?;
        Config::parse(&text, path)
    }

    /// Parses config text as if read from `path` (relative paths resolve against its folder).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut doc: Yaml = serde_yaml::from_str(text).map_err(|e| ConfigError::new(path, None, format!("invalid YAML: {e}")))?;
        if doc.is_null() {
            doc = Yaml::Mapping(Default::default());
        }
        // Before `${ENV}`: a misspelt key is the error to report, not a variable inside it.
        if let Yaml::Mapping(map) = &doc {
            keys::check(map, &Config::top_level_keys(), "top-level key", "").map_err(|m| ConfigError::new(path, None, m))?;
        }
        let mut from_env = Vec::new();
        env::substitute(&mut doc, &mut String::new(), &mut from_env).map_err(|(field, msg)| ConfigError::new(path, Some(format!("field `{field}`")), msg))?;
        let Yaml::Mapping(mut map) = doc else {
            return Err(ConfigError::new(path, None, "the config must be a YAML mapping"));
        };
        let servers = map.remove("servers").unwrap_or(Yaml::Null);
        let mut config: Config = serde_yaml::from_value(Yaml::Mapping(map)).map_err(|e| ConfigError::new(path, None, e.to_string()))?;
        config.path = path.to_path_buf();
        config.servers = parse_servers(servers, path)?;
        config.env_values = server_env_values(&config.servers, from_env);
        config.validate()?;
        Ok(config)
    }

    /// Every key the top level of a config file may have (`servers` is read apart from
    /// the derived struct, so serde's own list lacks it).
    fn top_level_keys() -> Vec<&'static str> {
        let mut known = keys::fields_of::<Config>().to_vec();
        known.push("servers");
        known
    }

    /// The folder relative paths in this config resolve against.
    pub fn base_dir(&self) -> &Path {
        self.path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or_else(|| Path::new("."))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let err = |ctx: &str, msg: String| ConfigError::new(&self.path, Some(ctx.to_string()), msg);
        if self.listen.is_empty() {
            return Err(err("field `listen`", "at least one address is required".into()));
        }
        for addr in &self.listen {
            addr.parse::<std::net::SocketAddr>().map_err(|e| err("field `listen`", format!("`{addr}` is not an address like 127.0.0.1:8080: {e}")))?;
        }
        if !self.admin.listen.is_empty() {
            self.admin.listen.parse::<std::net::SocketAddr>().map_err(|e| err("field `admin.listen`", format!("`{}`: {e}", self.admin.listen)))?;
        }
        if let Some(key) = self.session.key.as_deref().filter(|k| !k.trim().is_empty()) {
            crate::mcp::session::parse_key(key).map_err(|m| err("field `session.key`", m))?;
        }
        self.validate_session().map_err(|(field, m)| err(field, m))?;
        self.quotas.validate().map_err(|(field, m)| err(field, m))?;
        if self.limits.max_request_body.0 == 0 {
            return Err(err("field `limits.max_request_body`", "must be positive".into()));
        }
        self.connections.validate().map_err(|(field, m)| err(&format!("field `{field}`"), m))?;
        self.limits.check_sse().map_err(|(field, msg)| err(field, msg.into()))?;
        if self.upstream.mode == UpstreamMode::Proxy {
            return Err(err("field `upstream.mode`", "`proxy` is no longer supported: every tools/call now runs on the connector (the former default), so governance stages can run after the call; remove the key".into()));
        }
        let kinds: std::collections::BTreeMap<String, &'static str> = self.servers.iter().map(|s| (s.name.clone(), s.kind.type_name())).collect();
        crate::auth::config::validate(&self.auth, &self.consumers, &kinds).map_err(|(field, m)| err(&format!("field `{field}`"), m))?;
        self.validate_admin().map_err(|m| err("field `admin.token`", m))?;
        if let Some(p) = &self.pingora {
            let text = serde_yaml::to_string(p).unwrap_or_default();
            pingora::server::configuration::ServerConf::from_yaml(&format!("---\nversion: 1\n{text}")).map_err(|e| err("field `pingora`", format!("invalid Pingora server settings: {e}")))?;
        }
        Ok(())
    }
}

impl Config {
    /// An admin listener beyond loopback must require a token.
    fn validate_admin(&self) -> Result<(), String> {
        let token = self.admin.token.as_deref().filter(|t| !t.trim().is_empty());
        if let Some(t) = token {
            if t.starts_with(crate::auth::apikey::HASH_PREFIX) {
                crate::auth::apikey::parse_hash(t)?;
            } else if t.len() < 16 {
                return Err("an admin token must be at least 16 characters (try `mcpgate hash-key --generate`)".into());
            }
        }
        let loopback = self.admin.listen.is_empty() || self.admin.listen.parse::<std::net::SocketAddr>().is_ok_and(|a| a.ip().is_loopback());
        if !loopback && token.is_none() {
            return Err(format!("the admin listener on {} is reachable beyond this host: set admin.token (it shows your servers, consumers and policies)", self.admin.listen));
        }
        Ok(())
    }

    fn validate_session(&self) -> Result<(), (&'static str, String)> {
        let s = &self.session;
        if s.idle_ttl.0.is_zero() || s.ttl.0.is_zero() {
            return Err(("field `session`", "ttl and idle_ttl must be positive".into()));
        }
        if s.ttl.0.as_secs() > u64::from(u32::MAX / 2) {
            return Err(("field `session.ttl`", "must be under 60 years".into()));
        }
        if s.max_active == 0 || s.max_ended == 0 {
            return Err(("field `session`", "max_active and max_ended must be positive".into()));
        }
        if s.initialize_rate > 0 && s.initialize_burst < s.initialize_rate {
            return Err(("field `session.initialize_burst`", format!("must be at least initialize_rate ({})", s.initialize_rate)));
        }
        if let Some(url) = s.redis.as_deref().filter(|u| !u.trim().is_empty()) {
            redis::Client::open(url).map_err(|e| ("field `session.redis`", format!("not a Redis URL like redis://127.0.0.1:6379: {e}")))?;
        }
        Ok(())
    }
}

/// Groups `${ENV}` values found at `servers[i].field…` by server name (see
/// [`Config::env_values`]).
fn server_env_values(servers: &[ServerConfig], found: Vec<(String, String)>) -> std::collections::BTreeMap<String, Vec<String>> {
    const NOT_SECRET: [&str; 10] = ["name", "type", "description", "policy", "spec", "base_url", "file", "timeout", "connect_timeout", "max_response_bytes"];
    let mut out: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (field, value) in found {
        let Some((index, rest)) = field.strip_prefix("servers[").and_then(|r| r.split_once(']')) else { continue };
        let first = rest.trim_start_matches('.').split(['.', '[']).next().unwrap_or("");
        if let (Some(server), false) = (index.parse::<usize>().ok().and_then(|i| servers.get(i)), NOT_SECRET.contains(&first)) {
            out.entry(server.name.clone()).or_default().push(value);
        }
    }
    out
}

fn parse_servers(servers: Yaml, path: &Path) -> Result<Vec<ServerConfig>, ConfigError> {
    let list = match servers {
        Yaml::Null => return Ok(Vec::new()),
        Yaml::Sequence(list) => list,
        _ => return Err(ConfigError::new(path, Some("field `servers`".into()), "must be a list")),
    };
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(list.len());
    for (i, entry) in list.into_iter().enumerate() {
        let Yaml::Mapping(mut map) = entry else {
            return Err(ConfigError::new(path, Some(format!("servers[{i}]")), "each server must be a mapping with `name` and `type`"));
        };
        let name = match map.remove("name") {
            Some(Yaml::String(s)) => s,
            _ => return Err(ConfigError::new(path, Some(format!("servers[{i}]")), "missing field `name`")),
        };
        let ctx = |field: &str| Some(format!("server `{name}`{}", if field.is_empty() { String::new() } else { format!(", field `{field}`") }));
        if !valid_server_name(&name) {
            return Err(ConfigError::new(path, ctx("name"), "names are 1-64 characters of A-Z a-z 0-9 _ . -"));
        }
        if !seen.insert(name.clone()) {
            return Err(ConfigError::new(path, ctx("name"), "duplicate server name"));
        }
        let description = match map.remove("description") {
            None | Some(Yaml::Null) => None,
            Some(Yaml::String(s)) => Some(s),
            Some(_) => return Err(ConfigError::new(path, ctx("description"), "must be a string")),
        };
        // `policy:`, not `access:`: database servers' `access: read-only` predates it.
        let policy = match map.remove("policy") {
            None | Some(Yaml::Null) => crate::policy::AccessConfig::default(),
            Some(a) => {
                if let Yaml::Mapping(m) = &a {
                    keys::check(m, keys::fields_of::<crate::policy::AccessConfig>(), "key", " of `policy`").map_err(|m| ConfigError::new(path, ctx("policy"), m))?;
                }
                serde_yaml::from_value(a).map_err(|e| ConfigError::new(path, ctx("policy"), e.to_string()))?
            }
        };
        let kind = match map.remove("type") {
            Some(Yaml::String(s)) => s,
            _ => return Err(ConfigError::new(path, ctx("type"), "missing; one of: openapi, rest, database")),
        };
        let known = server_keys(&kind);
        if !known.is_empty() {
            keys::check(&map, &known, "key", &format!(" of a `type: {kind}` server")).map_err(|m| ConfigError::new(path, ctx(""), m))?;
        }
        let rest = Yaml::Mapping(map);
        let de_err = |e: serde_yaml::Error| ConfigError::new(path, ctx(""), e.to_string());
        let kind = match kind.as_str() {
            "openapi" => ServerKind::Openapi(serde_yaml::from_value(rest).map_err(de_err)?),
            "rest" => ServerKind::Rest(serde_yaml::from_value(rest).map_err(de_err)?),
            "database" => {
                let db: crate::database::DatabaseServerConfig = serde_yaml::from_value(rest).map_err(de_err)?;
                db.validate().map_err(|(field, message)| ConfigError::new(path, ctx(&field), message))?;
                ServerKind::Database(db)
            }
            other => return Err(ConfigError::new(path, ctx("type"), format!("unknown server type `{other}`; one of: openapi, rest, database"))),
        };
        out.push(ServerConfig { name, description, policy, kind });
    }
    Ok(out)
}

/// Every key a server entry of `kind` may have: the common ones, read apart, and its
/// module's (empty for an unknown kind, which is reported as such).
fn server_keys(kind: &str) -> Vec<&'static str> {
    let specific = match kind {
        "openapi" => keys::fields_of::<crate::openapi::OpenApiServerConfig>(),
        "rest" => keys::fields_of::<crate::rest::RestServerConfig>(),
        "database" => keys::fields_of::<crate::database::DatabaseServerConfig>(),
        _ => return Vec::new(),
    };
    ["name", "type", "description", "policy"].into_iter().chain(specific.iter().copied()).collect()
}

#[cfg(test)]
mod tests;
