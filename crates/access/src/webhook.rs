//! The webhook alert sink (alerts go to the log and to a configurable webhook): every
//! intrusion [`Alert`] is POSTed as JSON to an HTTPS URL, signed with HMAC-SHA256 so the
//! receiver can tell it came from this Vigil.
//!
//! This module owns the webhook settings and their validation, the JSON payload, the
//! signature and the delivery thread. [`WebhookSink::send`] runs on the login path, so it only
//! pushes onto a bounded queue (a full queue drops the alert and counts it); one background
//! thread does the HTTP work with a bounded number of retries.
//!
//! Security defaults:
//! - HTTPS only (TLS 1.2 or 1.3, rustls with the aws-lc-rs provider: the binary links no
//!   `ring`); plain `http://` only with `allow_plaintext_http`.
//! - The server certificate must chain to a system root CA or to one of `ca_pem` (the Vigil CA
//!   or the customer's own CA). Redirects are not followed, environment proxies are not used.
//! - Credentials never sit in the URL (`user:pass@` is refused); the receiver authenticates
//!   the sender by the `X-Vigil-Signature: sha256=<hex>` header, an HMAC-SHA256 over the exact
//!   body with the shared `secret`.
//! - Logs name only the origin (`https://host:port`), never the path, query or secret, since
//!   many webhook services put their token in the path.
//!
//! Payload (`Content-Type: application/json`):
//! ```json
//! {"type":"vigil.intrusion_alert","version":1,"address":"192.0.2.7","failures":10,
//!  "first":"2024-05-01T10:00:00.000Z","last":"2024-05-01T10:03:12.412Z",
//!  "usernames":["admin","root"],"blocked":true,"blocked_until":null,
//!  "allow_listed":false,"server":"vigil-hq"}
//! ```
//! `blocked_until` is null for "until restart" (or when not blocked); `server` is null when no
//! name is configured.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use ureq::http::Uri;

use crate::ids::{Alert, AlertSink};

/// Alerts waiting for delivery at most; more are dropped (and counted) rather than stalling
/// logins or growing without bound during a flood.
pub const WEBHOOK_QUEUE_CAPACITY: usize = 256;

/// Tries per alert: the first attempt plus one retry per entry of the backoff.
pub const WEBHOOK_MAX_ATTEMPTS: u32 = 4;

/// Pause before retry 1, 2, 3.
const BACKOFF: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];

/// The header carrying `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Vigil-Signature";

/// The payload's `type`.
pub const PAYLOAD_TYPE: &str = "vigil.intrusion_alert";

/// The payload's `version`; bumped only for incompatible changes.
pub const PAYLOAD_VERSION: u32 = 1;

const MAX_URL_LEN: usize = 2048;
const MIN_SECRET_LEN: usize = 16;
const MAX_SECRET_LEN: usize = 1024;
const MAX_TIMEOUT: Duration = Duration::from_secs(120);
const MAX_SERVER_NAME_LEN: usize = 128;

/// Where and how alerts are POSTed.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// `https://host[:port]/path[?query]`. No `user:pass@`: authenticate with `secret`.
    pub url: String,
    /// Extra trusted CA certificate(s) in PEM (e.g. the Vigil CA or the customer's), in
    /// addition to the system roots.
    pub ca_pem: Option<String>,
    /// HMAC-SHA256 key (at least 16 characters): each request carries
    /// `X-Vigil-Signature: sha256=<hex>` over the exact body. Never logged.
    pub secret: Option<String>,
    /// Upper bound on one delivery attempt (connect, TLS, request and response). Default 10 s.
    pub timeout: Duration,
    /// Accept `http://` URLs (the alert then crosses the network readable and forgeable).
    /// Default false.
    pub allow_plaintext_http: bool,
    /// Sent as `server` in the payload so a receiver serving several sites can tell them
    /// apart. Default none.
    pub server_name: Option<String>,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            url: String::new(),
            ca_pem: None,
            secret: None,
            timeout: Duration::from_secs(10),
            allow_plaintext_http: false,
            server_name: None,
        }
    }
}

impl fmt::Debug for WebhookConfig {
    /// Shows only the URL's origin and whether a secret is set: the path, query and secret
    /// may be credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &redact_url(&self.url))
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<pem>"))
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("allow_plaintext_http", &self.allow_plaintext_http)
            .field("server_name", &self.server_name)
            .finish()
    }
}

