//! The SQLite engine of [`crate::Db`]: one rusqlite connection on a file created 0600 (it holds
//! password hashes and TOTP secrets), in WAL mode with foreign keys on.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::Connection;
use rusqlite::types::{Value as SqlValue, ValueRef};

use crate::{DbError, Result, Row, Value};

pub(crate) struct SqliteConn {
    conn: Connection,
    path: PathBuf,
}

impl SqliteConn {
    pub(crate) fn open(path: &Path) -> Result<Self> {
        create_private(path)?;
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // NORMAL in WAL mode keeps the database consistent on power loss; writers that must not
        // lose a commit (the audit log) switch to FULL for it (Db::set_full_sync).
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(SqliteConn {
            conn,
            path: path.to_owned(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn execute(&self, sql: &str, values: &[Value]) -> Result<usize> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        stmt.execute(rusqlite::params_from_iter(values.iter().map(to_sql)))
            .map_err(classify)
    }

    pub(crate) fn query(&self, sql: &str, values: &[Value]) -> Result<Vec<Row>> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let columns: Arc<Vec<String>> =
            Arc::new(stmt.column_names().into_iter().map(str::to_owned).collect());
        let n = columns.len();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(values.iter().map(to_sql)))
            .map_err(classify)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(classify)? {
            let mut vals = Vec::with_capacity(n);
            for i in 0..n {
                vals.push(match r.get_ref(i)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(v) => Value::Int(v),
                    ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
                    ValueRef::Real(f) => {
                        return Err(DbError::Conversion {
                            column: columns[i].clone(),
                            message: format!("unexpected real number {f}"),
                        });
                    }
                });
            }
            out.push(Row {
                columns: columns.clone(),
                values: vals,
            });
        }
        Ok(out)
    }

    pub(crate) fn execute_batch(&self, sql: &str) -> Result<()> {
        self.conn.execute_batch(sql).map_err(classify)
    }

    pub(crate) fn data_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .pragma_query_value(None, "data_version", |r| r.get(0))?)
    }

    pub(crate) fn set_full_sync(&self, full: bool) -> Result<()> {
        let mode = if full { "FULL" } else { "NORMAL" };
        Ok(self.conn.pragma_update(None, "synchronous", mode)?)
    }

    /// `PRAGMA user_version`: the schema version SQLite files carried before the migrations
    /// table (read once to adopt them, and kept so an older Vigil still refuses a newer file).
    pub(crate) fn user_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    pub(crate) fn set_user_version(&self, v: i64) -> Result<()> {
        Ok(self.conn.pragma_update(None, "user_version", v)?)
    }
}

fn to_sql(v: &Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Int(i) => SqlValue::Integer(*i),
        Value::Text(s) => SqlValue::Text(s.clone()),
        Value::Bytes(b) => SqlValue::Blob(b.clone()),
    }
}

fn classify(e: rusqlite::Error) -> DbError {
    match &e {
        rusqlite::Error::SqliteFailure(f, msg)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            DbError::Constraint(msg.clone().unwrap_or_else(|| f.to_string()))
        }
        _ => DbError::Sqlite(e),
    }
}

fn create_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let io = |e: std::io::Error| DbError::Other(format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io(e)),
    }
}
