//! Handover of signed video between recording servers (docs/design/handover.md): the material
//! a receiving server keeps beside a segment it imported (the source server's ledger excerpt,
//! its signing certificate and CA), and the check that turns that material plus the receiving
//! server's signed handover fact into the signed fragment records the imported segment file must
//! match. Used when importing (before anything is written into the camera's store) and by every
//! verification of the camera afterwards.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::chain::{ChainChecker, Mode};
use crate::keys::{CaCert, cert_key_id, fingerprint_bytes, pem_to_der};
use crate::record::{Body, FragmentRecord, HandoverFact, Hash, RecordReader};
use crate::report::{Failure, FailureKind};

/// Suffix of the directory beside an imported segment file that holds its handover material:
/// `video/<camera>/<seq:016x>.handover/`.
pub const MATERIAL_SUFFIX: &str = ".handover";
/// The source server's ledger excerpt, verbatim (magic `VGLEXC1\n`, docs/signing-format.md §4).
pub const EXCERPT_FILE: &str = "ledger-excerpt.vgl";
/// The CA certificate that issued the source server's signing certificate (PEM).
pub const CA_FILE: &str = "ca.pem";
/// The source server's signing certificate (PEM).
pub const SIGNER_FILE: &str = "signer.pem";
/// Largest excerpt accepted: a day of one camera's ledger is about 10 MB.
pub const MAX_EXCERPT_LEN: u64 = 1 << 30;

/// Where the handover material of imported segment `seq` of a camera lives.
pub fn material_dir(segment_dir: &Path, seq: u64) -> PathBuf {
    segment_dir.join(format!("{seq:016x}{MATERIAL_SUFFIX}"))
}

/// The GOP number the receiving server's index gives the `k`-th imported GOP of segment
/// `segment`: negative, so it never meets the numbers the camera's own recorder allocates
/// (unique while segment numbers stay below 2^39 and an import below 2^24 GOPs). Index rows are
/// compared with signed records by its low 32 bits. The `mfhd` numbers inside the fragments
/// stay the source server's: they are signed bytes.
pub fn imported_gop_no(segment: u64, k: usize) -> i64 {
    -((((segment as i64) & ((1 << 39) - 1)) << 24) | ((k as i64 + 1) & ((1 << 24) - 1)))
}

/// What the material says the imported segment file must hold, in this camera's numbering:
/// the source server's signed init, then its signed fragments back to back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub init_len: u64,
    pub init_sha256: Hash,
    /// The imported fragments, `segment` set to the receiving camera's segment and `offset`
    /// to where each lies in the imported file; `gop`, hash, times and length as signed.
    pub fragments: Vec<FragmentRecord>,
    /// Subject of the source server's signing certificate.
    pub signer_subject: String,
}

impl Imported {
    /// The imported file's length: the init, then every fragment.
    pub fn file_len(&self) -> u64 {
        self.fragments
            .last()
            .map_or(self.init_len, |f| f.offset + f.length)
    }
}

/// The parts of handover material, as bytes.
pub struct Material<'a> {
    pub excerpt: &'a [u8],
    pub ca_pem: &'a str,
    pub signer_pem: &'a str,
}

/// Reads the material kept in `dir`; a missing or unreadable part is a failure of the import
/// at the fact's start time.
pub fn read_material(dir: &Path, fact: &HandoverFact) -> Result<Imported, Failure> {
    let read = |f: &str| {
        let p = dir.join(f);
        std::fs::read(&p).map_err(|e| {
            fail(
                if e.kind() == std::io::ErrorKind::NotFound {
                    FailureKind::Missing
                } else {
                    FailureKind::Modified
                },
                fact,
                format!("{}: {e}", p.display()),
            )
        })
    };
    let excerpt = read(EXCERPT_FILE)?;
    let text = |b: Vec<u8>, f: &str| {
        String::from_utf8(b).map_err(|_| {
            fail(
                FailureKind::Modified,
                fact,
                format!("{f} of the handover material is not a PEM text file"),
            )
        })
    };
    let ca = text(read(CA_FILE)?, CA_FILE)?;
    let signer = text(read(SIGNER_FILE)?, SIGNER_FILE)?;
    check_material(
        &Material {
            excerpt: &excerpt,
            ca_pem: &ca,
            signer_pem: &signer,
        },
        fact,
    )
}

