//! Setting up an installation: a new data directory with its configuration file, the
//! installation's own CA and the recording server's signing key, and the first administrator.
//!
//! Every installation makes its own keys here (no certificate is shared between
//! installations) and there is no default password: the first administrator's is given or
//! generated. See docs/security-model.md ("Secure defaults").

use std::path::{Path, PathBuf};

use vigil_config::Config;

use crate::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{} already exists (the database and recordings are kept when it is overwritten)", path.display())]
    ConfigExists { path: PathBuf },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] vigil_media::store::StoreError),
    #[error(transparent)]
    Pki(#[from] vigil_pki::PkiError),
    #[error("the new signing key cannot be loaded: {0}")]
    SigningKey(#[from] vigil_signing::keys::KeyError),
    #[error("the administrator password: {0}")]
    WeakPassword(String),
    #[error("an administrator exists already")]
    AdminExists,
    /// A name for the server certificate that no certificate can carry.
    #[error("{0}; give a DNS name such as nvr.example.net or an IP address")]
    BadHostname(String),
    #[error("cannot create the first administrator: {0}")]
    Access(vigil_access::AccessError),
}

impl SetupError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            SetupError::ConfigExists { .. } | SetupError::AdminExists => ErrorKind::Conflict,
            SetupError::WeakPassword(_) | SetupError::BadHostname(_) => ErrorKind::InvalidInput,
            _ => ErrorKind::Internal,
        }
    }
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SetupError + 'a {
    move |source| SetupError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Refuses a password the first administrator may not have, before anything is created (so a
/// failed set-up leaves nothing behind).
pub fn check_admin_password(password: &str, admin: &str) -> Result<(), SetupError> {
    vigil_access::password::check_password_policy(password, admin)
        .map_err(|e| SetupError::WeakPassword(e.to_string()))
}

/// Creates the data directory (made absolute), its recording store and keys, and writes the
/// commented default configuration to `config_path`. An existing configuration file is kept
/// unless `force`; recordings and databases are never touched.
pub fn init(data_dir: &Path, config_path: &Path, force: bool) -> Result<Config, SetupError> {
    init_with_hostnames(data_dir, config_path, force, &[])
}

/// The names the server certificate carries: the names and addresses clients use
/// (`hostnames`, in the order given), then localhost, 127.0.0.1 and ::1, each once. A name no
/// certificate can carry is refused.
pub fn certificate_names(hostnames: &[String]) -> Result<Vec<String>, SetupError> {
    let mut out: Vec<String> = Vec::new();
    for h in hostnames {
        let h = h.trim();
        crate::settings::check_hostname(h).map_err(SetupError::BadHostname)?;
        // A bracketed IPv6 address (as in URLs) names the same address without brackets.
        let h = h.trim_start_matches('[').trim_end_matches(']');
        let h = match h.parse::<std::net::IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => h.to_ascii_lowercase(),
        };
        if !out.contains(&h) {
            out.push(h);
        }
    }
    for local in vigil_config::LOCAL_HOSTNAMES {
        if !out.iter().any(|h| h == local) {
            out.push(local.to_owned());
        }
    }
    Ok(out)
}

/// [`init`] with the names and addresses clients will use to reach this server, which the
/// server certificate carries besides the local names ([`certificate_names`]). They are kept
/// in the configuration (`management.hostnames`), so renewals and reissues keep them.
pub fn init_with_hostnames(
    data_dir: &Path,
    config_path: &Path,
    force: bool,
    hostnames: &[String],
) -> Result<Config, SetupError> {
    let names = certificate_names(hostnames)?;
    if config_path.exists() && !force {
        return Err(SetupError::ConfigExists {
            path: config_path.to_owned(),
        });
    }
    std::fs::create_dir_all(data_dir).map_err(io("create", data_dir))?;
    let data_dir = data_dir.canonicalize().map_err(io("resolve", data_dir))?;
    vigil_media::store::Store::init(&data_dir)?;
    let mut cfg = Config::with_data_dir(&data_dir);
    cfg.management.hostnames = names;
    ensure_keys(&cfg)?;
    if let Some(parent) = config_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io("create", parent))?;
    }
    std::fs::write(config_path, cfg.to_commented_toml()).map_err(io("write", config_path))?;
    Ok(cfg)
}

