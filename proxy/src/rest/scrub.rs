//! Keeping configured upstream secrets out of what an MCP client sees: a backend that
//! echoes its request (in an error body, a header, or a successful reply) must not hand
//! the API key the gateway added back to the client.
//!
//! Each REST server builds one [`Scrubber`] at load over every secret its tools send (see
//! [`SecretSet`]), and every upstream-derived result passes through it.

use std::borrow::Cow;

use aho_corasick::{AhoCorasick, MatchKind};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::value::RawValue;

use crate::tools::{CallToolResult, Content, Structured};

/// What replaces a secret.
pub const REDACTED: &str = "[redacted]";

/// Secrets shorter than this are not scrubbed: replacing every `1234` or `true` in a
/// reply would shred it, and a value that short is no secret worth the name.
pub const MIN_SECRET: usize = 4;

/// Whether a header, query parameter, argument or config key names something secret
/// (`X-API-Key`, `access_token`, `Authorization`, `client_secret`, `password`, ...), so a
/// configured value under it is scrubbed.
pub fn sensitive_name(name: &str) -> bool {
    const MARKERS: [&str; 10] = ["auth", "key", "token", "secret", "passw", "pwd", "credential", "session", "cookie", "signature"];
    let lower = name.to_ascii_lowercase();
    MARKERS.iter().any(|m| lower.contains(m))
}

/// The secrets of one server, with the forms they travel in, collected while its tools
/// are prepared.
#[derive(Debug, Default)]
pub struct SecretSet {
    values: Vec<String>,
}

impl SecretSet {
    /// Adds a secret as configured, and the forms a backend may echo it in: URL-encoded
    /// (query strings), JSON-escaped (a JSON echo of a header), and with `/` escaped as
    /// `\/` (some JSON encoders).
    pub fn add(&mut self, secret: &str) {
        if secret.len() < MIN_SECRET {
            return;
        }
        self.push(secret.to_string());
        let form = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>();
        self.push(form);
        self.push(percent_encoding::utf8_percent_encode(secret, super::request::SEGMENT).to_string());
        let json = serde_json::to_string(secret).unwrap_or_default();
        let json = json.trim_matches('"').to_string();
        if json.contains('/') {
            self.push(json.replace('/', "\\/"));
        }
        self.push(json);
    }

    /// Adds an HTTP Basic credential (`user:password`): the pair, its base64 token, and
    /// the password alone.
    pub fn add_basic(&mut self, pair: &str) {
        self.add(pair);
        self.add(&STANDARD.encode(pair));
        if let Some((_, password)) = pair.split_once(':') {
            self.add(password);
        }
    }

    /// Adds a header value: the whole value and, for `Scheme token` values
    /// (`Bearer …`, `Basic …`), the token (never the scheme word alone).
    pub fn add_header_value(&mut self, value: &str) {
        self.add(value);
        if let Some((_, token)) = value.trim().split_once(' ') {
            self.add(token.trim());
        }
    }

    fn push(&mut self, v: String) {
        if v.len() >= MIN_SECRET && !self.values.contains(&v) {
            self.values.push(v);
        }
    }

    /// The scrubber over these secrets.
    pub fn build(self) -> Scrubber {
        if self.values.is_empty() {
            return Scrubber { matcher: None };
        }
        // Leftmost-longest: `Bearer abc…` is replaced whole, not just its token.
        let matcher = AhoCorasick::builder().match_kind(MatchKind::LeftmostLongest).build(&self.values);
        match matcher {
            Ok(m) => Scrubber { matcher: Some(m) },
            Err(e) => {
                // Only a pattern set beyond aho-corasick's size limits gets here.
                log::error!("cannot build the secret scrubber ({e}); upstream replies are passed through unscrubbed");
                Scrubber { matcher: None }
            }
        }
    }
}

/// Replaces configured secrets with [`REDACTED`] in text a client will see.
#[derive(Debug, Default)]
pub struct Scrubber {
    matcher: Option<AhoCorasick>,
}

