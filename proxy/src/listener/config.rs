//! The `connections:` section of the config.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ListenerLimits;
use crate::config::units::Dur;

/// Connection limits and deadlines of the MCP listener(s). A reload applies them to
/// connections accepted after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionsConfig {
    /// Connections open at once on each MCP listener (default 10000); beyond it a new
    /// connection gets `503` and is closed. Needs about two open files per connection.
    #[serde(default = "default_max")]
    pub max: usize,
    /// Connections open at once from one client IP (default 256). Raise it behind a load
    /// balancer or NAT, where many clients share an address.
    #[serde(default = "default_max_per_ip")]
    pub max_per_ip: usize,
    /// The whole request head must arrive within this time of its first byte, or of the
    /// connection opening (default 10s); otherwise the connection is closed.
    #[serde(default = "default_head_timeout")]
    pub head_timeout: Dur,
    /// The whole request body must arrive within this time of its head (default 30s);
    /// otherwise `408`.
    #[serde(default = "default_body_timeout")]
    pub body_timeout: Dur,
    /// A keep-alive connection idle this long between requests is closed (default 60s).
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: Dur,
}

fn default_max() -> usize {
    10_000
}
fn default_max_per_ip() -> usize {
    256
}
fn default_head_timeout() -> Dur {
    Dur(Duration::from_secs(10))
}
fn default_body_timeout() -> Dur {
    Dur(Duration::from_secs(30))
}
fn default_idle_timeout() -> Dur {
    Dur(Duration::from_secs(60))
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        ConnectionsConfig { max: default_max(), max_per_ip: default_max_per_ip(), head_timeout: default_head_timeout(), body_timeout: default_body_timeout(), idle_timeout: default_idle_timeout() }
    }
}

impl ConnectionsConfig {
    /// What a listener applies to a new connection.
    pub fn limits(&self) -> ListenerLimits {
        ListenerLimits { max: self.max, max_per_ip: self.max_per_ip, head_timeout: self.head_timeout.0, idle_timeout: self.idle_timeout.0 }
    }

    /// Checks the values; the message names the field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.max == 0 {
            return Err(("connections.max", "must be positive".into()));
        }
        if self.max_per_ip == 0 {
            return Err(("connections.max_per_ip", "must be positive".into()));
        }
        for (field, d) in [("connections.head_timeout", self.head_timeout), ("connections.body_timeout", self.body_timeout), ("connections.idle_timeout", self.idle_timeout)] {
            if d.0.is_zero() {
                return Err((field, "must be positive".into()));
            }
        }
        Ok(())
    }
}
