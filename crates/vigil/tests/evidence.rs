//! Evidence integrity end to end (features E1-E3): the real `vigil` binary records a real
//! GStreamer RTSP server, then each test damages its own copy of that recording the way an
//! attacker (or a crash) would, and checks that `vigil verify CAMERA --json` names the right
//! kind of failure at the right recorded time. Export bundles are checked offline.
//!
//! To keep the file light on 2 cores, one pristine recording (plus one from a second
//! installation, for the foreign-data cases) is made once per test binary and copied into each
//! tamper test; retention, `kill -9` and restart need recordings of their own.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{Vigil, bin};
use serde_json::Value;
use vigil_signing::record::{Body, LEDGER_MAGIC, Record, RecordReader, encode_record};
use vigil_testkit::{Auth, Clip, RtspPeer, require_tool};

const CAM: &str = "cam1";

/// 0.5 s GOPs, so that 2 s segments hold about four GOPs each.
fn clip() -> Clip {
    Clip::h264(10, 30, 15, 640, 360, false)
}

// ---------------------------------------------------------------- the shared recordings

/// Two installations that recorded the same camera at the same time, both stopped cleanly.
struct Pristine {
    ours: PathBuf,
    theirs: PathBuf,
}

/// Fixture directories live under the target dir; those of test processes that are gone are
/// removed when a new one is made.
fn fixtures_base() -> PathBuf {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("evidence-fixtures");
    fs::create_dir_all(&base).unwrap();
    for e in fs::read_dir(&base).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("pid-")
            && pid.parse::<u32>().is_ok_and(|p| p != std::process::id())
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = fs::remove_dir_all(e.path());
        }
    }
    let mine = base.join(format!("pid-{}", std::process::id()));
    fs::create_dir_all(&mine).unwrap();
    mine
}

fn pristine() -> &'static Pristine {
    static P: OnceLock<Pristine> = OnceLock::new();
    P.get_or_init(|| {
        require_tool("ffprobe");
        let base = fixtures_base();
        let clip = clip();
        let peer = RtspPeer::start(&[("cam", &clip)], Auth::None);
        let ours = Vigil::init_in(tempfile::tempdir_in(&base).unwrap(), 2);
        let theirs = Vigil::init_in(tempfile::tempdir_in(&base).unwrap(), 2);
        ours.add_camera(CAM, &peer.url("cam"));
        theirs.add_camera(CAM, &peer.url("cam"));
        let (s1, s2) = (ours.serve(), theirs.serve());
        ours.wait_recorded(CAM, 10.0, Duration::from_secs(90));
        theirs.wait_recorded(CAM, 6.0, Duration::from_secs(60));
        assert!(s1.stop().contains("Stopped cleanly"));
        assert!(s2.stop().contains("Stopped cleanly"));
        Pristine {
            ours: ours.dir.keep(),
            theirs: theirs.dir.keep(),
        }
    })
}

/// A private copy of a pristine installation, with its config pointing at the copy.
fn copy_of(src: &Path) -> Vigil {
    let dir = tempfile::tempdir().unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(src.join("data"))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(st.success());
    let data = dir.path().join("data");
    let config = data.join("vigil.toml");
    let old = src.join("data").canonicalize().unwrap();
    let new = data.canonicalize().unwrap();
    let text = fs::read_to_string(&config).unwrap();
    let old_s = old.to_str().unwrap();
    assert!(text.contains(old_s), "config does not name {old_s}");
    fs::write(&config, text.replace(old_s, new.to_str().unwrap())).unwrap();
    Vigil { dir, data, config }
}

fn ours() -> Vigil {
    copy_of(&pristine().ours)
}

// ---------------------------------------------------------------- index and files

/// One GOP as the index database has it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Gop {
    seq: u64,
    gop_no: u64,
    start_us: i64,
    duration_us: i64,
    offset: u64,
    len: u64,
}

/// Runs SQL on the index with Python's sqlite3 module (the binary crate has no SQLite
/// dependency of its own); returns the rows as JSON arrays.
fn sql(v: &Vigil, query: &str) -> Vec<Vec<Value>> {
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(
            "import sqlite3,json,sys\n\
             c=sqlite3.connect(sys.argv[1])\n\
             rows=c.execute(sys.argv[2]).fetchall()\n\
             c.commit()\n\
             print(json.dumps([list(r) for r in rows]))",
        )
        .arg(v.data.join("vigil.db"))
        .arg(query)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sqlite3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn camera_id(v: &Vigil) -> String {
    let rows = sql(v, &format!("SELECT id FROM cameras WHERE name = '{CAM}'"));
    rows[0][0].as_str().unwrap().to_owned()
}

fn gops(v: &Vigil) -> Vec<Gop> {
    sql(
        v,
        "SELECT seq, gop_no, start_us, duration_us, offset, len FROM gops ORDER BY gop_no",
    )
    .into_iter()
    .map(|r| {
        let n = |i: usize| r[i].as_i64().unwrap();
        Gop {
            seq: n(0) as u64,
            gop_no: n(1) as u64,
            start_us: n(2),
            duration_us: n(3),
            offset: n(4) as u64,
            len: n(5) as u64,
        }
    })
    .collect()
}

/// GOPs per segment, in segment order.
fn by_segment(gops: &[Gop]) -> BTreeMap<u64, Vec<Gop>> {
    let mut m: BTreeMap<u64, Vec<Gop>> = BTreeMap::new();
    for g in gops {
        m.entry(g.seq).or_default().push(g.clone());
    }
    m
}

/// A segment in the middle of the recording with at least `min_gops` GOPs.
fn middle_segment(v: &Vigil, min_gops: usize) -> (u64, Vec<Gop>) {
    let segs = by_segment(&gops(v));
    let keys: Vec<u64> = segs.keys().copied().collect();
    assert!(keys.len() >= 4, "too few segments recorded: {segs:?}");
    let inner = &keys[1..keys.len() - 1];
    let pick = inner
        .iter()
        .copied()
        .cycle()
        .skip(inner.len() / 2)
        .take(inner.len())
        .find(|k| segs[k].len() >= min_gops)
        .unwrap_or_else(|| panic!("no inner segment with {min_gops} GOPs: {segs:?}"));
    (pick, segs[&pick].clone())
}

fn seg_path(v: &Vigil, seq: u64) -> PathBuf {
    v.data
        .join("video")
        .join(camera_id(v))
        .join(format!("{seq:016x}.mp4"))
}

fn ledger_path(v: &Vigil) -> PathBuf {
    v.data
        .join("ledger")
        .join(format!("{}.ledger", camera_id(v)))
}

fn ledger_records(path: &Path) -> Vec<Record> {
    let bytes = fs::read(path).unwrap();
    let mut r = RecordReader::new(&bytes[..]).unwrap();
    let mut v = Vec::new();
    while let Some(x) = r.next_record().unwrap() {
        v.push(x);
    }
    v
}

// ---------------------------------------------------------------- verify

/// `vigil verify CAMERA --json`: exit code and report.
fn verify(v: &Vigil) -> (i32, Value) {
    let out = v.cmd(&["verify", CAM, "--json"]);
    parse_report(&out)
}

fn parse_report(out: &Output) -> (i32, Value) {
    let code = out.status.code().expect("verify exited by a signal");
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify printed no JSON report ({e}), exit {code}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, json)
}

