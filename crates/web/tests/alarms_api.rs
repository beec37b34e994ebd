//! Rules, alarms and bookmarks over HTTPS (real TLS listener, the installation CA): an event
//! published into the bus, as an input listener does, fires a configured rule; the alarm and
//! the bookmark are visible over the API and the alarm arrives on the events WebSocket; each
//! role can do exactly what it may; rules are replaced (saved in vigil.toml) and tested over
//! the API.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::{Auth, Harness, RawAnswer, read_answer, ws};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;
use vigil_access::{CameraScope, Role};
use vigil_events::{Category, NewEvent, Severity, Source, SourceKind};

const RULES: &str = r#"data_dir = "/unused"

[[rules]]
name = "port-security"
kinds = ["syslog.dot1x_failure"]
cameras = ["lobby", "gate"]
min_severity = "warning"
alarm = { priority = 2 }
bookmark = { pre_seconds = 10, post_seconds = 30 }
siem = true
"#;

/// One request over a fresh TLS connection to the real listener.
async fn https(
    h: &Harness,
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: &Auth,
    body: Option<Value>,
) -> RawAnswer {
    let mut tls = h
        .tls_connect(addr, IpAddr::V4(Ipv4Addr::LOCALHOST), &[b"http/1.1"])
        .await
        .unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    match auth {
        Auth::Bearer(t) => req.push_str(&format!("Authorization: Bearer {t}\r\n")),
        Auth::None => {}
        other => panic!("use tokens here: {other:?}"),
    }
    req.push_str("\r\n");
    req.push_str(&body);
    tls.write_all(req.as_bytes()).await.unwrap();
    read_answer(&mut tls).await.unwrap()
}

