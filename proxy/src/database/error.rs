//! Why a database call failed, named for whose fault it is, and the text the client sees.

use std::fmt::Write as _;
use std::time::Duration;

use sqlx::error::DatabaseError as _;
use sqlx::mysql::MySqlDatabaseError;
use sqlx::postgres::{PgDatabaseError, PgErrorPosition};
use sqlx::sqlite::SqliteError;

/// A failed database call. Every variant becomes an `isError` result whose text says
/// what to do; none carries the connection URL's password (see [`CallError::scrubbed`]).
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The database refused or failed the statement: the caller's SQL or data.
    #[error("{0}")]
    Statement(String),
    /// The caller's arguments cannot be bound as given.
    #[error("{0}")]
    Argument(String),
    /// The account is privileged: the free-SQL tools are not served (the operator's
    /// config; the text says how to fix it).
    #[error("{0}")]
    Refused(String),
    /// Every pooled connection stayed busy for the whole wait (load, or slow statements).
    #[error("the database is busy: all {size} pooled connections stayed in use for {waited:?}; try again shortly (the operator can raise source.pool_size)")]
    PoolBusy {
        /// `pool_size`.
        size: usize,
        /// How long the call waited (`connect_timeout`).
        waited: Duration,
    },
    /// The statement ran past its limit (client-side deadline).
    #[error("the statement did not finish within {0:?} (statement_timeout) and was cancelled")]
    Timeout(Duration),
    /// The database cannot be reached or the connection broke.
    #[error("cannot reach the database: {0}")]
    Unreachable(String),
    /// The driver failed otherwise (protocol, a value it cannot decode).
    #[error("{0}")]
    Driver(String),
}

impl CallError {
    /// Classifies a driver error. Database errors keep SQLSTATE, message, detail, hint and
    /// position, never the server's source-file line.
    pub fn from_sqlx(e: sqlx::Error) -> CallError {
        match e {
            sqlx::Error::Database(d) => CallError::Statement(describe(d.as_ref())),
            sqlx::Error::Io(e) => CallError::Unreachable(e.to_string()),
            sqlx::Error::Tls(e) => CallError::Unreachable(format!("TLS: {e}")),
            sqlx::Error::PoolClosed => CallError::Unreachable("the pool was closed (the server is being reconfigured); try again".into()),
            sqlx::Error::PoolTimedOut => CallError::Unreachable("no connection could be made within connect_timeout".into()),
            other => CallError::Driver(other.to_string()),
        }
    }

    /// The same error with `url`'s password replaced wherever it appears.
    pub fn scrubbed(self, url: &str) -> CallError {
        let s = |t: String| super::scrub(&t, url);
        match self {
            CallError::Statement(t) => CallError::Statement(s(t)),
            CallError::Unreachable(t) => CallError::Unreachable(s(t)),
            CallError::Driver(t) => CallError::Driver(s(t)),
            other => other,
        }
    }
}

/// A database error as the database's own client prints it.
pub fn describe(d: &dyn sqlx::error::DatabaseError) -> String {
    if let Some(pg) = d.try_downcast_ref::<PgDatabaseError>() {
        return describe_pg(pg);
    }
    if let Some(my) = d.try_downcast_ref::<MySqlDatabaseError>() {
        let state = my.code().map(|c| format!(" ({c})")).unwrap_or_default();
        return format!("ERROR {}{state}: {}", my.number(), my.message());
    }
    if let Some(lite) = d.try_downcast_ref::<SqliteError>() {
        let code = lite.code().unwrap_or_default();
        // SQLITE_AUTH: the gateway's authorizer refused (database/sqlite.rs).
        let why = if code == "23" || lite.message().starts_with("not authorized") { " (the gateway does not allow ATTACH/DETACH, TEMP objects, load_extension, transaction statements or changing PRAGMAs)" } else { "" };
        return format!("SQLite error {code}: {}{why}", lite.message());
    }
    d.message().to_string()
}

fn describe_pg(e: &PgDatabaseError) -> String {
    // Writing into a String cannot fail.
    let severity = format!("{:?}", e.severity()).to_ascii_uppercase();
    let mut out = format!("{severity} {}: {}", e.code(), e.message());
    match e.position() {
        Some(PgErrorPosition::Original(p)) => {
            let _ = write!(out, "\nPOSITION: character {p} of the statement");
        }
        Some(PgErrorPosition::Internal { position, query }) => {
            let _ = write!(out, "\nPOSITION: character {position} of the internal query: {query}");
        }
        None => {}
    }
    for (label, v) in [("DETAIL", e.detail()), ("HINT", e.hint()), ("CONTEXT", e.r#where())] {
        if let Some(v) = v {
            let _ = write!(out, "\n{label}: {v}");
        }
    }
    out
}
