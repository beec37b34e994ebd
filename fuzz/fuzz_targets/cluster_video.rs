//! What a management server reads from a recording server when it relays recorded video
//! (vigil-cluster's `parse_recordings`, `parse_playback_headers`) and what a recording server
//! reads from the management server's video request (`parse_video_request`): never a panic;
//! what is accepted is within its documented bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_cluster::protocol::{
    MAX_RECORDINGS_BODY, MAX_SPANS, parse_playback_headers, parse_recordings, parse_video_request,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = parse_recordings(data) {
        assert!(data.len() <= MAX_RECORDINGS_BODY);
        assert!(r.ranges.len() + r.gaps.len() <= MAX_SPANS);
        assert!(r.ranges.iter().all(|(s, e)| 0 <= *s && s <= e));
    }
    let text = String::from_utf8_lossy(data);
    // The request line's path and query, split as the listener splits them.
    let (path, query) = match text.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (&*text, None),
    };
    if let Ok((id, what, q)) = parse_video_request(path, query) {
        assert!(id.starts_with("cam-") && id.len() == 16);
        assert!(what == "recordings" || what == "playback");
        assert!(0 <= q.from_us && q.from_us < q.to_us);
    }
    // Headers as `name: value` lines.
    let lines: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim(), v.trim()))
        .collect();
    let get = |name: &str| {
        lines
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    };
    if let Ok(h) = parse_playback_headers(get) {
        assert!(h.media_start_us <= h.media_end_us);
        assert!(!h.part_starts_us.is_empty() && h.part_starts_us.is_sorted());
        assert!(h.etag.starts_with('"') && h.etag.ends_with('"'));
    }
});
