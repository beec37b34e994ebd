//! Test clips: synthetic H.264/H.265 video made by ffmpeg (`testsrc2`), cached on disk.
//!
//! The cache is shared by every test binary and every parallel test: a clip is keyed by all its
//! parameters, generated under an exclusive file lock (so two tests never encode the same clip
//! twice on a 2-core machine) into a temporary file that is renamed into place, so nobody ever
//! sees a half-written clip.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{Error, repo_root, require_tool};

/// Bump when the encoder settings change, so cached clips made the old way are not reused.
const CACHE_VERSION: u32 = 1;

/// The cache directory: `$VIGIL_TESTCLIPS_DIR`, else `<repo>/target/testclips`.
fn cache_dir() -> PathBuf {
    std::env::var_os("VIGIL_TESTCLIPS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target").join("testclips"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    H264,
    H265,
}

impl Codec {
    /// The codec name ffprobe reports (`h264`, `hevc`).
    pub fn ffprobe_name(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::H265 => "hevc",
        }
    }

    fn file_tag(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::H265 => "h265",
        }
    }
}

/// What to encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClipSpec {
    pub codec: Codec,
    pub seconds: u32,
    pub fps: u32,
    /// Keyframe interval in frames (fixed: no scene-cut keyframes).
    pub gop: u32,
    pub width: u32,
    pub height: u32,
    /// Two B-frames between references (decode order differs from presentation order).
    pub bframes: bool,
}

impl ClipSpec {
    fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::InvalidClip(m));
        if !(1..=600).contains(&self.seconds) {
            return bad(format!("seconds = {} must be 1..=600", self.seconds));
        }
        if !(1..=120).contains(&self.fps) {
            return bad(format!("fps = {} must be 1..=120", self.fps));
        }
        if !(1..=600).contains(&self.gop) {
            return bad(format!("gop = {} must be 1..=600 frames", self.gop));
        }
        for (name, v) in [("width", self.width), ("height", self.height)] {
            if !(16..=4096).contains(&v) || v % 2 != 0 {
                return bad(format!(
                    "{name} = {v} must be even and 16..=4096 (4:2:0 video)"
                ));
            }
        }
        Ok(())
    }

    fn file_name(&self) -> String {
        format!(
            "{}-{}s-{}fps-g{}-{}x{}-bf{}-v{CACHE_VERSION}.mp4",
            self.codec.file_tag(),
            self.seconds,
            self.fps,
            self.gop,
            self.width,
            self.height,
            if self.bframes { 2 } else { 0 },
        )
    }

    fn frames(&self) -> u64 {
        u64::from(self.seconds) * u64::from(self.fps)
    }

    fn ffmpeg_args(&self, out: &Path) -> Vec<String> {
        let bf = if self.bframes { 2 } else { 0 };
        let mut args: Vec<String> = ["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.push(format!(
            "testsrc2=size={}x{}:rate={}",
            self.width, self.height, self.fps
        ));
        args.extend(["-frames:v".into(), self.frames().to_string()]);
        args.extend(["-an".into(), "-pix_fmt".into(), "yuv420p".into()]);
        match self.codec {
            Codec::H264 => {
                let g = self.gop.to_string();
                args.extend(
                    [
                        "-c:v",
                        "libx264",
                        "-preset",
                        "veryfast",
                        "-profile:v",
                        "high",
                        "-g",
                        &g,
                        "-keyint_min",
                        &g,
                        "-sc_threshold",
                        "0",
                        "-bf",
                        &bf.to_string(),
                        // b-adapt=0: B-frames always, not only where x264 finds them useful.
                        "-x264-params",
                        "b-adapt=0",
                    ]
                    .map(String::from),
                );
            }
            Codec::H265 => {
                // IDR keyframes (no open GOP), so every keyframe is a clean random access point.
                let params = format!(
                    "keyint={g}:min-keyint={g}:scenecut=0:open-gop=0:bframes={bf}:b-adapt=0:\
                     log-level=error",
                    g = self.gop
                );
                args.extend(
                    [
                        "-c:v",
                        "libx265",
                        "-preset",
                        "ultrafast",
                        "-x265-params",
                        &params,
                        "-tag:v",
                        "hvc1",
                    ]
                    .map(String::from),
                );
            }
        }
        args.extend(["-f".into(), "mp4".into()]);
        args.push(out.to_string_lossy().into_owned());
        args
    }
}

/// A generated test clip (MP4, one video track, `testsrc2` content) and what it contains.
#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    path: PathBuf,
    spec: ClipSpec,
}

