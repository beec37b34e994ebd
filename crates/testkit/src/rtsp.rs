//! [`RtspPeer`]: a real RTSP camera for tests, backed by GStreamer's gst-rtsp-server.
//!
//! The server itself is `tests/peers/rtsp_server.py` (run with Debian's Python, see
//! [`GST_PYTHON`](crate::GST_PYTHON)). This module starts it, waits for its `READY port=N` line,
//! keeps the tail of its stderr for failure messages, reads the per-mount frame counters it
//! writes to a stats file, and stops it (SIGTERM, then SIGKILL) when dropped.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::{Error, GST_PYTHON, repo_root, require_gst_rtsp_server};

/// Lines of server stderr kept for diagnostics.
const LOG_LINES: usize = 400;
/// Exit code of rtsp_server.py when it cannot bind its port.
const EXIT_CANNOT_LISTEN: i32 = 3;

/// RTSP authentication the server demands. gst-rtsp-server offers one method per server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Auth {
    #[default]
    None,
    Basic {
        user: String,
        password: String,
    },
    Digest {
        user: String,
        password: String,
    },
}

impl Auth {
    pub fn basic(user: &str, password: &str) -> Auth {
        Auth::Basic {
            user: user.into(),
            password: password.into(),
        }
    }
    pub fn digest(user: &str, password: &str) -> Auth {
        Auth::Digest {
            user: user.into(),
            password: password.into(),
        }
    }
    fn credentials(&self) -> Option<(&str, &str)> {
        match self {
            Auth::None => None,
            Auth::Basic { user, password } | Auth::Digest { user, password } => {
                Some((user, password))
            }
        }
    }
}

/// RTP transports the server offers in SETUP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Interleaved in the RTSP TCP connection only.
    Tcp,
    /// RTP/UDP only.
    Udp,
    Both,
}

/// Everything about a peer besides its mounts.
#[derive(Debug, Clone)]
pub struct PeerOptions {
    pub auth: Auth,
    /// PEM certificate (chain) and key: serve `rtsps://`.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `None`: TCP and UDP, or TCP only with TLS (so no media leaves unencrypted).
    pub transport: Option<Transport>,
    /// 0: the server picks a free port (reported in READY).
    pub port: u16,
    pub ready_timeout: Duration,
    /// How often the server rewrites its stats file (what `frames_sent` reads while running).
    pub stats_interval: Duration,
}

impl Default for PeerOptions {
    fn default() -> Self {
        PeerOptions {
            auth: Auth::None,
            tls: None,
            transport: None,
            port: 0,
            ready_timeout: Duration::from_secs(60),
            stats_interval: Duration::from_millis(250),
        }
    }
}

impl PeerOptions {
    pub fn new(auth: Auth) -> Self {
        PeerOptions {
            auth,
            ..Self::default()
        }
    }
    pub fn tls(mut self, cert_pem: impl Into<PathBuf>, key_pem: impl Into<PathBuf>) -> Self {
        self.tls = Some((cert_pem.into(), key_pem.into()));
        self
    }
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = Some(transport);
        self
    }
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
}

/// Counters of one mount, as written by the server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct MountStats {
    /// `h264` or `h265`.
    pub codec: String,
    pub clip: String,
    /// Frames and keyframes in one pass of the clip.
    pub clip_frames: u64,
    pub clip_keyframes: u64,
    /// Frames (access units) handed to the mount's RTP payloader, i.e. sent to the clients
    /// watching at that moment. The mount's pipeline is shared, so this counts the stream once,
    /// not once per client; it starts when the first client sets the stream up.
    pub frames_sent: u64,
    pub keyframes_sent: u64,
    pub bytes_sent: u64,
    /// Complete passes through the clip.
    pub loops: u64,
    /// Pipelines built for this mount. One while clients overlap; a new one (starting again at
    /// the clip's first frame) after every client has left.
    pub medias_created: u64,
    /// PLAY requests received.
    pub plays: u64,
}

/// Everything the server reports about one run (one process).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct PeerStats {
    pub port: u16,
    pub pid: u32,
    pub stalled: bool,
    pub clients_connected_total: u64,
    pub clients_now: i64,
    /// Keyed by mount path with a leading slash (`/cam`).
    pub mounts: BTreeMap<String, MountStats>,
}

