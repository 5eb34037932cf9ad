//! Turning validated arguments into the upstream request: placement by `position`,
//! OpenAPI serialization styles, and escaping for where each value lands.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use serde_json::{Map, Value};

/// Characters encoded in a path segment: everything but RFC 3986 unreserved characters,
/// so `/`, `?`, `#`, `%` and `..` tricks cannot leave the segment.
pub const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Where an argument goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// `{name}` in the URL path.
    Path,
    /// Query string.
    Query,
    /// Request header.
    Header,
    /// Cookie.
    Cookie,
    /// Request body.
    Body,
    /// No position: placed by `argsTo*` (Higress "default args").
    Default,
}

impl Position {
    /// Parses a `position:` value.
    pub fn parse(s: Option<&str>) -> Result<Position, String> {
        Ok(match s {
            None | Some("") => Position::Default,
            Some("path") => Position::Path,
            Some("query") => Position::Query,
            Some("header") => Position::Header,
            Some("cookie") => Position::Cookie,
            Some("body") => Position::Body,
            Some(other) => return Err(format!("unknown position `{other}` (query, path, header, cookie or body)")),
        })
    }
}

/// How one argument is sent.
#[derive(Debug, Clone)]
pub struct ArgPlan {
    /// Name in `arguments`.
    pub name: String,
    /// Name on the wire.
    pub wire: String,
    /// Placement.
    pub position: Position,
    /// OpenAPI style (`form`, `spaceDelimited`, `pipeDelimited`, `deepObject`, `simple`,
    /// `label`, `matrix`).
    pub style: Option<String>,
    /// OpenAPI explode.
    pub explode: Option<bool>,
    /// Default applied when absent.
    pub default: Option<Value>,
    /// Fixed value (hidden argument).
    pub fixed: Option<Value>,
}

/// Why a request cannot be built from the arguments.
#[derive(Debug, PartialEq)]
pub struct ArgError(pub String);

/// A scalar as text (strings raw, others JSON).
pub fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Serializes a query argument into `out` pairs, per OpenAPI style.
pub fn query_pairs(arg: &ArgPlan, value: &Value, out: &mut Vec<(String, String)>) {
    let style = arg.style.as_deref().unwrap_or("form");
    let explode = arg.explode.unwrap_or(style == "form");
    match value {
        Value::Array(items) => {
            let texts: Vec<String> = items.iter().map(scalar_text).collect();
            match style {
                "spaceDelimited" => out.push((arg.wire.clone(), texts.join(" "))),
                "pipeDelimited" => out.push((arg.wire.clone(), texts.join("|"))),
                _ if explode => out.extend(texts.into_iter().map(|t| (arg.wire.clone(), t))),
                _ => out.push((arg.wire.clone(), texts.join(","))),
            }
        }
        Value::Object(map) => match style {
            "deepObject" => out.extend(map.iter().map(|(k, v)| (format!("{}[{k}]", arg.wire), scalar_text(v)))),
            _ if explode => out.extend(map.iter().map(|(k, v)| (k.clone(), scalar_text(v)))),
            _ => out.push((arg.wire.clone(), map.iter().flat_map(|(k, v)| [k.clone(), scalar_text(v)]).collect::<Vec<_>>().join(","))),
        },
        v => out.push((arg.wire.clone(), scalar_text(v))),
    }
}

/// Serializes a path argument (already-encoded segment text), per OpenAPI style.
pub fn path_value(arg: &ArgPlan, value: &Value) -> String {
    let enc = |s: &str| percent_encoding::utf8_percent_encode(s, SEGMENT).to_string();
    let explode = arg.explode.unwrap_or(false);
    // The common case, one plain value in the simple style: no list to build and join.
    if arg.style.is_none() && !matches!(value, Value::Array(_) | Value::Object(_)) {
        return match value {
            Value::String(s) => enc(s),
            other => enc(&scalar_text(other)),
        };
    }
    let items: Vec<String> = match value {
        Value::Array(a) => a.iter().map(|v| enc(&scalar_text(v))).collect(),
        Value::Object(m) if explode => m.iter().map(|(k, v)| format!("{}={}", enc(k), enc(&scalar_text(v)))).collect(),
        Value::Object(m) => m.iter().flat_map(|(k, v)| [enc(k), enc(&scalar_text(v))]).collect(),
        v => vec![enc(&scalar_text(v))],
    };
    match arg.style.as_deref() {
        Some("label") => format!(".{}", items.join(if explode { "." } else { "," })),
        Some("matrix") if explode && value.is_array() => items.iter().map(|i| format!(";{}={i}", arg.wire)).collect(),
        Some("matrix") => format!(";{}={}", arg.wire, items.join(",")),
        _ => items.join(","),
    }
}