/// A webhook setting that cannot be used, or a sink that could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook URL is empty; set it to the receiver's https:// URL")]
    UrlEmpty,
    #[error("webhook URL is longer than {MAX_URL_LEN} characters; use a shorter URL")]
    UrlTooLong,
    #[error(
        "webhook URL {url:?} is not a valid absolute URL ({reason}); write e.g. https://siem.example.com/hooks/vigil"
    )]
    UrlInvalid { url: String, reason: String },
    #[error(
        "webhook URL {url:?} uses plain http://, which lets anyone on the path read and forge alerts; use https://, or set allow_plaintext_http only for a receiver on a trusted network"
    )]
    PlaintextHttp { url: String },
    #[error("webhook URL scheme {scheme:?} is not supported; use https://")]
    UnsupportedScheme { scheme: String },
    #[error(
        "webhook URL {url:?} contains credentials (user:password@); secrets must not sit in URLs, which end up in logs; remove them and set the webhook secret so the receiver checks the X-Vigil-Signature header"
    )]
    CredentialsInUrl { url: String },
    #[error("webhook URL {url:?} has an invalid host {host:?}; use a DNS name or an IP address")]
    InvalidHost { url: String, host: String },
    #[error("webhook URL {url:?} has a #fragment, which is never sent; remove it")]
    Fragment { url: String },
    #[error(
        "webhook CA certificate (ca_pem) is not valid PEM ({reason}); paste the CA certificate as -----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----"
    )]
    CaPemInvalid { reason: String },
    #[error(
        "webhook CA certificate (ca_pem) contains no certificate; paste the CA certificate as -----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----"
    )]
    CaPemEmpty,
    #[error(
        "webhook CA certificate (ca_pem) contains a private key; give only the CA certificate and keep the key secret (consider it exposed)"
    )]
    CaPemHasPrivateKey,
    #[error(
        "webhook CA certificate {index} in ca_pem is not a usable X.509 CA certificate ({reason}); check that it is the CA certificate, not a request or a key"
    )]
    CaCertInvalid { index: usize, reason: String },
    #[error(
        "webhook secret is {len} characters; use at least {MIN_SECRET_LEN} (e.g. the output of `openssl rand -hex 32`)"
    )]
    SecretTooShort { len: usize },
    #[error("webhook secret is longer than {MAX_SECRET_LEN} characters; use a shorter random key")]
    SecretTooLong,
    #[error("webhook timeout {0:?} is out of range; use 1 second to 2 minutes (default 10 s)")]
    Timeout(Duration),
    #[error(
        "webhook server name {0:?} is invalid; use 1 to {MAX_SERVER_NAME_LEN} characters without control characters"
    )]
    ServerName(String),
    #[error(
        "no trusted CA certificates for the webhook: the system store is empty or unreadable ({0}); install the ca-certificates package or set ca_pem to the receiver's CA"
    )]
    NoRoots(String),
    #[error("could not start the webhook delivery thread: {0}")]
    Thread(String),
}

/// A URL as it may be shown in errors: its origin only, since the path and query of webhook
/// URLs often carry a token.
fn redact_url(url: &str) -> String {
    match url.parse::<Uri>() {
        Ok(u) => match (u.scheme_str(), u.host()) {
            (Some(s), Some(h)) => match u.port_u16() {
                Some(p) => format!("{s}://{h}:{p}/…"),
                None => format!("{s}://{h}/…"),
            },
            _ => "<invalid URL>".to_owned(),
        },
        Err(_) => "<invalid URL>".to_owned(),
    }
}

/// A URL with credentials shown without them.
fn strip_userinfo(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(i), Some(at)) if at > i => format!("{}<credentials removed>@…", &url[..i + 3]),
        _ => redact_url(url),
    }
}

impl WebhookConfig {
    /// A config for `url` with the defaults (HTTPS only, 10 s timeout, no secret).
    pub fn new(url: impl Into<String>) -> Self {
        WebhookConfig {
            url: url.into(),
            ..WebhookConfig::default()
        }
    }

