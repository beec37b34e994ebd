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

    use crate::Config;

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
