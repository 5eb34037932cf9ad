//! Sessions: sealed tokens and the little local state they need.
//!
//! A session id is an AEAD-sealed token (XChaCha20-Poly1305, see [`token`]) carrying the
//! route, the negotiated protocol version and the expiry. Any gateway holding the same key
//! accepts it with no shared store, and a client learns nothing from it. Issuing a token
//! stores nothing: the token is the state. What a token cannot carry appears on its first
//! use here and is kept small (32 bytes a session in the table): last use, for the idle
//! TTL, and whether it ended. Sessions that ended (DELETE, idle expiry, a closed legacy
//! stream) are remembered until their tokens expire, in a compact local set and, with
//! `session.redis`, in Redis for the fleet. docs/SESSIONS.md says what holds where.

mod ended;
mod limit;
pub mod token;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use chacha20poly1305::aead::KeyInit;
use chacha20poly1305::XChaCha20Poly1305;
use dashmap::DashMap;
use rand::RngCore;

pub use ended::{EndedSessions, LocalEnded, RedisEnded, StoreError};
pub use limit::{InitLimiter, Limited};
pub use token::{parse_key, SessionClaims};

use super::version::ProtocolVersion;
use crate::config::SessionConfig;
use crate::metrics::METRICS;

/// What a request needs from an accepted session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionUse {
    /// The session's local name: its token's tag.
    pub id: u128,
    /// The negotiated protocol version.
    pub version: ProtocolVersion,
}

/// Why a presented session id is not usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRejection {
    /// Not a token this gateway (or its fleet) issued, or issued for another route.
    Unknown,
    /// Expired, deleted or idle too long.
    Ended,
    /// First use of a token while this gateway tracks `session.max_active` sessions.
    Full,
}

/// Why a new session is not issued now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewSessionRefusal {
    /// The client is over `session.initialize_rate` / `initialize_burst`.
    RateLimited(Limited),
    /// This gateway tracks `session.max_active` sessions.
    Full(usize),
}

/// The settings a manager runs with (from `session:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSettings {
    /// Absolute token lifetime.
    pub ttl: Duration,
    /// A session unused this long ends.
    pub idle_ttl: Duration,
    /// Most sessions in use tracked at once (including ended ones not yet moved to the
    /// ended set).
    pub max_active: usize,
    /// Most ended sessions remembered at once.
    pub max_ended: usize,
    /// New sessions per second per client, sustained; 0 disables the limit.
    pub initialize_rate: u32,
    /// New sessions a client may open at once.
    pub initialize_burst: u32,
}

impl From<&SessionConfig> for SessionSettings {
    fn from(c: &SessionConfig) -> Self {
        SessionSettings { ttl: c.ttl.0, idle_ttl: c.idle_ttl.0, max_active: c.max_active, max_ended: c.max_ended, initialize_rate: c.initialize_rate, initialize_burst: c.initialize_burst }
    }
}

/// A session in use on this instance (24 bytes; keyed by its token's tag).
struct Entry {
    /// Token expiry, Unix seconds.
    expires_at: u32,
    /// Last use, in ticks of [`TICK_MS`] since the state's epoch.
    last_seen: AtomicU32,
    /// Index into the route names.
    route: u32,
    version: u8,
    /// Ended, but kept here because the ended set was full (never dropped early).
    ended: AtomicBool,
    /// The caller the session is bound to ([`crate::auth::Principal::binding`]).
    binding: u64,
}

/// Idle tracking resolution: 100 ms, so a u32 covers 13 years of uptime.
const TICK_MS: u128 = 100;

/// Local state, shared by every manager built with the same key (reloads that change
/// other session settings keep it, so an ended session stays ended).
struct LocalState {
    epoch: Instant,
    active: DashMap<u128, Entry, foldhash::fast::RandomState>,
    ended: LocalEnded,
    /// Route names seen in admitted tokens (configured names, so few).
    routes: ArcSwap<Vec<Box<str>>>,
}

impl LocalState {
    fn new(max_ended: usize) -> Self {
        LocalState { epoch: Instant::now(), active: DashMap::with_hasher(foldhash::fast::RandomState::default()), ended: LocalEnded::new(max_ended), routes: ArcSwap::from_pointee(Vec::new()) }
    }

