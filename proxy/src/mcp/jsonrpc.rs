//! JSON-RPC 2.0 framing: classifying incoming messages without copying their params, and
//! writing responses around pre-serialized results.

use serde::Deserialize;
use serde_json::value::RawValue;

/// Parse error.
pub const PARSE_ERROR: i32 = -32700;
/// Invalid request.
pub const INVALID_REQUEST: i32 = -32600;
/// Method not found.
pub const METHOD_NOT_FOUND: i32 = -32601;
/// Invalid params.
pub const INVALID_PARAMS: i32 = -32602;
/// Internal error.
pub const INTERNAL_ERROR: i32 = -32603;

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    jsonrpc: Option<&'a RawValue>,
    // Not `Option<&RawValue>` alone: that would read `"id": null` as an absent id.
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<&'a RawValue>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// One classified message, borrowing from the request body.
#[derive(Debug, Clone, Copy)]
pub enum Message<'a> {
    /// A request: has `method` and a valid `id`.
    Request {
        /// The raw id (a JSON string or number), echoed verbatim.
        id: &'a RawValue,
        /// The method name.
        method: &'a str,
        /// Raw params, if any.
        params: Option<&'a RawValue>,
    },
    /// A notification: `method` and no `id`.
    Notification {
        /// The method name.
        method: &'a str,
    },
    /// A response to a server-initiated request.
    Response,
    /// Not a valid JSON-RPC message; the id is echoed when it could be read.
    Invalid {
        /// The id, when present and valid.
        id: Option<&'a RawValue>,
        /// Why.
        reason: &'static str,
    },
}

/// A POST body: one message or a batch.
#[derive(Debug)]
pub enum Body<'a> {
    /// A single message.
    Single(Message<'a>),
    /// A JSON array of messages.
    Batch(Vec<Message<'a>>),
}

impl<'a> Body<'a> {
    /// The id an error about this body is addressed to: a single message's id when it could
    /// be read; a batch has no one id.
    pub fn id(&self) -> Option<&'a RawValue> {
        match *self {
            Body::Single(Message::Request { id, .. }) => Some(id),
            Body::Single(Message::Invalid { id, .. }) => id,
            _ => None,
        }
    }

    /// Whether this is a batch with an `initialize` in it (which must be sent alone).
    pub fn batches_initialize(&self) -> bool {
        matches!(self, Body::Batch(items) if items.iter().any(|m| matches!(m, Message::Request { method: "initialize", .. })))
    }
}

/// Why a body is not JSON-RPC at all.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Not JSON.
    Parse,
    /// JSON, but neither an object nor a non-empty array.
    Invalid(&'static str),
}

/// Parses a body into messages.
pub fn parse_body(body: &[u8]) -> Result<Body<'_>, BodyError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    match first {
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_slice(body).map_err(|_| BodyError::Parse)?;
            if items.is_empty() {
                return Err(BodyError::Invalid("empty batch"));
            }
            Ok(Body::Batch(items.into_iter().map(classify).collect()))
        }
        // One pass: the envelope is read (and the whole body validated) straight from the
        // bytes; only a body that fails it is read again, to tell bad JSON from a bad shape.
        Some(b'{') => match serde_json::from_slice::<Envelope<'_>>(body) {
            Ok(env) => Ok(Body::Single(classify_envelope(env))),
            Err(_) => match serde_json::from_slice::<&RawValue>(body) {
                Ok(raw) => Ok(Body::Single(classify(raw))),
                Err(_) => Err(BodyError::Parse),
            },
        },
        _ => {
            // Valid JSON of another shape is an invalid request, not a parse error.
            if serde_json::from_slice::<&RawValue>(body).is_ok() {
                Err(BodyError::Invalid("a JSON-RPC message must be an object"))
            } else {
                Err(BodyError::Parse)
            }
        }
    }
}

fn valid_id(id: &RawValue) -> bool {
    let s = id.get();
    s.starts_with('"') || s.starts_with('-') || s.as_bytes().first().is_some_and(u8::is_ascii_digit)
}

/// Classifies one message.
pub fn classify(raw: &RawValue) -> Message<'_> {
    match serde_json::from_str::<Envelope<'_>>(raw.get()) {
        Ok(env) => classify_envelope(env),
        // Not an object, or an object with a member twice.
        Err(_) => Message::Invalid { id: None, reason: "a JSON-RPC message must be an object" },
    }
}

