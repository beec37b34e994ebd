//! The sockets of the events role: TCP accept loops (TLS or plaintext) and UDP receive loops,
//! admission (client certificate or allow-list), deadlines, the read loop that feeds the
//! parsers within the sender's limits, and a clean stop.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use vigil_events::model::MAX_ATTRIBUTES;
use vigil_events::model::now_us;
use vigil_events::{Category, EventBus, NewEvent, Severity};
use vigil_pki::LiveTls;
use vigil_syslog::CameraMap;

use crate::allow::canonical;
use crate::generic::{self, Auth, Lines, Sender};
use crate::limits::{Connection, Over, Sources};
use crate::report::{Reporter, Subject};
use crate::{Input, InputStats, Settings};

/// Bytes read at a time: bounds the work (and the events held) per read. One TLS record
/// at most holds 16 KiB, so a fast sender's record is taken in one read, not four.
pub const READ_CHUNK: usize = 16_384;
/// How long a stop waits for open connections to finish what they read.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// After a failed accept (out of file descriptors), wait before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The server side of TLS: the certificate the management role serves (rotated live) and
/// the Vigil CA that client certificates must chain to.
#[derive(Debug, Clone)]
pub struct Tls {
    pub live: LiveTls,
    pub ca: CertificateDer<'static>,
}

/// Why the listeners did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("events listener {input} cannot listen on {addr}: {source}")]
    Bind {
        input: &'static str,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error("events listener {input} needs TLS: {why}")]
    Tls { input: &'static str, why: String },
}

struct Shared {
    settings: Settings,
    sources: Arc<Sources>,
    reporter: Reporter,
    bus: Arc<EventBus>,
    map: Arc<CameraMap>,
    stats: BTreeMap<Input, Arc<InputStats>>,
    stop: watch::Receiver<bool>,
}

/// The running listeners.
pub struct Intake {
    shared: Arc<Shared>,
    addrs: BTreeMap<Input, SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Intake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Intake")
            .field("addrs", &self.addrs)
            .finish_non_exhaustive()
    }
}

impl Intake {
    /// Binds every configured input (all or none: a socket that cannot be bound stops the
    /// start with its name and address) and starts serving on the current runtime.
    pub async fn start(
        settings: Settings,
        tls: Option<Tls>,
        bus: Arc<EventBus>,
        map: Arc<CameraMap>,
    ) -> Result<Intake, StartError> {
        let (stop_tx, stop) = watch::channel(false);
        let mut tcp = Vec::new();
        let mut udp = Vec::new();
        let mut addrs = BTreeMap::new();
        for (&input, &addr) in &settings.bind {
            let bind_err = |source| StartError::Bind {
                input: input.as_str(),
                addr,
                source,
            };
            if input.is_udp() {
                let s = UdpSocket::bind(addr).await.map_err(bind_err)?;
                addrs.insert(input, s.local_addr().map_err(bind_err)?);
                udp.push((input, s));
            } else {
                let acceptor = if input.is_tls() {
                    let tls = tls.as_ref().ok_or_else(|| StartError::Tls {
                        input: input.as_str(),
                        why: "no server certificate was given".into(),
                    })?;
                    Some(acceptor(tls, settings.require_client_cert).map_err(|why| {
                        StartError::Tls {
                            input: input.as_str(),
                            why,
                        }
                    })?)
                } else {
                    None
                };
                let l = TcpListener::bind(addr).await.map_err(bind_err)?;
                addrs.insert(input, l.local_addr().map_err(bind_err)?);
                tcp.push((input, l, acceptor));
            }
        }
        for (input, addr) in &addrs {
            if input.is_tls() {
                tracing::info!(listener = input.as_str(), %addr, "events listener (TLS)");
            } else {
                // Plaintext is allowed, but never quietly (docs/events-in.md).
                tracing::warn!(
                    listener = input.as_str(),
                    %addr,
                    "PLAINTEXT events listener enabled (allow-listed sources only)"
                );
            }
        }
        let shared = Arc::new(Shared {
            sources: Sources::new(settings.limits.clone()),
            reporter: Reporter::new(bus.clone(), settings.limits.report_interval),
            stats: Input::ALL
                .iter()
                .map(|&i| (i, Arc::new(InputStats::default())))
                .collect(),
            settings,
            bus,
            map,
            stop,
        });
        let mut tasks = Vec::new();
        for (input, l, acceptor) in tcp {
            tasks.push(tokio::spawn(accept_loop(
                shared.clone(),
                input,
                l,
                acceptor,
            )));
        }
        for (input, s) in udp {
            tasks.push(tokio::spawn(udp_loop(shared.clone(), input, s)));
        }
        Ok(Intake {
            shared,
            addrs,
            stop: stop_tx,
            tasks,
        })
    }

