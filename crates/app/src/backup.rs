//! Backup and restore of an installation (docs/backup.md): a consistent snapshot of the
//! databases (SQLite `VACUUM INTO`, safe beside a recording server), the configuration, the
//! CA and keys and the evidence ledgers, as a tar stream sealed under a passphrase
//! ([`format`]); and its restore into a new data directory. Video is not in a backup.

pub mod format;

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use vigil_config::Config;
use zeroize::Zeroizing;

use crate::audit::Trail;
use crate::error::{Classified, ErrorKind};
use format::{FormatError, OpeningReader, SealingWriter};
use vigil_access::vigil_db::DbTarget;
use vigil_access::{Actor, AuditKind};

/// The databases of a data directory, snapshotted one by one (docs/storage-format.md).
pub const DATABASES: [&str; 3] = ["vigil.db", "access.db", "events.db"];
/// The directories copied file by file: keys, the PKI, and the evidence ledgers.
pub const DIRECTORIES: [&str; 3] = ["keys", "pki", "ledger"];
/// A backup holds every private key of the installation: a short passphrase would make the
/// file a copy of them for whoever guesses it.
pub const MIN_PASSPHRASE_CHARS: usize = 12;
/// The version of the tar layout and manifest (the container has its own version).
pub const MANIFEST_FORMAT: u32 = 1;
const MANIFEST: &str = "manifest.json";
const CONFIG: &str = "vigil.toml";
const DATA: &str = "data";
/// Bounds on what restore reads into memory.
const MAX_MANIFEST: u64 = 64 * 1024;
const MAX_CONFIG: u64 = 4 * 1024 * 1024;

