//! One pool per source and the per-engine SQL: callers' statements (`query`, `execute`),
//! fixed statements (catalog, Toolbox tools), and catalog introspection.
//!
//! Every statement takes the same path ([`Engine::run`]): a pooled connection (a pool
//! that stays busy is reported as such, not as a slow statement), the privilege gate for
//! callers' SQL, the transaction, the statement limit and a client-side deadline, caps
//! checked before values are decoded, and errors as the database's own client prints
//! them with the connection's password scrubbed.

use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use serde::Serialize;
use serde_json::{json, Map, Value};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool};
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, Column, Connection, Executor, Row, SqlSafeStr, Statement};

use super::account::{self, Account, Finding};
use super::error::CallError;
use super::pgpool::{self, PgPool};
use super::value::{self, Bound};
use super::{DatabaseError, DbLimits, SourceConfig};
use crate::tools::Structured;

/// After a row or size cap, up to this many more rows (and [`DRAIN_BYTES`]) are read
/// and dropped undecoded, so that a result just over the cap leaves its connection in
/// step. A statement still producing rows after that is ended by closing its connection,
/// which the server notices at its next write: a capped statement never runs on to its
/// timeout.
const DRAIN_ROWS: usize = 1000;
/// See [`DRAIN_ROWS`].
const DRAIN_BYTES: usize = 1 << 20;

/// A call that read a row larger than this closes its connection afterwards: the driver
/// keeps the buffer of the largest message it ever read for as long as the connection
/// lives, so a huge row would otherwise stay in memory for every pooled connection that
/// once carried one.
const LARGE_ROW: usize = 8 << 20;

/// Who uses a source: how logs and metrics name it, and what its account check decides.
#[derive(Debug, Clone, Copy)]
pub struct Usage<'a> {
    /// The server (config entry) name.
    pub server: &'a str,
    /// The Toolbox source name; `None` for the server's own `source`, which serves the
    /// free-SQL tools.
    pub source: Option<&'a str>,
    /// `allow_privileged_account`.
    pub allow_privileged: bool,
    /// Whether the server is `read-write` (the role template grants writes).
    pub read_write: bool,
}

/// The pools of one source.
enum Db {
    Postgres(PgPool),
    MySql {
        pool: MySqlPool,
        flavor: Arc<MySqlFlavor>,
        json: Arc<MySqlJson>,
    },
    /// Reads go through a read-only pool, writes through a read-write one.
    Sqlite {
        ro: SqlitePool,
        rw: SqlitePool,
    },
}

/// A pooled database source.
pub struct Engine {
    db: Db,
    /// For scrubbing messages (empty for SQLite).
    url: String,
    /// The account check (PostgreSQL, MySQL).
    account: Option<Arc<Account>>,
    pool_size: usize,
    wait: Duration,
}

/// MariaDB or MySQL, learned from the first connection's `VERSION()`.
#[derive(Debug, Default)]
pub struct MySqlFlavor(AtomicU8);

const FLAVOR_MARIADB: u8 = 1;
const FLAVOR_MYSQL: u8 = 2;

impl MySqlFlavor {
    fn learn(&self, version: &str) {
        self.0.store(if version.contains("MariaDB") { FLAVOR_MARIADB } else { FLAVOR_MYSQL }, Ordering::Relaxed);
    }

    fn mariadb(&self) -> bool {
        self.0.load(Ordering::Relaxed) == FLAVOR_MARIADB
    }

    /// One multi-statement text that sets the per-statement time limit and the session's
    /// access mode, and for reads opens the transaction (writes run in autocommit: one
    /// statement is its own transaction). The session mode matters: DDL commits
    /// implicitly and would otherwise run outside a read-only transaction. MySQL's SET is
    /// not transactional, so every call sets both again rather than trusting what the last
    /// call left. MySQL's `max_execution_time` covers SELECTs only; the client-side
    /// deadline covers the rest.
    fn begin_sql(&self, ms: u128, read_only: bool) -> String {
        let limit = match self.0.load(Ordering::Relaxed) {
            FLAVOR_MARIADB => format!("SET SESSION max_statement_time = {}; ", ms as f64 / 1000.0),
            FLAVOR_MYSQL => format!("SET SESSION max_execution_time = {ms}; "),
            _ => String::new(),
        };
        if read_only {
            format!("{limit}SET SESSION TRANSACTION READ ONLY; START TRANSACTION READ ONLY")
        } else {
            format!("{limit}SET SESSION TRANSACTION READ WRITE")
        }
    }
}

/// Which MariaDB columns are `JSON`: MariaDB sends them as `LONGTEXT` with a binary
/// collation, and only the table's `json_valid` check constraint tells them from text.
/// Learned once per column (a catalog query after the first result that has one).
pub struct MySqlJson(moka::sync::Cache<(String, String), bool>);

impl MySqlJson {
    fn new() -> Self {
        MySqlJson(moka::sync::Cache::new(10_000))
    }
}

