//! Signed export bundles (E3): a directory holding the exported MP4, a manifest that maps each
//! fragment's byte range to its ledger record, the ledger excerpt whose signatures cover them,
//! the certificates, and the exporter's own signature over all of it.
//!
//! [`verify`] needs nothing but the bundle and the CA (certificate or its SHA-256 fingerprint):
//! no server, no database. The recording signatures and the export signature are checked and
//! reported separately.
//!
//! `video.mp4` (format v3) is a progressive MP4 that every player shows as exactly the clip,
//! from 0, with its wall-clock start as metadata: an `ftyp` and a `moov` with complete sample
//! tables ([`Presenter`]), then each recorded fragment byte for byte, its `moof` hidden from
//! players in a `skip` box. The recorded init travels beside it as `recorded-init.mp4`, whose
//! hash the ledger signed. The verifier rebuilds the `ftyp` and `moov` from the signed init and
//! fragments and compares bytes, so nothing in `video.mp4` escapes the recording check.
//! Bundles of format v2 (the recorded init with an edit list, [`presentation`], then the
//! fragments) and v1 (the recorded init itself) are still verified.

pub mod presentation;

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::chain::{ChainChecker, Mode};
use crate::keys::{
    CaCert, SigProblem, SigningIdentity, check_signing_cert, der_to_pem, pem_to_der,
};
use crate::mp4::{Framing, UnitStatus, scan_file, scan_file_as};
use crate::record::{Body, EXCERPT_MAGIC, FragmentRecord, Hash, LEDGER_MAGIC, RecordReader};
use crate::report::{Checked, Failure, FailureKind, Report, UnsignedSpan};

pub const VIDEO_FILE: &str = "video.mp4";
pub const MANIFEST_FILE: &str = "manifest.json";
pub const EXCERPT_FILE: &str = "ledger-excerpt.vgl";
pub const STATEMENT_FILE: &str = "export.json";
pub const SIGNATURE_FILE: &str = "export.sig";
pub const CA_FILE: &str = "certs/ca.pem";
pub const EXPORTER_CERT_FILE: &str = "certs/exporter.pem";
/// The first segment's init verbatim (format v2): what the ledger's segment-open record hashes.
pub const RECORDED_INIT_FILE: &str = "recorded-init.mp4";
/// Bundles written now: `video.mp4` is progressive over skip-wrapped signed fragments.
pub const MANIFEST_FORMAT: &str = "vigil-export-manifest-v3";
/// Earlier bundles: `video.mp4` starts with the presentation init; still verified.
pub const MANIFEST_FORMAT_V2: &str = "vigil-export-manifest-v2";
/// Earlier bundles: `video.mp4` starts with the recorded init; still verified.
pub const MANIFEST_FORMAT_V1: &str = "vigil-export-manifest-v1";
pub const STATEMENT_FORMAT: &str = "vigil-export-statement-v1";
/// Domain-separation prefix of the export signature's message (followed by export.json's bytes).
pub const EXPORT_SIGNATURE_CONTEXT: &[u8; 20] = b"VIGIL-EXPORT-SIG-V1\0";

/// What is being exported (the lead's exporter knows it).
#[derive(Debug, Clone)]
pub struct ExportRange {
    pub camera_id: String,
    pub from_us: Option<i64>,
    pub to_us: Option<i64>,
}

/// Who exported, from which server.
#[derive(Debug, Clone)]
pub struct ExporterIdentity {
    pub user: String,
    pub server: String,
}

/// How the verifier knows the installation CA.
#[derive(Debug, Clone)]
pub enum TrustAnchor {
    /// The CA certificate itself (PEM).
    CaCert(String),
    /// SHA-256 of the CA certificate's DER (hex, colons and a `sha256:` prefix allowed); the
    /// certificate is taken from the bundle.
    Fingerprint(String),
}

/// Errors that prevent writing or verifying a bundle at all.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the bundle is incomplete: {file} is missing from {dir}")]
    MissingFile { dir: PathBuf, file: String },
    /// A directory without a manifest: not something `vigil export` wrote.
    #[error("{} is not an evidence bundle (no {MANIFEST_FILE} in it)", .0.display())]
    NotABundle(PathBuf),
    #[error("{file} in the bundle is not valid: {detail}")]
    Invalid { file: String, detail: String },
    #[error(
        "the bundle's CA certificate has fingerprint {found}, not the trusted {expected}: this export was not made by the installation you trust"
    )]
    WrongFingerprint { expected: String, found: String },
    #[error("trust anchor: {0}")]
    Trust(String),
    #[error("bundle directory {0} exists and is not empty; choose a new directory")]
    NotEmpty(PathBuf),
    #[error("cannot export: {0}")]
    Export(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BundleError + '_ {
    move |source| BundleError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The manifest: where each piece of the MP4 is in the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub camera_id: String,
    pub video_size: u64,
    pub init: ManifestInit,
    pub fragments: Vec<ManifestFragment>,
    /// Certificates of the keys that signed the excerpt (paths inside the bundle).
    pub signing_certificates: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestInit {
    pub offset: u64,
    pub length: u64,
    pub sha256: String,
    /// Seq of the segment-open record that signed the recorded init.
    pub record_seq: u64,
    /// Format v2: the recorded init, kept in `recorded-init.mp4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded: Option<RecordedInit>,
    /// Format v2: the edit that turns the recorded init into `video.mp4`'s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<presentation::Timeline>,
}

/// Size and hash of `recorded-init.mp4`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedInit {
    pub length: u64,
    pub sha256: String,
}

impl Manifest {
    /// The format's version: 1, 2 or 3 (only known formats parse).
    pub fn version(&self) -> u8 {
        match self.format.as_str() {
            MANIFEST_FORMAT => 3,
            MANIFEST_FORMAT_V2 => 2,
            _ => 1,
        }
    }

    /// Whether the recorded init travels as `recorded-init.mp4` (formats v2 and v3).
    pub fn has_recorded_init(&self) -> bool {
        self.version() >= 2
    }
}