    /// Checks every setting, including that `ca_pem` holds usable certificates.
    pub fn validate(&self) -> Result<(), WebhookError> {
        self.parse_url()?;
        self.extra_roots()?;
        if let Some(s) = &self.secret {
            let len = s.chars().count();
            if len < MIN_SECRET_LEN {
                return Err(WebhookError::SecretTooShort { len });
            }
            if s.len() > MAX_SECRET_LEN {
                return Err(WebhookError::SecretTooLong);
            }
        }
        if self.timeout < Duration::from_secs(1) || self.timeout > MAX_TIMEOUT {
            return Err(WebhookError::Timeout(self.timeout));
        }
        if let Some(n) = &self.server_name
            && (n.is_empty() || n.len() > MAX_SERVER_NAME_LEN || n.chars().any(char::is_control))
        {
            return Err(WebhookError::ServerName(
                n.chars().take(MAX_SERVER_NAME_LEN).collect(),
            ));
        }
        Ok(())
    }

    fn parse_url(&self) -> Result<Uri, WebhookError> {
        let raw = self.url.trim();
        if raw.is_empty() {
            return Err(WebhookError::UrlEmpty);
        }
        if raw.len() > MAX_URL_LEN {
            return Err(WebhookError::UrlTooLong);
        }
        // Checked before parsing so that no error message ever echoes the credentials.
        let authority_end = raw
            .find("://")
            .map(|i| {
                let rest = &raw[i + 3..];
                i + 3 + rest.find(['/', '?', '#']).unwrap_or(rest.len())
            })
            .unwrap_or(raw.len());
        if raw[..authority_end].contains('@') {
            return Err(WebhookError::CredentialsInUrl {
                url: strip_userinfo(raw),
            });
        }
        let shown = redact_url(raw);
        if raw.contains('#') {
            return Err(WebhookError::Fragment { url: shown });
        }
        let uri: Uri =
            raw.parse()
                .map_err(|e: ureq::http::uri::InvalidUri| WebhookError::UrlInvalid {
                    url: shown.clone(),
                    reason: e.to_string(),
                })?;
        let scheme = uri.scheme_str().ok_or_else(|| WebhookError::UrlInvalid {
            url: shown.clone(),
            reason: "no scheme".into(),
        })?;
        match scheme.to_ascii_lowercase().as_str() {
            "https" => {}
            "http" if self.allow_plaintext_http => {}
            "http" => return Err(WebhookError::PlaintextHttp { url: shown }),
            other => {
                return Err(WebhookError::UnsupportedScheme {
                    scheme: other.chars().take(16).collect(),
                });
            }
        }
        let host = uri.host().unwrap_or("");
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if bare.is_empty() || ServerName::try_from(bare).is_err() {
            return Err(WebhookError::InvalidHost {
                url: shown,
                host: host.chars().take(64).collect(),
            });
        }
        if uri.port_u16() == Some(0) {
            return Err(WebhookError::UrlInvalid {
                url: shown,
                reason: "port 0".into(),
            });
        }
        Ok(uri)
    }

    /// The certificates of `ca_pem`, each checked to be a usable trust anchor.
    fn extra_roots(&self) -> Result<Vec<CertificateDer<'static>>, WebhookError> {
        let Some(pem) = &self.ca_pem else {
            return Ok(Vec::new());
        };
        if pem.contains("PRIVATE KEY-----") {
            return Err(WebhookError::CaPemHasPrivateKey);
        }
        let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| WebhookError::CaPemInvalid {
                reason: e.to_string(),
            })?;
        if certs.is_empty() {
            return Err(WebhookError::CaPemEmpty);
        }
        for (i, c) in certs.iter().enumerate() {
            rustls::RootCertStore::empty().add(c.clone()).map_err(|e| {
                WebhookError::CaCertInvalid {
                    index: i + 1,
                    reason: e.to_string(),
                }
            })?;
        }
        Ok(certs)
    }
}

/// The JSON body POSTed for `alert`.
pub fn alert_payload(alert: &Alert, server_name: Option<&str>) -> serde_json::Value {
    serde_json::json!({
        "type": PAYLOAD_TYPE,
        "version": PAYLOAD_VERSION,
        "address": alert.addr.to_string(),
        "failures": alert.failures,
        "first": alert.first.to_string(),
        "last": alert.last.to_string(),
        "usernames": alert.usernames,
        "blocked": alert.blocked,
        "blocked_until": alert.blocked_until.map(|t| t.to_string()),
        "allow_listed": alert.allow_listed,
        "server": server_name,
    })
}

