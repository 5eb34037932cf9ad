//! JSON-RPC methods of an MCP server: `initialize`, `ping`, `logging/setLevel`,
//! `tools/list` and `tools/call`. Transport-independent: both the Streamable HTTP and the
//! legacy SSE transports call [`handle_request`].

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::jsonrpc::{self, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND};
use super::version::ProtocolVersion;
use crate::metrics::ToolOutcome;
use crate::runtime::Route;
use crate::tools::{CallContext, CallOutcome, CallToolResult, HttpCall};

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
    /// Make this upstream HTTP call; its response becomes the `tools/call` result.
    Proxy(Box<PendingCall>),
}

/// A `tools/call` waiting for its upstream HTTP response.
pub struct PendingCall {
    /// The route whose server maps the response.
    pub route: Arc<Route>,
    /// Tool index in the route's catalog.
    pub tool: usize,
    /// The request.
    pub call: Box<HttpCall>,
    /// The JSON-RPC id to answer.
    pub id: Box<RawValue>,
    /// Protocol version of the session (shapes the result).
    pub version: ProtocolVersion,
    /// When the call started (for the latency histogram).
    pub started: Instant,
}

impl PendingCall {
    /// Finishes the call with a result (from the server's mapping or an upstream failure).
    pub fn finish(&self, result: &CallToolResult) -> String {
        let name = &self.route.catalog.entries()[self.tool].def.name;
        self.route.metrics.tool_call(self.tool, name, outcome_label(result), self.started.elapsed());
        call_reply(&self.id, result, self.version)
    }
}

/// Per-request inputs of the method layer.
pub struct MethodCtx<'a> {
    /// The route the request is for.
    pub route: &'a Arc<Route>,
    /// The session's negotiated version (or the assumed one).
    pub version: ProtocolVersion,
    /// Request facts for tool calls.
    pub call: CallContext<'a>,
}

/// Handles one JSON-RPC request.
pub async fn handle_request(cx: &MethodCtx<'_>, id: &RawValue, method: &str, params: Option<&RawValue>) -> Outcome {
    cx.route.metrics.method(method);
    match method {
        "initialize" => initialize(cx, id, params),
        "ping" => Outcome::Reply(jsonrpc::result(id, "{}")),
        "logging/setLevel" => Outcome::Reply(set_level(id, params)),
        "tools/list" => Outcome::Reply(tools_list(cx, id, params)),
        "tools/call" => tools_call(cx, id, params).await,
        "server/discover" => Outcome::Reply(jsonrpc::error(Some(id), INVALID_REQUEST, DISCOVER_UNSUPPORTED)),
        _ => Outcome::Reply(jsonrpc::error(Some(id), METHOD_NOT_FOUND, &format!("Method not found: {method}"))),
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
        return Outcome::Reply(jsonrpc::error(Some(id), INVALID_PARAMS, "initialize requires params.protocolVersion (a string)"));
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

fn set_level(id: &RawValue, params: Option<&RawValue>) -> String {
    const LEVELS: [&str; 8] = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"];
    let level = params.and_then(|p| serde_json::from_str::<Value>(p.get()).ok()).and_then(|v| v.get("level").and_then(Value::as_str).map(str::to_owned));
    match level {
        Some(l) if LEVELS.contains(&l.as_str()) => jsonrpc::result(id, "{}"),
        _ => jsonrpc::error(Some(id), INVALID_PARAMS, "logging/setLevel requires params.level, one of: debug, info, notice, warning, error, critical, alert, emergency"),
    }
}

fn tools_list(cx: &MethodCtx<'_>, id: &RawValue, params: Option<&RawValue>) -> String {
    let cursor = params.and_then(|p| serde_json::from_str::<Value>(p.get()).ok()).and_then(|v| v.get("cursor").cloned());
    let page = match cursor {
        None | Some(Value::Null) => 0,
        Some(Value::String(c)) => match super::cursor::decode(&c) {
            Some(offset) if offset % crate::runtime::PAGE_SIZE == 0 && offset / crate::runtime::PAGE_SIZE < cx.route.pages.len() => offset / crate::runtime::PAGE_SIZE,
            _ => return jsonrpc::error(Some(id), INVALID_PARAMS, "Invalid cursor: use the nextCursor of a previous tools/list result"),
        },
        Some(_) => return jsonrpc::error(Some(id), INVALID_PARAMS, "Invalid cursor: must be a string"),
    };
    let pages = if cx.version.has_structured_content() { &cx.route.pages } else { &cx.route.legacy_pages };
    jsonrpc::result(id, pages[page].get())
}

#[derive(Deserialize)]
struct CallParams<'a> {
    /// Raw, so that a name of the wrong type gets its own message.
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(default)]
    arguments: Option<Value>,
}

