//! Per-consumer upstream credentials (`consumers[].upstream.{server}.headers`): consumer
//! A's calls to an OpenAPI/REST server carry A's own upstream key instead of the
//! server-wide one, so the upstream sees (and can limit or audit) who is calling.

use std::sync::Arc;

use http::{HeaderName, HeaderValue};

use super::{ConsumerConfig, Principal};

/// Headers to set, replacing any of the same name the server planned.
pub type Headers = Arc<[(HeaderName, HeaderValue)]>;

/// One route's consumer credentials, by consumer position.
#[derive(Default)]
pub struct ConsumerCredentials {
    by_consumer: Box<[Option<Headers>]>,
}

impl ConsumerCredentials {
    /// The credentials `consumers` configured for server `route` (validated at load:
    /// header names and values that do not parse are skipped, never sent).
    pub fn build(route: &str, consumers: &[ConsumerConfig]) -> Self {
        let by_consumer: Box<[Option<Headers>]> = consumers
            .iter()
            .map(|c| {
                let cred = c.upstream.get(route)?;
                let headers: Vec<_> = cred.headers.iter().filter_map(|(n, v)| Some((HeaderName::from_bytes(n.as_bytes()).ok()?, sensitive(HeaderValue::from_str(v).ok()?)))).collect();
                Some(headers.into())
            })
            .collect();
        if by_consumer.iter().all(Option::is_none) {
            return ConsumerCredentials::default();
        }
        ConsumerCredentials { by_consumer }
    }

    /// The headers of `principal`'s own credential for this route, if it has one.
    pub fn for_principal(&self, principal: Option<&Principal>) -> Option<&Headers> {
        self.by_consumer.get(principal?.consumer_index()?)?.as_ref()
    }

    /// Sets `principal`'s headers on an outgoing request's `headers`.
    pub fn apply(&self, principal: Option<&Principal>, headers: &mut Vec<(HeaderName, HeaderValue)>) {
        let Some(own) = self.for_principal(principal) else { return };
        headers.retain(|(n, _)| !own.iter().any(|(m, _)| m == n));
        headers.extend(own.iter().cloned());
    }
}

/// Marks a credential so HTTP/2 never indexes it (HPACK) and debug output hides it.
fn sensitive(mut v: HeaderValue) -> HeaderValue {
    v.set_sensitive(true);
    v
}
