//! Where the management data lives (`[database]` in `vigil.toml`): unset, the embedded SQLite
//! file `access.db` in the data directory; set, a PostgreSQL server. The URL names no
//! password: it comes from `password_file` (mode 0600) or `VIGIL_DATABASE_PASSWORD`, so it is
//! never in this file, a process argument or a log. Reference: docs/database.md; the
//! connection itself (TLS verify-full, host name checked) is vigil-db's.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[database]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `postgres://user@host[:port]/database[?sslmode=verify-full]`; unset: SQLite.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The CA (PEM) the server's certificate must chain to; default: the system's CA store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// The password of the URL's user (mode 0600); default: `VIGIL_DATABASE_PASSWORD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}

/// PostgreSQL's own port, when the URL names none.
pub const POSTGRES_PORT: u16 = 5432;

impl DatabaseConfig {
    /// The PostgreSQL servers the URL connects to over TCP, each `(host, port)` (a URL may
    /// list several for failover, `host1,host2:5433`; libpq's `host=` and `port=` parameters
    /// override the authority); none for SQLite or a unix socket. For the port manifest and
    /// firewall rules: a URL this cannot read yields none, and opening the database reports it.
    pub fn tcp_servers(&self) -> Vec<(String, u16)> {
        let Some(url) = &self.url else {
            return Vec::new();
        };
        let Some(rest) = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
        else {
            return Vec::new();
        };
        let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
        let authority = before_query.split('/').next().unwrap_or("");
        let hosts = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let mut host_param = None;
        let mut port_param = None;
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("host", v)) => host_param = Some(decode(v)),
                Some(("port", v)) => port_param = Some(decode(v)),
                _ => {}
            }
        }
        let listed: Vec<(String, Option<String>)> = match &host_param {
            Some(h) => h.split(',').map(|h| (h.trim().to_owned(), None)).collect(),
            None => hosts
                .split(',')
                .filter(|h| !h.is_empty())
                .map(|h| {
                    let h = decode(h);
                    match h.strip_prefix('[').and_then(|v6| v6.split_once(']')) {
                        Some((ip, port)) => {
                            (ip.to_owned(), port.strip_prefix(':').map(str::to_owned))
                        }
                        None => match h.rsplit_once(':') {
                            Some((host, port)) => (host.to_owned(), Some(port.to_owned())),
                            None => (h, None),
                        },
                    }
                })
                .collect(),
        };
        let ports: Vec<&str> = port_param
            .as_deref()
            .map(|p| p.split(',').collect())
            .unwrap_or_default();
        let mut out = Vec::new();
        for (i, (host, port)) in listed.into_iter().enumerate() {
            // A unix socket directory, or no host at all (libpq's default is a socket too).
            if host.is_empty() || host.starts_with('/') || host.starts_with('@') {
                continue;
            }
            let port = port
                .as_deref()
                .or_else(|| ports.get(i).or(ports.first()).copied())
                .map_or(Some(POSTGRES_PORT), |p| p.trim().parse().ok());
            if let Some(port) = port
                && !out.contains(&(host.clone(), port))
            {
                out.push((host, port));
            }
        }
        out
    }
}

/// `%2F` and friends in a URL part (socket directories are written that way).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Refuses what can be told from the file alone (the connection settings are checked in full
/// when the database is opened).
pub(crate) fn check(db: &DatabaseConfig, at: &dyn Fn(&str) -> String) -> Result<(), String> {
    let Some(url) = &db.url else {
        if db.ca_file.is_some() || db.password_file.is_some() {
            return Err(format!(
                "[database]{} has ca_file or password_file but no url: set url = \"postgres://user@host/database\" or remove them",
                at("database")
            ));
        }
        return Ok(());
    };
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(format!(
            "`database.url`{} must start with postgres:// (remove it to keep the embedded SQLite file)",
            at("database.url")
        ));
    }
    let authority = url
        .split("://")
        .nth(1)
        .unwrap_or("")
        .split(['/', '?'])
        .next()
        .unwrap_or("");
    let userinfo = authority.rsplit_once('@').map(|(u, _)| u).unwrap_or("");
    if userinfo.contains(':') || url.contains("password=") {
        return Err(format!(
            "`database.url`{} contains a password: remove it and put the password in the file named by `database.password_file` (mode 0600) or in VIGIL_DATABASE_PASSWORD",
            at("database.url")
        ));
    }
    Ok(())
}

