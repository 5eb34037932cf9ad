//! Toolbox parameters: how they are declared, the JSON Schema each becomes, and the checks
//! a value passes before it is bound (`parameters`) or written into the statement
//! (`templateParameters`).
//!
//! `allowedValues` and `excludedValues` follow Toolbox's matching: a string entry is a
//! regular expression (RE2 syntax, matched anywhere in the value's text) when it compiles,
//! other entries compare equal. Two deliberate differences, each on the safe side: a plain
//! `allowedValues` string (no regex metacharacter) must match exactly, where Toolbox would
//! also accept any value containing it; and `templateParameters` take exact names only.

use serde_json::{json, Map, Value};

use super::keys;

/// Parameter types, as Toolbox names them.
const TYPES: [&str; 6] = ["string", "integer", "float", "boolean", "array", "map"];

/// The types a map's values or an array's items may have.
const SCALARS: [&str; 4] = ["string", "integer", "float", "boolean"];

/// Characters that make an `allowedValues` string a pattern rather than a literal.
const META: &[char] = &['^', '$', '*', '+', '?', '(', ')', '[', ']', '{', '}', '|', '\\'];

/// How a string template parameter is quoted in the statement (Toolbox's `escape`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// `"name"`: a standard SQL identifier.
    DoubleQuotes,
    /// `` `name` ``: a MySQL/SQLite identifier.
    Backticks,
    /// `[name]`: a SQLite (and SQL Server) identifier.
    SquareBrackets,
    /// `'text'`: a string literal.
    SingleQuotes,
}

impl Escape {
    fn parse(name: &str) -> Option<Escape> {
        Some(match name {
            "double-quotes" => Escape::DoubleQuotes,
            "backticks" => Escape::Backticks,
            "square-brackets" => Escape::SquareBrackets,
            "single-quotes" => Escape::SingleQuotes,
            _ => return None,
        })
    }

    /// `text` inside these quotes, the closing quote doubled so the value cannot end them.
    pub fn quote(self, text: &str) -> String {
        let (open, close) = match self {
            Escape::DoubleQuotes => ('"', '"'),
            Escape::Backticks => ('`', '`'),
            Escape::SquareBrackets => ('[', ']'),
            Escape::SingleQuotes => ('\'', '\''),
        };
        let mut out = String::with_capacity(text.len() + 2);
        out.push(open);
        for c in text.chars() {
            if c == close {
                out.push(close);
            }
            out.push(c);
        }
        out.push(close);
        out
    }
}

/// One `allowedValues` / `excludedValues` entry, ready to match.
#[derive(Debug, Clone)]
pub enum Match {
    /// Compares equal (numbers by value).
    Exact(Value),
    /// Matches anywhere in the value's text.
    Pattern(regex::Regex),
}

