//! The management listeners: HTTPS sockets serving the API, and optional plaintext HTTP
//! sockets that only redirect to HTTPS and refuse every credential-bearing endpoint (docs/api.md).
//!
//! A blocked address is dropped right after `accept`, before the TLS handshake, so an attacker
//! that has been blocked costs neither a key exchange nor a password hash; so is a connection
//! from an address that already holds its share of unauthenticated connections. Every request
//! must arrive (headers, then body) within deadlines; the answer, a video download say, has
//! none. Listeners are bound all-or-nothing: a new plan binds every new socket first and only
//! then retires old ones, so a settings change that cannot bind leaves the server reachable as
//! it was.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;
use vigil_access::Access;
use vigil_pki::LiveTls;

use crate::auth::ConnInfo;
use crate::error::ApiError;
use crate::limits::{DeadlineBody, PeerSlots, Unauthenticated};
use crate::workers::Workers;

/// Connections served at once per listener; beyond it new connections wait in the kernel's
/// backlog instead of exhausting memory or file descriptors.
const MAX_CONNECTIONS: usize = 4096;
/// A client must finish the TLS handshake within this time.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A client must send a request's headers within this time (slow-loris protection). On
/// HTTP/1.1 the time starts when the connection waits for a request, so it also closes idle
/// keep-alive connections.
const HEADER_TIMEOUT: Duration = Duration::from_secs(15);
/// A request's body must have arrived completely this long after its headers; a body that
/// trickles in or never comes is answered 408 and its connection closed. 30 s still lets the
/// largest body accepted (1 MiB) through a link of about 35 KB/s.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// A connection's first request (TLS handshake, headers and body) must have arrived this long
/// after `accept`. On HTTP/1.1 the handshake, header and body deadlines add up to less; hyper
/// has no header deadline on HTTP/2, so there this is what closes a connection that never
/// sends a complete request. Only receiving the request counts: its answer is never cut.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Connections per client address (per /64 for IPv6) that have not authenticated; beyond it a
/// new connection from that address is closed right after `accept`. A connection counts from
/// `accept` until a request on it authenticates (or it ends), so every client counts while it
/// connects: the limit is generous because the wrk benchmarks open 32 to 64 keep-alive
/// connections from one address at once, and many users behind one NAT may log in together.
/// One address can still hold at most 1/32 of a listener's connections.
const MAX_UNAUTHENTICATED_PER_ADDRESS: usize = 128;
/// Connections of a retired listener get this long to finish their requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What a client may make a connection wait for, and how many connections one address may
/// hold before authenticating. The defaults are what `vigil serve` uses; tests shorten them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// From a request's headers to the end of its body.
    pub body_timeout: Duration,
    /// From `accept` to the end of the connection's first request.
    pub request_timeout: Duration,
    /// Connections that have not authenticated, per client address.
    pub unauthenticated_per_address: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            body_timeout: BODY_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
            unauthenticated_per_address: MAX_UNAUTHENTICATED_PER_ADDRESS,
        }
    }
}

/// Plaintext or TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Https,
    Http,
}

/// The sockets the management role should listen on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenerPlan {
    pub https: Vec<SocketAddr>,
    pub http: Vec<SocketAddr>,
}

impl ListenerPlan {
    pub fn from_config(cfg: &vigil_config::Config) -> Self {
        if !cfg.management.enabled {
            return ListenerPlan::default();
        }
        ListenerPlan {
            https: cfg.management.https.iter().map(|l| l.bind).collect(),
            http: cfg.management.http.iter().map(|l| l.bind).collect(),
        }
    }

