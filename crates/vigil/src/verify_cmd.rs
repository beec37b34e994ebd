//! `vigil verify`: a camera's recordings on this server, or an exported evidence bundle
//! anywhere (only the CA certificate or its fingerprint needed).

use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use vigil_app::verify::{self, Outcome};
use vigil_media::store::now_us;
use vigil_media::time::parse_time;
use vigil_signing::TimeRange;
use vigil_signing::bundle::TrustAnchor;

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// A camera name (verify its recordings here) or an export bundle directory.
    pub target: String,
    #[arg(long, allow_hyphen_values = true)]
    pub from: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    pub to: Option<String>,
    /// For bundles: the installation's CA certificate (PEM) to trust.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// For bundles: SHA-256 fingerprint of the CA certificate to trust.
    #[arg(long)]
    pub fingerprint: Option<String>,
    #[arg(long)]
    pub json: bool,
    /// For a camera: its recorded secondary stream instead of its main stream.
    #[arg(long)]
    pub secondary: bool,
}

fn bar() -> ProgressBar {
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "{spinner} verifying [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar
}

/// Exit code: 0 verified, 1 failure found (or error), 2 only unsigned data (no tampering).
pub fn run(args: &VerifyArgs, config: &Path) -> anyhow::Result<i32> {
    let as_dir = Path::new(&args.target);
    if as_dir.is_dir() {
        return verify_bundle(args, as_dir, config);
    }
    let (cfg, store) = crate::open_store(config)?;
    // Recorded in the audit log as the operating-system user.
    let access = vigil_app::audit::open_access(&cfg)?;
    let trail = vigil_app::audit::Trail::new(&access, vigil_app::audit::cli_actor());
    let now = now_us();
    let range = TimeRange {
        from_us: args
            .from
            .as_deref()
            .map(|t| parse_time(t, now))
            .transpose()?,
        to_us: args.to.as_deref().map(|t| parse_time(t, now)).transpose()?,
    };
    let ca_path = cfg.data_dir.join("pki").join("ca.crt");
    let ca_pem = std::fs::read_to_string(&ca_path)
        .with_context(|| format!("cannot read the CA certificate {}", ca_path.display()))?;
    let camera = store
        .recorded_stream(&args.target, crate::recordings_cmd::stream(args.secondary))?
        .id;
    let bar = bar();
    let verified = verify::verify_camera(
        &store,
        &cfg.data_dir,
        &camera,
        range,
        &ca_pem,
        &cfg.archive,
        &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
        Some(&trail),
    );
    bar.finish_and_clear();
    let (cam, report) = verified?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("camera {}: {}", cam.name, report.summary());
    }
    Ok(exit_code(Outcome::of_recording(&report)))
}

fn exit_code(outcome: Outcome) -> i32 {
    match outcome {
        Outcome::Verified => 0,
        Outcome::Tampered => 1,
        Outcome::Unsigned => 2,
    }
}

/// A bundle is verified anywhere; on an installation (its configuration file exists) the
/// verification is recorded in its audit log.
fn verify_bundle(args: &VerifyArgs, dir: &Path, config: &Path) -> anyhow::Result<i32> {
    let trust = match (&args.ca, &args.fingerprint) {
        (Some(ca), None) => TrustAnchor::CaCert(
            std::fs::read_to_string(ca)
                .with_context(|| format!("cannot read CA certificate {}", ca.display()))?,
        ),
        (None, Some(fp)) => TrustAnchor::Fingerprint(fp.clone()),
        _ => anyhow::bail!(
            "to verify a bundle, give exactly one of --ca CA.pem or --fingerprint SHA256 (the installation's CA, from `vigil pki ca-cert` or `vigil pki ca-cert --fingerprint`)"
        ),
    };
    // Only an existing installation's log: a bundle taken elsewhere verifies here even when
    // this directory's configuration is broken or names no installation (nothing is created).
    let access = if config.exists() {
        let opened = vigil_config::Config::load(config)
            .map_err(anyhow::Error::from)
            .and_then(|cfg| {
                let db = cfg.data_dir.join("access.db");
                if !db.is_file() {
                    anyhow::bail!("{} does not exist", db.display());
                }
                Ok(vigil_app::audit::open_access(&cfg)?)
            });
        match opened {
            Ok(access) => Some(access),
            Err(e) => {
                eprintln!(
                    "note: this verification is not recorded in an audit log ({}: {e:#})",
                    config.display()
                );
                None
            }
        }
    } else {
        None
    };
    let trail = access
        .as_ref()
        .map(|a| vigil_app::audit::Trail::new(a, vigil_app::audit::cli_actor()));
    let bar = bar();
    let verified = verify::verify_bundle(
        dir,
        &trust,
        &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
        trail.as_ref(),
    );
    bar.finish_and_clear();
    let (report, outcome) = verified?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", report.summary());
    }
    Ok(exit_code(outcome))
}
