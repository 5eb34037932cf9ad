//! Mapping an upstream HTTP response to a `CallToolResult`.

use std::borrow::Cow;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::template::{Data, Template};
use crate::tools::{CallToolResult, Content, Structured, UpstreamResponse};

/// How a tool renders responses.
#[derive(Debug, Default)]
pub struct ResponsePlan {
    /// `responseTemplate.body`.
    pub body: Option<Template>,
    /// `responseTemplate.prependBody`.
    pub prepend: Option<String>,
    /// `responseTemplate.appendBody`.
    pub append: Option<String>,
    /// `errorResponseTemplate`.
    pub error: Option<Template>,
    /// What the request was, for error messages (`GET /pets/{id}`; never the query).
    pub label: String,
}

/// Longest body excerpt quoted in an error.
const EXCERPT: usize = 1024;

/// The response's media type without parameters, lowercased (borrowed when it already is).
fn media_type<'a>(resp: &UpstreamResponse<'a>) -> Cow<'a, str> {
    let value = resp.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = value.split_once(';').map_or(value, |(m, _)| m).trim();
    if media.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(media.to_ascii_lowercase())
    } else {
        Cow::Borrowed(media)
    }
}

/// Whether a media type is text of some kind (JSON first: it is nearly every answer).
fn is_textual(media: &str) -> bool {
    media == "application/json" || media.is_empty() || media.starts_with("text/") || ["json", "xml", "yaml", "javascript"].iter().any(|kind| media.contains(kind))
}

fn excerpt(body: &[u8]) -> String {
    let cut = body.len().min(EXCERPT);
    let mut text = String::from_utf8_lossy(&body[..cut]).into_owned();
    if body.len() > EXCERPT {
        text.push_str(" …");
    }
    text
}

fn truncation_note(resp: &UpstreamResponse<'_>) -> Option<String> {
    resp.truncated.then(|| format!("\n[truncated: the response exceeded {} bytes (max_response_bytes)]", resp.body.len()))
}

/// The body as a structured result when it is one JSON object: validated in place and
/// kept as text, so it is never parsed into a tree only to be printed again.
fn json_object(body: &str) -> Option<Structured> {
    if !body.trim_start().starts_with('{') {
        return None;
    }
    serde_json::from_str::<&RawValue>(body).ok().map(|raw| Structured::Raw(raw.to_owned()))
}

impl ResponsePlan {
    /// Maps a response.
    pub fn map(&self, resp: &UpstreamResponse<'_>, client_ip: Option<std::net::IpAddr>) -> CallToolResult {
        if !(200..300).contains(&resp.status) {
            return self.error_result(resp, client_ip);
        }
        let media = media_type(resp);
        if media.starts_with("image/") && !resp.truncated {
            return CallToolResult { content: vec![Content::Image { data: STANDARD.encode(resp.body), mime_type: media.into_owned() }], structured_content: None, is_error: false };
        }
        if media.starts_with("audio/") && !resp.truncated {
            return CallToolResult { content: vec![Content::Audio { data: STANDARD.encode(resp.body), mime_type: media.into_owned() }], structured_content: None, is_error: false };
        }
        if resp.body.is_empty() {
            return CallToolResult::text(format!("success (HTTP {})", resp.status));
        }
        let textual = is_textual(&media) || std::str::from_utf8(resp.body).is_ok();
        if !textual {
            let mut r = CallToolResult::text(format!("binary response: {} bytes of {media}", resp.body.len()));
            r.content.push(Content::Resource { resource: serde_json::json!({"uri": format!("mcpgate:response/{}", self.label.replace(' ', "")), "mimeType": media.as_ref(), "blob": STANDARD.encode(resp.body)}) });
            return r;
        }
        // `from_utf8` checks ASCII a word at a time; the lossy form only for other text.
        let raw = std::str::from_utf8(resp.body).map_or_else(|_| String::from_utf8_lossy(resp.body), Cow::Borrowed);
        let (text, structured) = match &self.body {
            Some(t) => {
                let json: Option<Value> = if resp.truncated { None } else { serde_json::from_slice(resp.body).ok() };
                let root = json.clone().unwrap_or_else(|| Value::String(raw.to_string()));
                match t.render(&Data { root: &root, root_text: Some(&raw), client_ip }) {
                    Ok(s) => (s, json.filter(Value::is_object).map(Structured::Value)),
                    Err(e) => return CallToolResult::error(format!("responseTemplate failed: {e}")),
                }
            }
            None => {
                let text = match (&self.prepend, &self.append) {
                    (None, None) => raw.to_string(),
                    (p, a) => format!("{}{}{}", p.as_deref().unwrap_or(""), raw, a.as_deref().unwrap_or("")),
                };
                // Only a body that is valid UTF-8 as sent (`raw` borrowed) can be passed through.
                (text, if resp.truncated || matches!(raw, Cow::Owned(_)) { None } else { json_object(&raw) })
            }
        };
        let text = match truncation_note(resp) {
            Some(note) => text + &note,
            None => text,
        };
        CallToolResult { content: vec![Content::Text { text }], structured_content: structured, is_error: false }
    }

