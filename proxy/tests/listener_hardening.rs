//! The listener against hostile and careless clients, over real sockets against the
//! binary: connection caps (per IP and per listener) answered 503 while the admin
//! listener keeps answering; a request head dripped byte by byte, a silent connection and
//! an idle keep-alive connection closed on their deadlines; a stalled body (408) and a
//! broken chunk (400) answered as the client's faults; a client that leaves mid-call has
//! its upstream call cancelled; the admin listener refuses foreign Hosts (DNS
//! rebinding); idle connections cost little memory; and two binary upgrades in a row
//! under keep-alive load lose no request.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{http_get, Gateway};

/// A tool answered by the gateway itself, so the listener is all that is measured.
const LOCAL: &str = "servers:\n  - name: local\n    type: rest\n    server: {name: local}\n    tools:\n      - name: hello\n        description: says hello\n        responseTemplate: {body: 'hello'}\n";

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).ok();
    s
}

/// One HTTP/1.1 response read off a keep-alive connection: status, headers (lowercase
/// names), body.
struct Reply {
    status: u16,
    close: bool,
    body: String,
}

fn read_reply(r: &mut BufReader<TcpStream>) -> std::io::Result<Reply> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed before a response"));
    }
    let status = line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (mut len, mut close) = (0usize, false);
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed inside a response head"));
        }
        let l = line.trim_end().to_ascii_lowercase();
        if l.is_empty() {
            break;
        }
        if let Some(v) = l.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        if l.starts_with("connection:") && l.contains("close") {
            close = true;
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok(Reply { status, close, body: String::from_utf8_lossy(&body).into_owned() })
}

fn post(addr: SocketAddr, path: &str, session: Option<&str>, body: &str) -> String {
    let sid = session.map(|s| format!("Mcp-Session-Id: {s}\r\nMCP-Protocol-Version: 2025-06-18\r\n")).unwrap_or_default();
    format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n{sid}Content-Length: {}\r\n\r\n{body}", body.len())
}

