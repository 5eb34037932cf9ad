//! JSON-RPC methods of an MCP server: `initialize`, `ping`, `logging/setLevel`,
//! `tools/list` and `tools/call`. Transport-independent: both the Streamable HTTP and the
//! legacy SSE transports call [`handle_request`].

use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
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
    /// Raw, so that a server can read what parsing cannot keep exact.
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
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
    let args = match p.arguments.map(|a| serde_json::from_str::<Value>(a.get())) {
        None | Some(Ok(Value::Null)) => Map::new(),
        Some(Ok(Value::Object(m))) => m,
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
    let call = crate::tools::CallContext { arguments: p.arguments, ..cx.call };
    match cx.route.server.call(index, args, call).await {
        CallOutcome::Done(result) => {
            cx.route.metrics.tool_call(index, &name, outcome_label(&result), started.elapsed());
            Outcome::Reply(call_reply(id, &result, cx.version))
        }
        CallOutcome::Http(call) => Outcome::Proxy(Box::new(PendingCall { route: cx.route.clone(), tool: index, call, id: id.to_owned(), version: cx.version, started })),
    }
}

fn outcome_label(result: &CallToolResult) -> ToolOutcome {
    if result.is_error {
        ToolOutcome::Error
    } else {
        ToolOutcome::Success
    }
}

/// Longest text escaped with SIMD; beyond it serde_json's escaper, which needs no
/// worst-case reservation (`json_escape_simd` reserves 6x its input up front).
const SIMD_ESCAPE_MAX: usize = 256 << 10;

/// The JSON-RPC response for a tool result, serialized straight into one buffer. Before
/// 2025-06-18 there is no `structuredContent`: it is left out (its text copy stays).
///
/// Written by hand rather than through `Serialize`: a REST result's text copy is the whole
/// upstream body, and escaping it with SIMD instead of serde_json's byte loop is the
/// largest single saving on the call path. The shape is the one the derive would write.
pub fn call_reply(id: &RawValue, result: &CallToolResult, version: ProtocolVersion) -> String {
    use crate::tools::{Content, Structured};
    // The SIMD escaper reserves its worst case (6 bytes per input byte, +35) before it
    // writes; sizing for that up front avoids a reallocation mid-write. Long texts go
    // through serde_json instead, so a large response never holds 6x its size.
    let room = |c: &Content| match c {
        Content::Text { text } if text.len() <= SIMD_ESCAPE_MAX => 6 * text.len() + 35,
        Content::Text { text } => text.len() + text.len() / 8 + 2,
        _ => 64,
    };
    let raw_len = match &result.structured_content {
        Some(Structured::Raw(r)) => r.get().len(),
        _ => 0,
    };
    let mut out = Vec::with_capacity(160 + id.get().len() + result.content.iter().map(room).sum::<usize>() + raw_len);
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.get().as_bytes());
    out.extend_from_slice(b",\"result\":{\"content\":[");
    for (i, block) in result.content.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let written = match block {
            Content::Text { text } => {
                out.extend_from_slice(b"{\"type\":\"text\",\"text\":");
                let escaped = if text.len() <= SIMD_ESCAPE_MAX {
                    json_escape_simd::escape_into(text, &mut out);
                    Ok(())
                } else {
                    serde_json::to_writer(&mut out, text.as_str())
                };
                out.push(b'}');
                escaped
            }
            other => serde_json::to_writer(&mut out, other),
        };
        if written.is_err() {
            return jsonrpc::error(Some(id), jsonrpc::INTERNAL_ERROR, "the tool result could not be serialized");
        }
    }
    out.push(b']');
    if version.has_structured_content() {
        match &result.structured_content {
            Some(Structured::Raw(raw)) => {
                out.extend_from_slice(b",\"structuredContent\":");
                out.extend_from_slice(raw.get().as_bytes());
            }
            Some(Structured::Value(value)) => {
                out.extend_from_slice(b",\"structuredContent\":");
                if serde_json::to_writer(&mut out, value).is_err() {
                    return jsonrpc::error(Some(id), jsonrpc::INTERNAL_ERROR, "the tool result could not be serialized");
                }
            }
            None => {}
        }
    }
    if result.is_error {
        out.extend_from_slice(b",\"isError\":true");
    }
    out.extend_from_slice(b"}}");
    // Every piece is UTF-8 (borrowed strings, serde_json and the escaper write nothing
    // else); the fallback cannot be reached.
    String::from_utf8(out).unwrap_or_else(|_| jsonrpc::error(Some(id), jsonrpc::INTERNAL_ERROR, "the tool result could not be serialized"))
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;
    use serde_json::{json, Value};

    use super::call_reply;
    use crate::mcp::version::ProtocolVersion;
    use crate::tools::{CallToolResult, Content, Structured};

    /// What the derived `Serialize` writes, wrapped in the JSON-RPC response: the hand-written
    /// reply must parse to the same value, so a field added to `CallToolResult` cannot be
    /// dropped silently.
    fn derived(id: &str, result: &CallToolResult, version: ProtocolVersion) -> Value {
        let mut r = serde_json::to_value(result).expect("serializable");
        if !version.has_structured_content() {
            r.as_object_mut().expect("an object").remove("structuredContent");
        }
        json!({"jsonrpc": "2.0", "id": serde_json::from_str::<Value>(id).expect("an id"), "result": r})
    }

    #[test]
    fn replies_match_the_derived_serialization() {
        let tricky = "quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7} del \u{7f} é ✓ 😀 \u{2028}";
        let raw = RawValue::from_string(r#"{"a":[1,2,{"b":"c\"d"}],"e":null}"#.into()).expect("raw");
        // Past the SIMD limit, so the serde_json path is checked too.
        let long = tricky.repeat(super::SIMD_ESCAPE_MAX / tricky.len() + 1);
        assert!(long.len() > super::SIMD_ESCAPE_MAX);
        let results = [
            CallToolResult::text(tricky),
            CallToolResult::text(long.clone()),
            CallToolResult { content: vec![Content::Text { text: long }, Content::Text { text: tricky.into() }], structured_content: None, is_error: false },
            CallToolResult::error("boom: \"x\""),
            CallToolResult::structured(json!({"k": tricky, "n": 1.5})),
            CallToolResult { content: vec![Content::Text { text: raw.get().into() }], structured_content: Some(Structured::Raw(raw.clone())), is_error: false },
            CallToolResult {
                content: vec![Content::Text { text: String::new() }, Content::Image { data: "iVBORw0KGgo=".into(), mime_type: "image/png".into() }, Content::Resource { resource: json!({"uri": "mcpgate:x", "blob": "AA=="}) }],
                structured_content: None,
                is_error: true,
            },
            CallToolResult { content: vec![], structured_content: None, is_error: false },
        ];
        for id in ["1", "\"req-\\\"7\\\"\"", "-3"] {
            let rid = RawValue::from_string(id.into()).expect("id");
            for version in ProtocolVersion::ALL {
                for result in &results {
                    let reply = call_reply(&rid, result, version);
                    let parsed: Value = serde_json::from_str(&reply).unwrap_or_else(|e| panic!("{reply}: {e}"));
                    assert_eq!(parsed, derived(id, result, version), "{reply}");
                }
            }
        }
    }
}
