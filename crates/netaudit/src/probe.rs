//! Network probes of endpoints: TCP reachability, accepted TLS versions, the certificate
//! chain (recorded without validating it, so bad certificates can be judged rather than just
//! refused), and plaintext HTTP/RTSP. Every step has a timeout.
//!
//! Speed matters (the audit must be no slower than `nmap -sT` of the same ports), so the
//! work is laid out to keep waits short and overlapping and to spend little CPU on either
//! side: names are resolved once per host, every endpoint is probed at once (bounded by the
//! open-file limit), TLS work starts only once the TCP connect succeeded, versions and the
//! chain come from hand-built ClientHellos on parallel connections, each sent as soon as its
//! connection is up (see [`crate::tlshello`]; a full rustls handshake only for TLS 1.3-only
//! servers), certificate checks wait until every probe has sent its ClientHellos
//! (`StartGate`), and certificate analysis is done once per distinct chain with one shared
//! trust verifier.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::pki_types::{CertificateDer, ServerName};
use serde::Serialize;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::cert::{self, CertError, CertInfo};
use crate::tlshello::{self, Flight, TLS11, TLS12};
use crate::{Finding, FindingKind, Severity};
use vigil_netpolicy::Endpoint;

/// Settings of the probes.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// Per step (connect, handshake, read).
    pub timeout: Duration,
    /// Endpoints probed at once; 0 (the default) probes every endpoint at once, up to
    /// [`AUTO_CONCURRENCY`]. Always bounded by the open-file limit.
    pub concurrency: usize,
    /// CAs whose certificates count as trusted.
    pub roots: Arc<rustls::RootCertStore>,
    /// Certificates expiring within this time are reported.
    pub expiry_warning: Duration,
    /// SHA-256 fingerprints (hex) an admin pinned: self-signed/untrusted is then accepted.
    pub pinned: Vec<String>,
    /// Also ask which TLS versions besides the negotiated one are accepted.
    pub check_versions: bool,
    /// The audit's notion of now (tests set it; None is the clock).
    pub now: Option<SystemTime>,
}

/// Most endpoints probed at once when [`ProbeOptions::concurrency`] is 0.
pub const AUTO_CONCURRENCY: usize = 1024;

/// File descriptors left for everything but probe sockets (CA files, /proc, stdio, runtime).
const FD_RESERVE: u64 = 64;

impl ProbeOptions {
    pub fn new(roots: rustls::RootCertStore) -> Self {
        Self {
            timeout: Duration::from_secs(3),
            concurrency: 0,
            roots: Arc::new(roots),
            expiry_warning: Duration::from_secs(30 * 86400),
            pinned: Vec::new(),
            check_versions: true,
            now: None,
        }
    }

    /// Trust the system CA bundle (if present) plus the PEM files in `ca_files`.
    pub fn with_ca_files(system_store: bool, ca_files: &[PathBuf]) -> Result<Self, crate::Error> {
        let mut roots = rustls::RootCertStore::empty();
        let mut files: Vec<PathBuf> = ca_files.to_vec();
        if system_store {
            for f in [
                "/etc/ssl/certs/ca-certificates.crt",
                "/etc/pki/tls/certs/ca-bundle.crt",
            ] {
                if std::path::Path::new(f).exists() {
                    files.push(f.into());
                    break;
                }
            }
        }
        for f in &files {
            let certs = load_pem_certs(f)?;
            let explicit = ca_files.contains(f);
            let (added, _ignored) = roots.add_parsable_certificates(certs);
            if explicit && added == 0 {
                return Err(crate::Error::NoCaCertificate { path: f.clone() });
            }
        }
        Ok(Self::new(roots))
    }

    /// Sockets one probe holds at once: the main connection, plus the two version probes.
    fn sockets_per_probe(&self) -> usize {
        if self.check_versions { 3 } else { 1 }
    }

    /// Endpoints probed at once for `n` endpoints: the configured or automatic concurrency,
    /// cut to what the open-file limit allows (raising the soft limit towards the hard one
    /// when the probes need it, as scanners do).
    pub fn effective_concurrency(&self, n: usize) -> usize {
        let wanted = match self.concurrency {
            0 => n.min(AUTO_CONCURRENCY),
            c => c.min(n),
        }
        .max(1);
        let per = self.sockets_per_probe();
        let fds = fd_budget((wanted * per) as u64 + FD_RESERVE).saturating_sub(FD_RESERVE);
        wanted.min((fds as usize / per).max(1))
    }
}

