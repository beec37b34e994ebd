//! The PostgreSQL engine of [`crate::Db`]: one tokio-postgres connection driven by a thread of
//! its own (a current-thread tokio runtime), so the blocking calls of [`crate::Db`] work the same
//! from plain threads and from inside the API's async workers (a runtime nested in theirs would
//! panic; the sync `postgres` crate does exactly that). Each call is a task on that runtime whose
//! answer is awaited with a deadline; a lost connection makes the call fail with
//! [`DbError::Unavailable`] and a new connection is made in the background (at most one
//! attempt a second), calls failing at once until it is up.
//! TLS is rustls with the aws-lc-rs provider through `tokio-postgres-rustls`, which checks
//! the certificate chain and the host name (docs/design/data-access.md).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, sync_channel};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, Socket, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{ConfigError, PgSettings, TlsMode};
use crate::{DbError, Result, Row, Value};

/// How long one statement may take before the connection is given up as unavailable: the
/// management statements are small, and a caller (an API request) holds the database while it
/// waits, so a server that stopped answering (a network partition) must not hold it long.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// After a failed connection attempt, calls fail at once for this long instead of each trying
/// again (a down database must not make every API request wait for a connect).
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// The first connection (opening, migrations) waits this long for the server.
const FIRST_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// A reconnection runs in the background; a call waits this long for it (a database that
/// restarted is back at once), then answers "unavailable" without waiting for the rest.
const RECONNECT_WAIT: Duration = Duration::from_millis(200);
/// A TCP connection whose peer acknowledges nothing for this long is closed by the kernel.
const DEAD_CONNECTION_AFTER: Duration = Duration::from_secs(30);

pub(crate) struct PgConn {
    settings: PgSettings,
    tls: Option<MakeRustlsConnect>,
    state: RefCell<State>,
}

#[derive(Default)]
struct State {
    live: Option<Live>,
    last_failure: Option<(Instant, String)>,
    /// A reconnection under way in the background: its answer arrives here.
    connecting: Option<Receiver<Connected>>,
    /// Connected once: later connections are made in the background.
    was_connected: bool,
}

struct Live {
    client: Arc<Client>,
    runtime: tokio::runtime::Handle,
    statements: HashMap<String, Statement>,
}

impl PgConn {
    pub(crate) fn new(settings: &PgSettings) -> Result<Self> {
        let tls = tls_connector(&settings.tls)?;
        Ok(PgConn {
            settings: settings.clone(),
            tls,
            state: RefCell::new(State::default()),
        })
    }

    pub(crate) fn describe(&self) -> String {
        let tls = match &self.settings.tls {
            TlsMode::VerifyFull { ca_file: Some(ca) } => {
                format!("TLS verify-full against {}", ca.display())
            }
            TlsMode::VerifyFull { ca_file: None } => {
                "TLS verify-full against the system trust store".into()
            }
            TlsMode::UnixSocket => "unix socket".into(),
        };
        format!("{} ({tls})", self.settings.display)
    }

    pub(crate) fn execute(&self, sql: &str, values: Vec<Value>) -> Result<usize> {
        self.with_statement(sql, move |client, stmt| async move {
            let refs: Vec<&(dyn ToSql + Sync)> =
                values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
            client.execute(&stmt, &refs).await
        })
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
    }

