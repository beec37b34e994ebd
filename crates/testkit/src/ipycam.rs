//! IPyCam (PyPI `ipycam`), an ONVIF camera written independently of Vigil, as a test peer:
//! `tests/peers/ipycam_camera.py` runs one with WS-Discovery on a port of the test's choosing,
//! its ONVIF services over HTTP with WS-Security, and its own RTSP server streaming a main
//! (640x360) and a sub (320x180) H.264 stream of generated frames.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::{Error, free_port, repo_root, require_tool};

/// The pip command that installs the peer (`scripts/test-all.sh` runs it).
pub const INSTALL_HINT: &str = "python3 -m pip install numpy==2.4.6 opencv-python-headless==5.1.0.95 && python3 -m pip install --no-deps ipycam==1.3.0";

/// A running IPyCam camera; killed when dropped.
pub struct IpyCam {
    child: Child,
    _dir: tempfile::TempDir,
    pub http_port: u16,
    pub rtsp_port: u16,
    pub discovery_port: u16,
    pub serial: String,
}

impl IpyCam {
    /// Starts a camera whose ONVIF user `admin` has `password`; panics with the reason (and
    /// how to install IPyCam) when it does not come up within 60 s.
    pub fn start(serial: &str, password: &str) -> IpyCam {
        Self::try_start(serial, password).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_start(serial: &str, password: &str) -> Result<IpyCam, Error> {
        require_tool("ffmpeg");
        let dir = tempfile::tempdir().map_err(|e| Error::Peer(format!("temp dir: {e}")))?;
        let pw = dir.path().join("password");
        std::fs::write(&pw, format!("{password}\n"))
            .map_err(|e| Error::Peer(format!("write the password file: {e}")))?;
        let (http_port, rtsp_port, discovery_port, unused) =
            (free_port(), free_port(), free_port(), free_port());
        let mut child = Command::new("python3")
            .arg(repo_root().join("tests/peers/ipycam_camera.py"))
            .args(["--http-port", &http_port.to_string()])
            .args(["--rtsp-port", &rtsp_port.to_string()])
            .args(["--discovery-port", &discovery_port.to_string()])
            .args(["--unused-port", &unused.to_string()])
            .args(["--serial", serial])
            .arg("--password-file")
            .arg(&pw)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| Error::Peer(format!("start tests/peers/ipycam_camera.py: {e}")))?;
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("{\"ready\"") {
                    let _ = tx.send(line);
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(_) => Ok(IpyCam {
                child,
                _dir: dir,
                http_port,
                rtsp_port,
                discovery_port,
                serial: serial.to_owned(),
            }),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                Err(Error::Peer(format!(
                    "the IPyCam camera did not get ready within 60 s (exit {status:?}; its \
                     standard error is above); if ipycam is missing: {INSTALL_HINT}"
                )))
            }
        }
    }

    /// The ONVIF address to add the camera with (plain HTTP: IPyCam has no HTTPS).
    pub fn onvif_address(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The RTSP URL of one of its streams (`video_main`, `video_sub`).
    pub fn rtsp_url(&self, stream: &str) -> String {
        format!("rtsp://127.0.0.1:{}/{stream}", self.rtsp_port)
    }
}

impl Drop for IpyCam {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
