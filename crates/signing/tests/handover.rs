//! Handover: video another server (F) recorded and signed, imported into a camera's store on
//! the receiving server (P) with P's signed handover fact, verified across the window; and
//! every way the imported part can be damaged (docs/design/handover.md).

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use sha2::{Digest, Sha256};
use vigil_signing::handover::{self, Material};
use vigil_signing::keys::{cert_key_id, der_to_pem, fingerprint_bytes, pem_to_der};
use vigil_signing::record::{Body, EXCERPT_MAGIC, HandoverFact, RecordReader};
use vigil_signing::{
    FailureKind, IndexedGop, Report, TimeRange, verify_recording, verify_recording_with_index,
};

struct Site {
    ca_p: TestCa,
    p: Rec,
    f: Rec,
    /// Index of the first and last imported fragment in `f.frags`.
    span: (usize, usize),
}

/// F's excerpt: the magic, then F's records from the segment-open of `segment` on.
fn excerpt(f: &Rec, segment: u64) -> Vec<u8> {
    let bytes = fs::read(f.ledger()).unwrap();
    let mut r = RecordReader::new(std::io::Cursor::new(&bytes)).unwrap();
    let mut start = None;
    while let Some(rec) = r.next_record().unwrap() {
        if matches!(rec.body, Body::SegmentOpen { segment: s, .. } if s == segment) {
            start = Some(rec.offset as usize);
            break;
        }
    }
    let mut out = EXCERPT_MAGIC.to_vec();
    out.extend_from_slice(&bytes[start.unwrap()..]);
    out
}

fn record_seq_of(f: &Rec, segment: u64, gop: u32) -> u64 {
    let mut r = RecordReader::new(fs::File::open(f.ledger()).unwrap()).unwrap();
    while let Some(rec) = r.next_record().unwrap() {
        if let Body::Fragment(fr) = rec.body
            && fr.segment == segment
            && fr.gop == gop
        {
            return rec.seq;
        }
    }
    panic!("no record for segment {segment} GOP {gop}");
}

/// P records segments 0 and 1, F (another installation's CA) records its segments 0 and 1
/// after that, P imports F's GOPs `span` as its segment 2 (material, file, fact signed by P),
/// then records its own segment 3.
fn site_with(span: (usize, usize)) -> Site {
    site_then(span, |_| {})
}

/// [`site_with`], running `then` on P's ledger before it is closed.
fn site_then(span: (usize, usize), then: impl FnOnce(&mut Rec)) -> Site {
    let ca_p = TestCa::new("installation-p");
    let ca_f = TestCa::new("installation-f");
    let mut p = Rec::new(ca_p.identity("rec-1"));
    p.segment(0, 5, true);
    p.segment(1, 5, true);
    let mut f = Rec::new(ca_f.identity("failover-1"));
    f.t = p.t + 3_000_000;
    f.salt = 99;
    f.segment(0, 5, true);
    f.segment(1, 5, true);
    f.close();
    let fr = &f.frags[span.0..=span.1];
    let exc = excerpt(&f, fr[0].segment);
    let signer_der = {
        // F's certificate: the genesis record of F's ledger holds it.
        let mut r = RecordReader::new(fs::File::open(f.ledger()).unwrap()).unwrap();
        match r.next_record().unwrap().unwrap().body {
            Body::Genesis { cert_der, .. } => cert_der,
            _ => unreachable!(),
        }
    };
    let ca_f_der = pem_to_der(&ca_f.cert_pem, "ca").unwrap();
    let fact = HandoverFact {
        at_us: f.t + 60_000_000,
        segment: 2,
        from_us: fr[0].start_us,
        to_us: fr[fr.len() - 1].start_us + GOP_US,
        source_server: "failover-1".into(),
        source_key: cert_key_id(&signer_der).unwrap(),
        source_ca: fingerprint_bytes(&ca_f_der),
        source_camera: CAMERA.into(),
        first_record: record_seq_of(&f, fr[0].segment, fr[0].gop),
        last_record: record_seq_of(&f, fr[fr.len() - 1].segment, fr[fr.len() - 1].gop),
        excerpt_len: exc.len() as u64,
        excerpt_sha256: Sha256::digest(&exc).into(),
        recipient: "rec-1".into(),
        by: "cli:test".into(),
    };
    let m = Material {
        excerpt: &exc,
        ca_pem: &ca_f.cert_pem,
        signer_pem: &der_to_pem(&signer_der),
    };
    let planned = handover::check_material(&m, &fact).unwrap();
    assert_eq!(planned.fragments.len(), fr.len());
    // The imported file: F's init, then F's GOPs byte for byte.
    let init = fs::read(f.seg_path(0)).unwrap()[..planned.init_len as usize].to_vec();
    let mut file = init.clone();
    for x in fr {
        let seg = fs::read(f.seg_path(x.segment)).unwrap();
        file.extend_from_slice(&seg[x.offset as usize..(x.offset + x.len) as usize]);
    }
    assert_eq!(file.len() as u64, planned.file_len());
    fs::write(p.seg_path(2), &file).unwrap();
    let dir = handover::material_dir(&p.video(), 2);
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join(handover::EXCERPT_FILE), &exc).unwrap();
    fs::write(dir.join(handover::CA_FILE), &ca_f.cert_pem).unwrap();
    fs::write(dir.join(handover::SIGNER_FILE), der_to_pem(&signer_der)).unwrap();
    p.w().handover(fact).unwrap();
    // P records again after the window.
    p.t = f.t + 5_000_000;
    p.segment(3, 3, true);
    then(&mut p);
    p.close();
    Site { ca_p, p, f, span }
}

