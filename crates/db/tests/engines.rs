//! The data-access layer on both engines: the same SQL, values, transactions and migrations on
//! an SQLite file and on a real PostgreSQL 15 (feature `peer-tests`), and what callers see when
//! the PostgreSQL server goes away and comes back.

use vigil_db::{
    Db, DbError, DbTarget, Migration, OptionalExtension as _, PgSettings, Schema, params,
};

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "things",
        sql: "CREATE TABLE things (id {id}, name TEXT NOT NULL UNIQUE, n BIGINT, data {blob}, flag BIGINT NOT NULL DEFAULT 0)",
        sqlite: "",
        postgres: "",
    },
    Migration {
        version: 2,
        name: "notes",
        sql: "CREATE TABLE notes (thing BIGINT NOT NULL REFERENCES things(id) ON DELETE CASCADE, \"user\" TEXT)",
        sqlite: "",
        postgres: "",
    },
];
const SCHEMA: Schema = Schema {
    component: "test",
    migrations: MIGRATIONS,
};

fn exercise(db: &mut Db) {
    let applied = vigil_db::migrate::migrate(db, &SCHEMA, 42).unwrap();
    assert_eq!(applied, vec![(1, "things"), (2, "notes")]);
    assert!(
        vigil_db::migrate::migrate(db, &SCHEMA, 43)
            .unwrap()
            .is_empty()
    );
    let status = vigil_db::migrate::status(db, &SCHEMA).unwrap();
    assert_eq!(status.current(), 2);
    assert!(status.pending.is_empty());

    let id: i64 = db
        .query_row(
            "INSERT INTO things (name, n, data, flag) VALUES (?1, ?2, ?3, ?4) RETURNING id",
            params!["a", 7i64, vec![0u8, 255, 1], true],
            |r| r.get(0),
        )
        .unwrap();
    db.execute("INSERT INTO things (name) VALUES (?)", ["b"])
        .unwrap();
    let (n, data, flag, missing): (Option<i64>, Vec<u8>, bool, Option<i64>) = db
        .query_row(
            "SELECT n, data, flag, (SELECT n FROM things WHERE name = 'b') FROM things WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        (n, data, flag, missing),
        (Some(7), vec![0, 255, 1], true, None)
    );
    // Comparisons come back as booleans on PostgreSQL and integers on SQLite: both read as bool.
    let big: bool = db
        .query_row(
            "SELECT n > ?1 FROM things WHERE id = ?2",
            params![5i64, id],
            |r| r.get(0),
        )
        .unwrap();
    assert!(big);
    assert!(matches!(
        db.execute("INSERT INTO things (name) VALUES (?1)", ["a"]),
        Err(DbError::Constraint(_))
    ));
    assert_eq!(
        db.query_row("SELECT id FROM things WHERE name = ?1", ["zz"], |r| r
            .get::<_, i64>(0))
            .optional()
            .unwrap(),
        None
    );
    db.execute(
        "INSERT INTO notes (thing, \"user\") VALUES (?1, ?2)",
        params![id, "u"],
    )
    .unwrap();

    {
        let tx = db.transaction().unwrap();
        tx.execute("DELETE FROM things WHERE name = ?1", ["a"])
            .unwrap();
        // dropped: rolled back
    }
    let count: i64 = db
        .query_row("SELECT COUNT(*) FROM things", (), |r| r.get(0))
        .unwrap();
    assert_eq!(count, 2);
    {
        let tx = db.transaction().unwrap();
        tx.lock_exclusive("things").unwrap();
        tx.execute("DELETE FROM things WHERE name = ?1", ["a"])
            .unwrap();
        tx.commit().unwrap();
    }
    let notes: i64 = db
        .query_row("SELECT COUNT(*) FROM notes", (), |r| r.get(0))
        .unwrap();
    assert_eq!(notes, 0, "foreign keys cascade on both engines");
    let mut stmt = db.prepare("SELECT name FROM things ORDER BY name").unwrap();
    let names: Vec<String> = stmt
        .query_map((), |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(names, ["b"]);
}

#[test]
fn sqlite_runs_the_shared_sql() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let mut db = Db::open_sqlite(&path).unwrap();
    exercise(&mut db);
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn a_newer_schema_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Db::open_sqlite(&dir.path().join("t.db")).unwrap();
    vigil_db::migrate::migrate(&mut db, &SCHEMA, 1).unwrap();
    let older = Schema {
        component: "test",
        migrations: &MIGRATIONS[..1],
    };
    let e = vigil_db::migrate::migrate(&mut db, &older, 2).unwrap_err();
    assert_eq!(
        e.to_string(),
        "test database schema version 2 is newer than this Vigil supports (1); upgrade Vigil"
    );
    assert!(vigil_db::migrate::check_current(&mut db, &older).is_err());
}

#[cfg(feature = "peer-tests")]
mod postgres {
    use super::*;
    use std::time::{Duration, Instant};
    use vigil_testkit::postgres::PgServer;

    fn open(server: &PgServer) -> Db {
        let db = server.create_database();
        let settings =
            PgSettings::parse_with_env(&server.socket_url(&db), None, None, None).unwrap();
        Db::open(&DbTarget::Postgres(Box::new(settings))).unwrap()
    }

    #[test]
    fn postgres_runs_the_shared_sql() {
        let mut db = open(PgServer::shared());
        exercise(&mut db);
        assert_eq!(db.backend(), vigil_db::Backend::Postgres);
    }

    #[test]
    fn a_stopped_server_is_unavailable_then_recovers_by_itself() {
        let server = PgServer::start();
        let mut db = open(&server);
        vigil_db::migrate::migrate(&mut db, &SCHEMA, 1).unwrap();
        db.execute("INSERT INTO things (name) VALUES ('x')", ())
            .unwrap();
        server.stop();
        let e = db.query("SELECT name FROM things", ()).unwrap_err();
        assert!(e.is_unavailable(), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.starts_with("database unavailable: ") && msg.ends_with(", retrying"),
            "{msg}"
        );
        // Fails fast while down (no connect timeout per call).
        let t = Instant::now();
        assert!(db.query("SELECT 1", ()).unwrap_err().is_unavailable());
        assert!(t.elapsed() < Duration::from_secs(2));
        server.resume();
        let deadline = Instant::now() + Duration::from_secs(10);
        let n: i64 = loop {
            match db.query_row("SELECT COUNT(*) FROM things", (), |r| r.get(0)) {
                Ok(n) => break n,
                Err(e) if e.is_unavailable() && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200))
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(n, 1);
    }
}
