//! `vigil recordings` and `vigil export`.

use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use vigil_app::audit::Trail;
use vigil_app::export::{
    BundleRequest, ExporterIdentity, Output, TailSigning, TailWait, server_name,
};
use vigil_media::live::Stream;
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
    /// The camera's recorded secondary stream instead of its main stream.
    #[arg(long)]
    pub secondary: bool,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    pub camera: String,
    #[arg(long, allow_hyphen_values = true)]
    pub from: String,
    #[arg(long, allow_hyphen_values = true)]
    pub to: String,
    /// Output: `NAME.mp4` for a video, or a directory with a trailing `/` (or `--bundle`) for
    /// a signed evidence bundle that `vigil verify DIR` checks offline.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Write a signed evidence bundle into the directory OUTPUT.
    #[arg(long)]
    pub bundle: bool,
    /// Overwrite existing MP4 files (a bundle always needs a new or empty directory).
    #[arg(long)]
    pub force: bool,
    /// The camera's recorded secondary stream instead of its main stream.
    #[arg(long)]
    pub secondary: bool,
}

/// Which of a camera's streams `--secondary` asks for.
pub fn stream(secondary: bool) -> Stream {
    if secondary {
        Stream::Secondary
    } else {
        Stream::Main
    }
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
    let cam = store.recorded_stream(&args.camera, stream(args.secondary))?;
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

fn progress_bar() -> anyhow::Result<ProgressBar> {
    Ok(ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "{spinner} exporting [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )?
        .progress_chars("=> "),
    ))
}

fn print_gaps(gaps: &[vigil_media::store::GapRow]) {
    for g in gaps {
        println!(
            "note: the range contains a recording gap {} .. {} ({:.1} s, {}); the video holds its last frame before the gap until recording resumes",
            format_us(g.start_us),
            format_us(g.end_us),
            (g.end_us - g.start_us) as f64 / 1e6,
            g.reason
        );
    }
}

pub fn export(args: &ExportArgs, config: &Path) -> anyhow::Result<()> {
    let output = Output::choose(&args.output, args.bundle)?;
    let (cfg, store) = crate::open_store(config)?;
    let (from, to) = range(Some(&args.from), Some(&args.to))?;
    let camera = store
        .recorded_stream(&args.camera, stream(args.secondary))?
        .id;
    // The export is recorded in the audit log as the operating-system user.
    let access = vigil_app::audit::open_access(&cfg)?;
    let trail = Trail::new(&access, vigil_app::audit::cli_actor());
    let path = match output {
        Output::Bundle(dir) => {
            return export_bundle(&camera, &dir, &cfg, &store, from, to, &trail);
        }
        Output::Mp4(path) => path,
    };
    let bar = progress_bar()?;
    let report = vigil_app::export::export_mp4(
        &store,
        &camera,
        from,
        to,
        &path,
        args.force,
        &cfg.archive,
        &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
        Some(&trail),
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
    print_gaps(&report.gaps);
    Ok(())
}

/// `camera`: the stream's id.
fn export_bundle(
    camera: &str,
    dir: &Path,
    cfg: &vigil_config::Config,
    store: &vigil_media::store::Store,
    from: i64,
    to: i64,
    trail: &Trail<'_>,
) -> anyhow::Result<()> {
    let req = BundleRequest {
        store,
        data_dir: &cfg.data_dir,
        camera,
        from_us: from,
        to_us: to,
        // The bundle names its exporter as the audit log does.
        exporter: ExporterIdentity {
            user: trail.actor().name.clone(),
            server: server_name(&cfg.management.hostnames),
        },
        archive: &cfg.archive,
        audit: Some(trail),
    };
    // The staging copy goes next to the bundle: same volume, so nothing lands in a shared /tmp.
    let staging = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let bar = progress_bar()?;
    // A running server owns the ledger: this process only reads it, and waits for the
    // server's next signature so that video recorded a moment ago is covered.
    let mut notify = |w: &TailWait| match w {
        TailWait::Waiting {
            segment,
            gop,
            recorded_at_us,
            timeout,
        } => println!(
            "waiting up to {} s for the recording server to sign the newest exported GOP ({gop} of segment {segment}, recorded at {})",
            timeout.as_secs(),
            format_us(*recorded_at_us)
        ),
        TailWait::Signed { after } => {
            println!("signed after {:.1} s", after.as_secs_f64())
        }
        TailWait::GaveUp { after } => println!(
            "nothing signed it within {:.0} s (no recording server running, or it stopped uncleanly): exporting anyway",
            after.as_secs_f64()
        ),
    };
    let tail = TailSigning::Wait {
        timeout: vigil_app::export::SIGNATURE_WAIT,
        notify: &mut notify,
    };
    let report = vigil_app::export::export_bundle(&req, dir, staging, tail, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    println!(
        "wrote evidence bundle {}: {} frames, {} .. {} ({:.1} s), {} fragments",
        dir.display(),
        report.frames,
        format_us(report.start_us),
        format_us(report.end_us),
        (report.end_us - report.start_us) as f64 / 1e6,
        report.summary.fragments
    );
    if report.summary.unsigned_fragments > 0 {
        println!(
            "note: the last {} fragment(s) are not signed: verification reports them as unsigned (not as tampering)",
            report.summary.unsigned_fragments
        );
    }
    print_gaps(&report.gaps);
    println!(
        "verify anywhere with: vigil verify {} --fingerprint <CA SHA-256 from `vigil pki ca-cert --fingerprint`>",
        dir.display()
    );
    Ok(())
}