/// Rows of a statement, capped.
#[derive(Debug, Default)]
pub struct Rows {
    /// Column names.
    pub columns: Vec<String>,
    /// Values, one array per row, aligned with `columns`.
    pub rows: Vec<Vec<Value>>,
    /// Whether a cap cut the result.
    pub truncated: bool,
    /// For writes: rows affected.
    pub rows_affected: Option<u64>,
}

impl Rows {
    /// `{columns, rows, row_count, truncated}` (+ `rows_affected` for writes), written
    /// once as JSON text: the reply embeds it as it is, with no tree built in between.
    pub fn structured(&self) -> Structured {
        #[derive(Serialize)]
        struct View<'a> {
            columns: &'a [String],
            rows: &'a [Vec<Value>],
            row_count: usize,
            truncated: bool,
            #[serde(skip_serializing_if = "Option::is_none")]
            rows_affected: Option<u64>,
        }
        let view = View { columns: &self.columns, rows: &self.rows, row_count: self.rows.len(), truncated: self.truncated, rows_affected: self.rows_affected };
        // Serializing plain values into a string cannot fail.
        match serde_json::to_string(&view).map(serde_json::value::RawValue::from_string) {
            Ok(Ok(raw)) => Structured::Raw(raw),
            _ => Structured::Value(json!({"columns": self.columns, "rows": self.rows, "row_count": self.rows.len(), "truncated": self.truncated})),
        }
    }
}

struct Collector<'a> {
    out: Rows,
    limits: &'a DbLimits,
    bytes: usize,
    /// Whether the statement's end was read (false: a capped statement still running,
    /// whose connection must go).
    complete: bool,
    drained: (usize, usize),
    /// The largest row seen on the wire, decoded or not.
    largest: usize,
}

impl<'a> Collector<'a> {
    fn new(limits: &'a DbLimits) -> Self {
        Collector { out: Rows::default(), limits, bytes: 0, complete: true, drained: (0, 0), largest: 0 }
    }

    /// Forgets what a failed attempt collected.
    fn reset(&mut self) {
        *self = Collector::new(self.limits);
    }

    /// Counts a row read past the cap; false once the drain's bounds are reached.
    fn drain(&mut self, raw: usize) -> bool {
        self.largest = self.largest.max(raw);
        self.drained.0 += 1;
        self.drained.1 += raw;
        if self.drained.0 > DRAIN_ROWS || self.drained.1 > DRAIN_BYTES {
            self.complete = false;
            return false;
        }
        true
    }

    /// Whether a row of `raw` bytes on the wire may still be decoded: its values cannot
    /// take less JSON than their wire form (bar a few numbers and dates), so a row that
    /// alone exceeds what is left of the size cap ends the result before it is copied.
    fn room_for(&mut self, raw: usize) -> bool {
        self.largest = self.largest.max(raw);
        if self.out.rows.len() >= self.limits.max_rows || self.bytes + raw / 2 > self.limits.max_response_bytes.0 {
            self.out.truncated = true;
            return false;
        }
        true
    }

    /// Adds a row; false when a cap is reached (the result is then truncated).
    fn push(&mut self, columns: impl FnOnce() -> Vec<String>, values: Vec<Value>) -> bool {
        if self.out.columns.is_empty() {
            self.out.columns = columns();
        }
        if self.out.rows.len() >= self.limits.max_rows {
            self.out.truncated = true;
            return false;
        }
        self.bytes += values.iter().map(|v| json_len(v) + 1).sum::<usize>();
        if self.bytes > self.limits.max_response_bytes.0 {
            self.out.truncated = true;
            return false;
        }
        self.out.rows.push(values);
        true
    }
}

/// The length of a value's JSON text, counted without building the text.
fn json_len(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut n = Count(0);
    // Writing to a counter cannot fail, and a `Value` always serializes.
    let _ = serde_json::to_writer(&mut n, v);
    n.0
}

/// Streams a statement's rows into the collector under its caps (a row too large for
/// what is left is not decoded, rows past a cap are drained undecoded, within bounds);
/// when no row came back, the columns are read from the prepared statement so empty
/// results still name them. `$first` sees the first row.
macro_rules! collect_rows {
    ($conn:expr, $c:expr, $sql:expr, $query:expr, $decode:path, $raw:expr, $first:expr) => {{
        {
            let mut rows = $query.fetch(&mut *$conn);
            while let Some(row) = rows.try_next().await? {
                if $c.out.truncated {
                    if !$c.drain($raw(&row)) {
                        break;
                    }
                    continue;
                }
                if $c.out.columns.is_empty() {
                    $first(&row);
                }
                if !$c.room_for($raw(&row)) || !$c.push(|| names(row.columns()), $decode(&row)) {
                    if $c.out.columns.is_empty() {
                        $c.out.columns = names(row.columns());
                    }
                }
            }
        }
        if $c.out.columns.is_empty() {
            $c.out.columns = names((&mut *$conn).prepare(AssertSqlSafe($sql.to_string()).into_sql_str()).await?.columns());
        }
    }};
}