impl Scrubber {
    /// Whether there is nothing to scrub (a server without credentials).
    pub fn is_empty(&self) -> bool {
        self.matcher.is_none()
    }

    /// `text` with every secret replaced; borrowed when it held none (the usual case: one
    /// vectorized scan).
    pub fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match &self.matcher {
            Some(m) if m.is_match(text) => Cow::Owned(m.replace_all(text, &vec![REDACTED; m.patterns_len()])),
            _ => Cow::Borrowed(text),
        }
    }

    /// A result with every secret replaced in its text blocks and structured content. A
    /// structured body that is no longer valid JSON after the replacement (a secret that
    /// straddled a string's end) is dropped; its text copy stays.
    pub fn scrub_result(&self, mut result: CallToolResult) -> CallToolResult {
        if self.is_empty() {
            return result;
        }
        // Whether the first text block held no secret: a raw structured body is usually
        // the same text, which then needs no second scan.
        let mut first_clean = false;
        for (i, c) in result.content.iter_mut().enumerate() {
            if let Content::Text { text } = c {
                match self.scrub(text) {
                    Cow::Owned(clean) => *text = clean,
                    Cow::Borrowed(_) => first_clean |= i == 0,
                }
            }
        }
        let same_as_clean_text = |raw: &str| first_clean && matches!(result.content.first(), Some(Content::Text { text }) if text == raw);
        result.structured_content = match result.structured_content.take() {
            Some(Structured::Raw(raw)) if same_as_clean_text(raw.get()) => Some(Structured::Raw(raw)),
            Some(Structured::Raw(raw)) => match self.scrub(raw.get()) {
                Cow::Borrowed(_) => Some(Structured::Raw(raw)),
                Cow::Owned(clean) => RawValue::from_string(clean).ok().map(Structured::Raw),
            },
            Some(Structured::Value(v)) => {
                let text = v.to_string();
                match self.scrub(&text) {
                    Cow::Borrowed(_) => Some(Structured::Value(v)),
                    Cow::Owned(clean) => serde_json::from_str(&clean).ok().map(Structured::Value),
                }
            }
            None => None,
        };
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_every_form_are_replaced_and_short_ones_ignored() {
        let mut s = SecretSet::default();
        s.add("k3y/with space&more");
        s.add_basic("alice:pa55word");
        s.add_header_value("Bearer tok-123456");
        s.add("abc");
        let s = s.build();
        assert_eq!(s.scrub("q=k3y%2Fwith+space%26more&x=1"), "q=[redacted]&x=1");
        assert_eq!(s.scrub(r#"{"h":"k3y\/with space&more"}"#), r#"{"h":"[redacted]"}"#);
        assert_eq!(s.scrub(&format!("Authorization: Basic {}", STANDARD.encode("alice:pa55word"))), "Authorization: Basic [redacted]");
        assert_eq!(s.scrub("password pa55word"), "password [redacted]");
        assert_eq!(s.scrub("Authorization: Bearer tok-123456"), "Authorization: [redacted]");
        assert_eq!(s.scrub("abc is too short to be a secret"), "abc is too short to be a secret");
        assert!(matches!(s.scrub("nothing here"), Cow::Borrowed(_)));
        assert!(SecretSet::default().build().is_empty());
    }

    #[test]
    fn results_are_scrubbed_and_broken_structure_dropped() {
        let mut s = SecretSet::default();
        s.add("sekrit-value");
        let s = s.build();
        let raw = RawValue::from_string(r#"{"echo":"sekrit-value"}"#.into()).unwrap();
        let r = s.scrub_result(CallToolResult { content: vec![Content::Text { text: raw.get().into() }], structured_content: Some(Structured::Raw(raw)), is_error: false });
        assert_eq!(r.structured_content.map(|v| v.to_value()), Some(serde_json::json!({"echo": "[redacted]"})));
        assert!(matches!(&r.content[0], Content::Text { text } if !text.contains("sekrit")));
        assert!(sensitive_name("X-API-Key") && sensitive_name("access_token") && sensitive_name("Authorization") && !sensitive_name("status"));
    }
}