fn site() -> Site {
    site_with((0, 9))
}

fn verify(s: &Site) -> Report {
    s.p.verify(&s.ca_p)
}

fn material(s: &Site) -> PathBuf {
    handover::material_dir(&s.p.video(), 2)
}

fn flip(path: &Path, at: usize) {
    let mut b = fs::read(path).unwrap();
    b[at] ^= 0x40;
    fs::write(path, b).unwrap();
}

#[test]
fn verified_across_the_window_names_both_signers() {
    let s = site();
    let r = verify(&s);
    assert!(r.is_verified(), "{}", r.summary());
    assert_eq!(r.checked.segments, 4);
    assert_eq!(r.checked.fragments, 5 + 5 + 10 + 3);
    let who: Vec<_> = r
        .parts
        .iter()
        .map(|p| (p.signed_by.as_str(), p.handover_recorded_by.as_deref()))
        .collect();
    assert_eq!(
        who,
        [
            ("rec-1", None),
            ("failover-1", Some("rec-1")),
            ("rec-1", None)
        ]
    );
    assert_eq!(r.parts[1].from_us, s.f.frags[0].start_us);
    assert_eq!(r.parts[1].to_us, s.f.frags[9].start_us + GOP_US);
    let text = r.summary();
    assert!(
        text.starts_with("verified: ")
            && text.contains("signed by failover-1 (handover recorded by rec-1)"),
        "{text}"
    );
    assert!(r.events.iter().any(|e| matches!(e, vigil_signing::Event::Handover { source_server, segment: 2, .. } if source_server == "failover-1")));
    // Only the window: the imported part alone.
    let w = s.p.verify_range(
        &s.ca_p,
        TimeRange::new(s.f.frags[2].start_us, s.f.frags[3].start_us),
    );
    assert!(w.is_verified(), "{}", w.summary());
    assert_eq!(w.parts.len(), 1);
    assert_eq!(w.parts[0].signed_by, "failover-1");
}

#[test]
fn a_part_of_the_source_recording_imports_and_verifies() {
    // GOPs 3..=7 of F: from inside F's segment 0 to inside its segment 1.
    let s = site_with((3, 7));
    let r = verify(&s);
    assert!(r.is_verified(), "{}", r.summary());
    assert_eq!(r.parts[1].from_us, s.f.frags[3].start_us);
    assert_eq!(r.parts[1].to_us, s.f.frags[7].start_us + GOP_US);
    assert_eq!(s.span, (3, 7));
}

