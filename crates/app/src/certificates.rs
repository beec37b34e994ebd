//! What the audit log records of a change to the installation's certificates (import, CSR,
//! install, reset, renewal, a device's CSR signed by the CA, a CA trusted or no longer trusted
//! for camera links), the same entry whether the
//! command line or the HTTP API made it (`certificate_operation`; docs/security-model.md).
//! Keys and passphrases are never recorded.

use vigil_access::{AccessError, AuditKind};
use vigil_pki::{CertInfo, Installed, rfc3339};

use crate::audit::Trail;

/// One certificate change.
pub enum CertificateChange<'a> {
    /// A certificate and key brought from elsewhere now serve TLS.
    Imported(&'a Installed),
    /// A key and a certificate request for an external CA were made.
    Requested {
        common_name: &'a str,
        sans: &'a [String],
    },
    /// The certificate issued for the pending request now serves TLS.
    Installed(&'a Installed),
    /// The imported or CSR-installed certificate (`removed` names which) was deleted.
    Reset { removed: &'a str },
    /// A new generated server certificate; `served` when TLS presents it now.
    Renewed {
        certificate: Option<&'a CertInfo>,
        served: bool,
    },
    /// The CA signed a device's (e.g. a camera's) certificate request.
    SignedCsr(&'a CertInfo),
    /// CA certificates an admin trusted for camera links.
    CameraCaTrusted(&'a [CertInfo]),
    /// A CA no longer trusted for camera links.
    CameraCaRemoved(&'a CertInfo),
}

impl CertificateChange<'_> {
    /// The entry's detail.
    pub fn detail(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            CertificateChange::Imported(i) => json!({
                "operation": "import",
                "subject": i.info.subject,
                "fingerprint_sha256": i.info.fingerprint_sha256,
                "not_after": rfc3339(i.info.not_after),
                "key_format": i.key_format.map(|f| f.to_string()),
            }),
            CertificateChange::Requested { common_name, sans } => json!({
                "operation": "csr", "common_name": common_name.trim(), "sans": sans,
            }),
            CertificateChange::Installed(i) => json!({
                "operation": "install",
                "subject": i.info.subject,
                "fingerprint_sha256": i.info.fingerprint_sha256,
                "not_after": rfc3339(i.info.not_after),
            }),
            CertificateChange::Reset { removed } => {
                json!({ "operation": "reset", "removed": removed })
            }
            CertificateChange::Renewed {
                certificate,
                served,
            } => json!({
                "operation": "renew",
                "fingerprint_sha256": certificate.map(|c| c.fingerprint_sha256.clone()),
                "not_after": certificate.map(|c| rfc3339(c.not_after)),
                "served": served,
            }),
            CertificateChange::CameraCaTrusted(cas) => json!({
                "operation": "trust_camera_ca",
                "certificates": cas.iter().map(|c| json!({
                    "subject": c.subject,
                    "fingerprint_sha256": c.fingerprint_sha256,
                    "not_after": rfc3339(c.not_after),
                })).collect::<Vec<_>>(),
            }),
            CertificateChange::CameraCaRemoved(c) => json!({
                "operation": "remove_camera_ca",
                "subject": c.subject,
                "fingerprint_sha256": c.fingerprint_sha256,
            }),
            CertificateChange::SignedCsr(info) => json!({
                "operation": "sign_csr",
                "subject": info.subject,
                "sans": info.sans,
                "fingerprint_sha256": info.fingerprint_sha256,
                "not_after": rfc3339(info.not_after),
            }),
        }
    }

    /// Records it for the trail's actor.
    pub fn record(&self, trail: &Trail<'_>) -> Result<(), AccessError> {
        trail.record(AuditKind::CertificateOperation, self.detail())
    }
}
