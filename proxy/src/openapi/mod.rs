//! OpenAPI → MCP: loads Swagger 2.0 / OpenAPI 3.0 / 3.1 documents and converts each
//! operation into a REST tool (the [`crate::rest`] format), which the REST runtime serves.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{Dur, Size};

/// `type: openapi` server settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OpenApiServerConfig {
    /// Path (relative to the config file) or http(s) URL of the document.
    pub spec: String,
    /// Base URL override; otherwise the document's `servers` (or Swagger host/basePath).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
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

/// Why an OpenAPI server could not be built.
#[derive(Debug, thiserror::Error)]
pub enum OpenApiError {
    /// Placeholder until the converter lands.
    #[error("{0}")]
    Other(String),
}

/// Builds the route for a `type: openapi` server.
pub async fn build(
    name: &str,
    cfg: &OpenApiServerConfig,
    cx: &crate::runtime::BuildContext<'_>,
) -> Result<Vec<crate::runtime::BuiltRoute>, OpenApiError> {
    let _ = (name, cfg, cx);
    Err(OpenApiError::Other("openapi servers are not built yet".into()))
}

/// An operation that did not become a tool, and why.
#[derive(Debug, Clone)]
pub struct Skipped {
    /// `METHOD /path` or operationId.
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
    pub file: crate::rest::model::RestToolsFile,
    /// Operations that did not become tools.
    pub skipped: Vec<Skipped>,
}

/// Loads and converts a document (placeholder until the converter lands).
pub async fn convert_source(source: &str, base_dir: &std::path::Path, base_url: Option<&str>) -> Result<Conversion, OpenApiError> {
    let _ = (source, base_dir, base_url);
    Err(OpenApiError::Other("the OpenAPI converter is not built yet".into()))
}

/// Renders a tool file as YAML.
pub fn to_yaml(file: &crate::rest::model::RestToolsFile) -> String {
    serde_yaml::to_string(file).unwrap_or_default()
}
