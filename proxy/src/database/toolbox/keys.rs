//! Strict reading of a Toolbox construct: every key is one the gateway acts on, or the
//! load fails naming the key and where it is. A key of Toolbox's format that the gateway
//! does not support says why, so nothing of a file is ever silently dropped.

use serde_json::{Map, Value};

/// Why a key Toolbox knows is not supported here, when it is one of those.
fn unsupported(key: &str) -> Option<&'static str> {
    Some(match key {
        "authRequired" | "authServices" | "authSources" | "scopesRequired" | "useClientOAuth" => {
            "the gateway has no Toolbox auth services, so the tool would be served to every caller; put the route behind the gateway's own access control and drop the key"
        }
        "embeddedBy" => "embedding models are not supported",
        "valueFromParam" => "copying one parameter's value into another is not supported",
        "queryExecMode" => "the gateway decides how statements are sent (prepared, never shared between callers)",
        "sqlCommenter" => "the gateway does not prepend SQL comments to statements",
        "min" | "max" => "Toolbox spells these `minValue` and `maxValue`",
        _ => return None,
    })
}

/// A key that names no Toolbox setting unless it carries one: `authRequired: []` is what
/// Toolbox itself fills in, and asks for nothing.
pub fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Refuses every key of `body` outside `known`, naming `place` and the key.
pub fn check(body: &Map<String, Value>, known: &[&str], place: &str) -> Result<(), String> {
    for (key, value) in body {
        if known.contains(&key.as_str()) {
            continue;
        }
        if let Some(why) = unsupported(key) {
            if matches!(key.as_str(), "authRequired" | "authServices" | "authSources" | "scopesRequired") && is_empty(value) {
                continue;
            }
            return Err(format!("{place}: `{key}` is not supported: {why}"));
        }
        return Err(format!("{place}: unknown key `{key}` (known here: {})", known.join(", ")));
    }
    Ok(())
}

/// A text field: a string, or a number or boolean written without quotes (YAML reads
/// `password: 1234` as a number; Toolbox reads it as the text it is).
pub fn text(body: &Map<String, Value>, key: &str, place: &str) -> Result<Option<String>, String> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(Some(v.to_string())),
        Some(_) => Err(format!("{place}: `{key}` must be a text value")),
    }
}

/// A required text field.
pub fn required_text(body: &Map<String, Value>, key: &str, place: &str) -> Result<String, String> {
    text(body, key, place)?.ok_or_else(|| format!("{place}: missing `{key}`"))
}

/// A list field (absent: empty).
pub fn list<'a>(body: &'a Map<String, Value>, key: &str, place: &str) -> Result<&'a [Value], String> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(format!("{place}: `{key}` must be a list")),
    }
}

/// A mapping field, if present.
pub fn mapping<'a>(body: &'a Map<String, Value>, key: &str, place: &str) -> Result<Option<&'a Map<String, Value>>, String> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(format!("{place}: `{key}` must be a mapping")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn unknown_and_unsupported_keys_are_named() {
        let known = ["name", "type"];
        assert!(check(&obj(json!({"name": "a", "type": "b"})), &known, "tool `t`").is_ok());
        assert_eq!(check(&obj(json!({"nmae": "a"})), &known, "tool `t`").unwrap_err(), "tool `t`: unknown key `nmae` (known here: name, type)");
        let e = check(&obj(json!({"authRequired": ["google"]})), &known, "tool `t`").unwrap_err();
        assert!(e.starts_with("tool `t`: `authRequired` is not supported: the gateway has no Toolbox auth services"), "{e}");
        assert!(check(&obj(json!({"authRequired": []})), &known, "tool `t`").is_ok(), "an empty list asks for nothing");
        assert!(check(&obj(json!({"embeddedBy": "m"})), &known, "p").unwrap_err().contains("embedding models"));
    }

    #[test]
    fn text_fields_take_unquoted_scalars() {
        let b = obj(json!({"port": 5432, "password": "x", "nested": {"a": 1}}));
        assert_eq!(text(&b, "port", "s").unwrap().as_deref(), Some("5432"));
        assert_eq!(required_text(&b, "password", "s").unwrap(), "x");
        assert_eq!(required_text(&b, "host", "source `s`").unwrap_err(), "source `s`: missing `host`");
        assert!(text(&b, "nested", "s").is_err());
    }
}
