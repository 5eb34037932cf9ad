//! The database account a source connects as, checked on every new connection.
//!
//! A read-only transaction stops writes to tables, not what a privileged account can do
//! from inside one: a PostgreSQL superuser (or a member of `pg_execute_server_program`,
//! `pg_read_server_files`, `pg_write_server_files`) runs programs and reads and writes
//! files on the database host; `pg_signal_backend` ends other sessions; MySQL's `FILE`
//! reads and writes server files, `SUPER` and the admin privileges kill other sessions and
//! change the server. Such an account never serves the free-SQL tools (`query`,
//! `execute`), unless the server says `allow_privileged_account: true`. Fixed statements
//! (the catalog tools, Toolbox SQL tools) bind their parameters and stay safe under any
//! account, so they are served either way.
//!
//! The check runs in the connection's set-up (one round trip), so it sees what the
//! account holds now: a role granted or revoked since the last connection takes effect
//! with the pool's next connection.

use std::sync::Arc;

use arc_swap::ArcSwap;
use serde_json::{json, Value};

/// What the last check of a source's account found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// No connection has been made yet.
    Unchecked,
    /// The account holds none of the privileges checked.
    LeastPrivileged,
    /// The account holds these, each named as the database names it.
    Privileged(Vec<String>),
    /// The check itself failed; treated as privileged (the free-SQL tools are not served).
    CheckFailed(String),
}

/// The PostgreSQL check: superuser, or membership in a superuser role (then nothing else
/// is listed: a superuser holds everything), else its membership in the predefined roles
/// that reach outside the database, the restricted `pg_catalog` functions granted to it
/// (`pg_read_file`, `lo_import`, `pg_stat_reset`, `pg_reload_conf`, …: EXECUTE that
/// PUBLIC does not have), and `dblink`, which opens connections to other servers.
/// Membership counts whether or not it is inherited: `SET ROLE` is allowed inside a
/// read-only transaction.
pub const PG_CHECK: &str = "SELECT array_to_string(CASE \
     WHEN (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = session_user) THEN ARRAY['superuser (' || session_user || ')'] \
     WHEN EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolsuper AND pg_has_role(session_user, r.oid, 'MEMBER')) \
     THEN ARRAY(SELECT 'member of superuser role ' || r.rolname FROM pg_roles r WHERE r.rolsuper AND pg_has_role(session_user, r.oid, 'MEMBER') ORDER BY 1) \
     ELSE ARRAY( \
       SELECT 'member of ' || r.rolname FROM pg_roles r \
        WHERE r.rolname IN ('pg_execute_server_program', 'pg_read_server_files', 'pg_write_server_files', 'pg_signal_backend') AND pg_has_role(session_user, r.oid, 'MEMBER') \
       UNION ALL \
       SELECT 'EXECUTE on ' || p.oid::regprocedure FROM pg_proc p \
        WHERE p.proacl IS NOT NULL AND p.pronamespace = 'pg_catalog'::regnamespace \
          AND NOT has_function_privilege('public', p.oid, 'EXECUTE') AND has_function_privilege(session_user, p.oid, 'EXECUTE') \
       UNION ALL \
       SELECT 'EXECUTE on ' || p.oid::regprocedure || ' (dblink: connections to other servers)' FROM pg_proc p \
        WHERE p.proname IN ('dblink_connect', 'dblink_connect_u', 'dblink_exec', 'dblink') AND has_function_privilege(session_user, p.oid, 'EXECUTE') \
       ORDER BY 1) END, E'\\n')";

/// The MySQL/MariaDB check, with the server version (learned in the same round trip):
/// the account's global privileges that reach outside the database or into other
/// sessions, and the roles it may `SET ROLE` to (their grants are read separately).
pub const MY_CHECK: &str = "SELECT VERSION(), CURRENT_USER(), \
     (SELECT GROUP_CONCAT(DISTINCT PRIVILEGE_TYPE ORDER BY PRIVILEGE_TYPE SEPARATOR '\\n') FROM information_schema.USER_PRIVILEGES \
       WHERE GRANTEE = CONCAT('''', SUBSTRING(CURRENT_USER(), 1, CHAR_LENGTH(CURRENT_USER()) - CHAR_LENGTH(SUBSTRING_INDEX(CURRENT_USER(), '@', -1)) - 1), '''@''', SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')), \
     (SELECT GROUP_CONCAT(DISTINCT ROLE_NAME SEPARATOR '\\n') FROM information_schema.APPLICABLE_ROLES)";

