//! `vigil camera` commands about a camera's credentials and device (ONVIF): password
//! rotation, a password set by hand, a camera's password rule, accepting a replaced device and
//! installing a certificate from the installation CA. The user guide: docs/cameras-onvif.md.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use vigil_app::rotation::{Outcome, PasswordRule, Rotator, Selection};
use vigil_media::store::Store;
use vigil_media::time::format_us;

use crate::camera_cmd::{onvif_advice, read_password_file, runtime};

#[derive(Subcommand)]
pub enum SecurityCommand {
    /// Give cameras added by ONVIF a fresh random password each, set over their verified
    /// HTTPS ONVIF link and proven (ONVIF and RTSP) before it is kept; a camera where
    /// anything fails keeps its old password. Exit code 1 when any camera was not rotated.
    RotatePasswords {
        /// Every camera of this server.
        #[arg(long, conflicts_with_all = ["server", "cameras"])]
        all: bool,
        /// Every camera of the recording server with this name (this server's own name).
        #[arg(long, conflicts_with = "cameras")]
        server: Option<String>,
        /// The cameras to rotate, by name.
        cameras: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Store a camera password that was changed outside Vigil (on the camera itself), or a
    /// new one for a camera added by RTSP URL: it is proven on the camera first (ONVIF for a
    /// camera added by ONVIF, and RTSP), then stored and the camera's streams log in with it
    /// at once. A password the camera refuses is not stored.
    SetPassword {
        name: String,
        /// File holding the password (first line); without it, the password is asked for on
        /// the terminal.
        #[arg(long)]
        password_file: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// What passwords a camera accepts, for rotation: their length and the symbols allowed
    /// besides letters and digits (default 16 letters and digits).
    PasswordRule {
        name: String,
        /// Characters (8-64).
        #[arg(long, required_unless_present = "default", conflicts_with = "default")]
        length: Option<usize>,
        /// Symbols allowed besides letters and digits, e.g. "-_." (none by default); may
        /// start with '-'.
        #[arg(
            long,
            default_value = "",
            conflicts_with = "default",
            allow_hyphen_values = true
        )]
        symbols: String,
        /// Back to the default rule.
        #[arg(long)]
        default: bool,
    },
    /// Accept the device now answering at an ONVIF camera's address as the camera's device,
    /// after replacing the camera on purpose: its identity (serial, model, HTTPS certificate)
    /// is read with the camera's stored credentials and recorded, and the streams the device
    /// check refused start again.
    AcceptDevice {
        name: String,
        /// Accept exactly this HTTPS certificate of the new device (SHA-256 fingerprint, as
        /// the refusal shows it), e.g. a self-signed one.
        #[arg(long)]
        fingerprint: Option<String>,
    },
    /// Give an ONVIF camera a certificate from the installation CA (ONVIF Advanced
    /// Security): the camera makes its own key and certificate request, the CA signs it for
    /// the camera's address, the camera serves HTTPS with it, and Vigil records it as the
    /// camera's certificate once a new connection proves it.
    InstallCertificate {
        name: String,
        /// Validity of the certificate, days.
        #[arg(long, default_value_t = vigil_app::camera_certificate::DEFAULT_DAYS)]
        days: u32,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs one of these commands; `trail` records each change in the audit log.
pub fn run(
    cmd: SecurityCommand,
    cfg: &vigil_config::Config,
    store: Store,
    trail: &vigil_app::audit::Trail<'_>,
) -> anyhow::Result<()> {
    match cmd {
        SecurityCommand::RotatePasswords {
            all,
            server,
            cameras,
            json,
        } => {
            let selection = match (all, server) {
                (true, _) => Selection::All,
                (false, Some(s)) => Selection::Server(s),
                (false, None) if cameras.is_empty() => anyhow::bail!(
                    "say which cameras: --all, --server NAME or camera names (`vigil camera list`)"
                ),
                (false, None) => Selection::Cameras(cameras),
            };
            return rotate_passwords(cfg, store, &selection, json, trail);
        }
        SecurityCommand::SetPassword {
            name,
            password_file,
            json,
        } => {
            let password = zeroize::Zeroizing::new(match &password_file {
                Some(file) => read_password_file(file)?,
                None => crate::backup_cmd::prompt(&format!("New password of camera {name}: "))?,
            });
            let store = std::sync::Arc::new(store);
            let opener = vigil_app::runtime::rotation_opener(cfg, &store, None);
            let rotator = Rotator::new(
                store,
                vigil_app::onvif::camera_trust(&cfg.data_dir),
                opener,
                &vigil_app::export::server_name(&cfg.management.hostnames),
            );
            let done = runtime()?.block_on(rotator.set_password(&name, &password, trail))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&done)?);
            } else {
                println!(
                    "Camera {}: the new password is proven ({}) and stored; its streams log in with it now{}",
                    done.camera,
                    done.proven_by.join(" and "),
                    if done.secondary {
                        " (the secondary stream too)"
                    } else {
                        ""
                    }
                );
                if done.dropped_pending_rotation {
                    println!(
                        "  an interrupted password rotation was dropped: the camera has this password"
                    );
                }
            }
        }
        SecurityCommand::PasswordRule {
            name,
            length,
            symbols,
            default,
        } => {
            let rule = match (default, length) {
                (true, _) | (false, None) => None,
                (false, Some(l)) => Some(PasswordRule::new(l, &symbols)?),
            };
            let state = vigil_app::rotation::set_rule(&store, &name, rule.as_ref(), trail)?;
            let rule = match state.rule.as_deref() {
                Some(text) => PasswordRule::parse(text)?,
                None => PasswordRule::default(),
            };
            println!(
                "Camera {name}: rotated passwords have {} characters: letters and digits{}",
                rule.length,
                if rule.symbols.is_empty() {
                    String::new()
                } else {
                    format!(" and {}", rule.symbols)
                }
            );
        }
        SecurityCommand::AcceptDevice { name, fingerprint } => {
            let trust = vigil_app::onvif::camera_trust(&cfg.data_dir);
            let accepted = runtime()?
                .block_on(vigil_app::device_check::accept_device(
                    &store,
                    trust,
                    &name,
                    fingerprint.as_deref(),
                    trail,
                ))
                .map_err(onvif_advice)?;
            let (old, new) = (&accepted.previous, &accepted.identity);
            println!(
                "Camera {}: the device at {} is now its device",
                accepted.camera, new.onvif_url
            );
            println!("  was: {}", identity_line(old));
            println!("  now: {}", identity_line(new));
        }
        SecurityCommand::InstallCertificate { name, days, json } => {
            let pki = vigil_pki::Pki::open(&cfg.data_dir.join("pki"))?;
            let trust = vigil_app::onvif::camera_trust(&cfg.data_dir);
            if !json {
                println!(
                    "Camera {name}: asking it for a new key and certificate request (a camera may take up to {} s to make its key)...",
                    vigil_app::camera_certificate::KEY_WAIT.as_secs()
                );
            }
            let done = runtime()?
                .block_on(vigil_app::camera_certificate::install(
                    &store, &pki, trust, &name, days, trail,
                ))
                .map_err(onvif_advice)?;
            let c = &done.certificate;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "camera": done.camera,
                        "fingerprint_sha256": c.fingerprint_sha256,
                        "previous_fingerprint_sha256": done.previous,
                        "subject": c.subject,
                        "sans": c.sans,
                        "not_after": vigil_pki::rfc3339(c.not_after),
                        "certification_path": done.path_id,
                    })
                );
            } else {
                println!(
                    "Camera {}: its HTTPS now serves a certificate from this installation's CA",
                    done.camera
                );
                println!("  names:       {}", c.sans.join(", "));
                println!("  valid until: {}", vigil_pki::rfc3339(c.not_after));
                println!("  SHA-256:     {}", c.fingerprint_sha256);
                if let Some(p) = &done.previous {
                    println!("  replaces:    {p}");
                }
                println!(
                    "  Recorded as the camera's certificate: a device presenting any other one is refused and alarmed."
                );
            }
        }
    }
    Ok(())
}

