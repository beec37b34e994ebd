//! vigil-mail: alarm e-mail. A [`MailSink`] takes messages into a bounded queue and one
//! thread sends them through the configured SMTP server, always over TLS with the server's
//! certificate verified (STARTTLS required, or implicit TLS), retrying what the server or the
//! network refused for now. Settings and what a message contains: docs/rules-and-alarms.md.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use lettre::message::{Mailbox, Mailboxes, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use zeroize::Zeroizing;

/// Messages waiting to be sent at most; more are refused (and counted) rather than held.
pub const QUEUE: usize = 256;
/// Attempts per message: the first and two retries.
const ATTEMPTS: u32 = 3;
/// Connecting, each SMTP step and the whole exchange.
const TIMEOUT: Duration = Duration::from_secs(30);

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain connect, then STARTTLS, which the server must offer; nothing else is sent before.
    StartTls,
    /// TLS from the first byte (port 465).
    Implicit,
}

/// Where and how messages are sent.
pub struct MailSettings {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    /// The name the server's certificate must carry.
    pub server_name: String,
    /// CA certificates (PEM) to verify the server with; `None`: the system's store.
    pub ca_pem: Option<Vec<u8>>,
    /// User name and password to log in with.
    pub login: Option<(String, Zeroizing<String>)>,
    /// The sender, `vigil@example.net` or `Vigil <vigil@example.net>`.
    pub from: String,
    /// The name Vigil greets the server with (EHLO).
    pub hello_name: String,
    /// Wait before the first and the second retry (the tests shorten it).
    pub retry_after: [Duration; 2],
}

impl std::fmt::Debug for MailSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("server_name", &self.server_name)
            .field("user", &self.login.as_ref().map(|(u, _)| u))
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

/// Why mail cannot be set up or a message not be made.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("{what} {value:?} is not an e-mail address: {why}")]
    Address {
        what: &'static str,
        value: String,
        why: String,
    },
    #[error("the CA file holds no usable PEM certificate: {0}")]
    Ca(String),
    #[error("cannot set up TLS for the mail server: {0}")]
    Tls(String),
    #[error("cannot build the message: {0}")]
    Message(String),
    #[error("cannot start the mail thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: Vec<String>,
    pub subject: String,
    /// Plain text.
    pub body: String,
}

/// Counters of a sink.
#[derive(Debug, Default)]
pub struct MailStats {
    /// Messages the server accepted.
    pub sent: AtomicU64,
    /// Messages given up on after every attempt, or refused for good by the server.
    pub failed: AtomicU64,
    /// Messages refused because the queue was full.
    pub dropped: AtomicU64,
    /// Attempts that were retried.
    pub retried: AtomicU64,
}

/// Called with a message that was not delivered and why (after the last attempt).
pub type OnFailure = Box<dyn Fn(&Mail, &str) + Send>;

/// The queue and its sending thread; the thread ends when the sink is dropped (after the
/// message in flight).
pub struct MailSink {
    tx: Mutex<Option<SyncSender<Mail>>>,
    from: Mailbox,
    stats: Arc<MailStats>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for MailSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailSink")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

/// Reads an address list entry as the rules write it.
pub fn parse_address(what: &'static str, value: &str) -> Result<Mailbox, MailError> {
    value.parse::<Mailbox>().map_err(|e| MailError::Address {
        what,
        value: value.to_owned(),
        why: e.to_string(),
    })
}

fn tls_parameters(s: &MailSettings) -> Result<TlsParameters, MailError> {
    let mut b = TlsParameters::builder(s.server_name.clone());
    if let Some(pem) = &s.ca_pem {
        // lettre reads a file without any certificate as an empty list.
        if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
            return Err(MailError::Ca("no -----BEGIN CERTIFICATE----- block".into()));
        }
        let cert = Certificate::from_pem(pem).map_err(|e| MailError::Ca(e.to_string()))?;
        // Only the given CA: a public CA must not vouch for the site's own mail relay.
        b = b
            .certificate_store(CertificateStore::None)
            .add_root_certificate(cert);
    }
    b.build_rustls().map_err(|e| MailError::Tls(e.to_string()))
}

