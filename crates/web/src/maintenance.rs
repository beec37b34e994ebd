//! Certificate upkeep while the server runs (docs/pki.md): the generated server certificate is renewed
//! 30 days before it expires and swapped into the live TLS configuration, so new handshakes
//! get it without a restart; expiry alerts (30/14/7/1 days, and expired) are raised for every
//! certificate in use, including imported ones that Vigil cannot renew, and written to the
//! audit log, since browsers and API clients warn nobody.

use std::time::Duration;

use time::OffsetDateTime;
use vigil_access::{AuditKind, AuditRecord};
use vigil_pki::{ExpiryAlert, SessionPolicy};

use crate::state::{AppState, SharedState};

/// What one maintenance pass did.
#[derive(Debug, Default)]
pub struct MaintenanceReport {
    /// The server certificate was renewed and is now served.
    pub renewed: bool,
    pub alerts: Vec<ExpiryAlert>,
}

/// One pass at `now`. Errors are logged; a failed renewal is retried at the next pass.
pub fn certificate_maintenance(state: &AppState, now: OffsetDateTime) -> MaintenanceReport {
    let mut report = MaintenanceReport::default();
    let mut pki = state.pki.lock().unwrap_or_else(|e| e.into_inner());
    match pki.renew_if_due(now) {
        Ok(Some(next)) => {
            // A routine renewal: resumed sessions may keep the still-valid old certificate.
            match state.tls.rotate(next, SessionPolicy::Keep) {
                Ok(()) => {
                    report.renewed = true;
                    tracing::warn!(
                        "renewed the server certificate (it was within 30 days of expiry); new connections get the new one"
                    );
                    let _ = state.access.audit(
                        AuditRecord::new(AuditKind::CertificateOperation, Some("system"), None)
                            .detail(serde_json::json!({"operation": "automatic_renewal"})),
                    );
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot serve the renewed server certificate")
                }
            }
        }
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "cannot renew the server certificate"),
    }
    let alerts = pki
        .certs_in_use()
        .and_then(|certs| pki.due_expiry_alerts(now, &certs));
    match alerts {
        Ok(alerts) => {
            for a in &alerts {
                tracing::warn!(
                    subject = %a.subject,
                    fingerprint = %a.fingerprint_sha256,
                    days_left = a.days_left,
                    renewable = a.renewable,
                    "certificate expiry alert: {}",
                    a.message
                );
                let _ = state.access.audit(
                    AuditRecord::new(AuditKind::CertificateOperation, Some("system"), None).detail(
                        serde_json::json!({
                            "operation": "expiry_alert",
                            "subject": a.subject,
                            "fingerprint_sha256": a.fingerprint_sha256,
                            "days_left": a.days_left,
                            "renewable": a.renewable,
                        }),
                    ),
                );
            }
            report.alerts = alerts;
        }
        Err(e) => tracing::error!(error = %e, "cannot check certificate expiry"),
    }
    report
}

/// Runs [`certificate_maintenance`] now and then every `every`, on the current runtime's
/// blocking pool, until the runtime shuts down.
pub fn spawn_certificate_maintenance(state: SharedState, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let state = state.clone();
            let _ = tokio::task::spawn_blocking(move || {
                certificate_maintenance(&state, OffsetDateTime::now_utc())
            })
            .await;
        }
    });
}
