//! Counters in Redis, shared by every gateway that uses the same Redis and key prefix.
//!
//! One script per call checks every counter the call touches and charges them only if all
//! agree, with Redis's own clock (`TIME`), so a fleet counts as one process would: there is
//! no tolerance beyond the order in which concurrent calls reach Redis. The arithmetic is
//! the local one (`limit.rs`): GCRA timestamps and fixed-window counts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::limit::{CounterKey, Kind};

/// KEYS: one per counter. ARGV: per counter `kind, a, b` (1: rate, interval µs, burst;
/// 2: window, length ms, max). Returns `{0}` when every counter took the call, or `{i, µs}`:
/// counter `i` (1-based) refuses for that long, and nothing was charged.
const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local writes = {}
for i, key in ipairs(KEYS) do
  local kind = tonumber(ARGV[i * 3 - 2])
  local a = tonumber(ARGV[i * 3 - 1])
  local b = tonumber(ARGV[i * 3])
  if kind == 1 then
    local tat = tonumber(redis.call('GET', key)) or now
    if tat < now then tat = now end
    local nxt = tat + a
    local limit = now + a * b
    if nxt > limit then return {i, nxt - limit} end
    writes[i] = {nxt, math.ceil((nxt - now) / 1000) + 1}
  else
    local win = math.floor(now / 1000 / a)
    local got = redis.call('HMGET', key, 'w', 'n')
    local n = 0
    if tonumber(got[1]) == win then n = tonumber(got[2]) or 0 end
    if n >= b then return {i, ((win + 1) * a * 1000) - now} end
    writes[i] = {win, n + 1, a}
  end
end
for i, key in ipairs(KEYS) do
  local w = writes[i]
  if tonumber(ARGV[i * 3 - 2]) == 1 then
    redis.call('SET', key, string.format('%.0f', w[1]), 'PX', w[2])
  else
    redis.call('HSET', key, 'w', string.format('%.0f', w[1]), 'n', w[2])
    redis.call('PEXPIRE', key, w[3] * 2)
  end
end
return {0}
"#;

pub use crate::mcp::session::StoreError;

/// After a failure Redis is not asked again for this long.
const BACKOFF_MS: u64 = 1_000;

/// The counters of a fleet, in Redis.
pub struct RedisCounters {
    conn: redis::aio::ConnectionManager,
    prefix: String,
    timeout: Duration,
    down_until: AtomicU64,
}

impl RedisCounters {
    /// Counters at `url` under `prefix`. Connects lazily: a Redis that is down at start
    /// does not stop the gateway (calls get `on_error`); needs a Tokio runtime.
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new().set_connection_timeout(Some(timeout)).set_response_timeout(Some(timeout)).set_number_of_retries(1).set_max_delay(Duration::from_secs(1));
        let conn = redis::aio::ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(RedisCounters { conn, prefix: prefix.to_string(), timeout, down_until: AtomicU64::new(0) })
    }

    /// Takes one call from every counter in `keys`, or from none: `Ok(Err((i, wait)))`
    /// when counter `i` refuses.
    pub async fn take(&self, keys: &[(CounterKey, Kind)]) -> Result<Result<(), (usize, Duration)>, StoreError> {
        let now = super::limit::now_us() / 1000;
        if self.down_until.load(Ordering::Relaxed) > now {
            return Err(StoreError::Backoff);
        }
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(SCRIPT).arg(keys.len());
        for ((limit, caller), _) in keys {
            cmd.arg(format!("{}{limit:016x}:{caller:016x}", self.prefix));
        }
        for (_, kind) in keys {
            match *kind {
                Kind::Rate { interval_us, burst } => cmd.arg(1).arg(interval_us).arg(burst),
                Kind::Window { window_ms, max } => cmd.arg(2).arg(window_ms).arg(max),
            };
        }
        let mut conn = self.conn.clone();
        let answer = match tokio::time::timeout(self.timeout, cmd.query_async::<Vec<i64>>(&mut conn)).await {
            Ok(r) => r.map_err(StoreError::from),
            Err(_) => Err(StoreError::Timeout(self.timeout)),
        };
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                self.down_until.store(now + BACKOFF_MS, Ordering::Relaxed);
                return Err(e);
            }
        };
        Ok(match answer.as_slice() {
            [i, wait_us] if *i >= 1 => Err(((*i - 1) as usize, Duration::from_micros((*wait_us).max(0) as u64))),
            _ => Ok(()),
        })
    }
}
