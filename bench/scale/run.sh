#!/usr/bin/env bash
# Scale benchmarks of issue 15 (beyond one box). Parts, chosen by the first argument:
#   api   the management API's latency with the embedded SQLite and with PostgreSQL 15
#         (TLS, verify-full) under the same load, in the same invocation (bench/scale/api_bench.py)
# Prints ratios and writes docs/BENCHMARKS-scale.md (the part's section). A benchmark, not a
# test: exits 0 even when a goal is missed.
#
# Needs: wrk, openssl, python3, PostgreSQL 15 (postgresql-15: initdb, postgres, psql under
# /usr/lib/postgresql/15/bin or VIGIL_PG_BIN), runuser when run as root. Nothing is installed.
#
# Environment:
#   ROUNDS=4 DURATION=10   alternating rounds, seconds per wrk run
#   THREADS=2 CONNS=16     wrk -t / -c (the same for both backends)
#   VIGIL_BIN=path         use this vigil binary instead of building one
#   CARGO_TARGET_DIR       where the release build goes (default <repo>/target)
#   OUT=path               markdown output (default docs/BENCHMARKS-scale.md)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
part="${1:-api}"
case "$part" in
  api) ;;
  *) echo "usage: bench/scale/run.sh [api]" >&2; exit 2 ;;
esac
require_tools wrk openssl python3
pg_bin="${VIGIL_PG_BIN:-/usr/lib/postgresql/15/bin}"
if [[ ! -x "$pg_bin/postgres" ]]; then
  echo "PostgreSQL 15 is missing ($pg_bin/postgres); install with: apt-get install -y postgresql-15" >&2
  exit 1
fi
target="${CARGO_TARGET_DIR:-$root/target}"
vigil_release_binary "$target"
work="$target/bench-scale"
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
out="${OUT:-$root/docs/BENCHMARKS-scale.md}"
python3 "$root/bench/scale/api_bench.py" \
  --vigil "$VIGIL_BIN" --work "$work" \
  --rounds "${ROUNDS:-4}" --duration "${DURATION:-10}" \
  --threads "${THREADS:-2}" --connections "${CONNS:-16}" \
  --out "$out" \
  || echo "scale benchmark ($part) failed with status $?" >&2
exit 0