    fn entries(&self) -> impl Iterator<Item = (SocketAddr, Scheme)> + '_ {
        self.https
            .iter()
            .map(|a| (*a, Scheme::Https))
            .chain(self.http.iter().map(|a| (*a, Scheme::Http)))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error(
        "the management role would have no listener; keep at least one HTTPS (or HTTP) listener so the server stays reachable"
    )]
    Unreachable,
    #[error(
        "cannot listen on {addr} ({scheme:?}): {source}; choose a free port or stop the program using it (nothing was changed)"
    )]
    Bind {
        addr: SocketAddr,
        scheme: Scheme,
        source: std::io::Error,
    },
    #[error("TLS configuration: {0}")]
    Tls(#[from] vigil_pki::PkiError),
    #[error("the API router is not installed yet")]
    NoRouter,
    #[error("cannot start the connection worker threads: {0}")]
    Workers(std::io::Error),
    #[error("the server is shutting down; listeners can no longer be changed")]
    ShutDown,
}

/// One running listener.
struct Running {
    local: SocketAddr,
    stop: watch::Sender<bool>,
    /// One accept loop per worker thread, all on the same listening socket.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Fires once the listening socket is closed (before open connections have drained).
    closed: tokio::sync::oneshot::Receiver<()>,
}

/// Sends on drop; every accept loop of a listener holds one clone, so the last loop to let
/// go of its copy of the socket tells [`Listeners::apply`] that the port is free.
struct ClosedSignal(Option<tokio::sync::oneshot::Sender<()>>);

impl Drop for ClosedSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// What [`Listeners::apply`] changed.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct ApplyReport {
    /// Listeners started, as "https://addr" / "http://addr".
    pub started: Vec<String>,
    /// Listeners stopped.
    pub stopped: Vec<String>,
    /// Listeners left running untouched.
    pub kept: Vec<String>,
}

/// The management role's running listeners.
pub struct Listeners {
    running: Mutex<HashMap<(SocketAddr, Scheme), Running>>,
    app: OnceLock<Router>,
    access: Arc<Access>,
    tls: LiveTls,
    /// Port HTTP redirects point at: the first HTTPS listener's.
    https_port: Arc<AtomicU16>,
    /// The threads that serve connections; started with the first listener, stopped by
    /// [`Listeners::shutdown`].
    workers: std::sync::Mutex<Option<Workers>>,
    /// Set by [`Listeners::shutdown`] (under the `running` lock): no listener starts after it.
    shut_down: std::sync::atomic::AtomicBool,
    limits: std::sync::Mutex<ConnectionLimits>,
    /// Unauthenticated connections per address, across all listeners: one host cannot fill
    /// one listener, nor several.
    peers: Arc<PeerSlots>,
}

fn label(addr: SocketAddr, scheme: Scheme) -> String {
    match scheme {
        Scheme::Https => format!("https://{addr}"),
        Scheme::Http => format!("http://{addr}"),
    }
}

impl Listeners {
    pub fn new(access: Arc<Access>, tls: LiveTls) -> Self {
        Listeners {
            running: Mutex::new(HashMap::new()),
            app: OnceLock::new(),
            access,
            tls,
            https_port: Arc::new(AtomicU16::new(443)),
            workers: std::sync::Mutex::new(None),
            shut_down: std::sync::atomic::AtomicBool::new(false),
            limits: std::sync::Mutex::new(ConnectionLimits::default()),
            peers: PeerSlots::new(MAX_UNAUTHENTICATED_PER_ADDRESS),
        }
    }

    /// Changes the connection limits: the per-address cap at once, the deadlines for
    /// listeners started afterwards.
    pub fn set_limits(&self, limits: ConnectionLimits) {
        *self.limits.lock().unwrap_or_else(|e| e.into_inner()) = limits;
        self.peers.set_cap(limits.unauthenticated_per_address);
    }