/// The open-file soft limit after trying to raise it to `wanted` (never above the hard
/// limit). Without a readable limit, assumes the common default of 1024.
fn fd_budget(wanted: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass, which lives for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    if lim.rlim_cur < wanted && lim.rlim_max > lim.rlim_cur {
        let raised = libc::rlimit {
            rlim_cur: wanted.min(lim.rlim_max),
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass; raising the soft limit within the
        // hard limit is always permitted and affects only this process.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return raised.rlim_cur;
        }
    }
    lim.rlim_cur
}

/// Reads every certificate of a PEM file.
pub fn load_pem_certs(
    path: &std::path::Path,
) -> Result<Vec<CertificateDer<'static>>, crate::Error> {
    let data = std::fs::read(path).map_err(|source| crate::Error::Io {
        what: "CA file",
        path: path.to_owned(),
        source,
    })?;
    cert::pem_certificates(&data).map_err(|source| crate::Error::NotPem {
        path: path.to_owned(),
        source,
    })
}

/// What a probe saw.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeResult {
    pub endpoint: Endpoint,
    pub reachable: bool,
    pub error: Option<String>,
    /// `HTTP` or `RTSP` when the port answered in plaintext.
    pub plaintext: Option<String>,
    pub tls: Option<TlsResult>,
    /// Where the probe's time went (profiling; not part of the report).
    #[serde(skip)]
    pub timing: Timing,
}

/// Where a probe's time went, in microseconds. Marks are measured from the moment the probe
/// got its concurrency slot; 0 means the step did not run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timing {
    /// Waiting for a concurrency slot.
    pub queued_us: u64,
    /// TCP connect finished (with the first request or ClientHello sent, see
    /// [`crate::tlshello::connect_send`]).
    pub connect_us: u64,
    /// The ClientHello probes (TLS up to 1.2 with the chain, 1.3, up to 1.1) all answered.
    pub versions_us: u64,
    /// The certificate chain was in hand (from the probes, or a rustls handshake for
    /// TLS 1.3-only servers and when version probes are off).
    pub chain_us: u64,
    /// Time spent parsing and judging the certificate chain (0 when another probe of the same
    /// chain had already done it).
    pub cert_us: u64,
    /// The whole probe, slot to result.
    pub total_us: u64,
}

/// TLS facts of an endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct TlsResult {
    pub negotiated: String,
    /// Every version found to be accepted.
    pub versions: Vec<String>,
    pub legacy: Vec<String>,
    pub leaf: Option<CertInfo>,
    /// Why the chain is not trusted (None when trusted).
    pub untrusted: Option<String>,
    #[serde(skip)]
    pub chain: Vec<CertificateDer<'static>>,
}

impl ProbeResult {
    fn target(&self) -> String {
        format!(
            "{} ({}:{})",
            self.endpoint.name, self.endpoint.host, self.endpoint.port
        )
    }

    /// One line for the text report.
    pub fn summary(&self) -> String {
        let t = self.target();
        if !self.reachable {
            return format!(
                "{t}: unreachable ({})",
                self.error.clone().unwrap_or_default()
            );
        }
        match (&self.tls, &self.plaintext) {
            (Some(tls), _) => format!(
                "{t}: TLS {} (accepts {}), certificate {}",
                tls.negotiated,
                tls.versions.join(", "),
                tls.leaf
                    .as_ref()
                    .map(|l| format!(
                        "{} issued by {} sha256 {}",
                        l.subject,
                        l.issuer,
                        &l.sha256[..16]
                    ))
                    .unwrap_or_else(|| "unreadable".into())
            ),
            (None, Some(p)) => format!("{t}: PLAINTEXT {p}"),
            (None, None) => format!(
                "{t}: open, neither TLS nor HTTP/RTSP ({})",
                self.error.clone().unwrap_or_default()
            ),
        }
    }
}

async fn timed<T>(
    d: Duration,
    f: impl std::future::Future<Output = std::io::Result<T>>,
) -> std::io::Result<T> {
    tokio::time::timeout(d, f).await.unwrap_or_else(|_| {
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "timed out",
        ))
    })
}

