//! Vigil's one data-access layer for the management data (docs/design/data-access.md): a
//! [`Db`] is either an embedded SQLite file (the default) or a PostgreSQL server reached over
//! verified TLS, and both run the same SQL text, the same numbered migrations ([`migrate`])
//! and the same calling code.
//!
//! The SQL is written once in the subset both engines share: `?N` placeholders (rewritten to
//! `$N` for PostgreSQL), `BIGINT` and `TEXT` columns, `INSERT ... ON CONFLICT`, `RETURNING`,
//! and the two tokens of [`migrate`] for what has no common spelling (an auto-numbered key and
//! a byte column). Values travel as [`Value`] (null, 64-bit integer, text, bytes); booleans are
//! stored as 0/1 integers on both.
//!
//! The API mirrors the part of rusqlite the access code used (execute, `query_row` with
//! [`OptionalExtension`], prepared `query_map`, transactions that roll back when dropped), so
//! the calling code reads the same on both engines. Calls block; a PostgreSQL call that cannot
//! reach the server fails at once with [`DbError::Unavailable`] and the next call reconnects.

pub mod config;
pub mod copy;
pub mod migrate;
mod postgres;
mod sql;
mod sqlite;

use std::sync::Arc;

pub use config::{ConfigError, DbTarget, PgSettings, TlsMode};
pub use migrate::{AppliedMigration, Migration, Schema, SchemaStatus};

/// Which engine a [`Db`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        })
    }
}

/// What went wrong. [`DbError::Unavailable`] is the one kind callers treat specially (the API
/// answers 503 and the next call retries); the rest are bugs or bad data.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The server cannot be reached, closed the connection, is shutting down or starting, or
    /// did not answer in time. Retried by the next call.
    #[error("database unavailable: {0}, retrying")]
    Unavailable(String),
    /// A statement that must return a row returned none.
    #[error("query returned no rows")]
    NoRows,
    /// A unique or foreign-key constraint refused the change.
    #[error("constraint violated: {0}")]
    Constraint(String),
    /// A stored value has another type than the code reads.
    #[error("column {column}: {message}")]
    Conversion { column: String, message: String },
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "{component} database schema version {found} is newer than this Vigil supports ({supported}); upgrade Vigil"
    )]
    SchemaTooNew {
        component: &'static str,
        found: i64,
        supported: i64,
    },
    #[error("{0}")]
    Other(String),
}

impl DbError {
    /// True when the database could not be reached (retry later), not when a statement failed.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, DbError::Unavailable(_))
    }
}

pub type Result<T, E = DbError> = std::result::Result<T, E>;

/// One value sent to or read from either engine.
#[derive(Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

// Values may be secrets (hashes, TOTP seeds): never print them, only their kind.
impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind())
    }
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Int(_) => "integer",
            Value::Text(_) => "text",
            Value::Bytes(_) => "bytes",
        }
    }
}

/// Converts a Rust value into a [`Value`] parameter.
pub trait ToValue {
    fn to_value(&self) -> Value;
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}
impl ToValue for i64 {
    fn to_value(&self) -> Value {
        Value::Int(*self)
    }
}
impl ToValue for i32 {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl ToValue for u32 {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}
impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}
impl ToValue for [u8] {
    fn to_value(&self) -> Value {
        Value::Bytes(self.to_vec())
    }
}
impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Bytes(self.clone())
    }
}
impl<const N: usize> ToValue for [u8; N] {
    fn to_value(&self) -> Value {
        Value::Bytes(self.to_vec())
    }
}
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}
impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

/// The parameters of one statement.
pub trait Params {
    fn values(self) -> Vec<Value>;
}

impl Params for () {
    fn values(self) -> Vec<Value> {
        Vec::new()
    }
}
impl Params for &[&dyn ToValue] {
    fn values(self) -> Vec<Value> {
        self.iter().map(|v| v.to_value()).collect()
    }
}
impl Params for Vec<Value> {
    fn values(self) -> Vec<Value> {
        self
    }
}
impl<T: ToValue, const N: usize> Params for [T; N] {
    fn values(self) -> Vec<Value> {
        self.iter().map(ToValue::to_value).collect()
    }
}

/// `params![a, b, c]`: parameters of mixed types, as with rusqlite.
#[macro_export]
macro_rules! params {
    () => { () };
    ($($p:expr),+ $(,)?) => {
        &[$(&$p as &dyn $crate::ToValue),+] as &[&dyn $crate::ToValue]
    };
}

