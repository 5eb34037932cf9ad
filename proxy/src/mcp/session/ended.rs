//! Where ended sessions are remembered until their tokens expire: always locally (a
//! compact set), and optionally in Redis so that every gateway of a fleet, and this one
//! after a restart, refuses a session that ended anywhere.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashMap;
use thiserror::Error;

/// A shared store in Redis (ended sessions, quota counters) could not answer.
#[derive(Debug, Error)]
pub enum StoreError {
    /// Redis answered with an error or the connection failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Recently failed; not asked again yet.
    #[error("unavailable (recent failure, retrying shortly)")]
    Backoff,
}

/// Ended sessions by the tag of their token (see `token::tag`), each until its expiry.
/// The seam between the session manager and a store shared by a fleet.
#[async_trait]
pub trait EndedSessions: Send + Sync {
    /// Whether the session named `tag` ended.
    async fn is_ended(&self, tag: u128) -> Result<bool, StoreError>;
    /// Records sessions that ended, each with its token's expiry (Unix seconds).
    async fn record(&self, ended: &[(u128, u64)]) -> Result<(), StoreError>;
}

/// The local set: 64 bits of the tag and a 32-bit expiry per session (about 17–34 bytes
/// each in the table), so millions fit in tens of MB. Two live tags sharing 64 bits is a
/// 2^-64-per-pair accident that costs the unlucky client one new `initialize`.
pub struct LocalEnded {
    map: DashMap<u64, u32, foldhash::fast::RandomState>,
    capacity: usize,
}

impl LocalEnded {
    /// An empty set holding at most `capacity` records.
    pub fn new(capacity: usize) -> Self {
        LocalEnded { map: DashMap::with_hasher(foldhash::fast::RandomState::default()), capacity }
    }

    /// Whether `tag` is recorded as ended.
    pub fn contains(&self, tag: u128) -> bool {
        self.map.contains_key(&(tag as u64))
    }

    /// Records `tag` until `expires_at`; `false` when the set is full (the caller keeps the
    /// session's ended state elsewhere: a record is never dropped to make room).
    pub fn insert(&self, tag: u128, expires_at: u64) -> bool {
        if self.map.len() >= self.capacity && !self.map.contains_key(&(tag as u64)) {
            return false;
        }
        self.map.insert(tag as u64, clamp(expires_at));
        true
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Room left before the cap.
    pub fn room(&self) -> usize {
        self.capacity.saturating_sub(self.map.len())
    }

    /// Forgets records whose tokens have expired (they no longer open anyway).
    pub fn purge(&self, now: u64) {
        self.map.retain(|_, exp| u64::from(*exp) > now);
        self.map.shrink_to_fit();
    }
}

/// Unix seconds as stored: u32 holds them until 2106.
pub fn clamp(secs: u64) -> u32 {
    u32::try_from(secs).unwrap_or(u32::MAX)
}

#[async_trait]
impl EndedSessions for LocalEnded {
    async fn is_ended(&self, tag: u128) -> Result<bool, StoreError> {
        Ok(self.contains(tag))
    }
    async fn record(&self, ended: &[(u128, u64)]) -> Result<(), StoreError> {
        for &(tag, exp) in ended {
            self.insert(tag, exp);
        }
        Ok(())
    }
}

/// How long one Redis exchange may take before the gateway goes on without it.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(500);
/// After a failure, Redis is not asked again for this long (requests do not each wait
/// out a timeout while it is down).
const BACKOFF_MS: u64 = 2_000;
/// Key prefix; a key is the prefix and the tag in hex, its TTL the token's remaining life.
pub const REDIS_PREFIX: &str = "mcpgate:session:ended:";

/// Ended sessions in Redis: `SET mcpgate:session:ended:<tag> 1 PX <ms until expiry>`,
/// read with `EXISTS`. One multiplexed connection, reconnected by the connection manager.
pub struct RedisEnded {
    conn: redis::aio::ConnectionManager,
    /// Milliseconds since the Unix epoch until which Redis is not asked (after a failure).
    down_until: AtomicU64,
    url: String,
}

impl RedisEnded {
    /// A store for `url` (`redis://host:port/db`). Connects lazily, so a Redis that is down
    /// at start does not stop the gateway; needs a Tokio runtime.
    pub fn new(url: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new().set_connection_timeout(Some(REDIS_TIMEOUT)).set_response_timeout(Some(REDIS_TIMEOUT)).set_number_of_retries(1).set_max_delay(Duration::from_secs(1));
        let conn = redis::aio::ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(RedisEnded { conn, down_until: AtomicU64::new(0), url: url.to_string() })
    }

    /// The URL this store was made for (a reload with the same URL keeps the store).
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn run<T: redis::FromRedisValue + Send>(&self, what: impl FnOnce(&mut redis::Pipeline)) -> Result<T, StoreError> {
        let now = super::now_millis();
        if self.down_until.load(Ordering::Relaxed) > now {
            return Err(StoreError::Backoff);
        }
        let mut pipe = redis::pipe();
        what(&mut pipe);
        let mut conn = self.conn.clone();
        let result = match tokio::time::timeout(REDIS_TIMEOUT, pipe.query_async::<T>(&mut conn)).await {
            Ok(r) => r.map_err(StoreError::from),
            Err(_) => Err(StoreError::Timeout(REDIS_TIMEOUT)),
        };
        if result.is_err() {
            self.down_until.store(now + BACKOFF_MS, Ordering::Relaxed);
        }
        result
    }
}

fn key(tag: u128) -> String {
    format!("{REDIS_PREFIX}{tag:032x}")
}

#[async_trait]
impl EndedSessions for RedisEnded {
    async fn is_ended(&self, tag: u128) -> Result<bool, StoreError> {
        let (n,): (u64,) = self
            .run(|p| {
                p.exists(key(tag));
            })
            .await?;
        Ok(n > 0)
    }

    async fn record(&self, ended: &[(u128, u64)]) -> Result<(), StoreError> {
        let now = super::now_millis();
        let live: Vec<(String, u64)> = ended.iter().filter_map(|&(tag, exp)| exp.saturating_mul(1000).checked_sub(now).filter(|ms| *ms > 0).map(|ms| (key(tag), ms))).collect();
        if live.is_empty() {
            return Ok(());
        }
        self.run::<()>(|p| {
            for (k, ms) in &live {
                p.cmd("SET").arg(k).arg(1).arg("PX").arg(*ms).ignore();
            }
        })
        .await
    }
}