#[test]
fn the_index_of_imported_gops_is_checked_against_the_source_signatures() {
    let s = site();
    let mut rows: Vec<IndexedGop> = Vec::new();
    for (seg, frags) in [
        (0u64, s.p.frags_of(0)),
        (1, s.p.frags_of(1)),
        (3, s.p.frags_of(3)),
    ] {
        for f in frags {
            let bytes = fs::read(s.p.seg_path(seg)).unwrap();
            rows.push(IndexedGop {
                segment: seg,
                gop: f.gop,
                offset: f.offset,
                length: f.len,
                start_us: f.start_us,
                duration_us: GOP_US as u64,
                sha256: Sha256::digest(&bytes[f.offset as usize..(f.offset + f.len) as usize])
                    .into(),
            });
        }
    }
    let file = fs::read(s.p.seg_path(2)).unwrap();
    let mut offset = fs::read(s.f.seg_path(0)).unwrap().len() as u64
        - s.f.frags_of(0).iter().map(|f| f.len).sum::<u64>();
    let mut imported = Vec::new();
    for (k, f) in s.f.frags.iter().enumerate() {
        imported.push(IndexedGop {
            segment: 2,
            gop: handover::imported_gop_no(2, k) as u32,
            offset,
            length: f.len,
            start_us: f.start_us,
            duration_us: GOP_US as u64,
            sha256: Sha256::digest(&file[offset as usize..(offset + f.len) as usize]).into(),
        });
        offset += f.len;
    }
    let check = |rows: &[IndexedGop]| {
        verify_recording_with_index(
            CAMERA,
            &s.p.ledger(),
            &s.p.video(),
            TimeRange::all(),
            &s.ca_p.trust(),
            rows,
            &mut |_, _| {},
        )
        .unwrap()
    };
    let mut all = rows.clone();
    all.extend(imported.iter().cloned());
    let r = check(&all);
    assert!(r.is_verified(), "{}", r.summary());
    // An edited row of an imported GOP is found like an own one's.
    let mut edited = all.clone();
    let i = rows.len() + 4;
    edited[i].start_us += 1;
    let r = check(&edited);
    let f = r.failure.expect("edited index row");
    assert_eq!(f.kind, FailureKind::Modified, "{f}");
    assert_eq!(f.at_us, Some(s.f.frags[4].start_us));
    // A missing row of an imported GOP is missing.
    let mut gone = all.clone();
    gone.remove(i);
    let f = check(&gone).failure.expect("missing index row");
    assert_eq!(f.kind, FailureKind::Missing, "{f}");
}

#[test]
fn a_modified_imported_segment_is_reported_at_its_gop() {
    let s = site();
    let path = s.p.seg_path(2);
    let init_len = fs::read(s.f.seg_path(0)).unwrap().len() as u64
        - s.f.frags_of(0).iter().map(|f| f.len).sum::<u64>();
    // A byte inside the 4th imported GOP's mdat.
    let at = init_len + s.f.frags[..3].iter().map(|f| f.len).sum::<u64>() + 100;
    flip(&path, at as usize);
    let r = verify(&s);
    let f = r.failure.expect("tampering found");
    assert_eq!(f.kind, FailureKind::Modified, "{f}");
    assert_eq!(f.at_us, Some(s.f.frags[3].start_us), "{f}");
    assert_eq!(f.segment, Some(2));
    assert!(r.parts.is_empty());
}

#[test]
fn a_truncated_or_missing_import_is_reported() {
    let s = site();
    let path = s.p.seg_path(2);
    let len = fs::metadata(&path).unwrap().len();
    let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len - 10).unwrap();
    drop(f);
    let fail = verify(&s).failure.expect("truncation found");
    assert_eq!(fail.kind, FailureKind::Truncated, "{fail}");
    assert_eq!(fail.at_us, Some(s.f.frags[9].start_us));
    fs::remove_file(&path).unwrap();
    let fail = verify(&s).failure.expect("missing file found");
    assert_eq!(fail.kind, FailureKind::Missing, "{fail}");
    assert_eq!(fail.at_us, Some(s.f.frags[0].start_us));
}

#[test]
fn an_altered_excerpt_is_reported_at_the_start_of_the_import() {
    let s = site();
    let exc = material(&s).join(handover::EXCERPT_FILE);
    flip(&exc, 200);
    let f = verify(&s).failure.expect("altered excerpt");
    assert_eq!(f.kind, FailureKind::Modified, "{f}");
    assert_eq!(f.at_us, Some(s.f.frags[0].start_us));
    assert!(f.detail.contains("ledger excerpt"), "{f}");
    // Gone altogether: missing.
    fs::remove_file(&exc).unwrap();
    let f = verify(&s).failure.expect("missing excerpt");
    assert_eq!(f.kind, FailureKind::Missing, "{f}");
}

#[test]
fn another_certificate_or_ca_in_the_material_is_reported() {
    let s = site();
    let other = TestCa::new("installation-x");
    let signer = material(&s).join(handover::SIGNER_FILE);
    fs::write(&signer, other.identity("failover-1").cert_pem()).unwrap();
    let f = verify(&s).failure.expect("other certificate");
    assert_eq!(f.kind, FailureKind::Modified, "{f}");
    assert!(f.detail.contains("not the certificate of the key"), "{f}");

    let s = site();
    fs::write(material(&s).join(handover::CA_FILE), &other.cert_pem).unwrap();
    let f = verify(&s).failure.expect("other CA");
    assert_eq!(f.kind, FailureKind::Modified, "{f}");
    assert!(f.detail.contains("not the CA"), "{f}");
}

