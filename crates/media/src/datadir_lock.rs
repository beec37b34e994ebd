//! The data directory's exclusive lock: only one process records into a data directory.
//!
//! Two recorders on one directory would both append to each camera's evidence ledger, and
//! verification would then report the interleaved records as reordered: a false tamper alarm.
//! The lock is an OS advisory lock (`flock`) on `DATA_DIR/vigil.lock`, so the kernel releases it
//! when the holder dies in any way (`kill -9`, power cut), and no stale lock ever needs removing.
//! The file also names its holder (PID, command, start time) for the refusal message; it is
//! emptied on a clean release and never deleted, since deleting it would let a second process
//! lock a fresh file while the first still holds the old one.
//!
//! Only processes that write video or ledgers take the lock; readers (`recordings`, `export`,
//! `verify`) and commands that only edit the database keep working beside a running server.

use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// File name of the lock inside the data directory.
pub const LOCK_FILE: &str = "vigil.lock";

/// How long a refused process waits for the holder's details to appear: the holder writes
/// them right after locking, so a loser racing it may briefly read the previous holder's.
const HOLDER_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "the data directory {dir} is in use by {holder}; stop it first or use another data directory"
    )]
    InUse { dir: PathBuf, holder: Holder },
    #[error("cannot lock the data directory: {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Who holds (or last held) the lock, as the lock file says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holder {
    pub pid: Option<u32>,
    /// The command that took the lock (`serve`, `demo`, `camera remove`).
    pub command: Option<String>,
    /// RFC 3339, UTC.
    pub started: Option<String>,
}

impl Holder {
    fn parse(text: &str) -> Holder {
        let mut h = Holder::default();
        for line in text.lines() {
            match line.split_once('=') {
                Some(("pid", v)) => h.pid = v.trim().parse().ok(),
                Some(("command", v)) => h.command = Some(v.trim().to_owned()),
                Some(("started", v)) => h.started = Some(v.trim().to_owned()),
                _ => {}
            }
        }
        h
    }

    fn render(&self) -> String {
        let mut out = String::new();
        if let Some(pid) = self.pid {
            out += &format!("pid={pid}\n");
        }
        if let Some(c) = &self.command {
            out += &format!("command={c}\n");
        }
        if let Some(s) = &self.started {
            out += &format!("started={s}\n");
        }
        out
    }

    /// True when the named process exists; without a PID (or without /proc) nothing can be
    /// ruled out.
    fn is_alive(&self) -> bool {
        let proc = Path::new("/proc");
        match self.pid {
            Some(pid) => !proc.is_dir() || proc.join(pid.to_string()).exists(),
            None => false,
        }
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pid {
            Some(pid) => write!(f, "vigil process {pid}")?,
            None => write!(f, "another vigil process")?,
        }
        match (&self.command, &self.started) {
            (Some(c), Some(s)) => write!(f, " ({c}, started {s})"),
            (Some(c), None) => write!(f, " ({c})"),
            (None, Some(s)) => write!(f, " (started {s})"),
            (None, None) => Ok(()),
        }
    }
}

/// The held lock; dropping it releases the directory.
#[derive(Debug)]
pub struct DataDirLock {
    file: File,
    path: PathBuf,
    previous: Option<Holder>,
}

impl DataDirLock {
    /// Takes the data directory for this process, or says who has it. `command` names what
    /// this process does, for the message another process gets.
    pub fn acquire(data_dir: &Path, command: &str) -> Result<DataDirLock, LockError> {
        let path = data_dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o640)
            .open(&path)
            .map_err(io)?;
        let deadline = Instant::now() + HOLDER_WAIT;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::Error(e)) => return Err(io(e)),
                Err(TryLockError::WouldBlock) => {
                    let holder = read_holder(&mut file).map_err(io)?;
                    if holder.is_alive() || Instant::now() >= deadline {
                        return Err(LockError::InUse {
                            dir: data_dir.to_owned(),
                            holder,
                        });
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        // Details left behind mean the previous holder never released the lock cleanly.
        let previous =
            Some(read_holder(&mut file).map_err(io)?).filter(|h| *h != Holder::default());
        let me = Holder {
            pid: Some(std::process::id()),
            command: Some(command.to_owned()),
            started: Some(humantime::format_rfc3339_seconds(SystemTime::now()).to_string()),
        };
        let text = me.render();
        // Overwrite, then cut: a reader sees the old or the new details, never an empty file.
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.write_all(text.as_bytes()))
            .and_then(|_| file.set_len(text.len() as u64))
            .map_err(io)?;
        Ok(DataDirLock {
            file,
            path,
            previous,
        })
    }

    /// The holder that died without releasing the directory (crash, `kill -9`, power cut),
    /// if the last one did.
    pub fn previous_holder(&self) -> Option<&Holder> {
        self.previous.as_ref()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DataDirLock {
    fn drop(&mut self) {
        // Emptied while still locked; closing the file releases the lock.
        if let Err(e) = self.file.set_len(0) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot clear the data directory lock file");
        }
    }
}

fn read_holder(file: &mut File) -> std::io::Result<Holder> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0))?;
    file.take(4096).read_to_string(&mut text)?;
    Ok(Holder::parse(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_with_the_holder_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let lock = DataDirLock::acquire(dir.path(), "serve").unwrap();
        assert_eq!(lock.previous_holder(), None);
        let text = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert!(
            text.contains(&format!("pid={}\n", std::process::id())),
            "{text}"
        );
        assert!(text.contains("command=serve\n"), "{text}");

        // flock conflicts between two opens of the file even within one process.
        let err = DataDirLock::acquire(dir.path(), "demo").unwrap_err();
        let LockError::InUse { holder, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!(holder.pid, Some(std::process::id()));
        assert_eq!(holder.command.as_deref(), Some("serve"));
        let msg = err.to_string();
        assert!(
            msg.contains(&format!(
                "is in use by vigil process {} (serve, started ",
                std::process::id()
            )),
            "{msg}"
        );

        drop(lock);
        assert_eq!(
            std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap(),
            "",
            "a clean release leaves no holder behind"
        );
        let again = DataDirLock::acquire(dir.path(), "demo").unwrap();
        assert_eq!(again.previous_holder(), None);
    }

    #[test]
    fn details_left_by_a_dead_holder_are_reported_as_previous() {
        let dir = tempfile::tempdir().unwrap();
        let stale = "pid=4000000000\ncommand=serve\nstarted=2026-01-02T03:04:05Z\n";
        std::fs::write(dir.path().join(LOCK_FILE), stale).unwrap();
        let lock = DataDirLock::acquire(dir.path(), "serve").unwrap();
        let prev = lock.previous_holder().unwrap();
        assert_eq!(
            prev.to_string(),
            "vigil process 4000000000 (serve, started 2026-01-02T03:04:05Z)"
        );
    }

    #[test]
    fn a_missing_directory_is_an_io_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = DataDirLock::acquire(&dir.path().join("nope"), "serve").unwrap_err();
        assert!(matches!(err, LockError::Io { .. }), "{err}");
        assert!(err.to_string().contains("vigil.lock"), "{err}");
    }
}
