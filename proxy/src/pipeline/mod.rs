//! The method layer and the one path every `tools/call` takes, whatever the transport
//! (Streamable HTTP single or batch, legacy SSE) and whatever the server kind.
//!
//! [`tools_call`] runs these stages in this order, and nothing else finishes a call:
//!
//! 1. **parse** `params` into the tool name and raw `arguments`;
//! 2. **find** the tool in the route's catalog (unknown names never reach a server);
//! 3. *authenticate, authorize (the permit), quota take*: not yet, they go here;
//! 4. **validate** the arguments against the compiled `inputSchema`;
//! 5. *guard the arguments*: not yet;
//! 6. **invoke** the route's `ToolServer`: a `CallOutcome::Done` result is ready; a
//!    `CallOutcome::Http` call runs on the pooled connector while the transport's
//!    presence check says the client is there, and the server maps its response;
//! 7. *guard the result, quota settle*: not yet;
//! 8. **observe** once: `mcpgate_tool_calls_total{outcome}` and the latency histogram;
//!    the access log goes here;
//! 9. **reply**: the JSON-RPC response, serialized once for the session's version.
//!
//! A call whose client left (the presence check failed) ends at stage 6 with
//! [`CallEnd::Abandoned`]: it is not observed here, and the transport that drops the
//! connection counts it (`mcpgate_calls_abandoned_total`), as it does when it drops a
//! whole batch it saw its client leave.

pub mod methods;
mod reply;

pub use reply::call_reply;

use std::borrow::Cow;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::mcp::jsonrpc::{self, INVALID_PARAMS};
use crate::metrics::ToolOutcome;
use crate::tools::{CallOutcome, CallToolResult};
use crate::upstream::UpstreamError;
use methods::MethodCtx;

/// How often a running REST call asks the transport whether its client is still there.
pub const CLIENT_CHECK: Duration = Duration::from_secs(1);

/// How a `tools/call` ended.
pub enum CallEnd {
    /// Send this JSON-RPC response.
    Reply(String),
    /// The client left mid-call; the call was dropped (with its upstream connection).
    Abandoned,
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

/// Runs one `tools/call` through every stage (see the module head) and returns its reply.
pub async fn tools_call(cx: &MethodCtx<'_>, id: &RawValue, params: Option<&RawValue>) -> CallEnd {
    let started = Instant::now();
    // 1. parse
    let Some(p) = params.and_then(|p| serde_json::from_str::<CallParams>(p.get()).ok()) else {
        return CallEnd::Reply(jsonrpc::error(Some(id), INVALID_PARAMS, "tools/call requires params {name, arguments}"));
    };
    let Some(name) = p.name.and_then(|n| serde_json::from_str::<Cow<'_, str>>(n.get()).ok()) else {
        return CallEnd::Reply(jsonrpc::error(Some(id), INVALID_PARAMS, "tools/call requires params.name (a string)"));
    };
    // 2. find
    let Some((index, entry)) = cx.route.catalog.find(&name) else {
        return CallEnd::Reply(jsonrpc::error(Some(id), INVALID_PARAMS, &format!("Unknown tool: {name}")));
    };
    // 3. authenticate, authorize, quota take: not yet.
    // 4. validate
    let args = match p.arguments.map(|a| serde_json::from_str::<Value>(a.get())) {
        None | Some(Ok(Value::Null)) => Map::new(),
        Some(Ok(Value::Object(m))) => m,
        Some(_) => return CallEnd::Reply(jsonrpc::error(Some(id), INVALID_PARAMS, "tools/call params.arguments must be an object")),
    };
    let args = Value::Object(args);
    if let Err(message) = entry.validate(&args) {
        return CallEnd::Reply(observed(cx, id, index, &name, ToolOutcome::InvalidArguments, &CallToolResult::error(message), started));
    }
    let args = match args {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    // 5. guard(arguments): not yet.
    // 6. invoke
    let call = crate::tools::CallContext { arguments: p.arguments, ..cx.call };
    let result = match cx.route.server.call(index, args, call).await {
        CallOutcome::Done(result) => result,
        CallOutcome::Http(http) => {
            let finish = |response: crate::tools::UpstreamResponse<'_>| cx.route.server.finish_http(index, &response);
            match crate::upstream::execute_while(cx.connector, &http, finish, cx.present, CLIENT_CHECK).await {
                Ok(result) => result,
                Err(UpstreamError::Abandoned { .. }) => return CallEnd::Abandoned,
                Err(e) => {
                    log::warn!("tool `{name}` on `{}`: {e}", cx.route.name);
                    e.to_result()
                }
            }
        }
    };
    // 7. guard(result), quota settle: not yet.
    let outcome = if result.is_error { ToolOutcome::Error } else { ToolOutcome::Success };
    CallEnd::Reply(observed(cx, id, index, &name, outcome, &result, started))
}

/// Stages 8 and 9: the one observation of a call that reached its tool, then its reply.
fn observed(cx: &MethodCtx<'_>, id: &RawValue, index: usize, name: &str, outcome: ToolOutcome, result: &CallToolResult, started: Instant) -> String {
    cx.route.metrics.tool_call(index, name, outcome, started.elapsed());
    call_reply(id, result, cx.version)
}
