//! The settings API: stage (PATCH), restore, factory, apply; persistence to the config file;
//! validation; and live changes of listeners, plaintext HTTP, host names and session lifetime
//! against real sockets (curl as the client), all without a process restart.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::{ADMIN, ADMIN_PASSWORD, Auth, Harness, RawAnswer, run};
use serde_json::{Value, json};
use vigil_access::{AuditKind, AuditQuery, CameraScope, Role};
use vigil_config::Config;
use vigil_testkit::free_port;

// ---- helpers ----------------------------------------------------------------------------

async fn get(h: &Harness, auth: &Auth) -> Value {
    let a = h.get("/api/v1/settings", auth).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    a.json()
}

async fn patch(h: &Harness, auth: &Auth, body: Value) -> common::Answer {
    h.patch("/api/v1/settings", auth, body).await
}

async fn post(h: &Harness, auth: &Auth, what: &str) -> common::Answer {
    h.post(&format!("/api/v1/settings/{what}"), auth, None)
        .await
}

fn refuses(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err()
}

fn listener(port: u16, label: &str) -> Value {
    json!({"bind": format!("127.0.0.1:{port}"), "label": label})
}

/// Runs curl (bounded by its --max-time); `Err(stderr)` when it could not get an answer at
/// all (refused connection, TLS failure).
async fn curl(args: &[&str]) -> Result<RawAnswer, String> {
    let curl = vigil_testkit::require_tool("curl");
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("headers");
    let head_file = headers.to_str().unwrap();
    let options = [
        "-sS",
        "--connect-timeout",
        "5",
        "--max-time",
        "15",
        "-D",
        head_file,
    ];
    let out = run(&curl, options.iter().chain(args), Duration::from_secs(30)).await;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let head = std::fs::read_to_string(&headers).unwrap_or_default();
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(RawAnswer {
        status,
        head,
        body: out.stdout,
    })
}

