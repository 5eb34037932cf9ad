//! Google MCP Toolbox `tools.yaml`, accepted unchanged in both forms: the legacy nested
//! maps (`sources:` / `tools:` / `toolsets:`, `kind: postgres-sql`) and the flat
//! multi-document form (`kind: source|tool|toolset` or their plurals, `type: postgres-sql`),
//! with `${VAR}`, `${VAR:default}` and `${VAR:?message}` substitution.
//!
//! Reading is strict: every key of a source, tool, parameter or toolset is one the gateway
//! acts on, or the load fails naming the key and where it is (see [`keys`]). Gateway
//! extensions are marked as such in docs/DATABASE.md.

mod keys;
mod params;
mod sources;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Map, Value};

pub use params::{Escape, Match, Param, Rules};
pub use sources::Source;

use super::source::EngineKind;
use super::DbLimits;
use crate::config::{Dur, Size};
use crate::tools::ToolAnnotations;

/// The tool kinds served: one fixed statement with bound parameters.
const TOOL_KINDS: [&str; 3] = ["postgres-sql", "mysql-sql", "sqlite-sql"];

/// Keys of a SQL tool (besides `kind`/`type` and `name`); `maxRows` and
/// `maxResponseBytes` are gateway extensions.
const TOOL_KEYS: [&str; 8] = ["source", "description", "statement", "parameters", "templateParameters", "annotations", "maxRows", "maxResponseBytes"];

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
    /// Values written into the statement as `{{.name}}`, from an allow-list.
    pub template_parameters: Vec<Param>,
    /// The statement.
    pub statement: String,
    /// The file's hints, as given (see [`SqlTool::annotations_for`] for what is served).
    pub annotations: Option<ToolAnnotations>,
    /// Gateway extension: this tool's row cap instead of the server's.
    pub max_rows: Option<usize>,
    /// Gateway extension: this tool's response-size cap instead of the server's.
    pub max_response_bytes: Option<usize>,
    /// The source's `queryTimeout` (MySQL), which may only shorten the server's statement
    /// timeout.
    pub statement_timeout: Option<Duration>,
}

impl SqlTool {
    /// The caps this tool runs under. Its own `maxRows` / `maxResponseBytes` replace the
    /// server's, lower or higher: the tools file is as trusted as the config that names
    /// it, and a report tool may need more rows than the instance `query` tool should
    /// return. The statement timeout stays the server's and can only get shorter (by the
    /// source's `queryTimeout`), so no tool holds a connection longer than the server allows.
    pub fn limits(&self, server: &DbLimits) -> DbLimits {
        DbLimits {
            statement_timeout: Dur(self.statement_timeout.map_or(server.statement_timeout.0, |t| t.min(server.statement_timeout.0))),
            max_rows: self.max_rows.unwrap_or(server.max_rows),
            max_response_bytes: self.max_response_bytes.map_or(server.max_response_bytes, Size),
        }
    }