/// A passphrase, wiped from memory when dropped; never printed.
#[derive(PartialEq, Eq)]
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    pub fn new(text: String) -> Passphrase {
        Passphrase(Zeroizing::new(text))
    }

    fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "the passphrase is too short: a backup holds the installation's private keys, so it needs at least {MIN_PASSPHRASE_CHARS} characters"
    )]
    WeakPassphrase,
    #[error("{} already exists; a backup never replaces a file", .0.display())]
    OutputExists(PathBuf),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("snapshot of {}: {source}", path.display())]
    Snapshot {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{0}")]
    Format(#[from] FormatError),
    #[error(
        "{} is not empty; restore only into a new or empty directory, so nothing in it is mixed with the backup",
        .0.display()
    )]
    NotEmpty(PathBuf),
    #[error("not a Vigil backup: it holds {0}, which Vigil never writes into one")]
    BadEntry(String),
    #[error("not a Vigil backup: {0}")]
    BadManifest(String),
    #[error("{0}")]
    Config(#[from] vigil_config::ConfigError),
    #[error("the configuration in the backup: {0}")]
    RestoredConfig(String),
    #[error("the restored data directory does not open: {0}")]
    Check(String),
    #[error("cannot record the {0} in the audit log: {1}")]
    Audit(&'static str, String),
    #[error("{0}")]
    DatabaseSettings(#[from] crate::database::DatabaseError),
    #[error("copy of the management data from {from}: {source}")]
    ManagementCopy {
        from: String,
        source: vigil_access::AccessError,
    },
}

impl Classified for BackupError {
    fn kind(&self) -> ErrorKind {
        match self {
            BackupError::WeakPassphrase
            | BackupError::BadEntry(_)
            | BackupError::BadManifest(_)
            | BackupError::Config(_)
            | BackupError::DatabaseSettings(_)
            | BackupError::RestoredConfig(_) => ErrorKind::InvalidInput,
            BackupError::Format(FormatError::WrongPassphrase) => ErrorKind::Unauthorized,
            BackupError::Format(_) => ErrorKind::InvalidInput,
            BackupError::OutputExists(_) | BackupError::NotEmpty(_) => ErrorKind::Conflict,
            BackupError::Io { .. }
            | BackupError::Snapshot { .. }
            | BackupError::Check(_)
            | BackupError::ManagementCopy { .. }
            | BackupError::Audit(..) => ErrorKind::Internal,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            BackupError::WeakPassphrase => "weak_passphrase",
            BackupError::OutputExists(_) => "output_exists",
            BackupError::NotEmpty(_) => "directory_not_empty",
            BackupError::Format(FormatError::WrongPassphrase) => "wrong_passphrase",
            BackupError::Format(_) | BackupError::BadEntry(_) | BackupError::BadManifest(_) => {
                "bad_backup"
            }
            BackupError::Config(_)
            | BackupError::DatabaseSettings(_)
            | BackupError::RestoredConfig(_) => "bad_config",
            BackupError::Io { .. }
            | BackupError::Snapshot { .. }
            | BackupError::Check(_)
            | BackupError::ManagementCopy { .. }
            | BackupError::Audit(..) => "internal",
        }
    }

    fn database_error(&self) -> Option<&vigil_access::AccessError> {
        match self {
            BackupError::ManagementCopy { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> BackupError + '_ {
    move |source| match format::format_error(&source) {
        Some(e) => BackupError::Format(e.clone()),
        None => BackupError::Io {
            path: path.to_owned(),
            source,
        },
    }
}

/// What a backup holds besides its files (`manifest.json`, the first entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub vigil_version: String,
    /// Unix seconds.
    pub created: i64,
    /// The data directory it was taken from.
    pub data_dir: PathBuf,
    /// Each database in the backup and its schema version (docs/storage-format.md).
    pub databases: Vec<(String, i64)>,
    /// Where the management data (`access.db` in the backup) was copied from when it was not
    /// the data directory's own file: "PostgreSQL user@host:port/db" (no secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management_database: Option<String>,
}

/// What `create` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    pub manifest: Manifest,
    /// Files in the backup besides the manifest (configuration, databases, keys, ledgers).
    pub files: usize,
    /// Size of the backup file.
    pub bytes: u64,
}

/// Backs up the installation `config_path` names into a new file `out` (mode 0600), while a
/// server may be recording: each database is copied with `VACUUM INTO` (a consistent
/// snapshot of it), ledgers up to their length at that moment (records are only appended,
/// so the copy is a prefix of the ledger, docs/signing-format.md §2). The backup is recorded
/// in the installation's audit log as an `export` by `actor` before the file takes its name:
/// a copy of every private key leaves no trace otherwise.
pub fn create(
    config_path: &Path,
    out: &Path,
    passphrase: &Passphrase,
    actor: &Actor,
) -> Result<BackupSummary, BackupError> {
    if passphrase.0.chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(BackupError::WeakPassphrase);
    }
    let cfg = Config::load(config_path)?;
    let config_text = fs::read(config_path).map_err(io_at(config_path))?;
    if out.exists() {
        return Err(BackupError::OutputExists(out.to_owned()));
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    // Snapshots go next to the output, not to /tmp: they are as large as the databases, and
    // a tmpfs may not hold them.
    let scratch = tempfile::Builder::new()
        .prefix(".vigil-backup-")
        .tempdir_in(&parent)
        .map_err(io_at(&parent))?;
    let management = crate::database::target(&cfg)?;
    let mut databases = Vec::new();
    let mut management_database = None;
    for name in DATABASES {
        let dest = scratch.path().join(name);
        if name == "access.db"
            && let DbTarget::Postgres(_) = &management
        {
            // The same tables, read in one snapshot, into an SQLite file: a backup restores
            // the same way whichever database held them (docs/backup.md).
            vigil_access::copy_database(
                &management,
                &DbTarget::Sqlite(dest.clone()),
                crate::database::now_ms(),
            )
            .map_err(|source| BackupError::ManagementCopy {
                from: crate::database::describe(&management),
                source,
            })?;
            let copy =
                rusqlite::Connection::open(&dest).map_err(|source| BackupError::Snapshot {
                    path: dest.clone(),
                    source,
                })?;
            let version = schema_version(&copy, &dest).map_err(|source| BackupError::Snapshot {
                path: dest.clone(),
                source,
            })?;
            databases.push((name.to_owned(), version));
            management_database = Some(crate::database::describe(&management));
            continue;
        }
        let src = cfg.data_dir.join(name);
        if name != "vigil.db" && !src.exists() {
            continue;
        }
        let version = snapshot(&src, &dest)?;
        databases.push((name.to_owned(), version));
    }
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        vigil_version: env!("CARGO_PKG_VERSION").to_owned(),
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
        data_dir: cfg.data_dir.clone(),
        databases,
        management_database,
    };

    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "backup".into());
    let partial = parent.join(format!(".{name}.{}.partial", std::process::id()));
    let result = write_backup(
        &partial,
        passphrase,
        &manifest,
        &config_text,
        scratch.path(),
        &cfg.data_dir,
    )
    .and_then(|files| {
        record(
            &management,
            actor,
            AuditKind::Export,
            "backup",
            serde_json::json!({
                "format": "backup", "output": out.display().to_string(), "files": files,
                "databases": manifest.databases,
            }),
        )?;
        // A link, not a rename: it fails instead of replacing a file that appeared at `out`
        // since the start (the partial file goes in either case).
        fs::hard_link(&partial, out).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => BackupError::OutputExists(out.to_owned()),
            _ => io_at(out)(e),
        })?;
        fs::remove_file(&partial).map_err(io_at(&partial))?;
        File::open(&parent)
            .and_then(|d| d.sync_all())
            .map_err(io_at(&parent))?;
        Ok(files)
    });
    let files = result.inspect_err(|_| {
        let _ = fs::remove_file(&partial);
    })?;
    let bytes = fs::metadata(out).map_err(io_at(out))?.len();
    Ok(BackupSummary {
        manifest,
        files,
        bytes,
    })
}

