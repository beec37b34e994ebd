//! Server-side verification of one camera's recording: the ledger plus the segment files on
//! disk, for a time range. Trusts nothing but the CA certificate(s): not the index database,
//! not file names, not sizes.
//!
//! The ledger is checked first (hash chain, signatures, certificates) while a model of the
//! expected segments is built; then every segment file in range is scanned (top-level boxes
//! only), hashed, and aligned with the signed fragment records, so a difference can be named:
//! modified, missing, inserted, reordered, truncated, or merely unsigned. The files are read
//! and hashed ahead on worker threads (`prefetch`), checked in order here.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use crate::chain::{ChainChecker, ChainOutcome, Mode};
use crate::keys::CaCert;
use crate::mp4::{Scanned, UnitStatus};
use crate::prefetch::Prefetch;
use crate::record::{
    Body, FragmentRecord, Hash, InterruptedWrite, Predecessor, ReadError, RecordReader,
    RetireReason,
};
use crate::report::{
    Checked, Event, Failure, FailureKind, Report, SignedPart, UnsignedSpan, signer_name,
};

/// A time range in unix microseconds; `None` ends are open. Verification widens it to whole
/// segments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub from_us: Option<i64>,
    pub to_us: Option<i64>,
}

impl TimeRange {
    pub fn all() -> Self {
        Self::default()
    }
    pub fn new(from_us: i64, to_us: i64) -> Self {
        Self {
            from_us: Some(from_us),
            to_us: Some(to_us),
        }
    }
    /// Whether the span [a, b) (or the instant a, when a == b) intersects the range [from, to).
    pub fn overlaps(&self, a: i64, b: i64) -> bool {
        self.from_us.is_none_or(|f| b > f || a >= f) && self.to_us.is_none_or(|t| a < t)
    }
}

/// Errors that prevent verification from running at all (as opposed to findings).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read ledger {path}: {source}")]
    LedgerIo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}; pass the camera's ledger file (data_dir/ledger/<camera>.ledger)")]
    NotALedger { path: PathBuf, source: ReadError },
    #[error("cannot read segment directory {path}: {source}")]
    SegmentDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read segment file {path}: {source}")]
    SegmentIo {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One GOP as the index database lists it (what exports and playback rely on). The index is
/// not trusted: [`verify_recording_with_index`] checks it against the signed ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedGop {
    pub segment: u64,
    /// moof/mfhd sequence number (the per-camera GOP counter).
    pub gop: u32,
    pub offset: u64,
    pub length: u64,
    pub start_us: i64,
    pub duration_us: u64,
    pub sha256: Hash,
}

