//! `/admin/servers/{name}`'s `connect` object through the binary: the URLs it names are
//! ones the MCP listener serves (loopback, `0.0.0.0` with the request's host), a host the
//! listener would refuse becomes the `<gateway-host>` placeholder, and a reload's new
//! servers get their snippets. (The snippets themselves are driven with real clients by
//! tests/py/test_clients.py.)

mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{Gateway, Raw};

fn server(name: &str) -> String {
    format!("  - name: {name}\n    type: rest\n    server: {{name: {name}}}\n    tools:\n      - name: hi\n        responseTemplate: {{body: '{name}'}}\n")
}

/// GET on the admin listener with the given `Host` header; the status and JSON body.
fn admin_get(admin: SocketAddr, path: &str, host: &str) -> (u16, Value) {
    let mut s = std::net::TcpStream::connect(admin).expect("admin");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Initializes at `url` and lists its tools: the URL serves MCP.
async fn tool_names(url: &str) -> Vec<String> {
    let mut c = Raw::new(url.to_string());
    c.initialize("2025-11-25").await;
    let list = c.request(1, "tools/list", json!({})).await;
    list["result"]["tools"].as_array().into_iter().flatten().filter_map(|t| t["name"].as_str().map(str::to_owned)).collect()
}

#[tokio::test]
async fn a_loopback_listener_gives_urls_that_serve_mcp() {
    let gw = Gateway::start(&format!("servers:\n{}", server("alpha")));
    let (status, v) = admin_get(gw.admin, "/admin/servers/alpha", &gw.admin.to_string());
    assert_eq!(status, 200, "{v}");
    let c = &v["connect"];
    let url = format!("http://{}/mcp/alpha", gw.addr);
    assert_eq!(c["streamable_http"], url);
    assert_eq!(c["sse"], format!("{url}/sse"));
    assert_eq!(c["claude_desktop"], json!({"mcpServers": {"alpha": {"command": "npx", "args": ["-y", "mcp-remote", url]}}}));
    assert_eq!(c["claude_code"]["streamable_http"], format!("claude mcp add --transport http alpha {url}"));
    assert_eq!(c["cursor"], json!({"mcpServers": {"alpha": {"url": url}}}));
    assert_eq!(c["vscode"], json!({"servers": {"alpha": {"type": "http", "url": url}}}));
    assert!(c.get("note").is_none(), "{c}");
    assert_eq!(tool_names(&url).await, ["hi"]);
}

#[tokio::test]
async fn a_wildcard_listener_names_the_host_the_request_named() {
    let gw = Gateway::start_on("0.0.0.0", &format!("servers:\n{}", server("alpha")));
    let port = gw.addr.port();
    for host in ["localhost", "127.0.0.1"] {
        let (status, v) = admin_get(gw.admin, "/admin/servers/alpha", &format!("{host}:{}", gw.admin.port()));
        assert_eq!(status, 200, "{v}");
        let url = format!("http://{host}:{port}/mcp/alpha");
        assert_eq!(v["connect"]["streamable_http"], url, "{v}");
        assert!(v["connect"]["note"].as_str().is_some_and(|n| n.contains("every address")), "{v}");
        assert_eq!(tool_names(&url).await, ["hi"]);
    }
}

#[tokio::test]
async fn a_host_the_mcp_listener_refuses_becomes_the_placeholder() {
    let gw = Gateway::start_on("0.0.0.0", &format!("security: {{allowed_hosts: [mcp.example.com]}}\nservers:\n{}", server("alpha")));
    let (status, v) = admin_get(gw.admin, "/admin/servers/alpha", &format!("localhost:{}", gw.admin.port()));
    assert_eq!(status, 200, "{v}");
    let c = &v["connect"];
    assert_eq!(c["streamable_http"], format!("http://<gateway-host>:{}/mcp/alpha", gw.addr.port()));
    assert_eq!(c["claude_code"]["streamable_http"], format!("claude mcp add --transport http alpha 'http://<gateway-host>:{}/mcp/alpha'", gw.addr.port()));
    assert!(c["note"].as_str().is_some_and(|n| n.contains("<gateway-host>")), "{c}");
    // Why not localhost: the MCP listener refuses that Host.
    let refused = reqwest::Client::new().post(format!("http://localhost:{}/mcp/alpha", gw.addr.port())).header("accept", support::ACCEPT).header("content-type", "application/json").body("{}").send().await.expect("POST");
    assert_eq!(refused.status(), 403);
}

#[tokio::test]
async fn servers_added_by_a_reload_get_their_snippets() {
    let gw = Gateway::start(&format!("servers:\n{}", server("alpha")));
    let host = gw.admin.to_string();
    assert_eq!(admin_get(gw.admin, "/admin/servers/alpha", &host).0, 200);
    gw.write_config(&format!("servers:\n{}{}", server("alpha"), server("beta")));
    let deadline = Instant::now() + Duration::from_secs(10);
    let v = loop {
        let (status, v) = admin_get(gw.admin, "/admin/servers/beta", &host);
        if status == 200 {
            break v;
        }
        assert!(Instant::now() < deadline, "the reload was not served: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let url = format!("http://{}/mcp/beta", gw.addr);
    assert_eq!(v["connect"]["vscode"]["servers"]["beta"]["url"], url);
    assert_eq!(tool_names(&url).await, ["hi"]);
}
