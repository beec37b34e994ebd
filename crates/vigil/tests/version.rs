//! `vigil --version` and `vigil version` name the release and the source commit the binary
//! was built from (crates/vigil/build.rs).

use std::process::Command;

fn run(arg: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg(arg)
        .env("VIGIL_CONFIG", "/nonexistent/vigil.toml")
        .output()
        .unwrap();
    assert!(out.status.success(), "vigil {arg}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn version_names_the_source_commit() {
    let flag = run("--version");
    let command = run("version");
    assert_eq!(flag, command);
    let line = flag.trim_end();
    let rest = line
        .strip_prefix(&format!("vigil {} (commit ", env!("CARGO_PKG_VERSION")))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("unexpected version line {line:?}"));
    // Built from this checkout: a commit of this repository (it may be older than HEAD when
    // someone committed after the build).
    if let Ok(out) = Command::new("git")
        .args(["rev-parse", "--verify", "-q", &format!("{rest}^{{commit}}")])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
    {
        assert_eq!(rest.len(), 40, "{line}");
        assert!(
            out.status.success(),
            "{rest} is not a commit of this repository"
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), rest);
    } else {
        assert_eq!(rest, "unknown");
    }
}