/// Opens a session on `/mcp/local` and returns its id.
fn initialize(addr: SocketAddr) -> String {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let mut s = connect(addr);
    s.write_all(post(addr, "/mcp/local", None, body).as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    let mut sid = None;
    while r.read_line(&mut line).unwrap() > 0 {
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("mcp-session-id:") {
            sid = Some(line[line.len() - v.len()..].trim().to_string());
        }
        if line == "\r\n" {
            break;
        }
        line.clear();
    }
    sid.expect("a session id")
}

/// A normal client's call: a fresh connection, a ping, a 200.
fn served(addr: SocketAddr, sid: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else { return false };
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    if s.write_all(post(addr, "/mcp/local", Some(sid), r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#).as_bytes()).is_err() {
        return false;
    }
    read_reply(&mut BufReader::new(s)).map(|r| r.status == 200 && r.body.contains("\"result\"")).unwrap_or(false)
}

fn closed_within(mut s: TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    s.set_read_timeout(Some(limit)).ok();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Some(started.elapsed()),
            Err(_) => return None,
        }
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[test]
fn connection_caps_answer_503_and_admin_keeps_answering() {
    let gw = Gateway::start(&format!("connections: {{max: 40, max_per_ip: 25}}\n{LOCAL}"));
    let sid = initialize(gw.addr);
    // Beyond the per-IP cap: 503 naming the setting, and the connection is closed.
    let held: Vec<TcpStream> = (0..25).map(|_| connect(gw.addr)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut extra = connect(gw.addr);
    let reply = read_reply(&mut BufReader::new(extra.try_clone().unwrap())).expect("a 503");
    assert_eq!(reply.status, 503);
    assert!(reply.body.contains("connections.max_per_ip") && reply.close, "{}", reply.body);
    assert_eq!(extra.read(&mut [0u8; 8]).unwrap_or(0), 0, "closed after the 503");
    // The admin listener is not behind the MCP listener's caps.
    assert_eq!(http_get(gw.admin, "/healthz").unwrap().0, 200);
    assert!(gw.metric("mcpgate_connections_refused_total{listener=\"mcp\",reason=\"per_ip\"}") >= 1.0);
    assert!(!served(gw.addr, &sid), "a 26th connection from this IP is refused");
    // Released slots are reusable at once.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !served(gw.addr, &sid) {
        assert!(Instant::now() < deadline, "served again once the connections closed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn listener_cap_counts_every_client() {
    // max_per_ip above max: the listener cap is what refuses.
    let gw = Gateway::start(&format!("connections: {{max: 10, max_per_ip: 100}}\n{LOCAL}"));
    let held: Vec<TcpStream> = (0..10).map(|_| connect(gw.addr)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let reply = read_reply(&mut BufReader::new(connect(gw.addr))).expect("a 503");
    assert_eq!(reply.status, 503);
    assert!(reply.body.contains("connections.max)"), "{}", reply.body);
    assert_eq!(gw.metric("mcpgate_connections_open{listener=\"mcp\"}"), 10.0);
    drop(held);
}

#[test]
fn heads_have_a_whole_deadline_and_idle_connections_close() {
    let gw = Gateway::start(&format!("connections: {{head_timeout: 2s, idle_timeout: 3s}}\n{LOCAL}"));
    let sid = initialize(gw.addr);
    // A head dripped a byte every 200 ms never finishes: closed at the 2 s deadline
    // although each read arrives well within any per-read timeout.
    let dripper = connect(gw.addr);
    let mut d = dripper.try_clone().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let drip = std::thread::spawn(move || {
        let head = b"POST /mcp/local HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        for b in head {
            if s2.load(Ordering::Relaxed) || d.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let silent = connect(gw.addr);
    assert!(served(gw.addr, &sid), "a normal client is served meanwhile");
    let t = closed_within(dripper, Duration::from_secs(8)).expect("the dripping connection is closed");
    assert!(t < Duration::from_secs(4), "closed after {t:?}");
    stop.store(true, Ordering::Relaxed);
    let _ = drip.join();
    // A connection that never sends a byte: the same deadline from its start.
    assert!(closed_within(silent, Duration::from_secs(6)).is_some(), "a silent connection is closed");
    // Keep-alive: open between requests for idle_timeout, then closed quietly.
    let mut ka = connect(gw.addr);
    ka.write_all(post(gw.addr, "/mcp/local", Some(&sid), r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).as_bytes()).unwrap();
    let mut r = BufReader::new(ka.try_clone().unwrap());
    assert_eq!(read_reply(&mut r).unwrap().status, 200);
    std::thread::sleep(Duration::from_millis(1500));
    ka.write_all(post(gw.addr, "/mcp/local", Some(&sid), r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#).as_bytes()).unwrap();
    assert_eq!(read_reply(&mut r).unwrap().status, 200, "still open within the idle timeout");
    let t = closed_within(ka, Duration::from_secs(8)).expect("the idle keep-alive connection is closed");
    assert!(t >= Duration::from_secs(2) && t < Duration::from_secs(5), "closed after {t:?} idle");
    assert!(served(gw.addr, &sid));
}

#[test]
fn stalled_and_broken_bodies_are_the_clients_fault() {
    let gw = Gateway::start(&format!("connections: {{body_timeout: 2s}}\n{LOCAL}"));
    let sid = initialize(gw.addr);
    // A body that stops halfway: 408 at the deadline.
    let mut s = connect(gw.addr);
    let full = post(gw.addr, "/mcp/local", Some(&sid), r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#);
    s.write_all(&full.as_bytes()[..full.len() - 10]).unwrap();
    let started = Instant::now();
    let reply = read_reply(&mut BufReader::new(s)).expect("a reply");
    assert_eq!(reply.status, 408, "{}", reply.body);
    assert!(reply.body.contains("connections.body_timeout") && reply.close, "{}", reply.body);
    assert!(started.elapsed() < Duration::from_secs(5));
    // A chunk size that is not hex: 400.
    let mut s = connect(gw.addr);
    let head = format!("POST /mcp/local HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMcp-Session-Id: {sid}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n", gw.addr);
    s.write_all(head.as_bytes()).unwrap();
    let reply = read_reply(&mut BufReader::new(s)).expect("a reply");
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body.contains("malformed request body"), "{}", reply.body);
    assert!(served(gw.addr, &sid));
}

#[test]
fn a_client_that_leaves_cancels_its_upstream_call() {
    // An upstream that accepts, reads the request and never answers; it records when the
    // gateway closes the connection.
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let up_addr = upstream.local_addr().unwrap();
    let closed_after = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = closed_after.clone();
    std::thread::spawn(move || {
        for conn in upstream.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut conn = conn;
                let mut buf = [0u8; 4096];
                let mut started = None;
                loop {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            started.get_or_insert_with(Instant::now);
                        }
                    }
                }
                if let Some(s) = started {
                    seen.lock().unwrap().push(s.elapsed());
                }
            });
        }
    });
    let gw = Gateway::start(&format!(
        "upstream: {{timeout: 60s}}\nservers:\n  - name: local\n    type: rest\n    server: {{name: hang}}\n    tools:\n      - name: hang\n        description: never answers\n        requestTemplate: {{url: \"http://{up_addr}/hang\"}}\n"
    ));
    let sid = initialize(gw.addr);
    let mut clients = Vec::new();
    for i in 0..5 {
        let mut s = connect(gw.addr);
        let call = format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"tools/call","params":{{"name":"hang","arguments":{{}}}}}}"#);
        s.write_all(post(gw.addr, "/mcp/local", Some(&sid), &call).as_bytes()).unwrap();
        clients.push(s);
    }
    std::thread::sleep(Duration::from_millis(800));
    drop(clients);
    let deadline = Instant::now() + Duration::from_secs(10);
    while closed_after.lock().unwrap().len() < 5 {
        assert!(Instant::now() < deadline, "upstream calls still open 10 s after their clients left: {:?}", closed_after.lock().unwrap());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(closed_after.lock().unwrap().iter().all(|d| *d < Duration::from_secs(5)), "{:?}", closed_after.lock().unwrap());
    assert_eq!(gw.metric("mcpgate_calls_abandoned_total"), 5.0);
}

#[test]
fn admin_listener_refuses_foreign_hosts_and_origins() {
    let gw = Gateway::start(LOCAL);
    let get = |headers: &str| {
        let mut s = connect(gw.admin);
        s.write_all(format!("GET /metrics HTTP/1.1\r\n{headers}Connection: close\r\n\r\n").as_bytes()).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    let ok = get(&format!("Host: {}\r\n", gw.admin));
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let rebinding = get("Host: attacker.example:9090\r\n");
    assert!(rebinding.starts_with("HTTP/1.1 403") && rebinding.contains("Invalid Host"), "{rebinding}");
    let page = get(&format!("Host: {}\r\nOrigin: http://attacker.example\r\n", gw.admin));
    assert!(page.starts_with("HTTP/1.1 403") && page.contains("Invalid Origin"), "{page}");
}

#[test]
fn idle_connections_cost_little_memory() {
    const N: usize = 2000;
    let gw = Gateway::start(&format!("connections: {{max_per_ip: 5000}}\n{LOCAL}"));
    let sid = initialize(gw.addr);
    assert!(served(gw.addr, &sid));
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_kib(gw.pid());
    // Each connection has sent a request and got its answer: what stays is a keep-alive
    // connection waiting for its next request.
    let mut held = Vec::with_capacity(N);
    for _ in 0..N {
        let mut s = connect(gw.addr);
        s.write_all(post(gw.addr, "/mcp/local", Some(&sid), r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).as_bytes()).unwrap();
        held.push(s);
    }
    for s in &held {
        assert_eq!(read_reply(&mut BufReader::new(s.try_clone().unwrap())).unwrap().status, 200);
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib(gw.pid());
    let per = (after.saturating_sub(before)) as f64 * 1024.0 / N as f64;
    println!("RSS {before} KiB -> {after} KiB with {N} idle keep-alive connections: {per:.0} bytes per connection");
    // The target is 10,000 idle connections under 320 MB: 32 KiB each, debug build included.
    assert!(per < 32.0 * 1024.0, "{per:.0} bytes per idle connection");
    assert!(served(gw.addr, &sid));
    drop(held);
}

/// The pids of processes whose parent is `parent`.
fn children(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The command may hold spaces and parentheses: fields follow the last ')'.
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)).and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            out.push(pid);
        }
    }
    out
}

/// Whether `pid` is the upgraded gateway an old one started: its command line has `-u` and
/// still has it a moment later. Between fork and exec, every child the old process starts
/// (its `--test` run, the `kill -QUIT` it sends itself) shows the old process's command
/// line, `-u` included, for a few microseconds.
fn upgraded_process(pid: u32) -> bool {
    let upgrading = |pid: u32| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == b"-u") && !c.split(|b| *b == 0).any(|a| a == b"--test"));
    if !upgrading(pid) {
        return false;
    }
    std::thread::sleep(Duration::from_millis(300));
    upgrading(pid) && alive(pid)
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map(|s| !s.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('Z'))).unwrap_or(false)
}

