//! A data directory with recorded, signed video for the archive tests: a camera whose
//! segments (two one-second GOPs each) were written through the store and entered in the
//! evidence ledger by the recorder's own observer, then signed and closed.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use vigil_media::evidence::{Evidence, Signing, signing_dir};
use vigil_media::fmp4::{self, TrackParams};
use vigil_media::gop::{Frame, gop_samples};
use vigil_media::store::{Camera, NewCamera, Store, ticks_to_us};
use vigil_signing::{CaCert, SigningIdentity, TimeRange, verify_recording};

pub const FRAME_TICKS: i64 = 3600;
pub const GOP_FRAMES: usize = 25;
pub const GOP_TICKS: i64 = FRAME_TICKS * GOP_FRAMES as i64;
pub const GOPS_PER_SEGMENT: i64 = 2;

pub struct Recorded {
    pub dir: tempfile::TempDir,
    pub store: Arc<Store>,
    pub camera: Camera,
    pub ca_pem: String,
}

impl Recorded {
    /// A camera with `segments` closed, signed segments.
    pub fn new(segments: i64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::init(dir.path()).unwrap();
        let camera = store
            .add_camera(&NewCamera {
                name: "door".into(),
                url: "rtsp://127.0.0.1:8554/a".into(),
                ..Default::default()
            })
            .unwrap();
        let ca_pem = signing_identity(dir.path());
        let evidence = Evidence::new(dir.path(), Signing::On).unwrap();
        let mut observer = evidence.observer(&camera.id).unwrap();
        let init = fmp4::init_segment(&h264_params()).unwrap();
        for s in 0..segments {
            let first = s * GOPS_PER_SEGMENT;
            let start_us = camera.time_origin_us + ticks_to_us((first * GOP_TICKS) as u64);
            let mut seg = store
                .begin_segment(&camera.id, &init, "avc1.4d401e", start_us)
                .unwrap();
            observer.segment_opened(&seg, &init);
            for k in first..first + GOPS_PER_SEGMENT {
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
                        &store,
                        &[&bytes],
                        k + 1,
                        camera.time_origin_us + ticks_to_us(g.base_decode_time),
                        ticks_to_us(g.duration),
                        frames.len() as i64,
                    )
                    .unwrap();
                observer.fragment_written(&row);
            }
            let (seq, len) = (seg.seq, seg.len());
            seg.close(&store).unwrap();
            observer.segment_closed(seq, len);
        }
        drop(observer);
        evidence.close_all();
        Self {
            dir,
            store: Arc::new(store),
            camera,
            ca_pem,
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A time by which every segment is older than `after`.
    pub fn later(&self, by: Duration) -> i64 {
        vigil_media::store::now_us() + by.as_micros() as i64
    }

    /// `vigil verify`'s verdict over the camera's whole recording, from the files on disk.
    pub fn verify(&self) -> vigil_signing::Report {
        let ca = CaCert::from_pem(&self.ca_pem).unwrap();
        verify_recording(
            &self.camera.id,
            &vigil_media::evidence::ledger_path(self.root(), &self.camera.id),
            &self.store.camera_dir(&self.camera.id),
            TimeRange::all(),
            &[ca],
            &mut |_, _| {},
        )
        .unwrap()
    }

    pub fn local_files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.store.camera_dir(&self.camera.id))
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|n| n.ends_with(".mp4"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

/// Makes a CA and a signing identity it issued, saves the identity where the recorder loads
/// it, and returns the CA certificate (PEM).
fn signing_identity(data_dir: &Path) -> String {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name
        .push(DnType::CommonName, "vigil-archive test CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert_pem = p.self_signed(&key).unwrap().pem();
    let id = SigningIdentity::issue(
        &cert_pem,
        &key.serialize_pem(),
        "rec-test",
        Duration::from_secs(86400),
    )
    .unwrap();
    id.save(&signing_dir(data_dir)).unwrap();
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

/// The frames of GOP `k` of the camera's timeline: one keyframe and 24 others, each a
/// length-prefixed NAL unit tagged with its GOP and index.
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
