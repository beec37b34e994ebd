//! Recording servers joined to a management server (docs/cluster.md), with real processes on
//! loopback: one management server and two recording servers, each a `vigil serve --role` in
//! its own data directory. Enrolment works once per token; reused, expired, forged and
//! other-installation tokens and certificates from another CA are refused with clear errors;
//! heartbeats make a server online; removal refuses the removed server's new connections and
//! closes its open one on the management listener at once, and on other recording servers'
//! listeners with their next heartbeat (both measured).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Server, Vigil};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn wait_log(server: &Server, line: &str) {
    wait_for(
        &format!("log line {line:?}"),
        Duration::from_secs(60),
        || server.output().contains(line),
    );
}

/// `vigil` ending with an error; returns its standard error.
fn fails(v: &Vigil, args: &[&str]) -> String {
    let out = v.cmd(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "vigil {args:?} succeeded: {err}");
    err
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn servers(v: &Vigil) -> Vec<Value> {
    serde_json::from_str::<Value>(&v.ok(&["server", "list", "--json"]))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn server_state(v: &Vigil, name: &str) -> Option<Value> {
    servers(v).into_iter().find(|s| s["name"] == name)
}

/// A TLS client as another machine would be: trusting `ca`, presenting `identity`.
fn client(ca: &Path, identity: Option<(PathBuf, PathBuf)>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(&cert)
                    .unwrap()
                    .map(|c| c.unwrap())
                    .collect(),
                PrivateKeyDer::from_pem_file(&key).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    })
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn connect(port: u16, config: Arc<rustls::ClientConfig>) -> Tls {
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    rustls::StreamOwned::new(rustls::ClientConnection::new(config, name).unwrap(), tcp)
}

/// One HTTP/1.1 request on a kept-open connection: (status, body), or the error (a refused
/// client certificate shows up here, as the server's TLS alert).
fn request(tls: &mut Tls, method: &str, path: &str, body: &str) -> Result<(u16, String), String> {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    tls.flush().map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tls.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let status = text[9..12].parse().unwrap();
                return Ok((status, text[end + 4..end + 4 + len].to_owned()));
            }
        }
    }
}

/// Reads until the server closes the connection; how long that took.
fn time_to_close(tls: &mut Tls, limit: Duration) -> Duration {
    let start = Instant::now();
    tls.sock
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut b = [0u8; 64];
    loop {
        match tls.read(&mut b) {
            Ok(0) => return start.elapsed(),
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return start.elapsed(),
        }
        assert!(
            start.elapsed() < limit,
            "connection still open after {limit:?}"
        );
    }
}

const HEARTBEAT: &str = r#"{"version":"test","cameras_recording":0,"cameras_total":0,"disk_free_bytes":1,"disk_total_bytes":2}"#;

/// A CA and client certificate that are not the installation's (openssl).
fn foreign_identity(dir: &Path) -> (PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut a = vec!["req", "-x509"];
    a.extend(ec);
    a.extend([
        "-keyout",
        "other-ca.key",
        "-out",
        "other-ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=Other CA",
    ]);
    run(&a);
    let mut a = vec!["req"];
    a.extend(ec);
    a.extend([
        "-keyout",
        "other.key",
        "-out",
        "other.csr",
        "-subj",
        "/CN=rec1",
    ]);
    run(&a);
    std::fs::write(
        dir.join("ext.cnf"),
        "extendedKeyUsage=clientAuth,serverAuth\nsubjectAltName=IP:127.0.0.1\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "other.csr",
        "-CA",
        "other-ca.crt",
        "-CAkey",
        "other-ca.key",
        "-CAcreateserial",
        "-out",
        "other.crt",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
    ]);
    (dir.join("other.crt"), dir.join("other.key"))
}

