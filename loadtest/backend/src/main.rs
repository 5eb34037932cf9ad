//! The benchmarks' REST backend: `GET /items/{id}` returns a small JSON object.
//!
//! `backend --listen 127.0.0.1:P [--threads N]`

use axum::extract::Path;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

async fn item(Path(id): Path<u64>) -> Json<Value> {
    Json(json!({"id": id, "name": format!("item {id}"), "price": 9.99, "tags": ["a", "b"], "in_stock": true, "description": "A small object, about the size of a typical REST answer."}))
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let listen = arg("--listen").unwrap_or_else(|| "127.0.0.1:18200".into());
    let threads = arg("--threads").and_then(|t| t.parse().ok()).unwrap_or(1);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build().expect("runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen).await.expect("bind");
        axum::serve(listener, Router::new().route("/items/{id}", get(item))).await.expect("serve");
    });
}
