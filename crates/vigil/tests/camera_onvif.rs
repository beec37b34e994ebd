//! `vigil camera add --onvif` and `vigil camera discover` against real ONVIF devices
//! (vigil_testkit::onvif, oxvif's mock device): added over HTTPS with a certificate from the
//! installation CA (recording and live grid streams, identity), a self-signed device refused
//! with its fingerprint and the flag to accept it, found again by discovery as added; the
//! password only from a file and never printed. `vigil camera install-certificate` against a
//! rotation camera with ONVIF Advanced Security (vigil_testkit::RotationCameras): the camera
//! makes its key and CSR, serves the CA-issued certificate that openssl then verifies, and it
//! becomes the camera's recorded certificate; a camera without the service is told so.
//! Discovery's unicast sweep reaches cameras on a subnet of their own (a network namespace
//! joined by a veth pair, where they answer on the real port 3702), as multicast would not.

mod common;

use common::Vigil;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use vigil_pki::{LeafKeyType, LeafRequest, LeafUsage, Pki};
use vigil_testkit::onvif::{OnvifDevice, OnvifPeer};
use vigil_testkit::{Clip, RotationCameraSpec, RotationCameras};

const PASSWORD: &str = "cli-Onvif-Secret";

fn output(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn cameras_are_added_by_onvif_over_verified_https_and_discovered_as_added() {
    let v = Vigil::init(2);
    let mut peer = OnvifPeer::start(&[
        OnvifDevice::new("SN-CLI-1", PASSWORD),
        OnvifDevice::new("SN-CLI-2", PASSWORD),
    ]);
    let pki = Pki::open(&v.data.join("pki")).unwrap();
    let leaf = pki
        .issue_leaf(&LeafRequest {
            common_name: "camera".into(),
            sans: vec!["127.0.0.1".into()],
            validity_days: 30,
            usage: LeafUsage::TlsServer,
            key_type: LeafKeyType::EcdsaP256,
        })
        .unwrap();
    let fingerprint = vigil_pki::fingerprint_sha256(&leaf.cert_der);
    let port = peer.serve_https(
        0,
        vec![leaf.cert_der.clone()],
        PrivateKeyDer::Pkcs8(leaf.key_der.clone_key()),
    );
    let pw = v.dir.path().join("onvif.pw");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let pw = pw.to_str().unwrap();

    let out = v.ok(&[
        "camera",
        "add",
        "lobby",
        "--onvif",
        &format!("https://127.0.0.1:{port}"),
        "--username",
        "admin",
        "--password-file",
        pw,
    ]);
    assert!(out.contains("recording profile"), "{out}");
    assert!(out.contains("live grid profile"), "{out}");
    assert!(out.contains("serial SN-CLI-1"), "{out}");
    assert!(out.contains(&fingerprint), "{out}");
    assert!(!out.contains(PASSWORD));
    let list: serde_json::Value =
        serde_json::from_str(&v.ok(&["camera", "list", "--json"])).unwrap();
    assert_eq!(list[0]["secondary"]["mode"], "live", "{list}");
    assert_eq!(list[0]["has_password"], true);

    // A self-signed device: refused with the fingerprint and how to accept it.
    let key = openssl_self_signed();
    let self_port = peer.serve_https(1, vec![key.0.clone()], key.1);
    let address = format!("https://127.0.0.1:{self_port}");
    let args = [
        "camera",
        "add",
        "gate",
        "--onvif",
        &address,
        "--username",
        "admin",
        "--password-file",
        pw,
    ];
    let refused = v.cmd(&args);
    let text = output(&refused);
    assert!(!refused.status.success(), "{text}");
    assert!(text.contains(&format!("--fingerprint {}", key.2)), "{text}");
    assert!(!text.contains(PASSWORD));
    let mut pinned = args.to_vec();
    pinned.extend(["--fingerprint", &key.2]);
    let out = v.ok(&pinned);
    assert!(out.contains("serial SN-CLI-2"), "{out}");

    // Plain HTTP needs saying so.
    let refused = v.cmd(&[
        "camera",
        "add",
        "plain",
        "--onvif",
        &peer.device_url(0),
        "--username",
        "admin",
        "--password-file",
        pw,
    ]);
    assert!(
        output(&refused).contains("--allow-http"),
        "{}",
        output(&refused)
    );

    let out = v.ok(&[
        "camera",
        "discover",
        "--subnet",
        "127.0.0.0/29",
        "--no-multicast",
        "--wait",
        "1s",
        "--port",
        &peer.discovery_port().to_string(),
        "--json",
    ]);
    let found: serde_json::Value = serde_json::from_str(&out).unwrap();
    let found = found.as_array().unwrap();
    assert_eq!(found.len(), 2, "{out}");
    let first = found
        .iter()
        .find(|d| d["address"] == "127.0.0.1")
        .unwrap_or_else(|| panic!("{out}"));
    // Both test devices stream from 127.0.0.1 (one camera per address in real life), so the
    // device answering there is known as added, under either name.
    assert!(
        ["lobby", "gate"].contains(&first["added_as"].as_str().unwrap_or("")),
        "{out}"
    );
    let table = v.ok(&[
        "camera",
        "discover",
        "--subnet",
        "127.0.0.0/29",
        "--no-multicast",
        "--wait",
        "1s",
        "--port",
        &peer.discovery_port().to_string(),
    ]);
    assert!(table.contains("VigilTest-SN-CLI-1"), "{table}");
    assert!(table.contains("ADDED"), "{table}");
}

/// A self-signed certificate for 127.0.0.1, made by openssl: DER, key, fingerprint.
fn openssl_self_signed() -> (CertificateDer<'static>, PrivateKeyDer<'static>, String) {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "30", "-subj", "/CN=camera"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output(&out));
    let der = CertificateDer::from_pem_file(&cert).unwrap();
    let key = PrivateKeyDer::from_pem_file(&key).unwrap();
    let fp = vigil_pki::fingerprint_sha256(&der);
    (der, key, fp)
}