    /// The address an input is bound to, if it runs.
    pub fn local_addr(&self, input: Input) -> Option<SocketAddr> {
        self.addrs.get(&input).copied()
    }

    pub fn addrs(&self) -> &BTreeMap<Input, SocketAddr> {
        &self.addrs
    }

    pub fn stats(&self, input: Input) -> &InputStats {
        &self.shared.stats[&input]
    }

    /// Reports published and held back by their own limits.
    pub fn reports(&self) -> (u64, u64) {
        let r = &self.shared.reporter;
        (
            r.published.load(Ordering::Relaxed),
            r.suppressed.load(Ordering::Relaxed),
        )
    }

    /// Open connections over all inputs.
    pub fn connections(&self) -> u32 {
        self.shared.sources.connections()
    }

    /// Stops accepting, lets open connections finish what they read (at most 2 s), closes
    /// everything.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

fn acceptor(tls: &Tls, require: bool) -> Result<TlsAcceptor, String> {
    let mut roots = RootCertStore::empty();
    roots
        .add(tls.ca.clone())
        .map_err(|e| format!("the CA certificate is not usable: {e}"))?;
    let builder = WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        vigil_pki::tls::crypto_provider(),
    );
    let verifier = if require {
        builder.build()
    } else {
        // The certificate is optional for the handshake; admission then asks for the
        // allow-list when there is none.
        builder.allow_unauthenticated().build()
    }
    .map_err(|e| e.to_string())?;
    let config = tls
        .live
        .server_config_mtls(verifier)
        .map_err(|e| e.to_string())?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

impl Shared {
    fn stats(&self, input: Input) -> &InputStats {
        &self.stats[&input]
    }

    fn refused(&self, input: Input, ip: IpAddr, reason: &'static str, why: &str) {
        self.stats(input).refused.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(listener = input.as_str(), %ip, reason, "event source refused");
        let server = self.reporter.server().to_owned();
        self.reporter
            .report(ip, Subject::Refused, input.as_str(), |_| {
                NewEvent::vigil(
                    &server,
                    "security.event_source_refused",
                    Category::Security,
                    Severity::Warning,
                    format!("event source {ip} refused on {}: {why}", input.as_str()),
                )
                .attribute("address", ip.to_string())
                .attribute("listener", input.as_str())
                .attribute("transport", input.transport())
                .attribute("reason", reason)
            });
    }

    fn throttled(&self, input: Input, ip: IpAddr, over: Over) {
        self.stats(input).throttled.fetch_add(1, Ordering::Relaxed);
        let server = self.reporter.server().to_owned();
        let l = &self.settings.limits;
        let limit = match over {
            Over::ConnectionsPerSource => format!(
                "more than {} open connections from one address",
                l.max_connections_per_source
            ),
            Over::Connections => format!("more than {} open connections", l.max_connections),
            Over::Rate => format!(
                "more than {} events/s (burst {})",
                l.rate_per_source, l.burst
            ),
            Over::Sources => "too many senders at once".into(),
        };
        let action = if over == Over::Rate && !input.is_udp() {
            "slowed down"
        } else {
            "dropped"
        };
        self.reporter
            .report(ip, Subject::Throttled, input.as_str(), |_| {
                NewEvent::vigil(
                    &server,
                    "events.source_throttled",
                    Category::System,
                    Severity::Warning,
                    format!("event source {ip} on {}: {limit}; {action}", input.as_str()),
                )
                .attribute("address", ip.to_string())
                .attribute("listener", input.as_str())
                .attribute("limit", over.as_str())
                .attribute("action", action)
            });
    }

