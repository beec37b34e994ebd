#!/usr/bin/env bash
# Shared by the bench/*/run.sh scripts (sourced, not run): the checks for the tools a
# benchmark needs, and the release binary it measures.

# Exits with the apt-get line to run when a command is not on PATH.
require_tools() {
  local tool missing=() pkgs=()
  for tool in "$@"; do
    command -v "$tool" >/dev/null && continue
    missing+=("$tool")
    case "$tool" in
      nginx) pkgs+=(nginx-light) ;;
      ffprobe) [[ " ${pkgs[*]} " == *" ffmpeg "* ]] || pkgs+=(ffmpeg) ;;
      ffmpeg) [[ " ${pkgs[*]} " == *" ffmpeg "* ]] || pkgs+=(ffmpeg) ;;
      node) pkgs+=(nodejs) ;;
      *) pkgs+=("$tool") ;;
    esac
  done
  if ((${#missing[@]})); then
    echo "missing: ${missing[*]}; install with: apt-get install -y ${pkgs[*]}" >&2
    exit 1
  fi
}

# Exits unless Debian's python3 has GStreamer's RTSP server bindings (the test cameras,
# tests/peers/rtsp_server.py).
require_rtsp_server() {
  /usr/bin/python3 -c 'import gi; gi.require_version("GstRtspServer", "1.0")' 2>/dev/null || {
    echo "GStreamer RTSP server bindings are missing: apt-get install -y python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad" >&2
    exit 1
  }
}

# Sets VIGIL_BIN to the release binary under the target directory $1, built now, unless
# VIGIL_BIN names one already; then sets given=1 (the report says the binary need not match
# the checkout).
vigil_release_binary() {
  # shellcheck disable=SC2034  # read by the sourcing script
  given=""
  if [[ -z "${VIGIL_BIN:-}" ]]; then
    CARGO_INCREMENTAL=0 cargo build --release -q -p vigil
    VIGIL_BIN="$1/release/vigil"
  else
    # shellcheck disable=SC2034
    given=1
  fi
}
