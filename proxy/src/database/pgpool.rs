//! The PostgreSQL pool: sqlx connections kept by `deadpool` rather than by sqlx's own
//! pool, so that a call's transaction costs as few messages to the server as possible.
//!
//! Every message the gateway sends wakes a PostgreSQL backend, and on a busy host those
//! wake-ups, not the SQL, are most of a short query's cost. sqlx's pool pings each
//! connection it takes back; and sqlx waits for `BEGIN`'s answer before it sends the
//! statement. With the read-only transaction that made four exchanges per call. Here:
//!
//! - The end of a call (its `ROLLBACK`, or `RESET ALL` after a committed write, and the
//!   release of any session-level advisory lock) is written to the socket without
//!   waiting; the server ends the transaction at once and its answer is read by the
//!   connection's next call.
//! - When the connection is in demand (calls are waiting for one, or it was handed out
//!   again within [`HOT`] of its last return), the next call's `BEGIN READ ONLY` goes in
//!   the same message: the connection goes back *parked* in a fresh read-only
//!   transaction, and a read-only call runs its statement straight away. Under load a
//!   call costs two exchanges. A fresh `BEGIN` takes no snapshot and no lock, and the
//!   statement still takes its snapshot when it starts; only `now()` reports the moment
//!   of the `BEGIN`, and a connection parked for longer than [`HOT`] gets a fresh one
//!   first. One nobody takes within [`PARK_LIMIT`] is taken out of its transaction by
//!   the reaper and kept as a spare, so no connection idles in a transaction for long.
//! - A connection whose call did not finish cleanly (cancelled, timed out, an I/O or
//!   protocol error) is never handed out again: it is closed, so no half-read answer or
//!   stray transaction reaches another call.
//! - A pool that serves callers' SQL (`query`, `execute`: [`PgManager::free`]) keeps no
//!   statement state between calls: every statement is unnamed (so no caller can replace
//!   or read another's prepared statement, and each call's parameter types are its own),
//!   and the end of every call deallocates whatever a caller `PREPARE`d. A write (which
//!   commits) also resets the session: settings, role, cursors, `LISTEN`, temp tables.
//! - Writes run in autocommit, one statement, so a write costs one exchange like a read:
//!   the statement is its own transaction.
//! - A pool of fixed statements (catalog-free: Toolbox tools only) needs no transaction
//!   at all: on a read-only server its connections start with
//!   `default_transaction_read_only`, so each statement runs read-only in autocommit, and a
//!   call is one exchange with nothing written at its end. Its prepared statements are
//!   cached: no caller's SQL ever runs there.
//! - Every new connection checks its account's privileges ([`super::account`]) before
//!   it is handed out.
//! - A connection the server closed while it sat in the pool (a restart, a failover,
//!   `pg_terminate_backend`, `idle_session_timeout`) fails on the call's first exchange,
//!   before the statement is sent; [`stale`] tells the caller it may run the call again on
//!   a fresh connection, and every connection returned before that moment is pinged
//!   before it is handed out again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use deadpool::managed::{self, Metrics, Object, PoolError, RecycleError, RecycleResult, TimeoutType};
use futures::FutureExt;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{Connection, Executor};

use super::account::{Account, Finding, PG_CHECK};
use super::PING_IF_IDLE_FOR;

/// A parked connection nobody took within this is taken out of its transaction.
pub const PARK_LIMIT: Duration = Duration::from_secs(1);

/// A connection handed out again within this of its return is in demand: its next return
/// parks it. A parked one taken later than this gets a fresh transaction first, so
/// `now()` is never older than this.
pub const HOT: Duration = Duration::from_millis(10);

/// Where a pooled connection's session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No transaction open (once the answers in flight are read).
    Idle,
    /// A `BEGIN READ ONLY` was sent and nothing has run in that transaction yet.
    Parked,
    /// A call is using it, or its last call did not finish cleanly.
    InUse,
}

/// A pooled PostgreSQL connection.
pub struct PgConn {
    conn: PgConnection,
    state: State,
    /// Whether a transaction this module opened is still open (free-SQL reads).
    open: bool,
    returned: Instant,
    hot: bool,
    /// Whether a call has used it before (a server may have closed it since).
    used: bool,
}

