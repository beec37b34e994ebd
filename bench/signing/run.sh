#!/usr/bin/env bash
# Signing cost: `vigil serve` records the same N RTSP streams (one GStreamer server looping a
# 1080p30 ~4 Mbit/s clip) with signing on, and with signing forced off through the
# benchmark-only switch VIGIL_BENCH_UNSIGNED=1, alternating on/off runs several times in one
# invocation. Reports the CPU (utime+stime of the serve process) overhead of signing and writes
# the "signing" section of docs/BENCHMARKS-evidence.md. A benchmark, not a test: exits 0 even
# when the goal (under 1% extra CPU) is missed.
#
# Environment:
#   STREAMS=16         cameras recorded at once
#   DURATION=60        measured seconds per run
#   ROUNDS=3           on/off pairs (order alternates between rounds)
#   SETTLE=5           seconds after every camera records before measuring
#   VIGIL_BIN=path     use this vigil binary instead of building one
#   CARGO_TARGET_DIR   where the release build goes (default <repo>/target)
#   OUT=path           markdown output (default docs/BENCHMARKS-evidence.md)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
for tool in ffmpeg ffprobe; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install -y ffmpeg" >&2; exit 1; }
done
/usr/bin/python3 -c 'import gi; gi.require_version("GstRtspServer", "1.0")' 2>/dev/null || {
  echo "GStreamer RTSP server bindings are missing: apt-get install -y python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad" >&2
  exit 1
}
target="${CARGO_TARGET_DIR:-$root/target}"
if [[ -z "${VIGIL_BIN:-}" ]]; then
  cargo build --release -q -p vigil
  VIGIL_BIN="$target/release/vigil"
fi
work="$target/bench-signing"
mkdir -p "$work"
driver=""
cleanup() { [[ -n "$driver" ]] && kill "$driver" 2>/dev/null || true; rm -rf "$work/runs"; }
trap cleanup EXIT INT TERM
/usr/bin/python3 "$root/bench/signing/signing_bench.py" \
  --root "$root" --vigil "$VIGIL_BIN" --work "$work" \
  --streams "${STREAMS:-16}" --duration "${DURATION:-60}" --rounds "${ROUNDS:-3}" \
  --settle "${SETTLE:-5}" --out "${OUT:-$root/docs/BENCHMARKS-evidence.md}" &
driver=$!
wait "$driver" || echo "signing benchmark driver exited with status $?" >&2
driver=""
exit 0
