//! Every TOML example in the documentation is accepted by what reads it: a `vigil.toml`
//! snippet by the configuration parser (with its validation), as an administrator pasting it
//! into a fresh configuration would do; a port-catalog file (`[[roles]]`) by the catalog
//! parser. The site-file examples (`[[zones]]`) go through `vigil firewall` in
//! tests/examples.rs.

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
