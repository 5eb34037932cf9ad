//! The `auth:` and `consumers:` sections of the config: who may call, and how a caller
//! proves it. Plain `serde` structs, validated once at load by [`validate`].

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::config::Dur;

/// How callers authenticate (`auth:`). Nothing here means no credential is checked, and
/// servers are public unless they say otherwise.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// API keys of the `consumers:` (on when any consumer has a key).
    #[serde(default)]
    pub api_key: ApiKeyConfig,
    /// JWT issuers whose tokens are accepted (`Authorization: Bearer <jwt>`).
    #[serde(default)]
    pub jwt: Vec<JwtProviderConfig>,
    /// The MCP authorization spec's protected resource (RFC 9728): metadata per server and
    /// `WWW-Authenticate` challenges that name it. Needs `jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthConfig>,
}

/// Where API keys are read from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Header carrying the key (default `x-api-key`), besides `Authorization: Bearer`.
    #[serde(default = "default_key_header")]
    pub header: String,
    /// Also accept the key as `Authorization: Bearer <key>` (default true).
    #[serde(default = "yes")]
    pub bearer: bool,
}

fn default_key_header() -> String {
    "x-api-key".into()
}
fn yes() -> bool {
    true
}

impl Default for ApiKeyConfig {
    fn default() -> Self {
        ApiKeyConfig { header: default_key_header(), bearer: true }
    }
}

/// One JWT issuer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtProviderConfig {
    /// A short name for logs and metrics (`keycloak`).
    pub name: String,
    /// The exact `iss` its tokens carry.
    pub issuer: String,
    /// Accepted `aud` values (any one suffices). With `auth.oauth` the server's resource URI
    /// is accepted too, and required when this is empty (RFC 8707).
    #[serde(default)]
    pub audiences: Vec<String>,
    /// JWKS URL, fetched at load and refreshed in the background.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// JWKS file (relative to the config file), read at load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_file: Option<String>,
    /// Shared secret for HS256 tokens.
    #[serde(default, skip_serializing)]
    pub secret: Option<String>,
    /// Accepted algorithms (default RS256, ES256, EdDSA; HS256 when `secret` is set).
    #[serde(default)]
    pub algorithms: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf` (default 30s).
    #[serde(default = "default_leeway")]
    pub leeway: Dur,
    /// How often the JWKS URL is fetched again (default 10m); an unknown `kid` fetches at
    /// once, at most every 30s.
    #[serde(default = "default_refresh")]
    pub refresh: Dur,
    /// Claim naming the caller (default `sub`). A value equal to a consumer's name or one of
    /// its `jwt_subjects` makes the caller that consumer.
    #[serde(default = "default_subject_claim")]
    pub subject_claim: String,
    /// Claim listing the caller's groups (default `groups`; an array or a space-separated
    /// string).
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Claim listing the token's scopes (default `scope`; `scp` is read too).
    #[serde(default = "default_scopes_claim")]
    pub scopes_claim: String,
}

fn default_leeway() -> Dur {
    Dur(std::time::Duration::from_secs(30))
}
fn default_refresh() -> Dur {
    Dur(std::time::Duration::from_secs(600))
}
fn default_subject_claim() -> String {
    "sub".into()
}
fn default_groups_claim() -> String {
    "groups".into()
}
fn default_scopes_claim() -> String {
    "scope".into()
}

/// The gateway as an OAuth 2 protected resource (MCP authorization, RFC 9728).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    /// The public origin clients reach the MCP listener at (`https://mcp.example.com`); a
    /// server's resource URI is `{resource_base}/mcp/{server}`.
    pub resource_base: String,
    /// Authorization servers (issuer URLs) that issue tokens for these resources.
    pub authorization_servers: Vec<String>,
    /// Scopes advertised in `scopes_supported` (each server adds the ones it requires).
    #[serde(default)]
    pub scopes_supported: Vec<String>,
    /// A page describing the resource, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_documentation: Option<String>,
}