/// The installation CA's certificate (PEM), which clients and `vigil audit` trust.
pub fn installation_ca(cfg: &Config) -> PathBuf {
    cfg.data_dir.join("pki").join(vigil_pki::CA_CERT_FILE)
}

/// The installation's CA (created once, never shared) and the recording server's signing key
/// issued by it. Existing keys are kept.
pub fn ensure_keys(cfg: &Config) -> Result<(), SetupError> {
    let pki_dir = cfg.data_dir.join("pki");
    let pki = if vigil_pki::Pki::exists(&pki_dir) {
        let mut pki = vigil_pki::Pki::open(&pki_dir)?;
        // The configuration names the hosts (`vigil init --hostname`, an edit of
        // management.hostnames): the generated certificate follows it at the next start.
        let names = &cfg.management.hostnames;
        if !names.is_empty() && pki.hostnames() != names.as_slice() {
            pki.set_hostnames(names, vigil_pki::time::OffsetDateTime::now_utc())?;
        }
        pki
    } else {
        let opts = vigil_pki::InitOptions {
            hostnames: cfg.management.hostnames.clone(),
            ..Default::default()
        };
        vigil_pki::Pki::init(&pki_dir, &opts)?
    };
    let signing = vigil_media::evidence::signing_dir(&cfg.data_dir);
    if signing.join(vigil_signing::keys::KEY_FILE).exists() {
        return Ok(());
    }
    let leaf = pki.issue_leaf(&vigil_pki::LeafRequest {
        common_name: format!("vigil recording signing key {}", pki.installation_id()),
        sans: Vec::new(),
        validity_days: vigil_pki::MAX_LEAF_DAYS.min(825),
        usage: vigil_pki::LeafUsage::Signing,
        key_type: vigil_pki::LeafKeyType::Ed25519,
    })?;
    std::fs::create_dir_all(&signing).map_err(io("create", &signing))?;
    std::fs::set_permissions(
        &signing,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .map_err(io("restrict", &signing))?;
    vigil_pki::write_secret_file(
        &signing.join(vigil_signing::keys::KEY_FILE),
        leaf.key_pem.as_bytes(),
    )?;
    let cert = signing.join(vigil_signing::keys::CERT_FILE);
    std::fs::write(&cert, &leaf.cert_pem).map_err(io("write", &cert))?;
    let ca = signing.join(vigil_signing::keys::CA_FILE);
    std::fs::write(&ca, pki.ca_cert_pem()).map_err(io("write", &ca))?;
    // Refuse to finish with a key the recorder could not load.
    vigil_signing::SigningIdentity::load(&signing)?;
    Ok(())
}

/// The first administrator as created.
#[derive(Debug, PartialEq, Eq)]
pub struct FirstAdmin {
    pub name: String,
    /// The generated password, to be shown once; `None` when the caller gave one.
    pub generated_password: Option<String>,
}

/// Creates the first administrator with `password`, or a generated strong one.
pub fn create_first_admin(
    cfg: &Config,
    admin: &str,
    password: Option<&str>,
) -> Result<FirstAdmin, SetupError> {
    let target = crate::database::target(cfg).map_err(|e| match e {
        crate::database::DatabaseError::Access(a) => SetupError::Access(a),
        other => SetupError::Access(vigil_access::AccessError::Db(
            vigil_access::vigil_db::DbError::Other(other.to_string()),
        )),
    })?;
    let access = vigil_access::Access::open_target(&target, Default::default())
        .map_err(SetupError::Access)?;
    match access.create_first_admin(admin, password, &crate::audit::cli_actor()) {
        Ok(generated_password) => Ok(FirstAdmin {
            name: admin.to_owned(),
            generated_password,
        }),
        Err(vigil_access::AccessError::AlreadyInitialized) => Err(SetupError::AdminExists),
        Err(e) => Err(SetupError::Access(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_makes_keys_and_config_and_refuses_to_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let config = tmp.path().join("etc/vigil.toml");
        let cfg = init(&data, &config, false).unwrap();
        assert!(cfg.data_dir.is_absolute());
        assert_eq!(Config::load(&config).unwrap().data_dir, cfg.data_dir);
        let key =
            vigil_media::evidence::signing_dir(&cfg.data_dir).join(vigil_signing::keys::KEY_FILE);
        let mode = std::os::unix::fs::PermissionsExt::mode(&key.metadata().unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600, "the signing key is private");
        let key_before = std::fs::read(&key).unwrap();

        let again = init(&data, &config, false).unwrap_err();
        assert!(matches!(again, SetupError::ConfigExists { .. }), "{again}");
        assert_eq!(again.kind(), ErrorKind::Conflict);
        // Forced: the configuration is rewritten, the keys are kept.
        init(&data, &config, true).unwrap();
        assert_eq!(std::fs::read(&key).unwrap(), key_before);
    }

    #[test]
    fn two_installations_never_share_a_ca() {
        let tmp = tempfile::tempdir().unwrap();
        let ca = |name: &str| {
            let cfg = init(
                &tmp.path().join(name),
                &tmp.path().join(name).join("vigil.toml"),
                false,
            )
            .unwrap();
            std::fs::read(cfg.data_dir.join("pki").join("ca.crt")).unwrap()
        };
        assert_ne!(ca("a"), ca("b"));
    }

    #[test]
    fn the_first_admin_gets_a_generated_password_once() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = init(tmp.path(), &tmp.path().join("vigil.toml"), false).unwrap();
        let admin = create_first_admin(&cfg, "admin", None).unwrap();
        let pw = admin.generated_password.expect("generated");
        assert!(pw.len() >= 16, "a strong password: {pw}");
        assert!(check_admin_password(&pw, "admin").is_ok());
        let second = create_first_admin(&cfg, "other", None).unwrap_err();
        assert_eq!(second.kind(), ErrorKind::Conflict);
    }

    #[test]
    fn hostnames_go_into_the_certificate_and_the_config_and_survive_renewal() {
        let tmp = tempfile::tempdir().unwrap();
        let config = tmp.path().join("vigil.toml");
        let given = [
            "NVR.example.net",
            "192.0.2.10",
            "[2001:db8::5]",
            "localhost",
        ]
        .map(String::from);
        let cfg = init_with_hostnames(tmp.path(), &config, false, &given).unwrap();
        let want = [
            "nvr.example.net",
            "192.0.2.10",
            "2001:db8::5",
            "localhost",
            "127.0.0.1",
            "::1",
        ];
        assert_eq!(cfg.management.hostnames, want);
        assert_eq!(Config::load(&config).unwrap().management.hostnames, want);
        let mut pki = vigil_pki::Pki::open(&cfg.data_dir.join("pki")).unwrap();
        let sans = |pki: &vigil_pki::Pki| {
            pki.status()
                .unwrap()
                .certificates
                .into_iter()
                .find(|c| c.in_use && !c.is_ca)
                .unwrap()
                .sans
        };
        let before = sans(&pki);
        assert_eq!(
            before,
            [
                "DNS:nvr.example.net",
                "IP:192.0.2.10",
                "IP:2001:db8::5",
                "DNS:localhost",
                "IP:127.0.0.1",
                "IP:::1"
            ]
        );
        pki.renew_server_cert(vigil_pki::time::OffsetDateTime::now_utc())
            .unwrap();
        assert_eq!(sans(&pki), before, "renewal keeps the names");
        // An edited configuration is applied to the generated certificate at the next start.
        let mut edited = cfg.clone();
        edited.management.hostnames = vec!["vms2.example.net".into()];
        ensure_keys(&edited).unwrap();
        let pki = vigil_pki::Pki::open(&cfg.data_dir.join("pki")).unwrap();
        assert_eq!(sans(&pki), ["DNS:vms2.example.net"]);
    }

    #[test]
    fn unusable_hostnames_are_refused_before_anything_is_made() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        for bad in ["bad name", "nvr_1.example", "-x.example", "", "a..b"] {
            let e = init_with_hostnames(&data, &data.join("vigil.toml"), false, &[bad.into()])
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad}: {e}");
            let text = e.to_string();
            assert!(
                text.contains("not a usable host name") && text.contains("IP address"),
                "{bad}: {text}"
            );
            assert!(!data.exists(), "{bad}: nothing is created");
        }
    }

    #[test]
    fn a_weak_password_is_invalid_input() {
        let e = check_admin_password("admin", "admin").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }
}
