//! "Read-only" as a security reviewer reads it, against the machine's real PostgreSQL and
//! MariaDB and SQLite files, through the real gateway: an account that can reach outside
//! the database never serves the free-SQL tools; a least-privileged one serves
//! everything and still cannot reach outside; no caller's statement changes what the next
//! caller on the same pooled connection sees.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::db::{self, reachable, MY_ADMIN, PG_ADMIN};
use support::{http_get, text, Gateway, Raw};

async fn session(gw: &Gateway, name: &str) -> Raw {
    let mut c = Raw::new(gw.url(name));
    c.initialize("2025-06-18").await;
    c
}

/// A database server on one pooled connection (so consecutive calls share a database
/// session), with a 3 s statement timeout unless `extra` sets `limits`.
fn server(name: &str, url: &str, extra: &str) -> String {
    let limits = if extra.contains("limits:") { "" } else { "    limits: {statement_timeout: 3s}\n" };
    format!("  - name: {name}\n    type: database\n    source: {{url: \"{url}\", pool_size: 1, connect_timeout: 1s}}\n{limits}{extra}")
}

fn ok(r: &Value) -> &Value {
    assert_ne!(r["isError"], true, "{r}");
    &r["structuredContent"]
}

fn refused<'a>(r: &'a Value, why: &str) -> &'a str {
    assert_eq!(r["isError"], true, "expected a refusal ({why}): {r}");
    let t = text(r);
    assert!(t.contains(why), "the message should say `{why}`: {t}");
    t
}

