//! The `vigil` binary: parses the command line and hands each command to the crate that owns
//! it. No business logic lives here.

/// The API answers many small requests on several threads; mimalloc's per-thread free lists
/// cost less per request than glibc malloc there (bench/https).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod access_cmd;
mod advice;
mod backup_cmd;
mod camera_cmd;
mod camera_security_cmd;
mod db_cmd;
mod init_cmd;
mod logging;
mod network_cmd;
mod pki_cmd;
mod recordings_cmd;
mod serve;
mod server_cmd;
mod verify_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `vigil --version` and `vigil version`: the release and the commit it was built from
/// (crates/vigil/build.rs), so an installation can be matched to its dependencies.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("VIGIL_COMMIT"),
    ")"
);

/// The CycloneDX SBOM of the crates compiled into this binary (build.rs, docs/sbom.md).
const SBOM: &str = include_str!(concat!(env!("OUT_DIR"), "/sbom.json"));

#[derive(clap::Args, Debug)]
struct VersionArgs {
    /// Print the CycloneDX (1.5, JSON) bill of materials of the crates in this binary instead.
    #[arg(long)]
    sbom: bool,
}

#[derive(Parser)]
#[command(
    name = "vigil",
    version = VERSION,
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
    /// Log format on standard error: text (coloured on a terminal) or json (one object a line).
    #[arg(
        long,
        global = true,
        env = "VIGIL_LOG_FORMAT",
        value_enum,
        default_value_t = logging::LogFormat::Text
    )]
    log_format: logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a data directory: configuration file, database and keys.
    Init(init_cmd::InitArgs),
    /// Record every configured camera until SIGINT/SIGTERM.
    Serve(serve::ServeArgs),
    /// All-in-one demo: records a built-in sample camera into a fresh data directory.
    Demo(serve::DemoArgs),
    /// Add, list, remove cameras and show their recording status.
    #[command(subcommand)]
    Camera(camera_cmd::CameraCommand),
    /// List recorded ranges and gaps of a camera.
    Recordings(recordings_cmd::RecordingsArgs),
    /// Export a time range of a camera as MP4.
    Export(recordings_cmd::ExportArgs),
    /// Verify a camera's signed recordings, or an exported evidence bundle offline.
    Verify(verify_cmd::VerifyArgs),
    /// The installation's CA and certificates: status, import, CSR, sign camera CSRs.
    #[command(subcommand)]
    Pki(pki_cmd::PkiCommand),
    #[command(flatten)]
    Access(access_cmd::AccessCommand),
    /// Every port the configured deployment opens or connects to.
    Ports(network_cmd::PortsArgs),
    /// Least-privilege firewall rules for a site (nftables, iptables, PowerShell).
    Firewall(network_cmd::FirewallArgs),
    /// Port catalogs of Vigil and third-party VMS (XProtect, MxMC, MOBOTIX, Niagara).
    Catalog(network_cmd::CatalogArgs),
    /// Compare listening sockets with the manifest and probe cameras and servers.
    Audit(network_cmd::AuditArgs),
    /// The version and the source commit this binary was built from.
    Version(VersionArgs),
    /// The management database: status, migrate, copy an access.db into PostgreSQL.
    #[command(subcommand)]
    Db(db_cmd::DbCommand),
    /// Back up configuration, databases, keys and ledgers (no video) into one encrypted file.
    Backup(backup_cmd::BackupArgs),
    /// Restore a backup into a new, empty data directory.
    Restore(backup_cmd::RestoreArgs),
    /// Recording servers under a management server: tokens, join, list, remove.
    #[command(subcommand)]
    Server(server_cmd::ServerCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(
        cli.log_format,
        matches!(cli.command, Command::Serve(_) | Command::Demo(_)),
    );
    let result = match cli.command {
        Command::Version(args) if args.sbom => {
            if SBOM.is_empty() {
                Err(anyhow::anyhow!(
                    "this binary was built without an SBOM (its build could not run cargo metadata)"
                ))
            } else {
                println!("{SBOM}");
                Ok(())
            }
        }
        Command::Version(_) => {
            println!("vigil {VERSION}");
            Ok(())
        }
        Command::Init(args) => init_cmd::run(&args, &cli.config),
        Command::Db(cmd) => db_cmd::run(cmd, &cli.config),
        Command::Backup(args) => backup_cmd::backup(&args, &cli.config),
        Command::Restore(args) => backup_cmd::restore(&args),
        Command::Serve(args) => serve::run_serve(&cli.config, &args),
        Command::Server(cmd) => vigil_config::Config::load(&cli.config)
            .map_err(anyhow::Error::from)
            .and_then(|cfg| server_cmd::run(cmd, &cfg)),
        Command::Demo(args) => serve::run_demo(&args),
        Command::Camera(cmd) => camera(cmd, &cli.config),
        Command::Recordings(args) => recordings_cmd::recordings(&args, &cli.config),
        Command::Export(args) => recordings_cmd::export(&args, &cli.config),
        Command::Verify(args) => with_exit_code(verify_cmd::run(&args, &cli.config)),
        Command::Pki(cmd) => vigil_config::Config::load(&cli.config)
            .map_err(anyhow::Error::from)
            .and_then(|cfg| pki_cmd::run(cmd, &cfg)),
        Command::Access(cmd) => vigil_config::Config::load(&cli.config)
            .map_err(anyhow::Error::from)
            .and_then(|cfg| {
                let access = vigil_app::access_settings::access_config(&cfg)?;
                let target = vigil_app::database::target(&cfg)?;
                access_cmd::run_with_config(cmd, &target, access)
            }),
        Command::Ports(args) => with_exit_code(network(&cli.config, |cfg, cams| {
            network_cmd::run_ports(&args, cfg, &cams)
        })),
        Command::Firewall(args) => with_exit_code(
            config_or_default(&cli.config).and_then(|cfg| network_cmd::run_firewall(&args, &cfg)),
        ),
        Command::Catalog(args) => with_exit_code(
            config_or_default(&cli.config).and_then(|cfg| network_cmd::run_catalog(&args, &cfg)),
        ),
        Command::Audit(args) => with_exit_code(network(&cli.config, |cfg, cams| {
            network_cmd::run_audit(&args, cfg, cams)
        })),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<ExitWith>().is_some() => {
            ExitCode::from(e.downcast_ref::<ExitWith>().map(|x| x.0).unwrap_or(1))
        }
        Err(e) => {
            eprintln!("error: {}", advice::present(&e));
            ExitCode::FAILURE
        }
    }
}

