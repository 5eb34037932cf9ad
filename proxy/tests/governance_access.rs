//! Governance through the real binary: consumers with API keys, who may connect, per-tool
//! rules on every server kind (OpenAPI, REST, database, Toolbox SQL tools), `tools/list`
//! per caller, sessions bound to their caller, credentials never forwarded, consumers'
//! own upstream credentials, hot-swapped keys, and the admin listener's token and views.

mod support;

use std::process::Command;

use rmcp::model::CallToolRequestParams;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::{json, Value};
use support::backend::{Backend, API_KEY};
use support::{http_get, Gateway, Raw};

const ALICE: &str = "mcpg_alice-key-0123456789abcdef";
const ALICE_NEW: &str = "mcpg_alice-rotated-key-fedcba98";
const BOB: &str = "mcpg_bob-key-0123456789abcdef00";
const CAROL: &str = "mcpg_carol-key-0123456789abcdef";

use support::hash_key as hash;

fn consumers(alice_keys: &[&str]) -> String {
    let alice: Vec<String> = alice_keys.iter().map(|k| format!("\"{}\"", hash(k))).collect();
    format!(
        "consumers:\n  - name: alice\n    groups: [staff]\n    api_keys: [{}]\n    upstream:\n      petstore: {{headers: {{api_key: alice-own-upstream-key}}}}\n  - name: bob\n    groups: [partners]\n    api_keys: [\"{}\"]\n  - name: carol\n    api_keys: [\"{}\"]\n",
        alice.join(", "),
        hash(BOB),
        hash(CAROL)
    )
}