/// One audit entry in the management database `target` (the installation's own audit log,
/// in PostgreSQL when it is configured).
fn record(
    target: &DbTarget,
    actor: &Actor,
    kind: AuditKind,
    what: &'static str,
    detail: serde_json::Value,
) -> Result<(), BackupError> {
    let access = vigil_access::Access::open_target(target, vigil_access::AccessConfig::default())
        .map_err(|e| BackupError::Audit(what, e.to_string()))?;
    Trail::new(&access, actor.clone())
        .record(kind, detail)
        .map_err(|e| BackupError::Audit(what, e.to_string()))
}

/// `VACUUM INTO` a new file; returns the database's schema version.
fn snapshot(src: &Path, dest: &Path) -> Result<i64, BackupError> {
    let err = |source| BackupError::Snapshot {
        path: src.to_owned(),
        source,
    };
    if !src.exists() {
        return Err(BackupError::Io {
            path: src.to_owned(),
            source: io::Error::new(
                io::ErrorKind::NotFound,
                "no such database (is this an initialised data directory?)",
            ),
        });
    }
    let conn = rusqlite::Connection::open_with_flags(
        src,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(err)?;
    conn.execute("VACUUM INTO ?1", [dest.to_string_lossy()])
        .map_err(err)?;
    drop(conn);
    let copy = rusqlite::Connection::open(dest).map_err(err)?;
    schema_version(&copy, src).map_err(err)
}

/// `vigil.db` keeps its version in `meta`, the others in `PRAGMA user_version`.
fn schema_version(conn: &rusqlite::Connection, path: &Path) -> rusqlite::Result<i64> {
    if path.file_name().is_some_and(|n| n == "vigil.db") {
        use rusqlite::OptionalExtension as _;
        Ok(conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get::<_, String>(0),
            )
            .optional()?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    } else {
        conn.query_row("PRAGMA user_version", [], |r| r.get(0))
    }
}

fn write_backup(
    partial: &Path,
    passphrase: &Passphrase,
    manifest: &Manifest,
    config_text: &[u8],
    snapshots: &Path,
    data_dir: &Path,
) -> Result<usize, BackupError> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(partial)
        .map_err(io_at(partial))?;
    let sealing = SealingWriter::new(BufWriter::new(file), passphrase.bytes(), format::WRITE_COST)
        .map_err(io_at(partial))?;
    let mut tar = tar::Builder::new(sealing);
    tar.mode(tar::HeaderMode::Deterministic);
    let manifest_json = serde_json::to_vec_pretty(manifest).expect("serialisable");
    append_bytes(&mut tar, MANIFEST, &manifest_json, 0o600).map_err(io_at(partial))?;
    append_bytes(&mut tar, CONFIG, config_text, 0o600).map_err(io_at(partial))?;
    let mut files = 1;
    for (name, _) in &manifest.databases {
        let path = snapshots.join(name);
        append_file(&mut tar, &format!("{DATA}/{name}"), &path)?;
        files += 1;
    }
    for dir in DIRECTORIES {
        for path in files_under(&data_dir.join(dir))? {
            let rel = path
                .strip_prefix(data_dir)
                .expect("under the data directory");
            append_file(&mut tar, &format!("{DATA}/{}", rel.display()), &path)?;
            files += 1;
        }
    }
    let sealing = tar.into_inner().map_err(io_at(partial))?;
    let buffered = sealing.finish().map_err(io_at(partial))?;
    let file = buffered
        .into_inner()
        .map_err(|e| io_at(partial)(e.into_error()))?;
    file.sync_all().map_err(io_at(partial))?;
    Ok(files)
}

fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    data: &[u8],
    mode: u32,
) -> io::Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    tar.append_data(&mut h, name, data)
}

/// Appends a file as long as it is now: a ledger being appended to is copied up to here.
fn append_file<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    path: &Path,
) -> Result<(), BackupError> {
    let file = File::open(path).map_err(io_at(path))?;
    let meta = file.metadata().map_err(io_at(path))?;
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(meta.len());
    // Keys stay 0600; nothing is executable or writable by others.
    h.set_mode(meta.permissions().mode() & 0o644);
    tar.append_data(&mut h, name, file.take(meta.len()))
        .map_err(io_at(path))
}

/// Regular files under `dir`, sorted, skipping lock files (a lock belongs to a process);
/// none when `dir` does not exist.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>, BackupError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let entries = match fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound && d == dir => return Ok(out),
            Err(e) => return Err(io_at(&d)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_at(&d))?;
            let kind = entry.file_type().map_err(io_at(&entry.path()))?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() && entry.file_name() != ".lock" {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Where an entry of a backup goes; anything else in a backup is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Manifest,
    Config,
    /// A path inside the data directory: a database, or a file under keys/, pki/ or ledger/.
    Data(PathBuf),
}

/// Checks one tar entry's name and type against what [`create`] writes.
pub fn entry_destination(path: &Path, kind: tar::EntryType) -> Result<Entry, BackupError> {
    let bad = || BackupError::BadEntry(format!("{:?}", path.display().to_string()));
    if kind != tar::EntryType::Regular {
        return Err(bad());
    }
    if path == Path::new(MANIFEST) {
        return Ok(Entry::Manifest);
    }
    if path == Path::new(CONFIG) {
        return Ok(Entry::Config);
    }
    let rest = path.strip_prefix(DATA).map_err(|_| bad())?;
    let parts: Vec<_> = rest.components().collect();
    if parts.is_empty() || !parts.iter().all(|c| matches!(c, Component::Normal(_))) {
        return Err(bad());
    }
    let first = parts[0].as_os_str().to_string_lossy();
    let allowed = if DATABASES.contains(&first.as_ref()) {
        parts.len() == 1
    } else {
        DIRECTORIES.contains(&first.as_ref()) && parts.len() >= 2
    };
    if !allowed {
        return Err(bad());
    }
    Ok(Entry::Data(rest.to_owned()))
}

/// Reads a backup's plaintext (a tar stream) without writing anything: every entry's
/// destination is checked and the manifest parsed. Restore applies the same checks.
pub fn inspect(plain: impl Read) -> Result<Vec<Entry>, BackupError> {
    let here = Path::new("backup");
    let mut ar = tar::Archive::new(plain);
    let mut out = Vec::new();
    for entry in ar.entries().map_err(io_at(here))? {
        let mut entry = entry.map_err(io_at(here))?;
        let path = entry.path().map_err(io_at(here))?.into_owned();
        let dest = entry_destination(&path, entry.header().entry_type())?;
        if out.is_empty() && dest != Entry::Manifest {
            return Err(BackupError::BadManifest(
                "it does not start with a manifest".into(),
            ));
        }
        if dest == Entry::Manifest {
            if !out.is_empty() {
                return Err(BackupError::BadManifest("it has two manifests".into()));
            }
            parse_manifest(&mut entry)?;
        }
        out.push(dest);
    }
    if out.is_empty() {
        return Err(BackupError::BadManifest("it holds no manifest".into()));
    }
    Ok(out)
}

