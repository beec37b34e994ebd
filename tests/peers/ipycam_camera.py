#!/usr/bin/env python3
"""An independent ONVIF camera for Vigil's tests: IPyCam (PyPI `ipycam`, MIT), a virtual IP
camera written without knowledge of Vigil, with WS-Discovery, ONVIF device and media services
(profiles, stream URIs, WS-Security UsernameToken) and its own RTSP server (H.264 by ffmpeg).

Frames are generated here (a moving bar and the frame number in binary), so the camera needs no
input device. Every port is given by the test (the WS-Discovery port too, which IPyCam fixes to
3702: a test must not take the real port nor collide with another test). The ONVIF password is
read from the file named by --password-file, never from the command line.

Prints one JSON line {"ready": true, ...} when every service answers, then runs until killed
or until --max-seconds (bounded, as every test peer is).
"""

import argparse
import json
import os
import socket
import sys
import time


def wait_port(port, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--http-port", type=int, required=True, help="ONVIF and web UI (HTTP)")
    ap.add_argument("--rtsp-port", type=int, required=True)
    ap.add_argument("--discovery-port", type=int, required=True, help="WS-Discovery (UDP)")
    ap.add_argument("--unused-port", type=int, required=True,
                    help="a closed port for go2rtc's API, so IPyCam uses its own RTSP server")
    ap.add_argument("--username", default="admin")
    ap.add_argument("--password-file", help="first line: the ONVIF password (none: no auth)")
    ap.add_argument("--serial", default="IPYCAM-0001")
    ap.add_argument("--fps", type=int, default=10)
    ap.add_argument("--max-seconds", type=float, default=600)
    a = ap.parse_args()

    try:
        import numpy as np
        import ipycam
        from ipycam import CameraConfig, IPCamera, WSDiscoveryServer
    except ImportError as e:
        print(f"ipycam_camera: {e}; install with: python3 -m pip install numpy "
              "opencv-python-headless (see scripts/test-all.sh) && python3 -m pip install --no-deps ipycam==1.3.0",
              file=sys.stderr)
        return 2

    password = ""
    if a.password_file:
        with open(a.password_file, encoding="utf-8") as f:
            password = f.readline().rstrip("\n")
    # IPyCam binds WS-Discovery to a class constant; the test's own port keeps tests apart.
    WSDiscoveryServer.MULTICAST_PORT = a.discovery_port
    config = CameraConfig(
        name="IPyCam test camera",
        manufacturer="IPyCam",
        model="VirtualCam-test",
        serial_number=a.serial,
        local_ip="127.0.0.1",
        onvif_port=a.http_port,
        rtsp_port=a.rtsp_port,
        web_port=a.http_port,
        go2rtc_api_port=a.unused_port,
        username=a.username if password else "",
        password=password,
        main_width=640, main_height=360, main_fps=a.fps, main_bitrate="800K",
        sub_width=320, sub_height=180, sub_fps=a.fps, sub_bitrate="200K",
        hw_accel="cpu",
        show_timestamp=False,
    )
    cam = IPCamera(config)
    if not cam.start():
        print("ipycam_camera: the camera did not start", file=sys.stderr)
        return 1
    if not (wait_port(a.http_port, 20) and wait_port(a.rtsp_port, 20)):
        print("ipycam_camera: ONVIF or RTSP port not listening within 20 s", file=sys.stderr)
        cam.stop()
        return 1
    print(json.dumps({
        "ready": True, "ipycam": ipycam.__version__, "onvif": config.onvif_url,
        "main": config.main_stream_rtsp, "sub": config.sub_stream_rtsp,
        "mode": getattr(cam, "_streaming_mode", None),
    }), flush=True)

    frame = np.zeros((360, 640, 3), dtype=np.uint8)
    start = time.monotonic()
    n = 0
    try:
        while time.monotonic() - start < a.max_seconds:
            frame[:] = 40
            x = (n * 8) % 640
            frame[:, x:x + 16] = 230
            for bit in range(16):
                if (n >> bit) & 1:
                    frame[8:24, 8 + bit * 20:24 + bit * 20] = 255
            cam.stream(frame)
            n += 1
            # IPyCam paces frames itself; this only bounds the loop.
            next_at = start + n / a.fps
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    finally:
        cam.stop()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    sys.exit(main())
