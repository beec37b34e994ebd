#!/usr/bin/env bash
# Ingest benchmark: Vigil vs `ffmpeg -c copy -f segment` recording N RTSP streams at once from
# one GStreamer RTSP server. Writes docs/BENCHMARKS-ingest.md and exits 0 even when the goals
# are missed (it is a benchmark, not a test).
#
# Environment:
#   COUNTS="1 16 64"   stream counts to run
#   DURATION=60        measured seconds per run (each N runs Vigil and ffmpeg once)
#   SETTLE=3           seconds after the last client's PLAY before measuring
#   GOP=60             keyframe interval of the 1080p30 clip (frames)
#   KBPS=4000          clip bit rate
#   VIGIL_BIN=path     use this vigil binary instead of building one
#   CARGO_TARGET_DIR   where the release build goes (default <repo>/target)
#   OUT=path           markdown output (default docs/BENCHMARKS-ingest.md)
#   KEEP=1             keep the recorded video under $CARGO_TARGET_DIR/bench-ingest
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
require_tools ffmpeg ffprobe
require_rtsp_server
target="${CARGO_TARGET_DIR:-$root/target}"
vigil_release_binary "$target"
workdir="$target/bench-ingest"
mkdir -p "$workdir"

# The Python driver kills its own children on exit; this trap covers the driver itself.
driver=""
# shellcheck disable=SC2317  # invoked by the trap
cleanup() { if [[ -n "$driver" ]]; then kill "$driver" 2>/dev/null || true; fi; }
trap cleanup EXIT INT TERM

/usr/bin/python3 "$root/bench/ingest/ingest_bench.py" \
  --root "$root" --vigil "$VIGIL_BIN" --workdir "$workdir" \
  --counts "${COUNTS:-1 16 64}" --duration "${DURATION:-60}" --settle "${SETTLE:-3}" \
  --gop "${GOP:-60}" --kbps "${KBPS:-4000}" \
  --out "${OUT:-$root/docs/BENCHMARKS-ingest.md}" ${KEEP:+--keep} ${given:+--given-binary} &
driver=$!
wait "$driver" || echo "ingest benchmark driver exited with status $?" >&2
driver=""
exit 0
