//! The client's JSDoc types hold: TypeScript's compiler checks every module (no output; the
//! browser runs the files as written). The compiler is pinned in tests/browser/package.json.

use std::path::Path;
use std::process::Command;

#[test]
fn javascript_modules_type_check() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = crate_dir.join("../..");
    let tsc = root.join("tests/browser/node_modules/typescript/bin/tsc");
    assert!(
        tsc.is_file(),
        "{} is missing: run: cd tests/browser && npm ci",
        tsc.display()
    );
    let out = Command::new("node")
        .arg(&tsc)
        .arg("-p")
        .arg(crate_dir.join("tsconfig.json"))
        .output()
        .expect("node must be installed (scripts/test-all.sh installs it)");
    assert!(
        out.status.success(),
        "tsc found type errors:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
