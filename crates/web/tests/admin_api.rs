//! The administration API against a real access database: users, passwords and sessions,
//! API tokens, intrusion detection (through the real login route), the audit log, and who may
//! use which route.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{ADMIN, ADMIN_PASSWORD, Answer, Auth, Harness, from_peer, request};
use serde_json::{Value, json};
use vigil_access::{AccessConfig, CameraScope, IdsConfig, Role, parse_allow_list};
use vigil_web::auth::{CSRF_HEADER, SESSION_COOKIE};

async fn login_from(h: &Harness, ip: IpAddr, user: &str, password: &str) -> Answer {
    let body = json!({"username": user, "password": password});
    h.send(from_peer(
        request(Method::POST, "/api/v1/session", &Auth::None, Some(body)),
        ip,
    ))
    .await
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test]
async fn user_crud_with_a_generated_password_that_logs_in() {
    let h = Harness::new();
    let admin = h.admin().await;

    let a = h
        .post(
            "/api/v1/users",
            &admin,
            Some(json!({"username": "alice", "role": "viewer", "cameras": ["cam1", "cam2"]})),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let body = a.json();
    assert_eq!(body["user"]["role"], "viewer");
    assert_eq!(body["user"]["cameras"], json!(["cam1", "cam2"]));
    let generated = body["generated_password"].as_str().unwrap().to_owned();
    assert!(generated.len() >= 16, "generated password too short");

    // The generated password works; it is never shown again.
    let alice = h.login("alice", &generated).await;
    let me = h.get("/api/v1/session", &alice).await.json();
    assert_eq!(me["name"], "alice");
    assert_eq!(me["cameras"], json!(["cam1", "cam2"]));
    let listed = h.get("/api/v1/users", &admin).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert!(!listed.text().contains(&generated));
    let names: Vec<String> = listed
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["admin", "alice"]);
    let one = h.get("/api/v1/users/alice", &admin).await.json();
    assert_eq!(one["active_sessions"], 1);
    assert!(!one.to_string().contains("hash"));

    // An explicit password is not echoed.
    let a = h
        .post("/api/v1/users",
            &admin,
            Some(json!({"username": "dora", "role": "auditor", "password": "an-auditors-long-password-1"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    assert!(a.json()["generated_password"].is_null());
    assert!(!a.text().contains("an-auditors-long-password-1"));
    assert_eq!(a.json()["user"]["cameras"], Value::Null);

    // Refusals: duplicate (case-insensitive), bad role, bad name, weak password, unknown field.
    for (body, status, code) in [
        (
            json!({"username": "ALICE", "role": "viewer"}),
            StatusCode::CONFLICT,
            "conflict",
        ),
        (
            json!({"username": "eve", "role": "superuser"}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            json!({"username": "e ve", "role": "viewer"}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            json!({"username": "eve", "role": "viewer", "password": "short"}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            json!({"username": "eve", "role": "viewer", "cameras": [""]}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            json!({"username": "eve", "role": "viewer", "admin": true}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
    ] {
        let a = h.post("/api/v1/users", &admin, Some(body.clone())).await;
        assert_eq!(a.status, status, "{body}: {}", a.text());
        assert_eq!(a.code(), code, "{body}");
        assert!(!a.json()["message"].as_str().unwrap().is_empty());
    }
    assert_eq!(
        h.get("/api/v1/users", &admin)
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        3,
        "a refused creation must not create anything"
    );

    // PATCH: role and cameras (null = all); a refused field changes nothing.
    let a = h
        .patch(
            "/api/v1/users/alice",
            &admin,
            json!({"role": "operator", "cameras": null}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["role"], "operator");
    assert_eq!(a.json()["cameras"], Value::Null);
    let a = h
        .patch(
            "/api/v1/users/alice",
            &admin,
            json!({"role": "viewer", "cameras": ["ok", "bad\u{7}"]}),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text());
    assert_eq!(
        h.get("/api/v1/users/alice", &admin).await.json()["role"],
        "operator"
    );
    let a = h.patch("/api/v1/users/alice", &admin, json!({})).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = h
        .patch("/api/v1/users/nobody", &admin, json!({"disabled": true}))
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.code(), "not_found");

    // Disabling ends the user's sessions at once.
    let a = h
        .patch("/api/v1/users/alice", &admin, json!({"disabled": true}))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(
        h.get("/api/v1/session", &alice).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Delete; then it is gone.
    let a = h
        .call(Method::DELETE, "/api/v1/users/alice", &admin, None)
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text());
    assert_eq!(
        h.get("/api/v1/users/alice", &admin).await.status,
        StatusCode::NOT_FOUND
    );
    let a = h
        .call(Method::DELETE, "/api/v1/users/alice", &admin, None)
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);

    // Every change above is in the audit log with who did it and from where.
    let log = h
        .get("/api/v1/audit?user=admin&limit=100", &admin)
        .await
        .json();
    let kinds: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for k in ["user_created", "permission_changed", "user_removed"] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    assert!(
        !log.to_string().contains(&generated),
        "a password reached the audit log"
    );
}

#[tokio::test]
async fn own_password_change_ends_the_other_sessions_but_keeps_this_one() {
    let h = Harness::new();
    let pw = h.user("bob", Role::Viewer, CameraScope::All);
    let s1 = h.login("bob", &pw).await;
    let s2 = h.login("bob", &pw).await;
    let new_pw = "a-brand-new-secret-for-b0b-7";

    // Wrong current password: refused, counted as a failed login, nothing ends.
    let a = h
        .post(
            "/api/v1/account/password",
            &s1,
            Some(json!({"current_password": "not-bobs-password-at-all", "new_password": new_pw})),
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text());
    assert_eq!(a.code(), "wrong_password");
    assert_eq!(h.get("/api/v1/session", &s2).await.status, StatusCode::OK);
    // A weak new password is refused with the policy's message.
    let a = h
        .post(
            "/api/v1/account/password",
            &s1,
            Some(json!({"current_password": pw, "new_password": "short"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text());
    // CSRF applies.
    let Auth::Session { cookie, .. } = &s1 else {
        unreachable!()
    };
    let a = h
        .post(
            "/api/v1/account/password",
            &Auth::SessionNoCsrf {
                cookie: cookie.clone(),
            },
            Some(json!({"current_password": pw, "new_password": new_pw})),
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.code(), "csrf_missing");

    let a = h
        .post(
            "/api/v1/account/password",
            &s1,
            Some(json!({"current_password": pw, "new_password": new_pw})),
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text());
    assert_eq!(
        h.get("/api/v1/session", &s1).await.status,
        StatusCode::OK,
        "the caller's session stays"
    );
    assert_eq!(
        h.get("/api/v1/session", &s2).await.status,
        StatusCode::UNAUTHORIZED,
        "other sessions end"
    );
    let old = login_from(&h, ip("127.0.0.1"), "bob", &pw).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    h.login("bob", new_pw).await;

    // API tokens have no password to change.
    let token = Auth::Bearer(h.token(Role::Admin, CameraScope::All));
    let a = h
        .post(
            "/api/v1/account/password",
            &token,
            Some(json!({"current_password": "x", "new_password": new_pw})),
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.code(), "session_required");
    // Not logged in at all.
    let a = h
        .post(
            "/api/v1/account/password",
            &Auth::None,
            Some(json!({"current_password": "x", "new_password": new_pw})),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn admin_password_reset_ends_the_users_sessions() {
    let h = Harness::new();
    let admin = h.admin().await;
    let pw = h.user("carol", Role::Operator, CameraScope::only(["cam1"]));
    let carol = h.login("carol", &pw).await;

    let a = h
        .call(
            Method::PUT,
            "/api/v1/users/carol/password",
            &admin,
            Some(json!({})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let generated = a.json()["generated_password"].as_str().unwrap().to_owned();
    assert_eq!(a.json()["user"]["active_sessions"], 0);
    assert_eq!(
        h.get("/api/v1/session", &carol).await.status,
        StatusCode::UNAUTHORIZED
    );
    h.login("carol", &generated).await;

    // A chosen password: not echoed; policy applies; unknown users are 404.
    let chosen = "chosen-by-the-admin-for-c4r0l";
    let a = h
        .call(
            Method::PUT,
            "/api/v1/users/carol/password",
            &admin,
            Some(json!({"password": chosen})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert!(a.json()["generated_password"].is_null());
    assert!(!a.text().contains(chosen));
    h.login("carol", chosen).await;
    let a = h
        .call(
            Method::PUT,
            "/api/v1/users/carol/password",
            &admin,
            Some(json!({"password": "carol"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = h
        .call(
            Method::PUT,
            "/api/v1/users/ghost/password",
            &admin,
            Some(json!({})),
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let log = h
        .get("/api/v1/audit?kind=password_changed", &admin)
        .await
        .json();
    let entries = log["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert!(
        entries
            .iter()
            .all(|e| e["detail"]["by_admin"] == true && e["user"] == ADMIN)
    );
    assert!(!log.to_string().contains(chosen));
}

#[tokio::test]
async fn the_last_admin_cannot_be_removed_demoted_or_disabled() {
    let h = Harness::new();
    let admin = h.admin().await;
    for (method, body) in [
        (Method::DELETE, None),
        (Method::PATCH, Some(json!({"role": "viewer"}))),
        (Method::PATCH, Some(json!({"disabled": true}))),
    ] {
        let a = h
            .call(method.clone(), "/api/v1/users/admin", &admin, body.clone())
            .await;
        assert_eq!(
            a.status,
            StatusCode::CONFLICT,
            "{method} {body:?}: {}",
            a.text()
        );
        assert_eq!(a.code(), "conflict");
        assert!(
            a.json()["message"]
                .as_str()
                .unwrap()
                .contains("last enabled administrator")
        );
    }
    let me = h.get("/api/v1/users/admin", &admin).await.json();
    assert_eq!(me["role"], "admin");
    assert_eq!(me["disabled"], false);

    // With a second admin, the first may step down.
    h.user("admin2", Role::Admin, CameraScope::All);
    let a = h
        .patch("/api/v1/users/admin", &admin, json!({"role": "auditor"}))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    // The role takes effect on the next request.
    assert_eq!(
        h.get("/api/v1/users", &admin).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn tokens_are_shown_once_scoped_and_revocable() {
    let h = Harness::new();
    let admin = h.admin().await;
    let a = h
        .post("/api/v1/tokens",
            &admin,
            Some(json!({"name": "bridge", "role": "viewer", "cameras": ["cam1"], "expires_in": "30d"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let created = a.json();
    let token = created["token"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(token.starts_with("vgt_"));
    assert_eq!(created["cameras"], json!(["cam1"]));
    let expires = vigil_access::Timestamp::parse(created["expires"].as_str().unwrap()).unwrap();
    assert_eq!(
        expires.since(h.state.access.now()),
        Duration::from_secs(30 * 86_400)
    );

    // Listed without its secret.
    let list = h.get("/api/v1/tokens", &admin).await;
    assert!(!list.text().contains(&token));
    let listed = list.json();
    let t = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap();
    assert_eq!(t["state"], "active");
    assert_eq!(t["created_by"], ADMIN);

    // The token works, with its role and cameras and nothing more.
    let bearer = Auth::Bearer(token.clone());
    let me = h.get("/api/v1/session", &bearer).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text());
    assert_eq!(me.json()["kind"], "token");
    assert_eq!(me.json()["role"], "viewer");
    assert_eq!(me.json()["cameras"], json!(["cam1"]));
    for path in [
        "/api/v1/users",
        "/api/v1/tokens",
        "/api/v1/audit",
        "/api/v1/ids",
        "/api/v1/certificates",
    ] {
        let a = h.get(path, &bearer).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{path}: {}", a.text());
        assert_eq!(a.code(), "forbidden");
    }
    // Tokens need no CSRF header but are still bound by their role.
    let a = h
        .post(
            "/api/v1/tokens",
            &bearer,
            Some(json!({"name": "x", "role": "admin"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);

    // An admin token may manage tokens.
    let admin_token = Auth::Bearer(h.token(Role::Admin, CameraScope::All));
    assert_eq!(
        h.get("/api/v1/tokens", &admin_token).await.status,
        StatusCode::OK
    );

    // Bad requests say what is wrong.
    for body in [
        json!({"name": "x", "role": "viewer", "expires_in": "soon"}),
        json!({"name": "x", "role": "viewer", "expires_in": "0s"}),
        json!({"name": "x", "role": "viewer", "expires_in": "100000d"}),
        json!({"name": "", "role": "viewer"}),
        json!({"name": "x", "role": "root"}),
    ] {
        let a = h.post("/api/v1/tokens", &admin, Some(body.clone())).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {}", a.text());
    }

    // Revoked: refused at once.
    let a = h
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text());
    let a = h.get("/api/v1/session", &bearer).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.code(), "invalid_token");
    let listed = h.get("/api/v1/tokens", &admin).await.json();
    let t = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap();
    assert_eq!(t["state"], "revoked");
    let a = h
        .call(
            Method::DELETE,
            "/api/v1/tokens/0123456789abcdef",
            &admin,
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);

    // Expiry follows the injected clock.
    let a = h
        .post(
            "/api/v1/tokens",
            &admin,
            Some(json!({"name": "short", "role": "auditor", "expires_in": "1h"})),
        )
        .await;
    let short = Auth::Bearer(a.json()["token"].as_str().unwrap().to_owned());
    assert_eq!(
        h.get("/api/v1/audit/verify", &short).await.status,
        StatusCode::OK
    );
    h.advance(Duration::from_secs(3601));
    assert_eq!(
        h.get("/api/v1/audit/verify", &short).await.status,
        StatusCode::UNAUTHORIZED
    );

    // The admin session idled out meanwhile.
    let admin = h.admin().await;
    let log = h.get("/api/v1/audit?limit=1000", &admin).await;
    assert_eq!(log.status, StatusCode::OK);
    assert!(
        !log.text().contains(&token),
        "a token secret reached the audit log"
    );
    let kinds = log.text();
    assert!(kinds.contains("token_created") && kinds.contains("token_revoked"));
}

#[tokio::test]
async fn ten_failed_logins_block_the_address_before_any_hashing() {
    let h = Harness::new();
    let admin = h.admin().await;
    let attacker = ip("203.0.113.7");

    let mut failed_times = Vec::new();
    for i in 0..10 {
        let t = Instant::now();
        let a = login_from(&h, attacker, "mallory", "guess-guess-guess").await;
        failed_times.push(t.elapsed());
        assert_eq!(
            a.status,
            StatusCode::UNAUTHORIZED,
            "attempt {i}: {}",
            a.text()
        );
    }
    // Now blocked: even the right password is refused, and fast.
    let mut blocked_times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let a = login_from(&h, attacker, ADMIN, ADMIN_PASSWORD).await;
        blocked_times.push(t.elapsed());
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text());
        assert_eq!(a.code(), "address_blocked");
    }
    failed_times.sort();
    blocked_times.sort();
    let failed_median = failed_times[failed_times.len() / 2];
    let blocked_median = blocked_times[blocked_times.len() / 2];
    eprintln!(
        "failed login (Argon2) median {failed_median:?}, blocked login median {blocked_median:?}"
    );
    assert!(
        blocked_median < Duration::from_millis(10),
        "blocked login took {blocked_median:?}"
    );
    assert!(
        blocked_median * 3 < failed_median,
        "a blocked login ({blocked_median:?}) must cost far less than a hashed one ({failed_median:?})"
    );
    // Other routes from that address are refused too, even with a valid session.
    let a = h
        .send(from_peer(
            request(Method::GET, "/api/v1/session", &admin, None),
            attacker,
        ))
        .await;
    assert_eq!(a.code(), "address_blocked");
    // Another address is unaffected.
    assert_eq!(
        login_from(&h, ip("203.0.113.8"), ADMIN, ADMIN_PASSWORD)
            .await
            .status,
        StatusCode::OK
    );

    let ids = h.get("/api/v1/ids", &admin).await;
    assert_eq!(ids.status, StatusCode::OK, "{}", ids.text());
    let ids = ids.json();
    let block = &ids["blocked"][0];
    assert_eq!(block["address"], "203.0.113.7");
    assert_eq!(block["failures"], 10);
    assert!(
        block["until"].is_null(),
        "default policy blocks until restart"
    );
    assert!(block["since"].as_str().unwrap().starts_with("20"));
    assert_eq!(ids["settings"]["notification_threshold"], 10);
    let log = ids["access_log"].as_array().unwrap();
    let entry = log
        .iter()
        .find(|e| e["source"] == "203.0.113.7" && e["username"] == "mallory")
        .unwrap_or_else(|| panic!("no aggregated entry in {log:?}"));
    assert_eq!(entry["count"], 10, "ten attempts aggregate into one entry");
    assert_eq!(entry["success"], false);
    let a = h.get("/api/v1/ids?limit=0", &admin).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);

    // Unblock through the API: audited, and the address may log in again.
    for (addr, status) in [
        ("not-an-ip", StatusCode::BAD_REQUEST),
        ("203.0.113.99", StatusCode::NOT_FOUND),
        ("203.0.113.7", StatusCode::NO_CONTENT),
        ("203.0.113.7", StatusCode::NOT_FOUND),
    ] {
        let a = h
            .call(
                Method::DELETE,
                &format!("/api/v1/ids/blocks/{addr}"),
                &admin,
                None,
            )
            .await;
        assert_eq!(a.status, status, "{addr}: {}", a.text());
    }
    assert_eq!(
        login_from(&h, attacker, ADMIN, ADMIN_PASSWORD).await.status,
        StatusCode::OK
    );
    assert!(
        h.get("/api/v1/ids", &admin).await.json()["blocked"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let audit = h
        .get("/api/v1/audit?kind=address_unblocked", &admin)
        .await
        .json();
    let e = &audit["entries"][0];
    assert_eq!(e["user"], ADMIN);
    assert_eq!(e["detail"]["address"], "203.0.113.7");
    let audit = h
        .get("/api/v1/audit?kind=address_blocked", &admin)
        .await
        .json();
    assert_eq!(audit["entries"][0]["source"], "203.0.113.7");
}

#[tokio::test]
async fn allow_listed_addresses_are_never_blocked() {
    let h = Harness::with_access(AccessConfig {
        ids: IdsConfig {
            notification_threshold: 5,
            allow_list: parse_allow_list(&["198.51.100.0/24"]).unwrap(),
            ..IdsConfig::default()
        },
        ..AccessConfig::default()
    });
    let trusted = ip("198.51.100.9");
    for i in 0..8 {
        let a = login_from(&h, trusted, "operator", "wrong-wrong-wrong").await;
        assert_eq!(
            a.status,
            StatusCode::UNAUTHORIZED,
            "attempt {i}: {}",
            a.text()
        );
    }
    assert_eq!(
        login_from(&h, trusted, ADMIN, ADMIN_PASSWORD).await.status,
        StatusCode::OK
    );
    let admin = h.admin().await;
    let ids = h.get("/api/v1/ids", &admin).await.json();
    assert!(ids["blocked"].as_array().unwrap().is_empty(), "{ids}");
    assert_eq!(ids["settings"]["allow_list"], json!(["198.51.100.0/24"]));
    // Still counted (and alerted), only never blocked.
    let watched = ids["watched"].as_array().unwrap();
    assert!(
        watched
            .iter()
            .any(|w| w["address"] == "198.51.100.9" && w["failures"] == 8),
        "{ids}"
    );
    // The same attempts from outside the list block after 5.
    let outsider = ip("192.0.2.50");
    for _ in 0..5 {
        login_from(&h, outsider, "operator", "wrong-wrong-wrong").await;
    }
    assert_eq!(
        login_from(&h, outsider, ADMIN, ADMIN_PASSWORD).await.code(),
        "address_blocked"
    );
}

#[tokio::test]
async fn audit_filters_export_and_chain_verification() {
    let h = Harness::new();
    let admin = h.admin().await;
    let start = h.state.access.now();
    login_from(&h, ip("192.0.2.1"), "nobody", "bad-password-bad").await;
    h.advance(Duration::from_secs(60));
    let mid = h.state.access.now();
    for name in ["u1", "u2", "u3"] {
        let a = h
            .post(
                "/api/v1/users",
                &admin,
                Some(json!({"username": name, "role": "viewer"})),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED);
    }

    let q = |s: &str| format!("/api/v1/audit?{s}");
    let kinds = |v: &Value| -> Vec<String> {
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_owned())
            .collect()
    };
    let created = h
        .get(&q("kind=user_created&user=admin"), &admin)
        .await
        .json();
    assert_eq!(kinds(&created), ["user_created"; 3]);
    assert_eq!(created["truncated"], false);
    // Newest first.
    let seqs: Vec<u64> = created["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "{seqs:?}");
    assert_eq!(created["entries"][0]["detail"]["username"], "u3");

    let failed = h.get(&q("source=192.0.2.1"), &admin).await.json();
    assert_eq!(kinds(&failed), ["login_failed"]);
    assert_eq!(failed["entries"][0]["user"], "nobody");
    let by_user = h
        .get(&q("user=nobody&kind=login_failed"), &admin)
        .await
        .json();
    assert_eq!(by_user["entries"].as_array().unwrap().len(), 1);

    // Time range: [start, mid) holds the admin login and the failed login, not the creations.
    let range = h
        .get(&q(&format!("from={start}&to={mid}")), &admin)
        .await
        .json();
    let k = kinds(&range);
    assert!(k.contains(&"login_failed".to_owned()), "{k:?}");
    let created_in_range: Vec<&Value> = range["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "user_created")
        .map(|e| &e["detail"]["username"])
        .collect();
    assert_eq!(
        created_in_range,
        [&json!(ADMIN)],
        "only the first admin, before `mid`"
    );
    let after = h.get(&q(&format!("from={mid}")), &admin).await.json();
    assert!(kinds(&after).iter().all(|k| k == "user_created"), "{after}");

    let limited = h.get(&q("limit=2"), &admin).await.json();
    assert_eq!(limited["entries"].as_array().unwrap().len(), 2);
    assert_eq!(limited["truncated"], true);

    for bad in [
        "kind=teleport",
        "from=yesterday",
        "limit=0",
        "limit=10001",
        "color=red",
        &format!("from={mid}&to={start}"),
    ] {
        let a = h.get(&q(bad), &admin).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}: {}", a.text());
        assert_eq!(a.code(), "bad_request");
    }
    let a = h.get(&q("kind=teleport"), &admin).await;
    assert!(
        a.json()["message"]
            .as_str()
            .unwrap()
            .contains("login_failed"),
        "lists the kinds"
    );

    // Export: JSON lines, oldest first, an attachment; the filtered set equals the query's.
    let all = h.get(&q("limit=10000"), &admin).await.json();
    let total = all["entries"].as_array().unwrap().len();
    let ex = h.get("/api/v1/audit/export", &admin).await;
    assert_eq!(ex.status, StatusCode::OK);
    assert_eq!(ex.headers[header::CONTENT_TYPE], "application/x-ndjson");
    let disp = ex.headers[header::CONTENT_DISPOSITION].to_str().unwrap();
    assert!(
        disp.starts_with("attachment;") && disp.contains(".jsonl"),
        "{disp}"
    );
    let lines: Vec<Value> = ex
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), total);
    assert!(
        lines
            .windows(2)
            .all(|w| w[0]["seq"].as_u64() < w[1]["seq"].as_u64())
    );
    assert!(
        lines
            .iter()
            .all(|l| l["hash"].as_str().unwrap().len() == 64)
    );
    let ex = h
        .get("/api/v1/audit/export?kind=user_created&limit=2", &admin)
        .await;
    let lines: Vec<Value> = ex
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[1]["detail"]["username"], "u3",
        "the newest two, oldest first"
    );
    assert_eq!(
        h.get("/api/v1/audit/export?kind=nope", &admin).await.status,
        StatusCode::BAD_REQUEST
    );
    // Each export of the log is on record (the refused one is not: nothing left the server).
    let exports = h.get(&q("kind=export"), &admin).await.json();
    let exports = exports["entries"].as_array().unwrap();
    assert_eq!(exports.len(), 2, "{exports:?}");
    assert_eq!(exports[0]["detail"]["audit_log"], true);
    assert_eq!(exports[0]["detail"]["kind"], "user_created");
    assert_eq!(exports[0]["detail"]["entries"], 2);
    assert_eq!(exports[1]["detail"]["entries"], total);
    assert_eq!(exports[1]["user"], "admin");

    let v = h.get("/api/v1/audit/verify", &admin).await.json();
    assert_eq!(v["status"], "intact", "{v}");
    assert!(v["entries"].as_u64().unwrap() >= total as u64);
    assert_eq!(v["head"].as_str().unwrap().len(), 64);
    assert!(v["message"].as_str().unwrap().contains("intact"));
}

#[tokio::test]
async fn a_tampered_audit_log_is_reported_broken() {
    let h = Harness::new();
    let admin = h.admin().await;
    h.user("x1", Role::Viewer, CameraScope::All);
    // Edit an entry behind the server's back, as an attacker with file access would.
    let edited = tamper_with_audit_entry(&h);
    assert!(edited, "could not edit the database with sqlite3");
    let v = h.get("/api/v1/audit/verify", &admin).await.json();
    assert_eq!(v["status"], "broken", "{v}");
    assert_eq!(v["problem"], "modified");
    assert!(v["seq"].as_u64().unwrap() >= 1);
}

/// Rewrites the audit entries of created users with the sqlite3 tool (the test has no SQLite
/// crate).
fn tamper_with_audit_entry(h: &Harness) -> bool {
    let db = h.data_dir().join("access.db");
    std::process::Command::new("sqlite3")
        .arg(&db)
        // An attacker with file access drops the append-only triggers first.
        .arg(
            "DROP TRIGGER audit_no_update; \
             UPDATE audit SET detail = '{\"username\":\"mallory\"}' WHERE kind = 'user_created';",
        )
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[tokio::test]
async fn an_auditor_reads_the_audit_log_and_nothing_else() {
    let h = Harness::new();
    let pw = h.user("audrey", Role::Auditor, CameraScope::All);
    let auditor = h.login("audrey", &pw).await;
    for path in [
        "/api/v1/audit",
        "/api/v1/audit/verify",
        "/api/v1/audit/export",
        "/api/v1/ids",
    ] {
        let a = h.get(path, &auditor).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.text());
    }
    let refused: [(Method, &str, Option<Value>); 12] = [
        (Method::GET, "/api/v1/users", None),
        (
            Method::POST,
            "/api/v1/users",
            Some(json!({"username": "z", "role": "admin"})),
        ),
        (Method::GET, "/api/v1/users/admin", None),
        (
            Method::PATCH,
            "/api/v1/users/audrey",
            Some(json!({"role": "admin"})),
        ),
        (Method::DELETE, "/api/v1/users/admin", None),
        (Method::PUT, "/api/v1/users/admin/password", Some(json!({}))),
        (Method::GET, "/api/v1/tokens", None),
        (
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "t", "role": "admin"})),
        ),
        (Method::DELETE, "/api/v1/tokens/0123456789abcdef", None),
        (Method::DELETE, "/api/v1/ids/blocks/192.0.2.1", None),
        (Method::GET, "/api/v1/certificates", None),
        (Method::POST, "/api/v1/certificates/renew", None),
    ];
    for (method, path, body) in refused {
        let a = h.call(method.clone(), path, &auditor, body).await;
        assert_eq!(
            a.status,
            StatusCode::FORBIDDEN,
            "{method} {path}: {}",
            a.text()
        );
        assert_eq!(a.code(), "forbidden");
    }
    assert_eq!(
        h.get("/api/v1/users/audrey", &h.admin().await).await.json()["role"],
        "auditor"
    );
}

#[tokio::test]
async fn every_admin_route_needs_authentication() {
    let h = Harness::new();
    let pw = h.user("vic", Role::Viewer, CameraScope::All);
    let viewer = h.login("vic", &pw).await;
    let routes: [(Method, &str); 18] = [
        (Method::GET, "/api/v1/users"),
        (Method::POST, "/api/v1/users"),
        (Method::GET, "/api/v1/users/admin"),
        (Method::PATCH, "/api/v1/users/admin"),
        (Method::DELETE, "/api/v1/users/admin"),
        (Method::PUT, "/api/v1/users/admin/password"),
        (Method::DELETE, "/api/v1/users/admin/totp"),
        (Method::GET, "/api/v1/tokens"),
        (Method::POST, "/api/v1/tokens"),
        (Method::DELETE, "/api/v1/tokens/0123456789abcdef"),
        (Method::GET, "/api/v1/ids"),
        (Method::DELETE, "/api/v1/ids/blocks/192.0.2.1"),
        (Method::GET, "/api/v1/audit"),
        (Method::GET, "/api/v1/audit/export"),
        (Method::GET, "/api/v1/audit/verify"),
        (Method::GET, "/api/v1/certificates"),
        (Method::POST, "/api/v1/certificates/reset"),
        (Method::GET, "/api/v1/certificates/csr"),
    ];
    for (method, path) in routes {
        let body = matches!(method, Method::POST | Method::PATCH | Method::PUT).then(|| json!({}));
        let a = h
            .call(method.clone(), path, &Auth::None, body.clone())
            .await;
        assert_eq!(
            a.status,
            StatusCode::UNAUTHORIZED,
            "{method} {path}: {}",
            a.text()
        );
        assert_eq!(a.code(), "unauthenticated");
        // A viewer is authenticated but has none of these permissions.
        let a = h.call(method.clone(), path, &viewer, body).await;
        assert_eq!(
            a.status,
            StatusCode::FORBIDDEN,
            "{method} {path}: {}",
            a.text()
        );
    }
}

#[tokio::test]
async fn totp_enrolment_rechecks_the_password() {
    let h = Harness::new();
    let pw = h.user("tina", Role::Viewer, CameraScope::All);
    let tina = h.login("tina", &pw).await;
    let a = h
        .post(
            "/api/v1/account/totp",
            &tina,
            Some(json!({"current_password": "wrong-wrong-wrong"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.code(), "wrong_password");
    let a = h
        .post(
            "/api/v1/account/totp",
            &tina,
            Some(json!({"current_password": pw})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let e = a.json();
    assert!(
        e["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/Vigil:tina?secret=")
    );
    assert_eq!(e["secret_base32"].as_str().unwrap().len(), 32);
    // Not active until confirmed with a right code: login still needs only the password.
    let a = h
        .post(
            "/api/v1/account/totp/confirm",
            &tina,
            Some(json!({"code": "000000"})),
        )
        .await;
    // A guessed code may match by chance only one time in 10^6 per step window.
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text());
    h.login("tina", &pw).await;
    assert_eq!(
        h.get("/api/v1/session", &tina).await.status,
        StatusCode::OK,
        "the check kept the caller's session"
    );
}

#[tokio::test]
async fn malformed_and_oversized_bodies_are_json_errors() {
    let h = Harness::new();
    let Auth::Session { cookie, csrf } = h.admin().await else {
        unreachable!()
    };
    let raw = |body: Vec<u8>, content_type: &str| {
        Request::builder()
            .method(Method::POST)
            .uri("/api/v1/users")
            .header(header::COOKIE, format!("{SESSION_COOKIE}={cookie}"))
            .header(CSRF_HEADER, csrf.clone())
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap()
    };
    let a = h
        .send(raw(b"{\"username\": \"x\", ".to_vec(), "application/json"))
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text());
    assert_eq!(a.code(), "bad_request");
    let a = h
        .send(raw(
            b"username=x".to_vec(),
            "application/x-www-form-urlencoded",
        ))
        .await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(a.code(), "unsupported_media_type");
    let mut big = b"{\"username\": \"".to_vec();
    big.extend(std::iter::repeat_n(b'a', vigil_web::MAX_BODY_BYTES + 16));
    big.extend(b"\", \"role\": \"viewer\"}");
    let a = h.send(raw(big, "application/json")).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.text());
    assert_eq!(a.code(), "payload_too_large");
    // Nothing was created by any of them.
    let users = h.get("/api/v1/users", &h.admin().await).await.json();
    assert_eq!(users.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_openapi_description_lists_the_admin_routes() {
    let h = Harness::new();
    let spec = h.get("/api/v1/openapi.json", &Auth::None).await.json();
    let paths = &spec["paths"];
    for (path, methods) in [
        ("/api/v1/users", &["get", "post"][..]),
        ("/api/v1/users/{username}", &["get", "patch", "delete"]),
        ("/api/v1/users/{username}/password", &["put"]),
        ("/api/v1/users/{username}/totp", &["delete"]),
        ("/api/v1/account/password", &["post"]),
        ("/api/v1/account/totp", &["post"]),
        ("/api/v1/account/totp/confirm", &["post"]),
        ("/api/v1/tokens", &["get", "post"]),
        ("/api/v1/tokens/{id}", &["delete"]),
        ("/api/v1/ids", &["get"]),
        ("/api/v1/ids/blocks/{addr}", &["delete"]),
        ("/api/v1/audit", &["get"]),
        ("/api/v1/audit/export", &["get"]),
        ("/api/v1/audit/verify", &["get"]),
        ("/api/v1/certificates", &["get"]),
        ("/api/v1/certificates/ca.pem", &["get"]),
        ("/api/v1/certificates/import", &["post"]),
        ("/api/v1/certificates/csr", &["get", "post"]),
        ("/api/v1/certificates/install", &["post"]),
        ("/api/v1/certificates/reset", &["post"]),
        ("/api/v1/certificates/renew", &["post"]),
        ("/api/v1/certificates/sign-csr", &["post"]),
    ] {
        for m in methods {
            assert!(
                paths[path][m].is_object(),
                "{m} {path} missing from the OpenAPI description"
            );
        }
    }
    // The public CA download says so: an empty security requirement.
    assert_eq!(
        paths["/api/v1/certificates/ca.pem"]["get"]["security"],
        json!([{}])
    );
    assert!(spec["components"]["schemas"]["UserView"].is_object());
}