/// The `ftyp` and `moov` of a format-v3 `video.mp4`: a progressive MP4 whose sample tables
/// point into the signed fragments that follow it (each after an 8-byte `skip` header, see
/// [`SKIP_HEADER`]). The layout rules are the export's (crates/media `progressive`,
/// docs/signing-format.md); the writer and the verifier call the same implementation, and the
/// verifier compares its answer with the file byte for byte.
pub trait Presenter {
    /// `recorded_init`: the signed init; `fragments`: every fragment in file order; `start_us`:
    /// the wall-clock start of the first one.
    fn header(
        &self,
        recorded_init: &[u8],
        fragments: &[FragmentHead],
        start_us: i64,
    ) -> Result<Vec<u8>, String>;
}

/// The start of one signed fragment: its `moof` and the `mdat` header after it (all of the
/// fragment when it is shorter), and the fragment's whole length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentHead {
    pub head: Vec<u8>,
    pub len: u64,
}

/// Bytes of the `skip` box header before each fragment of a format-v3 `video.mp4`.
pub const SKIP_HEADER: u64 = 8;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFragment {
    pub offset: u64,
    pub length: u64,
    pub sha256: String,
    pub record_seq: u64,
    pub segment: u64,
    pub gop: u32,
    pub start_us: i64,
    pub duration_us: u64,
}

/// The exporter's signed statement (export.json).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportStatement {
    pub format: String,
    pub camera_id: String,
    pub exported_by: String,
    pub server: String,
    pub exported_at_us: i64,
    pub exported_at: String,
    pub range_from_us: Option<i64>,
    pub range_to_us: Option<i64>,
    pub files: Vec<FileDigest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDigest {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// A bundle-internal path: `name` or `certs/name`, ASCII letters, digits, `.-_` only.
fn safe_path(p: &str) -> bool {
    let name = p.strip_prefix("certs/").unwrap_or(p);
    !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 100
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b".-_".contains(&c))
}

fn parse_hash(s: &str, what: &str) -> Result<Hash, BundleError> {
    let mut h = [0u8; 32];
    hex::decode_to_slice(s, &mut h).map_err(|_| BundleError::Invalid {
        file: MANIFEST_FILE.into(),
        detail: format!("{what} is not 64 hex digits"),
    })?;
    Ok(h)
}

/// Parses and sanity-checks manifest.json (also the fuzz target's entry point).
pub fn parse_manifest(bytes: &[u8]) -> Result<Manifest, BundleError> {
    let invalid = |detail: String| BundleError::Invalid {
        file: MANIFEST_FILE.into(),
        detail,
    };
    let m: Manifest = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    let v2 = match m.format.as_str() {
        MANIFEST_FORMAT | MANIFEST_FORMAT_V2 => true,
        MANIFEST_FORMAT_V1 => false,
        other => {
            return Err(invalid(format!(
                "format is \"{other}\", expected \"{MANIFEST_FORMAT}\" (or an earlier \"{MANIFEST_FORMAT_V2}\" or \"{MANIFEST_FORMAT_V1}\")"
            )));
        }
    };
    // Format v3 puts a skip header before each fragment; earlier ones none.
    let gap = if m.version() == 3 { SKIP_HEADER } else { 0 };
    if v2 != m.init.recorded.is_some() || v2 != m.init.timeline.is_some() {
        return Err(invalid(format!(
            "{} has init.recorded and init.timeline {}",
            m.format,
            if v2 { "required" } else { "not allowed" }
        )));
    }
    parse_hash(&m.init.sha256, "init sha256")?;
    if let Some(r) = &m.init.recorded {
        parse_hash(&r.sha256, "recorded init sha256")?;
    }
    let mut end = m
        .init
        .offset
        .checked_add(m.init.length)
        .ok_or_else(|| invalid("init range overflows".into()))?;
    for (k, f) in m.fragments.iter().enumerate() {
        parse_hash(&f.sha256, &format!("fragment {k} sha256"))?;
        let expected = end
            .checked_add(gap)
            .ok_or_else(|| invalid(format!("fragment {k} range overflows")))?;
        if f.offset != expected {
            return Err(invalid(format!(
                "fragment {k} starts at byte {} but the previous piece ends at byte {end}{}",
                f.offset,
                if gap > 0 {
                    " (a skip header of 8 bytes goes between them)"
                } else {
                    ""
                }
            )));
        }
        end = f
            .offset
            .checked_add(f.length)
            .ok_or_else(|| invalid(format!("fragment {k} range overflows")))?;
    }
    if end != m.video_size {
        return Err(invalid(format!(
            "pieces end at byte {end} but video_size is {}",
            m.video_size
        )));
    }
    for c in &m.signing_certificates {
        if !c.starts_with("certs/") || !safe_path(c) {
            return Err(invalid(format!(
                "certificate path \"{c}\" is not a plain certs/ file name"
            )));
        }
    }
    Ok(m)
}

/// Parses export.json.
pub fn parse_statement(bytes: &[u8]) -> Result<ExportStatement, BundleError> {
    let invalid = |detail: String| BundleError::Invalid {
        file: STATEMENT_FILE.into(),
        detail,
    };
    let s: ExportStatement = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    if s.format != STATEMENT_FORMAT {
        return Err(invalid(format!(
            "format is \"{}\", expected \"{STATEMENT_FORMAT}\"",
            s.format
        )));
    }
    for f in &s.files {
        if !safe_path(&f.path) {
            return Err(invalid(format!(
                "file path \"{}\" is not a plain bundle file name",
                f.path
            )));
        }
    }
    Ok(s)
}

fn hash_file(path: &Path) -> Result<(u64, Hash), BundleError> {
    let mut f = File::open(path).map_err(io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; crate::mp4::READ_BUFFER];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(io(path))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((n, h.finalize().into()))
}

/// What [`write`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteSummary {
    pub fragments: u64,
    pub video_bytes: u64,
    pub excerpt_records: u64,
    /// Fragments that no signature covered yet (the export verifies as "unsigned" there).
    pub unsigned_fragments: u64,
}

