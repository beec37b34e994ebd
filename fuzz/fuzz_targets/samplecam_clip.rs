//! Fuzzes the Annex B splitter, SPS reader and access-unit grouping behind
//! `SampleCameraOptions::clip` (a user-supplied clip must fail cleanly, never panic).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_samplecam::Clip;

fuzz_target!(|data: &[u8]| {
    if let Ok(clip) = Clip::from_annex_b(data) {
        let info = clip.info();
        assert_eq!(info.frame_count, clip.frames().len());
        assert!(info.gop_length >= 1 && info.gop_length <= info.frame_count);
        assert!(clip.frames()[0].is_keyframe());
    }
});