impl PgConn {
    fn new(conn: PgConnection, used: bool) -> PgConn {
        PgConn { conn, state: State::Idle, open: false, returned: Instant::now(), hot: false, used }
    }
}

/// Opens and vets connections for [`PgPool`].
pub struct PgManager {
    opts: PgConnectOptions,
    /// Whether callers' SQL runs on this pool (no statement cache, full reset); else it
    /// runs fixed statements in autocommit.
    free: bool,
    /// A fixed-statement pool whose connections start read-only
    /// (`default_transaction_read_only`).
    read_only: bool,
    /// Where each new connection's privilege check goes.
    account: std::sync::Arc<Account>,
    /// Open connections the reaper took out of their parked transaction, with when; the
    /// pool gets them back before it opens new ones.
    spares: std::sync::Mutex<Vec<(PgConnection, Instant)>>,
    /// When a call last found a pooled connection closed by the server, in nanoseconds
    /// after `epoch` (0: never): connections returned before then are pinged first.
    suspect: AtomicU64,
    epoch: Instant,
}

impl PgManager {
    fn new(opts: PgConnectOptions, free: bool, read_only: bool, account: std::sync::Arc<Account>) -> PgManager {
        PgManager { opts, free, read_only, account, spares: Default::default(), suspect: AtomicU64::new(0), epoch: Instant::now() }
    }

    fn spare(&self) -> Option<PgConnection> {
        self.spares.lock().ok()?.pop().map(|(c, _)| c)
    }

    /// Whether `c` was returned before the last sign that the server closed connections.
    fn suspect(&self, c: &PgConn) -> bool {
        let at = self.suspect.load(Ordering::Relaxed);
        at != 0 && c.returned <= self.epoch + Duration::from_nanos(at)
    }
}

impl managed::Manager for PgManager {
    type Type = PgConn;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<PgConn, sqlx::Error> {
        if let Some(conn) = self.spare() {
            return Ok(PgConn::new(conn, true));
        }
        // Boxed: the handshake's state is kilobytes, and inline it would make every
        // checkout's future (created and moved on each call) that large too.
        let mut conn = Box::pin(PgConnection::connect_with(&self.opts)).await?;
        self.account.record(check(&mut conn).await?);
        Ok(PgConn::new(conn, false))
    }

    async fn recycle(&self, c: &mut PgConn, _: &Metrics) -> RecycleResult<sqlx::Error> {
        if c.state == State::InUse {
            return Err(RecycleError::message("its last call did not finish"));
        }
        // A connection busy a moment ago is known to be alive; one that sat idle may have
        // been closed by the server or a firewall. The ping also reads the answers the
        // last call left in flight.
        if c.returned.elapsed() > PING_IF_IDLE_FOR || self.suspect(c) {
            c.conn.ping().await?;
        }
        Ok(())
    }
}

/// Runs the privilege check on a new connection (one round trip, simple protocol, so no
/// statement is left behind). A database error is a finding, not a failed connection:
/// fixed statements still run.
async fn check(conn: &mut PgConnection) -> Result<Finding, sqlx::Error> {
    use sqlx::Row;
    match sqlx::raw_sql(PG_CHECK).fetch_one(&mut *conn).await {
        Ok(row) => {
            let found: String = row.try_get(0)?;
            Ok(if found.is_empty() { Finding::LeastPrivileged } else { Finding::Privileged(found.lines().map(str::to_owned).collect()) })
        }
        Err(sqlx::Error::Database(e)) => Ok(Finding::CheckFailed(super::error::describe(e.as_ref()))),
        Err(e) => Err(e),
    }
}

/// The pool of one PostgreSQL source.
pub type PgPool = managed::Pool<PgManager>;

/// A connection checked out of [`PgPool`] for one call.
pub type PgObject = Object<PgManager>;

