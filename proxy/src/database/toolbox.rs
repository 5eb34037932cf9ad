//! Google MCP Toolbox `tools.yaml`, accepted unchanged in both forms: the legacy nested
//! maps (`sources:` / `tools:` / `toolsets:`, `kind: postgres-sql`) and the flat
//! multi-document form (`kind: source|tool|toolset`, `type: postgres-sql`), with
//! `${VAR}` and `${VAR:default}` substitution.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

/// A database source of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// Name.
    pub name: String,
    /// Connection URL built from the source's fields.
    pub url: String,
}

/// A parameter (bound) or template parameter (identifier from an allow-list).
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// Name.
    pub name: String,
    /// `string`, `integer`, `float`, `boolean`, `array`.
    pub kind: String,
    /// Description.
    pub description: String,
    /// Required (default: true unless a default is given).
    pub required: bool,
    /// Default.
    pub default: Option<Value>,
    /// Allowed values.
    pub allowed: Option<Vec<Value>>,
    /// Bounds.
    pub min: Option<Value>,
    /// Bounds.
    pub max: Option<Value>,
    /// Array items type.
    pub items: Option<String>,
}

/// A SQL tool.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlTool {
    /// Name.
    pub name: String,
    /// `postgres-sql`, `mysql-sql`, `sqlite-sql`.
    pub kind: String,
    /// Source name.
    pub source: String,
    /// Description.
    pub description: String,
    /// Bound parameters, in placeholder order.
    pub parameters: Vec<Param>,
    /// Identifier parameters substituted as `{{.name}}`.
    pub template_parameters: Vec<Param>,
    /// The statement.
    pub statement: String,
}

/// A parsed file.
#[derive(Debug, Default)]
pub struct Toolbox {
    /// Sources by name.
    pub sources: BTreeMap<String, Source>,
    /// Tools in file order.
    pub tools: Vec<SqlTool>,
    /// Toolsets: name → tool names.
    pub toolsets: BTreeMap<String, Vec<String>>,
}

/// Toolbox substitution: `${VAR}` and `${VAR:default}`.
pub fn substitute(text: &str) -> Result<String, String> {
    // Toolbox writes defaults with one colon; the config expander wants `:-`.
    let normalized = regex::Regex::new(r"\$\{([A-Za-z_][A-Za-z0-9_]*):([^-}][^}]*|)\}").map_err(|e| e.to_string())?.replace_all(text, "$${$1:-$2}");
    crate::config::env_expand(&normalized)
}

