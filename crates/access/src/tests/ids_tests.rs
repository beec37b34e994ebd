use super::both_backends;
use super::*;

fn ids(threshold: u32, deadtime: Duration, block: BlockPolicy) -> IdsConfig {
    IdsConfig {
        notification_threshold: threshold,
        deadtime,
        block,
        ..IdsConfig::default()
    }
}

#[test]
fn threshold_below_five_is_refused_with_a_clear_error() {
    let cfg = ids(3, mins(60), BlockPolicy::UntilRestart);
    let e = cfg.validate().unwrap_err();
    assert_eq!(e, IdsConfigError::ThresholdTooLow(3));
    let msg = e.to_string();
    assert!(
        msg.contains("minimum of 5") && msg.contains("set it to 5 or more"),
        "{msg}"
    );
    let dir = tempfile::tempdir().unwrap();
    let err = Access::open(
        &dir.path().join("a.db"),
        AccessConfig {
            ids: cfg,
            ..AccessConfig::default()
        },
    )
    .unwrap_err();
    assert!(matches!(
        err,
        AccessError::IdsConfig(IdsConfigError::ThresholdTooLow(3))
    ));
    assert!(ids(5, mins(60), BlockPolicy::Off).validate().is_ok());
    assert_eq!(IdsConfig::default().notification_threshold, 10);
}

#[test]
fn other_bad_ids_settings_are_refused() {
    let mut c = IdsConfig {
        timeout: Duration::ZERO,
        ..IdsConfig::default()
    };
    assert_eq!(c.validate(), Err(IdsConfigError::TimeoutZero));
    c = ids(10, mins(1), BlockPolicy::For(Duration::ZERO));
    assert_eq!(c.validate(), Err(IdsConfigError::BlockDurationZero));
    c = IdsConfig {
        ipv6_prefix_len: 8,
        ..IdsConfig::default()
    };
    assert_eq!(c.validate(), Err(IdsConfigError::Ipv6Prefix(8)));
}

both_backends! {
fn attempts_within_timeout_aggregate_into_one_access_log_entry() {
    let f = Fixture::new();
    f.add_user("alice", Role::Viewer, CameraScope::All);
    f.fail_login("alice", "192.0.2.7");
    f.advance(mins(10));
    f.fail_login("alice", "192.0.2.7");
    f.advance(mins(59));
    f.fail_login("alice", "192.0.2.7");
    let log = f.access.access_log(10).unwrap();
    assert_eq!(log.len(), 1, "{log:?}");
    let e = &log[0];
    assert_eq!((e.count, e.success), (3, false));
    assert_eq!(e.first, T0);
    assert_eq!(e.last, T0.plus(mins(69)));
    assert_eq!(
        (e.source.as_str(), e.username.as_str()),
        ("192.0.2.7", "alice")
    );
}
}

both_backends! {
fn attempts_after_timeout_or_by_other_user_or_outcome_start_new_entries() {
    let f = Fixture::new();
    f.add_user("alice", Role::Viewer, CameraScope::All);
    f.fail_login("alice", "192.0.2.7");
    f.advance(mins(61));
    f.fail_login("alice", "192.0.2.7"); // after the timeout: new entry
    f.fail_login("bob", "192.0.2.7"); // other user: new entry
    f.fail_login("alice", "192.0.2.8"); // other address: new entry
    f.login("alice", "192.0.2.7").unwrap(); // success is never merged with failures
    let log = f.access.access_log(10).unwrap();
    assert_eq!(log.len(), 5, "{log:?}");
    assert_eq!(log.iter().map(|e| e.count).sum::<u64>(), 5);
    assert_eq!(log.iter().filter(|e| e.success).count(), 1);
}
}