impl PeerStats {
    /// Parses the server's stats JSON (`path` only for messages).
    pub fn from_json(path: &Path, json: &str) -> Result<PeerStats, Error> {
        serde_json::from_str(json).map_err(|e| Error::Stats {
            path: path.to_owned(),
            reason: format!("{e} (is tests/peers/rtsp_server.py from the same checkout?)"),
        })
    }
}

struct Running {
    child: Child,
    stderr_thread: Option<JoinHandle<()>>,
}

/// A running GStreamer RTSP server serving clips as endless live streams.
///
/// Dropping it stops the server. The server also exits by itself when the test process dies.
pub struct RtspPeer {
    mounts: Vec<(String, PathBuf)>,
    options: PeerOptions,
    port: u16,
    dir: tempfile::TempDir,
    running: Option<Running>,
    log: Arc<Mutex<VecDeque<String>>>,
    /// Final stats of runs that ended (restart keeps counting across runs).
    finished: Vec<PeerStats>,
}

/// Mount names become URL paths and command-line arguments: keep them plain.
fn normalize_mount(mount: &str) -> Result<String, Error> {
    let m = mount.trim_matches('/');
    let ok = !m.is_empty()
        && m.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        && !m
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..");
    if ok {
        Ok(m.to_owned())
    } else {
        Err(Error::InvalidOptions(format!(
            "mount {mount:?} must be a non-empty path of [A-Za-z0-9._-] segments, e.g. \"cam1\""
        )))
    }
}

/// Percent-encodes a URL userinfo part (RFC 3986 unreserved characters stay as they are).
fn encode_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line, in clock ticks. The command
/// name (field 2) may contain spaces and parentheses, so fields are counted after its last ')'.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn signal(pid: u32, sig: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) has no memory-safety preconditions; `pid` is our own child, which we have
    // not reaped yet (reaping happens only in `shutdown`), so the pid cannot have been reused.
    unsafe {
        libc::kill(pid, sig);
    }
}

impl RtspPeer {
    /// Starts a server for `mounts` (name, clip file) with `auth`. Panics with the server's
    /// stderr when it does not come up.
    ///
    /// ```no_run
    /// use vigil_testkit::{Auth, Clip, RtspPeer};
    /// let clip = Clip::h264(4, 25, 50, 640, 360, false);
    /// let peer = RtspPeer::start(&[("cam", &clip)], Auth::digest("admin", "secret"));
    /// assert!(peer.url("cam").starts_with("rtsp://127.0.0.1:"));
    /// ```
    pub fn start<P: AsRef<Path>>(mounts: &[(&str, P)], auth: Auth) -> RtspPeer {
        Self::start_with(mounts, PeerOptions::new(auth))
    }

