//! Where the management data lives: `[database] url` in vigil.toml (docs/database.md). A
//! PostgreSQL URL names no password (it comes from a file or the environment, so it is never
//! in vigil.toml, a process argument or a log), and TCP connections are TLS with the server
//! certificate verified and the host name checked (`sslmode=verify-full`, the default and the
//! only TLS mode accepted); `sslmode=disable` is accepted only for a unix socket.

use std::path::{Path, PathBuf};

/// The environment variable a PostgreSQL password may come from when no file is configured.
pub const PASSWORD_ENV: &str = "VIGIL_DATABASE_PASSWORD";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "database url must start with postgres:// or postgresql:// (or leave [database] url unset for the embedded SQLite file)"
    )]
    NotPostgres,
    #[error(
        "database url contains a password: remove it and put the password in the file named by [database] password_file (mode 0600) or in {PASSWORD_ENV}"
    )]
    PasswordInUrl,
    #[error(
        "database url: sslmode={0} is not accepted: Vigil verifies the server certificate and its host name; use sslmode=verify-full (the default), or sslmode=disable with a unix socket (postgres://user@%2Frun%2Fpostgresql/db)"
    )]
    SslMode(String),
    #[error("database url: {0}")]
    Invalid(String),
    #[error("database password file {path}: {message}")]
    PasswordFile { path: PathBuf, message: String },
    #[error("database CA file {path}: {message}")]
    CaFile { path: PathBuf, message: String },
}

/// How the connection to PostgreSQL is protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// TLS; the certificate chains to the CA file (or the system store when `None`) and names
    /// the host connected to.
    VerifyFull { ca_file: Option<PathBuf> },
    /// A unix socket: no network, no TLS.
    UnixSocket,
}

/// A PostgreSQL connection, checked and ready ([`PgSettings::parse`]).
#[derive(Clone)]
pub struct PgSettings {
    pub(crate) config: tokio_postgres::Config,
    pub tls: TlsMode,
    /// The URL without secrets, for messages.
    pub display: String,
}

impl std::fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings")
            .field("url", &self.display)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// Which engine and where.
#[derive(Debug, Clone)]
pub enum DbTarget {
    Sqlite(PathBuf),
    Postgres(Box<PgSettings>),
}

impl PgSettings {
    /// Checks a `postgres://user@host[:port]/db?sslmode=verify-full` URL and reads the password
    /// from `password_file` (which must not be readable by group or others) or, without one,
    /// from [`PASSWORD_ENV`]. `ca_file` (PEM) is the CA the server certificate must chain to;
    /// without it, the system's trust store (`sslrootcert=` in the URL is read the same way).
    pub fn parse(
        url: &str,
        ca_file: Option<&Path>,
        password_file: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        Self::parse_with_env(
            url,
            ca_file,
            password_file,
            std::env::var(PASSWORD_ENV).ok(),
        )
    }

    /// [`PgSettings::parse`] with the environment's password passed in (tests).
    pub fn parse_with_env(
        url: &str,
        ca_file: Option<&Path>,
        password_file: Option<&Path>,
        env_password: Option<String>,
    ) -> Result<Self, ConfigError> {
        let url = url.trim();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(ConfigError::NotPostgres);
        }
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut sslmode = None;
        let mut rootcert = None;
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "sslmode" => sslmode = Some(v.to_owned()),
                "sslrootcert" => rootcert = Some(PathBuf::from(v)),
                "password" => return Err(ConfigError::PasswordInUrl),
                _ => rest.push(pair),
            }
        }
        let cleaned = if rest.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        let mut config: tokio_postgres::Config = cleaned
            .parse()
            .map_err(|e: tokio_postgres::Error| ConfigError::Invalid(e.to_string()))?;
        if config.get_password().is_some() {
            return Err(ConfigError::PasswordInUrl);
        }
        if config.get_hosts().is_empty() {
            return Err(ConfigError::Invalid(
                "no host: write postgres://user@host/database".into(),
            ));
        }
        let unix = config
            .get_hosts()
            .iter()
            .all(|h| matches!(h, tokio_postgres::config::Host::Unix(_)));
        let tls = match sslmode.as_deref() {
            None | Some("verify-full") => {
                if unix && sslmode.is_none() {
                    TlsMode::UnixSocket
                } else {
                    TlsMode::VerifyFull {
                        ca_file: ca_file.map(Path::to_path_buf).or(rootcert),
                    }
                }
            }
            Some("disable") if unix => TlsMode::UnixSocket,
            Some(other) => return Err(ConfigError::SslMode(other.to_owned())),
        };
        if let TlsMode::VerifyFull { .. } = tls
            && unix
        {
            return Err(ConfigError::SslMode(
                "verify-full over a unix socket (use sslmode=disable there)".into(),
            ));
        }
        config.ssl_mode(match tls {
            TlsMode::VerifyFull { .. } => tokio_postgres::config::SslMode::Require,
            TlsMode::UnixSocket => tokio_postgres::config::SslMode::Disable,
        });
        let password = match password_file {
            Some(p) => Some(read_password_file(p)?),
            None => env_password.filter(|p| !p.is_empty()),
        };
        if let Some(pw) = password {
            config.password(pw);
        }
        if config.get_user().is_none() {
            return Err(ConfigError::Invalid(
                "no user: write postgres://user@host/database".into(),
            ));
        }
        config.application_name("vigil");
        config.connect_timeout(std::time::Duration::from_secs(5));
        config.keepalives_idle(std::time::Duration::from_secs(30));
        Ok(PgSettings {
            config,
            tls,
            display: cleaned,
        })
    }
}