fn fail(kind: FailureKind, fact: &HandoverFact, detail: String) -> Failure {
    Failure {
        kind,
        at_us: Some(fact.from_us),
        segment: Some(fact.segment),
        detail: format!(
            "video imported from {} into segment {:016x}: {detail}",
            fact.source_server, fact.segment
        ),
    }
}

/// Checks handover material against the receiving server's fact: the excerpt is the one the
/// fact pins (length, SHA-256), the CA and signing certificate are the ones it names, the
/// excerpt's chain and every signature verify with that key alone (certificate valid at
/// signing time, issued by that CA, the source camera id bound into each signature), and every
/// fragment record from `first_record` to `last_record` is covered by a signature. Returns what
/// the imported segment file must hold.
pub fn check_material(m: &Material<'_>, fact: &HandoverFact) -> Result<Imported, Failure> {
    if m.excerpt.len() as u64 != fact.excerpt_len
        || <[u8; 32]>::from(Sha256::digest(m.excerpt)) != fact.excerpt_sha256
    {
        return Err(fail(
            FailureKind::Modified,
            fact,
            format!(
                "the ledger excerpt of {} differs from the one the handover fact pins ({} bytes, SHA-256 {}); it was changed after the import",
                fact.source_server,
                fact.excerpt_len,
                hex::encode(&fact.excerpt_sha256[..8])
            ),
        ));
    }
    let ca_der = pem_to_der(m.ca_pem, CA_FILE)
        .map_err(|e| fail(FailureKind::Modified, fact, e.to_string()))?;
    if fingerprint_bytes(&ca_der) != fact.source_ca {
        return Err(fail(
            FailureKind::Modified,
            fact,
            format!(
                "{CA_FILE} is not the CA the handover fact names ({})",
                hex::encode(&fact.source_ca[..8])
            ),
        ));
    }
    let signer_der = pem_to_der(m.signer_pem, SIGNER_FILE)
        .map_err(|e| fail(FailureKind::Modified, fact, e.to_string()))?;
    if cert_key_id(&signer_der).ok() != Some(fact.source_key) {
        return Err(fail(
            FailureKind::Modified,
            fact,
            format!(
                "{SIGNER_FILE} is not the certificate of the key the handover fact names ({})",
                hex::encode(&fact.source_key[..8])
            ),
        ));
    }
    let ca =
        CaCert::from_der(ca_der).map_err(|e| fail(FailureKind::Modified, fact, e.to_string()))?;
    let cas = [ca];
    let mut reader = RecordReader::new(Cursor::new(m.excerpt)).map_err(|e| {
        fail(
            FailureKind::Modified,
            fact,
            format!("the ledger excerpt does not read: {e}"),
        )
    })?;
    if !reader.is_excerpt {
        return Err(fail(
            FailureKind::Modified,
            fact,
            "the ledger excerpt is a whole ledger, not an excerpt".into(),
        ));
    }
    let mut chain = ChainChecker::new(Mode::Excerpt, &cas);
    chain.camera_id = Some(fact.source_camera.clone());
    chain.only_key = Some(fact.source_key);
    chain.add_cert(&signer_der);
    let mut opens: BTreeMap<u64, (u64, Hash)> = BTreeMap::new();
    let mut frags: Vec<(u64, FragmentRecord)> = Vec::new();
    while let Some(rec) = reader.next_record().map_err(|e| {
        fail(
            FailureKind::Modified,
            fact,
            format!("the ledger excerpt does not read: {e}"),
        )
    })? {
        if !chain.push(&rec) {
            break;
        }
        match rec.body {
            Body::SegmentOpen {
                segment,
                init_len,
                init_sha256,
                ..
            } => {
                opens.insert(segment, (init_len, init_sha256));
            }
            Body::Fragment(f) if (fact.first_record..=fact.last_record).contains(&rec.seq) => {
                frags.push((rec.seq, f));
            }
            _ => {}
        }
    }
    chain.stop(reader.stop());
    let outcome = chain.finish();
    if let Some(f) = &outcome.failure {
        let mut f = f.failure.clone();
        f.detail = format!(
            "video imported from {} into segment {:016x}: in {}'s ledger excerpt: {}",
            fact.source_server, fact.segment, fact.source_server, f.detail
        );
        f.at_us = f.at_us.or(Some(fact.from_us));
        f.segment = Some(fact.segment);
        return Err(f);
    }
    let (Some((first_seq, first)), Some((last_seq, _))) = (frags.first(), frags.last()) else {
        return Err(fail(
            FailureKind::Missing,
            fact,
            format!(
                "the ledger excerpt holds no fragment record between records {} and {}",
                fact.first_record, fact.last_record
            ),
        ));
    };
    if *first_seq != fact.first_record || *last_seq != fact.last_record {
        return Err(fail(
            FailureKind::Missing,
            fact,
            format!(
                "the handover fact names fragment records {}..={}, the excerpt has {first_seq}..={last_seq}",
                fact.first_record, fact.last_record
            ),
        ));
    }
    if let Some((s, f)) = frags.iter().find(|(s, _)| !outcome.is_signed(*s)) {
        return Err(Failure {
            kind: FailureKind::Unsigned,
            at_us: Some(f.start_us),
            segment: Some(fact.segment),
            detail: format!(
                "video imported from {}: fragment record {s} of its ledger excerpt is not covered by a signature",
                fact.source_server
            ),
        });
    }
    let Some(&(init_len, init_sha256)) = opens.get(&first.segment) else {
        return Err(fail(
            FailureKind::Missing,
            fact,
            format!(
                "the ledger excerpt lacks the segment-open record of {}'s segment {:016x}",
                fact.source_server, first.segment
            ),
        ));
    };
    // One init for the whole imported file: every source segment it draws on must have been
    // recorded with the same one (a codec change splits an import, as it splits a bundle).
    for (_, f) in &frags {
        if opens
            .get(&f.segment)
            .is_some_and(|(_, h)| *h != init_sha256)
        {
            return Err(fail(
                FailureKind::Modified,
                fact,
                format!(
                    "{}'s segments {:016x} and {:016x} were recorded with different inits (codec parameters); import them separately",
                    fact.source_server, first.segment, f.segment
                ),
            ));
        }
    }
    let from = first.start_us;
    let to = frags
        .iter()
        .map(|(_, f)| f.start_us.saturating_add(f.duration_us as i64))
        .max()
        .unwrap_or(from);
    if from != fact.from_us || to != fact.to_us {
        return Err(fail(
            FailureKind::Modified,
            fact,
            format!(
                "the handover fact's range {}..{} is not that of the signed fragments ({}..{})",
                crate::fmt_time(fact.from_us),
                crate::fmt_time(fact.to_us),
                crate::fmt_time(from),
                crate::fmt_time(to)
            ),
        ));
    }
    let mut offset = init_len;
    let fragments = frags
        .into_iter()
        .enumerate()
        .map(|(k, (_, mut f))| {
            f.segment = fact.segment;
            f.gop = imported_gop_no(fact.segment, k) as u32;
            f.offset = offset;
            // Saturating: lengths are signed by the source, but a file that long cannot exist,
            // so the alignment check reports it rather than an overflow.
            offset = offset.saturating_add(f.length);
            f
        })
        .collect();
    Ok(Imported {
        init_len,
        init_sha256,
        fragments,
        signer_subject: outcome.signers.first().cloned().unwrap_or_default(),
    })
}

/// Segments that a handover record of the camera's ledger (`ledger_path` and the retired
/// generations it continues) names: imports that completed. Start-up uses it to find imports
/// that were interrupted before their fact was written. Reads records without checking
/// signatures: the caller only decides whether its own, unfinished work may be removed.
pub fn recorded_handovers(ledger_path: &Path) -> std::io::Result<std::collections::BTreeSet<u64>> {
    let mut found = std::collections::BTreeSet::new();
    let mut files = vec![ledger_path.to_path_buf()];
    files.extend(
        crate::generation::retired_ledgers(ledger_path)?
            .into_iter()
            .map(|(_, p)| p),
    );
    for path in files {
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let Ok(mut reader) = RecordReader::new(std::io::BufReader::new(file)) else {
            continue;
        };
        while let Some(rec) = reader.next_record()? {
            if let Body::Handover(h) = rec.body {
                found.insert(h.segment);
            }
        }
    }
    Ok(found)
}
