//! Handover of signed video between recording servers (issue 15, docs/design/handover.md):
//! which other servers' signing keys this installation trusts (`keys/trusted-servers.json`,
//! the one place that decision is kept), and the import of a camera's footage that such a
//! server recorded and signed (during a failover) into the camera's store here, checked
//! completely first and ended by a signed handover fact in the camera's ledger. The command
//! line and, later, the cluster's failover transport call these use cases.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use vigil_access::AuditKind;
use vigil_media::evidence::{Evidence, EvidenceError};
use vigil_media::store::{ImportedGop, Store, StoreError, codec_of, now_us};
use vigil_signing::bundle::{self, BundleError, TrustAnchor};
use vigil_signing::handover::{self as material, Material};
use vigil_signing::keys::{cert_key_id, fingerprint_bytes, parse_fingerprint, pem_to_der};
use vigil_signing::{Failure, HandoverFact, SigningIdentity};

use crate::audit::Trail;
use crate::error::{Classified, ErrorKind};

/// The trust list, in the data directory's `keys/`.
pub const TRUST_FILE: &str = "trusted-servers.json";
const TRUST_FORMAT: &str = "vigil-trusted-servers-v1";
/// Longest server name, in bytes.
pub const MAX_NAME: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Ledger(#[from] EvidenceError),
    #[error("the bundle cannot be read: {0}")]
    Bundle(#[from] BundleError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the trust list {path} is not valid: {detail}; fix or remove it")]
    TrustFile { path: PathBuf, detail: String },
    #[error("a server name is 1 to {MAX_NAME} letters, digits, '.', '-' or '_' (got \"{0}\")")]
    BadName(String),
    #[error(
        "\"{0}\" is not a signing key fingerprint: give the 64 hex digits `vigil handover key` prints on that server"
    )]
    BadKey(String),
    #[error("server \"{0}\" is already trusted with another key; untrust it first")]
    NameTaken(String),
    #[error("no trusted server is named \"{0}\"")]
    NotTrusted(String),
    #[error(
        "the footage is signed with key {key}, which this installation does not trust; if that is the server that recorded it, trust it with `vigil handover trust NAME --key {key}`"
    )]
    UntrustedKey { key: String },
    #[error("the bundle does not verify, nothing was imported: {0}")]
    NotVerified(String),
    #[error("the bundle cannot be imported: {0}")]
    Unsupported(String),
    #[error(
        "this camera already has video from {} to {} inside the imported range; export the source server's footage of only the time this camera has none and import that",
        vigil_media::time::format_us(*.from_us),
        vigil_media::time::format_us(*.to_us)
    )]
    Overlap { from_us: i64, to_us: i64 },
    #[error("this camera already has video for the whole imported range; nothing to import")]
    NothingNew,
    #[error("the handover material does not check: {0}")]
    Material(Failure),
    #[error(
        "importing writes the camera's evidence ledger, which only the process holding the data directory writes; stop `vigil serve` or import through it"
    )]
    NotRecording,
    #[error("the import was not recorded in the audit log: {0}")]
    Audit(vigil_access::AccessError),
}