/// A file path the database host must never see written.
fn witness(tag: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("mcpgate_{tag}_{}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

#[tokio::test]
async fn postgres_superuser_serves_no_free_sql_and_says_how_to_fix_it() {
    if !reachable(5432) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tools = dir.path().join("tools.yaml");
    std::fs::write(&tools, "sources:\n  su:\n    kind: postgres\n    host: 127.0.0.1\n    port: 5432\n    database: test\n    user: postgres\n    password: \"\"\ntools:\n  whoami:\n    kind: postgres-sql\n    source: su\n    description: The current user.\n    statement: SELECT current_user AS u\n").unwrap();
    let gw = Gateway::start(&format!("servers:\n{}{}", server("su", PG_ADMIN, &format!("    tools_file: {}\n", tools.display())), server("su-allowed", PG_ADMIN, "    allow_privileged_account: true\n")));
    let c = session(&gw, "su").await;
    let out = witness("pg_program");
    for sql in [
        format!("COPY (SELECT 1) TO PROGRAM 'id > {}'", out.display()),
        "SELECT pg_read_file('/etc/passwd')".to_string(),
        format!("COPY (SELECT 1) TO '{}'", out.display()),
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND false".into(),
    ] {
        let t = refused(&c.call("query", json!({ "sql": sql })).await, "superuser (postgres)").to_string();
        assert!(t.contains("CREATE ROLE mcp_gateway LOGIN") && t.contains("GRANT SELECT ON ALL TABLES IN SCHEMA public") && t.contains("allow_privileged_account"), "{t}");
    }
    assert!(!out.exists(), "nothing ran on the database host");
    // Everything else is served: the catalog tools and the fixed custom tool.
    ok(&c.call("list_tables", json!({})).await);
    assert_eq!(ok(&c.call("whoami", json!({})).await)["rows"], json!([["postgres"]]));
    // The state is visible to the operator.
    let (_, ready) = http_get(gw.admin, "/readyz").unwrap();
    let ready: Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["databases"]["su"]["source"]["account"], "privileged", "{ready}");
    assert_eq!(ready["databases"]["su"]["source"]["free_sql"], "refused", "{ready}");
    assert!(ready["warnings"].as_array().unwrap().iter().any(|w| w.as_str().unwrap().contains("server `su`: query/execute refused")), "{ready}");
    let (_, servers) = http_get(gw.admin, "/admin/servers/su").unwrap();
    assert!(servers.contains("\"privileged\"") && servers.contains("superuser (postgres)"), "{servers}");
    assert_eq!(gw.metric("mcpgate_database_privileged_accounts{source=\"su\"}"), 1.0);
    assert!(gw.metric("mcpgate_database_refused_free_sql_total{source=\"su\"}") >= 4.0);
    // An operator who accepts the risk says so, and is reminded at every load.
    let a = session(&gw, "su-allowed").await;
    assert_eq!(ok(&a.call("query", json!({"sql": "SELECT current_user AS u"})).await)["rows"], json!([["postgres"]]));
    assert!(gw.log_text().contains("server `su-allowed`: allow_privileged_account is on"), "{}", gw.log_text());
}

#[tokio::test]
async fn postgres_privileged_memberships_and_grants_are_found() {
    if !reachable(5432) {
        return;
    }
    let role = format!("mcpgate_t_member_{}", std::process::id());
    db::pg_admin(&format!("CREATE ROLE {role} LOGIN NOINHERIT; GRANT pg_read_server_files TO {role}; GRANT EXECUTE ON FUNCTION pg_ls_dir(text) TO {role}")).await;
    let gw = Gateway::start(&format!("servers:\n{}", server("m", &format!("postgres://{role}@127.0.0.1:5432/test"), "")));
    let c = session(&gw, "m").await;
    // NOINHERIT: the role holds nothing until it SET ROLEs, which a read-only transaction allows.
    let t = refused(&c.call("query", json!({"sql": "SELECT pg_read_file('/etc/hostname')"})).await, "member of pg_read_server_files").to_string();
    assert!(t.contains("EXECUTE on pg_ls_dir(text)"), "{t}");
    drop(c);
    drop(gw);
    db::pg_admin(&format!("DROP OWNED BY {role}; DROP ROLE {role}")).await;
}

#[tokio::test]
async fn postgres_least_privileged_role_serves_everything_and_still_cannot_reach_outside() {
    if !reachable(5432) {
        return;
    }
    let app = db::pg_app().await;
    let gw = Gateway::start(&format!("servers:\n{}", server("app", app, "")));
    let c = session(&gw, "app").await;
    let out = witness("pg_program_app");
    for (sql, why) in [
        (format!("COPY (SELECT 1) TO PROGRAM 'id > {}'", out.display()), "42501"),
        ("SELECT pg_read_file('/etc/passwd')".to_string(), "permission denied for function pg_read_file"),
        (format!("COPY (SELECT 1) TO '{}'", out.display()), "42501"),
        ("SELECT lo_import('/etc/passwd')".into(), "42501"),
        ("SET ROLE postgres".into(), "permission denied"),
    ] {
        refused(&c.call("query", json!({ "sql": sql })).await, why);
    }
    assert!(!out.exists());
    let (_, ready) = http_get(gw.admin, "/readyz").unwrap();
    assert!(ready.contains("\"least-privileged\""), "{ready}");
    assert_eq!(gw.metric("mcpgate_database_privileged_accounts{source=\"app\"}"), 0.0);
    assert_eq!(ok(&c.call("query", json!({"sql": "SELECT current_user AS u, $1::int + 1 AS n", "params": [41]})).await)["rows"], json!([["mcpgate_test_app", 42]]));
}

#[tokio::test]
async fn postgres_callers_share_no_statement_state() {
    if !reachable(5432) {
        return;
    }
    let app = db::pg_app().await;
    // One pooled connection, so both sessions' calls run on the same database session.
    let gw = Gateway::start(&format!("servers:\n{}", server("app", app, "")));
    let (a, b) = (session(&gw, "app").await, session(&gw, "app").await);
    let genuine = json!({"sql": "select 'genuine'::text as answer"});
    assert_eq!(ok(&b.call("query", genuine.clone()).await)["rows"], json!([["genuine"]]));
    // No caller sees another's SQL (nor the gateway's) among the prepared statements,
    // only its own statement while it runs...
    let seen = ok(&a.call("query", json!({"sql": "select name, statement from pg_prepared_statements where statement not like '%pg_prepared_statements%'"})).await).clone();
    assert_eq!(seen["row_count"], 0, "{seen}");
    // ...nor can one leave a statement for another to run, or replace one.
    ok(&a.call("query", json!({"sql": "PREPARE mine AS SELECT 'POISONED'::text"})).await);
    refused(&b.call("query", json!({"sql": "EXECUTE mine"})).await, "26000");
    for sql in ["DEALLOCATE ALL", "PREPARE sqlx_s_1 AS SELECT 'POISONED'::text AS answer", "PREPARE sqlx_s_2 AS SELECT 'POISONED'::text AS answer"] {
        a.call("query", json!({ "sql": sql })).await;
    }
    assert_eq!(ok(&b.call("query", genuine).await)["rows"], json!([["genuine"]]));
    assert!(!ok(&b.call("list_tables", json!({})).await).to_string().contains("POISONED"));
    // Parameter types are each call's own.
    let typed = "select $1::text /* x */ as v";
    assert_eq!(ok(&a.call("query", json!({"sql": typed, "params": [5]})).await)["rows"], json!([["5"]]));
    assert_eq!(ok(&b.call("query", json!({"sql": typed, "params": [1.5]})).await)["rows"], json!([["1.5"]]));
    // Session advisory locks and settings end with the call.
    ok(&a.call("query", json!({"sql": "SELECT pg_advisory_lock(770042)"})).await);
    let free = ok(&b.call("query", json!({"sql": "SELECT pg_try_advisory_lock(770042) AS free"})).await).clone();
    assert_eq!(free["rows"], json!([[true]]), "the lock went with its call");
}

#[tokio::test]
async fn postgres_caps_end_the_statement_and_a_busy_pool_says_so() {
    if !reachable(5432) {
        return;
    }
    let app = db::pg_app().await;
    let gw = Gateway::start(&format!("servers:\n{}", server("app", app, "    limits: {statement_timeout: 5s, max_rows: 100, max_response_bytes: 64KiB}\n")));
    let c = session(&gw, "app").await;
    // The row cap ends a statement that would stream rows for long: the 100 rows come
    // back at once, not after the statement timeout. (In the target list the series
    // streams; in FROM it would be materialized before the first row.)
    let started = Instant::now();
    let r = ok(&c.call("query", json!({"sql": "SELECT generate_series(1, 100000000) AS g"})).await).clone();
    assert_eq!((r["row_count"].as_u64(), r["truncated"].as_bool()), (Some(100), Some(true)));
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    // A value larger than the size cap is not copied into JSON.
    let r = ok(&c.call("query", json!({"sql": "SELECT repeat('x', 50000000) AS big"})).await).clone();
    assert_eq!((r["row_count"].as_u64(), r["truncated"].as_bool()), (Some(0), Some(true)), "{r}");
    assert_eq!(r["columns"], json!(["big"]));
    // The connection is usable afterwards.
    assert_eq!(ok(&c.call("query", json!({"sql": "SELECT 1 AS one"})).await)["rows"], json!([[1]]));
    // While one call holds the only connection, another waits connect_timeout (1s) and is
    // told the pool is busy, not that its statement timed out.
    let slow = c.call("query", json!({"sql": "SELECT pg_sleep(2)"}));
    let other = session(&gw, "app").await;
    let waiting = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        other.call("query", json!({"sql": "SELECT 1"})).await
    };
    let (_, w) = tokio::join!(slow, waiting);
    refused(&w, "the database is busy: all 1 pooled connections stayed in use");
}

