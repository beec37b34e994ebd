//! Cameras whose password can be rotated, from real parts: `tests/peers/rotation_camera.py`
//! (the GStreamer RTSP server with Digest authentication, one mount per camera, and an ONVIF
//! device service per camera over HTTPS whose SetUser changes the RTSP credentials too).
//! This module makes the HTTPS certificate (openssl, self-signed for 127.0.0.1), starts the
//! script with Debian's Python, waits for its READY line, and lets a test make a camera
//! unreachable, wait for a SetUser to be applied and read each camera's current password.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::{GST_PYTHON, external_ca, repo_root, require_gst_rtsp_server};

/// One camera of the peer.
#[derive(Debug, Clone)]
pub struct RotationCameraSpec {
    pub name: String,
    pub user: String,
    pub password: String,
    /// SetUser answers a SOAP fault and changes nothing.
    pub setuser_fails: bool,
    /// SetUser applies the new password, then waits this long before answering.
    pub setuser_delay: Option<Duration>,
    /// Offers ONVIF Advanced Security (keystore, CSR, certificate upload and assignment).
    pub advanced_security: bool,
}

impl RotationCameraSpec {
    pub fn new(name: &str, user: &str, password: &str) -> Self {
        RotationCameraSpec {
            name: name.into(),
            user: user.into(),
            password: password.into(),
            setuser_fails: false,
            setuser_delay: None,
            advanced_security: false,
        }
    }
}

/// The running peer; stopped when dropped.
pub struct RotationCameras {
    child: Child,
    stdin: ChildStdin,
    dir: tempfile::TempDir,
    rtsp_port: u16,
    onvif_ports: HashMap<String, u16>,
    /// Lines the script printed after READY (`APPLIED NAME`, `DONE ...`).
    lines: Arc<(Mutex<Vec<String>>, Condvar)>,
    fingerprint: String,
}