/// The `X-Vigil-Signature` value for `body`: `sha256=` and the lowercase hex HMAC-SHA256.
pub fn signature_header_value(secret: &[u8], body: &[u8]) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    format!(
        "sha256={}",
        hex::encode(aws_lc_rs::hmac::sign(&key, body).as_ref())
    )
}

/// Delivery counters since the sink started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookStats {
    /// Alerts the receiver accepted (2xx).
    pub sent: u64,
    /// Alerts given up on: retries exhausted, refused permanently (TLS failure, 4xx, 3xx), or
    /// abandoned mid-retry at shutdown.
    pub failed: u64,
    /// Alerts never tried: the queue was full, or the sink was shut down.
    pub dropped: u64,
    /// HTTP attempts made, retries included.
    pub attempts: u64,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    attempts: AtomicU64,
    /// Set while alerts are being dropped, so a flood logs one line per overflow episode
    /// rather than one per alert.
    overflowing: AtomicBool,
}

/// One queued delivery: the JSON body and what it is about, for log lines (an alert's
/// address, a rule's name).
struct Item {
    payload: serde_json::Value,
    about: String,
}

struct Queue {
    alerts: VecDeque<Item>,
    stopping: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    counters: Counters,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleeps up to `d`; returns early (true) when the sink is shutting down.
    fn pause(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let mut q = self.lock();
        while !q.stopping {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            q = self
                .wake
                .wait_timeout(q, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

/// Timings that tests shorten; production uses [`Tuning::default`].
#[derive(Debug, Clone)]
pub(crate) struct Tuning {
    /// Pause before each retry; its length plus one is the number of attempts.
    pub backoff: Vec<Duration>,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            backoff: BACKOFF.to_vec(),
        }
    }
}

/// An [`AlertSink`] that POSTs alerts to a webhook from a background thread.
///
/// Worst case per alert: [`WEBHOOK_MAX_ATTEMPTS`] × `timeout` plus 7 s of backoff. Dropping
/// the sink (or [`WebhookSink::shutdown`]) stops the thread within `timeout` + 1 s.
pub struct WebhookSink {
    shared: Arc<Shared>,
    server_name: Option<String>,
    worker: Mutex<Option<(JoinHandle<()>, std::sync::mpsc::Receiver<()>)>>,
    timeout: Duration,
    origin: String,
}

impl fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSink")
            .field("origin", &self.origin)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl WebhookSink {
    /// Validates `config`, loads the system root CAs plus `ca_pem`, and starts the delivery
    /// thread. Nothing is sent until the first alert.
    pub fn start(config: WebhookConfig) -> Result<WebhookSink, WebhookError> {
        Self::start_tuned(config, Tuning::default())
    }

    pub(crate) fn start_tuned(
        config: WebhookConfig,
        tuning: Tuning,
    ) -> Result<WebhookSink, WebhookError> {
        config.validate()?;
        let uri = config.parse_url()?;
        let agent = build_agent(&config)?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                alerts: VecDeque::with_capacity(WEBHOOK_QUEUE_CAPACITY),
                stopping: false,
            }),
            wake: Condvar::new(),
            counters: Counters::default(),
        });
        let origin = redact_url(&config.url);
        let worker = Worker {
            shared: shared.clone(),
            agent,
            uri,
            origin: origin.clone(),
            secret: config.secret.clone().map(String::into_bytes),
            backoff: tuning.backoff,
        };
        // The thread logs through whatever subscriber the starting thread uses.
        let dispatch = tracing::dispatcher::get_default(|d| d.clone());
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("vigil-webhook".into())
            .spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || worker.run());
                let _ = done_tx.send(());
            })
            .map_err(|e| WebhookError::Thread(e.to_string()))?;
        Ok(WebhookSink {
            shared,
            server_name: config.server_name.clone(),
            worker: Mutex::new(Some((handle, done_rx))),
            timeout: config.timeout,
            origin,
        })
    }

    pub fn stats(&self) -> WebhookStats {
        let c = &self.shared.counters;
        WebhookStats {
            sent: c.sent.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            attempts: c.attempts.load(Ordering::Relaxed),
        }
    }

    /// Alerts waiting in the queue (not counting one being delivered).
    pub fn queued(&self) -> usize {
        self.shared.lock().alerts.len()
    }

    /// Stops the delivery thread: no new attempts or retries start, queued alerts are counted
    /// as dropped. Waits at most `timeout` + 1 s for an attempt in flight, then lets the thread
    /// finish on its own. Idempotent; also done on drop.
    pub fn shutdown(&self) {
        let worker = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some((handle, done)) = worker else {
            return;
        };
        {
            let mut q = self.shared.lock();
            q.stopping = true;
            let left = q.alerts.len() as u64;
            q.alerts.clear();
            self.shared
                .counters
                .dropped
                .fetch_add(left, Ordering::Relaxed);
            if left > 0 {
                tracing::warn!(target: "vigil::ids", webhook = %self.origin, count = left,
                    "webhook shutting down; undelivered alerts dropped");
            }
        }
        self.shared.wake.notify_all();
        match done.recv_timeout(self.timeout + Duration::from_secs(1)) {
            Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let _ = handle.join();
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                tracing::warn!(target: "vigil::ids", webhook = %self.origin,
                    "webhook delivery still in progress at shutdown; not waiting for it");
            }
        }
    }
}

