//! Prometheus metrics, served on the admin listener's `/metrics`.

use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

use prometheus::{Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

/// The gateway's metric families.
pub struct Metrics {
    registry: Registry,
    /// Tool calls by server, tool and outcome.
    pub tool_calls: IntCounterVec,
    /// Tool call latency by server and tool.
    pub tool_latency: HistogramVec,
    /// JSON-RPC requests by server and method.
    pub requests: IntCounterVec,
    /// Sessions used within the idle TTL on this instance.
    pub active_sessions: IntGauge,
    /// New sessions refused, by reason (`rate_limited`, `capacity`).
    pub sessions_refused: IntCounterVec,
    /// Failed exchanges with the shared store of ended sessions (Redis); the gateway went
    /// on without it.
    pub session_store_errors: IntCounter,
    /// Successful config reloads.
    pub reloads: IntCounter,
    /// Rejected config reloads (the old config keeps serving).
    pub reload_failures: IntCounter,
    /// Generation of the snapshot being served.
    pub generation: IntGauge,
    /// Time to build a snapshot.
    pub build_seconds: Histogram,
    /// 1 for each database source whose account holds privileges that reach outside the
    /// database (or whose check failed), by `server` or `server/source`.
    pub privileged_accounts: IntGaugeVec,
    /// `query`/`execute` calls refused because of the account's privileges.
    pub refused_free_sql: IntCounterVec,
    /// Client connections open, by listener.
    pub connections_open: IntGaugeVec,
    /// Client connections refused at accept, by listener and reason (`listener`, `per_ip`).
    pub connections_refused: IntCounterVec,
    /// Tool calls abandoned because the client closed its connection.
    pub calls_abandoned: IntCounter,
    /// Legacy SSE streams open on this instance.
    pub sse_streams: IntGauge,
    /// Requests refused by authentication, by reason.
    pub auth_failures: IntCounterVec,
    /// `tools/call`s refused by a rate limit or quota, by server, tool and limit kind
    /// (`rate`, `quota`, or `store` when Redis was unreachable and `on_error` is closed).
    pub quota_rejections: IntCounterVec,
    /// Takes the quota store (Redis) did not answer in time, by what the call got
    /// (`allowed` with `on_error: open`, `refused` with `closed`).
    pub quota_store_errors: IntCounterVec,
    /// Legacy SSE requests refused or streams closed by a limit, by the limit's setting.
    pub sse_limited: IntCounterVec,
}

fn build() -> Result<Metrics, prometheus::Error> {
    let registry = Registry::new_custom(Some("mcpgate".into()), None)?;
    let tool_calls = IntCounterVec::new(Opts::new("tool_calls_total", "Tool calls by server, tool and outcome"), &["server", "tool", "outcome"])?;
    let tool_latency = HistogramVec::new(
        HistogramOpts::new("tool_call_duration_seconds", "Tool call latency, gateway in to result out").buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
        &["server", "tool"],
    )?;
    let requests = IntCounterVec::new(Opts::new("jsonrpc_requests_total", "JSON-RPC requests by server and method"), &["server", "method"])?;
    let active_sessions = IntGauge::new("active_sessions", "Sessions used within the idle TTL on this instance")?;
    let sessions_refused = IntCounterVec::new(Opts::new("sessions_refused_total", "New sessions refused, by reason (rate_limited, capacity)"), &["reason"])?;
    let session_store_errors = IntCounter::new("session_store_errors_total", "Failed exchanges with the shared ended-session store (Redis); served without it")?;
    let reloads = IntCounter::new("config_reloads_total", "Successful config reloads")?;
    let reload_failures = IntCounter::new("config_reload_failures_total", "Rejected config reloads; the previous config keeps serving")?;
    let generation = IntGauge::new("config_generation", "Generation of the config snapshot being served")?;
    let build_seconds = Histogram::with_opts(HistogramOpts::new("config_build_seconds", "Time to build a config snapshot"))?;
    let privileged_accounts = IntGaugeVec::new(Opts::new("database_privileged_accounts", "Database sources whose account holds privileges that reach outside the database (1), by source"), &["source"])?;
    let refused_free_sql = IntCounterVec::new(Opts::new("database_refused_free_sql_total", "query/execute calls refused because the database account is privileged"), &["source"])?;
    let connections_open = IntGaugeVec::new(Opts::new("connections_open", "Client connections open, by listener"), &["listener"])?;
    let connections_refused = IntCounterVec::new(Opts::new("connections_refused_total", "Client connections refused at accept, by listener and reason"), &["listener", "reason"])?;
    let calls_abandoned = IntCounter::new("calls_abandoned_total", "Tool calls cancelled because the client closed its connection")?;
    registry.register(Box::new(connections_open.clone()))?;
    registry.register(Box::new(connections_refused.clone()))?;
    registry.register(Box::new(calls_abandoned.clone()))?;
    registry.register(Box::new(tool_calls.clone()))?;
    registry.register(Box::new(tool_latency.clone()))?;
    registry.register(Box::new(requests.clone()))?;
    registry.register(Box::new(active_sessions.clone()))?;
    registry.register(Box::new(sessions_refused.clone()))?;
    registry.register(Box::new(session_store_errors.clone()))?;
    registry.register(Box::new(reloads.clone()))?;
    registry.register(Box::new(reload_failures.clone()))?;
    registry.register(Box::new(generation.clone()))?;
    registry.register(Box::new(build_seconds.clone()))?;
    registry.register(Box::new(privileged_accounts.clone()))?;
    registry.register(Box::new(refused_free_sql.clone()))?;
    let sse_streams = IntGauge::new("sse_streams", "Legacy SSE streams open on this instance")?;
    let sse_limited = IntCounterVec::new(Opts::new("sse_limited_total", "Legacy SSE requests refused or streams closed by a limit, by setting"), &["limit"])?;
    registry.register(Box::new(sse_streams.clone()))?;
    registry.register(Box::new(sse_limited.clone()))?;
    let auth_failures = IntCounterVec::new(Opts::new("auth_failures_total", "Requests refused by authentication (401/403), by reason"), &["reason"])?;
    registry.register(Box::new(auth_failures.clone()))?;
    let quota_rejections = IntCounterVec::new(Opts::new("quota_rejections_total", "Tool calls refused by a rate limit or quota, by server, tool and limit"), &["server", "tool", "limit"])?;
    registry.register(Box::new(quota_rejections.clone()))?;
    let quota_store_errors = IntCounterVec::new(Opts::new("quota_store_errors_total", "Quota takes the shared store did not answer, by what the call got (allowed, refused)"), &["action"])?;
    registry.register(Box::new(quota_store_errors.clone()))?;
    Ok(Metrics {
        registry,
        tool_calls,
        tool_latency,
        requests,
        active_sessions,
        sessions_refused,
        session_store_errors,
        reloads,
        reload_failures,
        generation,
        build_seconds,
        privileged_accounts,
        refused_free_sql,
        connections_open,
        connections_refused,
        calls_abandoned,
        sse_streams,
        sse_limited,
        auth_failures,
        quota_rejections,
        quota_store_errors,
    })
}

/// The process-wide metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| build().expect("static metric definitions are valid"));

const KNOWN_METHODS: [&str; 7] = ["initialize", "ping", "logging/setLevel", "tools/list", "tools/call", "server/discover", "notifications/initialized"];

/// How a tool call ended (the `outcome` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolOutcome {
    /// A result without `isError`.
    Success,
    /// An `isError` result (upstream failure, SQL error, …).
    Error,
    /// Arguments failed the tool's `inputSchema`; nothing was called.
    InvalidArguments,
    /// The caller may not call the tool (a rule); nothing was called.
    Denied,
    /// A rate limit or quota refused the call; nothing was called.
    RateLimited,
}

