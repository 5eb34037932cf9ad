//! The method layer and the one path every `tools/call` takes, whatever the transport
//! (Streamable HTTP single or batch, legacy SSE) and whatever the server kind.
//!
//! [`tools_call`] runs these stages in this order, and nothing else finishes a call:
//!
//! 1. **parse** `params` into the tool name and raw `arguments`;
//! 2. **find** the tool in the route's catalog (unknown names never reach a server);
//! 3. **authorize**: the caller (authenticated by `dispatch` before the body was read)
//!    must be allowed the tool by the route's rules; a denied call is answered exactly
//!    like an unknown tool (and observed as `denied`). **quota take**: every rate limit
//!    and quota of the route that applies to caller × tool takes one call, or the call
//!    is refused with the limit and when to retry (observed as `rate_limited`);
//! 4. **validate** the arguments against the compiled `inputSchema`;
//! 5. *guard the arguments*: not yet;
//! 6. **invoke** the route's `ToolServer`: a `CallOutcome::Done` result is ready; a
//!    `CallOutcome::Http` call runs on the pooled connector while the transport's
//!    presence check says the client is there, and the server maps its response;
//! 7. *guard the result, quota settle*: not yet;
//! 8. **observe** once: `mcpgate_tool_calls_total{outcome}` and the latency histogram;
//!    the access log goes here;
//! 9. **reply**: the JSON-RPC response, serialized once for the session's version; a
//!    failure at any stage is a [`GatewayError`], answered by [`GatewayError::reply`].
//!
//! A call whose client left (the presence check failed) ends at stage 6 with
//! [`CallEnd::Abandoned`]: it is not observed here, and the transport that drops the
//! connection counts it (`mcpgate_calls_abandoned_total`), as it does when it drops a
//! whole batch it saw its client leave.

mod error;
pub mod methods;
mod reply;
#[cfg(test)]
mod tests;

pub use error::{Fault, GatewayError};
pub use reply::call_reply;

use std::borrow::Cow;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::metrics::ToolOutcome;
use crate::tools::{CallOutcome, CallToolResult, CatalogEntry, ToolRef};
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
    // 1. parse, 2. find
    let (arguments, tool, entry) = match find(cx, params) {
        Ok(found) => found,
        Err(e) => return CallEnd::Reply(e.reply(id, cx.version)),
    };
    // 3. authorize, quota take; 4. validate … 7. guard(result), quota settle
    let result = match governed_invoke(cx, tool, entry, arguments).await {
        Ok(result) => Ok(result),
        Err(Stop::Abandoned) => return CallEnd::Abandoned,
        Err(Stop::Failed(e)) => Err(e),
    };
    // 8. observe: once, for every call that reached its tool's checks.
    let outcome = match &result {
        Ok(r) if r.is_error => Some(ToolOutcome::Error),
        Ok(_) => Some(ToolOutcome::Success),
        Err(e) => e.outcome(),
    };
    if let Some(outcome) = outcome {
        cx.route.metrics.tool_call(tool, &entry.def.name, outcome, started.elapsed());
    }
    // 9. reply
    CallEnd::Reply(match &result {
        Ok(r) => call_reply(id, r, cx.version),
        Err(e) => e.reply(id, cx.version),
    })
}

/// Why a call stopped short of a result.
enum Stop {
    /// The client left; nobody to answer.
    Abandoned,
    /// A failure the client is told of.
    Failed(GatewayError),
}

impl From<GatewayError> for Stop {
    fn from(e: GatewayError) -> Self {
        Stop::Failed(e)
    }
}

/// Stages 1 and 2: the raw `arguments` and the tool they are for.
fn find<'a>(cx: &MethodCtx<'a>, params: Option<&'a RawValue>) -> Result<(Option<&'a RawValue>, ToolRef, &'a CatalogEntry), GatewayError> {
    let p = params.and_then(|p| serde_json::from_str::<CallParams>(p.get()).ok()).ok_or(GatewayError::InvalidParams("tools/call requires params {name, arguments}"))?;
    let name = p.name.and_then(|n| serde_json::from_str::<Cow<'_, str>>(n.get()).ok()).ok_or(GatewayError::InvalidParams("tools/call requires params.name (a string)"))?;
    let (tool, entry) = cx.route.catalog.find(&name).ok_or_else(|| GatewayError::UnknownTool(name.into_owned()))?;
    Ok((p.arguments, tool, entry))
}

/// Stage 3, then stages 4 to 7.
async fn governed_invoke(cx: &MethodCtx<'_>, tool: ToolRef, entry: &CatalogEntry, arguments: Option<&RawValue>) -> Result<CallToolResult, Stop> {
    if !cx.route.access.permits(cx.principal, tool) {
        return Err(GatewayError::Denied(entry.def.name.clone()).into());
    }
    let quotas = &cx.route.access.quotas;
    if !quotas.is_empty() {
        quotas.take(cx.principal, tool).await.map_err(GatewayError::RateLimited)?;
    }
    checked_invoke(cx, tool, entry, arguments).await
}

/// Stages 4 to 7: arguments checked, then the server invoked (on the connector for an
/// HTTP call, while the client is there).
async fn checked_invoke(cx: &MethodCtx<'_>, tool: ToolRef, entry: &CatalogEntry, arguments: Option<&RawValue>) -> Result<CallToolResult, Stop> {
    // 4. validate
    let args = match arguments.map(|a| serde_json::from_str::<Value>(a.get())) {
        None | Some(Ok(Value::Null)) => Map::new(),
        Some(Ok(Value::Object(m))) => m,
        Some(_) => return Err(GatewayError::InvalidParams("tools/call params.arguments must be an object").into()),
    };
    let args = Value::Object(args);
    entry.validate(&args).map_err(GatewayError::InvalidArguments)?;
    let args = match args {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    // 5. guard(arguments): not yet.
    // 6. invoke
    let call = crate::tools::CallContext { arguments, ..cx.call };
    let mut http = match cx.route.server.call(tool.index(), args, call).await {
        CallOutcome::Done(result) => return Ok(result),
        CallOutcome::Http(http) => http,
    };
    cx.route.credentials.apply(cx.principal, &mut http.headers);
    let finish = |response: crate::tools::UpstreamResponse<'_>| cx.route.server.finish_http(tool.index(), &response);
    match crate::upstream::execute_while(cx.connector, &http, finish, cx.present, CLIENT_CHECK).await {
        Ok(result) => Ok(result),
        Err(UpstreamError::Abandoned { .. }) => Err(Stop::Abandoned),
        Err(e) => {
            log::warn!("tool `{}` on `{}`: {e}", entry.def.name, cx.route.name);
            Err(GatewayError::Upstream(e).into())
        }
    }
    // 7. guard(result), quota settle: not yet.
}
