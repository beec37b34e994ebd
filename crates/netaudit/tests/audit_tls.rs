//! The audit against real TLS servers (`openssl s_server`) with certificates crafted by the
//! openssl CLI, plus a plaintext HTTP server. Every server must yield exactly its finding.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vigil_netaudit::{self as audit, FindingKind, ProbeOptions, Severity};
use vigil_netpolicy::Endpoint;
use vigil_testkit::external_ca::{ExternalCa, Key, Leaf, Validity, self_signed};

/// The key of the leaves (a device's usual RSA key).
const RSA: Key = Key::Rsa(2048);

/// A CA in `root/dir` named `cn`, with an RSA key as device CAs often have.
fn test_ca(root: &Path, dir: &str, cn: &str) -> ExternalCa {
    ExternalCa::root(&root.join(dir), cn, RSA)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_open(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server on {port} did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `openssl s_server` on 127.0.0.1; `weak` lowers OpenSSL's security level, which allows
/// 1024-bit keys and also TLS 1.0/1.1 unless `legacy` is false.
fn s_server(cert: &Path, key: &Path, weak: bool, legacy: bool) -> (Server, u16) {
    for _ in 0..5 {
        let port = free_port();
        let mut cmd = Command::new("openssl");
        cmd.args([
            "s_server",
            "-accept",
            &format!("127.0.0.1:{port}"),
            "-www",
            "-quiet",
        ])
        .arg("-cert")
        .arg(cert)
        .arg("-key")
        .arg(key)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        if weak {
            cmd.args(["-cipher", "DEFAULT:@SECLEVEL=0"]);
            if !legacy {
                cmd.args(["-no_tls1", "-no_tls1_1"]);
            }
        }
        let mut child = Server(cmd.spawn().expect("openssl s_server"));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return (child, port);
            }
            if child.0.try_wait().unwrap().is_some() || Instant::now() > deadline {
                break; // port taken meanwhile: try another
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("openssl s_server did not start");
}

/// A plaintext HTTP server answering anything with a 200; stops after `max` connections.
fn http_server(max: usize) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().take(max) {
            let Ok(mut s) = s else { continue };
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = [0u8; 1024];
            if s.read(&mut buf).is_ok_and(|n| n > 0) {
                let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
            }
        }
    });
    wait_open(port);
    port
}

