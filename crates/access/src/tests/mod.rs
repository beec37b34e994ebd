//! Unit tests. They run with cheap Argon2 parameters ([`HashParams::fast_for_tests`], only
//! reachable under `cfg(test)`) and a [`ManualClock`], so nothing sleeps.

mod access_tests;
mod audit_tests;
mod ids_tests;
mod layout_tests;
mod password_tests;
mod roles_tests;
mod webhook_tests;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::*;

pub(crate) const T0: Timestamp = Timestamp::from_unix_ms(1_700_000_000_000);
pub(crate) const GOOD_PW: &str = "velvet-otter-tramline-42";

pub(crate) struct Fixture {
    pub dir: tempfile::TempDir,
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
        let access = Access::open_with(
            &dir.path().join("access.db"),
            config,
            clock.clone(),
            Arc::new(FnSink(move |a: &Alert| {
                sink_alerts.lock().unwrap().push(a.clone())
            })),
        )
        .unwrap();
        Fixture {
            dir,
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
        Access::open_with(
            &self.db_path(),
            config,
            self.clock.clone(),
            Arc::new(TracingSink),
        )
        .unwrap()
    }

    pub fn db_path(&self) -> std::path::PathBuf {
        self.dir.path().join("access.db")
    }

    /// A raw connection, as an attacker with the file would have.
    pub fn raw(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.db_path()).unwrap()
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
