//! Per-tool rate limits and quotas (`servers[].policy.quotas`), keyed by caller × server ×
//! tool, and where their counters live (`quotas:`).
//!
//! A route's rules compile at snapshot build into, per tool, the limits that apply to it
//! ([`RouteQuotas`]); a call takes one from each limit whose subjects match the caller,
//! atomically (all or none), from the process's counters ([`limit::LocalCounters`],
//! exact) or from Redis ([`redis::RedisCounters`], one script per call, shared by a
//! fleet). A counter's identity is a hash of route, tool and rule, so it survives reloads
//! that keep the rule and means the same thing in every process of a fleet.

pub mod limit;
pub mod redis;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Subjects;
use crate::auth::{ConsumerConfig, Principal};
use crate::config::Dur;
use crate::tools::{ToolDef, ToolRef};
use limit::{CounterKey, Kind, LocalCounters};

/// The `quotas:` section: where counters live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaStoreConfig {
    /// `local` (default: this process, exact) or `redis` (shared by every gateway using it).
    #[serde(default)]
    pub backend: Backend,
    /// Redis URL for `backend: redis` (`redis://127.0.0.1:6379/0`).
    #[serde(default, skip_serializing)]
    pub redis: Option<String>,
    /// Prefix of the Redis keys (default `mcpgate:quota:`): gateways sharing a prefix share
    /// counters.
    #[serde(default = "default_prefix")]
    pub key_prefix: String,
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

fn default_prefix() -> String {
    "mcpgate:quota:".into()
}

impl Default for QuotaStoreConfig {
    fn default() -> Self {
        QuotaStoreConfig { backend: Backend::Local, redis: None, key_prefix: default_prefix(), on_error: OnError::Open, timeout: default_timeout() }
    }
}

impl QuotaStoreConfig {
    /// Checks the section; an error names the field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.timeout.0.is_zero() || self.timeout.0 > Duration::from_secs(5) {
            return Err(("field `quotas.timeout`", "must be between 1ms and 5s: every governed call may wait this long for Redis".into()));
        }
        match (self.backend, self.redis.as_deref().filter(|u| !u.trim().is_empty())) {
            (Backend::Redis, None) => Err(("field `quotas.redis`", "backend `redis` needs a URL like redis://127.0.0.1:6379/0".into())),
            (Backend::Redis, Some(url)) => ::redis::Client::open(url).map(|_| ()).map_err(|e| ("field `quotas.redis`", format!("not a Redis URL like redis://127.0.0.1:6379/0: {e}"))),
            (Backend::Local, _) => Ok(()),
        }
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

/// One entry of a server's `policy.quotas`.
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
    /// One counter for every caller the rule applies to, instead of one each (protects the
    /// upstream rather than sharing it fairly).
    #[serde(default)]
    pub shared: bool,
    /// Sustained rate: `10/s`, `600/min`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    /// Calls allowed at once above the rate (default: one second's worth, at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// Fixed-window quota: `100/min`, `1000/hour`, `10000/day`.
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

enum Counters {
    Local(Arc<LocalCounters>),
    Redis(redis::RedisCounters),
}

/// The counters of every route (kept across reloads while `quotas:` is unchanged).
pub struct QuotaStore {
    counters: Counters,
    on_error: OnError,
}

impl QuotaStore {
    /// The store `config` describes; local counters carry over from `previous` when it
    /// was local too (a reload that changes only `on_error` forgets nothing).
    pub fn new(config: &QuotaStoreConfig, previous: Option<&Arc<QuotaStore>>) -> Arc<Self> {
        let local = || match previous.map(|p| &p.counters) {
            Some(Counters::Local(c)) => c.clone(),
            _ => Arc::default(),
        };
        let counters = match (config.backend, config.redis.as_deref()) {
            (Backend::Redis, Some(url)) => match redis::RedisCounters::new(url, &config.key_prefix, config.timeout.0) {
                Ok(r) => Counters::Redis(r),
                Err(e) => {
                    // Validated at load; a URL that parses there and not here is a bug.
                    log::error!("quotas.redis: {e}; counting in this process instead");
                    Counters::Local(local())
                }
            },
            _ => Counters::Local(local()),
        };
        Arc::new(QuotaStore { counters, on_error: config.on_error })
    }

