use super::both_backends;
use super::*;

fn fill(f: &Fixture) {
    for i in 0..5 {
        f.advance(mins(1));
        f.access
            .audit(
                AuditRecord::new(
                    if i % 2 == 0 {
                        AuditKind::Playback
                    } else {
                        AuditKind::Export
                    },
                    Some(if i < 3 { "alice" } else { "bob" }),
                    Some("192.0.2.1"),
                )
                .detail(serde_json::json!({ "camera": format!("cam-{i}"), "z": 1, "a": [1, 2] })),
            )
            .unwrap();
    }
}

/// Drops the append-only triggers, as someone with write access to the file could.
fn drop_triggers(conn: &vigil_db::Db) {
    conn.execute_batch(match conn.backend() {
        vigil_db::Backend::Sqlite => "DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;",
        vigil_db::Backend::Postgres => {
            "DROP TRIGGER audit_no_update ON audit; DROP TRIGGER audit_no_delete ON audit;"
        }
    })
    .unwrap();
}

both_backends! {
fn chain_of_untouched_log_verifies() {
    let f = Fixture::new();
    assert_eq!(
        f.access.verify_audit_chain().unwrap(),
        ChainReport::Intact {
            entries: 0,
            head: "0".repeat(64)
        }
    );
    fill(&f);
    let entries = f.access.audit_query(&AuditQuery::default()).unwrap();
    assert_eq!(
        entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(entries[0].prev_hash, "0".repeat(64));
    for w in entries.windows(2) {
        assert_eq!(
            w[1].prev_hash, w[0].hash,
            "each entry links to the one before"
        );
    }
    match f.access.verify_audit_chain().unwrap() {
        ChainReport::Intact { entries: 5, head } => assert_eq!(head, entries[4].hash),
        other => panic!("{other:?}"),
    }
}
}

both_backends! {
fn append_only_triggers_refuse_update_and_delete() {
    let f = Fixture::new();
    fill(&f);
    let conn = f.raw();
    let e = conn
        .execute("UPDATE audit SET \"user\" = 'eve' WHERE seq = 2", ())
        .unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
    assert!(conn.execute("DELETE FROM audit WHERE seq = 2", ()).is_err());
}
}

both_backends! {
fn edited_entry_is_detected() {
    let f = Fixture::new();
    fill(&f);
    let conn = f.raw();
    drop_triggers(&conn);
    conn.execute(
        "UPDATE audit SET detail = '{\"a\":[1,2],\"camera\":\"cam-9\",\"z\":1}' WHERE seq = 3",
        (),
    )
    .unwrap();
    let r = f.access.verify_audit_chain().unwrap();
    assert_eq!(
        r,
        ChainReport::Broken {
            seq: 3,
            problem: ChainProblem::Modified
        }
    );
    assert!(r.to_string().contains("entry 3 was modified"), "{r}");
}
}

both_backends! {
fn edited_user_or_time_is_detected() {
    let f = Fixture::new();
    fill(&f);
    let conn = f.raw();
    drop_triggers(&conn);
    conn.execute("UPDATE audit SET \"user\" = 'eve' WHERE seq = 1", ())
        .unwrap();
    assert!(matches!(
        f.access.verify_audit_chain().unwrap(),
        ChainReport::Broken {
            seq: 1,
            problem: ChainProblem::Modified
        }
    ));
    conn.execute(
        "UPDATE audit SET \"user\" = 'alice', time_ms = time_ms + 1 WHERE seq = 1",
        (),
    )
    .unwrap();
    assert!(matches!(
        f.access.verify_audit_chain().unwrap(),
        ChainReport::Broken {
            seq: 1,
            problem: ChainProblem::Modified
        }
    ));
}
}

both_backends! {
fn deleted_entry_is_detected() {
    let f = Fixture::new();
    fill(&f);
    let conn = f.raw();
    drop_triggers(&conn);
    conn.execute("DELETE FROM audit WHERE seq = 2", ()).unwrap();
    assert_eq!(
        f.access.verify_audit_chain().unwrap(),
        ChainReport::Broken {
            seq: 2,
            problem: ChainProblem::Missing
        }
    );
}
}

both_backends! {
fn deleted_and_renumbered_entry_is_detected() {
    let f = Fixture::new();
    fill(&f);
    let conn = f.raw();
    drop_triggers(&conn);
    conn.execute_batch(
        "DELETE FROM audit WHERE seq = 2; UPDATE audit SET seq = seq - 1 WHERE seq > 2;",
    )
    .unwrap();
    assert_eq!(
        f.access.verify_audit_chain().unwrap(),
        ChainReport::Broken {
            seq: 2,
            problem: ChainProblem::BadLink
        }
    );
}
}

both_backends! {
fn truncated_tail_is_detected() {
    let f = Fixture::new();
    fill(&f);
    let conn = f.raw();
    drop_triggers(&conn);
    conn.execute("DELETE FROM audit WHERE seq >= 4", ())
        .unwrap();
    assert_eq!(
        f.access.verify_audit_chain().unwrap(),
        ChainReport::Broken {
            seq: 4,
            problem: ChainProblem::Truncated
        }
    );
}
}

both_backends! {
fn query_filters_by_time_user_kind_and_source() {
    let f = Fixture::new();
    fill(&f);
    let q = |q: AuditQuery| f.access.audit_query(&q).unwrap();
    assert_eq!(q(AuditQuery::default()).len(), 5);
    let alice = q(AuditQuery {
        user: Some("alice".into()),
        ..Default::default()
    });
    assert_eq!(alice.len(), 3);
    let exports = q(AuditQuery {
        kind: Some(AuditKind::Export),
        ..Default::default()
    });
    assert_eq!(
        exports.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![2, 4]
    );
    // Entries are at T0+1..5 min; [T0+2, T0+4) holds the 2nd and 3rd.
    let window = q(AuditQuery {
        from: Some(T0.plus(mins(2))),
        to: Some(T0.plus(mins(4))),
        ..Default::default()
    });
    assert_eq!(window.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 3]);
    assert!(
        q(AuditQuery {
            source: Some("192.0.2.99".into()),
            ..Default::default()
        })
        .is_empty()
    );
    let newest = q(AuditQuery {
        newest_first: true,
        limit: Some(2),
        ..Default::default()
    });
    assert_eq!(newest.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![5, 4]);
}
}

