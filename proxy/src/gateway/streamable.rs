//! Streamable HTTP (2025-03-26 and later) on `/mcp/{server}`: POST carries JSON-RPC,
//! DELETE ends a session. Responses are `application/json`; the gateway originates no
//! server-to-client messages, so GET gets 405.

use bytes::Bytes;
use pingora_error::Result;
use pingora_proxy::Session;
use serde_json::value::RawValue;

use super::dispatch::{body_failure, read_body, refuse_long_batch, Request};
use super::respond;
use crate::mcp::http as mh;
use crate::mcp::jsonrpc::{self, Body, BodyError, Message, INVALID_REQUEST, PARSE_ERROR};
use crate::mcp::session::{NewSessionRefusal, SessionRejection};
use crate::mcp::version::ProtocolVersion;
use crate::pipeline::methods::{self, MethodCtx, Outcome};
use crate::pipeline::CLIENT_CHECK;
use crate::tools::CallContext;

/// POST `/mcp/{server}`. The body is read before the transport rules are checked, so an
/// error about the request (Accept, Content-Type, version, session) is addressed to its id.
pub async fn post(req: &Request<'_>, session: &mut Session) -> Result<bool> {
    let limit = req.snapshot.config.limits.max_request_body.0;
    let body = match read_body(session, limit, req.snapshot.config.connections.body_timeout.0).await? {
        Ok(b) => b,
        Err(f) => return body_failure(session, f, limit).await,
    };
    let parsed = jsonrpc::parse_body(&body);
    let id = parsed.as_ref().ok().and_then(Body::id);
    let header_version = match transport_rules(&session.req_header().headers) {
        Ok(v) => v,
        Err((status, why)) => return respond::rpc_error_to(session, status, id, INVALID_REQUEST, &why).await,
    };
    let presented = mh::session_id(&session.req_header().headers).map(str::to_owned);
    let parsed = match parsed {
        Ok(p) => p,
        Err(BodyError::Parse) => return respond::send(session, 400, Some("application/json"), jsonrpc::error(None, PARSE_ERROR, "Parse error: the body is not valid JSON"), &[]).await,
        Err(BodyError::Invalid(why)) => return respond::rpc_error(session, 400, INVALID_REQUEST, &format!("Invalid Request: {why}")).await,
    };
    if let Body::Single(Message::Request { id, method: "initialize", params }) = parsed {
        return initialize(req, session, id, params, header_version).await;
    }
    if let Body::Single(Message::Invalid { id, reason }) = parsed {
        return respond::rpc_error_to(session, 400, id, INVALID_REQUEST, &format!("Invalid Request: {reason}")).await;
    }
    if let Body::Single(Message::Request { id, method: "server/discover", .. }) = parsed {
        return respond::rpc_error_to(session, 400, Some(id), INVALID_REQUEST, methods::DISCOVER_UNSUPPORTED).await;
    }
    let Some(token) = presented else {
        if parsed.batches_initialize() {
            return respond::rpc_error(session, 400, INVALID_REQUEST, "Invalid Request: initialize must be sent alone, not inside a JSON-RPC batch; send it as a single request, then the batch with the Mcp-Session-Id it returns").await;
        }
        return respond::rpc_error_to(session, 400, id, INVALID_REQUEST, "Bad Request: Mcp-Session-Id header is required (send initialize first)").await;
    };
    let claims = match req.snapshot.sessions.check(&token, &req.route.name, req.binding()).await {
        Ok(c) => c,
        Err(SessionRejection::Unknown) => return respond::rpc_error_to(session, 404, id, INVALID_REQUEST, "Not Found: unknown session; send a new initialize").await,
        Err(SessionRejection::Ended) => return respond::rpc_error_to(session, 404, id, INVALID_REQUEST, "Not Found: the session has ended; send a new initialize").await,
        Err(SessionRejection::Full) => return refuse_new_session(session, id, NewSessionRefusal::Full(req.snapshot.sessions.settings().max_active)).await,
    };
    let version = claims.version;
    match parsed {
        Body::Single(Message::Request { id, method, params }) => single_request(req, session, version, id, method, params).await,
        Body::Single(_) => respond::accepted(session).await,
        Body::Batch(items) => batch(req, session, version, items).await,
    }
}

