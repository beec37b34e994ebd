//! Unit tests. They run with cheap Argon2 parameters ([`HashParams::fast_for_tests`], only
//! reachable under `cfg(test)`) and a [`ManualClock`], so nothing sleeps.
//!
//! Every test that opens the database is written once inside [`both_backends!`] and runs on
//! an SQLite file and, with the `peer-tests` feature, on a fresh database of a throw-away
//! PostgreSQL 15 (one server per test process, `vigil_testkit::postgres`).

mod access_tests;
mod audit_tests;
mod ids_tests;
mod layout_tests;
mod password_tests;
mod roles_tests;
mod webhook_tests;

use std::cell::Cell;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::*;

pub(crate) const T0: Timestamp = Timestamp::from_unix_ms(1_700_000_000_000);
pub(crate) const GOOD_PW: &str = "velvet-otter-tramline-42";

thread_local! {
    static BACKEND: Cell<vigil_db::Backend> = const { Cell::new(vigil_db::Backend::Sqlite) };
}

/// Runs a test body with the fixtures it makes on `backend`.
pub(crate) fn on_backend(backend: vigil_db::Backend, body: impl FnOnce()) {
    BACKEND.set(backend);
    body();
}

/// Each `fn name() { ... }` becomes the tests `name::sqlite` and (feature `peer-tests`)
/// `name::postgres`.
macro_rules! both_backends {
    ($(fn $name:ident() $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn sqlite() {
                $crate::tests::on_backend(vigil_db::Backend::Sqlite, || $body)
            }
            #[cfg(feature = "peer-tests")]
            #[test]
            fn postgres() {
                $crate::tests::on_backend(vigil_db::Backend::Postgres, || $body)
            }
        }
    )*};
}
pub(crate) use both_backends;

/// Where a new fixture's database goes: a file in `dir`, or a new PostgreSQL database.
fn test_target(dir: &std::path::Path) -> vigil_db::DbTarget {
    match BACKEND.get() {
        vigil_db::Backend::Sqlite => vigil_db::DbTarget::Sqlite(dir.join("access.db")),
        #[cfg(feature = "peer-tests")]
        vigil_db::Backend::Postgres => {
            let server = vigil_testkit::postgres::PgServer::shared();
            let db = server.create_database();
            vigil_db::DbTarget::Postgres(Box::new(
                vigil_db::PgSettings::parse_with_env(&server.socket_url(&db), None, None, None)
                    .unwrap(),
            ))
        }
        #[cfg(not(feature = "peer-tests"))]
        vigil_db::Backend::Postgres => unreachable!("PostgreSQL tests need the peer-tests feature"),
    }
}

pub(crate) struct Fixture {
    pub dir: tempfile::TempDir,
    pub target: vigil_db::DbTarget,
    pub clock: Arc<ManualClock>,
    pub alerts: Arc<Mutex<Vec<Alert>>>,
    pub access: Access,
}

impl Fixture {
    pub fn new() -> Self {
        Self::with(AccessConfig::default())
    }

    pub fn with(mut config: AccessConfig) -> Self {
        config.hash = HashParams::fast_for_tests();
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(T0));
        let alerts = Arc::new(Mutex::new(Vec::new()));
        let sink_alerts = alerts.clone();
        let target = test_target(dir.path());
        let access = Access::open_target_with(
            &target,
            config,
            clock.clone(),
            Arc::new(FnSink(move |a: &Alert| {
                sink_alerts.lock().unwrap().push(a.clone())
            })),
        )
        .unwrap();
        Fixture {
            dir,
            target,
            clock,
            alerts,
            access,
        }
    }

    pub fn with_ids(ids: IdsConfig) -> Self {
        Self::with(AccessConfig {
            ids,
            ..AccessConfig::default()
        })
    }

    /// A second handle on the same database file (another process, e.g. the CLI).
    pub fn reopen(&self) -> Access {
        let mut config = self.access.config().clone();
        config.hash = HashParams::fast_for_tests();
        Access::open_target_with(
            &self.target,
            config,
            self.clock.clone(),
            Arc::new(TracingSink),
        )
        .unwrap()
    }

    pub fn db_path(&self) -> std::path::PathBuf {
        self.dir.path().join("access.db")
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self.target, vigil_db::DbTarget::Sqlite(_))
    }

    /// A raw connection, as an attacker with the file (or the database's password) would have.
    pub fn raw(&self) -> vigil_db::Db {
        vigil_db::Db::open(&self.target).unwrap()
    }

    pub fn add_user(&self, name: &str, role: Role, cameras: CameraScope) {
        self.access
            .create_user(
                &NewUser {
                    username: name.into(),
                    role,
                    cameras,
                    password: Some(GOOD_PW.into()),
                },
                &Actor::cli(),
            )
            .unwrap();
    }

    pub fn login(&self, name: &str, ip: &str) -> Result<NewSession, LoginError> {
        self.access.login(
            &Credentials {
                username: name,
                password: GOOD_PW,
                totp: None,
            },
            ip.parse().unwrap(),
        )
    }

    pub fn fail_login(&self, name: &str, ip: &str) -> LoginError {
        self.access
            .login(
                &Credentials {
                    username: name,
                    password: "wrong-password-xyz",
                    totp: None,
                },
                ip.parse().unwrap(),
            )
            .unwrap_err()
    }

    pub fn alert_count(&self) -> usize {
        self.alerts.lock().unwrap().len()
    }

    pub fn advance(&self, d: Duration) {
        self.clock.advance(d);
    }
}

pub(crate) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(crate) fn mins(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}
