#!/usr/bin/env bash
# Builds the Debian package from the debug binary the test run built, installs it with dpkg
# on this machine, checks what it installed and removes it again (docs/install.md).
#
#   bash scripts/test-package.sh                    # scripts/test-all.sh runs it after the tests
#   VIGIL_SKIP_INSTALL=1 bash scripts/test-package.sh    # never cargo install cargo-deb
#
# A release package (`cargo deb -p vigil`) needs a fat-LTO build of the workspace, which CI's
# time budget has no room for; the package's contents and maintainer scripts are the same.
# Needs root (or sudo) for dpkg, and refuses to run where a vigil package is installed.
set -euo pipefail

# cargo-deb's version is pinned: packaging a dev-profile binary is deprecated there.
CARGO_DEB_VERSION=3.8.0

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '\n== %s\n' "$*" >&2; }
fail() {
    echo "test-package: FAILED: $*" >&2
    exit 1
}

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

if ! cargo deb --version >/dev/null 2>&1; then
    [ -z "${VIGIL_SKIP_INSTALL:-}" ] || fail "cargo-deb is missing and VIGIL_SKIP_INSTALL is set"
    log "installing cargo-deb $CARGO_DEB_VERSION"
    cargo install --locked cargo-deb --version "$CARGO_DEB_VERSION"
fi

installed() { dpkg -s vigil 2>/dev/null | grep -q '^Status: install ok installed'; }

if installed; then
    fail "a vigil package is installed on this machine; not replacing it"
fi

binary=target/debug/vigil
if [ ! -x "$binary" ]; then
    # The same build as the test run's, so nothing is built twice.
    log "building $binary"
    cargo test --workspace --features vigil-media/peer-tests,vigil-archive/peer-tests,vigil-db/peer-tests,vigil-access/peer-tests,vigil/peer-tests --no-run
fi
expected_version=$("$binary" --version)

out=$(mktemp -d)
user_existed=no
dir_existed=no
getent passwd vigil >/dev/null && user_existed=yes
[ -e /var/lib/vigil ] && dir_existed=yes
cleanup() {
    rm -rf "$out"
    if dpkg -s vigil >/dev/null 2>&1; then
        as_root dpkg --purge vigil >/dev/null || true
    fi
    # Leave the machine as it was: the package keeps its user and data directory on removal.
    if [ "$dir_existed" = no ]; then
        as_root rm -rf /var/lib/vigil
    fi
    if [ "$user_existed" = no ] && getent passwd vigil >/dev/null; then
        as_root userdel vigil || true
    fi
    if getent group vigil >/dev/null && [ "$user_existed" = no ]; then
        as_root groupdel vigil 2>/dev/null || true
    fi
}
trap cleanup EXIT

log "cargo deb -p vigil --no-build --profile dev"
if ! cargo deb -p vigil --no-build --profile dev --fast -o "$out/" >"$out/cargo-deb.log" 2>&1; then
    cat "$out/cargo-deb.log" >&2
    fail "cargo deb"
fi
deb=$(find "$out" -name 'vigil_*.deb' -print -quit)
[ -n "$deb" ] || fail "cargo deb wrote no package"
ls -l "$deb" >&2

log "dpkg -i $(basename "$deb")"
as_root dpkg -i "$deb"

[ "$(/usr/bin/vigil --version)" = "$expected_version" ] ||
    fail "/usr/bin/vigil --version is not '$expected_version'"

IFS=: read -r _ _ uid _ _ home shell < <(getent passwd vigil) || fail "no vigil user"
[ "$uid" -lt 1000 ] || fail "vigil is not a system user (uid $uid)"
[ "$home" = /var/lib/vigil ] || fail "vigil's home is $home"
[ "$shell" = /usr/sbin/nologin ] || fail "vigil's shell is $shell"
getent group vigil >/dev/null || fail "no vigil group"

[ "$(stat -c '%a %U %G' /var/lib/vigil)" = "750 vigil vigil" ] ||
    fail "/var/lib/vigil is $(stat -c '%a %U %G' /var/lib/vigil), not 750 vigil vigil"

unit=/lib/systemd/system/vigil.service
cmp -s "$unit" packaging/systemd/vigil.service || fail "$unit differs from packaging/systemd/vigil.service"
# Installed, the unit's ExecStart exists: systemd checks the unit as it will run it.
if ! verify=$(systemd-analyze verify "$unit" 2>&1) || [ -n "$verify" ]; then
    fail "systemd-analyze verify $unit: $verify"
fi

# The service user can run the binary and create a data directory, with the unit's umask.
scratch=$(as_root runuser -u vigil -- mktemp -d /var/lib/vigil/.test-package.XXXXXX)
printf 'correct horse battery staple 42\n' | as_root tee "$scratch.pw" >/dev/null
as_root chown vigil:vigil "$scratch.pw"
as_root chmod 600 "$scratch.pw"
as_root runuser -u vigil -- sh -c 'umask 0077 && exec "$@"' sh /usr/bin/vigil \
    --config "$scratch/vigil.toml" init --data-dir "$scratch" --admin-password-file "$scratch.pw" \
    >/dev/null 2>&1 || fail "vigil init as the vigil user"
[ "$(stat -c '%U %a' "$scratch/pki/ca.key")" = "vigil 600" ] ||
    fail "the CA key is $(stat -c '%U %a' "$scratch/pki/ca.key")"
as_root rm -rf "$scratch" "$scratch.pw"

log "dpkg -r vigil"
as_root dpkg -r vigil
[ ! -e /usr/bin/vigil ] || fail "/usr/bin/vigil is left after dpkg -r"
[ ! -e "$unit" ] || fail "$unit is left after dpkg -r"
! installed || fail "vigil is still installed after dpkg -r"
log "dpkg --purge vigil"
as_root dpkg --purge vigil
! dpkg -s vigil >/dev/null 2>&1 || fail "dpkg still knows vigil after --purge"
# Kept on purpose (recordings may be evidence, docs/install.md).
[ -d /var/lib/vigil ] || fail "removing the package deleted /var/lib/vigil"
getent passwd vigil >/dev/null || fail "removing the package deleted the vigil user"

log "package test passed"
