//! Sealed session tokens.
//!
//! A session id is an AEAD-sealed token (XChaCha20-Poly1305) carrying the route, the
//! negotiated protocol version and the expiry. Any gateway holding the same key accepts
//! it with no shared store, and a client learns nothing from it. What a token cannot
//! carry is kept locally: sessions that ended (DELETE, idle expiry) are remembered until
//! their token expires, and last use is tracked for the idle TTL.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use moka::sync::Cache;
use rand::RngCore;

use super::version::ProtocolVersion;

const AAD: &[u8] = b"mcpgate-session-v1";
const FORMAT: u8 = 1;

/// Parses a 32-byte session key written as base64 (standard or URL-safe) or 64 hex digits.
pub fn parse_key(text: &str) -> Result<[u8; 32], String> {
    let t = text.trim();
    let bytes = if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..32).map(|i| u8::from_str_radix(&t[2 * i..2 * i + 2], 16)).collect::<Result<Vec<u8>, _>>().map_err(|e| e.to_string())?
    } else {
        STANDARD.decode(t).or_else(|_| URL_SAFE.decode(t)).or_else(|_| URL_SAFE_NO_PAD.decode(t)).map_err(|_| "the session key must be 32 bytes as base64 or 64 hex digits (try `openssl rand -base64 32`)".to_string())?
    };
    bytes.try_into().map_err(|b: Vec<u8>| format!("the session key must be 32 bytes, got {}", b.len()))
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionClaims {
    /// Random session identity (never shown to clients in clear).
    pub id: u128,
    /// The route the session belongs to.
    pub route: String,
    /// The negotiated protocol version.
    pub version: ProtocolVersion,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: u64,
}

/// What a request needs from an accepted session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionUse {
    /// Random session identity.
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
}

/// Local state of a session this instance has seen.
struct Live {
    claims: SessionClaims,
    last_seen: AtomicU64,
    ended: AtomicBool,
}

/// Seals and opens tokens, and remembers local session state.
///
/// Opening a token (base64 + XChaCha20-Poly1305) costs microseconds; a client sends the
/// same token on every request, so tokens that opened once are kept by their exact text
/// and later requests cost one map lookup. The sealed token stays the only authority:
/// nothing enters the cache that did not open under the key.
pub struct SessionManager {
    cipher: XChaCha20Poly1305,
    ttl: Duration,
    idle_ttl: Duration,
    /// Sessions in use, by id (idle tracking, sweeping, SSE activity).
    live: Cache<u128, Arc<Live>>,
    /// Tokens that opened, by their text. Weak: an entry lives only while its session is
    /// in `live`, so ending, sweeping or evicting a session also retires its cached token
    /// (the next request opens it again and meets the `ended` record).
    /// Hashed with foldhash (seeded per process): only tokens that opened get in, so
    /// SipHash's flood resistance buys nothing here, and it costs more than the rest
    /// of the lookup for a ~100-byte token.
    opened: Cache<Box<str>, Weak<Live>, foldhash::fast::RandomState>,
    /// Ended sessions, remembered until their tokens expire.
    ended: Cache<u128, ()>,
}

