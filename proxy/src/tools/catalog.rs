//! A server's tools prepared for the hot path: compiled argument validators and a name
//! index, built once per config snapshot.

use std::collections::HashMap;

use serde_json::Value;
use thiserror::Error;

use super::ToolDef;

/// Why a tool list could not be prepared.
#[derive(Debug, Error)]
pub enum CatalogError {
    /// Two tools share a name.
    #[error("duplicate tool name `{0}`")]
    DuplicateName(String),
    /// A name does not match `^[A-Za-z0-9_.-]{1,128}$`.
    #[error("invalid tool name `{0}`: names must be 1-128 characters of A-Z a-z 0-9 _ . -")]
    InvalidName(String),
    /// An `inputSchema` is not an object schema or does not compile.
    #[error("tool `{tool}`: invalid inputSchema: {message}")]
    InvalidSchema {
        /// The tool.
        tool: String,
        /// What is wrong.
        message: String,
    },
}

/// One tool with its compiled validator.
pub struct CatalogEntry {
    /// The definition served by `tools/list`.
    pub def: ToolDef,
    validator: jsonschema::Validator,
}

impl CatalogEntry {
    /// Checks arguments against `inputSchema`; on failure returns a message naming each
    /// offending field and the rule it broke.
    pub fn validate(&self, args: &Value) -> Result<(), String> {
        // Valid arguments are the rule: `is_valid` stops at the first failure and builds no
        // errors; only invalid ones are walked again for the message.
        if self.validator.is_valid(args) {
            return Ok(());
        }
        let mut problems: Vec<String> = Vec::new();
        for err in self.validator.iter_errors(args).take(8) {
            let path = err.instance_path().to_string();
            let field = if path.is_empty() { "arguments".to_string() } else { format!("`{}`", path.trim_start_matches('/').replace('/', ".")) };
            problems.push(format!("{field}: {err} (rule: {})", err.kind().keyword()));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!("invalid arguments for tool `{}`: {}", self.def.name, problems.join("; ")))
        }
    }
}

/// A tool's identity on its route: what the pipeline and metrics hold a tool by. Today the
/// tool's position in the catalog (and in its server's `tools()`); named so that a later
/// catalog (providers and views) can change what it stands for without touching its users.
/// Only a [`Catalog`] mints one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ToolRef(usize);

impl ToolRef {
    /// The tool's position in its server's `tools()`, as `ToolServer::call` takes it.
    pub fn index(self) -> usize {
        self.0
    }
}

/// The tools of one server, in order, with a name index.
pub struct Catalog {
    entries: Vec<CatalogEntry>,
    /// foldhash: the keys are configured names, so no request can flood the map.
    by_name: HashMap<String, usize, foldhash::fast::RandomState>,
}

/// Whether `name` is a valid MCP tool name.
pub fn valid_tool_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 128 && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl Catalog {
    /// Validates names and compiles every `inputSchema`.
    pub fn new(defs: &[ToolDef]) -> Result<Catalog, CatalogError> {
        let mut entries = Vec::with_capacity(defs.len());
        let mut by_name = HashMap::with_capacity_and_hasher(defs.len(), foldhash::fast::RandomState::default());
        for (i, def) in defs.iter().enumerate() {
            if !valid_tool_name(&def.name) {
                return Err(CatalogError::InvalidName(def.name.clone()));
            }
            if by_name.insert(def.name.clone(), i).is_some() {
                return Err(CatalogError::DuplicateName(def.name.clone()));
            }
            if def.input_schema.get("type").and_then(Value::as_str) != Some("object") {
                return Err(CatalogError::InvalidSchema { tool: def.name.clone(), message: "must be an object schema (`type: object`)".into() });
            }
            let validator = jsonschema::options().should_validate_formats(false).build(&def.input_schema).map_err(|e| CatalogError::InvalidSchema { tool: def.name.clone(), message: e.to_string() })?;
            entries.push(CatalogEntry { def: def.clone(), validator });
        }
        Ok(Catalog { entries, by_name })
    }

    /// All tools in order.
    pub fn entries(&self) -> &[CatalogEntry] {
        &self.entries
    }

    /// Looks a tool up by name.
    pub fn find(&self, name: &str) -> Option<(ToolRef, &CatalogEntry)> {
        self.by_name.get(name).map(|&i| (ToolRef(i), &self.entries[i]))
    }

    /// Number of tools.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no tools.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
