//! Writing gateway-generated responses.

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use pingora::http::ResponseHeader;
use pingora_error::{Error, ErrorType, Result};
use pingora_proxy::Session;
use serde_json::value::RawValue;

use crate::mcp::jsonrpc;

/// Writes a complete response; always returns `Ok(true)` ("handled") for `request_filter`.
pub async fn send(session: &mut Session, status: u16, content_type: Option<&str>, body: impl Into<Bytes>, extra: &[(&'static str, &str)]) -> Result<bool> {
    let body: Bytes = body.into();
    if crate::listener::draining() {
        // The client sends its next request to the process that took over the sockets.
        session.set_keepalive(None);
    }
    let header = response_header(status, content_type, body.len(), extra)?;
    session.write_response_header(Box::new(header), body.is_empty()).await?;
    if !body.is_empty() {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(true)
}

/// The JSON content type, built at compile time (every reply but one carries it).
const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// A response header built as `http` parts and converted once: Pingora's insert methods
/// re-derive and title-case each name on every call. The gateway writes these headers
/// itself, so no case map is kept (lowercase names).
fn response_header(status: u16, content_type: Option<&str>, len: usize, extra: &[(&'static str, &str)]) -> Result<ResponseHeader> {
    let invalid = |what: &str| Error::explain(ErrorType::InvalidHTTPHeader, format!("invalid response {what}"));
    let mut headers = http::HeaderMap::with_capacity(4 + extra.len());
    match content_type {
        Some("application/json") => {
            headers.insert(http::header::CONTENT_TYPE, JSON);
        }
        Some(ct) => {
            headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_str(ct).map_err(|_| invalid("content type"))?);
        }
        None => {}
    }
    headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
    for (k, v) in extra {
        headers.insert(HeaderName::from_bytes(k.as_bytes()).map_err(|_| invalid("header name"))?, HeaderValue::from_str(v).map_err(|_| invalid("header value"))?);
    }
    let (mut parts, ()) = http::Response::new(()).into_parts();
    parts.status = http::StatusCode::from_u16(status).map_err(|_| invalid("status"))?;
    parts.headers = headers;
    Ok(ResponseHeader::from(parts))
}

/// 200 with a JSON body.
pub async fn json(session: &mut Session, body: String) -> Result<bool> {
    send(session, 200, Some("application/json"), body, &[]).await
}

/// An HTTP error whose body is a JSON-RPC error without an id (nothing of the body was
/// read, or it had no one id).
pub async fn rpc_error(session: &mut Session, status: u16, code: i32, message: &str) -> Result<bool> {
    rpc_error_to(session, status, None, code, message).await
}

/// An HTTP error whose body is a JSON-RPC error addressed to the request's `id` when the
/// body was read and had one: clients match errors to requests by id.
pub async fn rpc_error_to(session: &mut Session, status: u16, id: Option<&RawValue>, code: i32, message: &str) -> Result<bool> {
    send(session, status, Some("application/json"), jsonrpc::error(id, code, message), &[]).await
}

/// 202 Accepted with no body.
pub async fn accepted(session: &mut Session) -> Result<bool> {
    send(session, 202, None, Bytes::new(), &[]).await
}