/// Most tokens kept opened; beyond it the least used are opened again when they return.
const OPENED_CAPACITY: u64 = 100_000;

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn now_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl SessionManager {
    /// A manager with `key` (or a fresh random key when `None`).
    pub fn new(key: Option<[u8; 32]>, ttl: Duration, idle_ttl: Duration) -> Self {
        let key = key.unwrap_or_else(|| {
            let mut k = [0u8; 32];
            rand::rng().fill_bytes(&mut k);
            k
        });
        SessionManager {
            cipher: XChaCha20Poly1305::new(&key.into()),
            ttl,
            idle_ttl,
            live: Cache::builder().max_capacity(1_000_000).time_to_live(ttl).build(),
            opened: Cache::builder().max_capacity(OPENED_CAPACITY).time_to_live(ttl).build_with_hasher(foldhash::fast::RandomState::default()),
            ended: Cache::builder().max_capacity(1_000_000).time_to_live(ttl).build(),
        }
    }

    /// Issues a token for a new session.
    pub fn issue(&self, route: &str, version: ProtocolVersion) -> String {
        self.issue_with_id(route, version).0
    }

    /// Issues a token and returns it with the session's identity.
    pub fn issue_with_id(&self, route: &str, version: ProtocolVersion) -> (String, u128) {
        let mut rng = rand::rng();
        let id = ((rng.next_u64() as u128) << 64) | rng.next_u64() as u128;
        let expires_at = now_secs() + self.ttl.as_secs();
        let mut plain = Vec::with_capacity(34 + route.len());
        plain.push(FORMAT);
        plain.push(version as u8);
        plain.extend_from_slice(&expires_at.to_be_bytes());
        plain.extend_from_slice(&id.to_be_bytes());
        plain.extend_from_slice(route.as_bytes());
        let mut nonce = [0u8; 24];
        rng.fill_bytes(&mut nonce);
        // Sealing with a valid key and nonce cannot fail.
        let sealed = self.cipher.encrypt(XNonce::from_slice(&nonce), Payload { msg: &plain, aad: AAD }).unwrap_or_default();
        let mut out = Vec::with_capacity(24 + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        let claims = SessionClaims { id, route: route.to_string(), version, expires_at };
        self.live.insert(id, Arc::new(Live { claims, last_seen: AtomicU64::new(now_millis()), ended: AtomicBool::new(false) }));
        (URL_SAFE_NO_PAD.encode(out), id)
    }

    /// Opens a token without touching local state.
    pub fn open(&self, token: &str) -> Option<SessionClaims> {
        if token.len() > 512 {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(token).ok()?;
        if raw.len() < 24 + 16 {
            return None;
        }
        let (nonce, sealed) = raw.split_at(24);
        let plain = self.cipher.decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: AAD }).ok()?;
        if plain.len() < 26 || plain[0] != FORMAT {
            return None;
        }
        let version = ProtocolVersion::from_index(plain[1])?;
        let expires_at = u64::from_be_bytes(plain[2..10].try_into().ok()?);
        let id = u128::from_be_bytes(plain[10..26].try_into().ok()?);
        let route = String::from_utf8(plain[26..].to_vec()).ok()?;
        Some(SessionClaims { id, route, version, expires_at })
    }

    /// Validates a token presented on `route` and records its use.
    pub fn check(&self, token: &str, route: &str) -> Result<SessionUse, SessionRejection> {
        let live = match self.opened.get(token).and_then(|w| w.upgrade()) {
            Some(live) => live,
            None => self.admit(token)?,
        };
        let claims = &live.claims;
        if claims.route != route {
            return Err(SessionRejection::Unknown);
        }
        let now = now_millis();
        if live.ended.load(Ordering::Relaxed) || claims.expires_at.saturating_mul(1000) <= now {
            return Err(SessionRejection::Ended);
        }
        let last = live.last_seen.swap(now, Ordering::Relaxed);
        if now.saturating_sub(last) > self.idle_ttl.as_millis() as u64 {
            self.end(claims.id);
            return Err(SessionRejection::Ended);
        }
        Ok(SessionUse { id: claims.id, version: claims.version })
    }

    /// Opens a token not seen (or no longer kept) and keeps it for the next request.
    fn admit(&self, token: &str) -> Result<Arc<Live>, SessionRejection> {
        let claims = self.open(token).ok_or(SessionRejection::Unknown)?;
        if self.ended.contains_key(&claims.id) {
            return Err(SessionRejection::Ended);
        }
        // Issued here, or by another gateway of the fleet or before a restart: adopt it.
        let id = claims.id;
        let live = self.live.get_with(id, || Arc::new(Live { claims, last_seen: AtomicU64::new(now_millis()), ended: AtomicBool::new(false) }));
        self.opened.insert(token.into(), Arc::downgrade(&live));
        Ok(live)
    }

    /// Records use of a session without a request (an open SSE stream is activity).
    pub fn touch(&self, id: u128) {
        if let Some(live) = self.live.get(&id) {
            live.last_seen.store(now_millis(), Ordering::Relaxed);
        }
    }

    /// Ends a session: later use gets 404 until the token would have expired anyway.
    pub fn end(&self, id: u128) {
        self.ended.insert(id, ());
        if let Some(live) = self.live.get(&id) {
            live.ended.store(true, Ordering::Relaxed);
        }
        self.live.invalidate(&id);
    }

    /// Ends sessions idle longer than the idle TTL; returns how many are still active.
    pub fn sweep(&self) -> u64 {
        let now = now_millis();
        let idle = self.idle_ttl.as_millis() as u64;
        let stale: Vec<u128> = self.live.iter().filter(|(_, live)| now.saturating_sub(live.last_seen.load(Ordering::Relaxed)) > idle).map(|(id, _)| *id).collect();
        for id in stale {
            self.end(id);
        }
        self.live.run_pending_tasks();
        self.opened.run_pending_tasks();
        self.live.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mgr() -> SessionManager {
        SessionManager::new(Some([7u8; 32]), Duration::from_secs(3600), Duration::from_secs(600))
    }

    #[test]
    fn tokens_round_trip_and_are_bound_to_their_route() {
        let m = mgr();
        let t = m.issue("petstore", ProtocolVersion::V2025_06_18);
        assert!(t.bytes().all(|b| (0x21..=0x7e).contains(&b)));
        let c = m.check(&t, "petstore").unwrap();
        assert_eq!(c.version, ProtocolVersion::V2025_06_18);
        assert_eq!(m.check(&t, "other"), Err(SessionRejection::Unknown));
        assert!(!t.contains("petstore"));
    }

    #[test]
    fn another_gateway_with_the_same_key_accepts_the_token() {
        let t = mgr().issue("a", ProtocolVersion::V2025_11_25);
        assert!(mgr().check(&t, "a").is_ok());
        let other = SessionManager::new(Some([8u8; 32]), Duration::from_secs(60), Duration::from_secs(60));
        assert_eq!(other.check(&t, "a"), Err(SessionRejection::Unknown));
    }

    #[test]
    fn ended_sessions_stay_ended() {
        let m = mgr();
        let t = m.issue("a", ProtocolVersion::V2025_03_26);
        let id = m.check(&t, "a").unwrap().id;
        m.end(id);
        assert_eq!(m.check(&t, "a"), Err(SessionRejection::Ended));
    }

    #[test]
    fn a_cached_token_cannot_outlive_its_session() {
        let m = mgr();
        let t = m.issue("a", ProtocolVersion::V2025_06_18);
        let id = m.check(&t, "a").unwrap().id;
        // The session leaves `live` (as an eviction would) before it is ended: the cached
        // token must not keep it alive.
        m.live.invalidate(&id);
        m.live.run_pending_tasks();
        m.end(id);
        assert_eq!(m.check(&t, "a"), Err(SessionRejection::Ended));
    }

    #[test]
    fn tampered_tokens_are_unknown() {
        let m = mgr();
        let mut t = m.issue("a", ProtocolVersion::V2025_03_26).into_bytes();
        let last = t.len() - 3;
        t[last] = if t[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(m.check(std::str::from_utf8(&t).unwrap(), "a"), Err(SessionRejection::Unknown));
        assert_eq!(m.check("garbage", "a"), Err(SessionRejection::Unknown));
    }

    #[test]
    fn keys_parse_from_base64_and_hex() {
        assert!(parse_key(&STANDARD.encode([1u8; 32])).is_ok());
        assert!(parse_key(&"ab".repeat(32)).is_ok());
        assert!(parse_key("short").is_err());
        assert!(parse_key(&STANDARD.encode([1u8; 16])).is_err());
    }
}
