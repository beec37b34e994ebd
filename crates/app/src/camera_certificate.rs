//! Installing a certificate from the installation CA on an ONVIF camera (ONVIF Advanced
//! Security): the camera makes its own key and CSR, the CA signs it for the camera's address,
//! the camera serves HTTPS with it, Vigil proves the new link verifies and records the new
//! certificate as the camera's identity. docs/cameras-onvif.md, "Camera certificates".

use std::time::Duration;

use vigil_access::AuditKind;
use vigil_media::ingest_tls::TrustStore;
use vigil_media::store::{DeviceIdentity, Store};
use vigil_onvif::{Client, Credentials, OnvifError, Options, Target};
use vigil_pki::{CertInfo, Pki};

use crate::audit::Trail;
use crate::cameras::CameraError;
use crate::onvif::OnvifUseError;

/// Validity of a camera certificate unless the admin says otherwise: cameras are re-issued
/// by hand or by a scheduled run, so a year with room to spare (the CA's leaf limit applies).
pub const DEFAULT_DAYS: u32 = 397;
/// The RSA key size asked of the camera (ONVIF Advanced Security devices all make RSA keys;
/// 2048 bits is the size every one of them supports).
pub const KEY_BITS: u32 = 2048;
/// How long the camera may take to make its key pair (slow SoCs take tens of seconds).
pub const KEY_WAIT: Duration = Duration::from_secs(60);

/// The installation CA as installing needs it: its certificate, and signing a CSR. For the
/// command line's [`Pki`] and the HTTP API's shared one alike (locked only while signing).
pub trait CameraCa: Sync {
    fn ca_der(&self) -> Vec<u8>;
    fn sign(&self, csr_pem: &str, days: u32) -> Result<CertInfo, String>;
}

impl CameraCa for Pki {
    fn ca_der(&self) -> Vec<u8> {
        self.ca_cert_der().to_vec()
    }
    fn sign(&self, csr_pem: &str, days: u32) -> Result<CertInfo, String> {
        self.sign_csr_described(csr_pem, days)
            .map(|(_, info)| info)
            .map_err(|e| e.to_string())
    }
}

impl CameraCa for std::sync::Mutex<Pki> {
    fn ca_der(&self) -> Vec<u8> {
        self.lock().unwrap_or_else(|p| p.into_inner()).ca_der()
    }
    fn sign(&self, csr_pem: &str, days: u32) -> Result<CertInfo, String> {
        self.lock()
            .unwrap_or_else(|p| p.into_inner())
            .sign(csr_pem, days)
    }
}

/// What installing did.
#[derive(Debug, Clone)]
pub struct CertificateInstalled {
    pub camera: String,
    /// The certificate the camera's HTTPS serves now.
    pub certificate: CertInfo,
    /// The fingerprint recorded before (the camera's factory or earlier certificate).
    pub previous: Option<String>,
    /// The certification path id the camera gave the new certificate.
    pub path_id: String,
}