fn dot1x(source: &str, camera: &str) -> NewEvent {
    NewEvent {
        time_us: vigil_events::model::now_us(),
        source: Source::new(SourceKind::Syslog, source),
        kind: "syslog.dot1x_failure".into(),
        category: Category::External,
        severity: Severity::Warning,
        message: format!(
            "%DOT1X-5-FAIL: Authentication failed for client (aa:bb:cc:00:11:22) on Interface Gi1/0/3 ({camera})"
        ),
        camera: Some(camera.into()),
        attributes: [("interface".to_owned(), "Gi1/0/3".to_owned())].into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_becomes_an_alarm_and_a_bookmark_that_each_role_handles_as_it_may() {
    let rules = vigil_config::Config::parse(RULES, std::path::Path::new("r.toml"))
        .unwrap()
        .rules;
    let h = Harness::with_config(move |c| c.rules = rules);
    let _rules_task = h.state.alarms.spawn_rules(std::future::pending());
    let (addr, _) = h.serve(false).await;
    let admin = Auth::Bearer(h.token(Role::Admin, CameraScope::All));
    let operator = Auth::Bearer(h.token(Role::Operator, CameraScope::only(["lobby"])));
    let viewer = Auth::Bearer(h.token(Role::Viewer, CameraScope::only(["lobby"])));
    let auditor = Auth::Bearer(h.token(Role::Auditor, CameraScope::All));
    let mut live = ws::open(&h, addr, "/api/v1/events/live?category=alarm", &admin, None)
        .await
        .unwrap();

    // A listener publishes a port-security failure of lobby's switch port.
    h.state.events.publish(dot1x("sw-1", "lobby")).unwrap();
    let mut alarm = Value::Null;
    for _ in 0..100 {
        let a = https(&h, addr, "GET", "/api/v1/alarms", &admin, None).await;
        assert_eq!(a.status, 200, "{}", a.text());
        if let Some(first) = a.json()["alarms"].as_array().unwrap().first() {
            alarm = first.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(alarm["rule"], "port-security", "{alarm}");
    assert_eq!(alarm["state"], "new");
    assert_eq!(alarm["priority"], 2);
    assert_eq!(alarm["camera"], "lobby");
    assert_eq!(alarm["source"], "sw-1");
    assert_eq!(alarm["count"], 1);
    let id = alarm["id"].as_i64().unwrap();
    // It arrives live on the events WebSocket, as an alarm event.
    let m = ws::json(&ws::next(&mut live, Duration::from_secs(5)).await);
    assert_eq!(m["type"], "event");
    assert_eq!(m["kind"], "alarm.raised", "{m}");
    assert_eq!(m["category"], "alarm");
    assert_eq!(m["attributes"]["alarm_id"], id.to_string());

    // The bookmark is on lobby's timeline: 10 s before the event to 30 s after.
    let b = https(
        &h,
        addr,
        "GET",
        "/api/v1/bookmarks?camera=lobby&from=-1h&to=%2B1h",
        &viewer,
        None,
    )
    .await;
    assert_eq!(b.status, 200, "{}", b.text());
    let marks = b.json()["bookmarks"].as_array().unwrap().clone();
    assert_eq!(marks.len(), 1, "{}", b.text());
    assert_eq!(marks[0]["creator_kind"], "rule");
    assert_eq!(marks[0]["creator"], "port-security");
    assert_eq!(marks[0]["alarm_id"], id);
    assert_eq!(
        marks[0]["to_us"].as_i64().unwrap() - marks[0]["from_us"].as_i64().unwrap(),
        40_000_000
    );

    // The same rule, camera and source again counts into the open alarm.
    h.state.events.publish(dot1x("sw-1", "lobby")).unwrap();
    h.state.events.publish(dot1x("sw-1", "gate")).unwrap();
    let mut listed = Vec::new();
    for _ in 0..100 {
        let a = https(&h, addr, "GET", "/api/v1/alarms", &admin, None).await;
        listed = a.json()["alarms"].as_array().unwrap().clone();
        if listed.len() == 2 && listed.iter().any(|a| a["count"] == 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(listed.len(), 2, "{listed:?}");
    let gate = listed.iter().find(|a| a["camera"] == "gate").unwrap()["id"]
        .as_i64()
        .unwrap();

    // Who sees what: the viewer and operator of lobby see lobby's alarm only; auditors none.
    for who in [&viewer, &operator] {
        let a = https(&h, addr, "GET", "/api/v1/alarms", who, None).await;
        let ids: Vec<i64> = a.json()["alarms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, [id]);
    }
    let a = https(
        &h,
        addr,
        "GET",
        &format!("/api/v1/alarms/{gate}"),
        &viewer,
        None,
    )
    .await;
    assert_eq!(a.status, 403, "{}", a.text());
    let a = https(&h, addr, "GET", "/api/v1/alarms", &auditor, None).await;
    assert_eq!(a.status, 403);
    let a = https(&h, addr, "GET", "/api/v1/alarms?state=open", &admin, None).await;
    assert_eq!(
        (a.status, a.json()["code"].clone()),
        (400, json!("bad_filter"))
    );

    // Handling: viewers may not; the operator of lobby acknowledges and closes lobby's alarm.
    let ack = format!("/api/v1/alarms/{id}/acknowledge");
    let close = format!("/api/v1/alarms/{id}/close");
    let a = https(&h, addr, "POST", &ack, &viewer, None).await;
    assert_eq!(a.status, 403);
    let a = https(
        &h,
        addr,
        "POST",
        &format!("/api/v1/alarms/{gate}/close"),
        &operator,
        None,
    )
    .await;
    assert_eq!(a.status, 403, "gate is not the operator's camera");
    let a = https(
        &h,
        addr,
        "POST",
        &ack,
        &operator,
        Some(json!({"comment": "guard sent"})),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let j = a.json();
    assert_eq!(j["state"], "acknowledged");
    assert!(
        j["acknowledged"]["by"]
            .as_str()
            .unwrap()
            .starts_with("token:"),
        "{j}"
    );
    assert_eq!(j["acknowledged"]["comment"], "guard sent");
    let a = https(&h, addr, "POST", &ack, &operator, None).await;
    assert_eq!(
        (a.status, a.json()["code"].clone()),
        (409, json!("alarm_state"))
    );
    let a = https(&h, addr, "POST", &close, &operator, None).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["state"], "closed");
    let a = https(
        &h,
        addr,
        "POST",
        &close,
        &operator,
        Some(json!({"comment": "a\nb"})),
    )
    .await;
    assert_eq!(
        (a.status, a.json()["code"].clone()),
        (400, json!("bad_comment"))
    );
    let a = https(
        &h,
        addr,
        "POST",
        "/api/v1/alarms/424242/close",
        &admin,
        None,
    )
    .await;
    assert_eq!(
        (a.status, a.json()["code"].clone()),
        (404, json!("alarm_not_found"))
    );
    let a = https(
        &h,
        addr,
        "GET",
        "/api/v1/alarms?state=new,acknowledged",
        &admin,
        None,
    )
    .await;
    assert_eq!(
        a.json()["alarms"].as_array().unwrap().len(),
        1,
        "only gate's is open"
    );
    // Each step was published live and audited.
    let mut kinds = Vec::new();
    while !kinds.iter().any(|k| k == "alarm.closed") && kinds.len() < 20 {
        let m = ws::json(&ws::next(&mut live, Duration::from_secs(5)).await);
        kinds.push(m["kind"].as_str().unwrap().to_owned());
    }
    assert!(
        kinds.contains(&"alarm.acknowledged".to_owned()),
        "{kinds:?}"
    );
    assert!(kinds.contains(&"alarm.closed".to_owned()), "{kinds:?}");
    let audit = https(
        &h,
        addr,
        "GET",
        "/api/v1/audit?kind=alarm_changed",
        &auditor,
        None,
    )
    .await;
    assert_eq!(audit.status, 200, "{}", audit.text());
    assert_eq!(
        audit.json()["entries"].as_array().unwrap().len(),
        2,
        "{}",
        audit.text()
    );

    // Bookmarks by hand: operators make and delete them on their cameras; viewers cannot.
    let new = json!({"camera": "lobby", "from": "-5m", "to": "-4m", "label": "delivery van"});
    let a = https(
        &h,
        addr,
        "POST",
        "/api/v1/bookmarks",
        &viewer,
        Some(new.clone()),
    )
    .await;
    assert_eq!(a.status, 403);
    let a = https(
        &h,
        addr,
        "POST",
        "/api/v1/bookmarks",
        &operator,
        Some(json!({"camera": "gate", "from": "-5m", "to": "-4m", "label": "x"})),
    )
    .await;
    assert_eq!(a.status, 403);
    let a = https(
        &h,
        addr,
        "POST",
        "/api/v1/bookmarks",
        &operator,
        Some(json!({"camera": "lobby", "from": "-4m", "to": "-5m", "label": "x"})),
    )
    .await;
    assert_eq!(
        (a.status, a.json()["code"].clone()),
        (400, json!("bad_bookmark"))
    );
    let a = https(&h, addr, "POST", "/api/v1/bookmarks", &operator, Some(new)).await;
    assert_eq!(a.status, 201, "{}", a.text());
    assert!(a.json()["creator"].as_str().unwrap().starts_with("token:"));
    let made = a.json()["id"].as_i64().unwrap();
    let a = https(
        &h,
        addr,
        "GET",
        "/api/v1/bookmarks?camera=lobby",
        &viewer,
        None,
    )
    .await;
    assert_eq!(a.json()["bookmarks"].as_array().unwrap().len(), 3);
    let a = https(
        &h,
        addr,
        "DELETE",
        &format!("/api/v1/bookmarks/{made}"),
        &viewer,
        None,
    )
    .await;
    assert_eq!(a.status, 403);
    let a = https(
        &h,
        addr,
        "DELETE",
        &format!("/api/v1/bookmarks/{made}"),
        &operator,
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let a = https(
        &h,
        addr,
        "DELETE",
        &format!("/api/v1/bookmarks/{made}"),
        &operator,
        None,
    )
    .await;
    assert_eq!(
        (a.status, a.json()["code"].clone()),
        (404, json!("bookmark_not_found"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_replace_rules_which_are_saved_and_tested_without_running() {
    let h = Harness::new();
    let (addr, _) = h.serve(false).await;
    let admin = Auth::Bearer(h.token(Role::Admin, CameraScope::All));
    let operator = Auth::Bearer(h.token(Role::Operator, CameraScope::All));
    let a = https(&h, addr, "GET", "/api/v1/rules", &admin, None).await;
    assert_eq!(a.json(), json!({"rules": []}));
    let a = https(&h, addr, "GET", "/api/v1/rules", &operator, None).await;
    assert_eq!(a.status, 403);

    let night = json!({
        "name": "night-door",
        "kinds": ["external."],
        "regex": "door (forced|held)",
        "schedule": [{"days": ["mon-fri"], "from": "18:00", "to": "07:00"}],
        "alarm": {"priority": 1},
        "bookmark": {"pre_seconds": 5, "post_seconds": 20}
    });
    // A bad regex is refused with the key at fault; nothing is saved.
    let mut bad = night.clone();
    bad["regex"] = json!("door (forced");
    let a = https(
        &h,
        addr,
        "PUT",
        "/api/v1/rules",
        &admin,
        Some(json!({"rules": [bad]})),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.text());
    assert!(
        a.json()["message"]
            .as_str()
            .unwrap()
            .contains("rules[0].regex"),
        "{}",
        a.text()
    );
    let a = https(
        &h,
        addr,
        "PUT",
        "/api/v1/rules",
        &admin,
        Some(json!({"rules": [{"name": "x", "sms": true}]})),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.text());
    assert!(
        !std::fs::read_to_string(&h.config_path)
            .unwrap()
            .contains("\n[[rules]]")
    );

    let a = https(
        &h,
        addr,
        "PUT",
        "/api/v1/rules",
        &admin,
        Some(json!({"rules": [night]})),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    // Saved in vigil.toml, and it loads back the same.
    let saved = vigil_config::Config::load(&h.config_path).unwrap();
    assert_eq!(saved.rules.len(), 1);
    assert_eq!(saved.rules[0].name, "night-door");
    assert_eq!(
        serde_json::to_value(&saved.rules[0]).unwrap()["regex"],
        "door (forced|held)"
    );
    let a = https(&h, addr, "GET", "/api/v1/rules/night-door", &admin, None).await;
    assert_eq!(a.json()["alarm"]["priority"], 1);
    let a = https(&h, addr, "GET", "/api/v1/rules/nope", &admin, None).await;
    assert_eq!(
        (a.status, a.json()["code"].clone()),
        (404, json!("rule_not_found"))
    );

    // The test endpoint: a Tuesday 02:00 UTC is Monday's night; a Tuesday noon is not.
    let example = |time: &str, camera: Option<&str>| {
        json!({"kind": "external.door", "message": "door forced open", "severity": "warning",
               "source": "acs-1", "camera": camera, "time": time})
    };
    let a = https(
        &h,
        addr,
        "POST",
        "/api/v1/rules/test",
        &admin,
        Some(example("2026-12-08T02:00:00Z", Some("lobby"))),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let fired = a.json()["fired"].as_array().unwrap().clone();
    assert_eq!(fired.len(), 1, "{}", a.text());
    assert_eq!(fired[0]["rule"], "night-door");
    let actions = fired[0]["actions"].as_array().unwrap();
    assert_eq!(actions[0], json!({"action": "alarm", "priority": 1}));
    assert_eq!(actions[1]["action"], "bookmark");
    assert_eq!(actions[1]["camera"], "lobby");
    assert_eq!(
        actions[1]["to_us"].as_i64().unwrap() - actions[1]["from_us"].as_i64().unwrap(),
        25_000_000
    );
    let a = https(
        &h,
        addr,
        "POST",
        "/api/v1/rules/test",
        &admin,
        Some(example("2026-12-08T12:00:00Z", None)),
    )
    .await;
    assert_eq!(a.json()["fired"], json!([]));
    let a = https(
        &h,
        addr,
        "POST",
        "/api/v1/rules/test",
        &admin,
        Some(example("2026-12-08T02:00:00Z", None)),
    )
    .await;
    assert_eq!(a.json()["fired"][0]["actions"][1]["action"], "skipped");
    // Nothing ran.
    let a = https(&h, addr, "GET", "/api/v1/alarms", &admin, None).await;
    assert_eq!(a.json()["alarms"], json!([]));
    let a = https(
        &h,
        addr,
        "POST",
        "/api/v1/rules/test",
        &admin,
        Some(json!({"kind": "Bad Kind", "message": "x"})),
    )
    .await;
    assert_eq!(
        (a.status, a.json()["code"].clone()),
        (400, json!("bad_event"))
    );
    // The change was audited as a configuration change.
    let audit = https(
        &h,
        addr,
        "GET",
        "/api/v1/audit?kind=config_changed",
        &admin,
        None,
    )
    .await;
    assert!(audit.text().contains("night-door"), "{}", audit.text());
}
