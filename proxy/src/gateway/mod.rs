//! The Pingora `ProxyHttp` implementation: a thin dispatcher. Every MCP request is answered
//! from `request_filter` (routing and the MCP transports in [`dispatch`]); every tool call
//! runs to completion in `crate::pipeline::tools_call`, on the connector for REST calls, so
//! that it finishes in one place where async stages (quotas, guardrails, the access log) can
//! run. The transports here do transport work only.
//! The proxy phases are left to what passes bytes through untouched.

mod dispatch;
mod legacy_sse;
mod respond;
mod streamable;

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use pingora::connectors::http::Connector;
use pingora::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType, Result};
use pingora_proxy::{ProxyHttp, Session};

use crate::mcp::sse::SseHub;
use crate::runtime::Snapshot;

/// State shared by every request of the gateway listener.
pub struct GatewayState {
    /// The snapshot being served (`None` until the first build finishes).
    pub snapshot: ArcSwapOption<Snapshot>,
    /// Open legacy SSE streams.
    pub sse: SseHub,
    /// Pooled upstream connector every REST tool call runs on.
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

/// Per-request context (nothing yet: every request is answered from `request_filter`).
#[derive(Default)]
pub struct RequestCtx {}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::default()
    }

    async fn request_filter(&self, session: &mut Session, _ctx: &mut RequestCtx) -> Result<bool> {
        dispatch::request(&self.state, session).await
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        // `request_filter` answers every request; nothing is proxied yet.
        Err(Error::explain(ErrorType::InternalError, "no upstream: every MCP request is answered by the gateway"))
    }
}
