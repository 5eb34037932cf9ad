//! Request-time failures of the method layer, typed, and their one mapping to a reply.
//!
//! Each failure says whose fault it is ([`Fault`]) and how the client hears of it: as a
//! JSON-RPC error (the request itself was wrong) or as a `tools/call` result with
//! `isError` (the tool was found and the model should read why it failed). Every handler
//! returns a [`GatewayError`] and [`GatewayError::reply`] alone writes the bytes, so a new
//! kind of failure (unauthenticated, denied, rate-limited, blocked) is one variant here.

use serde_json::value::RawValue;
use thiserror::Error;

use super::call_reply;
use crate::mcp::jsonrpc::{self, INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND};
use crate::mcp::version::ProtocolVersion;
use crate::metrics::ToolOutcome;
use crate::tools::CallToolResult;
use crate::upstream::UpstreamError;

/// Whose fault a failure is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The client sent something wrong; retrying the same request will fail again.
    Client,
    /// The upstream the tool calls failed or was unreachable; a retry may help.
    Upstream,
    /// The gateway itself failed.
    Gateway,
}

/// A request-time failure of the method layer.
#[derive(Debug, Error)]
pub enum GatewayError {
    /// The params of a method are missing or of the wrong shape; the message names what
    /// the method requires.
    #[error("{0}")]
    InvalidParams(&'static str),
    /// A `tools/list` cursor that no page of this route produced.
    #[error("Invalid cursor: {0}")]
    InvalidCursor(&'static str),
    /// `tools/call` named a tool the route does not serve.
    #[error("Unknown tool: {0}")]
    UnknownTool(String),
    /// The caller may not call this tool: answered exactly as [`GatewayError::UnknownTool`]
    /// (a denied tool is not shown in `tools/list` either), observed as `denied`.
    #[error("Unknown tool: {0}")]
    Denied(String),
    /// A rate limit or quota of caller × tool is used up; nothing was called.
    #[error("Rate limit exceeded: {}; retry in {} s", .0.limit, .0.retry_after.as_secs_f64().ceil().max(1.0))]
    RateLimited(crate::policy::quota::QuotaExceeded),
    /// A method the gateway does not implement.
    #[error("Method not found: {0}")]
    MethodNotFound(String),
    /// The 2026-07-28 discovery probe, refused with a pre-2026 code on purpose (see
    /// [`super::methods::DISCOVER_UNSUPPORTED`]).
    #[error("{}", super::methods::DISCOVER_UNSUPPORTED)]
    DiscoverUnsupported,
    /// `initialize` inside a JSON-RPC batch.
    #[error("initialize must not be part of a JSON-RPC batch")]
    InitializeInBatch,
    /// The arguments failed the tool's `inputSchema`; the message names each field and
    /// rule. Nothing was called.
    #[error("{0}")]
    InvalidArguments(String),
    /// The tool's upstream call failed (connect, timeout, broken exchange).
    #[error(transparent)]
    Upstream(UpstreamError),
    /// A tool result could not be serialized.
    #[error("the tool result could not be serialized")]
    Serialize,
}

/// JSON-RPC code of a call refused by a rate limit or quota (implementation-defined server
/// error range); `data` holds `limit` and `retryAfterSeconds`.
pub const RATE_LIMITED: i32 = -32029;

/// How a failure reaches the client.
enum Shape {
    /// A JSON-RPC error with this code.
    Rpc(i32),
    /// A `tools/call` result with `isError`.
    ToolError,
}

impl GatewayError {
    /// Whose fault this is.
    pub fn fault(&self) -> Fault {
        match self {
            GatewayError::Upstream(_) => Fault::Upstream,
            GatewayError::Serialize => Fault::Gateway,
            _ => Fault::Client,
        }
    }

    /// The `outcome` label of a call that failed this way after its tool was found;
    /// `None` for failures before (they are counted per method only).
    pub fn outcome(&self) -> Option<ToolOutcome> {
        match self {
            GatewayError::InvalidArguments(_) => Some(ToolOutcome::InvalidArguments),
            GatewayError::Denied(_) => Some(ToolOutcome::Denied),
            GatewayError::RateLimited(_) => Some(ToolOutcome::RateLimited),
            GatewayError::Upstream(_) => Some(ToolOutcome::Error),
            _ => None,
        }
    }

    /// The `data` of a JSON-RPC error, when it carries more than its message.
    fn data(&self) -> Option<serde_json::Value> {
        match self {
            GatewayError::RateLimited(q) => Some(serde_json::json!({ "limit": q.limit, "retryAfterSeconds": q.retry_after.as_secs_f64().ceil().max(1.0) as u64 })),
            _ => None,
        }
    }

    fn shape(&self) -> Shape {
        match self {
            GatewayError::InvalidParams(_) | GatewayError::InvalidCursor(_) | GatewayError::UnknownTool(_) | GatewayError::Denied(_) => Shape::Rpc(INVALID_PARAMS),
            GatewayError::RateLimited(_) => Shape::Rpc(RATE_LIMITED),
            GatewayError::MethodNotFound(_) => Shape::Rpc(METHOD_NOT_FOUND),
            GatewayError::DiscoverUnsupported | GatewayError::InitializeInBatch => Shape::Rpc(INVALID_REQUEST),
            GatewayError::Serialize => Shape::Rpc(INTERNAL_ERROR),
            GatewayError::InvalidArguments(_) | GatewayError::Upstream(_) => Shape::ToolError,
        }
    }

    /// The JSON-RPC code this failure is answered with, or `None` when it is answered as
    /// an `isError` tool result.
    pub fn code(&self) -> Option<i32> {
        match self.shape() {
            Shape::Rpc(code) => Some(code),
            Shape::ToolError => None,
        }
    }

    /// The reply to request `id` (a JSON-RPC error, or an `isError` result shaped for
    /// `version`): the one place a method-layer failure becomes bytes.
    pub fn reply(&self, id: &RawValue, version: ProtocolVersion) -> String {
        match self.shape() {
            Shape::Rpc(code) => match self.data() {
                Some(data) => jsonrpc::error_with_data(Some(id), code, &self.to_string(), &data),
                None => jsonrpc::error(Some(id), code, &self.to_string()),
            },
            Shape::ToolError => call_reply(id, &CallToolResult::error(self.to_string()), version),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;
    use serde_json::Value;

    use super::{Fault, GatewayError};
    use crate::mcp::version::ProtocolVersion;

    fn reply(e: &GatewayError) -> Value {
        let id = RawValue::from_string("7".into()).expect("id");
        serde_json::from_str(&e.reply(&id, ProtocolVersion::ASSUMED)).expect("a JSON reply")
    }

    #[test]
    fn request_errors_are_json_rpc_errors_with_their_code() {
        let v = reply(&GatewayError::UnknownTool("nope".into()));
        assert_eq!(v["id"], 7);
        assert_eq!(v["error"]["code"], -32602);
        assert_eq!(v["error"]["message"], "Unknown tool: nope");
        assert_eq!(reply(&GatewayError::MethodNotFound("x/y".into()))["error"]["code"], -32601);
        assert_eq!(reply(&GatewayError::InvalidCursor("must be a string"))["error"]["message"], "Invalid cursor: must be a string");
        assert_eq!(GatewayError::UnknownTool("nope".into()).fault(), Fault::Client);
    }

    #[test]
    fn tool_failures_are_is_error_results() {
        let v = reply(&GatewayError::InvalidArguments("invalid arguments for tool `t`: arguments: x".into()));
        assert!(v.get("error").is_none());
        assert_eq!(v["result"]["isError"], true);
        assert_eq!(v["result"]["content"][0]["text"], "invalid arguments for tool `t`: arguments: x");
        let upstream = GatewayError::Upstream(crate::upstream::UpstreamError::Connect { addr: "api:80".into(), detail: "connection refused".into() });
        assert_eq!(upstream.fault(), Fault::Upstream);
        assert_eq!(reply(&upstream)["result"]["content"][0]["text"], "cannot connect to the API at api:80: connection refused");
        assert_eq!(upstream.code(), None);
    }
}