    fn tick(&self) -> u32 {
        u32::try_from(self.epoch.elapsed().as_millis() / TICK_MS).unwrap_or(u32::MAX)
    }

    fn intern(&self, route: &str) -> u32 {
        if let Some(i) = self.routes.load().iter().position(|r| &**r == route) {
            return i as u32;
        }
        let mut index = 0;
        self.routes.rcu(|names| {
            let mut names = Vec::clone(names);
            index = names.iter().position(|r| &**r == route).unwrap_or_else(|| {
                names.push(route.into());
                names.len() - 1
            });
            names
        });
        index as u32
    }

    fn route_is(&self, index: u32, route: &str) -> bool {
        self.routes.load().get(index as usize).is_some_and(|r| &**r == route)
    }
}

/// Seals and opens tokens, limits new sessions, and keeps local session state.
pub struct SessionManager {
    key: [u8; 32],
    ephemeral: bool,
    cipher: XChaCha20Poly1305,
    settings: SessionSettings,
    idle_ticks: u32,
    state: Arc<LocalState>,
    limiter: Option<InitLimiter>,
    /// The fleet's store (Redis), with the URL it was made for.
    shared: Option<(String, Arc<dyn EndedSessions>)>,
    last_store_warning: AtomicU64,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub(crate) fn now_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl SessionManager {
    /// A manager with `key`. Without a key it keeps `previous`'s ephemeral key, or makes
    /// one. Local state (sessions in use, ended sessions) is taken over from `previous`
    /// when the key is the same, so a reload never lets an ended session back in.
    pub fn new(key: Option<[u8; 32]>, settings: SessionSettings, previous: Option<&SessionManager>) -> Self {
        let ephemeral = key.is_none();
        let key = key.or_else(|| previous.filter(|p| p.ephemeral).map(|p| p.key)).unwrap_or_else(|| {
            let mut k = [0u8; 32];
            rand::rng().fill_bytes(&mut k);
            k
        });
        let state = previous.filter(|p| p.key == key).map_or_else(|| Arc::new(LocalState::new(settings.max_ended)), |p| p.state.clone());
        let limiter = (settings.initialize_rate > 0).then(|| InitLimiter::new(settings.initialize_rate, settings.initialize_burst));
        let idle_ticks = u32::try_from(settings.idle_ttl.as_millis() / TICK_MS).unwrap_or(u32::MAX);
        SessionManager { key, ephemeral, cipher: XChaCha20Poly1305::new(&key.into()), settings, idle_ticks, state, limiter, shared: None, last_store_warning: AtomicU64::new(0) }
    }

    /// Adds the fleet's store of ended sessions (`label` tells whether a reload may keep it).
    pub fn with_shared(mut self, label: &str, store: Arc<dyn EndedSessions>) -> Self {
        self.shared = Some((label.to_string(), store));
        self
    }

    /// Adds Redis at `url`, reusing `previous`'s connection when it was made for the same URL.
    pub fn add_redis(&mut self, url: &str, previous: Option<&SessionManager>) -> Result<(), StoreError> {
        let store: Arc<dyn EndedSessions> = match previous.and_then(|p| p.shared.as_ref()).filter(|(u, _)| u == url) {
            Some((_, store)) => store.clone(),
            None => Arc::new(RedisEnded::new(url)?),
        };
        self.shared = Some((url.to_string(), store));
        Ok(())
    }

    /// The settings in force.
    pub fn settings(&self) -> &SessionSettings {
        &self.settings
    }

    /// Whether a new session may be opened now for a client at `ip`: the rate limit, then
    /// the cap. Counted against the client's limit when it is.
    pub fn admission(&self, ip: Option<IpAddr>) -> Result<(), NewSessionRefusal> {
        if let (Some(limiter), Some(ip)) = (&self.limiter, ip) {
            if let Err(l) = limiter.check(ip) {
                METRICS.sessions_refused.with_label_values(&["rate_limited"]).inc();
                return Err(NewSessionRefusal::RateLimited(l));
            }
        }
        if self.state.active.len() >= self.settings.max_active {
            METRICS.sessions_refused.with_label_values(&["capacity"]).inc();
            return Err(NewSessionRefusal::Full(self.settings.max_active));
        }
        Ok(())
    }

    /// Issues a token for a new session. Nothing is stored until the token is used.
    pub fn issue(&self, route: &str, version: ProtocolVersion, binding: u64) -> String {
        token::seal(&self.cipher, route, version, now_secs() + self.settings.ttl.as_secs(), binding).0
    }

    /// Issues a token whose session is in use at once (a legacy SSE stream) and returns it
    /// with the session's local name.
    pub fn issue_with_id(&self, route: &str, version: ProtocolVersion, binding: u64) -> (String, u128) {
        let expires_at = now_secs() + self.settings.ttl.as_secs();
        let (text, tag) = token::seal(&self.cipher, route, version, expires_at, binding);
        self.insert(tag, route, version, expires_at, binding);
        (text, tag)
    }

    fn insert(&self, tag: u128, route: &str, version: ProtocolVersion, expires_at: u64, binding: u64) {
        let entry = Entry { expires_at: ended::clamp(expires_at), last_seen: AtomicU32::new(self.state.tick()), route: self.state.intern(route), version: version as u8, ended: AtomicBool::new(false), binding };
        self.state.active.entry(tag).or_insert(entry);
    }

    /// Opens a token without touching local state.
    pub fn open(&self, token: &str) -> Option<SessionClaims> {
        token::open(&self.cipher, token).map(|(c, _)| c)
    }

    /// Validates a token presented on `route` and records its use. A token already in use
    /// here costs a base64 decode and one map lookup; its first use here opens it and, with
    /// a shared store, asks the store whether it ended elsewhere.
    /// `binding` is the presenting caller's ([`crate::auth::binding`]): a session bound to
    /// another caller is [`SessionRejection::Unknown`] to this one.
    pub async fn check(&self, token: &str, route: &str, binding: u64) -> Result<SessionUse, SessionRejection> {
        let tag = token::tag(token).ok_or(SessionRejection::Unknown)?;
        if let Some(known) = self.known(tag, route, binding) {
            return known;
        }
        self.admit(token, route, binding).await
    }

    /// The hot path: a session in use here.
    fn known(&self, tag: u128, route: &str, binding: u64) -> Option<Result<SessionUse, SessionRejection>> {
        let entry = self.state.active.get(&tag)?;
        if !self.state.route_is(entry.route, route) || entry.binding != binding {
            return Some(Err(SessionRejection::Unknown));
        }
        if entry.ended.load(Ordering::Relaxed) || u64::from(entry.expires_at) <= now_secs() {
            return Some(Err(SessionRejection::Ended));
        }
        let now = self.state.tick();
        let last = entry.last_seen.swap(now, Ordering::Relaxed);
        if now.saturating_sub(last) > self.idle_ticks {
            drop(entry);
            self.end(tag);
            return Some(Err(SessionRejection::Ended));
        }
        let version = ProtocolVersion::from_index(entry.version).unwrap_or(ProtocolVersion::ASSUMED);
        Some(Ok(SessionUse { id: tag, version }))
    }

    /// First use of a token here: open it, refuse it if it ended (here or in the fleet's
    /// store), and start tracking it.
    async fn admit(&self, token: &str, route: &str, binding: u64) -> Result<SessionUse, SessionRejection> {
        let (claims, tag) = token::open(&self.cipher, token).ok_or(SessionRejection::Unknown)?;
        if claims.route != route || claims.binding != binding {
            return Err(SessionRejection::Unknown);
        }
        if claims.expires_at <= now_secs() || self.state.ended.contains(tag) {
            return Err(SessionRejection::Ended);
        }
        if let Some((_, store)) = &self.shared {
            match store.is_ended(tag).await {
                Ok(true) => {
                    self.state.ended.insert(tag, claims.expires_at);
                    return Err(SessionRejection::Ended);
                }
                Ok(false) => {}
                // Fail open: the token is authentic and unexpired; see docs/SESSIONS.md.
                Err(e) => self.store_failed("check", &e),
            }
        }
        if self.state.active.len() >= self.settings.max_active && !self.state.active.contains_key(&tag) {
            METRICS.sessions_refused.with_label_values(&["capacity"]).inc();
            return Err(SessionRejection::Full);
        }
        self.insert(tag, route, claims.version, claims.expires_at, binding);
        // A concurrent DELETE or sweep may have ended it meanwhile: ask the entry.
        self.known(tag, route, binding).unwrap_or(Err(SessionRejection::Ended))
    }

    fn store_failed(&self, what: &str, e: &StoreError) {
        METRICS.session_store_errors.inc();
        let now = now_millis();
        let last = self.last_store_warning.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 10_000 && self.last_store_warning.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            log::warn!("session store ({what}) failed, going on without it (ended sessions from other gateways may be accepted meanwhile): {e}");
        }
    }

