//! The management data on PostgreSQL 15 (feature `peer-tests`; docs/database.md): `vigil db`
//! against a real server, TLS verify-full with a certificate from the installation's CA (a
//! wrong host name refused), the move of an access.db with its audit chain, and PostgreSQL
//! stopped for 20 s while `vigil serve` records a camera: the API answers 503 "database
//! unavailable", recording goes on, and the API recovers by itself; and a network partition
//! (bytes stop, nothing is refused) answered with 503 within the call timeout, then at once.
#![cfg(feature = "peer-tests")]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::Vigil;
use vigil_testkit::partition::Partition;
use vigil_testkit::postgres::{PgServer, PgTls};
use vigil_testkit::{Auth, Clip, RtspPeer, require_tool};

fn use_database(v: &Vigil, table: &str) {
    let text = std::fs::read_to_string(&v.config).unwrap();
    std::fs::write(&v.config, format!("{text}\n[database]\n{table}")).unwrap();
}

fn api_bind(v: &Vigil) -> String {
    std::fs::read_to_string(&v.config)
        .unwrap()
        .lines()
        .find_map(|l| l.trim().strip_prefix("bind = \"127.0.0.1:"))
        .unwrap()
        .trim_end_matches('"')
        .to_owned()
}

/// (HTTP status, body) of GET `path` with the bearer token.
fn get(v: &Vigil, bind: &str, token: &str, path: &str) -> (u16, String) {
    get_within(v, bind, token, path, 10)
}

