//! Export bundles: write, verify offline on a copy, and every kind of damage.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use vigil_signing::bundle::{self, BundleError, ExportRange, ExporterIdentity, TrustAnchor};
use vigil_signing::record::{Body, RecordReader};
use vigil_signing::{FailureKind, keys};

/// Writes an MP4 the way the lead's exporter does: the first segment's init, then fragments.
fn export_mp4(r: &Rec, frags: &[Frag], out: &Path) {
    let first = fs::read(r.seg_path(frags[0].segment)).unwrap();
    let init_len = r.frags_of(frags[0].segment)[0].offset as usize;
    let mut v = first[..init_len].to_vec();
    for f in frags {
        let seg = fs::read(r.seg_path(f.segment)).unwrap();
        v.extend_from_slice(&seg[f.offset as usize..(f.offset + f.len) as usize]);
    }
    fs::write(out, v).unwrap();
}

struct Fixture {
    ca: TestCa,
    rec: Rec,
    tmp: tempfile::TempDir,
    dir: PathBuf,
    frags: Vec<Frag>,
}

/// Exports GOPs 3..=12 (spanning segments 0, 1 and 2) of the standard recording.
fn fixture() -> Fixture {
    let ca = TestCa::new("ca-a");
    let rec = standard(&ca);
    let tmp = tempfile::tempdir().unwrap();
    let frags: Vec<Frag> = rec.frags[2..12].to_vec();
    let mp4 = tmp.path().join("export.mp4");
    export_mp4(&rec, &frags, &mp4);
    let dir = tmp.path().join("bundle");
    let signer = ca.identity("rec-1");
    let summary = bundle::write(
        &dir,
        &mp4,
        &rec.ledger(),
        &ExportRange {
            camera_id: CAMERA.into(),
            from_us: Some(frags[0].start_us),
            to_us: None,
        },
        &ExporterIdentity {
            user: "alice".into(),
            server: "rec-1.example".into(),
        },
        &signer,
        &AsRecorded,
    )
    .unwrap();
    assert_eq!(summary.fragments, 10);
    assert_eq!(summary.unsigned_fragments, 0);
    Fixture {
        ca,
        rec,
        tmp,
        dir,
        frags,
    }
}

fn ca_trust(f: &Fixture) -> TrustAnchor {
    TrustAnchor::CaCert(f.ca.cert_pem.clone())
}

fn verify(dir: &Path, t: &TrustAnchor) -> bundle::BundleReport {
    bundle::verify(dir, t, &AsRecorded, &mut |_, _| {}).unwrap()
}

#[test]
fn bundle_verifies_offline_on_a_copy_by_cert_and_by_fingerprint() {
    let f = fixture();
    let copy = f.tmp.path().join("elsewhere");
    copy_dir(&f.dir, &copy);
    // The recording and its server are gone; only the bundle and the CA remain.
    fs::remove_dir_all(&f.rec.data).unwrap();
    let mut last = (0, 0);
    let rep = bundle::verify(&copy, &ca_trust(&f), &AsRecorded, &mut |d, t| last = (d, t)).unwrap();
    assert!(rep.is_verified(), "{}", rep.summary());
    assert_eq!(rep.recording.checked.fragments, 10);
    assert_eq!(rep.recording.checked.first_us, Some(f.frags[0].start_us));
    assert_eq!(rep.export.exported_by, "alice");
    assert_eq!(rep.export.server, "rec-1.example");
    let size = fs::metadata(copy.join("video.mp4")).unwrap().len();
    assert_eq!(last, (size, size));

    let fp = keys::fingerprint(&keys::pem_to_der(&f.ca.cert_pem, "ca").unwrap());
    let colon: String = fp
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":");
    for anchor in [fp.clone(), format!("sha256:{fp}"), colon] {
        let rep = verify(&copy, &TrustAnchor::Fingerprint(anchor));
        assert!(rep.is_verified(), "{}", rep.summary());
    }
    assert!(
        rep.summary()
            .contains("export signature valid: exported by alice")
    );
}

