//! The stream every admitted connection is read through: a deadline for the whole
//! request head, an idle timeout between requests, and the admission permit.
//!
//! Pingora times each read of a head separately (a client dripping one byte a second
//! never times out) and keeps HTTP/1.1 connections open between requests without limit.
//! Both are decided here, below Pingora, by phase: from a connection's start or a
//! request's first byte the head must be complete within `head_timeout` (the gateway
//! marks the head read when it dispatches the request); after a response is written the
//! connection may idle `idle_timeout`, after which it reads as closed, which Pingora
//! treats as a client that went away. While a request body is read, or a call runs, no
//! deadline of this layer applies (the body has its own).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::SslDigest;
use pingora::protocols::{GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream, TimingDigest, UniqueID, UniqueIDType, ALPN};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::admission::Permit;
use super::ListenerLimits;

const HEAD: u8 = 0;
const BODY: u8 = 1;
const IDLE: u8 = 2;

/// A client connection under the listener's deadlines; releases its admission on drop.
pub struct GuardedStream {
    inner: Stream,
    phase: AtomicU8,
    /// Start of the current phase (HEAD: connection start or a request's first byte;
    /// IDLE: the last write).
    since: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    head_timeout: Duration,
    idle_timeout: Duration,
    _permit: Permit,
}

impl GuardedStream {
    /// Wraps an admitted connection.
    pub(super) fn new(inner: Stream, permit: Permit, limits: &ListenerLimits) -> Self {
        GuardedStream { inner, phase: AtomicU8::new(HEAD), since: Instant::now(), timer: None, head_timeout: limits.head_timeout, idle_timeout: limits.idle_timeout, _permit: permit }
    }

    /// What happens to a read still pending at `deadline` in this phase.
    fn deadline(&self) -> Option<(Instant, Expiry)> {
        match self.phase.load(Ordering::Relaxed) {
            HEAD => Some((self.since + self.head_timeout, Expiry::HeadTimeout)),
            IDLE => Some((self.since + self.idle_timeout, Expiry::Idle)),
            _ => None,
        }
    }

    /// Polls the phase's deadline. Deadlines mostly move later (each request restarts
    /// the clock), so the timer is re-armed only when it must fire sooner, or when it fired
    /// before the current deadline: a keep-alive connection serving request after request
    /// costs no timer-wheel update per request.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<Expiry> {
        let Some((at, expiry)) = self.deadline() else { return Poll::Pending };
        let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if timer.deadline() > at {
            timer.as_mut().reset(at);
        }
        loop {
            match timer.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) if Instant::now() >= at => return Poll::Ready(expiry),
                // An earlier deadline that has since moved: wait for the current one.
                Poll::Ready(()) => timer.as_mut().reset(at),
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Expiry {
    HeadTimeout,
    Idle,
}

/// Marks the request head of this connection as read: the head deadline stops. Called
/// by the dispatcher when a request reaches it; a no-op on streams not admitted here.
pub fn head_read(stream: Option<&Stream>) {
    if let Some(g) = stream.and_then(|s| (**s).as_any().downcast_ref::<GuardedStream>()) {
        g.phase.store(BODY, Ordering::Relaxed);
    }
}

/// Resolves when the client of `stream` has closed or reset its connection, checked
/// every `every` without reading from it (so nothing a pipelining client sent is
/// consumed). Pending forever where this cannot be told.
pub async fn disconnected(stream: Option<&Stream>, every: Duration) {
    #[cfg(target_os = "linux")]
    if let Some(fd) = stream.map(|s| s.id()) {
        loop {
            tokio::time::sleep(every).await;
            if peer_closed(fd) {
                return;
            }
        }
    }
    std::future::pending::<()>().await
}

/// A check that the client of `stream` is still connected, for a call to ask now and
/// then (see [`crate::upstream::execute_while`]). Always true where this cannot be told.
pub fn client_present(stream: Option<&Stream>) -> impl Fn() -> bool + Send + Sync {
    let fd = stream.map(|s| s.id());
    move || {
        #[cfg(target_os = "linux")]
        if let Some(fd) = fd {
            return !peer_closed(fd);
        }
        true
    }
}

#[cfg(target_os = "linux")]
fn peer_closed(fd: i32) -> bool {
    let mut p = libc::pollfd { fd, events: libc::POLLRDHUP, revents: 0 };
    // SAFETY: one pollfd we own, zero timeout; `fd` is the connection's descriptor,
    // open while the request that owns it runs.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n > 0 && p.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
}

impl AsyncRead for GuardedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before && self.phase.load(Ordering::Relaxed) == IDLE {
                    self.phase.store(HEAD, Ordering::Relaxed);
                    self.since = Instant::now();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match self.poll_deadline(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Expiry::HeadTimeout) => {
                    let t = self.head_timeout;
                    Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, format!("request head not complete within {t:?} (connections.head_timeout)"))))
                }
                // Reads as a close: Pingora ends an idle keep-alive connection quietly.
                Poll::Ready(Expiry::Idle) => Poll::Ready(Ok(())),
            },
            ready => ready,
        }
    }
}

impl GuardedStream {
    fn wrote(&mut self) {
        self.phase.store(IDLE, Ordering::Relaxed);
        self.since = Instant::now();
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.wrote();
        }
        r
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.wrote();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for GuardedStream {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for GuardedStream {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for GuardedStream {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for GuardedStream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for GuardedStream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for GuardedStream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for GuardedStream {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

impl std::fmt::Debug for GuardedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedStream").field("inner", &self.inner).field("phase", &self.phase.load(Ordering::Relaxed)).finish()
    }
}
