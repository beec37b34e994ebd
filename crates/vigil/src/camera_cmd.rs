//! `vigil camera ...`: the camera list in the database (each camera with its secondary stream,
//! if any), adding cameras (by RTSP URL or ONVIF), discovery, and the recorders' status. The
//! commands about a camera's credentials and device (rotation, set-password, accept-device,
//! install-certificate) are in `camera_security_cmd`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use vigil_app::cameras::{self, CameraError};
use vigil_app::onvif::{DiscoverRequest, OnvifAdd, OnvifUseError};
use vigil_media::store::{
    Camera, CameraStatus, NewCamera, NewSecondary, Store, StoreError, StreamMode, now_us,
};
use vigil_media::time::format_us;

fn parse_mode(s: &str) -> Result<StreamMode, String> {
    s.parse()
}

#[derive(Subcommand)]
pub enum CameraCommand {
    /// Add a camera by RTSP URL (credentials never go in the URL), or from its ONVIF device
    /// with --onvif (streams chosen from its profiles, identity recorded).
    Add {
        name: String,
        #[arg(long, required_unless_present = "onvif", conflicts_with = "onvif")]
        url: Option<String>,
        /// The camera's ONVIF address, https://HOST[:PORT] (the device service path defaults
        /// to /onvif/device_service): the stream for recording and a smaller one for live
        /// grids are read from its profiles.
        #[arg(long)]
        onvif: Option<String>,
        /// With --onvif: accept exactly this HTTPS certificate (SHA-256 fingerprint, as the
        /// refusal shows it), e.g. a camera's self-signed one.
        #[arg(long, requires = "onvif")]
        fingerprint: Option<String>,
        /// With --onvif: allow an http:// address (nothing on the link is encrypted or
        /// verified).
        #[arg(long, requires = "onvif")]
        allow_http: bool,
        #[arg(long)]
        username: Option<String>,
        /// File holding the camera password (first line). With --onvif and --username but
        /// no file, the password is asked for on the terminal.
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// Delete video older than this (e.g. 30d); default from the config file.
        #[arg(long, value_parser = vigil_config::parse_duration)]
        max_age: Option<std::time::Duration>,
        /// Keep at most this many bytes of video for this camera (both streams together).
        #[arg(long)]
        max_bytes: Option<u64>,
        /// RTSP URL of the camera's secondary stream (typically a lower resolution, which the
        /// web client's grid shows).
        #[arg(long, conflicts_with = "onvif")]
        secondary_url: Option<String>,
        #[arg(long, requires = "secondary_url")]
        secondary_username: Option<String>,
        /// File holding the secondary stream's password (first line).
        #[arg(long, requires = "secondary_url")]
        secondary_password_file: Option<PathBuf>,
        /// `live` (live view only, the default) or `recorded` (stored and signed like the
        /// main stream).
        #[arg(long, requires = "secondary_url", value_parser = parse_mode)]
        secondary_mode: Option<StreamMode>,
    },
    /// Set or replace a camera's secondary stream, or remove it with --remove (its recordings
    /// are kept, under the camera's retention).
    SetSecondary {
        name: String,
        /// RTSP URL of the secondary stream.
        #[arg(long, required_unless_present = "remove", conflicts_with = "remove")]
        url: Option<String>,
        #[arg(long, conflicts_with = "remove")]
        username: Option<String>,
        /// File holding the secondary stream's password (first line).
        #[arg(long, conflicts_with = "remove")]
        password_file: Option<PathBuf>,
        /// `live` (live view only, the default) or `recorded`.
        #[arg(long, value_parser = parse_mode, conflicts_with = "remove")]
        mode: Option<StreamMode>,
        /// Remove the camera's secondary stream.
        #[arg(long)]
        remove: bool,
    },
    /// Find ONVIF cameras by WS-Discovery: multicast on the local network, and with
    /// --subnet unicast probes to every address of a subnet (multicast does not cross
    /// routers).
    Discover {
        /// IPv4 subnet to probe address by address, e.g. 192.168.10.0/24 (at most a /16).
        #[arg(long)]
        subnet: Option<String>,
        #[arg(long)]
        json: bool,
        /// How long to wait for answers after the last probe (e.g. 3s).
        #[arg(long, value_parser = vigil_config::parse_duration, default_value = "3s")]
        wait: std::time::Duration,
        /// Do not send the multicast probe (only the --subnet probes).
        #[arg(long, requires = "subnet")]
        no_multicast: bool,
        /// The UDP port probed (cameras answer on 3702).
        #[arg(long, default_value_t = vigil_onvif::discovery::PORT, hide = true)]
        port: u16,
    },
    #[command(flatten)]
    Security(crate::camera_security_cmd::SecurityCommand),
    /// List cameras.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a camera (its recordings are kept unless --delete-recordings).
    Remove {
        name: String,
        #[arg(long)]
        delete_recordings: bool,
    },
    /// Recording status of every camera.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// On a management server: choose the recording server that records a camera
    /// (docs/cluster.md, "Assigning cameras"). The server fetches the camera's definition with
    /// its next heartbeat (within 5 s) and starts recording; the server it had stops.
    Assign {
        name: String,
        /// The recording server (as `vigil server list` names it).
        #[arg(long, required_unless_present_any = ["auto", "unassign"], conflicts_with_all = ["auto", "unassign"])]
        server: Option<String>,
        /// The online recording server with the fewest cameras.
        #[arg(long, conflicts_with = "unassign")]
        auto: bool,
        /// No recording server: the camera is recorded nowhere until assigned again.
        #[arg(long)]
        unassign: bool,
    },
    /// Stop recording a camera without removing it.
    Disable { name: String },
    /// Resume recording a disabled camera.
    Enable { name: String },
    /// Accept exactly one TLS certificate for an rtsps:// camera (its SHA-256 fingerprint, as
    /// the camera status shows it), e.g. a self-signed one; --remove goes back to verifying
    /// against the trust store.
    Trust {
        name: String,
        /// SHA-256 fingerprint: 64 hex digits, colons allowed.
        #[arg(long, required_unless_present = "remove", conflicts_with = "remove")]
        fingerprint: Option<String>,
        /// Remove the pin.
        #[arg(long)]
        remove: bool,
    },
}

