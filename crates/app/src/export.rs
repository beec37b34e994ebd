//! Export of recorded video: the one implementation behind `vigil export` and the API's
//! playback and export routes.
//!
//! * [`progressive_layout`]: the plain MP4 export as pieces (its `ftyp`, `moov` and `mdat`
//!   header made here, then the recorded sample bytes as byte ranges of the segment files),
//!   which the API's export streams with Range support and [`export_mp4`] writes to files.
//! * [`mp4_layout`]: the fragmented form for playback: the export's own init, a segment index
//!   (`sidx`) built from the database so players seek straight to a GOP, then the recorded
//!   fragments byte for byte.
//! * [`export_bundle`]: a signed evidence bundle in a directory; [`bundle_tar`]: the same
//!   bundle packaged as a tar stream for download.
//! * [`Output::choose`]: what an output path given on the command line means.
//!
//! Every MP4 form starts the clip at 0 and carries its wall-clock start. The fragmented form
//! (playback, played with Media Source Extensions) does it with a timeline edit in the recorded
//! init ([`vigil_signing::bundle::presentation`]), leaving every fragment what the ledger
//! signed. But ffmpeg and Chromium report a fragmented clip's duration up to its last
//! fragment's absolute decode time (days for a clip cut days into a recording), so the plain
//! MP4 is progressive ([`vigil_media::progressive`]): complete sample tables from 0, the same
//! sample bytes. A bundle's `video.mp4` is progressive too, over the fragments kept whole
//! ([`vigil_media::progressive::Evidence`], docs/signing-format.md §4.3).

mod bundle;
mod progressive;

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use vigil_media::export::{RangeError, Run};
use vigil_media::store::{Camera, GapRow, GopRow, Store, StoreError};
use vigil_media::time::format_us;
use vigil_signing::bundle::presentation::{self, PresentationError};

pub use bundle::{
    BundleExport, BundleRequest, BundleTar, TailSigning, TailWait, bundle_tar, export_bundle,
    server_name,
};
pub use vigil_signing::bundle::ExporterIdentity;
pub use vigil_signing::bundle::presentation::Timeline;

use crate::ErrorKind;
use crate::archive::{ArchiveError, Restore};
use crate::audit::Trail;
use vigil_access::AuditKind;

