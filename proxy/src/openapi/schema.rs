//! Turning OpenAPI schemas (Swagger 2.0, OpenAPI 3.0, 3.1) into JSON Schema 2020-12 that
//! MCP clients and the gateway's validator accept.

use serde_json::{Map, Value};

const TYPES: [&str; 7] = ["string", "number", "integer", "boolean", "array", "object", "null"];

/// Keywords that are OpenAPI annotations, not JSON Schema, and only add noise for a model.
const DROP: [&str; 5] = ["xml", "externalDocs", "discriminator", "x-readme-ref-name", "x-stoplight"];

/// Normalizes an (already ref-expanded) schema.
pub fn normalize(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(normalize_object(m)),
        Value::Bool(b) => Value::Bool(*b),
        _ => Value::Object(Map::new()),
    }
}

fn normalize_object(m: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::with_capacity(m.len());
    for (k, v) in m {
        if DROP.contains(&k.as_str()) {
            continue;
        }
        match k.as_str() {
            "properties" | "patternProperties" | "$defs" | "definitions" => {
                if let Value::Object(props) = v {
                    out.insert(k.clone(), Value::Object(props.iter().map(|(pk, pv)| (pk.clone(), normalize(pv))).collect()));
                }
            }
            "items" => match v {
                Value::Array(tuple) => {
                    out.insert("prefixItems".into(), Value::Array(tuple.iter().map(normalize).collect()));
                }
                other => {
                    out.insert("items".into(), normalize(other));
                }
            },
            "allOf" | "anyOf" | "oneOf" | "prefixItems" => {
                if let Value::Array(list) = v {
                    out.insert(k.clone(), Value::Array(list.iter().map(normalize).collect()));
                }
            }
            "additionalProperties" | "not" | "contains" | "propertyNames" | "if" | "then" | "else" | "unevaluatedProperties" | "unevaluatedItems" => {
                out.insert(k.clone(), normalize(v));
            }
            // Swagger 2 properties sometimes carry `required: true`; only arrays are valid.
            "required" => {
                if let Value::Array(list) = v {
                    let names: Vec<Value> = list.iter().filter(|x| x.is_string()).cloned().collect();
                    if !names.is_empty() {
                        out.insert(k.clone(), Value::Array(names));
                    }
                }
            }
            "type" => {
                if let Some(t) = normalize_type(v) {
                    out.insert(k.clone(), t);
                }
            }
            "enum" => {
                if let Value::Array(_) = v {
                    out.insert(k.clone(), v.clone());
                }
            }
            "example" => {
                out.insert("examples".into(), Value::Array(vec![v.clone()]));
            }
            "examples" => {
                if v.is_array() {
                    out.insert(k.clone(), v.clone());
                }
            }
            "pattern" => {
                // A pattern the validator cannot compile would make the whole tool unusable.
                if v.as_str().is_some_and(|p| regex::Regex::new(p).is_ok()) {
                    out.insert(k.clone(), v.clone());
                }
            }
            "exclusiveMinimum" | "exclusiveMaximum" => {
                if v.is_number() {
                    out.insert(k.clone(), v.clone());
                }
            }
            "minimum" | "maximum" | "minLength" | "maxLength" | "minItems" | "maxItems" | "minProperties" | "maxProperties" | "multipleOf" => {
                if v.is_number() {
                    out.insert(k.clone(), v.clone());
                }
            }
            "nullable" | "$ref" | "$schema" | "$id" | "readOnly" => {}
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    // OpenAPI 3.0 / draft-4 booleans: `exclusiveMinimum: true` qualifies `minimum`.
    for (flag, bound) in [("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")] {
        if m.get(flag) == Some(&Value::Bool(true)) {
            if let Some(b) = out.remove(bound) {
                out.insert(flag.into(), b);
            }
        }
    }
    // Swagger 2 `type: file`.
    if m.get("type").and_then(Value::as_str) == Some("file") {
        out.insert("type".into(), Value::String("string".into()));
        out.insert("format".into(), Value::String("binary".into()));
    }
    // OpenAPI 3.0 `nullable: true`.
    if m.get("nullable") == Some(&Value::Bool(true)) {
        match out.get("type").cloned() {
            Some(Value::String(t)) => {
                out.insert("type".into(), Value::Array(vec![Value::String(t), Value::String("null".into())]));
            }
            Some(Value::Array(mut ts)) if !ts.contains(&Value::String("null".into())) => {
                ts.push(Value::String("null".into()));
                out.insert("type".into(), Value::Array(ts));
            }
            _ => {}
        }
        if let Some(Value::Array(e)) = out.get_mut("enum") {
            if !e.contains(&Value::Null) {
                e.push(Value::Null);
            }
        }
    }
    out
}

fn normalize_type(v: &Value) -> Option<Value> {
    match v {
        Value::String(t) if t == "file" => Some(Value::String("string".into())),
        Value::String(t) if TYPES.contains(&t.as_str()) => Some(v.clone()),
        Value::Array(ts) => {
            let valid: Vec<Value> = ts.iter().filter(|t| t.as_str().is_some_and(|s| TYPES.contains(&s))).cloned().collect();
            (!valid.is_empty()).then_some(Value::Array(valid))
        }
        _ => None,
    }
}

/// Relaxes an output schema: real APIs omit documented fields and add undocumented ones,
/// and clients validate `structuredContent` against `outputSchema`, so `required` and
/// closed objects are dropped; types and descriptions stay.
pub fn relax(v: &Value) -> Value {
    const LOOSE: [&str; 5] = ["required", "unevaluatedProperties", "enum", "format", "pattern"];
    let Value::Object(m) = v else { return v.clone() };
    let mut out = Map::with_capacity(m.len());
    for (k, val) in m {
        match k.as_str() {
            _ if LOOSE.contains(&k.as_str()) => {}
            "additionalProperties" if *val == Value::Bool(false) => {}
            "properties" | "patternProperties" | "$defs" => {
                if let Value::Object(props) = val {
                    out.insert(k.clone(), Value::Object(props.iter().map(|(pk, pv)| (pk.clone(), relax(pv))).collect()));
                }
            }
            "items" | "additionalProperties" | "not" | "contains" => {
                out.insert(k.clone(), relax(val));
            }
            "allOf" | "anyOf" | "oneOf" | "prefixItems" => {
                out.insert(k.clone(), val.as_array().map_or(Value::Array(vec![]), |l| Value::Array(l.iter().map(relax).collect())));
            }
            _ => {
                out.insert(k.clone(), val.clone());
            }
        }
    }
    Value::Object(out)
}

/// Whether a schema describes an object (for `outputSchema` and flattening bodies).
pub fn is_object(v: &Value) -> bool {
    match v.get("type") {
        Some(Value::String(t)) => t == "object",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "object") && !ts.iter().any(|t| t == "array"),
        _ => v.get("properties").is_some() || v.get("allOf").and_then(Value::as_array).is_some_and(|l| l.iter().all(|s| s.get("properties").is_some() || s.get("type").and_then(Value::as_str) == Some("object"))),
    }
}

/// Merges an `allOf` of object schemas into one object schema (properties and required).
pub fn merge_all_of(v: &Value) -> Value {
    let Some(list) = v.get("allOf").and_then(Value::as_array) else { return v.clone() };
    let mut props = Map::new();
    let mut required: Vec<Value> = Vec::new();
    let mut out = v.as_object().cloned().unwrap_or_default();
    out.remove("allOf");
    for s in list.iter().map(merge_all_of) {
        if let Some(p) = s.get("properties").and_then(Value::as_object) {
            props.extend(p.clone());
        }
        if let Some(r) = s.get("required").and_then(Value::as_array) {
            required.extend(r.iter().cloned());
        }
        if let Some(d) = s.get("description") {
            out.entry("description").or_insert_with(|| d.clone());
        }
    }
    if let Some(p) = out.get("properties").and_then(Value::as_object) {
        props.extend(p.clone());
    }
    if let Some(r) = out.get("required").and_then(Value::as_array) {
        required.extend(r.iter().cloned());
    }
    out.insert("type".into(), Value::String("object".into()));
    out.insert("properties".into(), Value::Object(props));
    if !required.is_empty() {
        required.dedup();
        out.insert("required".into(), Value::Array(required));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nullable_and_draft4_bounds_become_2020_12() {
        let s = normalize(&json!({"type": "integer", "nullable": true, "minimum": 1, "exclusiveMinimum": true, "xml": {}}));
        assert_eq!(s, json!({"type": ["integer", "null"], "exclusiveMinimum": 1}));
    }

    #[test]
    fn swagger_quirks_are_repaired() {
        let s = normalize(&json!({"type": "object", "properties": {"f": {"type": "file", "required": true}}, "items": [{"type": "string"}]}));
        assert_eq!(s["properties"]["f"], json!({"type": "string", "format": "binary"}));
        assert!(s.get("prefixItems").is_some());
    }

    #[test]
    fn output_schemas_are_relaxed() {
        let s = relax(&json!({"type": "object", "required": ["a"], "additionalProperties": false, "properties": {"a": {"type": "string", "enum": ["x"]}}}));
        assert_eq!(s, json!({"type": "object", "properties": {"a": {"type": "string"}}}));
    }
}
