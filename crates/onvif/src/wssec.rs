//! WS-Security UsernameToken with PasswordDigest (OASIS Username Token Profile 1.0, as ONVIF
//! requires): the password itself never crosses the network, only
//! Base64(SHA-1(nonce + created + password)) with a fresh nonce per request.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sha1::{Digest, Sha1};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use zeroize::Zeroizing;

use crate::xml::escape;

const WSSE: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
const WSU: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
const DIGEST: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest";
const BASE64: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary";

/// An ONVIF user name and password. The password is wiped from memory when dropped and never
/// printed (`Debug` shows only the user name).
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    password: Zeroizing<String>,
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials {
            username: username.into(),
            password: Zeroizing::new(password.into()),
        }
    }

    pub fn password(&self) -> &str {
        &self.password
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// Base64(SHA-1(nonce + created + password)).
pub fn password_digest(nonce: &[u8], created: &str, password: &str) -> String {
    let mut h = Sha1::new();
    h.update(nonce);
    h.update(created.as_bytes());
    h.update(password.as_bytes());
    B64.encode(h.finalize())
}

/// The `wsse:Security` header for `creds` at the device's time `now` (the caller corrects
/// this server's clock by the offset the device reported, since devices refuse a `Created`
/// far from their own clock).
pub fn security_header(creds: &Credentials, now: OffsetDateTime) -> String {
    let nonce: [u8; 16] = rand::random();
    let created = now
        .replace_nanosecond(0)
        .unwrap_or(now)
        .format(&Rfc3339)
        .unwrap_or_default();
    header_with(creds, &nonce, &created)
}

fn header_with(creds: &Credentials, nonce: &[u8], created: &str) -> String {
    format!(
        concat!(
            r#"<wsse:Security s:mustUnderstand="1" xmlns:wsse="{wsse}" xmlns:wsu="{wsu}">"#,
            "<wsse:UsernameToken><wsse:Username>{user}</wsse:Username>",
            r#"<wsse:Password Type="{digest_type}">{digest}</wsse:Password>"#,
            r#"<wsse:Nonce EncodingType="{b64}">{nonce}</wsse:Nonce>"#,
            "<wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security>"
        ),
        wsse = WSSE,
        wsu = WSU,
        user = escape(&creds.username),
        digest_type = DIGEST,
        digest = password_digest(nonce, created, creds.password()),
        b64 = BASE64,
        nonce = B64.encode(nonce),
        created = created,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_matches_the_onvif_programmers_guide_example() {
        let nonce = B64.decode("LKqI6G/AikKCQrN0zqZFlg==").unwrap();
        assert_eq!(
            password_digest(&nonce, "2010-09-16T07:50:45Z", "userpassword"),
            "tuOSpGlFlIXsozq4HFNeeGeFLEI="
        );
    }

    #[test]
    fn the_header_never_holds_the_password_and_debug_hides_it() {
        let creds = Credentials::new("admin<1>", "s3cret-pass");
        let h = security_header(&creds, OffsetDateTime::UNIX_EPOCH);
        assert!(!h.contains("s3cret-pass"), "{h}");
        assert!(
            h.contains("<wsse:Username>admin&lt;1&gt;</wsse:Username>"),
            "{h}"
        );
        assert!(
            h.contains("<wsu:Created>1970-01-01T00:00:00Z</wsu:Created>"),
            "{h}"
        );
        assert!(!format!("{creds:?}").contains("s3cret"));
        // A fresh nonce each time, so a captured header cannot be replayed as is.
        assert_ne!(h, security_header(&creds, OffsetDateTime::UNIX_EPOCH));
    }
}
