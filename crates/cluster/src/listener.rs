//! The inter-server listeners (management 8444, recording 9443): TLS with client certificates
//! checked by [`crate::tls::RevokingVerifier`], HTTP/1.1, bounded bodies and deadlines, and
//! connections that close as soon as their peer's certificate enters the revocation set, so a
//! removed server loses its open connections too, not only new ones (docs/design/cluster.md).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use crate::protocol::{ErrorReply, MAX_BODY};
use crate::tls::RevocationSet;

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 256;
/// Time a client has to finish the TLS handshake, and to send a request's head.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// A refused handshake is reported at most once per address in this interval.
const REFUSAL_REPORT_EVERY: Duration = Duration::from_secs(60);

/// Who sent a request.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    /// SHA-256 (hex) of the client certificate, when one was presented (and accepted).
    pub cert_sha256: Option<String>,
}

/// One request, its body read in full (at most [`MAX_BODY`]).
#[derive(Debug)]
pub struct Request {
    pub method: hyper::Method,
    pub path: String,
    /// The query string after `?`, if any (undecoded).
    pub query: Option<String>,
    pub peer: Peer,
    pub body: Bytes,
}

/// An answer: JSON, or recorded video with its headers.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    /// Further headers (names in lower case).
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(status: u16, value: &impl serde::Serialize) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: serde_json::to_vec(value).unwrap_or_default(),
        }
    }

    /// A `200` answer of `content_type` bytes with `headers`.
    pub fn bytes(
        content_type: &'static str,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    ) -> Reply {
        Reply {
            status: 200,
            content_type,
            headers,
            body,
        }
    }

    pub fn error(status: u16, code: &str, message: impl Into<String>) -> Reply {
        Reply::json(
            status,
            &ErrorReply {
                error: code.to_owned(),
                message: message.into(),
            },
        )
    }
}

/// What a listener serves. Called on the blocking pool (handlers write SQLite and sign).
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, request: Request) -> Reply;
    /// A client's TLS handshake was refused (a certificate from another CA, a revoked one,
    /// none where one is required); reported at most once a minute per address.
    fn refused(&self, _peer: SocketAddr, _reason: &str) {}
    /// An open connection was closed because its certificate was revoked.
    fn closed_revoked(&self, _peer: SocketAddr, _cert_sha256: &str) {}
}

/// A running listener.
pub struct Listener {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Listener {
    /// Binds `addr` and serves `handler` until [`Listener::shutdown`].
    pub async fn bind(
        addr: SocketAddr,
        tls: rustls::ServerConfig,
        revoked: Arc<RevocationSet>,
        handler: Arc<dyn Handler>,
    ) -> std::io::Result<Listener> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let acceptor = TlsAcceptor::from(Arc::new(tls));
        let task = tokio::spawn(accept_loop(listener, acceptor, revoked, handler, stopped));
        Ok(Listener { addr, stop, task })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and closes every connection.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    revoked: Arc<RevocationSet>,
    handler: Arc<dyn Handler>,
    mut stopped: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let reported: Arc<Mutex<HashMap<IpAddr, Instant>>> = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "inter-server accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopped.changed() => break,
        };
        while tasks.try_join_next().is_some() {}
        let acceptor = acceptor.clone();
        let revoked = revoked.clone();
        let handler = handler.clone();
        let stopped = stopped.clone();
        let reported = reported.clone();
        tasks.spawn(async move {
            let _permit = permit;
            serve_connection(tcp, peer, acceptor, revoked, handler, stopped, reported).await;
        });
    }
    tasks.shutdown().await;
}

async fn serve_connection(
    tcp: tokio::net::TcpStream,
    addr: SocketAddr,
    acceptor: TlsAcceptor,
    revoked: Arc<RevocationSet>,
    handler: Arc<dyn Handler>,
    mut stopped: watch::Receiver<bool>,
    reported: Arc<Mutex<HashMap<IpAddr, Instant>>>,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            let due = {
                let mut r = reported.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                r.retain(|_, t| now.duration_since(*t) < REFUSAL_REPORT_EVERY);
                r.len() < 10_000 && r.insert(addr.ip(), now).is_none()
            };
            let reason = e.to_string();
            tracing::warn!(peer = %addr, error = %reason, "inter-server TLS handshake refused");
            if due {
                let h = handler.clone();
                let _ = tokio::task::spawn_blocking(move || h.refused(addr, &reason)).await;
            }
            return;
        }
        Err(_) => {
            tracing::debug!(peer = %addr, "inter-server TLS handshake timed out");
            return;
        }
    };
    let cert_sha256 = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| crate::cert_sha256(c));
    // The verifier already refused revoked certificates; this covers one revoked between
    // the check and here.
    if let Some(fp) = &cert_sha256
        && revoked.contains(fp)
    {
        return;
    }
    let peer = Peer {
        addr,
        cert_sha256: cert_sha256.clone(),
    };
    let h = handler.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let handler = h.clone();
        let peer = peer.clone();
        async move { Ok::<_, Infallible>(respond(req, peer, handler).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    let mut changes = revoked.subscribe();
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = stopped.changed() => return,
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                if let Some(fp) = &cert_sha256 && revoked.contains(fp) {
                    tracing::info!(peer = %addr, "closing an inter-server connection: its certificate was revoked");
                    let (h, fp) = (handler.clone(), fp.clone());
                    let _ = tokio::task::spawn_blocking(move || h.closed_revoked(addr, &fp)).await;
                    // Dropping the connection closes the socket.
                    return;
                }
            }
        }
    }
}

async fn respond(
    req: hyper::Request<Incoming>,
    peer: Peer,
    handler: Arc<dyn Handler>,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let reply = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => {
            let request = Request {
                method: parts.method,
                path: parts.uri.path().to_owned(),
                query: parts.uri.query().map(str::to_owned),
                peer,
                body: collected.to_bytes(),
            };
            tokio::task::spawn_blocking(move || handler.handle(request))
                .await
                .unwrap_or_else(|_| Reply::error(500, "internal", "the request handler failed"))
        }
        Err(_) => Reply::error(
            413,
            "too_large",
            format!("the request body is larger than {MAX_BODY} bytes"),
        ),
    };
    let mut builder = hyper::Response::builder()
        .status(reply.status)
        .header("content-type", reply.content_type);
    for (name, value) in reply.headers {
        builder = builder.header(name, value);
    }
    builder
        .body(Full::new(Bytes::from(reply.body)))
        .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new())))
}