fn classify_envelope(env: Envelope<'_>) -> Message<'_> {
    let id = env.id.filter(|i| valid_id(i));
    if env.jsonrpc.map(RawValue::get) != Some("\"2.0\"") {
        return Message::Invalid { id, reason: "`jsonrpc` must be \"2.0\"" };
    }
    if env.id.is_some() && id.is_none() {
        return Message::Invalid { id: None, reason: "`id` must be a string or a number" };
    }
    match env.method {
        Some(m) => {
            let Ok(method) = serde_json::from_str::<&str>(m.get()) else {
                return Message::Invalid { id, reason: "`method` must be a plain string" };
            };
            match id {
                Some(id) => Message::Request { id, method, params: env.params },
                None => Message::Notification { method },
            }
        }
        None if id.is_some() && (env.result.is_some() ^ env.error.is_some()) => Message::Response,
        None => Message::Invalid { id, reason: "missing `method`" },
    }
}

/// A success response around an already-serialized result.
pub fn result(id: &RawValue, result: &str) -> String {
    let mut out = String::with_capacity(40 + id.get().len() + result.len());
    out.push_str("{\"jsonrpc\":\"2.0\",\"id\":");
    out.push_str(id.get());
    out.push_str(",\"result\":");
    out.push_str(result);
    out.push('}');
    out
}

/// An error response; `id` is `null` when unknown.
pub fn error(id: Option<&RawValue>, code: i32, message: &str) -> String {
    let msg = serde_json::to_string(message).unwrap_or_else(|_| "\"error\"".into());
    format!("{{\"jsonrpc\":\"2.0\",\"id\":{},\"error\":{{\"code\":{code},\"message\":{msg}}}}}", id.map_or("null", RawValue::get))
}

/// An error response with `data`.
pub fn error_with_data(id: Option<&RawValue>, code: i32, message: &str, data: &serde_json::Value) -> String {
    let msg = serde_json::to_string(message).unwrap_or_else(|_| "\"error\"".into());
    format!("{{\"jsonrpc\":\"2.0\",\"id\":{},\"error\":{{\"code\":{code},\"message\":{msg},\"data\":{data}}}}}", id.map_or("null", RawValue::get))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_requests_notifications_and_responses() {
        let b = br#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#;
        assert!(matches!(parse_body(b), Ok(Body::Single(Message::Request { method: "ping", .. }))));
        let b = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        assert!(matches!(parse_body(b), Ok(Body::Single(Message::Notification { .. }))));
        let b = br#"{"jsonrpc":"2.0","id":"a","result":{}}"#;
        assert!(matches!(parse_body(b), Ok(Body::Single(Message::Response))));
    }

    #[test]
    fn rejects_bad_shapes_with_the_right_kind() {
        assert_eq!(parse_body(b"{nope").unwrap_err(), BodyError::Parse);
        assert!(matches!(parse_body(b"[]"), Err(BodyError::Invalid(_))));
        assert!(matches!(parse_body(b"42"), Err(BodyError::Invalid(_))));
        let b = br#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#;
        assert!(matches!(parse_body(b), Ok(Body::Single(Message::Invalid { id: Some(_), .. }))));
        let b = br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#;
        assert!(matches!(parse_body(b), Ok(Body::Single(Message::Invalid { id: None, .. }))));
        let b = br#"{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}"#;
        assert!(matches!(parse_body(b), Ok(Body::Single(Message::Invalid { .. }))));
        let b = br#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#;
        assert!(matches!(parse_body(b), Ok(Body::Single(Message::Invalid { id: None, .. }))), "a member twice is valid JSON, not a valid message");
        assert_eq!(parse_body(br#"{"jsonrpc":"2.0","id":1,"method":"ping"} x"#).unwrap_err(), BodyError::Parse);
        assert_eq!(parse_body(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\"}").unwrap_err(), BodyError::Parse);
    }

    #[test]
    fn batches_classify_each_member() {
        let b = br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"x"},5]"#;
        let Ok(Body::Batch(items)) = parse_body(b) else { panic!() };
        assert!(matches!(items[0], Message::Request { .. }));
        assert!(matches!(items[1], Message::Notification { .. }));
        assert!(matches!(items[2], Message::Invalid { .. }));
    }

    #[test]
    fn errors_about_a_body_are_addressed_to_its_id() {
        let ok = parse_body(br#"{"jsonrpc":"2.0","id":101,"method":"tools/list"}"#).unwrap();
        assert_eq!(ok.id().map(RawValue::get), Some("101"));
        let bad = parse_body(br#"{"jsonrpc":"1.0","id":"x","method":"ping"}"#).unwrap();
        assert_eq!(bad.id().map(RawValue::get), Some("\"x\""));
        assert!(parse_body(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap().id().is_none());
        let batch = parse_body(br#"[{"jsonrpc":"2.0","id":1,"method":"initialize"},{"jsonrpc":"2.0","id":2,"method":"ping"}]"#).unwrap();
        assert!(batch.id().is_none());
        assert!(batch.batches_initialize());
        assert!(!parse_body(br#"[{"jsonrpc":"2.0","id":2,"method":"ping"}]"#).unwrap().batches_initialize());
    }

    #[test]
    fn writes_responses_with_the_raw_id() {
        let id: &RawValue = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(result(id, "{}"), r#"{"jsonrpc":"2.0","id":"abc","result":{}}"#);
        let e = error(None, PARSE_ERROR, "Parse error");
        let v: serde_json::Value = serde_json::from_str(&e).unwrap();
        assert_eq!(v["id"], serde_json::Value::Null);
        assert_eq!(v["error"]["code"], -32700);
    }
}
