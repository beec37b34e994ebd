//! `vigil --version` and `vigil version` name the release and the source commit the binary
//! was built from (crates/vigil/build.rs).

use std::process::Command;

fn run(arg: &str) -> String {
    run_args(&[arg])
}

fn run_args(args: &[&str]) -> String {
    let arg = args.join(" ");
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
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

/// `vigil version --sbom`: a CycloneDX 1.5 JSON document listing the crates compiled in, with
/// the versions Cargo.lock pins and their purls, and no dev-only crate.
#[test]
fn the_sbom_lists_the_linked_crates_with_their_locked_versions() {
    let sbom: serde_json::Value = serde_json::from_str(&run_args(&["version", "--sbom"])).unwrap();
    assert_eq!(sbom["bomFormat"], "CycloneDX");
    assert_eq!(sbom["specVersion"], "1.5");
    let app = &sbom["metadata"]["component"];
    assert_eq!(app["name"], "vigil");
    assert_eq!(app["version"], env!("CARGO_PKG_VERSION"));
    let commit = app["properties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "vigil:commit")
        .unwrap();
    let version_line = run("version");
    assert!(
        version_line.contains(commit["value"].as_str().unwrap()),
        "{version_line} vs {commit}"
    );
    let components = sbom["components"].as_array().unwrap();
    let lock = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.lock"),
    )
    .unwrap();
    let locked = |name: &str| -> Vec<String> {
        lock.split("[[package]]")
            .filter(|p| p.contains(&format!("\nname = \"{name}\"\n")))
            .filter_map(|p| {
                p.lines()
                    .find_map(|l| l.strip_prefix("version = \""))
                    .map(|v| v.trim_end_matches('"').to_owned())
            })
            .collect()
    };
    for name in ["rustls", "tokio", "rusqlite", "vigil-app"] {
        let c: Vec<&serde_json::Value> = components.iter().filter(|c| c["name"] == name).collect();
        assert_eq!(c.len(), 1, "{name}: {c:?}");
        let v = c[0]["version"].as_str().unwrap();
        assert!(
            locked(name).iter().any(|l| l == v),
            "{name} {v} is not in Cargo.lock"
        );
        assert_eq!(c[0]["purl"], format!("pkg:cargo/{name}@{v}"));
    }
    // Only in [dev-dependencies] of vigil (and of the crates it links), or only run at build
    // time: not in the binary.
    for absent in ["vigil-testkit", "serde_derive", "cc"] {
        assert!(
            components.iter().all(|c| c["name"] != absent),
            "{absent} is listed"
        );
    }
    // Every dependency edge names listed components.
    let refs: std::collections::BTreeSet<&str> = components
        .iter()
        .map(|c| c["bom-ref"].as_str().unwrap())
        .chain([app["bom-ref"].as_str().unwrap()])
        .collect();
    for d in sbom["dependencies"].as_array().unwrap() {
        assert!(refs.contains(d["ref"].as_str().unwrap()), "{d}");
        for on in d["dependsOn"].as_array().unwrap() {
            assert!(refs.contains(on.as_str().unwrap()), "{on}");
        }
    }
}
