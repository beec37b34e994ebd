//! PostgreSQL 15 from Debian (`postgresql-15`, which `scripts/test-all.sh` installs) as a
//! throw-away server: `initdb` once into a template kept in the temp directory (shared by every
//! test process under a file lock), copied per server, then `postgres` run directly as a child
//! in a temp dir, on a unix socket and optionally on 127.0.0.1 with TLS and a password.
//!
//! The server is a child of a thread that never ends, with `PR_SET_PDEATHSIG`, so it dies with
//! the test process even when that is killed; [`PgServer::shared`] (one per test process, the
//! cheap case for a whole test binary) is stopped by an `atexit` handler, others on `Drop`.
//! PostgreSQL refuses to run as root: as root (CI) the server runs as the `postgres` user
//! that the Debian package creates, and its files are given to that user.
//!
//! Durability is off (`fsync=off`): these databases live for one test run.

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::free_port;

/// The role every test server has, superuser, trusted on the unix socket.
pub const USER: &str = "vigil";

/// Where Debian's PostgreSQL 15 programs are (`VIGIL_PG_BIN` overrides).
pub fn pg_bin() -> PathBuf {
    let dir = std::env::var_os("VIGIL_PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"));
    if !dir.join("postgres").exists() {
        panic!(
            "required test peer PostgreSQL 15 is missing ({}/postgres): install it with \
             `apt-get install postgresql-15` (scripts/test-all.sh installs every test peer)",
            dir.display()
        );
    }
    dir
}

/// TLS on 127.0.0.1 for [`PgServer::start_with`].
#[derive(Debug, Clone)]
pub struct PgTls {
    /// PEM certificate chain and key of the server.
    pub cert_pem: String,
    pub key_pem: String,
    /// The password of [`USER`] over TCP (SCRAM-SHA-256; TCP never trusts).
    pub password: String,
}

/// A running server (or one stopped by [`PgServer::stop`]).
pub struct PgServer {
    dir: tempfile::TempDir,
    data: PathBuf,
    /// The unix socket's directory.
    pub socket_dir: PathBuf,
    pub port: u16,
    tls: Option<PgTls>,
    pid: Mutex<Option<u32>>,
    owner: Option<(u32, u32)>,
    next_db: AtomicU32,
}

