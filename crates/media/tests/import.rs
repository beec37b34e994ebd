//! Imported segments (store/import.rs, docs/design/handover.md): another server's signed GOPs
//! written into a camera's store as one new segment. Checked here: the file is the init and
//! the GOPs byte for byte, indexed with numbers apart from the recorder's and read in time
//! order with the camera's own video; bytes that do not match their signed hash and existing
//! files are refused; and an import that fails or is killed at any step leaves no segment a
//! reader or start-up recovery would see, can be cleaned up (what start-up does for an import
//! without its handover fact) and retried.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use sha2::{Digest, Sha256};
use vigil_media::fmp4;
use vigil_media::store::{
    Camera, GopRow, ImportedGop, Store, WriteStep, imported_gop_no, importing_path, ticks_to_us,
};

/// GOPs `ks` of the camera's timeline as another server recorded them: fragment bytes and
/// what its ledger signed about each.
fn source_gops(cam: &Camera, ks: std::ops::Range<i64>) -> Vec<(Vec<u8>, ImportedGop)> {
    ks.map(|k| {
        let frames = timeline_gop(k);
        let (bytes, g) = fragment(k as u32 + 1, &frames);
        let gop = ImportedGop {
            start_us: cam.time_origin_us + ticks_to_us(g.base_decode_time),
            duration_us: ticks_to_us(g.duration),
            len: bytes.len() as u64,
            frames: frames.len() as i64,
            sha256: Sha256::digest(&bytes).into(),
        };
        (bytes, gop)
    })
    .collect()
}

/// A closed own segment of GOPs `ks`.
fn own_segment(store: &Store, cam: &Camera, ks: std::ops::Range<i64>) -> Vec<GopRow> {
    let init = fmp4::init_segment(&h264_params(1)).unwrap();
    let start = cam.time_origin_us + ks.start * GOP_US;
    let mut seg = store
        .begin_segment(&cam.id, &init, "avc1.4d401e", start)
        .unwrap();
    let rows = ks.map(|k| append_gop(store, cam, &mut seg, k)).collect();
    seg.close(store).unwrap();
    rows
}

fn import(
    store: &Store,
    cam: &Camera,
    seq: i64,
    src: &[(Vec<u8>, ImportedGop)],
) -> vigil_media::store::Result<Vec<GopRow>> {
    let init = fmp4::init_segment(&h264_params(1)).unwrap();
    let gops: Vec<ImportedGop> = src.iter().map(|(_, g)| g.clone()).collect();
    store.write_imported_segment(&cam.id, seq, &init, "avc1", &gops, &mut |k, buf| {
        buf.extend_from_slice(&src[k].0);
        Ok(())
    })
}

/// Every file of the camera's directory whose name mentions segment `seq`.
fn files_of(store: &Store, cam: &Camera, seq: i64) -> Vec<String> {
    let hex = format!("{seq:016x}");
    let mut names: Vec<String> = std::fs::read_dir(store.camera_dir(&cam.id))
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.contains(&hex))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The camera's index has only these GOPs (by start time) and no row of segment `seq`.
fn assert_indexed_only(store: &Store, cam: &Camera, own: &[GopRow], seq: i64, what: &str) {
    let starts: Vec<i64> = all_gops(store, cam).iter().map(|g| g.start_us).collect();
    let expected: Vec<i64> = own.iter().map(|g| g.start_us).collect();
    assert_eq!(starts, expected, "{what}");
    assert!(
        store
            .segments(&cam.id)
            .unwrap()
            .iter()
            .all(|s| s.seq != seq),
        "{what}: segment {seq} is indexed"
    );
}