    /// Records use of a session without a request (an open SSE stream is activity).
    pub fn touch(&self, id: u128) {
        if let Some(entry) = self.state.active.get(&id) {
            entry.last_seen.store(self.state.tick(), Ordering::Relaxed);
        }
    }

    /// Ends a session here: later use gets 404 until the token would have expired anyway.
    /// The fleet's store is told in the background.
    pub fn end(&self, id: u128) {
        if let Some(ended) = self.end_local(id) {
            self.share(vec![ended]);
        }
    }

    /// Ends a session and waits (bounded) until the fleet's store has it, so a DELETE
    /// answered 204 is refused by every gateway that has not seen the session yet.
    pub async fn delete(&self, id: u128) {
        let Some(ended) = self.end_local(id) else { return };
        if let Some((_, store)) = &self.shared {
            if let Err(e) = store.record(&[ended]).await {
                self.store_failed("record", &e);
            }
        }
    }

    /// Moves a session to the ended set, or marks it ended in place when the set is full.
    fn end_local(&self, id: u128) -> Option<(u128, u64)> {
        let expires_at = {
            let entry = self.state.active.get(&id)?;
            if entry.ended.swap(true, Ordering::Relaxed) {
                return None;
            }
            u64::from(entry.expires_at)
        };
        if self.state.ended.insert(id, expires_at) {
            self.state.active.remove(&id);
        }
        Some((id, expires_at))
    }

