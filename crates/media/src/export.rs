//! Which recorded bytes an export of a time range is made of.
//!
//! An export is the init segment of the first segment followed by the selected fragments,
//! byte for byte as recorded: nothing is re-encoded or re-muxed, so each fragment still hashes
//! to what the evidence ledger signed. Fragments carry absolute decode times, so consecutive
//! GOPs form one continuous fragmented MP4. A change of codec parameters cannot share one init,
//! so a range is planned as runs of GOPs that share one; the application layer turns runs into
//! files, HTTP answers and evidence bundles.

use crate::store::{Camera, GapRow, GopRow, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RangeError {
    #[error("nothing was recorded for camera '{camera}' between {from} and {to}")]
    Empty {
        camera: String,
        from: String,
        to: String,
    },
    #[error("the end of the range must be after its start")]
    BadRange,
    #[error("camera {camera} segment {seq} has no init segment in the index")]
    NoInit { camera: String, seq: i64 },
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// GOPs that share one init segment, in recorded order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The segment whose init the run uses (its first GOP's).
    pub init_seq: i64,
    pub init_len: u64,
    pub init_sha256: Vec<u8>,
    pub gops: Vec<GopRow>,
}

impl Run {
    pub fn start_us(&self) -> i64 {
        self.gops.first().map_or(0, |g| g.start_us)
    }

    /// End of the last GOP.
    pub fn end_us(&self) -> i64 {
        self.gops.last().map_or(0, |g| g.start_us + g.duration_us)
    }

    pub fn frames(&self) -> i64 {
        self.gops.iter().map(|g| g.frames).sum()
    }

    /// Bytes of the fragments (the init not counted).
    pub fn fragment_bytes(&self) -> u64 {
        self.gops.iter().map(|g| g.len as u64).sum()
    }
}

/// What was recorded of a camera in a time range.
#[derive(Debug, Clone)]
pub struct RecordedRange {
    pub camera: Camera,
    /// At least one; more after a codec parameter change.
    pub runs: Vec<Run>,
    /// Recording gaps between the first GOP's start and the last GOP's end.
    pub gaps: Vec<GapRow>,
}

/// Plans `[from_us, to_us)` of a stream (a camera's name or id, or a secondary stream's id,
/// see [`Store::stream`]): the GOPs in range, grouped into runs sharing one init segment.
pub fn recorded_range(
    store: &Store,
    camera: &str,
    from_us: i64,
    to_us: i64,
) -> Result<RecordedRange, RangeError> {
    if to_us <= from_us {
        return Err(RangeError::BadRange);
    }
    let cam = store.stream(camera)?;
    let gops = store.gops_in_range(&cam.id, from_us, to_us)?;
    if gops.is_empty() {
        return Err(RangeError::Empty {
            camera: cam.name,
            from: crate::time::format_us(from_us),
            to: crate::time::format_us(to_us),
        });
    }
    let segments = store.segments(&cam.id)?;
    let mut runs: Vec<Run> = Vec::new();
    for g in gops {
        let Some(seg) = segments
            .iter()
            .find(|s| s.seq == g.seq)
            .filter(|s| s.init_len > 0)
        else {
            return Err(RangeError::NoInit {
                camera: cam.name,
                seq: g.seq,
            });
        };
        match runs.last_mut() {
            Some(run) if run.init_sha256 == seg.init_sha256 => run.gops.push(g),
            _ => runs.push(Run {
                init_seq: seg.seq,
                init_len: seg.init_len as u64,
                init_sha256: seg.init_sha256.clone(),
                gops: vec![g],
            }),
        }
    }
    let first = runs[0].start_us();
    let last = runs.iter().map(Run::end_us).max().unwrap_or(first);
    let gaps = store.gaps(&cam.id, first, last)?;
    Ok(RecordedRange {
        camera: cam,
        runs,
        gaps,
    })
}
