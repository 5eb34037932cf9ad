//! Hot reload: SIGHUP and config-file changes rebuild the snapshot and swap it in.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::Snapshot;

/// The current snapshot, shared by every request.
pub type SharedSnapshot = Arc<ArcSwap<Snapshot>>;

/// Watches for reload triggers.
pub struct Reloader;
