//! The instance tools of a database server.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use super::engine::{Engine, Rows};
use super::error::CallError;
use super::toolbox::{self, SqlTool};
use super::value::{self, Bound, Kind, RawArgs};
use super::{Access, DbLimits};
use crate::tools::{CallContext, CallOutcome, CallToolResult, Content, ToolAnnotations, ToolDef, ToolServer};

/// A database served as MCP tools: instance tools over one source and/or Toolbox SQL
/// tools over theirs.
pub struct DatabaseServer {
    engine: Option<Arc<Engine>>,
    custom: Vec<(SqlTool, Arc<Engine>)>,
    access: Access,
    limits: DbLimits,
    defs: Vec<ToolDef>,
}

fn rows_schema() -> Value {
    json!({"type": "object", "properties": {
        "columns": {"type": "array", "items": {"type": "string"}},
        "rows": {"type": "array", "items": {"type": "array"}},
        "row_count": {"type": "integer"},
        "truncated": {"type": "boolean"},
        "rows_affected": {"type": "integer"}
    }})
}

fn read_only() -> Option<ToolAnnotations> {
    Some(ToolAnnotations { read_only_hint: Some(true), idempotent_hint: Some(true), open_world_hint: Some(false), ..Default::default() })
}

fn defs(kind: &str, access: Access) -> Vec<ToolDef> {
    let params = json!({"type": "array", "description": format!("Values bound to the statement's placeholders in order ({}); never spliced into the SQL.", if kind == "postgresql" { "$1, $2, …" } else { "?" }), "items": {}});
    let mut out = vec![
        ToolDef {
            name: "list_tables".into(),
            title: Some("List tables".into()),
            description: Some(format!("List the schemas, tables and views of this {kind} database, with a row estimate where the engine keeps one.")),
            input_schema: json!({"type": "object", "properties": {}, "additionalProperties": false}),
            output_schema: Some(rows_schema()),
            annotations: read_only(),
        },
        ToolDef {
            name: "describe_table".into(),
            title: Some("Describe a table".into()),
            description: Some("Columns (type, nullability, default), primary key, foreign keys and indexes of one table.".into()),
            input_schema: json!({"type": "object", "properties": {"table": {"type": "string", "minLength": 1}, "schema": {"type": "string", "description": "Schema (default: public on PostgreSQL, the connection's database on MySQL)"}}, "required": ["table"], "additionalProperties": false}),
            output_schema: Some(json!({"type": "object", "properties": {"table": {"type": "string"}, "columns": {"type": "array"}, "primary_key": {"type": "array"}, "foreign_keys": {"type": "array"}, "indexes": {"type": "array"}}})),
            annotations: read_only(),
        },
        ToolDef {
            name: "query".into(),
            title: Some("Run a read-only query".into()),
            description: Some(format!("Run one read-only SQL statement ({kind} dialect) in a read-only transaction. Writes are refused by the database. Results are capped; `truncated` says when a cap was hit.")),
            input_schema: json!({"type": "object", "properties": {"sql": {"type": "string", "minLength": 1}, "params": params}, "required": ["sql"], "additionalProperties": false}),
            output_schema: Some(rows_schema()),
            annotations: read_only(),
        },
    ];
    if access == Access::ReadWrite {
        out.push(ToolDef {
            name: "execute".into(),
            title: Some("Execute a write".into()),
            description: Some(format!("Run one writing SQL statement ({kind} dialect: INSERT, UPDATE, DELETE, DDL) in its own transaction; returns rows_affected.")),
            input_schema: json!({"type": "object", "properties": {"sql": {"type": "string", "minLength": 1}, "params": params}, "required": ["sql"], "additionalProperties": false}),
            output_schema: Some(rows_schema()),
            annotations: Some(ToolAnnotations { read_only_hint: Some(false), destructive_hint: Some(true), idempotent_hint: Some(false), open_world_hint: Some(false), ..Default::default() }),
        });
    }
    out
}

fn custom_def(t: &SqlTool, access: Access) -> ToolDef {
    // The file's hints, except that a read-only server's tools are read-only (see
    // `SqlTool::annotations_for`).
    let annotations = t.annotations_for(access == Access::ReadOnly);
    ToolDef { name: t.name.clone(), title: annotations.title.clone(), description: Some(t.description.clone()), input_schema: toolbox::input_schema(t), output_schema: Some(rows_schema()), annotations: Some(annotations) }
}

impl DatabaseServer {
    /// A server with instance tools over `engine` (if any) and the given SQL tools.
    pub fn new(engine: Option<Arc<Engine>>, custom: Vec<(SqlTool, Arc<Engine>)>, access: Access, limits: DbLimits) -> Self {
        let mut defs = engine.as_ref().map(|e| self::defs(e.kind(), access)).unwrap_or_default();
        defs.extend(custom.iter().map(|(t, _)| custom_def(t, access)));
        DatabaseServer { engine, custom, access, limits, defs }
    }
}

