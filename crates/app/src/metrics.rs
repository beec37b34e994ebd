//! Prometheus metrics: reads the figures of the recorder, the stores, the PKI, intrusion
//! detection and the event bus and writes them in the Prometheus text exposition format
//! 0.0.4 (docs/metrics.md lists every metric). The metrics role's HTTP listener only serves
//! what [`collect`] returns.
//!
//! The encoder is written here rather than taken from `prometheus-client`: Vigil exposes a
//! snapshot of figures that already live in its stores and counters (no registry of live
//! metric objects is needed), and counters and gauges with escaped label values are a page of
//! code, where the crate would add a registry, its derive macros and their compile time on a
//! two-core build machine for nothing else.

use std::fmt::Write as _;
use std::sync::Mutex;

use vigil_access::Access;
use vigil_events::EventBus;
use vigil_media::evidence::Evidence;
use vigil_media::store::{Camera, STALE_STATUS_US, Store, StoreError};
use vigil_pki::{Pki, PkiError};
pub use vigil_siem::SiemMonitor;

/// The content type of the text exposition format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Counter (only grows while the process runs; the name ends in `_total`) or gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
}

impl MetricType {
    fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
        }
    }
}

/// One metric family: its HELP and TYPE lines and its samples.
#[derive(Debug)]
struct Family {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

/// A text exposition being built: families in the order they were declared.
#[derive(Debug, Default)]
pub struct Exposition {
    families: Vec<Family>,
}

impl Exposition {
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares a family; its HELP and TYPE lines are written even without samples, so a
    /// scraper sees every metric Vigil has. Names are fixed in the code: a malformed one is a
    /// programming error.
    pub fn declare(&mut self, name: &'static str, kind: MetricType, help: &'static str) {
        assert!(valid_metric_name(name), "invalid metric name {name:?}");
        assert!(
            (kind == MetricType::Counter) == name.ends_with("_total"),
            "{name}: counters, and only counters, end in _total"
        );
        assert!(
            self.families.iter().all(|f| f.name != name),
            "{name} declared twice"
        );
        self.families.push(Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        });
    }

    /// Adds a sample to the declared family `name`.
    pub fn sample(&mut self, name: &'static str, labels: &[(&'static str, &str)], value: f64) {
        let family = self
            .families
            .iter_mut()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("{name} was not declared"));
        for (label, _) in labels {
            assert!(valid_label_name(label), "invalid label name {label:?}");
        }
        family.samples.push((
            labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
            value,
        ));
    }

    /// The exposition text: `# HELP`, `# TYPE` and the samples of each family, one per line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.families {
            let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(f.help));
            let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind.as_str());
            for (labels, value) in &f.samples {
                out.push_str(f.name);
                if !labels.is_empty() {
                    out.push('{');
                    for (i, (k, v)) in labels.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "{k}=\"{}\"", escape_label_value(v));
                    }
                    out.push('}');
                }
                let _ = writeln!(out, " {}", format_value(*value));
            }
        }
        out
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, and not the reserved `__` prefix.
fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    !name.starts_with("__")
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Label values escape backslash, double quote and line feed; everything else is UTF-8 as is.
fn escape_label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// HELP text escapes backslash and line feed.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Go's `ParseFloat` syntax: integers without a fraction, `NaN`, `+Inf`, `-Inf`.
fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else if v == 0.0 {
        // Also -0.0, which would read as "-0".
        "0".into()
    } else {
        format!("{v}")
    }
}

/// A figure that could not be read; the scrape fails as a whole rather than serve a partial
/// picture that looks complete.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot read the recording index: {0}")]
    Store(#[from] StoreError),
    #[error("cannot read the certificates: {0}")]
    Pki(#[from] PkiError),
}

impl crate::error::Classified for MetricsError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Internal
    }
    fn code(&self) -> &'static str {
        "metrics_unavailable"
    }
}

/// Where the figures come from. Only the store is always there; the server passes the rest.
pub struct Sources<'a> {
    pub store: &'a Store,
    pub access: Option<&'a Access>,
    pub pki: Option<&'a Mutex<Pki>>,
    pub events: Option<&'a EventBus>,
    /// The recorder's evidence ledgers, when recording runs in this process.
    pub evidence: Option<&'a Evidence>,
    /// SIEM forwarding, when it runs in this process.
    pub siem: Option<&'a SiemMonitor>,
    /// The rules' alarm e-mail, when `[smtp]` names a server.
    pub mail: Option<&'a vigil_mail::MailStats>,
    /// The rule task's counters, when rules run in this process.
    pub rules: Option<&'a crate::alarms::RuleStats>,
    /// Every webhook sender running in this process (security alerts, rules' webhooks).
    pub webhooks: &'a [WebhookFigures],
}

