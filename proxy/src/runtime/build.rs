//! Building a [`Snapshot`] from a config.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::value::RawValue;
use thiserror::Error;

use crate::config::{Config, ServerConfig, ServerKind, UpstreamDefaults};
use crate::mcp::http::OriginPolicy;
use crate::mcp::session::SessionManager;
use crate::tools::{Catalog, ToolServer};

/// A server that failed to build, named.
#[derive(Debug, Error)]
#[error("{file}: server `{server}`: {message}")]
pub struct BuildError {
    /// The config file.
    pub file: String,
    /// The server.
    pub server: String,
    /// What went wrong.
    pub message: String,
    /// The URL of a document the server needs and could not fetch, when that is why it
    /// failed (`mcpgate --test` then says that it fetches URL specs).
    pub unfetched: Option<String>,
}

/// Why one config entry did not build.
struct Failure {
    message: String,
    unfetched: Option<String>,
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure { message, unfetched: None }
    }
}

/// What a server-kind module hands to the snapshot builder.
pub struct BuiltRoute {
    /// Route name (`/mcp/{name}`).
    pub name: String,
    /// Shown in listings.
    pub description: Option<String>,
    /// The server.
    pub server: Arc<dyn ToolServer>,
}

/// Inputs a server-kind module may use while building.
pub struct BuildContext<'a> {
    /// The folder relative paths resolve against.
    pub base_dir: &'a Path,
    /// Upstream defaults from the config.
    pub upstream: &'a UpstreamDefaults,
    /// The snapshot being replaced, if any (to reuse pools of unchanged sources).
    pub previous: Option<&'a Snapshot>,
    /// `${ENV}` values in each server's entry, by server name (secrets to scrub).
    pub env_values: &'a std::collections::BTreeMap<String, Vec<String>>,
}

/// One served route: a server with its prepared catalog and prebuilt `tools/list` pages.
pub struct Route {
    /// Route name.
    pub name: String,
    /// `type:` of the config entry that produced it.
    pub kind: &'static str,
    /// Config entry name that produced it (a database entry may produce several routes).
    pub source: String,
    /// Shown in listings.
    pub description: Option<String>,
    /// The server.
    pub server: Arc<dyn ToolServer>,
    /// Tools with compiled validators.
    pub catalog: Catalog,
    /// `tools/list` results, one per page, for protocol >= 2025-06-18.
    pub pages: Vec<Box<RawValue>>,
    /// The same pages without the fields older protocol versions do not define.
    pub legacy_pages: Vec<Box<RawValue>>,
    /// Serialized config entry, to tell whether a reload changed this route.
    pub fingerprint: String,
    /// Metric handles of this route and its tools.
    pub metrics: crate::metrics::RouteMetrics,
    /// Who may use the route and which tools; its limits.
    pub access: crate::policy::ServerAccess,
    /// Per-caller `tools/list` pages when `access` has rules.
    pub views: super::views::Views,
    /// Consumers' own upstream credentials for this route.
    pub credentials: crate::auth::upstream::ConsumerCredentials,
}

/// Everything a request needs, immutable.
pub struct Snapshot {
    /// The config this was built from.
    pub config: Arc<Config>,
    /// Routes by name.
    /// By name (foldhash: the map holds only configured names, so no request can flood it).
    pub routes: HashMap<String, Arc<Route>, foldhash::fast::RandomState>,
    /// Increments on every successful reload.
    pub generation: u64,
    /// Session tokens and local session state (kept across reloads while `session:` is
    /// unchanged).
    pub sessions: Arc<SessionManager>,
    /// Origin/Host acceptance on the MCP listener.
    pub origin: OriginPolicy,
    /// Origin/Host acceptance on the admin listener.
    pub admin_origin: OriginPolicy,
    /// Callers' credentials: consumers' keys, JWT issuers, protected resource metadata.
    pub auth: Arc<crate::auth::Authenticator>,
    /// Rate-limit and quota counters (kept across reloads while `quotas:` is unchanged).
    pub quota_store: Arc<crate::policy::quota::QuotaStore>,
}

