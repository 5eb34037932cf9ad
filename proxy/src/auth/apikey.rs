//! API keys: stored as SHA-256 hashes, looked up by digest, compared in constant time.
//!
//! Keys are random strings the gateway's operator hands out (`mcpgate hash-key
//! --generate`), so a fast hash is the right one: there is no low-entropy password to
//! stretch, and the check costs well under a microsecond per request.

use std::collections::HashMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Principal;

/// Prefix of a stored key hash.
pub const HASH_PREFIX: &str = "sha256:";

/// The stored form of `key`: `sha256:<64 hex digits>`.
pub fn hash(key: &str) -> String {
    format!("{HASH_PREFIX}{}", hex::encode(Sha256::digest(key.as_bytes())))
}

/// A fresh random key (32 bytes, base64url): what `mcpgate hash-key --generate` prints.
pub fn generate() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    format!("mcpg_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The digest a stored hash names, or why it is not one.
pub fn parse_hash(stored: &str) -> Result<[u8; 32], String> {
    let hexed = stored.strip_prefix(HASH_PREFIX).ok_or_else(|| format!("`{}` is not a key hash: store `sha256:<64 hex digits>` as printed by `mcpgate hash-key`, never the key itself", redact(stored)))?;
    let bytes = hex::decode(hexed).map_err(|_| "a key hash is `sha256:` followed by 64 hex digits".to_string())?;
    bytes.try_into().map_err(|_| "a key hash is `sha256:` followed by 64 hex digits".to_string())
}

/// Enough of a value to recognise it in a message, never the whole of a secret.
fn redact(s: &str) -> String {
    let head: String = s.chars().take(4).collect();
    format!("{head}…")
}

/// The keys whose digests share a prefix, with whose each is.
type Bucket = Vec<([u8; 32], Arc<Principal>)>;

/// Every configured key, by digest.
#[derive(Default)]
pub struct KeyIndex {
    /// By the digest's first 8 bytes; the whole digest is compared in constant time.
    by_prefix: HashMap<u64, Bucket, foldhash::fast::RandomState>,
}

impl KeyIndex {
    /// Indexes `digest` as a key of `principal`.
    pub fn insert(&mut self, digest: [u8; 32], principal: Arc<Principal>) {
        self.by_prefix.entry(prefix(&digest)).or_default().push((digest, principal));
    }

    /// Whether any key is configured.
    pub fn is_empty(&self) -> bool {
        self.by_prefix.is_empty()
    }

    /// The consumer `key` belongs to.
    pub fn find(&self, key: &[u8]) -> Option<&Arc<Principal>> {
        let digest: [u8; 32] = Sha256::digest(key).into();
        let candidates = self.by_prefix.get(&prefix(&digest))?;
        let mut found = None;
        for (d, p) in candidates {
            if bool::from(d.ct_eq(&digest)) {
                found = Some(p);
            }
        }
        found
    }
}

fn prefix(d: &[u8; 32]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_found_by_its_hash_and_only_by_it() {
        let key = generate();
        let stored = hash(&key);
        assert!(stored.starts_with("sha256:") && stored.len() == 71);
        let mut index = KeyIndex::default();
        index.insert(parse_hash(&stored).unwrap(), Arc::new(Principal::consumer("alice", &[], 1)));
        assert_eq!(index.find(key.as_bytes()).map(|p| p.name()), Some("alice"));
        assert!(index.find(b"not-the-key").is_none());
        assert!(parse_hash(&key).unwrap_err().contains("never the key itself"));
        assert!(!parse_hash(&key).unwrap_err().contains(&key[5..]), "the message must not echo a key");
    }
}
