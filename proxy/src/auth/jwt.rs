//! JWT access tokens: issuers from `auth.jwt`, keys from a JWKS (URL or file) or a shared
//! secret, and the checks of `iss`, `aud`, `exp`, `nbf`.
//!
//! Stub: the interface the authenticator uses; verification comes next.

use std::path::Path;
use std::sync::Arc;

use super::config::{ConsumerConfig, JwtProviderConfig};
use super::{BuildError, Principal};

/// Why a token was refused; each is the `reason` label of auth failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    /// Not a decodable JWT.
    #[error("the token is not a well-formed JWT")]
    Malformed,
    /// Verification is not available.
    #[error("JWT verification is not available")]
    Unavailable,
}

impl TokenRejection {
    /// The `reason` label.
    pub fn label(&self) -> &'static str {
        match self {
            TokenRejection::Malformed => "malformed_token",
            TokenRejection::Unavailable => "unavailable",
        }
    }
}

/// Whether a bearer value has a JWT's shape (three base64url parts), so it is verified as
/// one rather than looked up as an API key.
pub fn looks_like_jwt(value: &str) -> bool {
    value.split('.').count() == 3 && value.starts_with("ey")
}

/// Checks the `algorithms` of an issuer.
pub fn check_algorithms(j: &JwtProviderConfig) -> Result<(), String> {
    for a in &j.algorithms {
        if !matches!(a.as_str(), "RS256" | "RS384" | "RS512" | "PS256" | "ES256" | "ES384" | "EdDSA" | "HS256") {
            return Err(format!("unsupported algorithm `{a}`; one of RS256, RS384, RS512, PS256, ES256, ES384, EdDSA, HS256"));
        }
    }
    Ok(())
}

/// The configured issuers with their keys.
pub struct Verifiers {}

impl Verifiers {
    /// Builds the issuers' verifiers (keys loaded or fetched).
    pub async fn build(_issuers: &[JwtProviderConfig], _consumers: &[ConsumerConfig], _base_dir: &Path, _previous: Option<&Verifiers>) -> Result<Self, BuildError> {
        Ok(Verifiers {})
    }

    /// Verifies `token`; with `resource` (the server's OAuth resource URI) its audience
    /// must name it.
    pub async fn verify(&self, _token: &str, _resource: Option<&str>) -> Result<Arc<Principal>, TokenRejection> {
        Err(TokenRejection::Unavailable)
    }
}