async fn tools_call(cx: &MethodCtx<'_>, id: &RawValue, params: Option<&RawValue>) -> Outcome {
    let started = Instant::now();
    let Some(p) = params.and_then(|p| serde_json::from_str::<CallParams>(p.get()).ok()) else {
        return Outcome::Reply(jsonrpc::error(Some(id), INVALID_PARAMS, "tools/call requires params {name, arguments}"));
    };
    let Some(name) = p.name.and_then(|n| serde_json::from_str::<std::borrow::Cow<'_, str>>(n.get()).ok()) else {
        return Outcome::Reply(jsonrpc::error(Some(id), INVALID_PARAMS, "tools/call requires params.name (a string)"));
    };
    let Some((index, entry)) = cx.route.catalog.find(&name) else {
        return Outcome::Reply(jsonrpc::error(Some(id), INVALID_PARAMS, &format!("Unknown tool: {name}")));
    };
    let args = match p.arguments {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Outcome::Reply(jsonrpc::error(Some(id), INVALID_PARAMS, "tools/call params.arguments must be an object")),
    };
    let args_value = Value::Object(args);
    if let Err(message) = entry.validate(&args_value) {
        cx.route.metrics.tool_call(index, &name, ToolOutcome::InvalidArguments, started.elapsed());
        return Outcome::Reply(call_reply(id, &CallToolResult::error(message), cx.version));
    }
    let args = match args_value {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    match cx.route.server.call(index, args, cx.call).await {
        CallOutcome::Done(result) => {
            cx.route.metrics.tool_call(index, &name, outcome_label(&result), started.elapsed());
            Outcome::Reply(call_reply(id, &result, cx.version))
        }
        CallOutcome::Http(call) => Outcome::Proxy(Box::new(PendingCall {
            route: cx.route.clone(),
            tool: index,
            call,
            id: id.to_owned(),
            version: cx.version,
            started,
        })),
    }
}

fn outcome_label(result: &CallToolResult) -> ToolOutcome {
    if result.is_error {
        ToolOutcome::Error
    } else {
        ToolOutcome::Success
    }
}

/// The JSON-RPC response for a tool result, serialized straight into one buffer. Before
/// 2025-06-18 there is no `structuredContent`: it is left out (its text copy stays).
pub fn call_reply(id: &RawValue, result: &CallToolResult, version: ProtocolVersion) -> String {
    /// The fields 2024-11-05 and 2025-03-26 define.
    #[derive(Serialize)]
    struct Legacy<'a> {
        content: &'a [crate::tools::Content],
        #[serde(rename = "isError", skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    }
    let text_len: usize = result.content.iter().map(|c| if let crate::tools::Content::Text { text } = c { text.len() } else { 64 }).sum();
    let mut out = Vec::with_capacity(96 + id.get().len() + 2 * text_len);
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.get().as_bytes());
    out.extend_from_slice(b",\"result\":");
    let written = if version.has_structured_content() {
        serde_json::to_writer(&mut out, result)
    } else {
        serde_json::to_writer(&mut out, &Legacy { content: &result.content, is_error: result.is_error })
    };
    if written.is_err() {
        return jsonrpc::error(Some(id), jsonrpc::INTERNAL_ERROR, "the tool result could not be serialized");
    }
    out.push(b'}');
    // serde_json writes UTF-8 only; the fallback cannot be reached.
    String::from_utf8(out).unwrap_or_else(|_| jsonrpc::error(Some(id), jsonrpc::INTERNAL_ERROR, "the tool result could not be serialized"))
}
