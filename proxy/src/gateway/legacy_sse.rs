//! The 2024-11-05 HTTP+SSE transport: GET `/mcp/{server}/sse` opens the stream and names
//! the message endpoint; POST `/mcp/{server}/message?sessionId=…` answers 202 and the
//! JSON-RPC response travels on the stream.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora_error::Result;
use pingora_proxy::Session;

use super::dispatch::{body_failure, read_body, Request};
use super::respond;
use super::streamable::{client_ip, run_to_completion};
use crate::mcp::http as mh;
use crate::mcp::jsonrpc::{self, Body, BodyError, Message, INVALID_REQUEST, PARSE_ERROR};
use crate::mcp::methods::{self, MethodCtx, Outcome};
use crate::mcp::sse::SseStream;
use crate::mcp::version::ProtocolVersion;
use crate::tools::CallContext;

/// Comment lines keep idle proxies from closing the stream and reveal dead clients.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// GET `/mcp/{server}/sse`.
pub async fn stream(req: &Request<'_>, session: &mut Session) -> Result<bool> {
    if !mh::accepts_sse(&session.req_header().headers) {
        return respond::rpc_error(session, 406, INVALID_REQUEST, "Not Acceptable: Accept must allow text/event-stream").await;
    }
    if let Err(refusal) = req.snapshot.sessions.admission(client_ip(session)) {
        return super::streamable::refuse_new_session(session, None, refusal).await;
    }
    let (token, id) = req.snapshot.sessions.issue_with_id(&req.route.name, ProtocolVersion::V2024_11_05);
    let (_stream, mut rx) = req.state.sse.open(id);
    let mut h = ResponseHeader::build(200, Some(4))?;
    h.insert_header(http::header::CONTENT_TYPE, "text/event-stream")?;
    h.insert_header(http::header::CACHE_CONTROL, "no-cache")?;
    h.insert_header("x-accel-buffering", "no")?;
    let endpoint = format!("event: endpoint\ndata: /mcp/{}/message?sessionId={token}\n\n", req.route.name);
    let result = async {
        session.write_response_header(Box::new(h), false).await?;
        session.write_response_body(Some(Bytes::from(endpoint)), false).await?;
        loop {
            let chunk = match tokio::time::timeout(KEEPALIVE, rx.recv()).await {
                Ok(Some(event)) => event,
                Ok(None) => break,
                Err(_) => {
                    req.snapshot.sessions.touch(id);
                    Bytes::from_static(b": keepalive\n\n")
                }
            };
            session.write_response_body(Some(chunk), false).await?;
        }
        session.write_response_body(None, true).await
    }
    .await;
    req.state.sse.close(id);
    req.snapshot.sessions.end(id);
    if let Err(e) = result {
        log::debug!("SSE stream on `{}` closed: {e}", req.route.name);
    }
    session.set_keepalive(None);
    Ok(true)
}

/// POST `/mcp/{server}/message?sessionId=…`.
pub async fn message(req: &Request<'_>, session: &mut Session) -> Result<bool> {
    let query = session.req_header().uri.query().unwrap_or("").to_string();
    let token = url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "sessionId" || k == "session_id").map(|(_, v)| v.into_owned());
    let Some(token) = token else {
        return respond::rpc_error(session, 400, INVALID_REQUEST, "Bad Request: sessionId query parameter is required").await;
    };
    let claims = match req.snapshot.sessions.check(&token, &req.route.name).await {
        Ok(c) => c,
        Err(_) => return respond::rpc_error(session, 404, INVALID_REQUEST, "Not Found: unknown or ended session").await,
    };
    let Some(stream) = req.state.sse.get(claims.id) else {
        return respond::rpc_error(session, 404, INVALID_REQUEST, "Not Found: this session's SSE stream is not open on this gateway").await;
    };
    let limit = req.snapshot.config.limits.max_request_body.0;
    let body = match read_body(session, limit, req.snapshot.config.connections.body_timeout.0, false).await? {
        Ok(b) => b,
        Err(f) => return body_failure(session, f, limit).await,
    };
    match jsonrpc::parse_body(&body) {
        Err(BodyError::Parse) => return respond::send(session, 400, Some("application/json"), jsonrpc::error(None, PARSE_ERROR, "Parse error: the body is not valid JSON"), &[]).await,
        Err(BodyError::Invalid(why)) => return respond::rpc_error(session, 400, INVALID_REQUEST, &format!("Invalid Request: {why}")).await,
        Ok(_) => {}
    }
    let work = Work { state: req.state.clone(), snapshot: req.snapshot.clone(), route: req.route.clone(), stream, headers: session.req_header().headers.clone(), client_ip: client_ip(session), body };
    tokio::spawn(work.run());
    respond::send(session, 202, Some("text/plain"), "Accepted", &[]).await
}

/// Processing of one POSTed body, detached from the POST so slow tools do not hold it.
struct Work {
    state: Arc<super::GatewayState>,
    snapshot: Arc<crate::runtime::Snapshot>,
    route: Arc<crate::runtime::Route>,
    stream: Arc<SseStream>,
    headers: http::HeaderMap,
    client_ip: Option<std::net::IpAddr>,
    body: Bytes,
}

impl Work {
    async fn run(self) {
        let Ok(parsed) = jsonrpc::parse_body(&self.body) else { return };
        let messages = match parsed {
            Body::Single(m) => vec![m],
            Body::Batch(items) => items,
        };
        let req = Request { state: &self.state, snapshot: self.snapshot.clone(), route: self.route.clone() };
        for m in messages {
            if let Some(reply) = self.one(&req, m).await {
                if !self.stream.send(&reply).await {
                    return;
                }
            }
        }
    }

    async fn one(&self, req: &Request<'_>, message: Message<'_>) -> Option<String> {
        let cx = MethodCtx { route: &self.route, version: self.stream.version(), call: CallContext { client_ip: self.client_ip, headers: &self.headers, arguments: None } };
        match message {
            Message::Request { id, method, params } => match methods::handle_request(&cx, id, method, params).await {
                Outcome::Initialized { reply, version } => {
                    self.stream.set_version(version);
                    Some(reply)
                }
                Outcome::Reply(r) => Some(r),
                Outcome::Proxy(pending) => Some(run_to_completion(req, &pending).await),
            },
            Message::Invalid { id, reason } => Some(jsonrpc::error(id, INVALID_REQUEST, &format!("Invalid Request: {reason}"))),
            Message::Notification { .. } | Message::Response => None,
        }
    }
}