#[test]
fn one_byte_changed_in_mp4_fails_both_checks() {
    let f = fixture();
    let p = f.dir.join("video.mp4");
    let mut b = fs::read(&p).unwrap();
    let at = b.len() - 500;
    b[at] ^= 0x40;
    fs::write(&p, b).unwrap();
    let rep = verify(&f.dir, &ca_trust(&f));
    let fail = rep.recording.failure.as_ref().unwrap();
    assert_eq!(fail.kind, FailureKind::Modified, "{fail}");
    assert_eq!(fail.at_us, Some(f.frags[9].start_us));
    assert!(!rep.export.valid);
    assert!(
        rep.export
            .problem
            .as_ref()
            .unwrap()
            .contains("video.mp4 was changed after export")
    );
}

#[test]
fn one_byte_changed_in_manifest_fails() {
    let f = fixture();
    let p = f.dir.join("manifest.json");
    let text = fs::read_to_string(&p).unwrap();
    // Change one hex digit of the third fragment's hash (after the two of the init).
    let key = "\"sha256\": \"";
    let idx = text.match_indices(key).nth(4).unwrap().0 + key.len();
    let mut b = text.into_bytes();
    b[idx] = if b[idx] == b'0' { b'1' } else { b'0' };
    fs::write(&p, b).unwrap();
    let rep = verify(&f.dir, &ca_trust(&f));
    let fail = rep.recording.failure.as_ref().unwrap();
    assert_eq!(fail.kind, FailureKind::Modified, "{fail}");
    assert!(fail.detail.contains("manifest entry 2 differs"), "{fail}");
    assert!(
        rep.export
            .problem
            .as_ref()
            .unwrap()
            .contains("manifest.json was changed")
    );
}

#[test]
fn one_byte_changed_in_recording_signature_fails() {
    let f = fixture();
    let p = f.dir.join("ledger-excerpt.vgl");
    let bytes = fs::read(&p).unwrap();
    let mut r = RecordReader::new(&bytes[..]).unwrap();
    let mut sig_at = None;
    while let Some(rec) = r.next_record().unwrap() {
        if matches!(rec.body, Body::Signature { .. }) {
            // The last 32+64 bytes of a signature record are: signature, then record hash.
            sig_at = Some((rec.offset + rec.encoded_len - 32 - 10) as usize);
        }
    }
    let mut b = bytes.clone();
    b[sig_at.unwrap()] ^= 1;
    fs::write(&p, b).unwrap();
    let rep = verify(&f.dir, &ca_trust(&f));
    let fail = rep.recording.failure.as_ref().unwrap();
    assert_eq!(fail.kind, FailureKind::Modified, "{fail}");
    assert!(fail.detail.contains("ledger damaged"), "{fail}");
    assert!(
        rep.export
            .problem
            .as_ref()
            .unwrap()
            .contains("ledger-excerpt.vgl was changed")
    );
}

#[test]
fn one_byte_changed_in_export_signature_fails_export_only() {
    let f = fixture();
    let p = f.dir.join("export.sig");
    let mut b = fs::read(&p).unwrap();
    b[5] = if b[5] == b'a' { b'b' } else { b'a' };
    fs::write(&p, b).unwrap();
    let rep = verify(&f.dir, &ca_trust(&f));
    assert!(rep.recording.is_verified(), "{}", rep.summary());
    assert!(!rep.export.valid);
    assert!(
        rep.export
            .problem
            .as_ref()
            .unwrap()
            .contains("export signature does not match")
    );
    assert!(!rep.is_verified());
}

#[test]
fn edited_statement_fails_export_signature() {
    let f = fixture();
    let p = f.dir.join("export.json");
    let text = fs::read_to_string(&p).unwrap().replace("alice", "mallo");
    fs::write(&p, text).unwrap();
    let rep = verify(&f.dir, &ca_trust(&f));
    assert!(!rep.export.valid);
    assert!(rep.recording.is_verified());
}

