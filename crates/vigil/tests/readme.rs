//! The README's first steps, run the way a newcomer runs them: the shell block that starts the
//! demo with `--duration` is read from README.md and each line runs in bash, in a fresh
//! directory, with the built `vigil` on the PATH; then the commands the demo itself suggests
//! ("Try, in another shell") run too. Each command's output is checked, so a README or demo
//! change that breaks the walk-through fails here.

mod common;

use std::path::Path;
use std::process::{Command, Output};

/// The ```sh block of README.md that runs the demo with `--duration`.
fn walkthrough() -> Vec<String> {
    let readme = std::fs::read_to_string(vigil_testkit::repo_root().join("README.md")).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in readme.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```sh") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.push(current.take().unwrap()),
            (Some(b), l) => b.push(l.to_owned()),
            (None, _) => {}
        }
    }
    blocks
        .into_iter()
        .find(|b| b.iter().any(|l| l.contains("demo --duration")))
        .expect("README.md has a shell block running the demo with --duration")
}

/// A line without its trailing comment (`  # ...`).
fn command(line: &str) -> String {
    match line.find("   #").or_else(|| line.find("  #")) {
        Some(i) => line[..i].trim_end().to_owned(),
        None => line.trim_end().to_owned(),
    }
}

fn bash(dir: &Path, line: &str) -> Output {
    let bin_dir = Path::new(common::bin()).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap());
    Command::new("bash")
        .args(["-c", line])
        .current_dir(dir)
        .env("PATH", path)
        .env_remove("VIGIL_CONFIG")
        .env_remove("VIGIL_LOG")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn the_readme_walkthrough_works_on_a_fresh_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let lines: Vec<String> = walkthrough()
        .iter()
        .map(|l| command(l))
        .filter(|l| !l.is_empty())
        .collect();
    let mut suggested = Vec::new();
    let mut checked = Vec::new();
    for line in &lines {
        // The demo through cargo: here the test's binary, and a shorter run.
        let run = if let Some(rest) = line.strip_prefix("cargo run --release -- ") {
            assert!(rest.contains("--duration 30s"), "{line}");
            format!("vigil {}", rest.replace("--duration 30s", "--duration 4s"))
        } else if line.starts_with("export PATH=") {
            assert!(line.contains("target/release"), "{line}");
            continue;
        } else {
            assert!(line.starts_with("vigil "), "not a vigil command: {line}");
            line.clone()
        };
        let out = bash(tmp.path(), &run);
        let said = text(&out);
        let code = out.status.code();
        let words: Vec<&str> = run.split_whitespace().collect();
        let sub = words
            .iter()
            .skip(1)
            .skip_while(|w| w.starts_with("--config") || w.ends_with("vigil.toml"))
            .take(2)
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        match sub.as_str() {
            s if s.starts_with("demo ") => {
                assert_eq!(code, Some(0), "{run}: {said}");
                assert!(said.contains("Demo recorded "), "{said}");
                for l in String::from_utf8_lossy(&out.stdout).lines() {
                    if let Some(cmd) = l.trim().strip_prefix("vigil ")
                        && said.contains("Try, in another shell")
                    {
                        suggested.push(format!("vigil {cmd}"));
                    }
                }
            }
            "camera status" => {
                assert_eq!(code, Some(0), "{run}: {said}");
                assert!(said.contains("sample"), "{said}");
            }
            "recordings sample" => {
                assert_eq!(code, Some(0), "{run}: {said}");
                assert!(said.contains("recorded "), "{said}");
            }
            "export sample" if run.contains(".mp4") => {
                assert_eq!(code, Some(0), "{run}: {said}");
                assert!(said.contains("wrote "), "{said}");
            }
            "export sample" => {
                assert_eq!(code, Some(0), "{run}: {said}");
                assert!(said.contains("wrote evidence bundle"), "{said}");
                assert!(
                    said.contains("`vigil pki ca-cert --fingerprint`"),
                    "the hint names the command that prints the fingerprint: {said}"
                );
            }
            s if s.starts_with("verify ") => {
                // 0 verified, 2 only an unsigned tail (the demo stopped before signing it).
                assert!(matches!(code, Some(0 | 2)), "{run}: {said}");
                assert!(
                    said.contains("export signature valid: exported by cli:"),
                    "{said}"
                );
            }
            "audit-log query" => {
                assert_eq!(code, Some(0), "{run}: {said}");
                for kind in ["export", "verify"] {
                    assert!(
                        said.lines()
                            .any(|l| l.contains(&format!(" {kind} ")) && l.contains("cli:")),
                        "no {kind} entry by the command line: {said}"
                    );
                }
            }
            other => panic!("the README runs `{other}`, which this test does not check: {run}"),
        }
        checked.push(sub);
    }
    assert!(checked.len() >= 7, "{checked:?}");
    assert!(!suggested.is_empty(), "the demo suggests commands");
    for cmd in suggested {
        let out = bash(tmp.path(), &cmd);
        assert_eq!(out.status.code(), Some(0), "{cmd}: {}", text(&out));
    }
}