/// The material itself is checked with the named key only: an excerpt signed by another key
/// (even one the same CA issued) does not pass as the trusted server's.
#[test]
fn an_excerpt_signed_by_another_key_is_an_unknown_key() {
    let s = site();
    let dir = material(&s);
    let exc = fs::read(dir.join(handover::EXCERPT_FILE)).unwrap();
    let ca = fs::read_to_string(dir.join(handover::CA_FILE)).unwrap();
    let real = fs::read_to_string(dir.join(handover::SIGNER_FILE)).unwrap();
    let real_der = pem_to_der(&real, "signer").unwrap();
    let other_ca = TestCa::new("installation-f2");
    let other = other_ca.identity("failover-2");
    let fact = HandoverFact {
        at_us: 0,
        segment: 2,
        from_us: s.f.frags[0].start_us,
        to_us: s.f.frags[9].start_us + GOP_US,
        source_server: "failover-2".into(),
        source_key: other.key_id(),
        source_ca: fingerprint_bytes(&pem_to_der(&other_ca.cert_pem, "ca").unwrap()),
        source_camera: CAMERA.into(),
        first_record: record_seq_of(&s.f, 0, 1),
        last_record: record_seq_of(&s.f, 1, 10),
        excerpt_len: exc.len() as u64,
        excerpt_sha256: Sha256::digest(&exc).into(),
        recipient: "rec-1".into(),
        by: "test".into(),
    };
    let m = Material {
        excerpt: &exc,
        ca_pem: &other_ca.cert_pem,
        signer_pem: &other.cert_pem(),
    };
    let f = handover::check_material(&m, &fact).unwrap_err();
    assert_eq!(f.kind, FailureKind::UnknownKey, "{f}");
    // With the real key but another camera id: every signature fails.
    let fact = HandoverFact {
        source_key: cert_key_id(&real_der).unwrap(),
        source_ca: fingerprint_bytes(&pem_to_der(&ca, "ca").unwrap()),
        source_camera: "cam-other".into(),
        ..fact
    };
    let m = Material {
        excerpt: &exc,
        ca_pem: &ca,
        signer_pem: &real,
    };
    let f = handover::check_material(&m, &fact).unwrap_err();
    assert_eq!(f.kind, FailureKind::Modified, "{f}");
}

#[test]
fn an_altered_handover_fact_breaks_the_receiving_ledger() {
    let s = site();
    let bytes = fs::read(s.p.ledger()).unwrap();
    let mut r = RecordReader::new(std::io::Cursor::new(&bytes)).unwrap();
    let mut at = None;
    while let Some(rec) = r.next_record().unwrap() {
        if matches!(rec.body, Body::Handover(_)) {
            at = Some(rec);
        }
    }
    let rec = at.expect("handover record");
    // A byte of the source server's name.
    flip(&s.p.ledger(), rec.offset as usize + 4 + 41 + 32 + 2);
    let f = verify(&s).failure.expect("altered fact");
    assert_eq!(f.kind, FailureKind::Modified, "{f}");
    assert!(f.at_us.is_some_and(|t| t <= s.f.frags[0].start_us), "{f}");
}

#[test]
fn an_import_without_its_fact_is_inserted_video() {
    // What a crash before the fact leaves (and start-up removes): the file is not part of
    // the signed recording.
    let s = site();
    let stray = s.p.seg_path(4);
    let mut bytes = init_bytes(0);
    bytes.extend(gop_bytes(77, 5, 1000));
    fs::write(&stray, bytes).unwrap();
    let f = verify(&s).failure.expect("stray import");
    assert_eq!(f.kind, FailureKind::Inserted, "{f}");
    assert_eq!(f.segment, Some(4));
}

#[test]
fn recorded_handovers_lists_completed_imports() {
    let s = site();
    let done = handover::recorded_handovers(&s.p.ledger()).unwrap();
    assert_eq!(done.into_iter().collect::<Vec<_>>(), [2]);
    let r = verify_recording(
        CAMERA,
        &s.p.ledger(),
        &s.p.video(),
        TimeRange::all(),
        &s.ca_p.trust(),
        &mut |_, _| {},
    )
    .unwrap();
    assert!(r.is_verified());
}

#[test]
fn a_pruned_import_leaves_the_rest_verified() {
    // Retention deletes the imported segment like any other: prune record, then the file; its
    // material stays, so the handover record still checks.
    let s = site_then((0, 9), |p| {
        p.w().prune(2).unwrap();
        fs::remove_file(p.seg_path(2)).unwrap();
    });
    let r = verify(&s);
    assert!(r.is_verified(), "{}", r.summary());
    assert!(
        r.parts.iter().all(|p| p.signed_by == "rec-1"),
        "{:?}",
        r.parts
    );
    assert!(
        r.events
            .iter()
            .any(|e| matches!(e, vigil_signing::Event::Pruned { segment: 2, .. }))
    );
}
