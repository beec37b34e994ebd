#!/usr/bin/env bash
# Times `vigil audit` probing 200 loopback endpoints against `nmap -sT` of the same ports, in
# one invocation, and writes docs/BENCHMARKS-audit.md. Needs openssl and nmap.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
command -v nmap >/dev/null || { echo "nmap is missing: apt-get install -y nmap" >&2; exit 1; }
command -v openssl >/dev/null || { echo "openssl is missing: apt-get install -y openssl" >&2; exit 1; }
cargo run --release -q -p vigil-netaudit --example audit_bench -- --out "$root/docs/BENCHMARKS-audit.md"
