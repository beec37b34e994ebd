//! The spool: every event to forward, numbered, on disk before any collector sees it, until
//! every collector has it (or the size limit pushes it out).
//!
//! Layout (`data_dir/siem/spool/`, mode 0700; docs/siem.md):
//!
//! - Segment files `<first seq, 20 digits>.seg`, append-only. A 36-byte header: magic
//!   `VGLSPOOL`, version (u32 LE, 1), 4 reserved zero bytes, the segment's first sequence
//!   number (u64 LE), the id of the last event spooled before it (i64 LE), and the CRC-32 of
//!   those 32 bytes (u32 LE). Then records: payload length (u32 LE, 1 … 1 MiB), CRC-32 (u32
//!   LE) of the rest of the record, sequence number (u64 LE), event id (i64 LE), payload
//!   (the event as JSON). Sequence numbers increase by one from record to record and from
//!   segment to segment. A new segment is written under a temporary name, synced, and
//!   renamed, so a segment file always has a whole header.
//! - `cursors/<collector name in hex>`: `{"collector": …, "acked": seq}`, the last sequence
//!   number the collector has (see [`crate::sender`] for what "has" means), replaced by
//!   rename.
//!
//! Fsync policy: the spooler appends what the bus delivered in one go, then `fdatasync`s the
//! segment, and only then lets senders read it (the durable end). So a sequence number that
//! left the machine is on disk, and a restart never gives it to another event.
//!
//! Recovery ([`Spool::open`]): segments are read in order; the first record that is cut
//! short or fails its CRC ends the segment, which is truncated there (a torn tail after
//! `kill -9` or a power cut). A damaged record before the end of the newest segment loses the
//! rest of that segment: that loss is reported like an overflow. Collectors resume after
//! their cursor.
//!
//! Bound: when the spool would exceed its byte limit, whole segments are dropped, oldest
//! first (the newest, being written, never). Each collector that had not received all of a
//! dropped segment is told how many of its events were lost ([`Loss`]); the forwarder turns
//! that into a `siem.spool_overflow` event.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tokio::sync::watch;
use vigil_events::{Category, Event, NewEvent, Severity, Source};

/// Segment header length.
pub const HEADER_LEN: usize = 36;
/// Record head length (length, CRC, seq, event id).
pub const RECORD_HEAD: usize = 24;
/// Longest payload a record may have (an event is at most about 40 KiB as JSON).
pub const MAX_PAYLOAD: usize = 1024 * 1024;
const MAGIC: &[u8; 8] = b"VGLSPOOL";
const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("SIEM spool {path}: {action}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("SIEM spool: an event cannot be written: {0}")]
    Encode(serde_json::Error),
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SpoolError + 'a {
    move |source| SpoolError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// A spooled event with its sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub event: Event,
}

/// A segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub first_seq: u64,
    /// The id of the last event spooled before this segment (where catching up resumes when
    /// the segment holds no record yet).
    pub prev_event_id: i64,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..8].copy_from_slice(MAGIC);
        h[8..12].copy_from_slice(&VERSION.to_le_bytes());
        h[16..24].copy_from_slice(&self.first_seq.to_le_bytes());
        h[24..32].copy_from_slice(&self.prev_event_id.to_le_bytes());
        let crc = crc32fast::hash(&h[..32]);
        h[32..36].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// The header at the start of `data`, or why it is not one.
    pub fn decode(data: &[u8]) -> Result<SegmentHeader, &'static str> {
        let Some(h) = data.get(..HEADER_LEN) else {
            return Err("shorter than a segment header");
        };
        if &h[..8] != MAGIC {
            return Err("not a spool segment (bad magic)");
        }
        if crc32fast::hash(&h[..32]) != u32::from_le_bytes(h[32..36].try_into().expect("4")) {
            return Err("segment header CRC mismatch");
        }
        if u32::from_le_bytes(h[8..12].try_into().expect("4")) != VERSION {
            return Err("unknown segment version");
        }
        let first_seq = u64::from_le_bytes(h[16..24].try_into().expect("8"));
        if first_seq == 0 {
            return Err("segment starts at sequence number 0");
        }
        Ok(SegmentHeader {
            first_seq,
            prev_event_id: i64::from_le_bytes(h[24..32].try_into().expect("8")),
        })
    }
}

/// One record as stored, before its payload is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRecord<'a> {
    pub seq: u64,
    pub event_id: i64,
    pub payload: &'a [u8],
    /// Bytes the record takes in the file.
    pub len: usize,
}

/// Why reading records stopped before the end of the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The data ends inside a record (a torn write).
    Torn,
    /// A record's length is impossible or its CRC does not match.
    Corrupt,
    /// A record's sequence number is not the one expected.
    OutOfSequence,
}

/// Encodes a record.
pub fn encode_record(seq: u64, event_id: i64, payload: &[u8], out: &mut Vec<u8>) {
    assert!(!payload.is_empty() && payload.len() <= MAX_PAYLOAD);
    let start = out.len();
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&event_id.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The record at the start of `data`: `Ok(None)` when `data` is empty, `Err` when what is
/// there is not a whole valid record.
pub fn decode_record(data: &[u8]) -> Result<Option<RawRecord<'_>>, Stop> {
    if data.is_empty() {
        return Ok(None);
    }
    let Some(head) = data.get(..RECORD_HEAD) else {
        return Err(Stop::Torn);
    };
    let len = u32::from_le_bytes(head[..4].try_into().expect("4")) as usize;
    if len == 0 || len > MAX_PAYLOAD {
        return Err(Stop::Corrupt);
    }
    let Some(rest) = data.get(8..RECORD_HEAD + len) else {
        return Err(Stop::Torn);
    };
    if crc32fast::hash(rest) != u32::from_le_bytes(head[4..8].try_into().expect("4")) {
        return Err(Stop::Corrupt);
    }
    Ok(Some(RawRecord {
        seq: u64::from_le_bytes(head[8..16].try_into().expect("8")),
        event_id: i64::from_le_bytes(head[16..24].try_into().expect("8")),
        payload: &data[RECORD_HEAD..RECORD_HEAD + len],
        len: RECORD_HEAD + len,
    }))
}