impl WebhookSink {
    /// Queues any JSON `payload` (a rule's match, docs/rules-and-alarms.md) for the same
    /// signed delivery as alerts; returns at once, a full queue drops it and counts it.
    pub fn send_payload(&self, payload: serde_json::Value) {
        let about = payload
            .get("rule")
            .and_then(|r| r.as_str())
            .map_or_else(|| "payload".to_owned(), |r| format!("rule {r}"));
        self.enqueue(Item { payload, about });
    }

    fn enqueue(&self, item: Item) {
        let mut q = self.shared.lock();
        if q.stopping || q.alerts.len() >= WEBHOOK_QUEUE_CAPACITY {
            let stopping = q.stopping;
            drop(q);
            let c = &self.shared.counters;
            let n = c.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if !c.overflowing.swap(true, Ordering::Relaxed) {
                let why = if stopping {
                    "webhook sink is shut down; alerts are not sent"
                } else {
                    "webhook queue full; alerts dropped until it drains (they are still in the log)"
                };
                tracing::error!(target: "vigil::ids", webhook = %self.origin,
                    about = %item.about, dropped_total = n, "{why}");
            }
            return;
        }
        q.alerts.push_back(item);
        drop(q);
        self.shared
            .counters
            .overflowing
            .store(false, Ordering::Relaxed);
        self.shared.wake.notify_one();
    }
}

impl AlertSink for WebhookSink {
    /// Queues the alert and returns at once; never waits for the network.
    fn send(&self, alert: &Alert) {
        self.enqueue(Item {
            payload: alert_payload(alert, self.server_name.as_deref()),
            about: alert.addr.to_string(),
        });
    }
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The HTTP agent: rustls with the aws-lc-rs provider (TLS 1.2/1.3), roots = system store +
/// `ca_pem`, no redirects, no proxy from the environment, one attempt bounded by `timeout`.
fn build_agent(config: &WebhookConfig) -> Result<ureq::Agent, WebhookError> {
    use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};
    let extra = config.extra_roots()?;
    let native = rustls_native_certs::load_native_certs();
    if native.certs.is_empty() && extra.is_empty() {
        let why = native
            .errors
            .first()
            .map_or_else(|| "no certificates found".to_owned(), |e| e.to_string());
        return Err(WebhookError::NoRoots(why));
    }
    if !native.errors.is_empty() {
        tracing::debug!(target: "vigil::ids", errors = native.errors.len(),
            "some system CA certificates could not be loaded");
    }
    let roots: Vec<Certificate<'static>> = native
        .certs
        .iter()
        .chain(extra.iter())
        .map(|c| Certificate::from_der(c.as_ref()).to_owned())
        .collect();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(provider)
        .root_certs(RootCerts::new_with_certs(&roots))
        .build();
    Ok(ureq::Agent::config_builder()
        .tls_config(tls)
        .https_only(!config.allow_plaintext_http)
        .proxy(None)
        // A redirect could lead the signed alert to another host or down to http.
        .max_redirects(0)
        .max_redirects_will_error(false)
        .http_status_as_error(false)
        .timeout_global(Some(config.timeout))
        .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent())
}

/// How one attempt ended.
enum Outcome {
    Delivered,
    /// Worth another try (network, timeout, 5xx, 408, 429).
    Transient(String),
    /// Will fail the same way again (TLS/certificate, other 4xx, 3xx).
    Permanent(String),
}

