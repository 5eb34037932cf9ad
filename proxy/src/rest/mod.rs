//! REST tools: the Higress-compatible tool format ([`model`]), its templates, and the
//! runtime that turns a `tools/call` into an upstream HTTP request and the response into a
//! `CallToolResult`.

pub mod model;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{Dur, Size};

/// `type: rest` server settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RestServerConfig {
    /// A Higress REST tool file (relative to the config file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
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

/// Why a REST server could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// Placeholder until the runtime lands.
    #[error("{0}")]
    Other(String),
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

/// A served set of REST tools: implements [`crate::tools::ToolServer`].
pub struct RestServer {
    tools: Vec<crate::tools::ToolDef>,
}

impl RestServer {
    /// Prepares a tool file for serving: parses templates, resolves upstream hosts, builds
    /// input schemas. Fails with a message naming the tool and the construct at fault.
    pub async fn new(
        route: &str,
        file: model::RestToolsFile,
        settings: RestSettings,
        cx: &crate::runtime::BuildContext<'_>,
    ) -> Result<RestServer, RestError> {
        let _ = (route, file, settings, cx);
        Err(RestError::Other("rest servers are not built yet".into()))
    }
}

#[async_trait::async_trait]
impl crate::tools::ToolServer for RestServer {
    fn tools(&self) -> &[crate::tools::ToolDef] {
        &self.tools
    }

    async fn call(
        &self,
        index: usize,
        args: serde_json::Map<String, serde_json::Value>,
        cx: crate::tools::CallContext<'_>,
    ) -> crate::tools::CallOutcome {
        let _ = (index, args, cx);
        crate::tools::CallOutcome::Done(crate::tools::CallToolResult::error("not built yet"))
    }
}

/// Builds the route for a `type: rest` server.
pub async fn build(
    name: &str,
    cfg: &RestServerConfig,
    cx: &crate::runtime::BuildContext<'_>,
) -> Result<Vec<crate::runtime::BuiltRoute>, RestError> {
    let _ = (name, cfg, cx);
    Err(RestError::Other("rest servers are not built yet".into()))
}