    fn error_result(&self, resp: &UpstreamResponse<'_>, client_ip: Option<std::net::IpAddr>) -> CallToolResult {
        if let Some(t) = &self.error {
            let mut root = match serde_json::from_slice::<Value>(resp.body) {
                Ok(Value::Object(m)) => m,
                Ok(other) => Map::from_iter([("body".to_string(), other)]),
                Err(_) => Map::from_iter([("body".to_string(), Value::String(excerpt(resp.body)))]),
            };
            let mut headers: Map<String, Value> = resp.headers.iter().filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), Value::String(v.to_string())))).collect();
            headers.insert(":status".into(), Value::String(resp.status.to_string()));
            root.insert("_headers".into(), Value::Object(headers));
            let root = Value::Object(root);
            let text = root.to_string();
            if let Ok(s) = t.render(&Data { root: &root, root_text: Some(&text), client_ip }) {
                if !s.trim().is_empty() {
                    return CallToolResult::error(s);
                }
            }
        }
        CallToolResult::error(format!("{} failed: HTTP {} from the API: {}", self.label, resp.status, excerpt(resp.body)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rest::template::Context;

    fn resp<'a>(status: u16, ct: &str, body: &'a [u8], headers: &'a mut http::HeaderMap) -> UpstreamResponse<'a> {
        headers.insert(http::header::CONTENT_TYPE, ct.parse().unwrap());
        UpstreamResponse { status, headers, body, truncated: false }
    }

    #[test]
    fn json_becomes_structured_content_with_a_text_copy() {
        let mut h = http::HeaderMap::new();
        let r = ResponsePlan::default().map(&resp(200, "application/json", br#"{"id":1}"#, &mut h), None);
        assert_eq!(r.structured_content.map(|s| s.to_value()), Some(serde_json::json!({"id": 1})));
        assert!(matches!(&r.content[0], Content::Text { text } if text == r#"{"id":1}"#));
        assert!(!r.is_error);
    }

    #[test]
    fn errors_images_and_templates() {
        let mut h = http::HeaderMap::new();
        let plan = ResponsePlan { label: "GET /pets/{id}".into(), ..Default::default() };
        let r = plan.map(&resp(404, "application/json", br#"{"message":"no such pet"}"#, &mut h), None);
        assert!(r.is_error);
        assert!(matches!(&r.content[0], Content::Text { text } if text.contains("HTTP 404") && text.contains("no such pet")));
        let mut h = http::HeaderMap::new();
        let r = plan.map(&resp(200, "image/png", b"\x89PNG", &mut h), None);
        assert!(matches!(&r.content[0], Content::Image { mime_type, .. } if mime_type == "image/png"));
        let plan = ResponsePlan { error: Some(Template::parse("status {{gjson \"_headers.\\\\:status\"}}: {{.message}}", Context::Text).unwrap()), ..Default::default() };
        let mut h = http::HeaderMap::new();
        let r = plan.map(&resp(500, "application/json", br#"{"message":"boom"}"#, &mut h), None);
        assert!(matches!(&r.content[0], Content::Text { text } if text == "status 500: boom"), "{r:?}");
    }

    #[test]
    fn truncated_bodies_say_so() {
        let h = http::HeaderMap::new();
        let r = ResponsePlan::default().map(&UpstreamResponse { status: 200, headers: &h, body: b"{\"a\":", truncated: true }, None);
        assert!(r.structured_content.is_none());
        assert!(matches!(&r.content[0], Content::Text { text } if text.contains("[truncated")));
    }
}