pub fn read_password_file(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read password file {}", path.display()))?;
    let pw = text.lines().next().unwrap_or("").to_owned();
    anyhow::ensure!(!pw.is_empty(), "password file {} is empty", path.display());
    Ok(pw)
}

pub fn run(cmd: CameraCommand, config: &Path) -> anyhow::Result<()> {
    let (cfg, store) = crate::open_store(config)?;
    // Every change is recorded in the audit log as the operating-system user.
    let changes = matches!(
        cmd,
        CameraCommand::Add { .. }
            | CameraCommand::SetSecondary { .. }
            | CameraCommand::Remove { .. }
            | CameraCommand::Disable { .. }
            | CameraCommand::Assign { .. }
            | CameraCommand::Enable { .. }
            | CameraCommand::Trust { .. }
            | CameraCommand::Security(_)
    );
    let access = changes
        .then(|| vigil_app::audit::open_access(&cfg))
        .transpose()?;
    let trail = access
        .as_ref()
        .map(|a| vigil_app::audit::Trail::new(a, vigil_app::audit::cli_actor()));
    let trail = || trail.as_ref().expect("opened for every change");
    match cmd {
        CameraCommand::Add {
            name,
            onvif: Some(address),
            fingerprint,
            allow_http,
            username,
            password_file,
            max_age,
            max_bytes,
            ..
        } => {
            let password = match (&password_file, &username) {
                (Some(file), _) => Some(read_password_file(file)?),
                (None, Some(user)) => {
                    let pw = crate::backup_cmd::prompt(&format!("ONVIF password of {user}: "))?;
                    anyhow::ensure!(!pw.is_empty(), "no password given");
                    Some(pw)
                }
                (None, None) => None,
            };
            let trust = vigil_app::onvif::camera_trust(&cfg.data_dir);
            let request = OnvifAdd {
                name,
                address,
                username,
                password,
                pin: fingerprint,
                allow_http,
                enabled: true,
                max_age_secs: max_age.map(|d| d.as_secs() as i64),
                max_bytes: max_bytes.map(|b| b as i64),
            };
            let added = runtime()?
                .block_on(vigil_app::onvif::add(&store, trust, &request, trail()))
                .map_err(onvif_advice)?;
            let cam = &added.camera;
            let id = &added.identity;
            println!("Added camera {} ({}) {}", cam.name, cam.id, cam.url);
            println!(
                "  recording profile {}: {} {}x{}",
                added.main.profile, added.main.encoding, added.main.width, added.main.height
            );
            if let Some(s) = &added.secondary {
                println!(
                    "  live grid profile {}: {} {}x{}",
                    s.profile, s.encoding, s.width, s.height
                );
            }
            if let Some(line) = secondary_line(cam) {
                println!("{line}");
            }
            println!(
                "  device: {} {} firmware {} serial {}{}",
                id.manufacturer,
                id.model,
                id.firmware,
                id.serial,
                id.certificate
                    .as_deref()
                    .map(|c| format!(", HTTPS certificate SHA-256 {c}"))
                    .unwrap_or_else(|| ", plain HTTP (not encrypted)".into())
            );
        }
        CameraCommand::Security(cmd) => {
            return crate::camera_security_cmd::run(cmd, &cfg, store, trail());
        }
        CameraCommand::Discover {
            subnet,
            json,
            wait,
            no_multicast,
            port,
        } => {
            let trust = vigil_app::onvif::camera_trust(&cfg.data_dir);
            let request = DiscoverRequest {
                subnet,
                multicast: !no_multicast,
                port,
                wait,
            };
            let found =
                runtime()?.block_on(vigil_app::onvif::discover(&store, &trust, &request))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&found)?);
            } else if found.is_empty() {
                println!(
                    "No ONVIF camera answered{}",
                    if request.subnet.is_some() {
                        ""
                    } else {
                        " (multicast reaches the local network only; probe other subnets with --subnet CIDR)"
                    }
                );
            } else {
                println!(
                    "{:<16} {:<14} {:<20} {:<12} {:<14} {:<6} {:<12} ONVIF",
                    "ADDRESS", "MANUFACTURER", "MODEL", "FIRMWARE", "SERIAL", "HTTPS", "ADDED"
                );
                let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
                for d in &found {
                    println!(
                        "{:<16} {:<14} {:<20} {:<12} {:<14} {:<6} {:<12} {}",
                        d.address,
                        dash(&d.manufacturer),
                        dash(&d.model),
                        dash(&d.firmware),
                        dash(&d.serial),
                        if d.https { "yes" } else { "no" },
                        dash(&d.added_as),
                        d.onvif_url
                    );
                }
            }
        }
        CameraCommand::Add {
            name,
            url,
            username,
            password_file,
            max_age,
            max_bytes,
            secondary_url,
            secondary_username,
            secondary_password_file,
            secondary_mode,
            ..
        } => {
            let url = url.context("give --url or --onvif")?;
            let password = password_file
                .as_deref()
                .map(read_password_file)
                .transpose()?;
            let secondary = secondary_url
                .map(|url| {
                    Ok::<_, anyhow::Error>(NewSecondary {
                        url,
                        username: secondary_username,
                        password: secondary_password_file
                            .as_deref()
                            .map(read_password_file)
                            .transpose()?,
                        mode: secondary_mode.unwrap_or_default(),
                    })
                })
                .transpose()?;
            let cam = cameras::add(
                &store,
                &NewCamera {
                    name,
                    url,
                    username,
                    password,
                    max_age_secs: max_age.map(|d| d.as_secs() as i64),
                    max_bytes: max_bytes.map(|b| b as i64),
                    secondary,
                },
                true,
                trail(),
            )
            .map_err(|e| credential_advice(e, "--secondary-"))?;
            println!("Added camera {} ({}) {}", cam.name, cam.id, cam.url);
            if let Some(line) = secondary_line(&cam) {
                println!("{line}");
            }
        }
        CameraCommand::SetSecondary {
            name,
            url,
            username,
            password_file,
            mode,
            remove,
        } => {
            let secondary = match (url, remove) {
                (Some(url), false) => Some(NewSecondary {
                    url,
                    username,
                    password: password_file
                        .as_deref()
                        .map(read_password_file)
                        .transpose()?,
                    mode: mode.unwrap_or_default(),
                }),
                _ => None,
            };
            let cam = cameras::set_secondary(&store, &name, secondary.as_ref(), trail())
                .map_err(|e| credential_advice(e, "--"))?;
            match secondary_line(&cam) {
                Some(line) => println!("Camera {}: {}", cam.name, line.trim_start()),
                None => println!(
                    "Camera {}: secondary stream removed (recordings of it are kept)",
                    cam.name
                ),
            }
        }
        CameraCommand::List { json } => {
            let cams = store.cameras()?;
            let assigned = vigil_app::assignments::by_camera(&cfg)?;
            if json {
                let mut v = Vec::new();
                for c in &cams {
                    let device = vigil_app::device_check::device_view(&store, &c.id)?;
                    v.push(serde_json::json!({
                            "id": c.id, "name": c.name, "url": c.url, "username": c.username,
                            "has_password": c.has_password, "enabled": c.enabled,
                            "max_age_secs": c.max_age_secs, "max_bytes": c.max_bytes,
                            "tls_pin": c.tls_pin,
                            "recording_server": assigned.get(&c.id),
                            "device": device,
                            "secondary": c.secondary.as_ref().map(|s| serde_json::json!({
                                "id": s.id, "url": s.url, "username": s.username,
                                "has_password": s.has_password, "mode": s.mode.as_str(),
                            })),
                    }));
                }
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                // The recording server column only where cameras can be assigned.
                let cluster = cfg.role == vigil_config::Role::Management;
                let server = |c: &Camera| {
                    if !cluster {
                        return String::new();
                    }
                    let s = assigned.get(&c.id).map_or("-", String::as_str);
                    format!("{s:<16} ")
                };
                let head = if cluster {
                    format!("{:<16} ", "SERVER")
                } else {
                    String::new()
                };
                println!("{:<20} {:<18} {:<8} {head}URL", "NAME", "ID", "ENABLED");
                for c in cams {
                    println!(
                        "{:<20} {:<18} {:<8} {}{}",
                        c.name,
                        c.id,
                        c.enabled,
                        server(&c),
                        c.url
                    );
                    if let Some(line) = secondary_line(&c) {
                        println!("{line}");
                    }
                    if let Some(d) = vigil_app::device_check::device_view(&store, &c.id)? {
                        println!("{}", device_line(&d));
                    }
                }
            }
        }
        CameraCommand::Remove {
            name,
            delete_recordings,
        } => {
            let cam = cameras::remove(&store, &name, delete_recordings, trail())?;
            println!(
                "Removed camera {}{}",
                cam.name,
                if delete_recordings {
                    " and its recordings"
                } else {
                    " (recordings kept on disk)"
                }
            );
        }
        CameraCommand::Assign {
            name,
            server,
            auto,
            unassign,
        } => {
            use vigil_app::assignments::Target;
            let target = match (server, auto, unassign) {
                (Some(s), _, _) => Target::Server(s),
                (None, true, _) => Target::Auto,
                _ => Target::Unassigned,
            };
            let done = vigil_app::assignments::assign(&cfg, &store, trail(), &name, &target)?;
            match (&done.server, &done.previous) {
                (Some(s), Some(p)) if s != p => println!(
                    "Camera {} assigned to recording server {s} (was {p}; it stops recording the camera within a heartbeat, 5 s)",
                    done.camera
                ),
                (Some(s), _) => println!(
                    "Camera {} assigned to recording server {s}; it starts recording within a heartbeat (5 s)",
                    done.camera
                ),
                (None, Some(p)) => println!(
                    "Camera {} unassigned: {p} stops recording it within a heartbeat (5 s); no server records it now",
                    done.camera
                ),
                (None, None) => println!("Camera {} was not assigned", done.camera),
            }
        }
        CameraCommand::Disable { name } => {
            cameras::set_enabled(&store, &name, false, trail())?;
            println!("Camera {name} disabled");
        }
        CameraCommand::Enable { name } => {
            cameras::set_enabled(&store, &name, true, trail())?;
            println!("Camera {name} enabled");
        }
        CameraCommand::Trust {
            name, fingerprint, ..
        } => {
            let cam = cameras::trust(&store, &name, fingerprint.as_deref(), trail())?;
            match &cam.tls_pin {
                Some(pin) => println!(
                    "Camera {} now accepts only the TLS certificate with SHA-256 {pin}",
                    cam.name
                ),
                None => println!(
                    "Camera {}: pin removed; its certificate is verified against the trust store again",
                    cam.name
                ),
            }
        }
        CameraCommand::Status { json } => {
            let now = now_us();
            let mut rows = Vec::new();
            for c in store.cameras()? {
                let main = stream_status(&store, &c.id, c.enabled, now)?;
                let secondary = c
                    .secondary
                    .as_ref()
                    .map(|sec| stream_status(&store, &sec.id, c.enabled, now))
                    .transpose()?;
                rows.push((c, main, secondary));
            }
            if json {
                let v: Vec<_> = rows
                    .iter()
                    .map(|(c, (s, state), secondary)| {
                        let mut v = status_json(s.as_ref(), state);
                        v["name"] = c.name.clone().into();
                        v["device"] = serde_json::to_value(
                            vigil_app::device_check::device_view(&store, &c.id)
                                .ok()
                                .flatten(),
                        )
                        .unwrap_or_default();
                        v["link"] = link_json(&c.url, c.tls_pin.as_deref());
                        v["secondary"] = match (&c.secondary, secondary) {
                            (Some(sec), Some((s, state))) => {
                                let mut v = status_json(s.as_ref(), state);
                                v["mode"] = sec.mode.as_str().into();
                                v["link"] = link_json(&sec.url, c.tls_pin.as_deref());
                                v
                            }
                            _ => serde_json::Value::Null,
                        };
                        v
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "{:<16} {:<13} {:>10} {:>6} {:<26} DETAIL",
                    "NAME", "STATE", "KBIT/S", "FPS", "LAST FRAME"
                );
                let devices: std::collections::HashMap<String, String> = rows
                    .iter()
                    .filter_map(|(c, _, _)| {
                        let d = vigil_app::device_check::device_view(&store, &c.id).ok()??;
                        (d.check != vigil_app::device_check::VERIFIED)
                            .then(|| (c.name.clone(), device_line(&d)))
                    })
                    .collect();
                let flat = rows.into_iter().flat_map(|(c, main, secondary)| {
                    let sub = secondary.map(|(s, state)| ("  secondary".to_owned(), s, state));
                    std::iter::once((c.name, main.0, main.1)).chain(sub)
                });
                for (name, s, state) in flat {
                    let device = devices.get(&name);
                    let (kbps, fps, last, detail) = match &s {
                        Some(s) => (
                            format!("{:.0}", s.bitrate_bps / 1000.0),
                            format!("{:.1}", s.fps),
                            s.last_frame_us.map(format_us).unwrap_or_else(|| "-".into()),
                            s.last_error.clone().unwrap_or_else(|| {
                                format!(
                                    "{} {}",
                                    s.codec.clone().unwrap_or_default(),
                                    s.resolution.clone().unwrap_or_default()
                                )
                            }),
                        ),
                        None => ("-".into(), "-".into(), "-".into(), String::new()),
                    };
                    println!(
                        "{:<16} {:<13} {:>10} {:>6} {:<26} {}",
                        name, state, kbps, fps, last, detail
                    );
                    // A refused or unverified device is said under the camera (the refusal
                    // is also the failed stream's detail).
                    if let Some(line) = device {
                        println!("{line}");
                    }
                }
            }
        }
    }
    Ok(())
}

