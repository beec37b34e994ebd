//! The live-view layout over the API (`GET`/`PUT /api/v1/account/layout`): each user reads and
//! writes only their own, it follows them to another session, API tokens and roles without
//! live view are refused, bad input (unknown kind, too many tiles, malformed or unknown camera
//! names, an oversized body, unknown fields) is refused and changes nothing, a camera outside
//! the caller's scope is refused alike whether it exists or not, a saved layout never reveals a
//! camera the user may no longer see, changes are audited, CSRF applies, and the OpenAPI
//! document describes it.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{Auth, Harness};
use serde_json::{Value, json};
use vigil_access::{AuditKind, AuditQuery, CameraScope, Role};
use vigil_web::auth::{CSRF_HEADER, SESSION_COOKIE};

const PATH: &str = "/api/v1/account/layout";

async fn put(h: &Harness, auth: &Auth, body: Value) -> common::Answer {
    h.call(Method::PUT, PATH, auth, Some(body)).await
}

async fn cameras(h: &Harness, names: &[&str]) {
    let admin = h.admin().await;
    for name in names {
        let a = h
            .post(
                "/api/v1/cameras",
                &admin,
                Some(json!({"name": name, "url": format!("rtsp://10.0.0.5/{name}")})),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    }
}

fn layout_audits(h: &Harness) -> Vec<vigil_access::AuditEntry> {
    h.state
        .access
        .audit_query(&AuditQuery {
            kind: Some(AuditKind::LayoutChanged),
            ..Default::default()
        })
        .unwrap()
}

#[tokio::test]
async fn a_layout_is_saved_per_user_and_follows_them_to_another_session() {
    let h = Harness::new();
    cameras(&h, &["lobby", "gate", "dock"]).await;
    let pw = h.user("ann", Role::Viewer, CameraScope::only(["lobby", "gate"]));
    let ann = h.login("ann", &pw).await;
    let admin = h.admin().await;

    // Never saved: the default, which the client fills in.
    let a = h.get(PATH, &ann).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(
        a.json(),
        json!({"kind": "2x2", "tiles": [], "updated": null})
    );

    let a = put(
        &h,
        &ann,
        json!({"kind": "1+5", "tiles": ["gate", null, "lobby"]}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let v = a.json();
    assert_eq!(v["kind"], "1+5");
    assert_eq!(v["tiles"], json!(["gate", null, "lobby"]));
    assert!(v["updated"].as_str().unwrap().ends_with('Z'), "{v}");

    // Another session of the same user (another browser) gets it; the admin has their own.
    let ann2 = h.login("ann", &pw).await;
    assert_eq!(h.get(PATH, &ann2).await.json(), v);
    assert_eq!(h.get(PATH, &admin).await.json()["updated"], Value::Null);
    let a = put(&h, &admin, json!({"kind": "4x4", "tiles": ["dock"]})).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(h.get(PATH, &ann).await.json(), v, "ann's is her own");

    // Every kind; fewer tiles than the kind has, all empty, and none at all are fine.
    for (kind, n) in [("1", 1), ("2x2", 4), ("3x3", 9), ("4x4", 16), ("1+5", 6)] {
        let tiles = vec![Value::Null; n];
        let a = put(&h, &ann, json!({"kind": kind, "tiles": tiles})).await;
        assert_eq!(a.status, StatusCode::OK, "{kind}: {}", a.text());
        let a = put(&h, &ann, json!({"kind": kind, "tiles": []})).await;
        assert_eq!(a.status, StatusCode::OK, "{kind}: {}", a.text());
    }

    // Audited as the user who saved it, from their address; saving the same again is not.
    let before = layout_audits(&h).len();
    put(&h, &ann, json!({"kind": "2x2", "tiles": ["lobby"]})).await;
    put(&h, &ann, json!({"kind": "2x2", "tiles": ["lobby"]})).await;
    let audits = layout_audits(&h);
    assert_eq!(audits.len(), before + 1);
    let last = audits.last().unwrap();
    assert_eq!(last.user.as_deref(), Some("ann"));
    assert_eq!(last.detail["kind"], "2x2");
    assert_eq!(last.detail["tiles"], json!(["lobby"]));
    // The audit log's API filters by the new kind.
    let a = h.get("/api/v1/audit?kind=layout_changed", &admin).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert!(a.text().contains("layout_changed"), "{}", a.text());
}

#[tokio::test]
async fn bad_layouts_are_refused_and_change_nothing() {
    let h = Harness::new();
    cameras(&h, &["lobby"]).await;
    let admin = h.admin().await;
    let good = json!({"kind": "2x2", "tiles": ["lobby", null]});
    assert_eq!(put(&h, &admin, good.clone()).await.status, StatusCode::OK);
    let saved = h.get(PATH, &admin).await.json();
    let audits = layout_audits(&h).len();
    let sixteen: Vec<Value> = vec![Value::Null; 17];
    for (body, status, code, says) in [
        (
            json!({"kind": "5x5", "tiles": []}),
            400,
            "invalid_layout",
            "unknown layout kind",
        ),
        (
            json!({"kind": "", "tiles": []}),
            400,
            "invalid_layout",
            "1, 2x2, 3x3, 4x4, 1+5",
        ),
        (
            json!({"kind": "2x2", "tiles": [null, null, null, null, null]}),
            400,
            "invalid_layout",
            "layout 2x2 has 4 tiles; 5 were given",
        ),
        (
            json!({"kind": "1", "tiles": ["lobby", "lobby"]}),
            400,
            "invalid_layout",
            "has 1 tiles",
        ),
        (
            json!({"kind": "4x4", "tiles": sixteen}),
            400,
            "invalid_layout",
            "17 were given",
        ),
        (
            json!({"kind": "2x2", "tiles": ["no such"]}),
            400,
            "invalid_camera_name",
            "tile 1",
        ),
        (
            json!({"kind": "2x2", "tiles": [null, ""]}),
            400,
            "invalid_camera_name",
            "tile 2",
        ),
        (
            json!({"kind": "2x2", "tiles": ["<img src=x onerror=alert(1)>"]}),
            400,
            "invalid_camera_name",
            "",
        ),
        (
            json!({"kind": "2x2", "tiles": [null, null, "nowhere"]}),
            400,
            "unknown_camera",
            "tile 3: there is no camera named 'nowhere'; GET /api/v1/cameras",
        ),
        (json!({"kind": "2x2", "tiles": [1]}), 400, "bad_request", ""),
        (json!({"kind": "2x2"}), 400, "bad_request", ""),
        (
            json!({"kind": "2x2", "tiles": [], "owner": "ann"}),
            400,
            "bad_request",
            "",
        ),
        (json!(["2x2"]), 400, "bad_request", ""),
    ] {
        let a = put(&h, &admin, body.clone()).await;
        assert_eq!(a.status.as_u16(), status, "{body}: {}", a.text());
        assert_eq!(a.code(), code, "{body}: {}", a.text());
        assert!(
            a.json()["message"].as_str().unwrap().contains(says),
            "{body}: {}",
            a.text()
        );
    }
    // Larger than 16 KiB: refused before it is parsed, whatever it holds.
    let big = json!({"kind": "2x2", "tiles": ["x".repeat(20 * 1024)]});
    let a = put(&h, &admin, big).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.text());
    assert_eq!(a.code(), "payload_too_large");
    assert!(a.text().contains("16 KiB"), "{}", a.text());
    // Not JSON.
    let Auth::Session { cookie, csrf } = &admin else {
        unreachable!()
    };
    let req = Request::builder()
        .method(Method::PUT)
        .uri(PATH)
        .header(header::COOKIE, format!("{SESSION_COOKIE}={cookie}"))
        .header(CSRF_HEADER, csrf)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("kind=2x2"))
        .unwrap();
    let a = h.send(req).await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", a.text());

    assert_eq!(h.get(PATH, &admin).await.json(), saved, "nothing changed");
    assert_eq!(layout_audits(&h).len(), audits, "nothing audited");
}

#[tokio::test]
async fn a_layout_never_reveals_a_camera_the_user_may_not_see() {
    let h = Harness::new();
    cameras(&h, &["lobby", "gate", "vault"]).await;
    let admin = h.admin().await;
    let pw = h.user(
        "ann",
        Role::Operator,
        CameraScope::only(["lobby", "gate", "ghost"]),
    );
    let ann = h.login("ann", &pw).await;
    // Out of scope: 403 alike for a camera that exists ("vault") and one that does not.
    for cam in ["vault", "nowhere"] {
        let a = put(&h, &ann, json!({"kind": "2x2", "tiles": ["lobby", cam]})).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{cam}: {}", a.text());
        assert_eq!(a.code(), "forbidden");
    }
    // In her scope but not a camera: unknown.
    let a = put(&h, &ann, json!({"kind": "2x2", "tiles": ["ghost"]})).await;
    assert_eq!(a.code(), "unknown_camera", "{}", a.text());

    let a = put(
        &h,
        &ann,
        json!({"kind": "3x3", "tiles": ["lobby", "gate", null, "lobby"]}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    // The admin takes "gate" out of her scope: her layout shows an empty tile there, in this
    // session and the next.
    let a = h
        .patch("/api/v1/users/ann", &admin, json!({"cameras": ["lobby"]}))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    for auth in [&ann, &h.login("ann", &pw).await] {
        let v = h.get(PATH, auth).await.json();
        assert_eq!(v["tiles"], json!(["lobby", null, null, "lobby"]), "{v}");
        assert!(!v.to_string().contains("gate"), "{v}");
    }
    // A removed camera disappears from the admin's layout too.
    put(
        &h,
        &admin,
        json!({"kind": "2x2", "tiles": ["vault", "gate"]}),
    )
    .await;
    let a = h
        .call(Method::DELETE, "/api/v1/cameras/vault", &admin, None)
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text());
    assert_eq!(
        h.get(PATH, &admin).await.json()["tiles"],
        json!([null, "gate"])
    );
}

#[tokio::test]
async fn only_signed_in_users_with_live_view_have_a_layout() {
    let h = Harness::new();
    cameras(&h, &["lobby"]).await;
    let body = json!({"kind": "1", "tiles": ["lobby"]});
    // API tokens, even an admin's: 403 session_required, and nothing is stored.
    for role in [Role::Admin, Role::Viewer] {
        let token = Auth::Bearer(h.token(role, CameraScope::All));
        for a in [
            h.get(PATH, &token).await,
            put(&h, &token, body.clone()).await,
        ] {
            assert_eq!(a.status, StatusCode::FORBIDDEN, "{role}: {}", a.text());
            assert_eq!(a.code(), "session_required", "{role}");
        }
    }
    // An auditor has no live view.
    let pw = h.user("audrey", Role::Auditor, CameraScope::All);
    let audrey = h.login("audrey", &pw).await;
    for a in [
        h.get(PATH, &audrey).await,
        put(&h, &audrey, body.clone()).await,
    ] {
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text());
        assert_eq!(a.code(), "forbidden");
    }
    // Without credentials; with a session but no CSRF token.
    assert_eq!(
        h.get(PATH, &Auth::None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        put(&h, &Auth::None, body.clone()).await.status,
        StatusCode::UNAUTHORIZED
    );
    let Auth::Session { cookie, .. } = h.admin().await else {
        unreachable!()
    };
    let a = put(&h, &Auth::SessionNoCsrf { cookie }, body).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text());
    assert_eq!(a.code(), "csrf_missing");
    assert!(layout_audits(&h).is_empty());
}

#[tokio::test]
async fn the_openapi_document_describes_the_layout() {
    let h = Harness::new();
    let spec = h.get("/api/v1/openapi.json", &Auth::None).await.json();
    let path = &spec["paths"][PATH];
    assert!(path["get"].is_object() && path["put"].is_object(), "{path}");
    for status in ["400", "403", "413"] {
        assert!(path["put"]["responses"][status].is_object(), "{status}");
    }
    let schemas = &spec["components"]["schemas"];
    assert_eq!(
        schemas["LayoutKindName"]["enum"],
        json!(["1", "2x2", "3x3", "4x4", "1+5"]),
        "{}",
        schemas["LayoutKindName"]
    );
    for name in ["LayoutRequest", "LayoutAnswer"] {
        assert!(schemas[name]["properties"]["tiles"].is_object(), "{name}");
    }
}
