//! OpenAPI and REST tools end to end: real MCP clients (the official Rust SDK `rmcp`, and
//! raw HTTP) → the real gateway binary → a real REST backend.

mod support;

use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::{json, Value};
use support::backend::{Backend, API_KEY};
use support::{text, Gateway, Raw};

fn corpus_petstore() -> String {
    support::shared().join("openapi-corpus/petstore/openapi.yaml").display().to_string()
}

fn petstore_config(backend: &Backend) -> String {
    format!("servers:\n  - name: petstore\n    type: openapi\n    spec: {}\n    base_url: {}/api/v3\n    credentials: {{api_key: \"{API_KEY}\"}}\n    timeout: 2s\n", corpus_petstore(), backend.url())
}

#[tokio::test]
async fn rmcp_client_lists_and_calls_petstore_tools() {
    let backend = Backend::start();
    let gw = Gateway::start(&petstore_config(&backend));
    let client = ().serve(StreamableHttpClientTransport::from_uri(gw.url("petstore"))).await.expect("rmcp connects");
    let tools = client.list_all_tools().await.expect("tools/list");
    assert_eq!(tools.len(), 19, "every petstore operation is a tool");
    let get = tools.iter().find(|t| t.name == "getPetById").expect("getPetById");
    assert_eq!(get.input_schema.get("required"), Some(&json!(["petId"])));
    assert!(get.output_schema.is_some());
    assert_eq!(get.annotations.as_ref().and_then(|a| a.read_only_hint), Some(true));

    let args = json!({"petId": 7}).as_object().cloned().unwrap();
    let r = client.call_tool(CallToolRequestParams::new("getPetById").with_arguments(args)).await.expect("call");
    assert_ne!(r.is_error, Some(true), "{r:?}");
    assert_eq!(r.structured_content.as_ref().unwrap()["name"], "pet-7");
    assert_eq!(backend.last("/api/v3/pet/7").expect("backend saw the call").method, "GET");

    let args = json!({"status": "pending"}).as_object().cloned().unwrap();
    let r = client.call_tool(CallToolRequestParams::new("findPetsByStatus").with_arguments(args)).await.expect("call");
    assert_ne!(r.is_error, Some(true));
    assert_eq!(backend.last("/api/v3/pet/findByStatus").unwrap().uri, "/api/v3/pet/findByStatus?status=pending");

    let args = json!({"name": "Rex \"the\" dog", "photoUrls": ["a"], "status": "sold"}).as_object().cloned().unwrap();
    let r = client.call_tool(CallToolRequestParams::new("addPet").with_arguments(args)).await.expect("call");
    assert_ne!(r.is_error, Some(true), "{r:?}");
    let seen = backend.last("/api/v3/pet").unwrap();
    assert_eq!(seen.method, "POST");
    let sent: Value = serde_json::from_str(&seen.body).expect("the gateway sent JSON");
    assert_eq!(sent["name"], "Rex \"the\" dog");
    assert_eq!(seen.headers.get("content-type").map(String::as_str), Some("application/json"));

    // Upstream credentials come from the config, never from the client.
    let r = client.call_tool(CallToolRequestParams::new("getInventory")).await.expect("call");
    assert_ne!(r.is_error, Some(true), "{r:?}");
    assert_eq!(r.structured_content.as_ref().unwrap()["available"], 7);
    assert_eq!(backend.last("/api/v3/store/inventory").unwrap().headers.get("api_key").map(String::as_str), Some(API_KEY));
    client.cancel().await.ok();
}

