//! What a newcomer meets in the first hour, through the real binary: the README's
//! conversion command on the shipped spec, `--help`, config typos, server descriptions,
//! operations whose credentials the gateway cannot supply, `--test` with an unreachable
//! spec URL, and `scripts/try.sh` against a running gateway.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{http_get, workspace, Gateway, Raw};

fn mcpgate(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mcpgate")).args(args).current_dir(dir).env("RUST_LOG", "warn").output().expect("run mcpgate")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `mcpgate --config mcpgate.yaml --test` on `yaml` in a temp folder, which must fail:
/// what it printed on stderr.
fn rejected(yaml: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mcpgate.yaml"), yaml).unwrap();
    let out = mcpgate(&["--config", "mcpgate.yaml", "--test"], dir.path());
    assert!(!out.status.success(), "--test accepted:\n{yaml}");
    stderr(&out)
}

/// Polls `admin_path` until its body satisfies `ready` (reloads apply within seconds).
fn wait_for(gw: &Gateway, admin_path: &str, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, body) = http_get(gw.admin, admin_path).expect("admin answers");
        if ready(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{admin_path} never got there: {body}\n--- log ---\n{}", gw.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn tool_names(list: &Value) -> Vec<&str> {
    list["result"]["tools"].as_array().expect("tools").iter().filter_map(|t| t["name"].as_str()).collect()
}

#[tokio::test]
async fn the_readme_conversion_command_serves_the_shipped_petstore_as_a_rest_server() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    assert!(readme.contains("mcpgate openapi-to-tools conf/openapi/petstore.yaml > conf/tools/petstore.yaml"), "the README shows the command tested here");
    let entry = "  - name: petstore\n    type: rest\n    file: tools/petstore.yaml\n";
    assert!(readme.contains(entry), "the README shows the server entry tested here");

    // The command as the README gives it, from the repository's root, minus the redirect.
    let out = mcpgate(&["openapi-to-tools", "conf/openapi/petstore.yaml"], &workspace());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("skipped") && !stderr(&out).contains("warning"), "the shipped spec converts cleanly: {}", stderr(&out));

    // Served from a config beside a `tools/` folder, with the path relative to the config.
    let gw = Gateway::start("");
    std::fs::create_dir(gw.dir().join("tools")).unwrap();
    std::fs::write(gw.dir().join("tools/petstore.yaml"), &out.stdout).unwrap();
    gw.write_config(&format!("servers:\n{entry}"));
    gw.sighup();
    let servers = wait_for(&gw, "/admin/servers", |b| b.contains("\"petstore\""));
    let servers: Value = serde_json::from_str(&servers).unwrap();
    assert_eq!(servers["servers"][0]["type"], "rest");

    let mut raw = Raw::new(gw.url("petstore"));
    raw.initialize("2025-06-18").await;
    let list = raw.request(2, "tools/list", json!({})).await;
    assert_eq!(tool_names(&list), ["listPets", "createPet", "getPet", "deletePet", "placeOrder", "getOrder"]);
    let tool = |name: &str| list["result"]["tools"].as_array().unwrap().iter().find(|t| t["name"] == name).cloned().unwrap();
    assert_eq!(tool("getPet")["inputSchema"]["required"], json!(["petId"]), "a path parameter is a required argument");
    assert_eq!(tool("getOrder")["inputSchema"]["required"], json!(["orderId"]));
    let create = tool("createPet")["inputSchema"].clone();
    assert_eq!(create["required"], json!(["name"]), "the request body's fields are arguments: {create}");
    assert!(create["properties"]["status"]["enum"].is_array(), "{create}");
    assert_eq!(tool("placeOrder")["inputSchema"]["required"], json!(["petId"]));
    assert_eq!(tool("listPets")["annotations"]["readOnlyHint"], true);
}

#[test]
fn help_shows_the_gateway_options_and_not_pingoras() {
    let out = mcpgate(&["--help"], &workspace());
    assert!(out.status.success());
    let help = stdout(&out);
    for wanted in ["--config <FILE>", "--test", "-d, --daemon", "-u, --upgrade", "openapi-to-tools"] {
        assert!(help.contains(wanted), "`{wanted}` missing from:\n{help}");
    }
    for pingora in ["-c, --conf", "-t, --test", "upgrading service", "--nocapture"] {
        assert!(!help.contains(pingora), "`{pingora}` in:\n{help}");
    }
    assert_eq!(help.matches("--test").count(), 1, "one --test:\n{help}");
    assert!(help.lines().any(|l| l.contains("--test") && l.contains("Validate the config")), "{help}");

    // `-t` still means mcpgate's --test, not Pingora's.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.yaml"), "servers: []\n").unwrap();
    let out = mcpgate(&["--config", "c.yaml", "-t"], dir.path());
    assert!(out.status.success() && stdout(&out).contains("OK (0 route(s), 0 tool(s))"), "{}{}", stdout(&out), stderr(&out));
}