impl Classified for HandoverError {
    fn kind(&self) -> ErrorKind {
        match self {
            HandoverError::Store(StoreError::NoSuchCamera(_)) | HandoverError::NotTrusted(_) => {
                ErrorKind::NotFound
            }
            HandoverError::BadName(_)
            | HandoverError::BadKey(_)
            | HandoverError::Bundle(_)
            | HandoverError::NotVerified(_)
            | HandoverError::Unsupported(_)
            | HandoverError::Material(_) => ErrorKind::InvalidInput,
            HandoverError::UntrustedKey { .. } => ErrorKind::Forbidden,
            HandoverError::NameTaken(_)
            | HandoverError::Overlap { .. }
            | HandoverError::NothingNew => ErrorKind::Conflict,
            HandoverError::NotRecording => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            HandoverError::Store(StoreError::NoSuchCamera(_)) => "camera_not_found",
            HandoverError::NotTrusted(_) => "server_not_trusted",
            HandoverError::BadName(_) => "bad_name",
            HandoverError::BadKey(_) => "bad_key",
            HandoverError::Bundle(_) | HandoverError::Unsupported(_) => "bad_bundle",
            HandoverError::NotVerified(_) | HandoverError::Material(_) => "not_verified",
            HandoverError::UntrustedKey { .. } => "untrusted_key",
            HandoverError::NameTaken(_) => "name_taken",
            HandoverError::Overlap { .. } => "overlap",
            HandoverError::NothingNew => "nothing_new",
            HandoverError::NotRecording => "not_recording",
            _ => "internal",
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HandoverError + '_ {
    move |source| HandoverError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A recording server whose signing key this installation accepts footage from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedServer {
    pub name: String,
    /// SHA-256 of its raw Ed25519 signing public key, lowercase hex (the ledger's key id).
    pub key: String,
    pub added_us: i64,
    pub added_by: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustFile {
    format: String,
    servers: Vec<TrustedServer>,
}

fn trust_path(data_dir: &Path) -> PathBuf {
    data_dir.join("keys").join(TRUST_FILE)
}

/// The servers this installation trusts footage from (none when the list does not exist).
pub fn trusted_servers(data_dir: &Path) -> Result<Vec<TrustedServer>, HandoverError> {
    let path = trust_path(data_dir);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&path)(e)),
    };
    let bad = |detail: String| HandoverError::TrustFile {
        path: path.clone(),
        detail,
    };
    let file: TrustFile = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    if file.format != TRUST_FORMAT {
        return Err(bad(format!(
            "format is \"{}\", not \"{TRUST_FORMAT}\"",
            file.format
        )));
    }
    for s in &file.servers {
        check_name(&s.name).map_err(|e| bad(e.to_string()))?;
        if parse_fingerprint(&s.key).as_deref() != Some(s.key.as_str()) {
            return Err(bad(format!(
                "the key of \"{}\" is not 64 lowercase hex digits",
                s.name
            )));
        }
    }
    Ok(file.servers)
}

fn check_name(name: &str) -> Result<(), HandoverError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(HandoverError::BadName(
            name.chars().take(MAX_NAME).collect(),
        ))
    }
}

