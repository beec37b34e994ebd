//! Login, CSRF, logout, idle timeout and absolute lifetime (injected clock), password change.

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode, header};
use common::{ADMIN, ADMIN_PASSWORD, Auth, Harness};

#[tokio::test]
async fn login_sets_a_hardened_cookie_and_returns_csrf() {
    let h = Harness::new();
    let a = h
        .post(
            "/api/v1/session",
            &Auth::None,
            Some(serde_json::json!({"username": ADMIN, "password": ADMIN_PASSWORD})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let cookie = a.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
    for attr in [
        "__Host-vigil_session=",
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
    ] {
        assert!(cookie.contains(attr), "cookie lacks {attr}: {cookie}");
    }
    let body = a.json();
    assert_eq!(body["role"], "admin");
    assert_eq!(body["csrf_token"].as_str().unwrap().len(), 64);
    assert!(!a.text().contains(ADMIN_PASSWORD));
}

#[tokio::test]
async fn wrong_password_is_401_with_a_stable_code() {
    let h = Harness::new();
    let a = h
        .post(
            "/api/v1/session",
            &Auth::None,
            Some(serde_json::json!({"username": ADMIN, "password": "nope nope nope nope"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.code(), "invalid_credentials");
}

#[tokio::test]
async fn malformed_login_bodies_are_clear_4xx() {
    let h = Harness::new();
    for body in [
        serde_json::json!({"username": ADMIN}),
        serde_json::json!({"username": 5, "password": "x"}),
        serde_json::json!([1, 2, 3]),
        serde_json::json!({"username": ADMIN, "password": "x", "extra": true}),
    ] {
        let a = h
            .post("/api/v1/session", &Auth::None, Some(body.clone()))
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {}", a.text());
        assert_eq!(a.code(), "bad_request");
    }
}

#[tokio::test]
async fn state_changes_need_the_csrf_header() {
    let h = Harness::new();
    let Auth::Session { cookie, csrf } = h.admin().await else {
        unreachable!()
    };
    let a = h
        .call(
            Method::DELETE,
            "/api/v1/session",
            &Auth::SessionNoCsrf {
                cookie: cookie.clone(),
            },
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.code(), "csrf_missing");
    let a = h
        .call(
            Method::DELETE,
            "/api/v1/session",
            &Auth::Session {
                cookie: cookie.clone(),
                csrf: "0".repeat(64),
            },
            None,
        )
        .await;
    assert_eq!(a.code(), "csrf_mismatch");
    // Reads need no CSRF token.
    let a = h
        .call(
            Method::GET,
            "/api/v1/session",
            &Auth::SessionNoCsrf {
                cookie: cookie.clone(),
            },
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let session = Auth::Session { cookie, csrf };
    let a = h
        .call(Method::DELETE, "/api/v1/session", &session, None)
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let a = h.get("/api/v1/session", &session).await;
    assert_eq!(
        a.status,
        StatusCode::UNAUTHORIZED,
        "session must end at logout"
    );
}

#[tokio::test]
async fn idle_timeout_with_warning_and_polling_does_not_keep_alive() {
    let h = Harness::new();
    let s = h.admin().await;
    h.advance(Duration::from_secs(12 * 60));
    let a = h.get("/api/v1/session", &s).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["warn"], false, "{}", a.text());
    // Polling is not activity: the idle clock keeps running from login.
    h.advance(Duration::from_secs(2 * 60));
    let a = h.get("/api/v1/session", &s).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["warn"], true, "{}", a.text());
    assert!(a.json()["idle_remaining_secs"].as_u64().unwrap() <= 60);
    h.advance(Duration::from_secs(61));
    let a = h.get("/api/v1/session", &s).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.code(), "session_expired");
}
