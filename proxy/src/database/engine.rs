//! One pool per source and the per-engine SQL: read-only queries, writes, and catalog
//! introspection.

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

use super::pgpool::{self, PgPool};
use super::value;
use super::{DatabaseError, DbLimits, SourceConfig};
use crate::tools::Structured;

/// A pooled database.
pub enum Engine {
    /// PostgreSQL.
    Postgres {
        /// The pool.
        pool: PgPool,
        /// For scrubbing messages.
        url: String,
    },
    /// MySQL or MariaDB.
    MySql {
        /// The pool.
        pool: MySqlPool,
        /// Which server answers (their statement-timeout variables differ).
        flavor: Arc<MySqlFlavor>,
        /// For scrubbing messages.
        url: String,
    },
    /// SQLite: reads go through a read-only pool, writes through a read-write one.
    Sqlite {
        /// Read-only connections (`SQLITE_OPEN_READONLY`).
        ro: SqlitePool,
        /// Read-write connections (used by `execute` only).
        rw: SqlitePool,
    },
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

    /// One multi-statement text that sets the per-statement time limit and the session's
    /// access mode, then opens the transaction. The session mode matters: DDL commits
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
        let mode = if read_only { "READ ONLY" } else { "READ WRITE" };
        format!("{limit}SET SESSION TRANSACTION {mode}; START TRANSACTION {mode}")
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
}

