//! The archive's access key pair, read from a file only its owner may read. Keys never come
//! from the command line, the configuration file or a URL, and `Debug` never shows them.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Why the credentials file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read the archive credentials file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the archive credentials file {path} has mode {mode:04o}: others could read the keys; run `chmod 600 {path}`"
    )]
    Mode { path: PathBuf, mode: u32 },
    #[error("the archive credentials file {path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// An S3 access key id and secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    access_key_id: String,
    secret_access_key: String,
}

impl Credentials {
    /// Reads `access_key_id = "…"` and `secret_access_key = "…"` (TOML) from `path`, which
    /// must not be readable or writable by group or others.
    pub fn read(path: &Path) -> Result<Self, CredentialsError> {
        let read = |source| CredentialsError::Read {
            path: path.to_owned(),
            source,
        };
        let mode = std::fs::metadata(path).map_err(read)?.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(CredentialsError::Mode {
                path: path.to_owned(),
                mode,
            });
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        let invalid = |message: String| CredentialsError::Invalid {
            path: path.to_owned(),
            message,
        };
        // toml's message quotes the offending line, which may hold the secret: say only where.
        let file: File = toml::from_str(&text).map_err(|e| {
            invalid(match e.span() {
                Some(span) => format!(
                    "line {}: expected access_key_id = \"…\" and secret_access_key = \"…\"",
                    text[..span.start].matches('\n').count() + 1
                ),
                None => "expected access_key_id = \"…\" and secret_access_key = \"…\"".into(),
            })
        })?;
        let printable = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_graphic());
        if !printable(&file.access_key_id) {
            return Err(invalid(
                "access_key_id is empty or has spaces or control characters".into(),
            ));
        }
        if !printable(&file.secret_access_key) {
            return Err(invalid(
                "secret_access_key is empty or has spaces or control characters".into(),
            ));
        }
        Ok(Self {
            access_key_id: file.access_key_id,
            secret_access_key: file.secret_access_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str, mode: u32) -> PathBuf {
        let p = dir.join("keys");
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn keys_are_read_from_a_private_file_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "access_key_id = \"AKIDVIGIL\"\nsecret_access_key = \"s3cr3t/KEY+x\"\n",
            0o600,
        );
        let c = Credentials::read(&p).unwrap();
        assert_eq!(c.access_key_id, "AKIDVIGIL");
        assert_eq!(c.secret_access_key, "s3cr3t/KEY+x");
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }

    #[test]
    fn a_readable_or_malformed_file_is_refused_without_echoing_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "access_key_id = \"AKIDVIGIL\"\nsecret_access_key = \"s3cr3t\"\n",
            0o644,
        );
        let err = Credentials::read(&p).unwrap_err().to_string();
        assert!(
            err.contains("mode 0644") && err.contains("chmod 600"),
            "{err}"
        );
        for text in [
            "access_key_id = \"AKIDVIGIL\"\nsecret_access_key = s3cr3t-unquoted\n",
            "access_key_id = \"AKIDVIGIL\"\n",
            "access_key_id = \"AKIDVIGIL\"\nsecret_access_key = \"s3cr3t\"\nregion = \"x\"\n",
            "access_key_id = \"AK ID\"\nsecret_access_key = \"s3cr3t\"\n",
        ] {
            let p = write(dir.path(), text, 0o600);
            let err = Credentials::read(&p).unwrap_err().to_string();
            assert!(err.contains("is not valid"), "{text}: {err}");
            assert!(!err.contains("s3cr3t"), "{text}: {err}");
        }
        let missing = Credentials::read(&dir.path().join("none")).unwrap_err();
        assert!(matches!(missing, CredentialsError::Read { .. }));
    }
}
