//! A real REST backend for the tests (axum on its own thread and runtime): an echo
//! endpoint, status/slow/image/large/empty endpoints, and part of the Swagger Petstore v3
//! so the corpus's real `petstore/openapi.yaml` can be served through the gateway.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

/// One request the backend received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Raw path and query.
    pub uri: String,
    /// Headers (lower-case names).
    pub headers: BTreeMap<String, String>,
    /// Body.
    pub body: String,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// The running backend.
pub struct Backend {
    /// Its address.
    pub addr: SocketAddr,
    log: Log,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// A 1×1 PNG.
pub const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4, 0x89, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x44, 0x41, 0x54,
    0x78, 0x9C, 0x63, 0x60, 0x00, 0x02, 0x00, 0x00, 0x05, 0x00, 0x01, 0x7A, 0x5E, 0xAB, 0x3F, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
];

/// The api_key the petstore's `/store/inventory` requires.
pub const API_KEY: &str = "secret-key";

impl Backend {
    /// Starts the backend on a free port.
    pub fn start() -> Backend {
        let log: Log = Arc::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let state = log.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
                addr_tx.send(listener.local_addr().expect("addr")).expect("send addr");
                let app = router(state);
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            });
        });
        let addr = addr_rx.recv().expect("backend address");
        Backend { addr, log, stop: Some(tx) }
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The last request seen whose URI starts with `prefix`.
    pub fn last(&self, prefix: &str) -> Option<Seen> {
        self.seen().into_iter().rev().find(|s| s.uri.starts_with(prefix))
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

fn router(log: Log) -> Router {
    Router::new()
        .route("/echo", any(echo))
        .route("/echo/{*rest}", any(echo))
        .route("/status/{code}", any(status))
        .route("/slow", get(slow))
        .route("/image.png", get(|| async { ([("content-type", "image/png")], PNG) }))
        .route("/big", get(big))
        .route("/text", get(|| async { ([("content-type", "text/plain")], "plain words") }))
        .route("/empty", any(|| async { StatusCode::NO_CONTENT }))
        .route("/api/v3/pet", post(pet_upsert).put(pet_upsert))
        .route("/api/v3/pet/findByStatus", get(find_by_status))
        .route("/api/v3/pet/{id}", get(get_pet).delete(delete_pet))
        .route("/api/v3/store/inventory", get(inventory))
        .route("/api/v3/user/login", get(login))
        .route("/specs/petstore.yaml", get(petstore_spec))
        .layer(axum::middleware::from_fn_with_state(log.clone(), record))
        .with_state(log)
}

async fn record(State(log): State<Log>, req: Request, next: axum::middleware::Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 16 << 20).await.unwrap_or_default();
    let seen = Seen {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        headers: parts.headers.iter().map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    };
    if let Ok(mut l) = log.lock() {
        l.push(seen);
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

async fn echo(req: Request) -> Json<Value> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 16 << 20).await.unwrap_or_default();
    let headers: BTreeMap<String, String> = parts.headers.iter().map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect();
    Json(json!({"method": parts.method.as_str(), "path": parts.uri.path(), "query": parts.uri.query(), "headers": headers, "body": String::from_utf8_lossy(&bytes)}))
}

async fn status(Path(code): Path<u16>) -> Response {
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    (code, Json(json!({"error": format!("status {}", code.as_u16()), "code": code.as_u16()}))).into_response()
}

async fn slow(Query(q): Query<BTreeMap<String, u64>>) -> Json<Value> {
    tokio::time::sleep(Duration::from_millis(q.get("ms").copied().unwrap_or(1000))).await;
    Json(json!({"slept": true}))
}

async fn big(Query(q): Query<BTreeMap<String, usize>>) -> Response {
    let n = q.get("bytes").copied().unwrap_or(1 << 20);
    ([("content-type", "text/plain")], "x".repeat(n)).into_response()
}

fn pet(id: i64, status: &str) -> Value {
    json!({"id": id, "name": format!("pet-{id}"), "category": {"id": 1, "name": "Dogs"}, "photoUrls": [], "tags": [], "status": status})
}

async fn get_pet(Path(id): Path<String>) -> Response {
    match id.parse::<i64>() {
        Ok(id) if id > 0 && id < 1000 => Json(pet(id, "available")).into_response(),
        Ok(_) => (StatusCode::NOT_FOUND, Json(json!({"message": "Pet not found"}))).into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, Json(json!({"message": format!("Invalid ID supplied: {id}")}))).into_response(),
    }
}

async fn delete_pet(Path(id): Path<i64>, headers: HeaderMap) -> Response {
    let _ = headers;
    (StatusCode::OK, format!("Pet {id} deleted")).into_response()
}

async fn pet_upsert(body: Bytes) -> Response {
    match serde_json::from_slice::<Value>(&body) {
        Ok(mut v) if v.get("name").is_some() => {
            if v.get("id").is_none() {
                v["id"] = json!(10);
            }
            Json(v).into_response()
        }
        _ => (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({"message": "Validation exception: name is required"}))).into_response(),
    }
}

async fn find_by_status(Query(q): Query<Vec<(String, String)>>) -> Json<Value> {
    let statuses: Vec<String> = q.into_iter().filter(|(k, _)| k == "status").map(|(_, v)| v).collect();
    Json(json!(statuses.iter().enumerate().map(|(i, s)| pet(i as i64 + 1, s)).collect::<Vec<_>>()))
}

async fn inventory(headers: HeaderMap) -> Response {
    match headers.get("api_key").and_then(|v| v.to_str().ok()) {
        Some(API_KEY) => Json(json!({"available": 7, "pending": 2, "sold": 1})).into_response(),
        _ => (StatusCode::UNAUTHORIZED, Json(json!({"message": "api_key required"}))).into_response(),
    }
}

async fn login(Query(q): Query<BTreeMap<String, String>>) -> Response {
    ([("content-type", "text/plain"), ("x-rate-limit", "100")], format!("logged in user session: {}", q.get("username").map_or("?", String::as_str))).into_response()
}

async fn petstore_spec() -> Response {
    let path = super::shared().join("openapi-corpus/petstore/openapi.yaml");
    match std::fs::read_to_string(path) {
        Ok(text) => ([("content-type", "application/yaml")], text).into_response(),
        Err(e) => (StatusCode::NOT_FOUND, e.to_string()).into_response(),
    }
}