#[test]
fn each_server_yields_exactly_its_finding() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = test_ca(tmp.path(), "ca", "Vigil Test CA");
    let other = test_ca(tmp.path(), "other", "Unknown CA");
    let ip = "IP:127.0.0.1";
    let year = Validity::Days(365);
    let good = ca.leaf("good", RSA, ip, year);
    let expired = ca.leaf(
        "expired",
        RSA,
        ip,
        Validity::Between("20200101000000Z", "20210101000000Z"),
    );
    let expiring = ca.leaf("expiring", RSA, ip, Validity::Days(10));
    let wrong_san = ca.leaf("wrongsan", RSA, "DNS:other.example,IP:10.9.9.9", year);
    let weak = ca.leaf("weak", Key::Rsa(1024), ip, year);
    let shared = ca.leaf("factory", RSA, ip, year);
    let untrusted = other.leaf("stranger", RSA, ip, year);
    let selfsigned = self_signed(tmp.path(), "self", RSA, "selfie", ip, 365);

    let mut servers = Vec::new();
    let mut endpoints = Vec::new();
    let mut expect: Vec<(String, Vec<FindingKind>)> = Vec::new();
    let legacy_cert = ca.leaf("legacy", RSA, ip, year);
    // (name, certificate and key, lower security level, allow TLS 1.0/1.1, expected findings)
    type Case<'a> = (&'a str, &'a Leaf, bool, bool, Vec<FindingKind>);
    let cases: Vec<Case> = vec![
        ("good", &good, false, false, vec![]),
        (
            "expired",
            &expired,
            false,
            false,
            vec![FindingKind::CertExpired],
        ),
        (
            "expiring",
            &expiring,
            false,
            false,
            vec![FindingKind::CertExpiring],
        ),
        (
            "selfsigned",
            &selfsigned,
            false,
            false,
            vec![FindingKind::SelfSigned],
        ),
        (
            "wrongsan",
            &wrong_san,
            false,
            false,
            vec![FindingKind::NameMismatch],
        ),
        ("weak", &weak, true, false, vec![FindingKind::WeakKey]),
        (
            "factory-a",
            &shared,
            false,
            false,
            vec![FindingKind::SharedCertificate],
        ),
        (
            "factory-b",
            &shared,
            false,
            false,
            vec![FindingKind::SharedCertificate],
        ),
        (
            "untrusted",
            &untrusted,
            false,
            false,
            vec![FindingKind::UntrustedIssuer],
        ),
        (
            "legacy",
            &legacy_cert,
            true,
            true,
            vec![FindingKind::LegacyTls],
        ),
    ];
    for (name, leaf, weak, legacy, kinds) in cases {
        let (srv, port) = s_server(&leaf.cert, &leaf.key, weak, legacy);
        servers.push(srv);
        endpoints.push(Endpoint::new(name, "127.0.0.1", port, "https"));
        expect.push((name.to_string(), kinds));
    }
    let http = http_server(10);
    endpoints.push(Endpoint::new("plain", "127.0.0.1", http, ""));
    expect.push(("plain".into(), vec![FindingKind::PlaintextHttp]));
    let closed = free_port();
    endpoints.push(Endpoint::new("gone", "127.0.0.1", closed, "https"));
    expect.push(("gone".into(), vec![FindingKind::Unreachable]));

    let opts = ProbeOptions::with_ca_files(false, &[ca.root_cert()]).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let report = rt.block_on(audit::run(endpoints, None, &opts)).unwrap();
    for (name, kinds) in &expect {
        let mut got: Vec<FindingKind> = report
            .findings
            .iter()
            .filter(|f| f.target.starts_with(&format!("{name} (")))
            .map(|f| f.kind)
            .collect();
        got.sort();
        assert_eq!(
            &got,
            kinds,
            "{name}: {:#?}",
            report
                .findings
                .iter()
                .filter(|f| f.target.starts_with(name.as_str()))
                .collect::<Vec<_>>()
        );
    }
    // TLS versions are reported: s_server offers 1.3 and 1.2, never 1.0/1.1.
    let good_probe = &report.probes[0];
    let tls = good_probe.tls.as_ref().unwrap();
    assert_eq!(tls.negotiated, "TLS 1.3");
    assert_eq!(tls.versions, ["TLS 1.3", "TLS 1.2"]);
    assert!(tls.legacy.is_empty());
    // The 1024-bit key was read even though rustls would never accept it.
    let weak_leaf = report.probes[5]
        .tls
        .as_ref()
        .unwrap()
        .leaf
        .as_ref()
        .unwrap();
    assert_eq!(weak_leaf.rsa_bits, Some(1024));
    assert_eq!(report.exit_code(), 1);
    assert!(report.findings.iter().any(|f| f.severity == Severity::High));
    let text = report.to_text();
    assert!(text.contains("FAIL"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    let total: usize = expect.iter().map(|(_, k)| k.len()).sum();
    assert_eq!(json["findings"].as_array().unwrap().len(), total);
}

/// `openssl s_server` restricted by `flags` (e.g. `-tls1_3`), with the security level lowered
/// so TLS 1.0/1.1 can be offered at all.
fn s_server_only(cert: &Path, key: &Path, flags: &[&str]) -> (Server, u16) {
    let port = free_port();
    let child = Server(
        Command::new("openssl")
            .args([
                "s_server",
                "-accept",
                &format!("127.0.0.1:{port}"),
                "-www",
                "-quiet",
            ])
            .arg("-cert")
            .arg(cert)
            .arg("-key")
            .arg(key)
            .args(["-cipher", "DEFAULT:@SECLEVEL=0"])
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server"),
    );
    wait_open(port);
    (child, port)
}

#[test]
fn servers_with_one_version_range_are_fully_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = test_ca(tmp.path(), "ca", "Vigil Test CA");
    let new = ca.leaf("new", RSA, "IP:127.0.0.1", Validity::Days(365));
    let old = ca.leaf("old", RSA, "IP:127.0.0.1", Validity::Days(365));
    // TLS 1.3 only: the certificate is encrypted, so the audit completes a real handshake.
    let (_a, only13) = s_server_only(&new.cert, &new.key, &["-tls1_3"]);
    // TLS 1.0/1.1 only: rustls cannot talk to it, yet its certificate is read in clear.
    let (_b, only_old) = s_server_only(&old.cert, &old.key, &["-no_tls1_2", "-no_tls1_3"]);
    let opts = ProbeOptions::with_ca_files(false, &[ca.root_cert()]).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let report = rt
        .block_on(audit::run(
            vec![
                Endpoint::new("only13", "127.0.0.1", only13, "https"),
                Endpoint::new("oldonly", "127.0.0.1", only_old, "https"),
            ],
            None,
            &opts,
        ))
        .unwrap();
    let t13 = report.probes[0]
        .tls
        .as_ref()
        .expect("TLS 1.3 server speaks TLS");
    assert_eq!(t13.versions, ["TLS 1.3"]);
    assert_eq!(t13.negotiated, "TLS 1.3");
    assert_eq!(
        t13.leaf.as_ref().unwrap().common_name.as_deref(),
        Some("new")
    );
    let old = report.probes[1]
        .tls
        .as_ref()
        .expect("TLS 1.1 server speaks TLS");
    assert_eq!(old.negotiated, "TLS 1.1");
    assert_eq!(old.legacy, ["TLS 1.1"]);
    assert_eq!(
        old.leaf.as_ref().unwrap().common_name.as_deref(),
        Some("old")
    );
    let kinds: Vec<(&str, FindingKind)> = report
        .findings
        .iter()
        .map(|f| (f.target.split(' ').next().unwrap(), f.kind))
        .collect();
    assert_eq!(
        kinds,
        [("oldonly", FindingKind::LegacyTls)],
        "{:#?}",
        report.findings
    );
}

#[test]
fn pinned_self_signed_certificate_is_accepted_and_clean_audit_exits_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let cam = self_signed(tmp.path(), "cam", Key::P256, "cam", "IP:127.0.0.1", 365);
    let (_srv, port) = s_server(&cam.cert, &cam.key, false, false);
    let der = vigil_netaudit::probe::load_pem_certs(&cam.cert).unwrap();
    let mut opts = ProbeOptions::with_ca_files(false, &[]).unwrap();
    opts.pinned = vec![vigil_netaudit::cert::sha256_hex(&der[0]).to_uppercase()];
    let rt = tokio::runtime::Runtime::new().unwrap();
    let report = rt
        .block_on(audit::run(
            vec![Endpoint::new("cam", "127.0.0.1", port, "https")],
            None,
            &opts,
        ))
        .unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert_eq!(report.exit_code(), 0);
}

#[test]
fn bad_ca_file_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("ca.pem");
    std::fs::write(&f, "hello").unwrap();
    let e = ProbeOptions::with_ca_files(false, &[f])
        .unwrap_err()
        .to_string();
    assert!(e.contains("no usable CA certificate"), "{e}");
    let e = ProbeOptions::with_ca_files(false, &[tmp.path().join("missing.pem")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot read CA file"), "{e}");
}
