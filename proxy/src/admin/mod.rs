//! The admin listener: `/healthz`, `/readyz`, `/metrics`, and a read-only JSON API over
//! the servers being served (`/admin/servers`, `/admin/servers/{name}`, the latter with
//! ready client snippets: [`connect`]).

pub mod connect;

use std::sync::Arc;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;

use crate::config::Config;
use crate::gateway::GatewayState;
use crate::mcp::http::OriginPolicy;
use crate::runtime::{Route, Snapshot};

/// The admin HTTP app.
pub struct AdminApp {
    state: Arc<GatewayState>,
    /// Host/Origin policy until the first snapshot is served (then the snapshot's config
    /// decides, so a reload of `security:` applies here too).
    initial_policy: OriginPolicy,
    /// Client URLs and snippets for the MCP listener this process bound.
    connect: connect::ClientConnect,
    /// `admin.token` until the first snapshot is served (then the snapshot's).
    initial_token: Option<String>,
}

impl AdminApp {
    /// An admin app over the gateway's state, starting from the config read at start.
    pub fn new(state: Arc<GatewayState>, config: &Config) -> Self {
        AdminApp { state, initial_policy: OriginPolicy::admin(config), connect: connect::ClientConnect::new(&config.listen), initial_token: config.admin.token.clone() }
    }
}

fn reply(status: u16, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut r = Response::new(body);
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    let len = r.body().len();
    r.headers_mut().insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
    r
}

fn json_reply(status: u16, value: serde_json::Value) -> Response<Vec<u8>> {
    reply(status, "application/json", value.to_string().into_bytes())
}

fn route_summary(r: &Route) -> serde_json::Value {
    let mut v = json!({
        "name": r.name,
        "type": r.kind,
        "source": r.source,
        "description": r.description,
        "tools": r.catalog.len(),
        "endpoint": format!("/mcp/{}", r.name),
        "sse_endpoint": format!("/mcp/{}/sse", r.name),
    });
    if let Some(status) = r.server.status() {
        v["status"] = status;
    }
    v
}

/// `/readyz`: ready once a snapshot is served. Servers whose state limits what they
/// serve (a database account too privileged for `query`, a REST tool without the
/// credential it needs) are listed, and the gateway is still ready: everything else is
/// served.
fn readiness(s: &Snapshot) -> serde_json::Value {
    let mut routes: Vec<_> = s.routes.values().collect();
    routes.sort_by(|a, b| a.name.cmp(&b.name));
    let mut databases = serde_json::Map::new();
    let mut warnings = Vec::new();
    for r in routes.iter().filter(|r| r.name == r.source) {
        let Some(status) = r.server.status() else { continue };
        for w in status["warnings"].as_array().into_iter().flatten().filter_map(|w| w.as_str()) {
            warnings.push(format!("server `{}`: {w}", r.name));
        }
        let Some(database) = status.get("database") else { continue };
        for (source, st) in database.as_object().into_iter().flatten() {
            if st["free_sql"] == "refused" {
                warnings.push(format!(
                    "server `{}`: query/execute refused: the database account is {} ({})",
                    r.name,
                    st["account"].as_str().unwrap_or("?"),
                    st["privileges"].as_array().map(|p| p.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", ")).unwrap_or_default()
                ));
            } else if st["account"] == "privileged" {
                warnings.push(format!("server `{}` ({source}): the database account is privileged ({})", r.name, st["free_sql"].as_str().unwrap_or("")));
            }
        }
        databases.insert(r.name.clone(), database.clone());
    }
    json!({"status": "ready", "generation": s.generation, "servers": s.routes.len(), "databases": databases, "warnings": warnings})
}

/// Whether `headers` carry the admin token (`None`: no token is required). Compared as
/// SHA-256 digests in constant time, so neither the token's length nor its prefix leaks.
fn token_ok(token: Option<&str>, headers: &http::HeaderMap) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    let Some(token) = token.filter(|t| !t.trim().is_empty()) else { return true };
    let presented = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.split_once(' ')).filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer")).map(|(_, v)| v.trim());
    let Some(presented) = presented else { return false };
    let expected: [u8; 32] = match crate::auth::apikey::parse_hash(token) {
        Ok(d) => d,
        Err(_) => Sha256::digest(token.as_bytes()).into(),
    };
    let got: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    bool::from(got.ct_eq(&expected))
}

