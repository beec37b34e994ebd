//! `vigil camera ...`: the camera list in the database, and the recorders' status.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use vigil_media::store::{NewCamera, now_us};
use vigil_media::time::format_us;

#[derive(Subcommand)]
pub enum CameraCommand {
    /// Add a camera by RTSP URL (credentials never go in the URL).
    Add {
        name: String,
        #[arg(long)]
        url: String,
        #[arg(long)]
        username: Option<String>,
        /// File holding the camera password (first line).
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// Delete video older than this (e.g. 30d); default from the config file.
        #[arg(long, value_parser = vigil_config::parse_duration)]
        max_age: Option<std::time::Duration>,
        /// Keep at most this many bytes of video for this camera.
        #[arg(long)]
        max_bytes: Option<u64>,
    },
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
    /// Stop recording a camera without removing it.
    Disable { name: String },
    /// Resume recording a disabled camera.
    Enable { name: String },
}

pub fn read_password_file(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read password file {}", path.display()))?;
    let pw = text.lines().next().unwrap_or("").to_owned();
    anyhow::ensure!(!pw.is_empty(), "password file {} is empty", path.display());
    Ok(pw)
}

pub fn run(cmd: CameraCommand, config: &Path) -> anyhow::Result<()> {
    let (_cfg, store) = crate::open_store(config)?;
    match cmd {
        CameraCommand::Add {
            name,
            url,
            username,
            password_file,
            max_age,
            max_bytes,
        } => {
            let password = password_file
                .as_deref()
                .map(read_password_file)
                .transpose()?;
            let cam = store.add_camera(&NewCamera {
                name,
                url,
                username,
                password,
                max_age_secs: max_age.map(|d| d.as_secs() as i64),
                max_bytes: max_bytes.map(|b| b as i64),
            })?;
            println!("Added camera {} ({}) {}", cam.name, cam.id, cam.url);
        }
        CameraCommand::List { json } => {
            let cams = store.cameras()?;
            if json {
                let v: Vec<_> = cams
                    .iter()
                    .map(|c| {
                        serde_json::json!({
                            "id": c.id, "name": c.name, "url": c.url, "username": c.username,
                            "has_password": c.has_password, "enabled": c.enabled,
                            "max_age_secs": c.max_age_secs, "max_bytes": c.max_bytes,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("{:<20} {:<18} {:<8} URL", "NAME", "ID", "ENABLED");
                for c in cams {
                    println!("{:<20} {:<18} {:<8} {}", c.name, c.id, c.enabled, c.url);
                }
            }
        }
        CameraCommand::Remove {
            name,
            delete_recordings,
        } => {
            let cam = store.remove_camera(&name, delete_recordings)?;
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
        CameraCommand::Disable { name } => {
            store.set_camera_enabled(&name, false)?;
            println!("Camera {name} disabled");
        }
        CameraCommand::Enable { name } => {
            store.set_camera_enabled(&name, true)?;
            println!("Camera {name} enabled");
        }
        CameraCommand::Status { json } => {
            let now = now_us();
            let mut rows = Vec::new();
            for c in store.cameras()? {
                let s = store.status(&c.id)?;
                // A status nobody refreshed for a while means no server is recording it.
                let stale = s.as_ref().is_none_or(|s| now - s.updated_us > 10_000_000);
                let state = if !c.enabled {
                    "disabled".to_owned()
                } else if stale {
                    "not running".to_owned()
                } else {
                    s.as_ref().map(|s| s.state.clone()).unwrap_or_default()
                };
                rows.push((c, s, state));
            }
            if json {
                let v: Vec<_> = rows
                    .iter()
                    .map(|(c, s, state)| {
                        serde_json::json!({
                            "name": c.name, "state": state,
                            "last_error": s.as_ref().and_then(|s| s.last_error.clone()),
                            "bitrate_bps": s.as_ref().map(|s| s.bitrate_bps),
                            "fps": s.as_ref().map(|s| s.fps),
                            "last_frame": s.as_ref().and_then(|s| s.last_frame_us).map(format_us),
                            "codec": s.as_ref().and_then(|s| s.codec.clone()),
                            "resolution": s.as_ref().and_then(|s| s.resolution.clone()),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "{:<16} {:<13} {:>10} {:>6} {:<26} DETAIL",
                    "NAME", "STATE", "KBIT/S", "FPS", "LAST FRAME"
                );
                for (c, s, state) in rows {
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
                        c.name, state, kbps, fps, last, detail
                    );
                }
            }
        }
    }
    Ok(())
}
