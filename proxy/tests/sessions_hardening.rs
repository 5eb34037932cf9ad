//! Sessions against hostile clients: an `initialize` flood is limited per client address
//! while a normal client is served during and after it; sessions cost a few dozen bytes
//! each (measured from the gateway's VmRSS); and with Redis a session DELETEd on one
//! gateway is refused by another and after a restart.

mod support;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::{json, Value};
use support::{Gateway, Raw, ACCEPT};

const KEY: &str = "0101010101010101010101010101010101010101010101010101010101010101";

fn config(session: &str) -> String {
    format!("session: {{key: \"{KEY}\"{session}}}\nservers:\n  - name: local\n    type: rest\n    server: {{name: local}}\n    tools:\n      - name: hello\n        description: direct\n        responseTemplate: {{body: 'hi'}}\n")
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).expect("VmRSS")
}

fn init_body() -> String {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "flood", "version": "1"}}}).to_string()
}

/// A client whose connections come from `source` (another loopback address than the
/// normal client's 127.0.0.1, so the limit per address can tell them apart).
fn http_from(source: &str) -> reqwest::Client {
    reqwest::Client::builder().local_address(source.parse::<IpAddr>().ok()).pool_max_idle_per_host(64).build().expect("client")
}

async fn hello(client: &rmcp::service::RunningService<rmcp::RoleClient, ()>) {
    let r = client.call_tool(CallToolRequestParams::new("hello")).await.expect("tools/call during the flood");
    assert_ne!(r.is_error, Some(true), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_initialize_flood_is_limited_per_address_and_a_normal_client_is_served() {
    let gw = Gateway::start(&config(""));
    let normal = ().serve(StreamableHttpClientTransport::from_uri(gw.url("local"))).await.expect("rmcp connects before the flood");
    let (stop, ok, limited, other) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let sample: Arc<std::sync::Mutex<Option<(String, Value)>>> = Arc::default();
    let http = http_from("127.0.0.2");
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (http, url, stop, ok, limited, other, sample) = (http.clone(), gw.url("local"), stop.clone(), ok.clone(), limited.clone(), other.clone(), sample.clone());
        workers.push(tokio::spawn(async move {
            // Bounded by time and count; stops by itself.
            for _ in 0..5_000 {
                if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                    break;
                }
                let Ok(resp) = http.post(&url).header("accept", ACCEPT).header("content-type", "application/json").body(init_body()).send().await else {
                    other.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                match resp.status().as_u16() {
                    200 => ok.fetch_add(1, Ordering::Relaxed),
                    429 => {
                        let retry = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                        let body: Value = resp.json().await.unwrap_or(Value::Null);
                        sample.lock().unwrap().get_or_insert((retry, body));
                        limited.fetch_add(1, Ordering::Relaxed)
                    }
                    _ => other.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    // During the flood: the client initialized before it keeps being served, and a new
    // client from another address initializes.
    let mut peak = vm_rss_kib(gw.pid());
    let mut served = 0;
    while Instant::now() < deadline {
        hello(&normal).await;
        served += 1;
        if served == 5 {
            let fresh = ().serve(StreamableHttpClientTransport::from_uri(gw.url("local"))).await.expect("a new client initializes during the flood");
            hello(&fresh).await;
            fresh.cancel().await.ok();
        }
        peak = peak.max(vm_rss_kib(gw.pid()));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let (ok, limited, other) = (ok.load(Ordering::Relaxed), limited.load(Ordering::Relaxed), other.load(Ordering::Relaxed));
    eprintln!("initialize flood from 127.0.0.2 for 4 s: {ok} served, {limited} answered 429, {other} other; normal client served {served} calls; peak VmRSS {peak} KiB");
    assert!(served >= 10, "the normal client was served during the flood");
    assert_eq!(other, 0, "every flood request got 200 or 429");
    assert!(limited > 0, "the flood met the limit");
    // Burst 100, then 20/s: at most 100 + 4 s × 20 plus a window's rounding.
    assert!(ok <= 100 + 4 * 20 + 100, "{ok} sessions were issued to one address in 4 s");
    let (retry, body) = sample.lock().unwrap().clone().expect("a 429 sample");
    let retry: u64 = retry.parse().expect("Retry-After in seconds");
    assert!((1..=5).contains(&retry), "Retry-After {retry}");
    assert_eq!(body["error"]["code"], -32000, "{body}");
    assert_eq!(body["id"], 0, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("session.initialize_rate") && message.contains("Too Many Requests"), "{message}");
    assert!(gw.metric("mcpgate_sessions_refused_total{reason=\"rate_limited\"}") >= limited as f64);
    // After the flood: the old client still works, and the flooding address may open
    // sessions again once its window has passed.
    hello(&normal).await;
    tokio::time::sleep(Duration::from_secs(retry + 1)).await;
    let resp = http.post(gw.url("local")).header("accept", ACCEPT).header("content-type", "application/json").body(init_body()).send().await.unwrap();
    assert_eq!(resp.status(), 200, "the window passed");
    let after = ().serve(StreamableHttpClientTransport::from_uri(gw.url("local"))).await.expect("rmcp connects after the flood");
    hello(&after).await;
    after.cancel().await.ok();
    normal.cancel().await.ok();
}

/// Sessions minted and used once each; the growth of the gateway's VmRSS per session.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_cost_a_few_dozen_bytes_each() {
    let n: usize = std::env::var("MCPGATE_SESSIONS_N").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    // No rate limit, and room above the 1000000 default cap for a run of that size.
    let gw = Gateway::start(&config(&format!(", initialize_rate: 0, max_active: {}", n + 100_000)));
    let url = gw.url("local");
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
    // Warm up allocator arenas and the connection pool before the baseline.
    mint_and_use(&http, &url, 2_000, true).await;
    let base = vm_rss_kib(gw.pid());
    let started = Instant::now();
    let unused = mint_and_use(&http, &url, 20_000, false).await;
    let after_issue = vm_rss_kib(gw.pid());
    eprintln!("20000 initializes, tokens never used: VmRSS {base} -> {after_issue} KiB");
    assert!(after_issue.saturating_sub(base) < 8 * 1024, "issuing stores nothing: grew {} KiB for 20000 unused tokens", after_issue - base);
    let used = mint_and_use(&http, &url, n, true).await;
    let after_use = vm_rss_kib(gw.pid());
    let per_session = (after_use.saturating_sub(base) * 1024) as f64 / n as f64;
    eprintln!(
        "{n} sessions initialized and used once in {:?}: VmRSS {base} -> {after_use} KiB, {per_session:.0} bytes/session; extrapolated to 1000000: {:.0} MiB above the base of {} MiB",
        started.elapsed(),
        per_session * 1e6 / 1048576.0,
        base / 1024
    );
    assert_eq!(unused + used, 20_000 + n);
    assert!(per_session < 200.0, "{per_session:.0} bytes per session");
    assert!(base as f64 / 1024.0 + per_session * 1e6 / 1048576.0 < 256.0, "1000000 sessions would exceed 256 MiB");
}

/// Initializes `n` sessions (16 at a time) and, with `use_them`, pings each once.
async fn mint_and_use(http: &reqwest::Client, url: &str, n: usize, use_them: bool) -> usize {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (http, url, next) = (http.clone(), url.to_string(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            while (next.fetch_add(1, Ordering::Relaxed) as usize) < n {
                let resp = http.post(&url).header("accept", ACCEPT).header("content-type", "application/json").body(init_body()).send().await.expect("initialize");
                assert_eq!(resp.status(), 200);
                let token = resp.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).expect("Mcp-Session-Id").to_string();
                let _ = resp.bytes().await;
                if use_them {
                    let r = http
                        .post(&url)
                        .header("accept", ACCEPT)
                        .header("content-type", "application/json")
                        .header("mcp-session-id", &token)
                        .header("mcp-protocol-version", "2025-06-18")
                        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
                        .send()
                        .await
                        .expect("ping");
                    assert_eq!(r.status(), 200);
                    let _ = r.bytes().await;
                }
                done += 1;
            }
            done
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total
}

async fn status_of(c: &Raw, body: &Value) -> u16 {
    c.post(body).await.status().as_u16()
}

#[tokio::test]
async fn with_redis_a_deleted_session_is_refused_by_other_gateways_and_after_a_restart() {
    if !support::db::reachable(6379) {
        return;
    }
    let cfg = config(", redis: \"redis://127.0.0.1:6379\"");
    let a = Gateway::start(&cfg);
    let b = Gateway::start(&cfg);
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    let mut on_a = Raw::new(a.url("local"));
    on_a.initialize("2025-06-18").await;
    assert_eq!(status_of(&on_a, &ping).await, 200);
    // A second session, not deleted, stays usable everywhere.
    let mut other = Raw::new(a.url("local"));
    other.initialize("2025-06-18").await;
    let deleted = on_a.session.clone();
    let del = on_a.http.delete(a.url("local")).header("mcp-session-id", deleted.as_deref().unwrap()).send().await.unwrap();
    assert_eq!(del.status(), 204);
    assert_eq!(status_of(&on_a, &ping).await, 404, "ended on A");
    let on_b = on(&on_a, b.url("local"));
    let resp = on_b.post(&ping).await;
    assert_eq!(resp.status(), 404, "B refuses the session A deleted");
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap_or("").contains("ended"), "{body}");
    let other_on_b = on(&other, b.url("local"));
    assert_eq!(status_of(&other_on_b, &ping).await, 200, "a session not deleted is served by B");
    // B restarts: the deleted session is still refused, the other still served.
    drop(b);
    let b = Gateway::start(&cfg);
    let on_b = on(&on_a, b.url("local"));
    assert_eq!(status_of(&on_b, &ping).await, 404, "still refused after B restarted");
    let other_on_b = on(&other, b.url("local"));
    assert_eq!(status_of(&other_on_b, &ping).await, 200);
    assert_eq!(b.metric("mcpgate_session_store_errors_total"), 0.0, "{}", b.log_text());
}

/// The same session presented to another gateway.
fn on(c: &Raw, url: String) -> Raw {
    Raw { http: c.http.clone(), url, session: c.session.clone(), version: c.version.clone() }
}