/// Writes a bundle into `dir` (created; must be empty) from the recorded bytes of an export
/// (`mp4_path`: the first segment's init verbatim, then the selected fragments verbatim) and
/// the camera's ledger. `video.mp4` is `presenter`'s header, then each fragment behind a
/// `skip` header; the recorded init is kept as `recorded-init.mp4`.
pub fn write(
    dir: &Path,
    mp4_path: &Path,
    ledger_path: &Path,
    range: &ExportRange,
    exporter: &ExporterIdentity,
    signer: &SigningIdentity,
    presenter: &dyn Presenter,
) -> Result<WriteSummary, BundleError> {
    if dir.exists() && fs::read_dir(dir).map_err(io(dir))?.next().is_some() {
        return Err(BundleError::NotEmpty(dir.to_path_buf()));
    }
    let scanned = scan_file(mp4_path, &mut |_| {}).map_err(io(mp4_path))?;
    if scanned.fragments.is_empty() {
        return Err(BundleError::Export(format!(
            "{} holds no fragments",
            mp4_path.display()
        )));
    }
    if let Some(u) = std::iter::once(&scanned.init)
        .chain(&scanned.fragments)
        .find(|u| u.status != UnitStatus::Complete)
    {
        return Err(BundleError::Export(format!(
            "{} is not a complete fragmented MP4 (bad box at byte {})",
            mp4_path.display(),
            u.offset
        )));
    }
    let wanted: HashSet<Hash> = scanned.fragments.iter().map(|u| u.sha256).collect();
    // Video recorded before the server had to start a new ledger is in a retired generation.
    let first_hash = scanned.fragments[0].sha256;
    let last_hash = scanned.fragments[scanned.fragments.len() - 1].sha256;
    let holding = crate::generation::ledger_holding(ledger_path, &first_hash, &last_hash)
        .map_err(BundleError::Export)?;
    let ledger_path = holding.as_path();

    // One pass over the ledger: check its chain and collect what the export needs.
    let ca = CaCert::from_der(signer.ca_cert_der().to_vec())
        .map_err(|e| BundleError::Export(format!("the signer's CA certificate: {e}")))?;
    let cas = [ca];
    let lf = File::open(ledger_path).map_err(io(ledger_path))?;
    let mut reader = RecordReader::new(BufReader::with_capacity(1 << 20, lf))
        .map_err(|e| BundleError::Export(format!("{}: {e}", ledger_path.display())))?;
    let mut chain = ChainChecker::new(Mode::Full, &cas);
    let mut by_hash: HashMap<Hash, Vec<(u64, FragmentRecord)>> = HashMap::new();
    let mut opens: HashMap<u64, (u64, Hash)> = HashMap::new();
    let mut certs: HashMap<Hash, Vec<u8>> = HashMap::new();
    let mut sigs: Vec<(u64, Hash)> = Vec::new();
    let mut offsets: Vec<(u64, u64)> = Vec::new();
    while let Some(rec) = reader.next_record().map_err(io(ledger_path))? {
        if !chain.push(&rec) {
            break;
        }
        offsets.push((rec.offset, rec.encoded_len));
        match rec.body {
            Body::Fragment(f) if wanted.contains(&f.sha256) => {
                by_hash.entry(f.sha256).or_default().push((rec.seq, f));
            }
            Body::SegmentOpen {
                segment,
                init_sha256,
                ..
            } => {
                opens.insert(segment, (rec.seq, init_sha256));
            }
            Body::Genesis { cert_der, .. }
            | Body::KeyRotation {
                new_cert_der: cert_der,
                ..
            } => {
                if let Ok(id) = crate::keys::cert_key_id(&cert_der) {
                    certs.insert(id, cert_der);
                }
            }
            Body::Signature { key_id, .. } => sigs.push((rec.seq, key_id)),
            _ => {}
        }
    }
    chain.stop(reader.stop());
    let outcome = chain.finish();
    let camera = outcome.camera_id.clone().unwrap_or_default();
    if camera != range.camera_id {
        return Err(BundleError::Export(format!(
            "the ledger is camera \"{camera}\"'s, not \"{}\"'s",
            range.camera_id
        )));
    }

    // Map every MP4 fragment to its record, in recorded order.
    let mut mapped: Vec<(u64, FragmentRecord)> = Vec::with_capacity(scanned.fragments.len());
    let mut after = None::<u64>;
    for u in &scanned.fragments {
        let cand = by_hash.get(&u.sha256).and_then(|v| {
            v.iter()
                .find(|(s, f)| after.is_none_or(|a| *s > a) && f.length == u.len)
        });
        let Some(&(seq, f)) = cand else {
            return Err(BundleError::Export(format!(
                "the fragment at byte {} of {} is not in the ledger (or out of recorded order); export recorded fragments verbatim",
                u.offset,
                mp4_path.display()
            )));
        };
        if outcome.is_untrusted(seq) {
            return Err(BundleError::Export(format!(
                "the ledger does not verify at the exported data: {}",
                outcome
                    .failure
                    .as_ref()
                    .map(|f| f.failure.to_string())
                    .unwrap_or_default()
            )));
        }
        after = Some(seq);
        mapped.push((seq, f));
    }
    let first_seg = mapped[0].1.segment;
    let &(open_seq, init_hash) = opens.get(&first_seg).ok_or_else(|| {
        BundleError::Export(format!(
            "segment {first_seg:016x} has no segment-open record"
        ))
    })?;
    if init_hash != scanned.init.sha256 {
        return Err(BundleError::Export(format!(
            "the MP4's init is not segment {first_seg:016x}'s init; write the first segment's init verbatim"
        )));
    }
    let recorded_init = read_range(mp4_path, 0, scanned.init.len)?;
    let first_moof = read_moof(mp4_path, scanned.fragments[0].offset)?;
    let last = mapped.last().expect("non-empty").1;
    let timeline = presentation::timeline(
        &recorded_init,
        &first_moof,
        mapped[0].1.start_us,
        last.start_us.saturating_add(last.duration_us as i64),
    )
    .map_err(|e| BundleError::Export(e.to_string()))?;
    let heads = scanned
        .fragments
        .iter()
        .map(|u| fragment_head(mp4_path, u.offset, u.len))
        .collect::<Result<Vec<_>, _>>()?;
    let header = presenter
        .header(&recorded_init, &heads, mapped[0].1.start_us)
        .map_err(|e| BundleError::Export(format!("cannot present the clip: {e}")))?;
    let init_len = header.len() as u64;
    // Each fragment sits behind its skip header.
    let mut placed = Vec::with_capacity(scanned.fragments.len());
    let mut video_size = init_len;
    for u in &scanned.fragments {
        video_size += SKIP_HEADER;
        placed.push(video_size);
        video_size += u.len;
    }
    let last_frag = mapped.last().expect("non-empty").0;
    let end_seq = sigs
        .iter()
        .find(|(s, _)| *s > last_frag)
        .map_or(offsets.len() as u64 - 1, |(s, _)| *s);
    let unsigned_fragments = mapped
        .iter()
        .filter(|(s, _)| !outcome.is_signed(*s))
        .count() as u64;

    fs::create_dir_all(dir.join("certs")).map_err(io(dir))?;
    // Excerpt: the records from the first segment's open to the signature after the last fragment.
    let (start_off, _) = offsets[open_seq as usize];
    let (end_off, end_len) = offsets[end_seq as usize];
    let mut lf = File::open(ledger_path).map_err(io(ledger_path))?;
    lf.seek(SeekFrom::Start(start_off))
        .map_err(io(ledger_path))?;
    let mut excerpt = EXCERPT_MAGIC.to_vec();
    let n = (end_off + end_len - start_off) as usize;
    let at = excerpt.len();
    excerpt.resize(at + n, 0);
    lf.read_exact(&mut excerpt[at..]).map_err(io(ledger_path))?;
    debug_assert_eq!(LEDGER_MAGIC.len(), EXCERPT_MAGIC.len());
    write_file(&dir.join(EXCERPT_FILE), &excerpt)?;

    let mut cert_paths = Vec::new();
    let mut key_ids: Vec<Hash> = sigs
        .iter()
        .filter(|(s, _)| *s >= open_seq && *s <= end_seq)
        .map(|(_, k)| *k)
        .collect();
    key_ids.dedup();
    let mut seen = HashSet::new();
    for k in key_ids {
        if !seen.insert(k) {
            continue;
        }
        let der = certs.get(&k).ok_or_else(|| {
            BundleError::Export(format!(
                "no certificate in the ledger for signing key {}",
                hex::encode(k)
            ))
        })?;
        let p = format!("certs/key-{}.pem", hex::encode(&k[..8]));
        write_file(&dir.join(&p), der_to_pem(der).as_bytes())?;
        cert_paths.push(p);
    }
    write_file(&dir.join(CA_FILE), signer.ca_cert_pem().as_bytes())?;
    write_file(&dir.join(EXPORTER_CERT_FILE), signer.cert_pem().as_bytes())?;

    let video = dir.join(VIDEO_FILE);
    write_video(&video, &header, mp4_path, &scanned.fragments, &heads)?;
    write_file(&dir.join(RECORDED_INIT_FILE), &recorded_init)?;

    let manifest = Manifest {
        format: MANIFEST_FORMAT.into(),
        camera_id: camera.clone(),
        video_size,
        init: ManifestInit {
            offset: 0,
            length: init_len,
            sha256: hex::encode(crate::sha256(&header)),
            record_seq: open_seq,
            recorded: Some(RecordedInit {
                length: scanned.init.len,
                sha256: hex::encode(scanned.init.sha256),
            }),
            timeline: Some(timeline),
        },
        fragments: scanned
            .fragments
            .iter()
            .zip(&mapped)
            .zip(&placed)
            .map(|((u, (seq, f)), offset)| ManifestFragment {
                offset: *offset,
                length: u.len,
                sha256: hex::encode(u.sha256),
                record_seq: *seq,
                segment: f.segment,
                gop: f.gop,
                start_us: f.start_us,
                duration_us: f.duration_us,
            })
            .collect(),
        signing_certificates: cert_paths.clone(),
    };
    let manifest_json = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
    write_file(&dir.join(MANIFEST_FILE), &manifest_json)?;

    let mut files = Vec::new();
    for p in [
        VIDEO_FILE,
        RECORDED_INIT_FILE,
        MANIFEST_FILE,
        EXCERPT_FILE,
        CA_FILE,
        EXPORTER_CERT_FILE,
    ]
    .into_iter()
    .map(String::from)
    .chain(cert_paths)
    {
        let (size, h) = hash_file(&dir.join(&p))?;
        files.push(FileDigest {
            path: p,
            size,
            sha256: hex::encode(h),
        });
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    let statement = ExportStatement {
        format: STATEMENT_FORMAT.into(),
        camera_id: camera,
        exported_by: exporter.user.clone(),
        server: exporter.server.clone(),
        exported_at_us: now,
        exported_at: crate::fmt_time(now),
        range_from_us: range.from_us,
        range_to_us: range.to_us,
        files,
    };
    let statement_json = serde_json::to_vec_pretty(&statement).expect("statement serializes");
    write_file(&dir.join(STATEMENT_FILE), &statement_json)?;
    let mut msg = EXPORT_SIGNATURE_CONTEXT.to_vec();
    msg.extend_from_slice(&statement_json);
    let sig = signer
        .sign(&msg)
        .map_err(|e| BundleError::Export(e.to_string()))?;
    write_file(
        &dir.join(SIGNATURE_FILE),
        format!("{}\n", hex::encode(sig)).as_bytes(),
    )?;

    Ok(WriteSummary {
        fragments: mapped.len() as u64,
        video_bytes: video_size,
        excerpt_records: end_seq - open_seq + 1,
        unsigned_fragments,
    })
}

/// `len` bytes at `offset` of a file.
fn read_range(path: &Path, offset: u64, len: u64) -> Result<Vec<u8>, BundleError> {
    let mut f = File::open(path).map_err(io(path))?;
    f.seek(SeekFrom::Start(offset)).map_err(io(path))?;
    let mut buf = Vec::new();
    f.take(len).read_to_end(&mut buf).map_err(io(path))?;
    if buf.len() as u64 != len {
        return Err(BundleError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{len} bytes at {offset} are not all there"),
            ),
        });
    }
    Ok(buf)
}