    /// The connection limits listeners start with.
    pub fn limits(&self) -> ConnectionLimits {
        *self.limits.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many workers serve (or will serve) connections.
    fn worker_count(&self) -> usize {
        let workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        workers
            .as_ref()
            .map_or_else(crate::workers::cores, Workers::len)
    }

    /// The workers' runtimes, starting the pool on first use.
    fn worker_handles(&self) -> Result<Vec<tokio::runtime::Handle>, ListenError> {
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        let pool = match &mut *workers {
            Some(pool) => pool,
            None => workers.insert(Workers::per_core().map_err(ListenError::Workers)?),
        };
        Ok(pool.handles().cloned().collect())
    }

    /// Installs the API router (built after the state that holds these listeners).
    pub fn install_router(&self, app: Router) {
        let _ = self.app.set(app);
    }

    /// The addresses actually bound (useful when a plan asks for port 0).
    pub async fn local_addrs(&self) -> Vec<(Scheme, SocketAddr)> {
        let mut v: Vec<_> = self
            .running
            .lock()
            .await
            .iter()
            .map(|((_, s), r)| (*s, r.local))
            .collect();
        v.sort_by_key(|(s, a)| (*s == Scheme::Http, *a));
        v
    }

    /// Makes the running listeners match `plan`: binds every new socket first (any failure
    /// changes nothing), then stops the ones no longer wanted.
    pub async fn apply(&self, plan: &ListenerPlan) -> Result<ApplyReport, ListenError> {
        if plan.https.is_empty() && plan.http.is_empty() {
            return Err(ListenError::Unreachable);
        }
        let app = self.app.get().ok_or(ListenError::NoRouter)?.clone();
        let mut running = self.running.lock().await;
        if self.shut_down.load(Ordering::Acquire) {
            return Err(ListenError::ShutDown);
        }
        let mut report = ApplyReport::default();
        let mut bound = Vec::new();
        let copies = self.worker_count();
        for (addr, scheme) in plan.entries() {
            if running.contains_key(&(addr, scheme)) {
                report.kept.push(label(addr, scheme));
                continue;
            }
            let sockets = bind(addr, copies).map_err(|source| ListenError::Bind {
                addr,
                scheme,
                source,
            })?;
            bound.push((addr, scheme, sockets));
        }
        let mut tls_config = self.tls.server_config()?;
        tls_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(tls_config));
        let limits = self.limits();
        // Only now that every socket is bound: a plan that cannot bind starts no threads.
        let workers = self.worker_handles()?;
        // Each copy is registered with its worker's event loop here, so a failure is still
        // this call's error and nothing has started yet.
        let mut registered = Vec::with_capacity(bound.len());
        for (addr, scheme, sockets) in bound {
            let mut listeners = Vec::with_capacity(sockets.len());
            for (socket, worker) in sockets.into_iter().zip(&workers) {
                let _in_worker = worker.enter();
                let listener =
                    TcpListener::from_std(socket).map_err(|source| ListenError::Bind {
                        addr,
                        scheme,
                        source,
                    })?;
                listeners.push((worker.clone(), listener));
            }
            registered.push((addr, scheme, listeners));
        }
        for (addr, scheme, listeners) in registered {
            let local = listeners
                .first()
                .and_then(|(_, l)| l.local_addr().ok())
                .unwrap_or(addr);
            let (stop, stop_rx) = watch::channel(false);
            let (closed_tx, closed) = tokio::sync::oneshot::channel();
            let closed_tx = Arc::new(ClosedSignal(Some(closed_tx)));
            let service = match scheme {
                Scheme::Https => app.clone(),
                Scheme::Http => redirect_router(self.https_port.clone()),
            };
            let acceptor = (scheme == Scheme::Https).then(|| acceptor.clone());
            let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
            // Every worker accepts on its own copy of the socket and serves what it accepted
            // itself, like nginx's workers: no connection is handed between threads.
            let tasks = listeners
                .into_iter()
                .map(|(worker, listener)| {
                    worker.spawn(accept_loop(
                        listener,
                        acceptor.clone(),
                        service.clone(),
                        Admission {
                            access: self.access.clone(),
                            connections: limit.clone(),
                            peers: self.peers.clone(),
                            limits,
                        },
                        stop_rx.clone(),
                        closed_tx.clone(),
                    ))
                })
                .collect();
            drop(closed_tx);
            tracing::info!(listener = %label(local, scheme), "management listener started");
            report.started.push(label(local, scheme));
            running.insert(
                (addr, scheme),
                Running {
                    local,
                    stop,
                    tasks,
                    closed,
                },
            );
        }
        let wanted: Vec<(SocketAddr, Scheme)> = plan.entries().collect();
        let retired: Vec<_> = running
            .keys()
            .filter(|k| !wanted.contains(k))
            .copied()
            .collect();
        for key in retired {
            if let Some(r) = running.remove(&key) {
                let _ = r.stop.send(true);
                // Wait only until the socket is closed (new connections are refused), not for
                // open connections to drain: the request asking for this change may itself be
                // one of them, and its answer must still go out.
                let _ = tokio::time::timeout(Duration::from_secs(1), r.closed).await;
                let name = label(r.local, key.1);
                tokio::spawn(async move {
                    let drained = futures_util::future::join_all(r.tasks);
                    let _ =
                        tokio::time::timeout(DRAIN_TIMEOUT + Duration::from_secs(1), drained).await;
                    tracing::info!(listener = %name, "management listener drained");
                });
                tracing::info!(listener = %label(r.local, key.1), "management listener stopped");
                report.stopped.push(label(r.local, key.1));
            }
        }
        if let Some((_, r)) = running
            .iter()
            .filter(|((_, s), _)| *s == Scheme::Https)
            .min_by_key(|((a, _), _)| plan.https.iter().position(|p| p == a))
        {
            self.https_port.store(r.local.port(), Ordering::Relaxed);
        }
        Ok(report)
    }