/// Has the ONVIF camera `name` make a key pair and a CSR, signs it with the installation CA
/// for the camera's address (whatever names the CSR asks for, the certificate names exactly
/// the host of the camera's ONVIF address), uploads it with the CA certificate and has the
/// camera serve HTTPS with it. Then connects anew, verifying against `trust` without any pin:
/// only when the camera presents exactly the issued certificate is it recorded as the
/// camera's identity (so the device check and the certificate-change alarm expect it from
/// now on), audited as `camera_changed` / `certificate_installed`. The old certificate must
/// still verify (or be the recorded one) for the camera to be asked at all.
pub async fn install(
    store: &Store,
    ca: &dyn CameraCa,
    trust: TrustStore,
    name: &str,
    days: u32,
    trail: &Trail<'_>,
) -> Result<CertificateInstalled, OnvifUseError> {
    let camera = store
        .camera(name)
        .map_err(|e| OnvifUseError::Camera(CameraError::Store(e)))?;
    let identity = store
        .device_identity(&camera.id)?
        .ok_or_else(|| OnvifUseError::NotOnvif(camera.name.clone()))?;
    let target = Target::parse(&identity.onvif_url)?;
    if !target.is_https() {
        return Err(OnvifUseError::PlainHttp(identity.onvif_url.clone()));
    }
    let host = target
        .url()
        .host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
        .ok_or_else(|| OnvifError::BadAddress(identity.onvif_url.clone()))?;
    let password = store.camera_password(&camera.id)?;
    let credentials = camera
        .username
        .clone()
        .map(|u| Credentials::new(u, password.unwrap_or_default()));
    let client = |pin: Option<String>| {
        let mut options = Options::new(trust.clone());
        options.pin = pin;
        Client::new(target.clone(), credentials.clone(), options)
    };

    // The recorded certificate is the one this camera is trusted with (it may be a pinned
    // self-signed factory certificate).
    let old = client(identity.certificate.clone());
    let (_key, csr_der) = old.create_key_and_csr(&host, KEY_BITS, KEY_WAIT).await?;
    let csr_pem = pem_block("CERTIFICATE REQUEST", &csr_der);
    let info = ca.sign(&csr_pem, days).map_err(OnvifUseError::Pki)?;
    if !names_host(&info.sans, &host) {
        return Err(OnvifUseError::CsrNames {
            host,
            names: info.sans.join(", "),
        });
    }
    // The camera serves its certificate with the CA above it, as clients expect a chain.
    let path_id = old
        .serve_certificate(info.der.as_ref(), &[ca.ca_der()], "vigil")
        .await?;

    // Proof on a new connection: verified by the trust store alone (no pin), and exactly
    // the certificate issued.
    let fresh = client(None);
    let proof = fresh.device_information().await;
    let served = fresh.certificate_fingerprint();
    let issued = info.fingerprint_sha256.clone();
    match (&proof, &served) {
        (Ok(_), Some(fp)) if *fp == issued => {}
        _ => {
            return Err(OnvifUseError::NotServed {
                camera: camera.name.clone(),
                issued,
                detail: match (proof, served) {
                    (Err(e), _) => e.to_string(),
                    (Ok(_), Some(fp)) => format!("it presents {fp}"),
                    (Ok(_), None) => "it presented no certificate".into(),
                },
            });
        }
    }
    let updated = DeviceIdentity {
        certificate: Some(issued.clone()),
        ..identity.clone()
    };
    store.set_device_identity(&camera.id, &updated)?;
    trail
        .record(
            AuditKind::CameraChanged,
            serde_json::json!({
                "action": "certificate_installed", "camera": camera.name,
                "address": identity.onvif_url,
                "previous": identity.certificate,
                "fingerprint_sha256": issued,
                "subject": info.subject,
                "sans": info.sans,
                "not_after": vigil_pki::rfc3339(info.not_after),
                "certification_path": path_id,
            }),
        )
        .map_err(OnvifUseError::Audit)?;
    Ok(CertificateInstalled {
        camera: camera.name,
        certificate: info,
        previous: identity.certificate,
        path_id,
    })
}

/// Whether the certificate's names (`DNS:…` / `IP:…`) include the camera's host.
fn names_host(sans: &[String], host: &str) -> bool {
    sans.iter().any(|s| {
        s.strip_prefix("DNS:")
            .map(|d| d.eq_ignore_ascii_case(host))
            .or_else(|| {
                s.strip_prefix("IP:").map(|ip| {
                    match (
                        ip.parse::<std::net::IpAddr>(),
                        host.parse::<std::net::IpAddr>(),
                    ) {
                        (Ok(a), Ok(b)) => a == b,
                        _ => false,
                    }
                })
            })
            .unwrap_or(false)
    })
}

fn pem_block(tag: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {tag}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {tag}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_must_name_the_cameras_host() {
        let sans = vec!["DNS:cam-1.example".to_owned(), "IP:10.0.0.9".to_owned()];
        assert!(names_host(&sans, "10.0.0.9"));
        assert!(names_host(&sans, "CAM-1.example"));
        assert!(!names_host(&sans, "10.0.0.10"));
        assert!(!names_host(&sans, "cam-2.example"));
        assert!(names_host(&["IP:::1".to_owned()], "::1"));
    }

    #[test]
    fn a_csr_is_wrapped_as_pem() {
        let pem = pem_block("CERTIFICATE REQUEST", &[0u8; 60]);
        assert!(pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----\n"));
        assert!(pem.ends_with("-----END CERTIFICATE REQUEST-----\n"));
        assert_eq!(pem.lines().count(), 4);
    }
}