/// The `moof` box at `offset` (a fragment's header: sample table and decode time), without
/// its media data. A moof larger than this is not something the recorder writes.
fn read_moof(path: &Path, offset: u64) -> Result<Vec<u8>, BundleError> {
    const MAX_MOOF: u64 = 16 << 20;
    let head = read_range(path, offset, 8)?;
    let size = u64::from(u32::from_be_bytes(head[..4].try_into().expect("4 bytes")));
    read_range(path, offset, size.clamp(8, MAX_MOOF))
}

/// The head of the fragment at `offset` (`len` bytes long) of a file: its `moof` and the
/// `mdat` header after it.
fn fragment_head(path: &Path, offset: u64, len: u64) -> Result<FragmentHead, BundleError> {
    let moof = read_moof(path, offset)?;
    let head = read_range(path, offset, (moof.len() as u64 + 16).min(len))?;
    Ok(FragmentHead { head, len })
}

/// The `skip` header that hides a fragment's `moof` (its first box) from players.
fn skip_header(head: &[u8]) -> Result<[u8; 8], BundleError> {
    let moof_len = head
        .get(..4)
        .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
        .filter(|n| *n >= 8 && head.get(4..8) == Some(&b"moof"[..]))
        .and_then(|n| n.checked_add(SKIP_HEADER as u32))
        .ok_or_else(|| {
            BundleError::Export("a fragment does not start with a moof box of 32-bit size".into())
        })?;
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&moof_len.to_be_bytes());
    out[4..].copy_from_slice(b"skip");
    Ok(out)
}