fn parse_manifest(r: impl Read) -> Result<Manifest, BackupError> {
    let mut text = Vec::new();
    r.take(MAX_MANIFEST + 1)
        .read_to_end(&mut text)
        .map_err(io_at(Path::new(MANIFEST)))?;
    if text.len() as u64 > MAX_MANIFEST {
        return Err(BackupError::BadManifest("the manifest is too large".into()));
    }
    let m: Manifest = serde_json::from_slice(&text)
        .map_err(|e| BackupError::BadManifest(format!("manifest: {e}")))?;
    if m.format != MANIFEST_FORMAT {
        return Err(BackupError::BadManifest(format!(
            "manifest format {} is not supported by this Vigil (it reads {MANIFEST_FORMAT})",
            m.format
        )));
    }
    Ok(m)
}

/// What `restore` brought back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreSummary {
    pub manifest: Manifest,
    pub files: usize,
    pub users: usize,
    pub cameras: usize,
    /// Where the restored configuration is: `data_dir/vigil.toml`, naming `data_dir`.
    pub config: PathBuf,
    /// The backup's configuration named a PostgreSQL database (`[database] url`): the restored
    /// one uses the restored `access.db` instead; `vigil db copy-from-sqlite` moves it into a
    /// new, empty PostgreSQL database.
    pub postgres_dropped: bool,
}

/// Restores `file` into `data_dir`, which must not exist or be empty. The configuration is
/// written to `data_dir/vigil.toml` with its `data_dir` set to the new directory; the
/// databases are opened once (migrating a backup of an older Vigil). On any failure nothing
/// of the backup is left in `data_dir`.
pub fn restore(
    file: &Path,
    data_dir: &Path,
    passphrase: &Passphrase,
    actor: &Actor,
) -> Result<RestoreSummary, BackupError> {
    let existed = match fs::read_dir(data_dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(BackupError::NotEmpty(data_dir.to_owned()));
            }
            true
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(io_at(data_dir)(e)),
    };
    // Open and authenticate the header before creating anything.
    let f = File::open(file).map_err(io_at(file))?;
    let reader = OpeningReader::new(BufReader::new(f), passphrase.bytes()).map_err(io_at(file))?;
    if !existed {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)
            .map_err(io_at(data_dir))?;
    }
    let data_dir = data_dir.canonicalize().map_err(io_at(data_dir))?;
    let result = extract(reader, file, &data_dir).and_then(|summary| {
        // The restored audit log says where its installation came back from.
        record(
            &DbTarget::Sqlite(data_dir.join("access.db")),
            actor,
            AuditKind::ConfigChanged,
            "restore",
            serde_json::json!({
                "action": "restored_from_backup", "backup": file.display().to_string(),
                "backup_of": summary.manifest.data_dir.display().to_string(),
                "backup_created": summary.manifest.created,
                "backup_vigil_version": summary.manifest.vigil_version,
            }),
        )?;
        Ok(summary)
    });
    if result.is_err() {
        // Leave the directory as it was: gone, or empty.
        if existed {
            if let Ok(entries) = fs::read_dir(&data_dir) {
                for e in entries.flatten() {
                    let p = e.path();
                    let _ = if p.is_dir() {
                        fs::remove_dir_all(&p)
                    } else {
                        fs::remove_file(&p)
                    };
                }
            }
        } else {
            let _ = fs::remove_dir_all(&data_dir);
        }
    }
    result
}