/// What a statement's caller wants back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// The rows (`query`, custom SQL tools).
    Rows,
    /// The number of rows affected (`execute`).
    Affected,
}

/// Runs the bound statement for what the caller wants: rows into the collector, or the
/// affected-row count.
macro_rules! statement_body {
    ($conn:expr, $c:expr, $sql:expr, $query:expr, $decode:path, $raw:expr, $first:expr, $want:expr) => {{
        match $want {
            Want::Rows => collect_rows!($conn, $c, $sql, $query, $decode, $raw, $first),
            Want::Affected => $c.out.rows_affected = Some($query.execute(&mut *$conn).await?.rows_affected()),
        }
    }};
}

fn names<C: Column>(cols: &[C]) -> Vec<String> {
    cols.iter().map(|c| c.name().to_string()).collect()
}

/// One statement to run.
#[derive(Debug, Clone, Copy)]
pub struct Sql<'a> {
    /// The SQL text.
    pub text: &'a str,
    /// Its parameters, in placeholder order.
    pub params: &'a [Bound],
    /// Caps and timeout.
    pub limits: &'a DbLimits,
    /// A read-only transaction (rolled back), or a write in autocommit.
    pub read_only: bool,
    /// Rows or the affected-row count.
    pub want: Want,
    /// The free-SQL tool (`query`, `execute`) whose caller wrote `text`: the account's
    /// privileges are checked, and (MySQL) the session is not reused. `None` for fixed
    /// statements.
    pub tool: Option<&'a str>,
}

/// sqlx pool settings (MySQL). sqlx already pings every connection when it is released
/// (which also flushes a queued `ROLLBACK`), so a connection that was busy a moment ago is
/// known to be alive; only one that sat idle is pinged again on acquire (sqlx's default
/// pings on every acquire, one more round trip per statement).
fn pool_options<DB: sqlx::Database>(src: &SourceConfig) -> sqlx::pool::PoolOptions<DB> {
    sqlx::pool::PoolOptions::<DB>::new().max_connections(src.pool_size.max(1)).acquire_timeout(src.connect_timeout.0).idle_timeout(Some(src.idle_timeout.0)).test_before_acquire(false).before_acquire(|conn, meta| {
        Box::pin(async move {
            if meta.idle_for > super::PING_IF_IDLE_FOR {
                sqlx::Connection::ping(conn).await?;
            }
            Ok(true)
        })
    })
}

/// The MySQL privilege check of a new connection, which also learns the server's flavor.
async fn my_check(conn: &mut sqlx::MySqlConnection, flavor: &MySqlFlavor) -> Result<Finding, sqlx::Error> {
    let row = match sqlx::raw_sql(account::MY_CHECK).fetch_one(&mut *conn).await {
        Ok(row) => row,
        Err(sqlx::Error::Database(e)) => return Ok(Finding::CheckFailed(super::error::describe(e.as_ref()))),
        Err(e) => return Err(e),
    };
    let text = |i: usize| row.try_get_unchecked::<Option<String>, _>(i).ok().flatten().unwrap_or_default();
    flavor.learn(&text(0));
    let mut found: Vec<String> = text(2).lines().filter(|p| account::mysql_privileged(p)).map(str::to_owned).collect();
    // A role the account may SET ROLE to counts as held: its grants are read one by one.
    for role in text(3).lines().filter(|r| !r.is_empty()) {
        let grants: Vec<String> = match sqlx::raw_sql(AssertSqlSafe(format!("SHOW GRANTS FOR `{}`", role.replace('`', "``")))).fetch_all(&mut *conn).await {
            Ok(rows) => rows.iter().filter_map(|r| r.try_get_unchecked::<String, _>(0).ok()).collect(),
            Err(e) => return Ok(Finding::CheckFailed(format!("SHOW GRANTS FOR role `{role}`: {e}"))),
        };
        for p in grants.iter().flat_map(|g| account::global_grants(g)).filter(|p| account::mysql_privileged(p)) {
            found.push(format!("{p} (through role `{role}`)"));
        }
    }
    Ok(if found.is_empty() { Finding::LeastPrivileged } else { Finding::Privileged(found) })
}

/// The database named in a connection URL, for the role template.
fn url_database(url: &str) -> String {
    url::Url::parse(url).ok().map(|u| u.path().trim_start_matches('/').to_string()).filter(|d| !d.is_empty()).unwrap_or_default()
}

