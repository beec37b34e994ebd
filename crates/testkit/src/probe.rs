//! What a video file really holds, according to ffprobe (an independent decoder), and pulling
//! a stream with ffmpeg (an independent RTSP client).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::{Error, require_tool};

/// The first video stream of a file, with frames counted by decoding it.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// Frames ffprobe decoded (`nb_read_frames`).
    pub frames: u64,
    /// The stream duration, or the container's when the stream has none (fragmented MP4).
    pub duration_secs: f64,
    /// ffprobe's codec name: `h264`, `hevc`, ...
    pub codec: String,
    pub width: u32,
    pub height: u32,
}

/// One packet (access unit) of the first video stream, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    pub pts_secs: Option<f64>,
    pub dts_secs: Option<f64>,
    pub keyframe: bool,
    pub size: u64,
}

#[derive(Deserialize)]
struct ProbeDoc {
    #[serde(default)]
    streams: Vec<StreamDoc>,
    format: Option<FormatDoc>,
    #[serde(default)]
    packets: Vec<PacketDoc>,
}

#[derive(Deserialize)]
struct StreamDoc {
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    nb_read_frames: Option<String>,
    duration: Option<String>,
}

#[derive(Deserialize)]
struct FormatDoc {
    duration: Option<String>,
}

#[derive(Deserialize)]
struct PacketDoc {
    pts_time: Option<String>,
    dts_time: Option<String>,
    flags: Option<String>,
    size: Option<String>,
}

/// Decodes the first video stream of `path` with
/// `ffprobe -v error -count_frames -show_entries stream=... -of json` and reports what it holds.
pub fn ffprobe_count(path: impl AsRef<Path>) -> Result<Probe, Error> {
    let path = path.as_ref();
    let json = run_ffprobe(
        path,
        &[
            "-count_frames",
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames,duration:format=duration",
        ],
    )?;
    Probe::from_ffprobe_json(path, &json)
}

/// Lists the packets of the first video stream of `path` (timestamps in seconds, key flag),
/// e.g. to check that B-frames kept their reordering or that timestamps have no gap.
pub fn ffprobe_packets(path: impl AsRef<Path>) -> Result<Vec<Packet>, Error> {
    let path = path.as_ref();
    let json = run_ffprobe(
        path,
        &["-show_entries", "packet=pts_time,dts_time,flags,size"],
    )?;
    Packet::list_from_ffprobe_json(path, &json)
}

/// Records `seconds` of `url` into `out` with ffmpeg (`-rtsp_transport tcp -c copy`), as an
/// RTSP client independent of Vigil. Gives up (killing ffmpeg) after `seconds` + 30 s.
pub fn ffmpeg_pull(url: &str, seconds: f64, out: &Path) -> Result<(), Error> {
    let ffmpeg = require_tool("ffmpeg");
    let mut cmd = Command::new(ffmpeg);
    cmd.args(["-nostdin", "-v", "error", "-y"]);
    if url.starts_with("rtsp") {
        // Socket I/O timeout in microseconds: a stalled server must not hang the test.
        cmd.args(["-rtsp_transport", "tcp", "-timeout", "10000000"]);
    }
    cmd.arg("-i")
        .arg(url)
        .args(["-t", &format!("{seconds:.3}"), "-c", "copy"])
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // The URL may carry a password: name only the output in messages.
    let command = format!("ffmpeg -i <url> -t {seconds} -c copy {}", out.display());
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        command: command.clone(),
        source,
    })?;
    let stderr = child.stderr.take().expect("stderr is piped");
    let reader = std::thread::spawn(move || {
        let mut buf = String::new();
        let _ = std::io::Read::read_to_string(&mut std::io::BufReader::new(stderr), &mut buf);
        buf
    });
    let deadline = Instant::now() + Duration::from_secs_f64(seconds.max(0.0) + 30.0);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                break Err("timed out");
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                break Err("wait failed");
            }
        }
    };
    let stderr = reader.join().unwrap_or_default();
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(Error::CommandFailed {
            command,
            status: s.to_string(),
            stderr,
        }),
        Err(why) => Err(Error::CommandFailed {
            command,
            status: why.into(),
            stderr,
        }),
    }
}