impl ToolOutcome {
    fn label(self) -> &'static str {
        match self {
            ToolOutcome::Success => "success",
            ToolOutcome::Error => "error",
            ToolOutcome::InvalidArguments => "invalid_arguments",
            ToolOutcome::Denied => "denied",
            ToolOutcome::RateLimited => "rate_limited",
        }
    }
}

/// Metric handles of one route, resolved on first use: `/metrics` lists only series that
/// were used, and later uses skip the label hashing and registry lock of
/// `with_label_values`.
pub struct RouteMetrics {
    route: String,
    methods: [OnceLock<IntCounter>; KNOWN_METHODS.len() + 1],
    tools: Box<[ToolMetrics]>,
}

#[derive(Default)]
struct ToolMetrics {
    outcomes: [OnceLock<IntCounter>; 5],
    latency: OnceLock<Histogram>,
}

impl RouteMetrics {
    /// Handles for a route with `tools` tools.
    pub fn new(route: &str, tools: usize) -> Self {
        RouteMetrics { route: route.to_string(), methods: Default::default(), tools: (0..tools).map(|_| ToolMetrics::default()).collect() }
    }

    /// Counts a JSON-RPC request; unknown method names are folded into `other` to bound
    /// label cardinality.
    pub fn method(&self, method: &str) {
        let i = KNOWN_METHODS.iter().position(|k| *k == method).unwrap_or(KNOWN_METHODS.len());
        let name = KNOWN_METHODS.get(i).copied().unwrap_or("other");
        self.methods[i].get_or_init(|| METRICS.requests.with_label_values(&[self.route.as_str(), name])).inc();
    }

    /// Records a finished call of `tool` (named `name`).
    pub fn tool_call(&self, tool: crate::tools::ToolRef, name: &str, outcome: ToolOutcome, elapsed: Duration) {
        let Some(t) = self.tools.get(tool.index()) else {
            return;
        };
        t.outcomes[outcome as usize].get_or_init(|| METRICS.tool_calls.with_label_values(&[self.route.as_str(), name, outcome.label()])).inc();
        t.latency.get_or_init(|| METRICS.tool_latency.with_label_values(&[self.route.as_str(), name])).observe(elapsed.as_secs_f64());
    }
}

/// Renders the Prometheus text exposition.
pub fn render() -> Vec<u8> {
    let mut out = Vec::with_capacity(16 * 1024);
    let families = METRICS.registry.gather();
    if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
        log::error!("cannot encode metrics: {e}");
    }
    out
}