/// `/admin/consumers`: who may call and how, never a key, hash or secret (only how many
/// keys a consumer has, and which servers it has its own upstream credential for).
fn consumers(snapshot: &Snapshot) -> serde_json::Value {
    let c = &snapshot.config;
    let list: Vec<_> = c.consumers.iter().map(|k| json!({"name": k.name, "groups": k.groups, "api_keys": k.api_keys.len(), "jwt_subjects": k.jwt_subjects, "upstream_credentials": k.upstream.keys().collect::<Vec<_>>()})).collect();
    let issuers: Vec<_> = c
        .auth
        .jwt
        .iter()
        .map(|j| {
            let keys = if j.jwks_url.is_some() {
                "jwks_url"
            } else if j.jwks_file.is_some() {
                "jwks_file"
            } else {
                "secret"
            };
            json!({"name": j.name, "issuer": j.issuer, "audiences": j.audiences, "keys": keys, "jwks_url": j.jwks_url})
        })
        .collect();
    json!({
        "generation": snapshot.generation,
        "consumers": list,
        "auth": {"api_key": {"header": c.auth.api_key.header, "bearer": c.auth.api_key.bearer}, "jwt": issuers, "oauth": c.auth.oauth},
    })
}

/// `/admin/policies`: each server's `access:` (who may connect, per-tool rules, quotas)
/// and whether it is public.
fn policies(snapshot: &Snapshot) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for server in &snapshot.config.servers {
        let public = snapshot.route(&server.name).map(|r| r.access.public());
        out.insert(server.name.clone(), json!({"public": public, "policy": server.policy}));
    }
    json!({"generation": snapshot.generation, "servers": out, "quotas": {"backend": snapshot.config.quotas.backend, "on_error": snapshot.config.quotas.on_error}})
}

fn servers(snapshot: &Snapshot) -> serde_json::Value {
    let mut routes: Vec<_> = snapshot.routes.values().collect();
    routes.sort_by(|a, b| a.name.cmp(&b.name));
    json!({ "generation": snapshot.generation, "servers": routes.iter().map(|r| route_summary(r)).collect::<Vec<_>>() })
}

/// `/admin/servers/{name}`: the summary, the tools, and the client snippets (prebuilt JSON
/// text, written as it is).
#[derive(serde::Serialize)]
struct ServerDetail {
    #[serde(flatten)]
    summary: serde_json::Value,
    tool_list: serde_json::Value,
    connect: Arc<serde_json::value::RawValue>,
}

fn server_detail(route: &Route, connect: Arc<serde_json::value::RawValue>) -> Vec<u8> {
    let tool_list = json!(route.catalog.entries().iter().map(|e| json!({"name": e.def.name, "description": e.def.description})).collect::<Vec<_>>());
    serde_json::to_vec(&ServerDetail { summary: route_summary(route), tool_list, connect }).unwrap_or_default()
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let snapshot = self.state.snapshot.load_full();
        let allowed = match &snapshot {
            Some(s) => s.admin_origin.check(&session.req_header().headers),
            None => self.initial_policy.check(&session.req_header().headers),
        };
        if let Err(why) = allowed {
            return json_reply(403, json!({"error": format!("Forbidden: {why} (security.allowed_hosts / allowed_origins)")}));
        }
        if session.req_header().method != http::Method::GET {
            return json_reply(405, json!({"error": "the admin API is read-only: use GET"}));
        }
        let path = session.req_header().uri.path().to_string();
        let token = match &snapshot {
            Some(s) => s.config.admin.token.as_deref(),
            None => self.initial_token.as_deref(),
        };
        // Probes stay open; everything that describes the deployment needs the token.
        if !matches!(path.as_str(), "/healthz" | "/readyz") && !token_ok(token, &session.req_header().headers) {
            let mut r = json_reply(401, json!({"error": "Unauthorized: send the admin token as `Authorization: Bearer <admin.token>`"}));
            r.headers_mut().insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer realm=\"mcpgate-admin\""));
            return r;
        }
        match (path.as_str(), snapshot) {
            ("/healthz", _) => json_reply(200, json!({"status": "ok"})),
            ("/readyz", Some(s)) => json_reply(200, readiness(&s)),
            ("/readyz", None) => json_reply(503, json!({"status": "starting"})),
            ("/metrics", _) => reply(200, "text/plain; version=0.0.4", crate::metrics::render()),
            ("/admin/servers", Some(s)) => json_reply(200, servers(&s)),
            ("/admin/consumers", Some(s)) => json_reply(200, consumers(&s)),
            ("/admin/policies", Some(s)) => json_reply(200, policies(&s)),
            (p, Some(s)) if p.starts_with("/admin/servers/") => {
                let name = &p["/admin/servers/".len()..];
                match s.route(name) {
                    Some(r) => {
                        let host = session.req_header().headers.get(http::header::HOST).and_then(|h| h.to_str().ok());
                        reply(200, "application/json", server_detail(r, self.connect.for_route(&s, name, host)))
                    }
                    None => json_reply(404, json!({"error": format!("no server named `{name}`")})),
                }
            }
            (p, None) if p.starts_with("/admin/") => json_reply(503, json!({"error": "the gateway is starting"})),
            _ => json_reply(404, json!({"error": "not found", "endpoints": ["/healthz", "/readyz", "/metrics", "/admin/servers", "/admin/servers/{name}", "/admin/consumers", "/admin/policies"]})),
        }
    }
}