impl PartialEq for Match {
    fn eq(&self, other: &Match) -> bool {
        match (self, other) {
            (Match::Exact(a), Match::Exact(b)) => a == b,
            (Match::Pattern(a), Match::Pattern(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

impl Match {
    /// Whether `v` is this entry.
    pub fn matches(&self, v: &Value) -> bool {
        match self {
            Match::Exact(x) => same(x, v),
            Match::Pattern(re) => re.is_match(&display(v)),
        }
    }

    /// The entry as JSON Schema: an exact value for `enum`, or a `pattern`.
    fn schema_part(&self) -> Result<Value, Value> {
        match self {
            Match::Exact(x) => Ok(x.clone()),
            Match::Pattern(re) => Err(json!({"pattern": re.as_str()})),
        }
    }
}

/// Equality with numbers compared by value (`1` is `1.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        _ => a == b,
    }
}

/// A value's text as a pattern sees it: strings as they are, anything else as JSON.
fn display(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The compiled `allowedValues` and `excludedValues` of a parameter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rules {
    /// A value must match one of these (when there are any).
    pub allowed: Vec<Match>,
    /// A value must match none of these.
    pub excluded: Vec<Match>,
}

/// A parameter (bound) or template parameter (written into the statement).
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// Name.
    pub name: String,
    /// `string`, `integer`, `float`, `boolean`, `array` or `map`.
    pub kind: String,
    /// Description.
    pub description: String,
    /// Required: `required` (default true) and no `default`, as in Toolbox.
    pub required: bool,
    /// Default.
    pub default: Option<Value>,
    /// `allowedValues` as written.
    pub allowed: Option<Vec<Value>>,
    /// `excludedValues` as written.
    pub excluded: Option<Vec<Value>>,
    /// `minValue` (integer and float).
    pub min: Option<Value>,
    /// `maxValue` (integer and float).
    pub max: Option<Value>,
    /// Array items type.
    pub items: Option<String>,
    /// Map values type (`valueType`); any JSON value when absent.
    pub value_type: Option<String>,
    /// Template parameters: the quoting of `escape`; the dialect's identifier quoting
    /// when absent.
    pub escape: Option<Escape>,
    /// `allowedValues` / `excludedValues` compiled for matching.
    pub rules: Rules,
}

/// Keys every parameter may have; the rest depend on the type.
const COMMON: [&str; 7] = ["name", "type", "description", "required", "default", "allowedValues", "excludedValues"];

fn keys_of(kind: &str) -> Vec<&'static str> {
    let extra: &[&str] = match kind {
        "string" => &["escape"],
        "integer" | "float" => &["minValue", "maxValue"],
        "array" => &["items"],
        "map" => &["valueType"],
        _ => &[],
    };
    COMMON.iter().chain(extra).copied().collect()
}

/// Whether `v` is a value of `kind` (with `inner` the array items' or map values' type).
fn fits(kind: &str, inner: Option<&str>, v: &Value) -> bool {
    match (kind, v) {
        ("string", Value::String(_)) | ("boolean", Value::Bool(_)) => true,
        ("integer", Value::Number(n)) => n.is_i64() || n.is_u64(),
        ("float", Value::Number(_)) => true,
        ("array", Value::Array(a)) => inner.is_none_or(|t| a.iter().all(|x| fits(t, None, x))),
        ("map", Value::Object(m)) => inner.is_none_or(|t| m.values().all(|x| fits(t, None, x))),
        _ => false,
    }
}

/// The JSON Schema type of a Toolbox type.
fn json_type(kind: &str) -> &str {
    match kind {
        "float" => "number",
        "map" => "object",
        other => other,
    }
}

/// Where in the file a parameter is, for messages.
struct Place<'a> {
    tool: &'a str,
    section: &'a str,
    name: String,
}

impl std::fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.section == "templateParameters" { "template parameter" } else { "parameter" };
        write!(f, "{}, {what} `{}`", self.tool, self.name)
    }
}

/// Reads one entry of `parameters` (`template: false`) or `templateParameters`.
pub fn parse(v: &Value, tool: &str, template: bool) -> Result<Param, String> {
    let section = if template { "templateParameters" } else { "parameters" };
    let body = v.as_object().ok_or_else(|| format!("{tool}: every entry of `{section}` must be a mapping"))?;
    let name = keys::required_text(body, "name", &format!("{tool}, an entry of `{section}`"))?;
    let place = Place { tool, section, name: name.clone() };
    let at = place.to_string();
    let kind = keys::text(body, "type", &at)?.unwrap_or_else(|| "string".into());
    if !TYPES.contains(&kind.as_str()) {
        return Err(format!("{at}: type `{kind}` is not supported ({})", TYPES.join(", ")));
    }
    keys::check(body, &keys_of(&kind), &at)?;
    let items = inner_type(body, &kind, &at)?;
    let default = body.get("default").filter(|d| !d.is_null()).cloned();
    if let Some(d) = &default {
        if !fits(&kind, items.as_deref(), d) {
            return Err(format!("{at}: default {d} is not a value of type `{kind}`"));
        }
    }
    let p = Param {
        required: bool_field(body, "required", &at)?.unwrap_or(true) && default.is_none(),
        description: keys::text(body, "description", &at)?.unwrap_or_default(),
        allowed: values(body, "allowedValues", &at)?,
        excluded: values(body, "excludedValues", &at)?,
        min: bound(body, "minValue", &kind, &at)?,
        max: bound(body, "maxValue", &kind, &at)?,
        value_type: (kind == "map").then(|| items.clone()).flatten(),
        items: (kind == "array").then_some(items).flatten(),
        escape: escape(body, &at)?,
        rules: Rules::default(),
        default,
        name,
        kind,
    };
    let p = Param { rules: rules(&p, template, &at)?, ..p };
    if template {
        check_template(&p, &at)?;
    } else if p.escape.is_some() {
        return Err(format!("{at}: `escape` quotes a value written into the statement; bound `parameters` never are (use a template parameter, or drop `escape`)"));
    }
    if let Some(d) = &p.default {
        check(&p, d).map_err(|e| format!("{at}: default: {e}"))?;
    }
    Ok(p)
}