/// File name of segment `seq` in a camera's video directory.
pub fn segment_file_name(seq: u64) -> String {
    format!("{seq:016x}.mp4")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(".mp4")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

struct SegModel {
    open_seq: u64,
    start_us: i64,
    init_len: u64,
    init_hash: Hash,
    frags: Vec<(u64, FragmentRecord)>,
    end_us: i64,
    close: Option<u64>,
    pruned: bool,
    /// An unclean shutdown (or a shutdown) happened while the segment was open.
    interrupted: bool,
    /// A segment-recovered record (written after the restart) sealed the interrupted segment.
    recovered: bool,
    /// Video another server recorded and signed, imported by a handover record (whose seq is
    /// `open_seq`, `close` and every fragment's): (source server, receiving server).
    imported: Option<(String, String)>,
}

impl SegModel {
    /// Nothing may follow the signed end of the file: closed normally, or sealed by recovery.
    fn sealed(&self, outcome: &ChainOutcome) -> bool {
        self.close.is_some_and(|c| outcome.is_signed(c)) && (!self.interrupted || self.recovered)
    }
}

/// Verifies `camera_id`'s recording in `range`: the ledger at `ledger_path` and the segment
/// files in `segment_dir` (data_dir/video/<camera>), trusting only `trust`.
/// `progress(done, total)` is called with media bytes hashed so far.
pub fn verify_recording(
    camera_id: &str,
    ledger_path: &Path,
    segment_dir: &Path,
    range: TimeRange,
    trust: &[CaCert],
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Report, VerifyError> {
    verify(
        camera_id,
        ledger_path,
        segment_dir,
        range,
        trust,
        None,
        progress,
    )
}

/// [`verify_recording`], and also checks the index database's GOP rows against the signed
/// ledger: a row whose time, position, length or hash differs is `modified`, a row for a GOP the
/// signed recording does not hold is `inserted`, a signed GOP without a row (while later GOPs
/// have rows) is `missing`. Pass every GOP row of the camera (any order), read *before* this
/// call, so GOPs recorded meanwhile are not mistaken for missing rows. Index findings rank
/// after media and ledger findings, since the index only points at the evidence.
pub fn verify_recording_with_index(
    camera_id: &str,
    ledger_path: &Path,
    segment_dir: &Path,
    range: TimeRange,
    trust: &[CaCert],
    index: &[IndexedGop],
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Report, VerifyError> {
    verify(
        camera_id,
        ledger_path,
        segment_dir,
        range,
        trust,
        Some(index),
        progress,
    )
}

/// One ledger file of the camera: the current ledger or a retired generation it continues.
struct Gen {
    /// File name, for reports.
    name: String,
    outcome: ChainOutcome,
    segs: BTreeMap<u64, SegModel>,
    /// Segments after which a crash happened before the next segment was opened.
    crash_after: BTreeSet<Option<u64>>,
    /// How the next generation's predecessor record describes this one's retirement.
    retired: Option<Retirement>,
    /// The ledger names another camera.
    other_camera: Option<String>,
    /// Its segments are not this camera's recording: a retired ledger of another camera.
    not_ours: bool,
    /// A finding about the file as a whole (changed after retirement, missing, not a ledger).
    file_failure: Option<Failure>,
    /// Interrupted writes the reader skipped, with the recorded time before each.
    interrupted: Vec<(InterruptedWrite, Option<i64>)>,
    /// A retired file that does not start like a ledger.
    not_a_ledger: bool,
    /// The first imported segment whose handover material does not check, with the seq of
    /// its handover record.
    handover_failure: Option<(u64, Failure)>,
}

struct Retirement {
    pred: Predecessor,
    continued_in: String,
    /// The predecessor record is covered by a valid signature of the next generation.
    signed: bool,
    /// Records of the retired ledger after its last signature that the record vouches for.
    vouched: u64,
}

impl Gen {
    /// A generation without a readable ledger: nothing in it is part of the recording.
    fn empty(name: String, trust: &[CaCert]) -> Self {
        Self {
            name,
            outcome: ChainChecker::new(Mode::Full, trust).finish(),
            segs: BTreeMap::new(),
            crash_after: BTreeSet::new(),
            retired: None,
            other_camera: None,
            not_ours: false,
            file_failure: None,
            interrupted: Vec::new(),
            not_a_ledger: false,
            handover_failure: None,
        }
    }

    /// When the server stopped writing to this generation (`None`: still the current one).
    fn end_us(&self) -> Option<i64> {
        self.retired.as_ref().map(|r| r.pred.retired_at_us)
    }

    /// Says in a failure inside a retired generation when and why the server retired it.
    fn with_context(&self, mut f: Failure) -> Failure {
        if let Some(r) = self.retired.as_ref().filter(|r| r.signed) {
            f.detail.push_str(&format!(
                " [in ledger file {}, which the server retired at {} ({}: {}) and continued in {}]",
                self.name,
                crate::fmt_time(r.pred.retired_at_us),
                r.pred.reason,
                r.pred.detail,
                r.continued_in
            ));
        }
        f
    }
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Pass 1 over one ledger file: checks its chain and builds its model of the segments.
/// `vouch` is the last record a signed predecessor record of the next generation names.
fn read_generation(
    path: &Path,
    segment_dir: &Path,
    retired: bool,
    range: TimeRange,
    trust: &[CaCert],
    vouch: Option<(u64, Hash)>,
) -> Result<Gen, VerifyError> {
    let name = file_name(path);
    let ledger_io = |source| VerifyError::LedgerIo {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(ledger_io)?;
    let mut reader = match RecordReader::new(BufReader::with_capacity(1 << 20, file)) {
        Ok(r) if !r.is_excerpt => r,
        Ok(_) if !retired => {
            return Err(VerifyError::NotALedger {
                path: path.to_path_buf(),
                source: ReadError::BadMagic {
                    found: crate::record::EXCERPT_MAGIC.to_vec(),
                },
            });
        }
        Err(ReadError::Io(e)) => return Err(ledger_io(e)),
        Err(source) if !retired => {
            return Err(VerifyError::NotALedger {
                path: path.to_path_buf(),
                source,
            });
        }
        // A retired file that is not a ledger holds no records; the caller judges the file.
        _ => {
            let mut g = Gen::empty(name, trust);
            g.not_a_ledger = true;
            return Ok(g);
        }
    };
    let mut chain = ChainChecker::new(Mode::Full, trust);
    let mut segs: BTreeMap<u64, SegModel> = BTreeMap::new();
    let mut open: Option<u64> = None;
    let mut last_opened: Option<u64> = None;
    let mut crash_after: BTreeSet<Option<u64>> = BTreeSet::new();
    let mut interrupted = Vec::new();
    let mut last_time: Option<i64> = None;
    let mut vouch_matches = false;
    let mut handover_failure: Option<(u64, Failure)> = None;
    loop {
        let rec = reader.next_record().map_err(ledger_io)?;
        let Some(rec) = rec else { break };
        for w in &reader.interrupted_writes()[interrupted.len()..] {
            interrupted.push((*w, last_time));
        }
        if !chain.push(&rec) {
            break;
        }
        if let Some(t) = rec.body.time_us() {
            last_time = Some(t);
        }
        if vouch.is_some_and(|(s, _)| s == rec.seq) {
            vouch_matches = vouch.is_some_and(|(_, h)| h == rec.hash);
        }
        match rec.body {
            Body::SegmentOpen {
                segment,
                start_us,
                init_len,
                init_sha256,
            } => {
                if let Some(prev) = open.and_then(|s| segs.get_mut(&s)) {
                    prev.interrupted = true;
                }
                segs.insert(
                    segment,
                    SegModel {
                        open_seq: rec.seq,
                        start_us,
                        init_len,
                        init_hash: init_sha256,
                        frags: Vec::new(),
                        end_us: start_us,
                        close: None,
                        pruned: false,
                        interrupted: false,
                        recovered: false,
                        imported: None,
                    },
                );
                open = Some(segment);
                last_opened = Some(segment);
            }
            Body::Fragment(f) => {
                if let Some(s) = segs.get_mut(&f.segment) {
                    let end = f.start_us.saturating_add(f.duration_us as i64);
                    s.end_us = s.end_us.max(end);
                    // Fragments of segments that start after the range are never looked at.
                    if range.to_us.is_none_or(|t| s.start_us < t) {
                        s.frags.push((rec.seq, f));
                    }
                }
            }
            Body::SegmentClose { segment, .. } => {
                if let Some(s) = segs.get_mut(&segment) {
                    s.close = Some(rec.seq);
                    // Keep memory bounded on long ledgers: drop what ends before the range.
                    if range.from_us.is_some_and(|f| s.end_us < f) {
                        s.frags = Vec::new();
                    }
                }
                if open == Some(segment) {
                    open = None;
                }
            }
            Body::SegmentRecovered { segment, .. } => {
                if let Some(s) = segs.get_mut(&segment) {
                    s.close = Some(rec.seq);
                    s.recovered = true;
                    if range.from_us.is_some_and(|f| s.end_us < f) {
                        s.frags = Vec::new();
                    }
                }
            }
            Body::UncleanShutdown { .. } | Body::Shutdown { .. } => {
                if let Some(s) = open.and_then(|s| segs.get_mut(&s)) {
                    s.interrupted = true;
                }
                if matches!(rec.body, Body::UncleanShutdown { .. }) {
                    crash_after.insert(last_opened);
                }
                open = None;
            }
            Body::Prune { segment, .. } => {
                if let Some(s) = segs.get_mut(&segment) {
                    s.pruned = true;
                    s.frags = Vec::new();
                }
            }
            Body::Handover(h) => {
                // The imported segment is modelled like an own one, its records taken from
                // the source server's excerpt once that checks with the key the fact names.
                let mut model = SegModel {
                    open_seq: rec.seq,
                    start_us: h.from_us,
                    init_len: 0,
                    init_hash: [0; 32],
                    frags: Vec::new(),
                    end_us: h.to_us,
                    close: Some(rec.seq),
                    pruned: false,
                    interrupted: false,
                    recovered: false,
                    imported: Some((h.source_server.clone(), h.recipient.clone())),
                };
                let failed = |f: Failure, model: &mut SegModel| {
                    // Not checked further: the material's failure is the finding.
                    model.pruned = true;
                    (rec.seq, f)
                };
                if segs.contains_key(&h.segment) {
                    let f = Failure {
                        kind: FailureKind::Inserted,
                        at_us: Some(h.from_us),
                        segment: Some(h.segment),
                        detail: format!(
                            "a handover record names segment {:016x}, which this server recorded itself",
                            h.segment
                        ),
                    };
                    handover_failure.get_or_insert((rec.seq, f));
                    continue;
                }
                if range.overlaps(h.from_us, h.to_us) {
                    let dir = crate::handover::material_dir(segment_dir, h.segment);
                    match crate::handover::read_material(&dir, &h) {
                        Ok(imp) => {
                            model.init_len = imp.init_len;
                            model.init_hash = imp.init_sha256;
                            model.frags = imp.fragments.into_iter().map(|f| (rec.seq, f)).collect();
                        }
                        Err(f) => {
                            let f = failed(f, &mut model);
                            handover_failure.get_or_insert(f);
                        }
                    }
                }
                segs.insert(h.segment, model);
            }
            _ => {}
        }
    }
    // A retired ledger ends where its writer stopped: the segment it had open was interrupted.
    if retired && let Some(s) = open.and_then(|s| segs.get_mut(&s)) {
        s.interrupted = true;
    }
    chain.stop(reader.stop());
    let mut outcome = chain.finish();
    let mut g = Gen::empty(name, trust);
    if let Some((seq, _)) = vouch {
        if vouch_matches {
            outcome.vouch(seq);
        } else if outcome.failure.is_none() {
            g.file_failure = Some(Failure {
                kind: FailureKind::Modified,
                at_us: outcome.last_time,
                segment: None,
                detail: format!(
                    "ledger record {seq} of {} is not the record the server found there when it retired the file",
                    g.name
                ),
            });
        }
    }
    g.other_camera = outcome.camera_id.clone();
    g.outcome = outcome;
    g.segs = segs;
    g.crash_after = crash_after;
    g.interrupted = interrupted;
    g.handover_failure = handover_failure;
    Ok(g)
}

/// Whether the file holds nothing but zero bytes.
fn only_zeros(path: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match f.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(true);
        }
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
    }
}

/// Reads the camera's current ledger and, following predecessor records, every generation it
/// continues; oldest first. Also returns findings about retired files no ledger names.
fn read_generations(
    camera_id: &str,
    ledger_path: &Path,
    segment_dir: &Path,
    range: TimeRange,
    trust: &[CaCert],
) -> Result<(Vec<Gen>, Vec<Failure>), VerifyError> {
    let retired_files = crate::generation::retired_ledgers(ledger_path).map_err(|source| {
        VerifyError::LedgerIo {
            path: ledger_path.to_path_buf(),
            source,
        }
    })?;
    let by_name: HashMap<String, PathBuf> = retired_files
        .iter()
        .map(|(_, p)| (file_name(p), p.clone()))
        .collect();
    let mut current = read_generation(ledger_path, segment_dir, false, range, trust, None)?;
    // A broken chain says more than the camera id it may have been forged with.
    current.other_camera = current
        .other_camera
        .take()
        .filter(|c| c != camera_id && current.outcome.failure.is_none());
    if let Some(found) = &current.other_camera {
        current.file_failure = Some(Failure {
            kind: FailureKind::Inserted,
            at_us: current.segs.values().next().map(|s| s.start_us),
            segment: None,
            detail: format!("the ledger is camera \"{found}\"'s, not \"{camera_id}\"'s"),
        });
    }
    let mut gens = vec![current];
    let mut named: HashSet<String> = HashSet::new();
    loop {
        let next = gens.last().expect("the current ledger");
        let Some((pseq, pred)) = next.outcome.predecessor.clone() else {
            break;
        };
        let signed = next.outcome.is_signed(pseq);
        let continued_in = next.name.clone();
        let retirement = Retirement {
            vouched: 0,
            signed,
            continued_in,
            pred,
        };
        let pred = &retirement.pred;
        let Some(path) = by_name
            .get(&pred.file)
            .filter(|_| named.insert(pred.file.clone()))
        else {
            // Its video can no longer be checked against anything.
            let mut missing = Gen::empty(pred.file.clone(), trust);
            missing.file_failure = Some(Failure {
                kind: FailureKind::Missing,
                at_us: Some(pred.retired_at_us),
                segment: None,
                detail: format!(
                    "ledger file {}, which {} continues, is missing",
                    pred.file, retirement.continued_in
                ),
            });
            missing.retired = Some(retirement);
            gens.push(missing);
            break;
        };
        let vouch = pred.last().filter(|_| retirement.signed);
        let mut g = read_generation(path, segment_dir, true, range, trust, vouch)?;
        let (len, sha) =
            crate::generation::hash_file(path).map_err(|source| VerifyError::LedgerIo {
                path: path.clone(),
                source,
            })?;
        let unread = pred.file_sha256 == [0; 32];
        if len != pred.file_len || (!unread && sha != pred.file_sha256) {
            g.file_failure = Some(Failure {
                kind: FailureKind::Modified,
                at_us: g.outcome.last_time.or(Some(pred.retired_at_us)),
                segment: None,
                detail: format!(
                    "ledger file {} was changed after the server retired it ({len} bytes, SHA-256 {}; the signed predecessor record in {} gives {} bytes, SHA-256 {})",
                    pred.file,
                    hex::encode(&sha[..8]),
                    retirement.continued_in,
                    pred.file_len,
                    hex::encode(&pred.file_sha256[..8]),
                ),
            });
        } else if g.not_a_ledger {
            // Not a ledger at all. Zero bytes are what an interrupted creation leaves.
            let zeros = only_zeros(path).map_err(|source| VerifyError::LedgerIo {
                path: path.clone(),
                source,
            })?;
            if !zeros {
                g.file_failure = Some(Failure {
                    kind: FailureKind::Modified,
                    at_us: Some(pred.retired_at_us),
                    segment: None,
                    detail: format!("ledger file {} is not a vigil ledger", pred.file),
                });
            }
        }
        match g.other_camera.take() {
            Some(c) if c != camera_id => {
                if retirement.signed && pred.reason == RetireReason::OtherCamera {
                    // Moved aside because it was never this camera's: none of it is ours.
                    g.not_ours = true;
                } else if g.file_failure.is_none() {
                    g.file_failure = Some(Failure {
                        kind: FailureKind::Inserted,
                        at_us: g.segs.values().next().map(|s| s.start_us),
                        segment: None,
                        detail: format!("ledger file {} is camera \"{c}\"'s", pred.file),
                    });
                }
            }
            _ => {}
        }
        let mut retirement = retirement;
        if let Some(v) = g.outcome.vouched_through {
            retirement.vouched = g
                .outcome
                .last_good_sig
                .map_or(v + 1, |s| v.saturating_sub(s));
        }
        g.retired = Some(retirement);
        gens.push(g);
    }
    let unnamed = retired_files
        .iter()
        .map(|(_, p)| file_name(p))
        .filter(|n| !named.contains(n))
        .map(|n| Failure {
            kind: FailureKind::Inserted,
            at_us: None,
            segment: None,
            detail: format!(
                "ledger file {n} is named like a retired generation of this camera's ledger, but no ledger continues it"
            ),
        })
        .collect();
    gens.reverse();
    Ok((gens, unnamed))
}

fn verify(
    camera_id: &str,
    ledger_path: &Path,
    segment_dir: &Path,
    range: TimeRange,
    trust: &[CaCert],
    index: Option<&[IndexedGop]>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Report, VerifyError> {
    // Pass 1: the ledgers.
    let (gens, unnamed) = read_generations(camera_id, ledger_path, segment_dir, range, trust)?;
    let current = gens.last().expect("the current ledger");

    let mut ctx = Ctx {
        checked: Checked::default(),
        unsigned: Vec::new(),
        done: 0,
        total: 0,
    };
    let mut signers: Vec<String> = Vec::new();
    for g in &gens {
        ctx.checked.ledger_records += g.outcome.records;
        ctx.checked.signatures += g.outcome.signatures;
        for s in &g.outcome.signers {
            if !signers.contains(s) {
                signers.push(s.clone());
            }
        }
    }

    // Which generation each segment belongs to. Segments of a generation whose ledger is
    // another camera's (the current one) are kept, so the mismatch is what gets reported.
    let mut owner: BTreeMap<u64, usize> = BTreeMap::new();
    let mut duplicate: Option<(usize, Failure)> = None;
    for (gi, g) in gens.iter().enumerate() {
        if g.not_ours {
            continue;
        }
        for (seq, m) in &g.segs {
            if let Some(first) = owner.get(seq) {
                duplicate.get_or_insert((
                    gi,
                    Failure {
                        kind: FailureKind::Inserted,
                        at_us: Some(m.start_us),
                        segment: Some(*seq),
                        detail: format!(
                            "segment {} is recorded in ledger file {} and again in {}",
                            segment_file_name(*seq),
                            gens[*first].name,
                            g.name
                        ),
                    },
                ));
                continue;
            }
            owner.insert(*seq, gi);
        }
    }
    let seg_model = |seq: u64| owner.get(&seq).map(|gi| (*gi, &gens[*gi].segs[&seq]));

    // Pass 2: the segment files.
    let mut files: BTreeMap<u64, PathBuf> = BTreeMap::new();
    match std::fs::read_dir(segment_dir) {
        Ok(rd) => {
            for e in rd {
                let e = e.map_err(|source| VerifyError::SegmentDir {
                    path: segment_dir.to_path_buf(),
                    source,
                })?;
                if let Some(seq) = e.file_name().to_str().and_then(parse_segment_name) {
                    files.insert(seq, e.path());
                }
            }
        }
        // No directory at all: every expected segment is missing, which pass 2 reports.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(VerifyError::SegmentDir {
                path: segment_dir.to_path_buf(),
                source,
            });
        }
    }

    let in_range: Vec<u64> = owner
        .keys()
        .copied()
        .filter(|seq| {
            let (_, s) = seg_model(*seq).expect("owned");
            !s.pruned && range.overlaps(s.start_us, s.end_us)
        })
        .collect();
    let in_range_set: BTreeSet<u64> = in_range.iter().copied().collect();
    let max_ledger_seg = owner.keys().next_back().copied();
    let foreign: Vec<u64> = files
        .keys()
        .copied()
        .filter(|f| !owner.contains_key(f))
        .filter(|f| {
            let prev = owner.range(..*f).next_back().map(|(k, _)| *k);
            let next = owner.range(*f..).next().map(|(k, _)| *k);
            match (prev, next) {
                (None, None) => true,
                (p, n) => {
                    p.is_some_and(|p| in_range_set.contains(&p))
                        || n.is_some_and(|n| in_range_set.contains(&n))
                        || (n.is_none() && range.to_us.is_none())
                }
            }
        })
        .collect();

    for seq in in_range.iter().chain(&foreign) {
        if let Some(p) = files.get(seq) {
            ctx.total += std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        }
    }
    progress(0, ctx.total);

    // Where each in-range fragment and init belongs, to tell moved data from foreign data.
    let mut global: HashMap<Hash, u64> = HashMap::new();
    let mut inits: HashMap<Hash, u64> = HashMap::new();
    for seq in &in_range {
        let (_, s) = seg_model(*seq).expect("owned");
        inits.entry(s.init_hash).or_insert(*seq);
        for (_, f) in &s.frags {
            global.insert(f.sha256, *seq);
        }
    }

    let mut order: Vec<u64> = in_range.iter().chain(&foreign).copied().collect();
    order.sort_unstable();
    // Every file the loop below may scan, in its order, scanned ahead on worker threads.
    let (scan_list, scan_at): (Vec<PathBuf>, HashMap<u64, usize>) = {
        let mut list = Vec::new();
        let mut at = HashMap::new();
        for seq in &order {
            if let Some(p) = files.get(seq) {
                at.insert(*seq, list.len());
                list.push(p.clone());
            }
        }
        (list, at)
    };
    let mut scans = Prefetch::start(scan_list, crate::prefetch::default_workers());
    let chain_ended_open = !current.outcome.ended_cleanly;
    let mut events_codec: Vec<Event> = Vec::new();
    let mut prev_init: Option<Hash> = None;
    // Generations whose chain is broken before the next segment to check.
    let mut stopped = vec![false; gens.len()];
    let mut media_failure: Option<(usize, Failure)> = None;
    for seq in order {
        if media_failure.is_some() {
            break;
        }
        let Some((gi, model)) = seg_model(seq) else {
            // A segment file no ledger mentions.
            let path = &files[&seq];
            let scanned = scan(&mut scans, scan_at[&seq], path, &mut ctx, progress)?;
            let prev = owner.range(..seq).next_back().map(|(k, gi)| (*k, *gi));
            let gi = prev.map_or(0, |(_, gi)| gi);
            // After the chain of its generation broke, that break is the finding.
            if stopped[gi] {
                continue;
            }
            let at = prev.map(|(k, gi)| gens[gi].segs[&k].end_us).or_else(|| {
                owner
                    .keys()
                    .next()
                    .and_then(|k| seg_model(*k))
                    .map(|(_, s)| s.start_us)
            });
            let first_hash = scanned.fragments.first().map(|f| f.sha256);
            if let Some(other) = first_hash.and_then(|h| global.get(&h)) {
                media_failure = Some((
                    gi,
                    Failure {
                        kind: FailureKind::Reordered,
                        at_us: at,
                        segment: Some(seq),
                        detail: format!(
                            "segment file {} holds the video of segment {other:016x}",
                            segment_file_name(seq)
                        ),
                    },
                ));
                continue;
            }
            // Written after the last ledger record of a run that crashed, or of a ledger the
            // server could not continue, before the next run or generation started.
            let crash_orphan = match prev {
                Some((k, gi)) => {
                    let g = &gens[gi];
                    g.crash_after.contains(&Some(k))
                        || (gi + 1 < gens.len()
                            && g.segs.keys().next_back() == Some(&k)
                            && !g.outcome.ended_cleanly)
                }
                None => gens.iter().any(|g| g.crash_after.contains(&None)),
            };
            let after_end = max_ledger_seg.is_none_or(|m| seq > m);
            if crash_orphan || (after_end && chain_ended_open) {
                ctx.unsigned.push(UnsignedSpan {
                    segment: Some(seq),
                    from_us: at,
                    to_us: None,
                    bytes: scanned.file_len,
                    after_unclean_shutdown: crash_orphan,
                    detail: format!(
                        "segment file {} was written but never entered in the ledger (interrupted recording)",
                        segment_file_name(seq)
                    ),
                });
            } else {
                media_failure = Some((
                    gi,
                    Failure {
                        kind: FailureKind::Inserted,
                        at_us: at,
                        segment: Some(seq),
                        detail: format!(
                            "segment file {} is not part of the signed recording",
                            segment_file_name(seq)
                        ),
                    },
                ));
            }
            continue;
        };
        let g = &gens[gi];
        // Another camera's current ledger: the mismatch itself is the finding.
        if stopped[gi] || g.other_camera.is_some() {
            continue;
        }
        let outcome = &g.outcome;
        if outcome.is_untrusted(model.open_seq) {
            stopped[gi] = true;
            continue;
        }
        let open_signed = outcome.is_signed(model.open_seq);
        if open_signed {
            if prev_init.is_some_and(|p| p != model.init_hash) {
                events_codec.push(Event::CodecChange {
                    segment: seq,
                    at_us: model.start_us,
                });
            }
            prev_init = Some(model.init_hash);
        }
        let Some(path) = files.get(&seq) else {
            if model.interrupted && model.frags.is_empty() {
                // Start-up recovery removes a segment file that holds no complete GOP.
                continue;
            }
            if model.close.is_some() && model.frags.is_empty() && model.end_us == model.start_us {
                // A segment closed without any GOP (the first write failed, e.g. on a full
                // volume): the recorder deletes such a file, and no video was in it.
                continue;
            }
            if open_signed {
                media_failure = Some((
                    gi,
                    Failure {
                        kind: FailureKind::Missing,
                        at_us: Some(model.start_us),
                        segment: Some(seq),
                        detail: format!(
                            "segment file {} ({} signed fragments) is missing",
                            segment_file_name(seq),
                            model.frags.len()
                        ),
                    },
                ));
            } else {
                ctx.unsigned.push(UnsignedSpan {
                    segment: Some(seq),
                    from_us: Some(model.start_us),
                    to_us: Some(model.end_us),
                    bytes: 0,
                    after_unclean_shutdown: model.interrupted,
                    detail: "unsigned segment whose file is absent".into(),
                });
            }
            continue;
        };
        let scanned = scan(&mut scans, scan_at[&seq], path, &mut ctx, progress)?;
        match check_segment(seq, model, &scanned, &global, &inits, outcome, &mut ctx) {
            SegResult::Ok => ctx.checked.segments += 1,
            SegResult::Fail(f) => media_failure = Some((gi, f)),
            SegResult::ChainStop => stopped[gi] = true,
        }
    }

    // The first failure, generation by generation (oldest first). Within one, media problems
    // found before its chain breaks come first in time. A chain failure counts when data in
    // range depends on it, or when it lies in the range; data of a generation depends on its
    // own chain only.
    let mut failure: Option<Failure> = None;
    for (gi, g) in gens.iter().enumerate() {
        // A retired generation's video ends before the next generation's begins, and before
        // the server retired it.
        let next_start = gens
            .get(gi + 1)
            .and_then(|n| n.segs.values().map(|s| s.start_us).min());
        let end = match (g.end_us(), next_start) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b.filter(|_| g.retired.is_some())),
        };
        let relevant = |f: &Failure| {
            range.to_us.is_none_or(|t| f.at_us.is_none_or(|a| a < t))
                && range
                    .from_us
                    .is_none_or(|from| end.is_none_or(|e| e > from))
        };
        let media = media_failure
            .as_ref()
            .filter(|(mgi, _)| *mgi == gi)
            .map(|(_, f)| f.clone());
        // Imported video whose material does not check is a media finding of its own time.
        let handover = g
            .handover_failure
            .as_ref()
            .filter(|(seq, f)| !g.outcome.is_untrusted(*seq) && relevant(f))
            .map(|(_, f)| f.clone());
        let media = match (media, handover) {
            (Some(m), Some(h)) => Some(if h.at_us < m.at_us { h } else { m }),
            (m, h) => m.or(h),
        };
        let dup = duplicate
            .as_ref()
            .filter(|(dgi, _)| *dgi == gi)
            .map(|(_, f)| f.clone());
        let chain = g
            .outcome
            .failure
            .as_ref()
            .map(|f| f.failure.clone())
            .filter(|f| stopped[gi] || relevant(f));
        let file = g.file_failure.clone().filter(|f| relevant(f));
        // Without a readable ledger of this camera (missing, not a ledger, another camera's),
        // its video is unexplained because of the file: say that first.
        let found = if g.outcome.records == 0 || g.other_camera.is_some() {
            file.or(media).or(dup).or(chain)
        } else {
            media.or(dup).or(chain).or(file)
        };
        if let Some(f) = found {
            failure = Some(g.with_context(f));
            break;
        }
    }
    if failure.is_none() {
        failure = unnamed.into_iter().next();
    }
    if failure.is_none()
        && let Some(rows) = index
    {
        failure = check_index(rows, &gens, &owner, &in_range_set);
    }
    if failure.is_none()
        && let Some(u) = ctx.unsigned.first()
    {
        failure = Some(Failure {
            kind: FailureKind::Unsigned,
            at_us: u.from_us,
            segment: u.segment,
            detail: format!(
                "{} ({} bytes{})",
                u.detail,
                u.bytes,
                if u.after_unclean_shutdown {
                    "; the recorder was not shut down cleanly"
                } else {
                    "; recording in progress or interrupted"
                }
            ),
        });
    }

    let mut events: Vec<Event> = Vec::new();
    for g in &gens {
        events.extend(generation_events(g, range));
    }
    events.extend(events_codec);
    let parts = if failure.is_none() {
        signed_parts(&gens, &owner, &in_range)
    } else {
        Vec::new()
    };

    Ok(Report {
        camera_id: current.outcome.camera_id.clone().unwrap_or_default(),
        failure,
        unsigned: ctx.unsigned,
        events,
        checked: ctx.checked,
        signers,
        parts,
    })
}

