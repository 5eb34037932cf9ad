//! Client authentication: who is calling, before anything else of a request is read.
//!
//! `dispatch` asks [`Authenticator::authenticate`] once per request on `/mcp/{server}`,
//! with the route's [`ServerAccess`]; the answer is a [`Principal`] (or none on a public
//! server called without a credential) or an [`AuthFailure`], answered 401/403 by
//! [`AuthFailure::status`] and [`AuthFailure::challenge`] without the body being read. Once
//! any credential can be checked, one that is presented is always checked, even on a
//! public server: a client with a wrong key hears so rather than silently losing its tools.
//!
//! Credentials: an API key (`auth.api_key.header`, default `x-api-key`, or `Authorization:
//! Bearer <key>`), or a JWT (`Authorization: Bearer <jwt>`, [`jwt`]). Consumers with keys
//! are built once per snapshot into a [`apikey::KeyIndex`], so a key check is a SHA-256
//! and a map lookup, and its principal an `Arc` clone.

pub mod apikey;
pub mod config;
pub mod jwt;
pub mod resource;
pub mod upstream;

pub use config::{AuthConfig, ConsumerConfig};

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::policy::ServerAccess;

/// How a principal proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// An API key of a configured consumer.
    ApiKey,
    /// A JWT from a configured issuer.
    Jwt,
}

impl Method {
    /// The config and log name (`api_key`, `jwt`).
    pub fn as_str(self) -> &'static str {
        match self {
            Method::ApiKey => "api_key",
            Method::Jwt => "jwt",
        }
    }
}

/// An authenticated caller.
#[derive(Debug)]
pub struct Principal {
    name: Arc<str>,
    /// Position of the configured consumer this caller is (`consumers:` order).
    consumer: Option<usize>,
    groups: Box<[Arc<str>]>,
    scopes: Box<[Box<str>]>,
    claims: Option<serde_json::Map<String, serde_json::Value>>,
    method: Method,
    /// Which issuer (`auth.jwt[].name`) vouched for a JWT caller.
    issuer: Option<Arc<str>>,
    binding: u64,
}

impl Principal {
    /// A configured consumer authenticated by API key.
    pub fn consumer(name: &str, groups: &[String], index: usize) -> Self {
        Principal { name: name.into(), consumer: Some(index), groups: groups.iter().map(|g| Arc::from(g.as_str())).collect(), scopes: Box::new([]), claims: None, method: Method::ApiKey, issuer: None, binding: binding_of(&["consumer", name]) }
    }

    /// A JWT caller: `name` from the subject claim, `consumer` when it is a configured one.
    pub fn from_jwt(issuer: &str, name: &str, consumer: Option<(usize, &[String])>, groups: Vec<String>, scopes: Vec<String>, claims: serde_json::Map<String, serde_json::Value>) -> Self {
        let mut all: Vec<Arc<str>> = consumer.map(|(_, g)| g.iter().map(|g| Arc::from(g.as_str())).collect()).unwrap_or_default();
        for g in groups {
            if !all.iter().any(|h| **h == *g) {
                all.push(g.into());
            }
        }
        let binding = match consumer {
            Some(_) => binding_of(&["consumer", name]),
            None => binding_of(&["jwt", issuer, name]),
        };
        Principal { name: name.into(), consumer: consumer.map(|(i, _)| i), groups: all.into(), scopes: scopes.into_iter().map(String::into_boxed_str).collect(), claims: Some(claims), method: Method::Jwt, issuer: Some(issuer.into()), binding }
    }

    /// The caller's name: the consumer's, or the JWT subject.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configured consumer this caller is, by position in `consumers:`.
    pub fn consumer_index(&self) -> Option<usize> {
        self.consumer
    }

    /// Whether the caller is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| &**g == group)
    }

    /// The caller's groups.
    pub fn groups(&self) -> &[Arc<str>] {
        &self.groups
    }

    /// Whether the caller's token carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| &**s == scope)
    }

    /// A JWT claim, for rules that match on claims.
    pub fn claim(&self, name: &str) -> Option<&serde_json::Value> {
        self.claims.as_ref()?.get(name)
    }

    /// How the caller authenticated.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The issuer (`auth.jwt[].name`) of a JWT caller.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// What a session token is bound to: the same caller presents the same value, whatever
    /// key or token it uses (a rotated key or a refreshed token keeps its sessions).
    pub fn binding(&self) -> u64 {
        self.binding
    }

    /// The `consumer` label of metrics: a configured consumer's name, or `jwt:{issuer}` for
    /// a JWT caller that is none, so callers never become unbounded labels.
    pub fn label(&self) -> &str {
        match (self.consumer, &self.issuer) {
            (Some(_), _) => &self.name,
            (None, Some(_)) => "jwt",
            (None, None) => &self.name,
        }
    }
}

