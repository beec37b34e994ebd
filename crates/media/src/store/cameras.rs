//! The camera registry: configured cameras, their passwords sealed at rest, and the live
//! status their recorders persist for other processes.
//!
//! A camera may have a secondary stream (a second RTSP URL, usually a lower resolution for
//! grids). It is a row of its own in `cameras`, with the id [`secondary_stream_id`] and
//! `main_id` naming its camera, so everything keyed by a camera id (segments, GOPs, gaps,
//! recorder runs, status, the evidence ledger, recovery) works for it unchanged. Its row
//! stays when the secondary is removed (`stream_mode = 'removed'`), so its numbering, its
//! recordings and their retention continue when one is set again; it goes with its camera.

use std::fs;

use rusqlite::{OptionalExtension, params};

use super::{Result, Store, StoreError, io_err, now_us};
use crate::live::Stream;

/// A configured camera (or, as [`Camera::secondary_camera`] builds it for a recorder, one of
/// its streams).
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
    /// The camera's secondary stream, when it has one.
    pub secondary: Option<SecondaryStream>,
    /// For `rtsps://`: the SHA-256 fingerprint of the certificate an admin pinned
    /// (`vigil camera trust`); it applies to both streams of the camera.
    pub tls_pin: Option<String>,
}

/// A camera's secondary stream: a second RTSP stream of the same camera (typically a lower
/// resolution, for grids), live only or recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecondaryStream {
    /// The stream's internal id ([`secondary_stream_id`]): names its status, and when
    /// recorded its segment directory, index rows and evidence ledger.
    pub id: String,
    pub url: String,
    pub username: Option<String>,
    pub has_password: bool,
    pub mode: StreamMode,
    /// Fragment decode times of the stream count 90 kHz ticks from this instant.
    pub time_origin_us: i64,
}

/// What becomes of a secondary stream's video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamMode {
    /// Live view only: nothing is written to disk.
    #[default]
    Live,
    /// Stored and signed like the main stream, in segments and a ledger of its own.
    Recorded,
}

impl StreamMode {
    /// `live` or `recorded`, as the index, the CLI and the API write it.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamMode::Live => "live",
            StreamMode::Recorded => "recorded",
        }
    }
}

impl std::fmt::Display for StreamMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for StreamMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "live" => Ok(StreamMode::Live),
            "recorded" => Ok(StreamMode::Recorded),
            other => Err(format!(
                "'{other}' is not a stream mode; use live (live view only) or recorded"
            )),
        }
    }
}

/// The internal id of a camera's secondary stream: the camera's id and `~sub`. `~` never
/// occurs in a camera id or name, so it can name no other camera.
pub fn secondary_stream_id(camera_id: &str) -> String {
    format!("{camera_id}{SECONDARY_SUFFIX}")
}

const SECONDARY_SUFFIX: &str = "~sub";
const CAMERA_ID_PREFIX: &str = "cam-";