/// `tools/list` page size.
pub const PAGE_SIZE: usize = 100;

impl Snapshot {
    /// A route by name.
    pub fn route(&self, name: &str) -> Option<&Arc<Route>> {
        self.routes.get(name)
    }

    /// The route built from the same config entry, if that entry is unchanged.
    pub fn unchanged_route(&self, name: &str, fingerprint: &str) -> Option<&Arc<Route>> {
        self.routes.get(name).filter(|r| r.fingerprint == fingerprint)
    }
}

/// How many servers build at once: spec downloads, DNS lookups and database checks
/// overlap, so one slow server does not add its time to every other's.
const PARALLEL_BUILDS: usize = 16;

/// Builds a snapshot; any server that fails to build fails the whole snapshot, so an
/// invalid config never replaces a valid one. Servers build concurrently; the error
/// reported is the first failing server's in config order, whatever finished first.
pub async fn build_snapshot(config: Arc<Config>, previous: Option<&Snapshot>) -> Result<Snapshot, BuildError> {
    use futures::StreamExt;
    let cx = BuildContext { base_dir: config.base_dir(), upstream: &config.upstream, previous, env_values: &config.env_values };
    let cx = &cx;
    let auth = match previous {
        Some(p) if p.config.auth == config.auth && p.config.consumers == config.consumers => p.auth.clone(),
        _ => Arc::new(crate::auth::Authenticator::build(&config, previous.map(|p| &*p.auth)).await.map_err(|e| BuildError { file: config.path.display().to_string(), server: "(auth)".into(), message: e.to_string(), unfetched: None })?),
    };
    let quota_store = match previous {
        Some(p) if p.config.quotas == config.quotas => p.quota_store.clone(),
        _ => crate::policy::quota::QuotaStore::new(&config.quotas, previous.map(|p| &p.quota_store)),
    };
    if previous.is_none() && !auth.configured() && config.listen.iter().any(|l| !listens_on_loopback(l)) {
        log::warn!("no consumers or JWT issuers are configured and the MCP listener is reachable beyond this host: every tool is callable by anyone who can connect (docs/GOVERNANCE.md)");
    }
    let policy = Policy { auth_configured: auth.configured(), consumers: &config.consumers, quota_store: &quota_store };
    let mut routes = HashMap::with_hasher(foldhash::fast::RandomState::default());
    // `buffered` yields in config order; leaving at the first error drops (cancels) the
    // builds still running. The futures are collected first: a closure inside the
    // stream's type defeats the `Send` proof the reloader's future needs.
    let database_turn = tokio::sync::Mutex::new(());
    let pending: Vec<_> = config.servers.iter().map(|server| build_entry(server, cx, &database_turn)).collect();
    let mut builds = futures::stream::iter(pending).buffered(PARALLEL_BUILDS);
    while let Some((server, fingerprint, built)) = builds.next().await {
        let err = |f: Failure| BuildError { file: config.path.display().to_string(), server: server.name.clone(), message: f.message, unfetched: f.unfetched };
        for b in built.map_err(err)? {
            if routes.contains_key(&b.name) {
                return Err(err(format!("route `{}` is defined twice", b.name).into()));
            }
            let route = prepare_route(b, server, &fingerprint, &policy).map_err(|m| err(m.into()))?;
            routes.insert(route.name.clone(), Arc::new(route));
        }
    }
    drop(builds);
    let generation = previous.map_or(1, |p| p.generation + 1);
    let sessions = match previous {
        Some(p) if p.config.session == config.session => p.sessions.clone(),
        _ => Arc::new(session_manager(&config, previous.map(|p| &*p.sessions))),
    };
    let (origin, admin_origin) = (OriginPolicy::new(&config), OriginPolicy::admin(&config));
    Ok(Snapshot { config, routes, generation, sessions, origin, admin_origin, auth, quota_store })
}