/// An HTTPS request to `addr` trusting only the installation CA.
async fn https(
    h: &Harness,
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<RawAnswer, String> {
    let ca = h.ca_file();
    let url = format!("https://{addr}{path}");
    let auth = token.map(|t| format!("Authorization: Bearer {t}"));
    let body = body.map(|b| b.to_string());
    let mut args = vec!["--cacert", ca.to_str().unwrap(), "-X", method, &url];
    if let Some(a) = &auth {
        args.extend(["-H", a]);
    }
    if let Some(b) = &body {
        args.extend(["-H", "Content-Type: application/json", "--data-binary", b]);
    }
    curl(&args).await
}

fn file_text(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

fn config_changes(h: &Harness) -> Vec<Value> {
    h.state
        .access
        .audit_query(&AuditQuery {
            kind: Some(AuditKind::ConfigChanged),
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .map(|e| {
            assert_eq!(e.user.as_deref(), Some(ADMIN));
            e.detail
        })
        .collect()
}

// ---- stage / restore / factory / apply ----------------------------------------------------

#[tokio::test]
async fn get_shows_the_saved_settings_and_nothing_staged() {
    let h = Harness::new();
    let admin = h.admin().await;
    let s = get(&h, &admin).await;
    assert_eq!(s["pending"], Value::Null);
    assert_eq!(s["changes"], json!([]));
    assert_eq!(s["saved"]["management"]["http"], json!([]), "HTTP is off");
    assert_eq!(s["saved"]["management"]["https"][0]["bind"], "0.0.0.0:8443");
    assert_eq!(s["saved"]["access"]["session_idle_timeout"], "15m");
    assert_eq!(s["saved"]["access"]["ids"]["notification_threshold"], 10);
    assert_eq!(s["saved"]["access"]["ids"]["block"], "until_restart");
    assert_eq!(s["saved"]["access"]["webhook"], Value::Null);
    assert_eq!(s["saved"]["retention"]["max_age"], Value::Null);
}

#[tokio::test]
async fn staged_changes_accumulate_and_restore_discards_them() {
    let h = Harness::new();
    let admin = h.admin().await;
    let before = file_text(&h.config_path);
    let a = patch(
        &h,
        &admin,
        json!({"access": {"session_idle_timeout": "30m"}}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let a = patch(
        &h,
        &admin,
        json!({"access": {"ids": {"notification_threshold": 7}}, "retention": {"max_age": "30d"}}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let s = a.json();
    let changed: Vec<&str> = s["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["setting"].as_str().unwrap())
        .collect();
    assert_eq!(
        changed,
        [
            "access.session_idle_timeout",
            "access.ids.notification_threshold",
            "retention.max_age"
        ]
    );
    assert_eq!(s["listeners_restart"], false);
    assert_eq!(s["certificate_reissue"], false);
    assert_eq!(s["changes"][0]["before"], "15m");
    assert_eq!(s["changes"][0]["after"], "30m");
    // Staged only: nothing saved, nothing in effect.
    assert_eq!(file_text(&h.config_path), before);
    assert_eq!(
        h.state.access.config().session.idle_timeout,
        Duration::from_secs(900)
    );
    let s = get(&h, &admin).await;
    assert_eq!(s["pending"]["access"]["session_idle_timeout"], "30m");
    assert_eq!(s["saved"]["access"]["session_idle_timeout"], "15m");

    let a = post(&h, &admin, "restore").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert!(
        a.json()["message"]
            .as_str()
            .unwrap()
            .contains("discarded 3")
    );
    let s = get(&h, &admin).await;
    assert_eq!(s["pending"], Value::Null);
    assert_eq!(file_text(&h.config_path), before);
    let a = post(&h, &admin, "apply").await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert_eq!(a.code(), "nothing_pending");
    // The API, not the settings library, names the call to make first.
    assert!(a.text().contains("PATCH /api/v1/settings"), "{}", a.text());

    let audit = config_changes(&h);
    let actions: Vec<&str> = audit
        .iter()
        .map(|d| d["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["stage", "stage", "restore"]);
    assert_eq!(
        audit[0]["changes"][0],
        json!({"setting": "access.session_idle_timeout", "before": "15m", "after": "30m"})
    );
}

#[tokio::test]
async fn apply_saves_atomically_and_takes_effect_without_restart() {
    use std::os::unix::fs::PermissionsExt as _;
    let h = Harness::new();
    let admin = h.admin().await;
    // The webhook's key lives in a file of its own, read when the settings are applied.
    let key = h.dir.path().join("webhook.key");
    std::fs::write(&key, "a-webhook-signing-key-of-32-chars").unwrap();
    let a = patch(
        &h,
        &admin,
        json!({
            "access": {
                "session_idle_timeout": "20m",
                "session_absolute_lifetime": "8h",
                "ids": {"notification_threshold": 6, "timeout": "30m", "deadtime": "0s",
                        "block": "45m", "allow_list": ["10.0.0.0/8", "2001:db8::1"]},
                "webhook": {"url": "https://alerts.example.net/hooks/T0-SECRET-PATH",
                            "secret_file": key}
            },
            "retention": {"max_age": "30d", "max_bytes": 5_000_000_000u64}
        }),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let a = post(&h, &admin, "apply").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let ans = a.json();
    assert_eq!(ans["process_restart_needed"], false);
    assert_eq!(ans["listeners"], Value::Null, "no listener setting changed");
    assert!(
        ans["message"]
            .as_str()
            .unwrap()
            .contains("without a process restart")
    );

    // Saved: the file reloads to exactly the configuration in effect, and is private.
    let loaded = Config::load(&h.config_path).unwrap();
    let in_effect = h.state.config.read().unwrap().clone();
    assert_eq!(loaded, in_effect);
    assert_eq!(
        loaded.access.session_idle_timeout,
        Duration::from_secs(1200)
    );
    assert_eq!(loaded.retention.max_bytes, Some(5_000_000_000));
    assert_eq!(loaded.data_dir, h.data_dir(), "non-editable settings kept");
    let mode = std::fs::metadata(&h.config_path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(h.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temp file left behind");

    // In effect in the access layer.
    let cfg = h.state.access.config();
    assert_eq!(cfg.session.idle_timeout, Duration::from_secs(1200));
    assert_eq!(cfg.session.absolute_lifetime, Duration::from_secs(8 * 3600));
    assert_eq!(cfg.ids.notification_threshold, 6);
    assert_eq!(
        cfg.ids.block,
        vigil_access::BlockPolicy::For(Duration::from_secs(45 * 60))
    );
    assert!(cfg.ids.is_allow_listed("10.9.8.7".parse().unwrap()));
    assert_eq!(h.state.access.ids().config().notification_threshold, 6);
    assert_eq!(get(&h, &admin).await["pending"], Value::Null);

    // Audited with before/after, but the webhook URL only by its origin.
    let audit = config_changes(&h);
    let last = audit.last().unwrap();
    assert_eq!(last["action"], "apply");
    let text = last.to_string();
    assert!(text.contains("access.ids.block"), "{text}");
    assert!(!text.contains("SECRET"), "webhook path leaked: {text}");
    for d in &audit {
        assert!(!d.to_string().contains("SECRET"), "{d}");
    }
}

#[tokio::test]
async fn factory_stages_defaults_and_needs_apply() {
    let h = Harness::with_config(|c| {
        c.access.session_idle_timeout = Duration::from_secs(40 * 60);
        c.access.ids.notification_threshold = 20;
        c.storage.segment_seconds = 10;
    });
    let admin = h.admin().await;
    let before = file_text(&h.config_path);
    let a = post(&h, &admin, "factory").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let s = a.json();
    assert_eq!(s["pending"]["access"]["session_idle_timeout"], "15m");
    assert_eq!(s["pending"]["access"]["ids"]["notification_threshold"], 10);
    assert_eq!(s["saved"]["access"]["session_idle_timeout"], "40m");
    assert_eq!(
        file_text(&h.config_path),
        before,
        "factory alone saves nothing"
    );
    // Restore after factory keeps the saved settings.
    assert_eq!(post(&h, &admin, "restore").await.status, StatusCode::OK);
    assert_eq!(get(&h, &admin).await["pending"], Value::Null);
    // Factory + apply: the camera's Factory then Set.
    assert_eq!(post(&h, &admin, "factory").await.status, StatusCode::OK);
    let a = post(&h, &admin, "apply").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let loaded = Config::load(&h.config_path).unwrap();
    assert_eq!(loaded.access.session_idle_timeout, Duration::from_secs(900));
    assert_eq!(loaded.access.ids.notification_threshold, 10);
    assert_eq!(
        loaded.storage.segment_seconds, 10,
        "settings outside this dialog keep their values"
    );
    assert_eq!(loaded.data_dir, h.data_dir());
    assert_eq!(
        h.state.access.config().session.idle_timeout,
        Duration::from_secs(900)
    );
}

#[tokio::test]
async fn invalid_values_are_refused_with_a_message_and_nothing_is_staged() {
    let h = Harness::new();
    let admin = h.admin().await;
    // Something valid is already staged; a bad patch must leave it exactly as it was.
    let a = patch(&h, &admin, json!({"retention": {"max_bytes": 1000}})).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let staged = get(&h, &admin).await["pending"].clone();
    for (body, want) in [
        (
            json!({"access": {"session_idle_timeout": "5s"}}),
            "at least 1m",
        ),
        (json!({"access": {"session_idle_timeout": "soon"}}), "15m"),
        (
            json!({"access": {"session_idle_timeout": "2h", "session_absolute_lifetime": "1h"}}),
            "shorter",
        ),
        (
            json!({"access": {"ids": {"notification_threshold": 3}}}),
            "at least 5",
        ),
        (
            json!({"access": {"ids": {"notification_threshold": "ten"}}}),
            "notification_threshold",
        ),
        (
            json!({"access": {"ids": {"block": "forever"}}}),
            "until_restart",
        ),
        (
            json!({"access": {"ids": {"allow_list": ["10.0.0.0/33"]}}}),
            "allow_list",
        ),
        (
            json!({"access": {"ids": {"allow_list": ["not-an-ip"]}}}),
            "allow_list",
        ),
        (json!({"access": {"ids": null}}), "missing field `ids`"),
        (
            json!({"management": {"https": null}}),
            "missing field `https`",
        ),
        (
            json!({"management": {"https": [{"bind": "nope"}]}}),
            "address:port",
        ),
        (
            json!({"management": {"https": [{"bind": "127.0.0.1:0"}]}}),
            "port 0",
        ),
        (
            json!({"management": {"https": [listener(18443, "a"), listener(18443, "b")]}}),
            "another listener",
        ),
        (
            json!({"management": {"hostnames": ["bad name"]}}),
            "hostnames",
        ),
        (json!({"management": {"hostnames": []}}), "hostnames"),
        (json!({"management": {"enabled": false}}), "enabled"),
        (json!({"management": {"colour": "red"}}), "colour"),
        (json!({"data_dir": "/tmp/elsewhere"}), "data_dir"),
        (
            json!({"access": {"webhook": {"url": "http://x.example/h"}}}),
            "plain http://",
        ),
        (
            json!({"access": {"webhook": {"url": "https://u:p@x.example/h"}}}),
            "credentials",
        ),
        (
            json!({"retention": {"max_age": "often"}}),
            "retention.max_age",
        ),
        (json!([1, 2]), "JSON object"),
    ] {
        let a = patch(&h, &admin, body.clone()).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {}", a.text());
        assert_eq!(a.code(), "bad_request", "{body}");
        let msg = a.json()["message"].as_str().unwrap().to_owned();
        assert!(msg.contains(want), "{body}: {msg}");
        assert!(msg.ends_with("nothing was staged"), "{body}: {msg}");
        assert_eq!(
            get(&h, &admin).await["pending"],
            staged,
            "{body} changed the staged settings"
        );
    }
    // An unknown setting: the API says where the editable ones are listed.
    let a = patch(&h, &admin, json!({"management": {"colour": "red"}})).await;
    let msg = a.json()["message"].as_str().unwrap().to_owned();
    assert!(
        msg.contains("(GET /api/v1/settings shows the editable settings;"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_config_without_listeners_is_refused_as_unreachable() {
    let h = Harness::new();
    let admin = h.admin().await;
    for body in [
        json!({"management": {"https": [], "http": []}}),
        json!({"management": {"https": []}}),
    ] {
        let a = patch(&h, &admin, body.clone()).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {}", a.text());
        assert_eq!(a.code(), "unreachable", "{body}");
        assert!(
            a.text().contains("at least one HTTPS listener"),
            "{}",
            a.text()
        );
    }
    assert_eq!(get(&h, &admin).await["pending"], Value::Null);
    // HTTPS off but HTTP on is reachable (the operator's choice), so it is accepted.
    let a = patch(
        &h,
        &admin,
        json!({"management": {"https": [], "http": [listener(free_port(), "LAN")]}}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["listeners_restart"], true);
}

#[tokio::test]
async fn only_admins_manage_settings() {
    let h = Harness::new();
    for role in [Role::Operator, Role::Viewer, Role::Auditor] {
        let auth = Auth::Bearer(h.token(role, CameraScope::All));
        let attempts = [
            h.get("/api/v1/settings", &auth).await,
            patch(
                &h,
                &auth,
                json!({"access": {"session_idle_timeout": "30m"}}),
            )
            .await,
            post(&h, &auth, "apply").await,
            post(&h, &auth, "restore").await,
            post(&h, &auth, "factory").await,
        ];
        for a in attempts {
            assert_eq!(a.status, StatusCode::FORBIDDEN, "{role}: {}", a.text());
            assert_eq!(a.code(), "forbidden");
        }
    }
    let a = h.get("/api/v1/settings", &Auth::None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(h.state.pending.lock().unwrap().as_ref(), None);
    // An admin token works (no CSRF needed for tokens).
    let admin = Auth::Bearer(h.token(Role::Admin, CameraScope::All));
    assert_eq!(
        h.get("/api/v1/settings", &admin).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn session_idle_timeout_change_applies_to_new_sessions() {
    let h = Harness::new();
    let admin = h.admin().await;
    let a = patch(
        &h,
        &admin,
        json!({"access": {"session_idle_timeout": "5m"}}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(post(&h, &admin, "apply").await.status, StatusCode::OK);
    let s = h.login(ADMIN, ADMIN_PASSWORD).await;
    let a = h.get("/api/v1/session", &s).await;
    assert_eq!(a.json()["idle_remaining_secs"], 300, "{}", a.text());
    h.advance(Duration::from_secs(5 * 60));
    let a = h.get("/api/v1/session", &s).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.text());
}

// ---- live listener changes over real sockets ----------------------------------------------

#[tokio::test]
async fn port_in_use_is_409_and_changes_nothing() {
    let h = Harness::new();
    let (https_addr, _) = h.serve(false).await;
    let admin = h.admin().await;
    let squatter = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = squatter.local_addr().unwrap().port();
    let before = file_text(&h.config_path);
    let a = patch(
        &h,
        &admin,
        json!({"management": {"https": [listener(free_port(), "LAN"), listener(busy, "Internet")]}}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let a = post(&h, &admin, "apply").await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text());
    assert_eq!(a.code(), "bind_failed");
    assert!(a.text().contains(&busy.to_string()), "{}", a.text());
    assert!(a.text().contains("nothing was changed"), "{}", a.text());
    assert_eq!(file_text(&h.config_path), before, "nothing saved");
    assert_eq!(
        h.state.listeners.local_addrs().await,
        vec![(vigil_web::Scheme::Https, https_addr)],
        "no listener started or stopped"
    );
    let r = https(&h, https_addr, "GET", "/api/v1/openapi.json", None, None)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "the old listener still serves");
    // The staged settings are kept so the operator can fix the port.
    assert!(get(&h, &admin).await["pending"].is_object());
    drop(squatter);
}

#[tokio::test]
async fn listeners_are_added_and_removed_at_runtime() {
    let h = Harness::new();
    let (first, _) = h.serve(false).await;
    let token = h.token(Role::Admin, CameraScope::All);
    let (lan, internet) = (free_port(), free_port());

    // Over the running listener itself: stage a LAN and an Internet port, then apply.
    let r = https(
        &h,
        first,
        "PATCH",
        "/api/v1/settings",
        Some(&token),
        Some(json!({"management": {"https": [listener(lan, "LAN"), listener(internet, "Internet")]}})),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["listeners_restart"], true);
    assert_eq!(r.json()["changes"][0]["listeners_restart"], true);
    // The request that retires `first` arrives on `first`: its answer must still come back,
    // and without waiting for the retired listener to drain.
    let t = Instant::now();
    let r = https(
        &h,
        first,
        "POST",
        "/api/v1/settings/apply",
        Some(&token),
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "apply took {:?}",
        t.elapsed()
    );
    let report = &r.json()["listeners"];
    assert_eq!(report["started"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(report["stopped"], json!([format!("https://{first}")]));
    assert_eq!(r.json()["process_restart_needed"], false);

    for port in [lan, internet] {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let r = https(&h, addr, "GET", "/api/v1/openapi.json", None, None)
            .await
            .unwrap();
        assert_eq!(r.status, 200, "fresh TLS connection to {addr}");
    }
    assert!(
        refuses(first),
        "the retired listener must refuse connections"
    );

    // Remove the LAN port, asking over the LAN port.
    let lan_addr: SocketAddr = format!("127.0.0.1:{lan}").parse().unwrap();
    let inet_addr: SocketAddr = format!("127.0.0.1:{internet}").parse().unwrap();
    let r = https(
        &h,
        lan_addr,
        "PATCH",
        "/api/v1/settings",
        Some(&token),
        Some(json!({"management": {"https": [listener(internet, "Internet")]}})),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let r = https(
        &h,
        lan_addr,
        "POST",
        "/api/v1/settings/apply",
        Some(&token),
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["listeners"]["kept"],
        json!([format!("https://{inet_addr}")])
    );
    assert!(refuses(lan_addr));
    let r = https(&h, inet_addr, "GET", "/api/v1/settings", Some(&token), None)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["saved"]["management"]["https"][0]["label"],
        "Internet"
    );
    let loaded = Config::load(&h.config_path).unwrap();
    assert_eq!(loaded.management.https.len(), 1);
    assert_eq!(loaded.management.https[0].bind, inet_addr);
}

#[tokio::test]
async fn enabling_http_redirects_pages_and_refuses_credentials() {
    let h = Harness::new();
    let (first, _) = h.serve(false).await;
    let admin = h.admin().await;
    let (tls_port, http_port) = (free_port(), free_port());
    let a = patch(
        &h,
        &admin,
        json!({"management": {"https": [listener(tls_port, "LAN")], "http": [listener(http_port, "LAN")]}}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let a = post(&h, &admin, "apply").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert!(refuses(first));
    let base = format!("http://127.0.0.1:{http_port}");

    // A permanent redirect (308: like 301, but the method is kept).
    let r = curl(&[&format!("{base}/")]).await.unwrap();
    assert_eq!(r.status, 308, "{}", r.head);
    assert_eq!(
        r.header("location").as_deref(),
        Some(format!("https://127.0.0.1:{tls_port}/").as_str())
    );
    let r = curl(&[&format!("{base}/live/cam-1?x=1")]).await.unwrap();
    assert_eq!(
        r.header("location").as_deref(),
        Some(format!("https://127.0.0.1:{tls_port}/live/cam-1?x=1").as_str())
    );

    let login = json!({"username": ADMIN, "password": ADMIN_PASSWORD}).to_string();
    let token = h.token(Role::Admin, CameraScope::All);
    let bearer = format!("Authorization: Bearer {token}");
    let cookie = "Cookie: __Host-vigil_session=0123";
    let login_url = format!("{base}/api/v1/session");
    let users_url = format!("{base}/api/v1/users");
    let settings_url = format!("{base}/api/v1/settings");
    let page_url = format!("{base}/");
    let cases: Vec<Vec<&str>> = vec![
        vec![
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &login,
            &login_url,
        ],
        vec!["-H", &bearer, &users_url],
        vec!["-H", &bearer, &settings_url],
        vec![
            "-X",
            "PATCH",
            "-H",
            &bearer,
            "--data-binary",
            "{}",
            &settings_url,
        ],
        vec!["-H", cookie, &page_url],
    ];
    for args in cases {
        let r = curl(&args).await.unwrap();
        assert_eq!(r.status, 403, "{args:?}: {}", r.text());
        assert_eq!(r.json()["code"], "https_required", "{args:?}");
        assert!(
            r.header("set-cookie").is_none(),
            "{args:?} set a cookie over HTTP"
        );
    }
    // HTTPS on the new port works, with the same credentials.
    let tls: SocketAddr = format!("127.0.0.1:{tls_port}").parse().unwrap();
    let r = https(
        &h,
        tls,
        "POST",
        "/api/v1/session",
        None,
        Some(json!({"username": ADMIN, "password": ADMIN_PASSWORD})),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("set-cookie").unwrap().contains("Secure"));
    // The file says HTTP is on, and reloads.
    let loaded = Config::load(&h.config_path).unwrap();
    assert_eq!(loaded.management.http.len(), 1);
    assert_eq!(loaded.management.http[0].bind.port(), http_port);
}

#[tokio::test]
async fn new_host_names_reissue_the_served_certificate() {
    let h = Harness::new();
    let admin = h.admin().await;
    let port = free_port();
    h.serve(false).await;
    let a = patch(
        &h,
        &admin,
        json!({"management": {"https": [listener(port, "LAN")]}}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(post(&h, &admin, "apply").await.status, StatusCode::OK);
    let ca = h.ca_file();
    let resolve = format!("vigil.example.net:{port}:127.0.0.1");
    let url = format!("https://vigil.example.net:{port}/api/v1/openapi.json");
    let args = [
        "--cacert",
        ca.to_str().unwrap(),
        "--resolve",
        &resolve,
        &url,
    ];
    let err = curl(&args)
        .await
        .err()
        .expect("name not in the certificate yet");
    assert!(err.contains("certificate") || err.contains("SSL"), "{err}");

    let a = patch(
        &h,
        &admin,
        json!({"management": {"hostnames": ["localhost", "127.0.0.1", "vigil.example.net"]}}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["certificate_reissue"], true);
    assert_eq!(a.json()["listeners_restart"], false);
    let a = post(&h, &admin, "apply").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["certificate_reissued"], true);
    let r = curl(&args).await.unwrap();
    assert_eq!(r.status, 200, "the reissued certificate names the new host");
    assert_eq!(
        h.state.pki.lock().unwrap().hostnames(),
        ["localhost", "127.0.0.1", "vigil.example.net"]
    );
}

#[tokio::test]
async fn a_failed_save_rolls_back_listeners_and_changes_nothing() {
    let h = Harness::new();
    h.serve(false).await;
    let admin = h.admin().await;
    let (p1, p2) = (free_port(), free_port());
    let a = patch(
        &h,
        &admin,
        json!({"management": {"https": [listener(p1, "LAN")]}}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(post(&h, &admin, "apply").await.status, StatusCode::OK);
    let a1: SocketAddr = format!("127.0.0.1:{p1}").parse().unwrap();
    let a2: SocketAddr = format!("127.0.0.1:{p2}").parse().unwrap();

    let a = patch(
        &h,
        &admin,
        json!({"management": {"https": [listener(p2, "LAN")]},
               "access": {"session_idle_timeout": "30m"}}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    // The config file cannot be replaced: a directory stands in its place.
    std::fs::remove_file(&h.config_path).unwrap();
    std::fs::create_dir(&h.config_path).unwrap();
    let a = post(&h, &admin, "apply").await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", a.text());
    assert_eq!(a.code(), "internal");
    assert!(
        !a.text().contains(h.dir.path().to_str().unwrap()),
        "path leaked"
    );
    // Listeners are back as they were, nothing else took effect, the change is still staged.
    assert_eq!(
        h.state.listeners.local_addrs().await,
        vec![(vigil_web::Scheme::Https, a1)]
    );
    assert!(refuses(a2));
    let r = https(&h, a1, "GET", "/api/v1/openapi.json", None, None)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        h.state.access.config().session.idle_timeout,
        Duration::from_secs(900)
    );
    let s = get(&h, &admin).await;
    assert_eq!(s["saved"]["management"]["https"][0]["bind"], a1.to_string());
    assert_eq!(
        s["pending"]["management"]["https"][0]["bind"],
        a2.to_string()
    );
}
