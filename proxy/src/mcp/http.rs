//! HTTP-level rules of the MCP transports that do not depend on the server behind the
//! route: `Accept`, `Content-Type`, `Origin`/`Host` (DNS-rebinding protection), and the
//! `MCP-Protocol-Version` and `Mcp-Session-Id` headers.

use std::collections::HashSet;

use http::HeaderMap;

use super::version::ProtocolVersion;
use crate::config::Config;

/// The session header (case-insensitive on the wire).
pub const SESSION_HEADER: &str = "mcp-session-id";
/// The protocol version header.
pub const VERSION_HEADER: &str = "mcp-protocol-version";

// As `HeaderName`s built at compile time: a lookup by `&str` parses the name again on
// every request.
const SESSION_NAME: http::HeaderName = http::HeaderName::from_static(SESSION_HEADER);
const VERSION_NAME: http::HeaderName = http::HeaderName::from_static(VERSION_HEADER);

/// Origin and Host acceptance, built once per snapshot.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    any_origin: bool,
    origins: HashSet<String>,
    hosts: HashSet<String>,
    loopback_listener: bool,
}

fn is_loopback_host(host: &str) -> bool {
    let name = strip_port(host);
    name.eq_ignore_ascii_case("localhost") || name == "127.0.0.1" || name == "[::1]"
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

/// The host of a `Host` header value, without its port (`[::1]:80` → `[::1]`).
pub fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.find(']').map_or(host, |i| &host[..i + 2]);
    }
    host.rsplit_once(':').filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit())).map_or(host, |(h, _)| h)
}

impl OriginPolicy {
    /// Builds the MCP listener's policy from the config.
    pub fn new(config: &Config) -> Self {
        Self::for_addresses(config, &config.listen)
    }

    /// The admin listener's policy: the same allowed hosts and origins, judged against
    /// the admin address, so a DNS-rebinding page cannot read `/metrics` either.
    pub fn admin(config: &Config) -> Self {
        Self::for_addresses(config, std::slice::from_ref(&config.admin.listen))
    }

    fn for_addresses(config: &Config, listen: &[String]) -> Self {
        let loopback_listener = listen.iter().all(|a| a.parse::<std::net::SocketAddr>().is_ok_and(|s| s.ip().is_loopback()));
        OriginPolicy {
            any_origin: config.security.allowed_origins.iter().any(|o| o == "*"),
            origins: config.security.allowed_origins.iter().map(|o| o.trim_end_matches('/').to_ascii_lowercase()).collect(),
            hosts: config.security.allowed_hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
            loopback_listener,
        }
    }

    /// Checks `Host` and `Origin`; the error names what was refused.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), String> {
        if let Some(host) = headers.get(http::header::HOST) {
            let host = host.to_str().map_err(|_| "Invalid Host header".to_string())?;
            if !self.host_ok(host) {
                return Err(format!("Invalid Host: {host}"));
            }
        }
        if let Some(origin) = headers.get(http::header::ORIGIN) {
            let origin = origin.to_str().map_err(|_| "Invalid Origin header".to_string())?;
            if !self.origin_ok(origin) {
                return Err(format!("Invalid Origin: {origin}"));
            }
        }
        Ok(())
    }

    /// Whether a request with this `Host` header value passes the Host check.
    pub fn host_ok(&self, host: &str) -> bool {
        // Most deployments list no hosts: then no lowercased copy is needed.
        if !self.hosts.is_empty() {
            let lower = host.to_ascii_lowercase();
            if self.hosts.contains(&lower) || self.hosts.contains(strip_port(&lower)) {
                return true;
            }
        }
        if self.loopback_listener {
            is_loopback_host(host)
        } else {
            self.hosts.is_empty()
        }
    }

    fn origin_ok(&self, origin: &str) -> bool {
        if self.any_origin {
            return true;
        }
        let trimmed = origin.trim_end_matches('/');
        if !self.origins.is_empty() && self.origins.contains(&trimmed.to_ascii_lowercase()) {
            return true;
        }
        let host = strip_prefix_ignore_case(trimmed, "http://").or_else(|| strip_prefix_ignore_case(trimmed, "https://"));
        host.is_some_and(|h| !h.contains('/') && is_loopback_host(h))
    }
}