/// A camera's recorded device and its last check, indented under the camera.
fn device_line(d: &vigil_app::device_check::DeviceView) -> String {
    let check = match d.check.as_str() {
        "mismatch" => "REFUSED: another device answers".to_owned(),
        "unverified" => "UNVERIFIED: the device could not be asked".to_owned(),
        other => other.to_owned(),
    };
    let mut line = format!(
        "  device {} {} serial {} at {} ({check})",
        d.manufacturer, d.model, d.serial, d.onvif_url
    );
    if d.check != vigil_app::device_check::VERIFIED
        && let Some(detail) = &d.check_detail
    {
        line.push_str(&format!("\n    {detail}"));
    }
    line
}

/// A current-thread runtime for the ONVIF commands' network calls.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Adds the flag that fixes an ONVIF refusal the device's answer cannot name.
pub(crate) fn onvif_advice(e: OnvifUseError) -> anyhow::Error {
    use vigil_onvif::OnvifError;
    let advice = match &e {
        OnvifUseError::Onvif(OnvifError::CertificateUntrusted { fingerprint, .. }) => {
            format!("; to accept it: --fingerprint {fingerprint}")
        }
        OnvifUseError::PlainHttp(_) => "; allow it with --allow-http".into(),
        _ => String::new(),
    };
    anyhow::anyhow!("{e}{advice}")
}