/// Accept, Content-Type and `MCP-Protocol-Version` of a POST: the version it names, or the
/// status and message refusing it.
fn transport_rules(headers: &http::HeaderMap) -> std::result::Result<Option<ProtocolVersion>, (u16, String)> {
    if !mh::accepts_post(headers) {
        return Err((406, "Not Acceptable: Accept must list application/json and text/event-stream".into()));
    }
    if !mh::is_json(headers) {
        return Err((415, "Unsupported Media Type: Content-Type must be application/json".into()));
    }
    mh::protocol_version(headers).map_err(|bad| (400, format!("Bad Request: Unsupported protocol version: {bad} (supported versions: {})", ProtocolVersion::supported_list())))
}

async fn initialize(req: &Request<'_>, session: &mut Session, id: &RawValue, params: Option<&RawValue>, header_version: Option<ProtocolVersion>) -> Result<bool> {
    if let Err(refusal) = req.snapshot.sessions.admission(client_ip(session)) {
        return refuse_new_session(session, Some(id), refusal).await;
    }
    let outcome = {
        let cx = MethodCtx {
            route: &req.route,
            version: header_version.unwrap_or(ProtocolVersion::ASSUMED),
            call: CallContext { client_ip: client_ip(session), headers: &session.req_header().headers, arguments: None },
            connector: &req.state.connector,
            present: &|| true,
            principal: req.principal.as_deref(),
        };
        methods::handle_request(&cx, id, "initialize", params).await
    };
    match outcome {
        Outcome::Initialized { reply, version } => {
            let token = req.snapshot.sessions.issue(&req.route.name, version, req.binding());
            respond::send(session, 200, Some("application/json"), reply, &[("mcp-session-id", token.as_str())]).await
        }
        Outcome::Reply(reply) => respond::json(session, reply).await,
        Outcome::Abandoned => abandoned(session),
    }
}

async fn single_request(req: &Request<'_>, session: &mut Session, version: ProtocolVersion, id: &RawValue, method: &str, params: Option<&RawValue>) -> Result<bool> {
    let outcome = {
        let present = crate::listener::client_present(session.as_downstream().stream());
        let cx = MethodCtx {
            route: &req.route,
            version,
            call: CallContext { client_ip: client_ip(session), headers: &session.req_header().headers, arguments: None },
            connector: &req.state.connector,
            present: &present,
            principal: req.principal.as_deref(),
        };
        methods::handle_request(&cx, id, method, params).await
    };
    match outcome {
        Outcome::Reply(reply) | Outcome::Initialized { reply, .. } => respond::json(session, reply).await,
        Outcome::Abandoned => abandoned(session),
    }
}

/// The client closed its connection mid-call: the call was dropped (which closes its
/// upstream connection) and there is no one to answer.
fn abandoned(session: &mut Session) -> Result<bool> {
    crate::metrics::METRICS.calls_abandoned.inc();
    session.set_keepalive(None);
    Ok(true)
}