/// One webhook sender's counters: `name` is `alerts` for the security-alert webhook and
/// `rule:<name>` for a rule's.
#[derive(Debug, Clone)]
pub struct WebhookFigures {
    pub name: String,
    pub stats: vigil_access::WebhookStats,
    /// Deliveries waiting in its queue.
    pub queued: usize,
}

impl WebhookFigures {
    pub fn of(name: impl Into<String>, sink: &vigil_access::WebhookSink) -> Self {
        WebhookFigures {
            name: name.into(),
            stats: sink.stats(),
            queued: sink.queued(),
        }
    }
}

/// Reads every figure at `now_us` (microseconds since the Unix epoch) and renders the
/// exposition.
pub fn collect(src: &Sources<'_>, now_us: i64) -> Result<String, MetricsError> {
    let mut x = Exposition::new();
    streams(&mut x, src.store, src.evidence, now_us)?;
    if let Some(pki) = src.pki {
        certificates(&mut x, pki, now_us)?;
    }
    if let Some(access) = src.access {
        intrusion_detection(&mut x, access);
    }
    if let Some(bus) = src.events {
        events(&mut x, bus);
    }
    if let Some(siem) = src.siem {
        siem_forwarding(&mut x, siem, now_us);
    }
    if let Some(mail) = src.mail {
        alarm_email(&mut x, mail);
    }
    if let Some(rules) = src.rules {
        rule_task(&mut x, rules);
    }
    if !src.webhooks.is_empty() {
        webhooks(&mut x, src.webhooks);
    }
    Ok(x.render())
}