fn bool_field(body: &Map<String, Value>, key: &str, at: &str) -> Result<Option<bool>, String> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(format!("{at}: `{key}` must be true or false")),
    }
}

/// The type of an array's `items` or a map's `valueType`.
fn inner_type(body: &Map<String, Value>, kind: &str, at: &str) -> Result<Option<String>, String> {
    let inner = match kind {
        "array" => match keys::mapping(body, "items", at)? {
            Some(items) => {
                let place = format!("{at}, items");
                keys::check(items, &["name", "type", "description"], &place)?;
                Some(keys::text(items, "type", &place)?.unwrap_or_else(|| "string".into()))
            }
            None => None,
        },
        "map" => keys::text(body, "valueType", at)?,
        _ => return Ok(None),
    };
    match inner {
        Some(t) if !SCALARS.contains(&t.as_str()) => Err(format!("{at}: {} `{t}` is not supported ({})", if kind == "map" { "valueType" } else { "items type" }, SCALARS.join(", "))),
        other => Ok(other),
    }
}

fn values(body: &Map<String, Value>, key: &str, at: &str) -> Result<Option<Vec<Value>>, String> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a.clone())),
        Some(_) => Err(format!("{at}: `{key}` must be a list")),
    }
}

fn bound(body: &Map<String, Value>, key: &str, kind: &str, at: &str) -> Result<Option<Value>, String> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) if fits(kind, None, v) => Ok(Some(v.clone())),
        Some(v) => Err(format!("{at}: `{key}` {v} is not a value of type `{kind}`")),
    }
}

fn escape(body: &Map<String, Value>, at: &str) -> Result<Option<Escape>, String> {
    match keys::text(body, "escape", at)? {
        None => Ok(None),
        Some(name) => Escape::parse(&name).map(Some).ok_or_else(|| format!("{at}: escape `{name}` is not one of double-quotes, backticks, square-brackets, single-quotes")),
    }
}

/// Compiles the entries as Toolbox matches them (see the module documentation).
fn rules(p: &Param, template: bool, at: &str) -> Result<Rules, String> {
    // Arrays and maps compare whole values, in Toolbox too.
    let structured = matches!(p.kind.as_str(), "array" | "map");
    let compile = |v: &Value, allowed: bool| -> Result<Match, String> {
        let Value::String(s) = v else { return Ok(Match::Exact(v.clone())) };
        let literal = allowed && !s.contains(META);
        if structured || literal {
            return Ok(Match::Exact(v.clone()));
        }
        if allowed && template {
            return Err(format!("{at}: allowedValues entry `{s}` is a regular expression; a template parameter only takes names listed exactly"));
        }
        // Toolbox falls back to equality when a string does not compile; so does this.
        Ok(regex::Regex::new(s).map(Match::Pattern).unwrap_or_else(|_| Match::Exact(v.clone())))
    };
    let list = |vs: &Option<Vec<Value>>, allowed: bool| vs.iter().flatten().map(|v| compile(v, allowed)).collect::<Result<Vec<_>, _>>();
    Ok(Rules { allowed: list(&p.allowed, true)?, excluded: list(&p.excluded, false)? })
}

/// Template parameters are written into the statement, so they must come from a list.
fn check_template(p: &Param, at: &str) -> Result<(), String> {
    if !matches!(p.kind.as_str(), "string" | "integer" | "float") {
        return Err(format!("{at}: type `{}` is not supported for a template parameter (string, integer, float)", p.kind));
    }
    if p.allowed.as_ref().is_none_or(|a| a.is_empty()) {
        return Err(format!("{at}: needs `allowedValues`; identifiers are only taken from an allow-list"));
    }
    if let Some(bad) = p.allowed.iter().flatten().find(|v| !fits(&p.kind, None, v)) {
        return Err(format!("{at}: allowedValues entry {bad} is not a value of type `{}`", p.kind));
    }
    Ok(())
}

