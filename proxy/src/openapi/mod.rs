//! OpenAPI → MCP: loads Swagger 2.0 / OpenAPI 3.0 / 3.1 documents ([`load`]) and converts
//! each operation into a REST tool ([`convert`]) in the [`crate::rest::model`] format,
//! which [`crate::rest::RestServer`] serves. `mcpgate openapi-to-tools` prints the same
//! conversion as YAML.

pub mod convert;
pub mod load;
pub mod schema;

use std::collections::BTreeMap;
use std::path::Path;

use globset::{Glob, GlobSetBuilder};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{Dur, Size};
use crate::rest::model::RestToolsFile;
use crate::rest::{RestServer, RestSettings};
use crate::runtime::{BuildContext, BuiltRoute};

/// `type: openapi` server settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OpenApiServerConfig {
    /// Path (relative to the config file) or http(s) URL of the document.
    pub spec: String,
    /// Base URL override; otherwise the document's `servers` (or Swagger host/basePath).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Only operations matching any of these become tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<OperationFilter>,
    /// Operations matching any of these do not become tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<OperationFilter>,
    /// Per-operation overrides, keyed by operationId (or generated tool name).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overrides: BTreeMap<String, ToolOverride>,
    /// Upstream credentials by security scheme name (use `${ENV}` references).
    #[serde(default, skip_serializing)]
    pub credentials: BTreeMap<String, String>,
    /// Whole-call timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
    /// Connect timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Dur>,
    /// Response cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response_bytes: Option<Size>,
}

/// Selects operations by operationId, tag or path glob (`/pets/*`, `/admin/**`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OperationFilter {
    /// operationIds (or generated tool names).
    #[serde(default)]
    pub operations: Vec<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Path globs.
    #[serde(default)]
    pub paths: Vec<String>,
}

/// Changes to one generated tool.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ToolOverride {
    /// New tool name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Display title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// New description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Arguments always sent with these values and hidden from the client.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fixed_args: BTreeMap<String, Value>,
}

/// Why an OpenAPI server could not be built.
#[derive(Debug, thiserror::Error)]
pub enum OpenApiError {
    /// The document cannot be read.
    #[error("cannot read OpenAPI document `{location}`: {message}")]
    Read {
        /// Path.
        location: String,
        /// Cause.
        message: String,
    },
    /// The document cannot be fetched.
    #[error("cannot fetch OpenAPI document `{location}`: {message}")]
    Fetch {
        /// URL.
        location: String,
        /// Cause.
        message: String,
    },
    /// The document is neither JSON nor YAML.
    #[error("OpenAPI document `{location}` is not valid JSON or YAML: {message}")]
    Parse {
        /// Path or URL.
        location: String,
        /// Cause.
        message: String,
    },
    /// The document is not Swagger 2.0 / OpenAPI 3.x.
    #[error("not an OpenAPI document: {0}")]
    NotOpenApi(String),
    /// A filter or override is invalid.
    #[error("{0}")]
    Config(String),
    /// The generated tools cannot be served.
    #[error(transparent)]
    Rest(#[from] crate::rest::RestError),
}

impl OpenApiError {
    /// The URL that could not be fetched, when that is the error.
    pub fn unfetched_url(&self) -> Option<&str> {
        match self {
            OpenApiError::Fetch { location, .. } => Some(location),
            _ => None,
        }
    }
}

/// An operation that did not become a tool, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    /// `METHOD /path`.
    pub operation: String,
    /// Why.
    pub reason: String,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.operation, self.reason)
    }
}

/// A converted document.
pub struct Conversion {
    /// The tools, in the REST tool file format.
    pub file: RestToolsFile,
    /// Operations that did not become tools.
    pub skipped: Vec<Skipped>,
    /// Tools that are served but whose calls go without the credentials they need (see
    /// [`convert::Operation::auth_warning`]).
    pub warnings: Vec<String>,
}

/// Loads and converts a document with no filters.
pub async fn convert_source(source: &str, base_dir: &Path, base_url: Option<&str>) -> Result<Conversion, OpenApiError> {
    let docs = load::Documents::load(source, base_dir).await?;
    let c = convert::convert(&docs, base_url, &server_name(&docs, source))?;
    let warnings = c.operations.iter().filter_map(convert::Operation::auth_warning).collect();
    Ok(Conversion { file: RestToolsFile { server: c.server, tools: c.operations.into_iter().map(|o| o.tool).collect(), ..Default::default() }, skipped: c.skipped, warnings })
}

fn server_name(docs: &load::Documents, source: &str) -> String {
    docs.root.pointer("/info/title").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| source.to_string())
}

/// Renders a tool file as YAML.
pub fn to_yaml(file: &RestToolsFile) -> String {
    serde_yaml::to_string(file).unwrap_or_default()
}

fn matcher(f: &OperationFilter) -> Result<impl Fn(&convert::Operation) -> bool + '_, OpenApiError> {
    let mut b = GlobSetBuilder::new();
    for p in &f.paths {
        b.add(Glob::new(p).map_err(|e| OpenApiError::Config(format!("invalid path glob `{p}`: {e}")))?);
    }
    let globs = b.build().map_err(|e| OpenApiError::Config(e.to_string()))?;
    Ok(move |o: &convert::Operation| o.operation_id.as_ref().is_some_and(|id| f.operations.contains(id)) || f.operations.contains(&o.tool.name) || o.tags.iter().any(|t| f.tags.contains(t)) || globs.is_match(&o.path))
}

