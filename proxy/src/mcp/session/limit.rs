//! The per-client limit on new sessions (`initialize`, legacy SSE GETs).
//!
//! Counting uses `pingora-limits`' rate estimator: a count–min sketch of fixed size, so
//! the limiter's memory does not grow with the number of clients (a flood from many
//! addresses cannot inflate it the way a map of per-address buckets would). The price is
//! overestimation when very many clients share the sketch's counters; 4 × 16384 counters
//! keep that negligible below tens of thousands of clients per window.

use std::net::IpAddr;
use std::time::Duration;

use pingora_limits::rate::Rate;

const HASHES: usize = 4;
const SLOTS: usize = 16_384;

/// At most `burst` new sessions per client in each window of `burst / rate` seconds,
/// which is `rate` per second sustained.
pub struct InitLimiter {
    rate: Rate,
    burst: isize,
    per_second: u32,
}

/// A client over its limit, and when it may try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// Whole seconds until the current window ends (at least 1).
    pub retry_after: u64,
    /// The configured sustained rate, per second.
    pub per_second: u32,
    /// The configured burst.
    pub burst: u32,
}

impl InitLimiter {
    /// A limiter for `per_second` sustained and `burst` at once (validated at load:
    /// `per_second > 0`, `burst >= per_second`).
    pub fn new(per_second: u32, burst: u32) -> Self {
        let window = Duration::from_secs_f64(f64::from(burst.max(per_second)) / f64::from(per_second.max(1))).max(Duration::from_secs(1));
        InitLimiter { rate: Rate::new_with_estimator_config(window, HASHES, SLOTS), burst: burst.max(per_second) as isize, per_second }
    }

    /// Counts a new session for `ip`; `Err` when it is over the limit.
    pub fn check(&self, ip: IpAddr) -> Result<(), Limited> {
        let key = client_key(ip);
        if self.rate.observe(&key, 1) <= self.burst {
            return Ok(());
        }
        let left = self.rate.rate_with(&key, |c| c.interval.as_secs_f64() * (1.0 - c.current_interval_fraction));
        Err(Limited { retry_after: (left.ceil() as u64).max(1), per_second: self.per_second, burst: self.burst as u32 })
    }
}

/// IPv4 by address; IPv6 by /64, the block one host usually controls (counting single
/// addresses would let it rotate through 2^64 of them).
fn client_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(u32::from(v4)),
            None => u128::from(v6) & !((1u128 << 64) - 1),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_burst_then_is_limited_and_others_are_not() {
        let l = InitLimiter::new(5, 10);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..10 {
            assert!(l.check(a).is_ok());
        }
        let e = l.check(a).unwrap_err();
        assert!(e.retry_after >= 1 && e.retry_after <= 2, "{e:?}");
        assert_eq!((e.per_second, e.burst), (5, 10));
        assert!(l.check("192.0.2.2".parse().unwrap()).is_ok());
    }

    #[test]
    fn ipv6_is_counted_per_64() {
        let l = InitLimiter::new(1, 2);
        assert!(l.check("2001:db8::1".parse().unwrap()).is_ok());
        assert!(l.check("2001:db8::2".parse().unwrap()).is_ok());
        assert!(l.check("2001:db8::3".parse().unwrap()).is_err(), "same /64");
        assert!(l.check("2001:db8:0:1::1".parse().unwrap()).is_ok(), "another /64");
        assert_eq!(client_key("::ffff:192.0.2.1".parse().unwrap()), client_key("192.0.2.1".parse().unwrap()));
    }
}
