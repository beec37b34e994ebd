//! Databases written by earlier Vigil versions (SQL dumps in tests/fixtures/schema, see its
//! README) are brought up to this build's schema when opened, keep their data, and record the
//! new version; a database from a newer Vigil is refused with a message saying so.

use std::path::{Path, PathBuf};

use rusqlite::Connection;
use vigil_access::{Access, AccessConfig, ChainReport};
use vigil_events::{EventQuery, EventStore};
use vigil_media::store::Store;

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/schema")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn load(path: &Path, dump: &str) {
    let _ = std::fs::remove_file(path);
    Connection::open(path).unwrap().execute_batch(dump).unwrap();
}

/// A data directory (keys, layout) whose index is the given dump.
fn data_dir_with_index(dump: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    drop(Store::init(&root).unwrap());
    load(&root.join("vigil.db"), dump);
    (dir, root)
}

fn index_version(root: &Path) -> String {
    Connection::open(root.join("vigil.db"))
        .unwrap()
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

fn user_version(path: &Path) -> i64 {
    Connection::open(path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn the_index_of_every_earlier_version_is_migrated_and_keeps_its_data() {
    for name in ["vigil-v0.sql", "vigil-v2.sql"] {
        let (_dir, root) = data_dir_with_index(&fixture(name));
        let store = Store::open(&root).unwrap_or_else(|e| panic!("{name}: {e}"));
        let cameras = store.cameras().unwrap();
        assert_eq!(cameras.len(), 1, "{name}");
        assert_eq!(cameras[0].id, "cam-1f5bdf245f9a", "{name}");
        assert_eq!(cameras[0].name, "sample", "{name}");
        assert_eq!(
            store.segments("cam-1f5bdf245f9a").unwrap().len(),
            1,
            "{name}"
        );
        drop(store);
        assert_eq!(
            index_version(&root),
            vigil_media::store::SCHEMA_VERSION.to_string(),
            "{name}"
        );
        // What the migrations added is usable: a secondary stream column and evidence locks.
        let c = Connection::open(root.join("vigil.db")).unwrap();
        c.prepare("SELECT main_id, stream_mode FROM cameras")
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // ... and the RTSPS certificate columns, empty: no camera is pinned by a migration.
        let pinned: i64 = c
            .query_row(
                "SELECT count(*) FROM cameras WHERE tls_pin IS NOT NULL OR tls_seen IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(pinned, 0, "{name}");
        let locks: i64 = c
            .query_row("SELECT count(*) FROM evidence_locks", [], |r| r.get(0))
            .unwrap();
        assert_eq!(locks, 0, "{name}");
    }
}

#[test]
fn the_access_database_of_every_earlier_version_is_migrated_and_keeps_its_data() {
    for name in ["access-v1.sql", "access-v2.sql"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.db");
        load(&path, &fixture(name));
        let access =
            Access::open(&path, AccessConfig::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let users: Vec<_> = access
            .list_users()
            .unwrap()
            .into_iter()
            .map(|u| (u.username, u.role.to_string()))
            .collect();
        assert_eq!(
            users,
            [
                ("admin".to_owned(), "admin".to_owned()),
                ("alice".to_owned(), "operator".to_owned())
            ],
            "{name}"
        );
        // The hash-chained audit log survives the migration intact.
        match access.verify_audit_chain().unwrap() {
            ChainReport::Intact { entries, .. } => assert_eq!(entries, 2, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        drop(access);
        assert_eq!(user_version(&path), 2, "{name}");
    }
}

#[test]
fn the_event_database_of_every_earlier_version_is_migrated_and_keeps_its_data() {
    for name in ["events-v1.sql", "events-v2.sql"] {
        let dir = tempfile::tempdir().unwrap();
        load(&dir.path().join("events.db"), &fixture(name));
        let store = EventStore::open(dir.path()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let page = store.query(&EventQuery::default()).unwrap();
        let mut kinds: Vec<_> = page.events.iter().map(|e| e.event.kind.clone()).collect();
        kinds.sort();
        assert_eq!(
            kinds,
            ["security.user_created", "system.started", "system.stopped"],
            "{name}"
        );
        drop(store);
        assert_eq!(user_version(&dir.path().join("events.db")), 4, "{name}");
        // Version 4's camera index holds only the events of a camera.
        let index: String = Connection::open(dir.path().join("events.db"))
            .unwrap()
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'events_camera'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(
            index.contains("WHERE camera IS NOT NULL"),
            "{name}: {index}"
        );
        // Version 3's table of signed-post nonces works on the migrated database.
        let nonces = vigil_events::nonces::NonceStore::open(dir.path()).unwrap();
        assert!(
            nonces.claim("cam-ai", "nonce-0000000001", 20, 10).unwrap(),
            "{name}"
        );
        assert!(
            !nonces.claim("cam-ai", "nonce-0000000001", 20, 11).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn a_database_from_a_newer_vigil_is_refused_and_left_alone() {
    let (_dir, root) = data_dir_with_index(&fixture("vigil-v2.sql"));
    Connection::open(root.join("vigil.db"))
        .unwrap()
        .execute(
            "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
    let e = Store::open(&root)
        .err()
        .expect("a newer index must be refused");
    assert!(
        e.to_string()
            .contains("schema version 99, newer than this Vigil knows"),
        "{e}"
    );
    assert_eq!(index_version(&root), "99");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.db");
    load(
        &path,
        &fixture("access-v2.sql").replace("user_version=2", "user_version=99"),
    );
    let e = Access::open(&path, AccessConfig::default())
        .expect_err("a newer access database must be refused");
    assert!(e.to_string().contains("schema version 99 is newer"), "{e}");
    assert_eq!(user_version(&path), 99);

    let dir = tempfile::tempdir().unwrap();
    load(
        &dir.path().join("events.db"),
        &fixture("events-v2.sql").replace("user_version=2", "user_version=99"),
    );
    let e = EventStore::open(dir.path()).expect_err("a newer event database must be refused");
    assert!(e.to_string().contains("schema version 99, newer"), "{e}");
    assert_eq!(user_version(&dir.path().join("events.db")), 99);
}
