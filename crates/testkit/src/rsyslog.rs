//! Debian's rsyslog as a SIEM collector: RFC 5425 syslog over TLS (the `ossl` driver from
//! `rsyslog-openssl`) with mutual authentication, writing every message it receives, parsed
//! by rsyslog itself (header fields, and the structured data through `mmpstrucdata`), as one
//! JSON line to a file the test reads back.
//!
//! rsyslog runs as a foreground process (`rsyslogd -n`) with its own configuration, pid file
//! and work directory in a temporary directory, listening on a loopback port. The TLS
//! settings (`StreamDriver.Name="ossl"`, `StreamDriver.Mode="1"`,
//! `StreamDriver.AuthMode="x509/name"`, `PermittedPeer`) are on the `input()` line, each
//! input with its own; the `module()` line only loads imtcp.
//!
//! Known defect of the rsyslog in Debian 12 (8.2302): its `ossl` driver skips the
//! `PermittedPeer` check when the TLS handshake needs more than one retry (rsyslog issue
//! #6350, fixed in 8.2602.0): a client with the wrong name then gets in, with OpenSSL's
//! `s_client` sometimes, with rustls (Vigil) nearly always. Tests of the refusal therefore
//! run rsyslog with the GnuTLS driver ([`Driver::Gtls`], package `rsyslog-gnutls`), which
//! enforces it; everything else runs on `ossl`.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, require_tool};

/// rsyslog's network stream drivers.
const DRIVERS: &str = "/usr/lib/x86_64-linux-gnu/rsyslog";

/// rsyslog's TLS driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// OpenSSL (`ossl`, package `rsyslog-openssl`).
    Ossl,
    /// GnuTLS (`gtls`, package `rsyslog-gnutls`).
    Gtls,
}

impl Driver {
    fn name(self) -> &'static str {
        match self {
            Driver::Ossl => "ossl",
            Driver::Gtls => "gtls",
        }
    }

    fn package(self) -> &'static str {
        match self {
            Driver::Ossl => "rsyslog-openssl",
            Driver::Gtls => "rsyslog-gnutls",
        }
    }
}

/// How rsyslog is set up.
#[derive(Debug, Clone)]
pub struct RsyslogOptions {
    /// CA certificate (PEM) that clients' certificates must chain to.
    pub ca: PathBuf,
    /// rsyslog's own certificate and key (PEM).
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Names a client certificate must carry (`PermittedPeer`).
    pub permitted_peers: Vec<String>,
    pub driver: Driver,
}

/// One message as rsyslog received and parsed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub pri: u16,
    pub version: String,
    pub timestamp: String,
    pub hostname: String,
    pub app_name: String,
    pub procid: String,
    pub msgid: String,
    /// STRUCTURED-DATA as received.
    pub structured_data: String,
    /// SD-ID → PARAM-NAME → value, unescaped by rsyslog's `mmpstrucdata`.
    pub sd: BTreeMap<String, BTreeMap<String, String>>,
    /// MSG (with the BOM if one was sent).
    pub msg: String,
}

impl Received {
    /// A parameter of the structured data.
    pub fn param(&self, sd_id: &str, name: &str) -> Option<&str> {
        self.sd.get(sd_id)?.get(name).map(String::as_str)
    }
}