/// Four servers, one of each kind, with rules: staff may use everything; partners only
/// what reads, and never `deletePet`; carol may not connect to `petstore` at all.
fn config(backend: &Backend, dir: &std::path::Path, alice_keys: &[&str]) -> String {
    let seed = dir.join("seed.sql");
    std::fs::write(&seed, "CREATE TABLE things (id INTEGER PRIMARY KEY, tag TEXT, name TEXT);\nINSERT INTO things VALUES (1, 'a', 'apple'), (2, 'b', 'banana');\n").unwrap();
    let db = dir.join("things.db");
    std::fs::write(
        dir.join("tools.yaml"),
        format!("kind: source\nname: lite\ntype: sqlite\ndatabase: {}\n---\nkind: tool\nname: by-tag\ntype: sqlite-sql\nsource: lite\ndescription: Things with a tag\nparameters:\n  - {{name: tag, type: string, description: the tag}}\nstatement: SELECT name FROM things WHERE tag = ? ORDER BY id\n---\nkind: toolset\nname: basic\ntools: [by-tag]\n", db.display()),
    )
    .unwrap();
    let spec = support::shared().join("openapi-corpus/petstore/openapi.yaml");
    let b = backend.url();
    format!(
        "{consumers}servers:
  - name: petstore
    type: openapi
    spec: {spec}
    base_url: {b}/api/v3
    credentials: {{api_key: \"{API_KEY}\"}}
    policy:
      consumers: [alice, bob]
      rules:
        - {{tools: [\"*\"], allow: {{groups: [staff]}}}}
        - {{tools: [\"get*\", \"find*\"], allow: {{consumers: [bob]}}}}
        - {{tools: [deletePet], deny: {{groups: [partners]}}}}
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
      rules:
        - {{tools: [say], allow: {{}}}}
        - {{tools: [shout], allow: {{consumers: [alice]}}}}
  - name: things
    type: database
    source: {{url: \"sqlite://{db}\", seed: {seed}}}
    tools_file: {tools}
    policy:
      rules:
        - {{tools: [\"*\"], allow: {{groups: [staff]}}}}
        - {{tools: [by-tag, list_tables], allow: {{consumers: [bob, carol]}}}}
  - name: open
    type: rest
    server: {{name: open}}
    policy: {{public: true}}
    tools:
      - name: hi
        responseTemplate: {{body: hello}}
",
        consumers = consumers(alice_keys),
        spec = spec.display(),
        db = db.display(),
        seed = seed.display(),
        tools = dir.join("tools.yaml").display(),
    )
}

/// A raw client that sends `key` on every request (in `x-api-key`, or as a bearer).
fn client(gw: &Gateway, server: &str, key: Option<&str>, bearer: bool) -> Raw {
    let mut raw = Raw::new(gw.url(server));
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(k) = key {
        let (name, value) = if bearer { ("authorization", format!("Bearer {k}")) } else { ("x-api-key", k.to_string()) };
        headers.insert(name, value.parse().unwrap());
    }
    raw.http = reqwest::Client::builder().default_headers(headers).build().unwrap();
    raw
}

async fn session(gw: &Gateway, server: &str, key: &str) -> Raw {
    let mut c = client(gw, server, Some(key), false);
    c.initialize("2025-06-18").await;
    c
}

async fn names(c: &Raw) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let params = cursor.as_ref().map_or(json!({}), |c| json!({"cursor": c}));
        let v = c.request(2, "tools/list", params).await;
        out.extend(v["result"]["tools"].as_array().expect("tools").iter().filter_map(|t| t["name"].as_str().map(String::from)));
        match v["result"]["nextCursor"].as_str() {
            Some(n) => cursor = Some(n.to_string()),
            None => return out,
        }
    }
}

fn initialize_body() -> Value {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
}

#[tokio::test]
async fn callers_without_a_valid_key_are_refused_before_anything_runs() {
    let backend = Backend::start();
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&config(&backend, dir.path(), &[ALICE]));

    // No credential: 401 with a Bearer challenge and a JSON-RPC error, nothing called.
    let r = client(&gw, "echo", None, false).post(&initialize_body()).await;
    assert_eq!(r.status(), 401);
    let challenge = r.headers().get("www-authenticate").expect("challenge").to_str().unwrap().to_string();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32001, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("x-api-key"), "the message says how to authenticate: {body}");

    // A wrong key, in the header or as a bearer: 401 invalid_token; the key is not echoed.
    for bearer in [false, true] {
        let r = client(&gw, "echo", Some("mcpg_not-a-key-of-anyone-at-all"), bearer).post(&initialize_body()).await;
        assert_eq!(r.status(), 401);
        let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_string();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        let text = r.text().await.unwrap();
        assert!(!text.contains("not-a-key") && !challenge.contains("not-a-key"), "{text}");
    }
    // Malformed Authorization.
    let mut raw = Raw::new(gw.url("echo"));
    let mut h = reqwest::header::HeaderMap::new();
    h.insert("authorization", "Basic Zm9vOmJhcg==".parse().unwrap());
    raw.http = reqwest::Client::builder().default_headers(h).build().unwrap();
    let r = raw.post(&initialize_body()).await;
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().contains("invalid_request"));

    // carol is a consumer, but not among who may connect to petstore: 403.
    let r = client(&gw, "petstore", Some(CAROL), false).post(&initialize_body()).await;
    assert_eq!(r.status(), 403);
    // The key works, as a bearer too, where carol may connect.
    let mut c = client(&gw, "things", Some(CAROL), true);
    c.initialize("2025-06-18").await;
    // A public server needs no key; a wrong key on it is still refused.
    let mut anon = client(&gw, "open", None, false);
    anon.initialize("2025-06-18").await;
    assert_eq!(support::text(&anon.call("hi", json!({})).await), "hello");
    assert_eq!(client(&gw, "open", Some("mcpg_wrong-key-for-the-public-one"), false).post(&initialize_body()).await.status(), 401);

    assert!(backend.seen().is_empty(), "nothing reached the upstream: {:?}", backend.seen());
    assert!(gw.metric("mcpgate_auth_failures_total{reason=\"missing\"}") >= 1.0);
    assert!(gw.metric("mcpgate_auth_failures_total{reason=\"unknown_key\"}") >= 2.0);
    assert!(gw.metric("mcpgate_auth_failures_total{reason=\"not_allowed\"}") >= 1.0);
    let log = gw.log_text();
    for key in [ALICE, BOB, CAROL, "not-a-key-of-anyone"] {
        assert!(!log.contains(key), "the log holds a key");
    }
}

#[tokio::test]
async fn each_caller_sees_and_calls_only_its_tools_on_every_server_kind() {
    let backend = Backend::start();
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&config(&backend, dir.path(), &[ALICE]));

    // OpenAPI: alice (staff) sees all 19 petstore tools; bob the readers minus nothing else.
    let (alice, bob) = (session(&gw, "petstore", ALICE).await, session(&gw, "petstore", BOB).await);
    let (a, b) = (names(&alice).await, names(&bob).await);
    assert_eq!(a.len(), 19, "{a:?}");
    assert!(b.iter().all(|n| n.starts_with("get") || n.starts_with("find")), "{b:?}");
    assert!(b.contains(&"getPetById".to_string()) && !b.contains(&"deletePet".to_string()) && !b.contains(&"addPet".to_string()));
    let r = bob.call("getPetById", json!({"petId": 3})).await;
    assert_ne!(r["isError"], true, "{r}");
    // A denied call reads exactly like an unknown tool and reaches nothing.
    let denied = bob.request(5, "tools/call", json!({"name": "deletePet", "arguments": {"petId": 3}})).await;
    let unknown = bob.request(5, "tools/call", json!({"name": "noSuchTool", "arguments": {}})).await;
    assert_eq!(denied["error"]["code"], unknown["error"]["code"]);
    assert_eq!(denied["error"]["message"].as_str().unwrap().replace("deletePet", "X"), unknown["error"]["message"].as_str().unwrap().replace("noSuchTool", "X"));
    assert!(backend.seen().iter().all(|s| s.method != "DELETE"), "the denied call reached the upstream");
    let r = alice.call("deletePet", json!({"petId": 3})).await;
    assert_ne!(r["isError"], true, "{r}");
    assert_eq!(backend.last("/api/v3/pet/3").expect("delete reached").method, "DELETE");

    // REST: everyone may say, only alice may shout.
    let (alice, bob) = (session(&gw, "echo", ALICE).await, session(&gw, "echo", BOB).await);
    assert_eq!(names(&alice).await, ["say", "shout"]);
    assert_eq!(names(&bob).await, ["say"]);
    assert_ne!(bob.call("say", json!({"text": "hi"})).await["isError"], true);
    assert_eq!(bob.request(6, "tools/call", json!({"name": "shout", "arguments": {"text": "HI"}})).await["error"]["code"], -32602);
    assert_ne!(alice.call("shout", json!({"text": "HI"})).await["isError"], true);
    assert_eq!(backend.seen().iter().filter(|s| s.uri == "/echo/shout").count(), 1, "only alice's shout reached the backend");

    // Database with Toolbox SQL tools: staff get every tool; bob the two named.
    let (alice, bob) = (session(&gw, "things", ALICE).await, session(&gw, "things", BOB).await);
    let a = names(&alice).await;
    assert!(a.contains(&"query".to_string()) && a.contains(&"by-tag".to_string()), "{a:?}");
    let mut b = names(&bob).await;
    b.sort();
    assert_eq!(b, ["by-tag", "list_tables"]);
    assert!(bob.call("by-tag", json!({"tag": "a"})).await.to_string().contains("apple"));
    assert_eq!(bob.request(7, "tools/call", json!({"name": "query", "arguments": {"sql": "SELECT 1"}})).await["error"]["code"], -32602);
    assert!(alice.call("query", json!({"sql": "SELECT name FROM things WHERE id = 2"})).await.to_string().contains("banana"));
    // The toolset's route has only `by-tag`: the entry's rules apply to what it has.
    assert_eq!(names(&session(&gw, "things.basic", BOB).await).await, ["by-tag"]);

    // Counted as denied, by tool.
    assert_eq!(gw.metric("mcpgate_tool_calls_total{outcome=\"denied\",server=\"echo\",tool=\"shout\"}"), 1.0);
}

#[tokio::test]
async fn the_rust_sdk_authenticates_with_a_bearer_key_and_sees_its_filtered_list() {
    let backend = Backend::start();
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&config(&backend, dir.path(), &[ALICE]));
    let transport = StreamableHttpClientTransport::from_config(StreamableHttpClientTransportConfig::with_uri(gw.url("petstore")).auth_header(BOB));
    let client = ().serve(transport).await.expect("rmcp connects with bob's key");
    let tools = client.list_all_tools().await.expect("tools/list");
    assert!(!tools.is_empty() && tools.iter().all(|t| t.name.starts_with("get") || t.name.starts_with("find")), "{:?}", tools.iter().map(|t| &t.name).collect::<Vec<_>>());
    let args = json!({"petId": 9}).as_object().cloned().unwrap();
    let r = client.call_tool(CallToolRequestParams::new("getPetById").with_arguments(args)).await.expect("call");
    assert_ne!(r.is_error, Some(true), "{r:?}");
    assert!(client.call_tool(CallToolRequestParams::new("addPet")).await.is_err(), "a denied tool is an unknown tool to the SDK");
    client.cancel().await.ok();

    let transport = StreamableHttpClientTransport::from_config(StreamableHttpClientTransportConfig::with_uri(gw.url("petstore")));
    assert!(().serve(transport).await.is_err(), "without a key the SDK cannot connect");
}

#[tokio::test]
async fn a_session_belongs_to_the_caller_that_opened_it() {
    let backend = Backend::start();
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&config(&backend, dir.path(), &[ALICE, ALICE_NEW]));
    let alice = session(&gw, "echo", ALICE).await;
    let mut stolen = client(&gw, "echo", Some(BOB), false);
    stolen.session = alice.session.clone();
    stolen.version = alice.version.clone();
    let r = stolen.post(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})).await;
    assert_eq!(r.status(), 404, "bob presenting alice's session gets no session");
    let mut anonymous = client(&gw, "echo", None, false);
    anonymous.session = alice.session.clone();
    assert_eq!(anonymous.post(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})).await.status(), 401);
    // alice's other key is alice: the session stays hers through a key rotation.
    let mut rotated = client(&gw, "echo", Some(ALICE_NEW), false);
    rotated.session = alice.session.clone();
    rotated.version = alice.version.clone();
    assert_eq!(names(&rotated).await, ["say", "shout"]);
    assert_eq!(names(&alice).await, ["say", "shout"]);
}

#[tokio::test]
async fn credentials_are_never_forwarded_and_consumers_use_their_own_upstream_key() {
    let backend = Backend::start();
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&config(&backend, dir.path(), &[ALICE]));
    let (alice, bob) = (session(&gw, "petstore", ALICE).await, session(&gw, "petstore", BOB).await);
    alice.call("getInventory", json!({})).await;
    let seen = backend.last("/api/v3/store/inventory").expect("alice's call");
    assert_eq!(seen.headers.get("api_key").map(String::as_str), Some("alice-own-upstream-key"), "alice's own upstream key replaces the server's");
    bob.call("getInventory", json!({})).await;
    let seen = backend.last("/api/v3/store/inventory").expect("bob's call");
    assert_eq!(seen.headers.get("api_key").map(String::as_str), Some(API_KEY), "bob has none: the server-wide key");
    let mut bearer = client(&gw, "echo", Some(ALICE), true);
    bearer.initialize("2025-06-18").await;
    bearer.call("say", json!({"text": "x"})).await;
    for s in backend.seen() {
        for (name, value) in &s.headers {
            assert!(!value.contains(ALICE) && !value.contains(BOB), "the client's key reached the upstream in `{name}`");
        }
        assert!(!s.headers.contains_key("x-api-key"));
        assert!(!s.headers.contains_key("authorization"), "{:?}", s.headers);
    }
}