impl Engine {
    /// Creates the pools (lazily connected). The statement timeout is a property of every
    /// pooled PostgreSQL connection (a startup option), so no statement spends a round trip
    /// setting it; a `SET` inside `query` cannot outlive its rolled-back transaction.
    pub async fn connect(src: &SourceConfig, base_dir: &Path, limits: &DbLimits, usage: Usage<'_>) -> Result<Engine, DatabaseError> {
        let url = &src.connection_url()?;
        let scrubbed = |e: &dyn std::fmt::Display| DatabaseError::Url(super::scrub(&e.to_string(), url));
        let ms = limits.statement_timeout.0.as_millis().max(1).to_string();
        let free = usage.source.is_none();
        let account = |engine: &'static str| Arc::new(Account::new(usage.server, usage.source, engine, url_database(url), usage.allow_privileged, usage.read_write));
        let (db, account) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let mut opts = PgConnectOptions::from_str(url).map_err(|e| scrubbed(&e))?.options([("statement_timeout", ms.as_str())]);
            if free {
                // Callers' SQL keeps no statements: each is prepared under a fresh name
                // that sqlx does not cache, and the end of the call deallocates it (see
                // pgpool). (Unnamed statements would do, but sqlx's lookup of a custom
                // type between Parse and Bind is a simple query, which drops them.)
                opts = opts.statement_cache_capacity(0);
            }
            // Fixed statements of a read-only server run in autocommit, read-only by the
            // connection's default: no transaction to open or end.
            let fixed_read_only = !free && !usage.read_write;
            if fixed_read_only {
                opts = opts.options([("default_transaction_read_only", "on")]);
            }
            let account = account("postgresql");
            let pool = pgpool::build(opts, src.pool_size as usize, src.connect_timeout.0, src.idle_timeout.0, free, fixed_read_only, account.clone());
            (Db::Postgres(pool), Some(account))
        } else if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            let opts = MySqlConnectOptions::from_str(&url.replacen("mariadb://", "mysql://", 1)).map_err(|e| scrubbed(&e))?;
            let flavor = Arc::new(MySqlFlavor::default());
            let account = account("mysql");
            let (seen, checked) = (flavor.clone(), account.clone());
            let pool = pool_options::<sqlx::MySql>(src)
                .after_connect(move |conn, _| {
                    let (seen, checked) = (seen.clone(), checked.clone());
                    Box::pin(async move {
                        checked.record(my_check(conn, &seen).await?);
                        Ok(())
                    })
                })
                .connect_lazy_with(opts);
            (Db::MySql { pool, flavor, json: Arc::new(MySqlJson::new()) }, Some(account))
        } else if url.starts_with("sqlite:") {
            let path = super::sqlite_path(url, base_dir).ok_or_else(|| DatabaseError::Url("invalid sqlite URL".into()))?;
            if let (false, Some(seed)) = (path.exists(), &src.seed) {
                seed_sqlite(&path, &base_dir.join(seed)).await?;
            }
            let base = SqliteConnectOptions::new().filename(&path).busy_timeout(src.connect_timeout.0);
            let hardened = || SqlitePoolOptions::new().acquire_timeout(src.connect_timeout.0).after_connect(|conn, _| Box::pin(super::sqlite::harden(conn)));
            let ro = hardened().max_connections(src.pool_size.max(1)).connect_lazy_with(base.clone().read_only(true));
            let rw = hardened().max_connections(1).connect_lazy_with(base);
            (Db::Sqlite { ro, rw }, None)
        } else {
            return Err(DatabaseError::Url("unsupported scheme: use postgres://, mysql:// or sqlite://".into()));
        };
        let url = if matches!(db, Db::Sqlite { .. }) { String::new() } else { url.to_string() };
        Ok(Engine { db, url, account, pool_size: src.pool_size.max(1) as usize, wait: src.connect_timeout.0 })
    }

    /// `postgresql`, `mysql` or `sqlite`.
    pub fn kind(&self) -> &'static str {
        match self.db {
            Db::Postgres(_) => "postgresql",
            Db::MySql { .. } => "mysql",
            Db::Sqlite { .. } => "sqlite",
        }
    }

    /// The account check's state, for `/readyz` and `/admin/servers` (`None` for SQLite).
    pub fn account(&self) -> Option<&Arc<Account>> {
        self.account.as_ref()
    }

    /// Opens one connection in the background, so the account check (and a database that
    /// is down) shows in `/admin/servers` before the first call.
    pub fn probe(self: &Arc<Self>) {
        let engine = self.clone();
        tokio::spawn(async move {
            let r = match &engine.db {
                Db::Postgres(pool) => pgpool::get(pool).await.map(drop),
                Db::MySql { pool, .. } => pool.acquire().await.map(drop),
                Db::Sqlite { ro, .. } => ro.acquire().await.map(drop),
            };
            if let Err(e) = r {
                log::info!("database `{}` is not reachable yet: {}", engine.kind(), super::scrub(&e.to_string(), &engine.url));
            }
        });
    }

    /// `query`: one read-only statement of the caller's, with `params` bound, under the caps.
    pub async fn query(&self, sql: &str, params: &[Bound], limits: &DbLimits) -> Result<Rows, CallError> {
        self.run(Sql { text: sql, params, limits, read_only: true, want: Want::Rows, tool: Some("query") }).await
    }

    /// `execute`: one writing statement of the caller's; reports the rows affected.
    pub async fn execute(&self, sql: &str, params: &[Bound], limits: &DbLimits) -> Result<Rows, CallError> {
        self.run(Sql { text: sql, params, limits, read_only: false, want: Want::Affected, tool: Some("execute") }).await
    }

    /// A fixed statement (a custom SQL tool, catalog SQL): rows, read-only or as a write.
    pub async fn fixed(&self, sql: &str, params: &[Bound], limits: &DbLimits, read_only: bool) -> Result<Rows, CallError> {
        self.run(Sql { text: sql, params, limits, read_only, want: Want::Rows, tool: None }).await
    }

    /// The one path every statement takes.
    pub async fn run(&self, s: Sql<'_>) -> Result<Rows, CallError> {
        let r = match &self.db {
            Db::Postgres(pool) => self.run_pg(pool, s).await,
            Db::MySql { pool, flavor, json } => self.run_my(pool, flavor, json, s).await,
            Db::Sqlite { ro, rw } => self.run_lite(if s.read_only { ro } else { rw }, s).await,
        };
        r.map_err(|e| e.scrubbed(&self.url))
    }

    /// The statement's client-side deadline: its server-side limit and a margin for the
    /// server's own cancellation to arrive first.
    fn deadline(limits: &DbLimits) -> Duration {
        limits.statement_timeout.0 + Duration::from_millis(500)
    }

    fn refusal(&self, s: &Sql<'_>) -> Option<CallError> {
        let tool = s.tool?;
        self.account.as_ref()?.refusal(tool).map(CallError::Refused)
    }

    /// A pool error in the call's terms: waiting for a busy pool is not the statement's
    /// fault, nor the database's.
    fn pool_error(&self, e: sqlx::Error) -> CallError {
        match e {
            sqlx::Error::PoolTimedOut => CallError::PoolBusy { size: self.pool_size, waited: self.wait },
            other => CallError::from_sqlx(other),
        }
    }

    async fn run_pg(&self, pool: &PgPool, s: Sql<'_>) -> Result<Rows, CallError> {
        let mut obj = pgpool::get(pool).await.map_err(|e| self.pool_error(e))?;
        if let Some(refused) = self.refusal(&s) {
            return Err(refused);
        }
        let mut c = Collector::new(s.limits);
        let work = async {
            let (mut r, began) = pg_attempt(&mut obj, &mut c, &s).await;
            // A connection the server closed while it was pooled fails on the call's
            // first exchange: run the call once more on a fresh connection rather than
            // fail it (the database is most likely back, or never left). A write only
            // when that exchange was not its statement (nothing of it reached the
            // server); a read in any case, since it changes nothing.
            if let Err(e) = &r {
                if (s.read_only || !began) && pgpool::stale(&obj, e) {
                    log::info!("a pooled PostgreSQL connection was closed by the server; running the call on a fresh one");
                    let fresh = pgpool::get(pool).await?;
                    pgpool::finish(std::mem::replace(&mut obj, fresh), pgpool::End::Rollback, false);
                    c.reset();
                    r = pg_attempt(&mut obj, &mut c, &s).await.0;
                }
            }
            // An error leaves answers in flight: read them before the end of the
            // transaction goes out (a rare path, one round trip). A capped statement
            // that was still producing rows goes with its connection.
            let in_step = match &r {
                Ok(_) => c.complete,
                Err(e) => pgpool::survives(e) && pgpool::settle(&mut obj).await,
            };
            Ok::<_, sqlx::Error>((r, in_step))
        };
        let (r, in_step) = match tokio::time::timeout(Self::deadline(s.limits), work).await {
            Ok(done) => done.map_err(|e| self.pool_error(e))?,
            Err(_) => return Err(CallError::Timeout(s.limits.statement_timeout.0)),
        };
        pgpool::finish(obj, *r.as_ref().unwrap_or(&end_of(&s)), in_step && c.largest <= LARGE_ROW);
        r.map_err(CallError::from_sqlx)?;
        Ok(c.out)
    }

    async fn run_my(&self, pool: &MySqlPool, flavor: &MySqlFlavor, json: &MySqlJson, s: Sql<'_>) -> Result<Rows, CallError> {
        // sqlx's acquire future holds a whole connection handshake (~18 KiB): boxed, so
        // this future stays small and cheap to move.
        let mut conn = Box::pin(pool.acquire()).await.map_err(|e| self.pool_error(e))?;
        if let Some(refused) = self.refusal(&s) {
            return Err(refused);
        }
        // MySQL cannot reset a session short of a new one (sqlx has no
        // COM_RESET_CONNECTION), and a caller's SQL can leave user variables, locks and
        // settings in it: a connection that ran a caller's statement is not reused. A
        // replacement opens in the background, off the next call's path.
        if s.tool.is_some() {
            conn.close_on_drop();
            let pool = pool.clone();
            tokio::spawn(async move {
                let _ = pool.acquire().await;
            });
        }
        let mut c = Collector::new(s.limits);
        let ms = s.limits.statement_timeout.0.as_millis().max(1);
        let work = async {
            let mut maybe_json = Vec::new();
            let r = my_statement(&mut conn, &mut c, flavor, ms, &s, &mut maybe_json).await;
            if r.is_ok() && !maybe_json.is_empty() && flavor.mariadb() {
                mark_json(&mut conn, json, &maybe_json, &mut c.out).await;
            }
            // A capped statement still producing rows goes with its connection.
            if !c.complete || c.largest > LARGE_ROW {
                conn.close_on_drop();
            }
            r
        };
        match tokio::time::timeout(Self::deadline(s.limits), work).await {
            Ok(r) => r.map_err(CallError::from_sqlx)?,
            Err(_) => {
                conn.close_on_drop();
                return Err(CallError::Timeout(s.limits.statement_timeout.0));
            }
        }
        Ok(c.out)
    }

    async fn run_lite(&self, pool: &SqlitePool, s: Sql<'_>) -> Result<Rows, CallError> {
        value::check_sqlite(s.params)?;
        let mut conn = Box::pin(pool.acquire()).await.map_err(|e| self.pool_error(e))?;
        let mut c = Collector::new(s.limits);
        // One statement on a read-only connection, or autocommitted on the single
        // read-write one: atomic either way, no transaction needed.
        let work = async {
            let q = value::bind_lite(sqlx::query(AssertSqlSafe(s.text.to_string())), s.params);
            statement_body!(conn, &mut c, s.text, q, value::lite_row, |_: &sqlx::sqlite::SqliteRow| 0, |_: &sqlx::sqlite::SqliteRow| (), s.want);
            Ok::<_, sqlx::Error>(())
        };
        match tokio::time::timeout(Self::deadline(s.limits), work).await {
            Ok(r) => r.map_err(CallError::from_sqlx)?,
            Err(_) => return Err(CallError::Timeout(s.limits.statement_timeout.0)),
        }
        Ok(c.out)
    }

    /// Schemas, tables and views, with a row estimate where the engine keeps one.
    pub async fn list_tables(&self, limits: &DbLimits) -> Result<Rows, CallError> {
        let sql = match self.db {
            Db::Postgres(_) => {
                "SELECT t.table_schema AS schema, t.table_name AS name, CASE t.table_type WHEN 'BASE TABLE' THEN 'table' WHEN 'VIEW' THEN 'view' ELSE lower(t.table_type) END AS type, \
                 (SELECT CASE WHEN c.reltuples < 0 THEN NULL ELSE c.reltuples::bigint END FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = t.table_schema AND c.relname = t.table_name) AS row_estimate \
                 FROM information_schema.tables t WHERE t.table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
            }
            Db::MySql { .. } => {
                "SELECT table_schema AS `schema`, table_name AS name, CASE table_type WHEN 'BASE TABLE' THEN 'table' WHEN 'VIEW' THEN 'view' ELSE lower(table_type) END AS type, CAST(table_rows AS SIGNED) AS row_estimate \
                 FROM information_schema.tables WHERE table_schema = DATABASE() ORDER BY 1, 2"
            }
            Db::Sqlite { .. } => "SELECT 'main' AS schema, name, type, NULL AS row_estimate FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY name",
        };
        let mut l = limits.clone();
        l.max_rows = l.max_rows.max(10_000);
        self.fixed(sql, &[], &l, true).await
    }

    /// Columns, primary key, foreign keys and indexes of one table.
    pub async fn describe_table(&self, schema: Option<&str>, table: &str, limits: &DbLimits) -> Result<Value, CallError> {
        let p = |v: &str| Bound::Text(v.to_string());
        let q = |sql: String, args: Vec<Bound>| async move { self.fixed(&sql, &args, limits, true).await };
        let (columns, pk, fks, idx) = match self.db {
            Db::Postgres(_) => {
                let args = vec![p(schema.unwrap_or("public")), p(table)];
                (
                    q("SELECT column_name AS name, data_type AS type, udt_name, is_nullable = 'YES' AS nullable, column_default AS default FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position".into(), args.clone()).await?,
                    q("SELECT kcu.column_name AS name FROM information_schema.table_constraints tc JOIN information_schema.key_column_usage kcu ON tc.constraint_name = kcu.constraint_name AND tc.table_schema = kcu.table_schema WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = $1 AND tc.table_name = $2 ORDER BY kcu.ordinal_position".into(), args.clone()).await?,
                    q("SELECT kcu.column_name AS column, ccu.table_schema AS ref_schema, ccu.table_name AS ref_table, ccu.column_name AS ref_column, tc.constraint_name AS name FROM information_schema.table_constraints tc JOIN information_schema.key_column_usage kcu ON tc.constraint_name = kcu.constraint_name AND tc.table_schema = kcu.table_schema JOIN information_schema.constraint_column_usage ccu ON ccu.constraint_name = tc.constraint_name AND ccu.constraint_schema = tc.table_schema WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = $1 AND tc.table_name = $2".into(), args.clone()).await?,
                    q("SELECT indexname AS name, indexdef AS definition FROM pg_indexes WHERE schemaname = $1 AND tablename = $2 ORDER BY indexname".into(), args).await?,
                )
            }
            Db::MySql { .. } => {
                let args: Vec<Bound> = match schema {
                    Some(s) => vec![p(s), p(table)],
                    None => vec![p(table)],
                };
                let w = if schema.is_some() { "table_schema = ? AND table_name = ?" } else { "table_schema = DATABASE() AND table_name = ?" };
                (
                    q(format!("SELECT column_name AS name, column_type AS type, is_nullable = 'YES' AS nullable, column_default AS `default` FROM information_schema.columns WHERE {w} ORDER BY ordinal_position"), args.clone()).await?,
                    q(format!("SELECT column_name AS name FROM information_schema.key_column_usage WHERE constraint_name = 'PRIMARY' AND {w} ORDER BY ordinal_position"), args.clone()).await?,
                    q(format!("SELECT column_name AS `column`, referenced_table_schema AS ref_schema, referenced_table_name AS ref_table, referenced_column_name AS ref_column, constraint_name AS name FROM information_schema.key_column_usage WHERE referenced_table_name IS NOT NULL AND {w}"), args.clone()).await?,
                    q(format!("SELECT index_name AS name, GROUP_CONCAT(column_name ORDER BY seq_in_index) AS columns, MIN(non_unique) = 0 AS is_unique FROM information_schema.statistics WHERE {w} GROUP BY index_name ORDER BY index_name"), args).await?,
                )
            }
            Db::Sqlite { .. } => {
                let t = vec![p(table)];
                (
                    q("SELECT name, type, \"notnull\" = 0 AS nullable, dflt_value AS \"default\", pk FROM pragma_table_info(?1) ORDER BY cid".into(), t.clone()).await?,
                    q("SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk".into(), t.clone()).await?,
                    q("SELECT \"from\" AS \"column\", 'main' AS ref_schema, \"table\" AS ref_table, \"to\" AS ref_column, id AS name FROM pragma_foreign_key_list(?1)".into(), t.clone()).await?,
                    q("SELECT name, \"unique\" = 1 AS is_unique, origin FROM pragma_index_list(?1) ORDER BY name".into(), t).await?,
                )
            }
        };
        if columns.rows.is_empty() {
            return Err(CallError::Argument(format!("no table `{}{table}` (see list_tables)", schema.map(|s| format!("{s}.")).unwrap_or_default())));
        }
        Ok(json!({
            "schema": schema,
            "table": table,
            "columns": objects(&columns),
            "primary_key": pk.rows.iter().filter_map(|r| r.first().cloned()).collect::<Vec<_>>(),
            "foreign_keys": objects(&fks),
            "indexes": objects(&idx),
        }))
    }
}

