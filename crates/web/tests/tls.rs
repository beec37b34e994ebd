//! The HTTPS listener's TLS as real clients see it (docs/pki.md): TLS 1.2 and 1.3 only, AEAD cipher
//! suites only, a certificate chain that verifies against the installation CA; checked with
//! `openssl s_client`, curl and testssl.sh against `Harness::serve`.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Harness, run};
use serde_json::Value;

struct Handshake {
    ok: bool,
    text: String,
}

/// `openssl s_client` against `addr` with extra arguments, trusting only the CA.
async fn s_client(addr: SocketAddr, ca: &Path, extra: &[&str]) -> Handshake {
    let openssl = vigil_testkit::require_tool("openssl");
    let connect = addr.to_string();
    let args = [
        "s_client",
        "-connect",
        &connect,
        "-servername",
        "localhost",
        "-CAfile",
        ca.to_str().unwrap(),
    ];
    let out = run(&openssl, args.iter().chain(extra), Duration::from_secs(20)).await;
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A handshake happened when a real cipher was negotiated.
    let ok =
        out.status.success() && text.contains("Cipher is ") && !text.contains("Cipher is (NONE)");
    Handshake { ok, text }
}

/// curl trusting only the CA, which must succeed (bounded to 15 s per request).
async fn curl_ok(ca: &Path, extra: &[&str], url: &str) -> Output {
    let curl = vigil_testkit::require_tool("curl");
    let options = [
        "-sS",
        "--fail",
        "--max-time",
        "15",
        "--cacert",
        ca.to_str().unwrap(),
    ];
    let args = options.iter().chain(extra).chain([&url]);
    let out = run(&curl, args, Duration::from_secs(30)).await;
    assert!(
        out.status.success(),
        "curl {extra:?} {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[tokio::test]
async fn tls12_and_tls13_handshake_and_verify_against_the_ca() {
    let h = Harness::new();
    let (addr, _) = h.serve(false).await;
    let ca = h.ca_file();
    for (flag, proto) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let hs = s_client(addr, &ca, &[flag]).await;
        assert!(hs.ok, "{flag} handshake failed:\n{}", hs.text);
        assert!(
            hs.text.contains("Verify return code: 0 (ok)"),
            "{flag}:\n{}",
            hs.text
        );
        assert!(
            hs.text.contains(proto),
            "{flag} negotiated something else:\n{}",
            hs.text
        );
        // Only AEAD suites: GCM or ChaCha20-Poly1305.
        let cipher = hs
            .text
            .lines()
            .find_map(|l| l.split_once("Cipher is ").map(|(_, c)| c.trim().to_owned()))
            .unwrap();
        assert!(
            cipher.contains("GCM") || cipher.contains("CHACHA20"),
            "{flag}: non-AEAD cipher {cipher}"
        );
    }
    // Without the CA the chain does not verify (it is a private CA, not a public one).
    let openssl = vigil_testkit::require_tool("openssl");
    let out = run(
        &openssl,
        [
            "s_client",
            "-connect",
            &addr.to_string(),
            "-CApath",
            "/nonexistent",
            "-verify_return_error",
        ],
        Duration::from_secs(20),
    )
    .await;
    assert!(!out.status.success(), "verified without the CA");
}

#[tokio::test]
async fn old_protocols_and_weak_ciphers_are_refused() {
    let h = Harness::new();
    let (addr, _) = h.serve(false).await;
    let ca = h.ca_file();
    // @SECLEVEL=0 makes OpenSSL 3 willing to offer what it refuses by default, so a refusal
    // comes from the server, not from the client.
    for (what, args) in [
        ("TLS 1.0", vec!["-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"]),
        ("TLS 1.1", vec!["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"]),
        (
            "CBC (AES128-SHA and the ECDHE CBC suites)",
            vec![
                "-tls1_2",
                "-cipher",
                "AES128-SHA:AES256-SHA:ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA:ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256:@SECLEVEL=0",
            ],
        ),
        ("NULL", vec!["-tls1_2", "-cipher", "NULL:eNULL:@SECLEVEL=0"]),
        ("anonymous", vec!["-tls1_2", "-cipher", "aNULL:@SECLEVEL=0"]),
    ] {
        let hs = s_client(addr, &ca, &args).await;
        assert!(!hs.ok, "{what} was accepted:\n{}", hs.text);
        for client_side in [
            "no protocols available",
            "no cipher match",
            "Error in cipher list",
        ] {
            assert!(
                !hs.text.contains(client_side),
                "{what}: the client could not offer it ({client_side}), so this proves nothing:\n{}",
                hs.text
            );
        }
    }
    // 3DES, RC4 and EXPORT suites are compiled out of Debian's OpenSSL 3 (even with the
    // legacy provider), so s_client cannot offer them; `testssl_finds_only_modern_tls`
    // checks them with testssl.sh's own ClientHellos.
}

#[tokio::test]
async fn curl_trusts_the_ca_and_gets_openapi_31() {
    let h = Harness::new();
    let (addr, _) = h.serve(false).await;
    let ca = h.ca_file();
    let curl = vigil_testkit::require_tool("curl");
    let url = format!("https://{addr}/api/v1/openapi.json");
    let out = curl_ok(&ca, &[], &url).await;
    let spec: Value = serde_json::from_slice(&out.stdout).unwrap();
    let version = spec["openapi"].as_str().unwrap();
    assert!(version.starts_with("3.1."), "OpenAPI {version}");
    assert!(spec["paths"]["/api/v1/settings"]["patch"].is_object());
    assert!(spec["paths"]["/api/v1/settings/apply"]["post"].is_object());

    // The system trust store does not know the installation CA.
    let out = run(
        &curl,
        ["-sS", "--max-time", "15", url.as_str()],
        Duration::from_secs(30),
    )
    .await;
    assert!(
        !out.status.success(),
        "curl trusted a private CA without --cacert"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("certificate"), "{err}");
}

/// testssl.sh findings by id.
/// HTTP/2 is chosen by ALPN, HTTP/1.1 without it; both answer the same API.
#[tokio::test]
async fn alpn_picks_http2_or_http11_and_no_alpn_means_http11() {
    let h = Harness::new();
    let (addr, _) = h.serve(false).await;
    let ca = h.ca_file();
    let url = format!("https://{addr}/api/v1/openapi.json");
    for (flag, expected) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let out = curl_ok(
            &ca,
            &[
                flag,
                "-o",
                "/dev/null",
                "-w",
                "%{http_version} %{http_code}",
            ],
            &url,
        )
        .await;
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{expected} 200"),
            "curl {flag}"
        );
    }

    // A client that offers no ALPN at all (s_client offers none without -alpn) speaks
    // HTTP/1.1 and is answered in HTTP/1.1; the server closes after the answer, which ends
    // s_client (stdin's end is ignored with -quiet).
    let openssl = vigil_testkit::require_tool("openssl");
    let timeout = vigil_testkit::require_tool("timeout");
    let mut cmd = Command::new(timeout);
    cmd.args(["--kill-after=5", "30"])
        .arg(openssl)
        .args(["s_client", "-connect", &addr.to_string(), "-quiet"])
        .args(["-CAfile", ca.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let mut child = cmd.spawn()?;
        child.stdin.take().unwrap().write_all(
            b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )?;
        child.wait_with_output()
    })
    .await
    .unwrap()
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "{}\n{}",
        &text[..text.len().min(300)],
        String::from_utf8_lossy(&out.stderr)
    );
}