    pub(crate) fn query(&self, sql: &str, values: Vec<Value>) -> Result<Vec<Row>> {
        let rows = self.with_statement(sql, move |client, stmt| async move {
            let refs: Vec<&(dyn ToSql + Sync)> =
                values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
            client.query(&stmt, &refs).await
        })?;
        let Some(first) = rows.first() else {
            return Ok(Vec::new());
        };
        let columns: Arc<Vec<String>> = Arc::new(
            first
                .columns()
                .iter()
                .map(|c| c.name().to_owned())
                .collect(),
        );
        rows.iter()
            .map(|r| {
                let values = (0..columns.len())
                    .map(|i| convert(r, i, &columns[i]))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Row {
                    columns: columns.clone(),
                    values,
                })
            })
            .collect()
    }

    pub(crate) fn batch(&self, sql: &str) -> Result<()> {
        let sql = sql.to_owned();
        let client = self.live()?;
        self.call(client.1, async move { client.0.batch_execute(&sql).await })
    }

    /// Prepares (once per connection) and runs `f` with the statement.
    fn with_statement<T, F, Fut>(&self, sql: &str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Client>, Statement) -> Fut,
        Fut: std::future::Future<Output = Result<T, tokio_postgres::Error>> + Send + 'static,
    {
        let (client, runtime) = self.live()?;
        let cached = self
            .state
            .borrow()
            .live
            .as_ref()
            .and_then(|l| l.statements.get(sql).cloned());
        let stmt = match cached {
            Some(s) => s,
            None => {
                let pg_sql = crate::sql::to_postgres(sql);
                let c = client.clone();
                let stmt = self.call(runtime.clone(), async move { c.prepare(&pg_sql).await })?;
                if let Some(l) = self.state.borrow_mut().live.as_mut() {
                    l.statements.insert(sql.to_owned(), stmt.clone());
                }
                stmt
            }
        };
        self.call(runtime, f(client, stmt))
    }

    /// Runs one request on the connection's runtime and waits for its answer.
    fn call<T: Send + 'static>(
        &self,
        runtime: tokio::runtime::Handle,
        fut: impl std::future::Future<Output = Result<T, tokio_postgres::Error>> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = sync_channel(1);
        runtime.spawn(async move {
            let _ = tx.send(fut.await);
        });
        let result = match rx.recv_timeout(CALL_TIMEOUT) {
            Ok(r) => r.map_err(|e| classify(&e, &self.settings.display)),
            Err(RecvTimeoutError::Timeout) => Err(DbError::Unavailable(format!(
                "PostgreSQL at {} did not answer within {} s",
                self.settings.display,
                CALL_TIMEOUT.as_secs()
            ))),
            Err(RecvTimeoutError::Disconnected) => Err(DbError::Unavailable(format!(
                "the connection to PostgreSQL at {} was closed",
                self.settings.display
            ))),
        };
        if let Err(DbError::Unavailable(msg)) = &result {
            let mut state = self.state.borrow_mut();
            state.live = None;
            state.last_failure = Some((Instant::now(), msg.clone()));
        }
        result
    }

    /// The open connection, connecting first when there is none (or it was closed). The first
    /// connection is waited for; after a loss, a new one is made by a background thread and
    /// calls fail at once while it is under way (a server that does not answer SYNs must not
    /// hold every caller for a connect timeout).
    fn live(&self) -> Result<(Arc<Client>, tokio::runtime::Handle)> {
        let mut state = self.state.borrow_mut();
        if let Some(l) = &state.live {
            if !l.client.is_closed() {
                return Ok((l.client.clone(), l.runtime.clone()));
            }
            state.live = None;
        }
        // Only the call that starts a reconnection waits a moment for it; the calls after it
        // look and go (the access layer is held while a call waits).
        let wait = if state.connecting.is_none() {
            if let Some((at, msg)) = &state.last_failure
                && at.elapsed() < RETRY_AFTER
            {
                return Err(DbError::Unavailable(msg.clone()));
            }
            state.connecting = Some(self.start_connect());
            if state.was_connected {
                RECONNECT_WAIT
            } else {
                FIRST_CONNECT_TIMEOUT
            }
        } else if state.was_connected {
            Duration::ZERO
        } else {
            FIRST_CONNECT_TIMEOUT
        };
        let answer = match state.connecting.as_ref().map(|rx| rx.recv_timeout(wait)) {
            Some(Ok(answer)) => answer,
            Some(Err(RecvTimeoutError::Timeout)) if state.was_connected => {
                return Err(DbError::Unavailable(format!(
                    "reconnecting to PostgreSQL at {}",
                    self.settings.display
                )));
            }
            Some(Err(RecvTimeoutError::Timeout)) => Err(format!(
                "PostgreSQL at {} did not answer within {} s",
                self.settings.display,
                wait.as_secs()
            )),
            Some(Err(RecvTimeoutError::Disconnected)) | None => Err(format!(
                "cannot connect to PostgreSQL at {}: the connection thread ended",
                self.settings.display
            )),
        };
        state.connecting = None;
        match answer {
            Ok((client, runtime)) => {
                if state.last_failure.take().is_some() {
                    tracing::info!(target: "vigil::db", "connected to PostgreSQL at {} again", self.settings.display);
                }
                state.was_connected = true;
                let client = Arc::new(client);
                state.live = Some(Live {
                    client: client.clone(),
                    runtime: runtime.clone(),
                    statements: HashMap::new(),
                });
                Ok((client, runtime))
            }
            Err(msg) => {
                if state.last_failure.is_none() {
                    tracing::warn!(target: "vigil::db", "database unavailable: {msg}");
                }
                state.last_failure = Some((Instant::now(), msg.clone()));
                Err(DbError::Unavailable(msg))
            }
        }
    }

    /// Starts connecting on a thread of its own, which then drives the connection; the answer
    /// (the client, or why not) arrives on the returned channel. The attempt gives up after
    /// [`FIRST_CONNECT_TIMEOUT`] (the connect timeout of the configuration, when shorter).
    fn start_connect(&self) -> Receiver<Connected> {
        let (tx, rx) = sync_channel(1);
        let mut config = self.settings.config.clone();
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(FIRST_CONNECT_TIMEOUT);
        }
        // A connection given up after a call timed out ends in the kernel too (unacknowledged
        // data or keepalives for this long) rather than holding its thread for the default
        // quarter of an hour of retransmissions.
        config.tcp_user_timeout(DEAD_CONNECTION_AFTER);
        config.keepalives_idle(DEAD_CONNECTION_AFTER);
        let tls = self.tls.clone();
        let display = self.settings.display.clone();
        let spawned = std::thread::Builder::new()
            .name("vigil-postgres".into())
            .spawn({
                let tx = tx.clone();
                move || {
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            let _ =
                                tx.send(Err(format!("cannot start the connection thread: {e}")));
                            return;
                        }
                    };
                    rt.block_on(async move {
                        match tls {
                            Some(tls) => drive(config, tls, tx, display).await,
                            None => drive(config, tokio_postgres::NoTls, tx, display).await,
                        }
                    });
                }
            });
        if let Err(e) = spawned {
            let _ = tx.send(Err(format!("cannot start the connection thread: {e}")));
        }
        rx
    }
}