/// How long the CLI waits for a running server to sign the newest exported fragment: the
/// server signs at least every 10 s.
pub const SIGNATURE_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    NoCamera(String),
    /// Nothing recorded in the range (the recording crate's words, [`RangeError::Empty`]).
    #[error("{}", RangeError::Empty { camera: camera.clone(), from: from.clone(), to: to.clone() })]
    Empty {
        camera: String,
        from: String,
        to: String,
    },
    #[error("{}", RangeError::BadRange)]
    BadRange,
    /// An output path that names neither an MP4 file nor a bundle directory.
    #[error("{0}")]
    Output(String),
    /// The front end says how to overwrite (the CLI's `--force`).
    #[error("{} exists and is not replaced", .0.display())]
    Exists(PathBuf),
    #[error(
        "{} exists and is not empty; export a bundle into a new directory",
        .0.display()
    )]
    NotEmpty(PathBuf),
    #[error(
        "the camera's codec parameters change within this range, so it cannot be one MP4 or bundle; export the parts separately, starting at {}",
        .starts.iter().map(|s| format_us(*s)).collect::<Vec<_>>().join(", ")
    )]
    CodecChange { starts: Vec<i64> },
    #[error("this server cannot sign evidence bundles: its signing key does not load: {0}")]
    SigningKey(vigil_signing::KeyError),
    #[error("camera '{camera}' has no evidence ledger yet: nothing signed was recorded")]
    NoLedger { camera: String },
    #[error("the recorded video of camera '{camera}': {detail}")]
    Recorded { camera: String, detail: String },
    #[error("{0}")]
    Store(StoreError),
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("{0}")]
    Bundle(#[from] vigil_signing::bundle::BundleError),
    /// Archived video of the range could not be brought back to be exported.
    #[error("{0}")]
    Archive(#[from] ArchiveError),
    /// The export was written but could not be recorded in the audit log.
    #[error("the export was written but not recorded in the audit log: {0}")]
    Audit(vigil_access::AccessError),
}

impl ExportError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ExportError::NoCamera(_) | ExportError::Empty { .. } => ErrorKind::NotFound,
            ExportError::BadRange | ExportError::Output(_) => ErrorKind::InvalidInput,
            ExportError::Exists(_)
            | ExportError::NotEmpty(_)
            | ExportError::CodecChange { .. }
            | ExportError::NoLedger { .. } => ErrorKind::Conflict,
            ExportError::SigningKey(_) => ErrorKind::Unavailable,
            ExportError::Archive(e) => e.kind(),
            ExportError::Recorded { .. }
            | ExportError::Store(_)
            | ExportError::Write { .. }
            | ExportError::Bundle(_)
            | ExportError::Audit(_) => ErrorKind::Internal,
        }
    }

    /// A stable name for machines (the API's error code).
    pub fn code(&self) -> &'static str {
        match self {
            ExportError::NoCamera(_) => "camera_not_found",
            ExportError::Empty { .. } => "no_recordings",
            ExportError::BadRange => "bad_range",
            ExportError::Output(_) => "bad_output",
            ExportError::Exists(_) => "output_exists",
            ExportError::NotEmpty(_) => "output_not_empty",
            ExportError::CodecChange { .. } => "codec_change",
            ExportError::SigningKey(_) => "signing_unavailable",
            ExportError::NoLedger { .. } => "no_ledger",
            ExportError::Archive(e) => e.code(),
            ExportError::Recorded { .. }
            | ExportError::Store(_)
            | ExportError::Write { .. }
            | ExportError::Bundle(_)
            | ExportError::Audit(_) => "internal",
        }
    }
}

impl crate::error::Classified for ExportError {
    fn kind(&self) -> ErrorKind {
        ExportError::kind(self)
    }
    fn code(&self) -> &'static str {
        ExportError::code(self)
    }

    fn database_error(&self) -> Option<&vigil_access::AccessError> {
        match self {
            ExportError::Audit(e) => Some(e),
            _ => None,
        }
    }
}

impl From<StoreError> for ExportError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NoSuchCamera(_) => ExportError::NoCamera(e.to_string()),
            e => ExportError::Store(e),
        }
    }
}

impl From<RangeError> for ExportError {
    fn from(e: RangeError) -> Self {
        match e {
            RangeError::Empty { camera, from, to } => ExportError::Empty { camera, from, to },
            RangeError::BadRange => ExportError::BadRange,
            RangeError::NoInit { camera, seq } => ExportError::Recorded {
                camera,
                detail: format!("segment {seq} has no init segment in the index"),
            },
            RangeError::Store(e) => e.into(),
        }
    }
}

fn write_err(path: &Path) -> impl FnOnce(io::Error) -> ExportError + '_ {
    move |source| ExportError::Write {
        path: path.to_path_buf(),
        source,
    }
}

// ------------------------------------------------------------------ output choice

/// What `-o PATH` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A playable MP4 file.
    Mp4(PathBuf),
    /// A signed evidence bundle directory.
    Bundle(PathBuf),
}

impl Output {
    /// `X.mp4` is an MP4 file; `DIR/` (or any path with `bundle`) is a bundle directory.
    /// Anything else is refused rather than guessed: a typo must not turn a clip into a
    /// directory, nor a directory name into a file.
    pub fn choose(path: &Path, bundle: bool) -> Result<Output, ExportError> {
        let text = path.to_string_lossy();
        let slash = text.ends_with('/');
        let mp4 = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("mp4"));
        if slash || (bundle && !mp4) {
            return Ok(Output::Bundle(path.to_path_buf()));
        }
        if bundle {
            return Err(ExportError::Output(format!(
                "--bundle writes a directory, but {text} names an MP4 file; give a directory such as {}/",
                path.with_extension("").display()
            )));
        }
        if mp4 && !path.is_dir() {
            return Ok(Output::Mp4(path.to_path_buf()));
        }
        Err(ExportError::Output(format!(
            "-o {text}: say which export you want: a file name ending in .mp4 for a video (e.g. {}.mp4), or a directory with a trailing / (e.g. {text}/) or --bundle for a signed evidence bundle",
            path.with_extension("").display()
        )))
    }
}

