//! `vigil init`: a new data directory with its commented configuration file.

use std::path::{Path, PathBuf};

use vigil_app::setup::{self, SetupError};

#[derive(clap::Args)]
pub struct InitArgs {
    /// Directory for recordings, database and keys (created if missing).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Overwrite an existing configuration file.
    #[arg(long)]
    pub force: bool,
    /// Name of the first administrator.
    #[arg(long, default_value = "admin")]
    pub admin: String,
    /// Password of the first administrator (first line of the file); without it a strong
    /// password is generated and printed once. There is no default password.
    #[arg(long)]
    pub admin_password_file: Option<PathBuf>,
    /// A DNS name or IP address clients use to reach this server (repeatable). The server
    /// certificate carries each, besides localhost, 127.0.0.1 and ::1.
    #[arg(long = "hostname", value_name = "NAME")]
    pub hostnames: Vec<String>,
}

/// Creates the data directory and writes the config. `config` is where the file goes unless
/// it was left at its default, in which case it goes into the data directory.
pub fn run(args: &InitArgs, config: &Path) -> anyhow::Result<()> {
    let config_path = if config == Path::new("vigil.toml") {
        args.data_dir.join("vigil.toml")
    } else {
        config.to_owned()
    };
    let password = args
        .admin_password_file
        .as_deref()
        .map(crate::camera_cmd::read_password_file)
        .transpose()?;
    // Refuse a weak password or a bad name before anything is created, so a failed init
    // leaves nothing.
    if let Some(pw) = &password {
        setup::check_admin_password(pw, &args.admin)
            .map_err(|e| anyhow::anyhow!("--admin-password-file: {e}"))?;
    }
    setup::certificate_names(&args.hostnames).map_err(|e| anyhow::anyhow!("--hostname: {e}"))?;
    let cfg = setup::init_with_hostnames(&args.data_dir, &config_path, args.force, &args.hostnames)
        .map_err(init_error)?;
    create_first_admin(&cfg, &args.admin, password.as_deref())?;
    println!("Initialised {}", args.data_dir.display());
    println!("Configuration: {}", config_path.display());
    println!(
        "Server certificate names: {}",
        cfg.management.hostnames.join(", ")
    );
    println!(
        "Next: vigil --config {} camera add NAME --url rtsp://HOST:554/PATH, then vigil --config {} serve",
        config_path.display(),
        config_path.display()
    );
    Ok(())
}

/// Creates the first administrator and shows a generated password once.
pub fn create_first_admin(
    cfg: &vigil_config::Config,
    admin: &str,
    password: Option<&str>,
) -> anyhow::Result<()> {
    let created = setup::create_first_admin(cfg, admin, password)
        .map_err(|e| anyhow::anyhow!("cannot create the first administrator: {e}"))?;
    match created.generated_password {
        Some(generated) => {
            println!("First administrator: {admin}");
            println!("Password (shown once, store it now): {generated}");
        }
        None => println!("First administrator: {admin} (password from file)"),
    }
    Ok(())
}

/// [`setup::init`], with what to do when the configuration exists.
pub fn init(
    data_dir: &Path,
    config_path: &Path,
    force: bool,
) -> anyhow::Result<vigil_config::Config> {
    setup::init(data_dir, config_path, force).map_err(init_error)
}

/// A set-up error, with what to do when the configuration exists.
fn init_error(e: SetupError) -> anyhow::Error {
    match e {
        SetupError::ConfigExists { path } => anyhow::anyhow!(
            "{} already exists; use --force to overwrite it (the database and recordings are kept)",
            path.display()
        ),
        e => e.into(),
    }
}