    fn input_errors(&self, input: Input, ip: IpAddr, count: u64, kind: &str, first: &str) {
        let server = self.reporter.server().to_owned();
        self.reporter
            .report(ip, Subject::InputErrors, input.as_str(), |_| {
                NewEvent::vigil(
                    &server,
                    "events.input_errors",
                    Category::System,
                    Severity::Notice,
                    format!(
                        "event source {ip} on {}: {count} malformed input(s), first: {first}",
                        input.as_str()
                    ),
                )
                .attribute("address", ip.to_string())
                .attribute("listener", input.as_str())
                .attribute("errors", count.to_string())
                .attribute("error_kind", kind.to_owned())
                .attribute("error", first.to_owned())
            });
    }

    fn syslog_options(&self) -> vigil_syslog::Options {
        vigil_syslog::Options {
            framing: vigil_syslog::Framing::Auto,
            max_message: self.settings.limits.max_message_bytes,
            time: self.settings.time,
        }
    }
}

/// Resolves when the intake is stopping.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn accept_loop(
    shared: Arc<Shared>,
    input: Input,
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
) {
    let mut stop = shared.stop.clone();
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            r = listener.accept() => {
                let (stream, peer) = match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(listener = input.as_str(), error = %e, "accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                let ip = canonical(peer.ip());
                let stats = shared.stats(input);
                stats.accepted.fetch_add(1, Ordering::Relaxed);
                if acceptor.is_none() && !shared.settings.allowed.contains(ip) {
                    shared.refused(input, ip, "not_allow_listed", "plaintext listener, address not in allowed_sources");
                    continue;
                }
                let conn = match shared.sources.open(ip) {
                    Ok(c) => c,
                    Err(over) => {
                        shared.throttled(input, ip, over);
                        continue;
                    }
                };
                conns.spawn(connection(shared.clone(), input, stream, ip, acceptor.clone(), conn));
            }
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(STOP_GRACE, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    conns.abort_all();
}

/// Why a failed handshake is a refused sender (its certificate), if it is.
fn certificate_refusal(e: &io::Error) -> Option<(&'static str, String)> {
    let inner = e.get_ref()?.downcast_ref::<rustls::Error>()?;
    match inner {
        rustls::Error::InvalidCertificate(_) => Some((
            "bad_client_certificate",
            format!("client certificate not accepted ({inner})"),
        )),
        rustls::Error::NoCertificatesPresented => Some((
            "no_client_certificate",
            "no client certificate, and one from the Vigil CA is required".into(),
        )),
        _ => None,
    }
}

/// The subject common name of a certificate.
fn common_name(der: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?;
    (!cn.is_empty()).then(|| cn.to_owned())
}

async fn connection(
    shared: Arc<Shared>,
    input: Input,
    stream: TcpStream,
    ip: IpAddr,
    acceptor: Option<TlsAcceptor>,
    _conn: Connection,
) {
    let _ = stream.set_nodelay(true);
    let stats = shared.stats(input);
    let Some(acceptor) = acceptor else {
        let sender = ip.to_string();
        read_loop(&shared, input, stream, ip, &sender, Auth::AllowList, None).await;
        return;
    };
    let limits = &shared.settings.limits;
    let mut tls =
        match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream)).await {
            Err(_) => {
                stats.handshake_failed.fetch_add(1, Ordering::Relaxed);
                stats.error("tls_handshake_timeout");
                shared.input_errors(
                    input,
                    ip,
                    1,
                    "tls_handshake_timeout",
                    "TLS handshake not completed in time",
                );
                return;
            }
            Ok(Err(e)) => {
                if let Some((reason, why)) = certificate_refusal(&e) {
                    shared.refused(input, ip, reason, &why);
                } else {
                    stats.handshake_failed.fetch_add(1, Ordering::Relaxed);
                    stats.error("tls_handshake");
                    shared.input_errors(
                        input,
                        ip,
                        1,
                        "tls_handshake",
                        &format!("TLS handshake failed: {e}"),
                    );
                }
                return;
            }
            Ok(Ok(s)) => s,
        };
    let (_, conn) = tls.get_ref();
    let certificate = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| common_name(c).unwrap_or_else(|| "(no common name)".into()));
    let auth = match &certificate {
        Some(_) => Auth::Certificate,
        None if !shared.settings.require_client_cert && shared.settings.allowed.contains(ip) => {
            Auth::AllowList
        }
        None => {
            shared.refused(
                input,
                ip,
                "no_client_certificate",
                "no client certificate from the Vigil CA, and the address is not in allowed_sources",
            );
            // A close_notify, so the sender sees a closed connection rather than a reset.
            let _ = tokio::time::timeout(Duration::from_secs(1), tls.shutdown()).await;
            return;
        }
    };
    let sender = match &certificate {
        Some(cn) if cn != "(no common name)" => cn.clone(),
        _ => ip.to_string(),
    };
    read_loop(
        &shared,
        input,
        tls,
        ip,
        &sender,
        auth,
        certificate.as_deref(),
    )
    .await;
}