/// The event a record's payload holds.
pub fn decode_event(payload: &[u8]) -> Result<Event, serde_json::Error> {
    let f: FlatEvent = serde_json::from_slice(payload)?;
    Ok(Event {
        id: f.id,
        received_us: f.received_us,
        event: NewEvent {
            time_us: f.time_us,
            source: f.source,
            kind: f.kind,
            category: f.category,
            severity: f.severity,
            message: f.message,
            camera: f.camera,
            attributes: f.attributes,
        },
    })
}

/// The payload's JSON as [`Event`] writes it (its `NewEvent` fields flattened in): read
/// through this plain struct, because serde reads a flattened struct by buffering every
/// field first, which cost the sender more than formatting the message.
#[derive(serde::Deserialize)]
struct FlatEvent {
    id: i64,
    received_us: i64,
    time_us: i64,
    source: Source,
    kind: String,
    category: Category,
    severity: Severity,
    message: String,
    camera: Option<String>,
    attributes: BTreeMap<String, String>,
}

/// What a segment file holds, as recovery reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentScan {
    pub header: SegmentHeader,
    /// Sequence number after the last good record.
    pub end_seq: u64,
    /// Event id of the last good record (the header's `prev_event_id` when none).
    pub last_event_id: i64,
    /// Bytes up to the end of the last good record.
    pub good_len: usize,
    /// Good records.
    pub records: u64,
    /// Why the scan stopped before the end of the data, if it did.
    pub stop: Option<Stop>,
}

/// Reads a whole segment file's bytes: its header and every good record, in sequence.
pub fn scan_segment(data: &[u8]) -> Result<SegmentScan, &'static str> {
    let header = SegmentHeader::decode(data)?;
    let mut scan = SegmentScan {
        header,
        end_seq: header.first_seq,
        last_event_id: header.prev_event_id,
        good_len: HEADER_LEN,
        records: 0,
        stop: None,
    };
    loop {
        match decode_record(&data[scan.good_len..]) {
            Ok(None) => break,
            Ok(Some(r)) if r.seq == scan.end_seq => {
                scan.end_seq += 1;
                scan.last_event_id = r.event_id;
                scan.good_len += r.len;
                scan.records += 1;
            }
            Ok(Some(_)) => {
                scan.stop = Some(Stop::OutOfSequence);
                break;
            }
            Err(stop) => {
                scan.stop = Some(stop);
                break;
            }
        }
    }
    Ok(scan)
}

/// Events a collector lost because their segment was dropped (size limit) or damaged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loss {
    pub collector: String,
    pub count: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// `overflow` or `damaged`.
    pub reason: &'static str,
}

/// What [`Spool::open`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// No spool existed: a new one was started.
    pub fresh: bool,
    pub segments: usize,
    /// Records kept, not yet received by every collector or not yet deleted.
    pub records: u64,
    /// Bytes of a torn tail dropped from the newest segment.
    pub torn_bytes: u64,
    /// Damaged segments or records, and what that cost each collector.
    pub losses: Vec<Loss>,
    /// Segment files set aside as `*.corrupt`.
    pub set_aside: Vec<PathBuf>,
}

#[derive(Debug)]
struct Segment {
    first_seq: u64,
    /// Sequence number after its last durable record.
    end_seq: u64,
    /// Durable bytes.
    len: u64,
    path: PathBuf,
}

struct State {
    segments: VecDeque<Segment>,
    /// The newest segment, open for appending.
    writer: File,
    last_event_id: i64,
    cursors: BTreeMap<String, u64>,
    /// (sequence number, when the store received its event) of the first record of each
    /// append and, after a restart, of each segment, in sequence order: the age of a record
    /// is at most that of the mark at or before it (see [`Spool::oldest_pending_us`]).
    marks: VecDeque<(u64, i64)>,
}

/// The on-disk spool (module documentation). Shared by the spooler, which appends, and the
/// senders, which read and acknowledge.
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    state: Mutex<State>,
    /// The sequence number after the last durable record.
    durable: watch::Sender<u64>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.seg")
}

fn cursor_file(dir: &Path, collector: &str) -> PathBuf {
    // Hex keeps any name a file name; a long one is cut and told apart by its CRC.
    let bytes = collector.as_bytes();
    let mut name: String = bytes.iter().take(100).map(|b| format!("{b:02x}")).collect();
    if bytes.len() > 100 {
        name.push_str(&format!("-{:08x}", crc32fast::hash(bytes)));
    }
    dir.join("cursors").join(name)
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        // Only crash safety of a rename or unlink depends on it.
        let _ = d.sync_all();
    }
}

fn private_dir(dir: &Path) -> Result<(), SpoolError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err("cannot create the directory", dir))
}

