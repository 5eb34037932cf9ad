//! Serializing a `tools/call` reply: the JSON-RPC response around a [`CallToolResult`], written
//! straight into one buffer, shaped by the session's protocol version.

use serde_json::value::RawValue;

use crate::mcp::version::ProtocolVersion;
use crate::tools::CallToolResult;

/// Longest text escaped with SIMD; beyond it serde_json's escaper, which needs no
/// worst-case reservation (`json_escape_simd` reserves 6x its input up front).
const SIMD_ESCAPE_MAX: usize = 256 << 10;

/// The JSON-RPC response for a tool result, serialized straight into one buffer. Before
/// 2025-06-18 there is no `structuredContent`: it is left out (its text copy stays).
///
/// Written by hand rather than through `Serialize`: a REST result's text copy is the whole
/// upstream body, and escaping it with SIMD instead of serde_json's byte loop is the
/// largest single saving on the call path. The shape is the one the derive would write.
pub fn call_reply(id: &RawValue, result: &CallToolResult, version: ProtocolVersion) -> String {
    use crate::tools::{Content, Structured};
    // The SIMD escaper reserves its worst case (6 bytes per input byte, +35) before it
    // writes; sizing for that up front avoids a reallocation mid-write. Long texts go
    // through serde_json instead, so a large response never holds 6x its size.
    let room = |c: &Content| match c {
        Content::Text { text } if text.len() <= SIMD_ESCAPE_MAX => 6 * text.len() + 35,
        Content::Text { text } => text.len() + text.len() / 8 + 2,
        _ => 64,
    };
    let raw_len = match &result.structured_content {
        Some(Structured::Raw(r)) => r.get().len(),
        _ => 0,
    };
    let mut out = Vec::with_capacity(160 + id.get().len() + result.content.iter().map(room).sum::<usize>() + raw_len);
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.get().as_bytes());
    out.extend_from_slice(b",\"result\":{\"content\":[");
    for (i, block) in result.content.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let written = match block {
            Content::Text { text } => {
                out.extend_from_slice(b"{\"type\":\"text\",\"text\":");
                let escaped = if text.len() <= SIMD_ESCAPE_MAX {
                    json_escape_simd::escape_into(text, &mut out);
                    Ok(())
                } else {
                    serde_json::to_writer(&mut out, text.as_str())
                };
                out.push(b'}');
                escaped
            }
            other => serde_json::to_writer(&mut out, other),
        };
        if written.is_err() {
            return super::GatewayError::Serialize.reply(id, version);
        }
    }
    out.push(b']');
    if version.has_structured_content() {
        match &result.structured_content {
            Some(Structured::Raw(raw)) => {
                out.extend_from_slice(b",\"structuredContent\":");
                out.extend_from_slice(raw.get().as_bytes());
            }
            Some(Structured::Value(value)) => {
                out.extend_from_slice(b",\"structuredContent\":");
                if serde_json::to_writer(&mut out, value).is_err() {
                    return super::GatewayError::Serialize.reply(id, version);
                }
            }
            None => {}
        }
    }
    if result.is_error {
        out.extend_from_slice(b",\"isError\":true");
    }
    out.extend_from_slice(b"}}");
    // Every piece is UTF-8 (borrowed strings, serde_json and the escaper write nothing
    // else); the fallback cannot be reached.
    String::from_utf8(out).unwrap_or_else(|_| super::GatewayError::Serialize.reply(id, version))
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;
    use serde_json::{json, Value};

    use super::call_reply;
    use crate::mcp::version::ProtocolVersion;
    use crate::tools::{CallToolResult, Content, Structured};

    /// What the derived `Serialize` writes, wrapped in the JSON-RPC response: the hand-written
    /// reply must parse to the same value, so a field added to `CallToolResult` cannot be
    /// dropped silently.
    fn derived(id: &str, result: &CallToolResult, version: ProtocolVersion) -> Value {
        let mut r = serde_json::to_value(result).expect("serializable");
        if !version.has_structured_content() {
            r.as_object_mut().expect("an object").remove("structuredContent");
        }
        json!({"jsonrpc": "2.0", "id": serde_json::from_str::<Value>(id).expect("an id"), "result": r})
    }

    #[test]
    fn replies_match_the_derived_serialization() {
        let tricky = "quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7} del \u{7f} é ✓ 😀 \u{2028}";
        let raw = RawValue::from_string(r#"{"a":[1,2,{"b":"c\"d"}],"e":null}"#.into()).expect("raw");
        // Past the SIMD limit, so the serde_json path is checked too.
        let long = tricky.repeat(super::SIMD_ESCAPE_MAX / tricky.len() + 1);
        assert!(long.len() > super::SIMD_ESCAPE_MAX);
        let results = [
            CallToolResult::text(tricky),
            CallToolResult::text(long.clone()),
            CallToolResult { content: vec![Content::Text { text: long }, Content::Text { text: tricky.into() }], structured_content: None, is_error: false },
            CallToolResult::error("boom: \"x\""),
            CallToolResult::structured(json!({"k": tricky, "n": 1.5})),
            CallToolResult { content: vec![Content::Text { text: raw.get().into() }], structured_content: Some(Structured::Raw(raw.clone())), is_error: false },
            CallToolResult {
                content: vec![Content::Text { text: String::new() }, Content::Image { data: "iVBORw0KGgo=".into(), mime_type: "image/png".into() }, Content::Resource { resource: json!({"uri": "mcpgate:x", "blob": "AA=="}) }],
                structured_content: None,
                is_error: true,
            },
            CallToolResult { content: vec![], structured_content: None, is_error: false },
        ];
        for id in ["1", "\"req-\\\"7\\\"\"", "-3"] {
            let rid = RawValue::from_string(id.into()).expect("id");
            for version in ProtocolVersion::ALL {
                for result in &results {
                    let reply = call_reply(&rid, result, version);
                    let parsed: Value = serde_json::from_str(&reply).unwrap_or_else(|e| panic!("{reply}: {e}"));
                    assert_eq!(parsed, derived(id, result, version), "{reply}");
                }
            }
        }
    }
}
