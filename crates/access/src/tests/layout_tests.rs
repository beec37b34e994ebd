//! Live-view layouts: stored per user, validated, audited when they change, deleted with the
//! user; the schema migration from version 1 adds their table to an existing database.

use super::both_backends;
use super::*;

fn layout(kind: LayoutKind, tiles: &[Option<&str>]) -> LiveLayout {
    LiveLayout {
        kind,
        tiles: tiles.iter().map(|t| t.map(str::to_owned)).collect(),
    }
}

fn actor(name: &str) -> Actor {
    Actor {
        name: name.into(),
        source: "192.0.2.1".into(),
    }
}

fn layout_audits(f: &Fixture) -> Vec<AuditEntry> {
    f.access
        .audit_query(&AuditQuery {
            kind: Some(AuditKind::LayoutChanged),
            ..Default::default()
        })
        .unwrap()
}

both_backends! {
fn a_layout_is_stored_per_user_and_audited_when_it_changes() {
    let f = Fixture::new();
    f.add_user("ann", Role::Viewer, CameraScope::All);
    f.add_user("bob", Role::Operator, CameraScope::All);
    assert_eq!(f.access.live_layout("ann").unwrap(), None, "never saved");
    let l = layout(
        LayoutKind::OnePlusFive,
        &[Some("lobby"), None, Some("gate")],
    );
    let saved = f.access.set_live_layout("ann", &l, &actor("ann")).unwrap();
    assert_eq!(saved.layout, l);
    assert_eq!(saved.updated, T0);
    assert_eq!(f.access.live_layout("ann").unwrap().unwrap(), saved);
    assert_eq!(f.access.live_layout("bob").unwrap(), None, "only ann's");
    // Another handle on the file (another process) reads the same.
    assert_eq!(f.reopen().live_layout("ann").unwrap().unwrap().layout, l);

    // Saving the same layout again changes nothing and is not audited again.
    f.advance(mins(1));
    let again = f.access.set_live_layout("ann", &l, &actor("ann")).unwrap();
    assert_eq!(again.updated, T0);
    let audits = layout_audits(&f);
    assert_eq!(audits.len(), 1, "{audits:?}");
    assert_eq!(audits[0].user.as_deref(), Some("ann"));
    assert_eq!(audits[0].source.as_deref(), Some("192.0.2.1"));
    assert_eq!(audits[0].detail["kind"], "1+5");
    assert_eq!(
        audits[0].detail["tiles"],
        serde_json::json!(["lobby", null, "gate"])
    );

    // A different one replaces it.
    let l2 = layout(LayoutKind::Single, &[Some("dock")]);
    let saved = f.access.set_live_layout("ann", &l2, &actor("ann")).unwrap();
    assert_eq!(saved.updated, T0.plus(mins(1)));
    assert_eq!(f.access.live_layout("ann").unwrap().unwrap().layout, l2);
    assert_eq!(layout_audits(&f).len(), 2);
    assert!(matches!(
        f.access.verify_audit_chain().unwrap(),
        ChainReport::Intact { .. }
    ));

    // Removing the user removes the layout.
    f.access.remove_user("ann", &Actor::cli()).unwrap();
    let n: i64 = f
        .raw()
        .query_row("SELECT COUNT(*) FROM user_layouts", (), |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
    assert!(matches!(
        f.access.set_live_layout("ann", &l, &actor("ann")),
        Err(AccessError::UnknownUser(_))
    ));
}
}

both_backends! {
fn invalid_layouts_are_refused_and_change_nothing() {
    let f = Fixture::new();
    f.add_user("ann", Role::Viewer, CameraScope::All);
    let good = layout(LayoutKind::Grid2x2, &[Some("lobby")]);
    f.access
        .set_live_layout("ann", &good, &actor("ann"))
        .unwrap();
    let long = "x".repeat(129);
    for bad in [
        layout(LayoutKind::Grid2x2, &[None, None, None, None, None]),
        layout(LayoutKind::Single, &[Some("a"), Some("b")]),
        LiveLayout {
            kind: LayoutKind::Grid4x4,
            tiles: vec![None; MAX_LAYOUT_TILES + 1],
        },
        layout(LayoutKind::Grid2x2, &[Some("")]),
        layout(LayoutKind::Grid2x2, &[Some("bad\nname")]),
        layout(LayoutKind::Grid2x2, &[Some(&long)]),
    ] {
        let e = f
            .access
            .set_live_layout("ann", &bad, &actor("ann"))
            .unwrap_err();
        assert!(
            matches!(
                e,
                AccessError::InvalidLayout(_) | AccessError::InvalidCamera(_)
            ),
            "{bad:?}: {e}"
        );
    }
    assert_eq!(f.access.live_layout("ann").unwrap().unwrap().layout, good);
    assert_eq!(layout_audits(&f).len(), 1);
    // Every kind knows its size; only the five known kinds parse.
    for k in LayoutKind::ALL {
        assert_eq!(k.as_str().parse::<LayoutKind>().unwrap(), k);
        assert!(k.tiles() <= MAX_LAYOUT_TILES);
        assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
    }
    for s in ["", "2X2", "5x5", "2x2 ", "1+6"] {
        assert!(s.parse::<LayoutKind>().is_err(), "{s:?}");
    }
}
}

both_backends! {
fn an_unreadable_stored_layout_counts_as_none() {
    let f = Fixture::new();
    f.add_user("ann", Role::Viewer, CameraScope::All);
    f.access
        .set_live_layout(
            "ann",
            &layout(LayoutKind::Single, &[Some("lobby")]),
            &actor("ann"),
        )
        .unwrap();
    for stored in [
        r#"{"kind":"9x9","tiles":[]}"#,
        r#"{"kind":"1","tiles":["a","b"]}"#,
        "not json",
    ] {
        f.raw()
            .execute("UPDATE user_layouts SET layout = ?1", [stored])
            .unwrap();
        assert_eq!(f.access.live_layout("ann").unwrap(), None, "{stored}");
    }
}
}

#[test]
fn a_version_1_database_is_migrated_once_and_a_newer_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        // What Vigil wrote before the migrations table: schema 1, its version in the pragma.
        conn.execute_batch(&vigil_db::migrate::render(
            &crate::db::SCHEMA.migrations[0],
            vigil_db::Backend::Sqlite,
        ))
        .unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO users (username, role, all_cameras, password_hash, created_ms, password_changed_ms)
             VALUES ('old', 'viewer', 1, 'x', 0, 0)",
            (),
        )
        .unwrap();
    }
    let open = || {
        Access::open_with(
            &path,
            AccessConfig::default(),
            Arc::new(ManualClock::new(T0)),
            Arc::new(TracingSink),
        )
    };
    let access = open().unwrap();
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, crate::db::SCHEMA_VERSION);
    assert_eq!(access.get_user("old").unwrap().unwrap().role, Role::Viewer);
    let l = layout(LayoutKind::Grid3x3, &[Some("lobby")]);
    access.set_live_layout("old", &l, &actor("old")).unwrap();
    drop(access);
    // Opening again migrates nothing and keeps the layout.
    assert_eq!(
        open().unwrap().live_layout("old").unwrap().unwrap().layout,
        l
    );
    // A newer Vigil recorded a migration this one does not know.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "INSERT INTO vigil_schema (component, version, name, applied_ms) VALUES ('access', ?1, 'future', 0)",
            [crate::db::SCHEMA_VERSION + 1],
        )
        .unwrap();
    assert!(matches!(
        open().unwrap_err(),
        AccessError::SchemaTooNew { .. }
    ));
}