both_backends! {
fn alert_and_block_when_threshold_is_reached() {
    let f = Fixture::with_ids(ids(5, mins(60), BlockPolicy::UntilRestart));
    f.add_user("alice", Role::Viewer, CameraScope::All);
    for _ in 0..4 {
        assert!(matches!(
            f.fail_login("alice", "198.51.100.9"),
            LoginError::InvalidCredentials
        ));
    }
    assert_eq!(f.alert_count(), 0);
    assert!(f.access.check(ip("198.51.100.9")).is_ok());
    f.fail_login("mallory", "198.51.100.9");
    assert_eq!(f.alert_count(), 1);
    let alert = f.alerts.lock().unwrap()[0].clone();
    assert_eq!(alert.failures, 5);
    assert!(alert.blocked && !alert.allow_listed);
    assert_eq!(
        alert.usernames,
        vec!["alice".to_owned(), "mallory".to_owned()]
    );
    let blocked = f.access.check(ip("198.51.100.9")).unwrap_err();
    assert_eq!(blocked.until, None);
    assert!(
        blocked.to_string().contains("until the server restarts"),
        "{blocked}"
    );
    // Another address is unaffected.
    assert!(f.access.check(ip("198.51.100.10")).is_ok());
    assert!(f.login("alice", "198.51.100.10").is_ok());
}
}

both_backends! {
fn blocked_address_is_refused_before_password_work_even_with_right_password() {
    let f = Fixture::with_ids(ids(5, mins(60), BlockPolicy::UntilRestart));
    f.add_user("alice", Role::Viewer, CameraScope::All);
    for _ in 0..5 {
        f.fail_login("alice", "198.51.100.9");
    }
    let audit_before = f.access.audit_query(&AuditQuery::default()).unwrap().len();
    let log_before = f.access.access_log(100).unwrap();
    let err = f.login("alice", "198.51.100.9").unwrap_err();
    assert!(matches!(err, LoginError::Blocked(_)), "{err:?}");
    // Nothing was looked up or written: the refusal happened before any of that.
    assert_eq!(
        f.access.audit_query(&AuditQuery::default()).unwrap().len(),
        audit_before
    );
    assert_eq!(f.access.access_log(100).unwrap(), log_before);
    // Tokens and password changes from that address are refused the same way.
    assert!(matches!(
        f.access.authenticate_token("vgt_x", ip("198.51.100.9")),
        Err(TokenError::Blocked(_))
    ));
}
}