    /// Stops every listener, letting open requests finish for a few seconds.
    pub async fn shutdown(&self) {
        let mut running = self.running.lock().await;
        self.shut_down.store(true, Ordering::Release);
        for (_, r) in running.drain() {
            let _ = r.stop.send(true);
            let drained = futures_util::future::join_all(r.tasks);
            let _ = tokio::time::timeout(DRAIN_TIMEOUT + Duration::from_secs(1), drained).await;
        }
        drop(running);
        let workers = self
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(workers) = workers {
            // Joining waits for the threads' last blocking work (a database write, say).
            let _ = tokio::task::spawn_blocking(move || workers.stop()).await;
        }
    }
}

/// Binds `addr` and returns `copies` handles of the listening socket (one per worker), not
/// yet registered with any event loop (each worker registers its own).
fn bind(addr: SocketAddr, copies: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    // Rebinding right after a listener change must not fail on TIME_WAIT sockets.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let first = socket.listen(1024)?.into_std()?;
    let mut sockets = Vec::with_capacity(copies.max(1));
    for _ in 1..copies.max(1) {
        sockets.push(first.try_clone()?);
    }
    sockets.push(first);
    Ok(sockets)
}

/// Who may connect to a listener, and what a connection may make it wait for.
struct Admission {
    access: Arc<Access>,
    /// The listener's connections (all of its accept loops share it).
    connections: Arc<Semaphore>,
    peers: Arc<PeerSlots>,
    limits: ConnectionLimits,
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    app: Router,
    admission: Admission,
    mut stop: watch::Receiver<bool>,
    closed: Arc<ClosedSignal>,
) {
    let local = listener.local_addr().ok();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let protocols = Arc::new(Protocols::new());
    loop {
        let permit = tokio::select! {
            _ = stop.changed() => break,
            p = admission.connections.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (tcp, peer) = tokio::select! {
            _ = stop.changed() => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Before any TLS or password work: a blocked address gets a closed socket, and so
        // does one that holds its share of connections that have not authenticated.
        if admission.access.check(peer.ip()).is_err() {
            drop(tcp);
            continue;
        }
        let Some(pending) = admission.peers.take(peer.ip()) else {
            tracing::debug!(%peer, "too many unauthenticated connections from this address");
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let conn = Arc::new(ConnState {
            info: ConnInfo {
                peer,
                local: local.unwrap_or(peer),
            },
            pending,
            first_request_by: tokio::time::Instant::now() + admission.limits.request_timeout,
            head_seen: AtomicBool::new(false),
            body_timeout: admission.limits.body_timeout,
            stop: stop.clone(),
        });
        let app = app.clone();
        let acceptor = acceptor.clone();
        let protocols = protocols.clone();
        let watcher = graceful.watcher();
        let stop = stop.clone();
        tokio::spawn(async move {
            let _permit = permit;
            serve_connection(tcp, conn, acceptor, app, protocols, watcher, stop).await;
        });
    }
    drop(listener);
    drop(closed);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
}

/// The HTTP settings of every connection: slow-loris protection on HTTP/1.1, timers on
/// both protocols.
struct Protocols {
    http1: hyper::server::conn::http1::Builder,
    http2: hyper::server::conn::http2::Builder<TokioExecutor>,
}

impl Protocols {
    fn new() -> Self {
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT);
        let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        http2.timer(TokioTimer::new());
        Protocols { http1, http2 }
    }
}

/// One connection, shared by its requests.
struct ConnState {
    info: ConnInfo,
    /// Its place among its address's unauthenticated connections, until a request
    /// authenticates (the slot is given back when this is dropped, at the latest).
    pending: Unauthenticated,
    /// When the first request must have arrived completely.
    first_request_by: tokio::time::Instant,
    /// Set when the first request's headers arrive; from then on its body deadline (capped
    /// at `first_request_by`) takes over from the connection's.
    head_seen: AtomicBool,
    body_timeout: Duration,
    /// The listener's stop signal, for answers that outlive their request (WebSockets).
    stop: watch::Receiver<bool>,
}

impl ConnState {
    /// Resolves when the first request's headers have not arrived by `first_request_by`.
    async fn first_request_missed(&self) {
        tokio::time::sleep_until(self.first_request_by).await;
        if self.head_seen.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
    }
}

/// The router as one connection's service: attaches the connection to each request and puts
/// a deadline on its body.
struct ConnService {
    app: Router,
    conn: Arc<ConnState>,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response;
    type Error = Infallible;
    type Future = tower::util::Oneshot<Router, Request<DeadlineBody<DrainOnDrop>>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let (mut parts, body) = req.into_parts();
        let conn = &self.conn;
        parts.extensions.insert(conn.info);
        if conn.pending.is_held() {
            parts.extensions.insert(conn.pending.clone());
        }
        if parts.headers.contains_key(header::UPGRADE) {
            parts.extensions.insert(ListenerStop(conn.stop.clone()));
        }
        let first = !conn.head_seen.load(Ordering::Relaxed)
            && !conn.head_seen.swap(true, Ordering::Relaxed);
        // Only a body still to come needs the clock (a GET's has ended already).
        let deadline = (!hyper::body::Body::is_end_stream(&body)).then(|| {
            let by = tokio::time::Instant::now() + conn.body_timeout;
            if first {
                by.min(conn.first_request_by)
            } else {
                by
            }
        });
        let drain = (parts.version == axum::http::Version::HTTP_2).then(|| {
            let at_most = tokio::time::Instant::now() + DRAIN_AT_MOST;
            deadline.map_or(at_most, |d| d.min(at_most))
        });
        let body = DrainOnDrop {
            inner: Some(body),
            drain,
        };
        let req = Request::from_parts(parts, DeadlineBody::new(body, deadline));
        self.app.clone().oneshot(req)
    }
}

/// How much of an unread HTTP/2 request body is read (and discarded) after the answer, and
/// for how long at most.
const DRAIN_BYTES: usize = 64 * 1024;
const DRAIN_AT_MOST: Duration = Duration::from_secs(5);

/// An HTTP/2 request body that, when a handler answers without reading it (a 415 for a form
/// post, a 401 before the body matters), is read to its end in the background instead of
/// being dropped. Dropping it unread makes the HTTP/2 stack reset the stream, and clients
/// such as curl then report the reset and throw away the answer they already received
/// (RFC 9113 section 8.1 lets a server end the request early only with a NO_ERROR reset).
/// Small rests only: a body larger than [`DRAIN_BYTES`] or slower than the request's own
/// deadline is cut as before. HTTP/1.1 (`drain: None`) handles an unread body itself.
pub struct DrainOnDrop {
    inner: Option<Incoming>,
    /// Until when the rest may be read, for HTTP/2 requests (never past the request's own
    /// body deadline).
    drain: Option<tokio::time::Instant>,
}

impl hyper::body::Body for DrainOnDrop {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        match self.inner.as_mut() {
            Some(body) => std::pin::Pin::new(body).poll_frame(cx),
            None => std::task::Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner
            .as_ref()
            .is_none_or(hyper::body::Body::is_end_stream)
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner
            .as_ref()
            .map(hyper::body::Body::size_hint)
            .unwrap_or_else(|| hyper::body::SizeHint::with_exact(0))
    }
}

impl Drop for DrainOnDrop {
    fn drop(&mut self) {
        let (Some(body), Some(until)) = (self.inner.take(), self.drain) else {
            return;
        };
        if hyper::body::Body::is_end_stream(&body)
            || tokio::time::Instant::now() >= until
            || hyper::body::Body::size_hint(&body)
                .upper()
                .is_some_and(|n| n > DRAIN_BYTES as u64)
        {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let mut body = body;
            let read_rest = async {
                let mut read = 0usize;
                while read <= DRAIN_BYTES {
                    let frame = std::future::poll_fn(|cx| {
                        hyper::body::Body::poll_frame(std::pin::Pin::new(&mut body), cx)
                    })
                    .await;
                    match frame {
                        Some(Ok(f)) => read += f.data_ref().map_or(0, |d| d.len()),
                        _ => break,
                    }
                }
            };
            let _ = tokio::time::timeout_at(until, read_rest).await;
        });
    }
}

