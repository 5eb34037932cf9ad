//! Database servers against the real PostgreSQL (127.0.0.1:5432) and MariaDB
//! (127.0.0.1:3306) of the machine and SQLite files, through the real gateway with the
//! official Rust MCP SDK and raw HTTP. Under CI=true an unreachable database fails.

mod support;

use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::{json, Value};
use support::{text, Gateway, Raw};

use support::db::{self, reachable, PG_ADMIN};

/// A unique table name per test run, so runs can overlap.
fn unique(prefix: &str) -> String {
    format!("{prefix}_{}_{}", std::process::id(), rand_suffix())
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() % 1_000_000
}

fn server(name: &str, url: &str, access: &str) -> String {
    format!("  - name: {name}\n    type: database\n    source: {{url: \"{url}\", pool_size: 3}}\n    access: {access}\n    limits: {{statement_timeout: 1s, max_rows: 5, max_response_bytes: 4KiB}}\n")
}

async fn session(gw: &Gateway, name: &str) -> Raw {
    let mut c = Raw::new(gw.url(name));
    c.initialize("2025-06-18").await;
    c
}

/// A gateway serving PostgreSQL twice (`pg-rw` read-write, `pg` read-only) under an
/// `application_name` of its own, so a test can find its connections in
/// `pg_stat_activity`; returns that name, the gateway and a session on each server.
async fn tagged_postgres(prefix: &str) -> (String, Gateway, Raw, Raw) {
    let app = unique(prefix);
    let url = format!("{}?application_name={app}", db::pg_app().await);
    let gw = Gateway::start(&format!("servers:\n{}{}", server("pg-rw", &url, "read-write"), server("pg", &url, "read-only")));
    let w = session(&gw, "pg-rw").await;
    let r = session(&gw, "pg").await;
    (app, gw, w, r)
}

fn ok(r: &Value) -> &Value {
    assert_ne!(r["isError"], true, "{r}");
    &r["structuredContent"]
}

fn refused(r: &Value) {
    assert_eq!(r["isError"], true, "expected a refusal: {r}");
}