/// Exit 1 (tampering) with `kind` at the recorded instant `at_us`.
fn assert_tampered(got: &(i32, Value), kind: &str, at_us: i64) -> Value {
    let (code, rep) = got;
    let f = &rep["failure"];
    assert_eq!(f["kind"], kind, "wrong kind: {rep:#}");
    assert_eq!(f["at_us"].as_i64(), Some(at_us), "wrong time: {rep:#}");
    assert_eq!(*code, 1, "tampering must exit 1: {rep:#}");
    f.clone()
}

fn assert_verified(got: &(i32, Value)) {
    let (code, rep) = got;
    assert!(rep["failure"].is_null(), "not verified: {rep:#}");
    assert_eq!(*code, 0, "{rep:#}");
}

fn flip(path: &Path, at: u64) {
    let mut b = fs::read(path).unwrap();
    b[at as usize] ^= 0x5a;
    fs::write(path, b).unwrap();
}

// ---------------------------------------------------------------- the tamper matrix

#[test]
fn untouched_recording_verifies_and_counts_every_gop() {
    let v = ours();
    let all = gops(&v);
    let got = verify(&v);
    assert_verified(&got);
    let c = &got.1["checked"];
    assert_eq!(c["fragments"].as_u64(), Some(all.len() as u64), "{c}");
    assert_eq!(
        c["segments"].as_u64(),
        Some(by_segment(&all).len() as u64),
        "{c}"
    );
    let bytes: u64 = v
        .segment_files()
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(c["bytes"].as_u64(), Some(bytes), "{c}");
    assert_eq!(c["first_us"].as_i64(), Some(all[0].start_us));
    let last = all.last().unwrap();
    assert_eq!(
        c["last_us"].as_i64(),
        Some(last.start_us + last.duration_us)
    );
    // The human form says the same.
    let text = v.ok(&["verify", CAM]);
    assert!(text.contains("verified:"), "{text}");
}

