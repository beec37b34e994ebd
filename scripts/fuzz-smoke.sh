#!/usr/bin/env bash
# Bounded fuzz run for CI: every cargo-fuzz target in fuzz/ runs for a few seconds over its
# committed corpus (fuzz/corpus/<target>/) and CI fails on any crash, timeout or OOM.
#
#   bash scripts/fuzz-smoke.sh                       # what CI runs (.ci/run calls this)
#   VIGIL_FUZZ_SECONDS=60 bash scripts/fuzz-smoke.sh # longer per target
#   bash scripts/fuzz-smoke.sh media_time tls_flight # some targets only
#
# Runs on the stable toolchain: libFuzzer comes with the libfuzzer-sys crate, and without a
# sanitizer (`--sanitizer none`) cargo-fuzz passes rustc no nightly-only flag. RUSTC_BOOTSTRAP=1
# is exported all the same, as in fuzz/README.md, because cargo rebuilds everything when it
# changes and ASan runs need it. The targets fuzz safe Rust, where AddressSanitizer would find
# nothing that the bounds checks, overflow checks and debug assertions of this build miss.
#
# CI builds the targets with `--dev` (opt-level 0 except the hash and key-derivation crates,
# see fuzz/Cargo.toml; debug assertions and overflow checks as in the long runs): under 5 min
# of CPU from a fresh clone instead of the release build's 9 or so, and the few seconds per
# target replay the committed corpus and fuzz a little, which is what a smoke run is for. The
# long runs use cargo-fuzz's release build (fuzz/README.md): VIGIL_FUZZ_BUILD=release.
#
#   VIGIL_FUZZ_SECONDS=600 VIGIL_FUZZ_BUILD=release bash scripts/fuzz-smoke.sh site_parse
#
# Time on 2 cores (2026-12-06, 13 targets, now 17; cargo-fuzz install about 2.5 min once per machine,
# not counted): cold --dev build 282 s of CPU, 5.3 to 5.6 min wall clock while other builds
# shared the cores (about 2.5 min on idle cores); the 13 runs of 5 s over the committed corpora
# 92 s. So about 4 min in all on 2 idle cores.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SECONDS_PER_TARGET="${VIGIL_FUZZ_SECONDS:-5}"
case "${VIGIL_FUZZ_BUILD:-dev}" in
    dev) profile=(--dev) ;;
    # cargo-fuzz's default build (not its --release flag, which drops the debug assertions)
    release) profile=() ;;
    *)
        echo "VIGIL_FUZZ_BUILD must be dev or release" >&2
        exit 2
        ;;
esac
CARGO_FUZZ_VERSION=0.13.2
export RUSTC_BOOTSTRAP=1

# Longest input per target: big enough for the committed corpus, small enough that a run
# spends its time on structure rather than on huge inputs. The long runs use the same values.
max_len() {
    case "$1" in
        media_time) echo 256 ;;
        samplecam_request) echo 4096 ;;
        access_parsers | web_request) echo 8192 ;;
        samplecam_clip | media_segment | signing_ledger | signing_handover | syslog_framing) echo 65536 ;;
        # One message of the default 8 KiB limit after the 8-byte arrival time.
        syslog_parse) echo 8200 ;;
        # One WS-Discovery datagram (MAX_MESSAGE is 16 KiB; a little over reaches the refusal).
        onvif_discovery) echo 17408 ;;
        # A device answer: the committed seeds are 0.3-1.5 KiB, profiles lists grow to a few.
        onvif_soap) echo 16384 ;;
        # WWW-Authenticate fields (MAX_CHALLENGE_BYTES is 4 KiB; a little over reaches the refusal).
        onvif_www_authenticate) echo 4608 ;;
        *) echo 16384 ;;
    esac
}

log() { printf '\n== %s\n' "$*" >&2; }

start=$(date +%s)
if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi
installed=$(date +%s)

cd fuzz
log "cargo fuzz build --sanitizer none ${profile[*]} (all targets)"
cargo fuzz build --sanitizer none "${profile[@]}"
built=$(date +%s)

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

# New inputs go to a scratch directory: the committed corpus is only read.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

failed=()
for t in "${targets[@]}"; do
    log "$t: ${SECONDS_PER_TARGET}s"
    mkdir -p "$scratch/$t" "corpus/$t"
    if ! cargo fuzz run --sanitizer none "${profile[@]}" "$t" "$scratch/$t" "corpus/$t" -- \
        -max_total_time="$SECONDS_PER_TARGET" -max_len="$(max_len "$t")" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 >"$scratch/$t.log" 2>&1; then
        failed+=("$t")
        tail -n 60 "$scratch/$t.log" >&2
        echo "reproduce: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none ${profile[*]} $t artifacts/$t/<file>" >&2
    fi
    grep -E '^#[0-9]+[[:space:]]+DONE' "$scratch/$t.log" | tail -n 1 >&2 || true
done
done_at=$(date +%s)

log "fuzz smoke: install $((installed - start))s, build $((built - installed))s, runs $((done_at - built))s"
if [ "${#failed[@]}" -gt 0 ]; then
    log "FAILED: ${failed[*]} (inputs in fuzz/artifacts/)"
    exit 1
fi
log "fuzz smoke passed: ${#targets[@]} targets"