/// How a statement's transaction ends when it failed or was cut off.
fn end_of(s: &Sql<'_>) -> pgpool::End {
    if s.read_only {
        pgpool::End::Rollback
    } else {
        pgpool::End::Committed
    }
}

/// One PostgreSQL statement on the call's connection ([`pgpool::begin`] prepared it).
/// The statement is prepared, so it cannot stack another; read-only work is never
/// committed ([`pgpool::finish`] rolls it back, undoing any `SET` the statement made);
/// a write runs in autocommit. On a pool that runs callers' SQL nothing of the
/// statement stays on the connection (no statement cache; [`pgpool::finish`] deallocates).
async fn pg_statement(conn: &mut sqlx::PgConnection, c: &mut Collector<'_>, s: &Sql<'_>) -> Result<pgpool::End, sqlx::Error> {
    let q = value::bind_pg(sqlx::query(AssertSqlSafe(s.text.to_string())), s.params);
    statement_body!(conn, c, s.text, q, value::pg_row, value::pg_raw_size, |_: &sqlx::postgres::PgRow| (), s.want);
    Ok(end_of(s))
}

/// Prepares the call's connection and runs its statement; also says whether the
/// preparation succeeded (a failure before that sent nothing of the call).
async fn pg_attempt(obj: &mut pgpool::PgObject, c: &mut Collector<'_>, s: &Sql<'_>) -> (Result<pgpool::End, sqlx::Error>, bool) {
    match pgpool::begin(obj, s.read_only).await {
        Ok(conn) => (pg_statement(conn, c, s).await, true),
        Err(e) => (Err(e), false),
    }
}