impl MailSink {
    /// Checks the settings and starts the sending thread. `on_failure` hears of every
    /// message that was not delivered.
    pub fn start(settings: MailSettings, on_failure: OnFailure) -> Result<MailSink, MailError> {
        let from = parse_address("the sender (smtp.from)", &settings.from)?;
        let params = tls_parameters(&settings)?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            .port(settings.port)
            .timeout(Some(TIMEOUT))
            .hello_name(ClientId::Domain(settings.hello_name.clone()))
            .tls(match settings.tls {
                TlsMode::StartTls => Tls::Required(params),
                TlsMode::Implicit => Tls::Wrapper(params),
            });
        if let Some((user, password)) = &settings.login {
            builder = builder.credentials(Credentials::new(user.clone(), password.to_string()));
        }
        let transport = builder.build();
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let stats = Arc::new(MailStats::default());
        let worker = Worker {
            transport,
            from: from.clone(),
            stats: stats.clone(),
            retry_after: settings.retry_after,
            on_failure,
        };
        let thread = std::thread::Builder::new()
            .name("mail-send".into())
            .spawn(move || worker.run(rx))?;
        Ok(MailSink {
            tx: Mutex::new(Some(tx)),
            from,
            stats,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues `mail`; `false` (and counted) when the queue is full or the sink stopped.
    pub fn send(&self, mail: Mail) -> bool {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        match tx.as_ref().map(|tx| tx.try_send(mail)) {
            Some(Ok(())) => true,
            Some(Err(TrySendError::Full(m) | TrySendError::Disconnected(m))) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::error!(subject = %m.subject, "alarm e-mail dropped: the mail queue is full");
                false
            }
            None => false,
        }
    }

    pub fn stats(&self) -> &MailStats {
        &self.stats
    }

    /// Stops taking messages, sends what is queued (each with its attempts) and waits for
    /// the thread.
    pub fn stop(&self) {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }
}

impl Drop for MailSink {
    fn drop(&mut self) {
        // Without waiting: a server that does not answer must not hold up a shutdown.
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

struct Worker {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    stats: Arc<MailStats>,
    retry_after: [Duration; 2],
    on_failure: OnFailure,
}

impl Worker {
    fn run(self, rx: Receiver<Mail>) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "alarm e-mail cannot run: no runtime");
                return;
            }
        };
        while let Ok(mail) = rx.recv() {
            let outcome = match self.message(&mail) {
                Ok(message) => rt.block_on(self.deliver(message)),
                Err(e) => Err(e.to_string()),
            };
            match outcome {
                Ok(()) => {
                    self.stats.sent.fetch_add(1, Ordering::Relaxed);
                }
                Err(why) => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(subject = %mail.subject, error = %why, "alarm e-mail not delivered");
                    (self.on_failure)(&mail, &why);
                }
            }
        }
    }

    fn message(&self, mail: &Mail) -> Result<Message, MailError> {
        let mut to = Mailboxes::new();
        for a in &mail.to {
            to.push(parse_address("a recipient", a)?);
        }
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(mail.subject.clone())
            .header(ContentType::TEXT_PLAIN);
        for m in to {
            b = b.to(m);
        }
        b.body(mail.body.clone())
            .map_err(|e| MailError::Message(e.to_string()))
    }

    /// Sends with retries; what the server refuses for good (a 5xx reply) is not retried.
    async fn deliver(&self, message: Message) -> Result<(), String> {
        let mut attempt = 0;
        loop {
            match self.transport.send(message.clone()).await {
                Ok(_) => return Ok(()),
                // A 5xx reply, or a mismatch on Vigil's side (no common login mechanism):
                // the same attempt would fail the same way.
                Err(e) if e.is_permanent() || e.is_client() => return Err(describe(&e)),
                Err(e) if attempt + 1 >= ATTEMPTS => {
                    return Err(format!("{} (after {ATTEMPTS} attempts)", describe(&e)));
                }
                Err(e) => {
                    tracing::warn!(error = %describe(&e), attempt = attempt + 1, "alarm e-mail attempt failed; retrying");
                    self.stats.retried.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(self.retry_after[attempt as usize]).await;
                    attempt += 1;
                }
            }
        }
    }
}

/// The error with its causes (lettre's own message often says only "network error").
fn describe(e: &lettre::transport::smtp::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(from: &str, ca: Option<&[u8]>) -> MailSettings {
        MailSettings {
            host: "127.0.0.1".into(),
            port: 1,
            tls: TlsMode::StartTls,
            server_name: "localhost".into(),
            ca_pem: ca.map(<[u8]>::to_vec),
            login: Some(("vigil".into(), Zeroizing::new("secret-pass".into()))),
            from: from.into(),
            hello_name: "vigil.test".into(),
            retry_after: [Duration::from_millis(10), Duration::from_millis(10)],
        }
    }

    #[test]
    fn bad_settings_are_refused_with_what_is_wrong() {
        let e = MailSink::start(settings("not an address", None), Box::new(|_, _| {}))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("smtp.from") && e.contains("not an address"),
            "{e}"
        );
        let e = MailSink::start(
            settings("vigil@example.net", Some(b"garbage")),
            Box::new(|_, _| {}),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("CA file"), "{e}");
    }

    #[test]
    fn the_password_never_shows_in_debug_output() {
        let s = settings("Vigil <vigil@example.net>", None);
        let text = format!("{s:?}");
        assert!(
            !text.contains("secret-pass") && text.contains("vigil"),
            "{text}"
        );
    }

    #[test]
    fn an_unreachable_server_fails_after_every_attempt_and_says_so() {
        let failures = Arc::new(Mutex::new(Vec::new()));
        let sink = {
            let failures = failures.clone();
            MailSink::start(
                settings("vigil@example.net", None),
                Box::new(move |m, why| {
                    failures
                        .lock()
                        .unwrap()
                        .push((m.subject.clone(), why.to_owned()))
                }),
            )
            .unwrap()
        };
        assert!(sink.send(Mail {
            to: vec!["soc@example.net".into()],
            subject: "door forced".into(),
            body: "body".into(),
        }));
        // A recipient that is no address fails at once, without a connection.
        assert!(sink.send(Mail {
            to: vec!["soc@@".into()],
            subject: "bad".into(),
            body: "body".into(),
        }));
        sink.stop();
        let failures = failures.lock().unwrap();
        assert_eq!(failures.len(), 2, "{failures:?}");
        assert_eq!(failures[0].0, "door forced");
        assert!(failures[0].1.contains("after 3 attempts"), "{failures:?}");
        assert!(
            failures[1].1.contains("not an e-mail address"),
            "{failures:?}"
        );
        assert_eq!(sink.stats().failed.load(Ordering::Relaxed), 2);
        assert_eq!(sink.stats().retried.load(Ordering::Relaxed), 2);
        assert!(!sink.send(Mail {
            to: vec!["soc@example.net".into()],
            subject: "late".into(),
            body: String::new(),
        }));
    }
}