fn save_trusted(data_dir: &Path, servers: Vec<TrustedServer>) -> Result<(), HandoverError> {
    let path = trust_path(data_dir);
    if let Some(dir) = path.parent() {
        // keys/ holds the signing key too: owner only, as `vigil init` makes it.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
    }
    let tmp = path.with_extension("json.new");
    let text = serde_json::to_vec_pretty(&TrustFile {
        format: TRUST_FORMAT.into(),
        servers,
    })
    .map_err(|e| HandoverError::TrustFile {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(&text)
        .and_then(|_| f.sync_all())
        .map_err(io(&tmp))?;
    fs::rename(&tmp, &path).map_err(io(&path))?;
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    Ok(())
}

/// Trusts footage signed by `key` (a fingerprint as `vigil handover key` prints it) as
/// server `name`'s. The cluster layer will add enrolled servers' keys the same way.
pub fn trust_server(
    data_dir: &Path,
    name: &str,
    key: &str,
    by: &str,
    audit: Option<&Trail<'_>>,
) -> Result<TrustedServer, HandoverError> {
    check_name(name)?;
    let key = parse_fingerprint(key)
        .ok_or_else(|| HandoverError::BadKey(key.chars().take(80).collect()))?;
    let mut servers = trusted_servers(data_dir)?;
    if let Some(s) = servers.iter().find(|s| s.name == name) {
        if s.key == key {
            return Ok(s.clone());
        }
        return Err(HandoverError::NameTaken(name.into()));
    }
    let entry = TrustedServer {
        name: name.into(),
        key: key.clone(),
        added_us: now_us(),
        added_by: by.into(),
    };
    servers.push(entry.clone());
    save_trusted(data_dir, servers)?;
    if let Some(t) = audit {
        t.record(
            AuditKind::ConfigChanged,
            serde_json::json!({"action": "handover-trust", "server": name, "key": key}),
        )
        .map_err(HandoverError::Audit)?;
    }
    Ok(entry)
}

/// Stops trusting server `name` for new imports; footage imported earlier stays verified by
/// the handover facts that vouched for it.
pub fn untrust_server(
    data_dir: &Path,
    name: &str,
    audit: Option<&Trail<'_>>,
) -> Result<TrustedServer, HandoverError> {
    let mut servers = trusted_servers(data_dir)?;
    let i = servers
        .iter()
        .position(|s| s.name == name)
        .ok_or_else(|| HandoverError::NotTrusted(name.into()))?;
    let gone = servers.remove(i);
    save_trusted(data_dir, servers)?;
    if let Some(t) = audit {
        t.record(
            AuditKind::ConfigChanged,
            serde_json::json!({"action": "handover-untrust", "server": name, "key": gone.key}),
        )
        .map_err(HandoverError::Audit)?;
    }
    Ok(gone)
}

/// This server's signing key fingerprint, which another server's admin trusts.
pub fn own_key(data_dir: &Path) -> Result<String, HandoverError> {
    let dir = vigil_media::evidence::signing_dir(data_dir);
    let id = SigningIdentity::load(&dir)
        .map_err(|source| HandoverError::Ledger(EvidenceError::Key { dir, source }))?;
    Ok(hex::encode(id.key_id()))
}

/// What to import.
pub struct ImportRequest<'a> {
    /// Camera name or id (its main stream).
    pub camera: &'a str,
    /// An evidence bundle the source server exported (`vigil export --bundle`).
    pub bundle: &'a Path,
    /// Who imports: `cli:<user>`, `api:<user>`, `cluster`.
    pub by: &'a str,
    /// This server's name, written into the handover fact.
    pub recipient: &'a str,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportOutcome {
    pub camera: String,
    pub segment: u64,
    pub from_us: i64,
    pub to_us: i64,
    pub source_server: String,
    pub source_key: String,
    pub fragments: usize,
    pub bytes: u64,
    /// GOPs of the bundle left out because this camera already had video then (at its start,
    /// at its end).
    pub trimmed: (usize, usize),
}

fn read(dir: &Path, file: &str) -> Result<Vec<u8>, HandoverError> {
    let p = dir.join(file);
    fs::read(&p).map_err(io(&p))
}

fn text(dir: &Path, file: &str) -> Result<String, HandoverError> {
    String::from_utf8(read(dir, file)?)
        .map_err(|_| HandoverError::Unsupported(format!("{file} is not a text file")))
}

/// Imports a camera's footage that another, trusted server recorded and signed: checks the
/// whole bundle first (every signature, hash and the export signature), leaves out GOPs at
/// either end that this camera already has video for (refuses an overlap in the middle),
/// then writes the source server's excerpt and certificates beside a new segment, the segment
/// (its signed bytes only) and its index rows, and last the signed handover fact. A failure
/// before the fact removes what was written; a crash before it is cleaned up by [`settle`].
pub fn import(
    store: &Store,
    evidence: Option<&Evidence>,
    req: &ImportRequest<'_>,
    audit: Option<&Trail<'_>>,
) -> Result<ImportOutcome, HandoverError> {
    let evidence = evidence.ok_or(HandoverError::NotRecording)?;
    let cam = store.camera(req.camera)?;
    let data_dir = store.root().to_path_buf();
    let dir = req.bundle;
    if !dir.join(bundle::MANIFEST_FILE).is_file() {
        return Err(BundleError::NotABundle(dir.to_path_buf()).into());
    }
    // The bundle's own CA is only where the certificates lead; trust is the key on the list.
    let ca_pem = text(dir, bundle::CA_FILE)?;
    let report = bundle::verify(
        dir,
        &TrustAnchor::CaCert(ca_pem.clone()),
        &vigil_media::progressive::Evidence,
        &mut |_, _| {},
    )?;
    if !report.recording.is_verified() {
        return Err(HandoverError::NotVerified(report.recording.summary()));
    }
    if !report.export.valid {
        return Err(HandoverError::NotVerified(format!(
            "export signature: {}",
            report.export.problem.as_deref().unwrap_or("not valid")
        )));
    }
    let manifest = bundle::parse_manifest(&read(dir, bundle::MANIFEST_FILE)?)?;
    if !manifest.has_recorded_init() {
        return Err(HandoverError::Unsupported(
            "a format-v1 bundle does not carry the recorded init; export again with this version"
                .into(),
        ));
    }
    let [signer_file] = manifest.signing_certificates.as_slice() else {
        return Err(HandoverError::Unsupported(format!(
            "the footage is signed by {} keys (a key rotation inside the range); export and import the parts before and after the rotation separately",
            manifest.signing_certificates.len()
        )));
    };
    let signer_pem = text(dir, signer_file)?;
    let bad = |e: String| HandoverError::Unsupported(e);
    let signer_der = pem_to_der(&signer_pem, signer_file).map_err(|e| bad(e.to_string()))?;
    let key = cert_key_id(&signer_der).map_err(bad)?;
    let key_hex = hex::encode(key);
    let trusted = trusted_servers(&data_dir)?;
    let Some(source) = trusted.iter().find(|s| s.key == key_hex) else {
        return Err(HandoverError::UntrustedKey { key: key_hex });
    };
    let ca_der = pem_to_der(&ca_pem, bundle::CA_FILE).map_err(|e| bad(e.to_string()))?;
    let excerpt = read(dir, bundle::EXCERPT_FILE)?;
    let init = read(dir, bundle::RECORDED_INIT_FILE)?;

    // Leave out GOPs at either end that this camera has video for already.
    let frags = &manifest.fragments;
    let (Some(first), Some(last)) = (frags.first(), frags.last()) else {
        return Err(HandoverError::Unsupported(
            "the bundle holds no video".into(),
        ));
    };
    let end = |f: &bundle::ManifestFragment| f.start_us.saturating_add(f.duration_us as i64);
    let own = store.video_between(&cam.id, first.start_us, end(last))?;
    let overlaps = |f: &bundle::ManifestFragment| {
        own.iter()
            .any(|g| g.start_us < end(f) && g.start_us + g.duration_us.max(1) > f.start_us)
    };
    let k0 = frags.iter().take_while(|f| overlaps(f)).count();
    if k0 == frags.len() {
        return Err(HandoverError::NothingNew);
    }
    let k1 = frags.len() - frags.iter().rev().take_while(|f| overlaps(f)).count();
    let kept = &frags[k0..k1];
    if let Some(f) = kept.iter().find(|f| overlaps(f)) {
        let g = own
            .iter()
            .find(|g| g.start_us < end(f) && g.start_us + g.duration_us.max(1) > f.start_us)
            .expect("overlapping GOP");
        return Err(HandoverError::Overlap {
            from_us: g.start_us,
            to_us: g.start_us + g.duration_us,
        });
    }
    let mut fact = HandoverFact {
        at_us: now_us(),
        segment: 0,
        from_us: kept[0].start_us,
        to_us: kept.iter().map(end).max().unwrap_or(kept[0].start_us),
        source_server: source.name.clone(),
        source_key: key,
        source_ca: fingerprint_bytes(&ca_der),
        source_camera: manifest.camera_id.clone(),
        first_record: kept[0].record_seq,
        last_record: kept[kept.len() - 1].record_seq,
        excerpt_len: excerpt.len() as u64,
        excerpt_sha256: Sha256::digest(&excerpt).into(),
        recipient: req.recipient.into(),
        by: req.by.into(),
    };
    let m = Material {
        excerpt: &excerpt,
        ca_pem: &ca_pem,
        signer_pem: &signer_pem,
    };
    let planned = material::check_material(&m, &fact).map_err(HandoverError::Material)?;
    if planned.init_len != init.len() as u64
        || <[u8; 32]>::from(Sha256::digest(&init)) != planned.init_sha256
    {
        return Err(HandoverError::NotVerified(format!(
            "{} is not the init the source server signed for the imported GOPs",
            bundle::RECORDED_INIT_FILE
        )));
    }

    let seq = store.reserve_segment(&cam.id)?;
    fact.segment = seq as u64;
    let mdir = material::material_dir(&store.camera_dir(&cam.id), seq as u64);
    let written = write_material(&mdir, &m).and_then(|_| {
        let video_path = dir.join(bundle::VIDEO_FILE);
        let mut video = File::open(&video_path).map_err(io(&video_path))?;
        let gops: Vec<ImportedGop> = planned
            .fragments
            .iter()
            .map(|f| ImportedGop {
                start_us: f.start_us,
                duration_us: f.duration_us as i64,
                len: f.length,
                frames: i64::from(f.frames),
                sha256: f.sha256,
            })
            .collect();
        store
            .write_imported_segment(
                &cam.id,
                seq,
                &init,
                &codec_of(&init),
                &gops,
                &mut |k, buf| {
                    let f = &kept[k];
                    video.seek(SeekFrom::Start(f.offset))?;
                    buf.resize(f.length as usize, 0);
                    video.read_exact(buf)
                },
            )
            .map_err(HandoverError::from)?;
        evidence
            .handover(&cam.id, fact.clone())
            .map_err(HandoverError::from)
    });
    if let Err(e) = written {
        // Nothing without its fact stays: what a crash here would leave, settle removes.
        let _ = store.forget_imported_segment(&cam.id, seq);
        let _ = fs::remove_dir_all(&mdir);
        return Err(e);
    }
    let outcome = ImportOutcome {
        camera: cam.name.clone(),
        segment: seq as u64,
        from_us: fact.from_us,
        to_us: fact.to_us,
        source_server: source.name.clone(),
        source_key: key_hex,
        fragments: kept.len(),
        bytes: planned.file_len(),
        trimmed: (k0, frags.len() - k1),
    };
    tracing::info!(camera = %cam.name, segment = seq, source = %outcome.source_server, from_us = outcome.from_us, to_us = outcome.to_us, by = req.by, "imported another server's signed footage (handover)");
    if let Some(t) = audit {
        t.record(
            AuditKind::CameraChanged,
            serde_json::json!({
                "action": "handover-import",
                "camera": cam.name,
                "segment": outcome.segment,
                "from_us": outcome.from_us,
                "to_us": outcome.to_us,
                "source_server": outcome.source_server,
                "source_key": outcome.source_key,
            }),
        )
        .map_err(HandoverError::Audit)?;
    }
    Ok(outcome)
}

fn write_material(dir: &Path, m: &Material<'_>) -> Result<(), HandoverError> {
    fs::create_dir(dir).map_err(io(dir))?;
    for (name, bytes) in [
        (material::EXCERPT_FILE, m.excerpt),
        (material::CA_FILE, m.ca_pem.as_bytes()),
        (material::SIGNER_FILE, m.signer_pem.as_bytes()),
    ] {
        let p = dir.join(name);
        let mut f = OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o640)
            .open(&p)
            .map_err(io(&p))?;
        f.write_all(bytes)
            .and_then(|_| f.sync_all())
            .map_err(io(&p))?;
    }
    for d in [Some(dir), dir.parent()].into_iter().flatten() {
        File::open(d).and_then(|f| f.sync_all()).map_err(io(d))?;
    }
    Ok(())
}

