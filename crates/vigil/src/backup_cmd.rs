//! `vigil backup` and `vigil restore`: reading the passphrase and printing the result; the use
//! cases are `vigil_app::backup` (docs/backup.md).

use std::io::{BufRead as _, IsTerminal as _, Read as _, Write as _};
use std::path::{Path, PathBuf};

use vigil_app::backup::{self, Passphrase};

#[derive(clap::Args)]
pub struct BackupArgs {
    /// The backup file to create (never replaced; written with mode 0600).
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Read the passphrase from the first line of this file (e.g. /dev/fd/3) instead of the
    /// terminal or standard input. The passphrase is never a command-line argument.
    #[arg(long)]
    pub passphrase_file: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct RestoreArgs {
    /// The backup file `vigil backup` wrote.
    pub file: PathBuf,
    /// The data directory to restore into: it must not exist or be empty. The restored
    /// configuration is DATA_DIR/vigil.toml.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Read the passphrase from the first line of this file instead of the terminal or
    /// standard input.
    #[arg(long)]
    pub passphrase_file: Option<PathBuf>,
}

pub fn backup(args: &BackupArgs, config: &Path) -> anyhow::Result<()> {
    let passphrase = read_passphrase(args.passphrase_file.as_deref(), true)?;
    let s = backup::create(
        config,
        &args.output,
        &passphrase,
        &vigil_app::audit::cli_actor(),
    )?;
    println!(
        "Backed up {} files ({} bytes, encrypted) to {}",
        s.files,
        s.bytes,
        args.output.display()
    );
    println!(
        "It holds the configuration, databases, keys, certificates and evidence ledgers of {}; no video.",
        s.manifest.data_dir.display()
    );
    if let Some(from) = &s.manifest.management_database {
        println!("The users, permissions, tokens and audit log were copied from {from}.");
    }
    println!("Keep the passphrase apart from the file: without it nothing can be restored.");
    Ok(())
}

pub fn restore(args: &RestoreArgs) -> anyhow::Result<()> {
    let passphrase = read_passphrase(args.passphrase_file.as_deref(), false)?;
    let s = backup::restore(
        &args.file,
        &args.data_dir,
        &passphrase,
        &vigil_app::audit::cli_actor(),
    )?;
    println!(
        "Restored {} files from a backup of {} (Vigil {}): {} users, {} cameras",
        s.files,
        s.manifest.data_dir.display(),
        s.manifest.vigil_version,
        s.users,
        s.cameras
    );
    println!("Configuration: {}", s.config.display());
    if s.postgres_dropped {
        println!(
            "The backup's configuration used PostgreSQL; the restored one uses the restored access.db (SQLite). To move it into a new, empty PostgreSQL database: set [database] url, then vigil --config {} db copy-from-sqlite",
            s.config.display()
        );
    }
    println!(
        "Video is not in a backup: copy video/ (and ledger/, if newer) from the old data directory, then vigil --config {} serve",
        s.config.display()
    );
    Ok(())
}

/// The most a passphrase file may hold.
const MAX_PASSPHRASE_FILE: u64 = 4096;

/// The passphrase from a file, the terminal (not echoed; asked twice for a new backup) or the
/// first line of standard input.
fn read_passphrase(file: Option<&Path>, new: bool) -> anyhow::Result<Passphrase> {
    if let Some(path) = file {
        // Bounded: a passphrase is a line, and the file could be a device that never ends.
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_PASSPHRASE_FILE + 1).read_to_string(&mut text))
            .map_err(|e| anyhow::anyhow!("passphrase file {}: {e}", path.display()))?;
        if text.len() as u64 > MAX_PASSPHRASE_FILE {
            anyhow::bail!(
                "passphrase file {}: longer than {MAX_PASSPHRASE_FILE} bytes; it should hold the passphrase on its first line",
                path.display()
            );
        }
        return Ok(Passphrase::new(first_line(text)));
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        return Ok(Passphrase::new(first_line(line)));
    }
    let first = Passphrase::new(prompt("Backup passphrase: ")?);
    if new {
        let again = Passphrase::new(prompt("The same passphrase again: ")?);
        if first != again {
            anyhow::bail!("the two passphrases differ; nothing was written");
        }
    }
    Ok(first)
}

fn first_line(mut text: String) -> String {
    if let Some(end) = text.find(['\n', '\r']) {
        text.truncate(end);
    }
    text
}

/// Reads a line from the terminal with echo off, restoring the terminal afterwards.
pub(crate) fn prompt(question: &str) -> anyhow::Result<String> {
    use std::os::fd::AsRawFd as _;
    let mut err = std::io::stderr();
    write!(err, "{question}")?;
    err.flush()?;
    let fd = std::io::stdin().as_raw_fd();
    // SAFETY: termios is plain data; tcgetattr/tcsetattr only read and write it for `fd`,
    // which stays open for the whole call.
    let saved = unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(fd, &mut t) != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        let saved = t;
        t.c_lflag &= !libc::ECHO;
        t.c_lflag |= libc::ECHONL;
        if libc::tcsetattr(fd, libc::TCSANOW, &t) != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        saved
    };
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    // SAFETY: as above, with the settings read before.
    unsafe {
        libc::tcsetattr(fd, libc::TCSANOW, &saved);
    }
    read?;
    Ok(first_line(line))
}