/// Whether a MySQL/MariaDB global privilege reaches outside the database (files,
/// other sessions, server administration).
pub fn mysql_privileged(privilege: &str) -> bool {
    let p = privilege.trim().to_ascii_uppercase();
    matches!(p.as_str(), "FILE" | "SUPER" | "SHUTDOWN" | "PROCESS" | "RELOAD" | "CREATE USER" | "SET USER" | "ALL PRIVILEGES" | "ALL") || p.ends_with("ADMIN")
}

/// The global privileges in the lines of `SHOW GRANTS FOR role` (`GRANT FILE, PROCESS ON
/// *.* TO …`).
pub fn global_grants(line: &str) -> Vec<String> {
    let Some(rest) = line.strip_prefix("GRANT ") else { return Vec::new() };
    let Some((privs, _)) = rest.split_once(" ON *.* TO ") else { return Vec::new() };
    privs.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect()
}

/// One source's account: its last finding and what the server allows.
#[derive(Debug)]
pub struct Account {
    state: ArcSwap<Finding>,
    allow: bool,
    /// `server` or `server/source`: the metric label.
    source: String,
    /// How logs name it.
    label: String,
    /// Whether the source serves `query`/`execute` (instance sources do; Toolbox sources
    /// serve fixed statements only).
    free_sql: bool,
    engine: &'static str,
    database: String,
    read_write: bool,
}

impl Account {
    /// A source not yet connected: `server` and, for a Toolbox source, `source` name it;
    /// `database` goes into the role template; `allow` is the server's
    /// `allow_privileged_account`.
    pub fn new(server: &str, source: Option<&str>, engine: &'static str, database: String, allow: bool, read_write: bool) -> Account {
        let (metric, label) = match source {
            Some(s) => (format!("{server}/{s}"), format!("server `{server}`, source `{s}`")),
            None => (server.to_string(), format!("server `{server}`")),
        };
        Account { state: ArcSwap::from_pointee(Finding::Unchecked), allow, source: metric, label, free_sql: source.is_none(), engine, database, read_write }
    }

    /// Records a connection's finding; logs when it changes and keeps the gauge current.
    pub fn record(&self, finding: Finding) {
        let gauge = crate::metrics::METRICS.privileged_accounts.with_label_values(&[self.source.as_str()]);
        gauge.set(i64::from(matches!(finding, Finding::Privileged(_) | Finding::CheckFailed(_))));
        let old = self.state.swap(Arc::new(finding.clone()));
        if *old == finding {
            return;
        }
        // A Toolbox source serves only fixed statements: nothing is refused there, but the
        // operator should still hear that the account can do more than it needs.
        let outcome = match (self.free_sql, self.allow) {
            (true, true) => "query/execute are served anyway (allow_privileged_account: true)",
            (true, false) => "query/execute are refused until it connects as a least-privileged role (docs/DATABASE.md)",
            (false, _) => "its SQL tools are fixed statements and stay served; a least-privileged role is still advised (docs/DATABASE.md)",
        };
        match &finding {
            Finding::Privileged(found) => log::warn!("{}: the database account holds {}; {outcome}", self.label, found.join(", ")),
            Finding::CheckFailed(e) => log::warn!("{}: the privilege check failed ({e}); {outcome}", self.label),
            Finding::LeastPrivileged if matches!(*old, Finding::Privileged(_) | Finding::CheckFailed(_)) => log::info!("{}: the database account is least-privileged now", self.label),
            _ => {}
        }
    }

    /// The current finding.
    pub fn finding(&self) -> Arc<Finding> {
        self.state.load_full()
    }

    /// Why the free-SQL tool `tool` may not run, or `None` when it may. Called after a
    /// connection was taken from the pool, so at least one check has run.
    pub fn refusal(&self, tool: &str) -> Option<String> {
        if self.allow {
            return None;
        }
        let found = match &**self.state.load() {
            Finding::Unchecked | Finding::LeastPrivileged => return None,
            Finding::Privileged(found) => found.join(", "),
            Finding::CheckFailed(e) => format!("an account whose privileges could not be checked ({e})"),
        };
        crate::metrics::METRICS.refused_free_sql.with_label_values(&[self.source.as_str()]).inc();
        Some(format!(
            "`{tool}` is not served: this server connects to the database with an account that holds {found}. \
             With it, SQL can reach outside the database (programs, server files, other sessions), \
             whatever the transaction. Connect the server with a least-privileged role instead, for example:\n\n{}\n\n\
             The other tools of this server are served. An operator who accepts the risk can set \
             `allow_privileged_account: true` on the server (docs/DATABASE.md).",
            self.role_template()
        ))
    }