/// Kills the processes an upgrade started (not children of the test) when the test ends.
struct Reap(Arc<std::sync::Mutex<Vec<u32>>>);

impl Drop for Reap {
    fn drop(&mut self) {
        for pid in self.0.lock().unwrap().iter() {
            let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

#[test]
fn two_binary_upgrades_under_keepalive_load_lose_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("upgrade.sock");
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let gw = Gateway::start(&format!("session: {{key: \"{key}\"}}\npingora:\n  upgrade_sock: {}\n  grace_period_seconds: 2\n  graceful_shutdown_timeout_seconds: 1\n{LOCAL}", sock.display()));
    let reap = Reap(Arc::default());
    let sid = initialize(gw.addr);
    let (stop, ok, failed) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let errors = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut load = Vec::new();
    for _ in 0..16 {
        let (addr, sid, stop, ok, failed, errors) = (gw.addr, sid.clone(), stop.clone(), ok.clone(), failed.clone(), errors.clone());
        load.push(std::thread::spawn(move || {
            let mut conn: Option<(TcpStream, BufReader<TcpStream>)> = None;
            while !stop.load(Ordering::Relaxed) {
                let (s, r) = match conn.as_mut() {
                    Some(c) => c,
                    None => {
                        let s = connect(addr);
                        let r = BufReader::new(s.try_clone().unwrap());
                        conn.insert((s, r))
                    }
                };
                let sent = s.write_all(post(addr, "/mcp/local", Some(&sid), r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"hello","arguments":{}}}"#).as_bytes());
                match sent.and_then(|()| read_reply(r)) {
                    Ok(reply) if reply.status == 200 && reply.body.contains("hello") => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        if reply.close {
                            conn = None;
                        }
                    }
                    Ok(reply) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        errors.lock().unwrap().push(format!("{} {}", reply.status, reply.body));
                        conn = None;
                    }
                    Err(e) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        errors.lock().unwrap().push(e.to_string());
                        conn = None;
                    }
                }
            }
        }));
    }
    let mut current = gw.pid();
    for round in 1..=2 {
        std::thread::sleep(Duration::from_secs(1));
        let before = ok.load(Ordering::Relaxed);
        assert!(std::process::Command::new("kill").args(["-USR2", &current.to_string()]).status().unwrap().success());
        // The new process is started by the old one; find it before the old one exits.
        let deadline = Instant::now() + Duration::from_secs(10);
        let next = loop {
            if let Some(pid) = children(current).into_iter().find(|p| upgraded_process(*p)) {
                break pid;
            }
            assert!(Instant::now() < deadline, "round {round}: no upgraded process started\n{}", gw.log_text());
            std::thread::sleep(Duration::from_millis(20));
        };
        reap.0.lock().unwrap().push(next);
        // Pingora hands over after 5 s, then the old process drains for its 2 s grace
        // period (+1 s runtime shutdown).
        let deadline = Instant::now() + Duration::from_secs(20);
        // A zombie (the first process is the test's child) counts as gone.
        while alive(current) {
            assert!(Instant::now() < deadline, "round {round}: the old process {current} is still running\n{}", gw.log_text());
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(ok.load(Ordering::Relaxed) > before + 100, "round {round}: traffic kept flowing");
        current = next;
    }
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!("{ok} requests over two upgrades, {failed} failed");
    assert_eq!(failed, 0, "failed requests: {:?}\n{}", errors.lock().unwrap(), gw.log_text());
    assert!(alive(current), "the last upgraded process {current} serves\n{}", gw.log_text());
}
