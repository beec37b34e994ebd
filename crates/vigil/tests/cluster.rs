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

/// Joins a recording server (its own data directory, API on a free loopback port) to the
/// management server at `url` under `name`.
fn joined_recording_server(mgmt: &Vigil, url: &str, name: &str) -> Vigil {
    let v = Vigil::init(2);
    let api = vigil_testkit::free_port();
    v.set_config(
        "api = { bind = \"0.0.0.0:9443\" }",
        &format!("api = {{ bind = \"127.0.0.1:{api}\" }}"),
    );
    let token = mgmt.dir.path().join(format!("{name}.token"));
    mgmt.ok(&[
        "server",
        "token",
        "create",
        name,
        "--output",
        token.to_str().unwrap(),
    ]);
    v.ok(&[
        "server",
        "join",
        url,
        "--token-file",
        token.to_str().unwrap(),
    ]);
    v
}

/// `vigil verify CAMERA` on a server: verified (exit 0); the signers it names.
fn verified_signers(v: &Vigil, camera: &str) -> Value {
    let out = v.cmd(&["verify", camera, "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert!(
        report["signers"].as_array().is_some_and(|s| s.len() == 1),
        "{report:#}"
    );
    report["signers"].clone()
}

fn camera_row(v: &Vigil, name: &str) -> Value {
    serde_json::from_str::<Value>(&v.ok(&["camera", "list", "--json"]))
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no camera {name}"))
}

/// The HTTPS API port of a server (its `[api]` bind on loopback).
fn api_port(v: &Vigil) -> String {
    std::fs::read_to_string(&v.config)
        .unwrap()
        .lines()
        .find_map(|l| l.trim().strip_prefix("bind = \"127.0.0.1:"))
        .unwrap()
        .trim_end_matches('"')
        .to_owned()
}

/// GET `path` on a server's HTTPS API with curl (a real client) and the bearer token:
/// (status, response headers, body).
fn api_get(v: &Vigil, token: &str, path: &str, extra: &[&str]) -> (u16, String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let (head, body) = (dir.path().join("head"), dir.path().join("body"));
    let out = Command::new(vigil_testkit::require_tool("curl"))
        .args(["-sS", "--max-time", "30", "-w", "%{http_code}", "-D"])
        .arg(&head)
        .arg("-o")
        .arg(&body)
        .arg("--cacert")
        .arg(v.data.join("pki/ca.crt"))
        .arg("-H")
        .arg(format!("Authorization: Bearer {token}"))
        .args(extra)
        .arg(format!("https://127.0.0.1:{}{path}", api_port(v)))
        .output()
        .unwrap();
    let code = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    (
        code,
        std::fs::read_to_string(&head).unwrap_or_default(),
        std::fs::read(&body).unwrap_or_default(),
    )
}

fn api_token(v: &Vigil) -> String {
    let said = v.ok(&["token", "create", "assign-check", "--role", "operator"]);
    said.lines()
        .find_map(|l| l.strip_prefix("token (shown once, store it now): "))
        .unwrap_or_else(|| panic!("{said}"))
        .trim()
        .to_owned()
}

/// A camera added on the management server (with RTSP digest credentials) and assigned to a
/// recording server is recorded there, in that server's data directory and signed with its
/// key; reassigned, it moves; the management server never sees its video. Unknown and removed
/// servers are refused, and automatic assignment picks the online server with fewer cameras.
#[test]
fn assigned_cameras_record_on_their_recording_server_and_move_when_reassigned() {
    use vigil_testkit::{Auth, Clip, RtspPeer};
    const PASSWORD: &str = "digest-Secret-42";
    let peer = RtspPeer::start(
        &[("cam", Clip::h264(10, 30, 30, 640, 360, false))],
        Auth::digest("viewer", PASSWORD),
    );
    let mgmt = Vigil::init(2);
    let inter = vigil_testkit::free_port();
    mgmt.set_config(
        "inter_server = { bind = \"0.0.0.0:8444\"",
        &format!("inter_server = {{ bind = \"127.0.0.1:{inter}\""),
    );
    mgmt.set_config("# role = \"all\"", "role = \"management\"");
    let url = format!("https://127.0.0.1:{inter}");
    mgmt.add_camera_with_password("door", &peer.url("cam"), "viewer", PASSWORD);
    let m = mgmt.serve();
    wait_log(&m, "Inter-server API (mutual TLS) listening on");
    let rec1 = joined_recording_server(&mgmt, &url, "rec1");
    let rec2 = joined_recording_server(&mgmt, &url, "rec2");

    // Refusals before the recording servers run: an unknown server, no server online for
    // --auto.
    let err = fails(&mgmt, &["camera", "assign", "door", "--server", "nope"]);
    assert!(err.contains("no recording server named \"nope\""), "{err}");
    let err = fails(&mgmt, &["camera", "assign", "door", "--auto"]);
    assert!(err.contains("no recording server is online"), "{err}");
    // Only a management server assigns.
    let err = fails(&rec1, &["camera", "assign", "door", "--server", "rec1"]);
    assert!(err.contains("management server"), "{err}");

    let r1 = rec1.serve_with(&["--role", "recording"]);
    let r2 = rec2.serve_with(&["--role", "recording"]);
    wait_for("both servers online", Duration::from_secs(30), || {
        ["rec1", "rec2"]
            .iter()
            .all(|n| server_state(&mgmt, n).is_some_and(|s| s["state"] == "online"))
    });

    // Assigned to rec1: it records there within a heartbeat or two.
    let assigned = Instant::now();
    let out = mgmt.ok(&["camera", "assign", "door", "--server", "rec1"]);
    assert!(out.contains("assigned to recording server rec1"), "{out}");
    assert_eq!(camera_row(&mgmt, "door")["recording_server"], "rec1");
    let table = mgmt.ok(&["camera", "list"]);
    assert!(
        table.contains("SERVER") && table.contains("rec1"),
        "{table}"
    );
    assert_eq!(server_state(&mgmt, "rec1").unwrap()["cameras"], 1);
    assert_eq!(server_state(&mgmt, "rec2").unwrap()["cameras"], 0);
    wait_log(&r1, "Camera assignments applied");
    rec1.wait_recorded("door", 4.0, Duration::from_secs(60));
    eprintln!(
        "door recorded 4 s on rec1 {:?} after the assignment",
        assigned.elapsed()
    );
    let door_id = camera_row(&mgmt, "door")["id"].as_str().unwrap().to_owned();
    assert_eq!(camera_row(&rec1, "door")["id"], door_id.as_str());
    assert!(
        !rec1.segment_files().is_empty()
            && rec1.segment_files()[0].starts_with(rec1.data.join("video").join(&door_id)),
        "{:?}",
        rec1.segment_files()
    );
    // The management server records nothing itself.
    assert!(
        std::fs::read_dir(mgmt.data.join("video"))
            .map(|d| d
                .flatten()
                .all(|e| std::fs::read_dir(e.path()).unwrap().next().is_none()))
            .unwrap_or(true),
        "video on the management server"
    );
    // The password travelled sealed: not in rec1's database in clear, nor in any log.
    let db = std::fs::read(rec1.data.join("vigil.db")).unwrap();
    assert!(
        !String::from_utf8_lossy(&db).contains(PASSWORD),
        "password in clear in the recording server's database"
    );

    // Through the management server's API: its recorded ranges and a playback of them, from
    // rec1 over mutual TLS (the management server keeps no video of its own).
    let token = api_token(&mgmt);
    let (code, _, body) = api_get(&mgmt, &token, "/api/v1/cameras/door/recordings", &[]);
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(code, 200, "{answer}");
    let ranges = answer["ranges"].as_array().unwrap();
    assert!(!ranges.is_empty(), "{answer}");
    let (start, end) = (
        ranges[0]["start"].as_str().unwrap().to_owned(),
        ranges[0]["end"].as_str().unwrap().to_owned(),
    );
    let playback = format!(
        "/api/v1/cameras/door/playback?from={}&to={}",
        start.replace('+', "%2B"),
        end.replace('+', "%2B")
    );
    let relayed = Instant::now();
    let (code, head, mp4) = api_get(&mgmt, &token, &playback, &[]);
    eprintln!(
        "playback of {start}..{end} through the management server: {} bytes in {:?}",
        mp4.len(),
        relayed.elapsed()
    );
    assert_eq!(code, 200, "{head} {}", String::from_utf8_lossy(&mp4));
    let head_lc = head.to_ascii_lowercase();
    assert!(head_lc.contains("content-type: video/mp4"), "{head}");
    assert!(head_lc.contains("vigil-media-start:"), "{head}");
    assert_eq!(&mp4[4..8], b"ftyp", "not an MP4");
    assert!(mp4.len() > 10_000, "{} bytes", mp4.len());
    // The same bytes as rec1 plays itself: a seeking player's Range request gets a slice.
    let (code, head, part) = api_get(&mgmt, &token, &playback, &["-H", "Range: bytes=100-1099"]);
    assert_eq!(code, 206, "{head}");
    assert_eq!(part, mp4[100..1100]);
    // Fragmented as recorded: movie fragments with their media.
    for fourcc in [b"moov", b"moof", b"mdat"] {
        assert!(
            mp4.windows(4).any(|w| w == fourcc),
            "no {} box",
            String::from_utf8_lossy(fourcc)
        );
    }
    // Export and verification stay on the recording server, and say so.
    let (code, _, body) = api_get(
        &mgmt,
        &token,
        &playback.replace("/playback?", "/export?"),
        &[],
    );
    let err = String::from_utf8_lossy(&body);
    assert_eq!(code, 409, "{err}");
    assert!(
        err.contains("on_recording_server") && err.contains("rec1"),
        "{err}"
    );
    // rec1 serves video to the management server's certificate only: rec2's, of the same
    // installation, is refused.
    let rec1_api: u16 = server_state(&mgmt, "rec1").unwrap()["status"]["api_port"]
        .as_u64()
        .unwrap() as u16;
    let path = format!("/v1/cameras/{door_id}/recordings?from_us=0&to_us=9000000000000000");
    let ca = rec1.data.join("cluster/ca.crt");
    let rec2_id = (
        rec2.data.join("cluster/member.crt"),
        rec2.data.join("cluster/member.key"),
    );
    let mut c = connect(rec1_api, client(&ca, Some(rec2_id)));
    let (status, body) = request(&mut c, "GET", &path, "").unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("not_management"), "{body}");
    let mgmt_id = (
        mgmt.data.join("pki/server.crt"),
        mgmt.data.join("pki/server.key"),
    );
    let mut c = connect(rec1_api, client(&ca, Some(mgmt_id)));
    let (status, body) = request(&mut c, "GET", &path, "").unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"ranges\":[["), "{body}");

    // Reassigned to rec2: rec2 records, rec1 stops.
    let out = mgmt.ok(&["camera", "assign", "door", "--server", "rec2"]);
    assert!(out.contains("was rec1"), "{out}");
    wait_log(&r2, "Camera assignments applied");
    rec2.wait_recorded("door", 4.0, Duration::from_secs(60));
    rec1.wait_status(
        "door",
        |s| s["state"] == "disabled",
        Duration::from_secs(30),
    );
    let before = rec1.recorded_secs("door");
    std::thread::sleep(Duration::from_secs(4));
    let after = rec1.recorded_secs("door");
    assert!(
        after - before < 0.5,
        "rec1 kept recording: {before} -> {after}"
    );
    assert_eq!(server_state(&mgmt, "rec1").unwrap()["cameras"], 0);
    // Automatic: rec1 has fewer cameras now.
    let out = mgmt.ok(&["camera", "assign", "door", "--auto"]);
    assert!(out.contains("rec1"), "{out}");
    mgmt.ok(&["camera", "assign", "door", "--server", "rec2"]);
    // Stopped, rec1's recording is signed whole by its own key.
    let (r1_log, r2_log) = (r1.log.clone(), r2.log.clone());
    r1.stop();
    let rec1_signers = verified_signers(&rec1, "door");

    // A removed server is refused, and its cameras are unassigned.
    mgmt.ok(&["server", "remove", "rec1"]);
    let err = fails(&mgmt, &["camera", "assign", "door", "--server", "rec1"]);
    assert!(err.contains("was removed"), "{err}");
    let out = mgmt.ok(&["camera", "assign", "door", "--unassign"]);
    assert!(out.contains("unassigned"), "{out}");
    rec2.wait_status(
        "door",
        |s| s["state"] == "disabled",
        Duration::from_secs(30),
    );
    r2.stop();
    let rec2_signers = verified_signers(&rec2, "door");
    assert_ne!(
        rec1_signers, rec2_signers,
        "both servers signed with one key"
    );

    // Audited on the management server.
    let audit = mgmt.ok(&["audit-log", "query", "--kind", "camera_changed", "--jsonl"]);
    for op in ["camera_assigned", "camera_unassigned"] {
        assert!(audit.contains(op), "no {op} in {audit}");
    }
    let audit = mgmt.ok(&["audit-log", "query", "--kind", "playback", "--jsonl"]);
    assert!(
        audit.contains("door"),
        "relayed playback not audited: {audit}"
    );
    let mut logs = m.output();
    for log in [r1_log, r2_log] {
        for f in [log.clone(), log.with_extension("err")] {
            logs += &std::fs::read_to_string(f).unwrap();
        }
    }
    assert!(!logs.contains(PASSWORD), "a camera password in a log");
    m.stop();
}
