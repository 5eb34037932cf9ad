//! Routing in `request_filter`: `/mcp/{server}` (Streamable HTTP), `/mcp/{server}/sse`
//! and `/mcp/{server}/message` (legacy HTTP+SSE).

use std::sync::Arc;

use bytes::Bytes;
use pingora_error::Result;
use pingora_proxy::Session;

use super::{legacy_sse, respond, streamable, GatewayState};
use crate::mcp::jsonrpc::INVALID_REQUEST;
use crate::runtime::{Route, Snapshot};

/// What every handler below gets.
pub struct Request<'a> {
    /// Shared gateway state.
    pub state: &'a Arc<GatewayState>,
    /// The snapshot this request runs on, start to end.
    pub snapshot: Arc<Snapshot>,
    /// The route.
    pub route: Arc<Route>,
    /// Who is calling (`None`: anonymous, on a public route).
    pub principal: Option<Arc<crate::auth::Principal>>,
}

impl Request<'_> {
    /// The session binding of this request's caller.
    pub fn binding(&self) -> u64 {
        crate::auth::binding(self.principal.as_deref())
    }
}

/// Which endpoint of a server a path names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    /// `/mcp/{server}`: Streamable HTTP.
    Streamable,
    /// `/mcp/{server}/sse`: the legacy stream.
    Sse,
    /// `/mcp/{server}/message[s]`: the legacy message endpoint.
    Message,
    /// Anything else below `/mcp/{server}/`.
    Unknown,
}

