//! Per-tool rate limits and quotas, keyed by caller × server × tool.
//!
//! Stub: the interface the pipeline uses; the limiters come next.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::auth::{ConsumerConfig, Principal};
use crate::config::Dur;
use crate::tools::{ToolDef, ToolRef};

/// The `quotas:` section: where counters live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaStoreConfig {
    /// `local` (default: this process, exact) or `redis` (shared by every gateway using it).
    #[serde(default)]
    pub backend: Backend,
    /// Redis URL for `backend: redis`.
    #[serde(default, skip_serializing)]
    pub redis: Option<String>,
    /// What a call gets when Redis does not answer within `timeout`: `open` (allowed,
    /// counted in `mcpgate_quota_store_errors_total`) or `closed` (refused).
    #[serde(default)]
    pub on_error: OnError,
    /// Longest wait for Redis per call (default 50ms).
    #[serde(default = "default_timeout")]
    pub timeout: Dur,
}

fn default_timeout() -> Dur {
    Dur(Duration::from_millis(50))
}

impl Default for QuotaStoreConfig {
    fn default() -> Self {
        QuotaStoreConfig { backend: Backend::Local, redis: None, on_error: OnError::Open, timeout: default_timeout() }
    }
}

/// Where counters live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// In this process.
    #[default]
    Local,
    /// In Redis.
    Redis,
}

/// What happens when the shared store fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Allow the call.
    #[default]
    Open,
    /// Refuse the call.
    Closed,
}

/// One entry of a server's `access.quotas`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaRuleConfig {
    /// Tool names or globs (default every tool); each tool has its own counter.
    #[serde(default = "super::every_tool")]
    pub tools: Vec<String>,
    /// Consumers the limit applies to (with `groups`; default every caller), each with its
    /// own counter.
    #[serde(default)]
    pub consumers: Vec<String>,
    /// Groups the limit applies to.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Sustained rate: `10/s`, `600/min`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    /// Calls allowed at once above the rate (default: one second's worth, at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// Fixed-window quota: `1000/hour`, `10000/day`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<String>,
}

/// A call refused by a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaExceeded {
    /// The limit, as configured (`rate 10/s (burst 20) on tool `x``).
    pub limit: String,
    /// When a retry may succeed.
    pub retry_after: Duration,
}

/// The counters of every route (kept across reloads while `quotas:` is unchanged).
pub struct QuotaStore {}

impl QuotaStore {
    /// The store `config` describes.
    pub fn new(_config: &QuotaStoreConfig, _previous: Option<&Arc<QuotaStore>>) -> Arc<Self> {
        Arc::new(QuotaStore {})
    }
}

/// A route's compiled limits.
pub struct RouteQuotas {}

impl RouteQuotas {
    /// No limits.
    pub fn none() -> Self {
        RouteQuotas {}
    }

    /// Compiles a route's `access.quotas`; an error is `[i].field: message`.
    pub fn build(rules: &[QuotaRuleConfig], _tools: &[ToolDef], _consumers: &[ConsumerConfig], _store: &Arc<QuotaStore>, _route: &str) -> Result<Self, String> {
        if rules.is_empty() {
            return Ok(RouteQuotas {});
        }
        Err(": quotas are not available yet".into())
    }

    /// Whether the route has no limits (the pipeline skips the stage).
    pub fn is_empty(&self) -> bool {
        true
    }

    /// Takes one call of `tool` for `principal` from every limit that applies.
    pub async fn take(&self, _principal: Option<&Principal>, _tool: ToolRef) -> Result<(), QuotaExceeded> {
        Ok(())
    }
}