fn extract(
    reader: OpeningReader<BufReader<File>>,
    file: &Path,
    data_dir: &Path,
) -> Result<RestoreSummary, BackupError> {
    let mut ar = tar::Archive::new(reader);
    let mut manifest = None;
    let mut config_text = None;
    let mut files = 0;
    for entry in ar.entries().map_err(io_at(file))? {
        let mut entry = entry.map_err(io_at(file))?;
        let path = entry.path().map_err(io_at(file))?.into_owned();
        let dest = entry_destination(&path, entry.header().entry_type())?;
        match (&manifest, dest) {
            (None, Entry::Manifest) => manifest = Some(parse_manifest(&mut entry)?),
            (None, _) => {
                return Err(BackupError::BadManifest(
                    "it does not start with a manifest".into(),
                ));
            }
            (Some(_), Entry::Manifest) => {
                return Err(BackupError::BadManifest("it has two manifests".into()));
            }
            (Some(_), Entry::Config) => {
                let mut text = String::new();
                (&mut entry)
                    .take(MAX_CONFIG + 1)
                    .read_to_string(&mut text)
                    .map_err(|e| BackupError::RestoredConfig(e.to_string()))?;
                if text.len() as u64 > MAX_CONFIG {
                    return Err(BackupError::RestoredConfig(format!(
                        "the configuration is larger than {MAX_CONFIG} bytes"
                    )));
                }
                config_text = Some(text);
                files += 1;
            }
            (Some(_), Entry::Data(rel)) => {
                let target = data_dir.join(&rel);
                if let Some(dir) = target.parent() {
                    fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(dir)
                        .map_err(io_at(dir))?;
                }
                let mode = entry.header().mode().map_err(io_at(file))? & 0o644;
                let mut out = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(mode | 0o600)
                    .open(&target)
                    .map_err(io_at(&target))?;
                io::copy(&mut entry, &mut out).map_err(io_at(file))?;
                out.sync_all().map_err(io_at(&target))?;
                files += 1;
            }
        }
    }
    let manifest =
        manifest.ok_or_else(|| BackupError::BadManifest("it holds no manifest".into()))?;
    let config_text = config_text
        .ok_or_else(|| BackupError::RestoredConfig("the backup holds no vigil.toml".into()))?;
    if !data_dir.join("vigil.db").exists() {
        return Err(BackupError::BadManifest("it holds no vigil.db".into()));
    }

    let config_path = data_dir.join(CONFIG);
    let mut cfg = Config::parse(&config_text, &config_path)
        .map_err(|e| BackupError::RestoredConfig(e.to_string()))?;
    cfg.data_dir = data_dir.to_owned();
    // The restored management data is the backup's access.db. Left pointing at the
    // PostgreSQL database the backup was taken from, the restored server would use that
    // database's current data (or share it with the original server) instead.
    let postgres_dropped = cfg.database.url.take().is_some();
    if postgres_dropped {
        cfg.database = Default::default();
    }
    crate::settings::persist(&config_path, &cfg).map_err(BackupError::RestoredConfig)?;
    for dir in ["video", "ledger"] {
        let d = data_dir.join(dir);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&d)
            .map_err(io_at(&d))?;
    }

    // Open what was restored, as serve will: a backup of an older Vigil is migrated here.
    let store =
        vigil_media::store::Store::open(data_dir).map_err(|e| BackupError::Check(e.to_string()))?;
    let cameras = store
        .cameras()
        .map_err(|e| BackupError::Check(e.to_string()))?
        .len();
    drop(store);
    let access = vigil_access::Access::open(
        &data_dir.join("access.db"),
        vigil_access::AccessConfig::default(),
    )
    .map_err(|e| BackupError::Check(e.to_string()))?;
    let users = access
        .list_users()
        .map_err(|e| BackupError::Check(e.to_string()))?
        .len();
    drop(access);
    if data_dir.join("events.db").exists() {
        vigil_events::EventStore::open(data_dir).map_err(|e| BackupError::Check(e.to_string()))?;
    }
    vigil_pki::Pki::open(&data_dir.join("pki")).map_err(|e| BackupError::Check(e.to_string()))?;
    Ok(RestoreSummary {
        manifest,
        files,
        users,
        cameras,
        config: config_path,
        postgres_dropped,
    })
}

#[cfg(test)]
mod tests;