/// Builds a lazily connecting pool and starts its reaper, which closes connections idle
/// for `idle` and rolls back parked ones nobody took; it stops when a reload drops the
/// pool.
/// `free`: callers' SQL runs on it; else fixed statements, read-only ones when
/// `read_only` (the caller gave the connections `default_transaction_read_only`).
#[allow(clippy::too_many_arguments)]
pub fn build(opts: PgConnectOptions, size: usize, connect_timeout: Duration, idle: Duration, free: bool, read_only: bool, account: std::sync::Arc<Account>) -> PgPool {
    let pool = managed::Pool::builder(PgManager::new(opts, free, read_only, account))
        .max_size(size.max(1))
        .wait_timeout(Some(connect_timeout))
        .create_timeout(Some(connect_timeout))
        .recycle_timeout(Some(connect_timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        // Fails only when a timeout is set without a runtime; the runtime is set.
        .expect("deadpool builder with a runtime");
    let weak = pool.weak();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(PARK_LIMIT).await;
            let Some(pool) = weak.upgrade() else { break };
            reap(&pool, idle);
        }
    });
    pool
}

/// Closes connections idle for `idle` and those a dropped call left behind; takes parked
/// ones nobody took out of their transaction (a ROLLBACK) and keeps them as spares.
fn reap(pool: &PgPool, idle: Duration) {
    // Idle time counts from the return (deadpool's `last_used` counts from the hand-out,
    // which a long statement would inflate).
    // A connection still marked in use sits here only because its call was dropped (a
    // client-side deadline): it may hold a transaction and locks, so it goes at once.
    let gone = pool.retain(|c, _| c.state != State::InUse && c.returned.elapsed() < idle && !(c.state == State::Parked && c.returned.elapsed() > PARK_LIMIT));
    for c in gone.removed {
        if c.state != State::Parked || c.returned.elapsed() > idle {
            tokio::spawn(c.conn.close());
            continue;
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut conn = c.conn;
            let status = pool.status();
            let room = status.size + pool.manager().spares.lock().map_or(usize::MAX, |s| s.len()) < status.max_size;
            if room && conn.execute(sqlx::raw_sql("ROLLBACK")).await.is_ok() {
                if let Ok(mut spares) = pool.manager().spares.lock() {
                    spares.push((conn, Instant::now()));
                    return;
                }
            }
            let _ = conn.close().await;
        });
    }
    let stale: Vec<PgConnection> = match pool.manager().spares.lock() {
        Ok(mut spares) => {
            let (keep, old): (Vec<_>, Vec<_>) = spares.drain(..).partition(|(_, at)| at.elapsed() < idle);
            *spares = keep;
            old.into_iter().map(|(c, _)| c).collect()
        }
        Err(_) => Vec::new(),
    };
    for conn in stale {
        tokio::spawn(conn.close());
    }
}

/// Checks a connection out, naming what went wrong in sqlx's terms.
pub async fn get(pool: &PgPool) -> Result<PgObject, sqlx::Error> {
    pool.get().await.map_err(|e| match e {
        PoolError::Backend(e) => e,
        PoolError::Timeout(TimeoutType::Create) => sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, "connecting to the database timed out (connect_timeout)")),
        PoolError::Timeout(_) => sqlx::Error::PoolTimedOut,
        PoolError::Closed => sqlx::Error::PoolClosed,
        other => sqlx::Error::Protocol(other.to_string()),
    })
}

/// Prepares the connection for the call and returns it: a read opens its read-only
/// transaction (or finds it open, parked); a write runs in autocommit, so only a parked
/// transaction is ended first. On a pool that runs callers' SQL, statements sqlx cached
/// (its type lookups) are closed first: the end of every call deallocates them on the
/// server. Until [`finish`] says otherwise the connection counts as broken, so a call
/// dropped half-way never hands it to the next one.
pub async fn begin(c: &mut PgObject, read_only: bool) -> Result<&mut PgConnection, sqlx::Error> {
    let was = std::mem::replace(&mut c.state, State::InUse);
    let gap = c.returned.elapsed();
    c.hot = gap < HOT;
    let (free, fixed_read_only) = Object::pool(c).map_or((true, false), |p| (p.manager().free, p.manager().read_only));
    if free && c.conn.cached_statements_size() > 0 {
        c.conn.clear_cached_statements().await?;
    }
    // A fixed-statement pool's connections are read-only by default where they must be:
    // no transaction to open. Free SQL gets an explicit READ ONLY transaction, which also
    // keeps a procedure's COMMIT from ending it.
    let explicit = read_only && (free || !fixed_read_only);
    let guard = "/* mcpgate: is the connection still open */";
    let sql = match (was, explicit) {
        (State::Parked, true) if c.hot => None,
        (State::Parked, true) => Some("ROLLBACK; BEGIN READ ONLY"),
        (State::Parked, false) => Some("ROLLBACK"),
        (_, true) => Some("BEGIN READ ONLY"),
        (_, false) if c.hot || read_only => None,
        (_, false) => Some(guard),
    };
    if let Some(sql) = sql {
        c.conn.execute(sqlx::raw_sql(sql)).await?;
    }
    c.open = explicit;
    Ok(&mut c.conn)
}