/// video.mp4 (format v3): the header, then every fragment of `mp4_path` behind its skip header.
fn write_video(
    video: &Path,
    header: &[u8],
    mp4_path: &Path,
    fragments: &[crate::mp4::Unit],
    heads: &[FragmentHead],
) -> Result<(), BundleError> {
    let mut out =
        std::io::BufWriter::with_capacity(1 << 20, File::create(video).map_err(io(video))?);
    out.write_all(header).map_err(io(video))?;
    let mut src = File::open(mp4_path).map_err(io(mp4_path))?;
    for (u, h) in fragments.iter().zip(heads) {
        out.write_all(&skip_header(&h.head)?).map_err(io(video))?;
        src.seek(SeekFrom::Start(u.offset)).map_err(io(mp4_path))?;
        let copied = std::io::copy(&mut (&mut src).take(u.len), &mut out).map_err(io(video))?;
        if copied != u.len {
            return Err(BundleError::Export(format!(
                "{} ended inside the fragment at byte {}",
                mp4_path.display(),
                u.offset
            )));
        }
    }
    let out = out.into_inner().map_err(|e| BundleError::Io {
        path: video.to_path_buf(),
        source: e.into_error(),
    })?;
    out.sync_all().map_err(io(video))
}

fn write_file(path: &Path, data: &[u8]) -> Result<(), BundleError> {
    let mut f = File::create(path).map_err(io(path))?;
    f.write_all(data).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

/// How far the ledger vouches for one fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragmentSigning {
    /// The ledger has no record of the fragment yet.
    NotInLedger,
    /// Recorded, but no signature follows its record yet.
    Unsigned,
    /// A signature record follows the fragment's record.
    Signed,
}

/// Follows a ledger that another process appends to, until a signature follows one fragment's
/// record. Each poll reads only what was appended since the previous one (from the fragment's
/// record once it was found), so waiting on a large ledger stays cheap. The chain itself is
/// not checked here: the bundle writer does that.
pub struct SignatureWatch {
    ledger: PathBuf,
    segment: u64,
    gop: u32,
    /// Byte offset of a record boundary to read from (0: the start, magic included).
    resume: u64,
    found: bool,
}

impl SignatureWatch {
    pub fn new(ledger: &Path, segment: u64, gop: u32) -> Self {
        Self {
            ledger: ledger.to_path_buf(),
            segment,
            gop,
            resume: 0,
            found: false,
        }
    }

    pub fn poll(&mut self) -> Result<FragmentSigning, BundleError> {
        let path = self.ledger.clone();
        let mut f = File::open(&path).map_err(io(&path))?;
        f.seek(SeekFrom::Start(self.resume)).map_err(io(&path))?;
        let base = self.resume;
        let input: Box<dyn Read> = if base == 0 {
            Box::new(BufReader::new(f))
        } else {
            Box::new(std::io::Cursor::new(LEDGER_MAGIC).chain(BufReader::new(f)))
        };
        let mut reader = RecordReader::new(input)
            .map_err(|e| BundleError::Export(format!("{}: {e}", path.display())))?;
        // Offsets of a resumed read count from the magic put in front of it.
        let absolute = |offset: u64| if base == 0 { offset } else { base + offset - 8 };
        while let Some(rec) = reader.next_record().map_err(io(&path))? {
            match rec.body {
                Body::Fragment(fr) if fr.segment == self.segment && fr.gop == self.gop => {
                    self.found = true;
                    self.resume = absolute(rec.offset);
                }
                Body::Signature { .. } if self.found => return Ok(FragmentSigning::Signed),
                _ => {}
            }
        }
        if self.found {
            return Ok(FragmentSigning::Unsigned);
        }
        self.resume = absolute(reader.good_len());
        Ok(FragmentSigning::NotInLedger)
    }
}

/// Result of checking the export signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportCheck {
    pub valid: bool,
    /// Why it is not valid.
    pub problem: Option<String>,
    pub exported_by: String,
    pub server: String,
    pub exported_at_us: i64,
    /// Subject of the exporter's certificate.
    pub signer: Option<String>,
}

/// Result of verifying a bundle: recording signatures and export signature, separately.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BundleReport {
    pub recording: Report,
    pub export: ExportCheck,
    /// Fingerprint of the CA everything was checked against.
    pub ca_fingerprint: String,
}

impl BundleReport {
    pub fn is_verified(&self) -> bool {
        self.recording.is_verified() && self.export.valid
    }
    /// Two lines for people: recording result, then export result.
    pub fn summary(&self) -> String {
        let export = if self.export.valid {
            format!(
                "export signature valid: exported by {} from {} at {}",
                self.export.exported_by,
                self.export.server,
                crate::fmt_time(self.export.exported_at_us)
            )
        } else {
            format!(
                "export signature INVALID: {}",
                self.export.problem.as_deref().unwrap_or("unknown problem")
            )
        };
        format!("recording: {}\n{export}", self.recording.summary())
    }
}

fn read_required(dir: &Path, file: &str) -> Result<Vec<u8>, BundleError> {
    let p = dir.join(file);
    match fs::read(&p) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(BundleError::MissingFile {
            dir: dir.to_path_buf(),
            file: file.to_string(),
        }),
        Err(e) => Err(BundleError::Io { path: p, source: e }),
    }
}

fn pem_file(dir: &Path, file: &str) -> Result<Vec<u8>, BundleError> {
    let b = read_required(dir, file)?;
    let s = String::from_utf8(b).map_err(|_| BundleError::Invalid {
        file: file.into(),
        detail: "not a PEM text file".into(),
    })?;
    pem_to_der(&s, file).map_err(|e| BundleError::Invalid {
        file: file.into(),
        detail: e.to_string(),
    })
}