/// Runs the engine-independent checks against one database.
async fn exercise(gw: &Gateway, rw: &str, ro: &str, table: &str, placeholder: &str) {
    let w = session(gw, rw).await;
    let r = session(gw, ro).await;
    ok(&w.call("execute", json!({"sql": format!("CREATE TABLE {table} (id INTEGER PRIMARY KEY, name VARCHAR(40) NOT NULL, note VARCHAR(200))")})).await);
    for i in 1..=8 {
        let sql = format!("INSERT INTO {table} (id, name, note) VALUES ({p1}, {p2}, {p3})", p1 = ph(placeholder, 1), p2 = ph(placeholder, 2), p3 = ph(placeholder, 3));
        assert_eq!(ok(&w.call("execute", json!({"sql": sql, "params": [i, format!("row {i}"), null]})).await)["rows_affected"], 1);
    }

    // The read-only server has no execute tool at all.
    let names: Vec<String> = r.request(1, "tools/list", json!({})).await["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, ["list_tables", "describe_table", "query"]);
    assert_eq!(r.request(2, "tools/call", json!({"name": "execute", "arguments": {"sql": "SELECT 1"}})).await["error"]["code"], -32602);

    let tables = ok(&r.call("list_tables", json!({})).await).clone();
    assert!(tables["rows"].as_array().unwrap().iter().any(|row| row[1] == table), "{tables}");
    let d = ok(&r.call("describe_table", json!({"table": table})).await).clone();
    assert_eq!(d["primary_key"], json!(["id"]));
    assert_eq!(d["columns"].as_array().unwrap().len(), 3);
    refused(&r.call("describe_table", json!({"table": "no_such_table_xyz"})).await);

    // Caps: rows and bytes.
    let q = ok(&r.call("query", json!({"sql": format!("SELECT id, name FROM {table} ORDER BY id")})).await).clone();
    assert_eq!((q["row_count"].as_u64(), q["truncated"].as_bool()), (Some(5), Some(true)));
    assert_eq!(q["columns"], json!(["id", "name"]));
    assert_eq!(q["rows"][0], json!([1, "row 1"]));
    let updated = w.call("execute", json!({"sql": format!("UPDATE {table} SET note = {}", ph(placeholder, 1)), "params": ["x".repeat(190)]})).await;
    assert_eq!(ok(&updated)["rows_affected"], 8, "{updated}");
    assert_eq!(updated["content"][0]["text"], "8 row(s) affected");
    let q = ok(&r.call("query", json!({"sql": format!("SELECT note, note AS n2, note AS n3, note AS n4, note AS n5, note AS n6 FROM {table} ORDER BY id")})).await).clone();
    assert_eq!(q["truncated"], true, "the 4 KiB size cap cuts before the row cap");
    assert_eq!(q["row_count"], 3);
    // Bound parameters, and injection attempts that change nothing.
    let q = ok(&r.call("query", json!({"sql": format!("SELECT id FROM {table} WHERE name = {}", ph(placeholder, 1)), "params": ["row 3"]})).await).clone();
    assert_eq!(q["rows"], json!([[3]]));
    let q = ok(&r.call("query", json!({"sql": format!("SELECT id FROM {table} WHERE name = {}", ph(placeholder, 1)), "params": ["' OR 1=1 --"]})).await).clone();
    assert_eq!(q["row_count"], 0, "a bound value is data, not SQL");

    // Writes through query are refused by the database, whatever their shape.
    for sql in [
        format!("DELETE FROM {table}"),
        format!("UPDATE {table} SET name = 'x'"),
        format!("INSERT INTO {table} (id, name) VALUES (100, 'x')"),
        format!("DROP TABLE {table}"),
        format!("SELECT 1; DROP TABLE {table}"),
        format!("SELECT * FROM {table} FOR UPDATE"),
    ] {
        refused(&r.call("query", json!({"sql": sql})).await);
    }
    // Empty results still name their columns.
    let q = ok(&r.call("query", json!({"sql": format!("SELECT id, name FROM {table} WHERE id < 0")})).await).clone();
    assert_eq!((q["columns"].clone(), q["row_count"].clone()), (json!(["id", "name"]), json!(0)));
    // Data intact afterwards.
    let q = ok(&w.call("query", json!({"sql": format!("SELECT COUNT(*) AS n FROM {table}")})).await).clone();
    assert_eq!(q["rows"][0][0].as_i64(), Some(8));
    ok(&w.call("execute", json!({"sql": format!("DROP TABLE {table}")})).await);
}

fn ph(style: &str, n: usize) -> String {
    if style == "$" {
        format!("${n}")
    } else {
        "?".to_string()
    }
}

#[tokio::test]
async fn postgres_instance_tools_caps_and_read_only() {
    if !reachable(5432) {
        return;
    }
    let pg = db::pg_app().await;
    let gw = Gateway::start(&format!("servers:\n{}{}", server("pg-rw", pg, "read-write"), server("pg", pg, "read-only")));
    exercise(&gw, "pg-rw", "pg", &unique("mcpgate_pg"), "$").await;
    let r = session(&gw, "pg").await;
    // A data-modifying CTE and a sleep beyond the statement timeout.
    refused(&r.call("query", json!({"sql": "WITH d AS (DELETE FROM pg_class RETURNING 1) SELECT * FROM d"})).await);
    let t = r.call("query", json!({"sql": "SELECT pg_sleep(3)"})).await;
    refused(&t);
    assert!(text(&t).contains("statement timeout") || text(&t).contains("canceling statement"), "{t}");
    // Session settings changed through `query` do not outlive its rolled-back transaction,
    // and those a committed `execute` changes are reset: the next statements on the same
    // pooled connections are still read-only and still time out.
    let w = session(&gw, "pg-rw").await;
    let victim = unique("mcpgate_pg_victim");
    ok(&w.call("execute", json!({"sql": format!("CREATE TABLE {victim} (id int)")})).await);
    for _ in 0..3 {
        for sql in ["SET statement_timeout = 0", "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", "SELECT set_config('default_transaction_read_only', 'off', false)"] {
            r.call("query", json!({"sql": sql})).await;
        }
        ok(&w.call("execute", json!({"sql": "SET statement_timeout = 0"})).await);
        refused(&r.call("query", json!({"sql": format!("DROP TABLE {victim}")})).await);
        let t = r.call("query", json!({"sql": "SELECT pg_sleep(3)"})).await;
        assert!(text(&t).contains("statement timeout") || text(&t).contains("canceling statement"), "{t}");
        let t = w.call("query", json!({"sql": "SELECT pg_sleep(3)"})).await;
        assert!(text(&t).contains("statement timeout") || text(&t).contains("canceling statement"), "{t}");
    }
    ok(&w.call("execute", json!({"sql": format!("DROP TABLE {victim}")})).await);
    // The type mapping.
    let q = ok(&r.call("query", json!({"sql": "SELECT 1::int2 a, 2::int4 b, 3::int8 c, 1.5::float4 d, 2.25::float8 e, 12345678901234567890.123456789::numeric f, true g, 'x'::text h, '\\x0102'::bytea i, '2026-11-23'::date j, '13:14:15'::time k, '2026-11-23 13:14:15.5'::timestamp l, '2026-11-23 13:14:15+02'::timestamptz m, '1 year 2 mons 3 days 04:05:06'::interval n, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid o, '{\"k\":[1,2]}'::jsonb p, ARRAY[1,2,3] q, ARRAY['a',NULL] r, NULL::text s, '10.0.0.0/8'::cidr t"})).await).clone();
    let row = &q["rows"][0];
    assert_eq!(
        row,
        &json!([1, 2, 3, 1.5, 2.25, "12345678901234567890.123456789", true, "x", "AQI=", "2026-11-23", "13:14:15", "2026-11-23T13:14:15.500", "2026-11-23T11:14:15Z", "P1Y2M3DT4H5M6S", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", {"k": [1, 2]}, [1, 2, 3], ["a", null], null, "10.0.0.0/8"])
    );
    // Enums (user-defined types) come back as their label.
    let w = session(&gw, "pg-rw").await;
    let ty = unique("mcpgate_mood");
    ok(&w.call("execute", json!({"sql": format!("CREATE TYPE {ty} AS ENUM ('happy', 'sad')")})).await);
    let q = ok(&r.call("query", json!({"sql": format!("SELECT 'sad'::{ty} AS mood, 'x'::varchar(3) AS v, 'ab'::char(3) AS c, 7::oid AS o")})).await).clone();
    assert_eq!(q["rows"][0], json!(["sad", "x", "ab ", 7]));
    ok(&w.call("execute", json!({"sql": format!("DROP TYPE {ty}")})).await);
}

/// Under load the gateway hands a PostgreSQL connection to the next call already inside a
/// fresh `BEGIN READ ONLY` and writes each call's ROLLBACK without waiting for it. Neither
/// may leave a lock or a transaction behind: right after a burst a DDL statement gets its
/// exclusive lock at once, and a moment later no connection of the gateway's is idle in a
/// transaction, nor an advisory lock. Calls on handed-over connections still refuse writes,
/// and `execute` still commits.
#[tokio::test]
async fn postgres_pooled_transactions_leave_no_lock_or_open_transaction() {
    use sqlx::Connection as _;
    if !reachable(5432) {
        return;
    }
    let (app, _gw, w, r) = tagged_postgres("mcpgate_park").await;
    let table = unique("mcpgate_pg_park");
    ok(&w.call("execute", json!({"sql": format!("CREATE TABLE {table} (id int PRIMARY KEY, name text)")})).await);
    ok(&w.call("execute", json!({"sql": format!("INSERT INTO {table} SELECT g, 'row ' || g FROM generate_series(1, 8) g")})).await);
    for _ in 0..3 {
        // 24 concurrent calls on a pool of 3: most connections change hands while others wait.
        let calls = (0..24).map(|i| r.call("query", json!({"sql": format!("SELECT name FROM {table} WHERE id = $1"), "params": [i % 8 + 1]})));
        for (i, res) in futures::future::join_all(calls).await.iter().enumerate() {
            assert_eq!(ok(res)["rows"][0][0], format!("row {}", i % 8 + 1), "{res}");
        }
        let writes = (0..6).map(|_| r.call("query", json!({"sql": format!("DELETE FROM {table}")})));
        for res in futures::future::join_all(writes).await {
            refused(&res);
        }
        let inserts = (0..6).map(|i| w.call("execute", json!({"sql": format!("INSERT INTO {table} VALUES ($1, 'new') ON CONFLICT (id) DO UPDATE SET name = excluded.name"), "params": [100 + i]})));
        for res in futures::future::join_all(inserts).await {
            assert_eq!(ok(&res)["rows_affected"], 1, "{res}");
        }
    }
    // A session-level advisory lock outlives a rollback; the gateway releases it.
    let key = 700_000 + i64::from(rand_suffix() % 100_000);
    ok(&r.call("query", json!({"sql": "SELECT pg_advisory_lock($1)", "params": [key]})).await);
    let mut admin = sqlx::PgConnection::connect(PG_ADMIN).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let free: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(key).fetch_one(&mut admin).await.unwrap();
    assert!(free, "the advisory lock a call took went with its connection back to the pool");
    sqlx::raw_sql("SELECT pg_advisory_unlock_all(); SET lock_timeout = '2s'").execute(&mut admin).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("ALTER TABLE {table} ADD COLUMN extra int"))).execute(&mut admin).await.expect("no pooled connection may keep a lock on the table");
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let states: Vec<(String,)> = sqlx::query_as("SELECT coalesce(state, '') FROM pg_stat_activity WHERE application_name = $1").bind(&app).fetch_all(&mut admin).await.unwrap();
    assert!(!states.is_empty(), "the gateway's connections are visible by application_name");
    assert!(states.iter().all(|(s,)| s == "idle"), "pooled connections idle outside any transaction: {states:?}");
    let q = ok(&r.call("query", json!({"sql": format!("SELECT count(*) FROM {table}")})).await).clone();
    assert_eq!(q["rows"][0][0], 14);
    ok(&w.call("execute", json!({"sql": format!("DROP TABLE {table}")})).await);
}

/// Ends every session the gateway holds on PostgreSQL, as a restart, a failover or a
/// DBA would; returns how many there were.
async fn terminate(app: &str) -> i64 {
    use sqlx::Connection as _;
    let mut admin = sqlx::PgConnection::connect(PG_ADMIN).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1").bind(app).fetch_one(&mut admin).await.unwrap();
    // Wait until the terminated backends are gone (a fixed pause was too short on a loaded
    // machine: a call could reach a backend still exiting and get its FATAL 57P01, which
    // is a connection closing under the call, not one the server had closed).
    for _ in 0..100 {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1").bind(app).fetch_one(&mut admin).await.unwrap();
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    n
}

#[tokio::test]
async fn postgres_calls_survive_connections_the_server_closed() {
    if !reachable(5432) {
        return;
    }
    let (app, _gw, w, r) = tagged_postgres("mcpgate_stale").await;
    let table = unique("mcpgate_pg_stale");
    ok(&w.call("execute", json!({"sql": format!("CREATE TABLE {table} (id int PRIMARY KEY)")})).await);
    let read = || r.call("query", json!({"sql": format!("SELECT count(*) AS n FROM {table}")}));
    for round in 0..2 {
        // Fill both pools (3 connections each), then end every one of those sessions.
        for res in futures::future::join_all((0..6).map(|_| read())).await {
            ok(&res);
        }
        ok(&w.call("execute", json!({"sql": format!("INSERT INTO {table} VALUES ({round})")})).await);
        assert!(terminate(&app).await >= 2, "the gateway's sessions are visible by application_name");
        // No call fails for it: each finds its connection gone before its statement went
        // out and runs on a fresh one; the pools ping the rest before handing them out.
        let reads = futures::future::join_all((0..6).map(|_| read())).await;
        for res in &reads {
            // Each earlier round left two rows (its read-pool insert and its write).
            assert_eq!(ok(res)["rows"][0][0], 2 * round + 1, "{res}");
        }
        let res = w.call("execute", json!({"sql": format!("INSERT INTO {table} VALUES ({})", 10 + round)})).await;
        assert_eq!(ok(&res)["rows_affected"], 1, "a write on a closed connection ran once, on a fresh one: {res}");
    }
    assert_eq!(ok(&read().await)["rows"][0][0], 4, "every write landed exactly once");
    ok(&w.call("execute", json!({"sql": format!("DROP TABLE {table}")})).await);
}

#[tokio::test]
async fn mariadb_instance_tools_caps_and_read_only() {
    if !reachable(3306) {
        return;
    }
    let my = db::my_app().await;
    let gw = Gateway::start(&format!("servers:\n{}{}", server("my-rw", my, "read-write"), server("my", my, "read-only")));
    exercise(&gw, "my-rw", "my", &unique("mcpgate_my"), "?").await;
    let r = session(&gw, "my").await;
    let t = r.call("query", json!({"sql": "SELECT SLEEP(3)"})).await;
    // MariaDB's max_statement_time interrupts SLEEP with a result of 1 or an error; either
    // way the call returns within the limit.
    assert!(t["isError"] == true || t["structuredContent"]["rows"][0][0] == 1, "{t}");
    // MariaDB's SET is not transactional: a session change made through `query` must not
    // carry over to the next statement on the same pooled connection.
    let w = session(&gw, "my-rw").await;
    let victim = unique("mcpgate_my_victim");
    ok(&w.call("execute", json!({"sql": format!("CREATE TABLE {victim} (id int)")})).await);
    for _ in 0..3 {
        for sql in ["SET SESSION TRANSACTION READ WRITE", "SET SESSION max_statement_time = 0"] {
            r.call("query", json!({"sql": sql})).await;
        }
        refused(&r.call("query", json!({"sql": format!("DROP TABLE {victim}")})).await);
        let started = std::time::Instant::now();
        let t = r.call("query", json!({"sql": "SELECT SLEEP(3)"})).await;
        assert!(started.elapsed() < std::time::Duration::from_millis(2500), "the statement limit was lifted: {t}");
    }
    ok(&w.call("query", json!({"sql": format!("SELECT COUNT(*) FROM {victim}")})).await);
    ok(&w.call("execute", json!({"sql": format!("DROP TABLE {victim}")})).await);
    let q = ok(&r
        .call(
            "query",
            json!({"sql": "SELECT CAST(1 AS SIGNED) a, 1.5e0 b, CAST(12345678901234567890.123456789 AS DECIMAL(30,9)) c, 'x' d, CAST(X'0102' AS BINARY(2)) e, DATE '2026-11-23' f, TIME '13:14:15' g, TIMESTAMP '2026-11-23 13:14:15' h, NULL i"}),
        )
        .await)
    .clone();
    assert_eq!(q["rows"][0], json!([1, 1.5, "12345678901234567890.123456789", "x", "AQI=", "2026-11-23", "13:14:15", "2026-11-23T13:14:15", null]));
    // Column types of a real table: unsigned, tinyint, float, enum, set, year, blob, text.
    let w = session(&gw, "my-rw").await;
    let t = unique("mcpgate_types");
    ok(&w.call("execute", json!({"sql": format!("CREATE TABLE {t} (u BIGINT UNSIGNED, ti TINYINT, f FLOAT, e ENUM('red','green'), s SET('a','b'), y YEAR, bl BLOB, tx TEXT, dt DATETIME(3))")})).await);
    ok(&w.call("execute", json!({"sql": format!("INSERT INTO {t} VALUES (18446744073709551615, -5, 0.5, 'green', 'a,b', 2026, X'FF00', 'long text', '2026-11-23 01:02:03.250')")})).await);
    let q = ok(&r.call("query", json!({"sql": format!("SELECT * FROM {t}")})).await).clone();
    assert_eq!(q["rows"][0], json!([18446744073709551615u64, -5, 0.5, "green", "a,b", 2026, "/wA=", "long text", "2026-11-23T01:02:03.250"]));
    ok(&w.call("execute", json!({"sql": format!("DROP TABLE {t}")})).await);
}

#[tokio::test]
async fn sqlite_through_the_rust_sdk_and_reload_swaps_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let seed = dir.path().join("seed.sql");
    std::fs::write(&seed, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, b BLOB, r REAL);\nINSERT INTO t VALUES (1, 'one', X'0102', 1.5), (2, NULL, NULL, NULL);\n").unwrap();
    let cfg = |url: &str| format!("servers:\n  - name: lite\n    type: database\n    source: {{url: \"sqlite://{url}\", seed: {}}}\n", seed.display());
    let gw = Gateway::start(&cfg(&db.display().to_string()));
    let client = ().serve(StreamableHttpClientTransport::from_uri(gw.url("lite"))).await.expect("rmcp connects");
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools.iter().map(|t| t.name.as_ref()).collect::<Vec<_>>(), ["list_tables", "describe_table", "query"]);
    assert_eq!(tools[2].annotations.as_ref().and_then(|a| a.read_only_hint), Some(true));
    let args = json!({"sql": "SELECT * FROM t ORDER BY id"}).as_object().cloned().unwrap();
    let r = client.call_tool(CallToolRequestParams::new("query").with_arguments(args)).await.unwrap();
    assert_ne!(r.is_error, Some(true));
    assert_eq!(r.structured_content.unwrap()["rows"], json!([[1, "one", "AQI=", 1.5], [2, null, null, null]]));
    let args = json!({"sql": "DELETE FROM t"}).as_object().cloned().unwrap();
    let r = client.call_tool(CallToolRequestParams::new("query").with_arguments(args)).await.unwrap();
    assert_eq!(r.is_error, Some(true), "writes are refused by the read-only connection");

    // Point the server at another file: the new pool serves the next call.
    let other = dir.path().join("other.db");
    std::fs::write(&seed, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);\nINSERT INTO t VALUES (42, 'new');\n").unwrap();
    gw.write_config(&cfg(&other.display().to_string()));
    gw.sighup();
    let mut swapped = false;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let args = json!({"sql": "SELECT id FROM t"}).as_object().cloned().unwrap();
        if let Ok(r) = client.call_tool(CallToolRequestParams::new("query").with_arguments(args)).await {
            if r.structured_content.as_ref().is_some_and(|s| s["rows"] == json!([[42]])) {
                swapped = true;
                break;
            }
        }
    }
    assert!(swapped, "{}", gw.log_text());
    client.cancel().await.ok();
}