impl Spool {
    /// Opens (recovering) or creates the spool in `dir` for `collectors`, holding at most
    /// `max_bytes`. `start_event_id` gives, for a new spool, the id of the newest stored
    /// event (forwarding starts after it). A collector without a cursor starts after the
    /// newest record.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        collectors: &[String],
        start_event_id: impl FnOnce() -> i64,
    ) -> Result<(Spool, Recovery), SpoolError> {
        private_dir(dir)?;
        private_dir(&dir.join("cursors"))?;
        let mut recovery = Recovery::default();
        let mut files: Vec<(u64, PathBuf)> = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_err("cannot list", dir))? {
            let entry = entry.map_err(io_err("cannot list", dir))?;
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(n) = name.strip_suffix(".seg")
                && let Ok(seq) = n.parse::<u64>()
            {
                files.push((seq, path));
            } else if name.ends_with(".tmp") {
                // A segment that was being created: it was never renamed, so it holds nothing.
                let _ = fs::remove_file(&path);
            }
        }
        files.sort();
        let mut cursors = BTreeMap::new();
        for c in collectors {
            if let Some(seq) = read_cursor(&cursor_file(dir, c)) {
                cursors.insert(c.clone(), seq);
            }
        }
        let mut segments: VecDeque<Segment> = VecDeque::new();
        let mut last_event_id = None;
        let mut damaged: Vec<(u64, u64)> = Vec::new();
        let mut marks = VecDeque::new();
        let count = files.len();
        for (i, (named, path)) in files.into_iter().enumerate() {
            let newest = i + 1 == count;
            let data = fs::read(&path).map_err(io_err("cannot read", &path))?;
            let scan = match scan_segment(&data) {
                Ok(s) if s.header.first_seq == named => s,
                Ok(_) | Err(_) => {
                    let aside = path.with_extension("corrupt");
                    fs::rename(&path, &aside).map_err(io_err("cannot set aside", &path))?;
                    tracing::error!(path = %aside.display(), "SIEM spool: a segment with a damaged header was set aside");
                    recovery.set_aside.push(aside);
                    continue;
                }
            };
            if let Some(prev) = segments.back()
                && scan.header.first_seq < prev.end_seq
            {
                let aside = path.with_extension("corrupt");
                fs::rename(&path, &aside).map_err(io_err("cannot set aside", &path))?;
                tracing::error!(path = %aside.display(), "SIEM spool: a segment overlapping the previous one was set aside");
                recovery.set_aside.push(aside);
                continue;
            }
            if let Some(prev) = segments.back()
                && scan.header.first_seq > prev.end_seq
            {
                damaged.push((prev.end_seq, scan.header.first_seq - 1));
            }
            if scan.stop.is_some() {
                let dropped = data.len() - scan.good_len;
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io_err("cannot open", &path))?;
                f.set_len(scan.good_len as u64)
                    .map_err(io_err("cannot truncate", &path))?;
                f.sync_all().map_err(io_err("cannot sync", &path))?;
                if newest && scan.stop == Some(Stop::Torn) {
                    recovery.torn_bytes += dropped as u64;
                    tracing::warn!(path = %path.display(), bytes = dropped, "SIEM spool: dropped a torn record at the end (an interrupted write)");
                } else {
                    tracing::error!(path = %path.display(), bytes = dropped, stop = ?scan.stop, "SIEM spool: a damaged record ends the segment");
                    if !newest {
                        // What the damage cost shows as the gap to the next segment.
                    } else {
                        recovery.torn_bytes += dropped as u64;
                    }
                }
            }
            if scan.records > 0
                && let Ok(Some(first)) = decode_record(&data[HEADER_LEN..])
                && let Ok(event) = decode_event(first.payload)
            {
                marks.push_back((first.seq, event.received_us));
            }
            last_event_id = Some(scan.last_event_id);
            recovery.records += scan.records;
            segments.push_back(Segment {
                first_seq: scan.header.first_seq,
                end_seq: scan.end_seq,
                len: scan.good_len as u64,
                path,
            });
        }
        let (last_event_id, next_seq) = match (segments.back(), last_event_id) {
            (Some(s), Some(id)) => (id, s.end_seq),
            _ => {
                recovery.fresh = true;
                let start = start_event_id();
                let seg = create_segment(dir, 1, start)?;
                segments.push_back(seg);
                (start, 1)
            }
        };
        recovery.segments = segments.len();
        let active = segments.back().expect("one segment at least");
        let writer = OpenOptions::new()
            .append(true)
            .open(&active.path)
            .map_err(io_err("cannot open", &active.path))?;
        let oldest = segments.front().expect("one").first_seq;
        for c in collectors {
            let cursor = match cursors.get(c) {
                Some(&seq) => seq.min(next_seq - 1),
                None => {
                    // A collector seen for the first time starts with what comes next.
                    write_cursor(&cursor_file(dir, c), c, next_seq - 1)?;
                    next_seq - 1
                }
            };
            cursors.insert(c.clone(), cursor);
            for &(first, last) in &damaged {
                if cursor < last {
                    let first = first.max(cursor + 1);
                    recovery.losses.push(Loss {
                        collector: c.clone(),
                        count: last - first + 1,
                        first_seq: first,
                        last_seq: last,
                        reason: "damaged",
                    });
                }
            }
            if cursor + 1 < oldest && recovery.set_aside.is_empty() && damaged.is_empty() {
                // Dropped while this collector was away (a loss already reported then).
                tracing::debug!(collector = %c, cursor, oldest, "SIEM spool: collector resumes at the oldest record");
            }
        }
        let segment_bytes = (max_bytes / 16).clamp(64 * 1024, 64 * 1024 * 1024);
        let (durable, _) = watch::channel(next_seq);
        let spool = Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes,
            state: Mutex::new(State {
                segments,
                writer,
                last_event_id,
                cursors,
                marks,
            }),
            durable,
        };
        spool.delete_received();
        Ok((spool, recovery))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The id of the newest event spooled (or considered before the spool started).
    pub fn last_event_id(&self) -> i64 {
        self.lock().last_event_id
    }

    /// The sequence number the next event gets.
    pub fn next_seq(&self) -> u64 {
        *self.durable.borrow()
    }

    /// Watches the durable end (the sequence number after the last durable record).
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.durable.subscribe()
    }

    /// Bytes on disk (durable records and headers).
    pub fn bytes(&self) -> u64 {
        self.lock().segments.iter().map(|s| s.len).sum()
    }

    /// Records not yet received by `collector`.
    pub fn backlog(&self, collector: &str) -> u64 {
        let st = self.lock();
        let end = st.segments.back().map_or(1, |s| s.end_seq);
        let oldest = st.segments.front().map_or(1, |s| s.first_seq);
        let cursor = st.cursors.get(collector).copied().unwrap_or(end - 1);
        end - (cursor + 1).max(oldest)
    }

    /// When the store received the oldest event `collector` has not received yet (Unix
    /// microseconds), or `None` when it has them all (or is unknown). Exact to the append
    /// batch the event was spooled with, and after a restart to its segment: never younger
    /// than the event, so an alert on it fires early rather than late.
    pub fn oldest_pending_us(&self, collector: &str) -> Option<i64> {
        let st = self.lock();
        let end = st.segments.back().map_or(1, |s| s.end_seq);
        let oldest = st.segments.front().map_or(1, |s| s.first_seq);
        let pending = (st.cursors.get(collector)? + 1).max(oldest);
        if pending >= end {
            return None;
        }
        let at = st.marks.partition_point(|&(seq, _)| seq <= pending);
        at.checked_sub(1).map(|i| st.marks[i].1)
    }

    /// Forgets the marks of records no longer spooled (keeping the one that still covers the
    /// oldest record).
    fn prune_marks(st: &mut State) {
        let oldest = st.segments.front().map_or(0, |s| s.first_seq);
        while st.marks.len() > 1 && st.marks[1].0 <= oldest {
            st.marks.pop_front();
        }
    }

    /// The last sequence number `collector` has received.
    pub fn cursor(&self, collector: &str) -> Option<u64> {
        self.lock().cursors.get(collector).copied()
    }

    /// Appends `events` (in order) with the next sequence numbers, syncs them to disk and
    /// makes them readable. Returns what the size limit cost the collectors. `considered` is
    /// the newest event id looked at (selected or not), kept as the catch-up point. After an
    /// error, the events up to [`Spool::last_event_id`] are spooled and the others are not.
    pub fn append<E: std::borrow::Borrow<Event>>(
        &self,
        events: &[E],
        considered: i64,
    ) -> Result<Vec<Loss>, SpoolError> {
        let mut losses = Vec::new();
        let mut st = self.lock();
        if events.is_empty() {
            st.last_event_id = st.last_event_id.max(considered);
            return Ok(losses);
        }
        let mut buf = Vec::new();
        // Marked before writing: records that become durable before a failed write still
        // have their age.
        let mark = (
            st.segments.back().expect("one segment at least").end_seq,
            events[0].borrow().received_us,
        );
        st.marks.push_back(mark);
        // One payload buffer for the batch instead of a new one per event.
        let mut payload = Vec::with_capacity(1024);
        for e in events {
            let e = e.borrow();
            payload.clear();
            serde_json::to_writer(&mut payload, e).map_err(SpoolError::Encode)?;
            let active = st.segments.back().expect("one segment at least");
            let seq = active.end_seq;
            let rec_len = (RECORD_HEAD + payload.len()) as u64;
            if active.end_seq > active.first_seq
                && active.len + buf.len() as u64 + rec_len > self.segment_bytes
            {
                self.flush(&mut st, &mut buf)?;
                self.rotate(&mut st)?;
            }
            // Keep the limit: drop the oldest segments (never the one being written).
            loop {
                let total: u64 = st.segments.iter().map(|s| s.len).sum();
                if total + buf.len() as u64 + rec_len <= self.max_bytes || st.segments.len() < 2 {
                    break;
                }
                let seg = st.segments.pop_front().expect("two segments");
                for (c, &cursor) in &st.cursors {
                    if cursor + 1 < seg.end_seq {
                        let first = seg.first_seq.max(cursor + 1);
                        losses.push(Loss {
                            collector: c.clone(),
                            count: seg.end_seq - first,
                            first_seq: first,
                            last_seq: seg.end_seq - 1,
                            reason: "overflow",
                        });
                    }
                }
                fs::remove_file(&seg.path).map_err(io_err("cannot delete", &seg.path))?;
                sync_dir(&self.dir);
            }
            encode_record(seq, e.id, &payload, &mut buf);
            // `len` and `last_event_id` follow when the bytes are durable (flush).
            st.segments.back_mut().expect("one").end_seq += 1;
        }
        self.flush(&mut st, &mut buf)?;
        st.last_event_id = st.last_event_id.max(considered);
        Self::prune_marks(&mut st);
        let end = st.segments.back().expect("one").end_seq;
        drop(st);
        self.durable.send_replace(end);
        Ok(losses)
    }

    /// Writes `buf` to the newest segment and syncs it.
    fn flush(&self, st: &mut State, buf: &mut Vec<u8>) -> Result<(), SpoolError> {
        if buf.is_empty() {
            return Ok(());
        }
        let path = st.segments.back().expect("one").path.clone();
        let written = st
            .writer
            .write_all(buf)
            .and_then(|()| st.writer.sync_data());
        let (records, last_id) = count_records(buf);
        if let Err(e) = written {
            // Take back the part that may have been written, so the file stays whole.
            let active = st.segments.back_mut().expect("one");
            let _ = st.writer.set_len(active.len);
            let _ = st.writer.seek(SeekFrom::End(0));
            active.end_seq -= records;
            buf.clear();
            return Err(SpoolError::Io {
                action: "cannot write",
                path,
                source: e,
            });
        }
        st.segments.back_mut().expect("one").len += buf.len() as u64;
        if let Some(id) = last_id {
            st.last_event_id = id;
        }
        buf.clear();
        Ok(())
    }

    /// Starts a new segment after the newest.
    fn rotate(&self, st: &mut State) -> Result<(), SpoolError> {
        let end = st.segments.back().expect("one").end_seq;
        let seg = create_segment(&self.dir, end, st.last_event_id)?;
        st.writer = OpenOptions::new()
            .append(true)
            .open(&seg.path)
            .map_err(io_err("cannot open", &seg.path))?;
        st.segments.push_back(seg);
        Ok(())
    }

    /// Records `collector` has received up to `seq`: stored in its cursor file, then
    /// segments every collector has received are deleted.
    pub fn ack(&self, collector: &str, seq: u64) -> Result<(), SpoolError> {
        {
            let mut st = self.lock();
            let Some(cur) = st.cursors.get_mut(collector) else {
                return Ok(());
            };
            if seq <= *cur {
                return Ok(());
            }
            *cur = seq;
        }
        write_cursor(&cursor_file(&self.dir, collector), collector, seq)?;
        self.delete_received();
        Ok(())
    }

    /// Deletes the oldest segments while every collector has all their records.
    fn delete_received(&self) {
        let mut st = self.lock();
        let Some(&min) = st.cursors.values().min() else {
            return;
        };
        let mut deleted = false;
        while st.segments.len() > 1 && st.segments[0].end_seq <= min + 1 {
            let seg = st.segments.pop_front().expect("two");
            if let Err(e) = fs::remove_file(&seg.path) {
                tracing::warn!(path = %seg.path.display(), error = %e, "SIEM spool: cannot delete a delivered segment");
            }
            deleted = true;
        }
        if deleted {
            Self::prune_marks(&mut st);
            sync_dir(&self.dir);
        }
    }

    /// A reader of the records after `after_seq`.
    pub fn reader(&self, after_seq: u64) -> Reader {
        Reader {
            pos: after_seq,
            open: None,
        }
    }

    /// The segment holding `seq`, or the oldest after it: (first seq, end seq, durable
    /// length, path).
    fn locate(&self, seq: u64) -> Option<(u64, u64, u64, PathBuf)> {
        let st = self.lock();
        st.segments
            .iter()
            .find(|s| s.end_seq > seq)
            .filter(|s| s.end_seq > s.first_seq)
            .map(|s| (s.first_seq, s.end_seq, s.len, s.path.clone()))
    }
}

