//! REST tools: the Higress-compatible tool format ([`model`]), its templates
//! ([`template`]), and [`RestServer`], which turns a `tools/call` into an upstream HTTP
//! request ([`request`]) and the response into a `CallToolResult` ([`response`]).
//! `type: openapi` servers are converted into this format and served by the same code.

pub mod model;
pub mod request;
pub mod response;
pub mod scrub;
pub mod server;
pub mod template;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::{Dur, Size};
use crate::runtime::{BuildContext, BuiltRoute};

pub use server::RestServer;

/// `type: rest` server settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RestServerConfig {
    /// A Higress REST tool file (relative to the config file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Inline alternative to `file`: the tool file's `server:` section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<model::RestServerSection>,
    /// Inline alternative to `file`: the tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<model::RestTool>>,
    /// Inline alternative to `file`: the tool whitelist.
    #[serde(rename = "allowTools", default, skip_serializing_if = "Option::is_none")]
    pub allow_tools: Option<Vec<String>>,
    /// Upstream credentials by security scheme id (override `defaultCredential`).
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

/// Runtime settings of a REST server (from its config entry, with defaults applied).
#[derive(Debug, Clone)]
pub struct RestSettings {
    /// Upstream credentials by security scheme id.
    pub credentials: BTreeMap<String, String>,
    /// Whole-call timeout.
    pub timeout: std::time::Duration,
    /// Connect timeout.
    pub connect_timeout: std::time::Duration,
    /// Response cap.
    pub max_response_bytes: usize,
}

impl RestSettings {
    /// Settings from per-server overrides and the config's upstream defaults.
    pub fn new(credentials: &BTreeMap<String, String>, timeout: Option<Dur>, connect_timeout: Option<Dur>, max: Option<Size>, cx: &BuildContext<'_>) -> Self {
        RestSettings {
            credentials: credentials.clone(),
            timeout: timeout.unwrap_or(cx.upstream.timeout).0,
            connect_timeout: connect_timeout.unwrap_or(cx.upstream.connect_timeout).0,
            max_response_bytes: max.unwrap_or(cx.upstream.max_response_bytes).0,
        }
    }
}

/// Why a REST server could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// The tool file cannot be read or parsed.
    #[error("tool file `{path}`: {message}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A tool is invalid.
    #[error("server `{route}`, tool `{tool}`: {message}")]
    Tool {
        /// The route.
        route: String,
        /// The tool.
        tool: String,
        /// What is wrong.
        message: String,
    },
    /// A feature of the format that is not served.
    #[error("{0}")]
    Unsupported(String),
    /// The config entry is incomplete.
    #[error("{0}")]
    Config(String),
}

/// Reads a REST tool file (YAML or JSON).
pub fn load_file(path: &Path) -> Result<model::RestToolsFile, RestError> {
    let text = std::fs::read_to_string(path).map_err(|e| RestError::File { path: path.display().to_string(), message: e.to_string() })?;
    serde_yaml::from_str(&text).map_err(|e| RestError::File { path: path.display().to_string(), message: e.to_string() })
}

/// Builds the route for a `type: rest` server.
pub async fn build(name: &str, cfg: &RestServerConfig, cx: &BuildContext<'_>) -> Result<Vec<BuiltRoute>, RestError> {
    let file = match (&cfg.file, &cfg.tools) {
        (Some(_), Some(_)) => return Err(RestError::Config("set either `file` or inline `tools`, not both".into())),
        (Some(f), None) => load_file(&cx.base_dir.join(f))?,
        (None, Some(tools)) => model::RestToolsFile { server: cfg.server.clone().unwrap_or_default(), allow_tools: cfg.allow_tools.clone(), tools: tools.clone(), tool_set: None },
        (None, None) => return Err(RestError::Config("a `type: rest` server needs `file` (a REST tool YAML) or inline `tools`".into())),
    };
    let settings = RestSettings::new(&cfg.credentials, cfg.timeout, cfg.connect_timeout, cfg.max_response_bytes, cx);
    let server = RestServer::new(name, file, settings, cx).await?;
    Ok(vec![BuiltRoute { name: name.to_string(), description: None, server: std::sync::Arc::new(server) }])
}
