//! The pipeline in process, with a fake `ToolServer`: what each stage lets through, and
//! exactly one observation per call that reached its tool. HTTP calls go to a real local
//! HTTP server over a real socket, on the same connector the gateway uses.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::connectors::http::Connector;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::methods::MethodCtx;
use super::{tools_call, CallEnd};
use crate::mcp::version::ProtocolVersion;
use crate::metrics::{RouteMetrics, METRICS};
use crate::runtime::Route;
use crate::tools::{CallContext, CallOutcome, CallToolResult, Catalog, HttpCall, ToolDef, ToolServer, UpstreamResponse, UpstreamTarget};

/// Tools: `done` (answers in process, needs an integer `n`), `http` (calls the live
/// server), `down` (calls a port nobody listens on).
struct Fake {
    defs: Vec<ToolDef>,
    calls: AtomicUsize,
    live: Arc<UpstreamTarget>,
    dead: Arc<UpstreamTarget>,
}

fn def(name: &str, schema: Value) -> ToolDef {
    ToolDef { name: name.into(), title: None, description: None, input_schema: schema, output_schema: None, annotations: None }
}

fn http_call(target: &Arc<UpstreamTarget>, path: &str) -> CallOutcome {
    CallOutcome::Http(Box::new(HttpCall { target: target.clone(), method: http::Method::GET, path_and_query: path.into(), headers: Vec::new(), body: Bytes::new(), max_response_bytes: 1 << 16 }))
}

#[async_trait]
impl ToolServer for Fake {
    fn tools(&self) -> &[ToolDef] {
        &self.defs
    }

    async fn call(&self, index: usize, args: Map<String, Value>, _cx: CallContext<'_>) -> CallOutcome {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match index {
            0 => CallOutcome::Done(CallToolResult::text(format!("n is {}", args.get("n").cloned().unwrap_or_default()))),
            1 => http_call(&self.live, args.get("path").and_then(Value::as_str).unwrap_or("/ok")),
            _ => http_call(&self.dead, "/"),
        }
    }

    fn finish_http(&self, _index: usize, response: &UpstreamResponse<'_>) -> CallToolResult {
        CallToolResult::text(format!("{} {}", response.status, String::from_utf8_lossy(response.body)))
    }
}

/// A local HTTP/1.1 server: `/slow` answers after 3 s, anything else at once.
async fn serve() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                loop {
                    let Ok(n) = conn.read(&mut chunk).await else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
                    if buf.starts_with(b"GET /slow ") {
                        tokio::time::sleep(Duration::from_secs(3)).await;
                    }
                    buf.drain(..end + 4);
                    if conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"up\":true}").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn target(addr: std::net::SocketAddr) -> Arc<UpstreamTarget> {
    Arc::new(UpstreamTarget::new(addr, false, "127.0.0.1".into(), addr.to_string(), Duration::from_secs(2), Duration::from_secs(10)).expect("a valid host"))
}

/// A route named `name` (metric series are per route, so each test has its own).
async fn route(name: &str) -> (Arc<Fake>, Route) {
    let live = target(serve().await);
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let defs = vec![def("done", json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]})), def("http", json!({"type": "object"})), def("down", json!({"type": "object"}))];
    let fake = Arc::new(Fake { defs: defs.clone(), calls: AtomicUsize::new(0), live, dead: target(dead) });
    let route = Route {
        name: name.into(),
        kind: "fake",
        source: name.into(),
        description: None,
        server: fake.clone(),
        catalog: Catalog::new(&defs).expect("valid tools"),
        pages: Vec::new(),
        legacy_pages: Vec::new(),
        fingerprint: String::new(),
        metrics: RouteMetrics::new(name, defs.len()),
        access: crate::policy::ServerAccess::open(defs.len()),
        views: Default::default(),
        credentials: Default::default(),
    };
    (fake, route)
}

