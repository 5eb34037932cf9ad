//! The official MCP conformance suite (`@modelcontextprotocol/conformance`, server mode)
//! against the gateway's own servers: a REST tool server and a database server, protocol
//! 2025-11-25 (cumulative: initialize, session lifecycle, ping, logging, tools/list, SSE
//! streams, DNS rebinding). What the suite tests with its own fixture tools is baselined in
//! `tests/conformance/expected-failures.yaml`, each line with its reason.
//!
//! The suite and Node 22 come from `tests/clients/install.sh` (run by `scripts/test.sh`),
//! which installs them under the target directory.

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::Gateway;

const CONFIG: &str = r#"
servers:
  - name: local
    type: rest
    server: {name: local}
    tools:
      - name: hello
        description: greets
        args: [{name: who, type: string, required: true}]
        responseTemplate: {body: '{"greeting": "hello {{.args.who}}"}'}
  - name: db
    type: database
    source: {url: "sqlite::memory:"}
"#;

/// The directory holding `node` (22) and `conformance`, or `None` outside CI when the Node
/// tools were not installed.
fn node_bin() -> Option<PathBuf> {
    // The binary is `<target>/debug/mcpgate`; the tools are in `<target>/clients`.
    let target = std::path::Path::new(env!("CARGO_BIN_EXE_mcpgate")).ancestors().nth(2).map(std::path::Path::to_path_buf).unwrap_or_default();
    let bin = target.join("clients/node_modules/.bin");
    if bin.join("conformance").exists() && bin.join("node").exists() {
        return Some(bin);
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "the conformance suite is not installed and CI=true: run tests/clients/install.sh");
    eprintln!("skipping: the conformance suite is not installed (tests/clients/install.sh)");
    None
}

fn run_suite(bin: &std::path::Path, url: &str, out: &std::path::Path) -> (bool, String) {
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let baseline = support::workspace().join("tests/conformance/expected-failures.yaml");
    let run = Command::new(bin.join("conformance")).args(["server", "--url", url, "--spec-version", "2025-11-25", "--expected-failures"]).arg(&baseline).arg("-o").arg(out).env("PATH", path).output().expect("run the conformance suite");
    let text = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    (run.status.success(), text)
}

#[test]
fn the_official_conformance_suite_passes_on_every_server_kind() {
    let Some(bin) = node_bin() else { return };
    let gw = Gateway::start(CONFIG);
    let out = tempfile::tempdir().unwrap();
    for server in ["local", "db"] {
        let (ok, text) = run_suite(&bin, &gw.url(server), out.path());
        let summary = text.split("=== SUMMARY ===").nth(1).unwrap_or(&text);
        println!("/mcp/{server}:{summary}");
        assert!(ok, "conformance failures on /mcp/{server} beyond tests/conformance/expected-failures.yaml:\n{text}\n--- gateway log ---\n{}", gw.log_text());
        // The scenarios this issue is about must have run and passed, not been skipped.
        for scenario in ["server-initialize", "server-session-lifecycle", "ping", "logging-set-level", "tools-list", "dns-rebinding-protection"] {
            assert!(summary.lines().any(|l| l.contains(&format!("✓ {scenario}:"))), "{scenario} did not pass on /mcp/{server}:\n{summary}");
        }
    }
}
