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
    /// Whether the tool declares an `outputSchema`: a client then expects structured
    /// content, so a reply that cannot be passed as such is an error rather than text.
    pub structured_required: bool,
}

/// Deepest nesting of arrays and objects passed on as `structuredContent`. The JSON-RPC
/// reply adds three levels around it, and common client parsers stop at 128 (serde_json)
/// or 200 (pydantic/jiter, the Python SDK), where a deeper reply makes the client fail or
/// hang; real APIs stay far below. A deeper body is still returned as text, with a note.
pub const MAX_JSON_DEPTH: usize = 64;

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

/// Whether JSON text nests arrays/objects deeper than `max` levels: a byte scan that
/// skips strings, never a parse. Most bodies hold fewer brackets than the limit in all,
/// which one vectorized count settles.
pub fn nests_deeper_than(body: &[u8], max: usize) -> bool {
    if body.iter().filter(|&&b| b == b'[' || b == b'{').count() <= max {
        return false;
    }
    let mut depth = 0usize;
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'"' => {
                i += 1;
                while i < body.len() && body[i] != b'"' {
                    i += if body[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    false
}

/// What a client sees in place of a structured body that nests too deeply.
fn depth_note() -> String {
    format!("[not passed as structuredContent: the response nests deeper than {MAX_JSON_DEPTH} levels, which MCP clients' JSON parsers may not handle]")
}

/// A JSON object body as a structured result.
enum Object {
    /// Validated in place and kept as text, so it is never parsed into a tree only to be
    /// printed again.
    Raw(Box<RawValue>),
    /// An object nested deeper than [`MAX_JSON_DEPTH`].
    TooDeep,
    /// Not a JSON object.
    No,
}

fn json_object(body: &str) -> Object {
    if !body.trim_start().starts_with('{') {
        return Object::No;
    }
    if nests_deeper_than(body.as_bytes(), MAX_JSON_DEPTH) {
        return Object::TooDeep;
    }
    serde_json::from_str::<&RawValue>(body).map_or(Object::No, |raw| Object::Raw(raw.to_owned()))
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
        let too_deep;
        let (text, structured) = match &self.body {
            Some(t) => {
                too_deep = !resp.truncated && nests_deeper_than(resp.body, MAX_JSON_DEPTH);
                // A body too deep for clients is too deep to parse here too: the template
                // sees it as text.
                let json: Option<Value> = if resp.truncated || too_deep { None } else { serde_json::from_slice(resp.body).ok() };
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
                let object = if resp.truncated || matches!(raw, Cow::Owned(_)) { Object::No } else { json_object(&raw) };
                too_deep = matches!(object, Object::TooDeep);
                (text, if let Object::Raw(r) = object { Some(Structured::Raw(r)) } else { None })
            }
        };
        let text = match truncation_note(resp) {
            Some(note) => text + &note,
            None => text,
        };
        if too_deep {
            // The text stays as the API sent it (a JSON string nests nothing); the note says
            // why the structured copy is missing.
            if self.structured_required {
                return CallToolResult::error(format!("{} returned a result this tool cannot pass on: {}", self.label, depth_note().trim_matches(['[', ']'])));
            }
            return CallToolResult { content: vec![Content::Text { text }, Content::Text { text: depth_note() }], structured_content: None, is_error: false };
        }
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

    #[test]
    fn depth_is_counted_outside_strings() {
        let deep = |n: usize| format!("{{\"a\":{}1{}}}", "[".repeat(n), "]".repeat(n));
        assert!(!nests_deeper_than(deep(MAX_JSON_DEPTH - 1).as_bytes(), MAX_JSON_DEPTH));
        assert!(nests_deeper_than(deep(MAX_JSON_DEPTH).as_bytes(), MAX_JSON_DEPTH));
        // Brackets inside strings (escaped quotes too) do not nest.
        let text = format!("{{\"s\":\"\\\"{}\"}}", "[".repeat(500));
        assert!(!nests_deeper_than(text.as_bytes(), MAX_JSON_DEPTH));
        // Many siblings are not depth.
        assert!(!nests_deeper_than(format!("[{}1]", "[],".repeat(1000)).as_bytes(), MAX_JSON_DEPTH));
    }

    #[test]
    fn too_deep_bodies_come_back_as_text_with_a_note() {
        let body = format!("{{\"a\":{}1{}}}", "[".repeat(200_000), "]".repeat(200_000));
        let mut h = http::HeaderMap::new();
        let r = ResponsePlan::default().map(&resp(200, "application/json", body.as_bytes(), &mut h), None);
        assert!(r.structured_content.is_none() && !r.is_error);
        assert!(matches!(&r.content[0], Content::Text { text } if text.len() == body.len()));
        assert!(matches!(&r.content[1], Content::Text { text } if text.contains("deeper than 64 levels")));
        let mut h = http::HeaderMap::new();
        let plan = ResponsePlan { structured_required: true, label: "GET /deep".into(), ..Default::default() };
        let r = plan.map(&resp(200, "application/json", body.as_bytes(), &mut h), None);
        assert!(r.is_error && matches!(&r.content[0], Content::Text { text } if text.starts_with("GET /deep returned") && text.len() < 300));
    }
}