/// Who signed the verified segments in range, in time order, adjacent parts of one signer
/// merged: the generation's signing key's server for own video, the source server for video a
/// handover imported.
fn signed_parts(gens: &[Gen], owner: &BTreeMap<u64, usize>, in_range: &[u64]) -> Vec<SignedPart> {
    let mut parts: Vec<SignedPart> = in_range
        .iter()
        .filter_map(|seq| {
            let g = &gens[*owner.get(seq)?];
            let m = g.segs.get(seq)?;
            if m.frags.is_empty() {
                return None;
            }
            let from_us = m.frags.iter().map(|(_, f)| f.start_us).min()?;
            let to_us = m
                .frags
                .iter()
                .map(|(_, f)| f.start_us.saturating_add(f.duration_us as i64))
                .max()?;
            let (signed_by, handover_recorded_by) = match &m.imported {
                Some((source, recipient)) => (source.clone(), Some(recipient.clone())),
                None => (
                    g.outcome
                        .signers
                        .iter()
                        .map(|s| signer_name(s))
                        .collect::<Vec<_>>()
                        .join(" and "),
                    None,
                ),
            };
            Some(SignedPart {
                from_us,
                to_us,
                signed_by,
                handover_recorded_by,
            })
        })
        .collect();
    parts.sort_by_key(|p| p.from_us);
    let mut merged: Vec<SignedPart> = Vec::new();
    for p in parts {
        if let Some(last) = merged.last_mut()
            && last.signed_by == p.signed_by
            && last.handover_recorded_by == p.handover_recorded_by
        {
            last.to_us = last.to_us.max(p.to_us);
            continue;
        }
        merged.push(p);
    }
    merged
}

