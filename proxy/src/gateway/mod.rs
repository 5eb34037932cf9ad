//! The Pingora `ProxyHttp` implementation: a thin dispatcher. Each phase hands its work to
//! the module that owns the concern — routing and MCP transports in [`dispatch`], the
//! proxied REST call in [`proxy_call`], peers and request headers in [`crate::upstream`].

mod dispatch;
mod legacy_sse;
mod proxy_call;
mod respond;
mod streamable;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType, Result};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};

use crate::mcp::sse::SseHub;
use crate::runtime::Snapshot;

pub use proxy_call::ProxyState;

/// State shared by every request of the gateway listener.
pub struct GatewayState {
    /// The snapshot being served (`None` until the first build finishes).
    pub snapshot: ArcSwapOption<Snapshot>,
    /// Open legacy SSE streams.
    pub sse: SseHub,
    /// Pooled upstream connector for calls made outside the proxy phases.
    pub connector: Connector,
}

impl GatewayState {
    /// Empty state; the reloader stores the first snapshot.
    pub fn new() -> Arc<Self> {
        Arc::new(GatewayState { snapshot: ArcSwapOption::empty(), sse: SseHub::default(), connector: Connector::new(None) })
    }
}

/// The MCP listener's `ProxyHttp`.
pub struct Gateway {
    state: Arc<GatewayState>,
}

impl Gateway {
    /// A gateway over shared state.
    pub fn new(state: Arc<GatewayState>) -> Self {
        Gateway { state }
    }
}

/// Per-request context: set only when a `tools/call` rides the proxy phases.
#[derive(Default)]
pub struct RequestCtx {
    proxy: Option<Box<ProxyState>>,
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::default()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        dispatch::request(&self.state, session, ctx).await
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        let state = ctx.proxy.as_ref().ok_or_else(|| Error::explain(ErrorType::InternalError, "no upstream call planned"))?;
        Ok(Box::new(state.pending.call.target.peer.clone()))
    }

    async fn upstream_request_filter(&self, _session: &mut Session, upstream: &mut RequestHeader, ctx: &mut RequestCtx) -> Result<()> {
        if let Some(state) = &ctx.proxy {
            *upstream = crate::upstream::request_header(&state.pending.call)?;
        }
        Ok(())
    }

    async fn request_body_filter(&self, _session: &mut Session, body: &mut Option<Bytes>, _end: bool, ctx: &mut RequestCtx) -> Result<()> {
        if let Some(state) = &ctx.proxy {
            proxy_call::replace_request_body(state, body);
        }
        Ok(())
    }

    async fn response_filter(&self, session: &mut Session, response: &mut ResponseHeader, ctx: &mut RequestCtx) -> Result<()> {
        if crate::listener::draining() {
            session.set_keepalive(None);
        }
        match ctx.proxy.as_mut() {
            Some(state) => state.on_response_header(response),
            None => Ok(()),
        }
    }

    fn response_body_filter(&self, _session: &mut Session, body: &mut Option<Bytes>, end: bool, ctx: &mut RequestCtx) -> Result<Option<Duration>> {
        if let Some(state) = ctx.proxy.as_mut() {
            state.on_response_body(body, end);
        }
        Ok(None)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut RequestCtx) -> FailToProxy {
        proxy_call::fail(session, e, ctx.proxy.take()).await
    }

    fn suppress_error_log(&self, _session: &Session, ctx: &RequestCtx, _error: &Error) -> bool {
        // A failed tool call is answered with an isError result and counted in metrics.
        ctx.proxy.is_some()
    }
}