/// Resolves when the listener a request came in on stops (a settings change retired it, or
/// the server shuts down). Attached to requests that ask for an upgrade: a WebSocket outlives
/// its connection's HTTP handling, so it watches this itself.
#[derive(Debug, Clone)]
pub struct ListenerStop(watch::Receiver<bool>);

impl ListenerStop {
    pub async fn stopped(mut self) {
        // A listener dropped without saying so is stopped too.
        let _ = self.0.wait_for(|stopped| *stopped).await;
    }
}

/// An HTTP/1.1 connection that may be upgraded (WebSockets; browsers open them over HTTP/1.1
/// unless the server offers RFC 8441, which this one does not). hyper-util's graceful watcher
/// does not take such connections, so this stops them the same way: when the listener stops,
/// the request in progress is answered and the connection closed; the watcher, held until
/// then, makes the listener's drain wait for it. An upgraded connection leaves HTTP here and
/// watches [`ListenerStop`] itself.
async fn upgradeable<C>(
    conn: C,
    mut stop: watch::Receiver<bool>,
    watcher: hyper_util::server::graceful::Watcher,
) -> Result<(), hyper::Error>
where
    C: UpgradeableHttp1,
{
    let _counted = watcher;
    let mut conn = std::pin::pin!(conn);
    let stopped = async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    tokio::select! {
        done = conn.as_mut() => done,
        () = stopped => {
            conn.as_mut().stop();
            conn.await
        }
    }
}

