//! Every TOML example in the documentation is accepted by what reads it: a `vigil.toml`
//! snippet by the configuration parser (with its validation), as an administrator pasting it
//! into a fresh configuration would do; a port-catalog file (`[[roles]]`) by the catalog
//! parser. The site-file examples (`[[zones]]`) go through `vigil firewall` in
//! tests/examples.rs. The `vigil …` command lines of the shell examples (README and docs) are
//! ones the command line accepts: no unknown subcommand or option, no missing value.

use std::path::Path;

/// The ```toml blocks of a Markdown file, with the line each starts on.
fn toml_blocks(text: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let fence = line.trim_start();
        match &mut current {
            None if fence.starts_with("```toml") => current = Some((i + 2, String::new())),
            Some(_) if fence.starts_with("```") => blocks.push(current.take().unwrap()),
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// What a ```toml block of the documentation is.
#[derive(Debug, PartialEq)]
enum Example {
    /// A site file (tests/examples.rs).
    Site,
    /// A port catalog file (`catalog/*.toml`).
    Catalog,
    /// Part of `vigil.toml`.
    Config,
}

fn kind(block: &str) -> Example {
    if block.contains("[[zones]]") {
        Example::Site
    } else if block.contains("[[roles]]") {
        Example::Catalog
    } else {
        Example::Config
    }
}

#[test]
fn every_configuration_snippet_in_the_docs_is_accepted() {
    let docs = vigil_testkit::repo_root().join("docs");
    let tmp = tempfile::tempdir().unwrap();
    let mut checked = 0;
    let mut files: Vec<_> = std::fs::read_dir(&docs)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    let mut refused = Vec::new();
    for doc in files {
        let text = std::fs::read_to_string(&doc).unwrap();
        for (line, block) in toml_blocks(&text) {
            let name = doc.file_name().unwrap().to_string_lossy().into_owned();
            match kind(&block) {
                Example::Site => continue,
                Example::Catalog => {
                    match vigil_netpolicy::catalog::parse_system(&name, &block) {
                        Ok(_) => checked += 1,
                        Err(e) => refused.push(format!("docs/{name} line {line}: {e}")),
                    }
                    continue;
                }
                Example::Config => {}
            }
            let config = format!(
                "data_dir = {:?}\n\n{block}",
                tmp.path().display().to_string()
            );
            let path = tmp.path().join(format!("{name}-line-{line}.toml"));
            std::fs::write(&path, &config).unwrap();
            match vigil_config::Config::parse(&config, Path::new(&path)) {
                Ok(_) => checked += 1,
                Err(e) => refused.push(format!("docs/{name} line {line}: {e}")),
            }
        }
    }
    assert!(
        refused.is_empty(),
        "configuration examples the parser refuses:\n{}",
        refused.join("\n")
    );
    assert!(checked >= 6, "only {checked} configuration snippets found");
}

#[test]
fn toml_blocks_are_found_with_their_line() {
    let md = "# T\n\n```toml\n[metrics]\nenabled = true\n```\n\ntext\n```sh\nls\n```\n";
    assert_eq!(
        toml_blocks(md),
        vec![(4, "[metrics]\nenabled = true\n".to_owned())]
    );
}

/// The `vigil …` command lines in the shell examples (```sh, ```bash, ```console blocks) of
/// README.md and docs/**.md, as a reader would copy them: the comment, a redirection or a pipe
/// cut off, `$ `/`sudo ` dropped, `[optional]` brackets removed and a `$(…)` substitution
/// replaced by a value.
fn documented_commands(text: &str) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    let mut in_shell = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with("```") {
            in_shell = !in_shell && ["```sh", "```bash", "```console", "```shell"].contains(&t);
            continue;
        }
        if !in_shell {
            continue;
        }
        let t = t.strip_prefix("$ ").unwrap_or(t);
        let t = t.strip_prefix("sudo ").unwrap_or(t);
        if t.starts_with("vigil ") {
            out.push((i + 1, words(t)));
        }
    }
    out
}

