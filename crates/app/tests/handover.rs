//! The handover use cases (`vigil_app::handover`, docs/design/handover.md) on two data
//! directories with their own CAs and signing keys: P (the camera's primary, "rec-1") and F
//! (the failover server, "failover-1"). F's signed recording of a window is exported as an
//! evidence bundle and imported on P: only with F's key on P's trust list, never over P's own
//! video, checked completely before anything is written, and an import interrupted at any
//! point is removed at start-up (`settle`) and can be retried. `verify_camera` on P then says
//! verified and names who signed each part.

use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use vigil_app::export::{BundleRequest, ExporterIdentity, TailSigning, export_bundle};
use vigil_app::handover::{self, HandoverError, ImportRequest};
use vigil_app::verify::verify_camera;
use vigil_app::{Classified, ErrorKind};
use vigil_config::ArchiveConfig;
use vigil_media::evidence::{Evidence, Signing, ledger_path, signing_dir};
use vigil_media::fmp4::{self, TrackParams};
use vigil_media::gop::{Frame, gop_samples};
use vigil_media::store::{Camera, ImportedGop, NewCamera, Store};
use vigil_signing::bundle;
use vigil_signing::handover::{CA_FILE, EXCERPT_FILE, SIGNER_FILE, material_dir};
use vigil_signing::{Event, FailureKind, Report, SigningIdentity, TimeRange};

const FRAME_TICKS: i64 = 3600;
const GOP_FRAMES: usize = 25;
const GOP_TICKS: i64 = FRAME_TICKS * GOP_FRAMES as i64;
const GOP_US: i64 = 1_000_000;

/// One installation: a data directory with its own CA and signing key, and one camera.
struct Site {
    dir: tempfile::TempDir,
    store: Store,
    camera: Camera,
    ca_pem: String,
    /// Start of GOP 0 of the shared timeline (the same wall-clock time on both sites).
    t0: i64,
}