/// Applies include/exclude and overrides; returns the operations kept, their tools changed.
pub fn select(cfg: &OpenApiServerConfig, operations: Vec<convert::Operation>) -> Result<Vec<convert::Operation>, OpenApiError> {
    let include = cfg.include.as_ref().map(matcher).transpose()?;
    let exclude = cfg.exclude.as_ref().map(matcher).transpose()?;
    let mut kept = Vec::new();
    let mut used_overrides = Vec::new();
    for mut op in operations {
        if include.as_ref().is_some_and(|m| !m(&op)) || exclude.as_ref().is_some_and(|m| m(&op)) {
            continue;
        }
        let key = op.operation_id.clone().filter(|id| cfg.overrides.contains_key(id)).unwrap_or_else(|| op.tool.name.clone());
        let note = op.auth_note();
        let tool = &mut op.tool;
        if let Some(o) = cfg.overrides.get(&key) {
            used_overrides.push(key.clone());
            if let Some(n) = &o.name {
                tool.name = n.clone();
            }
            if o.title.is_some() {
                tool.title = o.title.clone();
            }
            if let Some(d) = &o.description {
                // The new text replaces the document's; the credentials note stays true.
                tool.description = match &note {
                    Some(n) => format!("{d}\n\n{n}"),
                    None => d.clone(),
                };
            }
            for (arg, value) in &o.fixed_args {
                let a = tool.args.iter_mut().find(|a| &a.name == arg).ok_or_else(|| OpenApiError::Config(format!("overrides.{key}.fixed_args: the tool has no argument `{arg}`")))?;
                a.fixed = Some(value.clone());
            }
        }
        kept.push(op);
    }
    for k in cfg.overrides.keys().filter(|k| !used_overrides.contains(k)) {
        log::warn!("overrides.{k}: no operation with that operationId or tool name was selected");
    }
    Ok(kept)
}

/// Builds the route for a `type: openapi` server.
pub async fn build(name: &str, cfg: &OpenApiServerConfig, cx: &BuildContext<'_>) -> Result<Vec<BuiltRoute>, OpenApiError> {
    let docs = load::Documents::load_with(&cfg.spec, cx.base_dir, load::Limits::from_upstream(cx.upstream)).await?;
    let converted = convert::convert(&docs, cfg.base_url.as_deref(), name)?;
    if !converted.skipped.is_empty() {
        log::info!("server `{name}`: {} operation(s) skipped (reasons logged above)", converted.skipped.len());
    }
    let selected = select(cfg, converted.operations)?;
    let warnings: Vec<String> = selected.iter().filter_map(convert::Operation::auth_warning).collect();
    for w in &warnings {
        log::warn!("server `{name}`: {w}");
    }
    let file = RestToolsFile { server: converted.server, tools: selected.into_iter().map(|o| o.tool).collect(), ..Default::default() };
    let settings = RestSettings::new(&cfg.credentials, cfg.timeout, cfg.connect_timeout, cfg.max_response_bytes, cx);
    let server = RestServer::new(name, file, settings, cx).await?.with_warnings(warnings);
    let description = docs.root.pointer("/info/title").and_then(Value::as_str).map(str::to_owned);
    Ok(vec![BuiltRoute { name: name.to_string(), description, server: std::sync::Arc::new(server) }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ops() -> Vec<convert::Operation> {
        let doc = json!({"openapi": "3.0.0", "servers": [{"url": "http://api"}], "paths": {
            "/pets": {"get": {"operationId": "listPets", "tags": ["pets"], "parameters": [{"name": "status", "in": "query", "schema": {"type": "string"}}], "responses": {}}},
            "/pets/{id}": {"delete": {"operationId": "deletePet", "tags": ["pets"], "responses": {}}},
            "/admin/users": {"get": {"operationId": "listUsers", "tags": ["admin"], "responses": {}}}}});
        convert::convert(&load::Documents::from_value(doc, Path::new("/x.json")), None, "t").unwrap().operations
    }

    fn cfg(yaml: &str) -> OpenApiServerConfig {
        serde_yaml::from_str(&format!("spec: x\n{yaml}")).unwrap()
    }

    fn names(ops: &[convert::Operation]) -> Vec<&str> {
        ops.iter().map(|o| o.tool.name.as_str()).collect()
    }

    #[test]
    fn include_and_exclude_by_tag_operation_and_path() {
        assert_eq!(names(&select(&cfg("include: {tags: [pets]}"), ops()).unwrap()), ["listPets", "deletePet"]);
        assert_eq!(names(&select(&cfg("exclude: {paths: [\"/admin/**\"]}"), ops()).unwrap()), ["listPets", "deletePet"]);
        assert_eq!(names(&select(&cfg("include: {tags: [pets]}\nexclude: {operations: [deletePet]}"), ops()).unwrap()), ["listPets"]);
        assert!(select(&cfg("include: {paths: [\"[\"]}"), ops()).is_err());
    }

    #[test]
    fn overrides_rename_describe_and_fix_arguments() {
        let tools: Vec<_> = select(&cfg("overrides: {listPets: {name: pets, description: All pets, fixed_args: {status: sold}}}"), ops()).unwrap().into_iter().map(|o| o.tool).collect();
        let t = &tools[0];
        assert_eq!((t.name.as_str(), t.description.as_str()), ("pets", "All pets"));
        assert_eq!(t.args[0].fixed, Some(json!("sold")));
        let def = &crate::rest::server::tool_defs(&RestToolsFile { tools: tools.clone(), ..Default::default() })[0];
        assert!(def.input_schema["properties"].get("status").is_none(), "fixed arguments are hidden");
        assert!(select(&cfg("overrides: {listPets: {fixed_args: {nope: 1}}}"), ops()).is_err());
    }
}