/// Whether a call whose [`begin`] failed with `e` may run again on another connection:
/// the connection had served calls before and the server is gone from it (closed, shut
/// down, terminated). Nothing of the call reached the server, so running it again is
/// safe for writes too. Marks every connection returned until now for a ping before its
/// next use; the caller closes this one ([`finish`] with `usable` false).
pub fn stale(c: &PgObject, e: &sqlx::Error) -> bool {
    let lost = match e {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => true,
        // Class 08: connection exception; 57P: operator intervention (admin or crash
        // shutdown, idle_session_timeout, database dropped).
        sqlx::Error::Database(d) => d.code().is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    };
    let stale = lost && c.used;
    if stale {
        if let Some(pool) = Object::pool(c) {
            let m = pool.manager();
            let now = u64::try_from(m.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX).max(1);
            m.suspect.store(now, Ordering::Relaxed);
        }
    }
    stale
}

/// How the call's transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Still open (read-only work): roll it back.
    Rollback,
    /// A write ran in autocommit (committed, or failed and rolled back by the server):
    /// reset what it left on the session.
    Committed,
}

/// Whether a connection is still in step after a call failed with `e`: the database
/// reported the error, or a value did not decode.
pub fn survives(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(_) | sqlx::Error::RowNotFound | sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_))
}

/// Reads every answer still in flight after an error, so that [`finish`] writes into a
/// connection that is in step; false when the connection is not.
pub async fn settle(c: &mut PgObject) -> bool {
    c.conn.ping().await.is_ok()
}

/// Ends a call (every answer of the call read; see [`settle`]): writes the end of its transaction (and, when calls are waiting, the next
/// one's `BEGIN READ ONLY`) without waiting for the answer, and returns the connection to
/// the pool — or closes it when the call left it out of step (`usable` false).
pub fn finish(mut c: PgObject, end: End, usable: bool) {
    let free = Object::pool(&c).is_some_and(|p| p.manager().free);
    // Never after a write: statements before a BEGIN in one message join the transaction
    // it opens, so the reset would be undone with the next call's rollback.
    let park = usable && free && end == End::Rollback && (c.hot || Object::pool(&c).is_some_and(|p| p.status().waiting > 0));
    // Session-level advisory locks survive a rollback (even of a read-only transaction),
    // and so do prepared statements: neither may stay with the pooled connection. After a
    // caller's write (free SQL, autocommit) anything the session kept goes: a transaction
    // the statement opened (`BEGIN`), settings, role, cursors, LISTEN, temp tables. A
    // fixed statement in autocommit leaves nothing to end.
    let sql = match (end, park, free) {
        (End::Rollback, false, true) => "ROLLBACK; DEALLOCATE ALL; SELECT pg_advisory_unlock_all()",
        (End::Rollback, true, true) => "ROLLBACK; DEALLOCATE ALL; SELECT pg_advisory_unlock_all(); BEGIN READ ONLY",
        (End::Committed, _, true) => "ROLLBACK; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; DEALLOCATE ALL; CLOSE ALL; UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD TEMP",
        (_, _, false) if c.open => "ROLLBACK",
        (_, _, false) => "",
    };
    if sql.is_empty() {
        if usable {
            c.state = State::Idle;
            c.returned = Instant::now();
            c.used = true;
        } else {
            close(c);
        }
        return;
    }
    // One poll writes the message; the answer stays in the socket for the next call's
    // first wait. sqlx's receive path is cancel-safe, so dropping the pending future
    // loses nothing. A message not fully written (a full socket buffer) closes the
    // connection rather than leave a transaction open on it.
    let sent = matches!(c.conn.execute(sqlx::raw_sql(sql)).now_or_never(), None | Some(Ok(_))) && !c.conn.should_flush();
    if usable && sent {
        c.state = if park { State::Parked } else { State::Idle };
        c.returned = Instant::now();
        c.used = true;
    } else {
        close(c);
    }
}

