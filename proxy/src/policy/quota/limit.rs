//! The two limit algorithms and the in-process counters.
//!
//! A rate limit is GCRA (the generic cell rate algorithm, a token bucket kept as one
//! timestamp): each call moves a "theoretical arrival time" one interval on, and a call is
//! refused when that time runs more than `burst` intervals ahead of now. A quota is a
//! fixed window: a count per window index, reset when the window changes. Both are exact
//! and need one small record per counter, which is what lets Redis run the same
//! arithmetic in one script (see `redis.rs`).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// One limit as the counters see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// GCRA: one call per `interval_us` on average, `burst` at once.
    Rate {
        /// Microseconds between calls at the sustained rate.
        interval_us: u64,
        /// Calls allowed at once.
        burst: u32,
    },
    /// At most `max` calls per window of `window_ms`, windows aligned to the Unix epoch.
    Window {
        /// The window length.
        window_ms: u64,
        /// Calls per window.
        max: u32,
    },
}

/// A counter's state.
#[derive(Debug, Clone, Copy)]
enum State {
    /// GCRA's theoretical arrival time, Unix microseconds.
    Tat(u64),
    /// Window index and the calls counted in it.
    Count { window: u64, n: u32 },
}

impl State {
    /// When the record stops affecting any call (Unix microseconds): it can be forgotten.
    fn expires_us(&self, kind: &Kind) -> u64 {
        match (*self, *kind) {
            (State::Tat(t), _) => t,
            (State::Count { window, .. }, Kind::Window { window_ms, .. }) => (window + 1).saturating_mul(window_ms.max(1)).saturating_mul(1000),
            (State::Count { .. }, Kind::Rate { .. }) => 0,
        }
    }
}

/// What one counter says about one more call at `now_us`: the state to store when every
/// counter of the call agrees, or how long until it would.
fn decide(state: Option<State>, kind: &Kind, now_us: u64) -> Result<State, Duration> {
    match *kind {
        Kind::Rate { interval_us, burst } => {
            let tat = match state {
                Some(State::Tat(t)) => t.max(now_us),
                _ => now_us,
            };
            let next = tat.saturating_add(interval_us);
            let allowed_until = now_us.saturating_add(interval_us.saturating_mul(u64::from(burst)));
            if next > allowed_until {
                Err(Duration::from_micros(next - allowed_until))
            } else {
                Ok(State::Tat(next))
            }
        }
        Kind::Window { window_ms, max } => {
            let window_ms = window_ms.max(1);
            let now_ms = now_us / 1000;
            let current = now_ms / window_ms;
            let n = match state {
                Some(State::Count { window, n }) if window == current => n,
                _ => 0,
            };
            if n >= max {
                Err(Duration::from_millis((current + 1) * window_ms - now_ms))
            } else {
                Ok(State::Count { window: current, n: n + 1 })
            }
        }
    }
}

/// A counter's identity: the limit (route × tool × rule, stable across processes and
/// reloads) and the caller it counts (`0` when the limit is shared by every caller).
pub type CounterKey = (u64, u64);

const SHARDS: usize = 16;

struct Shard {
    /// Each record with when it expires.
    map: HashMap<CounterKey, (State, u64), foldhash::fast::RandomState>,
    /// Size at which expired records are swept next.
    sweep_at: usize,
}

/// Counters of this process, sharded so that callers on different cores rarely meet on
/// one lock. Records of expired counters are swept as a shard grows, so memory follows the
/// callers active within the longest window, not every caller ever seen.
pub struct LocalCounters {
    shards: Box<[Mutex<Shard>]>,
}

impl Shard {
    fn store(&mut self, key: CounterKey, state: State, kind: &Kind, now_us: u64) {
        self.map.insert(key, (state, state.expires_us(kind)));
        if self.map.len() >= self.sweep_at {
            self.map.retain(|_, (_, expires)| *expires > now_us);
            self.sweep_at = (self.map.len() * 2).max(1024);
        }
    }
}

impl Default for LocalCounters {
    fn default() -> Self {
        LocalCounters { shards: (0..SHARDS).map(|_| Mutex::new(Shard { map: HashMap::default(), sweep_at: 1024 })).collect() }
    }
}

