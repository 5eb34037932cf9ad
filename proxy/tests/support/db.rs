//! The machine's real databases for the tests: PostgreSQL (127.0.0.1:5432) and MariaDB
//! (127.0.0.1:3306), their administrator accounts (for set-up and for the attacks a
//! privileged account would allow), and least-privileged accounts the tests create, as
//! docs/DATABASE.md tells an operator to. Under CI=true an unreachable database fails.

use sqlx::Connection as _;
use tokio::sync::OnceCell;

/// The PostgreSQL superuser (trust auth on loopback).
pub const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";
/// The MariaDB root account (no password on loopback).
pub const MY_ADMIN: &str = "mysql://root@127.0.0.1:3306/test";

/// The least-privileged PostgreSQL login the tests serve: no superuser, no predefined
/// roles, no restricted functions; it may create tables in `public` (for the DDL that
/// `execute` tests run) and owns what it creates.
pub const PG_APP_ROLE: &str = "mcpgate_test_app";
/// Its URL.
pub const PG_APP: &str = "postgres://mcpgate_test_app@127.0.0.1:5432/test";
/// The least-privileged MariaDB account: every privilege on the `test` database, no
/// global ones (no FILE, SUPER, PROCESS, admin).
pub const MY_APP: &str = "mysql://mcpgate_test_app@127.0.0.1:3306/test";

/// Whether the database on `port` answers; under CI=true it must.
pub fn reachable(port: u16) -> bool {
    let ok = std::net::TcpStream::connect_timeout(&format!("127.0.0.1:{port}").parse().expect("address"), std::time::Duration::from_secs(2)).is_ok();
    if !ok {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "database on port {port} is not reachable and CI=true: run scripts/services.sh");
        eprintln!("SKIPPING: nothing listens on 127.0.0.1:{port} (run scripts/services.sh)");
    }
    ok
}

static PG_READY: OnceCell<()> = OnceCell::const_new();
static MY_READY: OnceCell<()> = OnceCell::const_new();

/// Creates the PostgreSQL test role once per test binary (idempotent across binaries and
/// runs; an advisory lock keeps concurrent binaries from racing on the catalog).
pub async fn pg_app() -> &'static str {
    PG_READY
        .get_or_init(|| async {
            let mut admin = sqlx::PgConnection::connect(PG_ADMIN).await.expect("connect as postgres");
            sqlx::raw_sql(
                "SELECT pg_advisory_lock(770013); \
                 DO $$ BEGIN CREATE ROLE mcpgate_test_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$; \
                 GRANT CONNECT ON DATABASE test TO mcpgate_test_app; \
                 GRANT USAGE, CREATE ON SCHEMA public TO mcpgate_test_app; \
                 SELECT pg_advisory_unlock(770013);",
            )
            .execute(&mut admin)
            .await
            .expect("create the least-privileged test role");
        })
        .await;
    PG_APP
}

/// Creates the MariaDB test account once per test binary (idempotent).
pub async fn my_app() -> &'static str {
    MY_READY
        .get_or_init(|| async {
            let mut admin = sqlx::MySqlConnection::connect(MY_ADMIN).await.expect("connect as root");
            sqlx::raw_sql("CREATE USER IF NOT EXISTS 'mcpgate_test_app'@'%'; GRANT ALL PRIVILEGES ON `test`.* TO 'mcpgate_test_app'@'%'").execute(&mut admin).await.expect("create the least-privileged test account");
        })
        .await;
    MY_APP
}

/// Runs administrator SQL (set-up, checks) on PostgreSQL.
pub async fn pg_admin(sql: &str) {
    let mut admin = sqlx::PgConnection::connect(PG_ADMIN).await.expect("connect as postgres");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).execute(&mut admin).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Runs administrator SQL on MariaDB.
pub async fn my_admin(sql: &str) {
    let mut admin = sqlx::MySqlConnection::connect(MY_ADMIN).await.expect("connect as root");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).execute(&mut admin).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}