fn s(v: &Value, key: &str) -> Option<String> {
    v.get(key).map(|x| match x {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

fn enc(x: &str) -> String {
    percent_encoding::utf8_percent_encode(x, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn source(name: &str, v: &Value) -> Result<Source, String> {
    let kind = s(v, "kind").filter(|k| k != "source" && k != "sources").or_else(|| s(v, "type")).unwrap_or_default();
    let field = |k: &str| s(v, k).ok_or_else(|| format!("source `{name}`: missing `{k}`"));
    let url = match kind.as_str() {
        "postgres" | "cloud-sql-postgres" | "alloydb-postgres" => format!("postgres://{}:{}@{}:{}/{}", enc(&field("user")?), enc(&s(v, "password").unwrap_or_default()), field("host")?, s(v, "port").unwrap_or_else(|| "5432".into()), field("database")?),
        "mysql" | "cloud-sql-mysql" | "mariadb" => format!("mysql://{}:{}@{}:{}/{}", enc(&field("user")?), enc(&s(v, "password").unwrap_or_default()), field("host")?, s(v, "port").unwrap_or_else(|| "3306".into()), field("database")?),
        "sqlite" => format!("sqlite://{}", field("database")?),
        other => return Err(format!("source `{name}`: kind `{other}` is not supported (postgres, mysql, sqlite)")),
    };
    Ok(Source { name: name.to_string(), url })
}

fn param(v: &Value) -> Result<Param, String> {
    let name = s(v, "name").ok_or("a parameter has no `name`")?;
    let kind = s(v, "type").unwrap_or_else(|| "string".into());
    if !["string", "integer", "float", "boolean", "array"].contains(&kind.as_str()) {
        return Err(format!("parameter `{name}`: type `{kind}` is not supported (string, integer, float, boolean, array)"));
    }
    let default = v.get("default").cloned();
    Ok(Param {
        required: v.get("required").and_then(Value::as_bool).unwrap_or(default.is_none()),
        description: s(v, "description").unwrap_or_default(),
        allowed: v.get("allowedValues").and_then(Value::as_array).cloned(),
        min: v.get("minValue").or_else(|| v.get("min")).cloned(),
        max: v.get("maxValue").or_else(|| v.get("max")).cloned(),
        items: v.get("items").and_then(|i| s(i, "type")),
        default,
        name,
        kind,
    })
}

fn tool(name: &str, v: &Value) -> Result<SqlTool, String> {
    let kind = s(v, "kind").filter(|k| k != "tool" && k != "tools").or_else(|| s(v, "type")).unwrap_or_default();
    if !["postgres-sql", "mysql-sql", "sqlite-sql"].contains(&kind.as_str()) {
        return Err(format!("tool `{name}`: kind `{kind}` is not supported (postgres-sql, mysql-sql, sqlite-sql)"));
    }
    let list = |k: &str| -> Result<Vec<Param>, String> { v.get(k).and_then(Value::as_array).map(|a| a.iter().map(param).collect()).unwrap_or(Ok(vec![])).map_err(|e| format!("tool `{name}`: {e}")) };
    let t = SqlTool {
        name: name.to_string(),
        kind,
        source: s(v, "source").ok_or_else(|| format!("tool `{name}`: missing `source`"))?,
        description: s(v, "description").unwrap_or_default(),
        parameters: list("parameters")?,
        template_parameters: list("templateParameters")?,
        statement: s(v, "statement").ok_or_else(|| format!("tool `{name}`: missing `statement`"))?,
    };
    for tp in &t.template_parameters {
        if tp.allowed.as_ref().is_none_or(|a| a.is_empty()) {
            return Err(format!("tool `{name}`: template parameter `{}` needs `allowedValues`; identifiers are only taken from an allow-list", tp.name));
        }
    }
    Ok(t)
}

/// Parses a Toolbox file (after substitution).
pub fn parse(text: &str) -> Result<Toolbox, String> {
    let text = substitute(text)?;
    let mut tb = Toolbox::default();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v: Value = serde::Deserialize::deserialize(doc).map_err(|e| e.to_string())?;
        if v.is_null() {
            continue;
        }
        let kind = s(&v, "kind").unwrap_or_default();
        match (kind.as_str(), s(&v, "name")) {
            ("source" | "sources", Some(n)) => {
                tb.sources.insert(n.clone(), source(&n, &v)?);
            }
            ("tool" | "tools", Some(n)) => tb.tools.push(tool(&n, &v)?),
            ("toolset" | "toolsets", Some(n)) => {
                tb.toolsets.insert(n, v.get("tools").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect()).unwrap_or_default());
            }
            _ => {
                for (n, sv) in v.get("sources").and_then(Value::as_object).into_iter().flatten() {
                    tb.sources.insert(n.clone(), source(n, sv)?);
                }
                for (n, tv) in v.get("tools").and_then(Value::as_object).into_iter().flatten() {
                    tb.tools.push(tool(n, tv)?);
                }
                for (n, list) in v.get("toolsets").and_then(Value::as_object).into_iter().flatten() {
                    tb.toolsets.insert(n.clone(), list.as_array().map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect()).unwrap_or_default());
                }
            }
        }
    }
    for t in &tb.tools {
        if !tb.sources.contains_key(&t.source) {
            return Err(format!("tool `{}`: source `{}` is not defined", t.name, t.source));
        }
    }
    for (set, names) in &tb.toolsets {
        if let Some(missing) = names.iter().find(|n| !tb.tools.iter().any(|t| &t.name == *n)) {
            return Err(format!("toolset `{set}`: tool `{missing}` is not defined"));
        }
    }
    Ok(tb)
}

fn schema_of(p: &Param) -> Value {
    let ty = match p.kind.as_str() {
        "float" => "number",
        other => other,
    };
    let mut m = Map::new();
    m.insert("type".into(), json!(ty));
    if !p.description.is_empty() {
        m.insert("description".into(), json!(p.description));
    }
    if let Some(a) = &p.allowed {
        m.insert("enum".into(), Value::Array(a.clone()));
    }
    if let Some(d) = &p.default {
        m.insert("default".into(), d.clone());
    }
    if let Some(v) = &p.min {
        m.insert("minimum".into(), v.clone());
    }
    if let Some(v) = &p.max {
        m.insert("maximum".into(), v.clone());
    }
    if p.kind == "array" {
        let it = match p.items.as_deref() {
            Some("float") => "number",
            Some(t) => t,
            None => "string",
        };
        m.insert("items".into(), json!({"type": it}));
    }
    Value::Object(m)
}

/// The MCP `inputSchema` of a tool.
pub fn input_schema(t: &SqlTool) -> Value {
    let all: Vec<&Param> = t.parameters.iter().chain(&t.template_parameters).collect();
    let props: Map<String, Value> = all.iter().map(|p| (p.name.clone(), schema_of(p))).collect();
    let required: Vec<Value> = all.iter().filter(|p| p.required).map(|p| json!(p.name)).collect();
    json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
}

/// Quotes an identifier for the tool's dialect.
pub fn quote_ident(kind: &str, ident: &str) -> String {
    if kind.starts_with("mysql") {
        format!("`{}`", ident.replace('`', "``"))
    } else {
        format!("\"{}\"", ident.replace('"', "\"\""))
    }
}

/// The statement with template parameters substituted (allow-listed, quoted) and the
/// bound values in placeholder order.
pub fn prepare(t: &SqlTool, args: &Map<String, Value>) -> Result<(String, Vec<Value>), String> {
    let mut sql = t.statement.clone();
    for tp in &t.template_parameters {
        let v = args.get(&tp.name).or(tp.default.as_ref()).ok_or_else(|| format!("`{}` is required", tp.name))?;
        if !tp.allowed.as_ref().is_some_and(|a| a.contains(v)) {
            return Err(format!("`{}`: {v} is not one of the allowed values", tp.name));
        }
        let ident = quote_ident(&t.kind, v.as_str().unwrap_or(&v.to_string()));
        for pat in [format!("{{{{.{}}}}}", tp.name), format!("{{{{ .{} }}}}", tp.name)] {
            sql = sql.replace(&pat, &ident);
        }
    }
    let params = t.parameters.iter().map(|p| args.get(&p.name).or(p.default.as_ref()).cloned().unwrap_or(Value::Null)).collect();
    Ok((sql, params))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NESTED: &str = r#"
sources:
  my-pg:
    kind: postgres
    host: 127.0.0.1
    port: 5432
    database: test
    user: postgres
    password: ${TOOLBOX_TEST_PW:p@ss}
tools:
  search-hotels:
    kind: postgres-sql
    source: my-pg
    description: Search hotels by name.
    parameters:
      - {name: name, type: string, description: Hotel name}
      - {name: limit, type: integer, default: 10, minValue: 1, maxValue: 100}
    statement: SELECT * FROM hotels WHERE name ILIKE '%' || $1 || '%' LIMIT $2
  by-table:
    kind: postgres-sql
    source: my-pg
    description: Count rows.
    templateParameters:
      - {name: table, type: string, allowedValues: [hotels, bookings]}
    statement: SELECT COUNT(*) FROM {{.table}}
toolsets:
  hotels: [search-hotels]
"#;

    const FLAT: &str = r#"
kind: source
name: lite
type: sqlite
database: /tmp/x.db
---
kind: tool
name: list-things
type: sqlite-sql
source: lite
description: things
parameters:
  - {name: tag, type: string, allowedValues: [a, b]}
statement: SELECT * FROM things WHERE tag = ?
---
kind: toolset
name: basic
tools: [list-things]
"#;

    #[test]
    fn both_forms_parse() {
        let tb = parse(NESTED).unwrap();
        assert_eq!(tb.sources["my-pg"].url, "postgres://postgres:p%40ss@127.0.0.1:5432/test");
        assert_eq!(tb.tools.len(), 2);
        assert_eq!(tb.toolsets["hotels"], ["search-hotels"]);
        let schema = input_schema(&tb.tools[0]);
        assert_eq!(schema["required"], json!(["name"]));
        assert_eq!(schema["properties"]["limit"]["maximum"], 100);
        let tb = parse(FLAT).unwrap();
        assert_eq!(tb.sources["lite"].url, "sqlite:///tmp/x.db");
        assert_eq!(tb.tools[0].parameters[0].allowed, Some(vec![json!("a"), json!("b")]));
        assert_eq!(tb.toolsets["basic"], ["list-things"]);
    }

    #[test]
    fn template_parameters_only_take_allowed_identifiers() {
        let tb = parse(NESTED).unwrap();
        let t = &tb.tools[1];
        let args = |v: Value| v.as_object().cloned().unwrap();
        assert_eq!(prepare(t, &args(json!({"table": "hotels"}))).unwrap().0, "SELECT COUNT(*) FROM \"hotels\"");
        assert!(prepare(t, &args(json!({"table": "pg_authid; --"}))).is_err());
        let bad = NESTED.replace("allowedValues: [hotels, bookings]", "description: any");
        assert!(parse(&bad).unwrap_err().contains("allowedValues"));
    }

    #[test]
    fn unknown_kinds_and_dangling_references_are_errors() {
        assert!(parse(&NESTED.replace("kind: postgres-sql", "kind: postgres-execute-sql")).is_err());
        assert!(parse(&NESTED.replace("hotels: [search-hotels]", "hotels: [nope]")).is_err());
    }
}