#[test]
fn a_certificate_from_the_installation_ca_is_installed_over_onvif_advanced_security() {
    let clip = Clip::h264(1, 25, 25, 320, 180, false);
    let mut gate = RotationCameraSpec::new("gate", "gate-user", "Gate-secret-1");
    gate.advanced_security = true;
    let lamp = RotationCameraSpec::new("lamp", "lamp-user", "Lamp-secret-2");
    let cams = RotationCameras::start(clip.path(), &[gate.clone(), lamp.clone()]);
    let factory = cams.fingerprint().to_owned();
    let v = Vigil::init(2);
    v.add_rotation_cameras(&cams, &[&gate, &lamp]);

    // The person's view: what is happening, then what the camera serves now.
    let said = v.ok(&["camera", "install-certificate", "gate"]);
    assert!(said.contains("asking it for a new key"), "{said}");
    assert!(
        said.contains("its HTTPS now serves a certificate from this installation's CA"),
        "{said}"
    );
    assert!(said.contains("IP:127.0.0.1"), "{said}");
    assert!(said.contains(&format!("replaces:    {factory}")), "{said}");
    let served = cams.served_certificate("gate");
    assert_ne!(served, factory);
    assert!(said.contains(&served), "{said}");

    // Recorded as the camera's certificate, so the device check expects it from now on.
    let store = vigil_media::store::Store::open(&v.data).unwrap();
    let id = store.camera("gate").unwrap().id;
    assert_eq!(
        store.device_identity(&id).unwrap().unwrap().certificate,
        Some(served.clone())
    );

    // An independent verifier: openssl with only the installation CA, checking the address.
    let port = cams.onvif_port("gate");
    let out = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-verify_ip", "127.0.0.1", "-verify_return_error", "-CAfile"])
        .arg(v.data.join("pki").join("ca.crt"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = output(&out);
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");

    // Installing again replaces the assigned certificate (a renewal), JSON for scripts.
    let again: serde_json::Value = serde_json::from_str(&v.ok(&[
        "camera",
        "install-certificate",
        "gate",
        "--json",
        "--days",
        "30",
    ]))
    .unwrap();
    assert_eq!(again["previous_fingerprint_sha256"], served.as_str());
    assert_eq!(
        again["fingerprint_sha256"],
        cams.served_certificate("gate").as_str()
    );
    assert_ne!(again["fingerprint_sha256"], served.as_str());

    // A camera without Advanced Security: a clear refusal, nothing changed.
    let out = v.cmd(&["camera", "install-certificate", "lamp"]);
    assert!(!out.status.success());
    let text = output(&out);
    assert!(
        text.contains("does not offer ONVIF Advanced Security")
            && text.contains("vigil pki sign-csr"),
        "{text}"
    );
    assert_eq!(cams.served_certificate("lamp"), factory);
    let lamp_id = store.camera("lamp").unwrap().id;
    assert_eq!(
        store
            .device_identity(&lamp_id)
            .unwrap()
            .unwrap()
            .certificate,
        Some(factory.clone())
    );

    // Audited, with both fingerprints, and no password anywhere.
    let log = v.ok(&["audit-log", "query", "--jsonl"]);
    let installs: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e.to_string().contains("certificate_installed"))
        .collect();
    assert_eq!(installs.len(), 2, "{log}");
    assert!(installs[0].to_string().contains(&served));
    for secret in [&gate.password, &lamp.password] {
        assert!(!log.contains(secret.as_str()) && !said.contains(secret.as_str()));
    }
}

/// A network namespace with cameras' addresses, joined to this one by a veth pair: this side
/// `10.231.N.1/29`, the namespace `.2` and `.3`. Deleted (with the pair) on drop.
struct CameraSubnet {
    ns: String,
    base: [u8; 3],
}

impl CameraSubnet {
    fn new() -> CameraSubnet {
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        assert!(
            euid == 0,
            "this test makes a network namespace and needs root (CI runs as root); run it with sudo -E (euid {euid})"
        );
        let pid = std::process::id();
        let ns = format!("vdisc{pid}");
        let base = [10, 231, (pid % 250) as u8];
        let net = |host: u8| format!("{}.{}.{}.{host}", base[0], base[1], base[2]);
        let (near, far) = (format!("vdh{pid}"), format!("vdn{pid}"));
        let subnet = CameraSubnet {
            ns: ns.clone(),
            base,
        };
        for args in [
            vec!["ip", "netns", "add", &ns],
            vec![
                "ip", "link", "add", &near, "type", "veth", "peer", "name", &far,
            ],
            vec!["ip", "link", "set", &far, "netns", &ns],
            vec!["ip", "addr", "add", &format!("{}/29", net(1)), "dev", &near],
            vec!["ip", "link", "set", &near, "up"],
            vec![
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/29", net(2)),
                "dev",
                &far,
            ],
            vec![
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/29", net(3)),
                "dev",
                &far,
            ],
            vec!["ip", "-n", &ns, "link", "set", &far, "up"],
            vec!["ip", "-n", &ns, "link", "set", "lo", "up"],
        ] {
            let out = std::process::Command::new(args[0])
                .args(&args[1..])
                .output()
                .expect("run ip (apt-get install -y iproute2)");
            assert!(
                out.status.success(),
                "{}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        subnet
    }

    fn addr(&self, host: u8) -> std::net::Ipv4Addr {
        std::net::Ipv4Addr::new(self.base[0], self.base[1], self.base[2], host)
    }

    /// Runs `f` on a thread inside the namespace (sockets it opens, and threads it starts,
    /// live there).
    fn inside<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        use std::os::fd::AsRawFd;
        let path = format!("/run/netns/{}", self.ns);
        std::thread::spawn(move || {
            let fd = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: fd is a namespace file; setns changes only this thread's namespace.
            let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("thread in the namespace")
    }
}

impl Drop for CameraSubnet {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.ns])
            .status();
    }
}

#[test]
fn a_unicast_sweep_finds_cameras_on_another_subnet_at_port_3702() {
    let subnet = CameraSubnet::new();
    let (a, b) = (subnet.addr(2), subnet.addr(3));
    let peer = subnet.inside(move || {
        OnvifPeer::start_at(
            &[
                OnvifDevice::new("SN-NS-2", PASSWORD),
                OnvifDevice::new("SN-NS-3", PASSWORD),
            ],
            &[a, b],
            vigil_onvif::discovery::PORT,
        )
        .expect("ONVIF devices in the namespace")
    });
    let v = Vigil::init(2);
    let cidr = format!("{}/29", subnet.addr(0));
    let started = std::time::Instant::now();
    let out = v.ok(&[
        "camera",
        "discover",
        "--subnet",
        &cidr,
        "--no-multicast",
        "--wait",
        "1s",
        "--json",
    ]);
    let took = started.elapsed();
    let found: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut addresses: Vec<&str> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["address"].as_str().unwrap_or(""))
        .collect();
    addresses.sort();
    assert_eq!(addresses, [a.to_string(), b.to_string()], "{out}");
    for d in found.as_array().unwrap() {
        assert!(
            d["model"]
                .as_str()
                .unwrap_or("")
                .starts_with("VigilTest-SN-NS-"),
            "{out}"
        );
        assert!(d["added_as"].is_null(), "{out}");
    }
    // Six addresses probed, four silent: bounded by the wait, not by the silent hosts.
    assert!(took < std::time::Duration::from_secs(15), "{took:?}");

    // Added from the other subnet, then seen as added.
    let pw = v.dir.path().join("ns.pw");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    v.ok(&[
        "camera",
        "add",
        "far",
        "--onvif",
        &peer.device_url(0),
        "--allow-http",
        "--username",
        "admin",
        "--password-file",
        pw.to_str().unwrap(),
    ]);
    let table = v.ok(&[
        "camera",
        "discover",
        "--subnet",
        &cidr,
        "--no-multicast",
        "--wait",
        "1s",
    ]);
    assert!(
        table.contains("VigilTest-SN-NS-2") && table.contains("VigilTest-SN-NS-3"),
        "{table}"
    );
    assert!(table.contains("ADDED"), "{table}");
    drop(peer);
}
