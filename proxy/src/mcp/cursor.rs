//! Opaque `tools/list` cursors.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Encodes a list offset as an opaque cursor.
pub fn encode(offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("mcpgate:{offset}"))
}

/// Decodes a cursor made by [`encode`]; `None` for anything else.
pub fn decode(cursor: &str) -> Option<usize> {
    let raw = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    std::str::from_utf8(&raw).ok()?.strip_prefix("mcpgate:")?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips_and_rejects_garbage() {
        assert_eq!(super::decode(&super::encode(200)), Some(200));
        assert_eq!(super::decode("not-a-cursor"), None);
        assert_eq!(super::decode(""), None);
    }
}