#[test]
fn an_imported_segment_is_the_signed_bytes_indexed_apart_and_read_in_time_order() {
    let (dir, store, cam) = store_with_camera();
    let mut own = own_segment(&store, &cam, 0..3);
    let src = source_gops(&cam, 3..7);
    let seq = store.reserve_segment(&cam.id).unwrap();
    let rows = import(&store, &cam, seq, &src).unwrap();
    // The camera's recorder goes on after the window, with its own numbering.
    own.extend(own_segment(&store, &cam, 7..9));

    assert_eq!(rows.len(), 4);
    for (k, r) in rows.iter().enumerate() {
        assert_eq!(r.gop_no, imported_gop_no(seq as u64, k));
        assert!(r.gop_no < 0, "imported GOPs are numbered below zero");
        assert_eq!(r.start_us, src[k].1.start_us);
        assert_eq!(r.sha256, src[k].1.sha256.to_vec());
    }
    // The file: the init, then the GOPs byte for byte, nothing else; no hidden file left.
    let init = fmp4::init_segment(&h264_params(1)).unwrap();
    let mut expected = init.clone();
    for (b, _) in &src {
        expected.extend_from_slice(b);
    }
    assert_eq!(
        std::fs::read(store.segment_path(&cam.id, seq)).unwrap(),
        expected
    );
    assert_eq!(files_of(&store, &cam, seq), [format!("{seq:016x}.mp4")]);
    let seg = store
        .segments(&cam.id)
        .unwrap()
        .into_iter()
        .find(|s| s.seq == seq)
        .unwrap();
    assert!(!seg.open);
    assert_eq!(seg.bytes, expected.len() as i64);
    assert_eq!(seg.init_len, init.len() as i64);
    assert_eq!(seg.frames, 4 * GOP_FRAMES as i64);

    // Time order across own and imported video: 9 one-second GOPs back to back.
    let all = all_gops(&store, &cam);
    let starts: Vec<i64> = all
        .iter()
        .map(|g| g.start_us - cam.time_origin_us)
        .collect();
    assert_eq!(starts, (0..9).map(|k| k * GOP_US).collect::<Vec<_>>());
    assert_eq!(all[3].seq, seq);
    assert_eq!(
        store
            .video_between(&cam.id, all[4].start_us, all[5].start_us)
            .unwrap()
            .iter()
            .map(|g| g.seq)
            .collect::<Vec<_>>(),
        [seq]
    );
    // The recorder's counter is untouched by the negative numbers.
    let next = store.next_gop_no(&cam.id).unwrap();
    assert_eq!(next, 10);

    // A restart changes nothing: the closed, indexed segment is not re-read or adopted.
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    let report = store.recover().unwrap();
    assert_eq!(
        (
            report.orphans_adopted,
            report.orphans_removed,
            report.gops_reindexed
        ),
        (0, 0, 0),
        "{report:?}"
    );
    assert_eq!(all_gops(&store, &cam), all);
    assert_eq!(store.next_gop_no(&cam.id).unwrap(), next);
}

#[test]
fn an_import_that_fails_half_way_leaves_nothing_and_can_be_retried() {
    let (_dir, store, cam) = store_with_camera();
    let own = own_segment(&store, &cam, 0..2);
    let src = source_gops(&cam, 2..6);
    let seq = store.reserve_segment(&cam.id).unwrap();
    let init = fmp4::init_segment(&h264_params(1)).unwrap();
    let gops: Vec<ImportedGop> = src.iter().map(|(_, g)| g.clone()).collect();

    // The source stops delivering after two GOPs (a read error of the bundle).
    let err = store
        .write_imported_segment(&cam.id, seq, &init, "avc1", &gops, &mut |k, buf| {
            if k == 2 {
                return Err(std::io::Error::other("source read failed"));
            }
            buf.extend_from_slice(&src[k].0);
            Ok(())
        })
        .unwrap_err();
    assert!(err.to_string().contains("source read failed"), "{err}");
    assert!(files_of(&store, &cam, seq).is_empty());
    assert_indexed_only(&store, &cam, &own, seq, "after a failed read");

    // A changed byte in GOP 1: refused before anything is indexed.
    let err = store
        .write_imported_segment(&cam.id, seq, &init, "avc1", &gops, &mut |k, buf| {
            buf.extend_from_slice(&src[k].0);
            if k == 1 {
                let at = buf.len() - 7;
                buf[at] ^= 0x20;
            }
            Ok(())
        })
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("GOP 1 of the import does not match its signed length and hash"),
        "{err}"
    );
    assert!(files_of(&store, &cam, seq).is_empty());
    assert_indexed_only(&store, &cam, &own, seq, "after a changed byte");

    // A GOP shorter than signed is refused the same way.
    let err = store
        .write_imported_segment(&cam.id, seq, &init, "avc1", &gops, &mut |k, buf| {
            buf.extend_from_slice(&src[k].0[..src[k].0.len() - usize::from(k == 3)]);
            Ok(())
        })
        .unwrap_err();
    assert!(err.to_string().contains("GOP 3 of the import"), "{err}");
    assert!(files_of(&store, &cam, seq).is_empty());

    // Retried with the same segment number: complete.
    let rows = import(&store, &cam, seq, &src).unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(all_gops(&store, &cam).len(), 6);
}

