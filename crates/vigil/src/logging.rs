//! Where the process log goes and how it looks (docs/logging.md): standard error, as text
//! (coloured only on a terminal) or as one JSON object per line, filtered by `VIGIL_LOG`.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// `--log-format` / `VIGIL_LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One line per event for people; colours only when standard error is a terminal.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `fields`), for a collector.
    Json,
}

/// The filter when `VIGIL_LOG` is not set. The servers (`serve`, `demo`) say what they do at
/// info level; RTSP library chatter (retina's per-session notes such as "ignoring PLAY seq")
/// is only shown from warnings up. One-shot commands print their result on standard output,
/// so their log shows warnings and errors only.
pub fn default_filter(server: bool) -> &'static str {
    if server { "info,retina=warn" } else { "warn" }
}

/// Installs the process-wide subscriber.
pub fn init(format: LogFormat, server: bool) {
    let filter = EnvFilter::try_from_env("VIGIL_LOG")
        .unwrap_or_else(|_| EnvFilter::new(default_filter(server)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}