/// The store says what is wrong with a camera's credentials; this adds which flags fix it.
/// `secondary` is how the command spells the secondary stream's flags (`camera add` says
/// `--secondary-username`, `camera set-secondary` just `--username`).
fn credential_advice(e: CameraError, secondary: &str) -> anyhow::Error {
    let CameraError::Store(StoreError::InvalidCamera(m)) = e else {
        return e.into();
    };
    let p = if m.starts_with("secondary stream:") {
        secondary
    } else {
        "--"
    };
    let advice = if m.starts_with("credentials must not be part of the URL")
        || m.starts_with("secondary stream: credentials must not be part of the URL")
    {
        format!("; use {p}username and {p}password-file")
    } else if m.ends_with("without a user name") {
        format!("; give {p}username too")
    } else {
        String::new()
    };
    anyhow::Error::new(StoreError::InvalidCamera(format!("{m}{advice}")))
}

/// One line about the camera's secondary stream, indented under the camera; never the
/// password, only whether one is stored.
fn secondary_line(c: &Camera) -> Option<String> {
    let s = c.secondary.as_ref()?;
    let mode = match s.mode {
        StreamMode::Live => "live view only",
        StreamMode::Recorded => "recorded",
    };
    let mut who = Vec::new();
    if let Some(u) = &s.username {
        who.push(format!("user {u}"));
    }
    if s.has_password {
        who.push("password stored".to_owned());
    }
    let who = if who.is_empty() {
        String::new()
    } else {
        format!(" ({})", who.join(", "))
    };
    Some(format!("  secondary stream, {mode}: {}{who}", s.url))
}

/// A stream's status and the state to show: `disabled`, `not running` when no server
/// refreshed it for a while, else what its recorder says.
fn stream_status(
    store: &Store,
    id: &str,
    enabled: bool,
    now: i64,
) -> anyhow::Result<(Option<CameraStatus>, String)> {
    let s = store.stream_status(id, enabled, now)?;
    Ok((s.stored, s.state))
}

/// A stream link's security, as the API's `link` says it.
fn link_json(url: &str, pin: Option<&str>) -> serde_json::Value {
    let l = cameras::link(url, pin);
    serde_json::json!({
        "scheme": l.scheme, "encrypted": l.encrypted, "verified": l.verified,
        "pinned": l.pinned, "summary": l.summary,
    })
}

fn status_json(s: Option<&CameraStatus>, state: &str) -> serde_json::Value {
    serde_json::json!({
        "state": state,
        "last_error": s.and_then(|s| s.last_error.clone()),
        "bitrate_bps": s.map(|s| s.bitrate_bps),
        "fps": s.map(|s| s.fps),
        "last_frame": s.and_then(|s| s.last_frame_us).map(format_us),
        "codec": s.and_then(|s| s.codec.clone()),
        "resolution": s.and_then(|s| s.resolution.clone()),
    })
}