#[test]
fn an_existing_file_is_never_replaced() {
    let (_dir, store, cam) = store_with_camera();
    own_segment(&store, &cam, 0..2);
    let src = source_gops(&cam, 2..4);
    let seq = store.reserve_segment(&cam.id).unwrap();
    let path = store.segment_path(&cam.id, seq);
    std::fs::write(&path, b"someone else's file").unwrap();
    let err = import(&store, &cam, seq, &src).unwrap_err();
    assert!(err.to_string().contains("never replaces"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"someone else's file");
    assert!(!importing_path(&store, &cam.id, seq).exists());
    // And an own, indexed segment's number: refused too.
    let own_seq = store.segments(&cam.id).unwrap()[0].seq;
    let before = std::fs::read(store.segment_path(&cam.id, own_seq)).unwrap();
    assert!(import(&store, &cam, own_seq, &src).is_err());
    assert_eq!(
        std::fs::read(store.segment_path(&cam.id, own_seq)).unwrap(),
        before
    );
}

/// Makes the store die at the `nth` (1-based) pass of `step`.
fn die_at_nth(store: &Store, step: WriteStep, nth: usize) {
    let seen = Arc::new(AtomicUsize::new(0));
    store.set_write_hook(Some(Arc::new(move |s, _: &Path| {
        if s == step && seen.fetch_add(1, Ordering::SeqCst) + 1 == nth {
            die()
        }
        Ok(())
    })));
}

#[test]
fn an_import_killed_at_any_step_is_never_seen_as_a_segment_and_is_cleaned_up_and_retried() {
    let cases = [
        // Two of four GOPs written into the hidden file.
        (WriteStep::ImportWrite, 3),
        // The hidden file complete and synced, not yet named.
        (WriteStep::ImportName, 1),
        // Named, not indexed.
        (WriteStep::ImportIndex, 1),
    ];
    for (step, nth) in cases {
        let what = format!("killed at {step:?} #{nth}");
        let (dir, store, cam) = store_with_camera();
        let own = own_segment(&store, &cam, 0..2);
        let src = source_gops(&cam, 2..6);
        let seq = store.reserve_segment(&cam.id).unwrap();
        die_at_nth(&store, step, nth);
        expect_death(|| import(&store, &cam, seq, &src));
        drop(store);

        let store = Store::open(dir.path()).unwrap();
        // Until it has its name, the half-written file is hidden from everything.
        if step != WriteStep::ImportIndex {
            assert_eq!(
                files_of(&store, &cam, seq),
                [format!(".{seq:016x}.mp4.importing")],
                "{what}"
            );
            let report = store.recover().unwrap();
            assert_eq!(
                (report.orphans_adopted, report.orphans_removed),
                (0, 0),
                "{what}: recovery left the hidden file alone"
            );
            assert_indexed_only(&store, &cam, &own, seq, &what);
        }
        // What start-up does (before recovery) for an import without its handover fact.
        store.forget_imported_segment(&cam.id, seq).unwrap();
        assert!(files_of(&store, &cam, seq).is_empty(), "{what}");
        store.recover().unwrap();
        assert_indexed_only(&store, &cam, &own, seq, &what);
        assert_eq!(assert_consistent(&store, &cam), own, "{what}");

        // Retried under a new number: complete, and in time order with the own video.
        let again = store.reserve_segment(&cam.id).unwrap();
        assert!(again > seq, "{what}: segment numbers are never reused");
        import(&store, &cam, again, &src).unwrap();
        let starts: Vec<i64> = all_gops(&store, &cam)
            .iter()
            .map(|g| g.start_us - cam.time_origin_us)
            .collect();
        assert_eq!(
            starts,
            (0..6).map(|k| k * GOP_US).collect::<Vec<_>>(),
            "{what}"
        );
    }
}