#[tokio::test]
async fn dead_database_answers_is_error_and_recovers_without_restart() {
    // A port bound but not listening: connections are refused, and no other socket can
    // take the port before "the database comes back" on it (a port merely found free
    // can be reused as another connection's local port in between).
    let reserved = tokio::net::TcpSocket::new_v4().unwrap();
    reserved.set_reuseaddr(true).unwrap();
    reserved.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = reserved.local_addr().unwrap().port();
    // (PostgreSQL trusts loopback here, so the password only has to stay out of sight.)
    let gw = Gateway::start(&format!("servers:\n{}", server("gone", &format!("postgres://{}:hunter2@127.0.0.1:{port}/test", db::PG_APP_ROLE), "read-only")));
    let c = session(&gw, "gone").await;
    let r = c.call("query", json!({"sql": "SELECT 1"})).await;
    refused(&r);
    assert!(!text(&r).contains("hunter2") && !gw.log_text().contains("hunter2"), "the password leaked: {r}");
    assert_eq!(c.request(2, "ping", json!({})).await["result"], json!({}));
    if !reachable(5432) {
        return;
    }
    db::pg_app().await;
    // "The database comes back" on the same address: forward the port to the real
    // PostgreSQL. The same gateway, with no reload or restart, answers the next call.
    let listener = reserved.listen(64).unwrap();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut out) = tokio::net::TcpStream::connect("127.0.0.1:5432").await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                }
            });
        }
    });
    let r = c.call("query", json!({"sql": "SELECT 1 AS one"})).await;
    // (PostgreSQL trusts loopback here, so the password in the URL does not matter.)
    assert_eq!(ok(&r)["rows"], json!([[1]]), "{}", gw.log_text());
}

