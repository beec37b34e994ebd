//! Evidence-bundle export: the recorded bytes of a range plus the ledger excerpt that signs
//! them, signed by this server; and its tar packaging for download.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vigil_media::evidence::{ledger_path, signing_dir};
use vigil_media::store::{GapRow, Store};
use vigil_media::time::format_us;
use vigil_signing::SigningIdentity;
use vigil_signing::bundle::{
    self, ExportRange, ExporterIdentity, FragmentSigning, SignatureWatch, WriteSummary,
};

use super::{ExportError, Piece, write_err, write_pieces};
use crate::archive::Restore;
use crate::audit::Trail;

/// The name an export statement gives for this server: the host name, else the first
/// configured management host name, else "vigil". One rule, so a bundle says the same server
/// whether the CLI or the API made it.
pub fn server_name(management_hostnames: &[String]) -> String {
    fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| management_hostnames.first().cloned())
        .unwrap_or_else(|| "vigil".into())
}

/// What to export and as whom.
pub struct BundleRequest<'a> {
    pub store: &'a Store,
    pub data_dir: &'a Path,
    /// Camera name or id.
    pub camera: &'a str,
    pub from_us: i64,
    pub to_us: i64,
    pub exporter: ExporterIdentity,
    /// How archived segments of the range are brought back before they are staged (the
    /// `[archive]` section of the configuration).
    pub archive: &'a dyn Restore,
    /// Where the written bundle is recorded. The API leaves it out and records the download
    /// itself once it is sent (a `HEAD` request builds the bundle without handing it out).
    pub audit: Option<&'a Trail<'a>>,
}

/// How an export makes sure the newest exported fragment is signed before the ledger is read.
pub enum TailSigning<'a> {
    /// Inside the recording server, which owns the ledger writer: sign its chain head now.
    /// Called with the camera id.
    SignNow(&'a (dyn Fn(&str) -> Result<(), String> + Sync)),
    /// Beside a running server, whose ledger only it may write: wait up to `timeout` for its
    /// next signature (it signs at least every 10 s), telling `notify` what happens.
    Wait {
        timeout: Duration,
        notify: &'a mut dyn FnMut(&TailWait),
    },
    /// Take the ledger as it is.
    AsIs,
}

/// What a [`TailSigning::Wait`] export is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TailWait {
    /// The newest exported GOP is not signed yet; waiting for the server.
    Waiting {
        segment: i64,
        gop: i64,
        recorded_at_us: i64,
        timeout: Duration,
    },
    /// A signature now covers it.
    Signed { after: Duration },
    /// Nothing signed it in time (no server is running, or it stopped uncleanly): the export
    /// goes ahead with an unsigned tail.
    GaveUp { after: Duration },
}

/// What [`export_bundle`] wrote.
#[derive(Debug, Clone)]
pub struct BundleExport {
    pub dir: PathBuf,
    pub camera: String,
    pub frames: i64,
    pub start_us: i64,
    pub end_us: i64,
    pub summary: WriteSummary,
    pub gaps: Vec<GapRow>,
}