    /// The hints served for this tool. On a read-only server the statement runs in a
    /// read-only transaction, so `readOnlyHint` is true whatever the file says (a tool must
    /// never claim to write less than it may, and here it cannot write at all). On a
    /// read-write server the file's hints are taken, each missing one defaulting as for any
    /// custom tool: may write, destructive, closed world.
    pub fn annotations_for(&self, read_only_server: bool) -> ToolAnnotations {
        let file = self.annotations.clone().unwrap_or_default();
        let read_only = read_only_server || file.read_only_hint == Some(true);
        ToolAnnotations {
            title: file.title,
            read_only_hint: Some(read_only),
            // Meaningful only for a tool that may write.
            destructive_hint: if read_only { None } else { file.destructive_hint.or(Some(true)) },
            idempotent_hint: file.idempotent_hint,
            open_world_hint: file.open_world_hint.or(Some(false)),
        }
    }
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

/// Toolbox substitution: `${VAR}`, `${VAR:default}`, and (a gateway extension)
/// `${VAR:?message}`, which fails the load with the message when `VAR` is unset or empty.
pub fn substitute(text: &str) -> Result<String, String> {
    // Toolbox writes defaults with one colon; the config expander wants `:-`, and reads
    // `:?` itself.
    let normalized = regex::Regex::new(r"\$\{([A-Za-z_][A-Za-z0-9_]*):([^-?}][^}]*|)\}").map_err(|e| e.to_string())?.replace_all(text, "$${$1:-$2}");
    crate::config::env_expand(&normalized)
}

/// Toolbox's resource kinds the gateway does not serve, in either spelling.
const UNSUPPORTED_KINDS: [&str; 5] = ["authService", "authSource", "embeddingModel", "prompt", "promptset"];

/// Why a construct the gateway does not serve is refused.
const NOT_SERVED: &str = "the gateway serves sources, SQL tools and toolsets";

fn unsupported_kind(kind: &str) -> bool {
    UNSUPPORTED_KINDS.contains(&kind.strip_suffix('s').unwrap_or(kind))
}

/// Parses a Toolbox file (after substitution).
pub fn parse(text: &str) -> Result<Toolbox, String> {
    let text = substitute(text)?;
    let mut tb = Toolbox::default();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v: Value = serde::Deserialize::deserialize(doc).map_err(|e| e.to_string())?;
        match v {
            Value::Null => continue,
            Value::Object(doc) => match doc.get("kind") {
                Some(Value::String(kind)) => tb.add_flat(kind, &doc)?,
                Some(_) => return Err("a document's `kind` must be a string".into()),
                None => tb.add_nested(&doc)?,
            },
            _ => return Err("every document of a Toolbox file must be a mapping".into()),
        }
    }
    tb.link()?;
    Ok(tb)
}