/// The request of the plaintext probe: HTTP for `http*` endpoints, else RTSP.
fn plaintext_request(ep: &Endpoint) -> String {
    let host = if ep.host.contains(':') {
        format!("[{}]", ep.host)
    } else {
        ep.host.clone()
    };
    if ep.scheme.starts_with("http") {
        format!("HEAD / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
    } else {
        // RTSP servers answer RTSP/1.0; HTTP servers answer an RTSP request with HTTP/1.x 400.
        format!(
            "OPTIONS rtsp://{host}:{}/ RTSP/1.0\r\nCSeq: 1\r\n\r\n",
            ep.port
        )
    }
}

/// Reads the first bytes of the answer to [`plaintext_request`]: `HTTP` or `RTSP` if it is
/// one.
async fn plaintext_answer(mut s: TcpStream, timeout: Duration) -> std::io::Result<Option<String>> {
    timed(timeout, async {
        let mut buf = [0u8; 16];
        let mut got = 0;
        while got < 5 {
            let n = s.read(&mut buf[got..]).await?;
            if n == 0 {
                break;
            }
            got += n;
        }
        Ok(match &buf[..got.min(5)] {
            b"HTTP/" => Some("HTTP".to_string()),
            b"RTSP/" => Some("RTSP".to_string()),
            _ => None,
        })
    })
    .await
}

fn server_name(host: &str) -> ServerName<'static> {
    let h = host.trim_matches(['[', ']']);
    ServerName::try_from(h.to_string())
        .unwrap_or_else(|_| ServerName::try_from("invalid.invalid").expect("static name"))
}

/// What is shared by every probe of one audit.
struct Shared {
    cfg: Arc<rustls::ClientConfig>,
    opts: ProbeOptions,
    trust: cert::TrustChecker,
    /// Verdicts per distinct chain: devices sharing a (factory) certificate are judged once.
    verdicts: Mutex<HashMap<[u8; 32], Arc<tokio::sync::OnceCell<Verdict>>>>,
    gate: StartGate,
}

/// Holds certificate checks back until every probe that may run at once has sent its first
/// packets.
///
/// A check costs CPU only (an ECDSA or RSA verification) and can wait; a connection and its
/// ClientHello cannot without delaying the peer's answer. Left alone, the runtime polls the
/// tasks woken by early answers (and so runs their checks) before probes not yet started,
/// whose peers then answer late. Opening connections first keeps every peer busy while the
/// checks run.
struct StartGate {
    /// Probes yet to send their first packets.
    left: std::sync::atomic::AtomicUsize,
    open: tokio::sync::Notify,
}

struct Arrival<'a>(&'a StartGate);

impl Drop for Arrival<'_> {
    fn drop(&mut self) {
        self.0.arrive();
    }
}

impl StartGate {
    fn new(probes: usize) -> Self {
        Self {
            left: std::sync::atomic::AtomicUsize::new(probes),
            open: tokio::sync::Notify::new(),
        }
    }

    /// A probe has sent its first packets (or finished). Probes started once the gate is
    /// open change nothing.
    fn arrive(&self) {
        use std::sync::atomic::Ordering;
        if self
            .left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| v.checked_sub(1))
            == Ok(1)
        {
            self.open.notify_waiters();
        }
    }

    /// A probe's place at the gate: it arrives when this is dropped, which a panicking probe
    /// does too (the other probes would otherwise wait for it forever).
    fn place(&self) -> Arrival<'_> {
        Arrival(self)
    }

    async fn wait(&self) {
        let opened = self.open.notified();
        let mut opened = std::pin::pin!(opened);
        // Registered before the check, so an opening in between is not missed.
        opened.as_mut().enable();
        if self.left.load(std::sync::atomic::Ordering::Acquire) == 0 {
            return;
        }
        opened.await;
    }
}

/// The parsed leaf and why the chain is not trusted (None when trusted).
type Verdict = (Option<CertInfo>, Option<CertError>);

fn chain_key(chain: &[CertificateDer<'static>]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for c in chain {
        h.update((c.len() as u64).to_be_bytes());
        h.update(c.as_ref());
    }
    h.finalize().into()
}

