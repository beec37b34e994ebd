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
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
require_tools ffmpeg ffprobe
require_rtsp_server
target="${CARGO_TARGET_DIR:-$root/target}"
vigil_release_binary "$target"
work="$target/bench-signing"
mkdir -p "$work"
driver=""
# shellcheck disable=SC2317  # invoked by the trap
cleanup() { if [[ -n "$driver" ]]; then kill "$driver" 2>/dev/null || true; fi; rm -rf "$work/runs"; }
trap cleanup EXIT INT TERM
/usr/bin/python3 "$root/bench/signing/signing_bench.py" \
  --root "$root" --vigil "$VIGIL_BIN" --work "$work" \
  --streams "${STREAMS:-16}" --duration "${DURATION:-60}" --rounds "${ROUNDS:-3}" \
  --settle "${SETTLE:-5}" --out "${OUT:-$root/docs/BENCHMARKS-evidence.md}" &
driver=$!
wait "$driver" || echo "signing benchmark driver exited with status $?" >&2
driver=""
exit 0