#[tokio::test]
async fn keys_and_rules_are_hot_swapped_and_a_bad_policy_never_replaces_a_good_one() {
    let backend = Backend::start();
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&config(&backend, dir.path(), &[ALICE]));
    let generation = |gw: &Gateway| -> u64 { serde_json::from_str::<Value>(&http_get(gw.admin, "/readyz").unwrap().1).unwrap()["generation"].as_u64().unwrap() };
    let wait_generation = |gw: &Gateway, g: u64| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while generation(gw) < g {
            assert!(std::time::Instant::now() < deadline, "reload never applied\n{}", gw.log_text());
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    let g0 = generation(&gw);
    // Rotate alice's key: the old one stops working, the new one works, with no restart.
    gw.write_config(&config(&backend, dir.path(), &[ALICE_NEW]));
    gw.sighup();
    wait_generation(&gw, g0 + 1);
    assert_eq!(client(&gw, "echo", Some(ALICE), false).post(&initialize_body()).await.status(), 401);
    session(&gw, "echo", ALICE_NEW).await;

    // A rule naming a tool that does not exist is refused; the running policy stays.
    let bad = config(&backend, dir.path(), &[ALICE_NEW]).replace("{tools: [shout], allow: {consumers: [alice]}}", "{tools: [shuot], allow: {consumers: [alice]}}");
    gw.write_config(&bad);
    gw.sighup();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !gw.log_text().contains("`shuot` names no tool") {
        assert!(std::time::Instant::now() < deadline, "the bad rule was not reported\n{}", gw.log_text());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(generation(&gw), g0 + 1);
    assert_eq!(names(&session(&gw, "echo", BOB).await).await, ["say"]);
    // A rule naming an unknown consumer is refused at start, with the field named.
    let dir2 = tempfile::tempdir().unwrap();
    let err = Gateway::try_start(&config(&backend, dir2.path(), &[ALICE]).replace("consumers: [alice, bob]", "consumers: [alice, mallory]")).err().expect("refused");
    assert!(err.1.contains("no consumer named `mallory`"), "{}", err.1);
}

#[tokio::test]
async fn the_admin_listener_needs_its_token_and_never_shows_a_secret() {
    let backend = Backend::start();
    let dir = tempfile::tempdir().unwrap();
    let token = "admin-token-0123456789abcdef";
    let body = config(&backend, dir.path(), &[ALICE]);
    // The support harness writes `admin: {listen: …}`; a second `admin:` would be a YAML
    // error, so the token comes in through a config edited after start.
    let gw = Gateway::start(&body);
    let admin_line = format!("admin: {{listen: \"{}\"}}", gw.admin);
    let with_token = std::fs::read_to_string(&gw.config).unwrap().replace(&admin_line, &format!("admin: {{listen: \"{}\", token: \"{}\"}}", gw.admin, hash(token)));
    std::fs::write(&gw.config, with_token).unwrap();
    gw.sighup();
    let get = |path: &str, auth: Option<&str>| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(gw.admin).unwrap();
        let auth = auth.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        write!(s, "GET {path} HTTP/1.1\r\nHost: {}\r\n{auth}Connection: close\r\n\r\n", gw.admin).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        (out.split(' ').nth(1).and_then(|c| c.parse::<u16>().ok()).unwrap_or(0), out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while get("/admin/servers", None).0 != 401 {
        assert!(std::time::Instant::now() < deadline, "the token never applied\n{}", gw.log_text());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(get("/healthz", None).0, 200, "probes stay open");
    assert_eq!(get("/metrics", None).0, 401);
    assert_eq!(get("/admin/consumers", Some("wrong-token-0123456789")).0, 401);
    let (status, consumers) = get("/admin/consumers", Some(token));
    assert_eq!(status, 200, "{consumers}");
    let v: Value = serde_json::from_str(&consumers).unwrap();
    assert_eq!(v["consumers"][0]["name"], "alice");
    assert_eq!(v["consumers"][0]["api_keys"], 1);
    assert_eq!(v["consumers"][0]["upstream_credentials"], json!(["petstore"]));
    assert!(!consumers.contains("sha256:") && !consumers.contains("alice-own-upstream-key") && !consumers.contains(ALICE), "{consumers}");
    let (status, policies) = get("/admin/policies", Some(token));
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&policies).unwrap();
    assert_eq!(v["servers"]["petstore"]["public"], false);
    assert_eq!(v["servers"]["open"]["public"], true);
    assert_eq!(v["servers"]["echo"]["policy"]["rules"][1]["allow"]["consumers"], json!(["alice"]));
    assert!(!policies.contains("sha256:") && !policies.contains(API_KEY), "{policies}");
}

#[test]
fn hash_key_prints_the_stored_form_and_generates_keys() {
    use sha2::Digest;
    assert_eq!(hash("k"), format!("sha256:{}", hex::encode(sha2::Sha256::digest(b"k"))));
    let out = Command::new(env!("CARGO_BIN_EXE_mcpgate")).args(["hash-key", "--generate"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let key = text.lines().find_map(|l| l.strip_prefix("key:")).unwrap().trim().to_string();
    let stored = text.lines().find_map(|l| l.strip_prefix("hash:")).unwrap().trim().to_string();
    assert!(key.len() >= 40, "{key}");
    assert_eq!(hash(&key), stored);
}