// ------------------------------------------------------------------ MP4 layout

/// A piece of an export's bytes.
#[derive(Debug, Clone)]
pub enum Piece {
    /// `len` bytes at `offset` of a recorded file.
    File {
        path: PathBuf,
        offset: u64,
        len: u64,
    },
    /// Bytes made by the export (its init, or its `ftyp`, `moov` and `mdat` header).
    Bytes(Bytes),
}

impl Piece {
    pub fn len(&self) -> u64 {
        match self {
            Piece::File { len, .. } => *len,
            Piece::Bytes(b) => b.len() as u64,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One playable MP4: GOPs that share one init.
#[derive(Debug, Clone)]
pub struct Mp4Part {
    /// Fragmented: the export's init, its `sidx`, then every fragment as recorded. Progressive: `ftyp`,
    /// `moov` and the `mdat` header, then the recorded samples of every fragment.
    pub pieces: Vec<Piece>,
    pub total: u64,
    /// Strong validator of the bytes (HTTP `ETag`, quoted).
    pub etag: String,
    pub start_us: i64,
    pub end_us: i64,
    pub frames: i64,
    pub timeline: Timeline,
    pub gops: Vec<GopRow>,
}

/// An export of a time range: one part, or one per codec parameter set.
#[derive(Debug, Clone)]
pub struct Mp4Layout {
    pub camera: Camera,
    pub parts: Vec<Mp4Part>,
    /// Recording gaps inside the range. The MP4's time stays the time since its start: the
    /// last frame before a gap lasts until recording resumes.
    pub gaps: Vec<GapRow>,
}

impl Mp4Layout {
    /// Start of every part; more than one after a codec change.
    pub fn part_starts(&self) -> Vec<i64> {
        self.parts.iter().map(|p| p.start_us).collect()
    }

    /// The only part, or [`ExportError::CodecChange`] naming where each part starts.
    pub fn single(self) -> Result<(Camera, Mp4Part, Vec<GapRow>), ExportError> {
        if self.parts.len() != 1 {
            return Err(ExportError::CodecChange {
                starts: self.part_starts(),
            });
        }
        let mut parts = self.parts;
        Ok((self.camera, parts.remove(0), self.gaps))
    }
}

/// The recorded init of a run and its first fragment's `moof`, which the timeline edit needs.
fn recorded_head(
    store: &Store,
    cam: &Camera,
    run: &Run,
) -> Result<(Vec<u8>, Vec<u8>), ExportError> {
    let init = store.read_segment_range(&cam.id, run.init_seq, 0, run.init_len)?;
    let g = &run.gops[0];
    let head = store.read_segment_range(&cam.id, g.seq, g.offset as u64, 8.min(g.len as u64))?;
    let moof_len = head
        .get(..4)
        .map(|b| u64::from(u32::from_be_bytes(b.try_into().expect("4 bytes"))))
        .unwrap_or(0)
        .clamp(8, g.len as u64);
    let moof = store.read_segment_range(&cam.id, g.seq, g.offset as u64, moof_len)?;
    Ok((init, moof))
}

/// `closed`: no GOP can join the range any more (it ends before the end of the last GOP
/// recorded), so its bytes never change and a segment index may lead them. While a range
/// still grows, an index at its start would move every later byte between two Range requests
/// of the same URL (a player reading a recording as it is written would get torn bytes), so
/// such an answer has none.
fn part_layout(
    store: &Store,
    cam: &Camera,
    run: Run,
    closed: bool,
) -> Result<Mp4Part, ExportError> {
    let (init, moof) = recorded_head(store, cam, &run)?;
    let presentation_err = |e: PresentationError| ExportError::Recorded {
        camera: cam.name.clone(),
        detail: format!("segment {}: {e}", run.init_seq),
    };
    let timeline = presentation::timeline(&init, &moof, run.start_us(), run.end_us())
        .map_err(presentation_err)?;
    let export_init =
        presentation::presentation_init(&init, &timeline).map_err(presentation_err)?;
    let mut etag = Sha256::new();
    etag.update(cam.id.as_bytes());
    etag.update(run.init_seq.to_le_bytes());
    etag.update(Sha256::digest(&export_init));
    let mut pieces = Vec::with_capacity(run.gops.len() + 2);
    pieces.push(Piece::Bytes(Bytes::from(export_init)));
    if let Some(sidx) = closed
        .then(|| vigil_media::seek_index::segment_index(&run.gops))
        .flatten()
    {
        etag.update(Sha256::digest(&sidx));
        pieces.push(Piece::Bytes(Bytes::from(sidx)));
    }
    for g in &run.gops {
        etag.update(g.seq.to_le_bytes());
        etag.update(g.offset.to_le_bytes());
        etag.update(g.len.to_le_bytes());
        etag.update(&g.sha256);
        pieces.push(Piece::File {
            path: store.segment_path(&cam.id, g.seq),
            offset: g.offset as u64,
            len: g.len as u64,
        });
    }
    Ok(Mp4Part {
        total: pieces.iter().map(Piece::len).sum(),
        pieces,
        etag: format!("\"{}\"", hex::encode(&etag.finalize()[..16])),
        start_us: run.start_us(),
        end_us: run.end_us(),
        frames: run.frames(),
        timeline,
        gops: run.gops,
    })
}

/// The fragmented MP4 of `[from_us, to_us)` of a camera (name or id), as pieces (playback
/// through Media Source Extensions): nothing is read but the inits and the first fragment
/// headers, after archived segments of the range are brought back through `archive`.
pub fn mp4_layout(
    store: &Store,
    camera: &str,
    from_us: i64,
    to_us: i64,
    archive: &dyn Restore,
) -> Result<Mp4Layout, ExportError> {
    layout_with(store, camera, from_us, to_us, archive, part_layout)
}

/// Whether a range ending at `to_us` can gain no GOP: the last one recorded ends at or after
/// it.
fn closed(runs: &[Run], to_us: i64) -> bool {
    runs.last().is_some_and(|r| r.end_us() >= to_us)
}

/// The plain MP4 export of `[from_us, to_us)` of a camera (name or id): one progressive MP4
/// per part, as pieces. Nothing is read but the inits and the fragments' `moof`s, after
/// archived segments of the range are brought back through `archive`.
pub fn progressive_layout(
    store: &Store,
    camera: &str,
    from_us: i64,
    to_us: i64,
    archive: &dyn Restore,
) -> Result<Mp4Layout, ExportError> {
    layout_with(store, camera, from_us, to_us, archive, |s, c, run, _| {
        progressive::part_layout(s, c, run)
    })
}

fn layout_with(
    store: &Store,
    camera: &str,
    from_us: i64,
    to_us: i64,
    archive: &dyn Restore,
    part: fn(&Store, &Camera, Run, bool) -> Result<Mp4Part, ExportError>,
) -> Result<Mp4Layout, ExportError> {
    restore_range(store, camera, from_us, to_us, archive)?;
    let range = vigil_media::export::recorded_range(store, camera, from_us, to_us)?;
    let closed = closed(&range.runs, to_us);
    let n = range.runs.len();
    let parts = range
        .runs
        .into_iter()
        .enumerate()
        // Only the last part can still grow.
        .map(|(i, run)| part(store, &range.camera, run, closed || i + 1 < n))
        .collect::<Result<_, _>>()?;
    Ok(Mp4Layout {
        camera: range.camera,
        parts,
        gaps: range.gaps,
    })
}

/// Brings the archived segments of `[from_us, to_us)` of a camera (name or id) back before the
/// layout names their files: a piece of a segment whose only copy is in the archive would be a
/// file that is not there. A range with nothing archived does no archive work.
fn restore_range(
    store: &Store,
    camera: &str,
    from_us: i64,
    to_us: i64,
    archive: &dyn Restore,
) -> Result<usize, ExportError> {
    let cam = store.stream(camera)?;
    Ok(archive.restore(store, &cam.id, from_us, to_us)?)
}

/// Writes the pieces in order; `progress(bytes)` after each one.
pub fn write_pieces(
    pieces: &[Piece],
    w: &mut dyn Write,
    progress: &mut dyn FnMut(u64),
) -> io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    for piece in pieces {
        match piece {
            Piece::Bytes(b) => w.write_all(b)?,
            Piece::File { path, offset, len } => {
                let mut f = File::open(path)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
                f.seek(SeekFrom::Start(*offset))?;
                let mut left = *len;
                while left > 0 {
                    let n = left.min(buf.len() as u64) as usize;
                    f.read_exact(&mut buf[..n]).map_err(|e| {
                        io::Error::new(e.kind(), format!("{}: {e}", path.display()))
                    })?;
                    w.write_all(&buf[..n])?;
                    left -= n as u64;
                }
            }
        }
        progress(piece.len());
    }
    Ok(())
}

// ------------------------------------------------------------------ MP4 files

/// One file an MP4 export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenPart {
    pub path: PathBuf,
    pub frames: i64,
    pub start_us: i64,
    pub end_us: i64,
    pub bytes: u64,
}

/// What [`export_mp4`] wrote.
#[derive(Debug, Clone)]
pub struct Mp4Export {
    pub camera: String,
    pub parts: Vec<WrittenPart>,
    pub gaps: Vec<GapRow>,
}

/// `out` for the first part, `out.partN.mp4` after each codec change.
fn part_path(out: &Path, index: usize) -> PathBuf {
    if index == 0 {
        return out.to_owned();
    }
    let stem = out.file_stem().and_then(|s| s.to_str()).unwrap_or("export");
    out.with_file_name(format!("{stem}.part{}.mp4", index + 1))
}

/// Moves a finished file into place; without `force` an existing file is never replaced,
/// not even one that appeared while the export ran.
fn publish(tmp: &Path, path: &Path, force: bool) -> Result<(), ExportError> {
    if force {
        return fs::rename(tmp, path).map_err(write_err(path));
    }
    match fs::hard_link(tmp, path) {
        Ok(()) => fs::remove_file(tmp).map_err(write_err(tmp)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let _ = fs::remove_file(tmp);
            Err(ExportError::Exists(path.to_path_buf()))
        }
        // Volumes without hard links (FAT on a USB stick): check, then rename.
        Err(_) if path.exists() => {
            let _ = fs::remove_file(tmp);
            Err(ExportError::Exists(path.to_path_buf()))
        }
        Err(_) => fs::rename(tmp, path).map_err(write_err(path)),
    }
}

/// Exports `[from_us, to_us)` of a camera to `out` (and `out.partN.mp4` after a codec
/// change) as progressive MP4s ([`progressive_layout`], archived segments brought back through
/// `archive`). Existing files are refused before
/// anything is written unless `force`. `progress(done, total)` counts bytes. The export is
/// recorded in `audit` (absent only where there is no audit log, as in tests of the files).
#[allow(clippy::too_many_arguments)]
pub fn export_mp4(
    store: &Store,
    camera: &str,
    from_us: i64,
    to_us: i64,
    out: &Path,
    force: bool,
    archive: &dyn Restore,
    progress: &mut dyn FnMut(u64, u64),
    audit: Option<&Trail<'_>>,
) -> Result<Mp4Export, ExportError> {
    let layout = progressive_layout(store, camera, from_us, to_us, archive)?;
    let paths: Vec<PathBuf> = (0..layout.parts.len()).map(|i| part_path(out, i)).collect();
    if !force && let Some(p) = paths.iter().find(|p| p.exists()) {
        return Err(ExportError::Exists(p.clone()));
    }
    let total: u64 = layout.parts.iter().map(|p| p.total).sum();
    let mut done = 0u64;
    let mut parts = Vec::with_capacity(paths.len());
    for (part, path) in layout.parts.iter().zip(paths) {
        let tmp = path.with_extension("mp4.partial");
        let file = File::create(&tmp).map_err(write_err(&tmp))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let written = write_pieces(&part.pieces, &mut w, &mut |n| {
            done += n;
            progress(done, total);
        })
        .and_then(|()| w.into_inner().map_err(|e| e.into_error()))
        .and_then(|f| f.sync_all());
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(ExportError::Write { path, source: e });
        }
        publish(&tmp, &path, force)?;
        parts.push(WrittenPart {
            path,
            frames: part.frames,
            start_us: part.start_us,
            end_us: part.end_us,
            bytes: part.total,
        });
    }
    let export = Mp4Export {
        camera: layout.camera.name,
        parts,
        gaps: layout.gaps,
    };
    if let Some(trail) = audit {
        let frames: i64 = export.parts.iter().map(|p| p.frames).sum();
        let bytes: u64 = export.parts.iter().map(|p| p.bytes).sum();
        trail
            .record(
                AuditKind::Export,
                serde_json::json!({
                    "camera": export.camera, "from": format_us(from_us), "to": format_us(to_us),
                    "media_start": export.parts.first().map(|p| format_us(p.start_us)),
                    "media_end": export.parts.last().map(|p| format_us(p.end_us)),
                    "frames": frames, "gaps": export.gaps.len(), "format": "mp4",
                    "bytes": bytes, "files": export.parts.len(),
                    "output": out.display().to_string(),
                }),
            )
            .map_err(ExportError::Audit)?;
    }
    Ok(export)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_paths_say_what_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let p = |s: &str| dir.path().join(s);
        assert_eq!(
            Output::choose(&p("clip.mp4"), false).unwrap(),
            Output::Mp4(p("clip.mp4"))
        );
        assert_eq!(
            Output::choose(&p("CLIP.MP4"), false).unwrap(),
            Output::Mp4(p("CLIP.MP4"))
        );
        let slash = PathBuf::from(format!("{}/", p("case").display()));
        assert_eq!(
            Output::choose(&slash, false).unwrap(),
            Output::Bundle(slash.clone())
        );
        assert_eq!(
            Output::choose(&p("case"), true).unwrap(),
            Output::Bundle(p("case"))
        );
        for (path, bundle, says) in [
            ("clip.mov", false, "ending in .mp4"),
            ("clip", false, "trailing /"),
            ("clip.mp4", true, "--bundle writes a directory"),
        ] {
            let e = Output::choose(&p(path), bundle).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            assert!(e.to_string().contains(says), "{path}: {e}");
        }
        // An existing directory named like a clip is not silently written into.
        fs::create_dir(p("d.mp4")).unwrap();
        assert!(Output::choose(&p("d.mp4"), false).is_err());
    }

    #[test]
    fn publishing_never_replaces_a_file_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let (tmp, out) = (dir.path().join("a.partial"), dir.path().join("a.mp4"));
        fs::write(&out, b"old").unwrap();
        fs::write(&tmp, b"new").unwrap();
        let e = publish(&tmp, &out, false).unwrap_err();
        assert!(matches!(e, ExportError::Exists(_)), "{e}");
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert_eq!(fs::read(&out).unwrap(), b"old");
        assert!(!tmp.exists(), "the unpublished copy is removed");
        fs::write(&tmp, b"new").unwrap();
        publish(&tmp, &out, true).unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"new");
        assert_eq!(
            part_path(&dir.path().join("x.mp4"), 2),
            dir.path().join("x.part3.mp4")
        );
    }
}
