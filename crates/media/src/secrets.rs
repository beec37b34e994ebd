//! Secrets at rest (camera passwords): sealed with XChaCha20-Poly1305 under a per-installation
//! key file (`keys/secrets.key`, mode 0600) so a copied database alone does not reveal them.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

const KEY_FILE: &str = "secrets.key";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read or write the secrets key {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the secrets key {0} is damaged (expected 32 bytes); restore it from backup, or re-enter camera passwords after replacing it"
    )]
    BadKey(PathBuf),
    #[error("a stored secret cannot be decrypted ({0}); was keys/secrets.key replaced?")]
    Corrupt(String),
}

/// Seals and opens small secrets with the installation's key.
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl SecretBox {
    /// Creates the key file (0600, never overwritten) if it does not exist.
    pub fn create_key(keys_dir: &Path) -> Result<(), SecretError> {
        let path = keys_dir.join(KEY_FILE);
        if path.exists() {
            return Ok(());
        }
        let key: [u8; 32] = rand::random();
        let io = |source| SecretError::Io {
            path: path.clone(),
            source,
        };
        let mut f = OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        f.write_all(&key).and_then(|_| f.sync_all()).map_err(io)?;
        Ok(())
    }

    pub fn open(keys_dir: &Path) -> Result<Self, SecretError> {
        let path = keys_dir.join(KEY_FILE);
        let key = fs::read(&path).map_err(|source| SecretError::Io {
            path: path.clone(),
            source,
        })?;
        let cipher =
            XChaCha20Poly1305::new_from_slice(&key).map_err(|_| SecretError::BadKey(path))?;
        Ok(Self { cipher })
    }

    /// Returns nonce || ciphertext.
    pub fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, SecretError> {
        let nonce: [u8; 24] = rand::random();
        let ct = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), plain)
            .map_err(|e| SecretError::Corrupt(e.to_string()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub fn open_sealed(&self, sealed: &[u8]) -> Result<Vec<u8>, SecretError> {
        if sealed.len() < 24 + 16 {
            return Err(SecretError::Corrupt("too short".into()));
        }
        let (nonce, ct) = sealed.split_at(24);
        self.cipher
            .decrypt(XNonce::from_slice(nonce), ct)
            .map_err(|_| SecretError::Corrupt("authentication failed".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn seal_open_and_tamper() {
        let dir = tempfile::tempdir().unwrap();
        SecretBox::create_key(dir.path()).unwrap();
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = SecretBox::open(dir.path()).unwrap();
        let sealed = b.seal(b"hunter2-camera").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(b.open_sealed(&sealed).unwrap(), b"hunter2-camera");
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(b.open_sealed(&bad).is_err());
        assert!(b.open_sealed(b"short").is_err());
        fs::write(dir.path().join(KEY_FILE), b"short").unwrap();
        assert!(matches!(
            SecretBox::open(dir.path()),
            Err(SecretError::BadKey(_))
        ));
    }
}
