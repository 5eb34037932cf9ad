//! The 2024-11-05 HTTP+SSE transport: GET `/mcp/{server}/sse` opens the stream and names
//! the message endpoint; POST `/mcp/{server}/message?sessionId=…` answers 202 and the
//! JSON-RPC response travels on the stream.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora_error::Result;
use pingora_proxy::Session;
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use super::dispatch::{body_failure, read_body, refuse_long_batch, Request};
use super::respond;
use super::streamable::client_ip;
use crate::mcp::http as mh;
use crate::mcp::jsonrpc::{self, Body, BodyError, Message, INVALID_REQUEST, PARSE_ERROR};
use crate::mcp::session::{SessionManager, SessionRejection};
use crate::mcp::sse::{Queued, SseHub, SseStream, StreamLimits};
use crate::mcp::version::ProtocolVersion;
use crate::pipeline::methods::{self, MethodCtx, Outcome};
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
    let limits = &req.snapshot.config.limits;
    let max_streams = limits.max_sse_streams;
    if req.state.sse.len() >= max_streams {
        return streams_full(session, max_streams).await;
    }
    let stream_limits = StreamLimits { max_inflight: limits.max_sse_inflight, max_queued: u32::try_from(limits.max_sse_queued.0).unwrap_or(u32::MAX) };
    let (token, id) = req.snapshot.sessions.issue_with_id(&req.route.name, ProtocolVersion::V2024_11_05, req.binding());
    let open = OpenStream { hub: &req.state.sse, sessions: &req.snapshot.sessions, id };
    let Some((stream, mut rx)) = req.state.sse.open(id, max_streams, stream_limits) else {
        // Another GET took the last slot since the check above.
        drop(open);
        return streams_full(session, max_streams).await;
    };
    let mut h = ResponseHeader::build(200, Some(4))?;
    h.insert_header(http::header::CONTENT_TYPE, "text/event-stream")?;
    h.insert_header(http::header::CACHE_CONTROL, "no-cache")?;
    h.insert_header("x-accel-buffering", "no")?;
    let endpoint = format!("event: endpoint\ndata: /mcp/{}/message?sessionId={token}\n\n", req.route.name);
    let deadline = limits.sse_write_timeout.0;
    let end = async {
        session.write_response_header(Box::new(h), false).await?;
        session.write_response_body(Some(Bytes::from(endpoint)), false).await?;
        Ok(relay(session, &stream, &mut rx, deadline, || req.snapshot.sessions.touch(id)).await)
    }
    .await;
    // The queue, the work still running for this session and its registration go now,
    // not when the connection is finally dropped.
    drop(rx);
    drop(open);
    match end {
        Ok(End::Stalled) => {
            crate::metrics::METRICS.sse_limited.with_label_values(&["sse_write_timeout"]).inc();
            log::info!("SSE stream on `{}` closed: the client took no data for {deadline:?} (limits.sse_write_timeout)", req.route.name);
        }
        Ok(End::ClientGone) => log::debug!("SSE stream on `{}` closed by the client", req.route.name),
        Ok(End::Write(e)) | Err(e) => log::debug!("SSE stream on `{}` closed: {e}", req.route.name),
    }
    // Never finish the chunked body: a client that stopped reading would hold that write
    // forever. Shutting the socket makes Pingora drop the connection.
    session.set_keepalive(None);
    session.shutdown().await;
    Ok(true)
}

async fn streams_full(session: &mut Session, max: usize) -> Result<bool> {
    crate::metrics::METRICS.sse_limited.with_label_values(&["max_sse_streams"]).inc();
    let body = jsonrpc::error(None, INVALID_REQUEST, &format!("Service Unavailable: {max} SSE streams are open on this gateway (limits.max_sse_streams); retry later or use Streamable HTTP"));
    respond::send(session, 503, Some("application/json"), body, &[("retry-after", "5")]).await
}

/// A registered stream: when its GET ends, however it ends, the hub forgets it and the
/// session ends, so later POSTs get 404.
struct OpenStream<'a> {
    hub: &'a SseHub,
    sessions: &'a SessionManager,
    id: u128,
}

impl Drop for OpenStream<'_> {
    fn drop(&mut self) {
        self.hub.close(self.id);
        self.sessions.end(self.id);
    }
}

/// Why a stream's relay stopped.
enum End {
    /// The client closed its connection (or sent bytes it should not have).
    ClientGone,
    /// A write did not complete within `limits.sse_write_timeout`.
    Stalled,
    /// A write failed.
    Write(Box<pingora_error::Error>),
}

/// Writes queued events and keep-alive comments until the client goes or stops reading.
async fn relay(session: &mut Session, stream: &SseStream, rx: &mut mpsc::UnboundedReceiver<Queued>, deadline: Duration, touch: impl Fn()) -> End {
    loop {
        let queued = tokio::select! {
            q = rx.recv() => match q {
                Some(q) => Some(q),
                None => return End::ClientGone,
            },
            // An SSE client sends nothing after its GET: a read that completes is a close.
            _ = session.read_body_or_idle(true) => return End::ClientGone,
            () = tokio::time::sleep(KEEPALIVE) => None,
        };
        let chunk = match &queued {
            Some(q) => q.event.clone(),
            None => {
                touch();
                Bytes::from_static(b": keepalive\n\n")
            }
        };
        match tokio::time::timeout(deadline, session.write_response_body(Some(chunk), false)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return End::Write(e),
            Err(_) => return End::Stalled,
        }
        if let Some(q) = &queued {
            stream.written(q);
        }
    }
}