/// Whether `s` has the form of a camera id (`cam-` and 12 lowercase hex digits).
fn is_camera_id(s: &str) -> bool {
    s.strip_prefix(CAMERA_ID_PREFIX).is_some_and(|hex| {
        hex.len() == 12 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

impl Camera {
    /// The secondary stream as a recorder runs it: the stream's id, URL, user name and time
    /// origin, the camera's enabled flag and retention, and a name for logs. `None` without a
    /// secondary.
    pub fn secondary_camera(&self) -> Option<Camera> {
        let s = self.secondary.as_ref()?;
        Some(Camera {
            id: s.id.clone(),
            name: format!("{} (secondary)", self.name),
            url: s.url.clone(),
            username: s.username.clone(),
            has_password: s.has_password,
            enabled: self.enabled,
            max_age_secs: self.max_age_secs,
            max_bytes: self.max_bytes,
            time_origin_us: s.time_origin_us,
            secondary: None,
            tls_pin: self.tls_pin.clone(),
        })
    }

    /// The main stream as a recorder runs it: the camera without its secondary, so a change
    /// of the secondary does not restart the main stream's recorder.
    pub fn main_camera(&self) -> Camera {
        Camera {
            secondary: None,
            ..self.clone()
        }
    }
}

/// What an ONVIF device said it is when its camera was added, and the certificate its HTTPS
/// service presented: the camera's identity for allow-listing (a different device at the same
/// address is told apart by serial and certificate).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceIdentity {
    /// The device service address the camera was added from.
    pub onvif_url: String,
    pub manufacturer: String,
    pub model: String,
    pub firmware: String,
    pub serial: String,
    /// SHA-256 fingerprint of the ONVIF HTTPS certificate (`None` over plain HTTP).
    pub certificate: Option<String>,
}

/// The last check of the device answering at a camera's ONVIF address against its recorded
/// [`DeviceIdentity`] (device allow-listing, done by the recording runtime before each
/// connection; docs/cameras-onvif.md).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceCheck {
    /// `verified` (the recorded device answered), `mismatch` (another device answered: its
    /// streams are refused) or `unverified` (the device could not be asked: video is taken,
    /// with a warning).
    pub state: String,
    /// What answered, as one key (serial, model, manufacturer, certificate), so a repeated
    /// check of the same device is told from a change.
    pub found: String,
    /// The reason in words, with what to do.
    pub detail: String,
    pub checked_us: i64,
}

/// The stream id of a camera's main stream from the id of either of its streams.
pub fn main_stream_id(stream_id: &str) -> &str {
    stream_id
        .strip_suffix(SECONDARY_SUFFIX)
        .unwrap_or(stream_id)
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
    pub secondary: Option<NewSecondary>,
}

/// A secondary stream to set: checked like a camera's main stream (credentials never in the
/// URL, a password needs a user name), the password sealed at rest the same way.
#[derive(Clone, Default)]
pub struct NewSecondary {
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub mode: StreamMode,
}

impl std::fmt::Debug for NewSecondary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSecondary")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("mode", &self.mode)
            .finish()
    }
}

/// The columns of a camera and its secondary, as [`camera_from_row`] reads them.
const CAMERA_COLUMNS: &str = "c.id, c.name, c.url, c.username, c.password_enc IS NOT NULL, c.enabled, \
     c.max_age_secs, c.max_bytes, c.time_origin_us, \
     s.id, s.url, s.username, s.password_enc IS NOT NULL, s.stream_mode, s.time_origin_us, \
     c.tls_pin \
     FROM cameras c LEFT JOIN cameras s ON s.main_id = c.id AND s.stream_mode IN ('live', 'recorded')";