    fn share(&self, ended: Vec<(u128, u64)>) {
        let Some((_, store)) = &self.shared else { return };
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        let store = store.clone();
        rt.spawn(async move {
            for chunk in ended.chunks(1000) {
                if let Err(e) = store.record(chunk).await {
                    METRICS.session_store_errors.inc();
                    log::warn!("session store (record) failed; {} ended session(s) are known here only: {e}", chunk.len());
                    return;
                }
            }
        });
    }

    /// Ends sessions idle longer than the idle TTL, forgets expired tokens, and moves
    /// sessions ended in place to the ended set when it has room. Returns how many
    /// sessions are in use.
    pub fn sweep(&self) -> u64 {
        let now_s = now_secs();
        let now_t = self.state.tick();
        self.state.ended.purge(now_s);
        let mut room = self.state.ended.room();
        let mut newly_ended = Vec::new();
        let mut in_use = 0u64;
        self.state.active.retain(|tag, e| {
            if u64::from(e.expires_at) <= now_s {
                return false;
            }
            if !e.ended.load(Ordering::Relaxed) && now_t.saturating_sub(e.last_seen.load(Ordering::Relaxed)) > self.idle_ticks {
                e.ended.store(true, Ordering::Relaxed);
                newly_ended.push((*tag, u64::from(e.expires_at)));
            }
            if !e.ended.load(Ordering::Relaxed) {
                in_use += 1;
                return true;
            }
            if room > 0 && self.state.ended.insert(*tag, u64::from(e.expires_at)) {
                room -= 1;
                return false;
            }
            true
        });
        self.state.active.shrink_to_fit();
        self.share(newly_ended);
        in_use
    }

    /// Sessions tracked here: (in use or ended in place, in the ended set).
    pub fn counts(&self) -> (usize, usize) {
        (self.state.active.len(), self.state.ended.len())
    }
}

#[cfg(test)]
mod tests;