/// [`get`] giving up after `max_secs` (status 0).
fn get_within(v: &Vigil, bind: &str, token: &str, path: &str, max_secs: u32) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time"])
        .arg(max_secs.to_string())
        .args(["-w", "\n%{http_code}", "--cacert"])
        .arg(v.data.join("pki/ca.crt"))
        .arg("-H")
        .arg(format!("Authorization: Bearer {token}"))
        .arg(format!("https://127.0.0.1:{bind}{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

fn create_token(v: &Vigil) -> String {
    let said = v.ok(&["token", "create", "db-check", "--role", "operator"]);
    said.lines()
        .find_map(|l| l.strip_prefix("token (shown once, store it now): "))
        .unwrap_or_else(|| panic!("{said}"))
        .trim()
        .to_owned()
}

#[test]
fn postgres_stopped_for_20_s_leaves_recording_alone_and_the_api_recovers_by_itself() {
    require_tool("curl");
    let pg = PgServer::start();
    let db = pg.create_database();
    let clip = Clip::h264(10, 30, 15, 640, 360, false);
    let peer = RtspPeer::start(&[("cam", &clip)], Auth::None);
    let v = Vigil::init(2);
    use_database(&v, &format!("url = \"{}\"\n", pg.socket_url(&db)));
    let migrated = v.ok(&["db", "migrate"]);
    assert!(
        migrated.contains("applied access migration 1"),
        "{migrated}"
    );
    assert!(
        migrated.contains("applied access migration 2"),
        "{migrated}"
    );
    assert!(
        v.ok(&["db", "migrate"])
            .contains("up to date, nothing to apply")
    );
    let status = v.ok(&["db", "status"]);
    assert!(
        status.contains("access schema: version 2 (this Vigil knows 2)"),
        "{status}"
    );
    let token = create_token(&v);
    // The token is in PostgreSQL, not in a SQLite file.
    assert_eq!(pg.psql(&db, "SELECT count(*) FROM api_tokens").trim(), "1");
    v.add_camera("cam1", &peer.url("cam"));
    let server = v.serve();
    v.wait_recorded("cam1", 3.0, Duration::from_secs(60));
    let bind = api_bind(&v);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, body) = get(&v, &bind, &token, "/api/v1/cameras");
        if code == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "API never answered: {code} {body}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    pg.stop();
    let stopped = Instant::now();
    let before = v.recorded_secs("cam1");
    let mut unavailable = 0;
    while stopped.elapsed() < Duration::from_secs(20) {
        let (code, body) = get(&v, &bind, &token, "/api/v1/cameras");
        // A token checked within the last second is answered from memory (tokens.rs).
        if code == 200 && stopped.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        assert_eq!(code, 503, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["code"], "database_unavailable", "{body}");
        let msg = json["message"].as_str().unwrap();
        assert!(
            msg.starts_with("database unavailable: ") && msg.contains("retrying"),
            "{msg}"
        );
        unavailable += 1;
        std::thread::sleep(Duration::from_secs(1));
    }
    let during = v.recorded_secs("cam1") - before;
    assert!(unavailable >= 10, "{unavailable} answers during the outage");
    // Segments close every 2 s: nearly all of the 20 s is indexed while the database is down.
    assert!(
        during >= 14.0,
        "only {during:.1} s recorded while PostgreSQL was stopped"
    );

    pg.resume();
    let back = Instant::now();
    let recovered = loop {
        let (code, body) = get(&v, &bind, &token, "/api/v1/cameras");
        if code == 200 {
            break back.elapsed();
        }
        assert_eq!(code, 503, "{body}");
        assert!(
            back.elapsed() < Duration::from_secs(15),
            "API did not recover: {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!(
        "outage: {unavailable} answers 503, {during:.1} s recorded in 20 s, API back {recovered:?} after PostgreSQL"
    );
    let errlog = server.log.with_extension("err");
    let log = server.stop() + &std::fs::read_to_string(errlog).unwrap_or_default();
    assert!(
        log.contains("database unavailable"),
        "the log says why:\n{log}"
    );
    assert!(!log.contains(&token), "no token in the log");
}

/// PostgreSQL 15 with TLS on 127.0.0.1 and a certificate for `localhost` signed by the
/// installation's CA, a database for `v`, and its password in a 0600 file.
struct TlsPostgres {
    pg: PgServer,
    db: String,
    password: &'static str,
    password_file: std::path::PathBuf,
}

fn tls_postgres(v: &Vigil) -> TlsPostgres {
    require_tool("openssl");
    let dir = v.dir.path();
    let key = dir.join("pg.key");
    let csr = dir.join("pg.csr");
    let out = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr)
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cert = dir.join("pg.crt");
    v.ok(&[
        "pki",
        "sign-csr",
        csr.to_str().unwrap(),
        "-o",
        cert.to_str().unwrap(),
    ]);
    let password = "pg-test-password-7f3a";
    let pg = PgServer::start_with(Some(PgTls {
        cert_pem: std::fs::read_to_string(&cert).unwrap(),
        key_pem: std::fs::read_to_string(&key).unwrap(),
        password: password.into(),
    }));
    let db = pg.create_database();
    let pw = dir.join("db.pass");
    std::fs::write(&pw, format!("{password}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    TlsPostgres {
        pg,
        db,
        password,
        password_file: pw,
    }
}

#[test]
fn tls_verify_full_with_a_vigil_ca_certificate_and_a_wrong_host_name_refused() {
    let v = Vigil::init(2);
    let TlsPostgres {
        pg,
        db,
        password,
        password_file: pw,
    } = tls_postgres(&v);
    let ca = v.data.join("pki/ca.crt");
    let original = std::fs::read_to_string(&v.config).unwrap();
    let with = |host: &str| {
        std::fs::write(
            &v.config,
            format!(
                "{original}\n[database]\nurl = \"{}\"\nca_file = \"{}\"\npassword_file = \"{}\"\n",
                pg.tls_url(host, &db),
                ca.display(),
                pw.display()
            ),
        )
        .unwrap();
    };
    with("localhost");
    let said = v.ok(&["db", "migrate"]);
    assert!(said.contains("applied access migration 2"), "{said}");
    assert!(said.contains("TLS") || v.ok(&["db", "status"]).contains("PostgreSQL"));
    v.ok(&["user", "list"]);
    // The certificate names localhost, not 127.0.0.1: refused, and the answer says why.
    with("127.0.0.1");
    let out = v.cmd(&["user", "list"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("database unavailable"), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert!(!err.contains(password), "{err}");
    // A password in the URL is refused before anything is sent.
    std::fs::write(
        &v.config,
        format!(
            "{original}\n[database]\nurl = \"postgres://vigil:{password}@localhost:{}/{db}\"\n",
            pg.port
        ),
    )
    .unwrap();
    let out = v.cmd(&["db", "status"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("contains a password"),
        "{err}"
    );
    assert!(!err.contains(password), "{err}");
}

#[test]
fn an_access_db_moves_into_postgres_with_its_audit_chain_intact() {
    let v = Vigil::init(2);
    // Some history in the SQLite file: users, a token, audit entries.
    let pwfile = v.dir.path().join("pw");
    std::fs::write(&pwfile, "velvet-otter-tramline-42\n").unwrap();
    v.ok(&[
        "user",
        "add",
        "alice",
        "--role",
        "operator",
        "--password-file",
        pwfile.to_str().unwrap(),
    ]);
    v.ok(&[
        "user",
        "add",
        "bob",
        "--role",
        "viewer",
        "--camera",
        "lobby",
        "--password-file",
        pwfile.to_str().unwrap(),
    ]);
    let token = create_token(&v);
    let sqlite_chain = v.ok(&["audit-log", "verify"]);
    assert!(sqlite_chain.contains("intact"), "{sqlite_chain}");
    let pg = PgServer::start();
    let db = pg.create_database();
    use_database(&v, &format!("url = \"{}\"\n", pg.socket_url(&db)));
    let said = v.ok(&["db", "copy-from-sqlite"]);
    assert!(said.contains("rows of users"), "{said}");
    assert!(said.contains("audit log verified there"), "{said}");
    // Vigil now reads PostgreSQL: the users, the token and the same chain are there.
    let users = v.ok(&["user", "list"]);
    assert!(users.contains("alice") && users.contains("bob"), "{users}");
    let chain = v.ok(&["audit-log", "verify"]);
    let head = |s: &str| s.split("head ").nth(1).map(|h| h.trim()[..64].to_owned());
    assert_eq!(
        head(&chain),
        head(&sqlite_chain),
        "{chain} vs {sqlite_chain}"
    );
    assert!(!said.contains(&token));
    // A second copy into the now non-empty database is refused.
    let out = v.cmd(&["db", "copy-from-sqlite"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("already holds data"),
        "{err}"
    );
    // New rows get fresh keys after the copied ones.
    v.ok(&[
        "user",
        "add",
        "carol",
        "--role",
        "viewer",
        "--password-file",
        pwfile.to_str().unwrap(),
    ]);
    assert!(v.ok(&["audit-log", "verify"]).contains("intact"));
}

#[test]
fn a_backup_of_an_installation_on_postgres_restores_its_management_data() {
    let v = Vigil::init(2);
    let pg = PgServer::start();
    let db = pg.create_database();
    use_database(&v, &format!("url = \"{}\"\n", pg.socket_url(&db)));
    v.ok(&["db", "copy-from-sqlite"]);
    // A user that exists only in PostgreSQL, not in the old access.db.
    let pwfile = v.dir.path().join("pw");
    std::fs::write(&pwfile, "velvet-otter-tramline-42\n").unwrap();
    v.ok(&[
        "user",
        "add",
        "dora",
        "--role",
        "operator",
        "--password-file",
        pwfile.to_str().unwrap(),
    ]);
    let chain = v.ok(&["audit-log", "verify"]);

    let pass = v.dir.path().join("pass");
    std::fs::write(&pass, "a passphrase for the test backup\n").unwrap();
    let file = v.dir.path().join("site.vbk");
    let said = v.ok(&[
        "backup",
        "-o",
        file.to_str().unwrap(),
        "--passphrase-file",
        pass.to_str().unwrap(),
    ]);
    assert!(said.contains("copied from PostgreSQL"), "{said}");
    // The backup is on record in the installation's audit log, which is in PostgreSQL.
    let log = v.ok(&["audit-log", "query", "--jsonl"]);
    assert!(log.contains("\"format\":\"backup\""), "{log}");
    assert!(
        pg.psql(
            &db,
            r#"SELECT count(*) FROM audit WHERE detail LIKE '%"format":"backup"%'"#
        )
        .trim()
            != "0"
    );

    let restored = v.dir.path().join("restored");
    let out = Command::new(common::bin())
        .args(["restore", "--data-dir"])
        .arg(&restored)
        .arg("--passphrase-file")
        .arg(&pass)
        .arg(&file)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(said.contains("used PostgreSQL"), "{said}");
    let config = restored.join("vigil.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        !text
            .lines()
            .any(|l| l.trim_start().starts_with("url = \"postgres")),
        "{text}"
    );
    let run = |args: &[&str]| {
        let out = Command::new(common::bin())
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // The restored installation has PostgreSQL's users, and the same audit chain up to the
    // backup plus the restore's own entry.
    assert!(run(&["user", "list"]).contains("dora"));
    let restored_chain = run(&["audit-log", "verify"]);
    assert!(restored_chain.contains("intact"), "{restored_chain}");
    assert!(chain.contains("intact"), "{chain}");
}

/// A partition (bytes stop, nothing is refused or closed) is what a stopped server is not:
/// calls hang instead of failing. The API gives up on the database within the call timeout
/// (10 s, docs/database.md), answers 503 at once while it reconnects in the background, and
/// is back by itself shortly after the path heals.
#[test]
fn a_network_partition_from_postgres_answers_503_within_seconds_and_heals_by_itself() {
    require_tool("curl");
    let v = Vigil::init(2);
    let TlsPostgres {
        pg,
        db,
        password_file,
        ..
    } = tls_postgres(&v);
    let path = Partition::start(([127, 0, 0, 1], pg.port).into());
    use_database(
        &v,
        &format!(
            "url = \"postgres://vigil@localhost:{}/{db}?sslmode=verify-full\"\nca_file = \"{}\"\npassword_file = \"{}\"\n",
            path.port,
            v.data.join("pki/ca.crt").display(),
            password_file.display()
        ),
    );
    v.ok(&["db", "migrate"]);
    let token = create_token(&v);
    let server = v.serve();
    let bind = api_bind(&v);
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&v, &bind, &token, "/api/v1/cameras").0 != 200 {
        assert!(Instant::now() < deadline, "the API never answered");
        std::thread::sleep(Duration::from_millis(300));
    }

    path.cut();
    let cut = Instant::now();
    // Every answer during the partition: (status, how long it took).
    let mut answers: Vec<(u16, Duration)> = Vec::new();
    while cut.elapsed() < Duration::from_secs(25) {
        let t = Instant::now();
        let (code, body) = get_within(&v, &bind, &token, "/api/v1/cameras", 30);
        let took = t.elapsed();
        // A token checked within the last second is answered from memory.
        if code == 200 && cut.elapsed() < Duration::from_secs(2) {
            continue;
        }
        assert_eq!(code, 503, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["code"], "database_unavailable", "{body}");
        answers.push((503, took));
        std::thread::sleep(Duration::from_millis(500));
    }
    let first = answers.first().expect("no answer during the partition").1;
    let slowest = answers.iter().map(|a| a.1).max().unwrap();
    let later: Vec<Duration> = answers.iter().skip(1).map(|a| a.1).collect();
    assert!(
        slowest <= Duration::from_secs(12),
        "an answer took {slowest:?} (the call timeout is 10 s)"
    );
    assert!(
        later.len() >= 8,
        "only {} answers after the first",
        later.len()
    );
    assert!(
        later.iter().all(|d| *d < Duration::from_secs(2)),
        "after the first time-out the API answers at once: {later:?}"
    );

    path.heal();
    let healed = Instant::now();
    let back = loop {
        let (code, body) = get_within(&v, &bind, &token, "/api/v1/cameras", 30);
        if code == 200 {
            break healed.elapsed();
        }
        assert_eq!(code, 503, "{body}");
        assert!(
            healed.elapsed() < Duration::from_secs(25),
            "the API did not recover after the partition healed: {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!(
        "partition: first answer {first:?}, then {} answers of at most {:?}; API back {back:?} after the heal ({} connections)",
        later.len(),
        later.iter().max().unwrap(),
        path.connections()
    );
    let errlog = server.log.with_extension("err");
    let log = server.stop() + &std::fs::read_to_string(errlog).unwrap_or_default();
    assert!(log.contains("database unavailable"), "{log}");
    assert!(log.contains("again"), "the log says when it is back: {log}");
}
