//! Database → MCP: instance tools and custom SQL tools over PostgreSQL, MySQL/MariaDB and
//! SQLite.

use serde::{Deserialize, Serialize};

/// `type: database` server settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DatabaseServerConfig {
    /// Connection source.
    pub source: serde_json::Value,
}

/// Why a database server could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// Placeholder until the module lands.
    #[error("{0}")]
    Other(String),
}

/// Builds the routes for a `type: database` server (one, plus one per Toolbox toolset).
/// (An entry whose config is unchanged across a reload is not rebuilt: the snapshot
/// builder reuses its routes and pools.)
pub async fn build(
    name: &str,
    cfg: &DatabaseServerConfig,
    cx: &crate::runtime::BuildContext<'_>,
) -> Result<Vec<crate::runtime::BuiltRoute>, DatabaseError> {
    let _ = (name, cfg, cx);
    Err(DatabaseError::Other("database servers are not built yet".into()))
}
