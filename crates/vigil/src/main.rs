//! The `vigil` binary: parses the command line and hands each command to the crate that owns
//! it. No business logic lives here.

mod camera_cmd;
mod init_cmd;
mod recordings_cmd;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "vigil",
    version,
    about = "Vigil: a secure-by-default video management system"
)]
struct Cli {
    /// Configuration file (written by `vigil init`).
    #[arg(
        long,
        global = true,
        env = "VIGIL_CONFIG",
        default_value = "vigil.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a data directory: configuration file, database and keys.
    Init(init_cmd::InitArgs),
    /// Record every configured camera until SIGINT/SIGTERM.
    Serve,
    /// All-in-one demo: records a built-in sample camera into a fresh data directory.
    Demo(serve::DemoArgs),
    /// Add, list, remove cameras and show their recording status.
    #[command(subcommand)]
    Camera(camera_cmd::CameraCommand),
    /// List recorded ranges and gaps of a camera.
    Recordings(recordings_cmd::RecordingsArgs),
    /// Export a time range of a camera as MP4.
    Export(recordings_cmd::ExportArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Init(args) => init_cmd::run(&args, &cli.config),
        Command::Serve => serve::run_serve(&cli.config),
        Command::Demo(args) => serve::run_demo(&args),
        Command::Camera(cmd) => camera_cmd::run(cmd, &cli.config),
        Command::Recordings(args) => recordings_cmd::recordings(&args, &cli.config),
        Command::Export(args) => recordings_cmd::export(&args, &cli.config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Loads the configuration and opens the data directory it names.
pub(crate) fn open_store(
    config: &std::path::Path,
) -> anyhow::Result<(vigil_config::Config, vigil_media::store::Store)> {
    let cfg = vigil_config::Config::load(config)?;
    let store = vigil_media::store::Store::open(&cfg.data_dir)?;
    Ok((cfg, store))
}