/// `camera` commands only edit the database, which a running server follows within 2 s, except
/// deleting a camera's recordings: that removes video files a running recorder may still be
/// appending to (leaving index rows of a removed camera behind), so it needs the data
/// directory to itself.
fn camera(cmd: camera_cmd::CameraCommand, config: &std::path::Path) -> anyhow::Result<()> {
    use vigil_media::datadir_lock::{DataDirLock, LockError};
    let _lock = match &cmd {
        camera_cmd::CameraCommand::Remove {
            name,
            delete_recordings: true,
        } => {
            let cfg = vigil_config::Config::load(config)?;
            match DataDirLock::acquire(&cfg.data_dir, "camera remove") {
                Ok(lock) => Some(lock),
                Err(LockError::InUse { dir, holder }) => anyhow::bail!(
                    "cannot delete the recordings of camera {name}: the data directory {} is in use by {holder}; stop it first, or remove the camera without --delete-recordings",
                    dir.display()
                ),
                Err(e) => return Err(e.into()),
            }
        }
        _ => None,
    };
    camera_cmd::run(cmd, config)
}

/// Loads the configuration and opens the data directory it names.
pub(crate) fn open_store(
    config: &std::path::Path,
) -> anyhow::Result<(vigil_config::Config, vigil_media::store::Store)> {
    let cfg = vigil_config::Config::load(config)?;
    let store = vigil_media::store::Store::open(&cfg.data_dir)?;
    Ok((cfg, store))
}

/// A command's chosen non-zero exit code (e.g. `audit` with high findings), not an error.
#[derive(Debug)]
struct ExitWith(u8);

impl std::fmt::Display for ExitWith {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit code {}", self.0)
    }
}

impl std::error::Error for ExitWith {}

fn with_exit_code(r: anyhow::Result<i32>) -> anyhow::Result<()> {
    match r? {
        0 => Ok(()),
        n => Err(ExitWith(u8::try_from(n).unwrap_or(1)).into()),
    }
}

/// The configuration if the file exists, else the embedded defaults (for commands that only
/// read port data, such as `catalog` and `firewall`).
fn config_or_default(path: &std::path::Path) -> anyhow::Result<vigil_config::Config> {
    if path.exists() {
        Ok(vigil_config::Config::load(path)?)
    } else {
        Ok(vigil_config::Config::with_data_dir("/var/lib/vigil"))
    }
}

/// Runs a network command with the configuration and the cameras of its database.
fn network(
    path: &std::path::Path,
    f: impl FnOnce(&vigil_config::Config, Vec<vigil_netpolicy::model::Endpoint>) -> anyhow::Result<i32>,
) -> anyhow::Result<i32> {
    let (cfg, store) = open_store(path)?;
    let mut cams = Vec::new();
    for c in store.cameras()? {
        match vigil_netpolicy::model::Endpoint::from_url(c.name.clone(), &c.url) {
            Ok(e) => cams.push(e),
            Err(e) => eprintln!("warning: camera {}: {e}", c.name),
        }
        // A secondary stream on another host or port is a connection of its own.
        if let Some(sec) = &c.secondary {
            let name = format!("{} (secondary)", c.name);
            match vigil_netpolicy::model::Endpoint::from_url(name.clone(), &sec.url) {
                Ok(e) if !cams.iter().any(|m| m.host == e.host && m.port == e.port) => cams.push(e),
                Ok(_) => {}
                Err(e) => eprintln!("warning: camera {name}: {e}"),
            }
        }
    }
    f(&cfg, cams)
}
