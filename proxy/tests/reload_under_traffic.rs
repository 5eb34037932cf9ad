//! Zero-downtime config swaps: clients drive continuous traffic while the config is
//! rewritten (servers added, changed, removed) and reloaded by SIGHUP and by file change;
//! not one request may fail. Invalid configs are rejected and the old one keeps serving.

mod support;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use support::backend::Backend;
use support::{Gateway, Raw};

fn config(backend: &Backend, generation: usize) -> String {
    let b = backend.url();
    let mut s = format!(
        "servers:\n  - name: steady\n    type: rest\n    server: {{name: steady}}\n    tools:\n      - name: echo\n        description: generation {generation}\n        args: [{{name: n, type: integer, required: true, position: query}}]\n        requestTemplate: {{url: \"{b}/echo/steady\"}}\n      - name: local\n        description: direct\n        responseTemplate: {{body: 'gen {generation}'}}\n"
    );
    // Servers come and go around the one under traffic.
    for extra in 0..(generation % 3) {
        s.push_str(&format!("  - name: extra{extra}\n    type: rest\n    server: {{name: extra}}\n    tools:\n      - name: t\n        description: x\n        responseTemplate: {{body: '{extra}'}}\n"));
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reloads_under_traffic_lose_nothing() {
    let backend = Backend::start();
    let gw = Gateway::start(&config(&backend, 0));
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for worker in 0..4 {
        let (url, stop, ok, failed) = (gw.url("steady"), stop.clone(), ok.clone(), failed.clone());
        clients.push(tokio::spawn(async move {
            let mut c = Raw::new(url);
            c.initialize("2025-06-18").await;
            let mut i = 0i64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let (tool, args) = if i % 2 == 0 { ("echo", json!({"n": i})) } else { ("local", json!({})) };
                let resp = c.post(&json!({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": tool, "arguments": args}})).await;
                let good = resp.status() == 200 && resp.json::<serde_json::Value>().await.map(|v| v["result"].is_object() && v["result"]["isError"] != true).unwrap_or(false);
                if good {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                    eprintln!("worker {worker}: request {i} failed");
                }
            }
        }));
    }
    for generation in 1..=12 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        gw.write_config(&config(&backend, generation));
        if generation % 2 == 0 {
            gw.sighup();
        }
        // Wait for this generation to be served (file polling takes up to a second).
        let mut served = false;
        for _ in 0..60 {
            let (_, body) = support::http_get(gw.admin, "/admin/servers").unwrap();
            let extras = (0..3).filter(|e| body.contains(&format!("\"extra{e}\""))).count();
            if extras == generation % 3 && support::http_get(gw.admin, "/admin/servers/steady").unwrap().1.contains(&format!("generation {generation}")) {
                served = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(served, "generation {generation} was not swapped in\n{}", gw.log_text());
    }
    // An invalid config is rejected; the old one keeps serving.
    let failures_before = gw.metric("mcpgate_config_reload_failures_total");
    gw.write_config("servers:\n  - name: steady\n    type: rest\n    bogus_field: 1\n");
    gw.sighup();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(gw.metric("mcpgate_config_reload_failures_total") > failures_before);
    assert!(gw.log_text().contains("bogus_field"), "the rejection names the field");
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("{ok} requests succeeded, {failed} failed across 12 reloads");
    assert!(ok > 100, "too little traffic to mean anything: {ok}");
    assert_eq!(failed, 0);
    // Removed servers are gone, the survivor still answers.
    let mut c = Raw::new(gw.url("steady"));
    c.initialize("2025-06-18").await;
    assert!(gw.metric("mcpgate_config_reloads_total") >= 12.0);
}

#[test]
fn config_test_flag_reports_file_server_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "servers:\n  - name: pets\n    type: openapi\n    spec: x.yaml\n    bsae_url: http://x\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mcpgate")).arg("--config").arg(&bad).arg("--test").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml") && err.contains("server `pets`") && err.contains("bsae_url"), "{err}");

    let missing_spec = dir.path().join("missing.yaml");
    std::fs::write(&missing_spec, "servers:\n  - name: pets\n    type: openapi\n    spec: nowhere.yaml\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mcpgate")).arg("--config").arg(&missing_spec).arg("--test").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("server `pets`: cannot read OpenAPI document"));

    let shipped = support::workspace().join("conf/mcpgate.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_mcpgate")).arg("--config").arg(&shipped).arg("--test").output().unwrap();
    assert!(out.status.success(), "the shipped config is valid: {}", String::from_utf8_lossy(&out.stderr));
}