both_backends! {
fn deadtime_suppresses_alerts_until_it_has_passed() {
    let f = Fixture::with_ids(ids(5, mins(60), BlockPolicy::Off));
    for _ in 0..5 {
        f.fail_login("root", "203.0.113.5");
    }
    assert_eq!(f.alert_count(), 1);
    // Five more within the deadtime: threshold reached again, but no alert.
    for _ in 0..5 {
        f.advance(mins(5));
        f.fail_login("root", "203.0.113.5");
    }
    assert_eq!(f.alert_count(), 1);
    // Deadtime over (60 min after the first alert), failures since then ≥ threshold.
    f.advance(mins(40));
    f.fail_login("root", "203.0.113.5");
    assert_eq!(f.alert_count(), 2);
    let last = f.alerts.lock().unwrap()[1].clone();
    assert_eq!(last.failures, 11);
    assert!(!last.blocked);
    // The alert also went into the audit log.
    let alerts = f
        .access
        .audit_query(&AuditQuery {
            kind: Some(AuditKind::IntrusionAlert),
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(alerts.len(), 2);
}
}

both_backends! {
fn deadtime_zero_alerts_on_every_attempt() {
    let f = Fixture::with_ids(ids(5, Duration::ZERO, BlockPolicy::Off));
    for i in 1..=7 {
        f.fail_login("root", "203.0.113.5");
        assert_eq!(f.alert_count(), i);
    }
}
}

both_backends! {
fn timed_block_expires() {
    let f = Fixture::with_ids(ids(5, mins(60), BlockPolicy::For(mins(10))));
    for _ in 0..5 {
        f.fail_login("root", "203.0.113.5");
    }
    let b = f.access.check(ip("203.0.113.5")).unwrap_err();
    assert_eq!(b.until, Some(T0.plus(mins(10))));
    f.advance(mins(9));
    assert!(f.access.check(ip("203.0.113.5")).is_err());
    f.advance(mins(1));
    assert!(f.access.check(ip("203.0.113.5")).is_ok());
    // After expiry the address starts afresh: one more failure does not block again.
    f.fail_login("root", "203.0.113.5");
    assert!(f.access.check(ip("203.0.113.5")).is_ok());
}
}

both_backends! {
fn allow_listed_address_is_never_blocked_but_still_alerted() {
    let mut cfg = ids(5, mins(60), BlockPolicy::UntilRestart);
    cfg.allow_list = parse_allow_list(&["10.0.0.0/8", "2001:db8::1"]).unwrap();
    let f = Fixture::with_ids(cfg);
    for _ in 0..20 {
        f.fail_login("root", "10.20.30.40");
    }
    assert!(f.access.check(ip("10.20.30.40")).is_ok());
    assert!(f.access.ids_status().blocked.is_empty());
    let alerts = f.alerts.lock().unwrap().clone();
    assert!(!alerts.is_empty());
    assert!(alerts.iter().all(|a| a.allow_listed && !a.blocked));
    // v4-mapped IPv6 form of an allow-listed address is allow-listed too.
    assert!(f.access.config().ids.is_allow_listed(ip("::ffff:10.1.1.1")));
}
}

both_backends! {
fn unblock_lifts_the_block_and_is_audited() {
    let f = Fixture::with_ids(ids(5, mins(60), BlockPolicy::UntilRestart));
    for _ in 0..5 {
        f.fail_login("root", "203.0.113.5");
    }
    assert_eq!(f.access.ids_status().blocked.len(), 1);
    assert!(f.access.unblock(ip("203.0.113.5"), &Actor::cli()).unwrap());
    assert!(f.access.check(ip("203.0.113.5")).is_ok());
    assert!(f.access.ids_status().blocked.is_empty());
    assert!(!f.access.unblock(ip("203.0.113.5"), &Actor::cli()).unwrap());
    let e = f
        .access
        .audit_query(&AuditQuery {
            kind: Some(AuditKind::AddressUnblocked),
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(e.len(), 1);
    // Failures were forgotten: a single new failure does not block.
    f.fail_login("root", "203.0.113.5");
    assert!(f.access.check(ip("203.0.113.5")).is_ok());
}
}

both_backends! {
fn unblock_from_another_process_reaches_the_server_through_sync() {
    let f = Fixture::with_ids(ids(5, mins(60), BlockPolicy::UntilRestart));
    for _ in 0..5 {
        f.fail_login("root", "203.0.113.5");
    }
    let cli = f.reopen();
    assert_eq!(cli.ids_status().blocked.len(), 1, "the CLI sees the block");
    assert!(cli.unblock(ip("203.0.113.5"), &Actor::cli()).unwrap());
    assert!(f.access.check(ip("203.0.113.5")).is_err(), "not synced yet");
    f.access.sync_blocks().unwrap();
    assert!(f.access.check(ip("203.0.113.5")).is_ok());
}
}

both_backends! {
fn restart_lifts_until_restart_blocks_but_keeps_timed_ones() {
    let f = Fixture::with_ids(ids(5, mins(60), BlockPolicy::UntilRestart));
    for _ in 0..5 {
        f.fail_login("root", "203.0.113.5");
    }
    // A timed block written by a run with another policy.
    f.raw()
        .execute(
            "INSERT INTO ids_blocks (addr, since_ms, until_ms, failures) VALUES ('203.0.113.6', ?1, ?2, 5)",
            [T0.unix_ms(), T0.plus(mins(30)).unix_ms()],
        )
        .unwrap();
    let restarted = f.reopen();
    assert_eq!(restarted.begin_server_run().unwrap(), 1);
    assert!(restarted.check(ip("203.0.113.5")).is_ok());
    assert!(restarted.check(ip("203.0.113.6")).is_err());
}
}

both_backends! {
fn ipv6_addresses_are_tracked_per_64_prefix() {
    let f = Fixture::with_ids(ids(5, mins(60), BlockPolicy::UntilRestart));
    for i in 1..=5 {
        f.fail_login("root", &format!("2001:db8:1:2::{i}"));
    }
    assert!(f.access.check(ip("2001:db8:1:2::ffff")).is_err());
    assert!(f.access.check(ip("2001:db8:1:3::1")).is_ok());
}
}

#[test]
fn tracked_addresses_are_bounded() {
    let det = IntrusionDetector::new(IdsConfig {
        max_tracked: 3,
        ..IdsConfig::default()
    })
    .unwrap();
    for i in 0..10u8 {
        det.record_failure(
            ip(&format!("192.0.2.{i}")),
            "x",
            T0.plus(Duration::from_secs(i.into())),
        );
    }
    assert_eq!(det.status(T0.plus(mins(1))).watched.len(), 3);
}

#[test]
fn allow_list_parsing_accepts_cidrs_and_addresses() {
    let nets =
        parse_allow_list(&[" 192.168.1.0/24 ", "10.0.0.5", "fd00::/8", "10.1.2.3/8"]).unwrap();
    assert_eq!(nets.len(), 4);
    assert_eq!(nets[1].to_string(), "10.0.0.5/32");
    assert_eq!(nets[3].to_string(), "10.0.0.0/8", "host bits cleared");
}

#[test]
fn allow_list_parsing_rejects_garbage_with_clear_errors() {
    for bad in [
        "10.0.0.0/33",
        "not-an-ip",
        "",
        "10.0.0",
        "fd00::/129",
        "1.2.3.4/",
    ] {
        let e = parse_allow_list(&["10.0.0.0/8", bad]).unwrap_err();
        match &e {
            AllowListError::Invalid { index, .. } => assert_eq!(*index, 1),
            other => panic!("{bad}: {other:?}"),
        }
        assert!(e.to_string().contains("write e.g. 192.168.1.0/24"), "{e}");
    }
    for everything in ["0.0.0.0/0", "::/0"] {
        assert!(matches!(
            parse_allow_list(&[everything]),
            Err(AllowListError::Everything { .. })
        ));
    }
    let many = vec!["10.0.0.1"; 5000];
    assert!(matches!(
        parse_allow_list(&many),
        Err(AllowListError::TooMany(5000))
    ));
}

both_backends! {
fn alert_json_is_the_webhook_payload() {
    let f = Fixture::with_ids(ids(5, mins(60), BlockPolicy::For(mins(30))));
    for _ in 0..5 {
        f.fail_login("root", "203.0.113.5");
    }
    let alert = f.alerts.lock().unwrap()[0].clone();
    let v = serde_json::to_value(&alert).unwrap();
    assert_eq!(v["addr"], "203.0.113.5");
    assert_eq!(v["failures"], 5);
    assert_eq!(v["blocked"], true);
    assert_eq!(v["blocked_until"], T0.plus(mins(30)).unix_ms());
    assert_eq!(v["usernames"], serde_json::json!(["root"]));
    let back: Alert = serde_json::from_value(v).unwrap();
    assert_eq!(back, alert);
}
}

#[test]
fn channel_sink_never_blocks_when_full() {
    let (sink, rx) = ChannelSink::new(1);
    let det = IntrusionDetector::new(ids(5, Duration::ZERO, BlockPolicy::Off)).unwrap();
    for _ in 0..3 {
        if let Some(a) = det.record_failure(ip("192.0.2.1"), "x", T0).alert {
            sink.send(&a);
        }
    }
    assert_eq!(
        rx.try_iter().count(),
        1,
        "one queued, the rest dropped without blocking"
    );
}

both_backends! {
fn access_log_can_be_pruned_and_bounds_user_names() {
    let f = Fixture::new();
    let long = "x".repeat(500);
    f.fail_login(&long, "192.0.2.7");
    f.advance(mins(120));
    f.fail_login("bob", "192.0.2.7");
    let log = f.access.access_log(10).unwrap();
    assert_eq!(log.len(), 2);
    assert!(log.iter().all(|e| e.username.len() <= 64));
    let failed = f
        .access
        .audit_query(&AuditQuery {
            kind: Some(AuditKind::LoginFailed),
            ..AuditQuery::default()
        })
        .unwrap();
    assert!(failed.iter().all(|e| e.user.as_ref().unwrap().len() <= 64));
    assert_eq!(f.access.prune_access_log(T0.plus(mins(60))).unwrap(), 1);
    assert_eq!(f.access.access_log(10).unwrap()[0].username, "bob");
}
}

both_backends! {
fn ids_settings_change_at_runtime() {
    let f = Fixture::with_ids(ids(10, mins(60), BlockPolicy::UntilRestart));
    for _ in 0..5 {
        f.fail_login("root", "203.0.113.5");
    }
    assert!(
        f.access.check(ip("203.0.113.5")).is_ok(),
        "5 < threshold 10"
    );
    f.access
        .set_ids_config(ids(5, mins(60), BlockPolicy::UntilRestart))
        .unwrap();
    assert_eq!(f.access.config().ids.notification_threshold, 5);
    assert_eq!(f.access.ids().config().notification_threshold, 5);
    f.fail_login("root", "203.0.113.5");
    assert!(
        f.access.check(ip("203.0.113.5")).is_err(),
        "the lowered threshold applies to the next attempt"
    );
}
}

both_backends! {
fn allow_listing_a_blocked_address_at_runtime_unblocks_it_for_good() {
    let f = Fixture::with_ids(ids(5, mins(60), BlockPolicy::For(mins(60))));
    for _ in 0..5 {
        f.fail_login("root", "203.0.113.5");
    }
    assert!(f.access.check(ip("203.0.113.5")).is_err());
    let mut cfg = ids(5, mins(60), BlockPolicy::For(mins(60)));
    cfg.allow_list = parse_allow_list(&["203.0.113.0/24"]).unwrap();
    f.access.set_ids_config(cfg).unwrap();
    assert!(f.access.check(ip("203.0.113.5")).is_ok());
    // A reload of the block table (a timed block survives restarts) must not bring it back.
    f.access.begin_server_run().unwrap();
    assert!(f.access.check(ip("203.0.113.5")).is_ok());
    let n: i64 = f
        .raw()
        .query_row("SELECT count(*) FROM ids_blocks", (), |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
}
}

both_backends! {
fn bad_runtime_ids_settings_are_refused_and_change_nothing() {
    let f = Fixture::with_ids(ids(7, mins(60), BlockPolicy::UntilRestart));
    let err = f
        .access
        .set_ids_config(ids(3, mins(60), BlockPolicy::UntilRestart))
        .unwrap_err()
        .to_string();
    assert!(err.contains("minimum of 5"), "{err}");
    assert_eq!(f.access.ids().config().notification_threshold, 7);
    assert_eq!(f.access.config().ids.notification_threshold, 7);
}
}

both_backends! {
fn changing_the_ipv6_prefix_rekeys_blocks() {
    let f = Fixture::with_ids(ids(5, mins(60), BlockPolicy::UntilRestart));
    for _ in 0..5 {
        f.fail_login("root", "2001:db8:1:2::5");
    }
    assert!(f.access.check(ip("2001:db8:1:2::99")).is_err(), "same /64");
    let mut cfg = ids(5, mins(60), BlockPolicy::UntilRestart);
    cfg.ipv6_prefix_len = 48;
    f.access.set_ids_config(cfg).unwrap();
    assert!(
        f.access.check(ip("2001:db8:1:ffff::1")).is_err(),
        "same /48"
    );
    assert!(f.access.check(ip("2001:db8:2::1")).is_ok());
}
}
