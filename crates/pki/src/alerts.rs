//! Certificate expiry alerts. Browsers and VMS clients give no warning before a certificate
//! expires, so Vigil raises its own at 30, 14, 7 and 1 days before expiry and once more when a
//! certificate has expired. Each threshold fires once per certificate (tracked by fingerprint);
//! the caller persists the record so a restart does not repeat alerts.

use std::collections::{BTreeMap, BTreeSet};

use time::OffsetDateTime;

use crate::certinfo::{CertInfo, CertRole, CertSource};

/// Days before expiry at which an alert is raised.
pub const ALERT_THRESHOLDS_DAYS: [u32; 4] = [30, 14, 7, 1];

/// Threshold value used for the "has expired" alert.
pub const EXPIRED_THRESHOLD: u32 = 0;

/// Which thresholds have fired, per certificate fingerprint.
pub type SentAlerts = BTreeMap<String, BTreeSet<u32>>;

/// One alert to deliver (log, UI, SIEM, e-mail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryAlert {
    pub subject: String,
    pub fingerprint_sha256: String,
    pub role: CertRole,
    pub source: CertSource,
    /// 30, 14, 7 or 1, or [`EXPIRED_THRESHOLD`] once expired.
    pub threshold_days: u32,
    /// Whole days left (negative once expired).
    pub days_left: i64,
    pub not_after: OffsetDateTime,
    /// Whether Vigil renews this certificate itself.
    pub renewable: bool,
    /// Human-readable text including what to do.
    pub message: String,
}

/// Returns the alerts due at `now` for `certs` and records them in `sent`.
///
/// When several thresholds were crossed since the last check (e.g. the server was off), only
/// the most urgent one is raised and the others are marked as sent, so an operator gets one
/// message instead of a burst. Entries of certificates not in `certs` are dropped: pass every
/// certificate in use.
pub fn alerts_due(
    now: OffsetDateTime,
    certs: &[CertInfo],
    sent: &mut SentAlerts,
) -> Vec<ExpiryAlert> {
    sent.retain(|fp, _| certs.iter().any(|c| &c.fingerprint_sha256 == fp));
    let mut out = Vec::new();
    for cert in certs {
        let secs_left = (cert.not_after - now).whole_seconds();
        let crossed: Vec<u32> = ALERT_THRESHOLDS_DAYS
            .iter()
            .copied()
            .chain([EXPIRED_THRESHOLD])
            .filter(|t| secs_left <= i64::from(*t) * 86_400)
            .collect();
        let Some(&most_urgent) = crossed.iter().min() else {
            continue;
        };
        let record = sent.entry(cert.fingerprint_sha256.clone()).or_default();
        if record.contains(&most_urgent) {
            continue;
        }
        record.extend(crossed.iter().copied());
        let days_left = cert.days_to_expiry(now);
        out.push(ExpiryAlert {
            subject: cert.subject.clone(),
            fingerprint_sha256: cert.fingerprint_sha256.clone(),
            role: cert.role,
            source: cert.source,
            threshold_days: most_urgent,
            days_left,
            not_after: cert.not_after,
            renewable: cert.renewable(),
            message: message(cert, most_urgent, days_left),
        });
    }
    out
}

fn message(cert: &CertInfo, threshold: u32, days_left: i64) -> String {
    let when = if threshold == EXPIRED_THRESHOLD {
        format!("expired on {}", cert.not_after.date())
    } else {
        format!(
            "expires in {} day{} (on {})",
            days_left.max(0),
            if days_left == 1 { "" } else { "s" },
            cert.not_after.date()
        )
    };
    let what = match cert.role {
        CertRole::Ca => "The Vigil CA certificate",
        CertRole::Server => "The server certificate",
        CertRole::Chain => "A CA certificate in the server's chain",
        CertRole::CameraCa => "A CA trusted for camera certificates",
    };
    let todo = match (cert.role, cert.source) {
        (CertRole::Server, CertSource::Generated) => {
            "Vigil renews it automatically 30 days before expiry, so renewal has failed: check \
             the log for the reason."
        }
        (CertRole::Ca, _) => {
            "Create a new CA in a new installation directory and distribute its certificate to \
             all clients before the old one expires."
        }
        (CertRole::CameraCa, _) => {
            "Camera certificates it issued stop verifying when it expires, and those camera \
             links are refused: import the CA's renewed certificate as a camera CA."
        }
        // Operators read this in the log and the audit trail whichever front end they use,
        // so it names the certificate actions, not one front end's commands; docs/pki.md has
        // the CLI command and API route of each.
        (_, CertSource::Imported) => {
            "Vigil cannot renew an imported certificate: import a renewed certificate and its \
             key, or reset to the generated certificate."
        }
        (_, CertSource::CsrInstalled) => {
            "Vigil cannot renew a certificate from an external CA: create a new certificate \
             request, have it signed and install the certificate, or reset to the generated \
             certificate."
        }
        (_, CertSource::Generated) => "Renew it.",
    };
    format!(
        "{what} '{}' ({}) {when}. {todo}",
        cert.subject, cert.fingerprint_sha256
    )
}