pub(crate) fn database_table(db: &DatabaseConfig) -> String {
    if *db == DatabaseConfig::default() {
        return "# The management data (users, sessions, tokens, audit log) is in the embedded\n\
                # SQLite file access.db; set url for PostgreSQL (docs/database.md):\n\
                # [database]\n\
                # url = \"postgres://vigil@db.example.net/vigil?sslmode=verify-full\"\n\
                # ca_file = \"/etc/vigil/db-ca.pem\"        # default: the system's CA store\n\
                # password_file = \"/etc/vigil/db.pass\"    # mode 0600; or VIGIL_DATABASE_PASSWORD\n"
            .into();
    }
    format!(
        "[database]\n{}",
        toml::to_string(db).expect("database settings serialize")
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::{Config, DatabaseConfig};

    #[test]
    fn the_servers_a_url_connects_to_over_tcp() {
        let servers = |url: &str| {
            DatabaseConfig {
                url: Some(url.into()),
                ..Default::default()
            }
            .tcp_servers()
        };
        let s = |h: &str, p: u16| (h.to_owned(), p);
        assert_eq!(
            servers("postgres://vigil@db.example.net/vigil?sslmode=verify-full"),
            [s("db.example.net", 5432)]
        );
        assert_eq!(
            servers(
                "postgresql://vigil@db1:6432,db2,[fd00::5]:7000/vigil?target_session_attrs=read-write"
            ),
            [s("db1", 6432), s("db2", 5432), s("fd00::5", 7000)]
        );
        assert_eq!(
            servers("postgres://vigil@10.1.1.1/vigil?port=6543"),
            [s("10.1.1.1", 6543)]
        );
        assert_eq!(
            servers("postgres://vigil@/vigil?host=db-a,db-b&port=5433,5434"),
            [s("db-a", 5433), s("db-b", 5434)]
        );
        // Unix sockets, SQLite and what cannot be read connect to nothing over TCP.
        assert!(servers("postgres://vigil@%2Frun%2Fpostgresql/vigil").is_empty());
        assert!(servers("postgres://vigil@/vigil?host=/run/postgresql").is_empty());
        assert!(servers("postgres://vigil@/vigil").is_empty());
        assert!(servers("postgres://vigil@db:notaport/vigil").is_empty());
        assert!(servers("mysql://vigil@db/vigil").is_empty());
        assert!(DatabaseConfig::default().tcp_servers().is_empty());
        // Repeated hosts are one server.
        assert_eq!(servers("postgres://vigil@db,db:5432/v"), [s("db", 5432)]);
    }

    #[test]
    fn database_round_trips_and_passwords_in_the_url_are_refused() {
        let mut c = Config::with_data_dir("/var/lib/vigil");
        assert!(c.database.url.is_none(), "SQLite by default");
        let back = Config::parse(&c.to_commented_toml(), Path::new("vigil.toml")).unwrap();
        assert_eq!(back, c);
        c.database.url = Some("postgres://vigil@db.example.net/vigil".into());
        c.database.password_file = Some("/etc/vigil/db.pass".into());
        let back = Config::parse(&c.to_commented_toml(), Path::new("vigil.toml")).unwrap();
        assert_eq!(back, c);
        for (toml, want) in [
            (
                "data_dir = \"/d\"\n[database]\nurl = \"postgres://vigil:pw@db/vigil\"\n",
                "contains a password",
            ),
            (
                "data_dir = \"/d\"\n[database]\nurl = \"mysql://vigil@db/vigil\"\n",
                "must start with postgres://",
            ),
            (
                "data_dir = \"/d\"\n[database]\npassword_file = \"/p\"\n",
                "no url",
            ),
        ] {
            let e = Config::parse(toml, Path::new("vigil.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}