#[test]
fn gop_removed_from_mp4_and_manifest_is_missing() {
    let f = fixture();
    // A consistent edit: drop the 5th GOP (and its skip header) from video and manifest and
    // fix the offsets.
    let removed = f.frags[4].clone();
    let mpath = f.dir.join("manifest.json");
    let mut m = bundle::parse_manifest(&fs::read(&mpath).unwrap()).unwrap();
    let gone = m.fragments.remove(4);
    let vpath = f.dir.join("video.mp4");
    let mut video = fs::read(&vpath).unwrap();
    let cut = gone.length + bundle::SKIP_HEADER;
    video.drain((gone.offset - bundle::SKIP_HEADER) as usize..(gone.offset + gone.length) as usize);
    fs::write(&vpath, video).unwrap();
    for x in &mut m.fragments[4..] {
        x.offset -= cut;
    }
    m.video_size -= cut;
    fs::write(&mpath, serde_json::to_vec(&m).unwrap()).unwrap();
    let rep = verify(&f.dir, &ca_trust(&f));
    let fail = rep.recording.failure.as_ref().unwrap();
    assert_eq!(fail.kind, FailureKind::Missing, "{fail}");
    assert_eq!(fail.at_us, Some(removed.start_us));
    assert!(!rep.export.valid);
}

#[test]
fn truncated_mp4_is_truncated() {
    let f = fixture();
    let p = f.dir.join("video.mp4");
    let b = fs::read(&p).unwrap();
    fs::write(&p, &b[..b.len() - 1000]).unwrap();
    let rep = verify(&f.dir, &ca_trust(&f));
    let fail = rep.recording.failure.as_ref().unwrap();
    assert_eq!(fail.kind, FailureKind::Truncated, "{fail}");
    assert_eq!(fail.at_us, Some(f.frags[9].start_us));
}

#[test]
fn missing_or_garbage_files_give_clear_errors() {
    let f = fixture();
    let t = ca_trust(&f);
    let copy = f.tmp.path().join("c1");
    copy_dir(&f.dir, &copy);
    fs::remove_file(copy.join("ledger-excerpt.vgl")).unwrap();
    let e = bundle::verify(&copy, &t, &AsRecorded, &mut |_, _| {}).unwrap_err();
    assert!(matches!(e, BundleError::MissingFile { .. }));
    assert!(
        e.to_string()
            .contains("incomplete: ledger-excerpt.vgl is missing"),
        "{e}"
    );
    // A directory without a manifest is not called an incomplete bundle.
    let other = f.tmp.path().join("not-a-bundle");
    fs::create_dir_all(&other).unwrap();
    fs::write(other.join("video.mp4"), b"x").unwrap();
    let e = bundle::verify(&other, &t, &AsRecorded, &mut |_, _| {}).unwrap_err();
    assert!(matches!(e, BundleError::NotABundle(_)), "{e}");
    assert_eq!(
        e.to_string(),
        format!(
            "{} is not an evidence bundle (no manifest.json in it)",
            other.display()
        )
    );

    let copy = f.tmp.path().join("c2");
    copy_dir(&f.dir, &copy);
    let m = fs::read(copy.join("manifest.json")).unwrap();
    fs::write(copy.join("manifest.json"), &m[..m.len() / 2]).unwrap();
    let e = bundle::verify(&copy, &t, &AsRecorded, &mut |_, _| {}).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("manifest.json in the bundle is not valid"),
        "{e}"
    );

    let copy = f.tmp.path().join("c3");
    copy_dir(&f.dir, &copy);
    fs::write(copy.join("ledger-excerpt.vgl"), b"garbage garbage").unwrap();
    let e = bundle::verify(&copy, &t, &AsRecorded, &mut |_, _| {}).unwrap_err();
    assert!(
        e.to_string()
            .contains("ledger-excerpt.vgl in the bundle is not valid"),
        "{e}"
    );

    let copy = f.tmp.path().join("c4");
    copy_dir(&f.dir, &copy);
    fs::write(
        copy.join("certs/ca.pem"),
        b"-----BEGIN CERTIFICATE-----\nAAAA\n",
    )
    .unwrap();
    let fp = "00".repeat(32);
    let e = bundle::verify(
        &copy,
        &TrustAnchor::Fingerprint(fp),
        &AsRecorded,
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("certs/ca.pem in the bundle is not valid"),
        "{e}"
    );

    let e = bundle::verify(
        &f.tmp.path().join("nothing"),
        &t,
        &AsRecorded,
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("not a bundle directory"), "{e}");

    let copy = f.tmp.path().join("c5");
    copy_dir(&f.dir, &copy);
    fs::write(copy.join("export.sig"), b"xyz").unwrap();
    let rep = verify(&copy, &t);
    assert!(
        rep.export
            .problem
            .unwrap()
            .contains("not a hex Ed25519 signature")
    );
}

