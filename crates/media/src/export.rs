//! Export of a time range as standard MP4.
//!
//! An export is the init segment of the first segment followed by the selected fragments,
//! byte for byte as recorded: nothing is re-encoded or re-muxed, so each fragment still hashes
//! to what the evidence ledger signed. Fragments carry absolute decode times, so the result is
//! one continuous fragmented MP4 that ffmpeg, VLC and browsers play. A change of codec
//! parameters cannot share one init, so the export is split into numbered parts and says so.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::store::{GapRow, GopRow, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(
        "nothing was recorded for camera '{camera}' between {from} and {to}; `vigil recordings {camera}` lists what exists"
    )]
    Empty {
        camera: String,
        from: String,
        to: String,
    },
    #[error("the end of the range must be after its start")]
    BadRange,
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One output file of an export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportPart {
    pub path: PathBuf,
    pub gops: Vec<GopRow>,
    pub frames: i64,
    pub start_us: i64,
    pub end_us: i64,
    pub bytes: u64,
}

/// What an export wrote and anything the user should know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    pub parts: Vec<ExportPart>,
    pub gaps: Vec<GapRow>,
}

/// Progress callback: (bytes done, bytes total).
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// Splits the GOPs of a range into runs that share one init segment.
fn plan(
    store: &Store,
    camera_id: &str,
    gops: Vec<GopRow>,
) -> Result<Vec<(i64, Vec<GopRow>)>, StoreError> {
    let segments = store.segments(camera_id)?;
    let init_of = |seq: i64| {
        segments
            .iter()
            .find(|s| s.seq == seq)
            .map(|s| s.init_sha256.clone())
    };
    let mut runs: Vec<(i64, Vec<u8>, Vec<GopRow>)> = Vec::new();
    for g in gops {
        let init = init_of(g.seq).unwrap_or_default();
        match runs.last_mut() {
            Some((_, hash, list)) if *hash == init => list.push(g),
            _ => runs.push((g.seq, init, vec![g])),
        }
    }
    Ok(runs.into_iter().map(|(seq, _, g)| (seq, g)).collect())
}

fn part_path(out: &Path, index: usize) -> PathBuf {
    if index == 0 {
        return out.to_owned();
    }
    let stem = out.file_stem().and_then(|s| s.to_str()).unwrap_or("export");
    let ext = out.extension().and_then(|s| s.to_str()).unwrap_or("mp4");
    out.with_file_name(format!("{stem}.part{}.{ext}", index + 1))
}

/// Exports `[from_us, to_us)` of a camera to `out` (and `out.partN.mp4` after a codec change).
pub fn export(
    store: &Store,
    camera: &str,
    from_us: i64,
    to_us: i64,
    out: &Path,
    progress: Progress<'_>,
) -> Result<ExportReport, ExportError> {
    if to_us <= from_us {
        return Err(ExportError::BadRange);
    }
    let cam = store.camera(camera)?;
    let gops = store.gops_in_range(&cam.id, from_us, to_us)?;
    if gops.is_empty() {
        return Err(ExportError::Empty {
            camera: cam.name,
            from: crate::time::format_us(from_us),
            to: crate::time::format_us(to_us),
        });
    }
    let total: u64 = gops.iter().map(|g| g.len as u64).sum();
    let mut done = 0u64;
    let runs = plan(store, &cam.id, gops)?;
    let mut parts = Vec::new();
    for (i, (init_seq, gops)) in runs.into_iter().enumerate() {
        let path = part_path(out, i);
        let tmp = path.with_extension("mp4.partial");
        let werr = |source| ExportError::Write {
            path: path.clone(),
            source,
        };
        let seg = store
            .segments(&cam.id)?
            .into_iter()
            .find(|s| s.seq == init_seq);
        let init_len = seg.map(|s| s.init_len).unwrap_or(0) as u64;
        let init = store.read_segment_range(&cam.id, init_seq, 0, init_len)?;
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&tmp).map_err(werr)?);
        w.write_all(&init).map_err(werr)?;
        let mut bytes = init.len() as u64;
        for g in &gops {
            let frag = store.read_segment_range(&cam.id, g.seq, g.offset as u64, g.len as u64)?;
            w.write_all(&frag).map_err(werr)?;
            bytes += frag.len() as u64;
            done += frag.len() as u64;
            progress(done, total);
        }
        let f = w.into_inner().map_err(|e| werr(e.into_error()))?;
        f.sync_all().map_err(werr)?;
        fs::rename(&tmp, &path).map_err(werr)?;
        let start_us = gops.first().map(|g| g.start_us).unwrap_or(0);
        let end_us = gops.last().map(|g| g.start_us + g.duration_us).unwrap_or(0);
        parts.push(ExportPart {
            path,
            frames: gops.iter().map(|g| g.frames).sum(),
            start_us,
            end_us,
            bytes,
            gops,
        });
    }
    let first = parts.first().map(|p| p.start_us).unwrap_or(from_us);
    let last = parts.last().map(|p| p.end_us).unwrap_or(to_us);
    let gaps = store.gaps(&cam.id, first, last)?;
    Ok(ExportReport { parts, gaps })
}
