//! Camera passwords during a rotation: the pending password (sealed like the committed one)
//! written and made durable before the camera is told, then committed (it becomes the
//! password, of the secondary stream too when that logs in as the same user) or abandoned.
//! The state machine and its crash cases: docs/design/password-rotation.md.

use rusqlite::{OptionalExtension, params};

use super::{Result, Store, StoreError, now_us, secondary_stream_id};

/// Where a camera stands with password rotation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RotationState {
    /// A new password is pending since this instant (µs): a rotation runs or was interrupted.
    pub pending_since_us: Option<i64>,
    /// When a rotation last committed (µs).
    pub rotated_us: Option<i64>,
    /// The camera's own password constraints (`LENGTH:SYMBOLS`), if an admin set them.
    pub rule: Option<String>,
    /// When the camera was added (µs): the schedule counts from it until a first rotation.
    pub added_us: Option<i64>,
}

impl Store {
    /// Runs `f` in one transaction committed with `synchronous = FULL`: in WAL mode with
    /// the store's usual `NORMAL`, a commit survives a crash of the process but not a power
    /// cut; a password the camera may already have must survive both.
    fn durably<T>(&self, f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut db = self.db();
        db.pragma_update(None, "synchronous", "FULL")?;
        let out = (|| -> Result<T> {
            let tx = db.transaction()?;
            let v = f(&tx)?;
            tx.commit()?;
            Ok(v)
        })();
        let restored = db.pragma_update(None, "synchronous", "NORMAL");
        let v = out?;
        restored?;
        Ok(v)
    }

    /// Writes `password` as the camera's (by id) pending password. Refused when one is
    /// pending already: another rotation runs, or an interrupted one is not resolved yet.
    pub fn begin_rotation(&self, camera_id: &str, password: &str) -> Result<()> {
        let sealed = self.secrets.seal(password.as_bytes())?;
        self.durably(|tx| {
            let n = tx.execute(
                "UPDATE cameras SET password_pending_enc = ?2, password_pending_us = ?3
                 WHERE id = ?1 AND main_id IS NULL AND password_pending_enc IS NULL",
                params![camera_id, sealed, now_us()],
            )?;
            if n == 1 {
                return Ok(());
            }
            let exists: Option<i64> = tx
                .query_row(
                    "SELECT 1 FROM cameras WHERE id = ?1 AND main_id IS NULL",
                    [camera_id],
                    |r| r.get(0),
                )
                .optional()?;
            Err(match exists {
                Some(_) => StoreError::RotationPending(camera_id.to_owned()),
                None => StoreError::NoSuchCamera(camera_id.to_owned()),
            })
        })
    }

    /// The camera's pending password, decrypted, if a rotation is pending.
    pub fn pending_password(&self, camera_id: &str) -> Result<Option<String>> {
        let enc: Option<Vec<u8>> = self
            .db()
            .query_row(
                "SELECT password_pending_enc FROM cameras WHERE id = ?1",
                [camera_id],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| StoreError::NoSuchCamera(camera_id.to_owned()))?;
        enc.map(|e| self.open_password(&e)).transpose()
    }

