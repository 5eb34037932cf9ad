//! Connection-level defences for every listener: how many connections are admitted (in
//! all, and per client IP), how long a client may take to send a request head, how long
//! an idle keep-alive connection stays open, and how a draining process (shutdown or
//! binary upgrade) lets go of its connections without failing a request.
//!
//! Pingora reads a request head with a per-read timeout only, keeps HTTP/1.1 connections
//! open without limit between requests and admits every connection it accepts; each idle
//! connection also holds a 64 KiB read buffer. [`ListenerApp`] wraps a Pingora app: it
//! admits or refuses each accepted connection and hands the app a [`GuardedStream`]
//! that enforces the deadlines and releases the admission when the connection ends.

mod admission;
mod config;
mod stream;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use tokio::io::AsyncWriteExt;

pub use admission::{Admission, Permit, Refusal};
pub use config::ConnectionsConfig;
pub use stream::{client_present, disconnected, head_read, GuardedStream};

/// Set once the process starts draining (graceful shutdown or upgrade): responses from
/// then on carry `Connection: close`, so each client finishes its request here and sends
/// the next one to the new process.
static DRAINING: AtomicBool = AtomicBool::new(false);

/// How long a draining process waits before dropping connections still idle between
/// requests: busy ones have closed by then after a `Connection: close` response.
const DRAIN_IDLE: Duration = Duration::from_secs(2);

/// Whether this process is draining.
pub fn draining() -> bool {
    DRAINING.load(Ordering::Relaxed)
}

/// The limits a listener applies to a newly accepted connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Connections open at once on this listener.
    pub max: usize,
    /// Connections open at once from one client IP.
    pub max_per_ip: usize,
    /// Time from a request's first byte (or the connection's start) to its complete head.
    pub head_timeout: Duration,
    /// Time a connection may sit idle between requests.
    pub idle_timeout: Duration,
}

impl ListenerLimits {
    /// The admin listener's fixed limits: small, so that it keeps answering when the MCP
    /// listener is saturated.
    pub const ADMIN: ListenerLimits = ListenerLimits { max: 64, max_per_ip: 32, head_timeout: Duration::from_secs(10), idle_timeout: Duration::from_secs(30) };
}

/// Where a listener reads its current limits (the served config, so a reload applies to
/// connections accepted after it).
pub type LimitsSource = Box<dyn Fn() -> ListenerLimits + Send + Sync>;

/// Whether the app behind a listener can serve yet.
pub type ReadySource = Box<dyn Fn() -> bool + Send + Sync>;

/// How long a connection accepted before the first config is built waits for it.
const READY_WAIT: Duration = Duration::from_secs(30);

/// A Pingora app behind connection admission and deadlines.
pub struct ListenerApp<A> {
    inner: Arc<A>,
    admission: Arc<Admission>,
    limits: LimitsSource,
    ready: Option<ReadySource>,
}

impl<A> ListenerApp<A> {
    /// Wraps `inner`; `name` labels the listener in logs and metrics.
    pub fn new(name: &'static str, inner: A, limits: LimitsSource) -> Self {
        ListenerApp { inner: Arc::new(inner), admission: Arc::new(Admission::new(name)), limits, ready: None }
    }

    /// Holds connections accepted before `ready` says so (up to 30 s) instead of letting
    /// the app answer "starting": during a binary upgrade the new process accepts on the
    /// shared sockets while it still builds its first config.
    pub fn wait_until(mut self, ready: ReadySource) -> Self {
        self.ready = Some(ready);
        self
    }

    async fn wait_ready(&self) {
        let Some(ready) = &self.ready else { return };
        let until = tokio::time::Instant::now() + READY_WAIT;
        while !ready() && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for ListenerApp<A> {
    async fn process_new(self: &Arc<Self>, stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        let limits = (self.limits)();
        let ip = stream.get_socket_digest().and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
        match self.admission.admit(ip, &limits) {
            Ok(permit) => {
                self.wait_ready().await;
                let guarded: Stream = Box::new(GuardedStream::new(stream, permit, &limits));
                self.inner.process_new(guarded, shutdown).await
            }
            Err(refusal) => {
                refuse(stream, refusal).await;
                None
            }
        }
    }

    async fn cleanup(&self) {
        // Pingora's own cleanup drops every connection waiting for its next request at
        // once, racing clients that are sending one. Mark the process draining first so
        // each busy connection ends after a `Connection: close` response, then let
        // Pingora drop what is still idle.
        DRAINING.store(true, Ordering::Relaxed);
        tokio::time::sleep(DRAIN_IDLE).await;
        self.inner.cleanup().await;
    }
}

/// Answers a refused connection with a short 503 (written without waiting on the client)
/// and closes it.
async fn refuse(mut stream: Stream, refusal: Refusal) {
    let body = crate::mcp::jsonrpc::error(None, crate::mcp::jsonrpc::INVALID_REQUEST, &format!("Service Unavailable: {refusal}"));
    let head = format!("HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n", body.len());
    let write = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.flush().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

/// Raises the soft open-file limit to the hard limit (as Go's runtime does), and says
/// how many connections the listeners can hold: each client connection needs a
/// descriptor, and so does each upstream call it makes.
pub fn prepare_descriptors(max_connections: usize) {
    let Some((soft, hard)) = nofile_limit() else { return };
    // Under systemd the unit's LimitNOFILE= decides, and its seccomp filter would kill a
    // process calling setrlimit.
    let under_systemd = std::env::var_os("INVOCATION_ID").is_some();
    let soft = if soft < hard && !under_systemd && set_nofile(hard) { hard } else { soft };
    // Half for client connections, half for their upstream calls, less a reserve for
    // the admin listener, database pools, spec files and logs.
    let usable = (soft.saturating_sub(512) / 2) as usize;
    if max_connections > usable {
        log::warn!("connections.max is {max_connections} but the open-file limit is {soft}: beyond ~{usable} connections accept() may fail; raise LimitNOFILE (systemd) or `ulimit -n`");
    }
}

fn nofile_limit() -> Option<(u64, u64)> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0).then_some((lim.rlim_cur, lim.rlim_max))
}

fn set_nofile(to: u64) -> bool {
    let lim = libc::rlimit { rlim_cur: to, rlim_max: to };
    // SAFETY: setrlimit reads the struct we own.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 }
}