fn read_password_file(path: &Path) -> Result<String, ConfigError> {
    use std::os::unix::fs::MetadataExt as _;
    let err = |message: String| ConfigError::PasswordFile {
        path: path.to_owned(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if meta.mode() & 0o077 != 0 {
        return Err(err(format!(
            "readable by group or others (mode {:o}); run chmod 600 on it",
            meta.mode() & 0o777
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let pw = text.trim_end_matches(['\r', '\n']);
    if pw.is_empty() {
        return Err(err("is empty".into()));
    }
    Ok(pw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<PgSettings, ConfigError> {
        PgSettings::parse_with_env(url, None, None, None)
    }

    #[test]
    fn tcp_urls_verify_the_server_by_default() {
        let s = parse("postgres://vigil@db.example/vigil").unwrap();
        assert_eq!(s.tls, TlsMode::VerifyFull { ca_file: None });
        let s = parse(
            "postgresql://vigil@db.example:6432/vigil?sslmode=verify-full&sslrootcert=/etc/ca.pem",
        )
        .unwrap();
        assert_eq!(
            s.tls,
            TlsMode::VerifyFull {
                ca_file: Some("/etc/ca.pem".into())
            }
        );
        assert!(!s.display.contains("sslrootcert"));
    }

    #[test]
    fn weaker_tls_modes_and_passwords_in_the_url_are_refused() {
        for mode in ["disable", "require", "verify-ca", "prefer", "allow"] {
            let e =
                parse(&format!("postgres://vigil@db.example/vigil?sslmode={mode}")).unwrap_err();
            assert_eq!(e, ConfigError::SslMode(mode.into()), "{mode}");
            assert!(e.to_string().contains("verify-full"));
        }
        assert_eq!(
            parse("postgres://vigil:hunter2@db.example/vigil").unwrap_err(),
            ConfigError::PasswordInUrl
        );
        assert_eq!(
            parse("postgres://vigil@db.example/vigil?password=x").unwrap_err(),
            ConfigError::PasswordInUrl
        );
        assert_eq!(
            parse("mysql://x@y/z").unwrap_err(),
            ConfigError::NotPostgres
        );
        assert!(matches!(
            parse("postgres://db.example/vigil").unwrap_err(),
            ConfigError::Invalid(_)
        ));
        assert!(matches!(
            parse("postgres://vigil@db.example/vigil?connect_timeout=soon").unwrap_err(),
            ConfigError::Invalid(_)
        ));
    }

    #[test]
    fn unix_sockets_need_no_tls() {
        let s = parse("postgres://vigil@%2Frun%2Fpostgresql/vigil").unwrap();
        assert_eq!(s.tls, TlsMode::UnixSocket);
        let s = parse("postgres://vigil@%2Frun%2Fpostgresql:5433/vigil?sslmode=disable").unwrap();
        assert_eq!(s.tls, TlsMode::UnixSocket);
        // A TCP host beside the socket would go unprotected: refused.
        assert!(matches!(
            parse("postgres://vigil@localhost/vigil?host=/run/postgresql&sslmode=disable"),
            Err(ConfigError::SslMode(_))
        ));
    }

    #[test]
    fn the_password_file_must_be_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "s3cret\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = PgSettings::parse_with_env("postgres://v@h/d", None, Some(&f), None).unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let s = PgSettings::parse_with_env("postgres://v@h/d", None, Some(&f), None).unwrap();
        assert_eq!(s.config.get_password(), Some(&b"s3cret"[..]));
        assert!(!format!("{s:?}").contains("s3cret"));
        let s = PgSettings::parse_with_env("postgres://v@h/d", None, None, Some("env-pw".into()))
            .unwrap();
        assert_eq!(s.config.get_password(), Some(&b"env-pw"[..]));
    }
}
