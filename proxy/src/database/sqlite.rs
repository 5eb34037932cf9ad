//! SQLite connections that callers' SQL cannot take outside their database file.
//!
//! A read-only connection still lets SQL `ATTACH` any other database file the gateway
//! process can read (or, read-write, create one anywhere it can write), create `TEMP`
//! tables and views that shadow the real ones for the next caller on the same pooled
//! connection, and change connection settings with `PRAGMA`. Every connection of the
//! gateway gets, right after it opens:
//!
//! - `SQLITE_LIMIT_ATTACHED` = 0: no other database can be attached;
//! - `SQLITE_DBCONFIG_DEFENSIVE`: no `writable_schema` or other ways to corrupt the file;
//! - an authorizer that denies `ATTACH`/`DETACH`, `TEMP` objects, `load_extension()`,
//!   transaction statements (a `BEGIN` left open would hold its snapshot, or its writes,
//!   for the next caller on the connection; every statement is its own transaction), and
//!   every `PRAGMA` but the catalog ones the instance tools and readers use.
//!
//! Extension loading stays off (sqlx never enables the SQL function).

use std::ffi::{c_char, c_int, c_void, CStr};

use libsqlite3_sys as ffi;

/// Pragmas that only read the catalog or a setting; everything else is denied.
const READ_PRAGMAS: &[&str] = &["table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo", "foreign_key_list", "collation_list", "function_list", "pragma_list", "module_list", "database_list"];

/// Pragmas that report a setting when given no value (and change it when given one).
const READ_SETTINGS: &[&str] = &["user_version", "application_id", "schema_version", "data_version", "page_count", "page_size", "freelist_count", "encoding", "foreign_keys", "journal_mode", "compile_options", "quick_check", "integrity_check"];

fn text<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        return None;
    }
    // SAFETY: SQLite passes NUL-terminated strings that live for the callback's duration.
    unsafe { CStr::from_ptr(p) }.to_str().ok()
}

/// Whether SQLite may run `action` with its arguments `a1`, `a2` (see
/// <https://www.sqlite.org/c3ref/c_alter_table.html>).
fn allowed(action: c_int, a1: Option<&str>, a2: Option<&str>) -> bool {
    match action {
        ffi::SQLITE_ATTACH | ffi::SQLITE_DETACH => false,
        ffi::SQLITE_TRANSACTION | ffi::SQLITE_SAVEPOINT => false,
        ffi::SQLITE_CREATE_TEMP_INDEX | ffi::SQLITE_CREATE_TEMP_TABLE | ffi::SQLITE_CREATE_TEMP_TRIGGER | ffi::SQLITE_CREATE_TEMP_VIEW => false,
        ffi::SQLITE_DROP_TEMP_INDEX | ffi::SQLITE_DROP_TEMP_TABLE | ffi::SQLITE_DROP_TEMP_TRIGGER | ffi::SQLITE_DROP_TEMP_VIEW => false,
        ffi::SQLITE_PRAGMA => {
            let name = a1.unwrap_or_default().to_ascii_lowercase();
            READ_PRAGMAS.contains(&name.as_str()) || (a2.is_none() && READ_SETTINGS.contains(&name.as_str()))
        }
        ffi::SQLITE_FUNCTION => !a2.is_some_and(|f| f.eq_ignore_ascii_case("load_extension")),
        _ => true,
    }
}

extern "C" fn authorize(_: *mut c_void, action: c_int, a1: *const c_char, a2: *const c_char, _db: *const c_char, _trigger: *const c_char) -> c_int {
    if allowed(action, text(a1), text(a2)) {
        ffi::SQLITE_OK
    } else {
        ffi::SQLITE_DENY
    }
}

/// Applies the limits above to a freshly opened connection.
pub async fn harden(conn: &mut sqlx::SqliteConnection) -> Result<(), sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle().as_ptr();
    // SAFETY: `db` is this connection's open handle, held exclusively through the lock for
    // these calls; the authorizer is a plain function with no state (null user data).
    let rc = unsafe {
        ffi::sqlite3_limit(db, ffi::SQLITE_LIMIT_ATTACHED, 0);
        let defensive = ffi::sqlite3_db_config(db, ffi::SQLITE_DBCONFIG_DEFENSIVE, 1 as c_int, std::ptr::null_mut::<c_int>());
        let auth = ffi::sqlite3_set_authorizer(db, Some(authorize), std::ptr::null_mut());
        if defensive != ffi::SQLITE_OK {
            defensive
        } else {
            auth
        }
    };
    if rc != ffi::SQLITE_OK {
        return Err(sqlx::Error::Protocol(format!("could not restrict the SQLite connection (code {rc})")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authorizer_denies_what_leaves_the_file() {
        assert!(!allowed(ffi::SQLITE_ATTACH, Some("/etc/other.db"), None));
        assert!(!allowed(ffi::SQLITE_CREATE_TEMP_VIEW, Some("hotels"), None));
        assert!(!allowed(ffi::SQLITE_FUNCTION, None, Some("load_extension")));
        assert!(!allowed(ffi::SQLITE_TRANSACTION, Some("BEGIN"), None));
        assert!(!allowed(ffi::SQLITE_SAVEPOINT, Some("BEGIN"), Some("s")));
        assert!(allowed(ffi::SQLITE_FUNCTION, None, Some("lower")));
        assert!(allowed(ffi::SQLITE_PRAGMA, Some("table_info"), Some("hotels")));
        assert!(allowed(ffi::SQLITE_PRAGMA, Some("user_version"), None));
        assert!(!allowed(ffi::SQLITE_PRAGMA, Some("user_version"), Some("5")));
        assert!(!allowed(ffi::SQLITE_PRAGMA, Some("case_sensitive_like"), Some("on")));
        assert!(allowed(ffi::SQLITE_SELECT, None, None));
    }
}