/// One config entry built (or reused), with its fingerprint. Database entries take turns
/// (`database_turn`, FIFO, so in config order), as they did before builds overlapped:
/// entries may share one SQLite file that the first one seeds.
async fn build_entry<'a>(server: &'a ServerConfig, cx: &BuildContext<'_>, database_turn: &tokio::sync::Mutex<()>) -> (&'a ServerConfig, String, Result<Vec<BuiltRoute>, Failure>) {
    let _turn = match &server.kind {
        ServerKind::Database(_) => Some(database_turn.lock().await),
        _ => None,
    };
    let fingerprint = fingerprint(server, cx.base_dir).await;
    if let ServerKind::Database(d) = &server.kind {
        crate::database::warn_at_load(&server.name, d);
    }
    let built = match reusable_routes(server, cx, &fingerprint) {
        Some(reused) => Ok(reused),
        None => build_server(server, cx).await,
    };
    (server, fingerprint, built)
}

/// What decides whether a reload may keep a server's routes: its config entry and, for a
/// database server with a Toolbox file, that file as expanded (an edited file, or a
/// changed variable in it, builds the server anew). A file that cannot be read changes
/// the fingerprint too, so the build reports it.
async fn fingerprint(server: &ServerConfig, base_dir: &Path) -> String {
    let mut f = serde_json::to_string(server).unwrap_or_default();
    if let ServerKind::Database(crate::database::DatabaseServerConfig { tools_file: Some(file), .. }) = &server.kind {
        let text = tokio::fs::read_to_string(base_dir.join(file)).await.map_err(|e| e.to_string()).and_then(|t| crate::database::toolbox::substitute(&t));
        let text = text.unwrap_or_else(|e| format!("unreadable: {e}"));
        f.push_str(&format!("\ntools_file:{:016x}", crate::database::fingerprint(&text)));
    }
    f
}

/// A changed `session:` builds a new manager that keeps the previous one's local state
/// while the key is the same (docs/SESSIONS.md).
fn session_manager(config: &Config, previous: Option<&SessionManager>) -> SessionManager {
    // The key and the Redis URL were validated at load; unusable ones cannot reach here.
    let key = config.session.key.as_deref().and_then(|k| crate::mcp::session::parse_key(k).ok());
    if key.is_none() && previous.is_none() {
        log::warn!("session.key is not set: using an ephemeral key; sessions will not survive a restart or be accepted by other gateways");
    }
    let mut manager = SessionManager::new(key, (&config.session).into(), previous);
    if let Some(url) = config.session.redis.as_deref().filter(|u| !u.trim().is_empty()) {
        if let Err(e) = manager.add_redis(url, previous) {
            log::error!("session.redis: {e}; ended sessions are known to this gateway only");
        }
    }
    manager
}

/// Database entries whose config did not change keep their routes (and so their pools)
/// across a reload; everything else is rebuilt so that edited spec files are re-read.
fn reusable_routes(server: &ServerConfig, cx: &BuildContext<'_>, fingerprint: &str) -> Option<Vec<BuiltRoute>> {
    if !matches!(server.kind, ServerKind::Database(_)) {
        return None;
    }
    let previous = cx.previous?;
    let reused: Vec<BuiltRoute> = previous.routes.values().filter(|r| r.source == server.name && r.fingerprint == fingerprint).map(|r| BuiltRoute { name: r.name.clone(), description: r.description.clone(), server: r.server.clone() }).collect();
    (!reused.is_empty()).then_some(reused)
}

async fn build_server(server: &ServerConfig, cx: &BuildContext<'_>) -> Result<Vec<BuiltRoute>, Failure> {
    match &server.kind {
        ServerKind::Openapi(c) => crate::openapi::build(&server.name, c, cx).await.map_err(|e| Failure { unfetched: e.unfetched_url().map(str::to_owned), message: e.to_string() }),
        ServerKind::Rest(c) => crate::rest::build(&server.name, c, cx).await.map_err(|e| e.to_string().into()),
        ServerKind::Database(c) => crate::database::build(&server.name, c, cx).await.map_err(|e| e.to_string().into()),
    }
    .map(|mut routes| {
        // The configured description describes the entry: it wins over what the module
        // found (an OpenAPI document's title) on the entry's own route, and fills in for
        // routes the module left undescribed (a database's toolsets say which they are).
        for r in &mut routes {
            if server.description.is_some() && (r.name == server.name || r.description.is_none()) {
                r.description = server.description.clone();
            }
        }
        routes
    })
}

