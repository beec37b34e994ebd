//! Verification throughput benchmark (used by bench/verify).
//!
//! Writes N GiB of synthetic recording (64 MiB segments of 1 MiB GOPs, i.e. about 4 Mbit/s with
//! 2 s GOPs) through the real ledger writer, then verifies it and prints GB/s. The segment files
//! are left in place with `--keep` so `sha256sum` / `openssl dgst -sha256` can be timed on the
//! same bytes.
//!
//! `--verify-only` re-verifies what an earlier `--dir PATH --keep` run left there (its CA is
//! kept as PATH/ca.pem), so a benchmark can interleave verification with baseline tools.
//!
//! usage: verify_throughput [--gib N] [--dir PATH] [--keep] [--runs R] [--verify-only]

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use vigil_signing::{
    CaCert, FragmentRecord, LedgerOptions, LedgerWriter, SigningIdentity, SigningMode, TimeRange,
    sha256, verify_recording,
};

const GOP: usize = 1 << 20;
const GOPS_PER_SEGMENT: usize = 64;

fn mp4_box(t: &[u8; 4], payload_len: usize) -> Vec<u8> {
    let mut v = ((payload_len + 8) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(t);
    v
}

/// User + system CPU time of this process (Linux /proc), so results survive a busy machine.
fn cpu_seconds() -> f64 {
    let stat = fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the ")" that ends the command name: utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let mut gib = 1.0f64;
    let mut dir: Option<PathBuf> = None;
    let mut keep = false;
    let mut runs = 3;
    let mut verify_only = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--gib" => {
                gib = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--gib NUMBER")
            }
            "--dir" => dir = Some(args.next().expect("--dir PATH").into()),
            "--keep" => keep = true,
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            "--verify-only" => verify_only = true,
            other => {
                eprintln!(
                    "unknown argument {other}\nusage: verify_throughput [--gib N] [--dir PATH] [--keep] [--runs R] [--verify-only]"
                );
                std::process::exit(2);
            }
        }
    }
    let tmp = if dir.is_none() {
        Some(tempfile::tempdir().expect("temp dir"))
    } else {
        None
    };
    let data = dir.unwrap_or_else(|| tmp.as_ref().expect("temp dir").path().to_path_buf());
    let camera = "cam-bench";
    let video = data.join("video").join(camera);
    let ledger = data.join("ledger").join(format!("{camera}.ledger"));
    if verify_only {
        let ca_pem = fs::read_to_string(data.join("ca.pem"))
            .expect("--verify-only needs the ca.pem of an earlier --dir PATH --keep run");
        verify_runs(camera, &ledger, &video, &ca_pem, runs);
        return;
    }

    // CA and signing key, as the installation would have them.
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, "bench CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca_pem = p.self_signed(&ca_key).unwrap().pem();
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("ca.pem"), &ca_pem).unwrap();
    let id = SigningIdentity::issue(
        &ca_pem,
        &ca_key.serialize_pem(),
        "bench",
        Duration::from_secs(86400),
    )
    .unwrap();

    fs::create_dir_all(&video).unwrap();
    let total_gops = ((gib * (1u64 << 30) as f64) / GOP as f64).ceil() as usize;
    let (mut w, _) = LedgerWriter::open(
        &ledger,
        camera,
        SigningMode::Enabled(id),
        LedgerOptions::default(),
    )
    .unwrap();

    let mut payload = vec![0u8; GOP - 16 - 8 - 8];
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for chunk in payload.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let mut init = mp4_box(b"ftyp", 8);
    init.extend_from_slice(b"isom\0\0\0\0");
    init.extend(mp4_box(b"moov", 32));
    init.extend_from_slice(&[7u8; 32]);

    let t_write = Instant::now();
    let mut t_us = 1_700_000_000_000_000i64;
    let mut gop = 0u32;
    let mut seg = 0u64;
    while (gop as usize) < total_gops {
        let path = video.join(format!("{seg:016x}.mp4"));
        let mut f = File::create(&path).unwrap();
        f.write_all(&init).unwrap();
        w.segment_open(seg, &init, t_us).unwrap();
        let mut off = init.len() as u64;
        for _ in 0..GOPS_PER_SEGMENT {
            if gop as usize >= total_gops {
                break;
            }
            let mut frag = mp4_box(b"moof", 8);
            frag.extend_from_slice(&gop.to_be_bytes());
            frag.extend_from_slice(&seg.to_be_bytes()[..4]);
            frag.extend(mp4_box(b"mdat", payload.len()));
            frag.extend_from_slice(&payload);
            f.write_all(&frag).unwrap();
            w.fragment(&FragmentRecord {
                segment: seg,
                gop,
                offset: off,
                length: frag.len() as u64,
                sha256: sha256(&frag),
                start_us: t_us,
                duration_us: 2_000_000,
                frames: 60,
            })
            .unwrap();
            off += frag.len() as u64;
            t_us += 2_000_000;
            gop += 1;
        }
        w.segment_close(seg, off).unwrap();
        seg += 1;
    }
    w.close().unwrap();
    let write_s = t_write.elapsed().as_secs_f64();
    let ledger_len = fs::metadata(&ledger).unwrap().len();
    println!(
        "wrote {gop} GOPs in {seg} segments ({:.2} GiB) in {write_s:.1} s; ledger {ledger_len} bytes",
        gop as f64 * GOP as f64 / (1u64 << 30) as f64
    );

    verify_runs(camera, &ledger, &video, &ca_pem, runs);
    println!("segments: {}", video.display());
    if keep {
        if let Some(t) = tmp {
            let _ = t.keep();
        }
        println!("kept {}", data.display());
    }
}

fn verify_runs(camera: &str, ledger: &Path, video: &Path, ca_pem: &str, runs: u32) {
    let trust = [CaCert::from_pem(ca_pem).unwrap()];
    let mut best = f64::MAX;
    let mut bytes = 0;
    for run in 1..=runs {
        let t = Instant::now();
        let cpu0 = cpu_seconds();
        let rep = verify_recording(
            camera,
            ledger,
            video,
            TimeRange::all(),
            &trust,
            &mut |_, _| {},
        )
        .unwrap();
        let s = t.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu0;
        assert!(rep.is_verified(), "{}", rep.summary());
        bytes = rep.checked.bytes;
        best = best.min(s);
        println!(
            "run {run}: verified {bytes} bytes in {s:.3} s = {:.2} GB/s (wall); cpu {cpu:.3} s = {:.2} GB/s per core-second",
            bytes as f64 / s / 1e9,
            bytes as f64 / cpu.max(1e-9) / 1e9
        );
    }
    println!(
        "best: {:.2} GB/s ({bytes} bytes)",
        bytes as f64 / best / 1e9
    );
}
