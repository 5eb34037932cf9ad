//! Writing gateway-generated responses.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora_error::Result;
use pingora_proxy::Session;

use crate::mcp::jsonrpc;

/// Writes a complete response; always returns `Ok(true)` ("handled") for `request_filter`.
pub async fn send(session: &mut Session, status: u16, content_type: Option<&str>, body: impl Into<Bytes>, extra: &[(&'static str, &str)]) -> Result<bool> {
    let body: Bytes = body.into();
    // The gateway writes these headers itself: no case map to keep (lowercase names).
    let mut h = ResponseHeader::build_no_case(status, Some(4 + extra.len()))?;
    if let Some(ct) = content_type {
        h.insert_header(http::header::CONTENT_TYPE, ct)?;
    }
    h.insert_header(http::header::CONTENT_LENGTH, body.len())?;
    for (k, v) in extra {
        h.insert_header(*k, *v)?;
    }
    session.write_response_header(Box::new(h), body.is_empty()).await?;
    if !body.is_empty() {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(true)
}

/// 200 with a JSON body.
pub async fn json(session: &mut Session, body: String) -> Result<bool> {
    send(session, 200, Some("application/json"), body, &[]).await
}

/// An HTTP error whose body is a JSON-RPC error without an id.
pub async fn rpc_error(session: &mut Session, status: u16, code: i32, message: &str) -> Result<bool> {
    send(session, status, Some("application/json"), jsonrpc::error(None, code, message), &[]).await
}

/// 202 Accepted with no body.
pub async fn accepted(session: &mut Session) -> Result<bool> {
    send(session, 202, None, Bytes::new(), &[]).await
}
