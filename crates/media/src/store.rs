//! The data directory: segment files, the SQLite index and crash recovery.
//!
//! Durability order is what makes the store crash-safe: media bytes are fsynced before the
//! index row that points to them is written, and a new file's directory entry is synced before
//! the file is referenced. The index may therefore lag behind the files after a crash, never
//! the other way round, and [`Store::recover`] completes it from what is on disk.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::fmp4;
use crate::secrets::SecretBox;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the recording volume is full while writing {path}; Vigil deletes the oldest unlocked video to make room (check retention settings and disk size)"
    )]
    DiskFull { path: PathBuf },
    #[error("no camera named '{0}'; `vigil camera list` shows the configured cameras")]
    NoSuchCamera(String),
    #[error("a camera named '{0}' already exists; choose another name or remove it first")]
    DuplicateCamera(String),
    #[error("invalid camera: {0}")]
    InvalidCamera(String),
    #[error("{0}")]
    Secret(#[from] crate::secrets::SecretError),
    #[error("{0}")]
    Mp4(#[from] fmp4::Mp4Error),
    #[error("data directory {0} is not initialised; run `vigil init --data-dir {0}` first")]
    NotInitialised(PathBuf),
}

impl StoreError {
    /// True when the volume is full, whether the media write or the index write noticed.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::DiskFull { .. } => true,
            StoreError::Db(rusqlite::Error::SqliteFailure(e, _)) => {
                e.code == rusqlite::ErrorCode::DiskFull
            }
            _ => false,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| {
        if source.raw_os_error() == Some(28) {
            StoreError::DiskFull {
                path: path.to_owned(),
            }
        } else {
            StoreError::Io {
                path: path.to_owned(),
                source,
            }
        }
    }
}

/// Microseconds since the Unix epoch, the time unit of the index.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

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

/// One segment file as indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRow {
    pub camera_id: String,
    pub seq: i64,
    pub start_us: i64,
    pub end_us: i64,
    pub bytes: i64,
    pub frames: i64,
    pub init_len: i64,
    pub init_sha256: Vec<u8>,
    pub codec: String,
    pub open: bool,
}

/// One GOP fragment as indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GopRow {
    pub camera_id: String,
    pub seq: i64,
    pub gop_no: i64,
    pub start_us: i64,
    pub duration_us: i64,
    pub offset: i64,
    pub len: i64,
    pub frames: i64,
    pub sha256: Vec<u8>,
}

/// A stored gap: nothing was recorded between the two instants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GapRow {
    pub start_us: i64,
    pub end_us: i64,
    pub reason: String,
}

/// Gap reason: the previous recorder run ended without stopping cleanly (crash, `kill -9`,
/// power cut).
pub const GAP_UNCLEAN_SHUTDOWN: &str = "unclean shutdown";
/// Gap reason: the recorder was stopped (server stop, camera disabled or changed) and started
/// again.
pub const GAP_RECORDING_STOPPED: &str = "recording stopped";
/// Gap reason: video from before runs were tracked; how that recording ended is unknown.
pub const GAP_RECORDER_RESTARTED: &str = "recorder restarted";

/// How a camera's recording was interrupted before the current recorder run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interruption {
    /// End of the last stored video (or the clean stop, if later), in Unix microseconds.
    pub since_us: i64,
    pub reason: String,
}

/// A segment a previous run left open (or never indexed): what recovery kept of it, so the
/// evidence ledger can vouch for GOPs the crashed run wrote but never entered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterruptedSegment {
    pub camera_id: String,
    pub seq: i64,
    /// File length after recovery; 0 when the file was removed (no complete GOP).
    pub final_len: u64,
    /// Bytes of a torn GOP cut off at the crash point.
    pub truncated_bytes: u64,
    /// The complete GOPs kept, in file order.
    pub gops: Vec<GopRow>,
}

/// What start-up recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub interrupted: Vec<InterruptedSegment>,
    pub segments_checked: usize,
    pub gops_reindexed: usize,
    pub bytes_truncated: u64,
    pub orphans_removed: usize,
    pub orphans_adopted: usize,
    pub missing_files: usize,
}

