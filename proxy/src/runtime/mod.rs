//! The immutable runtime snapshot built from a [`Config`](crate::config::Config), and the
//! `ArcSwap` that holds the current one.
//!
//! Everything a request needs (parsed specs, compiled validators, resolved upstreams,
//! pools) is built here, off the hot path. A request loads the snapshot once and keeps
//! that `Arc` to its end, so a reload never changes anything under a request in flight.

mod build;
pub mod reload;
mod views;

pub use build::{build_snapshot, BuildContext, BuildError, BuiltRoute, Route, Snapshot, PAGE_SIZE};
pub use reload::Reloader;
pub use views::{PageSet, Pages, Views};