#[tokio::test]
async fn postgres_values_are_exact() {
    if !reachable(5432) {
        return;
    }
    let gw = Gateway::start(&format!("servers:\n{}", server("app", db::pg_app().await, "")));
    let c = session(&gw, "app").await;
    let q = ok(&c.call("query", json!({"sql": "SELECT 1e29::numeric a, 'NaN'::numeric b, 'Infinity'::numeric c, '-Infinity'::numeric d, 12345678901234567890123456789012345678.000001::numeric e, 0.000001230::numeric f, ARRAY[1.50, NULL, 1e30]::numeric[] g, -0.5::numeric h"})).await).clone();
    assert_eq!(q["rows"][0], json!(["100000000000000000000000000000", "NaN", "Infinity", "-Infinity", "12345678901234567890123456789012345678.000001", "0.000001230", ["1.50", null, "1000000000000000000000000000000"], "-0.5"]));
    // Integers beyond 64 bits are bound exactly, or refused with a way out.
    let q = ok(&c.call("query", json!({"sql": "SELECT $1::numeric AS a, $2::numeric AS b", "params": [9223372036854775808u64, 18446744073709551615u64]})).await).clone();
    assert_eq!(q["rows"][0], json!(["9223372036854775808", "18446744073709551615"]));
    // Beyond 64 bits JSON parsers round to a double, so the body is sent as written.
    let mut raw = Raw::new(gw.url("app"));
    raw.initialize("2025-06-18").await;
    let body = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"query","arguments":{"sql":"SELECT $1::numeric AS a","params":[100000000000000000000000000]}}}"#;
    let r = post_text(&raw, body).await;
    assert_eq!(r["result"]["structuredContent"]["rows"][0][0], "100000000000000000000000000", "{r}");
    let r = post_text(&raw, &body.replace("100000000000000000000000000", "1234567890123456789012345678901234567890")).await;
    assert_eq!(r["result"]["isError"], true, "{r}");
    assert!(text(&r["result"]).contains("pass it as a string"), "{r}");
    // Errors say SQLSTATE, message, position, hint; not the server's source line.
    let r = c.call("query", json!({"sql": "SELECT * FROM no_such_table_here"})).await;
    let t = refused(&r, "ERROR 42P01: relation \"no_such_table_here\" does not exist").to_string();
    assert!(t.contains("POSITION: character 15") && !t.contains(" at line "), "{t}");
    let t = refused(&c.call("query", json!({"sql": "SELECT no_such_function(1)"})).await, "ERROR 42883").to_string();
    assert!(t.contains("HINT: No function matches"), "{t}");
}