type Connected = std::result::Result<(Client, tokio::runtime::Handle), String>;

/// Connects, hands the client back, then drives the connection until it ends (the server went
/// away, or every handle on the client was dropped).
async fn drive<T>(
    config: tokio_postgres::Config,
    tls: T,
    tx: std::sync::mpsc::SyncSender<Connected>,
    place: String,
) where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
{
    // The connect timeout of tokio-postgres bounds the TCP connect only; a peer that accepts
    // and then stays silent (a half-open path, a stuck proxy) must not hold the attempt forever.
    let connected = match tokio::time::timeout(FIRST_CONNECT_TIMEOUT, config.connect(tls)).await {
        Ok(r) => r,
        Err(_) => {
            let _ = tx.send(Err(format!(
                "PostgreSQL at {place} did not complete the connection within {} s",
                FIRST_CONNECT_TIMEOUT.as_secs()
            )));
            return;
        }
    };
    match connected {
        Ok((client, connection)) => {
            if tx
                .send(Ok((client, tokio::runtime::Handle::current())))
                .is_err()
            {
                return;
            }
            if let Err(e) = connection.await {
                tracing::warn!(target: "vigil::db", "connection to PostgreSQL at {} ended: {}", place, chain(&e));
            }
        }
        Err(e) => {
            let _ = tx.send(Err(format!(
                "cannot connect to PostgreSQL at {place}: {}",
                chain(&e)
            )));
        }
    }
}

