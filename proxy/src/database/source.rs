//! Connection URLs built from fields. The field form of a `type: database` server's
//! `source:` and the sources of a Toolbox file share this one builder, so user names,
//! passwords, database names and options are percent-encoded the same way everywhere.

use serde::{Deserialize, Serialize};

/// The database engines a source can name.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// PostgreSQL (`postgres` or `postgresql`).
    #[serde(alias = "postgresql")]
    Postgres,
    /// MySQL.
    Mysql,
    /// MariaDB (the MySQL protocol).
    Mariadb,
    /// SQLite: `database` is the file's path.
    Sqlite,
}

impl EngineKind {
    /// The port a server of this engine listens on unless told otherwise.
    pub fn default_port(self) -> u16 {
        match self {
            EngineKind::Postgres => 5432,
            EngineKind::Mysql | EngineKind::Mariadb | EngineKind::Sqlite => 3306,
        }
    }

    /// The URL scheme sqlx reads for this engine.
    fn scheme(self) -> &'static str {
        match self {
            EngineKind::Postgres => "postgres",
            EngineKind::Mysql | EngineKind::Mariadb => "mysql",
            EngineKind::Sqlite => "sqlite",
        }
    }
}

/// How a network connection is encrypted (`tls.mode`), named as libpq names them.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// Never encrypt.
    Disable,
    /// Encrypt when the server offers it (no certificate check).
    Prefer,
    /// Always encrypt; do not check the certificate.
    Require,
    /// Always encrypt and check the certificate against the CA.
    VerifyCa,
    /// Always encrypt, check the certificate and that it names the host.
    VerifyFull,
}

impl TlsMode {
    /// The engine's own spelling of the mode in a sqlx URL.
    fn spelled_for(self, engine: EngineKind) -> &'static str {
        match (engine, self) {
            (EngineKind::Postgres, TlsMode::Disable) => "disable",
            (EngineKind::Postgres, TlsMode::Prefer) => "prefer",
            (EngineKind::Postgres, TlsMode::Require) => "require",
            (EngineKind::Postgres, TlsMode::VerifyCa) => "verify-ca",
            (EngineKind::Postgres, TlsMode::VerifyFull) => "verify-full",
            (_, TlsMode::Disable) => "DISABLED",
            (_, TlsMode::Prefer) => "PREFERRED",
            (_, TlsMode::Require) => "REQUIRED",
            (_, TlsMode::VerifyCa) => "VERIFY_CA",
            (_, TlsMode::VerifyFull) => "VERIFY_IDENTITY",
        }
    }
}

/// TLS settings of a network source.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// `disable`, `prefer`, `require`, `verify-ca` or `verify-full`.
    pub mode: TlsMode,
    /// CA certificate (PEM) the server's certificate is checked against; absolute path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Client certificate (PEM) for certificate authentication; absolute path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    /// The client certificate's key (PEM); absolute path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
}

impl TlsConfig {
    /// The URL query options of these settings for `engine`, checked.
    pub fn params(&self, engine: EngineKind) -> Result<Vec<(String, String)>, String> {
        let names: [&str; 4] = match engine {
            EngineKind::Postgres => ["sslmode", "sslrootcert", "sslcert", "sslkey"],
            EngineKind::Mysql | EngineKind::Mariadb => ["ssl-mode", "ssl-ca", "ssl-cert", "ssl-key"],
            EngineKind::Sqlite => return Err("`tls`: SQLite has no network connection to encrypt".into()),
        };
        let mut out = vec![(names[0].to_string(), self.mode.spelled_for(engine).to_string())];
        for (i, (field, file)) in [("ca_file", &self.ca_file), ("cert_file", &self.cert_file), ("key_file", &self.key_file)].into_iter().enumerate() {
            if let Some(path) = file {
                out.push((names[i + 1].to_string(), absolute_file(&format!("tls.{field}"), path)?));
            }
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err("`tls.cert_file` and `tls.key_file` go together".into());
        }
        Ok(out)
    }
}

/// A certificate or key path: sqlx reads it whenever a connection opens, relative to the
/// process's working directory, so only an absolute path means the same file everywhere.
pub fn absolute_file(field: &str, path: &str) -> Result<String, String> {
    if std::path::Path::new(path).is_absolute() {
        Ok(path.to_string())
    } else {
        Err(format!("`{field}` must be an absolute path (got `{path}`)"))
    }
}

/// The parts of a network connection.
#[derive(Debug, Clone)]
pub struct Endpoint<'a> {
    /// PostgreSQL, MySQL or MariaDB.
    pub engine: EngineKind,
    /// Host name or address (an IPv6 address with or without brackets).
    pub host: &'a str,
    /// Port (default: the engine's).
    pub port: Option<u16>,
    /// Login.
    pub user: &'a str,
    /// Password, if any.
    pub password: Option<&'a str>,
    /// Database name.
    pub database: &'a str,
    /// Extra URL query options, in order.
    pub params: Vec<(String, String)>,
}