/// POST `/mcp/{server}/message?sessionId=…`.
pub async fn message(req: &Request<'_>, session: &mut Session) -> Result<bool> {
    let query = session.req_header().uri.query().unwrap_or("").to_string();
    let token = url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "sessionId" || k == "session_id").map(|(_, v)| v.into_owned());
    let limits = &req.snapshot.config.limits;
    let body = match read_body(session, limits.max_request_body.0, req.snapshot.config.connections.body_timeout.0).await? {
        Ok(b) => b,
        Err(f) => return body_failure(session, f, limits.max_request_body.0).await,
    };
    // Read first, so that an error about the session is addressed to the request's id.
    let id = match jsonrpc::parse_body(&body) {
        Err(BodyError::Parse) => return respond::send(session, 400, Some("application/json"), jsonrpc::error(None, PARSE_ERROR, "Parse error: the body is not valid JSON"), &[]).await,
        Err(BodyError::Invalid(why)) => return respond::rpc_error(session, 400, INVALID_REQUEST, &format!("Invalid Request: {why}")).await,
        Ok(Body::Batch(items)) => {
            if let Some(refused) = refuse_long_batch(session, items.len(), limits.max_batch).await {
                return refused;
            }
            None
        }
        Ok(single) => single.id(),
    };
    let Some(token) = token else {
        return respond::rpc_error_to(session, 400, id, INVALID_REQUEST, "Bad Request: sessionId query parameter is required").await;
    };
    let claims = match req.snapshot.sessions.check(&token, &req.route.name, req.binding()).await {
        Ok(c) => c,
        Err(SessionRejection::Unknown) => return respond::rpc_error_to(session, 404, id, INVALID_REQUEST, &format!("Not Found: unknown session; open a stream at /mcp/{}/sse", req.route.name)).await,
        Err(SessionRejection::Ended) => return respond::rpc_error_to(session, 404, id, INVALID_REQUEST, &format!("Not Found: the session has ended (its SSE stream closed); open a new stream at /mcp/{}/sse", req.route.name)).await,
        Err(SessionRejection::Full) => return super::streamable::refuse_new_session(session, id, crate::mcp::session::NewSessionRefusal::Full(req.snapshot.sessions.settings().max_active)).await,
    };
    let Some(stream) = req.state.sse.get(claims.id) else {
        return respond::rpc_error_to(session, 404, id, INVALID_REQUEST, "Not Found: this session's SSE stream is not open on this gateway").await;
    };
    let Some(slot) = stream.try_start() else {
        crate::metrics::METRICS.sse_limited.with_label_values(&["max_sse_inflight"]).inc();
        let body = jsonrpc::error(
            id,
            INVALID_REQUEST,
            &format!("Too Many Requests: {} messages of this session are still being worked on or waiting for the client to read its SSE stream (limits.max_sse_inflight); retry once replies arrive", limits.max_sse_inflight),
        );
        return respond::send(session, 429, Some("application/json"), body, &[("retry-after", "1")]).await;
    };
    let work = Work { state: req.state.clone(), route: req.route.clone(), stream, headers: session.req_header().headers.clone(), client_ip: client_ip(session), body, principal: req.principal.clone() };
    tokio::spawn(work.run_until_closed(slot));
    respond::send(session, 202, Some("text/plain"), "Accepted", &[]).await
}

/// Processing of one POSTed body, detached from the POST so slow tools do not hold it.
struct Work {
    state: Arc<super::GatewayState>,
    route: Arc<crate::runtime::Route>,
    stream: Arc<SseStream>,
    headers: http::HeaderMap,
    client_ip: Option<std::net::IpAddr>,
    body: Bytes,
    principal: Option<Arc<crate::auth::Principal>>,
}

impl Work {
    /// Runs the body, holding its in-flight slot, until done or until the stream goes:
    /// then the work is dropped where it stands (an upstream call included), with its body
    /// and replies.
    async fn run_until_closed(self, _slot: OwnedSemaphorePermit) {
        let stream = self.stream.clone();
        tokio::select! {
            () = stream.closed() => {}
            () = self.run() => {}
        }
    }

    async fn run(self) {
        let Ok(parsed) = jsonrpc::parse_body(&self.body) else { return };
        let messages = match parsed {
            Body::Single(m) => vec![m],
            Body::Batch(items) => items,
        };
        for m in messages {
            if let Some(reply) = self.one(m).await {
                if !self.stream.send(&reply).await {
                    return;
                }
            }
        }
    }

    async fn one(&self, message: Message<'_>) -> Option<String> {
        // The work is dropped when the stream goes (`run_until_closed`), so calls need no
        // presence check of their own.
        let cx = MethodCtx {
            route: &self.route,
            version: self.stream.version(),
            call: CallContext { client_ip: self.client_ip, headers: &self.headers, arguments: None },
            connector: &self.state.connector,
            present: &|| true,
            principal: self.principal.as_deref(),
        };
        match message {
            Message::Request { id, method, params } => match methods::handle_request(&cx, id, method, params).await {
                Outcome::Initialized { reply, version } => {
                    self.stream.set_version(version);
                    Some(reply)
                }
                Outcome::Reply(r) => Some(r),
                Outcome::Abandoned => None,
            },
            Message::Invalid { id, reason } => Some(jsonrpc::error(id, INVALID_REQUEST, &format!("Invalid Request: {reason}"))),
            Message::Notification { .. } | Message::Response => None,
        }
    }
}