#[test]
fn a_misspelt_key_is_named_with_every_valid_key_and_the_near_match() {
    let e = rejected("server:\n  - {name: a, type: rest, file: tools/a.yaml}\n");
    assert!(e.contains("unknown top-level key `server` (did you mean `servers`?)"), "{e}");
    let valid = e.split("valid keys: ").nth(1).unwrap_or_default();
    for key in ["listen", "admin", "session", "limits", "connections", "security", "upstream", "pingora", "servers"] {
        assert!(valid.split(", ").any(|k| k.trim() == key), "`{key}` missing from the valid keys: {e}");
    }

    let e = rejected("servers:\n  - {name: a, type: openapi, spec: x.yaml, desciption: pets}\n");
    assert!(e.contains("server `a`: unknown key `desciption` (did you mean `description`?); valid keys of a `type: openapi` server: name, type, description, policy, spec,"), "{e}");

    let e = rejected("listen: [\"127.0.0.1:0\"]\nlogging: verbose\n");
    assert!(e.contains("unknown top-level key `logging`; valid keys:"), "no near match, no guess: {e}");
}

#[tokio::test]
async fn a_configured_description_wins_over_the_spec_title() {
    let spec = workspace().join("conf/openapi/petstore.yaml");
    let gw = Gateway::start(&format!("servers:\n  - name: mine\n    type: openapi\n    description: The shop's pets, by id\n    spec: {0}\n  - name: plain\n    type: openapi\n    spec: {0}\n", spec.display()));
    let mut raw = Raw::new(gw.url("mine"));
    let init = raw.initialize("2025-06-18").await;
    assert_eq!(init["result"]["serverInfo"]["title"], "The shop's pets, by id", "{init}");
    let mut raw = Raw::new(gw.url("plain"));
    let init = raw.initialize("2025-06-18").await;
    assert_eq!(init["result"]["serverInfo"]["title"], "Pet store", "without a description, the spec's title: {init}");

    let (_, body) = http_get(gw.admin, "/admin/servers").unwrap();
    let servers: Value = serde_json::from_str(&body).unwrap();
    let described = |name: &str| servers["servers"].as_array().unwrap().iter().find(|s| s["name"] == name).map(|s| s["description"].clone()).unwrap();
    assert_eq!(described("mine"), "The shop's pets, by id");
    assert_eq!(described("plain"), "Pet store");
    let (_, body) = http_get(gw.admin, "/admin/servers/mine").unwrap();
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["description"], "The shop's pets, by id");
}

const OAUTH_SPEC: &str = r#"openapi: 3.0.3
info: {title: Accounts, version: "1"}
servers: [{url: "http://127.0.0.1:9/api"}]
security: [{login: [read]}]
components:
  securitySchemes:
    login: {type: oauth2, flows: {clientCredentials: {tokenUrl: "http://127.0.0.1:9/token", scopes: {read: read}}}}
    oidc: {type: openIdConnect, openIdConnectUrl: "http://127.0.0.1:9/.well-known/openid-configuration"}
    key: {type: apiKey, in: header, name: X-Key}
paths:
  /me:
    get: {operationId: getMe, summary: Who am I, responses: {"200": {description: ok}}}
  /orders:
    get: {operationId: listOrders, security: [{oidc: []}, {login: []}], responses: {"200": {description: ok}}}
  /keyed:
    get: {operationId: keyed, security: [{login: []}, {key: []}], responses: {"200": {description: ok}}}
  /open:
    get: {operationId: open, security: [], responses: {"200": {description: ok}}}
"#;