/// JSON-RPC code of a request refused by authentication (401/403); implementation-defined
/// server error range.
pub const UNAUTHORIZED: i32 = -32001;

/// The session binding of an anonymous caller.
pub const ANONYMOUS: u64 = 0;

/// The session binding of an optional principal.
pub fn binding(principal: Option<&Principal>) -> u64 {
    principal.map_or(ANONYMOUS, Principal::binding)
}

fn binding_of(parts: &[&str]) -> u64 {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    // Never the anonymous value.
    u64::from_le_bytes(b) | 1
}

/// Why a request was refused before it reached anything.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// No credential on a server that requires one.
    #[error("authentication required: send an API key ({header} header or Authorization: Bearer) or an access token")]
    Missing {
        /// The API key header configured.
        header: String,
    },
    /// The credential is not shaped as any accepted kind.
    #[error("malformed credential: {0}")]
    Malformed(&'static str),
    /// An API key no consumer has.
    #[error("invalid API key")]
    UnknownKey,
    /// A JWT that failed verification (the reason says which check).
    #[error("invalid access token: {0}")]
    InvalidToken(jwt::TokenRejection),
    /// A credential kind this server does not accept.
    #[error("this server does not accept {0} credentials")]
    MethodNotAccepted(&'static str),
    /// Authenticated, but not among who may use this server.
    #[error("`{0}` may not use this server")]
    NotAllowed(String),
    /// The token lacks scopes this server requires.
    #[error("insufficient scope: this server requires {0}")]
    InsufficientScope(String),
}

impl AuthFailure {
    /// 401 (who are you?) or 403 (known, and refused).
    pub fn status(&self) -> u16 {
        match self {
            AuthFailure::NotAllowed(_) | AuthFailure::InsufficientScope(_) => 403,
            _ => 401,
        }
    }

    /// The `reason` label of `mcpgate_auth_failures_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthFailure::Missing { .. } => "missing",
            AuthFailure::Malformed(_) => "malformed",
            AuthFailure::UnknownKey => "unknown_key",
            AuthFailure::InvalidToken(r) => r.label(),
            AuthFailure::MethodNotAccepted(_) => "method_not_accepted",
            AuthFailure::NotAllowed(_) => "not_allowed",
            AuthFailure::InsufficientScope(_) => "insufficient_scope",
        }
    }

    /// The `WWW-Authenticate` value (RFC 6750 §3, with RFC 9728's `resource_metadata`
    /// when the gateway is an OAuth protected resource).
    pub fn challenge(&self, resource_metadata: Option<&str>, required_scopes: &[String]) -> String {
        let mut c = String::from("Bearer realm=\"mcpgate\"");
        if let Some(url) = resource_metadata {
            c.push_str(&format!(", resource_metadata=\"{url}\""));
        }
        if !required_scopes.is_empty() {
            c.push_str(&format!(", scope=\"{}\"", required_scopes.join(" ")));
        }
        let error = match self {
            AuthFailure::Missing { .. } => None,
            AuthFailure::InsufficientScope(_) => Some("insufficient_scope"),
            AuthFailure::Malformed(_) => Some("invalid_request"),
            _ => Some("invalid_token"),
        };
        if let Some(e) = error {
            // The description is ours and never holds a credential; quotes are kept out.
            c.push_str(&format!(", error=\"{e}\", error_description=\"{}\"", self.to_string().replace('"', "'")));
        }
        c
    }
}

/// Per-snapshot authentication state: the consumers' keys, the JWT issuers, the protected
/// resource metadata.
pub struct Authenticator {
    keys: apikey::KeyIndex,
    key_header: http::HeaderName,
    bearer_keys: bool,
    jwt: Option<jwt::Verifiers>,
    resource: Option<resource::ProtectedResource>,
    consumers: Vec<Arc<Principal>>,
    /// Whether any credential can be checked (consumers with keys, or issuers).
    configured: bool,
}