#[tokio::test]
async fn errors_are_tool_results_the_gateway_keeps_serving() {
    let backend = Backend::start();
    let gw = Gateway::start(&petstore_config(&backend));
    let mut c = Raw::new(gw.url("petstore"));
    c.initialize("2025-06-18").await;

    // Non-2xx → isError with the status and a body excerpt.
    let r = c.call("getPetById", json!({"petId": 4242})).await;
    assert_eq!(r["isError"], true);
    assert!(text(&r).contains("HTTP 404") && text(&r).contains("Pet not found"), "{r}");

    // Invalid arguments never reach the backend; the message names the field and rule.
    let before = backend.seen().len();
    let r = c.call("getPetById", json!({"petId": "seven"})).await;
    assert_eq!(r["isError"], true);
    assert!(text(&r).contains("petId") && text(&r).contains("integer"), "{r}");
    let r = c.call("getPetById", json!({})).await;
    assert!(text(&r).contains("\"petId\" is a required property"), "{r}");
    assert_eq!(backend.seen().len(), before);

    // Unknown tool is a protocol error.
    let v = c.request(9, "tools/call", json!({"name": "nope", "arguments": {}})).await;
    assert_eq!(v["error"]["code"], -32602);

    // The client's Authorization header is not forwarded.
    let resp = c
        .http
        .post(&c.url)
        .header("accept", support::ACCEPT)
        .header("content-type", "application/json")
        .header("mcp-session-id", c.session.clone().unwrap())
        .header("authorization", "Bearer client-secret")
        .body(json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "getPetById", "arguments": {"petId": 3}}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = backend.last("/api/v3/pet/3").unwrap();
    assert!(!seen.headers.contains_key("authorization"), "client credentials leaked upstream: {seen:?}");
    assert!(!seen.headers.contains_key("mcp-session-id"));
    assert_eq!(seen.headers.get("host").map(String::as_str), Some(backend.addr.to_string().as_str()));

    // Dead backend: clear isError, and the next call still works.
    drop(backend);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for _ in 0..2 {
        let r = c.call("getPetById", json!({"petId": 1})).await;
        assert_eq!(r["isError"], true);
        assert!(text(&r).contains("the API at 127.0.0.1:"), "{r}");
    }
    let r = c.call("getPetById", json!({"petId": 1})).await;
    assert!(text(&r).contains("cannot connect to the API"), "{r}");
    let v = c.request(10, "ping", json!({})).await;
    assert_eq!(v["result"], json!({}));
}

fn rest_config(backend: &Backend) -> String {
    let b = backend.url();
    format!(
        r#"servers:
  - name: api
    type: rest
    timeout: 500ms
    max_response_bytes: 1KiB
    server:
      name: api
      config: {{region: eu-1}}
      securitySchemes:
        - {{id: bearer, type: http, scheme: bearer}}
        - {{id: basic, type: http, scheme: basic}}
        - {{id: qkey, type: apiKey, in: query, name: key}}
        - {{id: ckey, type: apiKey, in: cookie, name: session}}
    tools:
      - name: echo_get
        description: echo with path, query, header and cookie args
        args:
          - {{name: id, type: string, required: true, position: path}}
          - {{name: q, type: string, position: query}}
          - {{name: tags, type: array, items: {{type: string}}, position: query}}
          - {{name: X-Trace, type: string, position: header}}
          - {{name: theme, type: string, position: cookie}}
        requestTemplate:
          url: "{b}/echo/items/{{id}}"
          method: GET
          headers: [{{key: x-region, value: "{{{{.config.region}}}}"}}]
      - name: echo_body
        description: template body
        args: [{{name: msg, type: string, required: true}}, {{name: n, type: integer}}]
        requestTemplate:
          url: "{b}/echo/body"
          method: POST
          body: '{{"message": "{{{{.args.msg}}}}", "n": {{{{.args.n}}}}}}'
        responseTemplate:
          body: 'server saw: {{{{.body}}}}'
      - name: echo_json
        description: argsToJsonBody
        args: [{{name: a, type: string}}, {{name: b, type: integer}}]
        requestTemplate: {{url: "{b}/echo/json", method: POST, argsToJsonBody: true}}
      - name: echo_form
        description: argsToFormBody
        args: [{{name: a, type: string}}, {{name: b, type: string}}]
        requestTemplate: {{url: "{b}/echo/form", method: POST, argsToFormBody: true}}
      - name: bearer
        description: bearer auth
        requestTemplate: {{url: "{b}/echo/bearer", method: GET, security: {{id: bearer}}}}
      - name: basic
        description: basic auth
        requestTemplate: {{url: "{b}/echo/basic", method: GET, security: {{id: basic}}}}
      - name: qkey
        description: query api key
        requestTemplate: {{url: "{b}/echo/qkey", method: GET, security: {{id: qkey}}}}
      - name: ckey
        description: cookie api key
        requestTemplate: {{url: "{b}/echo/ckey", method: GET, security: {{id: ckey}}}}
      - name: image
        description: an image
        requestTemplate: {{url: "{b}/image.png"}}
      - name: slow
        description: slower than the timeout
        requestTemplate: {{url: "{b}/slow?ms=3000"}}
      - name: big
        description: bigger than the cap
        requestTemplate: {{url: "{b}/big?bytes=5000"}}
      - name: empty
        description: no content
        requestTemplate: {{url: "{b}/empty", method: DELETE}}
      - name: teapot
        description: error template
        requestTemplate: {{url: "{b}/status/418"}}
        errorResponseTemplate: 'failed with {{{{.code}}}}: {{{{.error}}}}'
      - name: hello
        description: direct response
        args: [{{name: who, type: string, required: true}}]
        responseTemplate: {{body: '{{"greeting": "hello {{{{.args.who}}}}"}}'}}
    credentials: {{bearer: tok-123, basic: "user:pa:ss", qkey: "k&1", ckey: c-9}}
"#
    )
}