impl Clip {
    /// An H.264 clip, generated once and cached. Panics with ffmpeg's message on failure.
    pub fn h264(seconds: u32, fps: u32, gop: u32, width: u32, height: u32, bframes: bool) -> Clip {
        Self::build(ClipSpec {
            codec: Codec::H264,
            seconds,
            fps,
            gop,
            width,
            height,
            bframes,
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// An H.265 clip, generated once and cached. Panics with ffmpeg's message on failure.
    pub fn h265(seconds: u32, fps: u32, gop: u32, width: u32, height: u32, bframes: bool) -> Clip {
        Self::build(ClipSpec {
            codec: Codec::H265,
            seconds,
            fps,
            gop,
            width,
            height,
            bframes,
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Returns the cached clip for `spec`, encoding it first if no test has yet.
    pub fn build(spec: ClipSpec) -> Result<Clip, Error> {
        spec.validate()?;
        let dir = cache_dir();
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let path = dir.join(spec.file_name());
        let clip = Clip { path, spec };
        if clip.path.is_file() {
            return Ok(clip);
        }
        let lock_path = dir.join(format!("{}.lock", spec.file_name()));
        let lock = File::create(&lock_path).map_err(|e| Error::io(&lock_path, e))?;
        // Released when `lock` is dropped (also if this process dies).
        lock.lock().map_err(|e| Error::io(&lock_path, e))?;
        if !clip.path.is_file() {
            clip.encode(&dir)?;
        }
        Ok(clip)
    }

    fn encode(&self, dir: &Path) -> Result<(), Error> {
        let ffmpeg = require_tool("ffmpeg");
        let tmp = tempfile::Builder::new()
            .prefix(".encoding-")
            .suffix(".mp4")
            .tempfile_in(dir)
            .map_err(|e| Error::io(dir, e))?;
        let args = self.spec.ffmpeg_args(tmp.path());
        let command = format!("ffmpeg {}", args.join(" "));
        let out = Command::new(ffmpeg)
            .args(&args)
            .output()
            .map_err(|source| Error::Spawn {
                command: command.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(Error::CommandFailed {
                command,
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        tmp.persist(&self.path)
            .map_err(|e| Error::io(&self.path, e.error))?;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn spec(&self) -> ClipSpec {
        self.spec
    }
    pub fn codec(&self) -> Codec {
        self.spec.codec
    }
    pub fn fps(&self) -> u32 {
        self.spec.fps
    }
    pub fn gop(&self) -> u32 {
        self.spec.gop
    }
    pub fn width(&self) -> u32 {
        self.spec.width
    }
    pub fn height(&self) -> u32 {
        self.spec.height
    }
    pub fn bframes(&self) -> bool {
        self.spec.bframes
    }
    /// Frames in one pass of the clip.
    pub fn frames(&self) -> u64 {
        self.spec.frames()
    }
    /// Keyframes in one pass of the clip (one per started GOP).
    pub fn keyframes(&self) -> u64 {
        self.frames().div_ceil(u64::from(self.spec.gop))
    }
    /// Length of one pass of the clip.
    pub fn duration(&self) -> Duration {
        Duration::from_secs(u64::from(self.spec.seconds))
    }
    /// Duration of one frame.
    pub fn frame_duration(&self) -> Duration {
        Duration::from_secs(1) / self.spec.fps
    }
}

impl AsRef<Path> for Clip {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ClipSpec {
        ClipSpec {
            codec: Codec::H264,
            seconds: 2,
            fps: 25,
            gop: 25,
            width: 320,
            height: 240,
            bframes: false,
        }
    }

    #[test]
    fn rejects_bad_parameters() {
        type Mutation = fn(&mut ClipSpec);
        let cases: [(Mutation, &str); 6] = [
            (|s| s.seconds = 0, "seconds"),
            (|s| s.fps = 0, "fps"),
            (|s| s.fps = 1000, "fps"),
            (|s| s.gop = 0, "gop"),
            (|s| s.width = 321, "width"),
            (|s| s.height = 8, "height"),
        ];
        for (mutate, want) in cases {
            let mut s = spec();
            mutate(&mut s);
            let err = Clip::build(s).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn file_name_covers_every_parameter() {
        let base = spec();
        let variants = [
            ClipSpec {
                codec: Codec::H265,
                ..base
            },
            ClipSpec { seconds: 3, ..base },
            ClipSpec { fps: 30, ..base },
            ClipSpec { gop: 50, ..base },
            ClipSpec { width: 640, ..base },
            ClipSpec {
                height: 480,
                ..base
            },
            ClipSpec {
                bframes: true,
                ..base
            },
        ];
        for v in variants {
            assert_ne!(v.file_name(), base.file_name(), "{v:?}");
        }
    }

    #[test]
    fn metadata_follows_the_spec() {
        let clip = Clip {
            path: PathBuf::from("x"),
            spec: ClipSpec { gop: 20, ..spec() },
        };
        assert_eq!(clip.frames(), 50);
        assert_eq!(clip.keyframes(), 3);
        assert_eq!(clip.duration(), Duration::from_secs(2));
        assert_eq!(clip.frame_duration(), Duration::from_millis(40));
    }
}