    /// Makes the pending password the camera's password, and its secondary stream's when
    /// that stream logs in as the same user; records when. Recorders pick it up at their
    /// next connection.
    pub fn commit_rotation(&self, camera_id: &str) -> Result<()> {
        self.durably(|tx| {
            let row: Option<(Option<Vec<u8>>, Option<String>)> = tx
                .query_row(
                    "SELECT password_pending_enc, username FROM cameras WHERE id = ?1 AND main_id IS NULL",
                    [camera_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let (pending, user) = row.ok_or_else(|| StoreError::NoSuchCamera(camera_id.to_owned()))?;
            let pending = pending.ok_or_else(|| StoreError::NoRotationPending(camera_id.to_owned()))?;
            tx.execute(
                "UPDATE cameras SET password_enc = ?2, password_pending_enc = NULL,
                   password_pending_us = NULL, password_rotated_us = ?3
                 WHERE id = ?1",
                params![camera_id, pending, now_us()],
            )?;
            tx.execute(
                "UPDATE cameras SET password_enc = ?3
                 WHERE id = ?1 AND main_id = ?2 AND username IS ?4 AND username IS NOT NULL",
                params![secondary_stream_id(camera_id), camera_id, pending, user],
            )?;
            Ok(())
        })
    }

    /// Forgets the pending password: the camera keeps the one it had.
    pub fn abandon_rotation(&self, camera_id: &str) -> Result<()> {
        self.durably(|tx| {
            tx.execute(
                "UPDATE cameras SET password_pending_enc = NULL, password_pending_us = NULL
                 WHERE id = ?1 AND main_id IS NULL",
                [camera_id],
            )?;
            Ok(())
        })
    }

    /// Replaces the camera's (by id) password with one an admin set by hand and proved,
    /// also for its secondary stream when that logs in as the same user; drops a pending
    /// rotation (the password the camera has now is this one) and records when, which
    /// restarts the camera's recorders (`vigil_app::runtime`). The rotation schedule still
    /// counts from the last rotation: a hand-set password is not a generated one.
    pub fn set_camera_password(&self, camera_id: &str, password: &str) -> Result<()> {
        let sealed = self.secrets.seal(password.as_bytes())?;
        self.durably(|tx| {
            let user: Option<Option<String>> = tx
                .query_row(
                    "SELECT username FROM cameras WHERE id = ?1 AND main_id IS NULL",
                    [camera_id],
                    |r| r.get(0),
                )
                .optional()?;
            let user = user.ok_or_else(|| StoreError::NoSuchCamera(camera_id.to_owned()))?;
            if user.is_none() {
                return Err(StoreError::InvalidCamera(
                    "a password without a user name".into(),
                ));
            }
            tx.execute(
                "UPDATE cameras SET password_enc = ?2, password_pending_enc = NULL,
                   password_pending_us = NULL, password_set_us = ?3
                 WHERE id = ?1",
                params![camera_id, sealed, now_us()],
            )?;
            tx.execute(
                "UPDATE cameras SET password_enc = ?3
                 WHERE id = ?1 AND main_id = ?2 AND username IS ?4",
                params![secondary_stream_id(camera_id), camera_id, sealed, user],
            )?;
            Ok(())
        })
    }

    /// When each camera's password was last set by hand ([`Store::set_camera_password`]),
    /// by camera id; cameras whose password never was are left out.
    pub fn password_set_times(&self) -> Result<Vec<(String, i64)>> {
        let db = self.db();
        let mut stmt = db.prepare(
            "SELECT id, password_set_us FROM cameras
             WHERE main_id IS NULL AND password_set_us IS NOT NULL",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The rotation state of every camera, by camera id.
    pub fn rotation_states(&self) -> Result<Vec<(String, RotationState)>> {
        let db = self.db();
        let mut stmt = db.prepare(
            "SELECT id, password_pending_us, password_rotated_us, password_rule, created_us
             FROM cameras WHERE main_id IS NULL ORDER BY name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                RotationState {
                    pending_since_us: r.get(1)?,
                    rotated_us: r.get(2)?,
                    rule: r.get(3)?,
                    added_us: r.get(4)?,
                },
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The rotation state of one camera (by name or id).
    pub fn rotation_state(&self, name: &str) -> Result<RotationState> {
        let id = self.camera(name)?.id;
        Ok(self
            .rotation_states()?
            .into_iter()
            .find(|(c, _)| *c == id)
            .map(|(_, s)| s)
            .unwrap_or_default())
    }

    /// Sets (or with `None` removes) the camera's own password constraints; the caller
    /// checks the text (vigil-app's rotation rules read it).
    pub fn set_password_rule(&self, name: &str, rule: Option<&str>) -> Result<()> {
        let id = self.camera(name)?.id;
        self.db().execute(
            "UPDATE cameras SET password_rule = ?2 WHERE id = ?1",
            params![id, rule],
        )?;
        Ok(())
    }

    pub(super) fn open_password(&self, sealed: &[u8]) -> Result<String> {
        let plain = self.secrets.open_sealed(sealed)?;
        String::from_utf8(plain).map_err(|_| {
            StoreError::Secret(crate::secrets::SecretError::Corrupt(
                "stored camera password is not UTF-8".into(),
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewCamera, NewSecondary, StreamMode};

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::init(dir.path()).unwrap();
        (dir, store)
    }

    fn add(store: &Store, name: &str, sub_user: Option<&str>) -> String {
        store
            .add_camera(&NewCamera {
                name: name.into(),
                url: "rtsp://127.0.0.1:554/main".into(),
                username: Some("vigil".into()),
                password: Some("old-password".into()),
                secondary: Some(NewSecondary {
                    url: "rtsp://127.0.0.1:554/sub".into(),
                    username: sub_user.map(str::to_owned),
                    password: sub_user.map(|_| "sub-password".to_owned()),
                    mode: StreamMode::Live,
                }),
                ..NewCamera::default()
            })
            .unwrap()
            .id
    }

    #[test]
    fn pending_then_commit_moves_the_password_and_the_same_users_secondary() {
        let (_dir, s) = store();
        let id = add(&s, "lobby", Some("vigil"));
        let other = add(&s, "gate", Some("viewer"));
        let sub = secondary_stream_id(&id);
        s.begin_rotation(&id, "NEWpassword123").unwrap();
        // Until the commit the recorders keep the old password.
        assert_eq!(s.camera_password(&id).unwrap().unwrap(), "old-password");
        assert_eq!(s.pending_password(&id).unwrap().unwrap(), "NEWpassword123");
        let state = s.rotation_state("lobby").unwrap();
        assert!(state.pending_since_us.is_some() && state.rotated_us.is_none());
        // One rotation at a time.
        assert!(matches!(
            s.begin_rotation(&id, "another"),
            Err(StoreError::RotationPending(_))
        ));
        s.commit_rotation(&id).unwrap();
        assert_eq!(s.camera_password(&id).unwrap().unwrap(), "NEWpassword123");
        assert_eq!(s.camera_password(&sub).unwrap().unwrap(), "NEWpassword123");
        assert_eq!(s.pending_password(&id).unwrap(), None);
        let state = s.rotation_state("lobby").unwrap();
        assert!(state.pending_since_us.is_none() && state.rotated_us.is_some());
        assert!(matches!(
            s.commit_rotation(&id),
            Err(StoreError::NoRotationPending(_))
        ));
        // A secondary stream logging in as another user keeps its own password.
        s.begin_rotation(&other, "GATEpassword99").unwrap();
        s.commit_rotation(&other).unwrap();
        assert_eq!(
            s.camera_password(&secondary_stream_id(&other))
                .unwrap()
                .unwrap(),
            "sub-password"
        );
    }

    #[test]
    fn abandon_keeps_the_old_password_and_a_reopened_store_sees_the_pending_one() {
        let dir = tempfile::tempdir().unwrap();
        let id = {
            let s = Store::init(dir.path()).unwrap();
            let id = add(&s, "lobby", None);
            s.begin_rotation(&id, "PENDINGpw42").unwrap();
            id
        };
        // As after a crash: another process opens the database.
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.pending_password(&id).unwrap().unwrap(), "PENDINGpw42");
        s.abandon_rotation(&id).unwrap();
        assert_eq!(s.pending_password(&id).unwrap(), None);
        assert_eq!(s.camera_password(&id).unwrap().unwrap(), "old-password");
        assert!(s.rotation_state("lobby").unwrap().rotated_us.is_none());
        // Sealed at rest: the database file never holds the password in clear.
        drop(s);
        let db = std::fs::read(dir.path().join("vigil.db")).unwrap();
        assert!(!db.windows(11).any(|w| w == b"PENDINGpw42"));
        assert!(matches!(
            Store::open(dir.path())
                .unwrap()
                .begin_rotation("cam-000000000000", "x"),
            Err(StoreError::NoSuchCamera(_))
        ));
    }

    #[test]
    fn a_rule_is_kept_per_camera() {
        let (_dir, s) = store();
        add(&s, "lobby", None);
        s.set_password_rule("lobby", Some("24:-_")).unwrap();
        assert_eq!(
            s.rotation_state("lobby").unwrap().rule.as_deref(),
            Some("24:-_")
        );
        s.set_password_rule("lobby", None).unwrap();
        assert_eq!(s.rotation_state("lobby").unwrap().rule, None);
    }
}