/// Why `auth:` or `consumers:` could not be built into an [`Authenticator`].
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct BuildError {
    /// The config field.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl Authenticator {
    /// Builds from validated config; `previous` lends its JWKS caches when the issuers did
    /// not change, so a reload neither refetches keys nor forgets good ones.
    pub async fn build(config: &crate::config::Config, previous: Option<&Authenticator>) -> Result<Self, BuildError> {
        let mut keys = apikey::KeyIndex::default();
        let mut consumers = Vec::with_capacity(config.consumers.len());
        for (i, c) in config.consumers.iter().enumerate() {
            let p = Arc::new(Principal::consumer(&c.name, &c.groups, i));
            for k in &c.api_keys {
                let digest = apikey::parse_hash(k).map_err(|m| BuildError { field: format!("consumers[{i}].api_keys"), message: m })?;
                keys.insert(digest, p.clone());
            }
            consumers.push(p);
        }
        let auth = &config.auth;
        let jwt = if auth.jwt.is_empty() { None } else { Some(jwt::Verifiers::build(&auth.jwt, &config.consumers, config.base_dir(), previous.and_then(|p| p.jwt.as_ref())).await?) };
        let resource = auth.oauth.as_ref().map(resource::ProtectedResource::new);
        let key_header = http::HeaderName::from_bytes(auth.api_key.header.as_bytes()).map_err(|_| BuildError { field: "auth.api_key.header".into(), message: "not a header name".into() })?;
        let configured = !keys.is_empty() || jwt.is_some();
        Ok(Authenticator { keys, key_header, bearer_keys: auth.api_key.bearer, jwt, resource, consumers, configured })
    }

    /// An authenticator that checks nothing (no `auth:`, no consumers).
    pub fn none() -> Self {
        Authenticator { keys: Default::default(), key_header: http::HeaderName::from_static("x-api-key"), bearer_keys: true, jwt: None, resource: None, consumers: Vec::new(), configured: false }
    }

    /// Whether any credential can be checked; servers are public by default when not.
    pub fn configured(&self) -> bool {
        self.configured
    }

    /// The protected resource metadata, when `auth.oauth` is set.
    pub fn resource(&self) -> Option<&resource::ProtectedResource> {
        self.resource.as_ref()
    }

    /// The configured consumers, in config order.
    pub fn consumers(&self) -> &[Arc<Principal>] {
        &self.consumers
    }

    /// The principal of a request to `route` whose access is `access`: `Ok(None)` for an
    /// anonymous call to a public server.
    pub async fn authenticate(&self, headers: &http::HeaderMap, route: &str, access: &ServerAccess) -> Result<Option<Arc<Principal>>, AuthFailure> {
        // A gateway that checks no credential ignores them: a client's own `Authorization`
        // (meant for something else) must not make an open gateway refuse it.
        if !self.configured {
            return Ok(None);
        }
        let principal = match self.credential(headers)? {
            None if access.public() => return Ok(None),
            None => return Err(AuthFailure::Missing { header: self.key_header.as_str().to_string() }),
            Some(Credential::Key(key)) => self.keys.find(key).cloned().ok_or(AuthFailure::UnknownKey)?,
            Some(Credential::Jwt(token)) => {
                let verifiers = self.jwt.as_ref().ok_or(AuthFailure::Malformed("a JWT was sent but no JWT issuer is configured"))?;
                let resource = self.resource.as_ref().map(|r| r.resource_uri(route));
                verifiers.verify(token, resource.as_deref()).await.map_err(AuthFailure::InvalidToken)?
            }
        };
        access.admit(&principal)?;
        Ok(Some(principal))
    }

    /// The credential a request carries, if any.
    fn credential<'h>(&self, headers: &'h http::HeaderMap) -> Result<Option<Credential<'h>>, AuthFailure> {
        if let Some(v) = headers.get(&self.key_header) {
            return Ok(Some(Credential::Key(v.as_bytes())));
        }
        let Some(v) = headers.get(http::header::AUTHORIZATION) else {
            return Ok(None);
        };
        let v = v.to_str().map_err(|_| AuthFailure::Malformed("the Authorization header is not ASCII"))?;
        let Some((scheme, value)) = v.split_once(' ') else {
            return Err(AuthFailure::Malformed("the Authorization header must be `Bearer <credential>`"));
        };
        if !scheme.eq_ignore_ascii_case("bearer") || value.trim().is_empty() {
            return Err(AuthFailure::Malformed("the Authorization header must be `Bearer <credential>`"));
        }
        let value = value.trim();
        if self.jwt.is_some() && jwt::looks_like_jwt(value) {
            return Ok(Some(Credential::Jwt(value)));
        }
        if self.bearer_keys {
            return Ok(Some(Credential::Key(value.as_bytes())));
        }
        Err(AuthFailure::Malformed("the bearer credential is not a JWT (auth.api_key.bearer is off)"))
    }
}

/// A credential as presented.
enum Credential<'h> {
    Key(&'h [u8]),
    Jwt(&'h str),
}
