//! Drives the real `vigil` binary as a subprocess against real peers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Vigil {
    pub dir: tempfile::TempDir,
    pub data: PathBuf,
    pub config: PathBuf,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_vigil")
}

impl Vigil {
    /// `vigil init` in a fresh temp dir, with test-friendly timings patched into the config.
    pub fn init(segment_seconds: u32) -> Vigil {
        Self::init_in(tempfile::tempdir().unwrap(), segment_seconds)
    }

    pub fn init_in(dir: tempfile::TempDir, segment_seconds: u32) -> Vigil {
        let data = dir.path().join("data");
        let out = Command::new(bin())
            .args(["init", "--data-dir"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let config = data.join("vigil.toml");
        let text = std::fs::read_to_string(&config).unwrap();
        let text = text
            .replace(
                "segment_seconds = 60",
                &format!("segment_seconds = {segment_seconds}"),
            )
            .replace(
                "inactivity_timeout = \"10s\"",
                "inactivity_timeout = \"3s\"",
            )
            .replace("max_backoff = \"30s\"", "max_backoff = \"2s\"")
            // Tests run in parallel: each server's API gets its own loopback port.
            .replace(
                "bind = \"0.0.0.0:8443\"",
                &format!("bind = \"127.0.0.1:{}\"", vigil_testkit::free_port()),
            )
            // ... and its metrics listener (loopback already).
            .replace(
                "bind = \"127.0.0.1:9464\"",
                &format!("bind = \"127.0.0.1:{}\"", vigil_testkit::free_port()),
            )
            // ... and its event listeners (generic events and syslog over TLS).
            .replace(
                "tcp = { bind = \"0.0.0.0:1234\" }",
                &format!(
                    "tcp = {{ bind = \"127.0.0.1:{}\" }}",
                    vigil_testkit::free_port()
                ),
            )
            .replace(
                "syslog_tls = { bind = \"0.0.0.0:6514\" }",
                &format!(
                    "syslog_tls = {{ bind = \"127.0.0.1:{}\" }}",
                    vigil_testkit::free_port()
                ),
            );
        assert!(
            text.contains("bind = \"127.0.0.1:"),
            "config layout changed: {text}"
        );
        std::fs::write(&config, text).unwrap();
        Vigil { dir, data, config }
    }

    pub fn set_config(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        assert!(text.contains(from), "config has no '{from}'");
        std::fs::write(&self.config, text.replace(from, to)).unwrap();
    }

    pub fn cmd(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("VIGIL_LOG", "warn")
            .output()
            .unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args);
        assert!(
            out.status.success(),
            "vigil {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn add_camera(&self, name: &str, url: &str) {
        self.ok(&["camera", "add", name, "--url", url]);
    }

    pub fn add_camera_with_password(&self, name: &str, url: &str, user: &str, password: &str) {
        let pw = self.dir.path().join(format!("{name}.pw"));
        std::fs::write(&pw, format!("{password}\n")).unwrap();
        self.ok(&[
            "camera",
            "add",
            name,
            "--url",
            url,
            "--username",
            user,
            "--password-file",
            pw.to_str().unwrap(),
        ]);
    }

    /// Adds each rotation camera by ONVIF over HTTPS with its password from a file, pinning
    /// the peer's self-signed certificate.
    pub fn add_rotation_cameras(
        &self,
        cams: &vigil_testkit::RotationCameras,
        specs: &[&vigil_testkit::RotationCameraSpec],
    ) {
        for s in specs {
            let pw = self.dir.path().join(format!("{}.pw", s.name));
            std::fs::write(&pw, format!("{}\n", s.password)).unwrap();
            self.ok(&[
                "camera",
                "add",
                &s.name,
                "--onvif",
                &cams.onvif_url(&s.name),
                "--username",
                &s.user,
                "--password-file",
                pw.to_str().unwrap(),
                "--fingerprint",
                cams.fingerprint(),
            ]);
        }
    }

    pub fn serve(&self) -> Server {
        self.serve_with(&[])
    }

    /// `vigil serve` with extra arguments (e.g. `--role recording`).
    pub fn serve_with(&self, args: &[&str]) -> Server {
        let log = self.dir.path().join(format!("serve-{}.log", rand_suffix()));
        let child = Command::new(bin())
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .args(args)
            .env("VIGIL_LOG", "info")
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(
                std::fs::File::create(log.with_extension("err")).unwrap(),
            ))
            .spawn()
            .unwrap();
        Server {
            child: Some(child),
            log,
        }
    }

    pub fn recordings(&self, camera: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["recordings", camera, "--json"])).unwrap()
    }

    pub fn recorded_secs(&self, camera: &str) -> f64 {
        self.recordings(camera)["ranges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["seconds"].as_f64().unwrap())
            .sum()
    }

    pub fn wait_recorded(&self, camera: &str, secs: f64, timeout: Duration) -> f64 {
        let start = Instant::now();
        loop {
            let got = self.recorded_secs(camera);
            if got >= secs {
                return got;
            }
            assert!(
                start.elapsed() < timeout,
                "camera {camera} recorded only {got:.1}s of {secs}s within {timeout:?}; status: {}",
                self.ok(&["camera", "status"])
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    pub fn status(&self, camera: &str) -> serde_json::Value {
        let all: serde_json::Value =
            serde_json::from_str(&self.ok(&["camera", "status", "--json"])).unwrap();
        all.as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == camera)
            .cloned()
            .unwrap_or_else(|| panic!("no status for {camera}"))
    }

    pub fn wait_status(
        &self,
        camera: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
        timeout: Duration,
    ) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let s = self.status(camera);
            if pred(&s) {
                return s;
            }
            assert!(
                start.elapsed() < timeout,
                "status of {camera} never matched: {s}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    pub fn export_all(&self, camera: &str, out: &Path) -> String {
        self.ok(&[
            "export",
            camera,
            "--from",
            "-1h",
            "--to",
            "+1m",
            "-o",
            out.to_str().unwrap(),
        ])
    }

    /// Frames per segment file as the index sees them, and file sizes on disk.
    pub fn segment_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for cam in std::fs::read_dir(self.data.join("video")).unwrap() {
            for f in std::fs::read_dir(cam.unwrap().path()).unwrap() {
                out.push(f.unwrap().path());
            }
        }
        out.sort();
        out
    }
}

fn rand_suffix() -> u64 {
    Instant::now().elapsed().as_nanos() as u64
        ^ std::process::id() as u64
        ^ (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64)
}

pub struct Server {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGTERM and wait; asserts a clean exit.
    pub fn stop(mut self) -> String {
        let mut child = self.child.take().unwrap();
        unsafe { libc_kill(child.id() as i32, 15) };
        let status = wait_timeout(&mut child, Duration::from_secs(30));
        let out = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(status.success(), "serve exited with {status}: {out}");
        out
    }

    pub fn kill9(mut self) {
        let mut child = self.child.take().unwrap();
        unsafe { libc_kill(child.id() as i32, 9) };
        let _ = child.wait();
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
            + &std::fs::read_to_string(self.log.with_extension("err")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            panic!("process did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