fn run_ffprobe(path: &Path, args: &[&str]) -> Result<String, Error> {
    let ffprobe = require_tool("ffprobe");
    let mut cmd = Command::new(&ffprobe);
    cmd.args(["-v", "error", "-select_streams", "v:0"])
        .args(args)
        .args(["-of", "json"])
        .arg(path);
    let command = format!("ffprobe ... {}", path.display());
    let out = cmd.output().map_err(|source| Error::Spawn {
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
    String::from_utf8(out.stdout).map_err(|_| Error::Probe {
        path: path.to_owned(),
        reason: "ffprobe printed invalid UTF-8".into(),
    })
}

fn parse_doc(path: &Path, json: &str) -> Result<ProbeDoc, Error> {
    serde_json::from_str(json).map_err(|e| Error::Probe {
        path: path.to_owned(),
        reason: format!("not ffprobe JSON ({e})"),
    })
}

fn parse_num<T: std::str::FromStr>(path: &Path, field: &str, v: &str) -> Result<T, Error> {
    v.parse().map_err(|_| Error::Probe {
        path: path.to_owned(),
        reason: format!("field `{field}` is {v:?}, not a number"),
    })
}

/// ffprobe writes "N/A" for unknown values.
fn known(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| *s != "N/A" && !s.is_empty())
}

impl Probe {
    /// Parses the JSON printed by [`ffprobe_count`]'s command (`path` is only for messages).
    pub fn from_ffprobe_json(path: &Path, json: &str) -> Result<Probe, Error> {
        let doc = parse_doc(path, json)?;
        let err = |reason: &str| Error::Probe {
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        let stream = doc
            .streams
            .first()
            .ok_or_else(|| err("the file has no video stream"))?;
        let frames = known(&stream.nb_read_frames)
            .ok_or_else(|| err("no frame count (`nb_read_frames`): was -count_frames given?"))?;
        let frames = parse_num(path, "nb_read_frames", frames)?;
        let duration = known(&stream.duration)
            .or_else(|| doc.format.as_ref().and_then(|f| known(&f.duration)))
            .ok_or_else(|| err("neither the stream nor the container has a duration"))?;
        let duration_secs: f64 = parse_num(path, "duration", duration)?;
        if !duration_secs.is_finite() || duration_secs < 0.0 {
            return Err(err("negative or infinite duration"));
        }
        Ok(Probe {
            frames,
            duration_secs,
            codec: stream
                .codec_name
                .clone()
                .ok_or_else(|| err("the video stream has no codec name"))?,
            width: stream.width.ok_or_else(|| err("no width"))?,
            height: stream.height.ok_or_else(|| err("no height"))?,
        })
    }
}

impl Packet {
    /// Parses the JSON printed by [`ffprobe_packets`]'s command.
    pub fn list_from_ffprobe_json(path: &Path, json: &str) -> Result<Vec<Packet>, Error> {
        let doc = parse_doc(path, json)?;
        doc.packets
            .iter()
            .map(|p| {
                Ok(Packet {
                    pts_secs: known(&p.pts_time)
                        .map(|v| parse_num(path, "pts_time", v))
                        .transpose()?,
                    dts_secs: known(&p.dts_time)
                        .map(|v| parse_num(path, "dts_time", v))
                        .transpose()?,
                    keyframe: p.flags.as_deref().is_some_and(|f| f.contains('K')),
                    size: known(&p.size)
                        .map(|v| parse_num(path, "size", v))
                        .transpose()?
                        .unwrap_or(0),
                })
            })
            .collect()
    }
}

/// ffprobe's format duration of a file, in seconds.
pub fn ffprobe_duration(path: impl AsRef<Path>) -> Result<f64, Error> {
    let path = path.as_ref();
    let command = format!("ffprobe -show_entries format=duration {}", path.display());
    let out = Command::new(require_tool("ffprobe"))
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
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
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().parse().map_err(|_| Error::Probe {
        path: path.to_owned(),
        reason: format!("the duration '{}' is not a number", text.trim()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("x.mp4")
    }

    #[test]
    fn parses_stream_and_falls_back_to_format_duration() {
        let json = r#"{"programs":[],"streams":[{"codec_name":"h264","width":640,"height":360,
            "nb_read_frames":"150","duration":"N/A"}],"format":{"duration":"10.000000"}}"#;
        let probe = Probe::from_ffprobe_json(p(), json).unwrap();
        assert_eq!(
            probe,
            Probe {
                frames: 150,
                duration_secs: 10.0,
                codec: "h264".into(),
                width: 640,
                height: 360
            }
        );
    }

    #[test]
    fn rejects_malformed_answers() {
        let cases = [
            ("not json", "not ffprobe JSON"),
            (r#"{"streams":[]}"#, "no video stream"),
            (
                r#"{"streams":[{"codec_name":"h264","width":1,"height":1,"duration":"1"}]}"#,
                "-count_frames",
            ),
            (
                r#"{"streams":[{"codec_name":"h264","width":1,"height":1,"nb_read_frames":"x","duration":"1"}]}"#,
                "not a number",
            ),
            (
                r#"{"streams":[{"codec_name":"h264","width":1,"height":1,"nb_read_frames":"3"}]}"#,
                "duration",
            ),
            (
                r#"{"streams":[{"codec_name":"h264","width":1,"height":1,"nb_read_frames":"3","duration":"-1"}]}"#,
                "negative",
            ),
            (
                r#"{"streams":[{"width":1,"height":1,"nb_read_frames":"3","duration":"1"}]}"#,
                "codec name",
            ),
        ];
        for (json, want) in cases {
            let err = Probe::from_ffprobe_json(p(), json).unwrap_err().to_string();
            assert!(err.contains(want), "{json}: {err}");
            assert!(err.contains("x.mp4"), "{err}");
        }
    }

    #[test]
    fn parses_packets() {
        let json = r#"{"packets":[{"pts_time":"0.066667","dts_time":"0.000000","flags":"K__","size":"100"},
            {"pts_time":"N/A","dts_time":"0.033333","flags":"___","size":"7"}]}"#;
        let pk = Packet::list_from_ffprobe_json(p(), json).unwrap();
        assert_eq!(pk.len(), 2);
        assert!(pk[0].keyframe && !pk[1].keyframe);
        assert_eq!(pk[0].pts_secs, Some(0.066667));
        assert_eq!(pk[1].pts_secs, None);
        assert_eq!(pk[1].size, 7);
        let err =
            Packet::list_from_ffprobe_json(p(), r#"{"packets":[{"pts_time":"abc"}]}"#).unwrap_err();
        assert!(err.to_string().contains("pts_time"), "{err}");
    }
}