/// The signed events of one generation in range, its retirement and interrupted writes.
fn generation_events(g: &Gen, range: TimeRange) -> Vec<Event> {
    let outcome = &g.outcome;
    let seg_span = |s: u64| g.segs.get(&s).map(|m| (m.start_us, m.end_us));
    let mut events: Vec<Event> = outcome
        .events
        .iter()
        .filter(|(seq, _)| outcome.is_signed(*seq))
        .filter(|(_, e)| match e {
            Event::Gap {
                before_us,
                after_us,
                ..
            } => range.overlaps(*before_us, *after_us),
            Event::Pruned {
                segment,
                pruned_at_us,
            } => match seg_span(*segment) {
                Some((a, b)) => range.overlaps(a, b),
                None => range.overlaps(*pruned_at_us, *pruned_at_us),
            },
            Event::EvidenceLock { from_us, to_us, .. } => range.overlaps(*from_us, *to_us),
            Event::Handover { from_us, to_us, .. } => range.overlaps(*from_us, *to_us),
            Event::UncleanShutdown {
                detected_at_us,
                recovered_from_us,
                ..
            } => range.overlaps(
                recovered_from_us.unwrap_or(*detected_at_us),
                *detected_at_us,
            ),
            Event::SegmentRecovered {
                segment,
                recovered_at_us,
                ..
            } => match seg_span(*segment) {
                Some((a, b)) => range.overlaps(a, b),
                None => range.overlaps(*recovered_at_us, *recovered_at_us),
            },
            Event::KeyRotation {
                rotated_at_us: t, ..
            }
            | Event::CodecChange { at_us: t, .. } => range.overlaps(*t, *t),
            Event::LedgerContinued { retired_at_us, .. } => {
                range.overlaps(*retired_at_us, *retired_at_us)
            }
            Event::InterruptedWrite { at_us, .. } => at_us.is_none_or(|t| range.overlaps(t, t)),
        })
        .map(|(_, e)| e.clone())
        .collect();
    for (w, at_us) in &g.interrupted {
        if w.after_seq.is_some_and(|s| outcome.is_untrusted(s))
            || at_us.is_some_and(|t| !range.overlaps(t, t))
        {
            continue;
        }
        events.push(Event::InterruptedWrite {
            ledger: g.name.clone(),
            offset: w.offset,
            bytes: w.bytes,
            after_seq: w.after_seq,
            at_us: *at_us,
        });
    }
    if let Some(r) = g.retired.as_ref().filter(|r| r.signed) {
        // From the retired ledger's last recorded instant to the retirement.
        let from = outcome.last_time.unwrap_or(r.pred.retired_at_us);
        if range.overlaps(from.min(r.pred.retired_at_us), r.pred.retired_at_us) {
            events.push(Event::LedgerContinued {
                retired_file: r.pred.file.clone(),
                continued_in: r.continued_in.clone(),
                retired_at_us: r.pred.retired_at_us,
                reason: r.pred.reason,
                detail: r.pred.detail.clone(),
                retired_len: r.pred.file_len,
                retired_sha256: hex::encode(r.pred.file_sha256),
                last_seq: r.pred.last().map(|(s, _)| s),
                vouched_records: r.vouched,
            });
        }
    }
    events
}

