//! The data directory: segment files, the SQLite index and crash recovery. This module owns
//! the [`Store`] handle, its errors and the schema; the rest is split by concern:
//! - `cameras`: the camera registry, camera passwords sealed at rest, live status;
//! - `index`: segment, GOP and gap rows, recorder runs, and the queries over them;
//! - `writer`: creating segment files and appending GOPs to them;
//! - `recovery`: reconciling files and index at start-up;
//! - `archive`: which segments live in the archive tier and which local copies may go;
//! - `rotation`: camera passwords during a rotation (pending, committed, abandoned).
//!
//! Durability order is what makes the store crash-safe: media bytes are fsynced before the
//! index row that points to them is written, and a new file's directory entry is synced before
//! the file is referenced. The index may therefore lag behind the files after a crash, never
//! the other way round, and [`Store::recover`] completes it from what is on disk
//! (docs/storage-format.md).

mod archive;
mod cameras;
mod import;
mod index;
mod locks;
mod recovery;
mod rotation;
mod writer;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension};

use crate::fmp4;
use crate::secrets::SecretBox;

pub use archive::ArchivedSegment;
pub use cameras::{
    Camera, CameraStatus, DeviceCheck, DeviceIdentity, NewCamera, NewSecondary, STALE_STATUS_US,
    SecondaryStream, StreamMode, StreamStatus, check_camera_name, main_stream_id,
    secondary_stream_id,
};
pub use import::{ImportedGop, codec_of, imported_gop_no, importing_path};
pub use index::{
    GAP_RECORDER_RESTARTED, GAP_RECORDING_STOPPED, GAP_UNCLEAN_SHUTDOWN, GapRow, GopRow,
    Interruption, SegmentRow,
};
pub use locks::{EXPIRY, LockRow, Locks};
pub use recovery::{InterruptedSegment, RecoveryReport};
pub use rotation::RotationState;
#[cfg(feature = "testing")]
pub use writer::WriteHook;
pub use writer::{SegmentWriter, WriteStep};

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
    #[error("no camera named '{0}'")]
    NoSuchCamera(String),
    #[error("camera '{0}' has no secondary stream, and never had one")]
    NoSecondary(String),
    #[error("a camera named '{0}' already exists; choose another name or remove it first")]
    DuplicateCamera(String),
    #[error("invalid camera: {0}")]
    InvalidCamera(String),
    #[error(
        "camera '{0}' has a password rotation in progress (started by another run, or interrupted); it is resolved at the next start of `vigil serve`, or by rotating again after a few minutes"
    )]
    RotationPending(String),
    #[error("camera '{0}' has no password rotation in progress")]
    NoRotationPending(String),
    #[error("{0}")]
    Secret(#[from] crate::secrets::SecretError),
    #[error("{0}")]
    Mp4(#[from] fmp4::Mp4Error),
    #[error("data directory {0} is not initialised")]
    NotInitialised(PathBuf),
    #[error(
        "the index {path} has schema version {found}, newer than this Vigil knows ({known}); run the Vigil version that wrote it"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
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

/// Changes to [`SCHEMA`] since the first release, applied in order, each once, in one
/// transaction per database open: `meta.schema_version` counts those applied (none before
/// this list existed). A new database gets the base schema and then every migration, so old
/// and new data directories end up with the same tables.
const MIGRATIONS: &[&str] = &[
    // 1: a camera's secondary stream is a row of its own (docs/storage-format.md, "Secondary
    // streams"): `main_id` is the camera it belongs to (NULL for cameras), `stream_mode`
    // `live`, `recorded` or `removed`.
    "ALTER TABLE cameras ADD COLUMN main_id TEXT;
     ALTER TABLE cameras ADD COLUMN stream_mode TEXT;
     CREATE UNIQUE INDEX IF NOT EXISTS cameras_by_main ON cameras (main_id);",
    // 2: evidence locks (docs/storage-format.md, "Evidence locks"): ranges retention keeps.
    "CREATE TABLE IF NOT EXISTS evidence_locks (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         camera_id TEXT NOT NULL,
         from_us INTEGER NOT NULL,
         to_us INTEGER NOT NULL,
         reason TEXT NOT NULL,
         created_by TEXT NOT NULL,
         created_us INTEGER NOT NULL,
         expires_us INTEGER,
         ended_us INTEGER,
         ended_by TEXT
     );
     CREATE INDEX IF NOT EXISTS evidence_locks_by_camera ON evidence_locks (camera_id, from_us);",
    // 3: RTSPS certificates (docs/storage-format.md, "Camera certificates"): `tls_pin` the
    // fingerprint an admin pinned for the camera, `tls_seen` the one a stream last presented
    // and passed verification with.
    "ALTER TABLE cameras ADD COLUMN tls_pin TEXT;
     ALTER TABLE cameras ADD COLUMN tls_seen TEXT;",
    // 4: the archive tier (docs/design/archive.md): `archived_us` when the segment's object
    // was verified in the object store (from then on the local file may be gone),
    // `archive_until_us` the Object Lock retention date the store holds for it,
    // `restored_until_us` until when a copy brought back for reading stays local.
    "ALTER TABLE segments ADD COLUMN archived_us INTEGER;
     ALTER TABLE segments ADD COLUMN archive_until_us INTEGER;
     ALTER TABLE segments ADD COLUMN restored_until_us INTEGER;",
    // 5: the identity of a camera added by ONVIF (docs/storage-format.md, "Device
    // identity"): what the device said it is and the certificate its ONVIF service showed.
    "CREATE TABLE IF NOT EXISTS camera_devices (
         camera_id TEXT PRIMARY KEY,
         onvif_url TEXT NOT NULL,
         manufacturer TEXT NOT NULL,
         model TEXT NOT NULL,
         firmware TEXT NOT NULL,
         serial TEXT NOT NULL,
         certificate TEXT,
         recorded_us INTEGER NOT NULL
     );",
    // 6: camera password rotation (docs/design/password-rotation.md): during a rotation the
    // new password, sealed like `password_enc`, waits in `password_pending_enc` (written
    // before the camera is told) until it is proven and committed or abandoned;
    // `password_pending_us` when it was written, `password_rotated_us` when a rotation last
    // committed, `password_rule` the camera's own password constraints (`LENGTH:SYMBOLS`).
    "ALTER TABLE cameras ADD COLUMN password_pending_enc BLOB;
     ALTER TABLE cameras ADD COLUMN password_pending_us INTEGER;
     ALTER TABLE cameras ADD COLUMN password_rotated_us INTEGER;
     ALTER TABLE cameras ADD COLUMN password_rule TEXT;",
    // 7: device allow-listing (docs/storage-format.md, "Device identity"): the last check of
    // the device answering at the camera's ONVIF address against the recorded identity:
    // `check_state` verified, mismatch or unverified, `check_found` what answered (the key a
    // change is told by), `check_detail` the reason in words, `checked_us` when.
    "ALTER TABLE camera_devices ADD COLUMN check_state TEXT;
     ALTER TABLE camera_devices ADD COLUMN check_found TEXT;
     ALTER TABLE camera_devices ADD COLUMN check_detail TEXT;
     ALTER TABLE camera_devices ADD COLUMN checked_us INTEGER;",
    // 8: a camera password set by hand (`vigil camera set-password`, docs/cameras-onvif.md):
    // `password_set_us` when; the recording runtime restarts the camera's streams when it
    // changes, so they log in with it at once instead of at their next back-off.
    "ALTER TABLE cameras ADD COLUMN password_set_us INTEGER;",
];

/// The schema version this build writes: the number of [`MIGRATIONS`].
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings a database opened by an older Vigil up to [`SCHEMA_VERSION`]. `BEGIN IMMEDIATE`
/// makes two processes opening the same old database at once migrate it once: the second
/// waits for the first and then finds nothing to do.
fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let found: i64 = tx
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get::<_, String>(0),
        )
        .optional()?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    for (n, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.execute_batch(sql)?;
        tracing::info!(version = n + 1, "index schema migrated");
    }
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [SCHEMA_VERSION.to_string()],
    )?;
    tx.commit()?;
    Ok(())
}

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
        let mut conn = Connection::open(&db_path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // WAL with NORMAL sync: a power cut may lose the newest index rows, which recovery
        // rebuilds from the (already fsynced) media, but never corrupts the database.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(SCHEMA)?;
        migrate(&mut conn, &db_path)?;
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

    pub fn camera_dir(&self, camera_id: &str) -> PathBuf {
        self.root.join("video").join(camera_id)
    }

    pub fn segment_path(&self, camera_id: &str, seq: i64) -> PathBuf {
        self.camera_dir(camera_id).join(format!("{seq:016x}.mp4"))
    }
}