    /// The store of a gateway without `quotas:` (local counters).
    pub fn local() -> Arc<Self> {
        Arc::new(QuotaStore { counters: Counters::Local(Arc::default()), on_error: OnError::Open })
    }

    async fn take(&self, keys: &[(CounterKey, Kind)]) -> Result<Result<(), (usize, Duration)>, redis::StoreError> {
        match &self.counters {
            Counters::Local(c) => Ok(c.take(keys, limit::now_us())),
            Counters::Redis(r) => r.take(keys).await,
        }
    }
}

/// One compiled limit of one tool.
struct Limit {
    /// Stable identity of route × tool × rule (see the module head).
    id: u64,
    kind: Kind,
    who: Subjects,
    shared: bool,
    /// How the refusal names it: `rate 10/s (burst 10) on `get_pet``.
    label: Arc<str>,
    /// `rate` or `quota`, the `limit` label of the rejections metric.
    metric: &'static str,
}

/// The limits of one tool, and its name for the metrics.
type ToolLimits = (Box<[Limit]>, Arc<str>);

/// A limit as a rule sets it: what counts, how refusals name it, its metric label.
type RuleLimit = (Kind, String, &'static str);

/// A route's compiled limits.
pub struct RouteQuotas {
    route: Arc<str>,
    /// Per tool (by position), the limits that apply to it and the tool's name.
    tools: Box<[ToolLimits]>,
    store: Option<Arc<QuotaStore>>,
}

impl RouteQuotas {
    /// No limits.
    pub fn none() -> Self {
        RouteQuotas { route: Arc::from(""), tools: Box::new([]), store: None }
    }

    /// Compiles a route's `policy.quotas` for `tools`; `strict` as for rules (a toolset's
    /// route takes the tools it has). An error is `[i].field: message`.
    pub fn build(rules: &[QuotaRuleConfig], tools: &[ToolDef], consumers: &[ConsumerConfig], store: &Arc<QuotaStore>, route: &str, strict: bool) -> Result<Self, String> {
        if rules.is_empty() {
            return Ok(RouteQuotas::none());
        }
        let mut per_tool: Vec<Vec<Limit>> = (0..tools.len()).map(|_| Vec::new()).collect();
        for (i, r) in rules.iter().enumerate() {
            if let Some(c) = r.consumers.iter().find(|c| !consumers.iter().any(|k| &k.name == *c)) {
                return Err(format!("[{i}].consumers: no consumer named `{c}`"));
            }
            let kinds = rule_kinds(r).map_err(|(f, m)| format!("[{i}].{f}: {m}"))?;
            let mask = super::route_mask(&r.tools, tools, strict).map_err(|e| format!("[{i}].tools: {e}"))?;
            let who = Subjects { consumers: r.consumers.clone(), groups: r.groups.clone(), ..Subjects::default() };
            // The rule as configured, minus its tool list: editing which tools a rule names
            // keeps the counters of the tools it still names.
            let signature = serde_json::to_string(&QuotaRuleConfig { tools: Vec::new(), ..r.clone() }).unwrap_or_default();
            for t in mask.iter() {
                let Some(def) = tools.get(t) else { continue };
                for (kind, text, metric) in &kinds {
                    let id = counter_id(route, &def.name, &signature, metric);
                    let label = format!("{text} on `{}`{}", def.name, if r.shared { " (shared by its callers)" } else { "" });
                    per_tool[t].push(Limit { id, kind: *kind, who: who.clone(), shared: r.shared, label: label.into(), metric });
                }
            }
        }
        Ok(RouteQuotas { route: route.into(), tools: per_tool.into_iter().zip(tools).map(|(l, t)| (l.into_boxed_slice(), Arc::from(t.name.as_str()))).collect(), store: Some(store.clone()) })
    }

    /// Whether the route has no limits (the pipeline skips the stage).
    pub fn is_empty(&self) -> bool {
        self.store.is_none()
    }

    /// Takes one call of `tool` for `principal` from every limit that applies, or from
    /// none when one refuses.
    pub async fn take(&self, principal: Option<&Principal>, tool: ToolRef) -> Result<(), QuotaExceeded> {
        let (Some(store), Some((limits, name))) = (&self.store, self.tools.get(tool.index())) else {
            return Ok(());
        };
        let caller = crate::auth::binding(principal);
        let applying: Vec<&Limit> = limits.iter().filter(|l| l.who.matches(principal)).collect();
        if applying.is_empty() {
            return Ok(());
        }
        let keys: Vec<(CounterKey, Kind)> = applying.iter().map(|l| ((l.id, if l.shared { 0 } else { caller }), l.kind)).collect();
        let refused = match store.take(&keys).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err((i, wait))) => applying.get(i).map(|l| (l.label.to_string(), wait, l.metric)),
            Err(e) => {
                let open = store.on_error == OnError::Open;
                crate::metrics::METRICS.quota_store_errors.with_label_values(&[if open { "allowed" } else { "refused" }]).inc();
                log::warn!("quota store: {e}; call {} (quotas.on_error: {})", if open { "allowed" } else { "refused" }, if open { "open" } else { "closed" });
                if open {
                    return Ok(());
                }
                Some(("the quota store is unreachable (quotas.on_error: closed)".to_string(), Duration::from_secs(1), "store"))
            }
        };
        let Some((limit, retry_after, metric)) = refused else { return Ok(()) };
        crate::metrics::METRICS.quota_rejections.with_label_values(&[&self.route, name, metric]).inc();
        Err(QuotaExceeded { limit, retry_after })
    }
}

