//! `GET /api/v1/events`: audit entries become security events through the audit feed,
//! the runtime's and other producers' events are filtered and paged, and each role reads only
//! what it may (security events: ViewAudit; others: Playback within the camera scope).

mod common;

use axum::http::StatusCode;
use common::{Auth, Harness};
use vigil_access::{CameraScope, Role};
use vigil_app::events::AuditFeed;
use vigil_events::{Category, NewEvent, Severity};

fn publish(h: &Harness, kind: &str, category: Category, severity: Severity, camera: Option<&str>) {
    let mut e = NewEvent::vigil(
        "vigil-test",
        kind,
        category,
        severity,
        format!("{kind} happened"),
    );
    e.camera = camera.map(str::to_owned);
    h.state.events.publish(e).unwrap();
}

fn kinds(answer: &common::Answer) -> Vec<String> {
    answer.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn each_role_reads_the_events_it_may_filtered_and_paged() {
    let h = Harness::new();
    // A failed login is an audit entry; the feed makes it a security event.
    let bad = h
        .call(
            axum::http::Method::POST,
            "/api/v1/session",
            &Auth::None,
            Some(serde_json::json!({"username": common::ADMIN, "password": "not the password"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    let mut feed = AuditFeed::new(h.state.access.clone(), h.state.events.clone()).unwrap();
    assert!(feed.pass() >= 1);
    publish(
        &h,
        "camera.connection_lost",
        Category::Camera,
        Severity::Warning,
        Some("lobby"),
    );
    publish(
        &h,
        "camera.connection_lost",
        Category::Camera,
        Severity::Warning,
        Some("gate"),
    );
    publish(
        &h,
        "system.started",
        Category::System,
        Severity::Notice,
        None,
    );
    h.state.events.flush();

    let admin = h.admin().await;
    let all = h.get("/api/v1/events", &admin).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text());
    let k = kinds(&all);
    assert_eq!(
        k[..3],
        [
            "system.started",
            "camera.connection_lost",
            "camera.connection_lost"
        ]
    );
    assert!(k.contains(&"security.login_failed".to_owned()), "{k:?}");
    let failed = &all.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "security.login_failed")
        .cloned()
        .unwrap();
    assert_eq!(failed["category"], "security");
    assert_eq!(failed["severity"], "warning");
    assert_eq!(failed["attributes"]["user"], common::ADMIN);
    assert!(
        failed["attributes"]["audit_seq"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .is_ok()
    );

    // A second pass finds nothing new: each audit entry becomes one event.
    let before = kinds(&h.get("/api/v1/events?kind=security.", &admin).await).len();
    feed.pass();
    h.state.events.flush();
    let after = kinds(&h.get("/api/v1/events?kind=security.", &admin).await);
    assert!(
        after.len() >= before
            && after
                .iter()
                .filter(|k| *k == "security.login_failed")
                .count()
                == 1,
        "{after:?}"
    );
    // ... also after a restart of the feed (the position is kept with the events).
    let mut again = AuditFeed::new(h.state.access.clone(), h.state.events.clone()).unwrap();
    again.pass();
    h.state.events.flush();
    let restarted = kinds(
        &h.get("/api/v1/events?kind=security.login_failed", &admin)
            .await,
    );
    assert_eq!(restarted.len(), 1, "{restarted:?}");

    // Filters.
    let a = h
        .get(
            "/api/v1/events?kind=camera.&severity=warning&camera=gate",
            &admin,
        )
        .await;
    assert_eq!(kinds(&a), ["camera.connection_lost"]);
    assert_eq!(a.json()["events"][0]["camera"], "gate");
    let p1 = h.get("/api/v1/events?limit=2", &admin).await;
    assert_eq!(kinds(&p1).len(), 2);
    let next = p1.json()["next_before"].as_i64().unwrap();
    let p2 = h
        .get(&format!("/api/v1/events?limit=2&before={next}"), &admin)
        .await;
    assert!(p2.json()["events"][0]["id"].as_i64().unwrap() < next);

    // A viewer of lobby: lobby's events and those of no camera, never security ones.
    let viewer = Auth::Bearer(h.token(Role::Viewer, CameraScope::only(["lobby"])));
    let v = kinds(&h.get("/api/v1/events", &viewer).await);
    assert_eq!(v, ["system.started", "camera.connection_lost"], "{v:?}");
    let v = h.get("/api/v1/events?camera=gate", &viewer).await;
    assert!(kinds(&v).is_empty());
    // An auditor: security events only.
    let auditor = Auth::Bearer(h.token(Role::Auditor, CameraScope::All));
    let a = kinds(&h.get("/api/v1/events", &auditor).await);
    assert!(
        !a.is_empty() && a.iter().all(|k| k.starts_with("security.")),
        "{a:?}"
    );
}

#[tokio::test]
async fn bad_filters_say_what_is_wrong() {
    let h = Harness::new();
    let admin = h.admin().await;
    for (q, says) in [
        ("severity=loud", "unknown severity 'loud'"),
        ("category=video", "unknown category 'video'"),
        ("source_kind=switch", "unknown source_kind 'switch'"),
        ("from=yesterday-ish", "from:"),
        ("limit=0", "limit must be 1 to 1000"),
        ("limit=5000", "limit must be 1 to 1000"),
        ("colour=red", ""),
    ] {
        let a = h.get(&format!("/api/v1/events?{q}"), &admin).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{q}: {}", a.text());
        assert!(
            a.json()["message"].as_str().unwrap().contains(says),
            "{q}: {}",
            a.text()
        );
    }
    let none = h.get("/api/v1/events", &Auth::None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    // A text filter is data, not SQL.
    let a = h
        .get("/api/v1/events?text=%27%20OR%201%3D1%20--", &admin)
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(kinds(&a).is_empty());
}

/// The live subscription over a real TLS WebSocket: new events as they are stored, filtered
/// by the subscriber's filter and permissions; pings; the session's origin; revocation ends it.
#[tokio::test]
async fn live_events_arrive_filtered_and_end_with_the_credential() {
    use common::ws::{self, closed, json, next, refusal, same_origin};
    use futures_util::SinkExt as _;
    use std::time::Duration;
    use tokio_tungstenite::tungstenite::Message;

    let h = Harness::new();
    let (addr, _) = h.serve(false).await;
    let admin = h.admin().await;
    let secs = Duration::from_secs;
    // A session's handshake must come from this server's pages.
    let e = ws::open(
        &h,
        addr,
        "/api/v1/events/live",
        &admin,
        Some("https://evil.example"),
    )
    .await
    .unwrap_err();
    assert_eq!(refusal(e), (403, "bad_origin".to_owned()));
    let mut all = ws::open(
        &h,
        addr,
        "/api/v1/events/live?severity=warning",
        &admin,
        Some(&same_origin(addr)),
    )
    .await
    .unwrap();
    let created = h
        .state
        .access
        .create_token(
            &vigil_access::NewToken {
                name: "wall".into(),
                role: Role::Viewer,
                cameras: CameraScope::only(["lobby"]),
                expires_in: None,
            },
            &vigil_access::Actor::cli(),
        )
        .unwrap();
    let mut viewer = ws::open(
        &h,
        addr,
        "/api/v1/events/live",
        &Auth::Bearer(created.token.clone()),
        None,
    )
    .await
    .unwrap();
    let bad = ws::open(
        &h,
        addr,
        "/api/v1/events/live?severity=loud",
        &admin,
        Some(&same_origin(addr)),
    )
    .await
    .unwrap_err();
    assert_eq!(refusal(bad), (400, "bad_filter".to_owned()));

    publish(
        &h,
        "system.started",
        Category::System,
        Severity::Notice,
        None,
    );
    publish(
        &h,
        "camera.connection_lost",
        Category::Camera,
        Severity::Warning,
        Some("gate"),
    );
    publish(
        &h,
        "camera.connection_lost",
        Category::Camera,
        Severity::Warning,
        Some("lobby"),
    );
    // The admin asked for warning and worse: both losses, in order, with their ids.
    let first = json(&next(&mut all, secs(5)).await);
    let second = json(&next(&mut all, secs(5)).await);
    assert_eq!(
        (first["type"].as_str(), first["camera"].as_str()),
        (Some("event"), Some("gate"))
    );
    assert_eq!(second["camera"], "lobby");
    assert!(second["id"].as_i64() > first["id"].as_i64());
    // The viewer of lobby: the server's start and lobby's loss, not gate's.
    let v1 = json(&next(&mut viewer, secs(5)).await);
    let v2 = json(&next(&mut viewer, secs(5)).await);
    assert_eq!(
        (v1["kind"].as_str(), v2["camera"].as_str()),
        (Some("system.started"), Some("lobby"))
    );
    viewer.send(Message::Text("ping".into())).await.unwrap();
    assert_eq!(
        next(&mut viewer, secs(5)).await,
        Message::Text("pong".into())
    );
    // Revoking the token ends its subscription within about a second.
    h.state
        .access
        .revoke_token(&created.id, &vigil_access::Actor::cli())
        .unwrap();
    assert_eq!(
        closed(&mut viewer, secs(4)).await,
        (4001, "token no longer valid".to_owned())
    );
}