/// A header value; refuses CR, LF and NUL so no argument can add a header.
pub fn header_value(arg_name: &str, value: &Value) -> Result<http::HeaderValue, ArgError> {
    let text = match value {
        Value::Array(a) => a.iter().map(scalar_text).collect::<Vec<_>>().join(","),
        v => scalar_text(v),
    };
    if text.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(ArgError(format!("argument `{arg_name}` may not contain CR, LF or NUL (it is sent as a header)")));
    }
    http::HeaderValue::from_str(&text).map_err(|_| ArgError(format!("argument `{arg_name}` is not a valid header value")))
}

/// Encodes a cookie value (RFC 6265 cookie-octets; everything else percent-encoded).
pub fn cookie_value(value: &Value) -> String {
    const COOKIE: &AsciiSet = &percent_encoding::CONTROLS.add(b' ').add(b'"').add(b',').add(b';').add(b'\\').add(b'%');
    percent_encoding::utf8_percent_encode(&scalar_text(value), COOKIE).to_string()
}

/// Form-encodes `pairs`.
pub fn form_encode(pairs: &[(String, String)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// Arguments with defaults and fixed values applied, in plan order, with their index in
/// `plans`.
pub fn effective_args<'a>(plans: &'a [ArgPlan], args: &'a Map<String, Value>) -> impl Iterator<Item = (usize, &'a ArgPlan, &'a Value)> {
    plans.iter().enumerate().filter_map(move |(i, p)| p.fixed.as_ref().or_else(|| args.get(&p.name)).or(p.default.as_ref()).map(|v| (i, p, v)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn arg(style: Option<&str>, explode: Option<bool>) -> ArgPlan {
        ArgPlan { name: "id".into(), wire: "id".into(), position: Position::Query, style: style.map(String::from), explode, default: None, fixed: None }
    }

    #[test]
    fn query_styles() {
        let v = json!([3, 4]);
        let mut out = vec![];
        query_pairs(&arg(None, None), &v, &mut out);
        assert_eq!(form_encode(&out), "id=3&id=4");
        out.clear();
        query_pairs(&arg(Some("form"), Some(false)), &v, &mut out);
        assert_eq!(form_encode(&out), "id=3%2C4");
        out.clear();
        query_pairs(&arg(Some("pipeDelimited"), None), &v, &mut out);
        assert_eq!(out, vec![("id".to_string(), "3|4".to_string())]);
        out.clear();
        query_pairs(&arg(Some("deepObject"), Some(true)), &json!({"a": 1}), &mut out);
        assert_eq!(form_encode(&out), "id%5Ba%5D=1");
    }

    #[test]
    fn path_values_cannot_escape_their_segment() {
        let p = arg(None, None);
        assert_eq!(path_value(&p, &json!("../../admin")), "..%2F..%2Fadmin");
        assert_eq!(path_value(&p, &json!("a?b#c%2F")), "a%3Fb%23c%252F");
        assert_eq!(path_value(&p, &json!([1, 2])), "1,2");
        assert_eq!(path_value(&arg(Some("label"), None), &json!([1, 2])), ".1,2");
        assert_eq!(path_value(&arg(Some("matrix"), None), &json!(5)), ";id=5");
    }

    #[test]
    fn headers_refuse_line_breaks() {
        assert!(header_value("x", &json!("ok")).is_ok());
        assert!(header_value("x", &json!("a\r\nX-Evil: 1")).is_err());
        assert!(header_value("x", &json!("a\nb")).is_err());
    }

    #[test]
    fn cookies_are_encoded() {
        assert_eq!(cookie_value(&json!("a b;c=d")), "a%20b%3Bc=d");
    }
}