/// An error with its causes, `a: b: c` (tokio-postgres puts the useful part in the source).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

fn classify(e: &tokio_postgres::Error, display: &str) -> DbError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        // Class 08 connection exceptions, 57P0x shutdown/starting/crash, 53300 too many
        // connections: the server is (for now) not there. Class 23: integrity constraints.
        if code.starts_with("08") || code.starts_with("57P") || code == "53300" {
            return DbError::Unavailable(format!("PostgreSQL at {display}: {}", db.message()));
        }
        if code.starts_with("23") {
            return DbError::Constraint(db.message().to_owned());
        }
        return DbError::Postgres(format!("{} ({code})", db.message()));
    }
    let io = {
        let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(e);
        let mut found = false;
        while let Some(c) = cur {
            if c.is::<std::io::Error>() {
                found = true;
                break;
            }
            cur = c.source();
        }
        found
    };
    if e.is_closed() || io {
        return DbError::Unavailable(format!("PostgreSQL at {display}: {}", chain(e)));
    }
    DbError::Postgres(chain(e))
}

fn convert(row: &tokio_postgres::Row, i: usize, column: &str) -> Result<Value> {
    let ty = row.columns()[i].type_();
    let bad = |e: tokio_postgres::Error| DbError::Conversion {
        column: column.to_owned(),
        message: e.to_string(),
    };
    Ok(match *ty {
        Type::INT8 => row
            .try_get::<_, Option<i64>>(i)
            .map_err(bad)?
            .map_or(Value::Null, Value::Int),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(i)
            .map_err(bad)?
            .map_or(Value::Null, |v| Value::Int(v.into())),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(i)
            .map_err(bad)?
            .map_or(Value::Null, |v| Value::Int(v.into())),
        Type::OID => row
            .try_get::<_, Option<u32>>(i)
            .map_err(bad)?
            .map_or(Value::Null, |v| Value::Int(v.into())),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(i)
            .map_err(bad)?
            .map_or(Value::Null, |v| Value::Int(v.into())),
        Type::BYTEA => row
            .try_get::<_, Option<Vec<u8>>>(i)
            .map_err(bad)?
            .map_or(Value::Null, Value::Bytes),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => row
            .try_get::<_, Option<String>>(i)
            .map_err(bad)?
            .map_or(Value::Null, Value::Text),
        _ => {
            return Err(DbError::Conversion {
                column: column.to_owned(),
                message: format!("unsupported column type {ty}"),
            });
        }
    })
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                _ => Err(format!("an integer cannot be sent as {ty}").into()),
            },
            Value::Text(s) if <&str as ToSql>::accepts(ty) => s.as_str().to_sql(ty, out),
            Value::Bytes(b) if *ty == Type::BYTEA => b.as_slice().to_sql(ty, out),
            other => Err(format!("a {} value cannot be sent as {ty}", other.kind()).into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn tls_connector(tls: &TlsMode) -> Result<Option<MakeRustlsConnect>, ConfigError> {
    let TlsMode::VerifyFull { ca_file } = tls else {
        return Ok(None);
    };
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            use rustls_pki_types::pem::PemObject as _;
            let err = |message: String| ConfigError::CaFile {
                path: path.clone(),
                message,
            };
            let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| err(e.to_string()))?;
            for cert in certs {
                let cert = cert.map_err(|e| err(e.to_string()))?;
                roots
                    .add(cert)
                    .map_err(|e| err(format!("not a usable CA certificate: {e}")))?;
            }
            if roots.is_empty() {
                return Err(err("holds no PEM certificate".into()));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(ConfigError::Invalid(
                    "the system trust store holds no CA certificate: set [database] ca_file to the CA that issued the server's certificate".into(),
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::Invalid(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(MakeRustlsConnect::new(config)))
}