/// A construct's body without the keys that place it, and its type. Flat form: `kind`
/// says source/tool and `type` gives the type. Nested form: `kind` (legacy) or `type` (as
/// Toolbox itself converts it) gives the type, not both.
fn body_and_type(v: &Map<String, Value>, place: &str, flat: bool) -> Result<(Map<String, Value>, String), String> {
    let ty = match (flat, v.get("kind"), v.get("type")) {
        (true, _, t) => t,
        (false, Some(_), Some(_)) => return Err(format!("{place}: give `kind` or `type`, not both")),
        (false, k, t) => k.or(t),
    };
    let ty = match ty {
        Some(Value::String(s)) => s.clone(),
        None => String::new(),
        Some(_) => return Err(format!("{place}: `type` must be a string")),
    };
    let placing: &[&str] = if flat { &["kind", "name", "type"] } else { &["kind", "type"] };
    let body = v.iter().filter(|(k, _)| !placing.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
    Ok((body, ty))
}

impl Toolbox {
    fn add_source(&mut self, name: &str, v: &Map<String, Value>, flat: bool) -> Result<(), String> {
        let (body, ty) = body_and_type(v, &format!("source `{name}`"), flat)?;
        let s = sources::parse(name, &ty, &body)?;
        if self.sources.insert(name.to_string(), s).is_some() {
            return Err(format!("source `{name}` is defined twice"));
        }
        Ok(())
    }

    fn add_tool(&mut self, name: &str, v: &Map<String, Value>, flat: bool) -> Result<(), String> {
        let (body, ty) = body_and_type(v, &format!("tool `{name}`"), flat)?;
        let t = tool(name, &ty, &body)?;
        if self.tools.iter().any(|o| o.name == t.name) {
            return Err(format!("tool `{name}` is defined twice"));
        }
        self.tools.push(t);
        Ok(())
    }

    fn add_toolset(&mut self, name: &str, tools: &Value) -> Result<(), String> {
        let at = format!("toolset `{name}`");
        let list = tools.as_array().ok_or_else(|| format!("{at}: must be a list of tool names"))?;
        let names = list.iter().map(|t| t.as_str().map(str::to_owned).ok_or_else(|| format!("{at}: {t} is not a tool name"))).collect::<Result<Vec<_>, _>>()?;
        if self.toolsets.insert(name.to_string(), names).is_some() {
            return Err(format!("toolset `{name}` is defined twice"));
        }
        Ok(())
    }

    /// One document of the flat form: `kind`, `name`, then the construct.
    fn add_flat(&mut self, kind: &str, doc: &Map<String, Value>) -> Result<(), String> {
        let name = match doc.get("name") {
            Some(Value::String(n)) => n.clone(),
            _ => return Err(format!("a `kind: {kind}` document needs a `name`")),
        };
        match kind {
            "source" | "sources" => self.add_source(&name, doc, true),
            "tool" | "tools" => self.add_tool(&name, doc, true),
            "toolset" | "toolsets" => {
                let at = format!("toolset `{name}`");
                let body: Map<String, Value> = doc.iter().filter(|(k, _)| !matches!(k.as_str(), "kind" | "name")).map(|(k, v)| (k.clone(), v.clone())).collect();
                keys::check(&body, &["tools"], &at)?;
                self.add_toolset(&name, body.get("tools").unwrap_or(&Value::Null))
            }
            other if unsupported_kind(other) => Err(format!("{other} `{name}` is not supported: {NOT_SERVED}")),
            other => Err(format!("`{name}`: unknown kind `{other}` (source, tool, toolset)")),
        }
    }

    /// A document of the legacy form: maps of sources, tools and toolsets.
    fn add_nested(&mut self, doc: &Map<String, Value>) -> Result<(), String> {
        for (section, entries) in doc {
            if !matches!(section.as_str(), "sources" | "tools" | "toolsets") {
                if !unsupported_kind(section) {
                    return Err(format!("unknown section `{section}` (sources, tools, toolsets)"));
                }
                if keys::is_empty(entries) {
                    continue;
                }
                return Err(format!("`{section}` is not supported: {NOT_SERVED}"));
            }
            let entries = match entries {
                Value::Null => continue,
                Value::Object(m) => m,
                _ => return Err(format!("`{section}` must be a mapping of names")),
            };
            for (name, v) in entries {
                let body = || v.as_object().ok_or_else(|| format!("{section} `{name}`: must be a mapping"));
                match section.as_str() {
                    "sources" => self.add_source(name, body()?, false)?,
                    "tools" => self.add_tool(name, body()?, false)?,
                    _ => self.add_toolset(name, v)?,
                }
            }
        }
        Ok(())
    }

    /// Checks every reference once all documents are read, and hands each tool what it
    /// takes from its source.
    fn link(&mut self) -> Result<(), String> {
        for t in &mut self.tools {
            let s = self.sources.get(&t.source).ok_or_else(|| format!("tool `{}`: source `{}` is not defined", t.name, t.source))?;
            let fits = match t.kind.as_str() {
                "postgres-sql" => s.engine == EngineKind::Postgres,
                "mysql-sql" => matches!(s.engine, EngineKind::Mysql | EngineKind::Mariadb),
                _ => s.engine == EngineKind::Sqlite,
            };
            if !fits {
                return Err(format!("tool `{}`: a `{}` tool cannot use source `{}` ({:?})", t.name, t.kind, t.source, s.engine));
            }
            t.statement_timeout = s.query_timeout;
        }
        for (set, names) in &self.toolsets {
            if let Some(missing) = names.iter().find(|n| !self.tools.iter().any(|t| &t.name == *n)) {
                return Err(format!("toolset `{set}`: tool `{missing}` is not defined"));
            }
        }
        Ok(())
    }
}

fn tool(name: &str, kind: &str, body: &Map<String, Value>) -> Result<SqlTool, String> {
    let at = format!("tool `{name}`");
    if !TOOL_KINDS.contains(&kind) {
        return Err(format!("{at}: {}", unsupported_tool_kind(kind)));
    }
    keys::check(body, &TOOL_KEYS, &at)?;
    let list = |key: &str, template: bool| keys::list(body, key, &at)?.iter().map(|p| params::parse(p, &at, template)).collect::<Result<Vec<_>, _>>();
    let t = SqlTool {
        name: name.to_string(),
        kind: kind.to_string(),
        source: keys::required_text(body, "source", &at)?,
        description: keys::text(body, "description", &at)?.unwrap_or_default(),
        parameters: list("parameters", false)?,
        template_parameters: list("templateParameters", true)?,
        statement: keys::required_text(body, "statement", &at)?,
        annotations: annotations(body, &at)?,
        max_rows: max_rows(body, &at)?,
        max_response_bytes: max_response_bytes(body, &at)?,
        statement_timeout: None,
    };
    check_names(&t)?;
    check_escapes(&t)?;
    pieces(&t.statement, &t.template_parameters).map_err(|e| format!("{at}: statement: {e}"))?;
    Ok(t)
}

fn unsupported_tool_kind(kind: &str) -> String {
    if kind.is_empty() {
        "missing `type`".into()
    } else if kind.ends_with("-execute-sql") {
        format!("kind `{kind}` (SQL chosen by the caller) is not supported as a custom tool: the server's own `query` tool (and `execute` with `access: read-write`) does this once a `source:` is set")
    } else {
        format!("kind `{kind}` is not supported ({})", TOOL_KINDS.join(", "))
    }
}

/// Parameter names are the tool's argument names, so they must be unique across both lists.
fn check_names(t: &SqlTool) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for p in t.parameters.iter().chain(&t.template_parameters) {
        if !seen.insert(p.name.as_str()) {
            return Err(format!("tool `{}`: parameter `{}` is declared twice", t.name, p.name));
        }
    }
    Ok(())
}