/// One MySQL statement: the limit and access mode, then for reads a read-only
/// transaction (dropping it queues the ROLLBACK, sent when the pool takes the connection
/// back), for writes autocommit. Columns that may be MariaDB JSON are noted.
async fn my_statement(conn: &mut sqlx::MySqlConnection, c: &mut Collector<'_>, flavor: &MySqlFlavor, ms: u128, s: &Sql<'_>, maybe_json: &mut Vec<(usize, (String, String))>) -> Result<(), sqlx::Error> {
    let mut note = |row: &sqlx::mysql::MySqlRow| {
        maybe_json.extend(row.columns().iter().enumerate().filter_map(|(i, col)| value::my_maybe_json(col).map(|k| (i, k))));
    };
    let q = value::bind_my(sqlx::query(AssertSqlSafe(s.text.to_string())), s.params);
    if s.read_only {
        // One round trip (text protocol) for the limit, the access mode and BEGIN.
        let mut tx = conn.begin_with(AssertSqlSafe(flavor.begin_sql(ms, true))).await?;
        statement_body!(tx, c, s.text, q, value::my_row, value::my_raw_size, note, s.want);
    } else {
        conn.execute(sqlx::raw_sql(AssertSqlSafe(flavor.begin_sql(ms, false)))).await?;
        statement_body!(conn, c, s.text, q, value::my_row, value::my_raw_size, note, s.want);
    }
    Ok(())
}