impl Shared {
    fn judge(&self, chain: &[CertificateDer<'static>], host: &str) -> Verdict {
        match chain.first().map(|c| cert::inspect(c)) {
            Some(Ok(info)) => {
                let untrusted = self.trust.check(chain, host, &info).err();
                (Some(info), untrusted)
            }
            Some(Err(e)) => (None, Some(e)),
            None => (None, Some(CertError::NoCertificate)),
        }
    }

    /// The verdict on a chain, computed by the first probe that presents it.
    async fn verdict(&self, chain: &[CertificateDer<'static>], host: &str) -> (Verdict, bool) {
        let cell = self
            .verdicts
            .lock()
            .expect("verdict map lock is never poisoned")
            .entry(chain_key(chain))
            .or_default()
            .clone();
        let mut computed = false;
        let v = cell
            .get_or_init(|| async {
                computed = true;
                self.judge(chain, host)
            })
            .await
            .clone();
        (v, computed)
    }
}

fn micros(since: Instant) -> u64 {
    since.elapsed().as_micros() as u64
}

async fn probe_one(
    ep: Endpoint,
    addr: Result<SocketAddr, ResolveError>,
    sh: &Shared,
) -> ProbeResult {
    let start = Instant::now();
    let opts = &sh.opts;
    let mut res = ProbeResult {
        endpoint: ep.clone(),
        reachable: false,
        error: None,
        plaintext: None,
        tls: None,
        timing: Timing::default(),
    };
    let addr = match addr {
        Ok(a) => a,
        Err(e) => {
            res.error = Some(e.to_string());
            return res;
        }
    };
    let plaintext_scheme = matches!(ep.scheme.as_str(), "http" | "rtsp");
    let name = server_name(&ep.host);
    let sni = matches!(name, ServerName::DnsName(_)).then(|| ep.host.clone());
    let sni = sni.as_deref();
    // The first bytes go out with the connection: the plaintext request, or the ClientHello
    // offering up to TLS 1.2 (nothing for a rustls handshake, which writes its own).
    let first = if plaintext_scheme {
        plaintext_request(&ep).into_bytes()
    } else if opts.check_versions {
        tlshello::client_hello(TLS12, sni)
    } else {
        Vec::new()
    };
    let conn = tlshello::connect_send(addr, &first, opts.timeout).await;
    res.timing.connect_us = micros(start);
    let (stream, sent) = match conn {
        Ok(c) => c,
        Err(e) => {
            // Closed or filtered: no TLS work at all.
            res.error = Some(e.to_string());
            res.timing.total_us = micros(start);
            return res;
        }
    };
    res.reachable = true;
    if plaintext_scheme {
        match sent {
            Ok(()) => match plaintext_answer(stream, opts.timeout).await {
                Ok(p) => res.plaintext = p,
                Err(e) => res.error = Some(e.to_string()),
            },
            Err(e) => res.error = Some(e.to_string()),
        }
        res.timing.total_us = micros(start);
        return res;
    }
    let mut versions = BTreeSet::new();
    let mut legacy = Vec::new();
    let mut chain: Option<Vec<CertificateDer<'static>>> = None;
    let mut failure = None;
    if opts.check_versions {
        // Hand-built ClientHellos, none completing a handshake, on two connections at once:
        // TLS up to 1.2 on the connection already open (its answer carries the certificate
        // chain in clear, and a TLS 1.3 server marks it with the RFC 8446 downgrade
        // sentinel), and TLS up to 1.1. Only a server that answers up to 1.2 without the
        // sentinel is asked about TLS 1.3 separately (answered by a HelloRetryRequest).
        // Each connection closes as soon as its answer is read: many devices serve one
        // connection at a time, and the next probe waits behind it.
        let classic = async move {
            let mut stream = stream;
            let flight = match sent {
                Ok(()) => tlshello::answer(&mut stream, true, opts.timeout).await,
                Err(e) => Err(e),
            };
            drop(stream);
            let tls13 = match &flight {
                Ok(Flight::Hello {
                    tls13_too: true, ..
                }) => Some(true),
                Ok(Flight::Hello { .. }) => Some(matches!(
                    tlshello::accepts_tls13(addr, sni, opts.timeout).await,
                    Ok(true)
                )),
                // Nothing up to 1.2: a full handshake below tells whether 1.3 is spoken.
                _ => None,
            };
            (flight, tls13)
        };
        let ((classic, tls13), old) = tokio::join!(
            classic,
            tlshello::offer(addr, sni, TLS11, true, opts.timeout),
        );
        res.timing.versions_us = micros(start);
        let mut take = |flight: std::io::Result<Flight>, max: u16| match flight {
            Ok(Flight::Hello {
                version, chain: c, ..
            }) if (0x0300..=max).contains(&version) => {
                versions.insert(version);
                if version < TLS12 {
                    legacy.push(tlshello::version_name(version).to_string());
                }
                if chain.as_ref().is_none_or(Vec::is_empty)
                    && let Some(c) = c
                {
                    chain = Some(c.into_iter().map(CertificateDer::from).collect());
                }
            }
            Ok(Flight::Hello { version, .. }) => {
                failure = Some(format!(
                    "server chose {:#06x}, which was not offered",
                    version
                ));
            }
            Ok(Flight::Alert(a)) => failure = Some(format!("TLS alert {a}")),
            Ok(Flight::NotTls(why)) => failure = Some(why.to_string()),
            Ok(Flight::Partial) => {}
            Err(e) => failure = Some(e.to_string()),
        };
        take(classic, TLS12);
        take(old, TLS11);
        legacy.sort();
        legacy.dedup();
        if tls13 == Some(true) {
            versions.insert(0x0304);
        }
        if chain.is_none() && (tls13.is_none() || !versions.is_empty()) {
            // No answer up to TLS 1.2 (a TLS 1.3-only server, whose certificate travels
            // encrypted, or no TLS at all), or a flight without a certificate in clear:
            // complete a real handshake to get the chain.
            match tlshello::connect_send(addr, &[], opts.timeout).await {
                Ok((s, _)) => match rustls_chain(s, name, sh, opts.timeout).await {
                    Ok((c, v)) => {
                        versions.insert(v);
                        chain = Some(c);
                    }
                    Err(e) => {
                        if versions.is_empty() {
                            failure = Some(e.to_string());
                        }
                    }
                },
                Err(e) => failure = Some(e.to_string()),
            }
        }
    } else {
        match rustls_chain(stream, name, sh, opts.timeout).await {
            Ok((c, v)) => {
                versions.insert(v);
                chain = Some(c);
            }
            Err(e) => failure = Some(e.to_string()),
        }
    }
    if versions.is_empty() {
        res.error = Some(format!(
            "no TLS: {}",
            failure.unwrap_or_else(|| "no answer".into())
        ));
        let request = plaintext_request(&ep);
        if let Ok((s, sent)) = tlshello::connect_send(addr, request.as_bytes(), opts.timeout).await
        {
            let answer = match sent {
                Ok(()) => plaintext_answer(s, opts.timeout).await,
                Err(e) => Err(e),
            };
            match answer {
                Ok(p) => res.plaintext = p,
                Err(e2) => {
                    res.error = Some(format!(
                        "{}; plaintext probe: {e2}",
                        res.error.take().unwrap_or_default()
                    ))
                }
            }
        }
        res.timing.total_us = micros(start);
        return res;
    }
    let chain = chain.unwrap_or_default();
    res.timing.chain_us = micros(start);
    let negotiated = *versions.last().expect("not empty");
    sh.gate.wait().await;
    let t = Instant::now();
    let ((leaf, untrusted), computed) = sh.verdict(&chain, &ep.host).await;
    if computed {
        res.timing.cert_us = micros(t);
    }
    res.tls = Some(TlsResult {
        negotiated: tlshello::version_name(negotiated).into(),
        versions: versions
            .iter()
            .rev()
            .map(|v| tlshello::version_name(*v).to_string())
            .collect(),
        legacy,
        leaf,
        untrusted: untrusted.map(|e| e.to_string()),
        chain,
    });
    res.timing.total_us = micros(start);
    res
}

/// Completes a rustls handshake (TLS 1.3 or 1.2) and returns the chain and the version.
async fn rustls_chain(
    stream: TcpStream,
    name: ServerName<'static>,
    sh: &Shared,
    timeout: Duration,
) -> std::io::Result<(Vec<CertificateDer<'static>>, u16)> {
    let connector = tokio_rustls::TlsConnector::from(sh.cfg.clone());
    let tls = timed(timeout, connector.connect(name, stream)).await?;
    let (_, conn) = tls.get_ref();
    let chain = conn
        .peer_certificates()
        .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default();
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => 0x0304,
        _ => TLS12,
    };
    Ok((chain, version))
}

/// A host name that did not resolve (the endpoint's probe reports it).
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot resolve {host}: {source}")]
pub struct ResolveError {
    host: String,
    source: Arc<std::io::Error>,
}

/// Resolves every distinct host once, concurrently; IP literals need no lookup.
async fn resolve_all(
    endpoints: &[Endpoint],
    timeout: Duration,
) -> HashMap<String, Result<IpAddr, ResolveError>> {
    let mut out = HashMap::new();
    let mut looked_up = std::collections::HashSet::new();
    let mut set = tokio::task::JoinSet::new();
    for ep in endpoints {
        if !looked_up.insert(ep.host.clone()) {
            continue;
        }
        let bare = ep.host.trim_matches(['[', ']']).to_string();
        if let Ok(ip) = bare.parse::<IpAddr>() {
            out.insert(ep.host.clone(), Ok(ip));
            continue;
        }
        let host = ep.host.clone();
        set.spawn(async move {
            let r = timed(timeout, async {
                tokio::net::lookup_host((bare.as_str(), 0))
                    .await?
                    .next()
                    .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))
            })
            .await
            .map(|a| a.ip())
            .map_err(|source| ResolveError {
                host: host.clone(),
                source: Arc::new(source),
            });
            (host, r)
        });
    }
    while let Some(r) = set.join_next().await {
        let (host, r) = r.expect("lookup tasks do not panic");
        out.insert(host, r);
    }
    out
}

