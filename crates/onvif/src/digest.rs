//! HTTP Digest authentication (RFC 7616) in front of a device's ONVIF services: which of the
//! challenges a 401 answer's `WWW-Authenticate` fields offer Vigil answers (Digest with
//! `qop=auth`, SHA-256 before SHA-512/256 before MD5; never Basic, which would send the
//! password itself), and the `Authorization` value for a request. Parsing and the response
//! computation are the `http-auth` crate's (already in the build for RTSP through retina);
//! this module bounds what it is given and chooses. docs/design/onvif.md, "HTTP Digest".

use http_auth::digest::{Algorithm, DigestClient, Qop};

use crate::wssec::Credentials;

/// The most `WWW-Authenticate` text read from one answer (all its fields together).
pub const MAX_CHALLENGE_BYTES: usize = 4096;
/// The most challenges looked at in one answer.
pub const MAX_CHALLENGES: usize = 16;

/// Why a device's `WWW-Authenticate` cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("its WWW-Authenticate header is longer than {MAX_CHALLENGE_BYTES} bytes")]
    TooLong,
    #[error("its WWW-Authenticate header is not a list of challenges: {0}")]
    Malformed(String),
    #[error(
        "it offers no HTTP Digest challenge with qop=auth (it offers: {0}); Vigil does not send Basic credentials, which carry the password itself"
    )]
    NoUsableDigest(String),
}

/// A Digest challenge chosen from a device's answer; answers requests with a counted nonce.
pub struct DigestChallenge {
    client: DigestClient,
}

impl std::fmt::Debug for DigestChallenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestChallenge")
            .field("realm", &self.client.realm())
            .field("algorithm", &self.client.algorithm())
            .field("session", &self.client.session())
            .finish_non_exhaustive()
    }
}

fn strength(c: &DigestClient) -> u8 {
    match c.algorithm() {
        Algorithm::Sha256 => 3,
        Algorithm::Sha512Trunc256 => 2,
        Algorithm::Md5 => 1,
        _ => 0,
    }
}

/// Chooses the challenge to answer from the `WWW-Authenticate` fields of one answer (joined
/// with `, `, as a list of challenges may be spread over several fields).
pub fn choose(header: &str) -> Result<DigestChallenge, DigestError> {
    if header.len() > MAX_CHALLENGE_BYTES {
        return Err(DigestError::TooLong);
    }
    let challenges = http_auth::parse_challenges(header)
        .map_err(|e| DigestError::Malformed(cut(&e.to_string(), 200)))?;
    let mut best: Option<DigestClient> = None;
    let mut offered = Vec::new();
    for c in challenges.iter().take(MAX_CHALLENGES) {
        let mut name = cut(c.scheme, 32);
        if c.scheme.eq_ignore_ascii_case("Digest") {
            match DigestClient::try_from(c) {
                // RFC 2069 (no qop) and auth-int-only challenges are not answered.
                Ok(d) if !d.rfc2069_compat() && d.qop() & Qop::Auth => {
                    if best.as_ref().is_none_or(|b| strength(&d) > strength(b)) {
                        best = Some(d);
                    }
                    continue;
                }
                Ok(d) if d.rfc2069_compat() => name.push_str(" without qop"),
                Ok(_) => name.push_str(" without qop=auth"),
                Err(e) => name.push_str(&format!(" ({})", cut(&e, 80))),
            }
        }
        offered.push(name);
    }
    best.map(|client| DigestChallenge { client })
        .ok_or_else(|| {
            DigestError::NoUsableDigest(if offered.is_empty() {
                "nothing".into()
            } else {
                offered.join(", ")
            })
        })
}

impl DigestChallenge {
    /// The `Authorization` value (`qop=auth`) for a request with this method and request
    /// target (path and query, as the request line has it); each call counts the nonce up.
    pub fn authorization(
        &mut self,
        credentials: &Credentials,
        method: &str,
        uri: &str,
    ) -> Result<String, DigestError> {
        self.client
            .respond(&http_auth::PasswordParams {
                username: &credentials.username,
                password: credentials.password(),
                uri,
                method,
                // No body: the response is always qop=auth, even where auth-int is offered
                // too (the SOAP body is protected by TLS or not at all, not by this).
                body: None,
            })
            .map_err(|e| DigestError::Malformed(cut(&e, 200)))
    }

    /// `MD5`, `SHA-256` or `SHA-512-256` (`-sess` for the session variants).
    pub fn algorithm(&self) -> String {
        let a = match self.client.algorithm() {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha512Trunc256 => "SHA-512-256",
            _ => "unknown",
        };
        if self.client.session() {
            format!("{a}-sess")
        } else {
            a.to_owned()
        }
    }
}

