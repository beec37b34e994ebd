//! The TLS side against real peers: a tokio-rustls server on an ephemeral loopback port with
//! `openssl s_client` as the client. Covers verification with the exported CA, live rotation,
//! session invalidation, refused TLS 1.1, cipher restrictions and mutual TLS.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration as StdDuration;

use common::write;
use rustls::ServerConfig;
use time::{Duration, OffsetDateTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use vigil_pki::{InitOptions, LeafKeyType, LeafRequest, LeafUsage, Pki, SessionPolicy};
use vigil_testkit::external_ca::{Key, self_signed};

struct Server {
    port: u16,
    failed_handshakes: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves "hello\n" over TLS to every connection.
async fn serve(config: ServerConfig) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let failed = Arc::new(AtomicUsize::new(0));
    let failed2 = failed.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let failed = failed2.clone();
            tokio::spawn(async move {
                let handshake =
                    tokio::time::timeout(StdDuration::from_secs(10), acceptor.accept(tcp)).await;
                match handshake {
                    Ok(Ok(mut tls)) => {
                        let _ = tls.write_all(b"hello\n").await;
                        let _ = tls.shutdown().await;
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    Server {
        port,
        failed_handshakes: failed,
        task,
    }
}

struct ClientResult {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl ClientResult {
    /// SHA-256 fingerprint of the certificate the server presented, as our code computes it.
    fn server_fingerprint(&self) -> Option<String> {
        let start = self.stdout.find("-----BEGIN CERTIFICATE-----")?;
        let end =
            self.stdout.find("-----END CERTIFICATE-----")? + "-----END CERTIFICATE-----".len();
        let block = pem::parse(&self.stdout[start..end]).ok()?;
        Some(vigil_pki::fingerprint_sha256(block.contents()))
    }
}

/// Runs `openssl s_client` in a blocking thread (bounded by `timeout`).
async fn s_client(dir: &Path, port: u16, extra: &[&str]) -> ClientResult {
    let dir = dir.to_path_buf();
    let mut args: Vec<String> = vec![
        "s_client".into(),
        "-connect".into(),
        format!("127.0.0.1:{port}"),
        "-servername".into(),
        "localhost".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    tokio::task::spawn_blocking(move || {
        let out = Command::new("timeout")
            .arg("20")
            .arg("openssl")
            .args(&args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output()
            .expect("openssl");
        ClientResult {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .expect("join")
}

fn init(dir: &Path) -> Pki {
    let pki = Pki::init(
        &dir.join("pki"),
        &InitOptions {
            hostnames: vec!["localhost".into(), "127.0.0.1".into()],
            ..InitOptions::default()
        },
    )
    .expect("init");
    write(dir, "ca.pem", pki.ca_cert_pem().as_bytes());
    pki
}

const VERIFY: &[&str] = &[
    "-CAfile",
    "ca.pem",
    "-verify_return_error",
    "-verify_hostname",
    "localhost",
];

#[tokio::test]
async fn openssl_verifies_the_server_and_sees_a_swapped_certificate() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    let mut pki = init(d);
    let tls = pki.live_tls().expect("live");
    let server = serve(tls.server_config().expect("config")).await;

    let first = s_client(d, server.port, VERIFY).await;
    assert!(first.ok, "{}\n{}", first.stdout, first.stderr);
    assert!(
        first.stdout.contains("Verify return code: 0 (ok)"),
        "{}",
        first.stdout
    );
    let fp1 = first.server_fingerprint().expect("certificate shown");
    assert_eq!(fp1, vigil_pki::fingerprint_sha256(&tls.current().cert[0]));

    // Rotate the generated certificate while the server runs.
    let renewed = pki
        .renew_server_cert(OffsetDateTime::now_utc())
        .expect("renew");
    tls.rotate(renewed.clone(), SessionPolicy::Keep)
        .expect("rotate");
    let second = s_client(d, server.port, VERIFY).await;
    assert!(second.ok, "{}\n{}", second.stdout, second.stderr);
    let fp2 = second.server_fingerprint().expect("certificate shown");
    assert_ne!(fp1, fp2);
    assert_eq!(fp2, vigil_pki::fingerprint_sha256(&renewed.cert[0]));
}

#[tokio::test]
async fn renewal_when_due_is_served_live() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    let now = OffsetDateTime::now_utc();
    // An installation created 340 days ago: its server certificate has 25 days left.
    let mut pki = Pki::init_at(
        &d.join("pki"),
        &InitOptions {
            hostnames: vec!["localhost".into()],
            ..InitOptions::default()
        },
        now - Duration::days(340),
    )
    .expect("init");
    write(d, "ca.pem", pki.ca_cert_pem().as_bytes());
    let tls = pki.live_tls().expect("live");
    let server = serve(tls.server_config().expect("config")).await;
    let before = s_client(d, server.port, VERIFY).await;
    assert!(before.ok, "{}", before.stderr);

    let renewed = pki
        .renew_if_due(now)
        .expect("renew")
        .expect("due within 30 days");
    tls.rotate(renewed.clone(), SessionPolicy::Keep)
        .expect("rotate");
    let after = s_client(d, server.port, VERIFY).await;
    assert!(after.ok, "{}", after.stderr);
    assert_eq!(
        after.server_fingerprint().expect("cert"),
        vigil_pki::fingerprint_sha256(&renewed.cert[0])
    );
    assert_ne!(after.server_fingerprint(), before.server_fingerprint());
    assert!(
        pki.renew_if_due(now).expect("check").is_none(),
        "fresh certificate is not due"
    );
}

#[tokio::test]
async fn invalidating_sessions_forces_clients_onto_the_new_certificate() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    let mut pki = init(d);
    let tls = pki.live_tls().expect("live");
    let server = serve(tls.server_config().expect("config")).await;
    let v12: Vec<&str> = VERIFY.iter().copied().chain(["-tls1_2"]).collect();

    let mut args = v12.clone();
    args.extend(["-sess_out", "s1"]);
    let first = s_client(d, server.port, &args).await;
    assert!(
        first.ok && first.stdout.contains("New, TLSv1.2"),
        "{}",
        first.stdout
    );

    // Routine rotation: the client may resume its session (and keeps the old certificate).
    let next = pki
        .renew_server_cert(OffsetDateTime::now_utc())
        .expect("renew");
    tls.rotate(next, SessionPolicy::Keep).expect("rotate");
    let mut args = v12.clone();
    args.extend(["-sess_in", "s1"]);
    let resumed = s_client(d, server.port, &args).await;
    assert!(
        resumed.stdout.contains("Reused, TLSv1.2"),
        "{}",
        resumed.stdout
    );

    // Rotation after a compromise: old sessions are gone, the client sees the new certificate.
    let next = pki
        .renew_server_cert(OffsetDateTime::now_utc())
        .expect("renew");
    tls.rotate(next.clone(), SessionPolicy::Invalidate)
        .expect("rotate");
    let fresh = s_client(d, server.port, &args).await;
    assert!(
        fresh.ok && fresh.stdout.contains("New, TLSv1.2"),
        "{}",
        fresh.stdout
    );
    assert_eq!(
        fresh.server_fingerprint().expect("cert"),
        vigil_pki::fingerprint_sha256(&next.cert[0])
    );
}

#[tokio::test]
async fn old_protocols_and_weak_ciphers_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    let pki = init(d);
    let tls = pki.live_tls().expect("live");
    let server = serve(tls.server_config().expect("config")).await;

    // SECLEVEL=0 makes openssl really offer TLS 1.1 / CBC suites, so the refusal is the server's.
    let tls11 = s_client(
        d,
        server.port,
        &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
    )
    .await;
    assert!(!tls11.ok, "TLS 1.1 must fail: {}", tls11.stdout);
    let cbc = s_client(
        d,
        server.port,
        &[
            "-tls1_2",
            "-cipher",
            "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA:AES128-GCM-SHA256@SECLEVEL=0",
        ],
    )
    .await;
    assert!(
        !cbc.ok,
        "CBC and static-RSA suites must fail: {}",
        cbc.stdout
    );
    // Both attempts reached the server and were refused there.
    let deadline = std::time::Instant::now() + StdDuration::from_secs(5);
    while server.failed_handshakes.load(Ordering::SeqCst) < 2
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    assert_eq!(server.failed_handshakes.load(Ordering::SeqCst), 2);

    for (flag, expect) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let mut args: Vec<&str> = VERIFY.to_vec();
        args.push(flag);
        let ok = s_client(d, server.port, &args).await;
        assert!(ok.ok && ok.stdout.contains(expect), "{flag}: {}", ok.stdout);
        assert!(
            ok.stdout.contains("GCM") || ok.stdout.contains("CHACHA20"),
            "{}",
            ok.stdout
        );
    }
}

#[tokio::test]
async fn mutual_tls_admits_only_holders_of_a_system_ca_certificate() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    let pki = init(d);
    let tls = pki.live_tls().expect("live");
    let config = tls
        .server_config_mtls(pki.client_verifier().expect("verifier"))
        .expect("config");
    let server = serve(config).await;

    let leaf = pki
        .issue_leaf(&LeafRequest {
            common_name: "recorder-1".into(),
            sans: vec!["recorder-1.example".into()],
            validity_days: 30,
            usage: LeafUsage::TlsClient,
            key_type: LeafKeyType::EcdsaP256,
        })
        .expect("leaf");
    write(d, "client.crt", leaf.cert_pem.as_bytes());
    vigil_pki::write_secret_file(&d.join("client.key"), leaf.key_pem.as_bytes()).expect("key");

    let mut args: Vec<&str> = VERIFY.to_vec();
    args.extend(["-cert", "client.crt", "-key", "client.key", "-ign_eof"]);
    let with_cert = s_client(d, server.port, &args).await;
    assert!(
        with_cert.ok && with_cert.stdout.contains("hello"),
        "{}\n{}",
        with_cert.stdout,
        with_cert.stderr
    );

    let mut args: Vec<&str> = VERIFY.to_vec();
    args.push("-ign_eof");
    let without = s_client(d, server.port, &args).await;
    assert!(
        !without.stdout.contains("hello"),
        "no client certificate, no data: {}",
        without.stdout
    );

    assert!(!without.ok, "{}", without.stdout);
    // A certificate from a foreign CA is refused too.
    self_signed(d, "f", Key::P256, "foreign", "DNS:foreign", 2);
    let mut args: Vec<&str> = VERIFY.to_vec();
    args.extend(["-cert", "f.crt", "-key", "f.key", "-ign_eof"]);
    let foreign = s_client(d, server.port, &args).await;
    assert!(
        !foreign.ok && !foreign.stdout.contains("hello"),
        "{}",
        foreign.stdout
    );

    // Vigil's own client configuration presenting the leaf.
    let client = tokio_rustls::TlsConnector::from(Arc::new(
        pki.client_config(Some(leaf.certified_key().expect("ck")))
            .expect("client config"),
    ));
    let tcp = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut stream = client
        .connect(name, tcp)
        .await
        .expect("mutual TLS handshake");
    let mut buf = String::new();
    stream.read_to_string(&mut buf).await.expect("read");
    assert_eq!(buf, "hello\n");
}

#[test]
fn only_aws_lc_rs_and_aead_suites_are_configured() {
    let provider = vigil_pki::tls::crypto_provider();
    for suite in &provider.cipher_suites {
        let name = format!("{:?}", suite.suite());
        assert!(
            name.contains("GCM") || name.contains("CHACHA20_POLY1305"),
            "{name}"
        );
        if name.starts_with("TLS_ECDHE") || name.starts_with("TLS13") {
            continue;
        }
        panic!("suite without forward secrecy: {name}");
    }
    assert_eq!(provider.cipher_suites.len(), 9);
}