fn engine_status(e: &Engine) -> Value {
    let mut v = e.account().map(|a| a.status()).unwrap_or_else(|| json!({"account": "not applicable (SQLite: the gateway's own file access; ATTACH, TEMP objects and setting PRAGMAs are denied)"}));
    v["engine"] = json!(e.kind());
    v
}

/// A readable text copy of a result.
fn table_text(rows: &Rows) -> String {
    use std::fmt::Write as _;
    if let Some(n) = rows.rows_affected {
        return format!("{n} row(s) affected");
    }
    let mut out = rows.columns.join(" | ");
    out.push('\n');
    for r in &rows.rows {
        for (i, v) in r.iter().enumerate() {
            if i > 0 {
                out.push_str(" | ");
            }
            match v {
                Value::String(s) => out.push_str(s),
                Value::Null => out.push_str("NULL"),
                // Writing into a String cannot fail.
                other => {
                    let _ = write!(out, "{other}");
                }
            }
        }
        out.push('\n');
    }
    let n = rows.rows.len();
    let _ = write!(out, "({n} row{}{})", if n == 1 { "" } else { "s" }, if rows.truncated { ", truncated: a row or size cap was reached" } else { "" });
    out
}

fn rows_result(r: Result<Rows, CallError>) -> CallToolResult {
    match r {
        Ok(rows) => CallToolResult { content: vec![Content::Text { text: table_text(&rows) }], structured_content: Some(rows.structured()), is_error: false },
        Err(e) => CallToolResult::error(e.to_string()),
    }
}

/// The `params` of a free-SQL call, each as the type that keeps it exact.
fn params(args: &Map<String, Value>, raw: RawArgs<'_>) -> Result<Vec<Bound>, CallError> {
    value::free_params(args.get("params").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default(), raw)
}

/// A custom tool's statement and its parameters bound by their declared types.
fn custom_call(tool: &SqlTool, args: &Map<String, Value>, raw: RawArgs<'_>) -> Result<(String, Vec<Bound>), CallError> {
    let (sql, values) = toolbox::prepare(tool, args).map_err(|e| CallError::Argument(format!("invalid arguments for tool `{}`: {e}", tool.name)))?;
    let bound = tool.parameters.iter().zip(values).map(|(p, v)| value::typed_param(&p.name, v, Kind::of(&p.kind, p.items.as_deref()), raw)).collect::<Result<_, _>>()?;
    Ok((sql, bound))
}

#[async_trait]
impl ToolServer for DatabaseServer {
    fn tools(&self) -> &[ToolDef] {
        &self.defs
    }

    async fn call(&self, index: usize, args: Map<String, Value>, cx: CallContext<'_>) -> CallOutcome {
        let raw = RawArgs(cx.arguments);
        let instance = self.defs.len() - self.custom.len();
        if index >= instance {
            let Some((tool, engine)) = self.custom.get(index - instance) else {
                return CallOutcome::Done(CallToolResult::error("unknown tool"));
            };
            // Read-only servers run custom tools in a read-only transaction as well.
            let r = match custom_call(tool, &args, raw) {
                Ok((sql, params)) => engine.fixed(&sql, &params, &tool.limits(&self.limits), self.access == Access::ReadOnly).await,
                Err(e) => Err(e),
            };
            return CallOutcome::Done(rows_result(r));
        }
        let Some(engine) = &self.engine else {
            return CallOutcome::Done(CallToolResult::error("unknown tool"));
        };
        let name = self.defs.get(index).map(|d| d.name.as_str()).unwrap_or("");
        let sql = args.get("sql").and_then(Value::as_str).unwrap_or("");
        CallOutcome::Done(match name {
            "list_tables" => rows_result(engine.list_tables(&self.limits).await),
            "describe_table" => {
                let table = args.get("table").and_then(Value::as_str).unwrap_or("");
                match engine.describe_table(args.get("schema").and_then(Value::as_str), table, &self.limits).await {
                    Ok(v) => CallToolResult::structured(v),
                    Err(e) => CallToolResult::error(e.to_string()),
                }
            }
            "query" => rows_result(match params(&args, raw) {
                Ok(p) => engine.query(sql, &p, &self.limits).await,
                Err(e) => Err(e),
            }),
            "execute" => rows_result(match params(&args, raw) {
                Ok(p) => engine.execute(sql, &p, &self.limits).await,
                Err(e) => Err(e),
            }),
            _ => CallToolResult::error("unknown tool"),
        })
    }

    fn status(&self) -> Option<Value> {
        let mut sources = Map::new();
        if let Some(e) = &self.engine {
            sources.insert("source".into(), engine_status(e));
        }
        for (t, e) in &self.custom {
            sources.entry(format!("toolbox source `{}`", t.source)).or_insert_with(|| engine_status(e));
        }
        Some(json!({"database": sources}))
    }

    fn instructions(&self) -> Option<&str> {
        Some("Use list_tables and describe_table to learn the schema, then query with one SELECT statement per call; bind values through `params` instead of writing them into the SQL.")
    }
}
