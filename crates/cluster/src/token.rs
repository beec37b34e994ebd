//! One-time enrolment tokens: their text form, parsing of what a joining server or an admin
//! hands in, and the hash the registry keeps instead of the secret (docs/design/cluster.md).
//!
//! Text form: `vjt1.<id>.<secret>.<ca>` with `id` 16 lower-case hex digits (8 random bytes,
//! names the registry row), `secret` 64 hex digits (32 random bytes) and `ca` the SHA-256 of
//! the installation CA certificate's DER in 64 hex digits. The CA hash lets the joining server
//! verify the management server's certificate on first contact, as kubeadm's
//! `--discovery-token-ca-cert-hash` does; the secret proves the admin handed the token over.
//! A fast hash is enough for the secret: it is 256 random bits, not a password.

use std::fmt;

use crate::hex;

/// Leading label of every token; a later format gets a new one.
pub const PREFIX: &str = "vjt1";
const ID_HEX: usize = 16;
const SECRET_HEX: usize = 64;
const CA_HEX: usize = 64;
/// Longest text accepted before parsing (a token is 150 characters).
pub const MAX_TOKEN_TEXT: usize = 512;

/// Why a token text was refused. Messages never contain the token or its secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the enrolment token is empty: pass the file `vigil server token create` wrote")]
    Empty,
    #[error(
        "the enrolment token is {0} characters long; a token has 150: check the file holds only the token"
    )]
    TooLong(usize),
    #[error(
        "not a Vigil enrolment token (it must start with \"{PREFIX}.\" and have four dot-separated parts): create one with `vigil server token create NAME` on the management server"
    )]
    Format,
    #[error(
        "the enrolment token's {part} must be {len} lower-case hex digits: the token was cut or altered; create a new one"
    )]
    Part { part: &'static str, len: usize },
}

/// A parsed enrolment token. `Debug` and `Display` of the secret are never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    id: String,
    secret: [u8; 32],
    ca_sha256: [u8; 32],
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("id", &self.id)
            .field("ca_sha256", &hex::encode(&self.ca_sha256))
            .finish_non_exhaustive()
    }
}

impl JoinToken {
    /// A new token for the installation whose CA certificate hashes to `ca_sha256`.
    pub fn generate(ca_sha256: [u8; 32]) -> Result<Self, crate::Error> {
        let mut id = [0u8; ID_HEX / 2];
        let mut secret = [0u8; 32];
        crate::random(&mut id)?;
        crate::random(&mut secret)?;
        Ok(JoinToken {
            id: hex::encode(&id),
            secret,
            ca_sha256,
        })
    }

    /// Parses a token as an admin or a file hands it in; surrounding white space (a file's
    /// final newline) is ignored.
    pub fn parse(text: &str) -> Result<Self, TokenError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(TokenError::Empty);
        }
        if text.len() > MAX_TOKEN_TEXT {
            return Err(TokenError::TooLong(text.chars().count()));
        }
        let mut parts = text.split('.');
        let (Some(PREFIX), Some(id), Some(secret), Some(ca), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(TokenError::Format);
        };
        let id_bytes: [u8; ID_HEX / 2] = hex::decode_exact(id).ok_or(TokenError::Part {
            part: "id",
            len: ID_HEX,
        })?;
        let secret = hex::decode_exact(secret).ok_or(TokenError::Part {
            part: "secret",
            len: SECRET_HEX,
        })?;
        let ca_sha256 = hex::decode_exact(ca).ok_or(TokenError::Part {
            part: "CA fingerprint",
            len: CA_HEX,
        })?;
        Ok(JoinToken {
            id: hex::encode(&id_bytes),
            secret,
            ca_sha256,
        })
    }

    /// The token's text, to show once and hand to the joining server's admin.
    pub fn expose(&self) -> String {
        format!(
            "{PREFIX}.{}.{}.{}",
            self.id,
            hex::encode(&self.secret),
            hex::encode(&self.ca_sha256)
        )
    }

    /// Names the registry row; not secret (audit entries carry it).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// SHA-256 of the installation CA certificate the management server must present.
    pub fn ca_sha256(&self) -> &[u8; 32] {
        &self.ca_sha256
    }

    /// What the registry stores: SHA-256 of the secret, hex.
    pub fn secret_hash(&self) -> String {
        secret_hash(&self.secret)
    }

    /// Whether this token's secret hashes to `stored` (constant time).
    pub fn secret_matches(&self, stored: &str) -> bool {
        let mine = self.secret_hash();
        aws_lc_rs::constant_time::verify_slices_are_equal(mine.as_bytes(), stored.as_bytes())
            .is_ok()
    }
}

fn secret_hash(secret: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> JoinToken {
        JoinToken::generate([7; 32]).unwrap()
    }

    #[test]
    fn round_trip_and_hash() {
        let t = token();
        let text = t.expose();
        assert_eq!(text.len(), 4 + 1 + 16 + 1 + 64 + 1 + 64);
        let back = JoinToken::parse(&format!("  {text}\n")).unwrap();
        assert_eq!(back, t);
        assert!(back.secret_matches(&t.secret_hash()));
        assert!(!token().secret_matches(&t.secret_hash()));
        assert_eq!(back.ca_sha256(), &[7; 32]);
        // The secret is never printed by Debug.
        let dbg = format!("{t:?}");
        assert!(!dbg.contains(&hex::encode(&t.secret)), "{dbg}");
    }

    #[test]
    fn refuses_malformed_tokens_with_reasons() {
        let good = token().expose();
        let parts: Vec<&str> = good.split('.').collect();
        let cases: Vec<(String, TokenError)> = vec![
            (String::new(), TokenError::Empty),
            ("  \n".into(), TokenError::Empty),
            ("x".repeat(600), TokenError::TooLong(600)),
            ("hello".into(), TokenError::Format),
            (good.replacen("vjt1", "vjt2", 1), TokenError::Format),
            (format!("{good}.extra"), TokenError::Format),
            (parts[..3].join("."), TokenError::Format),
            (
                format!("vjt1.{}.{}.{}", &parts[1][1..], parts[2], parts[3]),
                TokenError::Part {
                    part: "id",
                    len: 16,
                },
            ),
            (
                format!("vjt1.{}.{}.{}", parts[1], parts[2].to_uppercase(), parts[3]),
                TokenError::Part {
                    part: "secret",
                    len: 64,
                },
            ),
            (
                format!("vjt1.{}.{}z.{}", parts[1], &parts[2][1..], parts[3]),
                TokenError::Part {
                    part: "secret",
                    len: 64,
                },
            ),
            (
                format!("vjt1.{}.{}.{}00", parts[1], parts[2], parts[3]),
                TokenError::Part {
                    part: "CA fingerprint",
                    len: 64,
                },
            ),
            (
                format!("vjt1.{}.{}.{}", parts[1], parts[2], "é".repeat(32)),
                TokenError::Part {
                    part: "CA fingerprint",
                    len: 64,
                },
            ),
        ];
        for (text, want) in cases {
            let got = JoinToken::parse(&text).unwrap_err();
            assert_eq!(got, want, "{text:?}");
            // No message repeats the secret.
            assert!(!got.to_string().contains(parts[2]));
        }
    }
}