impl Site {
    fn new(server: &str, t0: i64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::init(dir.path()).unwrap();
        let camera = store
            .add_camera(&NewCamera {
                name: "door".into(),
                url: "rtsp://127.0.0.1:8554/a".into(),
                ..Default::default()
            })
            .unwrap();
        let ca_pem = signing_identity(dir.path(), server);
        Site {
            dir,
            store,
            camera,
            ca_pem,
            t0,
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn at(&self, k: i64) -> i64 {
        self.t0 + k * GOP_US
    }

    /// Records GOPs `ks` of the timeline (1 s each) as one closed, signed segment, the way
    /// the recorder and its ledger observer do.
    fn record(&self, ks: Range<i64>) {
        let evidence = Evidence::new(self.root(), Signing::On).unwrap();
        let mut observer = evidence.observer(&self.camera.id).unwrap();
        let init = fmp4::init_segment(&h264_params()).unwrap();
        let mut seg = self
            .store
            .begin_segment(&self.camera.id, &init, "avc1.4d401e", self.at(ks.start))
            .unwrap();
        observer.segment_opened(&seg, &init);
        for k in ks {
            let frames = timeline_gop(k);
            let g = gop_samples(&frames, None, FRAME_TICKS as u32);
            let mut bytes =
                fmp4::fragment_header(k as u32 + 1, g.base_decode_time, &g.samples, g.data_len)
                    .unwrap();
            for f in &frames {
                bytes.extend_from_slice(&f.data);
            }
            let row = seg
                .append(
                    &self.store,
                    &[&bytes],
                    k + 1,
                    self.at(k),
                    GOP_US,
                    frames.len() as i64,
                )
                .unwrap();
            observer.fragment_written(&row);
        }
        let (seq, len) = (seg.seq, seg.len());
        seg.close(&self.store).unwrap();
        observer.segment_closed(seq, len);
        drop(observer);
        evidence.close_all();
    }

    /// This site's signed recording of GOPs `ks` as an evidence bundle.
    fn export(&self, ks: Range<i64>) -> PathBuf {
        let out = self.root().join(format!("bundle-{}-{}", ks.start, ks.end));
        export_bundle(
            &BundleRequest {
                store: &self.store,
                data_dir: self.root(),
                camera: &self.camera.id,
                from_us: self.at(ks.start),
                to_us: self.at(ks.end),
                exporter: ExporterIdentity {
                    user: "test".into(),
                    server: "failover-1".into(),
                },
                archive: &ArchiveConfig::default(),
                audit: None,
            },
            &out,
            self.root(),
            TailSigning::AsIs,
            &mut |_, _| {},
        )
        .unwrap();
        out
    }

    fn key(&self) -> String {
        handover::own_key(self.root()).unwrap()
    }

    fn import(&self, bundle: &Path) -> Result<handover::ImportOutcome, HandoverError> {
        let evidence = Evidence::new(self.root(), Signing::On).unwrap();
        let r = handover::import(
            &self.store,
            Some(&evidence),
            &ImportRequest {
                camera: "door",
                bundle,
                by: "cli:test",
                recipient: "rec-1",
            },
            None,
        );
        evidence.close_all();
        r
    }

    fn verify(&self) -> Report {
        self.verify_range(TimeRange::all())
    }

    fn verify_range(&self, range: TimeRange) -> Report {
        verify_camera(
            &self.store,
            self.root(),
            &self.camera.id,
            range,
            &self.ca_pem,
            &ArchiveConfig::default(),
            &mut |_, _| {},
            None,
        )
        .unwrap()
        .1
    }

    fn ledger(&self) -> Vec<u8> {
        fs::read(ledger_path(self.root(), &self.camera.id)).unwrap()
    }

    /// Names in the camera's video directory other than own segment files.
    fn import_traces(&self) -> Vec<String> {
        let own: Vec<String> = self
            .store
            .segments(&self.camera.id)
            .unwrap()
            .iter()
            .map(|s| format!("{:016x}.mp4", s.seq))
            .collect();
        let mut names: Vec<String> = fs::read_dir(self.store.camera_dir(&self.camera.id))
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| !own.contains(n))
            .collect();
        names.sort();
        names
    }

    fn starts(&self) -> Vec<i64> {
        self.store
            .gops_in_range(&self.camera.id, i64::MIN, i64::MAX)
            .unwrap()
            .iter()
            .map(|g| (g.start_us - self.t0) / GOP_US)
            .collect()
    }
}

/// A CA of the site's own and a signing identity for `server` it issued, saved where the
/// recorder loads it. Returns the CA certificate (PEM).
fn signing_identity(data_dir: &Path, server: &str) -> String {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name
        .push(DnType::CommonName, format!("{server} test CA"));
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert_pem = p.self_signed(&key).unwrap().pem();
    SigningIdentity::issue(
        &cert_pem,
        &key.serialize_pem(),
        server,
        Duration::from_secs(86400),
    )
    .unwrap()
    .save(&signing_dir(data_dir))
    .unwrap();
    cert_pem
}

fn h264_params() -> TrackParams {
    use mp4_atom::{Avc1, Avcc, Codec, Encode, Visual};
    let sps = [0x67, 0x4d, 0x40, 0x1e, 0xa0];
    let pps = [0x68, 0xee, 0x3c, 0x80];
    let entry = Codec::Avc1(Avc1 {
        visual: Visual {
            data_reference_index: 1,
            width: 640,
            height: 480,
            ..Default::default()
        },
        avcc: Avcc::new(&sps, &pps).unwrap(),
        ..Default::default()
    });
    let mut sample_entry = Vec::new();
    entry.encode(&mut sample_entry).unwrap();
    TrackParams {
        sample_entry,
        width: 640,
        height: 480,
        rfc6381: "avc1.4d401e".into(),
    }
}

/// GOP `k` of the camera's picture: a keyframe and 24 others, each tagged with `k`, so both
/// servers record the same bytes for the same second.
fn timeline_gop(k: i64) -> Vec<Frame> {
    (0..GOP_FRAMES)
        .map(|i| {
            let key = i == 0;
            let mut payload = vec![if key { 0x65 } else { 0x41 }];
            payload.extend_from_slice(&((k as u32) * 100 + i as u32).to_be_bytes());
            payload.resize(if key { 200 } else { 40 }, 0x5a);
            let mut data = (payload.len() as u32).to_be_bytes().to_vec();
            data.extend_from_slice(&payload);
            Frame {
                pts: k * GOP_TICKS + i as i64 * FRAME_TICKS,
                is_key: key,
                data: data.into(),
            }
        })
        .collect()
}

/// P recorded GOPs 0..4, failed; F recorded 4..8; P is back and recorded 8..10 before the
/// footage is copied back.
fn failover() -> (Site, Site) {
    let t0 = vigil_media::store::now_us() - 3_600_000_000;
    let p = Site::new("rec-1", t0);
    let f = Site::new("failover-1", t0);
    p.record(0..2);
    p.record(2..4);
    f.record(4..6);
    f.record(6..8);
    p.record(8..10);
    (p, f)
}

fn trust(p: &Site, f: &Site) {
    handover::trust_server(p.root(), "failover-1", &f.key(), "cli:test", None).unwrap();
}

#[test]
fn a_trusted_servers_footage_imports_and_verifies_naming_both_signers() {
    let (p, f) = failover();
    let bundle = f.export(4..8);
    trust(&p, &f);
    let o = p.import(&bundle).unwrap();
    assert_eq!(o.source_server, "failover-1");
    assert_eq!(o.source_key, f.key());
    assert_eq!((o.from_us, o.to_us), (p.at(4), p.at(8)));
    assert_eq!((o.fragments, o.trimmed), (4, (0, 0)));
    assert_eq!(p.starts(), (0..10).collect::<Vec<_>>());
    assert_eq!(
        p.import_traces(),
        [format!("{:016x}.handover", o.segment)],
        "only the material beside the imported segment"
    );

    let r = p.verify();
    assert!(r.is_verified(), "{}", r.summary());
    assert_eq!(r.checked.fragments, 10);
    let parts: Vec<_> = r
        .parts
        .iter()
        .map(|x| {
            (
                (x.from_us - p.t0) / GOP_US,
                (x.to_us - p.t0) / GOP_US,
                x.signed_by.as_str(),
                x.handover_recorded_by.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        parts,
        [
            (0, 4, "rec-1", None),
            (4, 8, "failover-1", Some("rec-1")),
            (8, 10, "rec-1", None),
        ]
    );
    assert!(
        r.summary()
            .contains("signed by failover-1 (handover recorded by rec-1)"),
        "{}",
        r.summary()
    );
    let handovers: Vec<_> = r
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Handover {
                source_server,
                source_key,
                recipient,
                from_us,
                to_us,
                ..
            } => Some((
                source_server.clone(),
                source_key.clone(),
                recipient.clone(),
                *from_us,
                *to_us,
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        handovers,
        [(
            "failover-1".to_string(),
            f.key(),
            "rec-1".to_string(),
            p.at(4),
            p.at(8)
        )]
    );
    // Only the window: F's part alone.
    let w = p.verify_range(TimeRange::new(p.at(5), p.at(6)));
    assert!(w.is_verified(), "{}", w.summary());
    assert_eq!(w.parts.len(), 1);
    assert_eq!(w.parts[0].signed_by, "failover-1");

    // The same footage again: nothing new, nothing written.
    let ledger = p.ledger();
    let err = p.import(&bundle).unwrap_err();
    assert!(matches!(err, HandoverError::NothingNew), "{err}");
    assert_eq!(err.code(), "nothing_new");
    assert_eq!(p.ledger(), ledger);

    // Untrusting F stops new imports, not the verification of what was imported.
    handover::untrust_server(p.root(), "failover-1", None).unwrap();
    assert!(p.verify().is_verified());
}

#[test]
fn a_changed_byte_of_imported_video_is_modified_at_its_time() {
    let (p, f) = failover();
    trust(&p, &f);
    let o = p.import(&f.export(4..8)).unwrap();
    let row = p
        .store
        .gops_in_range(&p.camera.id, p.at(6), p.at(7))
        .unwrap()
        .into_iter()
        .find(|g| g.start_us == p.at(6))
        .unwrap();
    assert_eq!(row.seq as u64, o.segment);
    let path = p.store.segment_path(&p.camera.id, row.seq);
    let mut bytes = fs::read(&path).unwrap();
    bytes[(row.offset + row.len / 2) as usize] ^= 0x01;
    fs::write(&path, bytes).unwrap();
    let r = p.verify();
    let fail = r.failure.expect("tampering found");
    assert_eq!(fail.kind, FailureKind::Modified, "{fail}");
    assert_eq!(fail.at_us, Some(p.at(6)), "{fail}");
    assert!(r.parts.is_empty());

    // F's excerpt beside it, changed: modified at the start of the import.
    let (p, f) = failover();
    trust(&p, &f);
    let o = p.import(&f.export(4..8)).unwrap();
    let exc = material_dir(&p.store.camera_dir(&p.camera.id), o.segment).join(EXCERPT_FILE);
    let mut bytes = fs::read(&exc).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    fs::write(&exc, bytes).unwrap();
    let fail = p.verify().failure.expect("changed excerpt found");
    assert_eq!(fail.kind, FailureKind::Modified, "{fail}");
    assert_eq!(fail.at_us, Some(p.at(4)), "{fail}");
    assert!(fail.detail.contains("failover-1"), "{fail}");
}

#[test]
fn footage_signed_by_a_key_not_on_the_trust_list_is_refused_and_nothing_is_written() {
    let (p, f) = failover();
    let bundle = f.export(4..8);
    let ledger = p.ledger();
    let err = p.import(&bundle).unwrap_err();
    assert!(
        matches!(&err, HandoverError::UntrustedKey { key } if *key == f.key()),
        "{err}"
    );
    assert_eq!(
        (err.kind(), err.code()),
        (ErrorKind::Forbidden, "untrusted_key")
    );
    assert!(
        err.to_string().contains("vigil handover trust NAME --key"),
        "{err}"
    );
    // Another server trusted under that name does not make F's key trusted.
    let other = Site::new("failover-2", p.t0);
    handover::trust_server(p.root(), "failover-1", &other.key(), "cli:test", None).unwrap();
    let err = p.import(&bundle).unwrap_err();
    assert!(matches!(err, HandoverError::UntrustedKey { .. }), "{err}");

    assert_eq!(p.ledger(), ledger, "the ledger is untouched");
    assert!(p.import_traces().is_empty(), "{:?}", p.import_traces());
    assert_eq!(p.starts(), [0, 1, 2, 3, 8, 9]);
    assert!(p.verify().is_verified());
}

#[test]
fn a_bundle_that_does_not_verify_is_refused_before_anything_is_written() {
    let (p, f) = failover();
    trust(&p, &f);
    let bundle = f.export(4..8);
    let video = bundle.join(bundle::VIDEO_FILE);
    let mut bytes = fs::read(&video).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 0x01;
    fs::write(&video, bytes).unwrap();
    let ledger = p.ledger();
    let err = p.import(&bundle).unwrap_err();
    assert!(matches!(err, HandoverError::NotVerified(_)), "{err}");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("nothing was imported"), "{err}");
    assert_eq!(p.ledger(), ledger);
    assert!(p.import_traces().is_empty());

    // Not a bundle at all.
    let err = p.import(p.root()).unwrap_err();
    assert!(matches!(err, HandoverError::Bundle(_)), "{err}");
}

#[test]
fn own_video_is_never_overwritten_an_overlap_inside_is_refused_at_the_edges_left_out() {
    // P also has GOP 6: F's 4..8 overlaps it in the middle.
    let t0 = vigil_media::store::now_us() - 3_600_000_000;
    let p = Site::new("rec-1", t0);
    let f = Site::new("failover-1", t0);
    p.record(0..4);
    p.record(6..7);
    f.record(3..9);
    p.record(9..10);
    trust(&p, &f);
    let ledger = p.ledger();
    let err = p.import(&f.export(3..9)).unwrap_err();
    match &err {
        HandoverError::Overlap { from_us, to_us } => {
            assert_eq!((*from_us, *to_us), (p.at(6), p.at(7)))
        }
        other => panic!("{other}"),
    }
    assert_eq!((err.kind(), err.code()), (ErrorKind::Conflict, "overlap"));
    assert!(err.to_string().contains("already has video"), "{err}");
    assert_eq!(p.ledger(), ledger);
    assert!(p.import_traces().is_empty());

    // F's 3..6: GOP 3 is P's already (left out at the start); 4 and 5 are new.
    let o = p.import(&f.export(3..6)).unwrap();
    assert_eq!(o.trimmed, (1, 0));
    assert_eq!((o.from_us, o.to_us, o.fragments), (p.at(4), p.at(6), 2));
    // F's 6..9: GOP 6 is P's (left out), 7 and 8 are new and end where P's 9 begins.
    let o = p.import(&f.export(6..9)).unwrap();
    assert_eq!(o.trimmed, (1, 0));
    assert_eq!((o.from_us, o.to_us), (p.at(7), p.at(9)));
    assert_eq!(p.starts(), (0..10).collect::<Vec<_>>());
    let r = p.verify();
    assert!(r.is_verified(), "{}", r.summary());
    let who: Vec<_> = r.parts.iter().map(|x| x.signed_by.as_str()).collect();
    assert_eq!(
        who,
        ["rec-1", "failover-1", "rec-1", "failover-1", "rec-1"],
        "{}",
        r.summary()
    );
}

/// What an import leaves when the process dies before its handover fact is in the ledger:
/// the material directory, and the segment file (hidden while written, or named and indexed).
fn interrupted_import(p: &Site, bundle: &Path, named: bool) -> i64 {
    let manifest =
        bundle::parse_manifest(&fs::read(bundle.join(bundle::MANIFEST_FILE)).unwrap()).unwrap();
    let seq = p.store.reserve_segment(&p.camera.id).unwrap();
    let dir = material_dir(&p.store.camera_dir(&p.camera.id), seq as u64);
    fs::create_dir(&dir).unwrap();
    fs::copy(bundle.join(bundle::EXCERPT_FILE), dir.join(EXCERPT_FILE)).unwrap();
    fs::copy(bundle.join(bundle::CA_FILE), dir.join(CA_FILE)).unwrap();
    if !named {
        // Died while writing the file: the signer certificate was written, the file is half.
        fs::copy(
            bundle.join(&manifest.signing_certificates[0]),
            dir.join(SIGNER_FILE),
        )
        .unwrap();
        let half = vigil_media::store::importing_path(&p.store, &p.camera.id, seq);
        fs::write(
            &half,
            fs::read(bundle.join(bundle::RECORDED_INIT_FILE)).unwrap(),
        )
        .unwrap();
        return seq;
    }
    let init = fs::read(bundle.join(bundle::RECORDED_INIT_FILE)).unwrap();
    let video = fs::read(bundle.join(bundle::VIDEO_FILE)).unwrap();
    let gops: Vec<ImportedGop> = manifest
        .fragments
        .iter()
        .map(|m| ImportedGop {
            start_us: m.start_us,
            duration_us: m.duration_us as i64,
            len: m.length,
            frames: GOP_FRAMES as i64,
            sha256: Sha256::digest(&video[m.offset as usize..(m.offset + m.length) as usize])
                .into(),
        })
        .collect();
    p.store
        .write_imported_segment(&p.camera.id, seq, &init, "avc1", &gops, &mut |k, buf| {
            let m = &manifest.fragments[k];
            buf.extend_from_slice(&video[m.offset as usize..(m.offset + m.length) as usize]);
            Ok(())
        })
        .unwrap();
    seq
}

#[test]
fn an_import_interrupted_before_its_fact_is_removed_at_start_up_and_can_be_retried() {
    for named in [false, true] {
        let (p, f) = failover();
        trust(&p, &f);
        let bundle = f.export(4..8);
        let seq = interrupted_import(&p, &bundle, named);
        assert!(!p.import_traces().is_empty());
        if named {
            // The file without its fact is not part of the signed recording.
            let fail = p.verify().failure.expect("an unrecorded import");
            assert_eq!(fail.kind, FailureKind::Inserted, "{fail}");
        }

        assert_eq!(handover::settle(&p.store).unwrap(), 1, "named: {named}");
        assert!(p.import_traces().is_empty(), "{:?}", p.import_traces());
        assert!(
            p.store
                .segments(&p.camera.id)
                .unwrap()
                .iter()
                .all(|s| s.seq != seq)
        );
        assert_eq!(p.starts(), [0, 1, 2, 3, 8, 9]);
        assert!(p.verify().is_verified(), "named: {named}");
        // Nothing left to settle the next time.
        assert_eq!(handover::settle(&p.store).unwrap(), 0);

        let o = p.import(&bundle).unwrap();
        assert!(o.segment > seq as u64, "segment numbers are never reused");
        let r = p.verify();
        assert!(r.is_verified(), "{}", r.summary());
        assert_eq!(r.parts.len(), 3);
        // A completed import is kept by start-up.
        assert_eq!(handover::settle(&p.store).unwrap(), 0);
        assert_eq!(p.starts(), (0..10).collect::<Vec<_>>());
    }
}

#[test]
fn the_trust_list_takes_only_well_formed_entries_and_refuses_a_damaged_file() {
    let (p, f) = failover();
    let key = f.key();
    let bad = |name: &str, key: &str| {
        handover::trust_server(p.root(), name, key, "cli:test", None).unwrap_err()
    };
    assert!(matches!(
        bad("failover-1", "12ab"),
        HandoverError::BadKey(_)
    ));
    assert!(matches!(bad("", &key), HandoverError::BadName(_)));
    assert!(matches!(bad("a/b", &key), HandoverError::BadName(_)));
    assert!(matches!(
        bad(&"x".repeat(129), &key),
        HandoverError::BadName(_)
    ));
    // Fingerprints as people copy them: with colons, upper case.
    let colons = key
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap().to_uppercase())
        .collect::<Vec<_>>()
        .join(":");
    let s = handover::trust_server(p.root(), "failover-1", &colons, "cli:test", None).unwrap();
    assert_eq!(s.key, key);
    // Again with the same key: unchanged; with another: refused.
    handover::trust_server(p.root(), "failover-1", &key, "cli:test", None).unwrap();
    let other = "ab".repeat(32);
    assert!(matches!(
        bad("failover-1", &other),
        HandoverError::NameTaken(_)
    ));
    let list = handover::trusted_servers(p.root()).unwrap();
    assert_eq!(list.len(), 1);
    let path = p.root().join("keys").join(handover::TRUST_FILE);
    let mode = std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    // A damaged list is refused with its path, never read as "trust nobody" or "anybody".
    let good = fs::read_to_string(&path).unwrap();
    for damaged in [
        "".to_string(),
        "{".to_string(),
        good.replace("vigil-trusted-servers-v1", "vigil-trusted-servers-v9"),
        good.replace(&key, &key.to_uppercase()),
        good.replace(&key, &key[..60]),
        good.replace("\"failover-1\"", "\"fail over\""),
        good.replace("\"added_by\"", "\"extra\": 1, \"added_by\""),
        "{\"format\": \"vigil-trusted-servers-v1\"}".to_string(),
    ] {
        fs::write(&path, &damaged).unwrap();
        let err = handover::trusted_servers(p.root()).unwrap_err();
        assert!(
            matches!(err, HandoverError::TrustFile { .. }),
            "{damaged}: {err}"
        );
        assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
        let bundle = f.export(4..6);
        let err = p.import(&bundle).unwrap_err();
        assert!(matches!(err, HandoverError::TrustFile { .. }), "{err}");
        fs::remove_dir_all(&bundle).unwrap();
    }
    fs::write(&path, &good).unwrap();
    let gone = handover::untrust_server(p.root(), "failover-1", None).unwrap();
    assert_eq!(gone.key, key);
    assert!(handover::trusted_servers(p.root()).unwrap().is_empty());
    assert!(matches!(
        handover::untrust_server(p.root(), "failover-1", None).unwrap_err(),
        HandoverError::NotTrusted(_)
    ));
}
