//! `vigil recordings` and `vigil export`.

use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use vigil_media::store::now_us;
use vigil_media::time::{format_us, parse_time};

#[derive(clap::Args)]
pub struct RecordingsArgs {
    pub camera: String,
    /// Start (RFC 3339, -10m, now, or Unix seconds). Default: everything.
    #[arg(long, allow_hyphen_values = true)]
    pub from: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    pub to: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    pub camera: String,
    #[arg(long, allow_hyphen_values = true)]
    pub from: String,
    #[arg(long, allow_hyphen_values = true)]
    pub to: String,
    /// Output: an MP4 file, or a directory (ending in `/`, or without `.mp4`) for a signed
    /// evidence bundle that `vigil verify DIR` checks offline.
    #[arg(short, long)]
    pub output: PathBuf,
}

fn range(from: Option<&str>, to: Option<&str>) -> anyhow::Result<(i64, i64)> {
    let now = now_us();
    let from = from.map(|f| parse_time(f, now)).transpose()?.unwrap_or(0);
    let to = to
        .map(|t| parse_time(t, now))
        .transpose()?
        .unwrap_or(i64::MAX / 2);
    anyhow::ensure!(to > from, "--to must be after --from");
    Ok((from, to))
}

pub fn recordings(args: &RecordingsArgs, config: &Path) -> anyhow::Result<()> {
    let (_cfg, store) = crate::open_store(config)?;
    let cam = store.camera(&args.camera)?;
    let (from, to) = range(args.from.as_deref(), args.to.as_deref())?;
    let ranges = store.ranges(&cam.id, from, to)?;
    let gaps = store.gaps(&cam.id, from, to)?;
    if args.json {
        let v = serde_json::json!({
            "camera": cam.name,
            "ranges": ranges.iter().map(|(s, e)| serde_json::json!({
                "start": format_us(*s), "end": format_us(*e), "start_us": s, "end_us": e,
                "seconds": (e - s) as f64 / 1e6 })).collect::<Vec<_>>(),
            "gaps": gaps.iter().map(|g| serde_json::json!({
                "start": format_us(g.start_us), "end": format_us(g.end_us),
                "start_us": g.start_us, "end_us": g.end_us, "reason": g.reason })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if ranges.is_empty() {
        println!("No recordings for {} in this range.", cam.name);
    }
    for (s, e) in &ranges {
        println!(
            "recorded {} .. {}  ({:.1} s)",
            format_us(*s),
            format_us(*e),
            (e - s) as f64 / 1e6
        );
    }
    for g in &gaps {
        println!(
            "gap      {} .. {}  ({:.1} s) {}",
            format_us(g.start_us),
            format_us(g.end_us),
            (g.end_us - g.start_us) as f64 / 1e6,
            g.reason
        );
    }
    Ok(())
}

/// An output without `.mp4` (or ending in a slash) is an evidence bundle directory.
fn is_bundle(output: &Path) -> bool {
    output.to_string_lossy().ends_with('/')
        || output.is_dir()
        || !output
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("mp4"))
}

pub fn export(args: &ExportArgs, config: &Path) -> anyhow::Result<()> {
    let (cfg, store) = crate::open_store(config)?;
    let (from, to) = range(Some(&args.from), Some(&args.to))?;
    if is_bundle(&args.output) {
        return export_bundle(args, &cfg, &store, from, to);
    }
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "{spinner} exporting [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )?
        .progress_chars("=> "),
    );
    let report = vigil_media::export::export(
        &store,
        &args.camera,
        from,
        to,
        &args.output,
        &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    )?;
    bar.finish_and_clear();
    for p in &report.parts {
        println!(
            "wrote {}: {} frames, {} .. {} ({:.1} s), {} bytes",
            p.path.display(),
            p.frames,
            format_us(p.start_us),
            format_us(p.end_us),
            (p.end_us - p.start_us) as f64 / 1e6,
            p.bytes
        );
    }
    if report.parts.len() > 1 {
        println!(
            "note: the codec parameters changed within the range, so the export is split into {} files (one per parameter set)",
            report.parts.len()
        );
    }
    for g in &report.gaps {
        println!(
            "note: the range contains a recording gap {} .. {} ({:.1} s, {}); the file's timeline skips it",
            format_us(g.start_us),
            format_us(g.end_us),
            (g.end_us - g.start_us) as f64 / 1e6,
            g.reason
        );
    }
    Ok(())
}

fn export_bundle(
    args: &ExportArgs,
    cfg: &vigil_config::Config,
    store: &vigil_media::store::Store,
    from: i64,
    to: i64,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let dir = &args.output;
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        anyhow::bail!(
            "{} is not empty; export a bundle into a new directory",
            dir.display()
        );
    }
    let cam = store.camera(&args.camera)?;
    // The MP4 is written next to the bundle first, then moved in by the bundle writer's checks.
    let staging = tempfile::Builder::new()
        .prefix(".vigil-export-")
        .tempdir_in(
            dir.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        )?;
    let mp4 = staging.path().join("video.mp4");
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "{spinner} exporting [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )?
        .progress_chars("=> "),
    );
    let report =
        vigil_media::export::export(store, &args.camera, from, to, &mp4, &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        })?;
    bar.finish_and_clear();
    anyhow::ensure!(
        report.parts.len() == 1,
        "the codec parameters change within this range; export the parts separately as bundles (ranges: {})",
        report
            .parts
            .iter()
            .map(|p| format!("{} .. {}", format_us(p.start_us), format_us(p.end_us)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let signer =
        vigil_signing::SigningIdentity::load(&vigil_media::evidence::signing_dir(&cfg.data_dir))
            .context("cannot load this server's signing key")?;
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    let server = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "vigil".into());
    let summary = vigil_signing::bundle::write(
        dir,
        &mp4,
        &vigil_media::evidence::ledger_path(&cfg.data_dir, &cam.id),
        &vigil_signing::bundle::ExportRange {
            camera_id: cam.id.clone(),
            from_us: Some(from),
            to_us: Some(to),
        },
        &vigil_signing::bundle::ExporterIdentity {
            user: format!("cli:{user}"),
            server,
        },
        &signer,
    )?;
    let part = &report.parts[0];
    println!(
        "wrote evidence bundle {}: {} frames, {} .. {} ({:.1} s), {} fragments",
        dir.display(),
        part.frames,
        format_us(part.start_us),
        format_us(part.end_us),
        (part.end_us - part.start_us) as f64 / 1e6,
        summary.fragments
    );
    if summary.unsigned_fragments > 0 {
        println!(
            "note: {} fragment(s) at the end are not signed yet (signatures follow within 10 s); export again to cover them",
            summary.unsigned_fragments
        );
    }
    println!(
        "verify anywhere with: vigil verify {} --fingerprint <CA SHA-256 from `vigil pki ca-cert`>",
        dir.display()
    );
    Ok(())
}