/// An `escape` the tool's database cannot read would only fail at every call.
fn check_escapes(t: &SqlTool) -> Result<(), String> {
    for p in &t.template_parameters {
        let refused = match (t.kind.as_str(), p.escape) {
            ("postgres-sql", Some(e @ (Escape::Backticks | Escape::SquareBrackets))) => Some(e),
            ("mysql-sql", Some(e @ Escape::SquareBrackets)) => Some(e),
            _ => None,
        };
        if let Some(e) = refused {
            return Err(format!("tool `{}`, template parameter `{}`: escape {e:?} is not SQL that {} reads", t.name, p.name, t.kind.trim_end_matches("-sql")));
        }
    }
    Ok(())
}

/// Toolbox's hints (`readOnlyHint`, `destructiveHint`, `idempotentHint`,
/// `openWorldHint`) and, as a gateway extension, MCP's `title`.
fn annotations(body: &Map<String, Value>, at: &str) -> Result<Option<ToolAnnotations>, String> {
    let Some(a) = keys::mapping(body, "annotations", at)? else { return Ok(None) };
    let place = format!("{at}, annotations");
    keys::check(a, &["readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint", "title"], &place)?;
    serde_json::from_value(Value::Object(a.clone())).map(Some).map_err(|e| format!("{place}: {e}"))
}

fn max_rows(body: &Map<String, Value>, at: &str) -> Result<Option<usize>, String> {
    match body.get("maxRows") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64().and_then(|n| usize::try_from(n).ok()).filter(|n| *n > 0) {
            Some(n) => Ok(Some(n)),
            None => Err(format!("{at}: `maxRows` must be a positive whole number")),
        },
    }
}