impl RotationCameras {
    /// Starts the cameras, all playing `clip`. Panics with the script's output if it does
    /// not come up within 60 s.
    pub fn start(clip: &Path, cameras: &[RotationCameraSpec]) -> RotationCameras {
        require_gst_rtsp_server();
        let dir = tempfile::tempdir().expect("temp dir");
        let leaf = external_ca::self_signed(
            dir.path(),
            "camera",
            external_ca::Key::P256,
            "127.0.0.1",
            "IP:127.0.0.1",
            2,
        );
        let fingerprint = cert_fingerprint(dir.path(), &leaf.cert);
        let mut cmd = Command::new(GST_PYTHON);
        cmd.arg(repo_root().join("tests/peers/rotation_camera.py"))
            .arg("--clip")
            .arg(clip)
            .arg("--tls-cert")
            .arg(&leaf.cert)
            .arg("--tls-key")
            .arg(&leaf.key)
            .arg("--state-file")
            .arg(dir.path().join("state.json"));
        for c in cameras {
            let mut opts = Vec::new();
            if c.setuser_fails {
                opts.push("setuser_fail".to_owned());
            }
            if let Some(d) = c.setuser_delay {
                opts.push(format!("setuser_delay={:.3}", d.as_secs_f64()));
            }
            if c.advanced_security {
                opts.push("advsec".to_owned());
            }
            cmd.arg("--camera").arg(format!(
                "{}:{}:{}:{}",
                c.name,
                c.user,
                c.password,
                opts.join(",")
            ));
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("start tests/peers/rotation_camera.py");
        let stdin = child.stdin.take().expect("stdin piped");
        let stdout = child.stdout.take().expect("stdout piped");
        let lines: Arc<(Mutex<Vec<String>>, Condvar)> = Arc::default();
        let (ready_tx, ready_rx) = mpsc::channel();
        {
            let lines = lines.clone();
            thread::spawn(move || {
                let mut ready = Some(ready_tx);
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(json) = line.strip_prefix("READY ") {
                        if let Some(tx) = ready.take() {
                            let _ = tx.send(json.to_owned());
                        }
                        continue;
                    }
                    let (l, cv) = &*lines;
                    l.lock().unwrap_or_else(|p| p.into_inner()).push(line);
                    cv.notify_all();
                }
            });
        }
        let ready = match ready_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(r) => r,
            Err(_) => {
                let _ = child.kill();
                panic!("tests/peers/rotation_camera.py did not get ready (see its stderr above)");
            }
        };
        let v: serde_json::Value = serde_json::from_str(&ready).expect("READY json");
        let rtsp_port = v["rtsp_port"].as_u64().expect("rtsp_port") as u16;
        let onvif_ports = v["onvif_ports"]
            .as_object()
            .expect("onvif_ports")
            .iter()
            .map(|(k, p)| (k.clone(), p.as_u64().unwrap_or(0) as u16))
            .collect();
        RotationCameras {
            child,
            stdin,
            dir,
            rtsp_port,
            onvif_ports,
            lines,
            fingerprint,
        }
    }

    /// The camera's ONVIF device service address.
    pub fn onvif_url(&self, name: &str) -> String {
        format!(
            "https://127.0.0.1:{}/onvif/device_service",
            self.onvif_ports[name]
        )
    }

    /// The camera's RTSP stream (no credentials).
    pub fn rtsp_url(&self, name: &str) -> String {
        format!("rtsp://127.0.0.1:{}/{name}", self.rtsp_port)
    }

    /// The SHA-256 fingerprint of every camera's (self-signed) HTTPS certificate.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The camera's password now, as the peer checks it on ONVIF and RTSP.
    pub fn password(&self, name: &str) -> String {
        self.state()["cameras"][name]["password"]
            .as_str()
            .expect("camera in state")
            .to_owned()
    }

    /// The SHA-256 fingerprint (upper-case pairs, colons) of the certificate the camera's
    /// HTTPS serves now.
    pub fn served_certificate(&self, name: &str) -> String {
        self.state()["cameras"][name]["certificate_sha256"]
            .as_str()
            .expect("camera in state")
            .to_owned()
    }

    /// The camera's ONVIF port.
    pub fn onvif_port(&self, name: &str) -> u16 {
        self.onvif_ports[name]
    }

    /// How many SetUser requests the camera received.
    pub fn setuser_calls(&self, name: &str) -> u64 {
        self.state()["cameras"][name]["setuser_calls"]
            .as_u64()
            .unwrap_or(0)
    }

    fn state(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.dir.path().join("state.json")).expect("state");
        serde_json::from_str(&text).expect("state json")
    }

    /// Closes (`false`) or opens again (`true`) the camera's ONVIF port.
    pub fn set_reachable(&mut self, name: &str, reachable: bool) {
        let cmd = format!(
            "{} {name}",
            if reachable {
                "reachable"
            } else {
                "unreachable"
            }
        );
        writeln!(self.stdin, "{cmd}").expect("control the peer");
        self.stdin.flush().expect("control the peer");
        self.wait_line(&format!("DONE {cmd}"), Duration::from_secs(10));
    }

    /// Waits until a SetUser of the camera was applied (the new password is in effect,
    /// its answer maybe not sent yet).
    pub fn wait_applied(&self, name: &str, timeout: Duration) {
        self.wait_line(&format!("APPLIED {name}"), timeout);
    }

    fn wait_line(&self, want: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let (l, cv) = &*self.lines;
        let mut lines = l.lock().unwrap_or_else(|p| p.into_inner());
        while !lines.iter().any(|x| x == want) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "the rotation cameras never said {want:?}");
            lines = cv
                .wait_timeout(lines, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }
}

impl Drop for RotationCameras {
    fn drop(&mut self) {
        // SIGTERM first (the script stops its servers), then make sure.
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// SHA-256 fingerprint of a PEM certificate, `AB:CD:...`, as openssl prints it.
fn cert_fingerprint(dir: &Path, cert: &Path) -> String {
    let out = external_ca::openssl(
        dir,
        &[
            "x509",
            "-in",
            cert.to_str().expect("utf-8 path"),
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
    );
    out.trim()
        .rsplit_once('=')
        .map(|(_, f)| f.to_owned())
        .expect("openssl fingerprint")
}