/// Results of the probes, filled in by the probe tasks as they finish.
struct Collected {
    slots: Mutex<Vec<Option<ProbeResult>>>,
    /// Probes still running; the last one to finish wakes the collector.
    left: std::sync::atomic::AtomicUsize,
    done: tokio::sync::Notify,
}

/// Counts a probe task as finished when dropped, so that a panicking probe still wakes the
/// collector (which then reports the missing result) instead of leaving it waiting forever.
struct Finished(Arc<Collected>);

impl Drop for Finished {
    fn drop(&mut self) {
        if self
            .0
            .left
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel)
            == 1
        {
            self.0.done.notify_one();
        }
    }
}

/// Aborts the probe tasks (and the task spawning them) when the audit is dropped before they
/// finish, as a JoinSet would. A task registered after that is aborted at once.
#[derive(Clone, Default)]
struct AbortOnDrop(Arc<Mutex<(bool, Vec<tokio::task::AbortHandle>)>>);

impl AbortOnDrop {
    fn push(&self, h: tokio::task::AbortHandle) {
        let mut list = self.0.lock().expect("abort list lock is never poisoned");
        if list.0 {
            h.abort();
        } else {
            list.1.push(h);
        }
    }

    /// Every task finished: nothing to abort.
    fn disarm(&self) {
        self.0
            .lock()
            .expect("abort list lock is never poisoned")
            .1
            .clear();
    }
}

