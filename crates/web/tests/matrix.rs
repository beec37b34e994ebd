//! The role × route matrix: every route of the served OpenAPI description, called with no
//! credentials and as every role (by session and by API token), must answer exactly as the
//! table below says. A route missing from the table fails the test, so a new route cannot be
//! added without deciding who may call it; a route the table lists but the API lacks fails too.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use axum::http::{Method, StatusCode};
use common::{Auth, Harness};
use vigil_access::{CameraScope, Role};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Allowed {
    /// Anyone, without credentials (login, the API description, the CA certificate).
    Public,
    /// Any authenticated caller (own session).
    Authenticated,
    /// A logged-in user (not an API token): own account.
    UserSession,
    /// These roles; camera routes also need the camera in the caller's scope.
    Roles(&'static [Role]),
    /// A logged-in user (not an API token) with one of these roles: own account data.
    UserRoles(&'static [Role]),
    /// Authenticated by the request's own HMAC signature (signed analytics posts): sessions
    /// and tokens count for nothing, and every caller without a valid signature gets 401
    /// `bad_signature`.
    Signed,
}

use Allowed::*;
use Role::{Admin, Auditor, EventSource, Operator, Viewer};

const LIVE: &[Role] = &[Admin, Operator, Viewer];
const EXPORT: &[Role] = &[Admin, Operator];
const ADMIN: &[Role] = &[Admin];
const AUDIT: &[Role] = &[Admin, Auditor];
/// Every role but event_source reads some events (security ones with ViewAudit, the others
/// with Playback).
const EVENTS: &[Role] = &[Admin, Operator, Viewer, Auditor];
/// Post analytics events (WriteEvents): senders' tokens and admins.
const WRITE_EVENTS: &[Role] = &[Admin, EventSource];
/// Acknowledge and close alarms, make and delete bookmarks (HandleAlarms).
const HANDLE: &[Role] = &[Admin, Operator];

/// The decision table. Keys are (method, OpenAPI path).
fn table() -> BTreeMap<(&'static str, &'static str), Allowed> {
    BTreeMap::from([
        (("POST", "/api/v1/session"), Public),
        (("GET", "/api/v1/session"), Authenticated),
        (("DELETE", "/api/v1/session"), Authenticated),
        (("POST", "/api/v1/session/activity"), Authenticated),
        (("GET", "/api/v1/connection"), Public),
        (("GET", "/api/v1/cameras"), Roles(LIVE)),
        (("POST", "/api/v1/cameras"), Roles(ADMIN)),
        (("GET", "/api/v1/cameras/{camera}"), Roles(LIVE)),
        (("PATCH", "/api/v1/cameras/{camera}"), Roles(ADMIN)),
        (("DELETE", "/api/v1/cameras/{camera}"), Roles(ADMIN)),
        (
            ("POST", "/api/v1/cameras/{camera}/accept-device"),
            Roles(ADMIN),
        ),
        (
            ("POST", "/api/v1/cameras/{camera}/install-certificate"),
            Roles(ADMIN),
        ),
        (("POST", "/api/v1/cameras/{camera}/password"), Roles(ADMIN)),
        (("POST", "/api/v1/cameras/{camera}/assign"), Roles(ADMIN)),
        (("POST", "/api/v1/onvif/discover"), Roles(ADMIN)),
        (("POST", "/api/v1/onvif/cameras"), Roles(ADMIN)),
        (("POST", "/api/v1/cameras/rotate-passwords"), Roles(ADMIN)),
        (("GET", "/api/v1/cameras/{camera}/recordings"), Roles(LIVE)),
        (("GET", "/api/v1/cameras/{camera}/playback"), Roles(LIVE)),
        (("GET", "/api/v1/cameras/{camera}/live"), Roles(LIVE)),
        (("GET", "/api/v1/cameras/{camera}/export"), Roles(EXPORT)),
        (("POST", "/api/v1/cameras/{camera}/verify"), Roles(EXPORT)),
        (("GET", "/api/v1/cameras/{camera}/locks"), Roles(LIVE)),
        (("POST", "/api/v1/cameras/{camera}/locks"), Roles(EXPORT)),
        (
            ("DELETE", "/api/v1/cameras/{camera}/locks/{lock}"),
            Roles(ADMIN),
        ),
        (("GET", "/api/v1/users"), Roles(ADMIN)),
        (("POST", "/api/v1/users"), Roles(ADMIN)),
        (("GET", "/api/v1/users/{username}"), Roles(ADMIN)),
        (("PATCH", "/api/v1/users/{username}"), Roles(ADMIN)),
        (("DELETE", "/api/v1/users/{username}"), Roles(ADMIN)),
        (("PUT", "/api/v1/users/{username}/password"), Roles(ADMIN)),
        (("DELETE", "/api/v1/users/{username}/totp"), Roles(ADMIN)),
        (("POST", "/api/v1/account/password"), UserSession),
        (("POST", "/api/v1/account/totp"), UserSession),
        (("POST", "/api/v1/account/totp/confirm"), UserSession),
        (("GET", "/api/v1/account/layout"), UserRoles(LIVE)),
        (("PUT", "/api/v1/account/layout"), UserRoles(LIVE)),
        (("GET", "/api/v1/tokens"), Roles(ADMIN)),
        (("POST", "/api/v1/tokens"), Roles(ADMIN)),
        (("DELETE", "/api/v1/tokens/{id}"), Roles(ADMIN)),
        (("GET", "/api/v1/ids"), Roles(AUDIT)),
        (("DELETE", "/api/v1/ids/blocks/{addr}"), Roles(ADMIN)),
        (("GET", "/api/v1/audit"), Roles(AUDIT)),
        (("GET", "/api/v1/audit/export"), Roles(AUDIT)),
        (("GET", "/api/v1/audit/verify"), Roles(AUDIT)),
        (("GET", "/api/v1/events"), Roles(EVENTS)),
        (("GET", "/api/v1/events/live"), Roles(EVENTS)),
        (("POST", "/api/v1/events"), Roles(WRITE_EVENTS)),
        (("POST", "/api/v1/events/webhook/{sender}"), Signed),
        (("GET", "/api/v1/alarms"), Roles(LIVE)),
        (("GET", "/api/v1/alarms/{alarm}"), Roles(LIVE)),
        (
            ("POST", "/api/v1/alarms/{alarm}/acknowledge"),
            Roles(HANDLE),
        ),
        (("POST", "/api/v1/alarms/{alarm}/close"), Roles(HANDLE)),
        (("GET", "/api/v1/bookmarks"), Roles(LIVE)),
        (("POST", "/api/v1/bookmarks"), Roles(HANDLE)),
        (("DELETE", "/api/v1/bookmarks/{bookmark}"), Roles(HANDLE)),
        (("GET", "/api/v1/rules"), Roles(ADMIN)),
        (("PUT", "/api/v1/rules"), Roles(ADMIN)),
        (("GET", "/api/v1/rules/{rule}"), Roles(ADMIN)),
        (("POST", "/api/v1/rules/test"), Roles(ADMIN)),
        (("GET", "/api/v1/certificates"), Roles(ADMIN)),
        (("GET", "/api/v1/certificates/ca.pem"), Public),
        (("GET", "/api/v1/certificates/csr"), Roles(ADMIN)),
        (("POST", "/api/v1/certificates/csr"), Roles(ADMIN)),
        (("POST", "/api/v1/certificates/import"), Roles(ADMIN)),
        (("POST", "/api/v1/certificates/install"), Roles(ADMIN)),
        (("POST", "/api/v1/certificates/reset"), Roles(ADMIN)),
        (("POST", "/api/v1/certificates/renew"), Roles(ADMIN)),
        (("POST", "/api/v1/certificates/sign-csr"), Roles(ADMIN)),
        (("GET", "/api/v1/certificates/camera-cas"), Roles(ADMIN)),
        (("POST", "/api/v1/certificates/camera-cas"), Roles(ADMIN)),
        (
            ("DELETE", "/api/v1/certificates/camera-cas/{fingerprint}"),
            Roles(ADMIN),
        ),
        (("GET", "/api/v1/servers"), Roles(ADMIN)),
        (("POST", "/api/v1/servers/tokens"), Roles(ADMIN)),
        (("DELETE", "/api/v1/servers/{server}"), Roles(ADMIN)),
        (("GET", "/api/v1/settings"), Roles(ADMIN)),
        (("PATCH", "/api/v1/settings"), Roles(ADMIN)),
        (("POST", "/api/v1/settings/apply"), Roles(ADMIN)),
        (("POST", "/api/v1/settings/restore"), Roles(ADMIN)),
        (("POST", "/api/v1/settings/factory"), Roles(ADMIN)),
    ])
}

/// Routes outside the OpenAPI description that are public by design.
const UNDOCUMENTED_PUBLIC: &[(&str, &str)] = &[("GET", "/api/v1/openapi.json")];

/// Concrete values for path parameters. `cam1` is in every scoped caller's scope except the
/// "stranger" viewer's, who may only use `elsewhere`.
fn fill(path: &str) -> String {
    path.replace("{camera}", "cam1")
        .replace("{username}", "nobody-here")
        .replace("{id}", "tok_doesnotexist")
        .replace("{addr}", "192.0.2.7")
        .replace("{alarm}", "999999")
        .replace("{bookmark}", "999999")
        .replace("{lock}", "999999")
        .replace("{rule}", "no-such-rule")
        .replace("{sender}", "no-such-sender")
        .replace("{fingerprint}", "00")
}

fn method(m: &str) -> Method {
    Method::from_bytes(m.as_bytes()).unwrap()
}

/// A body that is well-formed JSON but meaningless, so that a handler parsing the body
/// before checking the caller would answer 400 instead of 401/403 and fail the test.
fn body_for(m: &str) -> Option<serde_json::Value> {
    (m != "GET" && m != "DELETE").then(|| serde_json::json!({}))
}

struct Caller {
    label: String,
    auth: Auth,
    role: Role,
    /// Whether `cam1` is in scope.
    sees_cam1: bool,
    is_token: bool,
}

async fn callers(h: &Harness) -> Vec<Caller> {
    let mut out = Vec::new();
    let scoped = || CameraScope::only(["cam1"]);
    for role in Role::ALL {
        let name = format!("m-{role}");
        let pw = h.user(&name, role, scoped());
        out.push(Caller {
            label: format!("{role} session"),
            auth: h.login(&name, &pw).await,
            role,
            sees_cam1: true,
            is_token: false,
        });
        out.push(Caller {
            label: format!("{role} token"),
            auth: Auth::Bearer(h.token(role, scoped())),
            role,
            sees_cam1: true,
            is_token: true,
        });
    }
    let pw = h.user("m-stranger", Role::Viewer, CameraScope::only(["elsewhere"]));
    out.push(Caller {
        label: "viewer of another camera".into(),
        auth: h.login("m-stranger", &pw).await,
        role: Role::Viewer,
        sees_cam1: false,
        is_token: false,
    });
    out
}

fn spec_routes(spec: &serde_json::Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for m in ["get", "post", "put", "patch", "delete"] {
            if item.get(m).is_some() {
                out.insert((m.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn every_route_denies_by_default_and_allows_exactly_the_table() {
    let h = Harness::new();
    let spec = h
        .call(Method::GET, "/api/v1/openapi.json", &Auth::None, None)
        .await;
    assert_eq!(spec.status, StatusCode::OK);
    let spec = spec.json();
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3.1"),
        "OpenAPI 3.1 expected"
    );
    let routes = spec_routes(&spec);
    let table = table();
    let listed: BTreeSet<(String, String)> = table
        .keys()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let unclassified: Vec<_> = routes.difference(&listed).collect();
    assert!(
        unclassified.is_empty(),
        "routes without a decision in the matrix table: {unclassified:?}"
    );
    let missing: Vec<_> = listed.difference(&routes).collect();
    assert!(
        missing.is_empty(),
        "the table lists routes the API does not serve: {missing:?}"
    );

    let callers = callers(&h).await;
    let mut failures = Vec::new();
    let mut checked = 0;
    for ((m, path), allowed) in &table {
        let uri = fill(path);
        // No credentials at all.
        let a = h.call(method(m), &uri, &Auth::None, body_for(m)).await;
        checked += 1;
        match allowed {
            Public => {
                if a.status == StatusCode::UNAUTHORIZED || a.status == StatusCode::FORBIDDEN {
                    failures.push(format!("{m} {path} is public but refused: {}", a.status));
                }
            }
            Signed => {
                if a.status != StatusCode::UNAUTHORIZED || a.code() != "bad_signature" {
                    failures.push(format!(
                        "{m} {path} unsigned: expected 401 bad_signature, got {} {}",
                        a.status,
                        a.text()
                    ));
                }
            }
            _ => {
                if a.status != StatusCode::UNAUTHORIZED {
                    failures.push(format!(
                        "{m} {path} without credentials: expected 401, got {} {}",
                        a.status,
                        a.text()
                    ));
                }
            }
        }
        for c in &callers {
            // Logging out would end the session the rest of the matrix uses.
            if *m == "DELETE" && *path == "/api/v1/session" && !c.is_token {
                continue;
            }
            if let Signed = allowed {
                let a = h.call(method(m), &uri, &c.auth, body_for(m)).await;
                checked += 1;
                if a.status != StatusCode::UNAUTHORIZED || a.code() != "bad_signature" {
                    failures.push(format!(
                        "{m} {path} as {} unsigned: expected 401 bad_signature, got {} {}",
                        c.label,
                        a.status,
                        a.text()
                    ));
                }
                continue;
            }
            let want_allowed = match allowed {
                Public | Authenticated => true,
                Signed => unreachable!("checked above"),
                UserSession => !c.is_token,
                Roles(roles) => {
                    roles.contains(&c.role) && (!path.contains("{camera}") || c.sees_cam1)
                }
                UserRoles(roles) => !c.is_token && roles.contains(&c.role),
            };
            let a = h.call(method(m), &uri, &c.auth, body_for(m)).await;
            checked += 1;
            let denied = a.status == StatusCode::FORBIDDEN || a.status == StatusCode::UNAUTHORIZED;
            if want_allowed && denied {
                failures.push(format!(
                    "{m} {path} as {}: expected access, got {} {}",
                    c.label,
                    a.status,
                    a.text()
                ));
            }
            if !want_allowed && a.status != StatusCode::FORBIDDEN {
                failures.push(format!(
                    "{m} {path} as {}: expected 403, got {} {}",
                    c.label,
                    a.status,
                    a.text()
                ));
            }
            if denied && !a.body.is_empty() {
                let code = a.code();
                if code.is_empty() {
                    failures.push(format!("{m} {path} as {}: error without a code", c.label));
                }
            }
        }
    }
    for (m, path) in UNDOCUMENTED_PUBLIC {
        let a = h.call(method(m), path, &Auth::None, None).await;
        assert_eq!(a.status, StatusCode::OK, "{m} {path}");
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json_errors() {
    let h = Harness::new();
    let a = h
        .call(Method::GET, "/api/v1/no-such-thing", &Auth::None, None)
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.code(), "not_found");
    let a = h
        .call(Method::PUT, "/api/v1/session", &Auth::None, None)
        .await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.code(), "method_not_allowed");
}
