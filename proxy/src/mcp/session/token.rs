//! The sealed token format: `base64url(nonce[24] ‖ XChaCha20-Poly1305(plain) ‖ tag[16])`,
//! where `plain = format[1] ‖ version[1] ‖ expires_at[8, BE] ‖ id[16] ‖ binding[8, BE] ‖ route`
//! (format 2; format 1, without `binding`, opens as an anonymous caller's).
//!
//! `binding` names the caller that initialized the session ([`crate::auth::Principal::binding`]):
//! another caller presenting the token is refused as if it were unknown.
//!
//! The Poly1305 tag names the token locally: it is unique per issued token and
//! unguessable, so a map keyed by it can only be hit by someone who already holds the
//! token (and whatever bytes they change elsewhere, a hit yields the claims that opened
//! under the key, never claims of their choosing).

use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

use super::super::version::ProtocolVersion;

const AAD: &[u8] = b"mcpgate-session-v1";
const FORMAT: u8 = 2;
/// Bytes before the route: format, version, expiry, id, binding.
const HEAD: usize = 34;
const NONCE: usize = 24;
const TAG: usize = 16;
/// Longest token text accepted (a route name is at most a few hundred bytes).
pub const MAX_TOKEN: usize = 512;

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
    /// Random identity sealed inside the token (kept for the format; the gateway names a
    /// session by its token's tag, see [`tag`]).
    pub id: u128,
    /// The route the session belongs to.
    pub route: String,
    /// The negotiated protocol version.
    pub version: ProtocolVersion,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: u64,
    /// The caller the session is bound to (0: anonymous).
    pub binding: u64,
}

/// Seals claims for a new session; returns the token text and its tag.
pub fn seal(cipher: &XChaCha20Poly1305, route: &str, version: ProtocolVersion, expires_at: u64, binding: u64) -> (String, u128) {
    let mut rng = rand::rng();
    let id = ((rng.next_u64() as u128) << 64) | rng.next_u64() as u128;
    let mut plain = Vec::with_capacity(HEAD + route.len());
    plain.push(FORMAT);
    plain.push(version as u8);
    plain.extend_from_slice(&expires_at.to_be_bytes());
    plain.extend_from_slice(&id.to_be_bytes());
    plain.extend_from_slice(&binding.to_be_bytes());
    plain.extend_from_slice(route.as_bytes());
    let mut nonce = [0u8; NONCE];
    rng.fill_bytes(&mut nonce);
    // Sealing with a valid key and nonce cannot fail.
    let sealed = cipher.encrypt(XNonce::from_slice(&nonce), Payload { msg: &plain, aad: AAD }).unwrap_or_default();
    let mut out = Vec::with_capacity(NONCE + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    (URL_SAFE_NO_PAD.encode(&out), tag_of(&out).unwrap_or_default())
}

fn tag_of(raw: &[u8]) -> Option<u128> {
    let tail: [u8; TAG] = raw.get(raw.len().checked_sub(TAG)?..)?.try_into().ok()?;
    Some(u128::from_be_bytes(tail))
}

/// Decodes `token` into `buf` (no allocation); `None` if it is not a token's shape.
fn decode<'b>(token: &str, buf: &'b mut [u8; MAX_TOKEN]) -> Option<&'b [u8]> {
    if token.len() > MAX_TOKEN {
        return None;
    }
    let n = URL_SAFE_NO_PAD.decode_slice(token, &mut buf[..]).ok()?;
    let raw = &buf[..n];
    (raw.len() >= NONCE + TAG + 26).then_some(raw)
}

/// The tag of a token-shaped text, without opening it (a lookup key, not a proof).
///
/// Every request presents its token, so only the base64 group holding the tag's first
/// byte and what follows are decoded (about 24 characters, not the whole token).
pub fn tag(token: &str) -> Option<u128> {
    let chars = token.len();
    // Unpadded base64: a final group of 2 or 3 characters carries 1 or 2 bytes; 1 is no
    // encoding.
    if chars > MAX_TOKEN || chars % 4 == 1 {
        return None;
    }
    let bytes = chars / 4 * 3 + [0, 0, 1, 2][chars % 4];
    if bytes < NONCE + TAG + 26 {
        return None;
    }
    let start = (bytes - TAG) / 3 * 4;
    let mut buf = [0u8; TAG + 3];
    let n = URL_SAFE_NO_PAD.decode_slice(token.get(start..)?, &mut buf).ok()?;
    tag_of(&buf[..n])
}

/// Opens a token; `None` unless it was sealed under this key and is well formed.
pub fn open(cipher: &XChaCha20Poly1305, token: &str) -> Option<(SessionClaims, u128)> {
    let mut buf = [0u8; MAX_TOKEN];
    let raw = decode(token, &mut buf)?;
    let (nonce, sealed) = raw.split_at(NONCE);
    let plain = cipher.decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: AAD }).ok()?;
    let (binding, head) = match plain.first() {
        Some(1) if plain.len() >= 26 => (0, 26),
        Some(&FORMAT) if plain.len() >= HEAD => (u64::from_be_bytes(plain[26..34].try_into().ok()?), HEAD),
        _ => return None,
    };
    let version = ProtocolVersion::from_index(plain[1])?;
    let expires_at = u64::from_be_bytes(plain[2..10].try_into().ok()?);
    let id = u128::from_be_bytes(plain[10..26].try_into().ok()?);
    let route = String::from_utf8(plain[head..].to_vec()).ok()?;
    Some((SessionClaims { id, route, version, expires_at, binding }, tag_of(raw)?))
}

#[cfg(test)]
mod tag_tests {
    use super::*;

    #[test]
    fn the_tag_from_the_tail_is_the_tag_of_the_whole_token() {
        // Every length class of unpadded base64 (route names 1..=12 bytes long).
        for len in 1..=12 {
            let route = "r".repeat(len);
            let mut raw = vec![7u8; NONCE + 26 + len + TAG];
            for (i, b) in raw.iter_mut().enumerate() {
                *b = (i * 37 % 251) as u8;
            }
            let token = URL_SAFE_NO_PAD.encode(&raw);
            let mut buf = [0u8; MAX_TOKEN];
            assert_eq!(tag(&token), tag_of(decode(&token, &mut buf).unwrap()), "route of {len} bytes ({route})");
        }
        assert_eq!(tag("short"), None);
        assert_eq!(tag(&"A".repeat(MAX_TOKEN + 1)), None);
        assert_eq!(tag(&format!("{}*", "A".repeat(95))), None, "not base64");
    }
}
