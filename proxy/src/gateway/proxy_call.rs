//! A `tools/call` riding Pingora's proxy phases: the JSON-RPC request is rewritten into the
//! REST request (peer, header, body), and the REST response is buffered up to the cap and
//! rewritten into the JSON-RPC response.

use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora_error::{Error, ErrorType, Result};
use pingora_proxy::{FailToProxy, Session};

use super::respond;
use crate::mcp::methods::PendingCall;
use crate::tools::UpstreamResponse;
use crate::upstream::{append_capped, UpstreamError};

/// Marks an upstream response that has no body, so the JSON-RPC answer is written from
/// `fail_to_proxy` (Pingora calls no body filter for header-only responses).
const HEADER_ONLY: &str = "mcpgate: header-only upstream response";

/// Progress of one proxied call.
pub struct ProxyState {
    /// The call.
    pub pending: Box<PendingCall>,
    status: Option<u16>,
    headers: http::HeaderMap,
    body: BytesMut,
    truncated: bool,
    answered: bool,
}

impl ProxyState {
    /// Starts tracking a planned call.
    pub fn new(pending: Box<PendingCall>) -> Box<Self> {
        Box::new(ProxyState { pending, status: None, headers: http::HeaderMap::new(), body: BytesMut::new(), truncated: false, answered: false })
    }

    /// Records the upstream status and headers and replaces them with the JSON-RPC
    /// response header.
    pub fn on_response_header(&mut self, response: &mut ResponseHeader) -> Result<()> {
        let status = response.status.as_u16();
        self.status = Some(status);
        self.headers = response.headers.clone();
        let empty = matches!(status, 204 | 304) || response.headers.get(http::header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() == b"0");
        let mut ours = ResponseHeader::build(200, Some(2))?;
        ours.insert_header(http::header::CONTENT_TYPE, "application/json")?;
        ours.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
        *response = ours;
        if empty {
            return Err(Error::explain(ErrorType::Custom(HEADER_ONLY), "upstream response has no body"));
        }
        Ok(())
    }

    /// Buffers upstream body chunks; emits the JSON-RPC response at the end (or as soon as
    /// the cap is reached).
    pub fn on_response_body(&mut self, body: &mut Option<Bytes>, end: bool) {
        if let Some(chunk) = body.take() {
            if !self.answered && !append_capped(&mut self.body, &chunk, self.pending.call.max_response_bytes) {
                self.truncated = true;
            }
        }
        if !self.answered && (end || self.truncated) {
            self.answered = true;
            *body = Some(Bytes::from(self.answer()));
        }
    }

    fn answer(&self) -> String {
        let response = UpstreamResponse { status: self.status.unwrap_or(502), headers: &self.headers, body: &self.body, truncated: self.truncated };
        let result = self.pending.route.server.finish_http(self.pending.tool, &response);
        self.pending.finish(&result)
    }
}

/// Swaps the downstream JSON-RPC body for the REST body (again on a retried connection).
pub fn replace_request_body(state: &ProxyState, body: &mut Option<Bytes>) {
    if body.is_some() {
        let b = &state.pending.call.body;
        *body = (!b.is_empty()).then(|| b.clone());
    }
}

/// Answers a call whose proxying failed: an isError result for a dead or slow upstream, or
/// the mapped result of a header-only response.
pub async fn fail(session: &mut Session, e: &Error, state: Option<Box<ProxyState>>) -> FailToProxy {
    let Some(state) = state else {
        let code = match e.etype() {
            ErrorType::HTTPStatus(c) => *c,
            _ => 502,
        };
        let _ = respond::rpc_error(session, code, crate::mcp::jsonrpc::INTERNAL_ERROR, "the gateway could not complete the request").await;
        return FailToProxy { error_code: code, can_reuse_downstream: false };
    };
    if state.answered || session.response_written().is_some() {
        // The answer (or part of it) is already on the wire; nothing more can be said.
        return FailToProxy { error_code: 502, can_reuse_downstream: false };
    }
    let body = match e.etype() {
        ErrorType::Custom(HEADER_ONLY) if state.status.is_some() => state.answer(),
        _ => {
            let err = UpstreamError::from_pingora(e, &state.pending.call.target);
            log::warn!("tool `{}` on `{}`: {err}", state.pending.route.catalog.entries()[state.pending.tool].def.name, state.pending.route.name);
            state.pending.finish(&err.to_result())
        }
    };
    // Pingora does not reuse a downstream connection once an upstream was selected; say so
    // rather than let the client find a reset on its next request.
    session.set_keepalive(None);
    let _ = respond::json(session, body).await;
    FailToProxy { error_code: 200, can_reuse_downstream: false }
}
