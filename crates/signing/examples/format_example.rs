//! Prints the worked example of docs/signing-format.md: a tiny recording (one segment with two
//! GOPs), its ledger record by record with hashes and raw bytes, and the signature message.
//!
//! usage: format_example [OUTPUT_DIR]   (default: a temporary directory)

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use vigil_signing::record::{Body, RecordReader, signature_message};
use vigil_signing::{
    FragmentRecord, LedgerOptions, LedgerWriter, SigningIdentity, SigningMode, sha256,
};

fn mp4_box(t: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut v = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(t);
    v.extend_from_slice(payload);
    v
}

fn hexdump(b: &[u8]) -> String {
    b.chunks(32)
        .map(hex::encode)
        .collect::<Vec<_>>()
        .join("\n    ")
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let out: PathBuf = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name
        .push(DnType::CommonName, "Example Vigil CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca_pem = p.self_signed(&ca_key).unwrap().pem();
    fs::create_dir_all(&out).unwrap();
    fs::write(out.join("ca.pem"), &ca_pem).unwrap();
    let id = SigningIdentity::issue(
        &ca_pem,
        &ca_key.serialize_pem(),
        "rec-1",
        Duration::from_secs(86400),
    )
    .unwrap();

    let camera = "cam-1";
    let ledger = out.join("ledger").join("cam-1.ledger");
    let video = out.join("video").join(camera);
    fs::create_dir_all(&video).unwrap();
    let (mut w, _) = LedgerWriter::open(
        &ledger,
        camera,
        SigningMode::Enabled(id),
        LedgerOptions::default(),
    )
    .unwrap();

    let mut init = mp4_box(b"ftyp", b"isom\0\0\x02\0");
    init.extend(mp4_box(b"moov", b"(example moov)"));
    let mut file = init.clone();
    let t0 = 1_714_564_800_000_000i64; // 2024-05-01T12:00:00Z
    w.segment_open(0, &init, t0).unwrap();
    println!("segment file video/{camera}/0000000000000000.mp4");
    println!(
        "  init (ftyp+moov), {} bytes, sha256 {}",
        init.len(),
        hex::encode(sha256(&init))
    );
    println!("    {}", hexdump(&init));
    for gop in 1..=2u32 {
        let mut frag = mp4_box(b"moof", format!("(moof of GOP {gop})").as_bytes());
        frag.extend(mp4_box(
            b"mdat",
            format!("(coded frames of GOP {gop})").as_bytes(),
        ));
        let rec = FragmentRecord {
            segment: 0,
            gop,
            offset: file.len() as u64,
            length: frag.len() as u64,
            sha256: sha256(&frag),
            start_us: t0 + (gop as i64 - 1) * 2_000_000,
            duration_us: 2_000_000,
            frames: 60,
        };
        println!(
            "  fragment GOP {gop} at byte {}, {} bytes, sha256 {}",
            rec.offset,
            rec.length,
            hex::encode(rec.sha256)
        );
        println!("    {}", hexdump(&frag));
        file.extend_from_slice(&frag);
        w.fragment(&rec).unwrap();
    }
    fs::write(video.join("0000000000000000.mp4"), &file).unwrap();
    w.segment_close(0, file.len() as u64).unwrap();
    w.close().unwrap();

    let bytes = fs::read(&ledger).unwrap();
    println!(
        "\nledger ledger/{camera}.ledger, {} bytes; magic {:?}",
        bytes.len(),
        String::from_utf8_lossy(&bytes[..8])
    );
    let mut r = RecordReader::new(&bytes[..]).unwrap();
    while let Some(rec) = r.next_record().unwrap() {
        let raw = &bytes[rec.offset as usize..(rec.offset + rec.encoded_len) as usize];
        println!(
            "\nrecord seq {} type 0x{:02x} {} at byte {}, {} bytes (body {})",
            rec.seq,
            rec.body.type_code(),
            rec.body.type_name(),
            rec.offset,
            rec.encoded_len,
            rec.encoded_len - 36
        );
        println!("  prev   {}", hex::encode(rec.prev));
        println!("  hash   {}", hex::encode(rec.hash));
        match &rec.body {
            Body::Genesis {
                camera_id,
                created_us,
                cert_der,
                ..
            } => {
                println!(
                    "  camera {camera_id:?}, created_us {created_us}, certificate {} bytes DER",
                    cert_der.len()
                );
            }
            Body::Signature {
                signed_at_us,
                key_id,
                signature,
            } => {
                let msg = signature_message(camera, rec.seq - 1, &rec.prev, *signed_at_us);
                println!(
                    "  signed_at_us {signed_at_us}, key_id {}",
                    hex::encode(key_id)
                );
                println!("  signature {}", hex::encode(signature));
                println!(
                    "  signed message ({} bytes):\n    {}",
                    msg.len(),
                    hexdump(&msg)
                );
            }
            other => println!("  {other:?}"),
        }
        if raw.len() <= 200 {
            println!("  raw:\n    {}", hexdump(raw));
        }
    }
    if std::env::args().nth(1).is_some() {
        println!("\nfiles kept in {}", out.display());
    }
}
