//! RTSPS cameras end to end (docs/design/camera-tls.md): `vigil serve` records GStreamer's RTSP
//! server over TLS with a certificate from the installation CA and Digest auth, and only TLS
//! records cross the wire; a self-signed certificate is refused with its fingerprint until
//! `vigil camera trust` pins it; a certificate for another name, or one that expired, is
//! refused (the expired one with its date); a certificate
//! swapped while recording stops the link with the reason and stores the
//! `camera.certificate_changed` event.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Vigil;
use vigil_events::{EventQuery, EventStore};
use vigil_pki::{LeafKeyType, LeafRequest, LeafUsage, Pki};
use vigil_testkit::{Auth, Clip, PeerOptions, RtspPeer};

/// Writes a certificate from the installation's CA for `names` (chain and key PEM) and returns
/// its SHA-256 fingerprint.
fn vigil_ca_cert(v: &Vigil, names: &[&str], cert: &Path, key: &Path) -> String {
    let pki = Pki::open(&v.data.join("pki")).unwrap();
    let leaf = pki
        .issue_leaf(&LeafRequest {
            common_name: "camera".into(),
            sans: names.iter().map(|s| s.to_string()).collect(),
            validity_days: 30,
            usage: LeafUsage::TlsServer,
            key_type: LeafKeyType::EcdsaP256,
        })
        .unwrap();
    std::fs::write(cert, &leaf.chain_pem).unwrap();
    std::fs::write(key, leaf.key_pem.as_bytes()).unwrap();
    vigil_pki::fingerprint_sha256(&leaf.cert_der)
}

/// A certificate from the installation's CA for 127.0.0.1 that expired `ago_days` ago (a key
/// and CSR from openssl, signed as of an earlier day); returns the day it expired, RFC 3339.
fn expired_vigil_ca_cert(v: &Vigil, cert: &Path, key: &Path, ago_days: i64) -> String {
    let csr = cert.with_extension("csr");
    loopback_p256(&["-new"], key, &csr);
    let pki = Pki::open(&v.data.join("pki")).unwrap();
    let signed_at = time::OffsetDateTime::now_utc() - time::Duration::days(ago_days + 1);
    let pem = pki
        .sign_csr_at(&std::fs::read_to_string(&csr).unwrap(), 1, signed_at)
        .unwrap();
    std::fs::write(cert, pem).unwrap();
    (signed_at + time::Duration::days(1)).date().to_string()
}

/// `openssl req` with `what` (`-new`: a CSR; `-x509 -days N`: a self-signed certificate) for
/// a P-256 key written to `key`, named `camera` and valid for 127.0.0.1, written to `out`.
fn loopback_p256(what: &[&str], key: &Path, out: &Path) {
    let mut args: Vec<&std::ffi::OsStr> = vec!["req".as_ref()];
    args.extend(what.iter().map(std::ffi::OsStr::new));
    for a in [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        "/CN=camera",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-keyout",
    ] {
        args.push(a.as_ref());
    }
    args.extend([key.as_os_str(), "-out".as_ref(), out.as_os_str()]);
    openssl(&args);
}

