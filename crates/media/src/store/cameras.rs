//! The camera registry: configured cameras, their passwords sealed at rest, and the live
//! status their recorders persist for other processes.

use std::fs;

use rusqlite::{OptionalExtension, params};

use super::{Result, Store, StoreError, io_err, now_us};

/// A configured camera.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Camera {
    pub id: String,
    pub name: String,
    pub url: String,
    pub username: Option<String>,
    pub has_password: bool,
    pub enabled: bool,
    pub max_age_secs: Option<i64>,
    pub max_bytes: Option<i64>,
    /// Fragment decode times count 90 kHz ticks from this instant.
    pub time_origin_us: i64,
}

/// What `camera add` supplies.
#[derive(Debug, Clone, Default)]
pub struct NewCamera {
    pub name: String,
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub max_age_secs: Option<i64>,
    pub max_bytes: Option<i64>,
}

/// Live state of a camera's recorder, persisted so other processes (the CLI) can read it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CameraStatus {
    /// "recording", "connecting", "reconnecting", "disabled" or "stopped".
    pub state: String,
    pub last_error: Option<String>,
    pub bitrate_bps: f64,
    pub fps: f64,
    pub last_frame_us: Option<i64>,
    pub codec: Option<String>,
    pub resolution: Option<String>,
    pub updated_us: i64,
}