#[tokio::test]
async fn rest_tools_build_requests_and_map_responses() {
    let backend = Backend::start();
    let gw = Gateway::start(&rest_config(&backend));
    rest_tool_checks(&gw, &backend).await;
}

/// The removed proxy-phase call mode is refused at load with a message saying what to do.
#[test]
fn the_removed_proxy_mode_is_a_clear_config_error() {
    let backend = Backend::start();
    let err = Gateway::try_start(&format!("upstream: {{mode: proxy}}\n{}", rest_config(&backend))).err().expect("refused");
    assert!(err.1.contains("upstream.mode") && err.1.contains("no longer supported") && err.1.contains("remove the key"), "{}", err.1);
    // `connector` still loads (it is what every call uses).
    Gateway::start(&format!("upstream: {{mode: connector}}\n{}", rest_config(&backend)));
}

async fn rest_tool_checks(gw: &Gateway, backend: &Backend) {
    let mut c = Raw::new(gw.url("api"));
    c.initialize("2025-11-25").await;

    let r = c.call("echo_get", json!({"id": "a/../b?c#d", "q": "x y&z=1", "tags": ["t1", "t2"], "X-Trace": "tr-1", "theme": "dark mode"})).await;
    assert_ne!(r["isError"], true, "{r}");
    let echo = &r["structuredContent"];
    assert_eq!(echo["path"], "/echo/items/a%2F..%2Fb%3Fc%23d", "a path argument stays one segment");
    assert_eq!(echo["query"], "q=x+y%26z%3D1&tags=t1&tags=t2");
    assert_eq!(echo["headers"]["x-trace"], "tr-1");
    assert_eq!(echo["headers"]["x-region"], "eu-1");
    assert_eq!(echo["headers"]["cookie"], "theme=dark%20mode");

    // A dot segment would move the call to another path: refused before anything is sent.
    let before = backend.seen().len();
    for id in ["..", "."] {
        let r = c.call("echo_get", json!({"id": id})).await;
        assert_eq!(r["isError"], true, "{r}");
        assert!(text(&r).contains("`id`") && text(&r).contains("path segment"), "{r}");
    }
    assert_eq!(backend.seen().len(), before);

    // CR/LF in a header argument is refused before anything is sent.
    let before = backend.seen().len();
    let r = c.call("echo_get", json!({"id": "1", "X-Trace": "a\r\nX-Injected: yes"})).await;
    assert_eq!(r["isError"], true);
    assert!(text(&r).contains("X-Trace"), "{r}");
    assert_eq!(backend.seen().len(), before);

    // A quote in an argument cannot break out of the JSON string it lands in.
    let r = c.call("echo_body", json!({"msg": "he said \"hi\", \"admin\": true", "n": 3})).await;
    assert_ne!(r["isError"], true, "{r}");
    let sent: Value = serde_json::from_str(&backend.last("/echo/body").unwrap().body).unwrap();
    assert_eq!(sent, json!({"message": "he said \"hi\", \"admin\": true", "n": 3}));
    assert!(text(&r).starts_with("server saw: "), "{r}");

    let _ = c.call("echo_json", json!({"a": "x", "b": 2})).await;
    assert_eq!(serde_json::from_str::<Value>(&backend.last("/echo/json").unwrap().body).unwrap(), json!({"a": "x", "b": 2}));
    let _ = c.call("echo_form", json!({"a": "x y", "b": "&"})).await;
    let form = backend.last("/echo/form").unwrap();
    assert_eq!(form.body, "a=x+y&b=%26");
    assert_eq!(form.headers["content-type"], "application/x-www-form-urlencoded");

    let _ = c.call("bearer", json!({})).await;
    assert_eq!(backend.last("/echo/bearer").unwrap().headers["authorization"], "Bearer tok-123");
    let _ = c.call("basic", json!({})).await;
    assert_eq!(backend.last("/echo/basic").unwrap().headers["authorization"], "Basic dXNlcjpwYTpzcw==");
    let _ = c.call("qkey", json!({})).await;
    assert_eq!(backend.last("/echo/qkey").unwrap().uri, "/echo/qkey?key=k%261");
    let _ = c.call("ckey", json!({})).await;
    assert_eq!(backend.last("/echo/ckey").unwrap().headers["cookie"], "session=c-9");

    let r = c.call("image", json!({})).await;
    assert_eq!(r["content"][0]["type"], "image");
    assert_eq!(r["content"][0]["mimeType"], "image/png");

    let r = c.call("slow", json!({})).await;
    assert_eq!(r["isError"], true);
    assert!(text(&r).contains("did not answer within"), "{r}");

    let r = c.call("big", json!({})).await;
    assert_ne!(r["isError"], true);
    assert!(text(&r).contains("[truncated"), "{r}");
    assert!(text(&r).len() < 1200);

    let r = c.call("empty", json!({})).await;
    assert_eq!(text(&r), "success (HTTP 204)");
    let r = c.call("teapot", json!({})).await;
    assert_eq!(r["isError"], true);
    assert_eq!(text(&r), "failed with 418: status 418");

    let r = c.call("hello", json!({"who": "a\"b"})).await;
    assert_eq!(r["structuredContent"], json!({"greeting": "hello a\"b"}));
    // The connection-level state is intact after all of that.
    assert_eq!(c.request(5, "ping", json!({})).await["result"], json!({}));
}