both_backends! {
fn export_writes_one_json_object_per_line() {
    let f = Fixture::new();
    fill(&f);
    let mut out = Vec::new();
    let n = f
        .access
        .audit_export_jsonl(
            &AuditQuery {
                user: Some("bob".into()),
                ..Default::default()
            },
            &mut out,
        )
        .unwrap();
    assert_eq!(n, 2);
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    let e: AuditEntry = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(e.seq, 4);
    assert_eq!(e.user.as_deref(), Some("bob"));
    assert_eq!(e.detail["camera"], "cam-3");
    let v: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(v["kind"], "playback");
    assert!(v["time_utc"].as_str().unwrap().ends_with('Z'));
}
}

#[test]
fn canonical_json_sorts_keys_recursively() {
    let v = serde_json::json!({ "b": 1, "a": { "d": [ { "y": 1, "x": 2 } ], "c": "é\"" } });
    assert_eq!(
        crate::audit::canonical_json(&v),
        r#"{"a":{"c":"é\"","d":[{"x":2,"y":1}]},"b":1}"#
    );
}

#[test]
fn audit_kind_parsing() {
    for k in AuditKind::ALL {
        assert_eq!(k.as_str().parse::<AuditKind>(), Ok(k));
        assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
    }
    let e = "logn".parse::<AuditKind>().unwrap_err();
    assert!(e.to_string().contains("login_failed"), "{e}");
}

both_backends! {
fn logins_logouts_and_changes_are_audited_with_user_and_source() {
    let f = Fixture::new();
    f.add_user("alice", Role::Viewer, CameraScope::All);
    f.fail_login("alice", "192.0.2.3");
    let s = f.login("alice", "192.0.2.3").unwrap();
    f.access.logout(&s.session_id).unwrap();
    let kinds: Vec<(AuditKind, Option<String>, Option<String>)> = f
        .access
        .audit_query(&AuditQuery::default())
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, e.user, e.source))
        .collect();
    let a = Some("alice".to_owned());
    let src = Some("192.0.2.3".to_owned());
    assert_eq!(kinds[0].0, AuditKind::UserCreated);
    assert_eq!(kinds[1], (AuditKind::LoginFailed, a.clone(), src.clone()));
    assert_eq!(
        kinds[2],
        (AuditKind::LoginSucceeded, a.clone(), src.clone())
    );
    assert_eq!(kinds[3], (AuditKind::Logout, a, src));
}
}
