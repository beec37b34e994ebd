//! `vigil init --hostname`: the names and addresses clients use are in the server
//! certificate (read back with `openssl x509`), a TLS client trusting only the installation
//! CA verifies the running server under each of them (`openssl s_client -verify_hostname`,
//! `-verify_ip`)
//! and under no other, and a name no certificate can carry is refused before anything is
//! created.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `vigil init` in a fresh directory with `hostnames`, its HTTPS listener moved to a free
/// loopback port (and metrics to another), as the shared test set-up does.
fn init_with(hostnames: &[&str]) -> common::Vigil {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut cmd = Command::new(common::bin());
    cmd.args(["init", "--data-dir"]).arg(&data);
    for h in hostnames {
        cmd.args(["--hostname", h]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "init failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Server certificate names: "),
        "init says which names the certificate carries: {stdout}"
    );
    let config = data.join("vigil.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text
        .replace(
            "bind = \"0.0.0.0:8443\"",
            &format!("bind = \"127.0.0.1:{}\"", vigil_testkit::free_port()),
        )
        .replace(
            "bind = \"127.0.0.1:9464\"",
            &format!("bind = \"127.0.0.1:{}\"", vigil_testkit::free_port()),
        );
    std::fs::write(&config, text).unwrap();
    common::Vigil { dir, data, config }
}

fn san_text(cert: &std::path::Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The HTTPS address `serve` printed, once it did.
fn https_addr(server: &common::Server) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = server.output();
        let prefix = "Web client and API listening on https://";
        if let Some(line) = out.lines().find(|l| l.starts_with(prefix)) {
            return line[prefix.len()..].trim().to_owned();
        }
        assert!(Instant::now() < deadline, "no HTTPS listener: {out}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether `openssl s_client`, trusting only `ca`, verifies the server at `addr` as `name`.
fn verifies_as(addr: &str, ca: &std::path::Path, name: &str) -> (bool, String) {
    let mut child = Command::new("timeout")
        .arg("20")
        .arg("openssl")
        .args(["s_client", "-connect", addr, "-CAfile"])
        .arg(ca)
        // openssl checks DNS names with -verify_hostname and addresses with -verify_ip.
        .arg(if name.parse::<std::net::IpAddr>().is_ok() {
            "-verify_ip"
        } else {
            "-verify_hostname"
        })
        .args([name, "-verify_return_error"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"Q\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success() && text.contains("Verify return code: 0 (ok)"),
        text,
    )
}

#[test]
fn hostnames_are_in_the_certificate_and_clients_verify_them() {
    let v = init_with(&["nvr.example.net", "192.0.2.10", "[2001:db8::5]"]);
    let sans = san_text(&v.data.join("pki").join("server.crt"));
    for want in [
        "DNS:nvr.example.net",
        "IP Address:192.0.2.10",
        "IP Address:2001:DB8:0:0:0:0:0:5",
        "DNS:localhost",
        "IP Address:127.0.0.1",
        "IP Address:0:0:0:0:0:0:0:1",
    ] {
        assert!(sans.contains(want), "{want} missing from {sans}");
    }
    // Kept in the configuration, so renewals and reissues keep them.
    let config = std::fs::read_to_string(&v.config).unwrap();
    assert!(
        config.contains(
            "hostnames = [\"nvr.example.net\", \"192.0.2.10\", \"2001:db8::5\", \"localhost\", \"127.0.0.1\", \"::1\"]"
        ),
        "{config}"
    );

    let ca = v.data.join("pki").join("ca.crt");
    let server = v.serve();
    let addr = https_addr(&server);
    for name in ["nvr.example.net", "192.0.2.10", "localhost", "127.0.0.1"] {
        let (ok, text) = verifies_as(&addr, &ca, name);
        assert!(ok, "{name}: {text}");
    }
    let (ok, text) = verifies_as(&addr, &ca, "other.example.net");
    assert!(
        !ok,
        "a name the certificate does not carry must fail: {text}"
    );
    server.stop();
}

#[test]
fn an_unusable_hostname_is_refused_before_anything_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for bad in ["nvr_1.example.net", "bad name", "-lead.example"] {
        let out = Command::new(common::bin())
            .args(["init", "--data-dir"])
            .arg(&data)
            .args(["--hostname", "nvr.example.net"])
            .arg(format!("--hostname={bad}"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bad} accepted");
        assert!(
            err.contains(&format!("--hostname: {bad:?} is not a usable host name"))
                && err.contains("give a DNS name such as nvr.example.net or an IP address"),
            "{bad}: {err}"
        );
        assert!(!data.exists(), "{bad}: nothing may be created");
    }
}