fn header_str(headers: &HeaderMap, name: impl http::header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether a POST's `Accept` lists both `application/json` and `text/event-stream`
/// (wildcards count).
pub fn accepts_post(headers: &HeaderMap) -> bool {
    let (mut json, mut sse) = (false, false);
    for value in headers.get_all(http::header::ACCEPT) {
        let Ok(v) = value.to_str() else { continue };
        for item in v.split(',') {
            let media = item.split(';').next().unwrap_or("").trim();
            let is = |m: &str| media.eq_ignore_ascii_case(m);
            if is("*/*") {
                (json, sse) = (true, true);
            } else if is("application/json") || is("application/*") {
                json = true;
            } else if is("text/event-stream") || is("text/*") {
                sse = true;
            }
        }
    }
    json && sse
}

/// Whether a GET's `Accept` allows `text/event-stream` (an absent header allows it).
pub fn accepts_sse(headers: &HeaderMap) -> bool {
    let mut any = false;
    for value in headers.get_all(http::header::ACCEPT) {
        any = true;
        let Ok(v) = value.to_str() else { continue };
        if v.split(',').any(|i| matches!(i.split(';').next().unwrap_or("").trim(), "text/event-stream" | "text/*" | "*/*")) {
            return true;
        }
    }
    !any
}

/// Whether the body is declared as JSON.
pub fn is_json(headers: &HeaderMap) -> bool {
    header_str(headers, http::header::CONTENT_TYPE).is_some_and(|ct| ct.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json"))
}

/// The `MCP-Protocol-Version` header: `Ok(None)` when absent, `Err` with the refused
/// value when present but unsupported.
pub fn protocol_version(headers: &HeaderMap) -> Result<Option<ProtocolVersion>, String> {
    match headers.get(&VERSION_NAME) {
        None => Ok(None),
        Some(v) => {
            let text = v.to_str().unwrap_or("<non-ascii>");
            ProtocolVersion::parse(text.trim()).map(Some).ok_or_else(|| text.to_string())
        }
    }
}

/// The session id presented, if any.
pub fn session_id(headers: &HeaderMap) -> Option<&str> {
    header_str(headers, &SESSION_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    fn policy(yaml: &str) -> OriginPolicy {
        OriginPolicy::new(&Config::parse(yaml, std::path::Path::new("t.yaml")).unwrap())
    }

    #[test]
    fn loopback_listener_accepts_only_loopback_hosts_and_origins() {
        let p = policy("");
        assert!(p.check(&headers(&[("host", "127.0.0.1:8080")])).is_ok());
        assert!(p.check(&headers(&[("host", "localhost"), ("origin", "http://localhost:3000")])).is_ok());
        assert!(p.check(&headers(&[("host", "[::1]:8080")])).is_ok());
        assert!(p.check(&headers(&[("host", "evil.example.com")])).is_err());
        assert!(p.check(&headers(&[("host", "localhost"), ("origin", "http://evil.example.com")])).is_err());
        assert!(p.check(&headers(&[("host", "localhost"), ("origin", "http://localhost.evil.com")])).is_err());
        assert!(p.check(&headers(&[("host", "LocalHost:8080"), ("origin", "HTTP://LOCALHOST:3000/")])).is_ok(), "names and schemes are case-insensitive");
        assert!(p.check(&headers(&[("host", "localhost"), ("origin", "null")])).is_err());
    }

    #[test]
    fn configured_origins_and_hosts_are_accepted() {
        let p = policy("listen: [\"0.0.0.0:8080\"]\nsecurity: {allowed_origins: [\"https://app.example.com\"], allowed_hosts: [\"mcp.example.com\"]}\n");
        assert!(p.check(&headers(&[("host", "mcp.example.com:443"), ("origin", "https://app.example.com")])).is_ok());
        assert!(p.check(&headers(&[("host", "other.example.com")])).is_err());
        assert!(p.check(&headers(&[("host", "mcp.example.com"), ("origin", "https://evil.example.com")])).is_err());
    }

    #[test]
    fn accept_rules() {
        assert!(accepts_post(&headers(&[("accept", "application/json, text/event-stream")])));
        assert!(accepts_post(&headers(&[("accept", "*/*")])));
        assert!(accepts_post(&headers(&[("accept", "Application/JSON;q=0.9, TEXT/Event-Stream")])));
        assert!(!accepts_post(&headers(&[("accept", "application/json")])));
        assert!(!accepts_post(&HeaderMap::new()));
        assert!(accepts_sse(&headers(&[("accept", "text/event-stream")])));
        assert!(!accepts_sse(&headers(&[("accept", "application/json")])));
    }

    #[test]
    fn version_header() {
        assert_eq!(protocol_version(&HeaderMap::new()), Ok(None));
        assert_eq!(protocol_version(&headers(&[("mcp-protocol-version", "2025-06-18")])), Ok(Some(ProtocolVersion::V2025_06_18)));
        assert!(protocol_version(&headers(&[("mcp-protocol-version", "1999-01-01")])).is_err());
    }
}
