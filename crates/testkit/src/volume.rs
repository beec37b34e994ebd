//! Small real volumes for disk-full tests: a tmpfs of a given size, and a way to fill it from
//! the test process (another process than the Vigil under test).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::tools::require_tool;

/// A tmpfs mounted under a temporary directory, unmounted (lazily) on drop. Mounting needs
/// root, which CI has.
pub struct Tmpfs {
    _base: tempfile::TempDir,
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (mount's syntax: `12m`, `64k`).
    pub fn mount(size: &str) -> Self {
        require_tool("mount");
        let base = tempfile::tempdir().unwrap();
        let path = base.path().join("vol");
        std::fs::create_dir(&path).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "vigil-test"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(
            st.success(),
            "mounting a tmpfs needs root (CI runs as root)"
        );
        Self { _base: base, path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Takes every free byte of the volume holding `dir` with a file named `filler.bin`, as another
/// program would, and returns its path (remove it to give the space back).
pub fn fill_volume(dir: &Path) -> PathBuf {
    let path = dir.join("filler.bin");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0x5au8; 64 * 1024];
    while f.write(&chunk).is_ok_and(|n| n > 0) {}
    // Byte-sized writes take the last partial block too.
    while f.write(&[0]).is_ok_and(|n| n == 1) {}
    path
}