fn listens_on_loopback(listen: &str) -> bool {
    listen.parse::<std::net::SocketAddr>().is_ok_and(|a| a.ip().is_loopback())
}

/// What every route's `policy:` is compiled with.
struct Policy<'a> {
    auth_configured: bool,
    consumers: &'a [crate::auth::ConsumerConfig],
    quota_store: &'a Arc<crate::policy::quota::QuotaStore>,
}

fn prepare_route(b: BuiltRoute, server: &ServerConfig, fingerprint: &str, policy: &Policy<'_>) -> Result<Route, String> {
    let defs = b.server.tools();
    let catalog = Catalog::new(defs).map_err(|e| e.to_string())?;
    let (pages, legacy_pages) = build_pages(defs).map_err(|e| e.to_string())?;
    let access = crate::policy::ServerAccess::build(&server.policy, defs, policy.auth_configured, policy.consumers, policy.quota_store, &b.name, b.name == server.name)?;
    let views = if access.has_rules() { super::views::Views::new(defs).map_err(|e| e.to_string())? } else { super::views::Views::default() };
    Ok(Route {
        access,
        views,
        credentials: crate::auth::upstream::ConsumerCredentials::build(&b.name, policy.consumers),
        metrics: crate::metrics::RouteMetrics::new(&b.name, catalog.len()),
        // The configured description describes the entry: it wins over what the module
        // found (an OpenAPI document's title) on the entry's own route, and fills in for
        // routes the module left undescribed (a database's toolsets say which they are).
        name: b.name,
        kind: server.kind.type_name(),
        source: server.name.clone(),
        description: b.description,
        server: b.server,
        catalog,
        pages,
        legacy_pages,
        fingerprint: fingerprint.to_string(),
    })
}

/// `tools/list` result pages: in the current shape, and without the fields older protocol
/// versions do not define.
type Pages = (Vec<Box<RawValue>>, Vec<Box<RawValue>>);

/// Serializes `tools/list` results once, per page, in both shapes.
pub(super) fn build_pages(defs: &[crate::tools::ToolDef]) -> Result<Pages, serde_json::Error> {
    let chunks: Vec<_> = if defs.is_empty() { vec![&defs[..0]] } else { defs.chunks(PAGE_SIZE).collect() };
    let mut modern = Vec::with_capacity(chunks.len());
    let mut legacy = Vec::with_capacity(chunks.len());
    for (i, chunk) in chunks.iter().enumerate() {
        let next = (i + 1 < chunks.len()).then(|| crate::mcp::cursor::encode((i + 1) * PAGE_SIZE));
        let mut tools: Vec<serde_json::Value> = chunk.iter().map(serde_json::to_value).collect::<Result<_, _>>()?;
        modern.push(page_json(&tools, next.as_deref())?);
        tools.iter_mut().for_each(to_legacy_shape);
        legacy.push(page_json(&tools, next.as_deref())?);
    }
    Ok((modern, legacy))
}

/// A tool definition as clients before 2025-06-18 know it: without `title` and
/// `outputSchema` (their schemas reject unknown members).
pub(super) fn to_legacy_shape(tool: &mut serde_json::Value) {
    if let Some(obj) = tool.as_object_mut() {
        obj.remove("outputSchema");
        obj.remove("title");
    }
}

pub(super) fn page_json(tools: &[serde_json::Value], next: Option<&str>) -> Result<Box<RawValue>, serde_json::Error> {
    let mut obj = serde_json::Map::new();
    obj.insert("tools".into(), serde_json::Value::Array(tools.to_vec()));
    if let Some(n) = next {
        obj.insert("nextCursor".into(), n.into());
    }
    RawValue::from_string(serde_json::to_string(&obj)?)
}