impl PgServer {
    /// One server for the whole test process, started at first use, stopped at exit.
    pub fn shared() -> &'static PgServer {
        static SHARED: OnceLock<PgServer> = OnceLock::new();
        SHARED.get_or_init(|| {
            let s = PgServer::start();
            extern "C" fn stop_shared() {
                if let Some(s) = SHARED.get() {
                    s.stop();
                    let _ = std::fs::remove_dir_all(s.dir.path());
                }
            }
            // SAFETY: registering a plain extern "C" function without captured state.
            unsafe { libc::atexit(stop_shared) };
            s
        })
    }

    /// A server on a unix socket only.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// A server on a unix socket and, with `tls`, on 127.0.0.1 with TLS and a password.
    pub fn start_with(tls: Option<PgTls>) -> Self {
        let bin = pg_bin();
        let owner = server_owner();
        let template = template(&bin, owner);
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let socket_dir = dir.path().join("sock");
        std::fs::create_dir(&socket_dir).unwrap();
        run(Command::new("cp").arg("-a").arg(&template).arg(&data));
        if let Some((uid, gid)) = owner {
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            chown(&socket_dir, uid, gid);
        }
        if let Some(t) = &tls {
            let cert = data.join("server.crt");
            let key = data.join("server.key");
            std::fs::write(&cert, &t.cert_pem).unwrap();
            std::fs::write(&key, &t.key_pem).unwrap();
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
            if let Some((uid, gid)) = owner {
                chown(&cert, uid, gid);
                chown(&key, uid, gid);
            }
        }
        let server = PgServer {
            dir,
            data,
            socket_dir,
            port: free_port(),
            tls,
            pid: Mutex::new(None),
            owner,
            next_db: AtomicU32::new(0),
        };
        server.resume();
        if let Some(t) = &server.tls {
            server.psql(
                "postgres",
                &format!(
                    "ALTER ROLE {USER} PASSWORD '{}'",
                    t.password.replace('\'', "''")
                ),
            );
        }
        server
    }

    /// Starts the server again after [`PgServer::stop`] (same data, port and socket) and waits
    /// until it accepts connections.
    pub fn resume(&self) {
        let bin = pg_bin();
        let mut cmd = Command::new(bin.join("postgres"));
        cmd.arg("-D")
            .arg(&self.data)
            .arg("-k")
            .arg(&self.socket_dir)
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .args(["-c", "synchronous_commit=off", "-c", "max_connections=60"])
            .args(["-c", "shared_buffers=16MB", "-c", "logging_collector=off"]);
        match &self.tls {
            Some(_) => {
                cmd.args(["-c", "listen_addresses=127.0.0.1", "-c", "ssl=on"])
                    .args([
                        "-c",
                        "ssl_cert_file=server.crt",
                        "-c",
                        "ssl_key_file=server.key",
                    ]);
            }
            None => {
                cmd.args(["-c", "listen_addresses="]);
            }
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("postgres.log"))
            .unwrap();
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some((uid, gid)) = self.owner {
            cmd.uid(uid).gid(gid);
        }
        // SAFETY: prctl is async-signal-safe; no allocation between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let (tx, rx) = std::sync::mpsc::channel();
        // The parent-death signal follows the thread that forked: this one never ends.
        std::thread::spawn(move || {
            let spawned = cmd.spawn();
            let keep = match spawned {
                Ok(child) => {
                    let _ = tx.send(Ok(child.id()));
                    Some(child)
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    None
                }
            };
            if let Some(mut child) = keep {
                let _ = child.wait();
            }
            loop {
                std::thread::park();
            }
        });
        let pid = rx.recv().unwrap().expect("start postgres");
        *self.pid.lock().unwrap() = Some(pid);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(bin.join("pg_isready"))
                .arg("-q")
                .arg("-h")
                .arg(&self.socket_dir)
                .arg("-p")
                .arg(self.port.to_string())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            if Instant::now() > deadline {
                panic!("PostgreSQL did not start within 30 s:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (fast shutdown: open connections are closed) and waits until it is
    /// gone. [`PgServer::resume`] starts it again.
    pub fn stop(&self) {
        let Some(pid) = self.pid.lock().unwrap().take() else {
            return;
        };
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(pid as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(20);
        // The waiting thread reaps the child; a gone pid fails kill(0).
        while unsafe { libc::kill(pid as i32, 0) } == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let sock = self.socket_dir.join(format!(".s.PGSQL.{}", self.port));
        let deadline = Instant::now() + Duration::from_secs(5);
        while sock.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A new, empty database; its name.
    pub fn create_database(&self) -> String {
        let n = self.next_db.fetch_add(1, Ordering::Relaxed);
        let name = format!("t{}_{n}", std::process::id());
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        name
    }

    /// `postgres://vigil@%2FSOCKET%2FDIR:PORT/DB`: the unix socket (its directory
    /// percent-encoded as the host).
    pub fn socket_url(&self, db: &str) -> String {
        let host = self.socket_dir.display().to_string().replace('/', "%2F");
        format!("postgres://{USER}@{host}:{}/{db}", self.port)
    }

    /// `postgres://vigil@HOST:PORT/DB?sslmode=verify-full` over TCP (a server with TLS).
    pub fn tls_url(&self, host: &str, db: &str) -> String {
        assert!(self.tls.is_some(), "this server was started without TLS");
        format!(
            "postgres://{USER}@{host}:{}/{db}?sslmode=verify-full",
            self.port
        )
    }

    /// Runs SQL with `psql` on the unix socket; panics with its output on failure.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(pg_bin().join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .arg("-h")
            .arg(&self.socket_dir)
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", USER, "-d", db, "-c", sql])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `Some((uid, gid))` of the `postgres` user when running as root (the server refuses root).
fn server_owner() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let line = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .unwrap_or_else(|| {
            panic!("running as root and there is no `postgres` user to run PostgreSQL as: install postgresql-15")
        });
    let f: Vec<&str> = line.split(':').collect();
    Some((f[2].parse().unwrap(), f[3].parse().unwrap()))
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The initdb'd data directory every server copies, made once under a lock.
fn template(bin: &Path, owner: Option<(u32, u32)>) -> PathBuf {
    let base = std::env::temp_dir().join(format!(
        "vigil-pg15-template-{}",
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() }
    ));
    let data = base.join("data");
    let done = base.join("ready");
    if done.exists() {
        return data;
    }
    std::fs::create_dir_all(&base).unwrap();
    let lock = std::fs::File::create(base.join("lock")).unwrap();
    use std::os::fd::AsRawFd as _;
    // SAFETY: flock on a file we own; released when `lock` is closed.
    unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir(&data).unwrap();
        let mut cmd = Command::new(bin.join("initdb"));
        cmd.arg("-D")
            .arg(&data)
            .args([
                "-U",
                USER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ])
            .args(["-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"]);
        if let Some((uid, gid)) = owner {
            std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
            chown(&data, uid, gid);
            cmd.uid(uid).gid(gid);
        }
        run(&mut cmd);
        std::fs::write(&done, "").unwrap();
    }
    drop(lock);
    data
}
