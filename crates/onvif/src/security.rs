//! The Advanced Security service (`tas`, keystore and TLS server parts): the requests that
//! have a camera make a key pair and a CSR, take a certificate and serve HTTPS with it, and
//! the parsers of their answers. How Vigil uses them: docs/cameras-onvif.md, "Camera
//! certificates".

use base64::Engine as _;

use crate::OnvifError;
use crate::soap::read_response;
use crate::xml::{self, escape};

/// The Advanced Security service's namespace, as GetServices announces it.
pub const TAS: &str = "http://www.onvif.org/ver10/advancedsecurity/wsdl";
/// The OID of sha256WithRSAEncryption (RFC 4055), the CSR signature Vigil asks for.
pub const SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";
/// The largest certificate or CSR accepted from a device: far above any real one.
pub const MAX_DER_BYTES: usize = 64 * 1024;
/// Identifiers (key, certificate, certification path) longer than this are refused: they
/// are echoed back to the device, never interpreted.
pub const MAX_ID_CHARS: usize = 256;

/// The SOAP action of the operation `op`, as a `&'static str` (errors name it).
macro_rules! action {
    ($op:literal) => {
        concat!("http://www.onvif.org/ver10/advancedsecurity/wsdl/", $op)
    };
}

fn wrap(op: &str, inner: &str) -> String {
    format!(r#"<tas:{op} xmlns:tas="{TAS}">{inner}</tas:{op}>"#)
}

/// A request: its SOAP action and body.
pub type Request = (&'static str, String);

/// CreateRSAKeyPair: the device makes a key pair of `bits` bits, kept on the device.
pub fn create_rsa_key_pair(bits: u32, alias: &str) -> Request {
    (
        action!("CreateRSAKeyPair"),
        wrap(
            "CreateRSAKeyPair",
            &format!(
                "<tas:KeyLength>{bits}</tas:KeyLength><tas:Alias>{}</tas:Alias>",
                escape(alias)
            ),
        ),
    )
}

/// GetKeyStatus of a key made by CreateRSAKeyPair (key generation may take a while).
pub fn get_key_status(key_id: &str) -> Request {
    (
        action!("GetKeyStatus"),
        wrap(
            "GetKeyStatus",
            &format!("<tas:KeyID>{}</tas:KeyID>", escape(key_id)),
        ),
    )
}

/// CreatePKCS10CSR for the key `key_id`, subject `CN=common_name`, signed with
/// sha256WithRSAEncryption.
pub fn create_pkcs10_csr(key_id: &str, common_name: &str) -> Request {
    (
        action!("CreatePKCS10CSR"),
        wrap(
            "CreatePKCS10CSR",
            &format!(
                "<tas:Subject><tas:CommonName>{}</tas:CommonName></tas:Subject><tas:KeyID>{}</tas:KeyID><tas:SignatureAlgorithm><tas:algorithm>{SHA256_WITH_RSA}</tas:algorithm></tas:SignatureAlgorithm>",
                escape(common_name),
                escape(key_id)
            ),
        ),
    )
}

/// UploadCertificate of one DER certificate; `private_key_required` asks the device to
/// refuse it unless it holds the matching private key (true for the camera's own
/// certificate, false for the CA above it).
pub fn upload_certificate(der: &[u8], alias: &str, private_key_required: bool) -> Request {
    (
        action!("UploadCertificate"),
        wrap(
            "UploadCertificate",
            &format!(
                "<tas:Certificate>{}</tas:Certificate><tas:Alias>{}</tas:Alias><tas:PrivateKeyRequired>{private_key_required}</tas:PrivateKeyRequired>",
                base64::engine::general_purpose::STANDARD.encode(der),
                escape(alias)
            ),
        ),
    )
}

/// CreateCertificationPath from certificates uploaded before, the camera's own first.
pub fn create_certification_path(certificate_ids: &[String], alias: &str) -> Request {
    let ids: String = certificate_ids
        .iter()
        .map(|id| format!("<tas:CertificateID>{}</tas:CertificateID>", escape(id)))
        .collect();
    (
        action!("CreateCertificationPath"),
        wrap(
            "CreateCertificationPath",
            &format!(
                "<tas:CertificateIDs>{ids}</tas:CertificateIDs><tas:Alias>{}</tas:Alias>",
                escape(alias)
            ),
        ),
    )
}

/// GetAssignedServerCertificates: the certification paths the device's HTTPS serves now.
pub fn get_assigned_server_certificates() -> Request {
    (
        action!("GetAssignedServerCertificates"),
        wrap("GetAssignedServerCertificates", ""),
    )
}

/// AddServerCertificateAssignment: serve HTTPS with this certification path.
pub fn add_server_certificate_assignment(path_id: &str) -> Request {
    (
        action!("AddServerCertificateAssignment"),
        wrap(
            "AddServerCertificateAssignment",
            &format!(
                "<tas:CertificationPathID>{}</tas:CertificationPathID>",
                escape(path_id)
            ),
        ),
    )
}

/// ReplaceServerCertificateAssignment: serve HTTPS with `new` instead of `old`.
pub fn replace_server_certificate_assignment(old: &str, new: &str) -> Request {
    (
        action!("ReplaceServerCertificateAssignment"),
        wrap(
            "ReplaceServerCertificateAssignment",
            &format!(
                "<tas:OldCertificationPathID>{}</tas:OldCertificationPathID><tas:NewCertificationPathID>{}</tas:NewCertificationPathID>",
                escape(old),
                escape(new)
            ),
        ),
    )
}

fn id(node: roxmltree::Node<'_, '_>, local: &'static str) -> Result<String, OnvifError> {
    let text = xml::child_text(node, local).ok_or(OnvifError::Missing(local))?;
    if text.chars().count() > MAX_ID_CHARS {
        return Err(OnvifError::Malformed(format!(
            "the {local} is longer than {MAX_ID_CHARS} characters"
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(OnvifError::Malformed(format!(
            "the {local} holds control characters"
        )));
    }
    Ok(text)
}

fn der(node: roxmltree::Node<'_, '_>, local: &'static str) -> Result<Vec<u8>, OnvifError> {
    let text = xml::child_text(node, local).ok_or(OnvifError::Missing(local))?;
    // base64Binary may be wrapped over lines.
    let compact: String = text.split_ascii_whitespace().collect();
    if compact.len() > MAX_DER_BYTES / 3 * 4 + 4 {
        return Err(OnvifError::Malformed(format!(
            "the {local} is larger than {MAX_DER_BYTES} bytes"
        )));
    }
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| OnvifError::Malformed(format!("the {local} is not base64: {e}")))
}

/// The KeyID of a CreateRSAKeyPair answer.
pub fn parse_create_rsa_key_pair(text: &str) -> Result<String, OnvifError> {
    read_response(text, TAS, "CreateRSAKeyPairResponse", |r| id(r, "KeyID"))
}

/// The state of a key, from a GetKeyStatus answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    Ok,
    Generating,
    Corrupt,
}

pub fn parse_get_key_status(text: &str) -> Result<KeyStatus, OnvifError> {
    read_response(
        text,
        TAS,
        "GetKeyStatusResponse",
        |r| match xml::child_text(r, "KeyStatus").as_deref() {
            Some("ok") => Ok(KeyStatus::Ok),
            Some("generating") => Ok(KeyStatus::Generating),
            Some("corrupt") => Ok(KeyStatus::Corrupt),
            Some(other) => Err(OnvifError::Malformed(format!(
                "unknown key status '{}'",
                other.chars().take(32).collect::<String>()
            ))),
            None => Err(OnvifError::Missing("KeyStatus")),
        },
    )
}

/// The DER CSR of a CreatePKCS10CSR answer.
pub fn parse_create_pkcs10_csr(text: &str) -> Result<Vec<u8>, OnvifError> {
    read_response(text, TAS, "CreatePKCS10CSRResponse", |r| {
        der(r, "PKCS10CSR")
    })
}

/// The CertificateID of an UploadCertificate answer.
pub fn parse_upload_certificate(text: &str) -> Result<String, OnvifError> {
    read_response(text, TAS, "UploadCertificateResponse", |r| {
        id(r, "CertificateID")
    })
}

/// The CertificationPathID of a CreateCertificationPath answer.
pub fn parse_create_certification_path(text: &str) -> Result<String, OnvifError> {
    read_response(text, TAS, "CreateCertificationPathResponse", |r| {
        id(r, "CertificationPathID")
    })
}

/// The certification paths of a GetAssignedServerCertificates answer (none, one, or more on
/// devices that serve several).
pub fn parse_assigned_server_certificates(text: &str) -> Result<Vec<String>, OnvifError> {
    read_response(text, TAS, "GetAssignedServerCertificatesResponse", |r| {
        xml::children_any(r, "CertificationPathID")
            .map(|n| {
                let t = xml::text(n);
                if t.is_empty() || t.chars().count() > MAX_ID_CHARS {
                    Err(OnvifError::Malformed(
                        "a CertificationPathID is empty or too long".into(),
                    ))
                } else {
                    Ok(t.to_owned())
                }
            })
            .collect()
    })
}

/// An empty answer (Add/ReplaceServerCertificateAssignment).
pub fn parse_empty(text: &str, local: &'static str) -> Result<(), OnvifError> {
    read_response(text, TAS, local, |_| Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soap::SOAP12;

    fn env(body: &str) -> String {
        format!(
            r#"<s:Envelope xmlns:s="{SOAP12}" xmlns:tas="{TAS}"><s:Body>{body}</s:Body></s:Envelope>"#
        )
    }

    #[test]
    fn answers_are_read() {
        assert_eq!(
            parse_create_rsa_key_pair(&env(
                "<tas:CreateRSAKeyPairResponse><tas:KeyID>key-1</tas:KeyID><tas:EstimatedCreationTime>PT2S</tas:EstimatedCreationTime></tas:CreateRSAKeyPairResponse>"
            ))
            .unwrap(),
            "key-1"
        );
        assert_eq!(
            parse_get_key_status(&env(
                "<tas:GetKeyStatusResponse><tas:KeyStatus>generating</tas:KeyStatus></tas:GetKeyStatusResponse>"
            ))
            .unwrap(),
            KeyStatus::Generating
        );
        assert_eq!(
            parse_create_pkcs10_csr(&env(
                "<tas:CreatePKCS10CSRResponse><tas:PKCS10CSR>AQID\n BA==</tas:PKCS10CSR></tas:CreatePKCS10CSRResponse>"
            ))
            .unwrap(),
            vec![1, 2, 3, 4]
        );
        assert_eq!(
            parse_assigned_server_certificates(&env(
                "<tas:GetAssignedServerCertificatesResponse><tas:CertificationPathID>p1</tas:CertificationPathID><tas:CertificationPathID>p2</tas:CertificationPathID></tas:GetAssignedServerCertificatesResponse>"
            ))
            .unwrap(),
            vec!["p1".to_owned(), "p2".to_owned()]
        );
        assert!(
            parse_assigned_server_certificates(&env(
                "<tas:GetAssignedServerCertificatesResponse/>"
            ))
            .unwrap()
            .is_empty()
        );
        parse_empty(
            &env("<tas:AddServerCertificateAssignmentResponse/>"),
            "AddServerCertificateAssignmentResponse",
        )
        .unwrap();
    }

    #[test]
    fn bad_answers_are_clear_errors() {
        // Not base64.
        let e = parse_create_pkcs10_csr(&env(
            "<tas:CreatePKCS10CSRResponse><tas:PKCS10CSR>***</tas:PKCS10CSR></tas:CreatePKCS10CSRResponse>",
        ))
        .unwrap_err();
        assert!(e.to_string().contains("not base64"), "{e}");
        // A CSR far larger than any real one.
        let huge = "A".repeat(MAX_DER_BYTES * 2);
        let e = parse_create_pkcs10_csr(&env(&format!(
            "<tas:CreatePKCS10CSRResponse><tas:PKCS10CSR>{huge}</tas:PKCS10CSR></tas:CreatePKCS10CSRResponse>"
        )))
        .unwrap_err();
        assert!(e.to_string().contains("larger than"), "{e}");
        // Missing, overlong and control-character identifiers.
        assert!(matches!(
            parse_upload_certificate(&env("<tas:UploadCertificateResponse/>")),
            Err(OnvifError::Missing("CertificateID"))
        ));
        let long = "x".repeat(MAX_ID_CHARS + 1);
        assert!(
            parse_create_certification_path(&env(&format!(
                "<tas:CreateCertificationPathResponse><tas:CertificationPathID>{long}</tas:CertificationPathID></tas:CreateCertificationPathResponse>"
            )))
            .is_err()
        );
        assert!(
            parse_create_rsa_key_pair(&env(
                "<tas:CreateRSAKeyPairResponse><tas:KeyID>a&#7;b</tas:KeyID></tas:CreateRSAKeyPairResponse>"
            ))
            .is_err()
        );
        // An unknown key status, and an answer to another request.
        assert!(
            parse_get_key_status(&env(
                "<tas:GetKeyStatusResponse><tas:KeyStatus>maybe</tas:KeyStatus></tas:GetKeyStatusResponse>"
            ))
            .is_err()
        );
        assert!(matches!(
            parse_create_rsa_key_pair(&env("<tas:GetKeyStatusResponse/>")),
            Err(OnvifError::Unexpected { .. })
        ));
        // A fault is the device's refusal, with its reason.
        let e = parse_create_rsa_key_pair(&env(
            r#"<s:Fault><s:Code><s:Value>s:Receiver</s:Value></s:Code><s:Reason><s:Text xml:lang="en">keystore full</s:Text></s:Reason></s:Fault>"#,
        ))
        .unwrap_err();
        assert!(e.to_string().contains("keystore full"), "{e}");
    }

    #[test]
    fn requests_escape_what_they_carry() {
        let (action, body) = create_pkcs10_csr("k<1>", "cam&1");
        assert!(action.ends_with("/CreatePKCS10CSR"));
        assert!(body.contains("<tas:KeyID>k&lt;1&gt;</tas:KeyID>"), "{body}");
        assert!(body.contains("cam&amp;1"), "{body}");
        assert!(body.contains(SHA256_WITH_RSA));
        let (_, body) = upload_certificate(&[0xde, 0xad], "a", true);
        assert!(
            body.contains("<tas:Certificate>3q0=</tas:Certificate>"),
            "{body}"
        );
        let (_, body) = create_certification_path(&["c1".into(), "c2".into()], "p");
        assert!(body.contains("<tas:CertificateID>c1</tas:CertificateID><tas:CertificateID>c2"));
    }
}