/// A named caller (`consumers:`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerConfig {
    /// The caller's name, as rules, quotas, metrics and the access log name it.
    pub name: String,
    /// Groups the caller belongs to, for rules.
    #[serde(default)]
    pub groups: Vec<String>,
    /// API key hashes (`sha256:<64 hex>`, from `mcpgate hash-key`); several for rotation.
    #[serde(default, skip_serializing)]
    pub api_keys: Vec<String>,
    /// JWT subjects (`sub`, or the issuer's `subject_claim`) that are this caller.
    #[serde(default)]
    pub jwt_subjects: Vec<String>,
    /// This caller's own upstream credential per OpenAPI/REST server, used instead of the
    /// server-wide one: `{server: {headers: {Name: value}}}`.
    #[serde(default, skip_serializing)]
    pub upstream: BTreeMap<String, UpstreamCredential>,
}

/// A consumer's credential for one upstream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamCredential {
    /// Headers set on this consumer's calls (replacing any of the same name).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// A consumer or key problem found at load: the field and what is wrong.
pub type Invalid = (String, String);

/// Checks `auth:` and `consumers:` against each other and the servers (`server_kinds`:
/// name → `type:`).
pub fn validate(auth: &AuthConfig, consumers: &[ConsumerConfig], server_kinds: &BTreeMap<String, &'static str>) -> Result<(), Invalid> {
    let field = |f: String, m: String| Err((f, m));
    if !crate::config::valid_header_name(&auth.api_key.header) {
        return field("auth.api_key.header".into(), format!("`{}` is not a header name", auth.api_key.header));
    }
    let mut names = HashSet::new();
    let mut keys = HashSet::new();
    for (i, c) in consumers.iter().enumerate() {
        let at = |f: &str| format!("consumers[{i}] (`{}`).{f}", c.name);
        if !crate::config::valid_server_name(&c.name) {
            return field(format!("consumers[{i}].name"), "names are 1-64 characters of A-Z a-z 0-9 _ . -".into());
        }
        if !names.insert(c.name.as_str()) {
            return field(at("name"), "duplicate consumer name".into());
        }
        for k in &c.api_keys {
            let digest = super::apikey::parse_hash(k).map_err(|m| (at("api_keys"), m))?;
            if !keys.insert(digest) {
                return field(at("api_keys"), "this key hash is already listed (each key names one consumer)".into());
            }
        }
        for (server, cred) in &c.upstream {
            match server_kinds.get(server) {
                None => return field(at("upstream"), format!("no server named `{server}`")),
                Some(kind) if !matches!(*kind, "openapi" | "rest") => return field(at("upstream"), format!("server `{server}` is a `{kind}` server; per-consumer upstream credentials apply to openapi and rest servers")),
                Some(_) => {}
            }
            for (name, value) in &cred.headers {
                if !crate::config::valid_header_name(name) || http::HeaderValue::from_str(value).is_err() {
                    return field(at(&format!("upstream.{server}.headers")), format!("`{name}` is not a valid header"));
                }
            }
        }
    }
    let mut issuers = HashSet::new();
    for (i, j) in auth.jwt.iter().enumerate() {
        let at = |f: &str| format!("auth.jwt[{i}].{f}");
        if !issuers.insert(j.name.as_str()) || j.name.is_empty() {
            return field(at("name"), "each issuer needs a unique, non-empty name".into());
        }
        let sources = usize::from(j.jwks_url.is_some()) + usize::from(j.jwks_file.is_some()) + usize::from(j.secret.as_deref().is_some_and(|s| !s.is_empty()));
        if sources != 1 {
            return field(at("jwks_url"), "set exactly one of jwks_url, jwks_file, secret".into());
        }
        super::jwt::check_algorithms(j).map_err(|m| (at("algorithms"), m))?;
    }
    if let Some(o) = &auth.oauth {
        if auth.jwt.is_empty() {
            return field("auth.oauth".into(), "an OAuth protected resource validates JWT access tokens: configure auth.jwt for its authorization server".into());
        }
        let base = url::Url::parse(&o.resource_base).map_err(|e| ("auth.oauth.resource_base".to_string(), format!("not a URL like https://mcp.example.com: {e}")))?;
        if base.path() != "/" || base.query().is_some() {
            return field("auth.oauth.resource_base".into(), "an origin only (scheme, host, port), without a path".into());
        }
        if o.authorization_servers.is_empty() {
            return field("auth.oauth.authorization_servers".into(), "name at least one authorization server (its issuer URL)".into());
        }
    }
    Ok(())
}
