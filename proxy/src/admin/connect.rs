//! The `connect` object of `/admin/servers/{name}`: the URLs an MCP client can use for a
//! served server and ready snippets for Claude Desktop, Claude Code, Cursor and VS Code
//! (docs/CLIENTS.md).
//!
//! The host is decided so that a snippet never names a host the MCP listener would refuse:
//! the first `listen` address this process bound when the MCP listener accepts it as a
//! `Host`; for `0.0.0.0`/`[::]` the host the admin request named, if the MCP listener
//! accepts it; otherwise the placeholder `<gateway-host>` with a `note` saying what to put
//! there. Snippets for a fixed address are built once per snapshot.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::mcp::http::{strip_port, OriginPolicy};
use crate::runtime::Snapshot;

/// Stands for a host the gateway cannot name for its clients.
pub const HOST_PLACEHOLDER: &str = "<gateway-host>";

/// Builds `connect` objects for the MCP listener this process bound.
pub struct ClientConnect {
    /// The first MCP `listen` address (listen addresses change only on restart).
    addr: Option<SocketAddr>,
    /// Snippets of every route of one snapshot, when they do not depend on the request.
    prepared: ArcSwapOption<Prepared>,
}

/// The snippets of one snapshot's routes.
struct Prepared {
    generation: u64,
    routes: HashMap<String, Arc<RawValue>>,
}

/// Where clients reach the MCP listener, and what they should know about it.
struct Base {
    /// `http://host:port`.
    origin: String,
    /// mcp-remote refuses plain HTTP to anything but `localhost` and `127.0.0.1` without
    /// `--allow-http`.
    allow_http: bool,
    note: Option<String>,
}

impl ClientConnect {
    /// For the MCP listener addresses of the config the process started with.
    pub fn new(listen: &[String]) -> Self {
        ClientConnect { addr: listen.first().and_then(|a| a.parse().ok()), prepared: ArcSwapOption::empty() }
    }

    /// The `connect` object of the route `name` of `snapshot`, as JSON text, for an admin
    /// request whose `Host` header was `request_host`.
    pub fn for_route(&self, snapshot: &Snapshot, name: &str, request_host: Option<&str>) -> Arc<RawValue> {
        let Some(addr) = self.addr else {
            return raw(&snippets(&placeholder(0, "the gateway has no MCP listen address".into()), name));
        };
        if addr.ip().is_unspecified() {
            return raw(&snippets(&request_base(addr, request_host, &snapshot.origin), name));
        }
        let prepared = match self.prepared.load_full() {
            Some(p) if p.generation == snapshot.generation => p,
            _ => {
                let base = fixed_base(addr, &snapshot.origin);
                let routes = snapshot.routes.keys().map(|n| (n.clone(), raw(&snippets(&base, n)))).collect();
                let p = Arc::new(Prepared { generation: snapshot.generation, routes });
                self.prepared.store(Some(p.clone()));
                p
            }
        };
        prepared.routes.get(name).cloned().unwrap_or_else(|| raw(&snippets(&fixed_base(addr, &snapshot.origin), name)))
    }
}

/// A built object as shareable JSON text (a `Value` of strings always serializes).
fn raw(v: &Value) -> Arc<RawValue> {
    Arc::from(serde_json::value::to_raw_value(v).unwrap_or_else(|_| RawValue::NULL.to_owned()))
}

/// A specific listen address, used as it is when the MCP listener accepts it as a `Host`.
fn fixed_base(addr: SocketAddr, policy: &OriginPolicy) -> Base {
    let authority = addr.to_string();
    if policy.host_ok(&authority) {
        let allow_http = !is_mcp_remote_local(strip_port(&authority));
        return Base { origin: format!("http://{authority}"), allow_http, note: None };
    }
    placeholder(addr.port(), format!("the MCP listener's address {authority} is not in security.allowed_hosts: replace {HOST_PLACEHOLDER} with a name listed there"))
}

/// `0.0.0.0` / `[::]`: the host the admin request named, with the MCP listener's port.
fn request_base(addr: SocketAddr, request_host: Option<&str>, policy: &OriginPolicy) -> Base {
    let port = addr.port();
    let host = request_host.map(strip_port).filter(|h| plain_host(h));
    match host {
        Some(h) if policy.host_ok(&format!("{h}:{port}")) => Base {
            origin: format!("http://{h}:{port}"),
            allow_http: !is_mcp_remote_local(h),
            note: Some(format!("the gateway listens on {addr} (every address); these URLs use the host this request named ({h}): clients on other machines need a name or address of this one that they can reach")),
        },
        _ => placeholder(port, format!("the gateway listens on {addr} (every address): replace {HOST_PLACEHOLDER} with a name or address of this machine that clients can reach")),
    }
}

fn placeholder(port: u16, note: String) -> Base {
    Base { origin: format!("http://{HOST_PLACEHOLDER}:{port}"), allow_http: true, note: Some(note) }
}

/// A DNS name, an IPv4 address or a bracketed IPv6 address: nothing that could change the
/// meaning of a snippet (a shell command, a URL) it is pasted into.
fn plain_host(h: &str) -> bool {
    match h.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => !h.is_empty() && h.len() <= 253 && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') && !h.starts_with('-'),
    }
}