struct Worker {
    shared: Arc<Shared>,
    agent: ureq::Agent,
    uri: Uri,
    origin: String,
    secret: Option<Vec<u8>>,
    backoff: Vec<Duration>,
}

impl Worker {
    fn run(&self) {
        loop {
            let alert = {
                let mut q = self.shared.lock();
                loop {
                    if q.stopping {
                        return;
                    }
                    if let Some(a) = q.alerts.pop_front() {
                        break a;
                    }
                    q = self.shared.wake.wait(q).unwrap_or_else(|e| e.into_inner());
                }
            };
            self.deliver(&alert);
        }
    }

    fn deliver(&self, item: &Item) {
        let body = item.payload.to_string();
        let signature = self
            .secret
            .as_ref()
            .map(|s| signature_header_value(s, body.as_bytes()));
        let counters = &self.shared.counters;
        let mut attempt = 0usize;
        loop {
            attempt += 1;
            counters.attempts.fetch_add(1, Ordering::Relaxed);
            let (why, permanent) = match self.post(&body, signature.as_deref()) {
                Outcome::Delivered => {
                    counters.sent.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(target: "vigil::ids", webhook = %self.origin,
                        about = %item.about, attempt, "alert delivered to webhook");
                    return;
                }
                Outcome::Transient(why) => (why, false),
                Outcome::Permanent(why) => (why, true),
            };
            let retry_in = self.backoff.get(attempt - 1).copied();
            match retry_in {
                Some(d) if !permanent => {
                    tracing::warn!(target: "vigil::ids", webhook = %self.origin,
                        about = %item.about, attempt, error = %why,
                        "webhook delivery failed; retrying in {d:?}");
                    if self.shared.pause(d) {
                        counters.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(target: "vigil::ids", webhook = %self.origin,
                            about = %item.about, attempt, error = %why,
                            "webhook delivery abandoned at shutdown");
                        return;
                    }
                }
                _ => {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(target: "vigil::ids", webhook = %self.origin,
                        about = %item.about, attempts = attempt, error = %why,
                        "webhook delivery failed; alert not delivered (it is still in the log)");
                    return;
                }
            }
        }
    }

    fn post(&self, body: &str, signature: Option<&str>) -> Outcome {
        let mut req = self
            .agent
            .post(self.uri.clone())
            .header("Content-Type", "application/json");
        if let Some(sig) = signature {
            req = req.header(SIGNATURE_HEADER, sig);
        }
        match req.send(body) {
            Ok(resp) => {
                let status = resp.status().as_u16();
                match status {
                    200..=299 => Outcome::Delivered,
                    408 | 429 | 500..=599 => {
                        Outcome::Transient(format!("receiver answered HTTP {status}"))
                    }
                    300..=399 => Outcome::Permanent(format!(
                        "receiver answered HTTP {status} (a redirect, which is not followed); configure the final URL"
                    )),
                    _ => Outcome::Permanent(format!("receiver answered HTTP {status}")),
                }
            }
            Err(e) => classify(&e, &self.uri),
        }
    }
}

/// Sorts a transport error into retry or give up, worded without the URL's path or query.
fn classify(e: &ureq::Error, uri: &Uri) -> Outcome {
    let tls = tls_error(e);
    let text = match &tls {
        Some(t) => format!("TLS: {t}"),
        None => match e {
            ureq::Error::BadUri(_) => "invalid URL".to_owned(),
            other => other.to_string(),
        },
    };
    // Belt and braces: never let the full URL (path, query) into a log line.
    let full = uri.to_string();
    let pq = uri.path_and_query().map(|p| p.as_str()).unwrap_or("");
    let mut text = text.replace(&full, "<url>");
    if pq.len() > 1 {
        text = text.replace(pq, "/…");
    }
    if tls.is_some() {
        Outcome::Permanent(text)
    } else {
        Outcome::Transient(text)
    }
}

/// The rustls error behind `e`, if the failure was in TLS (e.g. an untrusted certificate).
fn tls_error(e: &ureq::Error) -> Option<String> {
    match e {
        ureq::Error::Rustls(r) => Some(r.to_string()),
        ureq::Error::Tls(t) => Some((*t).to_owned()),
        ureq::Error::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .map(|r| r.to_string()),
        _ => None,
    }
}
