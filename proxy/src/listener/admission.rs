//! Admission: counts open connections per listener and per client IP.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::ListenerLimits;
use crate::metrics::METRICS;

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The listener holds its maximum.
    #[error("the gateway holds its maximum of {0} connections (connections.max); retry shortly")]
    Listener(usize),
    /// This client IP holds its maximum.
    #[error("this client address holds its maximum of {0} connections (connections.max_per_ip); reuse connections or close idle ones")]
    PerIp(usize),
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::Listener(_) => "listener",
            Refusal::PerIp(_) => "per_ip",
        }
    }
}

/// Open connections of one listener.
pub struct Admission {
    name: &'static str,
    open: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize, foldhash::fast::RandomState>>,
}

/// One admitted connection; dropping it releases the slot.
pub struct Permit {
    admission: Arc<Admission>,
    ip: Option<IpAddr>,
}

impl Admission {
    /// No connections yet; `name` labels metrics.
    pub fn new(name: &'static str) -> Self {
        Admission { name, open: AtomicUsize::new(0), per_ip: Mutex::new(HashMap::default()) }
    }

    /// Admits a connection from `ip` (none for a Unix socket) under `limits`.
    pub fn admit(self: &Arc<Self>, ip: Option<IpAddr>, limits: &ListenerLimits) -> Result<Permit, Refusal> {
        let refused = |r: Refusal| {
            METRICS.connections_refused.with_label_values(&[self.name, r.label()]).inc();
            Err(r)
        };
        if self.open.fetch_add(1, Ordering::AcqRel) >= limits.max {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return refused(Refusal::Listener(limits.max));
        }
        if let Some(ip) = ip {
            let mut map = self.lock();
            let n = map.entry(ip).or_insert(0);
            if *n >= limits.max_per_ip {
                drop(map);
                self.open.fetch_sub(1, Ordering::AcqRel);
                return refused(Refusal::PerIp(limits.max_per_ip));
            }
            *n += 1;
        }
        METRICS.connections_open.with_label_values(&[self.name]).inc();
        Ok(Permit { admission: self.clone(), ip })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize, foldhash::fast::RandomState>> {
        // Counts stay consistent under a panic elsewhere: every update is a single step.
        self.per_ip.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let a = &self.admission;
        if let Some(ip) = self.ip {
            let mut map = a.lock();
            if let Some(n) = map.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&ip);
                }
            }
        }
        a.open.fetch_sub(1, Ordering::AcqRel);
        METRICS.connections_open.with_label_values(&[a.name]).dec();
    }
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit").field("listener", &self.admission.name).field("ip", &self.ip).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits(max: usize, max_per_ip: usize) -> ListenerLimits {
        ListenerLimits { max, max_per_ip, head_timeout: Duration::from_secs(1), idle_timeout: Duration::from_secs(1) }
    }

    #[test]
    fn caps_per_listener_and_per_ip_and_releases_on_drop() {
        let a = Arc::new(Admission::new("test"));
        let (x, y): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let l = limits(3, 2);
        let p1 = a.admit(Some(x), &l).unwrap();
        let _p2 = a.admit(Some(x), &l).unwrap();
        assert_eq!(a.admit(Some(x), &l).unwrap_err(), Refusal::PerIp(2));
        let _p3 = a.admit(Some(y), &l).unwrap();
        assert_eq!(a.admit(Some(y), &l).unwrap_err(), Refusal::Listener(3));
        assert_eq!(a.open(), 3);
        drop(p1);
        assert_eq!(a.open(), 2);
        let _p4 = a.admit(Some(x), &l).unwrap();
        assert_eq!(a.lock().get(&x), Some(&2));
    }
}