/// A running (or stopped) rsyslog.
#[derive(Debug)]
pub struct Rsyslog {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Rsyslog {
    /// Starts rsyslog on a free loopback port; returns once it accepts connections.
    pub fn start(opts: &RsyslogOptions) -> Rsyslog {
        let rsyslogd = require_tool("rsyslogd");
        let module = Path::new(DRIVERS).join(format!("lmnsd_{}.so", opts.driver.name()));
        assert!(
            module.exists(),
            "rsyslog's {} driver {} is missing: apt-get install -y {}",
            opts.driver.name(),
            module.display(),
            opts.driver.package()
        );
        let dir = tempfile::Builder::new()
            .prefix("vigil-rsyslog-")
            .tempdir()
            .expect("temporary directory for rsyslog");
        std::fs::create_dir(dir.path().join("work")).expect("rsyslog work directory");
        let port = free_port();
        let conf = config(dir.path(), port, opts);
        std::fs::write(dir.path().join("rsyslog.conf"), conf).expect("write rsyslog.conf");
        let check = Command::new(&rsyslogd)
            .args(["-N1", "-f"])
            .arg(dir.path().join("rsyslog.conf"))
            .output()
            .expect("rsyslogd -N1 runs");
        assert!(
            check.status.success(),
            "rsyslog refuses its configuration: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let mut r = Rsyslog {
            dir,
            port,
            child: None,
        };
        r.restart();
        r
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`.
    pub fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts rsyslog again (after [`Rsyslog::stop`]) with the same configuration and port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "rsyslog is running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("rsyslogd.log"))
            .expect("rsyslogd.log");
        let child = Command::new(require_tool("rsyslogd"))
            .arg("-n")
            .arg("-f")
            .arg(self.dir.path().join("rsyslog.conf"))
            .arg("-i")
            .arg(self.dir.path().join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start rsyslogd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("rsyslogd exited ({status}): {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "rsyslogd does not listen on {}: {}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops rsyslog (SIGTERM, as a service manager does) and waits for it to exit.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) with the id of our own child process, which has not been reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// rsyslog's own messages (its stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("rsyslogd.log")).unwrap_or_default()
    }

    /// The file rsyslog writes received messages to (one JSON object a line).
    pub fn output(&self) -> PathBuf {
        self.dir.path().join("received.jsonl")
    }

    /// Every message received so far, in the order rsyslog wrote them.
    pub fn received(&self) -> Vec<Received> {
        let text = std::fs::read_to_string(self.output()).unwrap_or_default();
        text.lines()
            // A line still being written has no end yet.
            .filter(|l| l.ends_with('}'))
            .map(parse_line)
            .collect()
    }

    /// Waits until `done` holds for what was received (polling), at most `limit`; returns
    /// what was received.
    pub fn wait_for(
        &self,
        limit: Duration,
        mut done: impl FnMut(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.received();
            if done(&got) {
                return got;
            }
            if Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.stop();
    }
}

fn config(dir: &Path, port: u16, opts: &RsyslogOptions) -> String {
    let peers = opts
        .permitted_peers
        .iter()
        .map(|p| format!("{p:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"# Test collector for Vigil's SIEM forwarding (crates/testkit/src/rsyslog.rs).
global(
  workDirectory="{work}"
  maxMessageSize="64k"
  defaultNetstreamDriverCAFile="{ca}"
  defaultNetstreamDriverCertFile="{cert}"
  defaultNetstreamDriverKeyFile="{key}"
)
module(load="imtcp")
module(load="mmpstrucdata")
# TLS and client authentication on the input itself.
input(type="imtcp" address="127.0.0.1" port="{port}"
  StreamDriver.Name="{driver}" StreamDriver.Mode="1" StreamDriver.AuthMode="x509/name"
  PermittedPeer=[{peers}])
template(name="fields" type="list" option.jsonf="on") {{
  property(outname="pri" name="pri" format="jsonf")
  property(outname="version" name="protocol-version" format="jsonf")
  property(outname="timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="hostname" name="hostname" format="jsonf")
  property(outname="app_name" name="app-name" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="structured_data" name="structured-data" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
  property(outname="sd" name="$!rfc5424-sd" format="jsonf")
}}
action(type="mmpstrucdata" sd_name.lowercase="off")
action(type="omfile" file="{out}" template="fields")
"#,
        work = dir.join("work").display(),
        ca = opts.ca.display(),
        cert = opts.cert.display(),
        key = opts.key.display(),
        out = dir.join("received.jsonl").display(),
        driver = opts.driver.name(),
    )
}

fn parse_line(line: &str) -> Received {
    let v: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("rsyslog wrote {line:?}: {e}"));
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
    // mmpstrucdata's JSON, written as a string by the template.
    let sd_text = s("sd");
    let sd: BTreeMap<String, BTreeMap<String, String>> = if sd_text.trim().is_empty() {
        BTreeMap::new()
    } else {
        serde_json::from_str(&sd_text)
            .unwrap_or_else(|e| panic!("structured data {sd_text:?} from rsyslog: {e}"))
    };
    Received {
        pri: s("pri").parse().unwrap_or(u16::MAX),
        version: s("version"),
        timestamp: s("timestamp"),
        hostname: s("hostname"),
        app_name: s("app_name"),
        procid: s("procid"),
        msgid: s("msgid"),
        structured_data: s("structured_data"),
        sd,
        msg: s("msg"),
    }
}
