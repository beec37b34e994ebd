//! `vigil init`: a new data directory with its commented configuration file.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

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
    // Refuse a weak password before anything is created, so a failed init leaves nothing.
    if let Some(pw) = &password {
        vigil_access::password::check_password_policy(pw, &args.admin)
            .map_err(|e| anyhow::anyhow!("--admin-password-file: {e}"))?;
    }
    let cfg = init(&args.data_dir, &config_path, args.force)?;
    create_first_admin(&cfg, &args.admin, password.as_deref())?;
    println!("Initialised {}", args.data_dir.display());
    println!("Configuration: {}", config_path.display());
    println!(
        "Next: vigil --config {} camera add NAME --url rtsp://HOST:554/PATH, then vigil --config {} serve",
        config_path.display(),
        config_path.display()
    );
    Ok(())
}

/// Creates the first administrator; a generated password is printed once. There is no
/// default password.
pub fn create_first_admin(
    cfg: &vigil_config::Config,
    admin: &str,
    password: Option<&str>,
) -> anyhow::Result<()> {
    let access = vigil_access::Access::open(&cfg.data_dir.join("access.db"), Default::default())?;
    match access.create_first_admin(admin, password) {
        Ok(Some(generated)) => {
            println!("First administrator: {admin}");
            println!("Password (shown once, store it now): {generated}");
        }
        Ok(None) => println!("First administrator: {admin} (password from file)"),
        Err(e) => anyhow::bail!("cannot create the first administrator: {e}"),
    }
    Ok(())
}

pub fn init(
    data_dir: &Path,
    config_path: &Path,
    force: bool,
) -> anyhow::Result<vigil_config::Config> {
    if config_path.exists() && !force {
        bail!(
            "{} already exists; use --force to overwrite it (the database and recordings are kept)",
            config_path.display()
        );
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let data_dir = data_dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", data_dir.display()))?;
    vigil_media::store::Store::init(&data_dir)?;
    let cfg = vigil_config::Config::with_data_dir(&data_dir);
    ensure_keys(&cfg)?;
    if let Some(parent) = config_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(config_path, cfg.to_commented_toml())
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    Ok(cfg)
}

/// The installation's CA (created once, never shared) and the recording server's signing key
/// issued by it. Existing keys are kept.
pub fn ensure_keys(cfg: &vigil_config::Config) -> anyhow::Result<()> {
    let pki_dir = cfg.data_dir.join("pki");
    let pki = if vigil_pki::Pki::exists(&pki_dir) {
        vigil_pki::Pki::open(&pki_dir)?
    } else {
        let opts = vigil_pki::InitOptions {
            hostnames: cfg.management.hostnames.clone(),
            ..Default::default()
        };
        vigil_pki::Pki::init(&pki_dir, &opts)?
    };
    let signing = vigil_media::evidence::signing_dir(&cfg.data_dir);
    if !signing.join(vigil_signing::keys::KEY_FILE).exists() {
        let leaf = pki.issue_leaf(&vigil_pki::LeafRequest {
            common_name: format!("vigil recording signing key {}", pki.installation_id()),
            sans: Vec::new(),
            validity_days: vigil_pki::MAX_LEAF_DAYS.min(825),
            usage: vigil_pki::LeafUsage::Signing,
            key_type: vigil_pki::LeafKeyType::Ed25519,
        })?;
        std::fs::create_dir_all(&signing)?;
        std::fs::set_permissions(
            &signing,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )?;
        vigil_pki::write_secret_file(
            &signing.join(vigil_signing::keys::KEY_FILE),
            leaf.key_pem.as_bytes(),
        )?;
        std::fs::write(signing.join(vigil_signing::keys::CERT_FILE), &leaf.cert_pem)?;
        std::fs::write(
            signing.join(vigil_signing::keys::CA_FILE),
            pki.ca_cert_pem(),
        )?;
        // Refuse to finish with a key the recorder could not load.
        vigil_signing::SigningIdentity::load(&signing)?;
    }
    Ok(())
}