/// hyper's upgradeable HTTP/1.1 connection, named by what [`upgradeable`] needs of it.
trait UpgradeableHttp1: std::future::Future<Output = Result<(), hyper::Error>> {
    fn stop(self: std::pin::Pin<&mut Self>);
}

impl<I, S, B> UpgradeableHttp1 for hyper::server::conn::http1::UpgradeableConnection<I, S>
where
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn stop(self: std::pin::Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// `served`, unless the connection's first request has not arrived in time.
async fn or_first_request_missed<F: std::future::Future>(
    conn: &ConnState,
    served: F,
) -> Option<F::Output> {
    tokio::select! {
        out = served => Some(out),
        () = conn.first_request_missed() => None,
    }
}

async fn serve_connection(
    tcp: TcpStream,
    conn: Arc<ConnState>,
    acceptor: Option<TlsAcceptor>,
    app: Router,
    protocols: Arc<Protocols>,
    watcher: hyper_util::server::graceful::Watcher,
    stop: watch::Receiver<bool>,
) {
    let info = conn.info;
    let service = ConnService {
        app,
        conn: conn.clone(),
    };
    let served = match acceptor {
        Some(acceptor) => {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(peer = %info.peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(peer = %info.peer, "TLS handshake timed out");
                    return;
                }
            };
            // HTTP/2 over TLS is chosen by ALPN (RFC 9113 section 3.2); without it a client
            // speaks HTTP/1.1. Knowing the protocol up front spares every request the
            // protocol-sniffing wrapper.
            if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                let http = protocols.http2.serve_connection(TokioIo::new(tls), service);
                or_first_request_missed(&conn, watcher.watch(http)).await
            } else {
                let http = protocols
                    .http1
                    .serve_connection(TokioIo::new(tls), service)
                    .with_upgrades();
                or_first_request_missed(&conn, upgradeable(http, stop, watcher)).await
            }
        }
        // Plaintext only redirects (HTTP/1.x clients; h2c is not offered).
        None => {
            let http = protocols.http1.serve_connection(TokioIo::new(tcp), service);
            or_first_request_missed(&conn, watcher.watch(http)).await
        }
    };
    match served {
        Some(Ok(())) => {}
        Some(Err(e)) => {
            tracing::debug!(peer = %info.peer, error = %e, "connection ended with an error");
        }
        None => tracing::debug!(peer = %info.peer, "closed: no complete request in time"),
    }
}