/// Turns the text of MariaDB `JSON` columns into JSON values, learning which columns are
/// JSON from their check constraints (cached). A lookup that fails leaves the text.
async fn mark_json(conn: &mut sqlx::MySqlConnection, cache: &MySqlJson, candidates: &[(usize, (String, String))], out: &mut Rows) {
    for (i, key) in candidates {
        let is_json = match cache.0.get(key) {
            Some(known) => known,
            None => {
                let (table, column) = key;
                let (schema, table) = table.split_once('.').unwrap_or(("", table));
                let found = sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = IF(? = '', DATABASE(), ?) AND TABLE_NAME = ? AND CHECK_CLAUSE LIKE CONCAT('%json_valid(`', REPLACE(?, '`', '``'), '`)%')",
                )
                .bind(schema)
                .bind(schema)
                .bind(table)
                .bind(column)
                .fetch_one(&mut *conn)
                .await;
                let Ok(n) = found else { continue };
                cache.0.insert(key.clone(), n > 0);
                n > 0
            }
        };
        if !is_json {
            continue;
        }
        for row in &mut out.rows {
            if let Some(v @ Value::String(_)) = row.get_mut(*i) {
                if let Some(parsed) = v.as_str().and_then(|t| serde_json::from_str::<Value>(t).ok()) {
                    *v = parsed;
                }
            }
        }
    }
}

