#!/usr/bin/env bash
# Verification throughput: `vigil-signing`'s verifier (the code behind `vigil verify`) over at
# least 1 GiB of signed recording, against `sha256sum` and `openssl dgst -sha256` hashing the
# same segment files in the same invocation (interleaved rounds, page cache warm for all).
# Prints ratios and writes the "verify" section of docs/BENCHMARKS-evidence.md. A benchmark,
# not a test: exits 0 even when the goal (at least as fast as openssl) is missed.
#
# Environment:
#   GIB=1.0            size of the synthetic recording (64 MiB segments of 1 MiB GOPs)
#   ROUNDS=5           interleaved rounds; the best wall time of each tool counts
#   CARGO_TARGET_DIR   where the release build goes (default <repo>/target)
#   OUT=path           markdown output (default docs/BENCHMARKS-evidence.md)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
require_tools sha256sum openssl
target="${CARGO_TARGET_DIR:-$root/target}"
cargo build --release -q -p vigil-signing --example verify_throughput
work="$target/bench-verify"
rm -rf "$work"
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 "$root/bench/verify/verify_bench.py" \
  --tool "$target/release/examples/verify_throughput" --work "$work" \
  --gib "${GIB:-1.0}" --rounds "${ROUNDS:-5}" \
  --out "${OUT:-$root/docs/BENCHMARKS-evidence.md}" || echo "verify benchmark failed with status $?" >&2
exit 0