/// What plaintext HTTP serves: API paths answer 403 (no login, session or video in clear),
/// anything else is redirected to the same path over HTTPS.
fn redirect_router(https_port: Arc<AtomicU16>) -> Router {
    Router::new().fallback(move |req: Request| {
        let port = https_port.load(Ordering::Relaxed);
        async move { plaintext_answer(req, port) }
    })
}

fn plaintext_answer(req: Request, https_port: u16) -> Response {
    let path = req.uri().path();
    if path == "/api"
        || path.starts_with("/api/")
        || req.headers().contains_key(header::AUTHORIZATION)
        || req.headers().contains_key(header::COOKIE)
    {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "https_required",
            format!(
                "this endpoint carries credentials or video and is served over HTTPS only; use https://<host>:{https_port}{path}"
            ),
        )
        .into_response();
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(host_without_port)
        .unwrap_or("localhost");
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let target = if https_port == 443 {
        format!("https://{host}{path_and_query}")
    } else {
        format!("https://{host}:{https_port}{path_and_query}")
    };
    match target.parse::<Uri>() {
        Ok(_) => Redirect::permanent(&target).into_response(),
        Err(_) => ApiError::bad_request("the request's Host header is not a valid host name")
            .into_response(),
    }
}

/// The host part of a `Host` header, if it is a plain name or address (anything with
/// characters a host name cannot have is refused rather than echoed into a redirect).
fn host_without_port(host: &str) -> Option<&str> {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        let end = rest.find(']')?;
        &host[..end + 2]
    } else {
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
    };
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'));
    ok.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_header_is_sanitized() {
        assert_eq!(
            host_without_port("cam.example.net:8080"),
            Some("cam.example.net")
        );
        assert_eq!(host_without_port("10.0.0.5"), Some("10.0.0.5"));
        assert_eq!(host_without_port("[::1]:8080"), Some("[::1]"));
        assert_eq!(host_without_port("evil.com/x?"), None);
        assert_eq!(host_without_port(""), None);
        assert_eq!(host_without_port("a b"), None);
    }
}