/// The hosts mcp-remote accepts over plain HTTP without `--allow-http`.
fn is_mcp_remote_local(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host == "127.0.0.1"
}

/// The `connect` object for route `name` at `base`.
fn snippets(base: &Base, name: &str) -> Value {
    let url = format!("{}/mcp/{name}", base.origin);
    let sse = format!("{url}/sse");
    let mut bridge = vec!["-y".to_string(), "mcp-remote".to_string(), url.clone()];
    if base.allow_http {
        bridge.push("--allow-http".into());
    }
    let mut v = json!({
        "streamable_http": url,
        "sse": sse,
        "claude_desktop": {"mcpServers": {name: {"command": "npx", "args": bridge}}},
        "claude_code": {
            "streamable_http": format!("claude mcp add --transport http {name} {}", shell_word(&url)),
            "sse": format!("claude mcp add --transport sse {name} {}", shell_word(&sse)),
        },
        "cursor": {"mcpServers": {name: {"url": url}}},
        "vscode": {"servers": {name: {"type": "http", "url": url}}},
    });
    if let Some(note) = &base.note {
        v["note"] = json!(note);
    }
    v
}

/// `s` as one shell word: as it is when it has no character a shell treats specially
/// (brackets glob in zsh), else single-quoted. Route names and hosts hold no quote.
fn shell_word(s: &str) -> std::borrow::Cow<'_, str> {
    if s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-:/%+=,@".contains(&b)) {
        s.into()
    } else {
        format!("'{}'", s.replace('\'', r"'\''")).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(yaml: &str) -> OriginPolicy {
        OriginPolicy::new(&crate::config::Config::parse(yaml, std::path::Path::new("t.yaml")).expect("config"))
    }

    #[test]
    fn a_loopback_listener_is_named_as_it_is() {
        let p = policy("listen: [\"127.0.0.1:8080\"]\n");
        let v = snippets(&fixed_base("127.0.0.1:8080".parse().unwrap(), &p), "demo-db");
        assert_eq!(v["streamable_http"], "http://127.0.0.1:8080/mcp/demo-db");
        assert_eq!(v["sse"], "http://127.0.0.1:8080/mcp/demo-db/sse");
        assert_eq!(v["claude_desktop"], json!({"mcpServers": {"demo-db": {"command": "npx", "args": ["-y", "mcp-remote", "http://127.0.0.1:8080/mcp/demo-db"]}}}));
        assert_eq!(v["claude_code"]["sse"], "claude mcp add --transport sse demo-db http://127.0.0.1:8080/mcp/demo-db/sse");
        assert!(v.get("note").is_none());
    }

    #[test]
    fn ipv6_urls_are_quoted_for_the_shell_and_need_allow_http() {
        let p = policy("listen: [\"[::1]:8080\"]\n");
        let v = snippets(&fixed_base("[::1]:8080".parse().unwrap(), &p), "x");
        assert_eq!(v["claude_code"]["streamable_http"], "claude mcp add --transport http x 'http://[::1]:8080/mcp/x'");
        assert_eq!(v["claude_desktop"]["mcpServers"]["x"]["args"][3], "--allow-http");
    }

    #[test]
    fn a_wildcard_listener_takes_the_requests_host_only_when_plain_and_accepted() {
        let addr: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let open = policy("listen: [\"0.0.0.0:8080\"]\n");
        let b = request_base(addr, Some("mcp.example.com:9090"), &open);
        assert_eq!(b.origin, "http://mcp.example.com:8080");
        assert!(b.allow_http && b.note.is_some());
        for bad in [None, Some("a;rm -rf ~:9090"), Some("$(id)"), Some("[not-v6]:1"), Some("-x")] {
            assert_eq!(request_base(addr, bad, &open).origin, "http://<gateway-host>:8080", "{bad:?}");
        }
        let listed = policy("listen: [\"0.0.0.0:8080\"]\nsecurity: {allowed_hosts: [mcp.example.com]}\n");
        assert_eq!(request_base(addr, Some("mcp.example.com"), &listed).origin, "http://mcp.example.com:8080");
        assert_eq!(request_base(addr, Some("other.example.com"), &listed).origin, "http://<gateway-host>:8080");
    }

    #[test]
    fn a_fixed_address_outside_allowed_hosts_becomes_the_placeholder() {
        let p = policy("listen: [\"10.1.2.3:8080\"]\nsecurity: {allowed_hosts: [mcp.example.com]}\n");
        let v = snippets(&fixed_base("10.1.2.3:8080".parse().unwrap(), &p), "x");
        assert_eq!(v["cursor"], json!({"mcpServers": {"x": {"url": "http://<gateway-host>:8080/mcp/x"}}}));
        assert_eq!(v["claude_code"]["streamable_http"], "claude mcp add --transport http x 'http://<gateway-host>:8080/mcp/x'");
        assert!(v["note"].as_str().unwrap().contains("allowed_hosts"));
    }
}
