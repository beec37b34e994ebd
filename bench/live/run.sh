#!/usr/bin/env bash
# Live view benchmark (issue #12): live latency from the camera to the browser's screen (1 and
# 16 tiles of Vigil's web client in Chromium, frame numbers read from the pixels, no OCR), time
# to first frame, seek time on the playback page, `vigil serve` CPU per live viewer-stream,
# recording with 16 and 256 viewer-streams attached (0 frames lost), and recorded video over
# TLS with Range requests against nginx serving the same bytes with the same certificate.
# Writes docs/BENCHMARKS-live.md; a benchmark, not a test: exits 0 even when goals are missed.
# Everything listens on 127.0.0.1; the driver kills every process it started on exit.
#
# Needs (nothing is installed here): ffmpeg, nginx (nginx-light is enough), wrk, openssl, node,
# Debian's chromium, tests/browser/node_modules (cd tests/browser && npm ci), GStreamer's RTSP
# server with x264 for Debian's /usr/bin/python3 (python3-gi gir1.2-gst-rtsp-server-1.0
# gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly).
#
# Environment (defaults in brackets; the whole run takes about 8 minutes):
#   CAMERAS [16]         cameras recorded, each with a live secondary stream
#   FPS [25] GOP [50]    frame rate and keyframe interval of both streams
#   MAIN_SIZE [1920x1080] MAIN_KBPS [4000]   recorded main stream (a looping clip)
#   SUB_SIZE [640x360] SUB_KBPS [800]        live secondary stream (live x264, numbered frames)
#   WINDOW [30]          seconds of each latency/CPU window (1 tile, 16 tiles, fan-out)
#   IDLE [15]            seconds of each no-viewer CPU window (one before, one after)
#   REOPEN [10]          single-tile openings timed for the time to first frame
#   FANOUT [256]         live viewer-streams in the fan-out window (16 tiles + WebSocket clients)
#   SEEKS [20]           timeline clicks per condition: recording still growing; camera disabled
#                        (final answer) with the segment files cached; and evicted
#   RANGE_ROUNDS [4] RANGE_DURATION [10] RANGE_CONNS [8] RANGE_CHUNK [1048576] RANGE_SECONDS [120]
#   PLAYER_JS=path       serve this liveplayer.js to the page instead of the binary's (to try a
#                        client change without a rebuild; the report says so)
#   PLAYBACK_JS=path     also run every seek condition with this playback.js served instead of
#                        the binary's, each variant on a fresh page (A/B in one run)
#   SEEK_BLOCK=n         with PLAYBACK_JS: scrubs per page and variant before switching [SEEKS]
#   ONLY_SEEKS=1         record RECORD_S [150] seconds, then only the seeks (no latency,
#                        fan-out or Range phases): the quick loop for playback page changes
#   VIGIL_BIN=path       use this vigil binary instead of building one
#   CARGO_TARGET_DIR     where the release build goes (default <repo>/target)
#   OUT=path             markdown output (default docs/BENCHMARKS-live.md, replaced whole: its
#                        summary and analysis are written by hand, so use OUT for trial runs)
#   KEEP=1               keep the recorded video under $CARGO_TARGET_DIR/bench-live
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
if [[ -n "${ONLY_SEEKS:-}" ]]; then
  require_tools ffmpeg openssl node chromium
else
  require_tools ffmpeg nginx wrk openssl node chromium
fi
if [[ ! -d tests/browser/node_modules/playwright-core ]]; then
  echo "tests/browser/node_modules/playwright-core is missing: cd tests/browser && npm ci" >&2
  exit 1
fi
/usr/bin/python3 -c '
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst
Gst.init(None)
assert Gst.ElementFactory.find("x264enc") and Gst.ElementFactory.find("rtph264pay")
' 2>/dev/null || {
  echo "GStreamer RTSP server bindings or x264enc are missing: apt-get install -y python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly" >&2
  exit 1
}
target="${CARGO_TARGET_DIR:-$root/target}"
vigil_release_binary "$target"
workdir="$target/bench-live"
mkdir -p "$workdir"

# The Python driver kills its own children on exit; this trap covers the driver itself.
driver=""
trap 'if [[ -n "$driver" ]]; then kill "$driver" 2>/dev/null || true; fi' EXIT INT TERM

/usr/bin/python3 "$root/bench/live/live_bench.py" \
  --root "$root" --vigil "$VIGIL_BIN" --workdir "$workdir" \
  --cameras "${CAMERAS:-16}" --fps "${FPS:-25}" --gop "${GOP:-50}" \
  --main-size "${MAIN_SIZE:-1920x1080}" --main-kbps "${MAIN_KBPS:-4000}" \
  --sub-size "${SUB_SIZE:-640x360}" --sub-kbps "${SUB_KBPS:-800}" \
  --window "${WINDOW:-30}" --idle "${IDLE:-15}" --reopen "${REOPEN:-10}" \
  --fanout "${FANOUT:-256}" --seeks "${SEEKS:-20}" \
  --range-rounds "${RANGE_ROUNDS:-4}" --range-duration "${RANGE_DURATION:-10}" \
  --range-conns "${RANGE_CONNS:-8}" --range-chunk "${RANGE_CHUNK:-1048576}" \
  --range-seconds "${RANGE_SECONDS:-120}" \
  ${PLAYER_JS:+--player-js "$PLAYER_JS"} ${PLAYBACK_JS:+--playback-js "$PLAYBACK_JS"} \
  ${ONLY_SEEKS:+--only-seeks --record-s "${RECORD_S:-150}"} ${SEEK_BLOCK:+--seek-block "$SEEK_BLOCK"} \
  --out "${OUT:-$root/docs/BENCHMARKS-live.md}" ${KEEP:+--keep} ${given:+--given-binary} &
driver=$!
wait "$driver" || echo "live benchmark driver exited with status $?" >&2
driver=""
exit 0
