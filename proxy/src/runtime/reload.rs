//! Hot reload: SIGHUP and config-file changes rebuild the snapshot and swap it in.
//!
//! Runs as a Pingora background service, so it lives on a runtime that exists for the
//! whole server (after any daemonizing fork), and owns the first build too.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::signal::unix::{signal, SignalKind};

use super::build_snapshot;
use crate::config::Config;
use crate::gateway::GatewayState;
use crate::metrics::METRICS;

/// How often the config file is checked for changes.
const POLL: Duration = Duration::from_millis(500);
/// How long a changed config file must stay unchanged (content, size and mtime) before it
/// is loaded: an in-place write that pauses half-way can be valid YAML that lacks half the
/// servers. Atomic replace (write a temp file, rename it over the config) needs no wait
/// in principle, but is treated the same; SIGHUP reloads at once.
const SETTLE: Duration = Duration::from_millis(1500);
/// How often idle sessions are swept.
const SWEEP: Duration = Duration::from_secs(10);

/// Builds the first snapshot, then reloads on SIGHUP or when the config file changes, and
/// performs a binary upgrade on SIGUSR2.
pub struct Reloader {
    state: Arc<GatewayState>,
    path: PathBuf,
    initial: Arc<Config>,
    upgrade: Option<Upgrade>,
}

/// How to start the next binary for a graceful upgrade.
pub struct Upgrade {
    /// The binary's path as started (the file a new version replaces).
    pub binary: PathBuf,
    /// Whether this process runs daemonized (the new one must too).
    pub daemon: bool,
}

impl Reloader {
    /// A reloader for `path`, starting from an already validated config.
    pub fn new(state: Arc<GatewayState>, path: PathBuf, initial: Config, upgrade: Option<Upgrade>) -> Self {
        Reloader { state, path, initial: Arc::new(initial), upgrade }
    }

    /// SIGUSR2: validate the config with the binary now on disk, start it in upgrade mode,
    /// then SIGQUIT ourselves so Pingora hands it the listening sockets and drains.
    async fn upgrade(&self) {
        let Some(up) = &self.upgrade else {
            log::error!("binary upgrade requested, but `pingora.upgrade_sock` is not configured");
            return;
        };
        let path = self.path.display().to_string();
        let test = tokio::process::Command::new(&up.binary).args(["--config", &path, "--test"]).output().await;
        match test {
            Ok(o) if o.status.success() => {}
            Ok(o) => return log::error!("binary upgrade aborted: {} --test failed: {}", up.binary.display(), String::from_utf8_lossy(&o.stderr).trim()),
            Err(e) => return log::error!("binary upgrade aborted: cannot run {}: {e}", up.binary.display()),
        }
        let mut cmd = tokio::process::Command::new(&up.binary);
        cmd.arg("-u").args(["--config", &path]);
        if up.daemon {
            cmd.arg("-d");
        }
        if let Err(e) = cmd.spawn() {
            return log::error!("binary upgrade aborted: cannot start {}: {e}", up.binary.display());
        }
        // The new process connects to the upgrade socket while we prepare to hand over.
        tokio::time::sleep(Duration::from_millis(500)).await;
        log::info!("binary upgrade: new process started, handing over the listening sockets");
        let me = std::process::id().to_string();
        if let Err(e) = tokio::process::Command::new("kill").args(["-QUIT", &me]).status().await {
            log::error!("binary upgrade: cannot signal ourselves: {e}");
        }
    }

    async fn first_build(&self) {
        let started = Instant::now();
        match build_snapshot(self.initial.clone(), None).await {
            Ok(snapshot) => {
                log::info!("serving {} route(s) from {} (built in {:?})", snapshot.routes.len(), self.path.display(), started.elapsed());
                METRICS.generation.set(snapshot.generation as i64);
                self.state.snapshot.store(Some(Arc::new(snapshot)));
            }
            Err(e) => {
                // Nothing valid to serve: fail loudly so the supervisor reports it.
                log::error!("cannot start: {e}");
                eprintln!("mcpgate: cannot start: {e}");
                std::process::exit(1);
            }
        }
    }

