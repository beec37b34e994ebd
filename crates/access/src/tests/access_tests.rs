use super::both_backends;
use super::*;
use sha2::{Digest as _, Sha256};

const IP: &str = "192.0.2.10";

fn admin_fixture() -> Fixture {
    let f = Fixture::new();
    f.add_user("alice", Role::Operator, CameraScope::only(["cam-1"]));
    f
}

#[test]
fn access_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Access>();
}

both_backends! {
fn database_file_is_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let f = Fixture::new();
    if f.is_sqlite() {
        let mode = std::fs::metadata(f.db_path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
}

both_backends! {
fn first_admin_without_password_gets_a_generated_one() {
    let f = Fixture::new();
    let pw = f
        .access
        .create_first_admin("admin", None, &Actor::cli())
        .unwrap()
        .unwrap();
    assert_eq!(check_password_policy(&pw, "admin"), Ok(()));
    let s = f
        .access
        .login(
            &Credentials {
                username: "admin",
                password: &pw,
                totp: None,
            },
            ip(IP),
        )
        .unwrap();
    assert_eq!(s.principal.role(), Role::Admin);
    assert!(matches!(
        f.access.create_first_admin("admin2", None, &Actor::cli()),
        Err(AccessError::AlreadyInitialized)
    ));
}
}

both_backends! {
fn first_admin_with_weak_password_is_refused() {
    let f = Fixture::new();
    assert!(matches!(
        f.access
            .create_first_admin("admin", Some("admin"), &Actor::cli()),
        Err(AccessError::Password(PasswordRejected::TooShort { .. }))
    ));
    assert!(matches!(
        f.access
            .create_first_admin("admin", Some("password123456"), &Actor::cli()),
        Err(AccessError::Password(PasswordRejected::Common))
    ));
    assert!(
        f.access
            .create_first_admin("admin", Some(GOOD_PW), &Actor::cli())
            .unwrap()
            .is_none()
    );
}
}

both_backends! {
fn usernames_are_validated_and_unique() {
    let f = admin_fixture();
    for bad in ["", "-x", "a b", "ä", &"a".repeat(65), "x;drop"] {
        let r = f.access.create_user(
            &NewUser {
                username: bad.into(),
                role: Role::Viewer,
                cameras: CameraScope::All,
                password: None,
            },
            &Actor::cli(),
        );
        assert!(matches!(r, Err(AccessError::InvalidUsername(_))), "{bad:?}");
    }
    let dup = f.access.create_user(
        &NewUser {
            username: "Alice".into(),
            role: Role::Viewer,
            cameras: CameraScope::All,
            password: None,
        },
        &Actor::cli(),
    );
    assert!(matches!(dup, Err(AccessError::UserExists(_))));
}
}

both_backends! {
fn login_with_right_password_gives_a_session() {
    let f = admin_fixture();
    let s = f.login("alice", IP).unwrap();
    assert_eq!(s.session_id.len(), 64);
    assert_eq!(s.idle_expires, T0.plus(mins(15)));
    assert_eq!(s.absolute_expires, T0.plus(mins(12 * 60)));
    let info = f.access.validate_session(&s.session_id).unwrap();
    assert_eq!(info.principal, s.principal);
    assert_eq!(info.principal.audit_name(), "alice");
    assert_eq!(info.csrf_token(), s.csrf_token);
}
}

both_backends! {
fn wrong_password_and_unknown_user_fail_alike() {
    let f = admin_fixture();
    assert!(matches!(
        f.fail_login("alice", IP),
        LoginError::InvalidCredentials
    ));
    assert!(matches!(
        f.fail_login("nobody", IP),
        LoginError::InvalidCredentials
    ));
    assert!(matches!(
        f.fail_login("bad name!", IP),
        LoginError::InvalidCredentials
    ));
    assert_eq!(
        f.fail_login("alice", IP).to_string(),
        f.fail_login("nobody", IP).to_string()
    );
}
}

both_backends! {
fn only_the_hash_of_the_session_id_is_stored() {
    let f = admin_fixture();
    let s = f.login("alice", IP).unwrap();
    let conn = f.raw();
    let stored: Vec<u8> = conn
        .query_row("SELECT id_hash FROM sessions", (), |r| r.get(0))
        .unwrap();
    assert_eq!(stored, Sha256::digest(s.session_id.as_bytes()).to_vec());
    if f.is_sqlite() {
        let bytes = std::fs::read(f.db_path()).unwrap();
        let wal = std::fs::read(f.db_path().with_extension("db-wal")).unwrap_or_default();
        for hay in [&bytes, &wal] {
            assert!(
                !hay.windows(64).any(|w| w == s.session_id.as_bytes()),
                "session id found in the database files"
            );
        }
    }
}
}

both_backends! {
fn session_idle_timeout() {
    let f = admin_fixture();
    let s = f.login("alice", IP).unwrap();
    f.advance(mins(14));
    let info = f.access.validate_session(&s.session_id).unwrap();
    assert_eq!(
        info.idle_remaining,
        mins(15),
        "activity restarts the idle timer"
    );
    f.advance(mins(14));
    assert!(f.access.validate_session(&s.session_id).is_ok());
    f.advance(mins(15));
    assert!(matches!(
        f.access.validate_session(&s.session_id),
        Err(SessionError::IdleExpired(15))
    ));
    // Gone for good, and audited.
    assert!(matches!(
        f.access.validate_session(&s.session_id),
        Err(SessionError::Unknown)
    ));
    let expired = f
        .access
        .audit_query(&AuditQuery {
            kind: Some(AuditKind::SessionExpired),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].detail["reason"], "idle");
}
}

both_backends! {
fn configurable_idle_timeout() {
    let f = Fixture::with(AccessConfig {
        session: SessionConfig {
            idle_timeout: mins(5),
            ..SessionConfig::default()
        },
        ..AccessConfig::default()
    });
    f.add_user("alice", Role::Viewer, CameraScope::All);
    let s = f.login("alice", IP).unwrap();
    f.advance(mins(5));
    assert!(matches!(
        f.access.validate_session(&s.session_id),
        Err(SessionError::IdleExpired(5))
    ));
}
}

both_backends! {
fn session_absolute_lifetime() {
    let f = admin_fixture();
    let s = f.login("alice", IP).unwrap();
    for _ in 0..71 {
        f.advance(mins(10));
        f.access.validate_session(&s.session_id).unwrap();
    }
    // 11 h 50 min of constant activity; 10 more minutes reach the 12-hour limit.
    f.advance(mins(10));
    assert!(matches!(
        f.access.validate_session(&s.session_id),
        Err(SessionError::AbsoluteExpired)
    ));
}
}

both_backends! {
fn session_status_reports_remaining_time_without_extending_it() {
    let f = admin_fixture();
    let s = f.login("alice", IP).unwrap();
    f.advance(mins(10));
    let st = f.access.session_status(&s.session_id).unwrap();
    assert_eq!(st.idle_remaining, mins(5));
    assert_eq!(st.idle_remaining_secs(), 300);
    assert!(!st.warn);
    f.advance(mins(4));
    let st = f.access.session_status(&s.session_id).unwrap();
    assert_eq!(st.idle_remaining, mins(1));
    assert!(st.warn, "less than the 2-minute warning time is left");
    f.advance(mins(1));
    assert!(
        f.access.session_status(&s.session_id).is_err(),
        "polling did not keep it alive"
    );
}
}

both_backends! {
fn logout_ends_the_session() {
    let f = admin_fixture();
    let s = f.login("alice", IP).unwrap();
    f.access.logout(&s.session_id).unwrap();
    assert!(matches!(
        f.access.validate_session(&s.session_id),
        Err(SessionError::Unknown)
    ));
    // Logging out twice or with garbage is harmless.
    f.access.logout(&s.session_id).unwrap();
    f.access.logout("garbage").unwrap();
}
}

both_backends! {
fn malformed_session_ids_are_unknown() {
    let f = admin_fixture();
    let s = f.login("alice", IP).unwrap();
    for bad in [
        "",
        "x",
        &s.session_id.to_uppercase(),
        &format!("{}0", s.session_id),
        &"0".repeat(64),
    ] {
        assert!(
            matches!(f.access.validate_session(bad), Err(SessionError::Unknown)),
            "{bad}"
        );
    }
}
}

both_backends! {
fn csrf_mismatch_is_rejected() {
    let f = admin_fixture();
    let s = f.login("alice", IP).unwrap();
    assert!(f.access.verify_csrf(&s.session_id, &s.csrf_token).is_ok());
    assert!(matches!(
        f.access.verify_csrf(&s.session_id, "0123"),
        Err(SessionError::CsrfMismatch)
    ));
    assert!(matches!(
        f.access.verify_csrf(&s.session_id, ""),
        Err(SessionError::CsrfMismatch)
    ));
    // Another session's token does not fit.
    let other = f.login("alice", IP).unwrap();
    assert!(
        f.access
            .verify_csrf(&s.session_id, &other.csrf_token)
            .is_err()
    );
}
}

both_backends! {
fn password_change_ends_other_sessions_but_not_the_current_one() {
    let f = admin_fixture();
    let current = f.login("alice", IP).unwrap();
    let other1 = f.login("alice", "192.0.2.11").unwrap();
    let other2 = f.login("alice", "192.0.2.12").unwrap();
    f.access
        .change_password(
            "alice",
            GOOD_PW,
            "new-Passphrase-of-2025",
            Some(&current.session_id),
            ip(IP),
        )
        .unwrap();
    assert!(f.access.validate_session(&current.session_id).is_ok());
    assert!(f.access.validate_session(&other1.session_id).is_err());
    assert!(f.access.validate_session(&other2.session_id).is_err());
    // The new password works, the old does not.
    assert!(f.login("alice", IP).is_err());
    assert!(
        f.access
            .login(
                &Credentials {
                    username: "alice",
                    password: "new-Passphrase-of-2025",
                    totp: None
                },
                ip(IP)
            )
            .is_ok()
    );
}
}

both_backends! {
fn password_change_needs_the_current_password_and_a_good_new_one() {
    let f = admin_fixture();
    let s = f.login("alice", IP).unwrap();
    assert!(matches!(
        f.access.change_password(
            "alice",
            "wrong-current-pw",
            "new-Passphrase-of-2025",
            Some(&s.session_id),
            ip(IP)
        ),
        Err(LoginError::InvalidCredentials)
    ));
    assert!(matches!(
        f.access
            .change_password("alice", GOOD_PW, "short", Some(&s.session_id), ip(IP)),
        Err(LoginError::Internal(AccessError::Password(
            PasswordRejected::TooShort { .. }
        )))
    ));
    assert!(f.access.validate_session(&s.session_id).is_ok());
}
}

both_backends! {
fn admin_password_reset_ends_all_sessions() {
    let f = admin_fixture();
    let s = f.login("alice", IP).unwrap();
    let generated = f
        .access
        .set_password("alice", None, &Actor::cli())
        .unwrap()
        .unwrap();
    assert!(f.access.validate_session(&s.session_id).is_err());
    assert!(
        f.access
            .login(
                &Credentials {
                    username: "alice",
                    password: &generated,
                    totp: None
                },
                ip(IP)
            )
            .is_ok()
    );
}
}

both_backends! {
fn role_and_camera_changes_apply_to_live_sessions() {
    let f = admin_fixture();
    let s = f.login("alice", IP).unwrap();
    let p = f.access.validate_session(&s.session_id).unwrap().principal;
    assert!(p.authorize(Permission::Export, Some("cam-1")).is_ok());
    assert!(p.authorize(Permission::Export, Some("cam-2")).is_err());
    f.access
        .set_role("alice", Role::Viewer, &Actor::cli())
        .unwrap();
    f.access
        .set_cameras("alice", &CameraScope::only(["cam-2"]), &Actor::cli())
        .unwrap();
    let p = f.access.validate_session(&s.session_id).unwrap().principal;
    assert!(p.authorize(Permission::Export, Some("cam-2")).is_err());
    assert!(p.authorize(Permission::ViewLive, Some("cam-2")).is_ok());
    assert!(p.authorize(Permission::ViewLive, Some("cam-1")).is_err());
    let changes = f
        .access
        .audit_query(&AuditQuery {
            kind: Some(AuditKind::PermissionChanged),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(changes.len(), 2);
}
}

both_backends! {
fn disabled_user_cannot_log_in_and_loses_sessions() {
    let f = admin_fixture();
    f.add_user("root", Role::Admin, CameraScope::All);
    let s = f.login("alice", IP).unwrap();
    f.access.set_disabled("alice", true, &Actor::cli()).unwrap();
    assert!(f.access.validate_session(&s.session_id).is_err());
    assert!(matches!(
        f.login("alice", IP),
        Err(LoginError::InvalidCredentials)
    ));
    f.access
        .set_disabled("alice", false, &Actor::cli())
        .unwrap();
    assert!(f.login("alice", IP).is_ok());
}
}

both_backends! {
fn last_admin_cannot_be_removed_demoted_or_disabled() {
    let f = Fixture::new();
    f.add_user("root", Role::Admin, CameraScope::All);
    assert!(matches!(
        f.access.remove_user("root", &Actor::cli()),
        Err(AccessError::LastAdmin(_))
    ));
    assert!(matches!(
        f.access.set_role("root", Role::Viewer, &Actor::cli()),
        Err(AccessError::LastAdmin(_))
    ));
    assert!(matches!(
        f.access.set_disabled("root", true, &Actor::cli()),
        Err(AccessError::LastAdmin(_))
    ));
    f.add_user("root2", Role::Admin, CameraScope::All);
    f.access.remove_user("root", &Actor::cli()).unwrap();
    assert!(f.access.get_user("root").unwrap().is_none());
}
}

both_backends! {
fn a_session_ended_by_another_process_is_refused_within_the_lookup_ttl() {
    let f = admin_fixture();
    let s = f.login("alice", IP).unwrap();
    // Cached by this lookup; the touch of the idle timer is not due within the second.
    assert!(f.access.validate_session(&s.session_id).is_ok());
    // Another process (`vigil user disable` on the command line) ends it through its own
    // connection: this Access cannot know before its cached lookup runs out.
    f.raw().execute("DELETE FROM sessions", ()).unwrap();
    f.advance(Duration::from_millis(crate::LOOKUP_TTL_MS as u64));
    assert!(matches!(
        f.access.validate_session(&s.session_id),
        Err(SessionError::Unknown)
    ));
    assert!(matches!(
        f.access.session_status(&s.session_id),
        Err(SessionError::Unknown)
    ));
}
}

both_backends! {
fn a_cached_session_still_runs_out_on_time_and_is_audited() {
    let f = admin_fixture();
    let s = f.login("alice", IP).unwrap();
    // Cached half a second before the idle timeout (the status does not restart the timer)...
    f.advance(mins(15) - Duration::from_millis(500));
    assert!(f.access.session_status(&s.session_id).is_ok());
    // ...so the next lookup falls within the cached entry's TTL, but past the timeout.
    f.advance(Duration::from_millis(600));
    assert!(matches!(
        f.access.session_status(&s.session_id),
        Err(SessionError::IdleExpired(15))
    ));
    let expired = f
        .access
        .audit_query(&AuditQuery {
            kind: Some(AuditKind::SessionExpired),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(expired.len(), 1);
}
}

both_backends! {
fn removing_a_user_ends_their_sessions() {
    let f = admin_fixture();
    let s = f.login("alice", IP).unwrap();
    f.access.remove_user("alice", &Actor::cli()).unwrap();
    assert!(matches!(
        f.access.validate_session(&s.session_id),
        Err(SessionError::Unknown)
    ));
    assert!(matches!(
        f.access.remove_user("alice", &Actor::cli()),
        Err(AccessError::UnknownUser(_))
    ));
}
}

both_backends! {
fn list_users_shows_no_secrets() {
    let f = admin_fixture();
    f.login("alice", IP).unwrap();
    let users = f.access.list_users().unwrap();
    assert_eq!(users.len(), 1);
    let u = &users[0];
    assert_eq!(
        (u.username.as_str(), u.role, u.active_sessions),
        ("alice", Role::Operator, 1)
    );
    assert_eq!(u.cameras, CameraScope::only(["cam-1"]));
    let json = serde_json::to_string(&users).unwrap();
    assert!(!json.contains("argon2"), "{json}");
}
}

both_backends! {
fn purge_expired_sessions_audits_each() {
    let f = admin_fixture();
    f.login("alice", IP).unwrap();
    f.login("alice", IP).unwrap();
    let live = f.login("alice", IP).unwrap();
    f.advance(mins(10));
    f.access.validate_session(&live.session_id).unwrap();
    f.advance(mins(6));
    assert_eq!(f.access.purge_expired_sessions().unwrap(), 2);
    assert!(f.access.validate_session(&live.session_id).is_ok());
}
}

// ---- API tokens ------------------------------------------------------------------------------

fn token(f: &Fixture, role: Role, cameras: CameraScope) -> CreatedToken {
    f.access
        .create_token(
            &NewToken {
                name: "nvr-bridge".into(),
                role,
                cameras,
                expires_in: None,
            },
            &Actor::cli(),
        )
        .unwrap()
}

both_backends! {
fn token_scope_limits_cameras_and_role() {
    let f = Fixture::new();
    let t = token(&f, Role::Viewer, CameraScope::only(["cam-1"]));
    assert_eq!(parse_token(&t.token).unwrap().0, t.id);
    let p = f.access.authenticate_token(&t.token, ip(IP)).unwrap();
    assert_eq!(p.audit_name(), format!("token:{}", t.id));
    assert!(p.authorize(Permission::ViewLive, Some("cam-1")).is_ok());
    assert_eq!(
        p.authorize(Permission::ViewLive, Some("cam-2")),
        Err(Denied::Camera {
            camera: "cam-2".into()
        })
    );
    assert!(matches!(
        p.authorize(Permission::Export, Some("cam-1")),
        Err(Denied::Role {
            role: Role::Viewer,
            ..
        })
    ));
    assert!(matches!(
        p.authorize(Permission::ManageUsers, None),
        Err(Denied::Role { .. })
    ));
}
}

both_backends! {
fn token_is_stored_hashed_and_shown_once() {
    let f = Fixture::new();
    let t = token(&f, Role::Operator, CameraScope::All);
    let conn = f.raw();
    let stored: Vec<u8> = conn
        .query_row(
            "SELECT secret_hash FROM api_tokens WHERE id = ?1",
            [&t.id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, Sha256::digest(t.token.as_bytes()).to_vec());
    let secret = parse_token(&t.token).unwrap().1;
    if f.is_sqlite() {
        let bytes = std::fs::read(f.db_path()).unwrap();
        let wal = std::fs::read(f.db_path().with_extension("db-wal")).unwrap_or_default();
        for hay in [&bytes, &wal] {
            assert!(!hay.windows(64).any(|w| w == secret.as_bytes()));
        }
    }
    let listed = f.access.list_tokens().unwrap();
    assert_eq!(listed.len(), 1);
    assert!(!serde_json::to_string(&listed).unwrap().contains(secret));
}
}

both_backends! {
fn revoked_token_is_refused() {
    let f = Fixture::new();
    let t = token(&f, Role::Operator, CameraScope::All);
    assert!(f.access.authenticate_token(&t.token, ip(IP)).is_ok());
    f.access.revoke_token(&t.id, &Actor::cli()).unwrap();
    assert!(matches!(
        f.access.authenticate_token(&t.token, ip(IP)),
        Err(TokenError::Revoked(_))
    ));
    let listed = &f.access.list_tokens().unwrap()[0];
    assert!(listed.revoked.is_some());
    assert_eq!(listed.state(f.access.now()), "revoked");
    assert!(matches!(
        f.access.revoke_token("0000000000000000", &Actor::cli()),
        Err(AccessError::UnknownToken(_))
    ));
}
}

both_backends! {
fn expired_token_is_refused() {
    let f = Fixture::new();
    let t = f
        .access
        .create_token(
            &NewToken {
                name: "short-lived".into(),
                role: Role::Viewer,
                cameras: CameraScope::All,
                expires_in: Some(mins(30)),
            },
            &Actor::cli(),
        )
        .unwrap();
    assert!(f.access.authenticate_token(&t.token, ip(IP)).is_ok());
    assert_eq!(
        f.access.list_tokens().unwrap()[0].state(f.access.now()),
        "active"
    );
    f.advance(mins(30));
    assert!(matches!(
        f.access.authenticate_token(&t.token, ip(IP)),
        Err(TokenError::Expired(_))
    ));
    assert_eq!(
        f.access.list_tokens().unwrap()[0].state(f.access.now()),
        "expired"
    );
}
}

both_backends! {
fn wrong_token_secret_fails_and_counts_for_intrusion_detection() {
    let f = Fixture::with_ids(IdsConfig {
        notification_threshold: 5,
        ..IdsConfig::default()
    });
    let t = token(&f, Role::Viewer, CameraScope::All);
    let (id, _) = parse_token(&t.token).unwrap();
    let forged = format!("vgt_{id}_{}", "a".repeat(64));
    for _ in 0..5 {
        assert!(matches!(
            f.access.authenticate_token(&forged, ip("198.51.100.1")),
            Err(TokenError::Invalid)
        ));
    }
    assert!(matches!(
        f.access.authenticate_token(&t.token, ip("198.51.100.1")),
        Err(TokenError::Blocked(_))
    ));
}
}

#[test]
fn token_parsing_rejects_malformed_tokens() {
    let good = format!("vgt_{}_{}", "0123456789abcdef", "ab".repeat(32));
    assert!(parse_token(&good).is_ok());
    assert_eq!(parse_token("Bearer xyz"), Err(TokenFormatError::Prefix));
    assert_eq!(parse_token("vgt_short"), Err(TokenFormatError::Length(9)));
    let upper = good.to_uppercase().replacen("VGT_", "vgt_", 1);
    assert_eq!(parse_token(&upper), Err(TokenFormatError::Shape));
    let moved = format!("vgt_{}_{}", "0123456789abcde", "ab".repeat(32) + "c");
    assert_eq!(parse_token(&moved), Err(TokenFormatError::Shape));
    let nonhex = format!("vgt_{}_{}", "0123456789abcdeg", "ab".repeat(32));
    assert_eq!(parse_token(&nonhex), Err(TokenFormatError::Shape));
    let e = parse_token("vgt_short").unwrap_err().to_string();
    assert!(e.contains("truncated"), "{e}");
}

// ---- TOTP ------------------------------------------------------------------------------------

fn code_at(secret: &str, t: Timestamp) -> String {
    crate::users::totp_from_base32(secret)
        .unwrap()
        .generate(t.unix_secs() as u64)
        .to_string()
}

fn enroll(f: &Fixture) -> String {
    let e = f.access.begin_totp_enrollment("alice").unwrap();
    assert!(
        e.otpauth_uri
            .starts_with("otpauth://totp/Vigil:alice?secret=")
    );
    assert!(
        f.access
            .confirm_totp("alice", "000000x", &Actor::cli())
            .is_err()
    );
    f.access
        .confirm_totp(
            "alice",
            &code_at(&e.secret_base32, f.access.now()),
            &Actor::cli(),
        )
        .unwrap();
    // Move to the next step so the enrolment code is not the login code.
    f.advance(Duration::from_secs(30));
    e.secret_base32
}

fn login_totp(f: &Fixture, code: Option<&str>) -> Result<NewSession, LoginError> {
    f.access.login(
        &Credentials {
            username: "alice",
            password: GOOD_PW,
            totp: code,
        },
        ip(IP),
    )
}

both_backends! {
fn totp_is_required_once_enabled() {
    let f = admin_fixture();
    let secret = enroll(&f);
    assert!(f.access.get_user("alice").unwrap().unwrap().totp_enabled);
    assert!(matches!(
        login_totp(&f, None),
        Err(LoginError::TotpRequired)
    ));
    let code = code_at(&secret, f.access.now());
    // The right code with its first digit changed.
    let first = code.as_bytes()[0] - b'0';
    let wrong = format!("{}{}", (first + 1) % 10, &code[1..]);
    assert!(matches!(
        login_totp(&f, Some(&wrong)),
        Err(LoginError::InvalidCredentials)
    ));
    assert!(matches!(
        login_totp(&f, Some("12a456")),
        Err(LoginError::InvalidCredentials)
    ));
    assert!(login_totp(&f, Some(&code)).is_ok());
}
}

both_backends! {
fn totp_code_reuse_is_refused() {
    let f = admin_fixture();
    let secret = enroll(&f);
    let code = code_at(&secret, f.access.now());
    assert!(login_totp(&f, Some(&code)).is_ok());
    assert!(matches!(
        login_totp(&f, Some(&code)),
        Err(LoginError::InvalidCredentials)
    ));
    // The next step's code works.
    f.advance(Duration::from_secs(30));
    let next = code_at(&secret, f.access.now());
    assert!(login_totp(&f, Some(&next)).is_ok());
    // An older code (still inside the skew window) is refused as well.
    assert!(matches!(
        login_totp(&f, Some(&code)),
        Err(LoginError::InvalidCredentials)
    ));
    let reused = f
        .access
        .audit_query(&AuditQuery {
            kind: Some(AuditKind::LoginFailed),
            ..Default::default()
        })
        .unwrap();
    assert!(reused.iter().all(|e| e.detail["reason"] == "totp_reused"));
    assert_eq!(reused.len(), 2);
}
}

both_backends! {
fn totp_can_be_disabled() {
    let f = admin_fixture();
    enroll(&f);
    f.access.disable_totp("alice", &Actor::cli()).unwrap();
    assert!(login_totp(&f, None).is_ok());
}
}

both_backends! {
fn outdated_hash_is_upgraded_at_login() {
    use argon2::password_hash::PasswordHasher as _;
    let f = admin_fixture();
    // An Argon2i hash, as an older release might have written.
    let old = argon2::Argon2::new(
        argon2::Algorithm::Argon2i,
        argon2::Version::V0x13,
        argon2::Params::new(64, 1, 1, None).unwrap(),
    )
    .hash_password_with_salt(GOOD_PW.as_bytes(), b"saltsaltsaltsalt")
    .unwrap()
    .to_string();
    f.raw()
        .execute(
            "UPDATE users SET password_hash = ?1 WHERE username = 'alice'",
            [&old],
        )
        .unwrap();
    f.login("alice", IP).unwrap();
    let now: String = f
        .raw()
        .query_row(
            "SELECT password_hash FROM users WHERE username = 'alice'",
            (),
            |r| r.get(0),
        )
        .unwrap();
    assert!(now.starts_with("$argon2id$"), "{now}");
    assert!(f.login("alice", IP).is_ok());
}
}

both_backends! {
fn concurrent_logins_keep_the_audit_chain_intact() {
    let f = admin_fixture();
    let access = &f.access;
    std::thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                for i in 0..5 {
                    let ip = ip(&format!("192.0.2.{}", 20 + t));
                    let pw = if i % 2 == 0 {
                        GOOD_PW
                    } else {
                        "wrong-password-xyz"
                    };
                    let _ = access.login(
                        &Credentials {
                            username: "alice",
                            password: pw,
                            totp: None,
                        },
                        ip,
                    );
                }
            });
        }
    });
    match access.verify_audit_chain().unwrap() {
        // 1 user creation + 20 login attempts.
        ChainReport::Intact { entries, .. } => assert_eq!(entries, 21),
        other => panic!("{other:?}"),
    }
    assert_eq!(access.list_users().unwrap()[0].active_sessions, 12);
}
}

both_backends! {
fn session_lifetimes_change_at_runtime() {
    let f = admin_fixture();
    let s = f.login("alice", IP).unwrap();
    f.access
        .set_session_config(SessionConfig {
            idle_timeout: mins(5),
            ..SessionConfig::default()
        })
        .unwrap();
    assert_eq!(f.access.config().session.idle_timeout, mins(5));
    // Open sessions follow the new limit from their next request on.
    f.advance(mins(5));
    assert!(matches!(
        f.access.validate_session(&s.session_id),
        Err(SessionError::IdleExpired(5))
    ));
    let s = f.login("alice", IP).unwrap();
    assert_eq!(s.idle_expires, f.access.now().plus(mins(5)));
}
}

both_backends! {
fn bad_runtime_session_lifetimes_are_refused_and_change_nothing() {
    let f = admin_fixture();
    for bad in [
        SessionConfig {
            idle_timeout: Duration::from_secs(59),
            ..SessionConfig::default()
        },
        SessionConfig {
            idle_timeout: mins(60),
            absolute_lifetime: mins(30),
            ..SessionConfig::default()
        },
    ] {
        let err = f.access.set_session_config(bad).unwrap_err().to_string();
        assert!(err.contains("idle timeout"), "{err}");
    }
    assert_eq!(f.access.config().session, SessionConfig::default());
}
}