#[test]
fn recording_servers_join_report_and_are_removed() {
    let mgmt = Vigil::init(60);
    let inter = vigil_testkit::free_port();
    mgmt.set_config(
        "inter_server = { bind = \"0.0.0.0:8444\"",
        &format!("inter_server = {{ bind = \"127.0.0.1:{inter}\""),
    );
    // The management role from the file, the recording role from the command line.
    mgmt.set_config("# role = \"all\"", "role = \"management\"");
    let url = format!("https://127.0.0.1:{inter}");
    let recs: Vec<(Vigil, u16)> = (0..2)
        .map(|_| {
            let v = Vigil::init(60);
            let api = vigil_testkit::free_port();
            v.set_config(
                "api = { bind = \"0.0.0.0:9443\" }",
                &format!("api = {{ bind = \"127.0.0.1:{api}\" }}"),
            );
            (v, api)
        })
        .collect();
    let (rec1, rec1_api) = (&recs[0].0, recs[0].1);
    let rec2 = &recs[1].0;

    let m = mgmt.serve();
    wait_log(&m, "Inter-server API (mutual TLS) listening on");
    assert!(
        m.output().contains("Management role only"),
        "{}",
        m.output()
    );
    // The role's listener is in the port manifest, and recording servers' 9443 as outbound.
    let ports = mgmt.ok(&["ports"]);
    let line = ports
        .lines()
        .find(|l| l.contains(&inter.to_string()))
        .unwrap_or_else(|| panic!("no {inter} in {ports}"));
    assert!(line.contains("inter-server API"), "{line}");
    assert!(ports.lines().any(|l| l.contains("9443")), "{ports}");

    // Tokens: shown once, kept as a hash, the file 0600.
    let tok1 = mgmt.dir.path().join("rec1.token");
    let out = mgmt.ok(&[
        "server",
        "token",
        "create",
        "rec1",
        "--output",
        tok1.to_str().unwrap(),
    ]);
    assert!(out.contains("single use"), "{out}");
    assert_eq!(mode(&tok1), 0o600);
    let token = std::fs::read_to_string(&tok1).unwrap().trim().to_owned();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 4, "{token}");
    let listed = mgmt.ok(&["server", "token", "list", "--json"]);
    assert!(
        listed.contains(parts[1]) && !listed.contains(parts[2]),
        "{listed}"
    );
    let db = std::fs::read(mgmt.data.join("cluster.db")).unwrap();
    assert!(
        !String::from_utf8_lossy(&db).contains(parts[2]),
        "the secret is stored"
    );

    // A token naming another installation's CA: the joining side refuses the management
    // certificate before it sends the token, which stays unused.
    let wrong_ca = rec1.dir.path().join("wrong-ca.token");
    std::fs::write(
        &wrong_ca,
        format!("vjt1.{}.{}.{}", parts[1], parts[2], "0".repeat(64)),
    )
    .unwrap();
    let err = fails(
        rec1,
        &[
            "server",
            "join",
            &url,
            "--token-file",
            wrong_ca.to_str().unwrap(),
        ],
    );
    assert!(
        err.contains("did not present the CA named in the token"),
        "{err}"
    );

    // A forged token (well formed, the right CA, a secret the registry never made).
    let forged = rec1.dir.path().join("forged.token");
    std::fs::write(
        &forged,
        format!("vjt1.{}.{}.{}", parts[1], "ab".repeat(32), parts[3]),
    )
    .unwrap();
    let err = fails(
        rec1,
        &[
            "server",
            "join",
            &url,
            "--token-file",
            forged.to_str().unwrap(),
        ],
    );
    assert!(err.contains("not valid (unknown or altered)"), "{err}");
    let garbage = rec1.dir.path().join("garbage.token");
    std::fs::write(&garbage, "hello\n").unwrap();
    let err = fails(
        rec1,
        &[
            "server",
            "join",
            &url,
            "--token-file",
            garbage.to_str().unwrap(),
        ],
    );
    assert!(err.contains("not a Vigil enrolment token"), "{err}");

    // An expired token.
    let short = mgmt.dir.path().join("short.token");
    mgmt.ok(&[
        "server",
        "token",
        "create",
        "late",
        "--expires",
        "1s",
        "--output",
        short.to_str().unwrap(),
    ]);
    std::thread::sleep(Duration::from_millis(1500));
    let err = fails(
        rec1,
        &[
            "server",
            "join",
            &url,
            "--token-file",
            short.to_str().unwrap(),
        ],
    );
    assert!(err.contains("expired"), "{err}");

    // The valid token joins once.
    let out = rec1.ok(&[
        "server",
        "join",
        &url,
        "--token-file",
        tok1.to_str().unwrap(),
    ]);
    assert!(out.contains("as rec1"), "{out}");
    let member = rec1.data.join("cluster");
    assert_eq!(mode(&member.join("member.key")), 0o600);
    assert_eq!(mode(&member), 0o700);
    let err = fails(
        rec2,
        &[
            "server",
            "join",
            &url,
            "--token-file",
            tok1.to_str().unwrap(),
        ],
    );
    assert!(err.contains("already used"), "{err}");
    let err = fails(
        rec1,
        &[
            "server",
            "join",
            &url,
            "--token-file",
            tok1.to_str().unwrap(),
        ],
    );
    assert!(err.contains("already joined"), "{err}");
    let tok2 = mgmt.dir.path().join("rec2.token");
    mgmt.ok(&[
        "server",
        "token",
        "create",
        "rec2",
        "--output",
        tok2.to_str().unwrap(),
    ]);
    rec2.ok(&[
        "server",
        "join",
        &url,
        "--token-file",
        tok2.to_str().unwrap(),
    ]);

    // A certificate from another CA is refused on the management listener.
    let mgmt_ca = mgmt.data.join("pki/ca.crt");
    let foreign = foreign_identity(mgmt.dir.path());
    let mut c = connect(inter, client(&mgmt_ca, Some(foreign.clone())));
    let err = request(&mut c, "POST", "/v1/heartbeat", HEARTBEAT).unwrap_err();
    assert!(
        err.contains("UnknownCA") || err.contains("BadCertificate"),
        "{err}"
    );
    // No certificate: the heartbeat asks for one.
    let mut c = connect(inter, client(&mgmt_ca, None));
    let (status, body) = request(&mut c, "POST", "/v1/heartbeat", HEARTBEAT).unwrap();
    assert_eq!(status, 401, "{body}");

    // Both recording servers run and report; they are online.
    let r1 = rec1.serve_with(&["--role", "recording"]);
    let r2 = rec2.serve_with(&["--role", "recording"]);
    wait_log(&r1, "Recording server rec1 API (mutual TLS) listening on");
    wait_log(&r2, "Recording server rec2 API (mutual TLS) listening on");
    let start = Instant::now();
    wait_for("both servers online", Duration::from_secs(20), || {
        ["rec1", "rec2"].iter().all(|n| {
            server_state(&mgmt, n)
                .is_some_and(|s| s["state"] == "online" && s["status"]["version"].is_string())
        })
    });
    eprintln!("both servers online {:?} after start", start.elapsed());
    let table = mgmt.ok(&["server", "list"]);
    assert!(
        table.contains("rec1") && table.contains("online"),
        "{table}"
    );
    let s1 = server_state(&mgmt, "rec1").unwrap();
    assert!(s1["certificate_expires"].as_str().unwrap() > "2026", "{s1}");
    assert!(
        s1["status"]["disk_total_bytes"].as_u64().unwrap() > 0,
        "{s1}"
    );

    // The recording API: the installation's certificates get in (the management server's,
    // another recording server's), others do not.
    let rec1_ca = member.join("ca.crt");
    let mgmt_id = (
        mgmt.data.join("pki/server.crt"),
        mgmt.data.join("pki/server.key"),
    );
    let mut c = connect(rec1_api, client(&rec1_ca, Some(mgmt_id)));
    let (status, body) = request(&mut c, "GET", "/v1/status", "").unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"cameras_total\":0"), "{body}");
    let mut c = connect(rec1_api, client(&rec1_ca, Some(foreign)));
    let err = request(&mut c, "GET", "/v1/status", "").unwrap_err();
    assert!(
        err.contains("UnknownCA") || err.contains("BadCertificate"),
        "{err}"
    );
    let mut c = connect(rec1_api, client(&rec1_ca, None));
    let err = request(&mut c, "GET", "/v1/status", "").unwrap_err();
    assert!(
        err.contains("CertificateRequired") || err.contains("HandshakeFailure"),
        "{err}"
    );

    // rec2 holds open connections: to the management server (as its heartbeats do) and to
    // rec1's API.
    let rec2_id = (
        rec2.data.join("cluster/member.crt"),
        rec2.data.join("cluster/member.key"),
    );
    let mut to_mgmt = connect(inter, client(&mgmt_ca, Some(rec2_id.clone())));
    let (status, body) = request(&mut to_mgmt, "POST", "/v1/heartbeat", HEARTBEAT).unwrap();
    assert_eq!(status, 200, "{body}");
    let mut to_rec1 = connect(rec1_api, client(&rec1_ca, Some(rec2_id.clone())));
    assert_eq!(
        request(&mut to_rec1, "GET", "/v1/status", "").unwrap().0,
        200
    );

    // Removal: open connections closed, new ones refused.
    let out = mgmt.ok(&["server", "remove", "rec2"]);
    assert!(out.contains("revoked"), "{out}");
    let removed = Instant::now();
    let closed_mgmt = time_to_close(&mut to_mgmt, Duration::from_secs(5));
    let closed_rec1 = time_to_close(&mut to_rec1, Duration::from_secs(15));
    eprintln!(
        "rec2 removed: its connection to the management server closed after {closed_mgmt:?}, to rec1's API after {closed_rec1:?} (heartbeat every 5 s)"
    );
    let mut c = connect(inter, client(&mgmt_ca, Some(rec2_id.clone())));
    let err = request(&mut c, "POST", "/v1/heartbeat", HEARTBEAT).unwrap_err();
    assert!(err.contains("CertificateRevoked"), "{err}");
    let mut c = connect(rec1_api, client(&rec1_ca, Some(rec2_id)));
    let err = request(&mut c, "GET", "/v1/status", "").unwrap_err();
    assert!(err.contains("CertificateRevoked"), "{err}");
    wait_for("rec2 reports its refusal", Duration::from_secs(15), || {
        r2.output()
            .contains("this server's certificate was revoked")
    });
    eprintln!("rec2 saw its refusal {:?} after removal", removed.elapsed());
    assert_eq!(server_state(&mgmt, "rec2").unwrap()["state"], "removed");
    let err = fails(&mgmt, &["server", "remove", "rec2"]);
    assert!(err.contains("no server named"), "{err}");

    // A stopped server goes offline after three missed heartbeats.
    r1.stop();
    let stopped = Instant::now();
    wait_for("rec1 offline", Duration::from_secs(30), || {
        server_state(&mgmt, "rec1").is_some_and(|s| s["state"] == "offline")
    });
    eprintln!("rec1 offline {:?} after it stopped", stopped.elapsed());

    // Audit: token creation, joins, refusals and the removal; no token secret anywhere.
    let audit = mgmt.ok(&[
        "audit-log",
        "query",
        "--kind",
        "certificate_operation",
        "--jsonl",
    ]);
    for op in [
        "server_token_created",
        "server_joined",
        "server_join_refused",
        "server_connection_refused",
        "server_connection_closed",
        "server_removed",
    ] {
        assert!(audit.contains(op), "no {op} in {audit}");
    }
    assert!(!audit.contains(parts[2]), "a token secret in the audit log");
    let logs = m.output() + &r2.output();
    assert!(!logs.contains(parts[2]), "a token secret in a log");
    drop(r2);
    m.stop();
}
