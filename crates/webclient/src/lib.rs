//! The browser client's files (HTML, JavaScript modules, CSS, icons), embedded in the binary so
//! that `cargo build` alone produces a working client and nothing is loaded from another origin.
//!
//! The client is standard ES modules with no build step: what is in `assets/` is what the
//! browser runs. Its design and the rules it follows (strict CSP, text-only insertion of server
//! data) are in docs/web-client.md; `crates/web` serves these files.

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// Path below `/assets/` (the page itself is `index.html`, served at `/`).
    pub path: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
}

macro_rules! assets {
    ($($path:literal => $ty:expr),* $(,)?) => {
        /// Every file of the client.
        pub const ASSETS: &[Asset] = &[
            $(Asset { path: $path, content_type: $ty, bytes: include_bytes!(concat!("../assets/", $path)) }),*
        ];
    };
}

const JS: &str = "text/javascript; charset=utf-8";

assets! {
    "index.html" => "text/html; charset=utf-8",
    "app.css" => "text/css; charset=utf-8",
    "icon.svg" => "image/svg+xml",
    "icons/lock.svg" => "image/svg+xml",
    "icons/fullscreen.svg" => "image/svg+xml",
    "js/main.js" => JS,
    "js/api.js" => JS,
    "js/dom.js" => JS,
    "js/time.js" => JS,
    "js/login.js" => JS,
    "js/session.js" => JS,
    "js/security.js" => JS,
    "js/live.js" => JS,
    "js/liveplayer.js" => JS,
    "js/zoom.js" => JS,
    "js/playback.js" => JS,
    "js/timeline.js" => JS,
    "js/evidence.js" => JS,
    "js/events.js" => JS,
    "js/admin.js" => JS,
}

/// The file at `path` (below `/assets/`), if the client has it.
pub fn get(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// The page every client route starts from.
pub fn index() -> &'static Asset {
    get("index.html").expect("index.html is embedded")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn files(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files(&path, base, out);
            } else {
                let rel = path.strip_prefix(base).unwrap();
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }

    #[test]
    fn every_file_in_assets_is_embedded_and_nothing_else() {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
        let mut on_disk = Vec::new();
        files(&base, &base, &mut on_disk);
        on_disk.sort();
        let mut embedded: Vec<String> = ASSETS.iter().map(|a| a.path.to_owned()).collect();
        embedded.sort();
        assert_eq!(
            on_disk, embedded,
            "add new files to the assets! list in src/lib.rs"
        );
    }

    #[test]
    fn no_inline_script_style_or_html_injection_sinks() {
        // The CSP forbids inline code; these would silently break or weaken the client.
        for a in ASSETS {
            let text = std::str::from_utf8(a.bytes).unwrap();
            for bad in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
                "new Function",
                " style=\"",
                "onclick=",
                "onload=",
                "javascript:",
            ] {
                assert!(!text.contains(bad), "{} contains {bad:?}", a.path);
            }
            if a.path.ends_with(".html") {
                assert!(
                    !text.contains("<script>"),
                    "{} has an inline script",
                    a.path
                );
                assert!(!text.contains("<style"), "{} has an inline style", a.path);
            }
        }
    }

    #[test]
    fn modules_only_import_embedded_modules() {
        for a in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            let text = std::str::from_utf8(a.bytes).unwrap();
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let spec = line.rsplit_once("from").map(|(_, s)| s).unwrap_or(line);
                let spec = spec.trim().trim_end_matches(';').trim_matches('"');
                let target = spec.strip_prefix("./").expect("relative imports only");
                assert!(
                    get(&format!("js/{target}")).is_some(),
                    "{} imports {spec}, which is not embedded",
                    a.path
                );
            }
        }
    }
}