/// At start-up, before recovery: removes every import whose handover fact never reached the
/// camera's ledger (its material directory, segment file and index rows), so an interrupted
/// import leaves nothing behind. Returns how many it removed.
pub fn settle(store: &Store) -> Result<usize, HandoverError> {
    let mut removed = 0;
    for cam in store.cameras()? {
        let dir = store.camera_dir(&cam.id);
        let entries = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&dir)(e)),
        };
        let pending: Vec<u64> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let hex = name.strip_suffix(material::MATERIAL_SUFFIX)?;
                (hex.len() == 16).then(|| u64::from_str_radix(hex, 16).ok())?
            })
            .collect();
        if pending.is_empty() {
            continue;
        }
        let ledger = vigil_media::evidence::ledger_path(store.root(), &cam.id);
        let done = material::recorded_handovers(&ledger).map_err(io(&ledger))?;
        for seq in pending.into_iter().filter(|s| !done.contains(s)) {
            tracing::warn!(camera = %cam.name, segment = seq, "removing an import that was interrupted before its handover fact was recorded");
            store.forget_imported_segment(&cam.id, seq as i64)?;
            let m = material::material_dir(&dir, seq);
            fs::remove_dir_all(&m).map_err(io(&m))?;
            removed += 1;
        }
    }
    Ok(removed)
}
