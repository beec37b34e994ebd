//! `vigil pki ...`: the command-line face of the vigil-pki crate (CA certificate export,
//! certificate status, import, CSR creation and installation, reset, signing device CSRs, CAs
//! trusted for cameras).
//! Only argument handling and printing live here; every decision is made in vigil-pki.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use vigil_app::certificates::CertificateChange;
use vigil_pki::time::OffsetDateTime;
use vigil_pki::{CertInfo, CertRole, ImportError, Pki, PkiError};

/// Certificate management.
#[derive(Debug, clap::Subcommand)]
pub enum PkiCommand {
    /// Print the CA certificate (PEM) that clients must trust.
    CaCert {
        /// Write it to this file instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Print its SHA-256 fingerprint instead (what `vigil verify BUNDLE --fingerprint`
        /// takes).
        #[arg(long, conflicts_with = "output")]
        fingerprint: bool,
    },
    /// List every certificate with names, fingerprint, validity and origin.
    Status,
    /// Import a certificate chain and its private key from your own PKI (PEM).
    Import {
        /// Certificate chain: server certificate first, then its issuers up to the root.
        #[arg(long, value_name = "FILE")]
        cert: PathBuf,
        /// Private key (PKCS#8, RSA or EC; may be encrypted). Defaults to the certificate file,
        /// for files that hold both.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// File holding the key's passphrase (first line).
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
    /// Create a key that never leaves this server and a certificate request for an external CA.
    Csr {
        /// Common name, normally the server's fully qualified host name.
        #[arg(long, value_name = "NAME")]
        cn: String,
        /// Subject alternative name (host name or IP address); repeat for several.
        #[arg(long = "san", value_name = "NAME")]
        sans: Vec<String>,
        /// Write the request to this file instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Install the certificate (chain) an external CA issued for the pending request.
    InstallCert {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Delete the imported or installed certificate and return to the generated one.
    Reset,
    /// Sign a device's certificate request (e.g. a camera's) with the system CA.
    SignCsr {
        #[arg(value_name = "FILE.csr")]
        file: PathBuf,
        /// Validity in days (1 to 825).
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Write the certificate to this file instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// CAs that camera certificates (RTSPS, ONVIF over HTTPS) may chain to, besides the Vigil
    /// CA and the system roots: e.g. the CA that issued your cameras' certificates.
    #[command(subcommand)]
    CameraCa(CameraCaCommand),
}

/// `vigil pki camera-ca ...`
#[derive(Debug, clap::Subcommand)]
pub enum CameraCaCommand {
    /// Trust the CA certificate(s) in a PEM file (a root, or a root and its intermediates).
    Add {
        #[arg(value_name = "FILE.pem")]
        file: PathBuf,
    },
    /// List the CAs trusted for cameras, with fingerprint and days to expiry.
    List,
    /// Stop trusting a camera CA (its SHA-256 fingerprint, as `list` shows it).
    Remove { fingerprint: String },
}

const CAMERA_CA_NOTE: &str =
    "A running `vigil serve` uses the change from its next camera connection.";

const APPLY_NOTE: &str = "A running `vigil serve` presents it after its next certificate reload.";

/// Runs one `vigil pki` subcommand against the installation's PKI (`<data dir>/pki`). Every
/// change is recorded in the audit log as the operating-system user.
pub fn run(cmd: PkiCommand, cfg: &vigil_config::Config) -> anyhow::Result<()> {
    let pki_dir = &cfg.data_dir.join("pki");
    let mut pki = Pki::open(pki_dir)?;
    let access = match cmd {
        PkiCommand::CaCert { .. }
        | PkiCommand::Status
        | PkiCommand::CameraCa(CameraCaCommand::List) => None,
        _ => Some(vigil_app::audit::open_access(cfg)?),
    };
    let record = |change: CertificateChange<'_>| -> anyhow::Result<()> {
        let access = access.as_ref().expect("opened for every change");
        change
            .record(&vigil_app::audit::Trail::new(
                access,
                vigil_app::audit::cli_actor(),
            ))
            .context("the certificate change was made but not recorded in the audit log")
    };
    match cmd {
        PkiCommand::CaCert {
            output,
            fingerprint: true,
        } => {
            let ca = pki
                .status()?
                .certificates
                .into_iter()
                .find(|c| c.role == CertRole::Ca)
                .context("the PKI lists no CA certificate")?;
            emit(output.as_deref(), &format!("{}\n", ca.fingerprint_sha256))?
        }
        PkiCommand::CaCert { output, .. } => emit(output.as_deref(), pki.ca_cert_pem())?,
        PkiCommand::Status => print!("{}", format_status(&pki)?),
        PkiCommand::Import {
            cert,
            key,
            passphrase_file,
        } => {
            let cert_pem = read(&cert)?;
            let key_pem = read(key.as_deref().unwrap_or(&cert))?;
            let passphrase = passphrase_file
                .as_deref()
                .map(read_passphrase)
                .transpose()?;
            let installed = match pki.import(&cert_pem, &key_pem, passphrase.as_deref()) {
                Err(PkiError::Import(ImportError::PassphraseRequired)) => anyhow::bail!(
                    "the private key is encrypted: pass its passphrase with --passphrase-file FILE"
                ),
                other => other?,
            };
            record(CertificateChange::Imported(&installed))?;
            println!(
                "Imported '{}' ({} key); it is now the server certificate.\n{APPLY_NOTE}",
                installed.info.subject,
                installed.key_format.expect("import reports the key format"),
            );
            print!(
                "{}",
                format_cert(&installed.info, OffsetDateTime::now_utc())
            );
        }
        PkiCommand::Csr { cn, sans, output } => {
            let csr = pki.csr(&cn, &sans)?;
            record(CertificateChange::Requested {
                common_name: &cn,
                sans: &sans,
            })?;
            emit(output.as_deref(), &csr)?;
            eprintln!(
                "The private key stays in {}. Have the request signed, then run \
                 `vigil pki install-cert FILE`.",
                pki_dir.display()
            );
        }
        PkiCommand::InstallCert { file } => {
            let installed = pki.install_cert(&read(&file)?)?;
            record(CertificateChange::Installed(&installed))?;
            println!(
                "Installed '{}'; it is now the server certificate.\n{APPLY_NOTE}",
                installed.info.subject
            );
            print!(
                "{}",
                format_cert(&installed.info, OffsetDateTime::now_utc())
            );
        }
        PkiCommand::Reset => {
            let (removed, _) = pki.reset()?;
            if let Some(source) = removed {
                record(CertificateChange::Reset {
                    removed: &source.to_string(),
                })?;
            }
            match removed {
                Some(source) => println!(
                    "Deleted the {source} certificate; the generated certificate is served \
                     again.\n{APPLY_NOTE}"
                ),
                None => println!("No imported certificate was present; nothing changed."),
            }
        }
        PkiCommand::CameraCa(c) => {
            let now = OffsetDateTime::now_utc();
            let trail = || {
                vigil_app::audit::Trail::new(
                    access.as_ref().expect("opened for every change"),
                    vigil_app::audit::cli_actor(),
                )
            };
            match c {
                CameraCaCommand::Add { file } => {
                    let added = vigil_app::camera_cas::add(&cfg.data_dir, &read(&file)?, &trail())?;
                    println!(
                        "Trusted {} CA certificate{} for camera links. {CAMERA_CA_NOTE}",
                        added.len(),
                        if added.len() == 1 { "" } else { "s" }
                    );
                    for c in &added {
                        print!("\n{}", format_cert(c, now));
                    }
                }
                CameraCaCommand::List => {
                    let cas = vigil_app::camera_cas::list(&cfg.data_dir)?;
                    if cas.is_empty() {
                        println!(
                            "No CA is trusted for cameras besides the Vigil CA and the system \
                             roots. Add one with `vigil pki camera-ca add FILE.pem`."
                        );
                    }
                    for (i, c) in cas.iter().enumerate() {
                        if i > 0 {
                            println!();
                        }
                        print!("{}", format_cert(c, now));
                    }
                }
                CameraCaCommand::Remove { fingerprint } => {
                    let removed =
                        vigil_app::camera_cas::remove(&cfg.data_dir, &fingerprint, &trail())?;
                    println!(
                        "No longer trusted for cameras: '{}' ({}). {CAMERA_CA_NOTE}",
                        removed.subject, removed.fingerprint_sha256
                    );
                }
            }
        }
        PkiCommand::SignCsr { file, days, output } => {
            let csr = String::from_utf8(read(&file)?)
                .with_context(|| format!("{} is not a PEM text file", file.display()))?;
            let (cert, info) = pki.sign_csr_described(&csr, days)?;
            record(CertificateChange::SignedCsr(&info))?;
            emit(output.as_deref(), &cert)?;
        }
    }
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The first line of the file, without its line ending (as `openssl -passin file:` reads it).
fn read_passphrase(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = read(path)?;
    let line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    Ok(line.strip_suffix(b"\r").unwrap_or(line).to_vec())
}

fn emit(output: Option<&Path>, text: &str) -> anyhow::Result<()> {
    match output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
        }
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

fn format_status(pki: &Pki) -> anyhow::Result<String> {
    let status = pki.status()?;
    let now = OffsetDateTime::now_utc();
    let mut out = String::new();
    writeln!(out, "Installation: {}", status.installation_id)?;
    writeln!(out, "Host names:   {}", status.hostnames.join(", "))?;
    writeln!(out, "Serving:      {} certificate", status.active_source)?;
    if let Some(p) = &status.pending_csr {
        writeln!(
            out,
            "Pending CSR:  CN={} ({}), created {}",
            p.common_name,
            p.sans.join(", "),
            p.created.date()
        )?;
    }
    for cert in &status.certificates {
        out.push('\n');
        out.push_str(&format_cert(cert, now));
    }
    Ok(out)
}

fn format_cert(c: &CertInfo, now: OffsetDateTime) -> String {
    let title = match c.role {
        CertRole::Ca => "CA certificate",
        CertRole::Server => "Server certificate",
        CertRole::Chain => "Chain certificate",
        CertRole::CameraCa => "Camera CA certificate",
    };
    let days = c.days_to_expiry(now);
    let left = if days < 0 {
        format!("EXPIRED {} days ago", -days)
    } else {
        format!("{days} days left")
    };
    format!(
        "{title}{}\n  subject:   {}\n  issuer:    {}\n  SANs:      {}\n  SHA-256:   {}\n  \
         valid:     {} to {} ({left})\n  source:    {}\n",
        if c.in_use { " [in use]" } else { "" },
        c.subject,
        c.issuer,
        if c.sans.is_empty() {
            "-".to_string()
        } else {
            c.sans.join(", ")
        },
        c.fingerprint_sha256,
        c.not_before.date(),
        c.not_after.date(),
        c.source,
    )
}
