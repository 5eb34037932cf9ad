//! The gateway as an OAuth 2 protected resource (RFC 9728): metadata per server at
//! `/.well-known/oauth-protected-resource/mcp/{server}`, named by the challenges of 401s.

use super::config::OAuthConfig;

/// The path prefix of protected resource metadata (RFC 9728 §3.1).
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// What `auth.oauth` says, ready to answer with.
pub struct ProtectedResource {
    base: String,
    config: OAuthConfig,
}

impl ProtectedResource {
    /// From validated config.
    pub fn new(config: &OAuthConfig) -> Self {
        ProtectedResource { base: config.resource_base.trim_end_matches('/').to_string(), config: config.clone() }
    }

    /// The resource URI of server `route`: `{resource_base}/mcp/{route}`.
    pub fn resource_uri(&self, route: &str) -> String {
        format!("{}/mcp/{route}", self.base)
    }

    /// Where the metadata of `route` is served.
    pub fn metadata_url(&self, route: &str) -> String {
        format!("{}/.well-known/oauth-protected-resource/mcp/{route}", self.base)
    }

    /// The metadata document of `route`, requiring `scopes`.
    pub fn metadata(&self, route: &str, scopes: &[String]) -> serde_json::Value {
        let mut supported = self.config.scopes_supported.clone();
        for s in scopes {
            if !supported.contains(s) {
                supported.push(s.clone());
            }
        }
        let mut doc = serde_json::json!({
            "resource": self.resource_uri(route),
            "authorization_servers": self.config.authorization_servers,
            "bearer_methods_supported": ["header"],
            "scopes_supported": supported,
        });
        if let Some(d) = &self.config.resource_documentation {
            doc["resource_documentation"] = serde_json::Value::String(d.clone());
        }
        doc
    }
}
