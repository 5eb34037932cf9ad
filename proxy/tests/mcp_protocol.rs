//! The MCP transport rules, checked with raw HTTP against the real gateway: status codes,
//! headers, sessions, JSON-RPC error codes, pagination, batches, the legacy SSE transport.

mod support;

use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use support::{Gateway, Raw, ACCEPT};

const TOOLS: &str = r#"
  - name: local
    type: rest
    server: {name: local}
    tools:
      - name: hello
        description: greets
        args: [{name: who, type: string, required: true, enum: [world, you]}]
        outputSchema: {type: object, properties: {greeting: {type: string}}}
        responseTemplate: {body: '{"greeting": "hello {{.args.who}}"}'}
  - name: other
    type: rest
    server: {name: other}
    tools:
      - name: noop
        description: nothing
        responseTemplate: {body: ok}
"#;

fn config() -> String {
    let twilio = support::shared().join("openapi-corpus/twilio/twilio_api_v2010.json");
    format!("session: {{idle_ttl: 2s}}\nlimits: {{max_request_body: 64KiB, max_request_headers: 8KiB}}\nservers:{TOOLS}  - name: twilio\n    type: openapi\n    spec: {}\n    base_url: http://127.0.0.1:9\n", twilio.display())
}

async fn post_raw(url: &str, headers: &[(&str, &str)], body: &str) -> reqwest::Response {
    let mut r = reqwest::Client::new().post(url).body(body.to_string());
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.expect("POST")
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

#[tokio::test]
async fn http_rules_of_streamable_http() {
    let gw = Gateway::start(&config());
    let url = gw.url("local");
    let json_ct = ("content-type", "application/json");

    // Accept must list both types; Content-Type must be JSON.
    assert_eq!(post_raw(&url, &[json_ct, ("accept", "application/json")], INIT).await.status(), 406);
    assert_eq!(post_raw(&url, &[("content-type", "text/plain"), ("accept", ACCEPT)], INIT).await.status(), 415);
    // Unsupported version header → 400; unknown route → 404; bad Origin / Host → 403.
    let r = post_raw(&url, &[json_ct, ("accept", ACCEPT), ("mcp-protocol-version", "1999-01-01")], INIT).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("Unsupported protocol version: 1999-01-01"));
    assert_eq!(post_raw(&gw.url("nope"), &[json_ct, ("accept", ACCEPT)], INIT).await.status(), 404);
    assert_eq!(post_raw(&url, &[json_ct, ("accept", ACCEPT), ("origin", "http://evil.example.com")], INIT).await.status(), 403);
    assert_eq!(post_raw(&url, &[json_ct, ("accept", ACCEPT), ("host", "evil.example.com")], INIT).await.status(), 403);
    assert_eq!(post_raw(&url, &[json_ct, ("accept", ACCEPT), ("origin", "http://localhost:6274")], INIT).await.status(), 200);

    // Parse error and invalid request.
    let r = post_raw(&url, &[json_ct, ("accept", ACCEPT)], "{not json").await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["error"]["code"].as_i64(), v["id"].is_null()), (Some(-32700), true));
    let r = post_raw(&url, &[json_ct, ("accept", ACCEPT)], r#"{"jsonrpc":"1.0","id":1,"method":"initialize"}"#).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], -32600);

    // Sessions: issued on initialize (visible ASCII, opaque), required after, 404 unknown.
    let mut c = Raw::new(url.clone());
    let init = c.initialize("2025-11-25").await;
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25");
    assert_eq!(init["result"]["capabilities"]["tools"], json!({"listChanged": false}));
    let sid = c.session.clone().unwrap();
    assert!(sid.bytes().all(|b| (0x21..=0x7e).contains(&b)) && !sid.contains("local"));
    let ping = r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#;
    assert_eq!(post_raw(&url, &[json_ct, ("accept", ACCEPT)], ping).await.status(), 400);
    assert_eq!(post_raw(&url, &[json_ct, ("accept", ACCEPT), ("mcp-session-id", "garbage")], ping).await.status(), 404);
    assert_eq!(post_raw(&gw.url("other"), &[json_ct, ("accept", ACCEPT), ("mcp-session-id", &sid)], ping).await.status(), 404, "a session belongs to its server");
    // Absent version header: assumed (the session knows its version).
    let r = post_raw(&url, &[json_ct, ("accept", ACCEPT), ("mcp-session-id", &sid)], ping).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["result"], json!({}));

    // Notifications and responses: 202, empty body.
    let r = c.post(&json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 9}})).await;
    assert_eq!(r.status(), 202);
    assert!(r.text().await.unwrap().is_empty());
    assert_eq!(c.post(&json!({"jsonrpc": "2.0", "id": 5, "result": {}})).await.status(), 202);

    // JSON-RPC errors.
    assert_eq!(c.request(3, "resources/list", json!({})).await["error"]["code"], -32601);
    assert_eq!(c.request(3, "tools/call", json!({"arguments": {}})).await["error"]["code"], -32602);
    assert_eq!(c.request(3, "tools/list", json!({"cursor": "bogus"})).await["error"]["code"], -32602);
    assert_eq!(c.request(3, "logging/setLevel", json!({"level": "info"})).await["result"], json!({}));
    assert_eq!(c.request(3, "logging/setLevel", json!({"level": "loud"})).await["error"]["code"], -32602);

    // Tool results: validation failures are isError results naming field and rule.
    let r = c.call("hello", json!({"who": "nobody"})).await;
    assert_eq!(r["isError"], true);
    assert!(support::text(&r).contains("who") && support::text(&r).contains("enum"), "{r}");
    let r = c.call("hello", json!({"who": "world"})).await;
    assert_eq!(r["structuredContent"], json!({"greeting": "hello world"}));

    // Batches are 2025-03-26 only.
    let batch = json!([{"jsonrpc": "2.0", "id": 1, "method": "ping"}]);
    let r = c.post(&batch).await;
    assert_eq!(r.status(), 400);

    // GET has no stream here: 405 with Allow.
    let r = reqwest::Client::new().get(&url).header("accept", "text/event-stream").header("mcp-session-id", &sid).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert!(r.headers().get("allow").is_some());

    // Limits: body → 413, headers → 431.
    let big = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"x":"{}"}}}}"#, "a".repeat(70_000));
    assert_eq!(post_raw(&url, &[json_ct, ("accept", ACCEPT), ("mcp-session-id", &sid)], &big).await.status(), 413);
    let huge = "h".repeat(9000);
    assert_eq!(post_raw(&url, &[json_ct, ("accept", ACCEPT), ("x-big", &huge)], INIT).await.status(), 431);

    // The 2026-07-28 discovery probe gets a 4xx without a modern error code.
    let r = post_raw(&url, &[json_ct, ("accept", ACCEPT), ("mcp-method", "server/discover")], r#"{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{}}"#).await;
    assert_eq!(r.status(), 400);
    let code = r.json::<Value>().await.unwrap()["error"]["code"].as_i64().unwrap();
    assert!(code != -32020 && code != -32022);

    // DELETE ends the session: 204, then 404.
    let del = |s: &str| reqwest::Client::new().delete(&url).header("mcp-session-id", s.to_string()).send();
    assert_eq!(del(&sid).await.unwrap().status(), 204);
    assert_eq!(c.post(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})).await.status(), 404);
    assert_eq!(del(&sid).await.unwrap().status(), 404);
    assert_eq!(reqwest::Client::new().delete(&url).send().await.unwrap().status(), 400);
}

