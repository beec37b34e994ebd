//! Synthetic recordings for the tests: real top-level MP4 box structure (ftyp/moov, then
//! moof+mdat per GOP) with arbitrary payloads, written through the real LedgerWriter exactly as
//! the recorder will drive it.
#![allow(dead_code)]

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::SigningKey as _;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use vigil_signing::record::{Body, FragmentRecord, Hash};
use vigil_signing::{
    CaCert, LedgerOptions, LedgerWriter, Report, SigningIdentity, SigningMode, TimeRange, sha256,
    verify_recording,
};

// Each test binary uses some of these.
#[allow(unused_imports)]
pub use vigil_testkit::ledger::{self, records};

pub const CAMERA: &str = "cam-test";
pub const T0: i64 = 1_700_000_000_000_000;
pub const GOP_US: i64 = 2_000_000;

pub struct TestCa {
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::days(1);
        p.not_after = now + time::Duration::days(3650);
        let cert = p.self_signed(&key).unwrap();
        Self {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
    pub fn identity(&self, server: &str) -> SigningIdentity {
        SigningIdentity::issue(
            &self.cert_pem,
            &self.key_pem,
            server,
            std::time::Duration::from_secs(86400 * 365),
        )
        .unwrap()
    }
    pub fn trust(&self) -> Vec<CaCert> {
        vec![CaCert::from_pem(&self.cert_pem).unwrap()]
    }
    pub fn issuer(&self) -> Issuer<'static, KeyPair> {
        Issuer::from_ca_cert_pem(&self.cert_pem, KeyPair::from_pem(&self.key_pem).unwrap()).unwrap()
    }
}

/// A signing key of one's own that no trusted CA issued: what an attacker re-signs with.
pub struct ForeignKey(KeyPair);

impl ForeignKey {
    pub fn new() -> Self {
        Self(KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap())
    }

    /// A signature record by this key over the chain before record `seq` (head `prev`).
    pub fn signature(&self, seq: u64, prev: &Hash, signed_at_us: i64) -> Body {
        let key_id = sha256(self.0.public_key_raw());
        ledger::signature(CAMERA, seq, prev, signed_at_us, key_id, |message| {
            self.0.sign(message).unwrap().try_into().unwrap()
        })
    }
}

pub fn mp4_box(t: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut v = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(t);
    v.extend_from_slice(payload);
    v
}

/// A full box: version, flags, payload.
pub fn full_box(t: &[u8; 4], version: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![version, 0, 0, 0];
    p.extend_from_slice(payload);
    mp4_box(t, &p)
}

/// An init segment shaped like the recorder's (ftyp, moov with mvhd, mvex and one trak at a
/// 90 kHz timescale), so the export's timeline edit applies; `variant` stands for the codec
/// parameters inside the sample description.
pub fn init_bytes(variant: u8) -> Vec<u8> {
    let mut v = mp4_box(b"ftyp", b"isom\0\0\x02\0isomiso6mp41");
    let mut mvhd = vec![0u8; 8];
    mvhd.extend_from_slice(&90_000u32.to_be_bytes());
    mvhd.extend_from_slice(&[0u8; 4]);
    mvhd.extend_from_slice(&[0u8; 76]);
    mvhd.extend_from_slice(&2u32.to_be_bytes());
    let mut tkhd = vec![0u8; 8];
    tkhd.extend_from_slice(&1u32.to_be_bytes());
    tkhd.extend_from_slice(&[0u8; 68]);
    let mut stsd = b"avcC-sps".to_vec();
    stsd.extend_from_slice(&[variant; 56]);
    let mut trak = full_box(b"tkhd", 0, &tkhd);
    trak.extend(mp4_box(b"mdia", &mp4_box(b"stsd", &stsd)));
    let mut moov = full_box(b"mvhd", 0, &mvhd);
    moov.extend(mp4_box(b"mvex", &full_box(b"trex", 0, &[0u8; 20])));
    moov.extend(mp4_box(b"trak", &trak));
    v.extend(mp4_box(b"moov", &moov));
    v
}