/// Held by `probe_all` only: the launcher's clone must not abort anything when it ends.
struct AbortGuard(AbortOnDrop);

impl Drop for AbortGuard {
    fn drop(&mut self) {
        let mut list = self.0.0.lock().expect("abort list lock is never poisoned");
        list.0 = true;
        for h in list.1.drain(..) {
            h.abort();
        }
    }
}

/// Probes every endpoint, [`ProbeOptions::effective_concurrency`] at once; results keep the
/// input order.
pub async fn probe_all(endpoints: Vec<Endpoint>, opts: &ProbeOptions) -> Vec<ProbeResult> {
    let n = endpoints.len();
    if n == 0 {
        return Vec::new();
    }
    let concurrency = opts.effective_concurrency(n);
    let shared = Arc::new(Shared {
        cfg: crate::tlsclient::client_config(),
        opts: opts.clone(),
        trust: cert::TrustChecker::new(&opts.roots),
        verdicts: Mutex::new(HashMap::new()),
        gate: StartGate::new(concurrency),
    });
    let addrs = resolve_all(&endpoints, opts.timeout).await;
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
    // Each probe stores its result and only the last one wakes this task: waking the
    // collector per probe (as a JoinSet does) costs a thread wake-up and a context switch
    // each when the caller is a `block_on` thread, hundreds per audit.
    let collected = Arc::new(Collected {
        slots: Mutex::new(vec![None; n]),
        left: std::sync::atomic::AtomicUsize::new(n),
        done: tokio::sync::Notify::new(),
    });
    let launch_collected = collected.clone();
    let tasks = AbortGuard(AbortOnDrop::default());
    let launched = tasks.0.clone();
    // The probe tasks are spawned from a task of the runtime rather than from this future,
    // whose caller may be a `block_on` thread: a spawn from outside wakes a sleeping worker
    // each time, one from a worker goes to its local queue.
    let launcher = tokio::spawn(async move {
        for (i, ep) in endpoints.into_iter().enumerate() {
            let sem = sem.clone();
            let shared = shared.clone();
            let finished = Finished(launch_collected.clone());
            let addr = addrs[&ep.host]
                .clone()
                .map(|ip| SocketAddr::new(ip, ep.port));
            let probe = async move {
                let queued = Instant::now();
                let permit = sem
                    .acquire_owned()
                    .await
                    .expect("semaphore is never closed");
                let queued_us = micros(queued);
                // The probe's first poll opens its connections (to a nearby peer it also
                // sends the ClientHellos): then it has arrived at the gate.
                let mut arrival = Some(shared.gate.place());
                let mut probe = std::pin::pin!(probe_one(ep, addr, &shared));
                let mut r = std::future::poll_fn(|cx| {
                    let p = probe.as_mut().poll(cx);
                    arrival.take();
                    p
                })
                .await;
                drop(permit);
                r.timing.queued_us = queued_us;
                finished
                    .0
                    .slots
                    .lock()
                    .expect("result slots lock is never poisoned")[i] = Some(r);
                drop(finished);
            };
            launched.push(tokio::spawn(probe).abort_handle());
        }
    });
    tasks.0.push(launcher.abort_handle());
    launcher.await.expect("the launcher does not panic");
    // notify_one stores a permit when nobody waits yet, so a wake-up is never lost.
    collected.done.notified().await;
    tasks.0.disarm();
    let slots = std::mem::take(
        &mut *collected
            .slots
            .lock()
            .expect("result slots lock is never poisoned"),
    );
    slots
        .into_iter()
        .map(|r| r.expect("a probe task panicked"))
        .collect()
}