/// Errors decided at the HTTP layer after the body was read are addressed to the request's
/// id (clients, and the conformance suite, match errors to requests by id).
#[tokio::test]
async fn http_level_errors_echo_the_request_id() {
    let gw = Gateway::start(&config());
    let url = gw.url("local");
    let json_ct = ("content-type", "application/json");
    let list = r#"{"jsonrpc":"2.0","id":101,"method":"tools/list"}"#;
    let error_of = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        (status, v["id"].clone(), v["error"]["code"].as_i64(), v["error"]["message"].as_str().unwrap_or_default().to_string())
    };
    let (status, id, code, _) = error_of(post_raw(&url, &[json_ct, ("accept", ACCEPT), ("mcp-protocol-version", "1999-01-01")], list).await).await;
    assert_eq!((status, id, code), (400, json!(101), Some(-32600)), "unsupported version");
    let (status, id, _, why) = error_of(post_raw(&url, &[json_ct, ("accept", ACCEPT)], list).await).await;
    assert_eq!((status, id), (400, json!(101)), "missing session: {why}");
    let (status, id, _, _) = error_of(post_raw(&url, &[json_ct, ("accept", ACCEPT), ("mcp-session-id", "garbage")], r#"{"jsonrpc":"2.0","id":"abc","method":"ping"}"#).await).await;
    assert_eq!((status, id), (404, json!("abc")), "unknown session");
    let (status, id, _, _) = error_of(post_raw(&url, &[json_ct, ("accept", "application/json")], list).await).await;
    assert_eq!((status, id), (406, json!(101)), "wrong Accept");
    let (status, id, _, _) = error_of(post_raw(&url, &[("content-type", "text/plain"), ("accept", ACCEPT)], list).await).await;
    assert_eq!((status, id), (415, json!(101)), "wrong Content-Type");
    // A body without one id keeps `null`.
    let (status, id, _, _) = error_of(post_raw(&url, &[json_ct, ("accept", ACCEPT), ("mcp-protocol-version", "1999-01-01")], "{nope").await).await;
    assert_eq!((status, id), (400, Value::Null));
    // An initialize inside a batch is told so, not asked for a session.
    let batch = r#"[{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"t","version":"1"}}},{"jsonrpc":"2.0","id":2,"method":"ping"}]"#;
    let (status, _, code, why) = error_of(post_raw(&url, &[json_ct, ("accept", ACCEPT)], batch).await).await;
    assert_eq!((status, code), (400, Some(-32600)));
    assert!(why.contains("initialize must be sent alone") && !why.contains("Mcp-Session-Id header is required"), "{why}");

    // The legacy message endpoint too.
    let legacy = format!("{}/message?sessionId=garbage", url);
    let (status, id, _, _) = error_of(post_raw(&legacy, &[json_ct], list).await).await;
    assert_eq!((status, id), (404, json!(101)), "legacy: unknown session");
    let legacy = format!("{}/message", url);
    let (status, id, _, _) = error_of(post_raw(&legacy, &[json_ct], list).await).await;
    assert_eq!((status, id), (400, json!(101)), "legacy: no session");
}

#[tokio::test]
async fn versions_shape_results_and_batches_work_in_2025_03_26() {
    let gw = Gateway::start(&config());
    let mut old = Raw::new(gw.url("local"));
    let init = old.initialize("2025-03-26").await;
    assert_eq!(init["result"]["protocolVersion"], "2025-03-26");
    let list = old.request(1, "tools/list", json!({})).await;
    assert!(list["result"]["tools"][0].get("outputSchema").is_none(), "no outputSchema before 2025-06-18");
    let r = old.call("hello", json!({"who": "you"})).await;
    assert!(r.get("structuredContent").is_none());
    assert_eq!(support::text(&r), r#"{"greeting": "hello you"}"#);
    let resp = old
        .post(&json!([
            {"jsonrpc": "2.0", "id": 1, "method": "ping"},
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": 2, "method": "nope"},
            {"jsonrpc": "2.0", "id": 3, "method": "initialize", "params": {"protocolVersion": "2025-03-26"}}
        ]))
        .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);
    assert_eq!(v[1]["error"]["code"], -32601);
    assert_eq!(v[2]["error"]["code"], -32600, "initialize may not be batched");

    let mut new = Raw::new(gw.url("local"));
    new.initialize("2025-06-18").await;
    let list = new.request(1, "tools/list", json!({})).await;
    assert!(list["result"]["tools"][0].get("outputSchema").is_some());
    // An unknown requested version negotiates to the latest.
    let mut future = Raw::new(gw.url("local"));
    assert_eq!(future.initialize("2099-01-01").await["result"]["protocolVersion"], "2025-11-25");
}

#[tokio::test]
async fn tools_list_paginates_with_opaque_cursors() {
    let gw = Gateway::start(&config());
    let mut c = Raw::new(gw.url("twilio"));
    c.initialize("2025-06-18").await;
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let params = cursor.as_ref().map_or(json!({}), |c| json!({"cursor": c}));
        let v = c.request(1, "tools/list", params).await;
        let tools = v["result"]["tools"].as_array().unwrap();
        names.extend(tools.iter().map(|t| t["name"].as_str().unwrap().to_string()));
        pages += 1;
        match v["result"]["nextCursor"].as_str() {
            Some(n) => cursor = Some(n.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 2);
    assert_eq!(names.len(), 197);
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 197);
}

#[tokio::test]
async fn idle_sessions_end() {
    let gw = Gateway::start(&config());
    let mut c = Raw::new(gw.url("local"));
    c.initialize("2025-06-18").await;
    tokio::time::sleep(Duration::from_millis(2600)).await;
    assert_eq!(c.post(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})).await.status(), 404);
}