/// Ticks of 90 kHz to microseconds.
pub fn ticks_to_us(ticks: u64) -> i64 {
    (u128::from(ticks) * 1000 / 90) as i64
}

/// The data directory and its index.
pub struct Store {
    root: PathBuf,
    db: Mutex<Connection>,
    secrets: SecretBox,
    #[cfg(feature = "testing")]
    write_hook: Mutex<Option<WriteHook>>,
}

/// The steps of writing a segment in durability order, each named by what comes next. With
/// the `testing` feature a test can fail any of them (an `Err` as the real operation would
/// return it, e.g. ENOSPC) or die there (a panic leaves the files as a killed process would).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStep {
    /// A new segment file exists; its init is to be written and synced.
    SegmentInit,
    /// The init and the directory entry are synced; the segment's index row is next.
    SegmentIndex,
    /// A GOP's bytes are to be appended.
    GopWrite,
    /// The GOP's bytes are written; the `fdatasync` is next.
    GopSync,
    /// The GOP's bytes are synced; its index row is next.
    GopIndex,
}

/// Called at every [`WriteStep`] with the segment file's path.
#[cfg(feature = "testing")]
pub type WriteHook = std::sync::Arc<dyn Fn(WriteStep, &Path) -> std::io::Result<()> + Send + Sync>;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cameras (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    username TEXT,
    password_enc BLOB,
    enabled INTEGER NOT NULL DEFAULT 1,
    max_age_secs INTEGER,
    max_bytes INTEGER,
    time_origin_us INTEGER NOT NULL,
    next_seq INTEGER NOT NULL DEFAULT 1,
    next_gop INTEGER NOT NULL DEFAULT 1,
    created_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS camera_status (
    camera_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    last_error TEXT,
    bitrate_bps REAL NOT NULL DEFAULT 0,
    fps REAL NOT NULL DEFAULT 0,
    last_frame_us INTEGER,
    codec TEXT,
    resolution TEXT,
    updated_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS segments (
    camera_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    start_us INTEGER NOT NULL,
    end_us INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    frames INTEGER NOT NULL DEFAULT 0,
    init_len INTEGER NOT NULL,
    init_sha256 BLOB NOT NULL,
    codec TEXT NOT NULL,
    open INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (camera_id, seq)
);
CREATE TABLE IF NOT EXISTS gops (
    camera_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    gop_no INTEGER NOT NULL,
    start_us INTEGER NOT NULL,
    duration_us INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    len INTEGER NOT NULL,
    frames INTEGER NOT NULL,
    sha256 BLOB NOT NULL,
    PRIMARY KEY (camera_id, gop_no)
);
CREATE INDEX IF NOT EXISTS gops_by_time ON gops (camera_id, start_us);
CREATE INDEX IF NOT EXISTS gops_by_seq ON gops (camera_id, seq);
CREATE TABLE IF NOT EXISTS gaps (
    camera_id TEXT NOT NULL,
    start_us INTEGER NOT NULL,
    end_us INTEGER NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS gaps_by_time ON gaps (camera_id, start_us);
CREATE TABLE IF NOT EXISTS recorder_runs (
    camera_id TEXT PRIMARY KEY,
    started_us INTEGER NOT NULL,
    stopped_us INTEGER
);
"#;

const DB_FILE: &str = "vigil.db";

impl Store {
    /// Creates the directory layout and the secrets key, then opens the database. Idempotent.
    fn create_layout(root: &Path) -> Result<Self> {
        for dir in [root.to_path_buf(), root.join("video"), root.join("keys")] {
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
        SecretBox::create_key(&root.join("keys"))?;
        Self::open(root)
    }

    /// Opens an initialised data directory.
    pub fn open(root: &Path) -> Result<Self> {
        let db_path = root.join(DB_FILE);
        if !db_path.exists() {
            return Err(StoreError::NotInitialised(root.to_owned()));
        }
        let conn = Connection::open(&db_path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // WAL with NORMAL sync: a power cut may lose the newest index rows, which recovery
        // rebuilds from the (already fsynced) media, but never corrupts the database.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(SCHEMA)?;
        let secrets = SecretBox::open(&root.join("keys"))?;
        Ok(Self {
            root: root.to_owned(),
            db: Mutex::new(conn),
            secrets,
            #[cfg(feature = "testing")]
            write_hook: Mutex::new(None),
        })
    }

    /// Initialises a data directory (what `vigil init` does). Only this creates the database
    /// file, so `open` refuses an uninitialised directory instead of silently creating one.
    pub fn init(root: &Path) -> Result<Self> {
        fs::create_dir_all(root).map_err(io_err(root))?;
        let db_path = root.join(DB_FILE);
        if !db_path.exists() {
            Connection::open(&db_path)?;
        }
        Self::create_layout(root)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn db(&self) -> MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Installs (or with `None` removes) the hook run at every [`WriteStep`].
    #[cfg(feature = "testing")]
    pub fn set_write_hook(&self, hook: Option<WriteHook>) {
        *self.write_hook.lock().unwrap_or_else(|p| p.into_inner()) = hook;
    }

    /// Passes a [`WriteStep`]; without the `testing` feature this is always `Ok`.
    fn write_step(&self, step: WriteStep, path: &Path) -> std::io::Result<()> {
        #[cfg(feature = "testing")]
        {
            let hook = self
                .write_hook
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if let Some(hook) = hook {
                return hook(step, path);
            }
        }
        let _ = (step, path);
        Ok(())
    }

    pub fn camera_dir(&self, camera_id: &str) -> PathBuf {
        self.root.join("video").join(camera_id)
    }

    pub fn segment_path(&self, camera_id: &str, seq: i64) -> PathBuf {
        self.camera_dir(camera_id).join(format!("{seq:016x}.mp4"))
    }

    // ----- cameras -----

    pub fn add_camera(&self, new: &NewCamera) -> Result<Camera> {
        validate_camera_name(&new.name)?;
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

    // ----- status -----

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

    // ----- writing -----

    /// Allocates the next segment number and GOP number range owner for a camera.
    fn next_seq(&self, camera_id: &str) -> Result<i64> {
        let db = self.db();
        let seq: i64 = db.query_row(
            "UPDATE cameras SET next_seq = next_seq + 1 WHERE id = ?1 RETURNING next_seq - 1",
            [camera_id],
            |r| r.get(0),
        )?;
        Ok(seq)
    }

    /// The next unused per-camera GOP number (the fragment's `mfhd` sequence number). Only the
    /// camera's one writer allocates numbers, so it keeps the counter in memory and each indexed
    /// GOP advances the stored value in the same transaction.
    pub fn next_gop_no(&self, camera_id: &str) -> Result<i64> {
        Ok(self.db().query_row(
            "SELECT next_gop FROM cameras WHERE id = ?1",
            [camera_id],
            |r| r.get(0),
        )?)
    }

    /// Opens a new segment file: writes and syncs the init segment and the directory entry,
    /// then indexes the segment.
    pub fn begin_segment(
        &self,
        camera_id: &str,
        init: &[u8],
        codec: &str,
        start_us: i64,
    ) -> Result<SegmentWriter> {
        let seq = self.next_seq(camera_id)?;
        let dir = self.camera_dir(camera_id);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let path = self.segment_path(camera_id, seq);
        let mut file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .read(true)
            .mode(0o640)
            .open(&path)
            .map_err(io_err(&path))?;
        if let Err(e) = self
            .write_step(WriteStep::SegmentInit, &path)
            .and_then(|_| file.write_all(init))
            .and_then(|_| file.sync_data())
        {
            drop(file);
            let _ = fs::remove_file(&path);
            return Err(io_err(&path)(e));
        }
        sync_dir(&dir)?;
        self.write_step(WriteStep::SegmentIndex, &path)
            .map_err(io_err(&path))?;
        let hash = Sha256::digest(init).to_vec();
        self.db().execute(
            "INSERT INTO segments (camera_id, seq, start_us, end_us, bytes, frames, init_len, init_sha256, codec, open)
             VALUES (?1, ?2, ?3, ?3, ?4, 0, ?4, ?5, ?6, 1)",
            params![camera_id, seq, start_us, init.len() as i64, hash, codec],
        )?;
        Ok(SegmentWriter {
            camera_id: camera_id.to_owned(),
            seq,
            path,
            file,
            len: init.len() as u64,
            init_sha256: hash,
            start_us,
            end_us: start_us,
        })
    }

    fn insert_gop(&self, g: &GopRow, seg_end_us: i64, seg_len: i64) -> Result<()> {
        let mut db = self.db();
        let tx = db.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO gops (camera_id, seq, gop_no, start_us, duration_us, offset, len, frames, sha256)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![g.camera_id, g.seq, g.gop_no, g.start_us, g.duration_us, g.offset, g.len, g.frames, g.sha256],
        )?;
        tx.execute(
            "UPDATE segments SET end_us = max(end_us, ?3), bytes = ?4, frames = frames + ?5
             WHERE camera_id = ?1 AND seq = ?2",
            params![g.camera_id, g.seq, seg_end_us, seg_len, g.frames],
        )?;
        tx.execute(
            "UPDATE cameras SET next_gop = max(next_gop, ?2 + 1) WHERE id = ?1",
            params![g.camera_id, g.gop_no],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Marks a segment complete, or deletes it when it holds no GOP.
    pub fn close_segment(&self, camera_id: &str, seq: i64) -> Result<()> {
        let has_gop = self.db().query_row(
            "SELECT count(*) FROM gops WHERE camera_id = ?1 AND seq = ?2",
            params![camera_id, seq],
            |r| r.get::<_, i64>(0),
        )? > 0;
        if has_gop {
            self.finish_segment(camera_id, seq)
        } else {
            self.delete_segment(camera_id, seq).map(|_| ())
        }
    }

    fn finish_segment(&self, camera_id: &str, seq: i64) -> Result<()> {
        self.db().execute(
            "UPDATE segments SET open = 0 WHERE camera_id = ?1 AND seq = ?2",
            params![camera_id, seq],
        )?;
        Ok(())
    }

    pub fn record_gap(
        &self,
        camera_id: &str,
        start_us: i64,
        end_us: i64,
        reason: &str,
    ) -> Result<()> {
        self.db().execute(
            "INSERT INTO gaps (camera_id, start_us, end_us, reason) VALUES (?1, ?2, ?3, ?4)",
            params![camera_id, start_us, end_us, reason],
        )?;
        Ok(())
    }

    /// Marks the start of a recorder run for a camera and says how the recording since its
    /// last stored GOP was interrupted: by the previous run's clean stop or by its death (a
    /// run never marked stopped). The recorder stores this as the gap before its first GOP.
    /// `None` when the camera has no recorded video yet.
    pub fn begin_recorder_run(&self, camera_id: &str) -> Result<Option<Interruption>> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let last_end: Option<i64> = tx.query_row(
            "SELECT max(start_us + duration_us) FROM gops WHERE camera_id = ?1",
            [camera_id],
            |r| r.get(0),
        )?;
        let previous: Option<Option<i64>> = tx
            .query_row(
                "SELECT stopped_us FROM recorder_runs WHERE camera_id = ?1",
                [camera_id],
                |r| r.get(0),
            )
            .optional()?;
        tx.execute(
            "INSERT INTO recorder_runs (camera_id, started_us, stopped_us) VALUES (?1, ?2, NULL)
             ON CONFLICT(camera_id) DO UPDATE SET started_us = excluded.started_us, stopped_us = NULL",
            params![camera_id, now_us()],
        )?;
        tx.commit()?;
        let Some(last_end) = last_end else {
            return Ok(None);
        };
        Ok(Some(match previous {
            // A clean stop already stored any gap still open at that moment, up to the stop.
            Some(Some(stopped_us)) => Interruption {
                since_us: last_end.max(stopped_us),
                reason: GAP_RECORDING_STOPPED.into(),
            },
            Some(None) => Interruption {
                since_us: last_end,
                reason: GAP_UNCLEAN_SHUTDOWN.into(),
            },
            // Video recorded by a version that did not keep runs: how it stopped is unknown.
            None => Interruption {
                since_us: last_end,
                reason: GAP_RECORDER_RESTARTED.into(),
            },
        }))
    }

    /// Marks the camera's recorder run as stopped cleanly: its last GOP, segment and gaps are
    /// stored.
    pub fn end_recorder_run(&self, camera_id: &str) -> Result<()> {
        self.end_recorder_run_at(camera_id, now_us())
    }

    /// [`Store::end_recorder_run`] with the stop time given, so the recorder stamps the stop
    /// with the same clock it closed the last gap with.
    pub fn end_recorder_run_at(&self, camera_id: &str, stopped_us: i64) -> Result<()> {
        self.db().execute(
            "UPDATE recorder_runs SET stopped_us = ?2 WHERE camera_id = ?1",
            params![camera_id, stopped_us],
        )?;
        Ok(())
    }

    // ----- reading -----

    pub fn segments(&self, camera_id: &str) -> Result<Vec<SegmentRow>> {
        let db = self.db();
        let mut stmt = db.prepare(
            "SELECT camera_id, seq, start_us, end_us, bytes, frames, init_len, init_sha256, codec, open
             FROM segments WHERE camera_id = ?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map([camera_id], segment_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// GOPs overlapping `[from_us, to_us)`, starting with the one holding `from_us` (the
    /// keyframe at or before it), in recording order.
    pub fn gops_in_range(&self, camera_id: &str, from_us: i64, to_us: i64) -> Result<Vec<GopRow>> {
        let db = self.db();
        let first: Option<i64> = db
            .query_row(
                "SELECT max(start_us) FROM gops WHERE camera_id = ?1 AND start_us <= ?2",
                params![camera_id, from_us],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        let lower = first.unwrap_or(from_us);
        let mut stmt = db.prepare(
            "SELECT camera_id, seq, gop_no, start_us, duration_us, offset, len, frames, sha256
             FROM gops WHERE camera_id = ?1 AND start_us >= ?2 AND start_us < ?3
             ORDER BY gop_no",
        )?;
        let rows = stmt.query_map(params![camera_id, lower, to_us], gop_from_row)?;
        let mut out: Vec<GopRow> = rows.collect::<Result<_, _>>()?;
        // A GOP that started before `from` but ends before it too holds nothing asked for.
        out.retain(|g| g.start_us + g.duration_us > from_us || g.start_us >= from_us);
        Ok(out)
    }

    pub fn gaps(&self, camera_id: &str, from_us: i64, to_us: i64) -> Result<Vec<GapRow>> {
        let db = self.db();
        let mut stmt = db.prepare(
            "SELECT start_us, end_us, reason FROM gaps
             WHERE camera_id = ?1 AND end_us > ?2 AND start_us < ?3 ORDER BY start_us",
        )?;
        let rows = stmt.query_map(params![camera_id, from_us, to_us], |r| {
            Ok(GapRow {
                start_us: r.get(0)?,
                end_us: r.get(1)?,
                reason: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Continuous recorded ranges in `[from_us, to_us)`: consecutive GOPs whose times touch
    /// (within half a second) form one range.
    pub fn ranges(&self, camera_id: &str, from_us: i64, to_us: i64) -> Result<Vec<(i64, i64)>> {
        let gops = self.gops_in_range(camera_id, from_us, to_us)?;
        let mut out: Vec<(i64, i64)> = Vec::new();
        for g in gops {
            let end = g.start_us + g.duration_us;
            match out.last_mut() {
                Some(last) if g.start_us <= last.1 + 500_000 => last.1 = last.1.max(end),
                _ => out.push((g.start_us, end)),
            }
        }
        Ok(out)
    }

    /// Total bytes of a camera's segment files, per the index.
    pub fn camera_bytes(&self, camera_id: &str) -> Result<i64> {
        Ok(self.db().query_row(
            "SELECT coalesce(sum(bytes), 0) FROM segments WHERE camera_id = ?1",
            [camera_id],
            |r| r.get(0),
        )?)
    }

    /// Reads `len` bytes at `offset` of a segment file.
    pub fn read_segment_range(
        &self,
        camera_id: &str,
        seq: i64,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>> {
        let path = self.segment_path(camera_id, seq);
        let mut f = File::open(&path).map_err(io_err(&path))?;
        f.seek(SeekFrom::Start(offset)).map_err(io_err(&path))?;
        let mut buf = vec![0; len as usize];
        f.read_exact(&mut buf).map_err(io_err(&path))?;
        Ok(buf)
    }

    /// Deletes a closed segment: the index rows first, then the file, so a crash in between
    /// leaves an orphan file that recovery adopts or removes, never a row without a file.
    pub fn delete_segment(&self, camera_id: &str, seq: i64) -> Result<u64> {
        let path = self.segment_path(camera_id, seq);
        let len = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        {
            let mut db = self.db();
            let tx = db.transaction()?;
            tx.execute(
                "DELETE FROM gops WHERE camera_id = ?1 AND seq = ?2",
                params![camera_id, seq],
            )?;
            tx.execute(
                "DELETE FROM segments WHERE camera_id = ?1 AND seq = ?2",
                params![camera_id, seq],
            )?;
            tx.commit()?;
        }
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&path)(e)),
        }
        Ok(len)
    }

    /// Oldest closed segments across all cameras, for freeing space.
    pub fn oldest_closed_segments(&self, limit: usize) -> Result<Vec<SegmentRow>> {
        let db = self.db();
        let mut stmt = db.prepare(
            "SELECT camera_id, seq, start_us, end_us, bytes, frames, init_len, init_sha256, codec, open
             FROM segments WHERE open = 0 ORDER BY start_us LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], segment_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Each camera's newest closed segment, which the free-space floor never deletes.
    pub fn newest_closed_segments(&self) -> Result<std::collections::HashMap<String, i64>> {
        let db = self.db();
        let mut stmt = db.prepare(
            "SELECT camera_id, max(seq) FROM segments WHERE open = 0 GROUP BY camera_id",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    // ----- recovery -----

    /// Reconciles files and index after any shutdown, clean or not: indexes complete GOPs
    /// found on disk, truncates a torn last fragment, adopts or removes files the index does
    /// not know, drops rows whose file is gone, and closes segments left open.
    pub fn recover(&self) -> Result<RecoveryReport> {
        let mut report = RecoveryReport::default();
        for cam in self.cameras()? {
            self.recover_camera(&cam, &mut report)?;
        }
        Ok(report)
    }

    fn recover_camera(&self, cam: &Camera, report: &mut RecoveryReport) -> Result<()> {
        let dir = self.camera_dir(&cam.id);
        let mut on_disk: Vec<i64> = match fs::read_dir(&dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    let stem = name.strip_suffix(".mp4")?;
                    i64::from_str_radix(stem, 16).ok()
                })
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_err(&dir)(e)),
        };
        on_disk.sort_unstable();
        let indexed = self.segments(&cam.id)?;
        for seg in &indexed {
            if on_disk.binary_search(&seg.seq).is_err() {
                tracing::warn!(camera = %cam.name, seq = seg.seq, "segment file missing; dropping its index rows");
                self.delete_segment(&cam.id, seg.seq)?;
                report.missing_files += 1;
            }
        }
        let mut max_gop = 0i64;
        for &seq in &on_disk {
            let row = indexed.iter().find(|s| s.seq == seq);
            if let Some(r) = row
                && !r.open
            {
                continue;
            }
            report.segments_checked += 1;
            max_gop = max_gop.max(self.recover_segment(cam, seq, row.is_some(), report)?);
        }
        // Sequence counters may have been rolled back with the index; never reuse a number.
        let max_seq = on_disk.last().copied().unwrap_or(0);
        let db = self.db();
        let max_indexed_gop: i64 = db.query_row(
            "SELECT coalesce(max(gop_no), 0) FROM gops WHERE camera_id = ?1",
            [&cam.id],
            |r| r.get(0),
        )?;
        db.execute(
            "UPDATE cameras SET next_seq = max(next_seq, ?2), next_gop = max(next_gop, ?3) WHERE id = ?1",
            params![cam.id, max_seq + 1, max_gop.max(max_indexed_gop) + 1],
        )?;
        Ok(())
    }

    /// Returns the highest GOP number found in the file.
    fn recover_segment(
        &self,
        cam: &Camera,
        seq: i64,
        indexed: bool,
        report: &mut RecoveryReport,
    ) -> Result<i64> {
        let path = self.segment_path(&cam.id, seq);
        let data = fs::read(&path).map_err(io_err(&path))?;
        let layout = match fmp4::scan_segment(&data) {
            Ok(l) => l,
            Err(e) => {
                // Nothing playable survives in a file whose init is unreadable.
                tracing::warn!(camera = %cam.name, seq, error = %e, "removing unreadable segment file");
                self.delete_segment(&cam.id, seq)?;
                report.orphans_removed += 1;
                report.interrupted.push(InterruptedSegment {
                    camera_id: cam.id.clone(),
                    seq,
                    truncated_bytes: data.len() as u64,
                    ..Default::default()
                });
                return Ok(0);
            }
        };
        if layout.fragments.is_empty() {
            tracing::info!(camera = %cam.name, seq, "removing segment without a complete GOP");
            self.delete_segment(&cam.id, seq)?;
            report.orphans_removed += 1;
            report.interrupted.push(InterruptedSegment {
                camera_id: cam.id.clone(),
                seq,
                truncated_bytes: layout.torn_tail,
                ..Default::default()
            });
            return Ok(0);
        }
        if layout.torn_tail > 0 {
            let keep = data.len() as u64 - layout.torn_tail;
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io_err(&path))?;
            f.set_len(keep).map_err(io_err(&path))?;
            f.sync_all().map_err(io_err(&path))?;
            report.bytes_truncated += layout.torn_tail;
            tracing::warn!(camera = %cam.name, seq, bytes = layout.torn_tail, "truncated torn fragment");
        }
        let init = &data[..layout.init_len as usize];
        let init_hash = Sha256::digest(init).to_vec();
        let mut rows = Vec::new();
        for &(offset, len) in &layout.fragments {
            let bytes = &data[offset as usize..(offset + len) as usize];
            let info = fmp4::parse_fragment(bytes)?;
            rows.push(GopRow {
                camera_id: cam.id.clone(),
                seq,
                gop_no: i64::from(info.sequence_number),
                start_us: cam.time_origin_us + ticks_to_us(info.base_decode_time),
                duration_us: ticks_to_us(info.duration),
                offset: offset as i64,
                len: len as i64,
                frames: i64::from(info.samples),
                sha256: Sha256::digest(bytes).to_vec(),
            });
        }
        let start = rows.first().map(|g| g.start_us).unwrap_or(0);
        let end = rows
            .last()
            .map(|g| g.start_us + g.duration_us)
            .unwrap_or(start);
        let frames: i64 = rows.iter().map(|g| g.frames).sum();
        let bytes = (data.len() as u64 - layout.torn_tail) as i64;
        let codec = codec_of_init(init);
        let mut db = self.db();
        let tx = db.transaction()?;
        let before: i64 = tx.query_row(
            "SELECT count(*) FROM gops WHERE camera_id = ?1 AND seq = ?2",
            params![cam.id, seq],
            |r| r.get(0),
        )?;
        tx.execute(
            "DELETE FROM gops WHERE camera_id = ?1 AND seq = ?2",
            params![cam.id, seq],
        )?;
        for g in &rows {
            tx.execute(
                "INSERT OR REPLACE INTO gops (camera_id, seq, gop_no, start_us, duration_us, offset, len, frames, sha256)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![g.camera_id, g.seq, g.gop_no, g.start_us, g.duration_us, g.offset, g.len, g.frames, g.sha256],
            )?;
        }
        tx.execute(
            "INSERT INTO segments (camera_id, seq, start_us, end_us, bytes, frames, init_len, init_sha256, codec, open)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0)
             ON CONFLICT(camera_id, seq) DO UPDATE SET start_us=excluded.start_us, end_us=excluded.end_us,
               bytes=excluded.bytes, frames=excluded.frames, open=0",
            params![cam.id, seq, start, end, bytes, frames, layout.init_len as i64, init_hash, codec],
        )?;
        tx.commit()?;
        if !indexed {
            report.orphans_adopted += 1;
        }
        report.gops_reindexed += rows.len().saturating_sub(before as usize);
        let max_gop = rows.iter().map(|g| g.gop_no).max().unwrap_or(0);
        report.interrupted.push(InterruptedSegment {
            camera_id: cam.id.clone(),
            seq,
            final_len: bytes as u64,
            truncated_bytes: layout.torn_tail,
            gops: rows,
        });
        Ok(max_gop)
    }
}

/// The sample entry type in an init segment ("avc1", "hvc1"...), for the index.
fn codec_of_init(init: &[u8]) -> String {
    for kind in [b"avc1", b"avc3", b"hvc1", b"hev1"] {
        if init.windows(4).any(|w| w == kind) {
            return String::from_utf8_lossy(kind).into_owned();
        }
    }
    "unknown".into()
}

/// An open segment file being appended to by one recorder.
pub struct SegmentWriter {
    pub camera_id: String,
    pub seq: i64,
    path: PathBuf,
    file: File,
    len: u64,
    pub init_sha256: Vec<u8>,
    pub start_us: i64,
    pub end_us: i64,
}

impl SegmentWriter {
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one fragment (given as consecutive pieces: header, then frame data), syncs it,
    /// then indexes it. A failed write is rolled back to the previous length so the file never
    /// holds a partial fragment that the index skips.
    pub fn append(
        &mut self,
        store: &Store,
        pieces: &[&[u8]],
        gop_no: i64,
        start_us: i64,
        duration_us: i64,
        frames: i64,
    ) -> Result<GopRow> {
        let offset = self.len;
        let total: u64 = pieces.iter().map(|p| p.len() as u64).sum();
        let mut hasher = Sha256::new();
        for p in pieces {
            hasher.update(p);
        }
        let write = self
            .file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| store.write_step(WriteStep::GopWrite, &self.path))
            .and_then(|_| write_all_vectored(&mut self.file, pieces))
            .and_then(|_| store.write_step(WriteStep::GopSync, &self.path))
            .and_then(|_| self.file.sync_data());
        if let Err(e) = write {
            let _ = self.file.set_len(offset);
            return Err(io_err(&self.path)(e));
        }
        self.len += total;
        self.end_us = self.end_us.max(start_us + duration_us);
        let row = GopRow {
            camera_id: self.camera_id.clone(),
            seq: self.seq,
            gop_no,
            start_us,
            duration_us,
            offset: offset as i64,
            len: total as i64,
            frames,
            sha256: hasher.finalize().to_vec(),
        };
        let indexed = store
            .write_step(WriteStep::GopIndex, &self.path)
            .map_err(io_err(&self.path))
            .and_then(|_| store.insert_gop(&row, self.end_us, self.len as i64));
        if let Err(e) = indexed {
            // A GOP the index does not hold must not stay in the file either: the evidence
            // ledger only hears of indexed GOPs, and unlisted bytes inside a segment would later
            // look inserted.
            self.len = offset;
            let _ = self.file.set_len(offset);
            return Err(e);
        }
        Ok(row)
    }

    /// Marks the segment complete; an empty segment (no GOP) is deleted instead. On failure
    /// (a full volume) [`Store::close_segment`] may be retried with the same numbers.
    pub fn close(self, store: &Store) -> Result<()> {
        store.close_segment(&self.camera_id, self.seq)
    }
}

/// Writes every piece with as few system calls as the kernel allows (`writev`).
fn write_all_vectored(file: &mut File, pieces: &[&[u8]]) -> std::io::Result<()> {
    let mut bufs: Vec<std::io::IoSlice<'_>> =
        pieces.iter().map(|p| std::io::IoSlice::new(p)).collect();
    let mut bufs = bufs.as_mut_slice();
    // Skip empty slices so a zero-length write is never mistaken for a stalled device.
    std::io::IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match file.write_vectored(bufs) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => std::io::IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

fn validate_camera_name(name: &str) -> Result<()> {
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

fn segment_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SegmentRow> {
    Ok(SegmentRow {
        camera_id: r.get(0)?,
        seq: r.get(1)?,
        start_us: r.get(2)?,
        end_us: r.get(3)?,
        bytes: r.get(4)?,
        frames: r.get(5)?,
        init_len: r.get(6)?,
        init_sha256: r.get(7)?,
        codec: r.get(8)?,
        open: r.get(9)?,
    })
}

fn gop_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<GopRow> {
    Ok(GopRow {
        camera_id: r.get(0)?,
        seq: r.get(1)?,
        gop_no: r.get(2)?,
        start_us: r.get(3)?,
        duration_us: r.get(4)?,
        offset: r.get(5)?,
        len: r.get(6)?,
        frames: r.get(7)?,
        sha256: r.get(8)?,
    })
}