impl LocalCounters {
    /// Takes one call from every counter in `keys` at `now_us`, or from none of them: the
    /// first counter that refuses says how long until a retry may pass.
    pub fn take(&self, keys: &[(CounterKey, Kind)], now_us: u64) -> Result<(), (usize, Duration)> {
        if let [(key, kind)] = keys {
            // The usual call: one limit applies, one lock, nothing collected.
            let mut g = self.shards[shard_of(key)].lock().unwrap_or_else(PoisonError::into_inner);
            let state = decide(g.map.get(key).map(|(st, _)| *st), kind, now_us).map_err(|wait| (0, wait))?;
            g.store(*key, state, kind, now_us);
            return Ok(());
        }
        let mut shards: Vec<usize> = keys.iter().map(|(k, _)| shard_of(k)).collect();
        shards.sort_unstable();
        shards.dedup();
        // Locks in ascending order: two calls over the same shards never wait on each other
        // in a cycle.
        let mut guards: Vec<(usize, std::sync::MutexGuard<'_, Shard>)> = shards.iter().map(|&s| (s, self.shards[s].lock().unwrap_or_else(PoisonError::into_inner))).collect();
        let mut next: Vec<(usize, CounterKey, &Kind, State)> = Vec::with_capacity(keys.len());
        for (i, (key, kind)) in keys.iter().enumerate() {
            let s = shard_of(key);
            let Some((_, g)) = guards.iter().find(|(n, _)| *n == s) else { continue };
            // Two limits of one call on the same counter cannot happen: keys differ by rule.
            next.push((s, *key, kind, decide(g.map.get(key).map(|(st, _)| *st), kind, now_us).map_err(|wait| (i, wait))?));
        }
        for (s, key, kind, state) in next {
            if let Some((_, g)) = guards.iter_mut().find(|(n, _)| *n == s) {
                g.store(key, state, kind, now_us);
            }
        }
        Ok(())
    }

    /// Records held (for tests and the admin view).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).map.len()).sum()
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn shard_of(key: &CounterKey) -> usize {
    ((key.0 ^ key.1.rotate_left(17)) as usize) % SHARDS
}

/// Unix microseconds now.
pub fn now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_the_burst_then_the_rate() {
        let kind = Kind::Rate { interval_us: 100_000, burst: 3 };
        let c = LocalCounters::default();
        let key = ((1, 2), kind);
        let t0 = 1_000_000_000;
        for _ in 0..3 {
            assert!(c.take(&[key], t0).is_ok());
        }
        let (_, wait) = c.take(&[key], t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        assert!(c.take(&[key], t0 + 100_000).is_ok());
        assert!(c.take(&[key], t0 + 100_000).is_err());
    }

    #[test]
    fn windows_reset_at_their_boundary() {
        let kind = Kind::Window { window_ms: 60_000, max: 2 };
        let c = LocalCounters::default();
        let key = ((1, 2), kind);
        let t0 = 120_000_000_000 + 59_000_000; // 59 s into a minute
        assert!(c.take(&[key], t0).is_ok());
        assert!(c.take(&[key], t0).is_ok());
        let (i, wait) = c.take(&[key], t0).unwrap_err();
        assert_eq!((i, wait), (0, Duration::from_secs(1)));
        assert!(c.take(&[key], t0 + 1_000_000).is_ok());
    }

    #[test]
    fn a_refused_call_takes_from_no_counter() {
        let rate = ((1, 7), Kind::Rate { interval_us: 1_000_000, burst: 5 });
        let quota = ((2, 7), Kind::Window { window_ms: 3_600_000, max: 1 });
        let c = LocalCounters::default();
        let t0 = 3_600_000_000;
        assert!(c.take(&[rate, quota], t0).is_ok());
        assert_eq!(c.take(&[rate, quota], t0).unwrap_err().0, 1);
        // The rate counter was not charged by the refused call: four more fit its burst.
        for _ in 0..4 {
            assert!(c.take(&[rate], t0).is_ok());
        }
        assert!(c.take(&[rate], t0).is_err());
    }

    #[test]
    fn callers_have_their_own_counters() {
        let kind = Kind::Window { window_ms: 1000, max: 1 };
        let c = LocalCounters::default();
        assert!(c.take(&[((1, 10), kind)], 5_000_000).is_ok());
        assert!(c.take(&[((1, 11), kind)], 5_000_000).is_ok());
        assert!(c.take(&[((1, 10), kind)], 5_000_000).is_err());
    }
}
