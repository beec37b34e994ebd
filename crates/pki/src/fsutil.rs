//! Crash-safe file writes for the PKI directory. Secrets are created with mode 0600 from the
//! first byte (no chmod afterwards, so there is no window where another user could open them),
//! and every file is replaced by rename so a crash leaves either the old or the new version.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{PkiError, Result};

/// File mode of private keys.
pub const SECRET_MODE: u32 = 0o600;
/// File mode of certificates and state (public material).
pub const PUBLIC_MODE: u32 = 0o644;

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PkiError {
    let path = path.to_path_buf();
    move |source| PkiError::Io {
        action,
        path,
        source,
    }
}

/// Creates `dir` (and parents) with mode 0700 if it does not exist; an existing directory is
/// tightened to 0700 because it holds private keys.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io("cannot create directory", dir))?;
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(io("cannot restrict permissions of", dir))
}

/// Writes a private key (or any secret) atomically with mode 0600.
pub fn write_secret(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, bytes, SECRET_MODE)
}

/// Writes public material (certificates, state) atomically with mode 0644.
pub fn write_public(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, bytes, PUBLIC_MODE)
}

fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let tmp = tmp_path(path);
    // A leftover temp file from a crash would make create_new fail; it holds nothing we need.
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io("cannot create", &tmp))?;
    f.write_all(bytes).map_err(io("cannot write", &tmp))?;
    f.sync_all().map_err(io("cannot sync", &tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io("cannot replace", path))?;
    if let Some(parent) = path.parent()
        && let Ok(d) = fs::File::open(parent)
    {
        // Persist the rename itself; failure only weakens crash safety, not correctness.
        let _ = d.sync_all();
    }
    Ok(())
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Reads a file that must exist.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(io("cannot read", path))
}

/// Reads a UTF-8 file that must exist.
pub fn read_string(path: &Path) -> Result<String> {
    let bytes = read(path)?;
    String::from_utf8(bytes).map_err(|_| PkiError::Corrupt {
        path: path.to_path_buf(),
        reason: "not UTF-8 text".into(),
    })
}

/// Removes a file; a file that is already gone is fine.
pub fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(PkiError::Io {
            action: "cannot delete",
            path: path.to_path_buf(),
            source: e,
        }),
    }
}
