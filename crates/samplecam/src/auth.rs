//! Optional camera credentials: HTTP Basic (RFC 7617) and Digest with MD5 (RFC 2617, as
//! RTSP cameras and clients such as retina and ffmpeg implement it), so tests can exercise a
//! recorder's credential handling against a camera that really checks them.
//!
//! Passwords never reach a log line or an error message; comparisons are constant-time.

use std::fmt;

use base64::Engine as _;
use md5::{Digest as _, Md5};

/// Which challenge the camera sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthScheme {
    Basic,
    Digest,
}

/// Credentials the camera demands of every request except `OPTIONS`.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthConfig {
    pub scheme: AuthScheme,
    pub username: String,
    pub password: String,
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("scheme", &self.scheme)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Realm announced in challenges.
pub(crate) const REALM: &str = "Vigil sample camera";

/// The outcome of checking an `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuthOutcome {
    Granted,
    /// No or unusable credentials; the reason is safe to log (it never contains secrets).
    Denied(String),
}

impl AuthConfig {
    /// The `WWW-Authenticate` value for a 401 on a connection using `nonce`.
    pub(crate) fn challenge(&self, nonce: &str) -> String {
        match self.scheme {
            AuthScheme::Basic => format!("Basic realm=\"{REALM}\""),
            AuthScheme::Digest => {
                format!("Digest realm=\"{REALM}\", nonce=\"{nonce}\", algorithm=MD5")
            }
        }
    }

    /// Checks a request's `Authorization` header. `nonce` is the one this connection issued.
    pub(crate) fn check(&self, header: Option<&str>, method: &str, nonce: &str) -> AuthOutcome {
        let Some(header) = header else {
            return AuthOutcome::Denied("no Authorization header".into());
        };
        let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header, ""));
        match self.scheme {
            AuthScheme::Basic if scheme.eq_ignore_ascii_case("Basic") => self.check_basic(rest),
            AuthScheme::Digest if scheme.eq_ignore_ascii_case("Digest") => {
                self.check_digest(rest, method, nonce)
            }
            _ => AuthOutcome::Denied(format!(
                "Authorization scheme {:?} offered where {:?} is required",
                scheme.chars().take(16).collect::<String>(),
                self.scheme
            )),
        }
    }

    fn check_basic(&self, encoded: &str) -> AuthOutcome {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return AuthOutcome::Denied("Basic credentials are not valid base64".into());
        };
        let expected = format!("{}:{}", self.username, self.password);
        if constant_time_eq(&decoded, expected.as_bytes()) {
            AuthOutcome::Granted
        } else {
            AuthOutcome::Denied("wrong Basic username or password".into())
        }
    }

    fn check_digest(&self, params: &str, method: &str, nonce: &str) -> AuthOutcome {
        let params = match parse_auth_params(params) {
            Ok(p) => p,
            Err(why) => return AuthOutcome::Denied(format!("malformed Digest header: {why}")),
        };
        let get = |key: &str| {
            params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.as_str())
        };
        let (Some(username), Some(got_nonce), Some(uri), Some(response)) =
            (get("username"), get("nonce"), get("uri"), get("response"))
        else {
            return AuthOutcome::Denied(
                "Digest header lacks username, nonce, uri or response".into(),
            );
        };
        if let Some(algorithm) = get("algorithm")
            && !algorithm.eq_ignore_ascii_case("MD5")
        {
            return AuthOutcome::Denied("only the MD5 Digest algorithm is offered".into());
        }
        if get("realm") != Some(REALM) {
            return AuthOutcome::Denied("Digest realm does not match".into());
        }
        if !constant_time_eq(got_nonce.as_bytes(), nonce.as_bytes()) {
            return AuthOutcome::Denied("Digest nonce was not issued on this connection".into());
        }
        let ha1 = md5_hex(&format!("{username}:{REALM}:{}", self.password));
        let ha2 = md5_hex(&format!("{method}:{uri}"));
        let expected = match get("qop") {
            None => md5_hex(&format!("{ha1}:{nonce}:{ha2}")),
            Some(qop) if qop.eq_ignore_ascii_case("auth") => {
                let (Some(nc), Some(cnonce)) = (get("nc"), get("cnonce")) else {
                    return AuthOutcome::Denied("Digest qop=auth without nc or cnonce".into());
                };
                md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"))
            }
            Some(_) => return AuthOutcome::Denied("unsupported Digest qop".into()),
        };
        let user_ok = constant_time_eq(username.as_bytes(), self.username.as_bytes());
        let response_ok = constant_time_eq(
            response.to_ascii_lowercase().as_bytes(),
            expected.as_bytes(),
        );
        if user_ok && response_ok {
            AuthOutcome::Granted
        } else {
            AuthOutcome::Denied("wrong Digest username or password".into())
        }
    }
}

fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Parses `key=value, key="quoted \" value"` lists (RFC 7235 auth-param).
pub fn parse_auth_params(input: &str) -> Result<Vec<(String, String)>, String> {
    const MAX_PARAMS: usize = 32;
    let mut out = Vec::new();
    let mut rest = input.trim_start();
    while !rest.is_empty() {
        if out.len() == MAX_PARAMS {
            return Err(format!("more than {MAX_PARAMS} parameters"));
        }
        let eq = rest
            .find('=')
            .ok_or_else(|| "parameter without '='".to_string())?;
        let key = rest[..eq].trim();
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("parameter name is not a token".into());
        }
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, escaped)) => v.push(escaped),
                        None => break,
                    },
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    c => v.push(c),
                }
            }
            let end = end.ok_or_else(|| "unterminated quoted string".to_string())?;
            value = v;
            rest = quoted[end + 1..].trim_start();
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_string();
            rest = &rest[end..];
        }
        out.push((key.to_string(), value));
        match rest.strip_prefix(',') {
            Some(after) => rest = after.trim_start(),
            None if rest.is_empty() => {}
            None => return Err("expected ',' between parameters".into()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> AuthConfig {
        AuthConfig {
            scheme: AuthScheme::Digest,
            username: "cam".into(),
            password: "s3cret".into(),
        }
    }

    #[test]
    fn debug_redacts_password() {
        assert!(!format!("{:?}", digest()).contains("s3cret"));
    }

    #[test]
    fn auth_params() {
        let p =
            parse_auth_params(r#"username="a\"b", realm="r, x",nc=00000001 , qop=auth"#).unwrap();
        assert_eq!(
            p,
            vec![
                ("username".into(), "a\"b".into()),
                ("realm".into(), "r, x".into()),
                ("nc".into(), "00000001".into()),
                ("qop".into(), "auth".into()),
            ]
        );
        for bad in [
            r#"a="unterminated"#,
            "novalue",
            "=x",
            r#"a="b" c="d""#,
            "a b=c",
        ] {
            assert!(parse_auth_params(bad).is_err(), "{bad}");
        }
        let many = (0..40)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        assert!(parse_auth_params(&many).is_err());
    }

    #[test]
    fn digest_rfc2617_example_shape() {
        let cfg = digest();
        let nonce = "abc123";
        let uri = "rtsp://127.0.0.1/sample";
        let ha1 = md5_hex("cam:Vigil sample camera:s3cret");
        let ha2 = md5_hex(&format!("DESCRIBE:{uri}"));
        let good = md5_hex(&format!("{ha1}:{nonce}:{ha2}"));
        let header = |user: &str, nonce: &str, response: &str| {
            format!(
                r#"Digest username="{user}", realm="{REALM}", nonce="{nonce}", uri="{uri}", response="{response}""#
            )
        };
        assert_eq!(
            cfg.check(Some(&header("cam", nonce, &good)), "DESCRIBE", nonce),
            AuthOutcome::Granted
        );
        // Same response for another method, user or nonce is refused.
        for (h, m) in [
            (header("cam", nonce, &good), "SETUP"),
            (header("bob", nonce, &good), "DESCRIBE"),
            (header("cam", "other", &good), "DESCRIBE"),
            (header("cam", nonce, &"0".repeat(32)), "DESCRIBE"),
        ] {
            assert!(matches!(
                cfg.check(Some(&h), m, nonce),
                AuthOutcome::Denied(_)
            ));
        }
        // qop=auth variant.
        let qop = md5_hex(&format!("{ha1}:{nonce}:00000001:xyz:auth:{ha2}"));
        let h = format!(
            r#"Digest username="cam", realm="{REALM}", nonce="{nonce}", uri="{uri}", response="{qop}", qop=auth, nc=00000001, cnonce="xyz""#
        );
        assert_eq!(cfg.check(Some(&h), "DESCRIBE", nonce), AuthOutcome::Granted);
        let denied = cfg.check(Some("Basic Y2FtOnMzY3JldA=="), "DESCRIBE", nonce);
        assert!(matches!(denied, AuthOutcome::Denied(ref why) if !why.contains("s3cret")));
        assert!(matches!(
            cfg.check(None, "DESCRIBE", nonce),
            AuthOutcome::Denied(_)
        ));
        assert!(cfg.challenge(nonce).contains("nonce=\"abc123\""));
    }

    #[test]
    fn basic() {
        let cfg = AuthConfig {
            scheme: AuthScheme::Basic,
            ..digest()
        };
        // base64("cam:s3cret")
        assert_eq!(
            cfg.check(Some("Basic Y2FtOnMzY3JldA=="), "PLAY", ""),
            AuthOutcome::Granted
        );
        for bad in [
            "Basic Y2FtOndyb25n",
            "Basic !!!",
            "Basic",
            "Digest x=y",
            "ÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄ x",
            "",
        ] {
            assert!(
                matches!(cfg.check(Some(bad), "PLAY", ""), AuthOutcome::Denied(_)),
                "{bad}"
            );
        }
    }
}