/// Takes a connection out of the pool and closes it, which ends any transaction the
/// server still holds for it (and a statement still running, at its next write).
fn close(c: PgObject) {
    let PgConn { conn, .. } = Object::take(c);
    tokio::spawn(async move {
        let _ = conn.close_hard().await;
    });
}

#[cfg(test)]
mod tests {
    //! Against the machine's real PostgreSQL (127.0.0.1:5432); under CI=true an
    //! unreachable database fails.

    use std::str::FromStr;

    use super::*;

    const PG: &str = "postgres://postgres@127.0.0.1:5432/test";

    fn reachable() -> bool {
        let ok = std::net::TcpStream::connect_timeout(&"127.0.0.1:5432".parse().expect("address"), Duration::from_secs(2)).is_ok();
        assert!(ok || std::env::var("CI").as_deref() != Ok("true"), "PostgreSQL on 127.0.0.1:5432 is not reachable and CI=true");
        ok
    }

    /// A pool of one connection named `prefix_<pid>` in `pg_stat_activity`; `None` when
    /// PostgreSQL is not there (outside CI).
    fn pool(prefix: &str) -> Option<(String, PgPool)> {
        if !reachable() {
            return None;
        }
        let app = format!("{prefix}_{}", std::process::id());
        let opts = PgConnectOptions::from_str(PG).expect("url").application_name(&app);
        let account = std::sync::Arc::new(Account::new(&app, None, "postgresql", "test".into(), false, false));
        Some((app, build(opts, 1, Duration::from_secs(5), Duration::from_secs(600), true, false, account)))
    }

    /// Starts a call: the connection, its backend pid and its `transaction_read_only`.
    async fn call(pool: &PgPool, read_only: bool) -> (PgObject, i32, String) {
        let mut c = get(pool).await.expect("get");
        let conn = begin(&mut c, read_only).await.expect("begin");
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *conn).await.expect("pid");
        let ro: String = sqlx::query_scalar("SHOW transaction_read_only").fetch_one(&mut *conn).await.expect("show");
        (c, pid, ro)
    }

    async fn states(app: &str) -> Vec<String> {
        let mut admin = PgConnection::connect(PG).await.expect("connect");
        sqlx::query_scalar("SELECT coalesce(state, '') FROM pg_stat_activity WHERE application_name = $1").bind(app).fetch_all(&mut admin).await.expect("pg_stat_activity")
    }

    #[tokio::test]
    async fn a_parked_connection_nobody_takes_leaves_its_transaction_and_stays_open() {
        let Some((app, pool)) = pool("mcpgate_park") else { return };
        let (a, first, _) = call(&pool, true).await;
        // A call waits for the only connection, so it is handed over parked...
        let mut waiter = Box::pin(get(&pool));
        assert!(futures::poll!(&mut waiter).is_pending());
        finish(a, End::Rollback, true);
        // ...and the waiter goes away before taking it.
        drop(waiter);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(states(&app).await, ["idle in transaction"]);
        tokio::time::sleep(PARK_LIMIT * 3).await;
        assert_eq!(states(&app).await, ["idle"], "the reaper took the parked connection out of its transaction");
        // The next call gets it back (no new connection), read-only as asked.
        let (c, second, ro) = call(&pool, true).await;
        assert_eq!(first, second, "the spare came back instead of a new connection");
        assert_eq!(ro, "on");
        finish(c, End::Rollback, true);
    }

    #[tokio::test]
    async fn a_call_dropped_half_way_never_hands_its_transaction_on() {
        let Some((app, pool)) = pool("mcpgate_drop") else { return };
        let (a, first, ro) = call(&pool, false).await;
        assert_eq!(ro, "off");
        // Dropped without `finish` (a cancelled or timed-out call), inside READ WRITE: the
        // reaper closes it (its transaction and locks end with it) without waiting for the
        // next call or the idle timeout.
        drop(a);
        tokio::time::sleep(PARK_LIMIT * 3).await;
        assert!(states(&app).await.is_empty(), "the abandoned connection was closed");
        let (b, second, ro) = call(&pool, true).await;
        assert_ne!(first, second, "the half-used connection was discarded");
        assert_eq!(ro, "on");
        finish(b, End::Rollback, true);
    }
}