async fn batch(req: &Request<'_>, session: &mut Session, version: ProtocolVersion, items: Vec<Message<'_>>) -> Result<bool> {
    if !version.allows_batches() {
        return respond::rpc_error(session, 400, INVALID_REQUEST, &format!("Invalid Request: JSON-RPC batches are not supported in protocol version {} (only 2025-03-26)", version.as_str())).await;
    }
    if let Some(refused) = refuse_long_batch(session, items.len(), req.snapshot.config.limits.max_batch).await {
        return refused;
    }
    let headers = session.req_header().headers.clone();
    // Each call runs as if its client stayed: the whole batch is dropped when it leaves.
    let cx = MethodCtx { route: &req.route, version, call: CallContext { client_ip: client_ip(session), headers: &headers, arguments: None }, connector: &req.state.connector, present: &|| true, principal: req.principal.as_deref() };
    let gone = crate::listener::disconnected(session.as_downstream().stream(), CLIENT_CHECK);
    let replies = tokio::select! {
        replies = futures::future::join_all(items.iter().map(|m| batch_item(&cx, m))) => replies,
        () = gone => return abandoned(session),
    };
    let replies: Vec<String> = replies.into_iter().flatten().collect();
    if replies.is_empty() {
        return respond::accepted(session).await;
    }
    let mut out = String::with_capacity(replies.iter().map(|r| r.len() + 1).sum::<usize>() + 2);
    out.push('[');
    out.push_str(&replies.join(","));
    out.push(']');
    respond::json(session, out).await
}

async fn batch_item(cx: &MethodCtx<'_>, message: &Message<'_>) -> Option<String> {
    match *message {
        Message::Request { id, method: "initialize", .. } => Some(crate::pipeline::GatewayError::InitializeInBatch.reply(id, cx.version)),
        Message::Request { id, method, params } => match methods::handle_request(cx, id, method, params).await {
            Outcome::Reply(r) | Outcome::Initialized { reply: r, .. } => Some(r),
            // Not with `present: || true`: the batch as a whole is dropped instead.
            Outcome::Abandoned => None,
        },
        Message::Invalid { id, reason } => Some(jsonrpc::error(id, INVALID_REQUEST, &format!("Invalid Request: {reason}"))),
        Message::Notification { .. } | Message::Response => None,
    }
}

/// DELETE `/mcp/{server}`: ends the session.
pub async fn delete(req: &Request<'_>, session: &mut Session) -> Result<bool> {
    let Some(token) = mh::session_id(&session.req_header().headers).map(str::to_owned) else {
        return respond::rpc_error(session, 400, INVALID_REQUEST, "Bad Request: Mcp-Session-Id header is required").await;
    };
    match req.snapshot.sessions.check(&token, &req.route.name, req.binding()).await {
        Ok(claims) => {
            req.snapshot.sessions.delete(claims.id).await;
            respond::send(session, 204, None, Bytes::new(), &[]).await
        }
        Err(SessionRejection::Full) => refuse_new_session(session, None, NewSessionRefusal::Full(req.snapshot.sessions.settings().max_active)).await,
        Err(_) => respond::rpc_error(session, 404, INVALID_REQUEST, "Not Found: unknown or ended session").await,
    }
}

/// JSON-RPC code for a refused new session (implementation-defined server error range).
pub const SESSION_REFUSED: i32 = -32000;

/// Answers a refused new session: 429 with `Retry-After` over the per-client rate, 503
/// at the session cap; the JSON-RPC error names the setting.
pub async fn refuse_new_session(session: &mut Session, id: Option<&RawValue>, refusal: NewSessionRefusal) -> Result<bool> {
    let (status, retry_after, message) = match refusal {
        NewSessionRefusal::RateLimited(l) => (
            429,
            l.retry_after,
            format!("Too Many Requests: this address opened more than {} new sessions in a burst (limit session.initialize_rate = {}/s, session.initialize_burst = {}); retry in {} s", l.burst, l.per_second, l.burst, l.retry_after),
        ),
        NewSessionRefusal::Full(max) => (503, 30, format!("Service Unavailable: this gateway tracks its maximum of {max} sessions (session.max_active); sessions in use are served, new ones are refused until some end; retry later")),
    };
    let retry = retry_after.to_string();
    respond::send(session, status, Some("application/json"), jsonrpc::error(id, SESSION_REFUSED, &message), &[("retry-after", retry.as_str())]).await
}

/// The downstream client's IP.
pub fn client_ip(session: &Session) -> Option<std::net::IpAddr> {
    session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip())
}