fn findings(json: &Value) -> Vec<(String, String, String)> {
    json.as_array()
        .expect("testssl JSON is an array")
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or_default().to_owned();
            (s("id"), s("severity"), s("finding"))
        })
        .collect()
}

fn finding<'a>(all: &'a [(String, String, String)], id: &str) -> &'a str {
    all.iter()
        .find(|(i, _, _)| i == id)
        .map(|(_, _, f)| f.as_str())
        .unwrap_or_else(|| panic!("testssl reported no {id}: {all:#?}"))
}

#[tokio::test]
async fn testssl_finds_only_modern_tls() {
    let h = Harness::new();
    let (addr, _) = h.serve(false).await;
    let ca = h.ca_file();
    let testssl = vigil_testkit::require_tool("testssl");
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("testssl.json");
    let started = Instant::now();
    let out = run(
        &testssl,
        [
            "--quiet",
            "--color",
            "0",
            "--warnings",
            "off",
            "--ip",
            "one",
            "--nodns",
            "min",
            "--jsonfile",
            json.to_str().unwrap(),
            "--add-ca",
            ca.to_str().unwrap(),
            "--protocols",
            "--std",
            "--rc4",
            "--server-defaults",
            &addr.to_string(),
        ],
        Duration::from_secs(300),
    )
    .await;
    let took = started.elapsed();
    eprintln!("testssl.sh took {took:?}");
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap_or_else(|e| {
        panic!(
            "testssl wrote no JSON ({e}); exit {:?}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }))
    .unwrap();
    let all = findings(&report);
    for id in ["SSLv2", "SSLv3", "TLS1", "TLS1_1"] {
        assert_eq!(finding(&all, id), "not offered", "{id}");
    }
    assert!(finding(&all, "TLS1_2").starts_with("offered"), "TLS 1.2");
    assert!(finding(&all, "TLS1_3").starts_with("offered"), "TLS 1.3");
    for id in [
        "cipherlist_NULL",
        "cipherlist_aNULL",
        "cipherlist_EXPORT",
        "cipherlist_LOW",
        "cipherlist_3DES_IDEA",
        "cipherlist_AVERAGE",
    ] {
        assert_eq!(finding(&all, id), "not offered", "{id}");
    }
    assert!(finding(&all, "RC4").contains("not vulnerable"), "RC4");
    let trust = finding(&all, "cert_chain_of_trust");
    assert!(trust.starts_with("passed"), "chain of trust: {trust}");
    // Nothing rated HIGH or CRITICAL, except that a private installation CA publishes no
    // CRL or OCSP responder (its server certificates are short-lived and replaced instead).
    let bad: Vec<_> = all
        .iter()
        .filter(|(id, sev, _)| {
            matches!(sev.as_str(), "HIGH" | "CRITICAL") && id != "cert_revocation"
        })
        .collect();
    for (id, sev, f) in &all {
        if !matches!(sev.as_str(), "OK" | "INFO") {
            eprintln!("testssl {sev}: {id}: {f}");
        }
    }
    assert!(bad.is_empty(), "testssl found problems: {bad:#?}");
}

/// A request the API answers without reading its body (a form post where JSON is expected) is
/// answered whole over HTTP/2 too: the body is read to its end after the answer instead of the
/// stream being reset, which made curl drop the answer with "HTTP/2 stream was not closed
/// cleanly" (exit 92) in most attempts.
#[tokio::test]
async fn a_refused_form_post_is_answered_over_http2_and_http11() {
    let h = Harness::new();
    let (addr, _) = h.serve(false).await;
    let ca = h.ca_file();
    let url = format!("https://{addr}/api/v1/session");
    let curl = vigil_testkit::require_tool("curl");
    for flag in ["--http2", "--http1.1"] {
        for _ in 0..20 {
            let args = [
                "-sS",
                "--max-time",
                "15",
                "--cacert",
                ca.to_str().unwrap(),
                flag,
                "-X",
                "POST",
                "-d",
                "username=admin&password=not-json",
                "-w",
                "\n%{http_version} %{http_code}",
                &url,
            ];
            let out = run(&curl, args, Duration::from_secs(30)).await;
            assert!(
                out.status.success(),
                "curl {flag} exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            let said = String::from_utf8_lossy(&out.stdout);
            let (body, status) = said.rsplit_once('\n').unwrap();
            assert_eq!(
                status,
                if flag == "--http2" {
                    "2 415"
                } else {
                    "1.1 415"
                },
                "{said}"
            );
            let v: Value = serde_json::from_str(body).unwrap();
            assert_eq!(v["code"], "unsupported_media_type", "{said}");
        }
    }
}