fn enc(x: &str) -> String {
    percent_encoding::utf8_percent_encode(x, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The host as a URL authority: checked, and IPv6 addresses bracketed.
fn url_host(host: &str) -> Result<String, String> {
    let host = host.trim();
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || matches!(c, '/' | '@' | '?' | '#' | '\\')) {
        return Err(format!("`host`: `{host}` is not a host name or address"));
    }
    if host.parse::<std::net::Ipv6Addr>().is_ok() {
        return Ok(format!("[{host}]"));
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(format!("`host`: `{host}` is not a host name or address (give the port in `port`)"));
    }
    Ok(host.to_string())
}

/// `scheme://user:password@host:port/database?options` with every part percent-encoded.
pub fn network_url(e: &Endpoint<'_>) -> Result<String, String> {
    if e.engine == EngineKind::Sqlite {
        return Err("SQLite is a file: give `database` (its path) only".into());
    }
    let host = url_host(e.host)?;
    if e.user.is_empty() {
        return Err("`user` is required".into());
    }
    let auth = match e.password.filter(|p| !p.is_empty()) {
        Some(p) => format!("{}:{}", enc(e.user), enc(p)),
        None => enc(e.user),
    };
    let port = e.port.unwrap_or_else(|| e.engine.default_port());
    let mut url = format!("{}://{auth}@{host}:{port}/{}", e.engine.scheme(), enc(e.database));
    if !e.params.is_empty() {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &e.params {
            q.append_pair(k, v);
        }
        url.push('?');
        url.push_str(&q.finish());
    }
    Ok(url)
}

/// `sqlite://path` (a relative path resolves against the config file's folder later).
pub fn sqlite_url(path: &str) -> Result<String, String> {
    if path.trim().is_empty() {
        return Err("`database` (the SQLite file's path) is required".into());
    }
    Ok(format!("sqlite://{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg<'a>(host: &'a str, password: Option<&'a str>, params: Vec<(String, String)>) -> Endpoint<'a> {
        Endpoint { engine: EngineKind::Postgres, host, port: None, user: "app user", password, database: "shop/eu", params }
    }

    #[test]
    fn every_part_is_percent_encoded() {
        let url = network_url(&pg("db.internal", Some("p@ss:w/rd?#&"), vec![("sslrootcert".into(), "/etc/ssl/my ca.pem".into())])).unwrap();
        assert_eq!(url, "postgres://app%20user:p%40ss%3Aw%2Frd%3F%23%26@db.internal:5432/shop%2Feu?sslrootcert=%2Fetc%2Fssl%2Fmy+ca.pem");
        let parsed = url::Url::parse(&url).unwrap();
        assert_eq!(percent_encoding::percent_decode_str(parsed.password().unwrap()).decode_utf8().unwrap(), "p@ss:w/rd?#&");
        assert_eq!(parsed.query_pairs().next().unwrap().1, "/etc/ssl/my ca.pem");
    }

    #[test]
    fn hosts_are_checked_and_ipv6_bracketed() {
        assert_eq!(network_url(&pg("::1", None, vec![])).unwrap(), "postgres://app%20user@[::1]:5432/shop%2Feu");
        assert!(network_url(&pg("evil.com/x?y", None, vec![])).unwrap_err().contains("`host`"));
        assert!(network_url(&pg("db:5432", None, vec![])).unwrap_err().contains("give the port in `port`"));
        assert!(network_url(&pg("", None, vec![])).is_err());
    }

    #[test]
    fn tls_modes_are_spelled_per_engine() {
        let tls = TlsConfig { mode: TlsMode::VerifyFull, ca_file: Some("/ca.pem".into()), cert_file: None, key_file: None };
        assert_eq!(tls.params(EngineKind::Postgres).unwrap(), [("sslmode".to_string(), "verify-full".to_string()), ("sslrootcert".into(), "/ca.pem".into())]);
        assert_eq!(tls.params(EngineKind::Mariadb).unwrap()[0], ("ssl-mode".to_string(), "VERIFY_IDENTITY".to_string()));
        assert!(tls.params(EngineKind::Sqlite).is_err());
        let relative = TlsConfig { ca_file: Some("ca.pem".into()), ..tls.clone() };
        assert!(relative.params(EngineKind::Postgres).unwrap_err().contains("`tls.ca_file` must be an absolute path"));
        let half = TlsConfig { cert_file: Some("/c.pem".into()), ..tls };
        assert!(half.params(EngineKind::Mysql).unwrap_err().contains("go together"));
    }
}
