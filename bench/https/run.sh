#!/usr/bin/env bash
# HTTPS API throughput: `vigil serve` against nginx with the same certificate on the same
# machine in the same invocation, measured with wrk: keep-alive requests/s on an authenticated
# small JSON endpoint (GET /api/v1/session with an API token) and new full TLS handshakes/s
# (one request per connection); then the server CPU cost of failed logins from an address the
# IDS has blocked vs from an allow-listed one. Prints ratios and writes docs/BENCHMARKS-https.md.
# A benchmark, not a test: exits 0 even when the goal (at least equal to nginx) is missed.
#
# Needs: wrk, nginx (nginx-light is enough), openssl, gcc (builds the small LD_PRELOAD shim
# that makes wrk do a full handshake per connection), python3. Nothing is installed here.
#
# Environment:
#   ROUNDS=4            alternating rounds per wrk test (Vigil/nginx, nginx/Vigil, ...)
#   DURATION=10         seconds per wrk run
#   THREADS=2 CONNS=32  wrk -t / -c (the same for both servers)
#   BLOCKED=10000       failed logins from the blocked address (all measured)
#   ALLOWED=200 ALLOWED_SECONDS=40   bound on the allow-listed sample (each pays Argon2id)
#   VIGIL_BIN=path      use this vigil binary instead of building one
#   CARGO_TARGET_DIR    where the release build goes (default <repo>/target)
#   OUT=path            markdown output (default docs/BENCHMARKS-https.md)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
require_tools wrk nginx openssl gcc python3
if ! python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.2", 0))' 2>/dev/null; then
  echo "cannot bind 127.0.0.2 (the IDS test needs 127.0.0.2 and 127.0.0.3 on lo)" >&2
  exit 1
fi
target="${CARGO_TARGET_DIR:-$root/target}"
vigil_release_binary "$target"
work="$target/bench-https"
rm -rf "$work"
trap 'rm -rf "$work"' EXIT
python3 "$root/bench/https/https_bench.py" \
  --vigil "$VIGIL_BIN" --work "$work" \
  --rounds "${ROUNDS:-4}" --duration "${DURATION:-10}" \
  --threads "${THREADS:-2}" --connections "${CONNS:-32}" \
  --blocked-count "${BLOCKED:-10000}" \
  --allowed-count "${ALLOWED:-200}" --allowed-seconds "${ALLOWED_SECONDS:-40}" \
  --out "${OUT:-$root/docs/BENCHMARKS-https.md}" \
  || echo "https benchmark failed with status $?" >&2
exit 0