impl Store {
    pub fn add_camera(&self, new: &NewCamera) -> Result<Camera> {
        check_camera_name(&new.name)?;
        crate::ingest::validate_url(&new.url).map_err(StoreError::InvalidCamera)?;
        if new.password.is_some() && new.username.is_none() {
            return Err(StoreError::InvalidCamera(
                "a password was given without --username".into(),
            ));
        }
        let id = format!("cam-{}", hex::encode(rand::random::<[u8; 6]>()));
        let password_enc = new
            .password
            .as_deref()
            .map(|p| self.secrets.seal(p.as_bytes()))
            .transpose()?;
        let now = now_us();
        let db = self.db();
        let res = db.execute(
            "INSERT INTO cameras (id, name, url, username, password_enc, enabled, max_age_secs, max_bytes, time_origin_us, created_us)
             VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7, ?8, ?8)",
            params![id, new.name, new.url, new.username, password_enc, new.max_age_secs, new.max_bytes, now],
        );
        match res {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                return Err(StoreError::DuplicateCamera(new.name.clone()));
            }
            r => r?,
        };
        drop(db);
        let dir = self.camera_dir(&id);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        self.camera(&new.name)
    }

    pub fn cameras(&self) -> Result<Vec<Camera>> {
        let db = self.db();
        let mut stmt = db.prepare(
            "SELECT id, name, url, username, password_enc IS NOT NULL, enabled, max_age_secs, max_bytes, time_origin_us
             FROM cameras ORDER BY name",
        )?;
        let rows = stmt.query_map([], camera_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn camera(&self, name: &str) -> Result<Camera> {
        let db = self.db();
        db.query_row(
            "SELECT id, name, url, username, password_enc IS NOT NULL, enabled, max_age_secs, max_bytes, time_origin_us
             FROM cameras WHERE name = ?1 OR id = ?1
             ORDER BY name = ?1 DESC LIMIT 1",
            [name],
            camera_from_row,
        )
        .optional()?
        .ok_or_else(|| StoreError::NoSuchCamera(name.to_owned()))
    }

    /// The camera's password, decrypted; only the recorder calls this.
    pub fn camera_password(&self, camera_id: &str) -> Result<Option<String>> {
        let enc: Option<Vec<u8>> = self.db().query_row(
            "SELECT password_enc FROM cameras WHERE id = ?1",
            [camera_id],
            |r| r.get(0),
        )?;
        enc.map(|e| {
            let plain = self.secrets.open_sealed(&e)?;
            String::from_utf8(plain).map_err(|_| {
                StoreError::Secret(crate::secrets::SecretError::Corrupt(
                    "stored camera password is not UTF-8".into(),
                ))
            })
        })
        .transpose()
    }

    /// The camera's name wins over another camera's id (`camera` resolves the same way), so
    /// a name that happens to equal some id can never change two cameras.
    pub fn set_camera_enabled(&self, name: &str, enabled: bool) -> Result<()> {
        let id = self.camera(name)?.id;
        let n = self.db().execute(
            "UPDATE cameras SET enabled = ?2 WHERE id = ?1",
            params![id, enabled],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchCamera(name.to_owned()));
        }
        Ok(())
    }

    pub fn set_camera_retention(
        &self,
        name: &str,
        max_age_secs: Option<i64>,
        max_bytes: Option<i64>,
    ) -> Result<()> {
        let id = self.camera(name)?.id;
        let n = self.db().execute(
            "UPDATE cameras SET max_age_secs = ?2, max_bytes = ?3 WHERE id = ?1",
            params![id, max_age_secs, max_bytes],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchCamera(name.to_owned()));
        }
        Ok(())
    }

    /// Removes a camera and, with `delete_video`, its recordings.
    pub fn remove_camera(&self, name: &str, delete_video: bool) -> Result<Camera> {
        let cam = self.camera(name)?;
        {
            let mut db = self.db();
            let tx = db.transaction()?;
            tx.execute("DELETE FROM cameras WHERE id = ?1", [&cam.id])?;
            tx.execute("DELETE FROM camera_status WHERE camera_id = ?1", [&cam.id])?;
            if delete_video {
                tx.execute("DELETE FROM gops WHERE camera_id = ?1", [&cam.id])?;
                tx.execute("DELETE FROM segments WHERE camera_id = ?1", [&cam.id])?;
                tx.execute("DELETE FROM gaps WHERE camera_id = ?1", [&cam.id])?;
            }
            tx.execute("DELETE FROM recorder_runs WHERE camera_id = ?1", [&cam.id])?;
            tx.commit()?;
        }
        if delete_video {
            let dir = self.camera_dir(&cam.id);
            if dir.exists() {
                fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
            }
        }
        Ok(cam)
    }

    pub fn put_status(&self, camera_id: &str, s: &CameraStatus) -> Result<()> {
        self.db().execute(
            "INSERT INTO camera_status (camera_id, state, last_error, bitrate_bps, fps, last_frame_us, codec, resolution, updated_us)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT(camera_id) DO UPDATE SET state=excluded.state, last_error=excluded.last_error,
               bitrate_bps=excluded.bitrate_bps, fps=excluded.fps, last_frame_us=excluded.last_frame_us,
               codec=excluded.codec, resolution=excluded.resolution, updated_us=excluded.updated_us",
            params![camera_id, s.state, s.last_error, s.bitrate_bps, s.fps, s.last_frame_us, s.codec, s.resolution, s.updated_us],
        )?;
        Ok(())
    }

    pub fn status(&self, camera_id: &str) -> Result<Option<CameraStatus>> {
        Ok(self
            .db()
            .query_row(
                "SELECT state, last_error, bitrate_bps, fps, last_frame_us, codec, resolution, updated_us
                 FROM camera_status WHERE camera_id = ?1",
                [camera_id],
                |r| {
                    Ok(CameraStatus {
                        state: r.get(0)?,
                        last_error: r.get(1)?,
                        bitrate_bps: r.get(2)?,
                        fps: r.get(3)?,
                        last_frame_us: r.get(4)?,
                        codec: r.get(5)?,
                        resolution: r.get(6)?,
                        updated_us: r.get(7)?,
                    })
                },
            )
            .optional()?)
    }
}

/// Whether `name` may name a camera; the API checks names it is given with this too.
pub fn check_camera_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        return Err(StoreError::InvalidCamera(format!(
            "camera name '{name}' must be 1-64 characters of letters, digits, '-', '_' or '.'"
        )));
    }
    // Names become path segments (`/api/v1/cameras/{name}`, export file names). The allowed
    // characters keep a name one inert segment, except these two, which URL and file-system
    // path resolution replace by the current or the parent directory.
    if name == "." || name == ".." {
        return Err(StoreError::InvalidCamera(format!(
            "camera name '{name}' is not allowed: '.' and '..' mean the current and parent \
             directory when the name is used in a path; include a letter or digit"
        )));
    }
    Ok(())
}

fn camera_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Camera> {
    Ok(Camera {
        id: r.get(0)?,
        name: r.get(1)?,
        url: r.get(2)?,
        username: r.get(3)?,
        has_password: r.get(4)?,
        enabled: r.get(5)?,
        max_age_secs: r.get(6)?,
        max_bytes: r.get(7)?,
        time_origin_us: r.get(8)?,
    })
}