fn objects(rows: &Rows) -> Vec<Value> {
    rows.rows.iter().map(|r| Value::Object(rows.columns.iter().cloned().zip(r.iter().cloned()).collect::<Map<String, Value>>())).collect()
}

async fn seed_sqlite(path: &Path, script: &Path) -> Result<(), DatabaseError> {
    let sql = tokio::fs::read_to_string(script).await.map_err(|e| DatabaseError::Seed(format!("{}: {e}", script.display())))?;
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(|e| DatabaseError::Seed(format!("{}: {e}", dir.display())))?;
    }
    // Build next to the target and rename, so a half-written database is never served.
    let tmp = path.with_extension("seeding");
    let _ = tokio::fs::remove_file(&tmp).await;
    let opts = SqliteConnectOptions::new().filename(&tmp).create_if_missing(true);
    let pool = SqlitePoolOptions::new().max_connections(1).connect_with(opts).await.map_err(|e| DatabaseError::Seed(e.to_string()))?;
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(&pool).await.map_err(|e| DatabaseError::Seed(format!("{}: {e}", script.display())))?;
    pool.close().await;
    tokio::fs::rename(&tmp, path).await.map_err(|e| DatabaseError::Seed(e.to_string()))?;
    log::info!("created SQLite database {} from {}", path.display(), script.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{json_len, Rows};
    use serde_json::json;

    #[test]
    fn json_len_counts_the_serialized_text() {
        for v in [json!(null), json!(12.5), json!("a \"quoted\" é\n"), json!([1, {"k": [true]}])] {
            assert_eq!(json_len(&v), v.to_string().len(), "{v}");
        }
    }

    #[test]
    fn rows_become_the_documented_object() {
        let rows = Rows { columns: vec!["id".into(), "name".into()], rows: vec![vec![json!(1), json!("a")]], truncated: true, rows_affected: None };
        assert_eq!(rows.structured().to_value(), json!({"columns": ["id", "name"], "rows": [[1, "a"]], "row_count": 1, "truncated": true}));
        let write = Rows { rows_affected: Some(3), ..Default::default() };
        assert_eq!(write.structured().to_value(), json!({"columns": [], "rows": [], "row_count": 0, "truncated": false, "rows_affected": 3}));
    }
}

#[cfg(test)]
mod future_size {
    use super::*;

    /// A call's future is moved into boxes and timeouts on every call, so its size is a
    /// per-call cost; sqlx's pool-acquire and connect futures (kilobytes each) are boxed
    /// to keep it small. No connection is made: the pools connect lazily.
    #[tokio::test]
    async fn a_statement_future_stays_small() {
        let limits: DbLimits = serde_yaml::from_str("{}").expect("limits");
        let usage = Usage { server: "t", source: None, allow_privileged: false, read_write: false };
        for url in ["postgres://postgres@127.0.0.1:5432/test", "mysql://root@127.0.0.1:3306/test"] {
            let src: SourceConfig = serde_yaml::from_str(&format!("url: {url}")).expect("source");
            let engine = Engine::connect(&src, Path::new("."), &limits, usage).await.expect("lazy pool");
            let size = std::mem::size_of_val(&engine.query("SELECT 1", &[], &limits));
            assert!(size < 4096, "{}: the statement future is {size} bytes", engine.kind());
        }
    }
}