/// `vigil camera rotate-passwords`: a line per camera as it finishes, then the table (or
/// the JSON report); exit code 1 when any camera was not rotated. Never a password.
fn rotate_passwords(
    cfg: &vigil_config::Config,
    store: Store,
    selection: &Selection,
    json: bool,
    trail: &vigil_app::audit::Trail<'_>,
) -> anyhow::Result<()> {
    let server = vigil_app::export::server_name(&cfg.management.hostnames);
    let store = std::sync::Arc::new(store);
    // The events go to the installation's event store, as the server's own would.
    let events =
        vigil_events::EventStore::open(&cfg.data_dir).context("cannot open the event database")?;
    let bus = vigil_events::EventBus::start(std::sync::Arc::new(events), &server)?;
    let rt = runtime()?;
    let report = rt.block_on(async {
        let rotator = Rotator::for_installation(cfg, store.clone(), bus.clone());
        let total = rotator.select(selection)?.len();
        let mut done = 0;
        rotator
            .rotate(selection, Some(trail), |line| {
                done += 1;
                if !json {
                    eprintln!("[{done}/{total}] {}: {}", line.camera, describe(line));
                }
            })
            .await
    });
    bus.flush();
    bus.close();
    let report = report?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{:<20} {:<14} {:<20} REASON", "CAMERA", "RESULT", "TIME");
        for l in &report.cameras {
            println!(
                "{:<20} {:<14} {:<20} {}",
                l.camera,
                l.result.as_str(),
                format_us(l.time_us),
                l.reason.as_deref().unwrap_or("-")
            );
        }
        println!(
            "{} rotated, {} kept their old password, {} not rotatable, {} failed",
            report.count(Outcome::Rotated),
            report.count(Outcome::KeptOld),
            report.count(Outcome::NotRotatable),
            report.count(Outcome::Failed)
        );
    }
    if report.any_failed() {
        return Err(crate::ExitWith(1).into());
    }
    Ok(())
}

fn describe(l: &vigil_app::rotation::CameraRotation) -> String {
    match &l.reason {
        Some(r) => format!("{} ({r})", l.result.as_str()),
        None => l.result.as_str().to_owned(),
    }
}

/// A recorded device identity on one line.
fn identity_line(d: &vigil_media::store::DeviceIdentity) -> String {
    format!(
        "{} {} firmware {} serial {}{}",
        d.manufacturer,
        d.model,
        d.firmware,
        d.serial,
        d.certificate
            .as_deref()
            .map(|c| format!(", HTTPS certificate SHA-256 {c}"))
            .unwrap_or_else(|| ", plain HTTP".into())
    )
}
