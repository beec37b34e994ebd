//! Embeds the source commit in the binary for `vigil --version` and `vigil version`
//! (docs/metrics.md, "Version and source commit"), so a flaw in a dependency can be traced to
//! the installations that run it. `VIGIL_COMMIT` overrides it for builds from a tarball
//! without `.git`; without either the commit reads "unknown".

use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8(out.stdout).ok()?.trim().to_owned())
}

fn main() {
    println!("cargo:rerun-if-env-changed=VIGIL_COMMIT");
    let dir =
        std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let commit = match std::env::var("VIGIL_COMMIT") {
        Ok(c) => {
            let c = c.trim().to_owned();
            assert!(
                !c.is_empty()
                    && c.len() <= 64
                    && c.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'),
                "VIGIL_COMMIT must be a commit id (letters, digits, '.', '-'; at most 64), not {c:?}"
            );
            c
        }
        Err(_) => {
            // Rebuild when HEAD moves: HEAD itself, the branch it points to and packed refs.
            if let Some(git_dir) = git(&dir, &["rev-parse", "--absolute-git-dir"]) {
                let git_dir = Path::new(&git_dir);
                println!("cargo:rerun-if-changed={}", git_dir.join("HEAD").display());
                println!(
                    "cargo:rerun-if-changed={}",
                    git_dir.join("packed-refs").display()
                );
                if let Some(r) = git(&dir, &["symbolic-ref", "-q", "HEAD"]) {
                    println!("cargo:rerun-if-changed={}", git_dir.join(r).display());
                }
            }
            git(&dir, &["rev-parse", "HEAD"])
                .filter(|c| c.bytes().all(|b| b.is_ascii_hexdigit()) && !c.is_empty())
                .unwrap_or_else(|| "unknown".to_owned())
        }
    };
    println!("cargo:rustc-env=VIGIL_COMMIT={commit}");
}
