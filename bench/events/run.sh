#!/usr/bin/env bash
# Events benchmark: Vigil's events role against Debian's rsyslog on the same machine in the
# same invocation.
#   1. syslog over TLS (RFC 5425, client certificates) ingest with [[rules]] evaluated, vs
#      rsyslog receiving the same stream over TLS into a file: messages/s (goal >= 1.0 x);
#   2. event -> alarm latency through the API's events WebSocket, idle and with background
#      syslog traffic (goal p99 < 50 ms);
#   3. SIEM forwarding: Vigil relaying the stream to an rsyslog collector vs an rsyslog relay
#      forwarding it with omfwd over TLS (goal >= 1.0 x);
#   4. cameras: 16 cameras (one GStreamer RTSP server, bench/ingest's 1080p30 4 Mbit/s clip)
#      recording, CAM_PHASE s alone and CAM_PHASE s while CAM_RATE syslog messages/s arrive
#      over TLS: frames lost per phase (goal 0 under the events), Vigil CPU B / A.
# Prints the figures and writes docs/BENCHMARKS-events.md. A benchmark, not a test: exits 0
# even when goals are missed. Only loopback traffic; bounded (a hard timeout over the driver,
# SIGALRM inside it; every process it started is killed by pid at the end).
#
# Needs: rsyslog with rsyslog-openssl and/or rsyslog-gnutls, openssl, python3 (Debian's,
# /usr/bin/python3); for the cameras part also ffmpeg/ffprobe and GStreamer's RTSP server
# bindings. Nothing is installed here.
#
# Environment:
#   PARTS="ingest latency siem cameras"   which parts to run
#   MESSAGES=100000     messages per ingest round
#   ROUNDS=3            rounds per receiver, alternating the order
#   CONNS=4             TLS connections the load generator sends over (round-robin)
#   DRIVERS="ossl gtls" rsyslog stream drivers to compare against (the faster one counts);
#                       the first is also the SIEM part's
#   RATE=1000000 BURST=10000000   Vigil's [events.limits] rate_per_source / burst for the run
#   LAT_COUNT=500       alarms per latency run
#   LAT_INTERVAL=0.02   seconds between an alarm's arrival and the next event
#   LAT_BG="0 2000"     background syslog messages/s during the latency runs (one run each)
#   SIEM_MESSAGES=50000 messages per SIEM round
#   CAM_COUNT=16        cameras of the cameras part (1..64)
#   CAM_PHASE=60        seconds of each of its two phases (5..600)
#   CAM_RATE=10000      syslog messages/s sent during its phase B (at most CAM_RATE x CAM_PHASE)
#   CAM_SETTLE=5        seconds between the last camera's PLAY and phase A
#   TIME_LIMIT=540      seconds for the whole driver
#   VIGIL_BIN=path      use this vigil binary instead of building one
#   CARGO_TARGET_DIR    where the release build goes (default <repo>/target)
#   OUT=path            markdown output (default docs/BENCHMARKS-events.md)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
require_tools rsyslogd openssl setpriv timeout
parts="${PARTS:-ingest latency siem cameras}"
if [[ " $parts " == *" cameras "* ]]; then
  require_tools ffmpeg ffprobe
  require_rtsp_server
fi
for d in ${DRIVERS:-ossl gtls}; do
  case "$d" in
    ossl) pkg=rsyslog-openssl ;;
    gtls) pkg=rsyslog-gnutls ;;
    *) echo "DRIVERS: ossl and/or gtls, not '$d'" >&2; exit 2 ;;
  esac
  [[ -e "/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_$d.so" ]] || {
    echo "rsyslog's $d driver is missing: apt-get install -y $pkg" >&2
    exit 1
  }
done
for v in MESSAGES ROUNDS CONNS RATE BURST LAT_COUNT SIEM_MESSAGES CAM_COUNT CAM_PHASE CAM_RATE CAM_SETTLE TIME_LIMIT; do
  val="${!v:-1}"
  [[ "$val" =~ ^[0-9]+$ && "$val" -gt 0 ]] || { echo "$v must be a positive whole number, not '$val'" >&2; exit 2; }
done
if ! /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.2", 0))' 2>/dev/null; then
  echo "cannot bind 127.0.0.2 (the background sender of the latency part uses it)" >&2
  exit 1
fi
target="${CARGO_TARGET_DIR:-$root/target}"
vigil_release_binary "$target"
work="$target/bench-events"
rm -rf "$work"
mkdir -p "$work"
chmod 700 "$work"
export BENCH_PIDFILE="$work/children.pids"

driver=""
# shellcheck disable=SC2317  # invoked by the trap
cleanup() {
  local pid
  if [[ -n "$driver" ]] && kill -0 "$driver" 2>/dev/null; then
    kill -TERM "$driver" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$driver" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$driver" 2>/dev/null || true
  fi
  # Children the driver started (their pids, checked against their command line).
  if [[ -f "$BENCH_PIDFILE" ]]; then
    while read -r pid; do
      [[ "$pid" =~ ^[0-9]+$ ]] || continue
      if [[ -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qE "vigil|rsyslogd|rtsp_server"; then
        kill -KILL "$pid" 2>/dev/null || true
      fi
    done <"$BENCH_PIDFILE"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

limit="${TIME_LIMIT:-540}"
command="bash bench/events/run.sh"
for v in PARTS MESSAGES ROUNDS CONNS DRIVERS RATE BURST LAT_COUNT LAT_INTERVAL LAT_BG SIEM_MESSAGES \
  CAM_COUNT CAM_PHASE CAM_RATE CAM_SETTLE; do
  [[ -n "${!v:-}" ]] && command="$v=\"${!v}\" $command"
done
timeout --signal=TERM --kill-after=20 $((limit + 60)) \
  /usr/bin/python3 "$root/bench/events/events_bench.py" \
  --root "$root" --vigil "$VIGIL_BIN" --work "$work" \
  --parts "$parts" \
  --messages "${MESSAGES:-100000}" --rounds "${ROUNDS:-3}" --conns "${CONNS:-4}" \
  --drivers "${DRIVERS:-ossl gtls}" --rate "${RATE:-1000000}" --burst "${BURST:-10000000}" \
  --lat-count "${LAT_COUNT:-500}" --lat-interval "${LAT_INTERVAL:-0.02}" --lat-bg "${LAT_BG:-0 2000}" \
  --siem-messages "${SIEM_MESSAGES:-50000}" --time-limit "$limit" \
  --cam-count "${CAM_COUNT:-16}" --cam-phase "${CAM_PHASE:-60}" --cam-rate "${CAM_RATE:-10000}" \
  --cam-settle "${CAM_SETTLE:-5}" --clips "$target/benchclips" \
  --command "$command" \
  --out "${OUT:-$root/docs/BENCHMARKS-events.md}" ${given:+--given-binary} &
driver=$!
status=0
wait "$driver" || status=$?
driver=""
[[ "$status" == 0 ]] || echo "events benchmark driver exited with status $status" >&2
echo "work directory (logs, configurations): $work" >&2
exit 0