struct Ctx {
    checked: Checked,
    unsigned: Vec<UnsignedSpan>,
    done: u64,
    total: u64,
}

/// File number `i` of the prefetch (at `path`), scanned; progress counts every byte the
/// workers have scanned, look-ahead included.
fn scan(
    scans: &mut Prefetch,
    i: usize,
    path: &Path,
    ctx: &mut Ctx,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Scanned, VerifyError> {
    let total = ctx.total;
    let r = scans
        .take(i, &mut |done| progress(done.min(total), total))
        .map_err(|source| VerifyError::SegmentIo {
            path: path.to_path_buf(),
            source,
        })?;
    ctx.done = scans.scanned_bytes().min(total);
    Ok(r)
}

enum SegResult {
    Ok,
    Fail(Failure),
    /// The ledger's chain is broken before this point; its failure is what counts.
    ChainStop,
}

fn check_segment(
    seq: u64,
    model: &SegModel,
    file: &Scanned,
    global: &HashMap<Hash, u64>,
    inits: &HashMap<Hash, u64>,
    outcome: &ChainOutcome,
    ctx: &mut Ctx,
) -> SegResult {
    let name = segment_file_name(seq);
    let fail = |kind, at_us, detail: String| {
        SegResult::Fail(Failure {
            kind,
            at_us: Some(at_us),
            segment: Some(seq),
            detail,
        })
    };
    let unsigned_from = |ctx: &mut Ctx, from_us: i64, offset: u64, why: &str| {
        ctx.unsigned.push(UnsignedSpan {
            segment: Some(seq),
            from_us: Some(from_us),
            to_us: Some(model.end_us),
            bytes: file.file_len.saturating_sub(offset),
            after_unclean_shutdown: model.interrupted,
            detail: format!("{name} from byte {offset}: {why}"),
        });
    };

    if !outcome.is_signed(model.open_seq) {
        unsigned_from(ctx, model.start_us, 0, "segment not covered by a signature");
        return SegResult::Ok;
    }
    let init = &file.init;
    if init.status != UnitStatus::Complete
        || init.len != model.init_len
        || init.sha256 != model.init_hash
    {
        if let Some(other) = inits.get(&init.sha256).filter(|o| **o != seq) {
            return fail(
                FailureKind::Reordered,
                model.start_us,
                format!("{name} holds the init of segment {other:016x}"),
            );
        }
        if init.len < model.init_len && file.fragments.is_empty() {
            return fail(
                FailureKind::Truncated,
                model.start_us,
                format!(
                    "{name} is only {} bytes, shorter than its signed init",
                    file.file_len
                ),
            );
        }
        return fail(
            FailureKind::Modified,
            model.start_us,
            format!("{name}: the init (ftyp/moov) differs from the signed one"),
        );
    }
    ctx.checked.bytes += init.len;

    let exp = &model.frags;
    let exp_idx: HashMap<Hash, usize> = exp
        .iter()
        .enumerate()
        .map(|(i, (_, f))| (f.sha256, i))
        .collect();
    let file_idx: HashMap<Hash, usize> = file
        .fragments
        .iter()
        .enumerate()
        .map(|(j, u)| (u.sha256, j))
        .collect();
    let mut i = 0;
    let mut j = 0;
    while j < file.fragments.len() {
        let u = &file.fragments[j];
        let Some((rs, e)) = exp.get(i) else {
            // Bytes after the last fragment the ledger knows of.
            if model.sealed(outcome) {
                return fail(
                    FailureKind::Inserted,
                    model.end_us,
                    format!(
                        "{name} has {} bytes after its signed end (byte {})",
                        file.file_len - u.offset,
                        u.offset
                    ),
                );
            }
            if model.close.is_some_and(|c| outcome.is_untrusted(c)) {
                return SegResult::ChainStop;
            }
            unsigned_from(
                ctx,
                model.end_us,
                u.offset,
                "fragments written after the last ledger record",
            );
            return SegResult::Ok;
        };
        if outcome.is_untrusted(*rs) {
            return SegResult::ChainStop;
        }
        if !outcome.is_signed(*rs) {
            unsigned_from(
                ctx,
                e.start_us,
                u.offset,
                "fragments not covered by a signature",
            );
            return SegResult::Ok;
        }
        if u.status == UnitStatus::Complete && u.sha256 == e.sha256 && u.len == e.length {
            ctx.checked.add_fragment(e.start_us, e.duration_us, u.len);
            i += 1;
            j += 1;
            continue;
        }
        if u.status == UnitStatus::Truncated {
            return fail(
                FailureKind::Truncated,
                e.start_us,
                format!("{name} ends inside GOP {} (byte {})", e.gop, u.offset),
            );
        }
        if let Some(&k) = exp_idx.get(&u.sha256) {
            let expected_later = file_idx.get(&e.sha256).is_some_and(|&jj| jj > j);
            if k > i && !expected_later {
                return fail(
                    FailureKind::Missing,
                    e.start_us,
                    format!(
                        "{name}: {} GOP(s) starting with GOP {} (byte {}) were removed",
                        k - i,
                        e.gop,
                        e.offset
                    ),
                );
            }
            return fail(
                FailureKind::Reordered,
                e.start_us,
                format!(
                    "{name}: GOP {} is not where it was recorded (byte {})",
                    e.gop, u.offset
                ),
            );
        }
        if let Some(other) = global.get(&u.sha256).filter(|o| **o != seq) {
            return fail(
                FailureKind::Reordered,
                e.start_us,
                format!(
                    "{name} at byte {} holds a GOP of segment {other:016x}",
                    u.offset
                ),
            );
        }
        if file
            .fragments
            .get(j + 1)
            .is_some_and(|n| n.sha256 == e.sha256)
        {
            return fail(
                FailureKind::Inserted,
                e.start_us,
                format!(
                    "{name}: {} bytes not in the recording were inserted at byte {}",
                    u.len, u.offset
                ),
            );
        }
        return fail(
            FailureKind::Modified,
            e.start_us,
            format!(
                "{name}: GOP {} (bytes {}..{}) does not match its signed hash",
                e.gop,
                e.offset,
                e.offset + e.length
            ),
        );
    }
    if let Some((rs, e)) = exp.get(i) {
        if outcome.is_untrusted(*rs) {
            return SegResult::ChainStop;
        }
        if outcome.is_signed(*rs) {
            let last = file
                .fragments
                .last()
                .map_or(file.init.len, |u| u.offset + u.len);
            return fail(
                FailureKind::Truncated,
                e.start_us,
                format!(
                    "{name} ends at byte {last}, before signed GOP {} (byte {}); {} signed GOP(s) are gone",
                    e.gop,
                    e.offset,
                    exp.len() - i
                ),
            );
        }
    }
    SegResult::Ok
}

/// Checks the index database's GOP rows against the signed fragment records of the segments in
/// range; returns the earliest disagreement.
fn check_index(
    rows: &[IndexedGop],
    gens: &[Gen],
    owner: &BTreeMap<u64, usize>,
    in_range: &BTreeSet<u64>,
) -> Option<Failure> {
    let gen_of = |seq: &u64| owner.get(seq).map(|gi| &gens[*gi]);
    let mut signed: HashMap<(u64, u32), &FragmentRecord> = HashMap::new();
    for seq in in_range {
        let g = gen_of(seq).expect("owned");
        for (rs, f) in &g.segs[seq].frags {
            if g.outcome.is_signed(*rs) {
                signed.insert((f.segment, f.gop), f);
            }
        }
    }
    let mut found: Vec<Failure> = Vec::new();
    let mut seen: HashSet<(u64, u32)> = HashSet::new();
    // Imported GOPs are numbered apart from the recorder's counter (and written with their
    // rows before their handover fact), so only own rows tell how far the index had got.
    let imported = |seq: &u64| gen_of(seq).is_some_and(|g| g.segs[seq].imported.is_some());
    let newest_row = rows
        .iter()
        .filter(|r| !imported(&r.segment))
        .map(|r| r.gop)
        .max();
    for row in rows {
        let key = (row.segment, row.gop);
        let what = format!("GOP {} of segment {:016x}", row.gop, row.segment);
        if let Some(f) = signed.get(&key) {
            seen.insert(key);
            let mut diffs = Vec::new();
            if row.start_us != f.start_us {
                diffs.push(format!(
                    "start {} instead of {}",
                    crate::fmt_time(row.start_us),
                    crate::fmt_time(f.start_us)
                ));
            }
            if row.duration_us != f.duration_us {
                diffs.push(format!(
                    "duration {} us instead of {} us",
                    row.duration_us, f.duration_us
                ));
            }
            if row.offset != f.offset || row.length != f.length {
                diffs.push(format!(
                    "bytes {}+{} instead of {}+{}",
                    row.offset, row.length, f.offset, f.length
                ));
            }
            if row.sha256 != f.sha256 {
                diffs.push("a different SHA-256".into());
            }
            if !diffs.is_empty() {
                found.push(Failure {
                    kind: FailureKind::Modified,
                    at_us: Some(f.start_us),
                    segment: Some(row.segment),
                    detail: format!(
                        "the index database was edited: it gives {what} {}; exports and playback follow the index",
                        diffs.join(", ")
                    ),
                });
            }
            continue;
        }
        // Rows of segments out of range, pruned, or still unsigned are not judged.
        let Some(g) = gen_of(&row.segment) else {
            continue;
        };
        let m = &g.segs[&row.segment];
        if !in_range.contains(&row.segment) || m.pruned || !m.sealed(&g.outcome) {
            continue;
        }
        if m.frags.iter().any(|(_, f)| f.gop == row.gop) {
            continue;
        }
        found.push(Failure {
            kind: FailureKind::Inserted,
            at_us: Some(row.start_us),
            segment: Some(row.segment),
            detail: format!(
                "the index database lists {what}, which the signed recording does not contain"
            ),
        });
    }
    for (key, f) in &signed {
        // Rows are read before the ledger: GOPs newer than the newest row may just be new.
        if !seen.contains(key) && (imported(&f.segment) || newest_row.is_some_and(|n| f.gop < n)) {
            found.push(Failure {
                kind: FailureKind::Missing,
                at_us: Some(f.start_us),
                segment: Some(f.segment),
                detail: format!(
                    "the index database has no entry for signed GOP {} of segment {:016x}; exports and playback skip it",
                    f.gop, f.segment
                ),
            });
        }
    }
    found.into_iter().min_by_key(|f| f.at_us)
}