/// Checks a value against `allowedValues` and `excludedValues` (the types and bounds are
/// checked by the `inputSchema` before the call gets here).
pub fn check(p: &Param, v: &Value) -> Result<(), String> {
    if !p.rules.allowed.is_empty() && !p.rules.allowed.iter().any(|m| m.matches(v)) {
        return Err(format!("`{}`: {v} is not one of the allowed values", p.name));
    }
    if p.rules.excluded.iter().any(|m| m.matches(v)) {
        return Err(format!("`{}`: {v} is an excluded value", p.name));
    }
    Ok(())
}

/// `enum` for the exact entries and a `pattern` for each pattern, as one schema.
fn one_of(matches: &[Match]) -> Value {
    let (mut exact, mut parts) = (Vec::new(), Vec::new());
    for m in matches {
        match m.schema_part() {
            Ok(v) => exact.push(v),
            Err(pattern) => parts.push(pattern),
        }
    }
    if !exact.is_empty() {
        parts.insert(0, json!({"enum": exact}));
    }
    match parts.len() {
        1 => parts.remove(0),
        _ => json!({"anyOf": parts}),
    }
}

/// The JSON Schema of one parameter.
pub fn schema(p: &Param) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), json!(json_type(&p.kind)));
    if !p.description.is_empty() {
        m.insert("description".into(), json!(p.description));
    }
    if !p.rules.allowed.is_empty() {
        if let Value::Object(o) = one_of(&p.rules.allowed) {
            m.extend(o);
        }
    }
    if !p.rules.excluded.is_empty() {
        m.insert("not".into(), one_of(&p.rules.excluded));
    }
    for (key, v) in [("default", &p.default), ("minimum", &p.min), ("maximum", &p.max)] {
        if let Some(v) = v {
            m.insert(key.into(), v.clone());
        }
    }
    if p.kind == "array" {
        m.insert("items".into(), json!({"type": json_type(p.items.as_deref().unwrap_or("string"))}));
    }
    if p.kind == "map" {
        m.insert("additionalProperties".into(), p.value_type.as_deref().map_or(json!(true), |t| json!({"type": json_type(t)})));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(v: Value, template: bool) -> Result<Param, String> {
        parse(&v, "tool `t`", template)
    }

    #[test]
    fn map_parameters_are_objects_with_typed_values() {
        let p = param(json!({"name": "tags", "type": "map", "valueType": "integer", "description": "counts"}), false).unwrap();
        assert_eq!((p.kind.as_str(), p.value_type.as_deref()), ("map", Some("integer")));
        assert_eq!(schema(&p), json!({"type": "object", "description": "counts", "additionalProperties": {"type": "integer"}}));
        let any = param(json!({"name": "doc", "type": "map"}), false).unwrap();
        assert_eq!(schema(&any)["additionalProperties"], json!(true));
        let float = param(json!({"name": "w", "type": "map", "valueType": "float"}), false).unwrap();
        assert_eq!(schema(&float)["additionalProperties"], json!({"type": "number"}));
        assert!(param(json!({"name": "m", "type": "map", "valueType": "array"}), false).unwrap_err().contains("valueType `array` is not supported"));
        assert!(param(json!({"name": "m", "type": "map", "default": {"a": "x"}, "valueType": "integer"}), false).unwrap_err().contains("is not a value of type `map`"));
    }

    #[test]
    fn excluded_values_follow_toolbox_matching() {
        let p = param(json!({"name": "user", "type": "string", "excludedValues": ["^admin$", "root", "a(b"]}), false).unwrap();
        assert!(check(&p, &json!("admin")).unwrap_err().contains("`user`: \"admin\" is an excluded value"));
        assert!(check(&p, &json!("administrator")).is_ok(), "anchored patterns match exactly");
        assert!(check(&p, &json!("chroot")).is_err(), "a plain string matches anywhere, as in Toolbox");
        assert!(check(&p, &json!("a(b")).is_err(), "a string that is no pattern compares equal");
        assert_eq!(schema(&p)["not"], json!({"anyOf": [{"enum": ["a(b"]}, {"pattern": "^admin$"}, {"pattern": "root"}]}));
        let n = param(json!({"name": "id", "type": "integer", "excludedValues": [0, 13]}), false).unwrap();
        assert_eq!(schema(&n)["not"], json!({"enum": [0, 13]}));
        assert!(check(&n, &json!(13)).is_err() && check(&n, &json!(12)).is_ok());
    }

    #[test]
    fn allowed_values_are_exact_unless_a_pattern() {
        let p = param(json!({"name": "code", "type": "string", "allowedValues": ["GB", "^[A-Z]{2}-[0-9]+$"]}), false).unwrap();
        assert!(check(&p, &json!("GB")).is_ok() && check(&p, &json!("FR-12")).is_ok());
        assert!(check(&p, &json!("GBR")).is_err(), "a literal entry must match exactly");
        assert_eq!(schema(&p)["anyOf"], json!([{"enum": ["GB"]}, {"pattern": "^[A-Z]{2}-[0-9]+$"}]));
        let plain = param(json!({"name": "s", "allowedValues": ["a", "b"]}), false).unwrap();
        assert_eq!(schema(&plain)["enum"], json!(["a", "b"]));
        let e = param(json!({"name": "t", "allowedValues": ["hotels", "pg_.*"]}), true).unwrap_err();
        assert!(e.contains("template parameter `t`: allowedValues entry `pg_.*` is a regular expression"), "{e}");
    }

    #[test]
    fn escape_is_for_template_parameters_and_doubles_its_quote() {
        let p = param(json!({"name": "col", "type": "string", "escape": "backticks", "allowedValues": ["a`b"]}), true).unwrap();
        assert_eq!(p.escape, Some(Escape::Backticks));
        assert_eq!(Escape::Backticks.quote("a`b"), "`a``b`");
        assert_eq!(Escape::SquareBrackets.quote("x]y"), "[x]]y]");
        assert_eq!(Escape::SingleQuotes.quote("it's"), "'it''s'");
        assert_eq!(Escape::DoubleQuotes.quote("a\"b"), "\"a\"\"b\"");
        assert!(param(json!({"name": "c", "escape": "double-quotes"}), false).unwrap_err().contains("bound `parameters` never are"));
        assert!(param(json!({"name": "c", "escape": "brackets", "allowedValues": ["a"]}), true).unwrap_err().contains("escape `brackets` is not one of"));
        assert!(param(json!({"name": "n", "type": "integer", "escape": "backticks", "allowedValues": [1]}), true).unwrap_err().contains("unknown key `escape`"));
    }

    #[test]
    fn keys_are_checked_per_type() {
        assert!(param(json!({"name": "s", "type": "string", "minValue": 1}), false).unwrap_err().contains("parameter `s`: unknown key `minValue`"));
        assert!(param(json!({"name": "s", "authServices": [{"name": "g", "field": "email"}]}), false).unwrap_err().contains("`authServices` is not supported"));
        assert!(param(json!({"name": "n", "type": "integer", "min": 1}), false).unwrap_err().contains("spells these `minValue`"));
        let e = param(json!({"name": "a", "type": "array", "items": {"name": "x", "type": "string", "allowedValues": ["q"]}}), false).unwrap_err();
        assert!(e.contains("parameter `a`, items: unknown key `allowedValues`"), "{e}");
        assert!(param(json!({"name": "d", "type": "date"}), false).unwrap_err().contains("type `date` is not supported"));
    }

    #[test]
    fn required_follows_toolbox() {
        assert!(param(json!({"name": "a"}), false).unwrap().required);
        assert!(!param(json!({"name": "a", "required": false}), false).unwrap().required);
        assert!(!param(json!({"name": "a", "required": true, "default": "x"}), false).unwrap().required, "a default makes it optional");
        assert!(param(json!({"name": "a", "default": "root", "excludedValues": ["root"]}), false).unwrap_err().contains("default: `a`: \"root\" is an excluded value"));
    }
}
