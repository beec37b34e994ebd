#!/usr/bin/env bash
# Camera fleet benchmark (issue 14): (a) `vigil camera discover` listing 100 ONVIF devices and
# `vigil camera add --onvif` of all 100 (oxvif mock devices behind HTTPS on 127.0.0.1-100),
# each against a bare Python client doing the same exchange in the same invocation; (b) a
# bulk password rotation of 100 rotation cameras (`vigil camera rotate-passwords --all`) while
# some of them record, with the frames each recording camera lost across it, per-camera latency
# p50/p95 and peak concurrency, against the same cameras rotated one at a time. Writes
# docs/BENCHMARKS-cameras.md and exits 0 even when a goal is missed (it is a benchmark, not a
# test).
#
# Environment:
#   DEVICES=100        ONVIF devices for part (a), rotation cameras for part (b)
#   STREAMING=12       rotation cameras that also record during the rotation (the others are
#                      added but disabled)
#   ROUNDS=3           discovery rounds (Vigil and the baseline alternate)
#   WAIT=1             seconds both discovery clients wait after their last probe
#   CONCURRENCY=       [cameras] rotation_concurrency of the measured run (default: the
#                      installation default, 4); the baseline run always uses 1
#   FPS=25 GOP=50      the rotation cameras' clip (640x360 H.264, a GOP of 2 s by default)
#   PARTS="discovery rotation"   which parts to run
#   VIGIL_BIN=path     use this vigil binary instead of building one (release)
#   FLEET_BIN=path     use this onvif_fleet example binary instead of building one
#   CARGO_TARGET_DIR   where the builds go (default <repo>/target)
#   OUT=path           markdown output (default docs/BENCHMARKS-cameras.md)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
require_tools ffmpeg openssl setpriv
require_rtsp_server
target="${CARGO_TARGET_DIR:-$root/target}"
vigil_release_binary "$target"
if [[ -z "${FLEET_BIN:-}" ]]; then
  CARGO_INCREMENTAL=0 cargo build --release -q -p vigil-testkit --features onvif --example onvif_fleet
  FLEET_BIN="$target/release/examples/onvif_fleet"
fi
workdir="$target/bench-cameras"
rm -rf "$workdir"
mkdir -p "$workdir"

driver=""
# shellcheck disable=SC2317  # invoked by the trap
cleanup() { if [[ -n "$driver" ]]; then kill "$driver" 2>/dev/null || true; fi; }
trap cleanup EXIT INT TERM

/usr/bin/python3 "$root/bench/cameras/cameras_bench.py" \
  --root "$root" --vigil "$VIGIL_BIN" --fleet "$FLEET_BIN" --workdir "$workdir" \
  --devices "${DEVICES:-100}" --streaming "${STREAMING:-12}" --rounds "${ROUNDS:-3}" \
  --wait "${WAIT:-1}" ${CONCURRENCY:+--concurrency "$CONCURRENCY"} \
  --fps "${FPS:-25}" --gop "${GOP:-50}" --parts "${PARTS:-discovery rotation}" \
  --out "${OUT:-$root/docs/BENCHMARKS-cameras.md}" ${given:+--given-binary} &
driver=$!
wait "$driver" || echo "camera benchmark driver exited with status $?" >&2
driver=""
exit 0
