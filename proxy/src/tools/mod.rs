//! The tool model every kind of server plugs into.
//!
//! A server kind (OpenAPI, REST YAML, database, ...) builds a [`ToolServer`]: a list of
//! [`ToolDef`]s and a way to execute a call. The MCP layer owns everything protocol-shaped
//! (validation against `inputSchema`, pagination, JSON-RPC framing, version differences);
//! a server only sees arguments that already passed its schema.

mod catalog;
mod result;

pub use catalog::{Catalog, CatalogEntry, CatalogError, ToolRef};
pub use result::{CallToolResult, Content, Structured};

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// An MCP tool definition, serialized exactly as `tools/list` returns it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ToolDef {
    /// Unique name within its server, matching `^[A-Za-z0-9_.-]{1,128}$`.
    pub name: String,
    /// Human-readable display name (MCP 2025-06-18 and later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What the tool does, for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema (`type: object`) of the arguments.
    pub input_schema: Value,
    /// JSON Schema (`type: object`) of `structuredContent`, when the tool has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    /// Behaviour hints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<ToolAnnotations>,
}

/// MCP tool annotations (hints only; clients treat them as untrusted).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ToolAnnotations {
    /// Display title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The tool does not modify its environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_hint: Option<bool>,
    /// The tool may perform destructive updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destructive_hint: Option<bool>,
    /// Calling the tool repeatedly with the same arguments has no additional effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotent_hint: Option<bool>,
    /// The tool interacts with an open world of external entities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_world_hint: Option<bool>,
}

/// Request facts a tool call may use (never the client's credentials unless a server's
/// config explicitly asks for passthrough).
#[derive(Debug, Clone, Copy)]
pub struct CallContext<'a> {
    /// The downstream client's address, when known.
    pub client_ip: Option<IpAddr>,
    /// The downstream request headers.
    pub headers: &'a http::HeaderMap,
    /// The call's `arguments` as the client wrote them, for what parsing cannot keep
    /// exact (integers beyond 64 bits); `None` outside `tools/call`.
    pub arguments: Option<&'a serde_json::value::RawValue>,
}

/// What a server does with a validated `tools/call`.
pub enum CallOutcome {
    /// The result is ready (computed in the gateway, e.g. a database query or a
    /// direct-response tool).
    Done(CallToolResult),
    /// Run this HTTP request upstream on the pooled connector (`pipeline::tools_call`), then hand the response
    /// to [`ToolServer::finish_http`].
    Http(Box<HttpCall>),
}

/// Where an [`HttpCall`] goes: built once per snapshot, off the hot path (DNS resolved).
#[derive(Debug, Clone)]
pub struct UpstreamTarget {
    /// TLS server name (and default `Host`).
    pub sni: String,
    /// `Host` header value (`host[:port]`).
    pub host_header: String,
    /// The same, as a header value built once (sent on every call).
    pub host_value: http::HeaderValue,
    /// TCP (and TLS) connect timeout.
    pub connect_timeout: Duration,
    /// Whole-call timeout: waiting for and reading the response.
    pub read_timeout: Duration,
    /// The Pingora peer (resolved address, TLS, connect timeout), built once rather than
    /// on every call; no per-read/write timers, since the whole call runs under one.
    pub call_peer: pingora::upstreams::peer::HttpPeer,
}

impl UpstreamTarget {
    /// A target for the resolved `addr` and its prebuilt peer; `None` when `host_header`
    /// cannot be a header value.
    pub fn new(addr: SocketAddr, tls: bool, sni: String, host_header: String, connect_timeout: Duration, read_timeout: Duration) -> Option<Self> {
        let host_value = http::HeaderValue::from_str(&host_header).ok()?;
        let call_peer = crate::upstream::peer(addr, tls, &sni, connect_timeout);
        Some(UpstreamTarget { sni, host_header, host_value, connect_timeout, read_timeout, call_peer })
    }
}

/// A fully built upstream HTTP request for one tool call.
#[derive(Debug, Clone)]
pub struct HttpCall {
    /// Destination.
    pub target: Arc<UpstreamTarget>,
    /// HTTP method.
    pub method: http::Method,
    /// Origin-form request target: `/path?query`, already percent-encoded.
    pub path_and_query: String,
    /// Request headers (validated values; no CR/LF can get here).
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Request body (empty for none).
    pub body: Bytes,
    /// Cap on the response body kept for mapping; the rest is dropped and the result says
    /// it was truncated.
    pub max_response_bytes: usize,
}

/// The upstream response handed back to the server that planned an [`HttpCall`].
#[derive(Debug)]
pub struct UpstreamResponse<'a> {
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: &'a http::HeaderMap,
    /// Body, at most `max_response_bytes`.
    pub body: &'a [u8],
    /// Whether the body was cut at the cap.
    pub truncated: bool,
}

/// A server that serves tools: the plug-in point for OpenAPI, REST YAML and database
/// servers.
#[async_trait]
pub trait ToolServer: Send + Sync + 'static {
    /// The tools, in a stable order.
    fn tools(&self) -> &[ToolDef];

    /// Executes (or plans) a call of `tools()[index]` with arguments that already passed
    /// its `inputSchema`.
    async fn call(&self, index: usize, args: Map<String, Value>, cx: CallContext<'_>) -> CallOutcome;

    /// Maps the upstream response of an [`CallOutcome::Http`] call to a tool result.
    fn finish_http(&self, index: usize, response: &UpstreamResponse<'_>) -> CallToolResult {
        let _ = (index, response);
        CallToolResult::error("this server does not make HTTP calls")
    }

    /// Instructions returned in `initialize`, if any.
    fn instructions(&self) -> Option<&str> {
        None
    }

    /// The server's own state for `/readyz` and `/admin/servers` (a database account's
    /// privileges, say), if it has any worth showing.
    fn status(&self) -> Option<Value> {
        None
    }
}