fn max_response_bytes(body: &Map<String, Value>, at: &str) -> Result<Option<usize>, String> {
    let size = match body.get("maxResponseBytes") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_u64().and_then(|n| usize::try_from(n).ok()).ok_or_else(|| format!("{n} is not a size"))?,
        Some(Value::String(s)) => crate::config::units::parse_size(s)?,
        Some(v) => return Err(format!("{at}: `maxResponseBytes` {v} is not a size such as 64KiB")),
    };
    (size > 0).then_some(Some(size)).ok_or_else(|| format!("{at}: `maxResponseBytes` must be positive"))
}

/// A piece of a statement: its own text, or a `{{.name}}` reference.
enum Piece<'a> {
    Text(&'a str),
    Ref(&'a Param),
}

/// Splits a statement at its `{{.name}}` references. Each must name a template
/// parameter; any other `{{…}}` (Go template actions such as `{{array .cols}}`) is refused
/// when the tool has template parameters, and is plain SQL text (a PostgreSQL array literal
/// `'{{1,2},{3,4}}'`) when it has none.
fn pieces<'a>(statement: &'a str, template: &'a [Param]) -> Result<Vec<Piece<'a>>, String> {
    let mut out = Vec::new();
    let mut rest = statement;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else { break };
        let action = &rest[start + 2..start + len];
        let name = action.trim().strip_prefix('.').filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        match (name, template.is_empty()) {
            (Some(n), _) => {
                let p = template.iter().find(|p| p.name == n).ok_or_else(|| format!("`{{{{{action}}}}}` names no template parameter"))?;
                out.push(Piece::Text(&rest[..start]));
                out.push(Piece::Ref(p));
            }
            (None, false) => return Err(format!("`{{{{{action}}}}}` is not supported (only `{{{{.name}}}}` of a template parameter)")),
            (None, true) => out.push(Piece::Text(&rest[..start + len + 2])),
        }
        rest = &rest[start + len + 2..];
    }
    out.push(Piece::Text(rest));
    Ok(out)
}

/// The JSON Schema of one parameter.
pub fn schema_of(p: &Param) -> Value {
    params::schema(p)
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
        Escape::Backticks.quote(ident)
    } else {
        Escape::DoubleQuotes.quote(ident)
    }
}

/// A call's value for `p`: the argument, else the default; an explicit null counts as
/// absent, as in Toolbox.
fn value_of<'a>(p: &'a Param, args: &'a Map<String, Value>) -> Option<&'a Value> {
    args.get(&p.name).filter(|v| !v.is_null()).or(p.default.as_ref())
}

/// How a template value is written: a string quoted (by its `escape`, else as the
/// dialect's identifier), a number as itself.
fn template_text(t: &SqlTool, p: &Param, v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(p.escape.map_or_else(|| quote_ident(&t.kind, s), |e| e.quote(s))),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(format!("`{}`: {other} cannot be written into the statement", p.name)),
    }
}

/// The statement with template parameters substituted (allow-listed, quoted) and the
/// bound values in placeholder order. Every value is checked against its parameter's
/// `allowedValues` and `excludedValues` first, so a refused value never reaches the
/// database.
pub fn prepare(t: &SqlTool, args: &Map<String, Value>) -> Result<(String, Vec<Value>), String> {
    let sql = if t.template_parameters.is_empty() {
        t.statement.clone()
    } else {
        let mut sql = String::with_capacity(t.statement.len() + 32);
        for piece in pieces(&t.statement, &t.template_parameters)? {
            match piece {
                Piece::Text(s) => sql.push_str(s),
                Piece::Ref(p) => {
                    let v = value_of(p, args).ok_or_else(|| format!("`{}` is required", p.name))?;
                    params::check(p, v)?;
                    sql.push_str(&template_text(t, p, v)?);
                }
            }
        }
        sql
    };
    let mut values = Vec::with_capacity(t.parameters.len());
    for p in &t.parameters {
        let v = value_of(p, args).cloned().unwrap_or(Value::Null);
        if !v.is_null() {
            params::check(p, &v)?;
        }
        values.push(v);
    }
    Ok((sql, values))
}

#[cfg(test)]
mod tests;