    /// Loads, validates and builds the config; swaps it in only if everything succeeded.
    pub async fn reload(&self, why: &str) {
        let started = Instant::now();
        let config = match Config::load(&self.path) {
            Ok(c) => c,
            Err(e) => return self.reject(why, &e.to_string()),
        };
        let previous = self.state.snapshot.load_full();
        if let Some(p) = &previous {
            warn_unappliable(&p.config, &config);
        }
        match build_snapshot(Arc::new(config), previous.as_deref()).await {
            Ok(snapshot) => {
                METRICS.reloads.inc();
                METRICS.generation.set(snapshot.generation as i64);
                METRICS.build_seconds.observe(started.elapsed().as_secs_f64());
                log::info!("config reloaded ({why}): generation {}, {} route(s), built in {:?}", snapshot.generation, snapshot.routes.len(), started.elapsed());
                self.state.snapshot.store(Some(Arc::new(snapshot)));
            }
            Err(e) => self.reject(why, &e.to_string()),
        }
    }

    fn reject(&self, why: &str, error: &str) {
        METRICS.reload_failures.inc();
        log::error!("config reload ({why}) rejected, still serving the previous config: {error}");
    }

    fn sweep(&self) {
        if let Some(s) = self.state.snapshot.load_full() {
            METRICS.active_sessions.set(s.sessions.sweep() as i64);
        }
    }
}

fn warn_unappliable(old: &Config, new: &Config) {
    if old.listen != new.listen || old.admin.listen != new.admin.listen {
        log::warn!("listen addresses changed in the config; they take effect on restart or graceful upgrade");
    }
    if old.pingora != new.pingora {
        log::warn!("`pingora:` settings changed; they take effect on restart or graceful upgrade");
    }
}

/// What the watcher compares: content hash, size and modification time.
type FileState = Option<(u64, u64, Option<std::time::SystemTime>)>;

fn fingerprint(path: &std::path::Path) -> FileState {
    use std::hash::{Hash, Hasher};
    let bytes = std::fs::read(path).ok()?;
    let mtime = std::fs::metadata(path).ok().and_then(|m| m.modified().ok());
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    Some((h.finish(), bytes.len() as u64, mtime))
}

/// The config file watcher's debounce: a change is reported once the file has looked the
/// same for [`SETTLE`].
struct Watch {
    /// The state last loaded (or rejected): not loaded again.
    loaded: FileState,
    /// The state last seen, and since when.
    seen: FileState,
    since: Instant,
}

impl Watch {
    fn new(state: FileState) -> Self {
        Watch { loaded: state, seen: state, since: Instant::now() }
    }

    /// Records a poll; true when the file changed and has since been stable long enough.
    fn settled(&mut self, now: FileState, at: Instant) -> bool {
        if now != self.seen {
            self.seen = now;
            self.since = at;
            return false;
        }
        if now.is_some() && now != self.loaded && at.duration_since(self.since) >= SETTLE {
            self.loaded = now;
            return true;
        }
        false
    }

    /// A reload happened for another reason (SIGHUP): the file as it is now is loaded.
    fn loaded_now(&mut self, now: FileState) {
        self.loaded = now;
        self.seen = now;
        self.since = Instant::now();
    }
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                log::error!("cannot listen for SIGHUP, reload by file change only: {e}");
                None
            }
        };
        let mut usr2 = signal(SignalKind::user_defined2()).ok();
        let mut watch = Watch::new(fingerprint(&self.path));
        self.first_build().await;
        let mut poll = tokio::time::interval(POLL);
        let mut sweep = tokio::time::interval(SWEEP);
        loop {
            tokio::select! {
                Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    watch.loaded_now(fingerprint(&self.path));
                    self.reload("SIGHUP").await;
                }
                _ = poll.tick() => {
                    if watch.settled(fingerprint(&self.path), Instant::now()) {
                        self.reload("config file changed").await;
                    }
                }
                Some(()) = async { match usr2.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => self.upgrade().await,
                _ = sweep.tick() => self.sweep(),
                _ = shutdown.changed() => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_reported_once_the_file_has_settled() {
        let t0 = Instant::now();
        let a = Some((1, 10, None));
        let half = Some((2, 20, None));
        let full = Some((3, 40, None));
        let mut w = Watch { loaded: a, seen: a, since: t0 };
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert!(!w.settled(a, at(500)), "unchanged");
        // Half written, a pause shorter than SETTLE, then the rest.
        assert!(!w.settled(half, at(1000)));
        assert!(!w.settled(half, at(1500)));
        assert!(!w.settled(half, at(2000)));
        assert!(!w.settled(full, at(2500)));
        assert!(!w.settled(full, at(3500)));
        assert!(w.settled(full, at(4000)), "stable for SETTLE");
        assert!(!w.settled(full, at(4500)), "reported once");
        // A deleted file is never loaded.
        assert!(!w.settled(None, at(5000)) && !w.settled(None, at(9000)));
    }
}
