//! `CallToolResult` and its content blocks.

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

/// One content block of a tool result.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Content {
    /// Plain text.
    Text {
        /// The text.
        text: String,
    },
    /// A base64-encoded image.
    Image {
        /// Base64 data.
        data: String,
        /// MIME type, e.g. `image/png`.
        #[serde(rename = "mimeType")]
        mime_type: String,
    },
    /// Base64-encoded audio (MCP 2025-03-26 and later).
    Audio {
        /// Base64 data.
        data: String,
        /// MIME type, e.g. `audio/wav`.
        #[serde(rename = "mimeType")]
        mime_type: String,
    },
    /// An embedded resource (`TextResourceContents` or `BlobResourceContents`).
    Resource {
        /// The resource contents object.
        resource: Value,
    },
}

/// A `structuredContent` object: built by the gateway, or an upstream's JSON object
/// passed through as it came (validated, never re-encoded: parsing a response into a
/// tree only to print it again is most of a REST call's CPU).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Structured {
    /// A value the gateway built.
    Value(Value),
    /// JSON text known to be one valid object.
    Raw(Box<RawValue>),
}

impl Structured {
    /// The object as a value (parses the raw form; for tests and templates, not the hot
    /// path).
    pub fn to_value(&self) -> Value {
        match self {
            Structured::Value(v) => v.clone(),
            Structured::Raw(r) => serde_json::from_str(r.get()).unwrap_or(Value::Null),
        }
    }
}

impl PartialEq for Structured {
    fn eq(&self, other: &Self) -> bool {
        self.to_value() == other.to_value()
    }
}

impl From<Value> for Structured {
    fn from(v: Value) -> Self {
        Structured::Value(v)
    }
}

/// The result of `tools/call`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CallToolResult {
    /// Content blocks.
    pub content: Vec<Content>,
    /// Structured result (MCP 2025-06-18 and later); always mirrored as text in `content`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub structured_content: Option<Structured>,
    /// Whether the tool failed (the failure is described in `content`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub is_error: bool,
}

impl CallToolResult {
    /// A successful text result.
    pub fn text(text: impl Into<String>) -> Self {
        CallToolResult { content: vec![Content::Text { text: text.into() }], structured_content: None, is_error: false }
    }

    /// A failed result carrying a message a person can act on.
    pub fn error(message: impl Into<String>) -> Self {
        CallToolResult { content: vec![Content::Text { text: message.into() }], structured_content: None, is_error: true }
    }

    /// A successful structured result with its serialized JSON as the text copy.
    pub fn structured(value: Value) -> Self {
        let text = value.to_string();
        CallToolResult { content: vec![Content::Text { text }], structured_content: Some(Structured::Value(value)), is_error: false }
    }
}