/// Writes the signed evidence bundle of `[from_us, to_us)` into `dir` (created; must be
/// absent or empty). The recorded bytes are staged in `staging` (a directory on the same
/// volume, removed afterwards) for the bundle writer, which checks them against the ledger.
/// `progress(done, total)` counts staged bytes.
pub fn export_bundle(
    req: &BundleRequest<'_>,
    dir: &Path,
    staging: &Path,
    tail: TailSigning<'_>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<BundleExport, ExportError> {
    if dir.exists() && fs::read_dir(dir).map_err(write_err(dir))?.next().is_some() {
        return Err(ExportError::NotEmpty(dir.to_path_buf()));
    }
    super::restore_range(req.store, req.camera, req.from_us, req.to_us, req.archive)?;
    let range = vigil_media::export::recorded_range(req.store, req.camera, req.from_us, req.to_us)?;
    if range.runs.len() > 1 {
        return Err(ExportError::CodecChange {
            starts: range.runs.iter().map(|r| r.start_us()).collect(),
        });
    }
    let cam = range.camera;
    let run = range.runs.into_iter().next().expect("at least one run");
    let signer = SigningIdentity::load(&signing_dir(req.data_dir)).map_err(|e| {
        tracing::error!(error = %e, "cannot load the signing key for an evidence export");
        ExportError::SigningKey(e)
    })?;
    let ledger = ledger_path(req.data_dir, &cam.id);
    if !ledger.exists() {
        return Err(ExportError::NoLedger { camera: cam.name });
    }
    let last = run.gops.last().expect("a run has GOPs");
    match tail {
        TailSigning::SignNow(sign) => {
            // An export that cannot sign the tail is still evidence: the unsigned part is
            // reported as such by the bundle and its verification.
            if let Err(e) = sign(&cam.id) {
                tracing::warn!(camera = %cam.name, error = %e, "cannot sign the ledger for an export");
            }
        }
        TailSigning::Wait { timeout, notify } => {
            wait_for_signature(&ledger, last, timeout, notify)?;
        }
        TailSigning::AsIs => {}
    }

    let stage = tempfile::Builder::new()
        .prefix(".vigil-export-")
        .tempdir_in(staging)
        .map_err(write_err(staging))?;
    let mp4 = stage.path().join("recorded.mp4");
    let mut pieces = vec![Piece::File {
        path: req.store.segment_path(&cam.id, run.init_seq),
        offset: 0,
        len: run.init_len,
    }];
    pieces.extend(run.gops.iter().map(|g| Piece::File {
        path: req.store.segment_path(&cam.id, g.seq),
        offset: g.offset as u64,
        len: g.len as u64,
    }));
    let total: u64 = pieces.iter().map(Piece::len).sum();
    let mut done = 0u64;
    let file = File::create(&mp4).map_err(write_err(&mp4))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    write_pieces(&pieces, &mut w, &mut |n| {
        done += n;
        progress(done, total);
    })
    .and_then(|()| w.flush())
    .map_err(write_err(&mp4))?;
    drop(w);
    let summary = bundle::write(
        dir,
        &mp4,
        &ledger,
        &ExportRange {
            camera_id: cam.id.clone(),
            from_us: Some(req.from_us),
            to_us: Some(req.to_us),
        },
        &req.exporter,
        &signer,
        &vigil_media::progressive::Evidence,
    )?;
    let export = BundleExport {
        dir: dir.to_path_buf(),
        camera: cam.name,
        frames: run.frames(),
        start_us: run.start_us(),
        end_us: run.end_us(),
        summary,
        gaps: range.gaps,
    };
    if let Some(trail) = req.audit {
        let e = &export;
        trail
            .record(
                vigil_access::AuditKind::Export,
                serde_json::json!({
                    "camera": e.camera, "from": format_us(req.from_us), "to": format_us(req.to_us),
                    "media_start": format_us(e.start_us), "media_end": format_us(e.end_us),
                    "frames": e.frames, "gaps": e.gaps.len(), "format": "bundle",
                    "fragments": e.summary.fragments,
                    "unsigned_fragments": e.summary.unsigned_fragments,
                    "exported_by": req.exporter.user, "output": dir.display().to_string(),
                }),
            )
            .map_err(ExportError::Audit)?;
    }
    Ok(export)
}

/// Polls the ledger until a signature follows the record of `gop`, or `timeout` passes.
fn wait_for_signature(
    ledger: &Path,
    gop: &vigil_media::store::GopRow,
    timeout: Duration,
    notify: &mut dyn FnMut(&TailWait),
) -> Result<(), ExportError> {
    let mut watch = SignatureWatch::new(ledger, gop.seq as u64, gop.gop_no as u32);
    if watch.poll()? == FragmentSigning::Signed {
        return Ok(());
    }
    notify(&TailWait::Waiting {
        segment: gop.seq,
        gop: gop.gop_no,
        recorded_at_us: gop.start_us,
        timeout,
    });
    let start = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        if watch.poll()? == FragmentSigning::Signed {
            notify(&TailWait::Signed {
                after: start.elapsed(),
            });
            return Ok(());
        }
        if start.elapsed() >= timeout {
            notify(&TailWait::GaveUp {
                after: start.elapsed(),
            });
            return Ok(());
        }
    }
}

// ------------------------------------------------------------------ tar

const BLOCK: u64 = 512;

/// A bundle written into a private temporary directory, ready to be sent as a tar archive of
/// known length. The directory lives as long as this value.
pub struct BundleTar {
    pub export: BundleExport,
    /// Top-level directory name inside the archive.
    pub top: String,
    /// Length of the archive in bytes.
    pub len: u64,
    /// (name in the archive, file; `None` for a directory), in archive order.
    entries: Vec<(String, Option<(PathBuf, u64)>)>,
    _dir: tempfile::TempDir,
}

impl BundleTar {
    /// Writes the archive (POSIX ustar, via the `tar` crate) to `w`, reading each file as it
    /// goes, so the bundle is never held in memory.
    pub fn write_to(&self, w: impl Write) -> io::Result<()> {
        let mut counted = Counted { w, n: 0 };
        let mtime = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        {
            let mut b = tar::Builder::new(&mut counted);
            for (name, file) in &self.entries {
                let mut h = tar::Header::new_ustar();
                h.set_mtime(mtime);
                match file {
                    None => {
                        h.set_entry_type(tar::EntryType::Directory);
                        h.set_mode(0o755);
                        h.set_size(0);
                        b.append_data(&mut h, name, io::empty())?;
                    }
                    Some((path, size)) => {
                        h.set_entry_type(tar::EntryType::Regular);
                        h.set_mode(0o644);
                        h.set_size(*size);
                        b.append_data(&mut h, name, File::open(path)?)?;
                    }
                }
            }
            b.finish()?;
        }
        // The length was announced before the first byte (Content-Length).
        if counted.n != self.len {
            return Err(io::Error::other(format!(
                "the archive came out {} bytes long, {} were announced",
                counted.n, self.len
            )));
        }
        Ok(())
    }
}