/// POSTs a JSON-RPC body as written (its numbers as they are), returns the response.
async fn post_text(raw: &Raw, body: &str) -> Value {
    let r = raw
        .http
        .post(&raw.url)
        .header("accept", support::ACCEPT)
        .header("content-type", "application/json")
        .header("mcp-session-id", raw.session.clone().unwrap())
        .header("mcp-protocol-version", "2025-06-18")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    r.json().await.unwrap()
}

#[tokio::test]
async fn mariadb_root_serves_no_free_sql_and_a_least_privileged_account_cannot_reach_files() {
    if !reachable(3306) {
        return;
    }
    let app = db::my_app().await;
    let gw = Gateway::start(&format!("servers:\n{}{}", server("root", MY_ADMIN, ""), server("app", app, "")));
    let root = session(&gw, "root").await;
    let out = witness("my_outfile");
    for sql in ["SELECT LOAD_FILE('/etc/passwd')".to_string(), format!("SELECT 1 INTO OUTFILE '{}'", out.display()), "KILL CONNECTION_ID()".into()] {
        let t = refused(&root.call("query", json!({ "sql": sql })).await, "FILE").to_string();
        assert!(t.contains("SUPER") && t.contains("CREATE USER 'mcp_gateway'@'%'") && t.contains("GRANT SELECT, SHOW VIEW ON `test`.*"), "{t}");
    }
    ok(&root.call("list_tables", json!({})).await);
    let c = session(&gw, "app").await;
    assert_eq!(ok(&c.call("query", json!({"sql": "SELECT LOAD_FILE('/etc/passwd') AS f"})).await)["rows"], json!([[null]]), "no FILE privilege: no file");
    refused(&c.call("query", json!({"sql": format!("SELECT 1 INTO OUTFILE '{}'", out.display())})).await, "the FILE privilege");
    assert!(!out.exists());
    let (_, ready) = http_get(gw.admin, "/readyz").unwrap();
    let ready: Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["databases"]["root"]["source"]["free_sql"], "refused");
    assert_eq!(ready["databases"]["app"]["source"]["account"], "least-privileged", "{ready}");
    // Errors as the mysql client prints them.
    refused(&c.call("query", json!({"sql": "SELECT * FROM no_such_table_here"})).await, "ERROR 1146 (42S02): Table 'test.no_such_table_here' doesn't exist");
}

