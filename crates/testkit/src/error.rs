//! The testkit's error type: every variant says what failed and what to do about it.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "required test peer `{tool}` is missing: install it with `apt-get install -y {package}` \
         (scripts/test-all.sh installs every test peer)"
    )]
    MissingTool { tool: String, package: String },

    #[error("cannot run `{command}`: {source}")]
    Spawn { command: String, source: io::Error },

    #[error("`{command}` failed ({status}); its stderr:\n{stderr}")]
    CommandFailed {
        command: String,
        status: String,
        stderr: String,
    },

    #[error("invalid clip parameters: {0}")]
    InvalidClip(String),

    #[error("cannot read ffprobe's answer for {path}: {reason}")]
    Probe { path: PathBuf, reason: String },

    #[error("I/O error on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },

    #[error(
        "the RTSP test server did not print READY within {timeout_secs} s; its stderr:\n{stderr}"
    )]
    NotReady { timeout_secs: u64, stderr: String },

    #[error("the RTSP test server exited before it was ready ({status}); its stderr:\n{stderr}")]
    ServerExited { status: String, stderr: String },

    #[error("invalid RTSP test server options: {0}")]
    InvalidOptions(String),

    #[error("mount `{mount}` is not served by this peer (mounts: {known})")]
    UnknownMount { mount: String, known: String },

    #[error("cannot read the RTSP test server's stats file {path}: {reason}")]
    Stats { path: PathBuf, reason: String },

    /// Another peer (IPyCam, ...) did not start; the text says why and how to fix it.
    #[error("{0}")]
    Peer(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