/// The number of records in an encoded buffer and the event id of the last.
fn count_records(mut buf: &[u8]) -> (u64, Option<i64>) {
    let mut n = 0;
    let mut last = None;
    while let Ok(Some(r)) = decode_record(buf) {
        n += 1;
        last = Some(r.event_id);
        buf = &buf[r.len..];
    }
    (n, last)
}

fn create_segment(dir: &Path, first_seq: u64, prev_event_id: i64) -> Result<Segment, SpoolError> {
    let path = dir.join(segment_name(first_seq));
    let tmp = dir.join(format!("{}.tmp", segment_name(first_seq)));
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err("cannot create", &tmp))?;
    f.write_all(
        &SegmentHeader {
            first_seq,
            prev_event_id,
        }
        .encode(),
    )
    .and_then(|()| f.sync_all())
    .map_err(io_err("cannot write", &tmp))?;
    fs::rename(&tmp, &path).map_err(io_err("cannot rename", &tmp))?;
    sync_dir(dir);
    Ok(Segment {
        first_seq,
        end_seq: first_seq,
        len: HEADER_LEN as u64,
        path,
    })
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CursorFile {
    collector: String,
    acked: u64,
}

fn read_cursor(path: &Path) -> Option<u64> {
    let text = fs::read(path).ok()?;
    match serde_json::from_slice::<CursorFile>(&text) {
        Ok(c) => Some(c.acked),
        Err(_) => {
            // Unreadable: resend everything still spooled (duplicates, never a loss).
            tracing::warn!(path = %path.display(), "SIEM spool: unreadable cursor; the collector gets every spooled event again");
            Some(0)
        }
    }
}