impl<'a> Collector<'a> {
    fn new(limits: &'a DbLimits) -> Self {
        Collector { out: Rows::default(), limits, bytes: 0 }
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

/// Streams a statement's rows into the collector under its caps; when no row came back,
/// the columns are read from the prepared statement so empty results still name them.
macro_rules! collect_rows {
    ($conn:expr, $c:expr, $sql:expr, $query:expr, $decode:path) => {{
        {
            let mut rows = $query.fetch(&mut *$conn);
            while let Some(row) = rows.try_next().await? {
                if !$c.push(|| names(row.columns()), $decode(&row)) {
                    break;
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
enum Want {
    /// The rows (`query`, custom SQL tools).
    Rows,
    /// The number of rows affected (`execute`).
    Affected,
}

/// Runs the bound statement for what the caller wants: rows into the collector, or the
/// affected-row count.
macro_rules! statement_body {
    ($conn:expr, $c:expr, $sql:expr, $query:expr, $decode:path, $want:expr) => {{
        match $want {
            Want::Rows => collect_rows!($conn, $c, $sql, $query, $decode),
            Want::Affected => $c.out.rows_affected = Some($query.execute(&mut *$conn).await?.rows_affected()),
        }
    }};
}

fn names<C: Column>(cols: &[C]) -> Vec<String> {
    cols.iter().map(|c| c.name().to_string()).collect()
}

/// sqlx pool settings (MySQL). sqlx already pings every connection when it is released
/// (which also flushes a queued `ROLLBACK`), so a connection that was busy a moment ago is
/// known to be alive; only one that sat idle is pinged again on acquire (sqlx's default
/// pings on every acquire, one more round trip per statement).
fn pool_options<DB: sqlx::Database>(src: &SourceConfig) -> sqlx::pool::PoolOptions<DB> {
    sqlx::pool::PoolOptions::<DB>::new()
        .max_connections(src.pool_size.max(1))
        .acquire_timeout(src.connect_timeout.0)
        .idle_timeout(Some(src.idle_timeout.0))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > super::PING_IF_IDLE_FOR {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

/// One PostgreSQL statement in the call's transaction ([`pgpool::begin`] opened it).
/// The user's SQL runs as one prepared statement, so it cannot end the transaction or
/// stack another statement; read-only work is never committed ([`pgpool::finish`] rolls
/// it back, undoing any `SET` the statement made).
async fn pg_statement(conn: &mut sqlx::PgConnection, c: &mut Collector<'_>, sql: &str, params: &[Value], read_only: bool, want: Want) -> Result<pgpool::End, sqlx::Error> {
    statement_body!(conn, c, sql, value::bind_pg(sqlx::query(AssertSqlSafe(sql.to_string())), params), value::pg_row, want);
    if read_only {
        return Ok(pgpool::End::Rollback);
    }
    conn.execute(sqlx::raw_sql("COMMIT")).await?;
    Ok(pgpool::End::Committed)
}

/// Opens the call's transaction and runs its statement; also says whether the
/// transaction was opened (a failure before that sent nothing of the call).
async fn pg_attempt(obj: &mut pgpool::PgObject, c: &mut Collector<'_>, sql: &str, params: &[Value], read_only: bool, want: Want) -> (Result<pgpool::End, sqlx::Error>, bool) {
    match pgpool::begin(obj, read_only).await {
        Ok(conn) => (pg_statement(conn, c, sql, params, read_only, want).await, true),
        Err(e) => (Err(e), false),
    }
}

impl Engine {
    /// Creates the pool (lazily connected). The statement timeout is a property of every
    /// pooled PostgreSQL connection (a startup option), so no statement spends a round trip
    /// setting it; a `SET` inside `query` cannot outlive its rolled-back transaction.
    pub async fn connect(src: &SourceConfig, base_dir: &Path, limits: &DbLimits) -> Result<Engine, DatabaseError> {
        let url = &src.connection_url()?;
        let scrubbed = |e: &dyn std::fmt::Display| DatabaseError::Url(super::scrub(&e.to_string(), url));
        let ms = limits.statement_timeout.0.as_millis().max(1).to_string();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url).map_err(|e| scrubbed(&e))?.options([("statement_timeout", ms.as_str())]);
            let pool = pgpool::build(opts, src.pool_size as usize, src.connect_timeout.0, src.idle_timeout.0);
            Ok(Engine::Postgres { pool, url: url.to_string() })
        } else if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            let opts = MySqlConnectOptions::from_str(&url.replacen("mariadb://", "mysql://", 1)).map_err(|e| scrubbed(&e))?;
            let flavor = Arc::new(MySqlFlavor::default());
            let seen = flavor.clone();
            let pool = pool_options::<sqlx::MySql>(src)
                .after_connect(move |conn, _| {
                    let seen = seen.clone();
                    Box::pin(async move {
                        let version: String = sqlx::query_scalar("SELECT VERSION()").fetch_one(conn).await?;
                        seen.learn(&version);
                        Ok(())
                    })
                })
                .connect_lazy_with(opts);
            Ok(Engine::MySql { pool, flavor, url: url.to_string() })
        } else if url.starts_with("sqlite:") {
            let path = super::sqlite_path(url, base_dir).ok_or_else(|| DatabaseError::Url("invalid sqlite URL".into()))?;
            if let (false, Some(seed)) = (path.exists(), &src.seed) {
                seed_sqlite(&path, &base_dir.join(seed)).await?;
            }
            let base = SqliteConnectOptions::new().filename(&path).busy_timeout(src.connect_timeout.0);
            let ro = SqlitePoolOptions::new().max_connections(src.pool_size.max(1)).acquire_timeout(src.connect_timeout.0).connect_lazy_with(base.clone().read_only(true));
            let rw = SqlitePoolOptions::new().max_connections(1).acquire_timeout(src.connect_timeout.0).connect_lazy_with(base);
            Ok(Engine::Sqlite { ro, rw })
        } else {
            Err(DatabaseError::Url("unsupported scheme: use postgres://, mysql:// or sqlite://".into()))
        }
    }

    /// `postgresql`, `mysql` or `sqlite`.
    pub fn kind(&self) -> &'static str {
        match self {
            Engine::Postgres { .. } => "postgresql",
            Engine::MySql { .. } => "mysql",
            Engine::Sqlite { .. } => "sqlite",
        }
    }

    fn scrub(&self, e: &dyn std::fmt::Display) -> String {
        match self {
            Engine::Postgres { url, .. } | Engine::MySql { url, .. } => super::scrub(&e.to_string(), url),
            Engine::Sqlite { .. } => e.to_string(),
        }
    }

    /// Runs one read-only statement with `params` bound, under the caps.
    pub async fn query(&self, sql: &str, params: &[Value], limits: &DbLimits) -> Result<Rows, String> {
        self.statement(sql, params, limits, true, Want::Rows).await
    }

    /// Runs one statement and returns its rows; `read_only` picks a read-only transaction
    /// (rolled back) or a read-write one (committed).
    pub async fn run(&self, sql: &str, params: &[Value], limits: &DbLimits, read_only: bool) -> Result<Rows, String> {
        self.statement(sql, params, limits, read_only, Want::Rows).await
    }

    /// Runs one writing statement in its own transaction and reports the rows affected.
    pub async fn execute(&self, sql: &str, params: &[Value], limits: &DbLimits) -> Result<Rows, String> {
        self.statement(sql, params, limits, false, Want::Affected).await
    }

    /// The one path every statement takes: transaction, statement limit, client-side
    /// deadline and scrubbed errors are the same whatever the caller wants back.
    async fn statement(&self, sql: &str, params: &[Value], limits: &DbLimits, read_only: bool, want: Want) -> Result<Rows, String> {
        let work = self.statement_inner(sql, params, limits, read_only, want);
        match tokio::time::timeout(limits.statement_timeout.0 + Duration::from_millis(500), work).await {
            Ok(r) => r.map_err(|e| self.scrub(&e)),
            Err(_) => Err(format!("the statement did not finish within {:?} (statement_timeout)", limits.statement_timeout.0)),
        }
    }

    async fn statement_inner(&self, sql: &str, params: &[Value], limits: &DbLimits, read_only: bool, want: Want) -> Result<Rows, sqlx::Error> {
        let mut c = Collector::new(limits);
        let ms = limits.statement_timeout.0.as_millis().max(1);
        match self {
            Engine::Postgres { pool, .. } => {
                let mut obj = pgpool::get(pool).await?;
                let (mut r, began) = pg_attempt(&mut obj, &mut c, sql, params, read_only, want).await;
                // A connection the server closed while it was pooled fails before the
                // statement went out: run the call once more on a fresh connection rather
                // than fail it (the database is most likely back, or never left).
                if let (Err(e), false) = (&r, began) {
                    if pgpool::stale(&obj, e) {
                        log::info!("a pooled PostgreSQL connection was closed by the server; running the call on a fresh one");
                        pgpool::finish(obj, pgpool::End::Rollback, false);
                        obj = pgpool::get(pool).await?;
                        r = pg_attempt(&mut obj, &mut c, sql, params, read_only, want).await.0;
                    }
                }
                // A capped result or an error leaves answers in flight; read them before
                // the end of the transaction goes out (rare paths, one round trip).
                let in_step = match &r {
                    Ok(_) if !c.out.truncated => true,
                    Ok(_) => pgpool::settle(&mut obj).await,
                    Err(e) => pgpool::survives(e) && pgpool::settle(&mut obj).await,
                };
                pgpool::finish(obj, *r.as_ref().unwrap_or(&pgpool::End::Rollback), in_step);
                r?;
            }
            Engine::MySql { pool, flavor, .. } => {
                // sqlx's acquire future holds a whole connection handshake (~18 KiB):
                // boxed, so this future stays small and cheap to move.
                let mut conn = Box::pin(pool.acquire()).await?;
                // One round trip (text protocol) for the limit, the access mode and BEGIN.
                let mut tx = conn.begin_with(AssertSqlSafe(flavor.begin_sql(ms, read_only))).await?;
                statement_body!(tx, &mut c, sql, value::bind_my(sqlx::query(AssertSqlSafe(sql.to_string())), params), value::my_row, want);
                if !read_only {
                    tx.commit().await?;
                }
                // Read-only: dropping `tx` queues the ROLLBACK, sent when the pool takes
                // the connection back.
            }
            Engine::Sqlite { ro, rw } => {
                // One statement on a read-only connection, or autocommitted on the single
                // read-write one: atomic either way, no transaction needed.
                let mut conn = Box::pin(if read_only { ro.acquire() } else { rw.acquire() }).await?;
                statement_body!(conn, &mut c, sql, value::bind_lite(sqlx::query(AssertSqlSafe(sql.to_string())), params), value::lite_row, want);
            }
        }
        Ok(c.out)
    }

    /// Schemas, tables and views, with a row estimate where the engine keeps one.
    pub async fn list_tables(&self, limits: &DbLimits) -> Result<Rows, String> {
        let sql = match self {
            Engine::Postgres { .. } => {
                "SELECT t.table_schema AS schema, t.table_name AS name, CASE t.table_type WHEN 'BASE TABLE' THEN 'table' WHEN 'VIEW' THEN 'view' ELSE lower(t.table_type) END AS type, \
                 (SELECT CASE WHEN c.reltuples < 0 THEN NULL ELSE c.reltuples::bigint END FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = t.table_schema AND c.relname = t.table_name) AS row_estimate \
                 FROM information_schema.tables t WHERE t.table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
            }
            Engine::MySql { .. } => {
                "SELECT table_schema AS `schema`, table_name AS name, CASE table_type WHEN 'BASE TABLE' THEN 'table' WHEN 'VIEW' THEN 'view' ELSE lower(table_type) END AS type, CAST(table_rows AS SIGNED) AS row_estimate \
                 FROM information_schema.tables WHERE table_schema = DATABASE() ORDER BY 1, 2"
            }
            Engine::Sqlite { .. } => "SELECT 'main' AS schema, name, type, NULL AS row_estimate FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY name",
        };
        let mut l = limits.clone();
        l.max_rows = l.max_rows.max(10_000);
        self.query(sql, &[], &l).await
    }

    /// Columns, primary key, foreign keys and indexes of one table.
    pub async fn describe_table(&self, schema: Option<&str>, table: &str, limits: &DbLimits) -> Result<Value, String> {
        let p = |v: &str| Value::String(v.to_string());
        let (columns, pk, fks, idx) = match self {
            Engine::Postgres { .. } => {
                let s = p(schema.unwrap_or("public"));
                let t = p(table);
                let args = [s, t];
                (
                    self.query("SELECT column_name AS name, data_type AS type, udt_name, is_nullable = 'YES' AS nullable, column_default AS default FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position", &args, limits).await?,
                    self.query("SELECT kcu.column_name AS name FROM information_schema.table_constraints tc JOIN information_schema.key_column_usage kcu ON tc.constraint_name = kcu.constraint_name AND tc.table_schema = kcu.table_schema WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = $1 AND tc.table_name = $2 ORDER BY kcu.ordinal_position", &args, limits).await?,
                    self.query("SELECT kcu.column_name AS column, ccu.table_schema AS ref_schema, ccu.table_name AS ref_table, ccu.column_name AS ref_column, tc.constraint_name AS name FROM information_schema.table_constraints tc JOIN information_schema.key_column_usage kcu ON tc.constraint_name = kcu.constraint_name AND tc.table_schema = kcu.table_schema JOIN information_schema.constraint_column_usage ccu ON ccu.constraint_name = tc.constraint_name AND ccu.constraint_schema = tc.table_schema WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = $1 AND tc.table_name = $2", &args, limits).await?,
                    self.query("SELECT indexname AS name, indexdef AS definition FROM pg_indexes WHERE schemaname = $1 AND tablename = $2 ORDER BY indexname", &args, limits).await?,
                )
            }
            Engine::MySql { .. } => {
                let t = p(table);
                let args: Vec<Value> = match schema {
                    Some(s) => vec![p(s), t],
                    None => vec![t],
                };
                let w = if schema.is_some() { "table_schema = ? AND table_name = ?" } else { "table_schema = DATABASE() AND table_name = ?" };
                (
                    self.query(&format!("SELECT column_name AS name, column_type AS type, is_nullable = 'YES' AS nullable, column_default AS `default` FROM information_schema.columns WHERE {w} ORDER BY ordinal_position"), &args, limits).await?,
                    self.query(&format!("SELECT column_name AS name FROM information_schema.key_column_usage WHERE constraint_name = 'PRIMARY' AND {w} ORDER BY ordinal_position"), &args, limits).await?,
                    self.query(&format!("SELECT column_name AS `column`, referenced_table_schema AS ref_schema, referenced_table_name AS ref_table, referenced_column_name AS ref_column, constraint_name AS name FROM information_schema.key_column_usage WHERE referenced_table_name IS NOT NULL AND {w}"), &args, limits).await?,
                    self.query(&format!("SELECT index_name AS name, GROUP_CONCAT(column_name ORDER BY seq_in_index) AS columns, MIN(non_unique) = 0 AS is_unique FROM information_schema.statistics WHERE {w} GROUP BY index_name ORDER BY index_name"), &args, limits).await?,
                )
            }
            Engine::Sqlite { .. } => {
                let t = [p(table)];
                (
                    self.query("SELECT name, type, \"notnull\" = 0 AS nullable, dflt_value AS \"default\", pk FROM pragma_table_info(?1) ORDER BY cid", &t, limits).await?,
                    self.query("SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk", &t, limits).await?,
                    self.query("SELECT \"from\" AS \"column\", 'main' AS ref_schema, \"table\" AS ref_table, \"to\" AS ref_column, id AS name FROM pragma_foreign_key_list(?1)", &t, limits).await?,
                    self.query("SELECT name, \"unique\" = 1 AS is_unique, origin FROM pragma_index_list(?1) ORDER BY name", &t, limits).await?,
                )
            }
        };
        if columns.rows.is_empty() {
            return Err(format!("no table `{}{table}` (see list_tables)", schema.map(|s| format!("{s}.")).unwrap_or_default()));
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
        for url in ["postgres://postgres@127.0.0.1:5432/test", "mysql://root@127.0.0.1:3306/test"] {
            let src: SourceConfig = serde_yaml::from_str(&format!("url: {url}")).expect("source");
            let engine = Engine::connect(&src, Path::new("."), &limits).await.expect("lazy pool");
            let size = std::mem::size_of_val(&engine.query("SELECT 1", &[], &limits));
            assert!(size < 4096, "{}: the statement future is {size} bytes", engine.kind());
        }
    }
}