fn streams(
    x: &mut Exposition,
    store: &Store,
    evidence: Option<&Evidence>,
    now_us: i64,
) -> Result<(), MetricsError> {
    use MetricType::{Counter, Gauge};
    x.declare(
        "vigil_stream_up",
        Gauge,
        "1 while a recorder or live feed of the stream is receiving video (status refreshed within 10 s), else 0.",
    );
    x.declare(
        "vigil_stream_frames_per_second",
        Gauge,
        "Frame rate the recorder measured on the stream; absent while the stream is not up.",
    );
    x.declare(
        "vigil_stream_bitrate_bytes_per_second",
        Gauge,
        "Data rate (bit rate / 8) the recorder measured on the stream; absent while the stream is not up.",
    );
    x.declare(
        "vigil_stream_last_frame_timestamp_seconds",
        Gauge,
        "Unix time of the last frame received on the stream.",
    );
    x.declare(
        "vigil_stream_stored_bytes",
        Gauge,
        "Bytes of the stream's segment files in the recording index.",
    );
    x.declare(
        "vigil_stream_stored_frames",
        Gauge,
        "Frames of the stream held in recorded segments (written, not yet deleted by retention).",
    );
    x.declare(
        "vigil_stream_stored_gaps",
        Gauge,
        "Recording gaps (interruptions with their reason) in the stream's index.",
    );
    x.declare(
        "vigil_stream_frames_received_total",
        Counter,
        "Frames received from the camera since the server started.",
    );
    x.declare(
        "vigil_stream_frames_written_total",
        Counter,
        "Frames written to segment files since the server started.",
    );
    x.declare(
        "vigil_stream_reconnects_total",
        Counter,
        "Reconnections to the camera after a lost or failed connection since the server started.",
    );
    x.declare(
        "vigil_stream_retention_deleted_segments_total",
        Counter,
        "Segments of the stream deleted by retention since the server started.",
    );
    x.declare(
        "vigil_stream_retention_deleted_bytes_total",
        Counter,
        "Bytes of the stream's segments deleted by retention since the server started.",
    );
    x.declare(
        "vigil_stream_ledger_unsigned_seconds",
        Gauge,
        "Ledger signing lag: seconds the oldest record of the stream's evidence ledger not yet covered by a signature has waited (0: all signed); absent until the recorder opened the ledger.",
    );
    for cam in store.cameras()? {
        let mut streams: Vec<(&str, Camera)> = vec![("main", cam.main_camera())];
        if let Some(sub) = cam.secondary_camera() {
            streams.push(("secondary", sub));
        }
        for (stream, s) in streams {
            let labels = [("camera", cam.name.as_str()), ("stream", stream)];
            let status = store.status(&s.id)?;
            let current = cam.enabled
                && status
                    .as_ref()
                    .is_some_and(|st| now_us - st.updated_us <= STALE_STATUS_US);
            let up = current
                && status
                    .as_ref()
                    .is_some_and(|st| st.state == "recording" || st.state == "live");
            x.sample("vigil_stream_up", &labels, if up { 1.0 } else { 0.0 });
            if let Some(st) = status.as_ref().filter(|_| up) {
                x.sample("vigil_stream_frames_per_second", &labels, st.fps);
                x.sample(
                    "vigil_stream_bitrate_bytes_per_second",
                    &labels,
                    st.bitrate_bps / 8.0,
                );
            }
            if let Some(last) = status.as_ref().and_then(|st| st.last_frame_us) {
                x.sample(
                    "vigil_stream_last_frame_timestamp_seconds",
                    &labels,
                    last as f64 / 1e6,
                );
            }
            if let Some(lag) = evidence.and_then(|e| e.unsigned_for(&s.id)) {
                x.sample(
                    "vigil_stream_ledger_unsigned_seconds",
                    &labels,
                    lag.as_secs_f64(),
                );
            }
            let segments = store.segments(&s.id)?;
            x.sample(
                "vigil_stream_stored_bytes",
                &labels,
                segments.iter().map(|r| r.bytes).sum::<i64>() as f64,
            );
            x.sample(
                "vigil_stream_stored_frames",
                &labels,
                segments.iter().map(|r| r.frames).sum::<i64>() as f64,
            );
            x.sample(
                "vigil_stream_stored_gaps",
                &labels,
                store.gaps(&s.id, i64::MIN, i64::MAX)?.len() as f64,
            );
            let c = vigil_media::counters::snapshot(&s.id);
            x.sample(
                "vigil_stream_frames_received_total",
                &labels,
                c.frames_received as f64,
            );
            x.sample(
                "vigil_stream_frames_written_total",
                &labels,
                c.frames_written as f64,
            );
            x.sample(
                "vigil_stream_reconnects_total",
                &labels,
                c.reconnects as f64,
            );
            x.sample(
                "vigil_stream_retention_deleted_segments_total",
                &labels,
                c.retention_deleted_segments as f64,
            );
            x.sample(
                "vigil_stream_retention_deleted_bytes_total",
                &labels,
                c.retention_deleted_bytes as f64,
            );
        }
    }
    Ok(())
}

fn certificates(x: &mut Exposition, pki: &Mutex<Pki>, now_us: i64) -> Result<(), MetricsError> {
    x.declare(
        "vigil_certificate_expiry_seconds",
        MetricType::Gauge,
        "Seconds until a certificate in use expires (negative once expired); divide by 86400 for days.",
    );
    let certs = pki
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .certs_in_use()?;
    for c in certs {
        let left = c.not_after.unix_timestamp() as f64 - now_us as f64 / 1e6;
        let role = c.role.to_string();
        x.sample(
            "vigil_certificate_expiry_seconds",
            &[
                ("certificate", c.subject.as_str()),
                ("role", role.as_str()),
                ("fingerprint_sha256", c.fingerprint_sha256.as_str()),
            ],
            left,
        );
    }
    Ok(())
}

fn intrusion_detection(x: &mut Exposition, access: &Access) {
    x.declare(
        "vigil_login_failures_total",
        MetricType::Counter,
        "Failed logins since the server started, allow-listed addresses included.",
    );
    x.declare(
        "vigil_blocked_addresses",
        MetricType::Gauge,
        "Addresses (or IPv6 prefixes) intrusion detection blocks now.",
    );
    x.declare(
        "vigil_watched_addresses",
        MetricType::Gauge,
        "Addresses with failed logins in their current intrusion-detection window.",
    );
    let status = access.ids_status();
    x.sample(
        "vigil_login_failures_total",
        &[],
        access.ids().failures_total() as f64,
    );
    x.sample("vigil_blocked_addresses", &[], status.blocked.len() as f64);
    x.sample("vigil_watched_addresses", &[], status.watched.len() as f64);
}