/// Splits a command line into words the way the shell would for these examples.
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut chars = line.chars().peekable();
    let mut started = false;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '#' | '>' | '|') if !started => break,
            (None, ' ') => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            (None, '\'' | '"') => {
                quote = Some(c);
                started = true;
            }
            (Some(q), c) if c == q => quote = None,
            (_, '$') if chars.peek() == Some(&'(') => {
                // A command substitution: its value stands in (a fingerprint, for instance).
                let mut depth = 0;
                for c in chars.by_ref() {
                    match c {
                        '(' => depth += 1,
                        ')' if depth == 1 => break,
                        ')' => depth -= 1,
                        _ => {}
                    }
                }
                word.push_str(&"AB".repeat(32));
                started = true;
            }
            (None, '[' | ']') => {}
            (_, c) => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}

#[test]
fn every_vigil_command_in_the_docs_is_one_the_cli_accepts() {
    let root = vigil_testkit::repo_root();
    let mut docs = vec![root.join("README.md")];
    let mut dirs = vec![root.join("docs")];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "md") {
                docs.push(p);
            }
        }
    }
    docs.sort();
    let tmp = tempfile::tempdir().unwrap();
    let mut checked = 0;
    let mut refused = Vec::new();
    for doc in docs {
        let text = std::fs::read_to_string(&doc).unwrap();
        let name = doc.strip_prefix(&root).unwrap().display().to_string();
        for (line, mut args) in documented_commands(&text) {
            args.remove(0);
            // Every command runs against a configuration that does not exist (nothing to
            // change, nothing started) and a data directory in the temporary directory.
            if let Some(i) = args.iter().position(|a| a == "--config") {
                args.drain(i..i + 2);
            }
            if let Some(i) = args.iter().position(|a| a == "--data-dir") {
                args[i + 1] = tmp
                    .path()
                    .join(format!("data-{checked}"))
                    .display()
                    .to_string();
            }
            // Its own configuration path each: `init` writes one, which the next command
            // (`serve`) must not find.
            let config = tmp
                .path()
                .join(format!("none-{checked}"))
                .join("vigil.toml");
            let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
                .arg("--config")
                .arg(&config)
                .args(&args)
                .current_dir(tmp.path())
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .env("VIGIL_LOG", "error")
                .spawn()
                .unwrap();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while child.try_wait().unwrap().is_none() {
                if std::time::Instant::now() > deadline {
                    let _ = child.kill();
                    refused.push(format!(
                        "{name} line {line}: vigil {} did not end",
                        args.join(" ")
                    ));
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let out = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            // clap's own refusals: an unknown subcommand or option, a bad or missing value.
            if err.contains("Usage: vigil")
                || err.contains("unexpected argument")
                || err.contains("try '--help'")
            {
                refused.push(format!(
                    "{name} line {line}: vigil {}\n{err}",
                    args.join(" ")
                ));
            }
            checked += 1;
        }
    }
    assert!(
        refused.is_empty(),
        "documented commands the CLI does not accept:\n{}",
        refused.join("\n")
    );
    assert!(checked >= 30, "only {checked} documented commands found");
}

#[test]
fn documented_commands_are_split_as_the_shell_would() {
    let text = "```sh\n$ vigil verify case-1/ --fingerprint \"$(vigil pki ca-cert --fingerprint)\"   # offline\nsudo vigil pki import --cert a.pem [--passphrase-file p.txt]\nvigil version --sbom > sbom.json\n```\nvigil not-in-a-block\n";
    let cmds = documented_commands(text);
    assert_eq!(cmds.len(), 3, "{cmds:?}");
    assert_eq!(cmds[0].0, 2);
    assert_eq!(
        cmds[0].1,
        [
            "vigil",
            "verify",
            "case-1/",
            "--fingerprint",
            &"AB".repeat(32)
        ]
    );
    assert_eq!(
        cmds[1].1,
        [
            "vigil",
            "pki",
            "import",
            "--cert",
            "a.pem",
            "--passphrase-file",
            "p.txt"
        ]
    );
    assert_eq!(cmds[2].1, ["vigil", "version", "--sbom"]);
}
