//! A Vigil PKI, an event store and bus, and the listeners on loopback ports, for the tests.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use vigil_events::{Event, EventBus, EventQuery, EventStore};
use vigil_intake::{AllowList, Input, Intake, Limits, Settings, Tls};
use vigil_pki::{InitOptions, LeafKeyType, LeafRequest, LeafUsage, Pki};
use vigil_syslog::CameraMap;

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub pki: Pki,
    pub bus: Arc<EventBus>,
    pub intake: Option<Intake>,
}

/// Loopback on a free port for each input.
pub fn loopback(inputs: &[Input]) -> BTreeMap<Input, SocketAddr> {
    inputs
        .iter()
        .map(|&i| (i, SocketAddr::from(([127, 0, 0, 1], 0))))
        .collect()
}

pub fn settings(inputs: &[Input], allowed: &[&str], limits: Limits) -> Settings {
    Settings {
        bind: loopback(inputs),
        allowed: AllowList::parse(&allowed.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap(),
        require_client_cert: false,
        limits,
        time: vigil_syslog::TimePolicy::default(),
    }
}

impl Harness {
    pub async fn start(settings: Settings) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::init(&dir.path().join("pki"), &InitOptions::default()).unwrap();
        let bus = EventBus::start(
            Arc::new(EventStore::open(dir.path()).unwrap()),
            "vigil-test",
        )
        .unwrap();
        let tls = Tls {
            live: pki.live_tls().unwrap(),
            ca: pki.ca_cert_der().clone(),
        };
        let intake = Intake::start(settings, Some(tls), bus.clone(), Arc::new(CameraMap::new()))
            .await
            .unwrap();
        Harness {
            dir,
            pki,
            bus,
            intake: Some(intake),
        }
    }

    pub fn intake(&self) -> &Intake {
        self.intake.as_ref().unwrap()
    }

    pub fn addr(&self, input: Input) -> SocketAddr {
        self.intake().local_addr(input).unwrap()
    }

    /// A client certificate from the Vigil CA named `cn`, as PEM files (certificate, key).
    pub fn client_files(&self, cn: &str) -> (PathBuf, PathBuf) {
        let leaf = self
            .pki
            .issue_leaf(&LeafRequest {
                common_name: cn.into(),
                sans: vec![],
                validity_days: 2,
                usage: LeafUsage::TlsClient,
                key_type: LeafKeyType::EcdsaP256,
            })
            .unwrap();
        let cert = self.dir.path().join(format!("{cn}.crt"));
        let key = self.dir.path().join(format!("{cn}.key"));
        std::fs::write(&cert, &leaf.cert_pem).unwrap();
        vigil_pki::write_secret_file(&key, leaf.key_pem.as_bytes()).unwrap();
        (cert, key)
    }

    pub fn ca_file(&self) -> PathBuf {
        let p = self.dir.path().join("vigil-ca.crt");
        std::fs::write(&p, self.pki.ca_cert_pem()).unwrap();
        p
    }

    /// A TLS connection from Rust, with a Vigil client certificate named `cn` or none.
    pub async fn tls(&self, input: Input, cn: Option<&str>) -> TlsStream<TcpStream> {
        let identity = cn.map(|cn| {
            self.pki
                .issue_leaf(&LeafRequest {
                    common_name: cn.into(),
                    sans: vec![],
                    validity_days: 2,
                    usage: LeafUsage::TlsClient,
                    key_type: LeafKeyType::EcdsaP256,
                })
                .unwrap()
                .certified_key()
                .unwrap()
        });
        let config = self.pki.client_config(identity).unwrap();
        let tcp = TcpStream::connect(self.addr(input)).await.unwrap();
        TlsConnector::from(Arc::new(config))
            .connect("localhost".try_into().unwrap(), tcp)
            .await
            .unwrap()
    }

    /// Events of these kinds (or prefixes ending in '.'), oldest first.
    pub fn events(&self, kinds: &[&str]) -> Vec<Event> {
        let mut e = self
            .bus
            .store()
            .query(&EventQuery {
                kinds: kinds.iter().map(|s| s.to_string()).collect(),
                limit: 1000,
                ..Default::default()
            })
            .unwrap()
            .events;
        e.reverse();
        e
    }

    /// Waits until at least `n` events of `kinds` are stored (at most `limit`).
    pub async fn wait_events(&self, kinds: &[&str], n: usize, limit: Duration) -> Vec<Event> {
        let deadline = Instant::now() + limit;
        loop {
            let e = self.events(kinds);
            if e.len() >= n || Instant::now() > deadline {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn stop(&mut self) {
        if let Some(i) = self.intake.take() {
            i.shutdown().await;
        }
    }
}

/// Waits until `cond` holds (at most `limit`).
pub async fn until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !cond() {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// Writes everything and flushes (a TLS stream buffers).
pub async fn send<S: tokio::io::AsyncWrite + Unpin>(s: &mut S, bytes: &[u8]) {
    s.write_all(bytes).await.unwrap();
    s.flush().await.unwrap();
}

/// `openssl s_client` to `addr` with `stdin` as the data, optionally with a client
/// certificate; returns its exit status success and output.
pub fn s_client(
    dir: &Path,
    addr: SocketAddr,
    ca: &Path,
    cert: Option<(&Path, &Path)>,
    stdin: &[u8],
) -> (bool, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut cmd = Command::new(vigil_testkit::require_tool("timeout"));
    cmd.arg("20")
        .arg(vigil_testkit::require_tool("openssl"))
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-quiet",
            "-no_ign_eof",
        ])
        .arg("-CAfile")
        .arg(ca)
        .args(["-verify_return_error", "-servername", "localhost"]);
    if let Some((c, k)) = cert {
        cmd.arg("-cert").arg(c).arg("-key").arg(k);
    }
    let mut child = cmd
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
