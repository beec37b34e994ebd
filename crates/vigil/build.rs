//! Embeds the source commit in the binary for `vigil --version` and `vigil version`
//! (docs/metrics.md, "Version and source commit"), so a flaw in a dependency can be traced to
//! the installations that run it. `VIGIL_COMMIT` overrides it for builds from a tarball
//! without `.git`; without either the commit reads "unknown".
//!
//! It also writes the binary's CycloneDX SBOM (`vigil version --sbom`, docs/sbom.md): the
//! crates compiled into it, from `cargo metadata` of this workspace for the target platform
//! (offline: the build already has every crate it lists), following normal dependencies
//! only, so dev-only and build-only crates and proc macros, which run at build time and leave
//! no code in the binary, are not listed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

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
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    let sbom = match sbom(&dir, &commit) {
        Ok(v) => serde_json::to_string_pretty(&v).expect("JSON serializes"),
        Err(why) => {
            println!("cargo:warning=no SBOM embedded: {why}");
            String::new()
        }
    };
    std::fs::write(out.join("sbom.json"), sbom).expect("write the SBOM into OUT_DIR");
}

fn purl(name: &str, version: &str) -> String {
    format!("pkg:cargo/{name}@{version}")
}

/// The CycloneDX 1.5 document of the crates the `vigil` package links, by `cargo metadata`.
fn sbom(dir: &Path, commit: &str) -> Result<Value, String> {
    let workspace = dir
        .parent()
        .and_then(Path::parent)
        .ok_or("no workspace above crates/vigil")?;
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("Cargo.lock").display()
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = std::env::var("TARGET").map_err(|e| format!("TARGET: {e}"))?;
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--locked"])
        .args(["--filter-platform", &target, "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let meta: Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("cargo metadata: {e}"))?;
    let packages: BTreeMap<&str, &Value> = meta["packages"]
        .as_array()
        .ok_or("no packages")?
        .iter()
        .filter_map(|p| Some((p["id"].as_str()?, p)))
        .collect();
    let nodes: BTreeMap<&str, &Value> = meta["resolve"]["nodes"]
        .as_array()
        .ok_or("no resolve graph")?
        .iter()
        .filter_map(|n| Some((n["id"].as_str()?, n)))
        .collect();
    let root = packages
        .iter()
        .find(|(_, p)| p["name"] == "vigil" && p["source"].is_null())
        .map(|(id, _)| *id)
        .ok_or("no vigil package")?;
    let is_proc_macro = |id: &str| {
        packages.get(id).is_some_and(|p| {
            p["targets"].as_array().is_some_and(|ts| {
                ts.iter().any(|t| {
                    t["kind"]
                        .as_array()
                        .is_some_and(|k| k.iter().any(|k| k == "proc-macro"))
                })
            })
        })
    };
    // Normal dependencies (for this platform; `--filter-platform` dropped the others) of
    // what is linked, starting at vigil.
    let mut linked: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut todo = vec![root];
    while let Some(id) = todo.pop() {
        if linked.contains_key(id) {
            continue;
        }
        let mut deps = BTreeSet::new();
        for d in nodes
            .get(id)
            .and_then(|n| n["deps"].as_array())
            .into_iter()
            .flatten()
        {
            let normal = d["dep_kinds"]
                .as_array()
                .is_some_and(|ks| ks.iter().any(|k| k["kind"].is_null()));
            let Some(dep) = d["pkg"].as_str() else {
                continue;
            };
            if normal && !is_proc_macro(dep) {
                deps.insert(dep);
                todo.push(dep);
            }
        }
        linked.insert(id, deps);
    }
    let reference = |id: &str| {
        let p = packages[id];
        purl(
            p["name"].as_str().unwrap_or_default(),
            p["version"].as_str().unwrap_or_default(),
        )
    };
    let vigil = packages[root];
    let version = vigil["version"].as_str().unwrap_or_default();
    let components: Vec<Value> = linked
        .keys()
        .filter(|id| **id != root)
        .map(|id| {
            let p = packages[id];
            let mut c = json!({
                "type": "library",
                "bom-ref": reference(id),
                "name": p["name"],
                "version": p["version"],
                "purl": reference(id),
            });
            if let Some(l) = p["license"].as_str() {
                c["licenses"] = json!([{ "expression": l }]);
            }
            if p["source"].is_null() {
                // A crate of this repository, built from the same commit as vigil.
                c["properties"] = json!([{ "name": "vigil:source", "value": "workspace" }]);
            } else if let Some(s) = p["source"].as_str() {
                c["properties"] = json!([{ "name": "cargo:source", "value": s }]);
            }
            c
        })
        .collect();
    let dependencies: Vec<Value> = linked
        .iter()
        .map(|(id, deps)| {
            json!({
                "ref": reference(id),
                "dependsOn": deps.iter().map(|d| reference(d)).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "component": {
                "type": "application",
                "bom-ref": purl("vigil", version),
                "name": "vigil",
                "version": version,
                "purl": purl("vigil", version),
                "properties": [
                    { "name": "vigil:commit", "value": commit },
                    { "name": "vigil:target", "value": target },
                ],
            },
        },
        "components": components,
        "dependencies": dependencies,
    }))
}