/// Calls `tools/call` with `params` on `route`; `None` when the call was abandoned.
async fn call(route: &Route, params: Value, present: &(dyn Fn() -> bool + Sync)) -> Option<Value> {
    let headers = http::HeaderMap::new();
    let connector = Connector::new(None);
    let cx = MethodCtx { route, version: ProtocolVersion::ASSUMED, call: CallContext { client_ip: None, headers: &headers, arguments: None }, connector: &connector, present, principal: None };
    let id = RawValue::from_string("1".into()).expect("id");
    let params = RawValue::from_string(params.to_string()).expect("params");
    match tools_call(&cx, &id, Some(&params)).await {
        CallEnd::Reply(reply) => Some(serde_json::from_str(&reply).expect("a JSON reply")),
        CallEnd::Abandoned => None,
    }
}

/// Observations of `tool` on `route`: (calls by outcome, latency samples).
fn observed(route: &str, tool: &str) -> ([u64; 3], u64) {
    let count = |outcome: &str| METRICS.tool_calls.with_label_values(&[route, tool, outcome]).get();
    ([count("success"), count("error"), count("invalid_arguments")], METRICS.tool_latency.with_label_values(&[route, tool]).get_sample_count())
}

#[tokio::test]
async fn requests_refused_before_the_tool_reach_no_server_and_are_not_observed() {
    let (fake, route) = route("pipeline-refused").await;
    let unknown = call(&route, json!({"name": "nope", "arguments": {}}), &|| true).await.expect("a reply");
    assert_eq!(unknown["error"]["code"], -32602);
    assert_eq!(unknown["error"]["message"], "Unknown tool: nope");
    let no_name = call(&route, json!({"arguments": {}}), &|| true).await.expect("a reply");
    assert_eq!(no_name["error"]["message"], "tools/call requires params.name (a string)");
    let not_object = call(&route, json!({"name": "done", "arguments": [1]}), &|| true).await.expect("a reply");
    assert_eq!(not_object["error"]["message"], "tools/call params.arguments must be an object");
    assert_eq!(fake.calls.load(Ordering::SeqCst), 0);
    assert_eq!(observed("pipeline-refused", "done"), ([0, 0, 0], 0));
}

#[tokio::test]
async fn invalid_arguments_never_reach_the_server_and_are_observed_once() {
    let (fake, route) = route("pipeline-invalid").await;
    let reply = call(&route, json!({"name": "done", "arguments": {"n": "seven"}}), &|| true).await.expect("a reply");
    assert_eq!(reply["result"]["isError"], true);
    let text = reply["result"]["content"][0]["text"].as_str().expect("a text");
    assert!(text.starts_with("invalid arguments for tool `done`: `n`:"), "{text}");
    assert_eq!(fake.calls.load(Ordering::SeqCst), 0, "invalid arguments must not reach the server");
    assert_eq!(observed("pipeline-invalid", "done"), ([0, 0, 1], 1));
}

#[tokio::test]
async fn every_kind_of_result_is_observed_exactly_once() {
    let (fake, route) = route("pipeline-results").await;
    let done = call(&route, json!({"name": "done", "arguments": {"n": 7}}), &|| true).await.expect("a reply");
    assert_eq!(done["result"]["content"][0]["text"], "n is 7");
    assert_eq!(observed("pipeline-results", "done"), ([1, 0, 0], 1));

    let http = call(&route, json!({"name": "http"}), &|| true).await.expect("a reply");
    assert_eq!(http["result"]["content"][0]["text"], "200 {\"up\":true}");
    assert_eq!(observed("pipeline-results", "http"), ([1, 0, 0], 1));

    let down = call(&route, json!({"name": "down", "arguments": {}}), &|| true).await.expect("a reply");
    assert_eq!(down["result"]["isError"], true);
    let text = down["result"]["content"][0]["text"].as_str().expect("a text");
    assert!(text.starts_with("cannot connect to the API at 127.0.0.1:"), "{text}");
    assert_eq!(observed("pipeline-results", "down"), ([0, 1, 0], 1));
    assert_eq!(fake.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_call_whose_client_left_is_abandoned_and_not_observed() {
    let (fake, route) = route("pipeline-abandoned").await;
    let started = std::time::Instant::now();
    let end = call(&route, json!({"name": "http", "arguments": {"path": "/slow"}}), &|| false).await;
    assert!(end.is_none(), "the call must be abandoned, got {end:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "dropped at the first presence check, not after the upstream answered");
    assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
    assert_eq!(observed("pipeline-abandoned", "http"), ([0, 0, 0], 0));
}