/// Verifies a bundle offline. `presenter` rebuilds a format-v3 `video.mp4`'s header (the
/// implementation the exporter used). `progress(done, total)` reports video bytes hashed.
pub fn verify(
    dir: &Path,
    trust: &TrustAnchor,
    presenter: &dyn Presenter,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<BundleReport, BundleError> {
    if !dir.is_dir() {
        return Err(BundleError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a bundle directory"),
        });
    }
    if !dir.join(MANIFEST_FILE).exists() {
        return Err(BundleError::NotABundle(dir.to_path_buf()));
    }
    for f in [
        VIDEO_FILE,
        MANIFEST_FILE,
        EXCERPT_FILE,
        STATEMENT_FILE,
        SIGNATURE_FILE,
        CA_FILE,
        EXPORTER_CERT_FILE,
    ] {
        if !dir.join(f).exists() {
            return Err(BundleError::MissingFile {
                dir: dir.to_path_buf(),
                file: f.into(),
            });
        }
    }
    let ca = match trust {
        TrustAnchor::CaCert(pem) => {
            CaCert::from_pem(pem).map_err(|e| BundleError::Trust(e.to_string()))?
        }
        TrustAnchor::Fingerprint(fp) => {
            let Some(expected) = crate::keys::parse_fingerprint(fp) else {
                return Err(BundleError::Trust(format!(
                    "\"{fp}\" is not a SHA-256 fingerprint (64 hex digits)"
                )));
            };
            let der = pem_file(dir, CA_FILE)?;
            let found = crate::keys::fingerprint(&der);
            if found != expected {
                return Err(BundleError::WrongFingerprint { expected, found });
            }
            CaCert::from_der(der).map_err(|e| BundleError::Invalid {
                file: CA_FILE.into(),
                detail: e.to_string(),
            })?
        }
    };
    let ca_fingerprint = ca.fingerprint();
    let cas = [ca];

    let manifest = parse_manifest(&read_required(dir, MANIFEST_FILE)?)?;
    let statement_bytes = read_required(dir, STATEMENT_FILE)?;
    let statement = parse_statement(&statement_bytes)?;
    let export = check_export(
        dir,
        &statement,
        &statement_bytes,
        &cas,
        manifest.has_recorded_init(),
    )?;
    let recording = check_recording(dir, &manifest, &cas, presenter, progress)?;
    Ok(BundleReport {
        recording,
        export,
        ca_fingerprint,
    })
}