    /// [`start`](Self::start) with TLS, transport, port and timeout options.
    pub fn start_with<P: AsRef<Path>>(mounts: &[(&str, P)], options: PeerOptions) -> RtspPeer {
        Self::try_start(mounts, options).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_start<P: AsRef<Path>>(
        mounts: &[(&str, P)],
        options: PeerOptions,
    ) -> Result<RtspPeer, Error> {
        require_gst_rtsp_server();
        if mounts.is_empty() {
            return Err(Error::InvalidOptions("at least one mount is needed".into()));
        }
        let mut normalized = Vec::with_capacity(mounts.len());
        for (name, clip) in mounts {
            let name = normalize_mount(name)?;
            if normalized.iter().any(|(n, _)| *n == name) {
                return Err(Error::InvalidOptions(format!("mount {name:?} given twice")));
            }
            let path = clip.as_ref().to_path_buf();
            if !path.is_file() {
                return Err(Error::InvalidOptions(format!(
                    "clip {} for mount {name:?} does not exist",
                    path.display()
                )));
            }
            normalized.push((name, path));
        }
        if let Some((user, _)) = options.auth.credentials()
            && (user.is_empty() || user.contains(':'))
        {
            return Err(Error::InvalidOptions(format!(
                "user name {user:?} must be non-empty and without ':'"
            )));
        }
        if options.stats_interval.is_zero() {
            return Err(Error::InvalidOptions(
                "stats_interval must be positive".into(),
            ));
        }
        let dir = tempfile::Builder::new()
            .prefix("vigil-rtsp-peer-")
            .tempdir()
            .map_err(|e| Error::io(std::env::temp_dir(), e))?;
        let mut peer = RtspPeer {
            mounts: normalized,
            port: options.port,
            options,
            dir,
            running: None,
            log: Arc::new(Mutex::new(VecDeque::new())),
            finished: Vec::new(),
        };
        peer.spawn(Duration::ZERO)?;
        Ok(peer)
    }

    fn stats_path(&self) -> PathBuf {
        self.dir.path().join("stats.json")
    }

    fn script() -> PathBuf {
        repo_root().join("tests/peers/rtsp_server.py")
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(GST_PYTHON);
        cmd.arg(Self::script())
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--stats-file")
            .arg(self.stats_path())
            .arg("--stats-interval")
            .arg(format!("{:.3}", self.options.stats_interval.as_secs_f64()));
        for (name, clip) in &self.mounts {
            let mut arg = std::ffi::OsString::from(format!("{name}="));
            arg.push(clip.as_os_str());
            cmd.arg("--mount").arg(arg);
        }
        match &self.options.auth {
            Auth::None => {}
            Auth::Basic { user, password } | Auth::Digest { user, password } => {
                let method = if matches!(self.options.auth, Auth::Basic { .. }) {
                    "basic"
                } else {
                    "digest"
                };
                cmd.args(["--auth", method, "--user", user, "--password", password]);
            }
        }
        if let Some((cert, key)) = &self.options.tls {
            cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
        }
        if let Some(t) = self.options.transport {
            cmd.arg("--protocols").arg(match t {
                Transport::Tcp => "tcp",
                Transport::Udp => "udp",
                Transport::Both => "both",
            });
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Starts the server process; when `retry_bind` is non-zero and the port is still taken
    /// (restart on a fixed port), tries again until that much time has passed.
    fn spawn(&mut self, retry_bind: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + retry_bind;
        loop {
            match self.spawn_once() {
                Err(Error::ServerExited { status, stderr })
                    if status.contains(&format!("exit status: {EXIT_CANNOT_LISTEN}"))
                        && Instant::now() < deadline =>
                {
                    let _ = (status, stderr);
                    thread::sleep(Duration::from_millis(100));
                }
                other => return other,
            }
        }
    }

    fn spawn_once(&mut self) -> Result<(), Error> {
        let _ = std::fs::remove_file(self.stats_path());
        let mut cmd = self.command();
        let mut child = cmd.spawn().map_err(|source| Error::Spawn {
            command: format!("{GST_PYTHON} {}", Self::script().display()),
            source,
        })?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");

        let log = Arc::clone(&self.log);
        let stderr_thread = thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                if log.len() == LOG_LINES {
                    log.pop_front();
                }
                log.push_back(line);
            }
        });
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent && let Some(port) = line.strip_prefix("READY port=") {
                    sent = tx.send(port.trim().parse::<u16>().ok()).is_ok();
                }
            }
        });

        let timeout = self.options.ready_timeout;
        match rx.recv_timeout(timeout) {
            Ok(Some(port)) => {
                self.port = port;
                self.running = Some(Running {
                    child,
                    stderr_thread: Some(stderr_thread),
                });
                Ok(())
            }
            Ok(None) => {
                let _ = child.kill();
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                let _ = stderr_thread.join();
                Err(Error::ServerExited {
                    status: format!("{status}; READY line without a valid port"),
                    stderr: self.stderr(),
                })
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // stdout closed without READY: the server exited (or is exiting).
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                let _ = stderr_thread.join();
                Err(Error::ServerExited {
                    status,
                    stderr: self.stderr(),
                })
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = stderr_thread.join();
                Err(Error::NotReady {
                    timeout_secs: timeout.as_secs(),
                    stderr: self.stderr(),
                })
            }
        }
    }

    /// The port the server listens on (kept across [`restart`](Self::restart)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `rtsp://127.0.0.1:PORT/mount` (`rtsps://` with TLS), without credentials: a recorder
    /// under test must pass them separately.
    /// Panics if `mount` is not served by this peer (a typo would otherwise show up as a 404
    /// far from its cause).
    pub fn url(&self, mount: &str) -> String {
        let key = self.mount_key(mount);
        let mount = key.trim_start_matches('/');
        let scheme = if self.options.tls.is_some() {
            "rtsps"
        } else {
            "rtsp"
        };
        format!("{scheme}://127.0.0.1:{}/{mount}", self.port)
    }

    /// The URL with `user:password@` for tools such as ffmpeg that take credentials only there.
    pub fn url_with_credentials(&self, mount: &str) -> String {
        let url = self.url(mount);
        match self.options.auth.credentials() {
            None => url,
            Some((user, password)) => {
                let (scheme, rest) = url.split_once("://").expect("url has a scheme");
                format!(
                    "{scheme}://{}:{}@{rest}",
                    encode_userinfo(user),
                    encode_userinfo(password)
                )
            }
        }
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.running.as_ref().map(|r| r.child.id())
    }

    /// CPU time (user + system) the running server process has used so far, from
    /// `/proc/<pid>/stat`; for benchmarks that subtract the camera's share.
    pub fn cpu_time(&self) -> Option<Duration> {
        let pid = self.pid()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        parse_cpu_ticks(&stat).map(|ticks| {
            // SAFETY: sysconf has no preconditions.
            let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
            Duration::from_nanos(ticks * 1_000_000_000 / hz)
        })
    }

    /// Whether the server process is alive.
    pub fn is_running(&mut self) -> bool {
        match self.running.as_mut() {
            Some(r) => matches!(r.child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The last lines the server wrote to stderr (over all its runs).
    pub fn stderr(&self) -> String {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Stats of the current run (at most `stats_interval` old), or of the last run if stopped.
    pub fn stats(&self) -> PeerStats {
        self.try_stats().unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_stats(&self) -> Result<PeerStats, Error> {
        if self.running.is_some() {
            self.read_stats_file()
        } else {
            Ok(self.finished.last().cloned().unwrap_or_default())
        }
    }

    fn read_stats_file(&self) -> Result<PeerStats, Error> {
        let path = self.stats_path();
        let json = std::fs::read_to_string(&path).map_err(|e| Error::Stats {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        PeerStats::from_json(&path, &json)
    }

    fn mount_key(&self, mount: &str) -> String {
        let name = normalize_mount(mount).unwrap_or_else(|e| panic!("{e}"));
        if !self.mounts.iter().any(|(n, _)| *n == name) {
            let known = self
                .mounts
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            panic!(
                "{}",
                Error::UnknownMount {
                    mount: mount.into(),
                    known
                }
            );
        }
        format!("/{name}")
    }

    /// Frames this peer has sent on `mount`, summed over all runs (across
    /// [`restart`](Self::restart)). While the server runs the count is at most
    /// `stats_interval` old; after [`stop`](Self::stop) it is exact.
    pub fn frames_sent(&self, mount: &str) -> u64 {
        let key = self.mount_key(mount);
        let previous: u64 = self
            .finished
            .iter()
            .filter_map(|s| s.mounts.get(&key))
            .map(|m| m.frames_sent)
            .sum();
        let current = if self.running.is_some() {
            self.stats()
                .mounts
                .get(&key)
                .map(|m| m.frames_sent)
                .unwrap_or(0)
        } else {
            0
        };
        previous + current
    }

    /// Waits until `frames_sent(mount) >= at_least`; panics after `timeout` with the server log.
    pub fn wait_frames_sent(&self, mount: &str, at_least: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            let n = self.frames_sent(mount);
            if n >= at_least {
                return n;
            }
            if Instant::now() >= deadline {
                panic!(
                    "RTSP peer sent only {n} of {at_least} frames on {mount:?} within {timeout:?}; \
                     server stderr:\n{}",
                    self.stderr()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Freezes every mount: connections stay open but no frame is sent, like a hung camera.
    pub fn stall(&self) {
        if let Some(pid) = self.pid() {
            signal(pid, libc::SIGUSR1);
        }
    }

    /// Ends [`stall`](Self::stall); timestamps continue with a jump of the stalled time.
    pub fn resume(&self) {
        if let Some(pid) = self.pid() {
            signal(pid, libc::SIGUSR2);
        }
    }

    /// Stops the server (SIGTERM; clients see the connection close) and returns the final stats
    /// of this run. The port stays reserved for [`restart`](Self::restart) only by convention.
    pub fn stop(&mut self) -> PeerStats {
        self.try_stop().unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_stop(&mut self) -> Result<PeerStats, Error> {
        let Some(status) = self.shutdown() else {
            return Ok(self.finished.last().cloned().unwrap_or_default());
        };
        if !status.success() {
            return Err(Error::ServerExited {
                status: format!("{status} on SIGTERM"),
                stderr: self.stderr(),
            });
        }
        let stats = self.read_stats_file()?;
        self.finished.push(stats.clone());
        Ok(stats)
    }

    /// Stops the server if it runs, then starts it again on the same port with the same mounts,
    /// so a recorder pointed at [`url`](Self::url) can reconnect. Frame counts carry over.
    pub fn restart(&mut self) {
        self.try_restart().unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_restart(&mut self) -> Result<(), Error> {
        if self.running.is_some() {
            self.try_stop()?;
        }
        // The old socket may linger briefly; another process may even have taken the port.
        self.spawn(Duration::from_secs(10))
    }

    /// SIGTERM, then SIGKILL after a grace period; returns the exit status if a process ran.
    fn shutdown(&mut self) -> Option<ExitStatus> {
        let mut running = self.running.take()?;
        let child = &mut running.child;
        if let Ok(Some(status)) = child.try_wait() {
            if let Some(t) = running.stderr_thread.take() {
                let _ = t.join();
            }
            return Some(status);
        }
        signal(child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                _ => {
                    let _ = child.kill();
                    break child.wait().ok();
                }
            }
        };
        if let Some(t) = running.stderr_thread.take() {
            let _ = t.join();
        }
        status
    }
}

impl Drop for RtspPeer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for RtspPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No credentials here: Debug output ends up in test logs.
        f.debug_struct("RtspPeer")
            .field("port", &self.port)
            .field("mounts", &self.mounts)
            .field("tls", &self.options.tls.is_some())
            .field("pid", &self.pid())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_names_are_checked() {
        assert_eq!(normalize_mount("/cam1").unwrap(), "cam1");
        assert_eq!(
            normalize_mount("site/cam-2.main").unwrap(),
            "site/cam-2.main"
        );
        for bad in ["", "/", "a b", "a=b", "../x", "a//b", "x/./y", "cam?x"] {
            let err = normalize_mount(bad).unwrap_err().to_string();
            assert!(err.contains("mount"), "{bad}: {err}");
        }
    }

    #[test]
    fn cpu_ticks_from_proc_stat() {
        let stat = "4242 (python3 (x) y) S 1 2 3 4 5 6 7 8 9 10 120 35 0 0 20 0 4 0";
        assert_eq!(parse_cpu_ticks(stat), Some(155));
        assert_eq!(parse_cpu_ticks("4242 (p) S 1 2"), None);
        assert_eq!(parse_cpu_ticks("no parenthesis"), None);
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(parse_cpu_ticks(&own).is_some(), "{own}");
    }

    #[test]
    fn userinfo_is_percent_encoded() {
        assert_eq!(encode_userinfo("admin"), "admin");
        assert_eq!(encode_userinfo("p@ss:w/rd %"), "p%40ss%3Aw%2Frd%20%25");
    }

    #[test]
    fn stats_json_parses_and_rejects_garbage() {
        let json = r#"{"port": 5, "pid": 9, "stalled": false, "clients_connected_total": 2,
            "clients_now": 1, "mounts": {"/cam": {"codec": "h264", "clip": "c.mp4",
            "clip_frames": 10, "clip_keyframes": 1, "frames_sent": 7, "keyframes_sent": 1,
            "bytes_sent": 100, "loops": 0, "medias_created": 1, "plays": 1}}}"#;
        let s = PeerStats::from_json(Path::new("s.json"), json).unwrap();
        assert_eq!(s.mounts["/cam"].frames_sent, 7);
        let err = PeerStats::from_json(Path::new("s.json"), r#"{"port": "x"}"#).unwrap_err();
        assert!(err.to_string().contains("s.json"), "{err}");
    }

    #[test]
    fn invalid_options_are_refused_before_spawning() {
        let none: [(&str, &Path); 0] = [];
        let err = RtspPeer::try_start(&none, PeerOptions::default()).unwrap_err();
        assert!(err.to_string().contains("at least one mount"), "{err}");

        let err = RtspPeer::try_start(
            &[("cam", Path::new("/nonexistent/clip.mp4"))],
            PeerOptions::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");

        let script = RtspPeer::script();
        let err = RtspPeer::try_start(
            &[("cam", script.as_path()), ("/cam/", script.as_path())],
            PeerOptions::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");

        let err = RtspPeer::try_start(
            &[("cam", script.as_path())],
            PeerOptions::new(Auth::digest("a:b", "p")),
        )
        .unwrap_err();
        assert!(err.to_string().contains("without ':'"), "{err}");
    }
}