/// Reads a [`Value`] into a Rust type.
pub trait FromValue: Sized {
    fn from_value(v: &Value) -> std::result::Result<Self, String>;
}

impl FromValue for i64 {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Int(i) => Ok(*i),
            other => Err(format!("expected an integer, found {}", other.kind())),
        }
    }
}
impl FromValue for u32 {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        let i = i64::from_value(v)?;
        u32::try_from(i).map_err(|_| format!("{i} is out of range"))
    }
}
impl FromValue for bool {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        Ok(i64::from_value(v)? != 0)
    }
}
impl FromValue for String {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            other => Err(format!("expected text, found {}", other.kind())),
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Bytes(b) => Ok(b.clone()),
            other => Err(format!("expected bytes, found {}", other.kind())),
        }
    }
}
impl FromValue for Value {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        Ok(v.clone())
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// A column by position or by name.
pub trait RowIndex {
    fn index(&self, columns: &[String]) -> Option<usize>;
    fn describe(&self) -> String;
}
impl RowIndex for usize {
    fn index(&self, columns: &[String]) -> Option<usize> {
        (*self < columns.len()).then_some(*self)
    }
    fn describe(&self) -> String {
        self.to_string()
    }
}
impl RowIndex for &str {
    fn index(&self, columns: &[String]) -> Option<usize> {
        columns.iter().position(|c| c == self)
    }
    fn describe(&self) -> String {
        (*self).to_owned()
    }
}

/// One result row.
#[derive(Debug, Clone)]
pub struct Row {
    columns: Arc<Vec<String>>,
    values: Vec<Value>,
}

impl Row {
    pub fn get<I: RowIndex, T: FromValue>(&self, idx: I) -> Result<T> {
        let i = idx
            .index(&self.columns)
            .ok_or_else(|| DbError::Conversion {
                column: idx.describe(),
                message: "no such column".into(),
            })?;
        T::from_value(&self.values[i]).map_err(|message| DbError::Conversion {
            column: self.columns[i].clone(),
            message,
        })
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    pub fn into_values(self) -> Vec<Value> {
        self.values
    }
}

/// `query_row(...).optional()`: no row becomes `None`, as in rusqlite.
pub trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(DbError::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

enum Conn {
    Sqlite(sqlite::SqliteConn),
    Postgres(Box<postgres::PgConn>),
}

/// A handle on the management database (one connection). Share it behind a mutex.
pub struct Db {
    conn: Conn,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl Db {
    /// Opens the database the target names: a SQLite file (created 0600 when missing) or a
    /// PostgreSQL connection. A PostgreSQL server that cannot be reached now is not an error
    /// here: the first call reports it and every later call tries again, so a server starts
    /// while its database is still coming up.
    pub fn open(target: &DbTarget) -> Result<Db> {
        let conn = match target {
            DbTarget::Sqlite(path) => Conn::Sqlite(sqlite::SqliteConn::open(path)?),
            DbTarget::Postgres(settings) => {
                Conn::Postgres(Box::new(postgres::PgConn::new(settings)?))
            }
        };
        Ok(Db { conn })
    }

    /// An open SQLite file as a [`Db`] (for tools that already hold a file path).
    pub fn open_sqlite(path: &std::path::Path) -> Result<Db> {
        Self::open(&DbTarget::Sqlite(path.to_owned()))
    }

    pub fn backend(&self) -> Backend {
        match self.conn {
            Conn::Sqlite(_) => Backend::Sqlite,
            Conn::Postgres(_) => Backend::Postgres,
        }
    }

    /// Runs one statement; returns the number of rows changed.
    pub fn execute(&self, sql: &str, params: impl Params) -> Result<usize> {
        let values = params.values();
        match &self.conn {
            Conn::Sqlite(c) => c.execute(sql, &values),
            Conn::Postgres(c) => c.execute(sql, values),
        }
    }

    /// Runs a statement and returns every row.
    pub fn query(&self, sql: &str, params: impl Params) -> Result<Vec<Row>> {
        let values = params.values();
        match &self.conn {
            Conn::Sqlite(c) => c.query(sql, &values),
            Conn::Postgres(c) => c.query(sql, values),
        }
    }

    /// The first row through `f`, or [`DbError::NoRows`].
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: impl Params,
        f: impl FnOnce(&Row) -> Result<T>,
    ) -> Result<T> {
        let rows = self.query(sql, params)?;
        f(rows.first().ok_or(DbError::NoRows)?)
    }

    /// A statement to run with several parameter sets or map over its rows (as rusqlite's
    /// `prepare`; preparing is cached per connection on both engines).
    pub fn prepare<'a>(&'a self, sql: &'a str) -> Result<Stmt<'a>> {
        Ok(Stmt { db: self, sql })
    }

    /// Runs statements without parameters, separated by `;` (migrations).
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match &self.conn {
            Conn::Sqlite(c) => c.execute_batch(sql),
            Conn::Postgres(c) => c.batch(sql),
        }
    }

    /// Starts a transaction, rolled back when the returned guard is dropped without
    /// [`Tx::commit`]. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`), so two
    /// writers never deadlock on an upgrade.
    pub fn transaction(&mut self) -> Result<Tx<'_>> {
        match &self.conn {
            Conn::Sqlite(c) => c.execute_batch("BEGIN IMMEDIATE")?,
            Conn::Postgres(c) => c.batch("BEGIN")?,
        }
        Ok(Tx {
            db: self,
            done: false,
        })
    }