/// The limits one rule sets: its rate and its quota, each with how refusals name it.
fn rule_kinds(r: &QuotaRuleConfig) -> Result<Vec<RuleLimit>, (&'static str, String)> {
    let mut out = Vec::with_capacity(2);
    if let Some(rate) = &r.rate {
        let (n, per) = parse_limit(rate, &[("s", 1), ("sec", 1), ("second", 1), ("m", 60), ("min", 60), ("minute", 60)]).map_err(|m| ("rate", m))?;
        let interval_us = per.saturating_mul(1_000_000) / u64::from(n);
        if interval_us == 0 {
            return Err(("rate", format!("`{rate}` is over a million calls a second")));
        }
        let per_second = (u64::from(n) / per).max(1);
        let burst = r.burst.unwrap_or(u32::try_from(per_second).unwrap_or(u32::MAX));
        if burst == 0 {
            return Err(("burst", "must be at least 1".into()));
        }
        out.push((Kind::Rate { interval_us, burst }, format!("rate {rate} (burst {burst})"), "rate"));
    } else if r.burst.is_some() {
        return Err(("burst", "applies to a `rate`; set one".into()));
    }
    if let Some(quota) = &r.quota {
        let (max, per) = parse_limit(quota, &[("min", 60), ("minute", 60), ("h", 3600), ("hour", 3600), ("d", 86_400), ("day", 86_400)]).map_err(|m| ("quota", m))?;
        out.push((Kind::Window { window_ms: per * 1000, max }, format!("quota {quota}"), "quota"));
    }
    if out.is_empty() {
        return Err(("rate", "set a `rate` (like 10/s), a `quota` (like 1000/day), or both".into()));
    }
    Ok(out)
}

/// `count/unit` with the unit's length in seconds.
fn parse_limit(text: &str, units: &[(&str, u64)]) -> Result<(u32, u64), String> {
    let names = || units.iter().map(|(u, _)| *u).collect::<Vec<_>>().join(", ");
    let (n, unit) = text.split_once('/').ok_or_else(|| format!("`{text}` is not `count/unit` (units: {})", names()))?;
    let n: u32 = n.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| format!("`{text}`: the count must be a whole number from 1"))?;
    let per = units.iter().find(|(u, _)| *u == unit.trim()).map(|(_, s)| *s).ok_or_else(|| format!("`{text}`: unknown unit `{}`; one of {}", unit.trim(), names()))?;
    Ok((n, per))
}

/// A counter's identity, the same in every process: SHA-256 of route, tool, rule and limit.
fn counter_id(route: &str, tool: &str, rule: &str, kind: &str) -> u64 {
    let mut h = Sha256::new();
    for part in [route, tool, rule, kind] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_le_bytes(b)
}
