//! Per-tool rate limits and quotas through the real binary: exact counts in one process,
//! one limit shared by two gateway processes through the real Redis, and a Redis that
//! dies mid-test answered as `quotas.on_error` says, without a call hanging on it.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rmcp::model::CallToolRequestParams;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::{json, Value};
use support::backend::Backend;
use support::{Gateway, Raw};

const ALICE: &str = "mcpg_quota-alice-0123456789abcdef";
const BOB: &str = "mcpg_quota-bob-0123456789abcdef00";

use support::hash_key as hash;

async fn session(gw: &Gateway, key: Option<&str>) -> Raw {
    let mut raw = Raw::new(gw.url("echo"));
    if let Some(k) = key {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-api-key", k.parse().unwrap());
        raw.http = reqwest::Client::builder().default_headers(headers).build().unwrap();
    }
    raw.initialize("2025-06-18").await;
    raw
}

/// `tools/call` of `tool`; the whole JSON-RPC response.
async fn call(raw: &Raw, tool: &str) -> Value {
    raw.request(7, "tools/call", json!({"name": tool, "arguments": {"text": "hi"}})).await
}

fn echo_server(backend: &Backend, policy: &str) -> String {
    let b = backend.url();
    format!(
        "servers:
  - name: echo
    type: rest
    server: {{name: echo}}
    tools:
      - name: say
        args: [{{name: text, type: string}}]
        requestTemplate: {{url: \"{b}/echo/say\", method: POST, argsToJsonBody: true}}
      - name: shout
        args: [{{name: text, type: string}}]
        requestTemplate: {{url: \"{b}/echo/shout\", method: POST, argsToJsonBody: true}}
    policy:
{policy}"
    )
}

fn calls_seen(backend: &Backend, path: &str) -> usize {
    backend.seen().iter().filter(|s| s.uri.starts_with(path)).count()
}

#[tokio::test]
async fn quotas_and_rates_are_exact_per_consumer_and_tool_in_one_process() {
    let backend = Backend::start();
    let config = format!(
        "consumers:\n  - {{name: alice, api_keys: [\"{}\"]}}\n  - {{name: bob, groups: [batch], api_keys: [\"{}\"]}}\n{}",
        hash(ALICE),
        hash(BOB),
        echo_server(
            &backend,
            "      quotas:
        - {tools: [say], consumers: [alice], quota: 5/hour}
        - {tools: [\"*\"], groups: [batch], rate: 2/min}
"
        )
    );
    let gw = Gateway::start(&config);
    let alice = session(&gw, Some(ALICE)).await;
    let bob = session(&gw, Some(BOB)).await;

    for i in 0..5 {
        let r = call(&alice, "say").await;
        assert!(r["result"]["isError"] != json!(true) && r.get("error").is_none(), "alice's call {i}: {r}");
    }
    let refused = call(&alice, "say").await;
    assert_eq!(refused["error"]["code"], -32029, "{refused}");
    assert_eq!(refused["error"]["data"]["limit"], "quota 5/hour on `say`", "{refused}");
    let retry = refused["error"]["data"]["retryAfterSeconds"].as_u64().expect("retryAfterSeconds");
    assert!((1..=3600).contains(&retry), "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("quota 5/hour on `say`") && message.contains("retry in"), "{message}");
    // Alice's `shout` matches no rule: unlimited.
    for _ in 0..8 {
        assert!(call(&alice, "shout").await.get("error").is_none());
    }
    // Bob has a rate of 2/min (burst 1) on each tool, each its own counter.
    assert!(call(&bob, "say").await.get("error").is_none());
    let r = call(&bob, "say").await;
    assert_eq!(r["error"]["code"], -32029, "{r}");
    assert_eq!(r["error"]["data"]["limit"], "rate 2/min (burst 1) on `say`");
    assert!(r["error"]["data"]["retryAfterSeconds"].as_u64().unwrap() >= 29, "{r}");
    assert!(call(&bob, "shout").await.get("error").is_none(), "bob's shout has its own counter");
    assert_eq!(call(&bob, "shout").await["error"]["code"], -32029);

    // The official Rust SDK sees the refusal as a JSON-RPC error it can act on.
    let transport = StreamableHttpClientTransport::from_config(StreamableHttpClientTransportConfig::with_uri(gw.url("echo")).auth_header(ALICE));
    let client = ().serve(transport).await.expect("rmcp connects with alice's key");
    let args = json!({"text": "hi"}).as_object().cloned().unwrap();
    match client.call_tool(CallToolRequestParams::new("say").with_arguments(args)).await {
        Err(rmcp::ServiceError::McpError(e)) => {
            assert_eq!(e.code.0, -32029, "{e:?}");
            assert_eq!(e.data.as_ref().map(|d| d["limit"].clone()), Some(json!("quota 5/hour on `say`")));
        }
        other => panic!("expected the quota error, got {other:?}"),
    }
    client.cancel().await.ok();

    // A refused call never reached the upstream: 5 + 1 says, 8 + 1 shouts.
    assert_eq!(calls_seen(&backend, "/echo/say"), 6);
    assert_eq!(calls_seen(&backend, "/echo/shout"), 9);
    assert_eq!(gw.metric("mcpgate_quota_rejections_total{limit=\"quota\",server=\"echo\",tool=\"say\"}"), 2.0, "alice's raw and SDK calls");
    assert_eq!(gw.metric("mcpgate_quota_rejections_total{limit=\"rate\",server=\"echo\",tool=\"say\"}"), 1.0);
    assert_eq!(gw.metric("mcpgate_quota_rejections_total{limit=\"rate\",server=\"echo\",tool=\"shout\"}"), 1.0);
    assert_eq!(gw.metric("mcpgate_tool_calls_total{outcome=\"rate_limited\",server=\"echo\",tool=\"say\""), 3.0);

    // A reload that keeps the rules keeps the counts: alice is still out of quota.
    gw.write_config(&config.replace("- name: echo\n", "- name: echo\n    description: reloaded\n"));
    gw.sighup();
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.metric("mcpgate_config_reloads_total") < 1.0 {
        assert!(Instant::now() < deadline, "no reload:\n{}", gw.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let alice = session(&gw, Some(ALICE)).await;
    assert_eq!(call(&alice, "say").await["error"]["code"], -32029, "counts survive a reload");
}

/// A unique key prefix per test run: runs never see each other's counters.
fn prefix(name: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("mcpgate-test:{name}:{}:{nanos}:", std::process::id())
}

fn redis_at(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(300)).is_ok()
}

fn need_redis() -> bool {
    if redis_at(6379) {
        return true;
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "Redis is not running on 127.0.0.1:6379 (scripts/services.sh starts it)");
    eprintln!("skipped: no Redis on 127.0.0.1:6379");
    false
}

#[tokio::test]
async fn two_gateways_sharing_redis_respect_one_limit() {
    if !need_redis() {
        return;
    }
    let backend = Backend::start();
    let config = format!(
        "quotas: {{backend: redis, redis: \"redis://127.0.0.1:6379/0\", key_prefix: \"{}\", timeout: 500ms}}\n{}",
        prefix("fleet"),
        echo_server(
            &backend,
            "      public: true
      quotas:
        - {tools: [say], quota: 10/hour}
        - {tools: [shout], rate: 1/min, burst: 4}
"
        )
    );
    let (a, b) = (Gateway::start(&config), Gateway::start(&config));
    let (sa, sb) = (session(&a, None).await, session(&b, None).await);
    // Sixteen calls at once, eight through each gateway: exactly ten pass.
    let mut calls = Vec::new();
    for i in 0..16 {
        let s = if i % 2 == 0 { &sa } else { &sb };
        calls.push(call(s, "say"));
    }
    let results = futures::future::join_all(calls).await;
    let ok = results.iter().filter(|r| r.get("error").is_none()).count();
    let refused = results.iter().filter(|r| r["error"]["code"] == -32029).count();
    assert_eq!((ok, refused), (10, 6), "{results:?}");
    assert_eq!(calls_seen(&backend, "/echo/say"), 10);
    // The burst of a rate, likewise: four in all, whichever gateway they reach.
    let mut ok = 0;
    for i in 0..8 {
        let s = if i % 2 == 0 { &sb } else { &sa };
        if call(s, "shout").await.get("error").is_none() {
            ok += 1;
        }
    }
    assert_eq!(ok, 4);
    let rejections = |gw: &Gateway, tool: &str, limit: &str| gw.metric(&format!("mcpgate_quota_rejections_total{{limit=\"{limit}\",server=\"echo\",tool=\"{tool}\"}}"));
    assert_eq!(rejections(&a, "say", "quota") + rejections(&b, "say", "quota"), 6.0);
    assert_eq!(rejections(&a, "shout", "rate") + rejections(&b, "shout", "rate"), 4.0);
}

/// A Redis of the test's own, so that stopping it disturbs nothing else.
struct OwnRedis {
    child: Child,
    port: u16,
}

impl OwnRedis {
    fn start() -> OwnRedis {
        let port = support::free_port();
        let child = Command::new("redis-server").args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]).stdout(Stdio::null()).spawn().expect("redis-server (scripts/services.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !redis_at(port) {
            assert!(Instant::now() < deadline, "redis-server did not start on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        OwnRedis { child, port }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn a_redis_that_dies_gets_the_configured_answer_quickly() {
    let mut redis = OwnRedis::start();
    let backend = Backend::start();
    let config = |on_error: &str| {
        format!(
            "quotas: {{backend: redis, redis: \"redis://127.0.0.1:{}/0\", key_prefix: \"{}\", on_error: {on_error}, timeout: 100ms}}\n{}",
            redis.port,
            prefix(on_error),
            echo_server(&backend, "      public: true\n      quotas:\n        - {tools: [say], quota: 3/hour}\n")
        )
    };
    let (open, closed) = (Gateway::start(&config("open")), Gateway::start(&config("closed")));
    let (so, sc) = (session(&open, None).await, session(&closed, None).await);
    for _ in 0..3 {
        assert!(call(&so, "say").await.get("error").is_none());
    }
    assert_eq!(call(&so, "say").await["error"]["code"], -32029, "counted in Redis while it is up");
    assert!(call(&sc, "say").await.get("error").is_none());

    redis.stop();
    for _ in 0..5 {
        let started = Instant::now();
        let r = call(&so, "say").await;
        assert!(r.get("error").is_none(), "on_error: open allows the call: {r}");
        assert!(started.elapsed() < Duration::from_secs(2), "a call waited {:?} on a dead Redis", started.elapsed());
        let started = Instant::now();
        let r = call(&sc, "say").await;
        assert_eq!(r["error"]["code"], -32029, "on_error: closed refuses: {r}");
        assert!(r["error"]["message"].as_str().unwrap().contains("quota store is unreachable"), "{r}");
        assert!(started.elapsed() < Duration::from_secs(2), "a call waited {:?} on a dead Redis", started.elapsed());
    }
    assert!(open.metric("mcpgate_quota_store_errors_total{action=\"allowed\"}") >= 1.0);
    assert!(closed.metric("mcpgate_quota_store_errors_total{action=\"refused\"}") >= 1.0);
    assert_eq!(closed.metric("mcpgate_quota_rejections_total{limit=\"store\",server=\"echo\",tool=\"say\"}"), 5.0);
    // Both gateways kept serving: a tool without limits answers on each.
    assert!(call(&so, "shout").await.get("error").is_none());
    assert!(call(&sc, "shout").await.get("error").is_none());
}