fn write_cursor(path: &Path, collector: &str, acked: u64) -> Result<(), SpoolError> {
    let tmp = path.with_extension("tmp");
    let body = serde_json::to_vec(&CursorFile {
        collector: collector.to_owned(),
        acked,
    })
    .map_err(SpoolError::Encode)?;
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err("cannot create", &tmp))?;
    f.write_all(&body)
        .and_then(|()| f.sync_data())
        .map_err(io_err("cannot write", &tmp))?;
    fs::rename(&tmp, path).map_err(io_err("cannot rename", &tmp))?;
    if let Some(parent) = path.parent() {
        sync_dir(parent);
    }
    Ok(())
}

/// Reads records in order from a position, up to the durable end.
#[derive(Debug)]
pub struct Reader {
    /// The last sequence number returned (or skipped).
    pos: u64,
    /// The open segment: its first seq, file, and offset of the record `pos + 1`.
    open: Option<(u64, File, u64)>,
}

/// What one read gave.
#[derive(Debug, Default)]
pub struct Batch {
    pub records: Vec<Record>,
    /// Records that were no longer spooled (dropped by the limit) and were skipped.
    pub skipped: u64,
}

impl Reader {
    /// The last sequence number returned.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Up to `max_records` (and about `max_bytes`) records after the position, none when
    /// everything durable was read.
    pub fn read(
        &mut self,
        spool: &Spool,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Batch, SpoolError> {
        let mut batch = Batch::default();
        let mut bytes = 0;
        while batch.records.len() < max_records && bytes < max_bytes {
            let Some((first, end, len, path)) = spool.locate(self.pos + 1) else {
                break;
            };
            if first > self.pos + 1 {
                batch.skipped += first - (self.pos + 1);
                self.pos = first - 1;
                self.open = None;
            }
            if self.open.as_ref().is_none_or(|(f, _, _)| *f != first) {
                let mut file = match File::open(&path) {
                    Ok(f) => f,
                    // Deleted meanwhile (received by all, or dropped): look again.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_err("cannot open", &path)(e)),
                };
                // Find the record pos + 1 from the start of the segment.
                let mut offset = HEADER_LEN as u64;
                let mut seq = first;
                let mut head = [0u8; RECORD_HEAD];
                while seq <= self.pos {
                    file.seek(SeekFrom::Start(offset))
                        .and_then(|_| file.read_exact(&mut head))
                        .map_err(io_err("cannot read", &path))?;
                    let plen = u32::from_le_bytes(head[..4].try_into().expect("4")) as u64;
                    offset += RECORD_HEAD as u64 + plen;
                    seq += 1;
                }
                self.open = Some((first, file, offset));
            }
            let (_, file, offset) = self.open.as_mut().expect("opened");
            let want = (len - *offset)
                .min((max_bytes - bytes).max(RECORD_HEAD) as u64 + MAX_PAYLOAD as u64);
            let mut data = vec![0u8; want as usize];
            file.seek(SeekFrom::Start(*offset))
                .and_then(|_| file.read_exact(&mut data))
                .map_err(io_err("cannot read", &path))?;
            let mut at = 0;
            while batch.records.len() < max_records && bytes < max_bytes && self.pos + 1 < end {
                let r = match decode_record(&data[at..]) {
                    Ok(Some(r)) if r.seq == self.pos + 1 => r,
                    Ok(None) | Err(Stop::Torn) => break,
                    _ => {
                        return Err(SpoolError::Io {
                            action: "damaged record",
                            path: path.clone(),
                            source: io::Error::other(format!(
                                "record {} does not read back",
                                self.pos + 1
                            )),
                        });
                    }
                };
                let event = decode_event(r.payload).map_err(|e| SpoolError::Io {
                    action: "damaged record",
                    path: path.clone(),
                    source: io::Error::other(e),
                })?;
                batch.records.push(Record { seq: r.seq, event });
                self.pos = r.seq;
                at += r.len;
                bytes += r.len;
            }
            *offset += at as u64;
            if self.pos + 1 < end {
                // Stopped by the limits.
                break;
            }
        }
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use vigil_events::{Category, NewEvent, Severity, Source, SourceKind};

    fn ev(id: i64) -> Event {
        Event {
            id,
            received_us: 1,
            event: NewEvent {
                time_us: 1,
                source: Source::new(SourceKind::Vigil, "srv"),
                kind: "test.tick".into(),
                category: Category::Security,
                severity: Severity::Info,
                message: format!("event {id} {}", "x".repeat(200)),
                camera: None,
                attributes: BTreeMap::new(),
            },
        }
    }

    fn collectors() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    fn read_all(spool: &Spool, r: &mut Reader) -> Vec<u64> {
        let mut out = Vec::new();
        loop {
            let b = r.read(spool, 100, 1 << 20).unwrap();
            if b.records.is_empty() {
                return out;
            }
            out.extend(b.records.iter().map(|r| r.seq));
        }
    }

    fn ev_at(id: i64, received_us: i64) -> Event {
        Event {
            received_us,
            ..ev(id)
        }
    }

    #[test]
    fn the_oldest_pending_age_follows_each_collector_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(dir.path(), 1 << 20, &collectors(), || 0).unwrap();
        assert_eq!(spool.oldest_pending_us("a"), None, "nothing spooled");
        // Three batches of 100 events received at 1000 s, 2000 s, 3000 s (+ id µs).
        for b in 0..3i64 {
            let events: Vec<Event> = (1..=100)
                .map(|i| ev_at(b * 100 + i, (b + 1) * 1_000_000_000 + i))
                .collect();
            spool.append(&events, (b + 1) * 100).unwrap();
        }
        assert_eq!(spool.oldest_pending_us("a"), Some(1_000_000_001));
        assert_eq!(spool.oldest_pending_us("unknown"), None);
        // "a" got the first batch and half of the second: its oldest is the second batch's.
        spool.ack("a", 150).unwrap();
        assert_eq!(spool.oldest_pending_us("a"), Some(2_000_000_001));
        assert_eq!(spool.oldest_pending_us("b"), Some(1_000_000_001));
        spool.ack("a", 300).unwrap();
        assert_eq!(spool.oldest_pending_us("a"), None, "a has everything");
        spool.ack("b", 250).unwrap();
        assert_eq!(spool.oldest_pending_us("b"), Some(3_000_000_001));
        drop(spool);
        // After a restart the marks come from the segments' first records: never younger.
        let (spool, _) = Spool::open(dir.path(), 1 << 20, &collectors(), || panic!()).unwrap();
        let after = spool
            .oldest_pending_us("b")
            .expect("b still waits for 50 events");
        assert!(after <= 3_000_000_051, "{after}");
        assert_eq!(spool.oldest_pending_us("a"), None);
        // Delivered segments are deleted and their marks forgotten.
        spool.ack("b", 300).unwrap();
        assert_eq!(spool.oldest_pending_us("b"), None);
        assert!(spool.lock().marks.len() <= 2, "{:?}", spool.lock().marks);
    }

    #[test]
    fn records_come_back_in_order_across_segments_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, rec) = Spool::open(dir.path(), 1 << 20, &collectors(), || 10).unwrap();
        assert!(rec.fresh);
        assert_eq!(spool.last_event_id(), 10);
        for chunk in (11..1011).collect::<Vec<_>>().chunks(37) {
            let events: Vec<Event> = chunk.iter().map(|&i| ev(i)).collect();
            assert!(
                spool
                    .append(&events, *chunk.last().unwrap())
                    .unwrap()
                    .is_empty()
            );
        }
        assert_eq!(spool.next_seq(), 1001);
        let segs = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension() == Some("seg".as_ref()))
            .count();
        assert!(segs > 2, "{segs} segments");
        let mut r = spool.reader(0);
        assert_eq!(read_all(&spool, &mut r), (1..=1000).collect::<Vec<_>>());
        let mut r = spool.reader(500);
        let b = r.read(&spool, 3, 1 << 20).unwrap();
        assert_eq!(b.records[0].seq, 501);
        assert_eq!(b.records[0].event, ev(511));
        drop(spool);
        let (spool, rec) = Spool::open(dir.path(), 1 << 20, &collectors(), || panic!()).unwrap();
        assert!(!rec.fresh);
        assert_eq!(rec.records, 1000);
        assert_eq!(spool.next_seq(), 1001);
        assert_eq!(spool.last_event_id(), 1010);
        assert_eq!(spool.cursor("a"), Some(0));
    }

    #[test]
    fn acknowledged_segments_are_deleted_when_every_collector_has_them() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(dir.path(), 1 << 20, &collectors(), || 0).unwrap();
        let events: Vec<Event> = (1..=1000).map(ev).collect();
        spool.append(&events, 1000).unwrap();
        let before = spool.bytes();
        spool.ack("a", 1000).unwrap();
        assert_eq!(spool.bytes(), before, "b has nothing yet");
        spool.ack("b", 600).unwrap();
        assert!(spool.bytes() < before);
        assert_eq!(spool.backlog("b"), 400);
        assert_eq!(spool.backlog("a"), 0);
        let mut r = spool.reader(600);
        assert_eq!(read_all(&spool, &mut r), (601..=1000).collect::<Vec<_>>());
        drop(spool);
        let (spool, _) = Spool::open(dir.path(), 1 << 20, &collectors(), || 0).unwrap();
        assert_eq!(spool.cursor("b"), Some(600));
        // A new collector starts with what comes next.
        drop(spool);
        let (spool, _) = Spool::open(dir.path(), 1 << 20, &["c".into()], || 0).unwrap();
        assert_eq!(spool.cursor("c"), Some(1000));
    }

    #[test]
    fn the_limit_drops_the_oldest_and_counts_the_loss_per_collector() {
        let dir = tempfile::tempdir().unwrap();
        let limit = 1 << 20;
        let (spool, _) = Spool::open(dir.path(), limit, &collectors(), || 0).unwrap();
        let mut lost: BTreeMap<String, u64> = BTreeMap::new();
        let mut next = 1;
        for _ in 0..60 {
            let events: Vec<Event> = (next..next + 100).map(ev).collect();
            next += 100;
            for l in spool.append(&events, next - 1).unwrap() {
                assert_eq!(l.reason, "overflow");
                *lost.entry(l.collector).or_default() += l.count;
            }
            // `a` keeps up, `b` is away.
            spool.ack("a", (next - 1) as u64).unwrap();
        }
        assert!(spool.bytes() <= limit, "{}", spool.bytes());
        assert!(!lost.contains_key("a"), "a received everything");
        let lost_b = lost["b"];
        assert!(lost_b > 0);
        let mut r = spool.reader(spool.cursor("b").unwrap());
        let got = read_all(&spool, &mut r);
        assert_eq!(
            got.len() as u64 + lost_b,
            6000,
            "every record is received or counted"
        );
        assert_eq!(*got.last().unwrap(), 6000);
        assert!(got.windows(2).all(|w| w[1] == w[0] + 1));
    }

    #[test]
    fn a_torn_tail_is_dropped_and_the_sequence_continues() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(dir.path(), 1 << 20, &collectors(), || 0).unwrap();
        spool
            .append(&(1..=10).map(ev).collect::<Vec<_>>(), 10)
            .unwrap();
        let path = spool.lock().segments.back().unwrap().path.clone();
        drop(spool);
        // Half of an 11th record, as a kill -9 in the middle of a write leaves it.
        let mut rec = Vec::new();
        encode_record(11, 11, &serde_json::to_vec(&ev(11)).unwrap(), &mut rec);
        let full = fs::metadata(&path).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&rec[..rec.len() / 2]).unwrap();
        drop(f);
        let (spool, rec2) = Spool::open(dir.path(), 1 << 20, &collectors(), || 0).unwrap();
        assert_eq!(rec2.torn_bytes, (rec.len() / 2) as u64);
        assert_eq!(fs::metadata(&path).unwrap().len(), full);
        assert_eq!(spool.next_seq(), 11);
        spool.append(&[ev(12)], 12).unwrap();
        let mut r = spool.reader(0);
        assert_eq!(read_all(&spool, &mut r), (1..=11).collect::<Vec<_>>());
    }

    #[test]
    fn damage_inside_a_segment_is_reported_as_a_loss() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(dir.path(), 1 << 20, &collectors(), || 0).unwrap();
        for i in 0..20 {
            spool
                .append(
                    &(i * 100 + 1..=i * 100 + 100).map(ev).collect::<Vec<_>>(),
                    0,
                )
                .unwrap();
        }
        let first = spool.lock().segments.front().unwrap().path.clone();
        let end = spool.lock().segments.front().unwrap().end_seq;
        drop(spool);
        // Flip a byte in the 3rd record of the oldest segment.
        let mut data = fs::read(&first).unwrap();
        let third = HEADER_LEN + 2 * decode_record(&data[HEADER_LEN..]).unwrap().unwrap().len;
        data[third + 30] ^= 0xff;
        fs::write(&first, &data).unwrap();
        let (spool, rec) = Spool::open(dir.path(), 1 << 20, &collectors(), || 0).unwrap();
        assert_eq!(rec.losses.len(), 2, "{rec:?}");
        assert_eq!(rec.losses[0].first_seq, 3);
        assert_eq!(rec.losses[0].last_seq, end - 1);
        assert_eq!(rec.losses[0].reason, "damaged");
        let mut r = spool.reader(0);
        let got = read_all(&spool, &mut r);
        assert_eq!(&got[..3], &[1, 2, end]);
        assert_eq!(*got.last().unwrap(), 2000);
    }

    #[test]
    fn a_damaged_header_sets_the_segment_aside() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(dir.path(), 1 << 20, &collectors(), || 0).unwrap();
        spool
            .append(&(1..=5).map(ev).collect::<Vec<_>>(), 5)
            .unwrap();
        let path = spool.lock().segments.back().unwrap().path.clone();
        drop(spool);
        let mut data = fs::read(&path).unwrap();
        data[0] = b'X';
        fs::write(&path, &data).unwrap();
        let (spool, rec) = Spool::open(dir.path(), 1 << 20, &collectors(), || 77).unwrap();
        assert_eq!(rec.set_aside.len(), 1);
        assert!(rec.fresh);
        assert_eq!(spool.last_event_id(), 77);
    }

    #[test]
    fn payloads_read_back_as_the_events_written() {
        let mut with_camera = ev(7);
        with_camera.event.camera = Some("lobby".into());
        with_camera
            .event
            .attributes
            .insert("mac".into(), "aa:bb\n\"x\"".into());
        for e in [ev(1), with_camera] {
            let payload = serde_json::to_vec(&e).unwrap();
            assert_eq!(decode_event(&payload).unwrap(), e);
            // What the flattened struct reads, the plain one reads too.
            assert_eq!(serde_json::from_slice::<Event>(&payload).unwrap(), e);
        }
        // A field a later version adds is ignored, as it was; a missing one is an error.
        let mut v = serde_json::to_value(ev(2)).unwrap();
        v["later"] = serde_json::json!(1);
        assert_eq!(
            decode_event(&serde_json::to_vec(&v).unwrap()).unwrap(),
            ev(2)
        );
        v.as_object_mut().unwrap().remove("kind");
        assert!(decode_event(&serde_json::to_vec(&v).unwrap()).is_err());
        assert!(decode_event(b"{").is_err());
    }

    #[test]
    fn the_record_parser_refuses_garbage() {
        assert_eq!(decode_record(&[]), Ok(None));
        assert_eq!(decode_record(&[1, 2, 3]), Err(Stop::Torn));
        assert_eq!(decode_record(&[0; 40]), Err(Stop::Corrupt), "zero length");
        let mut big = vec![0u8; 40];
        big[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            decode_record(&big),
            Err(Stop::Corrupt),
            "no 4 GiB allocation"
        );
        let mut rec = Vec::new();
        encode_record(5, 9, b"{}", &mut rec);
        let r = decode_record(&rec).unwrap().unwrap();
        assert_eq!((r.seq, r.event_id, r.payload), (5, 9, &b"{}"[..]));
        rec[RECORD_HEAD] = b'[';
        assert_eq!(decode_record(&rec), Err(Stop::Corrupt));
        assert_eq!(decode_record(&rec[..rec.len() - 1]), Err(Stop::Torn));
        assert!(decode_event(b"{}").is_err());
        assert!(SegmentHeader::decode(&[0; 36]).is_err());
        let h = SegmentHeader {
            first_seq: 3,
            prev_event_id: -1,
        };
        assert_eq!(SegmentHeader::decode(&h.encode()), Ok(h));
    }
}
