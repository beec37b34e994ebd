//! A process killed at any step of writing a GOP (or of starting a segment) loses at most
//! that GOP: after start-up recovery the index and the files agree, and every whole GOP
//! written before it is still there, byte for byte. The kill is simulated in-process: the
//! store's write hook unwinds out of the write at the chosen step, so nothing after it runs,
//! and the store is then dropped and opened again like after a restart.

mod common;

use common::*;
use vigil_media::fmp4;
use vigil_media::store::{GAP_UNCLEAN_SHUTDOWN, GopRow, Interruption, Store, WriteStep};

#[derive(Debug, Clone, Copy)]
enum Kill {
    /// Before any byte of the GOP is written.
    BeforeWrite,
    /// Only the first `n` bytes of the GOP reached the file (a write cut short, or unsynced
    /// bytes lost with the power).
    Torn(usize),
    /// All bytes written, not synced.
    BeforeSync,
    /// Synced, not indexed.
    BeforeIndex,
    /// Indexed; the segment was never closed.
    AfterIndex,
}

/// Writes three GOPs, kills the writer during the fourth, restarts and recovers. Returns the
/// three GOPs as indexed before the kill, the fourth GOP's bytes, and the recovered store.
fn kill_during_fourth_gop(kill: Kill) -> (Vec<GopRow>, Vec<u8>, Store, tempfile::TempDir) {
    let (dir, store, cam) = store_with_camera();
    store.begin_recorder_run(&cam.id).unwrap();
    let init = fmp4::init_segment(&h264_params(1)).unwrap();
    let mut seg = store
        .begin_segment(&cam.id, &init, "avc1.4d401e", cam.time_origin_us)
        .unwrap();
    let before: Vec<GopRow> = (0..3)
        .map(|k| append_gop(&store, &cam, &mut seg, k))
        .collect();
    let offset = seg.len();
    let (fourth, _) = fragment(4, &timeline_gop(3));
    match kill {
        Kill::AfterIndex => {
            append_gop(&store, &cam, &mut seg, 3);
        }
        Kill::BeforeWrite => {
            die_at(&store, WriteStep::GopWrite);
            expect_death(|| append_gop(&store, &cam, &mut seg, 3));
        }
        Kill::BeforeSync | Kill::Torn(_) => {
            die_at(&store, WriteStep::GopSync);
            expect_death(|| append_gop(&store, &cam, &mut seg, 3));
        }
        Kill::BeforeIndex => {
            die_at(&store, WriteStep::GopIndex);
            expect_death(|| append_gop(&store, &cam, &mut seg, 3));
        }
    }
    let path = seg.path().to_owned();
    drop(seg);
    drop(store);
    if let Kill::Torn(n) = kill {
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(offset + n as u64).unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let report = store.recover().unwrap();
    let whole = matches!(
        kill,
        Kill::BeforeSync | Kill::BeforeIndex | Kill::AfterIndex
    );
    let torn = match kill {
        Kill::Torn(n) => n as u64,
        _ => 0,
    };
    assert_eq!(report.bytes_truncated, torn, "{kill:?}");
    let reindexed = usize::from(matches!(kill, Kill::BeforeSync | Kill::BeforeIndex));
    assert_eq!(report.gops_reindexed, reindexed, "{kill:?}");
    assert_eq!(report.interrupted.len(), 1, "{kill:?}");
    assert_eq!(
        report.interrupted[0].gops.len(),
        3 + usize::from(whole),
        "{kill:?}"
    );
    (before, fourth, store, dir)
}

#[test]
fn a_kill_at_any_step_of_writing_a_gop_loses_nothing_before_it() {
    let (fourth, _) = fragment(4, &timeline_gop(3));
    let mdat_header = fourth.len() - timeline_gop(3).iter().map(|f| f.data.len()).sum::<usize>();
    let moof_len = mdat_header - 8;
    let mut kills = vec![
        Kill::BeforeWrite,
        Kill::BeforeSync,
        Kill::BeforeIndex,
        Kill::AfterIndex,
    ];
    // Cut inside the moof header, at and inside its end, inside the mdat header, right after
    // it, and one byte short of the end.
    for n in [
        1,
        7,
        8,
        moof_len / 2,
        moof_len,
        moof_len + 4,
        mdat_header,
        mdat_header + 1,
        fourth.len() - 1,
    ] {
        kills.push(Kill::Torn(n));
    }
    for kill in kills {
        let (before, fourth, store, _dir) = kill_during_fourth_gop(kill);
        let cam = store.camera("cam1").unwrap();
        let after = assert_consistent(&store, &cam);
        assert_eq!(after[..3], before[..], "{kill:?}: the GOPs before the kill");
        let whole = matches!(
            kill,
            Kill::BeforeSync | Kill::BeforeIndex | Kill::AfterIndex
        );
        assert_eq!(after.len(), 3 + usize::from(whole), "{kill:?}");
        if whole {
            let g = &after[3];
            let bytes = store
                .read_segment_range(&cam.id, g.seq, g.offset as u64, g.len as u64)
                .unwrap();
            assert_eq!(bytes, fourth, "{kill:?}: the fourth GOP as written");
            assert_eq!(g.gop_no, 4);
        }
        let seg = &store.segments(&cam.id).unwrap()[0];
        assert!(!seg.open, "{kill:?}: recovery closes the segment");
        // Numbers are never reused, and the next run calls the lost time an unclean shutdown.
        let next = store.next_gop_no(&cam.id).unwrap();
        assert_eq!(next, after.last().unwrap().gop_no + 1, "{kill:?}");
        let last = after.last().unwrap();
        assert_eq!(
            store.begin_recorder_run(&cam.id).unwrap(),
            Some(Interruption {
                since_us: last.start_us + last.duration_us,
                reason: GAP_UNCLEAN_SHUTDOWN.into(),
            }),
            "{kill:?}"
        );
    }
}

#[test]
fn a_kill_while_starting_a_segment_leaves_no_segment_behind() {
    for step in [WriteStep::SegmentInit, WriteStep::SegmentIndex] {
        let (dir, store, cam) = store_with_camera();
        let init = fmp4::init_segment(&h264_params(1)).unwrap();
        let mut first = store
            .begin_segment(&cam.id, &init, "avc1.4d401e", cam.time_origin_us)
            .unwrap();
        let kept = append_gop(&store, &cam, &mut first, 0);
        let crashed = first.seq + 1;
        first.close(&store).unwrap();
        die_at(&store, step);
        expect_death(|| store.begin_segment(&cam.id, &init, "avc1.4d401e", kept.start_us));
        assert!(store.segment_path(&cam.id, crashed).exists(), "{step:?}");
        drop(store);

        let store = Store::open(dir.path()).unwrap();
        let report = store.recover().unwrap();
        assert_eq!(report.orphans_removed, 1, "{step:?}");
        assert!(!store.segment_path(&cam.id, crashed).exists(), "{step:?}");
        assert_eq!(
            assert_consistent(&store, &cam),
            vec![kept.clone()],
            "{step:?}"
        );
        let next = store
            .begin_segment(&cam.id, &init, "avc1.4d401e", kept.start_us)
            .unwrap();
        assert!(
            next.seq > crashed,
            "{step:?}: segment numbers are never reused"
        );
    }
}

#[test]
fn a_gop_the_index_cannot_hold_is_cut_from_the_file() {
    let (_dir, store, cam) = store_with_camera();
    let init = fmp4::init_segment(&h264_params(1)).unwrap();
    let mut seg = store
        .begin_segment(&cam.id, &init, "avc1.4d401e", cam.time_origin_us)
        .unwrap();
    append_gop(&store, &cam, &mut seg, 0);
    let len = seg.len();
    store.set_write_hook(Some(std::sync::Arc::new(|step, _: &std::path::Path| {
        if step == WriteStep::GopIndex {
            Err(enospc())
        } else {
            Ok(())
        }
    })));
    let frames = timeline_gop(1);
    let (bytes, _) = fragment(2, &frames);
    let e = seg
        .append(
            &store,
            &[&bytes],
            2,
            cam.time_origin_us + GOP_US,
            GOP_US,
            25,
        )
        .unwrap_err();
    assert!(e.is_disk_full(), "{e}");
    assert_eq!(seg.len(), len);
    assert_eq!(std::fs::metadata(seg.path()).unwrap().len(), len);
    store.set_write_hook(None);
    append_gop(&store, &cam, &mut seg, 1);
    seg.close(&store).unwrap();
    assert_eq!(assert_consistent(&store, &cam).len(), 2);
}