#[tokio::test]
async fn sqlite_execute_writes_through_the_read_write_connection_only() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("w.db").display());
    let seed = dir.path().join("seed.sql");
    std::fs::write(&seed, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);\n").unwrap();
    let lite = |name: &str, access: &str| format!("  - name: {name}\n    type: database\n    source: {{url: \"{url}\", seed: {}}}\n    access: {access}\n", seed.display());
    let gw = Gateway::start(&format!("servers:\n{}{}", lite("lite-rw", "read-write"), lite("lite", "read-only")));
    let w = session(&gw, "lite-rw").await;
    let r = session(&gw, "lite").await;
    for i in 1..=3 {
        assert_eq!(ok(&w.call("execute", json!({"sql": "INSERT INTO t (id, v) VALUES (?, ?)", "params": [i, format!("v{i}")]})).await)["rows_affected"], 1);
    }
    let updated = w.call("execute", json!({"sql": "UPDATE t SET v = ? WHERE id > ?", "params": ["x", 1]})).await;
    assert_eq!(ok(&updated)["rows_affected"], 2, "{updated}");
    // A failing statement changes nothing and says why.
    refused(&w.call("execute", json!({"sql": "INSERT INTO t (id, v) VALUES (1, 'dup')"})).await);
    // The read-only server's query cannot write, even with a statement that would.
    refused(&r.call("query", json!({"sql": "DELETE FROM t"})).await);
    let q = ok(&r.call("query", json!({"sql": "SELECT id, v FROM t ORDER BY id"})).await).clone();
    assert_eq!(q["rows"], json!([[1, "v1"], [2, "x"], [3, "x"]]));
}