fn events(x: &mut Exposition, bus: &EventBus) {
    let s = bus.stats();
    let figures = [
        (
            "vigil_events_published_total",
            "Events accepted by the event bus since the server started.",
            &s.published,
        ),
        (
            "vigil_events_stored_total",
            "Events written to the event database since the server started.",
            &s.stored,
        ),
        (
            "vigil_events_dropped_total",
            "Events dropped because the bus queue was full, since the server started.",
            &s.dropped,
        ),
        (
            "vigil_events_refused_total",
            "Events refused as invalid by the bus since the server started.",
            &s.refused,
        ),
        (
            "vigil_events_write_errors_total",
            "Failed writes to the event database since the server started.",
            &s.write_errors,
        ),
    ];
    unlabelled_counters(x, &figures);
}

/// Counters without labels: each declared with its help and sampled once.
fn unlabelled_counters(
    x: &mut Exposition,
    figures: &[(&'static str, &'static str, &std::sync::atomic::AtomicU64)],
) {
    for (name, help, counter) in figures {
        x.declare(name, MetricType::Counter, help);
        x.sample(
            name,
            &[],
            counter.load(std::sync::atomic::Ordering::Relaxed) as f64,
        );
    }
}

/// Webhook senders: deliveries by result, HTTP attempts (retries included) and the queue.
fn webhooks(x: &mut Exposition, all: &[WebhookFigures]) {
    x.declare(
        "vigil_webhook_deliveries_total",
        MetricType::Counter,
        "Webhook deliveries by result since the server started: sent (2xx), failed (retries exhausted or refused for good), dropped (queue full or shut down).",
    );
    x.declare(
        "vigil_webhook_attempts_total",
        MetricType::Counter,
        "HTTP attempts of a webhook sender, retries included, since the server started.",
    );
    x.declare(
        "vigil_webhook_queued",
        MetricType::Gauge,
        "Deliveries waiting in a webhook sender's queue.",
    );
    for w in all {
        let name = w.name.as_str();
        for (result, n) in [
            ("sent", w.stats.sent),
            ("failed", w.stats.failed),
            ("dropped", w.stats.dropped),
        ] {
            x.sample(
                "vigil_webhook_deliveries_total",
                &[("webhook", name), ("result", result)],
                n as f64,
            );
        }
        x.sample(
            "vigil_webhook_attempts_total",
            &[("webhook", name)],
            w.stats.attempts as f64,
        );
        x.sample(
            "vigil_webhook_queued",
            &[("webhook", name)],
            w.queued as f64,
        );
    }
}

/// The rule task: events evaluated, rules fired, actions failed, events read back from the
/// event database because they did not reach the worker live, and events never evaluated.
fn rule_task(x: &mut Exposition, rules: &crate::alarms::RuleStats) {
    unlabelled_counters(
        x,
        &[
            (
                "vigil_rules_events_evaluated_total",
                "Events the rules evaluated since the server started.",
                &rules.evaluated,
            ),
            (
                "vigil_rules_fired_total",
                "Rule firings (one per rule an event matched) since the server started.",
                &rules.fired,
            ),
            (
                "vigil_rules_actions_failed_total",
                "Rule actions that failed (a database or ledger error) since the server started.",
                &rules.failed,
            ),
            (
                "vigil_rules_events_deferred_total",
                "Events that did not reach the rule worker live and were read back from the event database (evaluated late, not lost) since the server started.",
                &rules.deferred,
            ),
            (
                "vigil_rules_events_dropped_total",
                "Events the rules never evaluated because the event database could not be read, since the server started (each loss is also a rules.dropped event).",
                &rules.dropped,
            ),
        ],
    );
}

/// The rules' alarm e-mail: what the mail server accepted, what was given up on, dropped with
/// a full queue, and retried.
fn alarm_email(x: &mut Exposition, mail: &vigil_mail::MailStats) {
    unlabelled_counters(
        x,
        &[
            (
                "vigil_alarm_emails_sent_total",
                "Alarm e-mails the mail server accepted since the server started.",
                &mail.sent,
            ),
            (
                "vigil_alarm_emails_failed_total",
                "Alarm e-mails not delivered after their attempts, or refused for good, since the server started (each is an alarm.email_failed event).",
                &mail.failed,
            ),
            (
                "vigil_alarm_emails_dropped_total",
                "Alarm e-mails dropped because the mail queue was full, since the server started.",
                &mail.dropped,
            ),
            (
                "vigil_alarm_email_retries_total",
                "Attempts to send an alarm e-mail that were retried, since the server started.",
                &mail.retried,
            ),
        ],
    );
}