fn check_export(
    dir: &Path,
    st: &ExportStatement,
    st_bytes: &[u8],
    cas: &[CaCert],
    recorded_init: bool,
) -> Result<ExportCheck, BundleError> {
    let mut out = ExportCheck {
        valid: false,
        problem: None,
        exported_by: st.exported_by.clone(),
        server: st.server.clone(),
        exported_at_us: st.exported_at_us,
        signer: None,
    };
    let sig_text = read_required(dir, SIGNATURE_FILE)?;
    let mut sig = [0u8; 64];
    // Exactly the bytes the exporter writes: a file that differs in any byte (case, spacing)
    // is not the exporter's, even when it decodes to the same signature.
    let sig_ok = sig_text
        .strip_suffix(b"\n")
        .filter(|h| h.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')))
        .is_some_and(|h| hex::decode_to_slice(h, &mut sig).is_ok());
    if !sig_ok {
        out.problem = Some(format!(
            "{SIGNATURE_FILE} is not a hex Ed25519 signature (128 lowercase hex digits, then a newline)"
        ));
        return Ok(out);
    }
    let cert = pem_file(dir, EXPORTER_CERT_FILE)?;
    let key = match check_signing_cert(&cert, cas) {
        Ok(k) => k,
        Err(p) => {
            out.problem = Some(format!("exporter certificate: {p}"));
            return Ok(out);
        }
    };
    out.signer = Some(key.subject.clone());
    let mut msg = EXPORT_SIGNATURE_CONTEXT.to_vec();
    msg.extend_from_slice(st_bytes);
    match key.verify_at(&msg, &sig, st.exported_at_us) {
        Ok(()) => {}
        Err(SigProblem::Mismatch) => {
            out.problem = Some(format!(
                "the export signature does not match {STATEMENT_FILE} (the statement or {SIGNATURE_FILE} was changed)"
            ));
            return Ok(out);
        }
        Err(SigProblem::CertNotValid(d)) => {
            out.problem = Some(d);
            return Ok(out);
        }
    }
    for required in [
        VIDEO_FILE,
        MANIFEST_FILE,
        EXCERPT_FILE,
        CA_FILE,
        EXPORTER_CERT_FILE,
    ]
    .into_iter()
    .chain(recorded_init.then_some(RECORDED_INIT_FILE))
    {
        if !st.files.iter().any(|f| f.path == required) {
            out.problem = Some(format!("the export statement does not cover {required}"));
            return Ok(out);
        }
    }
    for f in &st.files {
        let p = dir.join(&f.path);
        if !p.exists() {
            out.problem = Some(format!("{} (signed by the exporter) is missing", f.path));
            return Ok(out);
        }
        let (size, h) = hash_file(&p)?;
        if size != f.size || hex::encode(h) != f.sha256 {
            out.problem = Some(format!(
                "{} was changed after export (its SHA-256 differs from the signed statement)",
                f.path
            ));
            return Ok(out);
        }
    }
    out.valid = true;
    Ok(out)
}

/// What is wrong with the init of `video.mp4` (and `recorded-init.mp4`), given the signed
/// init's length and hash; `None` when it is what the recording and the export's timeline
/// edit (v2) or progressive header (v3) make it.
fn init_problem(
    dir: &Path,
    m: &Manifest,
    scanned: &crate::mp4::Scanned,
    video_path: &Path,
    (signed_len, signed_hash): (u64, Hash),
    frags: &HashMap<u64, FragmentRecord>,
    presenter: &dyn Presenter,
) -> Result<Option<String>, BundleError> {
    let Some(recorded) = &m.init.recorded else {
        // Format v1: video.mp4 starts with the recorded init itself.
        let same = scanned.init.len == signed_len
            && scanned.init.sha256 == signed_hash
            && hex::encode(signed_hash) == m.init.sha256;
        return Ok(
            (!same).then(|| "the MP4's init (ftyp/moov) differs from the signed init".into())
        );
    };
    let bytes = read_required(dir, RECORDED_INIT_FILE)?;
    if bytes.len() as u64 != signed_len
        || crate::sha256(&bytes) != signed_hash
        || recorded.length != signed_len
        || recorded.sha256 != hex::encode(signed_hash)
    {
        return Ok(Some(format!(
            "{RECORDED_INIT_FILE} differs from the signed init"
        )));
    }
    // The timeline follows from signed data only: the first and last exported fragment records
    // and the first fragment's decode time. When those are not the signed ones, the fragment
    // check names the damage more precisely than a mismatching init would.
    let record = |f: Option<&ManifestFragment>| f.and_then(|f| frags.get(&f.record_seq));
    let (Some(first), Some(last), Some(unit)) = (
        record(m.fragments.first()),
        record(m.fragments.last()),
        scanned.fragments.first(),
    ) else {
        return Ok(None);
    };
    if unit.sha256 != first.sha256 || unit.status != UnitStatus::Complete {
        return Ok(None);
    }
    let moof = read_moof(video_path, unit.offset)?;
    let end_us = last.start_us.saturating_add(last.duration_us as i64);
    let expected = match presentation::timeline(&bytes, &moof, first.start_us, end_us) {
        Ok(t) => t,
        Err(e) => {
            return Ok(Some(format!(
                "the signed init and fragments give no timeline: {e}"
            )));
        }
    };
    if m.init.timeline != Some(expected) {
        return Ok(Some(
            "the manifest's timeline differs from the one the signed fragments give".into(),
        ));
    }
    if m.version() == 3 {
        return progressive_problem(m, scanned, video_path, &bytes, frags, presenter);
    }
    let init = match presentation::presentation_init(&bytes, &expected) {
        Ok(i) => i,
        Err(e) => {
            return Ok(Some(format!(
                "the signed init cannot carry the timeline: {e}"
            )));
        }
    };
    let hash = crate::sha256(&init);
    if scanned.init.len != init.len() as u64
        || scanned.init.sha256 != hash
        || m.init.sha256 != hex::encode(hash)
    {
        return Ok(Some(format!(
            "the init of {VIDEO_FILE} is not the signed init with the export's timeline edit"
        )));
    }
    Ok(None)
}

/// What is wrong with a format-v3 `video.mp4`'s header: `None` when it is the one the
/// presenter makes of the signed init and fragments. When a fragment is not the signed one,
/// the fragment check names that damage more precisely, so this says nothing.
fn progressive_problem(
    m: &Manifest,
    scanned: &crate::mp4::Scanned,
    video_path: &Path,
    recorded_init: &[u8],
    frags: &HashMap<u64, FragmentRecord>,
    presenter: &dyn Presenter,
) -> Result<Option<String>, BundleError> {
    if scanned.fragments.len() != m.fragments.len() {
        return Ok(None);
    }
    let mut heads = Vec::with_capacity(m.fragments.len());
    for (u, mf) in scanned.fragments.iter().zip(&m.fragments) {
        match frags.get(&mf.record_seq) {
            Some(r)
                if r.sha256 == u.sha256
                    && r.length == u.len
                    && u.offset == mf.offset
                    && u.status == UnitStatus::Complete => {}
            _ => return Ok(None),
        }
        heads.push(fragment_head(video_path, u.offset, u.len)?);
    }
    let Some(start_us) = m
        .fragments
        .first()
        .and_then(|f| frags.get(&f.record_seq))
        .map(|r| r.start_us)
    else {
        return Ok(None);
    };
    let header = match presenter.header(recorded_init, &heads, start_us) {
        Ok(h) => h,
        Err(e) => {
            return Ok(Some(format!(
                "the signed init and fragments cannot be presented: {e}"
            )));
        }
    };
    let hash = crate::sha256(&header);
    if scanned.init.len != header.len() as u64
        || scanned.init.sha256 != hash
        || m.init.sha256 != hex::encode(hash)
        || m.init.length != header.len() as u64
    {
        return Ok(Some(format!(
            "the header (ftyp/moov) of {VIDEO_FILE} is not the one the signed init and fragments give"
        )));
    }
    Ok(None)
}

fn check_recording(
    dir: &Path,
    m: &Manifest,
    cas: &[CaCert],
    presenter: &dyn Presenter,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Report, BundleError> {
    let excerpt_path = dir.join(EXCERPT_FILE);
    let f = File::open(&excerpt_path).map_err(io(&excerpt_path))?;
    let mut reader = RecordReader::new(BufReader::new(f)).map_err(|e| BundleError::Invalid {
        file: EXCERPT_FILE.into(),
        detail: e.to_string(),
    })?;
    if !reader.is_excerpt {
        return Err(BundleError::Invalid {
            file: EXCERPT_FILE.into(),
            detail: "this is a whole ledger, not an excerpt".into(),
        });
    }
    let mut chain = ChainChecker::new(Mode::Excerpt, cas);
    chain.camera_id = Some(m.camera_id.clone());
    for c in &m.signing_certificates {
        chain.add_cert(&pem_file(dir, c)?);
    }
    let mut frags: HashMap<u64, FragmentRecord> = HashMap::new();
    let mut frag_seqs: Vec<u64> = Vec::new();
    let mut opens: HashMap<u64, (u64, Hash, i64)> = HashMap::new();
    let mut by_hash: HashMap<Hash, u64> = HashMap::new();
    while let Some(rec) = reader.next_record().map_err(io(&excerpt_path))? {
        if !chain.push(&rec) {
            break;
        }
        match rec.body {
            Body::Fragment(f) => {
                frags.insert(rec.seq, f);
                frag_seqs.push(rec.seq);
                by_hash.insert(f.sha256, rec.seq);
            }
            Body::SegmentOpen {
                init_len,
                init_sha256,
                start_us,
                ..
            } => {
                opens.insert(rec.seq, (init_len, init_sha256, start_us));
            }
            _ => {}
        }
    }
    chain.stop(reader.stop());
    let outcome = chain.finish();

    let mut checked = Checked {
        ledger_records: outcome.records,
        signatures: outcome.signatures,
        ..Default::default()
    };
    let mut unsigned = Vec::new();
    let mut failure: Option<Failure> = None;
    let fail = |kind, at_us: Option<i64>, segment: Option<u64>, detail: String| {
        Some(Failure {
            kind,
            at_us,
            segment,
            detail,
        })
    };

    let video_path = dir.join(VIDEO_FILE);
    let total = fs::metadata(&video_path).map_err(io(&video_path))?.len();
    let mut done = 0u64;
    let framing = if m.version() == 3 {
        Framing::SkipWrapped
    } else {
        Framing::Fragmented
    };
    let scanned = scan_file_as(&video_path, framing, &mut |n| {
        done += n;
        progress(done, total);
    })
    .map_err(io(&video_path))?;

    // The init must be the first segment's signed init.
    match opens.get(&m.init.record_seq) {
        None => {
            failure = fail(
                FailureKind::Modified,
                None,
                None,
                format!(
                    "manifest init refers to record {}, which is not a segment-open record of the excerpt",
                    m.init.record_seq
                ),
            )
        }
        Some(&(len, h, start)) => {
            if outcome.is_untrusted(m.init.record_seq) {
            } else if let Some(problem) =
                init_problem(dir, m, &scanned, &video_path, (len, h), &frags, presenter)?
            {
                failure = fail(FailureKind::Modified, Some(start), None, problem);
            } else {
                checked.bytes += len;
                checked.segments = 1;
            }
        }
    }

    let mut prev_seq: Option<u64> = None;
    let n = scanned.fragments.len().max(m.fragments.len());
    for k in 0..n {
        if failure.is_some() {
            break;
        }
        let (u, mf) = (scanned.fragments.get(k), m.fragments.get(k));
        let Some(mf) = mf else {
            let u = u.expect("one of them exists");
            failure = fail(
                FailureKind::Inserted,
                checked.last_us,
                None,
                format!(
                    "{} bytes at byte {} of {VIDEO_FILE} are not in the manifest",
                    total - u.offset,
                    u.offset
                ),
            );
            break;
        };
        let Some(rec) = frags.get(&mf.record_seq) else {
            failure = fail(
                FailureKind::Modified,
                Some(mf.start_us),
                Some(mf.segment),
                format!(
                    "manifest fragment {k} refers to record {}, which is not a fragment record of the excerpt",
                    mf.record_seq
                ),
            );
            break;
        };
        if outcome.is_untrusted(mf.record_seq) {
            break;
        }
        if prev_seq.is_some_and(|p| mf.record_seq <= p) {
            failure = fail(
                FailureKind::Reordered,
                Some(rec.start_us),
                Some(rec.segment),
                format!("manifest fragment {k} is out of recorded order"),
            );
            break;
        }
        prev_seq = Some(mf.record_seq);
        if hex::encode(rec.sha256) != mf.sha256
            || rec.length != mf.length
            || rec.start_us != mf.start_us
            || rec.segment != mf.segment
            || rec.gop != mf.gop
            || rec.duration_us != mf.duration_us
        {
            failure = fail(
                FailureKind::Modified,
                Some(rec.start_us),
                Some(rec.segment),
                format!(
                    "manifest entry {k} differs from its signed ledger record {}",
                    mf.record_seq
                ),
            );
            break;
        }
        let Some(u) = u else {
            failure = fail(
                FailureKind::Truncated,
                Some(rec.start_us),
                Some(rec.segment),
                format!(
                    "{VIDEO_FILE} ends before GOP {} (manifest fragment {k})",
                    rec.gop
                ),
            );
            break;
        };
        if u.status == UnitStatus::Truncated {
            failure = fail(
                FailureKind::Truncated,
                Some(rec.start_us),
                Some(rec.segment),
                format!("{VIDEO_FILE} ends inside GOP {}", rec.gop),
            );
            break;
        }
        if u.offset != mf.offset
            || u.sha256 != rec.sha256
            || u.len != rec.length
            || u.status != UnitStatus::Complete
        {
            let detail = match by_hash.get(&u.sha256) {
                Some(other) if *other != mf.record_seq => format!(
                    "bytes at {} of {VIDEO_FILE} are GOP record {other}, recorded elsewhere",
                    u.offset
                ),
                _ => format!(
                    "GOP {} (bytes {}..{} of {VIDEO_FILE}) does not match its signed hash",
                    rec.gop,
                    u.offset,
                    u.offset + u.len
                ),
            };
            let kind = if by_hash.get(&u.sha256).is_some_and(|o| *o != mf.record_seq) {
                FailureKind::Reordered
            } else {
                FailureKind::Modified
            };
            failure = fail(kind, Some(rec.start_us), Some(rec.segment), detail);
            break;
        }
        if outcome.is_signed(mf.record_seq) {
            checked.add_fragment(rec.start_us, rec.duration_us, u.len);
        } else {
            unsigned.push(UnsignedSpan {
                segment: Some(rec.segment),
                from_us: Some(rec.start_us),
                to_us: Some(rec.start_us + rec.duration_us as i64),
                bytes: u.len,
                after_unclean_shutdown: false,
                detail: format!("GOP {} is not covered by a signature", rec.gop),
            });
        }
    }
    // Every fragment record between the first and last exported one must be in the export.
    if failure.is_none()
        && let (Some(first), Some(last)) = (m.fragments.first(), m.fragments.last())
    {
        let referenced: HashSet<u64> = m.fragments.iter().map(|f| f.record_seq).collect();
        if let Some(s) = frag_seqs
            .iter()
            .find(|s| **s > first.record_seq && **s < last.record_seq && !referenced.contains(s))
        {
            let r = &frags[s];
            failure = fail(
                FailureKind::Missing,
                Some(r.start_us),
                Some(r.segment),
                format!(
                    "GOP {} (ledger record {s}) was recorded within the exported range but is not in the export",
                    r.gop
                ),
            );
        }
    }
    if failure.is_none() {
        failure = outcome.failure.as_ref().map(|f| f.failure.clone());
    }
    if failure.is_none()
        && let Some(u) = unsigned.first()
    {
        failure = fail(
            FailureKind::Unsigned,
            u.from_us,
            u.segment,
            format!(
                "{}; the export was made before the recording was signed",
                u.detail
            ),
        );
    }
    let mut events: Vec<_> = outcome
        .events
        .iter()
        .filter(|(s, _)| outcome.is_signed(*s))
        .map(|(_, e)| e.clone())
        .collect();
    events.dedup();
    Ok(Report {
        camera_id: m.camera_id.clone(),
        failure,
        unsigned,
        events,
        checked,
        signers: outcome.signers,
        parts: Vec::new(),
    })
}