/// Runs openssl with `args`; its standard output.
fn openssl(args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Waits until camera `name` has failed; the reason its status gives.
fn refused(v: &Vigil, name: &str) -> String {
    let status = v.wait_status(name, |s| s["state"] == "failed", Duration::from_secs(60));
    status["last_error"].as_str().unwrap().to_owned()
}

/// A self-signed certificate made by openssl; returns the fingerprint line openssl prints.
fn self_signed(cert: &Path, key: &Path) -> String {
    loopback_p256(&["-x509", "-days", "30"], key, cert);
    openssl(&[
        "x509".as_ref(),
        "-noout".as_ref(),
        "-fingerprint".as_ref(),
        "-sha256".as_ref(),
        "-in".as_ref(),
        cert.as_os_str(),
    ])
    .trim()
    .to_owned()
}

/// A TCP relay on loopback in front of `port` that keeps every byte it carried, both ways:
/// what a capture of the camera link sees.
struct Tap {
    port: u16,
    to_camera: Arc<Mutex<Vec<u8>>>,
    from_camera: Arc<Mutex<Vec<u8>>>,
}

fn pipe(mut from: TcpStream, mut to: TcpStream, seen: Arc<Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 16384];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                seen.lock().unwrap().extend_from_slice(&buf[..n]);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

fn tap(camera_port: u16) -> Tap {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let to_camera = Arc::new(Mutex::new(Vec::new()));
    let from_camera = Arc::new(Mutex::new(Vec::new()));
    let (up, down) = (to_camera.clone(), from_camera.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(client) = conn else { return };
            let Ok(camera) = TcpStream::connect(("127.0.0.1", camera_port)) else {
                continue;
            };
            let (c2, k2) = (client.try_clone().unwrap(), camera.try_clone().unwrap());
            let (up, down) = (up.clone(), down.clone());
            std::thread::spawn(move || pipe(client, camera, up));
            std::thread::spawn(move || pipe(k2, c2, down));
        }
    });
    Tap {
        port,
        to_camera,
        from_camera,
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn events(v: &Vigil, kind: &str) -> Vec<vigil_events::Event> {
    EventStore::open(&v.data)
        .unwrap()
        .query(&EventQuery {
            kinds: vec![kind.to_owned()],
            limit: 100,
            ..Default::default()
        })
        .unwrap()
        .events
}

#[test]
fn a_vigil_ca_certificate_records_over_tls_only_and_a_swapped_one_stops_the_link() {
    let clip = Clip::h264(10, 25, 25, 640, 360, false);
    let v = Vigil::init(2);
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cam.crt"), dir.path().join("cam.key"));
    let first = vigil_ca_cert(&v, &["127.0.0.1"], &cert, &key);
    let mut peer = RtspPeer::start_with(
        &[("cam", &clip)],
        PeerOptions::new(Auth::digest("admin", "s3cret-pw")).tls(&cert, &key),
    );
    let wire = tap(peer.port());
    v.add_camera_with_password(
        "cam1",
        &format!("rtsps://127.0.0.1:{}/cam", wire.port),
        "admin",
        "s3cret-pw",
    );
    let server = v.serve();
    v.wait_recorded("cam1", 4.0, Duration::from_secs(90));
    let status = v.status("cam1");
    assert_eq!(status["state"], "recording", "{status}");
    assert_eq!(status["link"]["scheme"], "rtsps", "{status}");
    assert_eq!(status["link"]["encrypted"], true, "{status}");
    assert_eq!(status["link"]["verified"], true, "{status}");
    assert_eq!(
        status["link"]["pinned"],
        serde_json::Value::Null,
        "{status}"
    );

    // Only TLS crossed the camera link: both directions start with a handshake record, and
    // neither RTSP nor the password nor the H.264 stream is readable in it.
    let up = wire.to_camera.lock().unwrap().clone();
    let down = wire.from_camera.lock().unwrap().clone();
    assert_eq!(up.first(), Some(&0x16), "client hello");
    assert_eq!(down.first(), Some(&0x16), "server hello");
    assert!(
        down.len() > 100_000,
        "video went through: {} bytes",
        down.len()
    );
    for clear in [
        &b"RTSP/1.0"[..],
        b"DESCRIBE",
        b"PLAY ",
        b"admin",
        b"Digest",
        b"s3cret-pw",
    ] {
        assert!(
            !contains(&up, clear),
            "{:?} sent in clear",
            String::from_utf8_lossy(clear)
        );
        assert!(
            !contains(&down, clear),
            "{:?} received in clear",
            String::from_utf8_lossy(clear)
        );
    }
    // Pieces of the clip's coded video would show up in RTP payloads sent in clear.
    let clip_bytes = std::fs::read(clip.path()).unwrap();
    for at in [2, 3, 5].map(|k| clip_bytes.len() * k / 7) {
        let piece = &clip_bytes[at..at + 24];
        assert!(
            !contains(&down, piece),
            "clip bytes at {at} crossed in clear"
        );
    }

    // The certificate is swapped while recording (a replaced camera, a man in the middle):
    // another certificate of the same CA for the same address.
    let second = vigil_ca_cert(&v, &["127.0.0.1"], &cert, &key);
    assert_ne!(first, second);
    peer.restart();
    let status = v.wait_status("cam1", |s| s["state"] == "failed", Duration::from_secs(60));
    let error = status["last_error"].as_str().unwrap();
    assert!(error.contains("different TLS certificate"), "{error}");
    assert!(error.contains(&first) && error.contains(&second), "{error}");
    // No silent reconnect: the new certificate never gets to serve video.
    let plays_after = peer.stats().mounts["/cam"].plays;
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(peer.stats().mounts["/cam"].plays, plays_after);
    assert_eq!(plays_after, 0, "no PLAY over the swapped certificate");
    let changed = events(&v, "camera.certificate_changed");
    assert_eq!(changed.len(), 1, "{changed:?}");
    let e = &changed[0].event;
    assert_eq!(e.severity, vigil_events::Severity::Alert);
    assert_eq!(e.camera.as_deref(), Some("cam1"));
    assert_eq!(e.attributes["old_fingerprint"], first);
    assert_eq!(e.attributes["new_fingerprint"], second);
    drop(server);

    // What was recorded over TLS verifies like any recording.
    let out = v.cmd(&["verify", "cam1"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_self_signed_certificate_waits_for_a_pin_and_another_name_is_refused() {
    let clip = Clip::h264(10, 25, 25, 640, 360, false);
    let v = Vigil::init(2);
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("self.crt"), dir.path().join("self.key"));
    let openssl_fp = self_signed(&cert, &key);
    let peer = RtspPeer::start_with(
        &[("cam", &clip)],
        PeerOptions::new(Auth::None).tls(&cert, &key),
    );
    let (cert2, key2) = (dir.path().join("other.crt"), dir.path().join("other.key"));
    vigil_ca_cert(&v, &["camera.example"], &cert2, &key2);
    let other = RtspPeer::start_with(
        &[("cam", &clip)],
        PeerOptions::new(Auth::None).tls(&cert2, &key2),
    );
    let (cert3, key3) = (
        dir.path().join("expired.crt"),
        dir.path().join("expired.key"),
    );
    let expired_on = expired_vigil_ca_cert(&v, &cert3, &key3, 3);
    let stale = RtspPeer::start_with(
        &[("cam", &clip)],
        PeerOptions::new(Auth::None).tls(&cert3, &key3),
    );
    v.add_camera("selfsigned", &peer.url("cam"));
    v.add_camera("misnamed", &other.url("cam"));
    v.add_camera("expired", &stale.url("cam"));
    assert!(peer.url("cam").starts_with("rtsps://"));
    let _server = v.serve();

    let error = refused(&v, "selfsigned");
    let fp = openssl_fp.rsplit_once('=').unwrap().1.to_owned();
    assert!(error.contains("not trusted"), "{error}");
    assert!(
        error.contains(&fp),
        "the status shows openssl's fingerprint {fp}: {error}"
    );
    assert!(error.contains("vigil camera trust"), "{error}");
    let error = refused(&v, "misnamed");
    assert!(
        error.contains("not valid for the host name '127.0.0.1'"),
        "{error}"
    );
    // An expired certificate from the installation's own CA: refused, saying when it expired
    // and what to do.
    let error = refused(&v, "expired");
    assert!(
        error.contains(&format!("it expired on {expired_on}")) && error.contains("sign-csr"),
        "{error}"
    );
    assert_eq!(peer.stats().mounts["/cam"].plays, 0);
    assert_eq!(other.stats().mounts["/cam"].plays, 0);
    assert_eq!(stale.stats().mounts["/cam"].plays, 0);

    // A fingerprint that is none is refused; the one openssl printed (any form) pins it.
    let out = v.cmd(&["camera", "trust", "selfsigned", "--fingerprint", "12:34"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("64 hex digits"));
    let said = v.ok(&[
        "camera",
        "trust",
        "selfsigned",
        "--fingerprint",
        &openssl_fp,
    ]);
    assert!(said.contains(&fp), "{said}");
    v.wait_recorded("selfsigned", 3.0, Duration::from_secs(90));
    let list: serde_json::Value =
        serde_json::from_str(&v.ok(&["camera", "list", "--json"])).unwrap();
    let cam = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "selfsigned")
        .unwrap();
    assert_eq!(cam["tls_pin"], fp.as_str(), "{cam}");
    let status = v.status("selfsigned");
    assert_eq!(status["link"]["pinned"], fp.as_str(), "{status}");
    assert!(
        status["link"]["summary"]
            .as_str()
            .unwrap()
            .contains("pinned certificate")
    );
    // The pin is an audited camera change.
    let audit = v.ok(&["audit-log", "query", "--jsonl"]);
    assert!(audit.contains("tls_pin") && audit.contains(&fp), "{audit}");
}

#[test]
fn a_camera_certificate_from_a_site_ca_records_once_an_admin_trusts_that_ca() {
    let clip = Clip::h264(10, 25, 25, 640, 360, false);
    let v = Vigil::init(2);
    let dir = tempfile::tempdir().unwrap();
    // The site's own PKI (openssl): a root, an intermediate, and the camera's certificate; the
    // camera presents its chain up to the intermediate.
    let site = vigil_testkit::external_ca::ExternalCa::with_intermediate(
        dir.path(),
        "Site Root",
        "Site Cameras",
    );
    site.leaf(
        "cam",
        vigil_testkit::external_ca::Key::P256,
        "IP:127.0.0.1",
        vigil_testkit::external_ca::Validity::Days(30),
    );
    let chain = dir.path().join("cam-chain.crt");
    std::fs::write(&chain, site.chain("cam.crt")).unwrap();
    let peer = RtspPeer::start_with(
        &[("cam", &clip)],
        PeerOptions::new(Auth::None).tls(&chain, dir.path().join("cam.key")),
    );
    v.add_camera("site", &peer.url("cam"));
    let _server = v.serve();
    let error = refused(&v, "site");
    assert!(error.contains("not trusted"), "{error}");
    assert_eq!(peer.stats().mounts["/cam"].plays, 0);

    // A camera's own certificate is not a CA: refused with what to do instead.
    let out = v.cmd(&[
        "pki",
        "camera-ca",
        "add",
        dir.path().join("cam.crt").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("not a CA certificate") && said.contains("pin"),
        "{said}"
    );

    // The admin trusts the site root while the server runs: the camera records from its next
    // connection, without a pin and without a restart.
    let said = v.ok(&[
        "pki",
        "camera-ca",
        "add",
        site.root_cert().to_str().unwrap(),
    ]);
    assert!(
        said.contains("Trusted 1 CA certificate") && said.contains("Site Root"),
        "{said}"
    );
    v.wait_recorded("site", 3.0, Duration::from_secs(120));
    let listed = v.ok(&["pki", "camera-ca", "list"]);
    assert!(
        listed.contains("Camera CA certificate") && listed.contains("CN=Site Root"),
        "{listed}"
    );
    let status = v.ok(&["pki", "status"]);
    assert!(status.contains("Camera CA certificate"), "{status}");
    let audit = v.ok(&["audit-log", "query", "--jsonl"]);
    assert!(audit.contains("trust_camera_ca"), "{audit}");
}
