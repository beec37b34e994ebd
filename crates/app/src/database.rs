//! Which database holds the management data (`[database]`, docs/database.md) and the use cases
//! of `vigil db`: status, migrate, and the move of an `access.db` into PostgreSQL. Unset, the
//! embedded SQLite file `access.db` in the data directory; set, PostgreSQL through vigil-db
//! (verified TLS, the password from a file or the environment).

use std::path::PathBuf;

use vigil_access::vigil_db::{DbTarget, PgSettings, SchemaStatus};
use vigil_access::{AccessError, CopyReport};
use vigil_config::Config;

#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("[database] in the configuration: {0}")]
    Settings(#[from] vigil_access::vigil_db::ConfigError),
    #[error("{0}")]
    Access(#[from] AccessError),
    #[error(
        "[database] url is not set: the management data is already in the SQLite file {0}; set url = \"postgres://...\" to copy it into PostgreSQL"
    )]
    NotPostgres(PathBuf),
}

/// The embedded database file (also the source of `vigil db copy-from-sqlite`).
pub fn sqlite_path(cfg: &Config) -> PathBuf {
    cfg.data_dir.join("access.db")
}

/// Where the management data of `cfg` lives.
pub fn target(cfg: &Config) -> Result<DbTarget, DatabaseError> {
    match &cfg.database.url {
        None => Ok(DbTarget::Sqlite(sqlite_path(cfg))),
        Some(url) => Ok(DbTarget::Postgres(Box::new(PgSettings::parse(
            url,
            cfg.database.ca_file.as_deref(),
            cfg.database.password_file.as_deref(),
        )?))),
    }
}

/// Where the database is, without secrets.
pub fn describe(target: &DbTarget) -> String {
    match target {
        DbTarget::Sqlite(p) => format!("SQLite {}", p.display()),
        DbTarget::Postgres(s) => format!("PostgreSQL {}", s.display),
    }
}

/// The schema of the management data against what this Vigil knows.
pub fn status(cfg: &Config) -> Result<(DbTarget, SchemaStatus), DatabaseError> {
    let target = target(cfg)?;
    let status = vigil_access::schema_status(&target)?;
    Ok((target, status))
}

/// Migrations by (version, name).
pub type Applied = Vec<(i64, &'static str)>;

/// Applies pending migrations; returns those applied (empty: already up to date).
pub fn migrate(cfg: &Config) -> Result<(DbTarget, Applied), DatabaseError> {
    let target = target(cfg)?;
    let applied = vigil_access::migrate(&target, now_ms())?;
    Ok((target, applied))
}

/// Copies `source` (default: the data directory's `access.db`) into the configured
/// PostgreSQL database, which must be empty; the audit chain is verified on arrival.
pub fn copy_from_sqlite(
    cfg: &Config,
    source: Option<PathBuf>,
) -> Result<(DbTarget, CopyReport), DatabaseError> {
    let target = target(cfg)?;
    if let DbTarget::Sqlite(p) = &target {
        return Err(DatabaseError::NotPostgres(p.clone()));
    }
    let source = source.unwrap_or_else(|| sqlite_path(cfg));
    let report = vigil_access::copy_from_sqlite(&source, &target, now_ms())?;
    Ok((target, report))
}

pub(crate) fn now_ms() -> i64 {
    use vigil_access::Clock as _;
    vigil_access::SystemClock.now().unix_ms()
}
