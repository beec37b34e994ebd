//! A real mail server for the alarm e-mail tests: Debian's aiosmtpd
//! (`tests/peers/smtp_server.py`, package `python3-aiosmtpd`) on a loopback port, with
//! STARTTLS required, implicit TLS, or no TLS at all, and optionally AUTH. Every message it
//! accepts is read back with the envelope, whether the session was encrypted and who logged
//! in.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, repo_root};

/// Debian's Python, where `python3-aiosmtpd` is installed.
const PYTHON: &str = "/usr/bin/python3";

/// How the server secures a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpMode {
    /// STARTTLS offered and required before MAIL FROM.
    StartTls,
    /// TLS from the first byte.
    Implicit,
    /// No TLS offered.
    Plain,
}

/// One message the server accepted.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    /// Headers and body as sent.
    pub content: String,
    /// The session was encrypted when the message was sent.
    pub tls: bool,
    /// Who logged in, if anyone.
    pub login: Option<String>,
}

/// The running server; stopped when dropped.
pub struct SmtpPeer {
    pub port: u16,
    out: tempfile::TempDir,
    child: Child,
    _stdin: ChildStdin,
}

impl SmtpPeer {
    /// Starts the server with the certificate and key files `tls` (needed unless `Plain`)
    /// and, with `login`, AUTH required for that user and password.
    pub fn start(mode: SmtpMode, tls: Option<(&Path, &Path)>, login: Option<(&str, &str)>) -> Self {
        let out = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut cmd = Command::new(PYTHON);
        cmd.arg(repo_root().join("tests/peers/smtp_server.py"))
            .arg("--port")
            .arg(port.to_string())
            .arg("--out")
            .arg(out.path())
            .arg("--mode")
            .arg(match mode {
                SmtpMode::StartTls => "starttls",
                SmtpMode::Implicit => "implicit",
                SmtpMode::Plain => "plain",
            });
        if let Some((cert, key)) = tls {
            cmd.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        if let Some((user, password)) = login {
            let file = out.path().join(".password");
            std::fs::write(&file, password).expect("write the password file");
            cmd.arg("--user").arg(user).arg("--password-file").arg(file);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {PYTHON} (install python3-aiosmtpd): {e}"));
        let stdin = child.stdin.take().expect("piped stdin");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("read the server's first line");
        assert_eq!(
            line.trim(),
            "READY",
            "the SMTP test server did not start (is python3-aiosmtpd installed?)"
        );
        SmtpPeer {
            port,
            out,
            child,
            _stdin: stdin,
        }
    }

    /// Every message accepted so far, in order.
    pub fn received(&self) -> Vec<Received> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.out.path())
            .expect("list the messages")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| {
                serde_json::from_slice(&std::fs::read(p).expect("read a message"))
                    .expect("a message record")
            })
            .collect()
    }

    /// Waits until at least `n` messages arrived (or `timeout` passed) and returns them.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let end = Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n || Instant::now() >= end {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