#[test]
fn one_flipped_byte_in_a_fragment_is_modified() {
    let v = ours();
    let (seq, g) = middle_segment(&v, 3);
    let victim = &g[1];
    flip(&seg_path(&v, seq), victim.offset + victim.len / 2);
    let f = assert_tampered(&verify(&v), "modified", victim.start_us);
    assert_eq!(f["segment"].as_u64(), Some(seq));
    assert!(
        f["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("GOP {}", victim.gop_no)),
        "{f}"
    );
}

#[test]
fn deleted_segment_file_is_missing() {
    let v = ours();
    let (seq, g) = middle_segment(&v, 1);
    fs::remove_file(seg_path(&v, seq)).unwrap();
    let f = assert_tampered(&verify(&v), "missing", g[0].start_us);
    assert_eq!(f["segment"].as_u64(), Some(seq));
}

#[test]
fn gop_cut_out_of_the_middle_of_a_segment_is_missing() {
    let v = ours();
    let (seq, g) = middle_segment(&v, 3);
    let victim = &g[1];
    let path = seg_path(&v, seq);
    let mut b = fs::read(&path).unwrap();
    b.drain(victim.offset as usize..(victim.offset + victim.len) as usize);
    fs::write(&path, b).unwrap();
    let f = assert_tampered(&verify(&v), "missing", victim.start_us);
    assert!(f["detail"].as_str().unwrap().contains("removed"), "{f}");
}

#[test]
fn swapped_segment_files_are_reordered() {
    let v = ours();
    let (a, g) = middle_segment(&v, 1);
    let b = a + 1;
    let (pa, pb) = (seg_path(&v, a), seg_path(&v, b));
    assert!(pb.exists(), "segment {b} follows {a}");
    let tmp = pa.with_extension("tmp");
    fs::rename(&pa, &tmp).unwrap();
    fs::rename(&pb, &pa).unwrap();
    fs::rename(&tmp, &pb).unwrap();
    let f = assert_tampered(&verify(&v), "reordered", g[0].start_us);
    assert_eq!(f["segment"].as_u64(), Some(a));
}

#[test]
fn truncated_last_segment_is_truncated() {
    let v = ours();
    let segs = by_segment(&gops(&v));
    let (&last, g) = segs.iter().next_back().unwrap();
    let victim = &g[g.len() - 1];
    let path = seg_path(&v, last);
    let original = fs::read(&path).unwrap();
    // At a fragment boundary: the last GOP is gone.
    fs::write(&path, &original[..victim.offset as usize]).unwrap();
    let f = assert_tampered(&verify(&v), "truncated", victim.start_us);
    assert!(
        f["detail"]
            .as_str()
            .unwrap()
            .contains("signed GOP(s) are gone"),
        "{f}"
    );
    // Inside the fragment.
    fs::write(
        &path,
        &original[..(victim.offset + victim.len / 2) as usize],
    )
    .unwrap();
    let f = assert_tampered(&verify(&v), "truncated", victim.start_us);
    assert!(f["detail"].as_str().unwrap().contains("ends inside"), "{f}");
}

/// The index is not trusted: the timestamps export and playback rely on are checked against
/// the signed ledger, and an edit is reported at the GOP's signed (true) time.
#[test]
fn edited_timestamps_in_the_index_database_are_detected() {
    let v = ours();
    let (_, g) = middle_segment(&v, 2);
    let victim = &g[1];
    sql(
        &v,
        &format!(
            "UPDATE gops SET start_us = start_us - 3600000000 WHERE gop_no = {}",
            victim.gop_no
        ),
    );
    // The media still verify on their own; the index no longer agrees with them.
    let f = assert_tampered(&verify(&v), "modified", victim.start_us);
    let d = f["detail"].as_str().unwrap();
    assert!(d.contains("index"), "{f}");
    assert!(d.contains(&format!("GOP {}", victim.gop_no)), "{f}");
}

#[test]
fn deleted_ledger_records_are_missing() {
    let v = ours();
    let path = ledger_path(&v);
    let recs = ledger_records(&path);
    let segs = by_segment(&gops(&v));
    let (first, last) = (
        *segs.keys().next().unwrap(),
        *segs.keys().next_back().unwrap(),
    );
    // Two adjacent fragment records after a third one, all of one inner segment.
    let frag_of = |r: &Record| match &r.body {
        Body::Fragment(f) if f.segment != first && f.segment != last => Some(f.segment),
        _ => None,
    };
    let i = (recs.len() / 3..recs.len() - 1)
        .chain(1..recs.len() / 3)
        .find(|&i| {
            let s = frag_of(&recs[i]);
            s.is_some() && frag_of(&recs[i - 1]) == s && frag_of(&recs[i + 1]) == s
        })
        .expect("three adjacent fragment records in an inner segment");
    let Body::Fragment(before) = &recs[i - 1].body else {
        unreachable!()
    };
    let mut bytes = fs::read(&path).unwrap();
    bytes.drain(recs[i].offset as usize..(recs[i + 1].offset + recs[i + 1].encoded_len) as usize);
    fs::write(&path, bytes).unwrap();
    // Reported at the last intact record: the GOP right before the removed ones.
    let index_before = gops(&v)
        .into_iter()
        .find(|g| g.gop_no == u64::from(before.gop))
        .unwrap();
    let f = assert_tampered(&verify(&v), "missing", index_before.start_us);
    assert!(
        f["detail"].as_str().unwrap().contains("were removed"),
        "{f}"
    );
}

/// Vigil's key file is PKCS#8 v2 (with the public key), which OpenSSL 3.0 does not load; the
/// attacker rewrites it as PKCS#8 v1 (RFC 8410) around the same 32-byte seed.
fn openssl_readable_key(vigil_key: &Path, out: &Path) {
    let b64: String = fs::read_to_string(vigil_key)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(|l| format!("{l}\n"))
        .collect();
    let b64_path = out.with_extension("b64");
    fs::write(&b64_path, b64).unwrap();
    let r = Command::new("openssl")
        .args(["base64", "-d", "-in"])
        .arg(&b64_path)
        .output()
        .unwrap();
    assert!(r.status.success());
    let der = r.stdout;
    // PrivateKey OCTET STRING wrapping the CurvePrivateKey OCTET STRING: 04 22 04 20 <seed>.
    let at = der
        .windows(4)
        .position(|w| w == [0x04, 0x22, 0x04, 0x20])
        .expect("an Ed25519 PKCS#8 key");
    let mut v1 = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    v1.extend_from_slice(&der[at + 4..at + 36]);
    let der_path = out.with_extension("der");
    fs::write(&der_path, v1).unwrap();
    let r = Command::new("openssl")
        .args(["pkey", "-inform", "DER", "-in"])
        .arg(&der_path)
        .arg("-out")
        .arg(out)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
}

/// Ed25519-signs `msg` with a PEM key using the openssl command line (the attacker's own tool).
fn openssl_sign(key: &Path, msg: &[u8], tmp: &Path) -> [u8; 64] {
    let m = tmp.join("msg");
    let s = tmp.join("sig");
    fs::write(&m, msg).unwrap();
    let out = Command::new("openssl")
        .args(["pkeyutl", "-sign", "-rawin", "-inkey"])
        .arg(key)
        .arg("-in")
        .arg(&m)
        .arg("-out")
        .arg(&s)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::read(&s).unwrap().try_into().unwrap()
}

/// The attacker edits a GOP, fixes its ledger record so the chain is consistent again, and
/// re-signs every signature from there on with a real Vigil signing key of an installation
/// the verifier does not trust.
#[test]
fn modified_ledger_resigned_with_an_untrusted_key_is_unknown_key() {
    require_tool("openssl");
    let v = ours();
    let (seq, g) = middle_segment(&v, 1);
    let victim = &g[0];
    let seg = seg_path(&v, seq);
    flip(&seg, victim.offset + victim.len / 2);
    let bytes = fs::read(&seg).unwrap();
    let new_hash = vigil_signing::sha256(
        &bytes[victim.offset as usize..(victim.offset + victim.len) as usize],
    );

    let evil_dir = pristine().theirs.join("data/keys/signing");
    let evil = vigil_signing::SigningIdentity::load(&evil_dir).unwrap();
    let evil_key = v.dir.path().join("evil.pem");
    openssl_readable_key(&evil_dir.join(vigil_signing::keys::KEY_FILE), &evil_key);
    let cam = camera_id(&v);
    let path = ledger_path(&v);
    let mut out = LEDGER_MAGIC.to_vec();
    let mut prev = [0u8; 32];
    let mut buf = Vec::new();
    let mut forging = false;
    for rec in ledger_records(&path) {
        let body = match rec.body {
            Body::Fragment(mut f) if f.gop as u64 == victim.gop_no => {
                f.sha256 = new_hash;
                forging = true;
                Body::Fragment(f)
            }
            Body::Signature { signed_at_us, .. } if forging => {
                let msg = vigil_signing::record::signature_message(
                    &cam,
                    rec.seq - 1,
                    &prev,
                    signed_at_us,
                );
                Body::Signature {
                    signed_at_us,
                    key_id: evil.key_id(),
                    signature: openssl_sign(&evil_key, &msg, v.dir.path()),
                }
            }
            b => b,
        };
        prev = encode_record(rec.seq, &prev, &body, &mut buf);
        out.extend_from_slice(&buf);
    }
    assert!(forging);
    fs::write(&path, out).unwrap();
    let f = assert_tampered(&verify(&v), "unknown-key", victim.start_us);
    assert!(
        f["detail"]
            .as_str()
            .unwrap()
            .contains("no trusted certificate"),
        "{f}"
    );
}

/// A complete, internally consistent recording (files and ledger) of another installation
/// put in place of ours.
#[test]
fn consistent_recording_of_another_installation_is_unknown_key() {
    let v = ours();
    let theirs = copy_of(&pristine().theirs);
    let our_video = v.data.join("video").join(camera_id(&v));
    fs::remove_dir_all(&our_video).unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(theirs.data.join("video").join(camera_id(&theirs)))
        .arg(&our_video)
        .status()
        .unwrap();
    assert!(st.success());
    fs::copy(ledger_path(&theirs), ledger_path(&v)).unwrap();
    // It verifies where it was made ...
    assert_verified(&verify(&theirs));
    // ... and not here. The failure is at the swapped-in ledger's very first record.
    let Body::Genesis { created_us, .. } = ledger_records(&ledger_path(&v))[0].body else {
        panic!("no genesis")
    };
    let f = assert_tampered(&verify(&v), "unknown-key", created_us);
    assert!(
        f["detail"]
            .as_str()
            .unwrap()
            .contains("not issued by a trusted CA"),
        "{f}"
    );
    assert!(created_us <= gops(&theirs)[0].start_us);
}

/// A segment file of another installation's recording of the same scene, dropped in after
/// our last segment.
#[test]
fn foreign_segment_file_is_inserted() {
    let v = ours();
    let theirs = copy_of(&pristine().theirs);
    let (their_seq, _) = middle_segment(&theirs, 1);
    let all = gops(&v);
    let last = all.last().unwrap();
    let new_seq = last.seq + 1;
    fs::copy(seg_path(&theirs, their_seq), seg_path(&v, new_seq)).unwrap();
    let f = assert_tampered(&verify(&v), "inserted", last.start_us + last.duration_us);
    assert_eq!(f["segment"].as_u64(), Some(new_seq));
}

/// A GOP of another recording spliced into the middle of one of our segments.
#[test]
fn foreign_gop_spliced_into_a_segment_is_inserted() {
    let v = ours();
    let theirs = copy_of(&pristine().theirs);
    let (their_seq, tg) = middle_segment(&theirs, 1);
    let tb = fs::read(seg_path(&theirs, their_seq)).unwrap();
    let foreign = &tb[tg[0].offset as usize..(tg[0].offset + tg[0].len) as usize];
    let (seq, g) = middle_segment(&v, 3);
    let at = &g[2];
    let path = seg_path(&v, seq);
    let mut b = fs::read(&path).unwrap();
    b.splice(
        at.offset as usize..at.offset as usize,
        foreign.iter().copied(),
    );
    fs::write(&path, b).unwrap();
    let f = assert_tampered(&verify(&v), "inserted", at.start_us);
    assert!(f["detail"].as_str().unwrap().contains("inserted"), "{f}");
}

// ---------------------------------------------------------------- legitimate events

#[test]
fn retention_pruning_then_verify_is_verified() {
    let clip = clip();
    let peer = RtspPeer::start(&[("cam", &clip)], Auth::None);
    let v = Vigil::init(2);
    v.ok(&[
        "camera",
        "add",
        CAM,
        "--url",
        &peer.url("cam"),
        "--max-age",
        "4s",
    ]);
    let server = v.serve();
    v.wait_recorded(CAM, 3.0, Duration::from_secs(60));
    let first_start = gops(&v)[0].start_us;
    // Retention runs every 10 s; wait until it deleted the oldest segment.
    let t0 = Instant::now();
    while gops(&v).first().is_some_and(|g| g.start_us == first_start) {
        assert!(
            t0.elapsed() < Duration::from_secs(40),
            "retention never pruned: {}",
            server.output()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(server.stop().contains("Stopped cleanly"));
    let got = verify(&v);
    assert_verified(&got);
    let rep = &got.1;
    let pruned: Vec<&Value> = rep["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "pruned")
        .collect();
    assert!(!pruned.is_empty(), "{rep:#}");
    // Only what is still on disk was checked, and all of it.
    let left = gops(&v);
    assert_eq!(
        rep["checked"]["fragments"].as_u64(),
        Some(left.len() as u64)
    );
    assert_eq!(
        rep["checked"]["segments"].as_u64(),
        Some(v.segment_files().len() as u64)
    );
    for p in &pruned {
        let seq = p["segment"].as_u64().unwrap();
        assert!(!seg_path(&v, seq).exists(), "pruned {seq} still on disk");
    }
}

/// Right after `kill -9` only the unsigned tail is reported (exit 2, no tampering). After a
/// restart the restarted server records the unclean shutdown and vouches for what the crashed
/// run wrote: the whole recording verifies, with the crash as a signed event.
#[test]
fn kill_9_leaves_only_an_unsigned_tail_which_a_restart_covers() {
    let clip = clip();
    let peer = RtspPeer::start(&[("cam", &clip)], Auth::None);
    let v = Vigil::init(2);
    v.add_camera(CAM, &peer.url("cam"));
    let server = v.serve();
    v.wait_recorded(CAM, 6.0, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(1300));
    server.kill9();

    let before = gops(&v);
    let (code, rep) = verify(&v);
    let f = &rep["failure"];
    assert_eq!(f["kind"], "unsigned", "{rep:#}");
    assert_eq!(code, 2, "{rep:#}");
    let at = f["at_us"].as_i64().unwrap();
    assert!(
        at >= before[0].start_us,
        "unsigned from {at}, before the recording began: {rep:#}"
    );
    // Everything up to the last signature verified: only a short tail is unsigned.
    let checked = rep["checked"]["fragments"].as_u64().unwrap();
    assert!(checked >= 4, "{rep:#}");
    assert!(!rep["unsigned"].as_array().unwrap().is_empty(), "{rep:#}");

    // Restart (recovery truncates a torn fragment, re-indexes GOPs), record more, stop.
    let server = v.serve();
    let recorded = v.recorded_secs(CAM);
    v.wait_recorded(CAM, recorded + 3.0, Duration::from_secs(60));
    let out = server.stop();
    assert!(out.contains("Recovery:"), "{out}");
    let got = verify(&v);
    assert_verified(&got);
    let rep = &got.1;
    assert!(
        rep["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "unclean-shutdown"),
        "{rep:#}"
    );
    // The time the crash cost is a signed gap, not a failure.
    assert!(
        rep["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "gap" && e["reason"] == "unclean shutdown"),
        "{rep:#}"
    );
    assert!(rep["unsigned"].as_array().unwrap().is_empty(), "{rep:#}");
    assert_eq!(
        rep["checked"]["fragments"].as_u64(),
        Some(gops(&v).len() as u64),
        "every GOP the index knows is covered: {rep:#}"
    );
}

// ---------------------------------------------------------------- export bundles

fn ca_fingerprint(v: &Vigil) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(v.data.join("pki/ca.crt"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    text.trim().rsplit('=').next().unwrap().to_owned()
}

/// A bundle of everything, copied away from the data directory, which is then deleted.
struct Bundle {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    fingerprint: String,
    ca_pem: PathBuf,
    gops: Vec<Gop>,
}

fn bundle() -> Bundle {
    require_tool("openssl");
    let v = ours();
    let out = v.dir.path().join("bundle/");
    let said = v.export_all(CAM, &out);
    assert!(said.contains("wrote evidence bundle"), "{said}");
    let tmp = tempfile::tempdir().unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(&out)
        .arg(tmp.path().join("evidence"))
        .status()
        .unwrap();
    assert!(st.success());
    let ca_pem = tmp.path().join("trusted-ca.pem");
    fs::copy(v.data.join("pki/ca.crt"), &ca_pem).unwrap();
    let b = Bundle {
        dir: tmp.path().join("evidence"),
        fingerprint: ca_fingerprint(&v),
        ca_pem,
        gops: gops(&v),
        _tmp: tmp,
    };
    drop(v); // no server, no database, no ledger from here on
    b
}

/// `vigil verify DIR ...` run from a directory without any Vigil configuration.
fn verify_bundle(dir: &Path, trust: &[&str]) -> Output {
    let cwd = dir.parent().unwrap();
    Command::new(bin())
        .arg("--config")
        .arg(cwd.join("no-such-vigil.toml"))
        .arg("verify")
        .arg(dir)
        .args(trust)
        .current_dir(cwd)
        .env("VIGIL_LOG", "warn")
        .output()
        .unwrap()
}

fn verify_bundle_json(b: &Bundle) -> (i32, Value) {
    parse_report(&verify_bundle(
        &b.dir,
        &["--fingerprint", &b.fingerprint, "--json"],
    ))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bundle_verifies_offline_on_a_copy_with_fingerprint_or_ca() {
    let b = bundle();
    let (code, rep) = verify_bundle_json(&b);
    assert_eq!(code, 0, "{rep:#}");
    assert!(rep["recording"]["failure"].is_null(), "{rep:#}");
    assert_eq!(rep["export"]["valid"], true, "{rep:#}");
    assert_eq!(
        rep["recording"]["checked"]["fragments"].as_u64(),
        Some(b.gops.len() as u64),
        "{rep:#}"
    );
    assert_eq!(
        rep["ca_fingerprint"].as_str().unwrap(),
        b.fingerprint.replace(':', "").to_lowercase()
    );
    let out = verify_bundle(&b.dir, &["--ca", b.ca_pem.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.contains("recording: verified"), "{text}");
    assert!(text.contains("export signature valid"), "{text}");

    // A configuration naming no installation (no access.db) does not stop the verification
    // and creates nothing; it only says the verification is not in an audit log.
    let cwd = b.dir.parent().unwrap();
    let elsewhere = cwd.join("not-an-installation");
    fs::write(
        cwd.join("vigil.toml"),
        format!("data_dir = \"{}\"\n", elsewhere.display()),
    )
    .unwrap();
    let out = Command::new(bin())
        .arg("verify")
        .arg(&b.dir)
        .args(["--fingerprint", &b.fingerprint])
        .current_dir(cwd)
        .env("VIGIL_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not recorded in an audit log"),
        "{}",
        stderr(&out)
    );
    assert!(
        !elsewhere.exists(),
        "verify created {}",
        elsewhere.display()
    );
}

#[test]
fn bundle_with_a_changed_mp4_byte_fails() {
    let b = bundle();
    let video = b.dir.join("video.mp4");
    let m: Value = serde_json::from_slice(&fs::read(b.dir.join("manifest.json")).unwrap()).unwrap();
    let frag = &m["fragments"][2];
    let off = frag["offset"].as_u64().unwrap() + frag["length"].as_u64().unwrap() / 2;
    flip(&video, off);
    let (code, rep) = verify_bundle_json(&b);
    assert_eq!(code, 1, "{rep:#}");
    let f = &rep["recording"]["failure"];
    assert_eq!(f["kind"], "modified", "{rep:#}");
    assert_eq!(f["at_us"], frag["start_us"], "{rep:#}");
    assert_eq!(rep["export"]["valid"], false);
    assert!(
        rep["export"]["problem"]
            .as_str()
            .unwrap()
            .contains("video.mp4 was changed after export"),
        "{rep:#}"
    );
}

#[test]
fn bundle_with_a_changed_manifest_byte_fails() {
    let b = bundle();
    let path = b.dir.join("manifest.json");
    let text = fs::read_to_string(&path).unwrap();
    let m: Value = serde_json::from_str(&text).unwrap();
    let frag = &m["fragments"][1];
    let hash = frag["sha256"].as_str().unwrap();
    // One hex digit of one fragment's hash.
    let pos = text.find(hash).unwrap() + 10;
    let mut bytes = text.into_bytes();
    bytes[pos] = if bytes[pos] == b'0' { b'1' } else { b'0' };
    fs::write(&path, bytes).unwrap();
    let (code, rep) = verify_bundle_json(&b);
    assert_eq!(code, 1, "{rep:#}");
    let f = &rep["recording"]["failure"];
    assert_eq!(f["kind"], "modified", "{rep:#}");
    assert_eq!(f["at_us"], frag["start_us"], "{rep:#}");
    assert!(
        f["detail"]
            .as_str()
            .unwrap()
            .contains("differs from its signed ledger record"),
        "{rep:#}"
    );
    assert!(
        rep["export"]["problem"]
            .as_str()
            .unwrap()
            .contains("manifest.json was changed after export"),
        "{rep:#}"
    );
}

#[test]
fn bundle_with_a_changed_signature_byte_fails() {
    let b = bundle();
    // The export signature: the recording still verifies, the export does not.
    let sig_path = b.dir.join("export.sig");
    let original_sig = fs::read(&sig_path).unwrap();
    let mut s = original_sig.clone();
    s[5] = if s[5] == b'a' { b'b' } else { b'a' };
    fs::write(&sig_path, &s).unwrap();
    let (code, rep) = verify_bundle_json(&b);
    assert_eq!(code, 1, "{rep:#}");
    assert!(rep["recording"]["failure"].is_null(), "{rep:#}");
    assert_eq!(rep["export"]["valid"], false);
    assert!(
        rep["export"]["problem"]
            .as_str()
            .unwrap()
            .contains("export signature does not match"),
        "{rep:#}"
    );
    let text =
        String::from_utf8_lossy(&verify_bundle(&b.dir, &["--fingerprint", &b.fingerprint]).stdout)
            .into_owned();
    assert!(text.contains("export signature INVALID"), "{text}");

    // A recording signature inside the ledger excerpt.
    fs::write(&sig_path, &original_sig).unwrap();
    let ex = b.dir.join("ledger-excerpt.vgl");
    let bytes = fs::read(&ex).unwrap();
    let mut r = RecordReader::new(&bytes[..]).unwrap();
    let mut last_sig = None;
    while let Some(rec) = r.next_record().unwrap() {
        if matches!(rec.body, Body::Signature { .. }) {
            last_sig = Some(rec);
        }
    }
    let sig_rec = last_sig.expect("the excerpt holds a signature");
    // The Ed25519 signature is the last 64 bytes of the body, before the 32-byte record hash;
    // re-hash the record so that only the signature is wrong.
    let mut patched = bytes.clone();
    let body_end = (sig_rec.offset + sig_rec.encoded_len - 32) as usize;
    patched[body_end - 10] ^= 1;
    let body_start = sig_rec.offset as usize + 4;
    let h = vigil_signing::sha256(&patched[body_start..body_end]);
    patched[body_end..body_end + 32].copy_from_slice(&h);
    fs::write(&ex, patched).unwrap();
    let (code, rep) = verify_bundle_json(&b);
    assert_eq!(code, 1, "{rep:#}");
    let f = &rep["recording"]["failure"];
    assert_eq!(f["kind"], "modified", "{rep:#}");
    assert!(
        f["detail"].as_str().unwrap().contains("signature"),
        "{rep:#}"
    );
    assert!(
        rep["export"]["problem"]
            .as_str()
            .unwrap()
            .contains("ledger-excerpt.vgl was changed after export"),
        "{rep:#}"
    );
}

#[test]
fn truncated_garbage_or_untrusted_bundles_give_clear_errors() {
    let b = bundle();
    let fp = b.fingerprint.clone();

    // Wrong fingerprint (another installation's CA), and one that is not a fingerprint.
    let other = copy_of(&pristine().theirs);
    let out = verify_bundle(&b.dir, &["--fingerprint", &ca_fingerprint(&other)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("was not made by the installation you trust"),
        "{}",
        stderr(&out)
    );
    let out = verify_bundle(&b.dir, &["--fingerprint", "12:34"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is not a SHA-256 fingerprint"),
        "{}",
        stderr(&out)
    );
    let out = verify_bundle(&b.dir, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--ca CA.pem or --fingerprint"),
        "{}",
        stderr(&out)
    );

    // A truncated video: the recording check says where, the export check says which file.
    let video = b.dir.join("video.mp4");
    let original = fs::read(&video).unwrap();
    fs::write(&video, &original[..original.len() * 2 / 3]).unwrap();
    let (code, rep) = verify_bundle_json(&b);
    assert_eq!(code, 1, "{rep:#}");
    assert_eq!(rep["recording"]["failure"]["kind"], "truncated", "{rep:#}");
    assert_eq!(rep["export"]["valid"], false, "{rep:#}");
    fs::write(&video, &original).unwrap();

    // A truncated manifest.
    let manifest = b.dir.join("manifest.json");
    let m = fs::read(&manifest).unwrap();
    fs::write(&manifest, &m[..m.len() / 2]).unwrap();
    let out = verify_bundle(&b.dir, &["--fingerprint", &fp]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("manifest.json in the bundle is not valid"),
        "{}",
        stderr(&out)
    );

    // A directory of garbage under the right names.
    let garbage = b.dir.parent().unwrap().join("garbage");
    for f in [
        "video.mp4",
        "manifest.json",
        "ledger-excerpt.vgl",
        "export.json",
        "export.sig",
        "certs/ca.pem",
        "certs/exporter.pem",
    ] {
        let p = garbage.join(f);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(
            &p,
            (0..3000u32)
                .map(|i| (i * 7919 % 251) as u8)
                .collect::<Vec<_>>(),
        )
        .unwrap();
    }
    let out = verify_bundle(&garbage, &["--fingerprint", &fp]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("certs/ca.pem in the bundle is not valid"),
        "{}",
        stderr(&out)
    );
    let out = verify_bundle(&garbage, &["--ca", b.ca_pem.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("in the bundle is not valid"),
        "{}",
        stderr(&out)
    );

    // An empty directory.
    let empty = b.dir.parent().unwrap().join("empty");
    fs::create_dir_all(&empty).unwrap();
    let out = verify_bundle(&empty, &["--fingerprint", &fp]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "error: {} is not an evidence bundle (no manifest.json in it)\n",
            empty.display()
        )
    );
}

// ---------------------------------------------------------------- export choices and timeline

#[test]
fn export_output_must_say_what_it_is_and_never_silently_overwrites() {
    let v = ours();
    let d = v.dir.path();
    let export = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "export",
            CAM,
            "--from",
            "-1d",
            "--to",
            "+1m",
            "-o",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        v.cmd(&args)
    };
    // An existing MP4 is refused, then replaced with --force.
    let clip = d.join("clip.mp4");
    fs::write(&clip, b"an older export").unwrap();
    let out = export(&clip, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("exists and is not replaced; give --force to overwrite it"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read(&clip).unwrap(), b"an older export");
    let out = export(&clip, &["--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(fs::read(&clip).unwrap().len() > 10_000);
    // A name that is neither an MP4 nor a directory is refused, saying what to write.
    for name in ["clip.mov", "clip"] {
        let path = d.join(name);
        let out = export(&path, &[]);
        assert!(!out.status.success(), "{name} was accepted");
        let err = stderr(&out);
        assert!(err.contains(".mp4") && err.contains("--bundle"), "{err}");
        assert!(!path.exists(), "{name} was written");
    }
    // --bundle (or a trailing slash) asks for a bundle; a non-empty directory is refused.
    let case = d.join("case");
    let out = export(&case, &["--bundle"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(case.join("manifest.json").is_file());
    let out = export(&case, &["--bundle"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is not empty"), "{}", stderr(&out));
    let out = export(&d.join("x.mp4"), &["--bundle"]);
    assert!(
        stderr(&out).contains("--bundle writes a directory"),
        "{}",
        stderr(&out)
    );
}

/// ffprobe's format start time, duration and tags of a file.
fn probe_format(path: &Path) -> Value {
    let out = Command::new(require_tool("ffprobe"))
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=start_time,duration:format_tags=creation_time,date",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice::<Value>(&out.stdout).unwrap()["format"].clone()
}

#[test]
fn exported_clip_starts_at_zero_and_carries_its_wall_clock_start() {
    let v = ours();
    let all = gops(&v);
    // A range starting seconds into the recording, as most exports do.
    let from = all[0].start_us + 4_000_000;
    let to = from + 3_000_000;
    let clip = v.dir.path().join("later.mp4");
    v.ok(&[
        "export",
        CAM,
        "--from",
        &vigil_signing::fmt_time(from),
        "--to",
        &vigil_signing::fmt_time(to),
        "-o",
        clip.to_str().unwrap(),
    ]);
    let first = all.iter().rev().find(|g| g.start_us <= from).unwrap();
    let last = all.iter().rev().find(|g| g.start_us < to).unwrap();
    let clip_secs = (last.start_us + last.duration_us - first.start_us) as f64 / 1e6;
    let f = probe_format(&clip);
    assert_eq!(f["start_time"], "0.000000", "{f}");
    // Players show exactly the clip: a fragmented MP4 would report its duration up to the
    // last fragment's absolute decode time (here 4 s too long, days for a clip cut days into
    // a recording); the plain export is progressive.
    let duration: f64 = f["duration"].as_str().unwrap().parse().unwrap();
    assert!(
        (duration - clip_secs).abs() < 1.0 / 30.0,
        "ffprobe says the clip lasts {duration} s; it is {clip_secs} s"
    );
    // Every recorded frame of the range is there and decodes.
    let recorded = sql(
        &v,
        &format!(
            "SELECT SUM(frames) FROM gops WHERE start_us >= {} AND start_us <= {}",
            first.start_us, last.start_us
        ),
    )[0][0]
        .as_u64()
        .unwrap();
    assert_eq!(
        vigil_testkit::ffprobe_count(&clip).unwrap().frames,
        recorded
    );
    let packets = vigil_testkit::ffprobe_packets(&clip).unwrap();
    let pts: Vec<f64> = packets.iter().filter_map(|p| p.pts_secs).collect();
    let (lo, hi) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    assert_eq!(lo, 0.0);
    let end = hi + 1.0 / 30.0;
    assert!(
        (end - clip_secs).abs() < 0.05,
        "frames span 0 .. {end} s, the clip is {clip_secs} s"
    );
    // The true start, as metadata: to the second in the movie header, exactly in ©day.
    assert_eq!(
        f["tags"]["date"],
        vigil_signing::fmt_time(first.start_us),
        "{f}"
    );
    let secs = vigil_signing::fmt_time(first.start_us / 1_000_000 * 1_000_000);
    assert_eq!(f["tags"]["creation_time"], secs, "{f}");
    // The bundle of the same range carries the verifiable form of the same clip: a progressive
    // header, then the recorded fragments byte for byte, each moof inside a skip box. Players
    // see the same frames at the same times, and the same duration: the clip's.
    let dir = v.dir.path().join("later/");
    v.ok(&[
        "export",
        CAM,
        "--from",
        &vigil_signing::fmt_time(from),
        "--to",
        &vigil_signing::fmt_time(to),
        "-o",
        dir.to_str().unwrap(),
    ]);
    let video = dir.join("video.mp4");
    let bytes = fs::read(&video).unwrap();
    assert!(bytes != fs::read(&clip).unwrap());
    let mut top = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        top.push(String::from_utf8_lossy(&bytes[at + 4..at + 8]).into_owned());
        if &bytes[at + 4..at + 8] == b"skip" {
            assert_eq!(&bytes[at + 12..at + 16], b"moof", "a skip box holds a moof");
        }
        at += len;
    }
    assert_eq!(at, bytes.len());
    assert_eq!(top[..2], ["ftyp", "moov"]);
    assert!(
        top[2..].chunks(2).all(|p| p == ["skip", "mdat"]),
        "ftyp, moov, then skip-wrapped moofs and their mdats: {top:?}"
    );
    let frames = |p: &Path| -> Vec<(Option<f64>, u64)> {
        let packets = vigil_testkit::ffprobe_packets(p).unwrap();
        packets.iter().map(|k| (k.pts_secs, k.size)).collect()
    };
    assert_eq!(frames(&video), frames(&clip));
    let g = probe_format(&video);
    assert_eq!(g["tags"], f["tags"]);
    assert_eq!(g["start_time"], "0.000000", "{g}");
    let bundle_secs: f64 = g["duration"].as_str().unwrap().parse().unwrap();
    assert!(
        (bundle_secs - clip_secs).abs() < 1.0 / 30.0,
        "ffprobe says the bundle's video lasts {bundle_secs} s; the clip is {clip_secs} s"
    );
    let fp = ca_fingerprint(&v);
    let out = v.cmd(&["verify", dir.to_str().unwrap(), "--fingerprint", &fp]);
    assert!(out.status.success(), "{}", stderr(&out));
}

// ---------------------------------------------------------------- exports beside a running server

/// The newest complete ledger record.
fn last_record(path: &Path) -> Option<Body> {
    let bytes = fs::read(path).ok()?;
    let mut r = RecordReader::new(&bytes[..]).ok()?;
    let mut last = None;
    while let Ok(Some(rec)) = r.next_record() {
        last = Some(rec.body);
    }
    last
}

/// Waits until the ledger ends with a fragment no signature covers yet.
fn wait_unsigned_tail(ledger: &Path) {
    let start = Instant::now();
    while !matches!(last_record(ledger), Some(Body::Fragment(_))) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the ledger never ended with an unsigned fragment"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A recording server running on a real camera.
fn live(segment_seconds: u32) -> (Vigil, common::Server, RtspPeer) {
    require_tool("openssl");
    let peer = RtspPeer::start(&[("cam", &clip())], Auth::None);
    let v = Vigil::init(segment_seconds);
    v.add_camera(CAM, &peer.url("cam"));
    let server = v.serve();
    v.wait_recorded(CAM, 3.0, Duration::from_secs(60));
    (v, server, peer)
}

#[test]
fn bundle_of_video_recorded_a_moment_ago_verifies_completely() {
    let (v, server, _peer) = live(60);
    let ledger = ledger_path(&v);
    wait_unsigned_tail(&ledger);
    let dir = v.dir.path().join("now/");
    let said = v.ok(&[
        "export",
        CAM,
        "--from",
        "-1m",
        "--to",
        "+1m",
        "-o",
        dir.to_str().unwrap(),
    ]);
    assert!(!said.contains("not signed"), "{said}");
    let fp = ca_fingerprint(&v);
    let (code, rep) = parse_report(&verify_bundle(&dir, &["--fingerprint", &fp, "--json"]));
    assert_eq!(code, 0, "{said}\n{rep:#}");
    assert!(
        rep["recording"]["unsigned"].as_array().unwrap().is_empty(),
        "{rep:#}"
    );
    assert!(server.stop().contains("Stopped cleanly"));
}

#[test]
fn bundle_after_a_crash_waits_for_a_signature_then_says_the_tail_is_unsigned() {
    let (v, server, _peer) = live(60);
    let ledger = ledger_path(&v);
    wait_unsigned_tail(&ledger);
    server.kill9();
    let ledger_before = fs::read(&ledger).unwrap();
    let dir = v.dir.path().join("crash/");
    let start = Instant::now();
    let said = v.ok(&[
        "export",
        CAM,
        "--from",
        "-1m",
        "--to",
        "+1m",
        "-o",
        dir.to_str().unwrap(),
    ]);
    let waited = start.elapsed();
    assert!(said.contains("waiting up to 15 s"), "{said}");
    assert!(said.contains("exporting anyway"), "{said}");
    assert!(said.contains("are not signed"), "{said}");
    assert!(
        waited >= Duration::from_secs(15) && waited < Duration::from_secs(25),
        "waited {waited:?}"
    );
    // The CLI only reads the ledger: the crashed server's restart vouches for its tail.
    assert!(fs::read(&ledger).unwrap() == ledger_before);
    let fp = ca_fingerprint(&v);
    let (code, rep) = parse_report(&verify_bundle(&dir, &["--fingerprint", &fp, "--json"]));
    assert_eq!(rep["recording"]["failure"]["kind"], "unsigned", "{rep:#}");
    assert_eq!(code, 2, "unsigned is not tampering: {rep:#}");
    assert_eq!(rep["export"]["valid"], true, "{rep:#}");
}

/// The acceptance check of the one export implementation: the same range exported as a
/// bundle by the CLI and over the API is the same evidence; only the export's own statement
/// (who, when) differs.
#[test]
fn cli_and_api_bundles_of_the_same_range_hold_the_same_evidence() {
    require_tool("curl");
    require_tool("tar");
    let (v, server, _peer) = live(4);
    let indexed = gops(&v);
    let first = indexed[0].start_us / 1_000_000 - 1;
    // The range ends before the newest indexed GOP: every GOP in it is complete and indexed
    // already, so the two exports a moment apart see the same video (a GOP still being
    // recorded at the first export would be in the second only).
    let to = indexed.iter().map(|g| g.start_us).max().unwrap() / 1_000_000;
    assert!(to > first + 1, "a few GOPs are recorded");
    let (from, to) = (first.to_string(), to.to_string());
    let cli = v.dir.path().join("cli/");
    v.ok(&[
        "export",
        CAM,
        "--from",
        &from,
        "--to",
        &to,
        "-o",
        cli.to_str().unwrap(),
    ]);
    let said = v.ok(&["token", "create", "export-check", "--role", "operator"]);
    let token = said
        .lines()
        .find_map(|l| l.strip_prefix("token (shown once, store it now): "))
        .unwrap_or_else(|| panic!("{said}"))
        .trim()
        .to_owned();
    let config = fs::read_to_string(&v.config).unwrap();
    let bind = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("bind = \"127.0.0.1:"))
        .unwrap()
        .trim_end_matches('"');
    let tarfile = v.dir.path().join("api.tar");
    let out = Command::new("curl")
        .args(["-sS", "--fail-with-body", "--max-time", "60", "--cacert"])
        .arg(v.data.join("pki/ca.crt"))
        .arg("-H")
        .arg(format!("Authorization: Bearer {token}"))
        .arg("-o")
        .arg(&tarfile)
        .arg(format!(
            "https://127.0.0.1:{bind}/api/v1/cameras/{CAM}/export?from={from}&to={to}&format=bundle"
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        stderr(&out),
        fs::read_to_string(&tarfile).unwrap_or_default()
    );
    assert!(server.stop().contains("Stopped cleanly"));
    let st = Command::new("tar")
        .arg("-xf")
        .arg(&tarfile)
        .arg("-C")
        .arg(v.dir.path())
        .status()
        .unwrap();
    assert!(st.success());
    let api = v.dir.path().join(format!("evidence-{CAM}"));

    let fp = ca_fingerprint(&v);
    for dir in [&cli, &api] {
        let (code, rep) = parse_report(&verify_bundle(dir, &["--fingerprint", &fp, "--json"]));
        assert_eq!(code, 0, "{}: {rep:#}", dir.display());
    }
    let names = |dir: &Path| {
        let mut v: Vec<String> = fs::read_dir(dir.join("certs"))
            .unwrap()
            .map(|e| format!("certs/{}", e.unwrap().file_name().to_string_lossy()))
            .collect();
        v.extend(
            fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap())
                .filter(|e| e.file_type().unwrap().is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned()),
        );
        v.sort();
        v
    };
    assert_eq!(names(&cli), names(&api));
    // The recording part: manifest, ledger excerpt with its signatures, video, recorded init,
    // the signers' certificates; the exporter is the same server with the same key.
    for f in names(&cli)
        .iter()
        .filter(|f| *f != "export.json" && *f != "export.sig")
    {
        assert!(
            fs::read(cli.join(f)).unwrap() == fs::read(api.join(f)).unwrap(),
            "{f} differs between the CLI and the API bundle"
        );
    }
    let statement = |dir: &Path| -> Value {
        serde_json::from_slice(&fs::read(dir.join("export.json")).unwrap()).unwrap()
    };
    let (a, b) = (statement(&cli), statement(&api));
    for k in [
        "camera_id",
        "server",
        "range_from_us",
        "range_to_us",
        "files",
    ] {
        assert_eq!(a[k], b[k], "{k}");
    }
    assert!(a["exported_by"].as_str().unwrap().starts_with("cli:"));
    assert!(b["exported_by"].as_str().unwrap().starts_with("api:token:"));
}