/// SIEM forwarding: per collector whether it is connected, its backlog (the spool's depth for
/// it) and the age of the oldest event it has not received; the spool's size; what was
/// spooled, sent and lost.
fn siem_forwarding(x: &mut Exposition, siem: &SiemMonitor, now_us: i64) {
    use MetricType::{Counter, Gauge};
    x.declare(
        "vigil_siem_collector_up",
        Gauge,
        "1 while the SIEM collector is connected, 0 otherwise.",
    );
    x.declare(
        "vigil_siem_spool_backlog_events",
        Gauge,
        "Spooled events the SIEM collector has not received yet.",
    );
    x.declare(
        "vigil_siem_spool_oldest_pending_age_seconds",
        Gauge,
        "Age of the oldest event the SIEM collector has not received yet (0 when it has all); measured from when the event was stored, to the spool batch it was written with.",
    );
    x.declare(
        "vigil_siem_events_sent_total",
        Counter,
        "Events written to the SIEM collector's connection since the server started, including those sent again after a reconnect.",
    );
    x.declare(
        "vigil_siem_events_resent_total",
        Counter,
        "Events sent again to the SIEM collector after a reconnect since the server started (duplicates it may see).",
    );
    x.declare(
        "vigil_siem_collector_connects_total",
        Counter,
        "Connections made to the SIEM collector since the server started.",
    );
    for c in siem.status() {
        let labels = [("collector", c.name.as_str())];
        x.sample(
            "vigil_siem_collector_up",
            &labels,
            f64::from(u8::from(c.connected)),
        );
        x.sample("vigil_siem_spool_backlog_events", &labels, c.backlog as f64);
        let age = c
            .oldest_pending_us
            .map_or(0.0, |t| (now_us - t).max(0) as f64 / 1e6);
        x.sample("vigil_siem_spool_oldest_pending_age_seconds", &labels, age);
        x.sample("vigil_siem_events_sent_total", &labels, c.sent as f64);
        x.sample("vigil_siem_events_resent_total", &labels, c.resent as f64);
        x.sample(
            "vigil_siem_collector_connects_total",
            &labels,
            c.connects as f64,
        );
    }
    x.declare(
        "vigil_siem_spool_bytes",
        Gauge,
        "Bytes the SIEM spool takes on disk.",
    );
    x.sample("vigil_siem_spool_bytes", &[], siem.spool_bytes() as f64);
    let s = siem.stats();
    unlabelled_counters(
        x,
        &[
            (
                "vigil_siem_events_spooled_total",
                "Events written to the SIEM spool since the server started.",
                &s.spooled,
            ),
            (
                "vigil_siem_events_lost_total",
                "Events a SIEM collector will never receive (spool limit reached or spool damaged), summed over collectors, since the server started.",
                &s.lost,
            ),
            (
                "vigil_siem_spool_write_errors_total",
                "Failed writes to the SIEM spool since the server started.",
                &s.spool_errors,
            ),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_help_type_and_samples() {
        let mut x = Exposition::new();
        x.declare("vigil_a_total", MetricType::Counter, "A count.");
        x.declare("vigil_b_bytes", MetricType::Gauge, "B size.");
        x.sample("vigil_a_total", &[], 3.0);
        x.sample(
            "vigil_b_bytes",
            &[("camera", "lobby"), ("stream", "main")],
            1.5,
        );
        assert_eq!(
            x.render(),
            "# HELP vigil_a_total A count.\n# TYPE vigil_a_total counter\nvigil_a_total 3\n\
             # HELP vigil_b_bytes B size.\n# TYPE vigil_b_bytes gauge\n\
             vigil_b_bytes{camera=\"lobby\",stream=\"main\"} 1.5\n"
        );
    }

    #[test]
    fn escapes_label_values_and_help() {
        assert_eq!(
            escape_label_value("a\\b\"c\nd é"),
            "a\\\\b\\\"c\\nd é".to_owned()
        );
        assert_eq!(escape_help("x\\y\nz \"q\""), "x\\\\y\\nz \"q\"");
        let mut x = Exposition::new();
        x.declare("vigil_g", MetricType::Gauge, "line one\nline two");
        x.sample("vigil_g", &[("camera", "door \"2\"\n")], 0.0);
        let text = x.render();
        assert!(
            text.contains("# HELP vigil_g line one\\nline two\n"),
            "{text}"
        );
        assert!(
            text.contains("vigil_g{camera=\"door \\\"2\\\"\\n\"} 0\n"),
            "{text}"
        );
        assert_eq!(text.lines().count(), 3);
    }

    #[test]
    fn formats_special_values() {
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(-2.0), "-2");
        assert_eq!(format_value(-0.0), "0");
        assert_eq!(format_value(1e21), "1000000000000000000000");
        assert_eq!(format_value(0.25), "0.25");
    }

    #[test]
    fn checks_names() {
        assert!(valid_metric_name("vigil_stream_up"));
        assert!(valid_metric_name("a:b_c"));
        assert!(!valid_metric_name("1abc"));
        assert!(!valid_metric_name("vigil-x"));
        assert!(!valid_metric_name(""));
        assert!(valid_label_name("camera"));
        assert!(!valid_label_name("__name"));
        assert!(!valid_label_name("a:b"));
        assert!(!valid_label_name("9a"));
    }

    #[test]
    #[should_panic(expected = "end in _total")]
    fn a_counter_needs_total() {
        Exposition::new().declare("vigil_frames", MetricType::Counter, "x");
    }

    #[test]
    #[should_panic(expected = "end in _total")]
    fn a_gauge_must_not_end_in_total() {
        Exposition::new().declare("vigil_frames_total", MetricType::Gauge, "x");
    }

    #[test]
    fn collects_streams_of_a_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::init(dir.path()).unwrap();
        store
            .add_camera(&vigil_media::store::NewCamera {
                name: "lobby".into(),
                url: "rtsp://127.0.0.1:1/x".into(),
                ..Default::default()
            })
            .unwrap();
        let text = collect(
            &Sources {
                store: &store,
                access: None,
                pki: None,
                events: None,
                evidence: None,
                siem: None,
                mail: None,
                rules: None,
                webhooks: &[],
            },
            vigil_media::store::now_us(),
        )
        .unwrap();
        assert!(!text.contains("vigil_alarm_email"), "no e-mail, no figures");
        assert!(
            text.contains("vigil_stream_up{camera=\"lobby\",stream=\"main\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("vigil_stream_stored_bytes{camera=\"lobby\",stream=\"main\"} 0\n"));
        // Not up: no rate figures pretend to be current.
        assert!(!text.contains("vigil_stream_frames_per_second{"));
        assert!(text.contains("# TYPE vigil_stream_reconnects_total counter\n"));
        let mail = vigil_mail::MailStats::default();
        mail.sent.store(3, std::sync::atomic::Ordering::Relaxed);
        mail.failed.store(1, std::sync::atomic::Ordering::Relaxed);
        let rules = crate::alarms::RuleStats::default();
        rules
            .deferred
            .store(7, std::sync::atomic::Ordering::Relaxed);
        let text = collect(
            &Sources {
                store: &store,
                access: None,
                pki: None,
                events: None,
                evidence: None,
                siem: None,
                mail: Some(&mail),
                rules: Some(&rules),
                webhooks: &[WebhookFigures {
                    name: "rule:door".into(),
                    stats: vigil_access::WebhookStats {
                        sent: 4,
                        failed: 1,
                        dropped: 0,
                        attempts: 6,
                    },
                    queued: 2,
                }],
            },
            vigil_media::store::now_us(),
        )
        .unwrap();
        for line in [
            "# TYPE vigil_alarm_emails_sent_total counter\n",
            "vigil_alarm_emails_sent_total 3\n",
            "vigil_alarm_emails_failed_total 1\n",
            "vigil_alarm_emails_dropped_total 0\n",
            "vigil_alarm_email_retries_total 0\n",
            "# TYPE vigil_rules_events_deferred_total counter\n",
            "vigil_rules_events_deferred_total 7\n",
            "vigil_rules_events_dropped_total 0\n",
            "vigil_webhook_deliveries_total{webhook=\"rule:door\",result=\"sent\"} 4\n",
            "vigil_webhook_deliveries_total{webhook=\"rule:door\",result=\"failed\"} 1\n",
            "vigil_webhook_attempts_total{webhook=\"rule:door\"} 6\n",
            "vigil_webhook_queued{webhook=\"rule:door\"} 2\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