/// The parser of one stream.
enum Parser {
    Syslog(vigil_syslog::Stream),
    Generic(Lines),
}

/// What a chunk became.
type Outcome = Result<NewEvent, (&'static str, String)>;

impl Parser {
    fn feed(&mut self, shared: &Shared, chunk: &[u8], sender: &Sender<'_>, out: &mut Vec<Outcome>) {
        match self {
            Parser::Syslog(s) => s.feed(chunk, sender.received_us, &shared.map, |r| {
                out.push(r.map_err(|e| (e.kind(), e.to_string())))
            }),
            Parser::Generic(l) => l.feed(chunk, |r| {
                if let Some(o) = generic_outcome(r, sender, &shared.settings.time) {
                    out.push(o);
                }
            }),
        }
    }

    fn finish(&mut self, shared: &Shared, sender: &Sender<'_>, out: &mut Vec<Outcome>) {
        match self {
            Parser::Syslog(s) => {
                if let Some(e) = s.finish() {
                    out.push(Err((e.kind(), e.to_string())));
                }
            }
            Parser::Generic(l) => l.finish(|r| {
                if let Some(o) = generic_outcome(r, sender, &shared.settings.time) {
                    out.push(o);
                }
            }),
        }
    }

    fn must_close(&self) -> bool {
        match self {
            Parser::Syslog(s) => s.must_close(),
            Parser::Generic(_) => false,
        }
    }
}

fn generic_outcome(
    line: Result<&[u8], generic::GenericError>,
    sender: &Sender<'_>,
    time: &vigil_syslog::TimePolicy,
) -> Option<Outcome> {
    match line.and_then(|l| generic::parse(l, sender, time)) {
        Ok(Some(e)) => Some(Ok(e)),
        Ok(None) => None,
        Err(e) => Some(Err((e.kind(), e.to_string()))),
    }
}

/// Reads a connection until it ends, stops, fails or idles, publishing what it sends within
/// its rate.
async fn read_loop<S: AsyncRead + Unpin>(
    shared: &Shared,
    input: Input,
    mut stream: S,
    ip: IpAddr,
    sender_name: &str,
    auth: Auth,
    certificate: Option<&str>,
) {
    let stats = shared.stats(input);
    let limits = &shared.settings.limits;
    let peer = ip.to_string();
    let mut parser = if input.is_syslog() {
        Parser::Syslog(vigil_syslog::Stream::new(
            peer.clone(),
            &shared.syslog_options(),
        ))
    } else {
        Parser::Generic(Lines::new(limits.max_message_bytes))
    };
    let mut stop = shared.stop.clone();
    let mut buf = vec![0u8; READ_CHUNK];
    let mut out: Vec<Outcome> = Vec::new();
    let mut progress = Instant::now();
    let mut errors = 0u64;
    let mut first_error: Option<(&'static str, String)> = None;
    loop {
        let deadline = tokio::time::Instant::from_std(progress + limits.idle_timeout);
        let mut ended = false;
        tokio::select! {
            _ = stopped(&mut stop) => break,
            r = tokio::time::timeout_at(deadline, stream.read(&mut buf)) => match r {
                Err(_) => {
                    stats.timed_out.fetch_add(1, Ordering::Relaxed);
                    stats.error("idle_timeout");
                    errors += 1;
                    first_error.get_or_insert(("idle_timeout", format!(
                        "no complete message within {} s",
                        limits.idle_timeout.as_secs()
                    )));
                    break;
                }
                Ok(Ok(0)) => ended = true,
                Ok(Ok(n)) => {
                    let sender = Sender { name: sender_name, peer: &peer, auth, transport: input.transport(), received_us: now_us() };
                    parser.feed(shared, &buf[..n], &sender, &mut out);
                }
                Ok(Err(e)) => {
                    // A TLS record that does not decrypt, a reset: the stream cannot go on.
                    stats.error("read_failed");
                    errors += 1;
                    first_error.get_or_insert(("read_failed", format!("read failed: {e}")));
                    break;
                }
            }
        }
        if ended {
            let sender = Sender {
                name: sender_name,
                peer: &peer,
                auth,
                transport: input.transport(),
                received_us: now_us(),
            };
            parser.finish(shared, &sender, &mut out);
        }
        let had_output = !out.is_empty();
        for o in out.drain(..) {
            match o {
                Ok(mut event) => {
                    if !admit(shared, input, ip, &mut stop).await {
                        return;
                    }
                    if input.is_syslog() {
                        add_room(&mut event, "auth", auth.as_str());
                        add_room(&mut event, "transport", input.transport());
                        if let Some(cn) = certificate {
                            add_room(&mut event, "certificate", cn);
                        }
                    } else if let Some(cn) = certificate {
                        add_room(&mut event, "certificate", cn);
                    }
                    if !publish_waiting(shared, stats, event, &mut stop).await {
                        return;
                    }
                }
                Err((kind, why)) => {
                    stats.error(kind);
                    errors += 1;
                    first_error.get_or_insert((kind, why));
                }
            }
        }
        if ended || parser.must_close() {
            break;
        }
        // Taken after the sender's bucket let the events through: waiting for it is not
        // the sender's idleness.
        if had_output {
            progress = Instant::now();
        }
    }
    if let Some((kind, first)) = first_error {
        shared.input_errors(input, ip, errors, kind, &first);
    }
}

/// Waits until `ip` may send one more event (the stream is not read meanwhile, so TCP slows
/// the sender down). False: the intake is stopping.
async fn admit(
    shared: &Shared,
    input: Input,
    ip: IpAddr,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    loop {
        match shared.sources.take(ip) {
            Ok(()) => return true,
            Err((over, wait)) => {
                shared.throttled(input, ip, over);
                tokio::select! {
                    _ = stopped(stop) => return false,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// Adds an attribute if the event has room for it (an event keeps at most 32).
fn add_room(event: &mut NewEvent, key: &str, value: &str) {
    if event.attributes.len() < MAX_ATTRIBUTES || event.attributes.contains_key(key) {
        event.attributes.insert(key.to_owned(), value.to_owned());
    }
}

/// How long a stream's event may wait for room on a full event bus before it is dropped (and
/// counted, and reported as `events.dropped`).
const BUS_WAIT: Duration = Duration::from_secs(5);

/// Publishes an event of a TCP or TLS stream; while the bus's queue is full the connection
/// waits (it reads nothing more, so TCP slows the sender down) instead of losing the event,
/// for up to [`BUS_WAIT`]. `false` when the server is stopping.
async fn publish_waiting(
    shared: &Shared,
    stats: &InputStats,
    mut event: NewEvent,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let give_up = Instant::now() + BUS_WAIT;
    let mut pause = Duration::from_millis(1);
    loop {
        match shared.bus.try_publish(event) {
            Ok(None) => {
                stats.events.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            Ok(Some(back)) if Instant::now() < give_up => {
                event = back;
                tokio::select! {
                    _ = stopped(stop) => return false,
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Ok(Some(back)) => {
                publish(shared, stats, back);
                return true;
            }
            Err(e) => {
                stats.error("event_refused");
                tracing::warn!(error = %e, "an event from an input was refused by the bus");
                return true;
            }
        }
    }
}

fn publish(shared: &Shared, stats: &InputStats, event: NewEvent) {
    match shared.bus.publish(event) {
        Ok(()) => {
            stats.events.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            // The parsers keep every limit; this would be a bug, so it is counted and logged.
            stats.error("event_refused");
            tracing::warn!(error = %e, "an event from an input was refused by the bus");
        }
    }
}

async fn udp_loop(shared: Arc<Shared>, input: Input, socket: UdpSocket) {
    let mut stop = shared.stop.clone();
    let stats = shared.stats(input);
    let max = shared.settings.limits.max_message_bytes;
    // One byte more than the largest datagram allowed, to tell a larger one.
    let mut buf = vec![0u8; max + 1];
    let options = shared.syslog_options();
    loop {
        let (n, peer) = tokio::select! {
            _ = stopped(&mut stop) => break,
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(listener = input.as_str(), error = %e, "receive failed");
                    continue;
                }
            }
        };
        let ip = canonical(peer.ip());
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        if !shared.settings.allowed.contains(ip) {
            shared.refused(
                input,
                ip,
                "not_allow_listed",
                "plaintext listener, address not in allowed_sources",
            );
            continue;
        }
        if let Err((over, _)) = shared.sources.take(ip) {
            shared.throttled(input, ip, over);
            continue;
        }
        let received_us = now_us();
        let peer_text = ip.to_string();
        let r: Outcome = if n > max {
            Err((
                "datagram_too_large",
                format!("datagram larger than {max} bytes"),
            ))
        } else if input.is_syslog() {
            let origin = vigil_syslog::Origin {
                peer: &peer_text,
                received_us,
            };
            let mut st = vigil_syslog::Stats::default();
            vigil_syslog::datagram(&buf[..n], &origin, &options, &shared.map, &mut st)
                .map(|mut e| {
                    add_room(&mut e, "auth", Auth::AllowList.as_str());
                    add_room(&mut e, "transport", "udp");
                    e
                })
                .map_err(|e| (e.kind(), e.to_string()))
        } else {
            let d = &buf[..n];
            let d = d.strip_suffix(b"\n").unwrap_or(d);
            let sender = Sender {
                name: &peer_text,
                peer: &peer_text,
                auth: Auth::AllowList,
                transport: "udp",
                received_us,
            };
            match generic::parse(d, &sender, &shared.settings.time) {
                Ok(Some(e)) => Ok(e),
                Ok(None) => continue,
                Err(e) => Err((e.kind(), e.to_string())),
            }
        };
        match r {
            Ok(e) => publish(&shared, stats, e),
            Err((kind, why)) => {
                stats.error(kind);
                shared.input_errors(input, ip, 1, kind, &why);
            }
        }
    }
}