struct Counted<W> {
    w: W,
    n: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let k = self.w.write(buf)?;
        self.n += k as u64;
        Ok(k)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

/// The files below `dir` (a bundle has one level of subdirectories), names under `prefix`.
fn collect(
    dir: &Path,
    prefix: &str,
    out: &mut Vec<(String, Option<(PathBuf, u64)>)>,
) -> io::Result<()> {
    let mut list: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    list.sort_by_key(|e| e.file_name());
    for e in list {
        let name = e.file_name().to_string_lossy().into_owned();
        let meta = e.metadata()?;
        if meta.is_dir() {
            out.push((format!("{prefix}/{name}/"), None));
            collect(&e.path(), &format!("{prefix}/{name}"), out)?;
        } else if meta.is_file() {
            out.push((format!("{prefix}/{name}"), Some((e.path(), meta.len()))));
        }
    }
    Ok(())
}

/// Writes the bundle of a range into a private temporary directory inside `data_dir` (the
/// recordings' volume, never a shared /tmp) and lays out its tar archive, every entry under
/// `evidence-<camera>/`.
pub fn bundle_tar(
    req: &BundleRequest<'_>,
    tail: TailSigning<'_>,
) -> Result<BundleTar, ExportError> {
    let tmp = tempfile::Builder::new()
        .prefix(".vigil-api-export-")
        .tempdir_in(req.data_dir)
        .map_err(write_err(req.data_dir))?;
    let dir = tmp.path().join("bundle");
    let export = export_bundle(req, &dir, tmp.path(), tail, &mut |_, _| {})?;
    let top: String = format!("evidence-{}", export.camera)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut entries = vec![(format!("{top}/"), None)];
    collect(&dir, &top, &mut entries).map_err(write_err(&dir))?;
    // Short ASCII names fit a ustar header as they are: one header block per entry.
    if let Some((name, _)) = entries
        .iter()
        .find(|(n, _)| n.len() >= 100 || !n.is_ascii())
    {
        return Err(ExportError::Write {
            path: dir.clone(),
            source: io::Error::other(format!("tar entry name too long: {name}")),
        });
    }
    let len = entries
        .iter()
        .map(|(_, f)| {
            BLOCK
                + f.as_ref()
                    .map_or(0, |(_, size)| size.div_ceil(BLOCK) * BLOCK)
        })
        .sum::<u64>()
        + 2 * BLOCK;
    Ok(BundleTar {
        export,
        top,
        len,
        entries,
        _dir: tmp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_has_the_announced_length_and_the_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("b");
        fs::create_dir_all(dir.join("certs")).unwrap();
        fs::write(dir.join("video.mp4"), vec![7u8; 1300]).unwrap();
        fs::write(dir.join("certs/ca.pem"), b"pem").unwrap();
        fs::write(dir.join("empty"), b"").unwrap();
        let mut entries = vec![("evidence-c/".to_string(), None)];
        collect(&dir, "evidence-c", &mut entries).unwrap();
        let len = entries
            .iter()
            .map(|(_, f)| BLOCK + f.as_ref().map_or(0, |(_, s)| s.div_ceil(BLOCK) * BLOCK))
            .sum::<u64>()
            + 2 * BLOCK;
        let t = BundleTar {
            export: BundleExport {
                dir: dir.clone(),
                camera: "c".into(),
                frames: 0,
                start_us: 0,
                end_us: 0,
                summary: WriteSummary {
                    fragments: 0,
                    video_bytes: 0,
                    excerpt_records: 0,
                    unsigned_fragments: 0,
                },
                gaps: Vec::new(),
            },
            top: "evidence-c".into(),
            len,
            entries,
            _dir: tempfile::tempdir().unwrap(),
        };
        let mut out = Vec::new();
        t.write_to(&mut out).unwrap();
        assert_eq!(out.len() as u64, t.len);
        let mut a = tar::Archive::new(&out[..]);
        let mut seen = Vec::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            io::Read::read_to_end(&mut e, &mut data).unwrap();
            seen.push((name, data.len()));
        }
        assert_eq!(
            seen,
            [
                ("evidence-c/".to_string(), 0),
                ("evidence-c/certs/".to_string(), 0),
                ("evidence-c/certs/ca.pem".to_string(), 3),
                ("evidence-c/empty".to_string(), 0),
                ("evidence-c/video.mp4".to_string(), 1300),
            ]
        );
    }
}
