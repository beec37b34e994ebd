//! `vigil init`: secure defaults from the first command.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn init(dir: &std::path::Path, extra: &[&str]) -> std::process::Output {
    Command::new(common::bin())
        .args(["init", "--data-dir"])
        .arg(dir)
        .args(extra)
        .env("VIGIL_LOG", "warn")
        .output()
        .unwrap()
}

#[test]
fn init_creates_a_unique_ca_private_keys_and_no_default_password() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let out_a = init(&a, &[]);
    let out_b = init(&b, &[]);
    assert!(out_a.status.success() && out_b.status.success());
    let text_a = String::from_utf8_lossy(&out_a.stdout);
    let text_b = String::from_utf8_lossy(&out_b.stdout);
    let pw = |t: &str| {
        t.lines()
            .find_map(|l| l.strip_prefix("Password (shown once, store it now): "))
            .map(str::to_owned)
            .expect("generated admin password printed once")
    };
    let (pa, pb) = (pw(&text_a), pw(&text_b));
    assert!(pa.len() >= 20 && pa != pb, "{pa} / {pb}");
    // The password is printed, never stored in clear.
    for f in ["access.db", "vigil.toml", "vigil.db"] {
        let bytes = std::fs::read(a.join(f)).unwrap();
        assert!(
            !bytes.windows(pa.len()).any(|w| w == pa.as_bytes()),
            "{f} holds the password"
        );
    }
    // No certificate is shared between installations.
    let ca_a = std::fs::read(a.join("pki/ca.crt")).unwrap();
    let ca_b = std::fs::read(b.join("pki/ca.crt")).unwrap();
    assert_ne!(ca_a, ca_b);
    // Private keys are 0600.
    for key in [
        "pki/ca.key",
        "pki/server.key",
        "keys/signing/signing.key",
        "keys/secrets.key",
        "access.db",
    ] {
        let mode = std::fs::metadata(a.join(key)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{key} has mode {mode:o}");
    }
    // Plaintext listeners are off in the generated configuration.
    let cfg = std::fs::read_to_string(a.join("vigil.toml")).unwrap();
    assert!(cfg.contains("# [[management.http]]") && cfg.contains("# udp = "));
    // A second init of the same directory refuses to overwrite.
    let again = init(&a, &[]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

#[test]
fn weak_admin_password_is_refused_before_anything_is_created() {
    let tmp = tempfile::tempdir().unwrap();
    for (pw, why) in [("short", "too short"), ("password1234", "common")] {
        let file = tmp.path().join("pw");
        std::fs::write(&file, format!("{pw}\n")).unwrap();
        let dir = tmp.path().join(format!("d-{pw}"));
        let out = init(&dir, &["--admin-password-file", file.to_str().unwrap()]);
        assert!(!out.status.success(), "{pw} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{pw}: {err}");
        assert!(!dir.exists(), "a failed init left {}", dir.display());
    }
    let file = tmp.path().join("good");
    std::fs::write(&file, "correct horse battery staple 42\n").unwrap();
    let out = init(
        &tmp.path().join("ok"),
        &["--admin-password-file", file.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("correct horse"));
}
