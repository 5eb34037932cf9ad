//! JSON-RPC methods of an MCP server: `initialize`, `ping`, `logging/setLevel`,
//! `tools/list`, and `tools/call` through [`super::tools_call`]. Transport-independent:
//! the Streamable HTTP (single and batch) and legacy SSE transports call
//! [`handle_request`].

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::CallEnd;
use super::GatewayError;
use crate::mcp::jsonrpc;
use crate::mcp::version::ProtocolVersion;
use crate::runtime::Route;
use crate::tools::CallContext;

/// What the transport must do with a request.
pub enum Outcome {
    /// Send this JSON-RPC response.
    Reply(String),
    /// `initialize` succeeded: send the reply and start a session with `version`.
    Initialized {
        /// The JSON-RPC response.
        reply: String,
        /// Negotiated version.
        version: ProtocolVersion,
    },
    /// The client left while its call ran (as `MethodCtx::present` said): the call was
    /// dropped and there is no one to answer.
    Abandoned,
}

/// Per-request inputs of the method layer.
pub struct MethodCtx<'a> {
    /// The route the request is for.
    pub route: &'a Route,
    /// The session's negotiated version (or the assumed one).
    pub version: ProtocolVersion,
    /// Request facts for tool calls.
    pub call: CallContext<'a>,
    /// The pooled connector REST calls run on.
    pub connector: &'a pingora::connectors::http::Connector,
    /// Whether the client is still there, asked every [`super::CLIENT_CHECK`] while a REST
    /// call runs; a transport that watches the client itself passes `&|| true`.
    pub present: &'a (dyn Fn() -> bool + Sync),
    /// Who is calling (`None`: anonymous, on a public route).
    pub principal: Option<&'a crate::auth::Principal>,
}

/// Handles one JSON-RPC request.
pub async fn handle_request(cx: &MethodCtx<'_>, id: &RawValue, method: &str, params: Option<&RawValue>) -> Outcome {
    cx.route.metrics.method(method);
    match method {
        "initialize" => initialize(cx, id, params),
        "ping" => Outcome::Reply(jsonrpc::result(id, "{}")),
        "logging/setLevel" => Outcome::Reply(set_level(cx, id, params)),
        "tools/list" => Outcome::Reply(tools_list(cx, id, params)),
        "tools/call" => match super::tools_call(cx, id, params).await {
            CallEnd::Reply(reply) => Outcome::Reply(reply),
            CallEnd::Abandoned => Outcome::Abandoned,
        },
        "server/discover" => Outcome::Reply(GatewayError::DiscoverUnsupported.reply(id, cx.version)),
        _ => Outcome::Reply(GatewayError::MethodNotFound(method.to_string()).reply(id, cx.version)),
    }
}

/// Message for the 2026-07-28 discovery probe: deliberately not a modern error code, so
/// auto-mode clients fall back to `initialize`.
pub const DISCOVER_UNSUPPORTED: &str = "server/discover (protocol 2026-07-28) is not supported here; use initialize (supported: 2025-11-25, 2025-06-18, 2025-03-26, 2024-11-05)";

#[derive(Deserialize)]
struct InitializeParams<'a> {
    #[serde(rename = "protocolVersion", borrow)]
    protocol_version: std::borrow::Cow<'a, str>,
}

fn initialize(cx: &MethodCtx<'_>, id: &RawValue, params: Option<&RawValue>) -> Outcome {
    let parsed = params.and_then(|p| serde_json::from_str::<InitializeParams>(p.get()).ok());
    let Some(p) = parsed else {
        return Outcome::Reply(GatewayError::InvalidParams("initialize requires params.protocolVersion (a string)").reply(id, cx.version));
    };
    let version = ProtocolVersion::negotiate(&p.protocol_version);
    let mut info = serde_json::json!({ "name": format!("mcpgate/{}", cx.route.name), "version": env!("CARGO_PKG_VERSION") });
    if version.has_structured_content() {
        info["title"] = Value::String(cx.route.description.clone().unwrap_or_else(|| format!("mcpgate: {}", cx.route.name)));
    }
    let mut result = serde_json::json!({
        "protocolVersion": version.as_str(),
        "capabilities": { "tools": { "listChanged": false }, "logging": {} },
        "serverInfo": info,
    });
    if let Some(instructions) = cx.route.server.instructions() {
        result["instructions"] = Value::String(instructions.to_string());
    }
    Outcome::Initialized { reply: jsonrpc::result(id, &result.to_string()), version }
}

fn set_level(cx: &MethodCtx<'_>, id: &RawValue, params: Option<&RawValue>) -> String {
    const LEVELS: [&str; 8] = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"];
    let level = params.and_then(|p| serde_json::from_str::<Value>(p.get()).ok()).and_then(|v| v.get("level").and_then(Value::as_str).map(str::to_owned));
    match level {
        Some(l) if LEVELS.contains(&l.as_str()) => jsonrpc::result(id, "{}"),
        _ => GatewayError::InvalidParams("logging/setLevel requires params.level, one of: debug, info, notice, warning, error, critical, alert, emergency").reply(id, cx.version),
    }
}

fn tools_list(cx: &MethodCtx<'_>, id: &RawValue, params: Option<&RawValue>) -> String {
    let cursor = params.and_then(|p| serde_json::from_str::<Value>(p.get()).ok()).and_then(|v| v.get("cursor").cloned());
    let page = match cursor {
        None | Some(Value::Null) => 0,
        Some(Value::String(c)) => match crate::mcp::cursor::decode(&c) {
            Some(offset) if offset % crate::runtime::PAGE_SIZE == 0 => offset / crate::runtime::PAGE_SIZE,
            _ => return GatewayError::InvalidCursor("use the nextCursor of a previous tools/list result").reply(id, cx.version),
        },
        Some(_) => return GatewayError::InvalidCursor("must be a string").reply(id, cx.version),
    };
    // Only the tools this caller may call: its view's pages (prebuilt per distinct set of
    // rights), the route's own when no rule applies.
    let allowed = cx.route.access.allowed(cx.principal);
    let pages = cx.route.pages_for(&allowed, cx.version.has_structured_content());
    match pages.get().get(page) {
        Some(p) => jsonrpc::result(id, p.get()),
        None => GatewayError::InvalidCursor("use the nextCursor of a previous tools/list result").reply(id, cx.version),
    }
}