#[tokio::test]
async fn mariadb_callers_share_no_session_state() {
    if !reachable(3306) {
        return;
    }
    let app = db::my_app().await;
    let table = format!("mcpgate_my_iso_{}", std::process::id());
    db::my_admin(&format!("DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id INT PRIMARY KEY, j JSON, t LONGTEXT COLLATE utf8mb4_bin); INSERT INTO {table} VALUES (1, '{{\"k\": [1, 2]}}', 'plain'), (2, NULL, 'b'), (3, '[]', 'c')")).await;
    let gw = Gateway::start(&format!("servers:\n{}", server("app", app, "")));
    let (a, b) = (session(&gw, "app").await, session(&gw, "app").await);
    for sql in ["SET @secret = 'from A'", "SET SESSION sql_select_limit = 1", "SET SESSION time_zone = '+05:00'", "SELECT GET_LOCK('mcpgate_iso_lock', 0)"] {
        ok(&a.call("query", json!({ "sql": sql })).await);
    }
    assert_eq!(ok(&b.call("query", json!({"sql": "SELECT @secret AS s, @@session.time_zone AS tz"})).await)["rows"], json!([[null, "+00:00"]]));
    assert_eq!(ok(&b.call("query", json!({"sql": format!("SELECT id FROM {table} ORDER BY id")})).await)["row_count"], 3, "A's sql_select_limit did not carry over");
    let mut admin = <sqlx::MySqlConnection as sqlx::Connection>::connect(MY_ADMIN).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let free: i64 = sqlx::query_scalar("SELECT IS_FREE_LOCK('mcpgate_iso_lock')").fetch_one(&mut admin).await.unwrap();
    assert_eq!(free, 1, "the lock A took went with its session");
    // MariaDB JSON columns come back as JSON values; binary-collated text as text.
    let q = ok(&b.call("query", json!({"sql": format!("SELECT j, t FROM {table} ORDER BY id")})).await).clone();
    assert_eq!(q["rows"], json!([[{"k": [1, 2]}, "plain"], [null, "b"], [[], "c"]]));
    // The catalog tools reuse their connection and still work.
    ok(&b.call("describe_table", json!({ "table": table })).await);
    db::my_admin(&format!("DROP TABLE {table}")).await;
}

#[tokio::test]
async fn sqlite_queries_cannot_leave_their_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let (main, other) = (dir.path().join("main.db"), dir.path().join("other.db"));
    std::fs::write(dir.path().join("seed.sql"), "CREATE TABLE hotels (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO hotels VALUES (1, 'Harbour');").unwrap();
    std::fs::write(dir.path().join("other.sql"), "CREATE TABLE secrets (s TEXT); INSERT INTO secrets VALUES ('top');").unwrap();
    let lite =
        |name: &str, db: &std::path::Path, seed: &str, access: &str| format!("  - name: {name}\n    type: database\n    source: {{url: \"sqlite://{}\", seed: {}, pool_size: 1}}\n    access: {access}\n", db.display(), dir.path().join(seed).display());
    let gw = Gateway::start(&format!("servers:\n{}{}{}", lite("lite", &main, "seed.sql", "read-only"), lite("lite-rw", &main, "seed.sql", "read-write"), lite("other", &other, "other.sql", "read-only")));
    let (a, b, w) = (session(&gw, "lite").await, session(&gw, "lite").await, session(&gw, "lite-rw").await);
    let copy = dir.path().join("copy.db");
    for sql in [
        format!("ATTACH DATABASE '{}' AS o", other.display()),
        format!("VACUUM INTO '{}'", copy.display()),
        "CREATE TEMP VIEW hotels AS SELECT 'POISONED' AS name".into(),
        "SELECT load_extension('/tmp/nothing')".into(),
        "PRAGMA case_sensitive_like = ON".into(),
        "BEGIN".into(),
        "SAVEPOINT s".into(),
    ] {
        refused(&a.call("query", json!({ "sql": sql })).await, "the gateway does not allow");
        refused(&w.call("execute", json!({ "sql": sql })).await, "the gateway does not allow");
    }
    assert!(!copy.exists());
    assert_eq!(ok(&b.call("query", json!({"sql": "SELECT name FROM hotels"})).await)["rows"], json!([["Harbour"]]));
    ok(&b.call("describe_table", json!({"table": "hotels"})).await);
    // An endless statement stops at the row cap.
    let r = ok(&b.call("query", json!({"sql": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c"})).await).clone();
    assert_eq!((r["row_count"].as_u64(), r["truncated"].as_bool()), (Some(1000), Some(true)));
    // Integers beyond SQLite's 64 bits are refused, not rounded.
    refused(&b.call("query", json!({"sql": "SELECT ?", "params": [18446744073709551615u64]})).await, "64-bit signed");
}