fn now_secs(opts: &ProbeOptions) -> i64 {
    opts.now
        .unwrap_or_else(SystemTime::now)
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The calendar date (UTC) of a certificate time in Unix seconds, for messages.
fn day(ts: i64) -> String {
    x509_parser::time::ASN1Time::from_timestamp(ts)
        .map(|t| t.to_datetime().date().to_string())
        .unwrap_or_else(|_| format!("{ts} s after the Unix epoch"))
}

/// Turns probe results into findings, including certificates shared by several devices.
pub fn analyze(results: &[ProbeResult], opts: &ProbeOptions) -> Vec<Finding> {
    let now = now_secs(opts);
    let warn = opts.expiry_warning.as_secs() as i64;
    let mut out = Vec::new();
    let mut by_cert: HashMap<&str, Vec<&ProbeResult>> = HashMap::new();
    for r in results {
        let target = r.target();
        let mut f = |severity, kind, message: String| {
            out.push(Finding {
                severity,
                kind,
                target: target.clone(),
                message,
            })
        };
        if !r.reachable {
            f(
                Severity::Info,
                FindingKind::Unreachable,
                format!("not reachable: {}", r.error.clone().unwrap_or_default()),
            );
            continue;
        }
        match r.plaintext.as_deref() {
            Some("HTTP") => f(
                Severity::High,
                FindingKind::PlaintextHttp,
                "offers plaintext HTTP: passwords and video cross the network in clear; enable HTTPS and turn HTTP off".into(),
            ),
            Some("RTSP") => f(
                Severity::High,
                FindingKind::PlaintextRtsp,
                "offers plaintext RTSP: stream credentials and video cross the network in clear; use RTSPS".into(),
            ),
            _ => {}
        }
        let wants_tls = matches!(r.endpoint.scheme.as_str(), "https" | "rtsps" | "tls");
        let Some(tls) = &r.tls else {
            if wants_tls && r.plaintext.is_none() {
                f(
                    Severity::High,
                    FindingKind::NoTls,
                    format!(
                        "configured as {} but no TLS handshake succeeded ({})",
                        r.endpoint.scheme,
                        r.error.clone().unwrap_or_default()
                    ),
                );
            }
            continue;
        };
        if !tls.legacy.is_empty() {
            f(
                Severity::High,
                FindingKind::LegacyTls,
                format!(
                    "accepts {}; allow TLS 1.2 and 1.3 only",
                    tls.legacy.join(" and ")
                ),
            );
        }
        let Some(leaf) = &tls.leaf else {
            f(
                Severity::High,
                FindingKind::UntrustedIssuer,
                tls.untrusted
                    .clone()
                    .unwrap_or_else(|| "no certificate".into()),
            );
            continue;
        };
        by_cert.entry(leaf.sha256.as_str()).or_default().push(r);
        if leaf.not_after < now {
            f(
                Severity::High,
                FindingKind::CertExpired,
                format!("certificate expired on {}; renew it", day(leaf.not_after)),
            );
        } else if leaf.not_after - now < warn {
            f(
                Severity::Medium,
                FindingKind::CertExpiring,
                format!(
                    "certificate expires on {} (in {} days); renew it",
                    day(leaf.not_after),
                    (leaf.not_after - now) / 86400
                ),
            );
        }
        if leaf.not_before > now {
            f(
                Severity::High,
                FindingKind::CertNotYetValid,
                format!(
                    "certificate is valid only from {}; check the device clock",
                    day(leaf.not_before)
                ),
            );
        }
        let pinned = opts
            .pinned
            .iter()
            .any(|p| p.eq_ignore_ascii_case(&leaf.sha256));
        if !pinned {
            if leaf.self_signed {
                f(
                    Severity::High,
                    FindingKind::SelfSigned,
                    format!(
                        "self-signed certificate ({}): it cannot prove the device's identity; have the device's CSR signed by the system CA, or pin sha256 {}",
                        leaf.subject, leaf.sha256
                    ),
                );
            } else if let Some(why) = &tls.untrusted {
                f(
                    Severity::High,
                    FindingKind::UntrustedIssuer,
                    format!("certificate issued by {}: {why}", leaf.issuer),
                );
            }
        }
        if !leaf.matches_host(&r.endpoint.host) {
            f(
                Severity::High,
                FindingKind::NameMismatch,
                format!(
                    "certificate names {} but the device is reached as {}",
                    leaf.names_text(),
                    r.endpoint.host
                ),
            );
        }
        if let Some(bits) = leaf.rsa_bits
            && bits < 2048
        {
            f(
                Severity::High,
                FindingKind::WeakKey,
                format!("RSA key of {bits} bits; use at least 2048 bits (or P-256)"),
            );
        }
        if leaf.signature_algorithm.contains("SHA1")
            || leaf.signature_algorithm.contains("md5")
            || leaf.signature_algorithm.contains("sha1")
        {
            f(
                Severity::Medium,
                FindingKind::WeakSignature,
                format!("certificate signed with {}", leaf.signature_algorithm),
            );
        }
    }
    for (fp, rs) in by_cert {
        // Ports of one device (Vigil's own listeners) count once: one server presenting its
        // certificate on several ports is not a shared certificate.
        let distinct: BTreeSet<(&str, u16)> = rs
            .iter()
            .map(|r| match &r.endpoint.device {
                Some(device) => (device.as_str(), 0),
                None => (r.endpoint.host.as_str(), r.endpoint.port),
            })
            .collect();
        if distinct.len() < 2 {
            continue;
        }
        let names: Vec<String> = rs.iter().map(|r| r.target()).collect();
        for r in &rs {
            out.push(Finding {
                severity: Severity::High,
                kind: FindingKind::SharedCertificate,
                target: r.target(),
                message: format!(
                    "{} devices present the same certificate (sha256 {fp}), e.g. a factory default: {}; give each device its own key and certificate",
                    distinct.len(),
                    names.join(", ")
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn start_gate_opens_once_every_probe_arrived() {
        let gate = Arc::new(StartGate::new(2));
        let waiter = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.wait().await })
        };
        tokio::task::yield_now().await;
        drop(gate.place());
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "one of two probes has not arrived");
        drop(gate.place());
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the gate opens")
            .unwrap();
        // Probes started after the gate opened neither close it nor wait.
        drop(gate.place());
        tokio::time::timeout(Duration::from_secs(5), gate.wait())
            .await
            .expect("an open gate does not block");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_the_audit_aborts_its_probes() {
        use std::io::Read;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut opts = ProbeOptions::new(rustls::RootCertStore::empty());
        opts.timeout = Duration::from_secs(60);
        let eps = vec![Endpoint::new("silent", "127.0.0.1", port, "https")];
        // The peer never answers: the audit is given up long before its timeout.
        let r = tokio::time::timeout(Duration::from_millis(300), probe_all(eps, &opts)).await;
        assert!(r.is_err());
        // The aborted probe drops its connection (a reset) now, not after 60 s.
        let (mut peer, _) = listener.accept().unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 1024];
        loop {
            match peer.read(&mut buf) {
                Ok(0) => panic!("expected a reset, got a FIN"),
                Ok(_) => continue,
                Err(e) => {
                    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
                    break;
                }
            }
        }
    }

    #[test]
    fn civil_dates() {
        assert_eq!(day(0), "1970-01-01");
        assert_eq!(day(951_782_400), "2000-02-29");
        assert_eq!(day(1_767_225_600), "2026-01-01");
    }
}