fn cut(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials::new("admin", "pw")
    }

    /// The response as RFC 7616 section 3.4.1 computes it, by hand.
    fn expected(alg: &str, realm: &str, nonce: &str, cnonce: &str, uri: &str) -> String {
        use sha2::Digest as _;
        let h = |s: String| -> String {
            match alg {
                "MD5" => hex::encode(md5_of(s.as_bytes())),
                _ => hex::encode(sha2::Sha256::digest(s.as_bytes())),
            }
        };
        let ha1 = h(format!("admin:{realm}:pw"));
        let ha2 = h(format!("POST:{uri}"));
        h(format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}"))
    }

    fn md5_of(b: &[u8]) -> Vec<u8> {
        use md5::Digest as _;
        md5::Md5::digest(b).to_vec()
    }

    fn param<'a>(header: &'a str, key: &str) -> &'a str {
        // Each parameter follows a space (`cnonce=` is not `nonce=`).
        let start = header
            .find(&format!(" {key}="))
            .unwrap_or_else(|| panic!("{key} in {header}"))
            + key.len()
            + 2;
        let rest = &header[start..];
        let rest = rest.strip_prefix('"').unwrap_or(rest);
        let end = rest.find(['"', ',']).unwrap_or(rest.len());
        &rest[..end]
    }

    #[test]
    fn sha256_is_chosen_over_md5_and_answered_as_rfc_7616_computes() {
        let header = r#"Digest realm="cam", nonce="n1", qop="auth", algorithm=MD5, Basic realm="cam", Digest realm="cam", nonce="n2", qop="auth,auth-int", algorithm=SHA-256, opaque="o""#;
        let mut c = choose(header).unwrap();
        assert_eq!(c.algorithm(), "SHA-256");
        let a = c
            .authorization(&creds(), "POST", "/onvif/device_service")
            .unwrap();
        assert!(a.starts_with("Digest "), "{a}");
        assert_eq!(param(&a, "nonce"), "n2");
        assert_eq!(param(&a, "opaque"), "o");
        assert_eq!(param(&a, "qop"), "auth");
        assert_eq!(param(&a, "nc"), "00000001");
        let cnonce = param(&a, "cnonce");
        assert_eq!(
            param(&a, "response"),
            expected("SHA-256", "cam", "n2", cnonce, "/onvif/device_service")
        );
        assert!(!a.contains("pw\""), "{a}");
        // The nonce count goes up per request.
        let b = c
            .authorization(&creds(), "POST", "/onvif/device_service")
            .unwrap();
        assert_eq!(param(&b, "nc"), "00000002");
    }

    #[test]
    fn md5_alone_is_answered() {
        let mut c = choose(r#"Digest realm="r", nonce="abc", qop=auth"#).unwrap();
        assert_eq!(c.algorithm(), "MD5");
        let a = c.authorization(&creds(), "POST", "/onvif/x").unwrap();
        let cnonce = param(&a, "cnonce");
        assert_eq!(
            param(&a, "response"),
            expected("MD5", "r", "abc", cnonce, "/onvif/x")
        );
    }

    #[test]
    fn challenges_vigil_does_not_answer_are_refused_saying_what_was_offered() {
        for (header, says) in [
            (r#"Basic realm="cam""#, "Basic"),
            (r#"Digest realm="cam", nonce="n""#, "Digest without qop"),
            (
                r#"Digest realm="cam", nonce="n", qop="auth-int""#,
                "Digest without qop=auth",
            ),
            (
                r#"Digest realm="cam", nonce="n", qop=auth, algorithm=SHA-1"#,
                "unknown algorithm",
            ),
            (r#"Digest realm="cam", qop=auth"#, "Digest ("),
            ("Negotiate, NTLM", "Negotiate, NTLM"),
        ] {
            let e = choose(header).unwrap_err();
            assert!(
                matches!(&e, DigestError::NoUsableDigest(s) if s.contains(says)),
                "{header}: {e}"
            );
        }
    }

    #[test]
    fn malformed_and_oversized_headers_are_refused() {
        for bad in [
            "",
            "Digest realm=\"unterminated",
            "Digest realm=\"a\" nonce=\"b\"",
            "Digest ,,, =",
            "Digest realm=\"a\", nonce=\"b\", qop=auth, error error",
            "\u{0}Digest",
            "Digest realm=\"\u{7f}\"",
        ] {
            assert!(choose(bad).is_err(), "{bad:?}");
        }
        let huge = format!(
            "Digest realm=\"{}\", nonce=\"n\", qop=auth",
            "a".repeat(MAX_CHALLENGE_BYTES)
        );
        assert_eq!(choose(&huge).unwrap_err(), DigestError::TooLong);
        // Many challenges: only the first MAX_CHALLENGES are looked at.
        let many = vec!["Basic realm=\"x\""; MAX_CHALLENGES].join(", ")
            + ", Digest realm=\"r\", nonce=\"n\", qop=auth";
        assert!(matches!(choose(&many), Err(DigestError::NoUsableDigest(_))));
    }
}