/// One GOP: a moof naming the GOP counter and its decode time (2 s per GOP at 90 kHz), an mdat
/// of deterministic pseudo-random bytes.
pub fn gop_bytes(gop: u32, salt: u64, size: usize) -> Vec<u8> {
    let mut traf = full_box(b"tfhd", 0, &1u32.to_be_bytes());
    traf.extend(full_box(
        b"tfdt",
        1,
        &(u64::from(gop) * 180_000).to_be_bytes(),
    ));
    traf.extend(mp4_box(b"free", &salt.to_be_bytes()));
    let mut moof = full_box(b"mfhd", 0, &gop.to_be_bytes());
    moof.extend(mp4_box(b"traf", &traf));
    let mut x = (gop as u64) << 32 ^ salt ^ 0x9e37_79b9_7f4a_7c15;
    let data: Vec<u8> = (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let mut v = mp4_box(b"moof", &moof);
    v.extend(mp4_box(b"mdat", &data));
    v
}

#[derive(Debug, Clone)]
pub struct Frag {
    pub segment: u64,
    pub gop: u32,
    pub offset: u64,
    pub len: u64,
    pub start_us: i64,
}

pub struct Rec {
    pub _tmp: Option<tempfile::TempDir>,
    pub data: PathBuf,
    pub writer: Option<LedgerWriter>,
    pub frags: Vec<Frag>,
    pub segments: Vec<(u64, i64)>,
    pub next_gop: u32,
    pub t: i64,
    pub salt: u64,
    pub gop_size: usize,
    pub init_variant: u8,
}

impl Rec {
    pub fn new(id: SigningIdentity) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().to_path_buf();
        let mut r = Self::at(&data, id);
        r._tmp = Some(tmp);
        r
    }
    pub fn at(data: &Path, id: SigningIdentity) -> Self {
        let (w, report) = LedgerWriter::open(
            &data.join("ledger").join(format!("{CAMERA}.ledger")),
            CAMERA,
            SigningMode::Enabled(id),
            LedgerOptions::default(),
        )
        .unwrap();
        assert!(report.clean);
        Self {
            _tmp: None,
            data: data.to_path_buf(),
            writer: Some(w),
            frags: Vec::new(),
            segments: Vec::new(),
            next_gop: 1,
            t: T0,
            salt: 1,
            gop_size: 3000,
            init_variant: 0,
        }
    }
    pub fn ledger(&self) -> PathBuf {
        self.data.join("ledger").join(format!("{CAMERA}.ledger"))
    }
    pub fn video(&self) -> PathBuf {
        self.data.join("video").join(CAMERA)
    }
    pub fn seg_path(&self, seq: u64) -> PathBuf {
        self.video().join(format!("{seq:016x}.mp4"))
    }
    pub fn w(&mut self) -> &mut LedgerWriter {
        self.writer.as_mut().unwrap()
    }

    /// Opens segment `seq` and writes `gops` GOPs; closes it if `close`.
    pub fn segment(&mut self, seq: u64, gops: u32, close: bool) {
        fs::create_dir_all(self.video()).unwrap();
        let init = init_bytes(self.init_variant);
        let path = self.seg_path(seq);
        let mut f = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(&init).unwrap();
        self.segments.push((seq, self.t));
        let t = self.t;
        self.w().segment_open(seq, &init, t).unwrap();
        let mut offset = init.len() as u64;
        for _ in 0..gops {
            let gop = self.next_gop;
            self.next_gop += 1;
            let bytes = gop_bytes(gop, self.salt, self.gop_size + (gop as usize % 7) * 13);
            f.write_all(&bytes).unwrap();
            let rec = FragmentRecord {
                segment: seq,
                gop,
                offset,
                length: bytes.len() as u64,
                sha256: sha256(&bytes),
                start_us: self.t,
                duration_us: GOP_US as u64,
                frames: 60,
            };
            self.w().fragment(&rec).unwrap();
            self.frags.push(Frag {
                segment: seq,
                gop,
                offset,
                len: bytes.len() as u64,
                start_us: self.t,
            });
            offset += bytes.len() as u64;
            self.t += GOP_US;
        }
        if close {
            self.w().segment_close(seq, offset).unwrap();
        }
    }

    pub fn close(&mut self) {
        self.writer.take().unwrap().close().unwrap();
    }

    pub fn verify(&self, ca: &TestCa) -> Report {
        self.verify_range(ca, TimeRange::all())
    }
    pub fn verify_range(&self, ca: &TestCa, range: TimeRange) -> Report {
        verify_recording(
            CAMERA,
            &self.ledger(),
            &self.video(),
            range,
            &ca.trust(),
            &mut |_, _| {},
        )
        .unwrap()
    }
    pub fn frags_of(&self, seg: u64) -> Vec<Frag> {
        self.frags
            .iter()
            .filter(|f| f.segment == seg)
            .cloned()
            .collect()
    }
}

/// A standard recording: segments 0..3 of 5 GOPs each, closed, ledger closed.
pub fn standard(ca: &TestCa) -> Rec {
    let mut r = Rec::new(ca.identity("rec-1"));
    for s in 0..3 {
        r.segment(s, 5, true);
    }
    r.close();
    r
}

pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// The header of a format-v3 bundle's `video.mp4` in these tests: the recorded init itself.
/// The test fragments are not real video, so the export's progressive presentation
/// (crates/media `progressive::Evidence`, tested there and end to end) does not apply; what is
/// tested here is the signing and the layout around the header.
pub struct AsRecorded;

impl vigil_signing::bundle::Presenter for AsRecorded {
    fn header(
        &self,
        recorded_init: &[u8],
        _fragments: &[vigil_signing::bundle::FragmentHead],
        _start_us: i64,
    ) -> Result<Vec<u8>, String> {
        Ok(recorded_init.to_vec())
    }
}
