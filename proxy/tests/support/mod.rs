//! Shared by the integration tests: spawn the real `mcpgate` binary on free ports, talk
//! MCP to it over real sockets, and run a real REST backend.

#![allow(dead_code)]

pub mod backend;
pub mod db;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A free loopback port (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// A running gateway process.
pub struct Gateway {
    /// MCP listener.
    pub addr: SocketAddr,
    /// Admin listener.
    pub admin: SocketAddr,
    /// The config file.
    pub config: PathBuf,
    /// The MCP `listen` address in the config (`addr`, or `0.0.0.0:port`).
    listen: String,
    child: Child,
    dir: tempfile::TempDir,
    log: PathBuf,
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `mcpgate hash-key` on `key`, through the binary as an operator runs it: the stored
/// form of an API key for `consumers[].api_keys`.
pub fn hash_key(key: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcpgate")).arg("hash-key").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("mcpgate hash-key");
    child.stdin.take().expect("stdin").write_all(format!("{key}\n").as_bytes()).expect("write key");
    let out = child.wait_with_output().expect("hash-key output");
    assert!(out.status.success());
    String::from_utf8(out.stdout).expect("utf-8").trim().to_string()
}

/// The shared material (`../shared` beside the checkout, or `MCPGATE_SHARED`).
pub fn shared() -> PathBuf {
    std::env::var_os("MCPGATE_SHARED").map(PathBuf::from).unwrap_or_else(|| workspace().join("../shared"))
}

impl Gateway {
    /// Starts the gateway with `body` (a config without `listen`/`admin`, which are
    /// added with free ports) and waits until `/readyz` answers 200.
    pub fn start(body: &str) -> Gateway {
        Self::try_start(body).unwrap_or_else(|(e, log)| panic!("gateway did not start: {e}\n--- log ---\n{log}"))
    }

    /// Like [`Gateway::start`], returning the error and the log on failure.
    pub fn try_start(body: &str) -> Result<Gateway, (String, String)> {
        Self::try_start_on("127.0.0.1", body)
    }

    /// Like [`Gateway::start`] with the MCP listener on `ip` (`0.0.0.0` for every
    /// address); `addr` stays the loopback address the tests connect to.
    pub fn start_on(ip: &str, body: &str) -> Gateway {
        Self::try_start_on(ip, body).unwrap_or_else(|(e, log)| panic!("gateway did not start: {e}\n--- log ---\n{log}"))
    }

    fn try_start_on(ip: &str, body: &str) -> Result<Gateway, (String, String)> {
        // A port from `free_port` may be taken by another test before the gateway binds
        // it; the gateway then refuses to start, and another pair of ports is tried.
        let mut attempt = 0;
        loop {
            match Self::try_start_once(ip, body) {
                Err((e, log)) if attempt < 4 && log.contains("cannot listen on") => {
                    attempt += 1;
                    eprintln!("gateway ports were taken ({e}); retrying");
                }
                other => return other,
            }
        }
    }

    fn try_start_once(ip: &str, body: &str) -> Result<Gateway, (String, String)> {
        let dir = tempfile::tempdir().expect("tempdir");
        let (port, admin_port) = (free_port(), free_port());
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
        let config = dir.path().join("mcpgate.yaml");
        let listen = if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") };
        std::fs::write(&config, Self::full_config(&listen, admin, body)).expect("write config");
        let log = dir.path().join("gateway.log");
        let child = Command::new(env!("CARGO_BIN_EXE_mcpgate"))
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(std::fs::File::create(&log).expect("log file")))
            .stderr(Stdio::from(std::fs::File::options().append(true).open(&log).expect("log file")))
            .spawn()
            .expect("spawn mcpgate");
        let mut gw = Gateway { addr, admin, config, listen, child, dir, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = gw.child.try_wait() {
                return Err((format!("exited with {status}"), gw.log_text()));
            }
            // Each Pingora service binds its listener in its own thread: the admin one can
            // answer before the MCP one listens.
            if http_get(admin, "/readyz").map(|(s, _)| s == 200).unwrap_or(false) && std::net::TcpStream::connect(addr).is_ok() {
                return Ok(gw);
            }
            if Instant::now() > deadline {
                return Err(("not ready after 30 s".into(), gw.log_text()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn full_config(listen: &str, admin: SocketAddr, body: &str) -> String {
        format!("listen: [\"{listen}\"]\nadmin: {{listen: \"{admin}\"}}\n{body}")
    }

    /// Replaces the config body (keeping the listeners).
    pub fn write_config(&self, body: &str) {
        let tmp = self.config.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp).expect("config");
        f.write_all(Self::full_config(&self.listen, self.admin, body).as_bytes()).expect("config");
        f.sync_all().ok();
        std::fs::rename(&tmp, &self.config).expect("rename config");
    }

    /// Sends SIGHUP.
    pub fn sighup(&self) {
        let ok = Command::new("kill").arg("-HUP").arg(self.child.id().to_string()).status().map(|s| s.success()).unwrap_or(false);
        assert!(ok, "kill -HUP failed");
    }

    /// The gateway's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `http://addr/mcp/{server}`.
    pub fn url(&self, server: &str) -> String {
        format!("http://{}/mcp/{server}", self.addr)
    }

    /// A metric's value from `/metrics` (first sample whose line starts with `prefix`).
    pub fn metric(&self, prefix: &str) -> f64 {
        let (_, body) = http_get(self.admin, "/metrics").expect("metrics");
        body.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok()).unwrap_or(0.0)
    }

    /// The gateway's process id (for its `/proc` figures).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A temp folder that lives as long as the gateway.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking GET (for readiness polling from sync code).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

/// A raw MCP-over-HTTP client (reqwest), for checking status codes and headers exactly.
pub struct Raw {
    /// HTTP client.
    pub http: reqwest::Client,
    /// Endpoint URL.
    pub url: String,
    /// Session id, once initialized.
    pub session: Option<String>,
    /// Protocol version header to send, once negotiated.
    pub version: Option<String>,
}

/// The Accept header clients must send.
pub const ACCEPT: &str = "application/json, text/event-stream";

impl Raw {
    /// A client for `url`.
    pub fn new(url: String) -> Raw {
        Raw { http: reqwest::Client::new(), url, session: None, version: None }
    }

    /// POSTs a JSON body with the session and version headers set so far.
    pub async fn post(&self, body: &Value) -> reqwest::Response {
        let mut r = self.http.post(&self.url).header("accept", ACCEPT).header("content-type", "application/json").body(body.to_string());
        if let Some(s) = &self.session {
            r = r.header("mcp-session-id", s);
        }
        if let Some(v) = &self.version {
            r = r.header("mcp-protocol-version", v);
        }
        r.send().await.expect("POST")
    }

    /// Initializes with `version` and keeps the session.
    pub async fn initialize(&mut self, version: &str) -> Value {
        let resp = self.post(&json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}})).await;
        assert_eq!(resp.status(), 200);
        self.session = resp.headers().get("mcp-session-id").map(|v| v.to_str().unwrap().to_string());
        assert!(self.session.is_some(), "initialize must return Mcp-Session-Id");
        let body: Value = resp.json().await.unwrap();
        self.version = body["result"]["protocolVersion"].as_str().map(str::to_owned);
        let r = self.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
        assert_eq!(r.status(), 202);
        body
    }

    /// A request; returns the JSON-RPC response.
    pub async fn request(&self, id: i64, method: &str, params: Value) -> Value {
        let resp = self.post(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})).await;
        assert_eq!(resp.status(), 200, "{method}");
        resp.json().await.unwrap()
    }

    /// `tools/call`; returns the result object.
    pub async fn call(&self, tool: &str, args: Value) -> Value {
        let v = self.request(1, "tools/call", json!({"name": tool, "arguments": args})).await;
        assert!(v.get("result").is_some(), "tools/call {tool}: {v}");
        v["result"].clone()
    }
}

/// The text of a tool result's first content block.
pub fn text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or("")
}