    /// SQL that creates a least-privileged role for this database.
    pub fn role_template(&self) -> String {
        role_template(self.engine, &self.database, self.read_write)
    }

    /// The state for `/readyz` and `/admin/servers`.
    pub fn status(&self) -> Value {
        let (account, privileges) = match &**self.state.load() {
            Finding::Unchecked => ("unchecked", Vec::new()),
            Finding::LeastPrivileged => ("least-privileged", Vec::new()),
            Finding::Privileged(found) => ("privileged", found.clone()),
            Finding::CheckFailed(e) => ("check-failed", vec![e.clone()]),
        };
        let free_sql = match &**self.state.load() {
            Finding::Privileged(_) | Finding::CheckFailed(_) if self.allow => "served (allow_privileged_account)",
            Finding::Privileged(_) | Finding::CheckFailed(_) => "refused",
            _ => "served",
        };
        json!({"account": account, "privileges": privileges, "free_sql": free_sql, "allow_privileged_account": self.allow})
    }
}

/// The least-privileged role for `database` on `engine` (`postgresql`, `mysql`).
pub fn role_template(engine: &str, database: &str, read_write: bool) -> String {
    let db = if database.is_empty() { "mydb" } else { database };
    if engine == "mysql" {
        let privs = if read_write { "SELECT, INSERT, UPDATE, DELETE, SHOW VIEW" } else { "SELECT, SHOW VIEW" };
        format!("  CREATE USER 'mcp_gateway'@'%' IDENTIFIED BY '<password>';\n  GRANT {privs} ON `{}`.* TO 'mcp_gateway'@'%';", db.replace('`', "``"))
    } else {
        let (tables, seqs) = if read_write { ("SELECT, INSERT, UPDATE, DELETE", "\n  GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO mcp_gateway;") } else { ("SELECT", "") };
        format!(
            "  CREATE ROLE mcp_gateway LOGIN PASSWORD '<password>' NOSUPERUSER NOCREATEDB NOCREATEROLE;\n  \
             GRANT CONNECT ON DATABASE \"{}\" TO mcp_gateway;\n  \
             GRANT USAGE ON SCHEMA public TO mcp_gateway;\n  \
             GRANT {tables} ON ALL TABLES IN SCHEMA public TO mcp_gateway;{seqs}\n  \
             ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT {tables} ON TABLES TO mcp_gateway;",
            db.replace('"', "\"\"")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_privileges_that_reach_outside_are_named() {
        for p in ["FILE", "SUPER", "CONNECTION ADMIN", "SYSTEM_VARIABLES_ADMIN", "PROCESS", "ALL PRIVILEGES"] {
            assert!(mysql_privileged(p), "{p}");
        }
        for p in ["SELECT", "USAGE", "SHOW VIEW", "INSERT"] {
            assert!(!mysql_privileged(p), "{p}");
        }
        assert_eq!(global_grants("GRANT FILE, PROCESS ON *.* TO `r`"), ["FILE", "PROCESS"]);
        assert!(global_grants("GRANT SELECT ON `test`.* TO `r`").is_empty());
    }

    #[test]
    fn refusal_names_the_privilege_and_prints_a_role() {
        let a = Account::new("db", None, "postgresql", "shop".into(), false, false);
        assert_eq!(a.refusal("query"), None, "unchecked: the first connection decides");
        a.record(Finding::Privileged(vec!["superuser (role postgres)".into()]));
        let r = a.refusal("query").expect("refused");
        assert!(r.contains("superuser (role postgres)") && r.contains("CREATE ROLE mcp_gateway") && r.contains("\"shop\""), "{r}");
        assert!(!r.contains("INSERT"), "a read-only server's template grants reads only: {r}");
        assert_eq!(a.status()["free_sql"], "refused");
        let allowed = Account::new("db2", Some("src"), "mysql", "shop".into(), true, true);
        allowed.record(Finding::Privileged(vec!["FILE".into()]));
        assert_eq!(allowed.refusal("execute"), None);
        assert!(allowed.role_template().contains("INSERT"));
    }
}
