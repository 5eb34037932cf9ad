//! Hostile upstreams and bad days at reload time (issue 14, points 4 and 5), over real
//! sockets against the real binary: a REST backend answering 200,000-deep JSON, a backend
//! echoing its request (credentials included) in its replies, spec URLs that never end or
//! never answer, and a config file written in two parts.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::{json, Value};
use support::{Gateway, Raw};

/// How a [`Scripted`] server answers one request.
enum Reply {
    /// A whole response: status, content type, body.
    Full(u16, &'static str, Vec<u8>),
    /// `200` with no length, then body bytes until the client goes away.
    Endless,
    /// Nothing, ever: the connection stays open and silent (a blackholed URL).
    Silent,
}

/// A loopback HTTP/1.1 server answering each request by its head (request line and
/// headers, as received), one thread per connection; it records every head it saw.
struct Scripted {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Scripted {
    fn start(answer: fn(&str) -> Reply) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let heads: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (heads.clone(), stop.clone());
        listener.set_nonblocking(true).expect("nonblocking");
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (h, s) = (h.clone(), s.clone());
                        std::thread::spawn(move || serve(conn, answer, &h, &s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Scripted { addr, heads, stop }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn heads(&self) -> String {
        self.heads.lock().map(|h| h.join("\n")).unwrap_or_default()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(mut conn: TcpStream, answer: fn(&str) -> Reply, heads: &Mutex<Vec<String>>, stop: &AtomicBool) {
    conn.set_nonblocking(false).ok();
    conn.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf).split("\r\n\r\n").next().unwrap_or("").to_string();
    heads.lock().expect("heads").push(head.clone());
    match answer(&head) {
        Reply::Full(status, ct, body) => {
            let _ = write!(conn, "HTTP/1.1 {status} X\r\ncontent-type: {ct}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
            let _ = conn.write_all(&body);
        }
        Reply::Endless => {
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/yaml\r\nconnection: close\r\n\r\nopenapi: 3.0.0\nx-padding:\n");
            let line = "  - aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n".repeat(512);
            // Until the gateway hangs up (or 4 GiB, so a broken gateway cannot hang the test).
            for _ in 0..(4usize << 30) / line.len() {
                if stop.load(Ordering::Relaxed) || conn.write_all(line.as_bytes()).is_err() {
                    return;
                }
            }
        }
        Reply::Silent => {
            let until = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// VmRSS or VmHWM (peak) of a process, in KiB.
fn vm(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// `{"deep": [[[…1…]]]}` nested `n` arrays deep.
fn deep_json(n: usize) -> Vec<u8> {
    format!("{{\"deep\":{}1{}}}", "[".repeat(n), "]".repeat(n)).into_bytes()
}

fn deep_backend(head: &str) -> Reply {
    if head.starts_with("GET /deep ") {
        Reply::Full(200, "application/json", deep_json(200_000))
    } else {
        Reply::Full(200, "application/json", br#"{"ok":true}"#.to_vec())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_nested_200000_deep_gets_a_bounded_text_answer_and_the_gateway_keeps_serving() {
    let backend = Scripted::start(deep_backend);
    let b = backend.url();
    let gw = Gateway::start(&format!(
            "servers:\n  - name: api\n    type: rest\n    server: {{name: api}}\n    tools:\n      - name: deep\n        requestTemplate: {{url: \"{b}/deep\"}}\n      - name: typed\n        outputSchema: {{type: object}}\n        requestTemplate: {{url: \"{b}/deep\"}}\n      - name: ok\n        requestTemplate: {{url: \"{b}/ok\"}}\n"
        ));
    // The official Rust SDK parses replies with serde_json, which stops at 128 levels:
    // a 200,000-deep structuredContent would make this call fail.
    let client = ().serve(StreamableHttpClientTransport::from_uri(gw.url("api"))).await.expect("rmcp connects");
    let started = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(10), client.call_tool(CallToolRequestParams::new("deep"))).await.expect("answered in time").expect("the reply parses");
    let took = started.elapsed();
    assert_ne!(r.is_error, Some(true), "the API answered; it is not a tool error");
    assert!(r.structured_content.is_none(), "too deep to pass as structuredContent");
    let texts: Vec<&str> = r.content.iter().filter_map(|c| c.as_text().map(|t| t.text.as_str())).collect();
    assert_eq!(texts.len(), 2, "the body as text, then a note");
    assert_eq!(texts[0].len(), 2 * 200_000 + 10, "the body is returned as text, as sent");
    assert!(texts[1].contains("deeper than 64 levels"), "{}", texts[1]);
    // A tool with an outputSchema promises structured content: that is an error.
    let r = client.call_tool(CallToolRequestParams::new("typed")).await.expect("the reply parses");
    assert_eq!(r.is_error, Some(true));
    let msg = r.content[0].as_text().map(|t| t.text.clone()).unwrap_or_default();
    assert!(msg.contains("GET /deep") && msg.contains("deeper than 64 levels") && msg.len() < 400, "{msg}");
    // And the gateway keeps serving, structured content included.
    let r = client.call_tool(CallToolRequestParams::new("ok")).await.expect("call");
    assert_eq!(r.structured_content, Some(json!({"ok": true})));
    let (status, _) = support::http_get(gw.admin, "/healthz").expect("healthz");
    assert_eq!(status, 200);
    eprintln!("200,000-deep reply answered in {took:?}");
    client.cancel().await.ok();
}

const HEADER_KEY: &str = "hdr-secret-0001";
const QUERY_KEY: &str = "query/secret 0002";
const BEARER: &str = "bearer-secret-0003";
const BASIC: &str = "alice:basic-secret-0004";
const CONFIG_KEY: &str = "config-secret-0005";
const URL_TOKEN: &str = "url-secret-0006";
const SPEC_KEY: &str = "openapi-secret-0007";

/// Every form of every secret the gateway sends that a client must never see.
fn secret_forms() -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(BASIC);
    let query_form: String = url::form_urlencoded::byte_serialize(QUERY_KEY.as_bytes()).collect();
    vec![HEADER_KEY.into(), QUERY_KEY.into(), query_form, BEARER.into(), BASIC.into(), "basic-secret-0004".into(), b64, CONFIG_KEY.into(), URL_TOKEN.into(), SPEC_KEY.into()]
}

/// Echoes the request head: in a 500 text body, in a 200 JSON body, and as a response
/// header an error template can quote.
fn echo_backend(head: &str) -> Reply {
    let path = head.split(' ').nth(1).unwrap_or("");
    if path.starts_with("/ok") {
        Reply::Full(200, "application/json", json!({"request": head}).to_string().into_bytes())
    } else {
        Reply::Full(500, "text/plain", format!("internal error while handling:\n{head}").into_bytes())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_echoing_its_request_never_shows_the_configured_credentials_to_the_client() {
    let backend = Scripted::start(echo_backend);
    let b = backend.url();
    let spec_dir = tempfile::tempdir().unwrap();
    let spec = spec_dir.path().join("api.yaml");
    std::fs::write(
        &spec,
        format!("openapi: 3.0.0\ninfo: {{title: t, version: '1'}}\nservers: [{{url: '{b}'}}]\ncomponents:\n  securitySchemes:\n    key: {{type: apiKey, in: query, name: apikey}}\nsecurity: [{{key: []}}]\npaths:\n  /fail/spec:\n    get: {{operationId: failSpec, responses: {{'200': {{description: ok}}}}}}\n"),
    )
    .unwrap();
    let tool = |name: &str, path: &str, extra: &str| format!("      - name: {name}\n        requestTemplate: {{url: \"{b}{path}\"{extra}}}\n");
    let mut cfg = format!(
        "servers:\n  - name: leaky\n    type: rest\n    credentials: {{hdr: \"{HEADER_KEY}\", q: \"{QUERY_KEY}\", bearer: \"{BEARER}\", basic: \"{BASIC}\"}}\n    server:\n      name: leaky\n      config: {{apiKey: \"{CONFIG_KEY}\"}}\n      securitySchemes:\n        - {{id: hdr, type: apiKey, in: header, name: X-Api-Key}}\n        - {{id: q, type: apiKey, in: query, name: api_key}}\n        - {{id: bearer, type: http, scheme: bearer}}\n        - {{id: basic, type: http, scheme: basic}}\n    tools:\n"
    );
    cfg += &tool("fail_header", "/fail/h", ", security: {id: hdr}, headers: [{key: X-Extra-Token, value: '{{.config.apiKey}}'}]");
    cfg += &tool("fail_query", &format!("/fail/q?access_token={URL_TOKEN}"), ", security: {id: q}");
    cfg += &tool("fail_bearer", "/fail/b", ", security: {id: bearer}");
    cfg += &tool("fail_basic", "/fail/basic", ", security: {id: basic}");
    cfg += &tool("ok_query", "/ok", ", security: {id: q}, headers: [{key: X-Extra-Token, value: '{{.config.apiKey}}'}]");
    cfg += &format!("      - name: fail_template\n        requestTemplate: {{url: \"{b}/fail/t\", security: {{id: hdr}}}}\n        errorResponseTemplate: 'upstream said {{{{.body}}}}'\n");
    cfg += &format!("  - name: spec\n    type: openapi\n    spec: {}\n    credentials: {{key: \"{SPEC_KEY}\"}}\n", spec.display());
    let gw = Gateway::start(&cfg);
    let mut leaky = Raw::new(gw.url("leaky"));
    leaky.initialize("2025-06-18").await;
    let mut spec_client = Raw::new(gw.url("spec"));
    spec_client.initialize("2025-06-18").await;
    let forms = secret_forms();
    for (client, tool, want_error) in
        [(&leaky, "fail_header", true), (&leaky, "fail_query", true), (&leaky, "fail_bearer", true), (&leaky, "fail_basic", true), (&leaky, "fail_template", true), (&leaky, "ok_query", false), (&spec_client, "failSpec", true)]
    {
        // What the client receives, byte for byte.
        let resp = client.post(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": {}}})).await;
        assert_eq!(resp.status(), 200, "{tool}");
        let body = resp.text().await.unwrap();
        for secret in &forms {
            assert!(!body.contains(secret.as_str()), "{tool}: the client saw `{secret}`:\n{body}");
        }
        assert!(body.contains("[redacted]"), "{tool}: the echo is there, scrubbed:\n{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["result"]["isError"] == true, want_error, "{tool}: {body}");
        if !want_error {
            assert_eq!(v["result"]["structuredContent"]["request"].as_str().map(|r| r.contains("[redacted]")), Some(true), "{tool}: structured content scrubbed and kept: {body}");
        }
    }
    // Not vacuous: the backend did receive every credential.
    let seen = backend.heads();
    for secret in [HEADER_KEY, "query%2Fsecret+0002", BEARER, CONFIG_KEY, URL_TOKEN, SPEC_KEY, &base64::engine::general_purpose::STANDARD.encode(BASIC)] {
        assert!(seen.contains(secret), "the backend was sent `{secret}`:\n{seen}");
    }
}

fn endless_spec(_head: &str) -> Reply {
    Reply::Endless
}

fn silent(_head: &str) -> Reply {
    Reply::Silent
}

fn run_test_flag(config: &str) -> (bool, String, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mcpgate.yaml");
    std::fs::write(&path, config).unwrap();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_mcpgate")).arg("--config").arg(&path).arg("--test").output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned(), started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_spec_url_is_rejected_at_the_size_cap_with_rss_bounded() {
    let spec = Scripted::start(endless_spec);
    let entry = format!("  - name: huge\n    type: openapi\n    spec: {}/openapi.yaml\n", spec.url());
    // At start (`--test` runs the same build).
    let (ok, err, took) = run_test_flag(&format!("servers:\n{entry}"));
    assert!(!ok);
    assert!(err.contains("server `huge`") && err.contains(&format!("{}/openapi.yaml", spec.url())) && err.contains("16 MiB limit (upstream.max_spec_bytes)"), "{err}");
    assert!(took < Duration::from_secs(8), "rejected quickly, not after reading on: {took:?}");

    // At reload, under a running gateway: the old config keeps serving and the peak RSS
    // stays near the cap.
    let direct = "  - name: local\n    type: rest\n    server: {name: local}\n    tools:\n      - name: hi\n        responseTemplate: {body: 'hi'}\n";
    let gw = Gateway::start(&format!("servers:\n{direct}"));
    let mut c = Raw::new(gw.url("local"));
    c.initialize("2025-06-18").await;
    let (rss_before, peak_before) = (vm(gw.pid(), "VmRSS:"), vm(gw.pid(), "VmHWM:"));
    let failures = gw.metric("mcpgate_config_reload_failures_total");
    gw.write_config(&format!("servers:\n{direct}{entry}"));
    gw.sighup();
    let started = Instant::now();
    while gw.metric("mcpgate_config_reload_failures_total") <= failures {
        assert!(started.elapsed() < Duration::from_secs(8), "the reload was not rejected in time\n{}", gw.log_text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    let (rss_after, peak_after) = (vm(gw.pid(), "VmRSS:"), vm(gw.pid(), "VmHWM:"));
    eprintln!("endless spec URL: reload rejected in {took:?}; VmRSS {rss_before} KiB -> {rss_after} KiB, VmHWM (peak) {peak_before} KiB -> {peak_after} KiB");
    assert!(gw.log_text().contains("16 MiB limit (upstream.max_spec_bytes)"), "{}", gw.log_text());
    assert!(peak_after < peak_before + 64 * 1024, "peak RSS grew by {} KiB for a 16 MiB cap", peak_after - peak_before);
    assert_eq!(support::text(&c.call("hi", json!({})).await), "hi", "the previous config keeps serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackholed_spec_urls_fail_within_the_deadline_in_parallel() {
    let hole = Scripted::start(silent);
    let h = hole.url();
    let slow = |name: &str| format!("  - name: {name}\n    type: openapi\n    spec: {h}/{name}.yaml\n");
    // Two blackholed servers with a 2 s deadline: rejected in about 2 s, not 4 s, and the
    // error names the first of them in config order.
    let cfg = format!("upstream: {{spec_timeout: 2s}}\nservers:\n{}{}", slow("slow1"), slow("slow2"));
    let (ok, err, took) = run_test_flag(&cfg);
    assert!(!ok);
    assert!(err.contains("server `slow1`") && err.contains(&format!("{h}/slow1.yaml")) && err.contains("within 2s (upstream.spec_timeout)"), "{err}");
    assert!(took >= Duration::from_secs(2) && took < Duration::from_millis(3500), "two 2 s deadlines ran side by side: {took:?}");
    eprintln!("two blackholed spec URLs, spec_timeout 2s: rejected in {took:?}");

    // Under a running gateway: the reload is rejected at the deadline and calls keep
    // being answered meanwhile.
    let direct = "  - name: local\n    type: rest\n    server: {name: local}\n    tools:\n      - name: hi\n        responseTemplate: {body: 'hi'}\n";
    let gw = Gateway::start(&format!("servers:\n{direct}"));
    let mut c = Raw::new(gw.url("local"));
    c.initialize("2025-06-18").await;
    let failures = gw.metric("mcpgate_config_reload_failures_total");
    gw.write_config(&format!("upstream: {{spec_timeout: 2s}}\nservers:\n{direct}{}", slow("slow3")));
    gw.sighup();
    let started = Instant::now();
    let mut answered = 0;
    while gw.metric("mcpgate_config_reload_failures_total") <= failures {
        assert!(started.elapsed() < Duration::from_secs(4), "the reload was not rejected at its deadline\n{}", gw.log_text());
        assert_eq!(support::text(&c.call("hi", json!({})).await), "hi");
        answered += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("blackholed reload rejected after {:?}; {answered} calls answered meanwhile", started.elapsed());
    assert!(answered > 10);

    // The default deadline is 10 s.
    let (ok, err, took) = run_test_flag(&format!("servers:\n{}", slow("slow4")));
    assert!(!ok && err.contains("within 10s (upstream.spec_timeout)"), "{err}");
    assert!(took >= Duration::from_secs(10) && took < Duration::from_secs(13), "{took:?}");
}

/// The generation `/admin/servers` reports, and the names it lists.
type Served = (u64, Vec<String>);

fn served(admin: SocketAddr) -> Served {
    let (_, body) = support::http_get(admin, "/admin/servers").expect("admin");
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let names = v["servers"].as_array().map(|a| a.iter().filter_map(|s| s["name"].as_str().map(str::to_owned)).collect()).unwrap_or_default();
    (v["generation"].as_u64().unwrap_or(0), names)
}

#[test]
fn a_config_written_in_two_parts_is_never_served_half_written() {
    let entry = |n: &str| format!("  - name: {n}\n    type: rest\n    server: {{name: {n}}}\n    tools:\n      - name: hi\n        responseTemplate: {{body: '{n}'}}\n");
    let gw = Gateway::start(&format!("servers:\n{}", entry("base")));
    let all: Vec<String> = ["base", "s1", "s2", "s3", "s4", "s5"].iter().map(|s| s.to_string()).collect();
    let full = format!("listen: [\"{}\"]\nadmin: {{listen: \"{}\"}}\nservers:\n{}", gw.addr, gw.admin, all.iter().map(|n| entry(n)).collect::<String>());
    // The first part ends after `s2`'s entry: valid YAML with half the servers.
    let cut = full.find("  - name: s3").unwrap();
    let observed: Arc<Mutex<Vec<Served>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (observed, stop, admin) = (observed.clone(), stop.clone(), gw.admin);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let state = served(admin);
                let mut o = observed.lock().unwrap();
                if o.last() != Some(&state) {
                    o.push(state);
                }
                drop(o);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    // An in-place write (truncate, write, pause, write): what the issue saw.
    let mut f = std::fs::OpenOptions::new().write(true).truncate(true).open(&gw.config).unwrap();
    f.write_all(&full.as_bytes()[..cut]).unwrap();
    f.flush().unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    f.write_all(&full.as_bytes()[cut..]).unwrap();
    f.flush().unwrap();
    drop(f);
    let started = Instant::now();
    while served(gw.admin).1 != all {
        assert!(started.elapsed() < Duration::from_secs(6), "the complete config was not loaded\n{}", gw.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("complete config served {:?} after the last write", started.elapsed());
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    let observed = observed.lock().unwrap().clone();
    let names: Vec<&Vec<String>> = observed.iter().map(|(_, n)| n).collect();
    assert_eq!(names, [&vec!["base".to_string()], &all], "only the old and the complete config were ever served: {observed:?}");
    assert_eq!(observed.last().map(|(g, _)| *g), Some(2), "one reload: {observed:?}");
}