#[test]
fn wrong_fingerprint_or_other_ca_is_refused() {
    let f = fixture();
    let other = TestCa::new("ca-b");
    let other_fp = keys::fingerprint(&keys::pem_to_der(&other.cert_pem, "ca").unwrap());
    let e = bundle::verify(
        &f.dir,
        &TrustAnchor::Fingerprint(other_fp.clone()),
        &AsRecorded,
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(matches!(e, BundleError::WrongFingerprint { .. }));
    assert!(e.to_string().contains(&other_fp), "{e}");
    let e = bundle::verify(
        &f.dir,
        &TrustAnchor::Fingerprint("abc".into()),
        &AsRecorded,
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("not a SHA-256 fingerprint"), "{e}");
    // Trusting another CA by certificate: the signatures are by an unknown key.
    let rep = verify(&f.dir, &TrustAnchor::CaCert(other.cert_pem.clone()));
    assert_eq!(
        rep.recording.failure.as_ref().unwrap().kind,
        FailureKind::UnknownKey
    );
    assert!(!rep.export.valid);
    let problem = rep.export.problem.unwrap();
    assert!(
        problem.starts_with("exporter certificate: signing certificate"),
        "{problem}"
    );
    assert!(problem.contains("not issued by a trusted CA"), "{problem}");
    // Swapping in the other CA's certificate inside the bundle does not help either.
    fs::write(f.dir.join("certs/ca.pem"), &other.cert_pem).unwrap();
    let fp = keys::fingerprint(&keys::pem_to_der(&f.ca.cert_pem, "ca").unwrap());
    assert!(matches!(
        bundle::verify(
            &f.dir,
            &TrustAnchor::Fingerprint(fp),
            &AsRecorded,
            &mut |_, _| {}
        ),
        Err(BundleError::WrongFingerprint { .. })
    ));
}

#[test]
fn write_refuses_foreign_video_and_bad_inputs() {
    let ca = TestCa::new("ca-a");
    let rec = standard(&ca);
    let tmp = tempfile::tempdir().unwrap();
    let signer = ca.identity("rec-1");
    let range = ExportRange {
        camera_id: CAMERA.into(),
        from_us: None,
        to_us: None,
    };
    let who = ExporterIdentity {
        user: "bob".into(),
        server: "s".into(),
    };
    // A fragment that was never recorded.
    let mp4 = tmp.path().join("x.mp4");
    let mut v = init_bytes(0);
    v.extend(gop_bytes(5000, 9, 100));
    fs::write(&mp4, &v).unwrap();
    let e = bundle::write(
        &tmp.path().join("b1"),
        &mp4,
        &rec.ledger(),
        &range,
        &who,
        &signer,
        &AsRecorded,
    )
    .unwrap_err();
    assert!(e.to_string().contains("is not in the ledger"), "{e}");
    // Wrong camera.
    export_mp4(&rec, &rec.frags[0..2], &mp4);
    let other = ExportRange {
        camera_id: "cam-9".into(),
        ..range.clone()
    };
    let e = bundle::write(
        &tmp.path().join("b2"),
        &mp4,
        &rec.ledger(),
        &other,
        &who,
        &signer,
        &AsRecorded,
    )
    .unwrap_err();
    assert!(e.to_string().contains("camera"), "{e}");
    // Non-empty target directory.
    fs::create_dir_all(tmp.path().join("b3")).unwrap();
    fs::write(tmp.path().join("b3/file"), b"x").unwrap();
    let e = bundle::write(
        &tmp.path().join("b3"),
        &mp4,
        &rec.ledger(),
        &range,
        &who,
        &signer,
        &AsRecorded,
    )
    .unwrap_err();
    assert!(matches!(e, BundleError::NotEmpty(_)));
}

#[test]
fn export_of_unsigned_tail_verifies_as_unsigned() {
    let ca = TestCa::new("ca-a");
    let mut rec = Rec::new(ca.identity("rec-1"));
    rec.segment(0, 3, true);
    rec.segment(1, 3, false);
    let tmp = tempfile::tempdir().unwrap();
    let mp4 = tmp.path().join("e.mp4");
    export_mp4(&rec, &rec.frags[3..6], &mp4);
    let dir = tmp.path().join("b");
    let s = bundle::write(
        &dir,
        &mp4,
        &rec.ledger(),
        &ExportRange {
            camera_id: CAMERA.into(),
            from_us: None,
            to_us: None,
        },
        &ExporterIdentity {
            user: "u".into(),
            server: "s".into(),
        },
        &ca.identity("rec-1"),
        &AsRecorded,
    )
    .unwrap();
    assert_eq!(s.unsigned_fragments, 3);
    let rep = verify(&dir, &TrustAnchor::CaCert(ca.cert_pem.clone()));
    assert_eq!(
        rep.recording.failure.as_ref().unwrap().kind,
        FailureKind::Unsigned
    );
    assert!(rep.export.valid);
}

#[test]
fn manifest_parser_rejects_bad_structure() {
    for (bad, msg) in [
        (&b"{}"[..], "missing field"),
        (b"not json", "expected"),
        (br#"{"format":"x","camera_id":"c","video_size":0,"init":{"offset":0,"length":0,"sha256":"","record_seq":0},"fragments":[],"signing_certificates":[]}"#, "format is"),
        (br#"{"format":"vigil-export-manifest-v1","camera_id":"c","video_size":0,"init":{"offset":0,"length":0,"sha256":"zz","record_seq":0},"fragments":[],"signing_certificates":[]}"#, "64 hex digits"),
        (br#"{"format":"vigil-export-manifest-v1","camera_id":"c","video_size":5,"init":{"offset":0,"length":0,"sha256":"0000000000000000000000000000000000000000000000000000000000000000","record_seq":0},"fragments":[],"signing_certificates":[]}"#, "video_size"),
        (br#"{"format":"vigil-export-manifest-v1","camera_id":"c","video_size":0,"init":{"offset":0,"length":0,"sha256":"0000000000000000000000000000000000000000000000000000000000000000","record_seq":0},"fragments":[],"signing_certificates":["../../etc/passwd"]}"#, "not a plain"),
    ] {
        let e = bundle::parse_manifest(bad).unwrap_err().to_string();
        assert!(e.contains(msg), "{e}");
    }
}

fn manifest(dir: &Path) -> bundle::Manifest {
    bundle::parse_manifest(&fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

#[test]
fn fragments_stay_as_signed_behind_skip_headers_and_the_recorded_init_travels_beside_it() {
    let f = fixture();
    let m = manifest(&f.dir);
    assert_eq!(m.format, bundle::MANIFEST_FORMAT);
    // recorded-init.mp4 is the first segment's init as recorded (what the ledger signed).
    let seg = fs::read(f.rec.seg_path(f.frags[0].segment)).unwrap();
    let recorded = &seg[..f.rec.frags_of(f.frags[0].segment)[0].offset as usize];
    assert_eq!(fs::read(f.dir.join("recorded-init.mp4")).unwrap(), recorded);
    let r = m.init.recorded.as_ref().unwrap();
    assert_eq!(r.length, recorded.len() as u64);
    assert_eq!(r.sha256, hex::encode(vigil_signing::sha256(recorded)));
    // The edit starts at the first exported GOP's decode time and lasts the 10 GOPs.
    let t = m.init.timeline.unwrap();
    assert_eq!(t.media_time, u64::from(f.frags[0].gop) * 180_000);
    assert_eq!(t.duration, 10 * 2 * 90_000);
    assert_eq!(t.start_us, f.frags[0].start_us);
    let video = fs::read(f.dir.join("video.mp4")).unwrap();
    // The header is the presenter's (here the recorded init itself).
    assert_eq!(&video[..recorded.len()], recorded);
    assert_eq!(m.init.length, recorded.len() as u64);
    // Every fragment is byte for byte what was recorded, behind a skip header that holds
    // exactly its moof.
    for (mf, fr) in m.fragments.iter().zip(&f.frags) {
        let seg = fs::read(f.rec.seg_path(fr.segment)).unwrap();
        let recorded = &seg[fr.offset as usize..(fr.offset + fr.len) as usize];
        assert_eq!(
            &video[mf.offset as usize..(mf.offset + mf.length) as usize],
            recorded
        );
        let skip = &video[(mf.offset - bundle::SKIP_HEADER) as usize..mf.offset as usize];
        assert_eq!(&skip[4..], b"skip");
        assert_eq!(
            u32::from_be_bytes(skip[..4].try_into().unwrap()),
            u32::from_be_bytes(recorded[..4].try_into().unwrap()) + 8
        );
        assert_eq!(&recorded[4..8], b"moof");
    }
    assert_eq!(m.video_size, video.len() as u64);
    let st: bundle::ExportStatement =
        serde_json::from_slice(&fs::read(f.dir.join("export.json")).unwrap()).unwrap();
    assert!(st.files.iter().any(|x| x.path == "recorded-init.mp4"));
}

/// Rewrites the init of video.mp4 (and, with `fix_manifest`, the manifest's hash, length,
/// offsets and timeline to match), as an exporter hiding part of the clip would.
fn replace_export_init(dir: &Path, t: bundle::presentation::Timeline, fix_manifest: bool) {
    let recorded = fs::read(dir.join("recorded-init.mp4")).unwrap();
    let init = bundle::presentation::presentation_init(&recorded, &t).unwrap();
    let mut m = manifest(dir);
    let video = fs::read(dir.join("video.mp4")).unwrap();
    let mut v = init.clone();
    v.extend_from_slice(&video[m.init.length as usize..]);
    fs::write(dir.join("video.mp4"), v).unwrap();
    if fix_manifest {
        let shift = init.len() as i64 - m.init.length as i64;
        m.init.length = init.len() as u64;
        m.init.sha256 = hex::encode(vigil_signing::sha256(&init));
        m.init.timeline = Some(t);
        for x in &mut m.fragments {
            x.offset = (x.offset as i64 + shift) as u64;
        }
        m.video_size = (m.video_size as i64 + shift) as u64;
        fs::write(
            dir.join("manifest.json"),
            serde_json::to_vec_pretty(&m).unwrap(),
        )
        .unwrap();
    }
}

#[test]
fn an_edit_that_hides_part_of_the_clip_or_another_recorded_init_is_modified() {
    let f = fixture();
    let t = manifest(&f.dir).init.timeline.unwrap();
    let trust = ca_trust(&f);
    let init_failure = |dir: &Path| {
        let rep = verify(dir, &trust);
        let fail = rep.recording.failure.clone().unwrap();
        assert_eq!(
            fail.kind,
            FailureKind::Modified,
            "{}: {fail}",
            dir.display()
        );
        assert_eq!(
            fail.at_us,
            Some(f.rec.segments[0].1),
            "{}: {fail}",
            dir.display()
        );
        fail.detail
    };
    // Players would skip the first GOP; the manifest says so consistently.
    let c1 = f.tmp.path().join("c1");
    copy_dir(&f.dir, &c1);
    let later = bundle::presentation::Timeline {
        media_time: t.media_time + 180_000,
        ..t
    };
    replace_export_init(&c1, later, true);
    let d = init_failure(&c1);
    assert!(d.contains("timeline differs"), "{d}");
    // Or a header changed in place (say, a shorter duration), the manifest left as written.
    let c2 = f.tmp.path().join("c2");
    copy_dir(&f.dir, &c2);
    let mut v = fs::read(c2.join("video.mp4")).unwrap();
    let at = manifest(&c2).init.length as usize - 1;
    v[at] ^= 1;
    fs::write(c2.join("video.mp4"), v).unwrap();
    let d = init_failure(&c2);
    assert!(
        d.contains("is not the one the signed init and fragments give"),
        "{d}"
    );
    // Another header that the manifest declares consistently (here the v2 edit-list init):
    // only the presenter's header over the signed init and fragments is accepted.
    let c2b = f.tmp.path().join("c2b");
    copy_dir(&f.dir, &c2b);
    replace_export_init(&c2b, t, true);
    let d = init_failure(&c2b);
    assert!(
        d.contains("is not the one the signed init and fragments give"),
        "{d}"
    );
    // The recorded init beside it is what the ledger signed.
    let c3 = f.tmp.path().join("c3");
    copy_dir(&f.dir, &c3);
    let mut r = fs::read(c3.join("recorded-init.mp4")).unwrap();
    let at = r.len() - 3;
    r[at] ^= 1;
    fs::write(c3.join("recorded-init.mp4"), r).unwrap();
    let d = init_failure(&c3);
    assert!(
        d.contains("recorded-init.mp4 differs from the signed init"),
        "{d}"
    );
    // And it must be there.
    let c4 = f.tmp.path().join("c4");
    copy_dir(&f.dir, &c4);
    fs::remove_file(c4.join("recorded-init.mp4")).unwrap();
    let e = bundle::verify(&c4, &trust, &AsRecorded, &mut |_, _| {}).unwrap_err();
    assert!(
        e.to_string().contains("recorded-init.mp4 is missing"),
        "{e}"
    );
}

#[test]
fn format_v1_and_v2_bundles_still_verify_their_recording() {
    let f = fixture();
    let m = manifest(&f.dir);
    let recorded = fs::read(f.dir.join("recorded-init.mp4")).unwrap();
    let video = fs::read(f.dir.join("video.mp4")).unwrap();
    // The signed fragments, back to back as earlier formats kept them (no skip headers).
    let fragments: Vec<&[u8]> = m
        .fragments
        .iter()
        .map(|x| &video[x.offset as usize..(x.offset + x.length) as usize])
        .collect();
    let lay_out = |dir: &Path, init: &[u8], old: &mut bundle::Manifest| {
        let mut v = init.to_vec();
        for (x, bytes) in old.fragments.iter_mut().zip(&fragments) {
            x.offset = v.len() as u64;
            v.extend_from_slice(bytes);
        }
        old.video_size = v.len() as u64;
        fs::write(dir.join("video.mp4"), &v).unwrap();
        fs::write(
            dir.join("manifest.json"),
            serde_json::to_vec_pretty(&old).unwrap(),
        )
        .unwrap();
    };

    // v2: video.mp4 starts with the presentation init (the recorded one with an edit list).
    let v2_dir = f.tmp.path().join("v2");
    copy_dir(&f.dir, &v2_dir);
    let timeline = m.init.timeline.unwrap();
    let presentation = bundle::presentation::presentation_init(&recorded, &timeline).unwrap();
    let mut v2 = m.clone();
    v2.format = bundle::MANIFEST_FORMAT_V2.into();
    v2.init.length = presentation.len() as u64;
    v2.init.sha256 = hex::encode(vigil_signing::sha256(&presentation));
    lay_out(&v2_dir, &presentation, &mut v2);
    let rep = verify(&v2_dir, &ca_trust(&f));
    assert!(rep.recording.is_verified(), "{}", rep.summary());
    assert_eq!(rep.recording.checked.fragments, 10);
    // Another init in a v2 bundle is found as before.
    let mut other = presentation.clone();
    let at = other.len() - 1;
    other[at] ^= 1;
    lay_out(&v2_dir, &other, &mut v2);
    let rep = verify(&v2_dir, &ca_trust(&f));
    let fail = rep.recording.failure.as_ref().unwrap();
    assert_eq!(fail.kind, FailureKind::Modified, "{fail}");

    // v1: video.mp4 starts with the recorded init, no recorded-init.mp4.
    fs::remove_file(f.dir.join("recorded-init.mp4")).unwrap();
    let mut old = m.clone();
    old.format = bundle::MANIFEST_FORMAT_V1.into();
    old.init.length = recorded.len() as u64;
    old.init.sha256 = old.init.recorded.take().unwrap().sha256;
    old.init.timeline = None;
    lay_out(&f.dir, &recorded, &mut old);
    let rep = verify(&f.dir, &ca_trust(&f));
    assert!(rep.recording.is_verified(), "{}", rep.summary());
    assert_eq!(rep.recording.checked.fragments, 10);
    // The statement signed the v3 files, so the export check says what changed.
    assert!(!rep.export.valid);
    // A v1 manifest may not carry later fields, nor the other way round.
    let mut mixed = old.clone();
    mixed.init.timeline = m.init.timeline;
    let e = bundle::parse_manifest(&serde_json::to_vec(&mixed).unwrap()).unwrap_err();
    assert!(e.to_string().contains("not allowed"), "{e}");
    let mut bare = m.clone();
    bare.init.recorded = None;
    let e = bundle::parse_manifest(&serde_json::to_vec(&bare).unwrap()).unwrap_err();
    assert!(e.to_string().contains("required"), "{e}");
}

#[test]
fn signature_watch_follows_a_growing_ledger() {
    let ca = TestCa::new("ca-a");
    let mut rec = Rec::new(ca.identity("rec-1"));
    rec.segment(0, 3, false);
    let last = rec.frags.last().unwrap().clone();
    let mut watch = bundle::SignatureWatch::new(&rec.ledger(), last.segment, last.gop);
    assert_eq!(watch.poll().unwrap(), bundle::FragmentSigning::Unsigned);
    let mut next = bundle::SignatureWatch::new(&rec.ledger(), 1, last.gop + 1);
    assert_eq!(next.poll().unwrap(), bundle::FragmentSigning::NotInLedger);
    rec.w().sign_now().unwrap();
    assert_eq!(watch.poll().unwrap(), bundle::FragmentSigning::Signed);
    // The second watch resumes after what it read; the GOP then arrives unsigned.
    assert_eq!(next.poll().unwrap(), bundle::FragmentSigning::NotInLedger);
    rec.w().segment_close(0, last.offset + last.len).unwrap();
    rec.segment(1, 2, false);
    assert_eq!(next.poll().unwrap(), bundle::FragmentSigning::Unsigned);
    rec.w().sign_now().unwrap();
    assert_eq!(next.poll().unwrap(), bundle::FragmentSigning::Signed);
}

/// The bytes between fragments of a v3 video.mp4 carry nothing but the moof's length: any
/// other value there is found.
#[test]
fn a_changed_skip_header_is_modified() {
    let f = fixture();
    let m = manifest(&f.dir);
    for (name, change) in [
        ("type", 4usize), // "skip" → another box type: the moof is no longer hidden
        ("size", 3usize), // a size that does not hold exactly the moof
    ] {
        let dir = f.tmp.path().join(format!("skip-{name}"));
        copy_dir(&f.dir, &dir);
        let mut v = fs::read(dir.join("video.mp4")).unwrap();
        let at = (m.fragments[3].offset - bundle::SKIP_HEADER) as usize + change;
        v[at] ^= 0x20;
        fs::write(dir.join("video.mp4"), v).unwrap();
        let rep = verify(&dir, &ca_trust(&f));
        let fail = rep.recording.failure.as_ref().unwrap();
        assert_eq!(fail.kind, FailureKind::Modified, "{name}: {fail}");
        assert_eq!(fail.at_us, Some(f.frags[2].start_us), "{name}: {fail}");
        assert!(!rep.export.valid);
    }
}