    /// A number that changes when another connection changed the database, for cheap
    /// "reload when changed" checks; `None` where the engine has none (PostgreSQL: reload).
    pub fn data_version(&self) -> Result<Option<i64>> {
        match &self.conn {
            Conn::Sqlite(c) => c.data_version().map(Some),
            Conn::Postgres(_) => Ok(None),
        }
    }

    /// Makes the next commits fully durable on SQLite (`synchronous = FULL`, e.g. for the audit
    /// log) or back to the default. PostgreSQL commits are always flushed to its WAL.
    pub fn set_full_sync(&self, full: bool) -> Result<()> {
        match &self.conn {
            Conn::Sqlite(c) => c.set_full_sync(full),
            Conn::Postgres(_) => Ok(()),
        }
    }

    /// Describes where the data is, without secrets (for `vigil db status`).
    pub fn describe(&self) -> String {
        match &self.conn {
            Conn::Sqlite(c) => format!("SQLite {}", c.path().display()),
            Conn::Postgres(c) => format!("PostgreSQL {}", c.describe()),
        }
    }
}

/// A statement from [`Db::prepare`].
pub struct Stmt<'a> {
    db: &'a Db,
    sql: &'a str,
}

impl Stmt<'_> {
    pub fn query_map<T>(
        &mut self,
        params: impl Params,
        f: impl FnMut(&Row) -> Result<T>,
    ) -> Result<std::vec::IntoIter<Result<T>>> {
        let rows = self.db.query(self.sql, params)?;
        Ok(rows.iter().map(f).collect::<Vec<_>>().into_iter())
    }

    pub fn query_row<T>(
        &mut self,
        params: impl Params,
        f: impl FnOnce(&Row) -> Result<T>,
    ) -> Result<T> {
        self.db.query_row(self.sql, params, f)
    }

    pub fn execute(&mut self, params: impl Params) -> Result<usize> {
        self.db.execute(self.sql, params)
    }
}

/// An open transaction; everything [`Db`] does is available through it.
pub struct Tx<'a> {
    db: &'a mut Db,
    done: bool,
}

impl Tx<'_> {
    pub fn commit(mut self) -> Result<()> {
        self.done = true;
        self.db.execute_batch("COMMIT")
    }

    /// Serialises writers of `table` until this transaction ends: PostgreSQL takes an
    /// exclusive table lock (readers go on); SQLite's `BEGIN IMMEDIATE` already holds the
    /// database's one write lock.
    pub fn lock_exclusive(&self, table: &str) -> Result<()> {
        match self.db.backend() {
            Backend::Sqlite => Ok(()),
            Backend::Postgres => {
                debug_assert!(
                    table
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
                );
                self.db
                    .execute_batch(&format!("LOCK TABLE {table} IN EXCLUSIVE MODE"))
            }
        }
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Db;
    fn deref(&self) -> &Db {
        self.db
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.done {
            // A failed rollback (connection gone) leaves nothing behind: the server rolls back
            // the transaction of a closed connection itself.
            let _ = self.db.execute_batch("ROLLBACK");
        }
    }
}
