//! Locating the repository and the external programs (test peers) tests depend on.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::Error;

/// The Python that has Debian's GStreamer introspection bindings. A pyenv or venv `python3`
/// earlier on PATH lacks `gi`, so the server is always started with this one.
pub const GST_PYTHON: &str = "/usr/bin/python3";

/// Tool name → Debian package that provides it; used for install hints.
const PACKAGES: &[(&str, &str)] = &[
    ("ffmpeg", "ffmpeg"),
    ("ffprobe", "ffmpeg"),
    ("gst-launch-1.0", "gstreamer1.0-tools"),
    ("gst-inspect-1.0", "gstreamer1.0-tools"),
    ("python3", "python3"),
    ("openssl", "openssl"),
    ("nft", "nftables"),
    ("ip", "iproute2"),
    ("iptables", "iptables"),
    ("iptables-restore", "iptables"),
    ("nmap", "nmap"),
    ("rsyslogd", "rsyslog rsyslog-openssl rsyslog-gnutls"),
    ("testssl", "testssl.sh"),
    ("sslscan", "sslscan"),
    ("chromium", "chromium"),
];

/// The repository root (the workspace directory holding `tests/peers/`).
///
/// Derived from this crate's manifest directory at compile time, so it is right whichever
/// crate's tests call it and whatever the current directory is.
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .expect("crates/testkit has two ancestors")
        .to_path_buf()
}

/// Finds `name` on PATH (plus the sbin directories, where firewall tools live).
pub fn try_require_tool(name: &str) -> Result<PathBuf, Error> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        if is_executable(&p) {
            return Ok(p);
        }
    } else {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let extra = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from);
        for dir in std::env::split_paths(&path).chain(extra) {
            let candidate = dir.join(name);
            if is_executable(&candidate) {
                return Ok(candidate);
            }
        }
    }
    let base = Path::new(name)
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.to_owned());
    let package = PACKAGES
        .iter()
        .find(|(tool, _)| *tool == base)
        .map(|(_, pkg)| (*pkg).to_owned())
        .unwrap_or_else(|| format!("<the Debian package providing {base}>"));
    Err(Error::MissingTool {
        tool: name.to_owned(),
        package,
    })
}

/// Like [`try_require_tool`], but panics with the install hint: a test that needs a peer must
/// fail, not skip, when the peer is missing.
pub fn require_tool(name: &str) -> PathBuf {
    try_require_tool(name).unwrap_or_else(|e| panic!("{e}"))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Checks once per process that Debian's Python can load gst-rtsp-server and every GStreamer
/// element the RTSP test server uses; panics with the packages to install otherwise.
pub fn require_gst_rtsp_server() {
    static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
    let result = CHECK.get_or_init(check_gst_rtsp_server);
    if let Err(msg) = result {
        panic!("{msg}");
    }
}

const GST_PACKAGES: &str = "python3-gi gir1.2-gst-rtsp-server-1.0 gir1.2-gstreamer-1.0 \
    gir1.2-gst-plugins-base-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
    gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-rtsp";

// Prints the missing pieces, one per line, and exits 1 when anything is missing.
const GST_CHECK: &str = r#"
import sys
try:
    import gi
    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    gi.require_version("GstApp", "1.0")
    from gi.repository import Gst, GstRtspServer, GstApp
except Exception as e:
    print("python bindings: %s" % e)
    sys.exit(1)
Gst.init(None)
missing = [e for e in ("appsrc", "appsink", "filesrc", "capsfilter", "qtdemux", "h264parse",
                       "h265parse", "rtph264pay", "rtph265pay")
           if Gst.ElementFactory.find(e) is None]
for e in missing:
    print("GStreamer element %s" % e)
sys.exit(1 if missing else 0)
"#;

fn check_gst_rtsp_server() -> Result<(), String> {
    let hint = format!("install them with `apt-get install -y {GST_PACKAGES}`");
    if !Path::new(GST_PYTHON).exists() {
        return Err(format!(
            "the RTSP test peer needs {GST_PYTHON} with GStreamer bindings, which is missing: {hint}"
        ));
    }
    let out = Command::new(GST_PYTHON)
        .args(["-c", GST_CHECK])
        .output()
        .map_err(|e| format!("cannot run {GST_PYTHON}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "the RTSP test peer (GStreamer RTSP server) is not usable; missing:\n{}{}\n{hint} \
             (scripts/test-all.sh installs every test peer)",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        ))
    }
}

/// An unused TCP port on 127.0.0.1 (bound and released, so another process could take it in
/// between; prefer giving a server port 0 where the server supports it).
///
/// Never the same port twice in one process (the kernel readily hands a just-released port
/// out again, and one test often asks for several), and taken below Linux's ephemeral range
/// (32768–60999), so a client's outgoing connection cannot be sitting on it; random within
/// 20000–32767 so that concurrent test processes rarely meet.
pub fn free_port() -> u16 {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    let mut x = u64::from(std::process::id())
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
        ^ (given.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for _ in 0..1000 {
        // xorshift64
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let port = 20000 + (x % 12768) as u16;
        if given.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local_addr").port();
    given.insert(port);
    port
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_never_handed_out_twice() {
        let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
        let distinct: std::collections::HashSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), ports.len());
        assert!(
            ports.iter().all(|p| (20000..32768).contains(p)),
            "{ports:?}"
        );
    }

    #[test]
    fn repo_root_holds_the_peer_scripts() {
        assert!(repo_root().join("tests/peers/rtsp_server.py").is_file());
        assert!(repo_root().join("Cargo.toml").is_file());
    }

    #[test]
    fn missing_tool_names_the_package() {
        let err = try_require_tool("nmap-does-not-exist-xyz").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("nmap-does-not-exist-xyz"), "{msg}");
        assert!(msg.contains("apt-get install -y"), "{msg}");

        // A known tool in a directory where it is not installed still gets its package name.
        let err = try_require_tool("/nonexistent/dir/nft").unwrap_err();
        assert!(
            err.to_string().contains("apt-get install -y nftables"),
            "{err}"
        );
    }

    #[test]
    #[should_panic(expected = "apt-get install -y")]
    fn require_tool_panics_with_hint() {
        require_tool("surely-not-a-real-tool-0d9f");
    }

    #[test]
    fn finds_installed_tools() {
        let sh = require_tool("sh");
        assert!(sh.is_absolute());
        assert_eq!(require_tool("/bin/sh"), PathBuf::from("/bin/sh"));
    }

    #[test]
    fn free_port_is_bindable() {
        let port = free_port();
        assert_ne!(port, 0);
        TcpListener::bind(("127.0.0.1", port)).expect("port from free_port can be bound");
    }
}