/// Live state of a camera's recorder, persisted so other processes (the CLI) can read it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CameraStatus {
    /// "recording", "live" (a stream fed to live viewers only), "connecting", "reconnecting",
    /// "failed", "disabled" or "stopped".
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
                "a password was given without a user name".into(),
            ));
        }
        if let Some(sec) = &new.secondary {
            check_secondary(sec)?;
        }
        let id = format!(
            "{CAMERA_ID_PREFIX}{}",
            hex::encode(rand::random::<[u8; 6]>())
        );
        let password_enc = new
            .password
            .as_deref()
            .map(|p| self.secrets.seal(p.as_bytes()))
            .transpose()?;
        let now = now_us();
        {
            let mut db = self.db();
            let tx = db.transaction()?;
            let res = tx.execute(
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
            if let Some(sec) = &new.secondary {
                self.put_secondary(&tx, &id, sec)?;
            }
            tx.commit()?;
        }
        let dir = self.camera_dir(&id);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        self.camera_by_id(&id)
    }

    /// Writes a camera defined elsewhere under the id it has there: a recording server keeps
    /// the cameras its management server assigned to it this way (docs/design/cluster.md,
    /// "Assignments"). A new id is inserted (a name already used by another camera of this
    /// server is refused); a known one gets the new URL, credentials, retention, pin, secondary
    /// stream and enabled flag, keeping its numbering, time origin and recordings. Returns the
    /// camera as stored and whether anything changed.
    pub fn put_camera_with_id(
        &self,
        id: &str,
        new: &NewCamera,
        enabled: bool,
        tls_pin: Option<&str>,
    ) -> Result<(Camera, bool)> {
        if !is_camera_id(id) {
            return Err(StoreError::InvalidCamera(format!(
                "camera id {id:?} is not of the form cam-<12 hex digits>"
            )));
        }
        check_camera_name(&new.name)?;
        crate::ingest::validate_url(&new.url).map_err(StoreError::InvalidCamera)?;
        if new.password.is_some() && new.username.is_none() {
            return Err(StoreError::InvalidCamera(
                "a password was given without a user name".into(),
            ));
        }
        if let Some(sec) = &new.secondary {
            check_secondary(sec)?;
        }
        let before = self.camera_by_id(id).ok();
        let password_before = match &before {
            Some(_) => self.camera_password(id)?,
            None => None,
        };
        let sec_password_before = match before.as_ref().and_then(|c| c.secondary.as_ref()) {
            Some(s) => self.camera_password(&s.id)?,
            None => None,
        };
        let password_enc = new
            .password
            .as_deref()
            .map(|p| self.secrets.seal(p.as_bytes()))
            .transpose()?;
        let now = now_us();
        {
            let mut db = self.db();
            let tx = db.transaction()?;
            let res = tx.execute(
                "INSERT INTO cameras (id, name, url, username, password_enc, enabled, max_age_secs, max_bytes, tls_pin, time_origin_us, created_us)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)
                 ON CONFLICT(id) DO UPDATE SET name = excluded.name, url = excluded.url,
                   username = excluded.username, password_enc = excluded.password_enc,
                   enabled = excluded.enabled, max_age_secs = excluded.max_age_secs,
                   max_bytes = excluded.max_bytes, tls_pin = excluded.tls_pin",
                params![id, new.name, new.url, new.username, password_enc, enabled, new.max_age_secs, new.max_bytes, tls_pin, now],
            );
            match res {
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    return Err(StoreError::DuplicateCamera(new.name.clone()));
                }
                r => r?,
            };
            match &new.secondary {
                Some(sec) => self.put_secondary(&tx, id, sec)?,
                None if before.as_ref().is_some_and(|c| c.secondary.is_some()) => {
                    let sid = secondary_stream_id(id);
                    tx.execute(
                        "UPDATE cameras SET url = '', username = NULL, password_enc = NULL, stream_mode = 'removed'
                         WHERE id = ?1",
                        [&sid],
                    )?;
                    tx.execute("DELETE FROM camera_status WHERE camera_id = ?1", [&sid])?;
                }
                None => {}
            }
            tx.commit()?;
        }
        let dir = self.camera_dir(id);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let after = self.camera_by_id(id)?;
        let sec_password_after = new.secondary.as_ref().and_then(|s| s.password.clone());
        // A changed password alone leaves `Camera` equal, so it is compared here: the caller
        // restarts the stream's session for it.
        let changed = before.as_ref() != Some(&after)
            || password_before != new.password
            || sec_password_before != sec_password_after;
        Ok((after, changed))
    }

    /// The cameras, by name, each with its secondary stream.
    pub fn cameras(&self) -> Result<Vec<Camera>> {
        let db = self.db();
        let mut stmt = db.prepare(&format!(
            "SELECT {CAMERA_COLUMNS} WHERE c.main_id IS NULL ORDER BY c.name"
        ))?;
        let rows = stmt.query_map([], camera_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The camera with this name or (when no camera has that name) this id. Secondary
    /// streams are not cameras: their ids name none.
    pub fn camera(&self, name: &str) -> Result<Camera> {
        let db = self.db();
        db.query_row(
            &format!(
                "SELECT {CAMERA_COLUMNS} WHERE c.main_id IS NULL AND (c.name = ?1 OR c.id = ?1)
                 ORDER BY c.name = ?1 DESC LIMIT 1"
            ),
            [name],
            camera_from_row,
        )
        .optional()?
        .ok_or_else(|| StoreError::NoSuchCamera(name.to_owned()))
    }

    /// One of a camera's streams (by camera name or id) as what its recordings are kept
    /// under: the main stream, or the secondary, also after it was removed, while its
    /// recordings last. Exports, playback and verification read the stream's id.
    pub fn recorded_stream(&self, camera: &str, stream: Stream) -> Result<Camera> {
        self.stream_of(&self.camera(camera)?, stream)
    }

    /// [`Store::recorded_stream`] of a camera already looked up.
    pub fn stream_of(&self, cam: &Camera, stream: Stream) -> Result<Camera> {
        match stream {
            Stream::Main => Ok(cam.main_camera()),
            Stream::Secondary => self
                .stream_row(&secondary_stream_id(&cam.id), cam)
                .ok_or_else(|| StoreError::NoSecondary(cam.name.clone()))?,
        }
    }

    /// A stream by what exports and verification are given: a camera's name or id (its
    /// main stream), or a secondary stream's id ([`secondary_stream_id`]).
    pub fn stream(&self, name_or_id: &str) -> Result<Camera> {
        match self.camera(name_or_id) {
            Ok(cam) => Ok(cam.main_camera()),
            Err(StoreError::NoSuchCamera(_)) if name_or_id.ends_with(SECONDARY_SUFFIX) => {
                let main_id = &name_or_id[..name_or_id.len() - SECONDARY_SUFFIX.len()];
                let main = self
                    .camera_by_id(main_id)
                    .map_err(|_| StoreError::NoSuchCamera(name_or_id.to_owned()))?;
                self.stream_row(name_or_id, &main)
                    .ok_or_else(|| StoreError::NoSuchCamera(name_or_id.to_owned()))?
            }
            Err(e) => Err(e),
        }
    }

    /// The secondary stream row `id` of `main`, named after its camera; `None` if there is
    /// no such row.
    fn stream_row(&self, id: &str, main: &Camera) -> Option<Result<Camera>> {
        let row = self
            .db()
            .query_row(
                "SELECT id, name, url, username, password_enc IS NOT NULL, enabled, max_age_secs, max_bytes, time_origin_us
                 FROM cameras WHERE id = ?1 AND main_id = ?2",
                [id, main.id.as_str()],
                stream_from_row,
            )
            .optional();
        match row {
            Ok(None) => None,
            Ok(Some(s)) => Some(Ok(Camera {
                name: format!("{} (secondary)", main.name),
                enabled: main.enabled,
                max_age_secs: main.max_age_secs,
                max_bytes: main.max_bytes,
                tls_pin: main.tls_pin.clone(),
                ..s
            })),
            Err(e) => Some(Err(e.into())),
        }
    }

    /// Every stream with a row of its own: the cameras (without their secondary) and the
    /// secondary streams, including removed ones, as [`Camera`]s named by their ids. What
    /// recovery reconciles.
    pub(super) fn all_streams(&self) -> Result<Vec<Camera>> {
        let db = self.db();
        let mut stmt = db.prepare(
            "SELECT id, name, url, username, password_enc IS NOT NULL, enabled, max_age_secs, max_bytes, time_origin_us
             FROM cameras ORDER BY name",
        )?;
        let rows = stmt.query_map([], stream_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Sets (adds or replaces) or, with `None`, removes the camera's secondary stream, and
    /// returns the camera as it is now. A replaced secondary keeps its id, numbering and time
    /// origin; a removed one keeps its recordings (retention still applies to them).
    pub fn set_secondary(&self, name: &str, secondary: Option<&NewSecondary>) -> Result<Camera> {
        let cam = self.camera(name)?;
        if let Some(sec) = secondary {
            check_secondary(sec)?;
        }
        {
            let mut db = self.db();
            let tx = db.transaction()?;
            match secondary {
                Some(sec) => self.put_secondary(&tx, &cam.id, sec)?,
                None => {
                    let sid = secondary_stream_id(&cam.id);
                    tx.execute(
                        "UPDATE cameras SET url = '', username = NULL, password_enc = NULL, stream_mode = 'removed'
                         WHERE id = ?1",
                        [&sid],
                    )?;
                    tx.execute("DELETE FROM camera_status WHERE camera_id = ?1", [&sid])?;
                }
            }
            tx.commit()?;
        }
        self.camera_by_id(&cam.id)
    }

    fn camera_by_id(&self, id: &str) -> Result<Camera> {
        self.db()
            .query_row(
                &format!("SELECT {CAMERA_COLUMNS} WHERE c.main_id IS NULL AND c.id = ?1"),
                [id],
                camera_from_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NoSuchCamera(id.to_owned()))
    }

    /// Writes the secondary's row: a new row, or the existing one (removed or not) with the
    /// new URL, credentials and mode and its counters and time origin kept.
    fn put_secondary(
        &self,
        tx: &rusqlite::Transaction<'_>,
        camera_id: &str,
        sec: &NewSecondary,
    ) -> Result<()> {
        let sid = secondary_stream_id(camera_id);
        let password_enc = sec
            .password
            .as_deref()
            .map(|p| self.secrets.seal(p.as_bytes()))
            .transpose()?;
        let now = now_us();
        // The name column is unique and not null; the id fills it, since `~` is no name.
        tx.execute(
            "INSERT INTO cameras (id, name, url, username, password_enc, enabled, time_origin_us, created_us, main_id, stream_mode)
             VALUES (?1, ?1, ?2, ?3, ?4, 1, ?5, ?5, ?6, ?7)
             ON CONFLICT(id) DO UPDATE SET url = excluded.url, username = excluded.username,
               password_enc = excluded.password_enc, stream_mode = excluded.stream_mode",
            params![sid, sec.url, sec.username, password_enc, now, camera_id, sec.mode.as_str()],
        )?;
        Ok(())
    }

    /// The password of a camera or secondary stream (by id), decrypted; only the recorder
    /// calls this.
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

    /// Points a camera at a new main-stream URL, keeping its id and so its recordings (the
    /// demo's sample camera listens on a new port each run). A running recorder follows
    /// within seconds.
    pub fn set_camera_url(&self, name: &str, url: &str) -> Result<Camera> {
        crate::ingest::validate_url(url).map_err(StoreError::InvalidCamera)?;
        let id = self.camera(name)?.id;
        let n = self.db().execute(
            "UPDATE cameras SET url = ?2 WHERE id = ?1",
            params![id, url],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchCamera(name.to_owned()));
        }
        self.camera(&id)
    }

    /// Pins (or with `None` unpins) the one certificate the camera's `rtsps://` streams may
    /// present, by SHA-256 fingerprint (canonical form, see `ingest_tls::parse_fingerprint`).
    /// The certificates remembered for its streams are forgotten: the pin decides from now
    /// on, and after an unpin the next verified certificate is remembered again. A running
    /// recorder follows within seconds.
    pub fn set_camera_pin(&self, name: &str, fingerprint: Option<&str>) -> Result<Camera> {
        let id = self.camera(name)?.id;
        self.db().execute(
            "UPDATE cameras SET tls_pin = CASE WHEN id = ?1 THEN ?2 ELSE tls_pin END, tls_seen = NULL
             WHERE id = ?1 OR main_id = ?1",
            params![id, fingerprint],
        )?;
        self.camera(&id)
    }

    /// Forgets the certificates the streams of a camera (by id) presented before (not its
    /// pin): a device accepted in place of another has certificates of its own.
    pub fn forget_tls_seen(&self, camera_id: &str) -> Result<()> {
        self.db().execute(
            "UPDATE cameras SET tls_seen = NULL WHERE id = ?1 OR main_id = ?1",
            [camera_id],
        )?;
        Ok(())
    }

    /// The fingerprint of the certificate a stream (by id) last presented and passed
    /// verification with.
    pub fn tls_seen(&self, stream_id: &str) -> Result<Option<String>> {
        Ok(self
            .db()
            .query_row(
                "SELECT tls_seen FROM cameras WHERE id = ?1",
                [stream_id],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    /// Remembers the certificate a stream presented and passed verification with.
    pub fn set_tls_seen(&self, stream_id: &str, fingerprint: &str) -> Result<()> {
        self.db().execute(
            "UPDATE cameras SET tls_seen = ?2 WHERE id = ?1",
            params![stream_id, fingerprint],
        )?;
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
    /// Removes a camera and its secondary stream and, with `delete_video`, the recordings
    /// of both.
    pub fn remove_camera(&self, name: &str, delete_video: bool) -> Result<Camera> {
        let cam = self.camera(name)?;
        let ids = [cam.id.clone(), secondary_stream_id(&cam.id)];
        {
            let mut db = self.db();
            let tx = db.transaction()?;
            for id in &ids {
                tx.execute("DELETE FROM cameras WHERE id = ?1", [id])?;
                tx.execute("DELETE FROM camera_status WHERE camera_id = ?1", [id])?;
                if delete_video {
                    tx.execute("DELETE FROM gops WHERE camera_id = ?1", [id])?;
                    tx.execute("DELETE FROM segments WHERE camera_id = ?1", [id])?;
                    tx.execute("DELETE FROM gaps WHERE camera_id = ?1", [id])?;
                }
                tx.execute("DELETE FROM recorder_runs WHERE camera_id = ?1", [id])?;
                tx.execute("DELETE FROM camera_devices WHERE camera_id = ?1", [id])?;
            }
            tx.commit()?;
        }
        if delete_video {
            for id in &ids {
                let dir = self.camera_dir(id);
                if dir.exists() {
                    fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
                }
            }
        }
        Ok(cam)
    }

    /// Records (or replaces) the identity of the device behind a camera; the last check of
    /// the device is forgotten (it was made against the identity replaced).
    pub fn set_device_identity(&self, camera_id: &str, d: &DeviceIdentity) -> Result<()> {
        self.db().execute(
            "INSERT INTO camera_devices (camera_id, onvif_url, manufacturer, model, firmware, serial, certificate, recorded_us)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(camera_id) DO UPDATE SET onvif_url=excluded.onvif_url,
               manufacturer=excluded.manufacturer, model=excluded.model, firmware=excluded.firmware,
               serial=excluded.serial, certificate=excluded.certificate, recorded_us=excluded.recorded_us,
               check_state=NULL, check_found=NULL, check_detail=NULL, checked_us=NULL",
            params![camera_id, d.onvif_url, d.manufacturer, d.model, d.firmware, d.serial, d.certificate, now_us()],
        )?;
        Ok(())
    }

    /// Stores the last device check of a camera (by id) that has a recorded identity.
    pub fn set_device_check(&self, camera_id: &str, c: &DeviceCheck) -> Result<()> {
        self.db().execute(
            "UPDATE camera_devices SET check_state = ?2, check_found = ?3, check_detail = ?4, checked_us = ?5
             WHERE camera_id = ?1",
            params![camera_id, c.state, c.found, c.detail, c.checked_us],
        )?;
        Ok(())
    }

    /// The last device check of a camera (by id), if one was made since its identity was
    /// recorded.
    pub fn device_check(&self, camera_id: &str) -> Result<Option<DeviceCheck>> {
        Ok(self
            .db()
            .query_row(
                "SELECT check_state, check_found, check_detail, checked_us FROM camera_devices
                 WHERE camera_id = ?1 AND check_state IS NOT NULL",
                [camera_id],
                |r| {
                    Ok(DeviceCheck {
                        state: r.get(0)?,
                        found: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                        detail: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                        checked_us: r.get::<_, Option<i64>>(3)?.unwrap_or_default(),
                    })
                },
            )
            .optional()?)
    }

    /// The recorded identity of every camera added by ONVIF, by camera id.
    pub fn device_identities(&self) -> Result<Vec<(String, DeviceIdentity)>> {
        let db = self.db();
        let mut stmt = db.prepare(
            "SELECT camera_id, onvif_url, manufacturer, model, firmware, serial, certificate
             FROM camera_devices ORDER BY camera_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                DeviceIdentity {
                    onvif_url: r.get(1)?,
                    manufacturer: r.get(2)?,
                    model: r.get(3)?,
                    firmware: r.get(4)?,
                    serial: r.get(5)?,
                    certificate: r.get(6)?,
                },
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The recorded identity of one camera (by name or id), if it was added by ONVIF.
    pub fn device_identity(&self, name: &str) -> Result<Option<DeviceIdentity>> {
        let id = self.camera(name)?.id;
        Ok(self
            .device_identities()?
            .into_iter()
            .find(|(c, _)| *c == id)
            .map(|(_, d)| d))
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

    /// The status of the stream `id` and the state front ends show for it (`vigil camera
    /// status`, the API's camera list).
    pub fn stream_status(&self, id: &str, enabled: bool, now_us: i64) -> Result<StreamStatus> {
        Ok(StreamStatus::new(self.status(id)?, enabled, now_us))
    }
}

/// A recorder refreshes its stream's status every few seconds; a status older than this means
/// no server is recording the stream.
pub const STALE_STATUS_US: i64 = 10_000_000;

/// A stream's stored status and what to show of it.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamStatus {
    /// `disabled`, `not running` when no server refreshed the status for
    /// [`STALE_STATUS_US`], else the recorder's own state.
    pub state: String,
    /// Whether the recorder's figures (fps, bit rate) describe the stream now: enabled and
    /// refreshed in time.
    pub current: bool,
    /// The stored status, if the stream ever had one.
    pub stored: Option<CameraStatus>,
}

impl StreamStatus {
    pub fn new(stored: Option<CameraStatus>, enabled: bool, now_us: i64) -> Self {
        let stale = stored
            .as_ref()
            .is_none_or(|s| now_us - s.updated_us > STALE_STATUS_US);
        let state = if !enabled {
            "disabled".to_owned()
        } else if stale {
            "not running".to_owned()
        } else {
            stored.as_ref().map(|s| s.state.clone()).unwrap_or_default()
        };
        StreamStatus {
            state,
            current: enabled && !stale,
            stored,
        }
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
    // Lookups take a name or an id (the API resolves a name, then works by id): a name that
    // looks like an id could make an id resolve to another camera.
    if is_camera_id(name) {
        return Err(StoreError::InvalidCamera(format!(
            "camera name '{name}' is not allowed: names of the form cam-<12 hex digits> are \
             camera ids; choose another name"
        )));
    }
    Ok(())
}

/// A secondary stream is checked like a camera's main stream; the messages say which.
fn check_secondary(sec: &NewSecondary) -> Result<()> {
    crate::ingest::validate_url(&sec.url)
        .map_err(|e| StoreError::InvalidCamera(format!("secondary stream: {e}")))?;
    if sec.password.is_some() && sec.username.is_none() {
        return Err(StoreError::InvalidCamera(
            "secondary stream: a password was given without a user name".into(),
        ));
    }
    Ok(())
}

/// A row of [`CAMERA_COLUMNS`].
fn camera_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Camera> {
    let secondary = match r.get::<_, Option<String>>(9)? {
        None => None,
        Some(id) => Some(SecondaryStream {
            id,
            url: r.get(10)?,
            username: r.get(11)?,
            has_password: r.get(12)?,
            mode: match r.get::<_, String>(13)?.as_str() {
                "recorded" => StreamMode::Recorded,
                _ => StreamMode::Live,
            },
            time_origin_us: r.get(14)?,
        }),
    };
    Ok(Camera {
        secondary,
        tls_pin: r.get(15)?,
        ..stream_from_row(r)?
    })
}

/// The first nine columns of [`CAMERA_COLUMNS`]: one stream's own row, without a secondary.
fn stream_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Camera> {
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
        secondary: None,
        tls_pin: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_shows_disabled_not_running_or_its_recorders_state() {
        let stored = CameraStatus {
            state: "recording".into(),
            updated_us: 100_000_000,
            ..Default::default()
        };
        let at = |now_us: i64, enabled: bool| {
            let s = StreamStatus::new(Some(stored.clone()), enabled, now_us);
            (s.state, s.current)
        };
        assert_eq!(at(105_000_000, true), ("recording".into(), true));
        assert_eq!(
            at(100_000_000 + STALE_STATUS_US, true),
            ("recording".into(), true)
        );
        assert_eq!(
            at(100_000_001 + STALE_STATUS_US, true),
            ("not running".into(), false),
            "no server refreshed it"
        );
        assert_eq!(at(105_000_000, false), ("disabled".into(), false));
        let never = StreamStatus::new(None, true, 0);
        assert_eq!(
            (never.state.as_str(), never.current),
            ("not running", false)
        );
        assert_eq!(StreamStatus::new(None, false, 0).state, "disabled");
    }
}