#[tokio::test]
async fn large_requests_and_batches_use_the_connector_path() {
    let backend = Backend::start();
    let gw = Gateway::start(&rest_config(&backend));
    let mut c = Raw::new(gw.url("api"));
    c.initialize("2025-03-26").await;
    // Bigger than Pingora's 64 KiB retry buffer.
    let big = "y".repeat(100_000);
    let r = c.call("echo_json", json!({"a": big, "b": 1})).await;
    assert_ne!(r["isError"], true, "{r}");
    assert_eq!(backend.last("/echo/json").unwrap().body.len(), 100_000 + r#"{"a":"","b":1}"#.len());
    // A 2025-03-26 batch with two calls and a notification.
    let resp = c
        .post(&json!([
            {"jsonrpc": "2.0", "id": "a", "method": "tools/call", "params": {"name": "bearer", "arguments": {}}},
            {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 1, "progress": 1}},
            {"jsonrpc": "2.0", "id": "b", "method": "ping"}
        ]))
        .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    let items = v.as_array().expect("a batch answer is an array");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], "a");
    assert_ne!(items[0]["result"]["isError"], true);
    assert_eq!(items[1]["result"], json!({}));
}

#[tokio::test]
async fn specs_load_from_urls() {
    let backend = Backend::start();
    let gw = Gateway::start(&format!("servers:\n  - name: remote\n    type: openapi\n    spec: {0}/specs/petstore.yaml\n    base_url: {0}/api/v3\n    include: {{tags: [pet]}}\n    credentials: {{api_key: k}}\n", backend.url()));
    let mut c = Raw::new(gw.url("remote"));
    c.initialize("2025-06-18").await;
    let list = c.request(1, "tools/list", json!({})).await;
    assert_eq!(list["result"]["tools"].as_array().unwrap().len(), 8, "the pet-tagged operations");
    let r = c.call("getPetById", json!({"petId": 5})).await;
    assert_eq!(r["structuredContent"]["name"], "pet-5");
}

#[test]
fn shipped_examples_validate() {
    let examples = support::workspace().join("conf/examples");
    let petstore = corpus_petstore();
    let mut checked = 0;
    for entry in std::fs::read_dir(&examples).unwrap().flatten() {
        let path = entry.path();
        // Examples that fetch a spec over the internet get the same spec from the corpus.
        let text = std::fs::read_to_string(&path).unwrap().replace("https://petstore3.swagger.io/api/v3/openapi.json", &petstore);
        let copy = examples.join(format!(".check-{}", path.file_name().unwrap().to_string_lossy()));
        std::fs::write(&copy, text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcpgate")).arg("--config").arg(&copy).arg("--test").output().unwrap();
        std::fs::remove_file(&copy).ok();
        assert!(out.status.success(), "{}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
        checked += 1;
    }
    assert!(checked >= 2);
}
