#!/usr/bin/env bash
# Soak benchmark: Vigil records CAMERAS GStreamer RTSP cameras for DURATION seconds while it is
# killed with SIGKILL and restarted, its volume is filled by another process, cameras are
# disabled and enabled again, and slow HTTPS connections hold the API. Prints the figures and
# writes WORKDIR/results.json; docs/BENCHMARKS.md ("Soak") explains the method and records a run.
# It is a benchmark, not a test: it exits 0 when goals are missed.
#
# Needs root (it mounts a tmpfs for the data directory). Everything stays on loopback. Bounded:
# a hard timeout covers the whole run; the trap kills every process it started and unmounts.
#
# Environment (defaults are the issue's values):
#   DURATION=600      seconds of soak, from the moment every camera records
#   CAMERAS=8
#   CRASHES=5         kill -9 + restart (after a random 0.5-3 s)
#   FILLS=2           another process fills the volume ...
#   FILL_SECS=20      ... and holds the space this long
#   CAM_STOPS=2       cameras disabled (`vigil camera disable`) and enabled again, one at a time
#   STOP_SECS=10      how long each stays disabled
#   SETTLE=20         quiet seconds after each fault before the next may start
#   SLOW_CONNS=200    slow HTTPS connections held throughout (half trickle headers, half bodies)
#   SLOW_ADDRS=4      loopback source addresses they come from (127.0.0.2 ...)
#   VOLUME_SIZE=1g    tmpfs size
#   SEED=n            fault schedule seed (default: time)
#   VIGIL_BIN=path    use this binary (default: target/release/vigil, rebuilt if older than
#                     the sources)
#   WORKDIR=path      default <target>/bench-soak
# A smoke run: DURATION=90 bash bench/soak/run.sh (fewer faults fit; it says which it ran).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

DURATION="${DURATION:-600}"
for v in DURATION CAMERAS CRASHES FILLS FILL_SECS CAM_STOPS STOP_SECS SETTLE SLOW_CONNS SLOW_ADDRS; do
  val="${!v:-0}"
  [[ "$val" =~ ^[0-9]+$ ]] || { echo "$v must be a whole number, not '$val'" >&2; exit 2; }
done
[[ "${VOLUME_SIZE:-1g}" =~ ^[0-9]+[kmg]$ ]] || { echo "VOLUME_SIZE like 1g or 512m" >&2; exit 2; }
[[ "$(id -u)" == 0 ]] || { echo "the soak mounts a tmpfs: run it as root" >&2; exit 1; }
require_tools ffmpeg curl setpriv timeout mount umount
require_rtsp_server

target="${CARGO_TARGET_DIR:-$root/target}"
if [[ -z "${VIGIL_BIN:-}" ]]; then
  VIGIL_BIN="$target/release/vigil"
  stale=""
  if [[ -x "$VIGIL_BIN" ]]; then
    stale="$(find crates Cargo.toml Cargo.lock -newer "$VIGIL_BIN" \( -name '*.rs' -o -name Cargo.toml -o -name Cargo.lock \) -print -quit)"
  fi
  if [[ ! -x "$VIGIL_BIN" || -n "$stale" ]]; then
    echo "building the release binary (nice -n 10 cargo build --release -p vigil)" >&2
    nice -n 10 cargo build --release -q -p vigil
  fi
fi
[[ -x "$VIGIL_BIN" ]] || { echo "no vigil binary at $VIGIL_BIN" >&2; exit 1; }

workdir="${WORKDIR:-$target/bench-soak}"
vol="$workdir/vol"
mkdir -p "$workdir"
rm -f "$workdir/children.pids" "$workdir/results.json" "$workdir/slow.json" "$workdir"/fill-*.json "$workdir/serve.log"
if mountpoint -q "$vol"; then
  echo "$vol is still mounted from an earlier run; unmounting it" >&2
  umount "$vol" || umount -l "$vol"
fi
mkdir -p "$vol"

driver=""
mounted=""
# shellcheck disable=SC2317  # invoked by the trap
cleanup() {
  local pid
  if [[ -n "$driver" ]] && kill -0 "$driver" 2>/dev/null; then
    kill -TERM "$driver" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$driver" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$driver" 2>/dev/null || true
  fi
  # Children the driver started (their pids, checked against their command line).
  if [[ -f "$workdir/children.pids" ]]; then
    while read -r pid; do
      [[ "$pid" =~ ^[0-9]+$ ]] || continue
      if [[ -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qE "vigil|rtsp_server.py|soak.py"; then
        kill -KILL "$pid" 2>/dev/null || true
      fi
    done <"$workdir/children.pids"
  fi
  rm -f "$workdir/health.header"  # the API token of the run (its data directory goes with the tmpfs)
  if [[ -n "$mounted" ]]; then
    umount "$vol" 2>/dev/null || umount -l "$vol" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mount -t tmpfs -o "size=${VOLUME_SIZE:-1g}" vigil-soak "$vol"
mounted=1

# Hard limit: the soak itself, start-up, the clean stop and the analysis (verify of every camera).
limit=$((DURATION + 600))
analysis=600
timeout --signal=TERM --kill-after=30 $((limit + analysis + 120)) \
  /usr/bin/python3 "$root/bench/soak/soak.py" run \
  --root "$root" --vigil "$VIGIL_BIN" --workdir "$workdir" --vol "$vol" \
  --duration "$DURATION" --cameras "${CAMERAS:-8}" --crashes "${CRASHES:-5}" \
  --fills "${FILLS:-2}" --fill-secs "${FILL_SECS:-20}" --cam-stops "${CAM_STOPS:-2}" \
  --stop-secs "${STOP_SECS:-10}" --settle "${SETTLE:-20}" --slow-conns "${SLOW_CONNS:-200}" \
  --slow-addrs "${SLOW_ADDRS:-4}" ${SEED:+--seed "$SEED"} \
  --time-limit "$limit" --analysis-limit "$analysis" &
driver=$!
status=0
wait "$driver" || status=$?
driver=""
[[ "$status" == 0 ]] || echo "soak driver exited with status $status" >&2
echo "results: $workdir/results.json, Vigil's log: $workdir/serve.log" >&2
exit 0