/// Splits `/mcp/{server}[/tail]` into the server name and its endpoint.
fn parse_path(path: &str) -> Option<(&str, Endpoint)> {
    let rest = path.strip_prefix("/mcp/")?;
    let (name, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let endpoint = match tail {
        "" => Endpoint::Streamable,
        "sse" => Endpoint::Sse,
        "message" | "messages" => Endpoint::Message,
        _ => Endpoint::Unknown,
    };
    Some((name, endpoint))
}

/// Dispatches a request; `Ok(true)` when answered here, `Ok(false)` to proxy upstream.
pub async fn request(state: &Arc<GatewayState>, session: &mut Session) -> Result<bool> {
    crate::listener::head_read(session.as_downstream().stream());
    let snapshot = state.snapshot.load_full();
    if let Some(server) = session.req_header().uri.path().strip_prefix(crate::auth::resource::WELL_KNOWN) {
        let server = server.to_string();
        return Box::pin(protected_resource(session, snapshot.as_deref(), &server)).await;
    }
    // The path is parsed once and the route looked up while the path is borrowed from
    // the request, before the session is borrowed mutably, so no part of it is copied.
    // `route` is `None` before the first snapshot, `Err(name)` for an unknown server.
    let parsed = parse_path(session.req_header().uri.path()).map(|(name, endpoint)| (snapshot.as_ref().map(|s| s.route(name).cloned().ok_or_else(|| name.to_string())), endpoint));
    let Some((route, endpoint)) = parsed else {
        return respond::rpc_error(session, 404, INVALID_REQUEST, "Not Found: MCP endpoints are /mcp/{server}").await;
    };
    let (Some(snapshot), Some(route)) = (snapshot, route) else {
        return respond::send(session, 503, Some("application/json"), crate::mcp::jsonrpc::error(None, INVALID_REQUEST, "the gateway is starting"), &[("retry-after", "1")]).await;
    };
    if let Err(why) = snapshot.origin.check(&session.req_header().headers) {
        return respond::rpc_error(session, 403, INVALID_REQUEST, &format!("Forbidden: {why}")).await;
    }
    if let Some(reply) = oversized_headers(session, snapshot.config.limits.max_request_headers.0) {
        return reply_431(session, reply).await;
    }
    let route = match route {
        Ok(route) => route,
        Err(name) => return respond::rpc_error(session, 404, INVALID_REQUEST, &format!("Not Found: no MCP server named `{name}`")).await,
    };
    let principal = match snapshot.auth.authenticate(&session.req_header().headers, &route.name, &route.access).await {
        Ok(p) => p,
        Err(failure) => return Box::pin(refuse_unauthenticated(session, &snapshot, &route, failure)).await,
    };
    let req = Request { state, snapshot, route, principal };
    let method = &session.req_header().method;
    let (post, delete, get) = (method == http::Method::POST, method == http::Method::DELETE, method == http::Method::GET);
    match endpoint {
        Endpoint::Streamable if post => streamable::post(&req, session).await,
        // The cold endpoints are boxed: their state would otherwise be part of every
        // request's future, which Pingora boxes (and so copies) per request.
        Endpoint::Streamable if delete => Box::pin(streamable::delete(&req, session)).await,
        Endpoint::Streamable => {
            respond::send(session, 405, Some("application/json"), crate::mcp::jsonrpc::error(None, INVALID_REQUEST, "Method Not Allowed: this endpoint serves POST and DELETE (no server-initiated stream)"), &[("allow", "POST, DELETE")]).await
        }
        Endpoint::Sse if get => Box::pin(legacy_sse::stream(&req, session)).await,
        Endpoint::Sse => respond::send(session, 405, None, Bytes::new(), &[("allow", "GET")]).await,
        Endpoint::Message if post => Box::pin(legacy_sse::message(&req, session)).await,
        Endpoint::Message => respond::send(session, 405, None, Bytes::new(), &[("allow", "POST")]).await,
        Endpoint::Unknown => respond::rpc_error(session, 404, INVALID_REQUEST, "Not Found").await,
    }
}

/// Answers a request that failed authentication (401/403 with `WWW-Authenticate`) before
/// its body is read: nothing of it reaches a tool, a database or an upstream.
async fn refuse_unauthenticated(session: &mut Session, snapshot: &Snapshot, route: &Route, failure: crate::auth::AuthFailure) -> Result<bool> {
    crate::metrics::METRICS.auth_failures.with_label_values(&[failure.reason()]).inc();
    let metadata = snapshot.auth.resource().map(|r| r.metadata_url(&route.name));
    let challenge = failure.challenge(metadata.as_deref(), route.access.required_scopes());
    let body = crate::mcp::jsonrpc::error(None, crate::auth::UNAUTHORIZED, &format!("{}: {failure}", if failure.status() == 401 { "Unauthorized" } else { "Forbidden" }));
    respond::send(session, failure.status(), Some("application/json"), body, &[("www-authenticate", challenge.as_str())]).await
}

/// GET `/.well-known/oauth-protected-resource/mcp/{server}` (RFC 9728 §3), served on the
/// MCP listener: clients look for it at the resource's own origin.
async fn protected_resource(session: &mut Session, snapshot: Option<&Snapshot>, path: &str) -> Result<bool> {
    let name = path.strip_prefix("/mcp/").unwrap_or("");
    let found = snapshot.and_then(|s| Some((s.auth.resource()?, s.route(name)?)));
    let Some((resource, route)) = found else {
        return respond::rpc_error(session, 404, INVALID_REQUEST, "Not Found: no protected resource metadata here (auth.oauth is not set, or no such server)").await;
    };
    if session.req_header().method != http::Method::GET {
        return respond::send(session, 405, None, Bytes::new(), &[("allow", "GET")]).await;
    }
    let body = resource.metadata(&route.name, route.access.required_scopes()).to_string();
    respond::send(session, 200, Some("application/json"), body, &[("cache-control", "max-age=300")]).await
}

fn oversized_headers(session: &Session, limit: usize) -> Option<usize> {
    let h = session.req_header();
    let target = h.uri.authority().map_or(0, |a| a.as_str().len()) + h.uri.path_and_query().map_or(0, |p| p.as_str().len());
    let size: usize = h.headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum::<usize>() + target;
    (size > limit).then_some(size)
}

async fn reply_431(session: &mut Session, size: usize) -> Result<bool> {
    session.set_keepalive(None);
    respond::rpc_error(session, 431, INVALID_REQUEST, &format!("Request Header Fields Too Large: {size} bytes")).await
}

/// Why a body could not be read. Each is the client's fault and ends the connection.
pub enum BodyFailure {
    /// Larger than the limit.
    TooLarge(usize),
    /// Not complete within `connections.body_timeout` (or a read stalled).
    TimedOut(std::time::Duration),
    /// Broken framing (a bad chunk size, a body shorter than its Content-Length).
    Malformed(String),
}

/// Reads the whole request body up to `limit` within `deadline`, once (no retry buffer:
/// nothing is re-sent upstream). A connection that breaks mid-body is an error (nobody to
/// answer).
pub async fn read_body(session: &mut Session, limit: usize, deadline: std::time::Duration) -> Result<std::result::Result<Bytes, BodyFailure>> {
    let declared = session.req_header().headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if let Some(n) = declared.filter(|n| *n > limit) {
        return Ok(Err(BodyFailure::TooLarge(n)));
    }
    match tokio::time::timeout(deadline, read_chunks(session, limit)).await {
        Ok(Ok(read)) => Ok(read),
        Ok(Err(e)) => classify(*e, deadline),
        Err(_) => Ok(Err(BodyFailure::TimedOut(deadline))),
    }
}

async fn read_chunks(session: &mut Session, limit: usize) -> Result<std::result::Result<Bytes, BodyFailure>> {
    let mut body = crate::upstream::ChunkedBody::default();
    while let Some(chunk) = session.read_request_body().await? {
        if body.len() + chunk.len() > limit {
            return Ok(Err(BodyFailure::TooLarge(body.len() + chunk.len())));
        }
        body.push(chunk, limit);
    }
    Ok(Ok(body.finish()))
}

/// Pingora's body errors as the client's faults where they are.
fn classify(e: pingora_error::Error, deadline: std::time::Duration) -> Result<std::result::Result<Bytes, BodyFailure>> {
    use pingora_error::ErrorType;
    match &e.etype {
        ErrorType::ReadTimedout => Ok(Err(BodyFailure::TimedOut(deadline))),
        ErrorType::InvalidHTTPHeader => Ok(Err(BodyFailure::Malformed(e.context.as_ref().map_or_else(|| "invalid body framing".into(), |c| c.as_str().to_owned())))),
        ErrorType::Custom(kind) if *kind == "InvalidChunk" || *kind == "PrematureBodyEnd" => Ok(Err(BodyFailure::Malformed(match &e.context {
            Some(c) => format!("{kind}: {}", c.as_str()),
            None => (*kind).to_string(),
        }))),
        _ => Err(Box::new(e)),
    }
}

/// Answers a body that could not be read (413, 408 or 400) and closes the connection:
/// the rest of the body is not read.
pub async fn body_failure(session: &mut Session, failure: BodyFailure, limit: usize) -> Result<bool> {
    session.set_keepalive(None);
    match failure {
        BodyFailure::TooLarge(size) => respond::rpc_error(session, 413, INVALID_REQUEST, &format!("Payload Too Large: {size} bytes exceeds the {limit}-byte limit (limits.max_request_body)")).await,
        BodyFailure::TimedOut(d) => respond::rpc_error(session, 408, INVALID_REQUEST, &format!("Request Timeout: the request body did not arrive within {d:?} (connections.body_timeout)")).await,
        BodyFailure::Malformed(why) => respond::rpc_error(session, 400, INVALID_REQUEST, &format!("Bad Request: malformed request body ({why})")).await,
    }
}

/// Refuses a JSON-RPC batch longer than `limits.max_batch` before any of it runs, with one
/// message for both transports.
pub async fn refuse_long_batch(session: &mut Session, len: usize, max: usize) -> Option<Result<bool>> {
    if len <= max {
        return None;
    }
    Some(respond::rpc_error(session, 400, INVALID_REQUEST, &format!("Invalid Request: batch of {len} messages exceeds the limit of {max} (limits.max_batch)")).await)
}

#[cfg(test)]
mod tests {
    use super::{parse_path, Endpoint};

    #[test]
    fn paths_name_a_server_and_an_endpoint() {
        assert!(parse_path("/mcp/demo") == Some(("demo", Endpoint::Streamable)));
        assert!(parse_path("/mcp/demo/sse") == Some(("demo", Endpoint::Sse)));
        assert!(parse_path("/mcp/demo/message") == Some(("demo", Endpoint::Message)));
        assert!(parse_path("/mcp/demo/messages") == Some(("demo", Endpoint::Message)));
        assert!(parse_path("/mcp/demo/sse/x") == Some(("demo", Endpoint::Unknown)));
        assert!(parse_path("/mcp/demo/") == Some(("demo", Endpoint::Streamable)));
        assert!(parse_path("/mcp").is_none() && parse_path("/metrics").is_none() && parse_path("/MCP/demo").is_none());
    }
}