/// Reads SSE events (`event`, `data`) from a streaming response.
struct Events {
    stream: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

impl Events {
    async fn next(&mut self) -> (String, String) {
        loop {
            if let Some(i) = self.buf.find("\n\n") {
                let raw: String = self.buf.drain(..i + 2).collect();
                let (mut event, mut data) = ("message".to_string(), String::new());
                for line in raw.lines() {
                    if let Some(e) = line.strip_prefix("event: ") {
                        event = e.to_string();
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data.push_str(d);
                    }
                }
                if raw.starts_with(':') {
                    continue;
                }
                return (event, data);
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.stream.next()).await.expect("SSE event in time").expect("stream open").expect("chunk");
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

#[tokio::test]
async fn legacy_sse_transport_2024_11_05() {
    let gw = Gateway::start(&config());
    let http = reqwest::Client::new();
    let resp = http.get(format!("{}/sse", gw.url("local"))).header("accept", "text/event-stream").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut events = Events { stream: Box::pin(resp.bytes_stream()), buf: String::new() };
    let (event, endpoint) = events.next().await;
    assert_eq!(event, "endpoint");
    assert!(endpoint.starts_with("/mcp/local/message?sessionId="), "{endpoint}");
    let post = |body: Value| http.post(format!("http://{}{endpoint}", gw.addr)).header("content-type", "application/json").body(body.to_string()).send();

    let r = post(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "sse", "version": "1"}}})).await.unwrap();
    assert_eq!(r.status(), 202);
    let (event, data) = events.next().await;
    assert_eq!(event, "message");
    let v: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(v["result"]["protocolVersion"], "2024-11-05");
    assert_eq!(post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await.unwrap().status(), 202);
    post(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "hello", "arguments": {"who": "world"}}})).await.unwrap();
    let (_, data) = events.next().await;
    let v: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(v["id"], 2);
    assert_eq!(v["result"]["content"][0]["text"], r#"{"greeting": "hello world"}"#);
    // Unknown session on the message endpoint.
    let r = http.post(format!("{}/message?sessionId=nope", gw.url("local"))).header("content-type", "application/json").body("{}").send().await.unwrap();
    assert_eq!(r.status(), 404);
}