#[tokio::test]
async fn operations_whose_credentials_the_gateway_cannot_supply_are_flagged() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("accounts.yaml"), OAUTH_SPEC).unwrap();
    let out = mcpgate(&["openapi-to-tools", "accounts.yaml"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let (warned, yaml) = (stderr(&out), stdout(&out));
    assert!(warned.contains("warning: GET /me (tool `getMe`): requires OAuth 2 (scheme `login`), which this gateway does not supply: calls are sent without it"), "{warned}");
    assert!(warned.contains("warning: GET /orders (tool `listOrders`): requires OpenID Connect (scheme `oidc`) or OAuth 2 (scheme `login`)"), "{warned}");
    assert!(!warned.contains("`keyed`") && !warned.contains("`open`"), "an injectable alternative, or none needed, is no warning: {warned}");
    assert!(yaml.contains("Requires OAuth 2 (scheme `login`), which this gateway does not supply: calls are sent without it."), "{yaml}");

    let gw = Gateway::start(&format!("servers:\n  - name: acct\n    type: openapi\n    spec: {}\n    credentials: {{key: k}}\n", dir.path().join("accounts.yaml").display()));
    let mut raw = Raw::new(gw.url("acct"));
    raw.initialize("2025-06-18").await;
    let list = raw.request(2, "tools/list", json!({})).await;
    let tools = list["result"]["tools"].as_array().unwrap();
    let description = |name: &str| tools.iter().find(|t| t["name"] == name).and_then(|t| t["description"].as_str()).unwrap_or("").to_string();
    assert_eq!(description("getMe"), "Who am I\n\nRequires OAuth 2 (scheme `login`), which this gateway does not supply: calls are sent without it.");
    assert!(!description("keyed").contains("Requires"), "{}", description("keyed"));

    let (_, ready) = http_get(gw.admin, "/readyz").unwrap();
    let ready: Value = serde_json::from_str(&ready).unwrap();
    let warnings: Vec<&str> = ready["warnings"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(warnings.contains(&"server `acct`: GET /me (tool `getMe`): requires OAuth 2 (scheme `login`), which this gateway does not supply: calls are sent without it"), "{ready}");
    assert_eq!(warnings.len(), 2, "getMe and listOrders: {ready}");
    let (_, detail) = http_get(gw.admin, "/admin/servers/acct").unwrap();
    let detail: Value = serde_json::from_str(&detail).unwrap();
    assert_eq!(detail["status"]["warnings"].as_array().map(Vec::len), Some(2), "{detail}");
    assert!(gw.log_text().contains("server `acct`: GET /me (tool `getMe`): requires OAuth 2"), "logged at load");
}

#[test]
fn test_says_it_fetches_url_specs_when_one_cannot_be_reached() {
    let e = rejected("servers:\n  - {name: remote, type: openapi, spec: \"http://127.0.0.1:1/spec.yaml\"}\n");
    assert!(e.contains("server `remote`: cannot fetch OpenAPI document `http://127.0.0.1:1/spec.yaml`"), "{e}");
    assert!(e.contains("--test builds every server as a start would, fetching URL specs too, so it needs to reach http://127.0.0.1:1/spec.yaml (offline it fails)"), "{e}");
    assert!(e.contains("point `spec:` at a local copy"), "{e}");

    // A local spec that is missing is no network matter.
    let e = rejected("servers:\n  - {name: local, type: openapi, spec: nowhere.yaml}\n");
    assert!(e.contains("nowhere.yaml") && !e.contains("fetching URL specs"), "{e}");
}

fn try_sh(gateway: &str, args: &[&str]) -> Output {
    Command::new("bash").arg(workspace().join("scripts/try.sh")).args(args).env("MCPGATE_URL", gateway).output().expect("run scripts/try.sh (needs bash, curl, python3)")
}

#[test]
fn try_sh_tells_an_unknown_server_from_a_gateway_that_is_not_there() {
    let gw = Gateway::start(
        "servers:\n  - name: local\n    type: rest\n    server: {name: local}\n    tools:\n      - name: hello\n        description: says hello\n        responseTemplate: {body: 'hello {{.args.who}}'}\n        args: [{name: who, type: string}]\n",
    );
    let base = format!("http://{}", gw.addr);

    let out = try_sh(&base, &["local", "hello", r#"{"who":"you"}"#]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("== tools on /mcp/local\n - hello — says hello"), "{text}");
    assert!(text.contains("hello you"), "{text}");

    let out = try_sh(&base, &["nosuch"]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains(&format!("POST {base}/mcp/nosuch: HTTP 404: Not Found: no MCP server named `nosuch`")), "{e}");
    assert!(!e.contains("is the gateway running"), "the gateway answered: {e}");

    let out = try_sh(&base, &["local", "nope"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("tools/call nope: JSON-RPC error -32602"), "{}", stderr(&out));

    let nobody = format!("http://127.0.0.1:{}", support::free_port());
    let out = try_sh(&nobody, &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains(&format!("no answer from {nobody}/mcp/gateway: is the gateway running at {nobody}?")), "{}", stderr(&out));
}
