#!/usr/bin/python3
"""Live view, seek and recorded-video delivery benchmark (issue #12), driver of bench/live/run.sh.

Set-up, all on loopback: `vigil serve` records CAMERAS cameras. Every camera's main stream is
one GStreamer RTSP mount (tests/peers/rtsp_server.py, one shared pipeline) looping a 1080p H.264
clip; every camera's secondary stream (`--secondary-mode live`) is the mount of
bench/live/coded_rtsp.py, a live x264 encoder (tune=zerolatency, no B-frames) that draws each
frame's number into the frame as black/white blocks and logs when each frame left it.

Measured in one invocation:

  * live latency, without OCR: Vigil's real web client in Debian's Chromium (playwright-core,
    bench/live/live_page.mjs) plays the secondary streams in its live grid; a
    requestVideoFrameCallback loop per tile reads each presented frame's number off a canvas and
    its presentation time; latency = performance.timeOrigin + expectedDisplayTime (the page's
    clock, same machine) - the wall time the test camera sent the frame's last RTP packet.
    One tile, then 16 tiles; time to first frame after a tile is given a camera.
  * server cost: `vigil serve` CPU (/proc, per thread group) with no viewer, 16 browser tiles,
    and 256 viewer-streams (the 16 tiles + WebSocket clients of this script, `fanout` mode);
    recording threads with and without viewers; frames lost by recording (every GOP of the
    clip's fixed length, no hole, no gap row) and by the WebSocket viewers (`skipped`).
  * seek: the web client's playback page (<video src=playback?from&to>, Range requests):
    clicks on the timeline at random recorded times, from the pointer-up to the first
    presented frame at the new position; with our segment files in the page cache and evicted
    (posix_fadvise DONTNEED on this run's own files) before each click.
  * recorded-video delivery: Range requests (wrk, RANGE_CONNS connections, RANGE_CHUNK bytes
    each, over TLS) on one playback answer, against nginx serving the same bytes as a static
    file with Vigil's certificate and key; rounds alternate.

Only the standard library; every child runs in its own process group and is killed on exit;
every wait is bounded; a benchmark, not a test (exit 0 when goals are missed).
"""

import argparse
import asyncio
import base64
import bisect
import datetime
import json
import math
import os
import platform
import random
import re
import resource
import select
import shutil
import signal
import socket
import sqlite3
import ssl
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import (  # noqa: E402
    CLK_TCK, Deadline, admin_token, cpu_model, free_port, git_rev, kill_all_children, loadavg,
    loopback_only, make_log, on_alarm, on_term, proc_ticks, read_stats, run, spawn,
    threads, write_secret)
from common import served_key_and_chain as served_key_and_chain_of  # noqa: E402

ADMIN = "admin"
ADMIN_PASSWORD = "bench-Live-4q9w-Lantern"
HERE = os.path.dirname(os.path.abspath(__file__))
log = make_log("live-bench")


def pct(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(p / 100 * len(v) + 0.5)) - 1))
    return v[k]


def summary(values):
    if not values:
        return None
    return {"n": len(values), "median": statistics.median(values), "p95": pct(values, 95),
            "min": min(values), "max": max(values)}


# ----- /proc -----


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def thread_group(name):
    if name.startswith("writer-"):
        return "writer-<camera>"
    if name.startswith("vigil-web-contr"):
        return "vigil-web-control"
    if name.startswith("vigil-web-"):
        return "vigil-web-<n> (API, live sockets)"
    if name.startswith("tokio-r"):
        return "tokio workers (ingest, live hub)"
    return name


def vigil_threads(pid):
    """{tid: (thread group, CPU ticks)} of a process's live threads."""
    return {tid: (thread_group("main" if tid == str(pid) else name), ut + st)
            for tid, name, ut, st in threads(pid)}


def thread_ticks_by_name(pid):
    """{thread name: CPU ticks} of a process (threads of one name summed)."""
    out = {}
    for _, name, ut, st in threads(pid):
        out[name] = out.get(name, 0) + ut + st
    return out


class Sampler(threading.Thread):
    """CPU ticks of the processes under test every 0.5 s, so any window can be cut later."""

    def __init__(self):
        super().__init__(daemon=True, name="sampler")
        self.procs = {}  # label -> (pid, whole tree?)
        self.vigil = None
        self.samples = []  # (wall, {label: ticks}, {tid: (group, ticks)}, loadavg)
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()

    def watch(self, label, pid, tree=False):
        with self.lock:
            self.procs[label] = (pid, tree)

    def sample(self):
        with self.lock:
            procs = dict(self.procs)
        ticks = {}
        for label, (pid, tree) in procs.items():
            ticks[label] = sum(proc_ticks(p) or 0 for p in (descendants(pid) if tree else [pid]))
        th = vigil_threads(self.vigil) if self.vigil else {}
        self.samples.append((time.time(), ticks, th, loadavg()))

    def run(self):
        while not self.stop_ev.wait(0.5):
            self.sample()

    def window(self, t0, t1):
        """CPU seconds per label and per Vigil thread group between t0 and t1 (wall)."""
        s = [x for x in self.samples if t0 - 0.3 <= x[0] <= t1 + 0.3]
        if len(s) < 2:
            return None
        a, b = s[0], s[-1]
        span = b[0] - a[0]
        cpu = {k: (b[1].get(k, 0) - a[1].get(k, 0)) / CLK_TCK for k in b[1]}
        groups = {}
        for tid, (g, t) in b[2].items():
            groups[g] = groups.get(g, 0) + (t - a[2].get(tid, (g, 0))[1]) / CLK_TCK
        return {"span_s": span, "cpu_s": cpu, "vigil_groups_s": groups,
                "load": [x[3] for x in s]}


# ----- clip and RTSP servers -----


def make_clip(clip_dir, seconds, fps, gop, kbps, size):
    os.makedirs(clip_dir, exist_ok=True)
    path = os.path.join(clip_dir, f"h264-{seconds}s-{fps}fps-g{gop}-{size}-{kbps}k-bf0-v1.mp4")
    if os.path.exists(path):
        return path
    tmp = f"{path}.tmp.{os.getpid()}.mp4"
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi",
           "-i", f"testsrc2=size={size}:rate={fps}", "-frames:v", str(seconds * fps), "-an",
           "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high",
           "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-bf", "0",
           "-b:v", f"{kbps}k", "-maxrate", f"{kbps}k", "-bufsize", f"{2 * kbps}k", "-f", "mp4", tmp]
    log(f"encoding the main-stream clip {path} (once; cached)")
    p = spawn(cmd)
    if p.wait(timeout=900) != 0:
        raise RuntimeError("ffmpeg failed to encode the clip")
    os.replace(tmp, path)
    return path


def read_ready(proc, what, limit=120):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        r, _, _ = select.select([proc.stdout], [], [], 1.0)
        if not r:
            if proc.poll() is not None:
                break
            continue
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("READY port="):
            return int(line.strip().split("=", 1)[1])
    raise RuntimeError(f"{what} did not print READY within {limit} s (see its stderr above)")


class MainServer:
    def __init__(self, root, clip, stats_file):
        self.stats_file = stats_file
        self.proc = spawn(["/usr/bin/python3", os.path.join(root, "tests/peers/rtsp_server.py"),
                           "--port", "0", "--mount", f"/main={clip}", "--protocols", "tcp",
                           "--stats-file", stats_file, "--stats-interval", "0.2"],
                          stdout=subprocess.PIPE, text=True)
        self.url = f"rtsp://127.0.0.1:{read_ready(self.proc, 'the main RTSP server')}/main"

    def stats(self):
        for _ in range(50):
            try:
                with open(self.stats_file) as f:
                    return json.load(f)["mounts"]["/main"]
            except (OSError, ValueError, KeyError):
                time.sleep(0.02)
        raise RuntimeError(f"cannot read {self.stats_file}")


class CodedServer:
    def __init__(self, a, workdir):
        self.log_file = os.path.join(workdir, "coded-frames.log")
        self.stats_file = os.path.join(workdir, "coded-stats.json")
        w, h = a.sub_size.split("x")
        self.proc = spawn(["/usr/bin/python3", os.path.join(HERE, "coded_rtsp.py"),
                           "--width", w, "--height", h, "--fps", str(a.fps), "--gop", str(a.gop),
                           "--kbps", str(a.sub_kbps), "--log", self.log_file,
                           "--stats-file", self.stats_file],
                          stdout=subprocess.PIPE, text=True)
        self.url = f"rtsp://127.0.0.1:{read_ready(self.proc, 'the coded RTSP server')}/coded"

    def stats(self):
        stats = read_stats(self.stats_file)
        if stats is None:
            raise RuntimeError(f"cannot read {self.stats_file}")
        return stats

    def frames(self):
        """number -> (pushed, sent) wall times, from the per-frame log."""
        out = {}
        with open(self.log_file) as f:
            for line in f:
                p = line.split()
                if len(p) == 6 and float(p[5]) > 0:
                    out[int(p[0])] = (float(p[2]), float(p[5]), int(p[1]))
        return out


# ----- Vigil -----


class Vigil:
    def __init__(self, a, workdir):
        self.bin = a.vigil
        self.dir = os.path.join(workdir, "vigil")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.data = os.path.join(self.dir, "data")
        self.config = os.path.join(self.data, "vigil.toml")
        pw = os.path.join(workdir, "admin.pw")
        write_secret(pw, ADMIN_PASSWORD + "\n")
        run([self.bin, "init", "--data-dir", self.data, "--admin", ADMIN, "--admin-password-file", pw])
        with open(self.config) as f:
            text = f.read()
        self.port = free_port()
        with open(self.config, "w") as f:
            f.write(loopback_only(text, self.port))
        self.token = admin_token(self.bin, self.config)
        self.token_file = os.path.join(workdir, "token")
        write_secret(self.token_file, self.token)
        self.ca = os.path.join(workdir, "ca.pem")
        with open(self.ca, "w") as f:
            f.write(self.cmd(["pki", "ca-cert"]))
        self.url = f"https://127.0.0.1:{self.port}/"
        self.proc = None

    def cmd(self, args, timeout=60):
        return run([self.bin, "--config", self.config] + args, timeout=timeout)

    def start(self):
        self.logf = open(os.path.join(self.dir, "serve.log"), "w")
        self.proc = spawn([self.bin, "--config", self.config, "serve"], stdout=self.logf,
                          stderr=subprocess.STDOUT, env=dict(os.environ, VIGIL_LOG="warn"))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("vigil serve exited at start (see serve.log)")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("vigil serve did not listen within 60 s")

    def status(self):
        try:
            return json.loads(self.cmd(["camera", "status", "--json"], timeout=30))
        except (RuntimeError, ValueError, subprocess.TimeoutExpired) as e:
            return {"error": str(e)}

    def ssl_ctx(self):
        ctx = ssl.create_default_context(cafile=self.ca)
        ctx.check_hostname = False
        return ctx

    def get(self, path, headers=None, method="GET", limit=None):
        """One HTTPS request with the API token: (status, headers dict, body bytes)."""
        h = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        with socket.create_connection(("127.0.0.1", self.port), timeout=60) as s:
            with self.ssl_ctx().wrap_socket(s, server_hostname="localhost") as t:
                req = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nConnection: close\r\n"
                req += "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
                t.sendall(req.encode())
                data = bytearray()
                while True:
                    b = t.recv(1 << 20)
                    if not b:
                        break
                    data += b
                    if limit and len(data) > limit:
                        break
        head, _, body = bytes(data).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        if hdrs.get("transfer-encoding") == "chunked":
            body = dechunk(body)
        return status, hdrs, body

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return {"exit": self.proc.returncode if self.proc else None}
        t = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.logf.close()
        with open(os.path.join(self.dir, "serve.log"), errors="replace") as f:
            text = re.sub(r"\x1b\[[0-9;]*m", "", f.read())
        noisy = [line for line in text.splitlines() if " WARN " in line or " ERROR " in line]
        return {"exit": self.proc.returncode, "stop_s": time.monotonic() - t,
                "warn_lines": sum(" WARN " in x for x in noisy),
                "error_lines": sum(" ERROR " in x for x in noisy),
                "log_sample": [x.split(" ", 1)[-1][:200] for x in noisy][:4]}

    def recorded(self, gop, fps, windows):
        """Frames lost by recording, from the index: every GOP of the fixed-GOP clip but each
        camera's last must hold `gop` frames, no hole between GOPs, no gap row. Losses are
        attributed to the named (start, end) wall-time windows they fall in."""
        db = sqlite3.connect(f"file:{os.path.join(self.data, 'vigil.db')}?mode=ro", uri=True)
        try:
            cams = db.execute("select id, name from cameras").fetchall()
            out = {"cameras": 0, "frames": 0, "missing": 0, "holes": [], "short_gops": [],
                   "gap_rows": db.execute("select count(*) from gaps").fetchone()[0],
                   "gaps": db.execute("select c.name, g.reason, count(*) from gaps g join cameras c "
                                      "on c.id = g.camera_id group by 1, 2").fetchall(),
                   "per_window": {k: 0 for k in windows}, "first_us": None, "last_us": None}
            for cam_id, _name in cams:
                gops = db.execute("select start_us, duration_us, frames from gops where camera_id=? "
                                  "order by start_us", (cam_id,)).fetchall()
                if not gops:
                    continue
                out["cameras"] += 1
                out["frames"] += sum(g[2] for g in gops)
                out["first_us"] = min(out["first_us"] or gops[0][0], gops[0][0])
                out["last_us"] = max(out["last_us"] or 0, gops[-1][0] + gops[-1][1])
                for cur, nxt in zip(gops, gops[1:]):
                    lost = max(0, gop - cur[2])
                    hole_us = nxt[0] - (cur[0] + cur[1])
                    if hole_us * fps / 1e6 >= 0.5:
                        lost += round(hole_us * fps / 1e6)
                        out["holes"].append((cam_id, cur[0] + cur[1], hole_us))
                    if cur[2] != gop:
                        out["short_gops"].append((cam_id, cur[0], cur[2]))
                    if lost:
                        out["missing"] += lost
                        t = (cur[0] + cur[1]) / 1e6
                        for k, (a, b) in windows.items():
                            if a <= t <= b:
                                out["per_window"][k] += lost
            return out
        finally:
            db.close()

    def segment_files(self, camera_id):
        root = os.path.join(self.data, "video")
        out = []
        for dirpath, _dirs, files in os.walk(root):
            if camera_id in dirpath:
                out += [os.path.join(dirpath, n) for n in files]
        return out


def dechunk(body):
    out = bytearray()
    i = 0
    while True:
        j = body.index(b"\r\n", i)
        n = int(body[i:j].split(b";")[0], 16)
        if n == 0:
            return bytes(out)
        out += body[j + 2:j + 2 + n]
        i = j + 2 + n + 2


def evict(paths):
    """Drops this run's own segment files from the page cache (written back first)."""
    for p in paths:
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass
        finally:
            os.close(fd)


# ----- browser -----


class Page:
    def __init__(self, a, vigil, workdir):
        cfg = os.path.join(workdir, "page.json")
        with open(os.open(cfg, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            json.dump({"url": vigil.url, "user": ADMIN, "password": ADMIN_PASSWORD, "root": a.root,
                       "player_js": a.player_js}, f)
        self.err = open(os.path.join(workdir, "page.log"), "w")
        self.proc = spawn(["node", os.path.join(HERE, "live_page.mjs"), cfg],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err, text=True)

    def send(self, cmd, timeout=60, **kw):
        self.proc.stdin.write(json.dumps({"cmd": cmd, **kw}) + "\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 1.0)
            if r:
                line = self.proc.stdout.readline()
                if not line:
                    break
                ans = json.loads(line)
                if not ans.get("ok"):
                    raise RuntimeError(f"page command {cmd} failed: {ans.get('error', '')[:1500]}")
                return ans
            if self.proc.poll() is not None:
                break
        raise RuntimeError(f"page command {cmd} got no answer within {timeout} s (see page.log)")

    def close(self):
        try:
            self.send("quit", timeout=20)
        except (RuntimeError, OSError, ValueError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


def latency(got, sent, fps, window):
    """Per presented frame: latency = page wall time of its expected display - the wall time the
    camera sent it; split at the WebSocket arrival of its fragment. `window`: (t0, t1) wall.

    Which frame was presented comes from the callback's metadata (mediaTime): per tile, media
    time and the camera's timestamp of a frame differ by a constant (Vigil's decode times come
    from the RTP timestamps, which come from those timestamps), found from the numbers read off
    the canvas; the number read then checks each frame. The canvas can show a newer frame than
    the metadata describes when the callback runs late (counted as `canvas newer`)."""
    to, off = got["timeOrigin"], got["offset_ms"]

    def wall(ms):
        return (to + ms + off) / 1000

    cam_of_socket = {}
    for i, s in enumerate(got["sockets"]):
        m = re.search(r"/cameras/([^/]+)/live", s["url"])
        cam_of_socket[i] = urllib.parse.unquote(m.group(1)) if m else "?"
    arrivals = {}  # (camera, tfdt) -> wall time of arrival
    skipped = 0
    for a in got["arrivals"]:
        if a[2] >= 0:
            arrivals[(cam_of_socket.get(a[0]), a[2])] = wall(a[1])
        elif len(a) > 4 and '"skipped"' in a[4]:
            skipped += json.loads(a[4]).get("frames", 0)
    by_pts = sorted((v[2], n) for n, v in sent.items())
    pts_list = [x[0] for x in by_pts]

    def number_of(code, t):
        """The latest frame sent before t whose number has these 16 bits."""
        best = None
        for n in (code + k * 65536 for k in range(4)):
            if n in sent and sent[n][1] <= t:
                best = n
        return best

    per_tile = {}
    for f in got["frames"]:
        if window[0] <= wall(f[2]) <= window[1]:
            per_tile.setdefault(f[0], []).append(f)
    lat, srv, page_part, cb_vs_expected = [], [], [], []
    checks = {"agree": 0, "canvas newer": 0, "unreadable": 0, "disagree": 0, "unmatched": 0}
    by_tile = {}
    for key, fs in per_tile.items():
        ds = []
        for f in fs:
            n = number_of(f[1], wall(f[2])) if f[1] >= 0 else None
            if n is not None:
                ds.append(round(f[4] - sent[n][2] / 1e9, 3))
        if not ds:
            checks["unmatched"] += len(fs)
            continue
        offset = max(set(ds), key=ds.count)  # the most common offset (ms resolution)
        seen = set()
        for f in fs:
            key_, code, expected, presented, media_time = f[0], f[1], f[2], f[3], f[4]
            target = (media_time - offset) * 1e9
            i = bisect.bisect_left(pts_list, target)
            near = [j for j in (i - 1, i) if 0 <= j < len(pts_list)]
            j = min(near, key=lambda k: abs(pts_list[k] - target)) if near else None
            if j is None or abs(pts_list[j] - target) > 5e6:
                checks["unmatched"] += 1
                continue
            n = by_pts[j][1]
            if code < 0:
                checks["unreadable"] += 1
            elif code == n & 0xFFFF:
                checks["agree"] += 1
            elif code == (n + 1) & 0xFFFF or code == (n + 2) & 0xFFFF:
                checks["canvas newer"] += 1
            else:
                checks["disagree"] += 1
            if n in seen:
                continue
            seen.add(n)
            t_exp = wall(expected)
            total = t_exp - sent[n][1]
            lat.append(total * 1000)
            by_tile.setdefault(key_, []).append(total * 1000)
            cb_vs_expected.append(expected - presented)
            cam = key_.split(":", 1)[1]
            arr = None
            tick = round(media_time * 90000)
            for d in (0, -1, 1, -2, 2):
                arr = arrivals.get((cam, tick + d))
                if arr is not None:
                    break
            if arr is not None:
                srv.append((arr - sent[n][1]) * 1000)
                page_part.append((t_exp - arr) * 1000)
    span = window[1] - window[0]
    sent_in_window = sum(1 for v in sent.values() if window[0] <= v[1] <= window[1])
    return {
        "latency_ms": summary(lat), "server_to_page_ms": summary(srv),
        "page_to_screen_ms": summary(page_part),
        "expected_minus_presentation_ms": summary(cb_vs_expected),
        "frames": len(lat), "tiles": len(by_tile), "checks": checks, "skipped": skipped,
        "window_s": span,
        "presented_per_tile_per_s": len(lat) / max(1, len(by_tile)) / span if span else None,
        "sent_per_s": sent_in_window / span if span else None,
        "tile_medians_ms": {k: statistics.median(v) for k, v in sorted(by_tile.items())},
        "clock_offset_ms": off,
        "dropped_by_browser": sum(t.get("dropped") or 0 for t in got.get("tiles", [])),
        "decoded_by_browser": sum(t.get("decoded") or 0 for t in got.get("tiles", [])),
        "buffered_ahead_s": [round(t["lag_s"], 3) for t in got.get("tiles", []) if t.get("lag_s") is not None],
    }


# ----- fan-out client (runs as `live_bench.py fanout ...`) -----


async def ws_viewer(i, a, ctx, sem, state, rec):
    host = "127.0.0.1"
    path = f"/api/v1/cameras/{urllib.parse.quote(a.cameras[i % len(a.cameras)])}/live?stream={a.stream}"
    reader = writer = None
    try:
        async with sem:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, a.port, ssl=ctx, server_hostname="localhost"), 30)
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write((f"GET {path} HTTP/1.1\r\nHost: {host}:{a.port}\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                          f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {a.token}\r\n\r\n").encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            if not head.startswith(b"HTTP/1.1 101"):
                rec["error"] = head.split(b"\r\n")[0].decode(errors="replace")
                return
        rec["connected"] = time.time()
        expect_init = False
        while not state["stop"]:
            h = await reader.readexactly(2)
            op, n = h[0] & 0x0F, h[1] & 0x7F
            if n == 126:
                n = int.from_bytes(await reader.readexactly(2), "big")
            elif n == 127:
                n = int.from_bytes(await reader.readexactly(8), "big")
            payload = await reader.readexactly(n)
            now = time.time()
            if op == 1:
                m = json.loads(payload)
                if m.get("type") == "init":
                    expect_init = True
                    rec["inits"] += 1
                elif m.get("type") == "skipped":
                    rec["skipped"] += m.get("frames", 0)
                    if state["measuring"]:
                        rec["skipped_in_window"] += m.get("frames", 0)
                elif m.get("type") == "state":
                    rec["states"].append(m.get("state"))
            elif op == 2:
                if expect_init:
                    expect_init = False
                    continue
                rec["fragments"] += 1
                rec["bytes"] += n
                if state["measuring"]:
                    rec["in_window"] += 1
            elif op == 9:  # ping: answer with a masked pong
                mask = os.urandom(4)
                writer.write(bytes([0x8A, 0x80 | len(payload)]) + mask +
                             bytes(b ^ mask[k % 4] for k, b in enumerate(payload)))
            elif op == 8:
                rec["closed"] = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 0
                return
            rec["last"] = now
    except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ssl.SSLError,
            asyncio.LimitOverrunError, ValueError) as e:
        if not state["stop"]:
            rec["error"] = f"{type(e).__name__}: {e}"
    finally:
        if writer is not None:
            try:
                mask = os.urandom(4)
                writer.write(bytes([0x88, 0x82]) + mask + bytes(b ^ mask[k] for k, b in enumerate(b"\x03\xe8")))
                writer.close()
            except (OSError, RuntimeError):
                pass


async def fanout_main(a):
    ctx = ssl.create_default_context(cafile=a.ca)
    ctx.check_hostname = False
    sem = asyncio.Semaphore(a.concurrency)
    state = {"stop": False, "measuring": False}
    recs = [{"viewer": i, "camera": a.cameras[i % len(a.cameras)], "fragments": 0, "bytes": 0,
             "in_window": 0, "skipped": 0, "skipped_in_window": 0, "inits": 0, "states": [],
             "error": None, "closed": None, "connected": None, "last": None} for i in range(a.viewers)]
    t_start = time.time()
    tasks = [asyncio.ensure_future(ws_viewer(i, a, ctx, sem, state, recs[i])) for i in range(a.viewers)]
    deadline = time.monotonic() + a.ramp_limit
    while time.monotonic() < deadline:
        up = sum(1 for r in recs if r["fragments"] > 0)
        if up + sum(1 for r in recs if r["error"]) >= a.viewers:
            break
        await asyncio.sleep(0.2)
    ramp_s = time.time() - t_start
    print(f"UP {sum(1 for r in recs if r['fragments'] > 0)}", flush=True)
    await asyncio.sleep(a.settle)
    state["measuring"] = True
    w0 = time.time()
    print(f"WINDOW start {w0:.6f}", flush=True)
    await asyncio.sleep(a.window)
    state["measuring"] = False
    w1 = time.time()
    print(f"WINDOW end {w1:.6f}", flush=True)
    state["stop"] = True
    await asyncio.sleep(0.2)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    with open(a.out, "w") as f:
        json.dump({"viewers": recs, "window": [w0, w1], "ramp_s": ramp_s,
                   "client_cpu_s": ru.ru_utime + ru.ru_stime}, f)


def fanout_cli(argv):
    ap = argparse.ArgumentParser(prog="live_bench.py fanout")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--cameras", required=True, help="comma-separated")
    ap.add_argument("--stream", default="secondary")
    ap.add_argument("--viewers", type=int, required=True)
    ap.add_argument("--concurrency", type=int, default=32, help="handshakes at a time")
    ap.add_argument("--ramp-limit", type=float, default=60)
    ap.add_argument("--settle", type=float, default=3)
    ap.add_argument("--window", type=float, required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    if not 1 <= a.viewers <= 2048:
        ap.error("--viewers must be 1..2048")
    a.cameras = a.cameras.split(",")
    with open(a.token_file) as f:
        a.token = f.read().strip()
    signal.alarm(int(a.ramp_limit + a.settle + a.window + 60))
    asyncio.run(fanout_main(a))
    return 0


# ----- recorded-video delivery vs nginx -----

WRK_LUA = r"""
-- Range requests of CHUNK bytes over one file, in a scattered order per thread.
local size = tonumber(os.getenv("LB_SIZE"))
local chunk = tonumber(os.getenv("LB_CHUNK"))
local path = os.getenv("LB_PATH")
local auth = os.getenv("LB_AUTH")
local count = math.floor(size / chunk)
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local n = 0
request = function()
  n = n + 1
  local k = (n * 7919 + tid * 104729) % count
  local a = k * chunk
  return wrk.format("GET", path, { ["Range"] = "bytes=" .. a .. "-" .. (a + chunk - 1),
                                   ["Authorization"] = auth })
end
local bad = 0
response = function(status, headers, body)
  if status ~= 206 then bad = bad + 1 end
end
"""


def served_key_and_chain(vigil, work):
    chain, key, source, _ = served_key_and_chain_of(vigil.port, vigil.data, work)
    return chain, key, os.path.relpath(source, vigil.data)


class Nginx:
    def __init__(self, work, cert, key, url_path, body_file, workers):
        self.work = os.path.join(work, "nginx")
        os.makedirs(self.work, exist_ok=True)
        www = os.path.join(self.work, "www")
        target = os.path.join(www, url_path.lstrip("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(body_file, target)
        for d in [www] + [os.path.join(www, *url_path.lstrip("/").split("/")[:i])
                          for i in range(1, url_path.count("/"))]:
            os.chmod(d, 0o755)
        os.chmod(target, 0o644)
        tmp = os.path.join(self.work, "tmp")
        os.makedirs(tmp, exist_ok=True)
        v = subprocess.run(["nginx", "-V"], capture_output=True, text=True, timeout=20)
        modules = v.stdout + v.stderr
        temp_paths = "\n".join(
            f"    {d}_temp_path {tmp}/{d};" for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
            if d == "client_body" or f"--http-{d}-temp-path" in modules)
        self.port = free_port()
        conf = f"""
worker_processes {workers};
daemon off;
pid {self.work}/nginx.pid;
error_log {self.work}/error.log warn;
events {{ worker_connections 4096; }}
http {{
{temp_paths}
    access_log off;
    server_tokens off;
    sendfile on;
    keepalive_requests 1000000;
    keepalive_timeout 65s;
    server {{
        listen 127.0.0.1:{self.port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        root {www};
        default_type video/mp4;
        location / {{ }}
    }}
}}
"""
        self.conf = os.path.join(self.work, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        run(["nginx", "-t", "-q", "-c", self.conf, "-p", self.work], timeout=20)
        self.proc = spawn(["nginx", "-c", self.conf, "-p", self.work], stdout=subprocess.DEVNULL,
                          stderr=open(os.path.join(self.work, "nginx.out"), "w"))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        self.version = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()

    def pids(self):
        return descendants(self.proc.pid)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def range_get(port, ca, path, a, b, token):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            t.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nRange: bytes={a}-{b}\r\n"
                       f"Authorization: Bearer {token}\r\nConnection: close\r\n\r\n").encode())
            data = bytearray()
            while True:
                x = t.recv(1 << 20)
                if not x:
                    break
                data += x
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    return int(head.split()[1]), body


# ----- the run -----


SEEK_LIMIT_MS = 5000


class SeeksOnly(Exception):
    """--only-seeks: the seek phase is done, skip the rest of the run."""


def schedule(variants, total, size):
    """(variant, scrubs) blocks: `total` scrubs per variant in blocks of `size`, the variants'
    order reversed every other round (A B B A A B ...), so a change of the machine's load
    falls on every variant alike."""
    out = []
    rounds = max(1, math.ceil(total / max(1, size)))
    for r in range(rounds):
        n = min(size, total - r * size)
        for v in (variants if r % 2 == 0 else variants[::-1]):
            out.append((v, n))
    return out


def seek_phase(a, page, vigil, camera, ids, windows, res):
    """Scrubs on the playback page: first on a recording that is still growing (what scrubbing
    the last minutes is), then, with the camera disabled, on a closed one, with the segment files
    cached and evicted. With --playback-js each condition runs with the served playback.js and
    with the candidate, each on a fresh page, the order alternating between conditions (the
    machine is shared: both variants see the same load)."""
    variants = [None] + a.playback_js
    name = lambda v: os.path.basename(v) if v else "served"  # noqa: E731
    seeks = {}
    rng = random.Random(12)

    def block(kind, variant, closed, n):
        key = f"{kind} [{name(variant)}]" if a.playback_js else kind
        pb = open_playback(page, vigil, camera, a, variant)
        rows = seeks.setdefault(key, [])
        for i in range(n):
            if closed and i % 2:
                evict(vigil.segment_files(ids[camera]))
            r = scrub(page, pb, rng)
            r["evicted"] = bool(closed and i % 2)
            rows.append(r)

    pb = open_playback(page, vigil, camera, a, None)
    t0 = time.time()
    time.sleep(a.idle)
    windows["idle after"] = (t0, time.time())
    t0 = time.time()
    for v, n in schedule(variants, a.seeks, a.seek_block):
        block("growing", v, False, n)
    vigil.cmd(["camera", "disable", camera])
    res["disabled"] = {"camera": camera, "at": time.time()}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        st = vigil.status()
        row = next((r for r in st if r.get("name") == camera), {}) if isinstance(st, list) else {}
        if row.get("state") not in ("recording", "connecting"):
            break
        time.sleep(0.5)
    time.sleep(2)
    # Closed: cached and evicted scrubs alternate within one page, split by kind afterwards;
    # with candidates, blocks of twice --seek-block per variant, the order alternating.
    for v, n in schedule(variants, 2 * a.seeks, 2 * a.seek_block):
        block("closed", v, True, n)
    windows["seeks"] = (t0, time.time())
    out = {}
    for key, rows in seeks.items():
        if key.startswith("closed"):
            suffix = key[len("closed"):]
            out.setdefault("closed, cached" + suffix, []).extend(r for r in rows if not r["evicted"])
            out.setdefault("closed, evicted" + suffix, []).extend(r for r in rows if r["evicted"])
        else:
            out[key] = rows
    return out


def open_playback(page, vigil, camera, a, playback_js=None):
    """The playback page on `camera`, its timeline zoomed to the recording; where it is."""
    rec = vigil.recorded(a.gop, a.fps, {})
    rec_s = (rec["last_us"] - rec["first_us"]) / 1e6
    presses = max(0, int(math.log2(3600 / max(40, 1.3 * rec_s))))
    pb = page.send("playback", camera=camera, zoom_presses=presses, timeout=90, playback_js=playback_js,
                   first_us=rec["first_us"], last_us=rec["last_us"],
                   screenshot=os.path.join(a.workdir, "playback.png"))
    log(f"playback page: recorded range at x {pb['range']['x0']:.0f}-{pb['range']['x1']:.0f} "
        f"of {pb['range']['width']} px ({rec_s:.0f} s recorded)")
    if pb["range"]["x1"] - pb["range"]["x0"] < 20:
        raise RuntimeError(f"the recorded range on the timeline is too short to scrub: {pb['range']}")
    return pb


def scrub(page, pb, rng):
    x0, x1 = pb["range"]["x0"], pb["range"]["x1"]
    x = rng.uniform(x0 + 0.03 * (x1 - x0), x1 - 0.03 * (x1 - x0))
    r = page.send("seek", x=x, y=33, limit_ms=SEEK_LIMIT_MS, timeout=30 + SEEK_LIMIT_MS / 1000)
    r["x"] = x
    time.sleep(0.5)
    return r


def phase_cpu(sampler, t0, t1, viewers=0):
    w = sampler.window(t0, t1)
    if not w:
        return None
    span = w["span_s"]
    g = w["vigil_groups_s"]
    rec = sum(v for k, v in g.items() if k.startswith("tokio") or k.startswith("writer") or k == "main")
    return {"span_s": span, "viewers": viewers,
            "vigil_pct": 100 * w["cpu_s"].get("vigil", 0) / span,
            "recording_pct": 100 * rec / span,
            "web_pct": 100 * sum(v for k, v in g.items() if k.startswith("vigil-web")) / span,
            "groups_pct": {k: 100 * v / span for k, v in sorted(g.items())},
            "others_pct": {k: 100 * v / span for k, v in w["cpu_s"].items() if k != "vigil"},
            "load_mean": statistics.mean(w["load"]), "load_max": max(w["load"])}


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "fanout":
        return fanout_cli(sys.argv[2:])
    ap = argparse.ArgumentParser(description="Vigil live view / seek / delivery benchmark")
    ap.add_argument("--root", required=True)
    ap.add_argument("--vigil", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--cameras", type=int, default=16)
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--gop", type=int, default=50)
    ap.add_argument("--main-size", default="1920x1080")
    ap.add_argument("--main-kbps", type=int, default=4000)
    ap.add_argument("--sub-size", default="640x360")
    ap.add_argument("--sub-kbps", type=int, default=800)
    ap.add_argument("--window", type=float, default=30, help="latency and CPU windows (s)")
    ap.add_argument("--idle", type=float, default=15, help="no-viewer CPU windows (s)")
    ap.add_argument("--reopen", type=int, default=10, help="single-tile openings timed")
    ap.add_argument("--fanout", type=int, default=256, help="viewer-streams in the fan-out phase")
    ap.add_argument("--seeks", type=int, default=20, help="scrubs per condition (3 conditions)")
    ap.add_argument("--range-rounds", type=int, default=4)
    ap.add_argument("--range-duration", type=int, default=10)
    ap.add_argument("--range-conns", type=int, default=8)
    ap.add_argument("--range-chunk", type=int, default=1 << 20)
    ap.add_argument("--range-seconds", type=int, default=120, help="length of the playback answer")
    ap.add_argument("--player-js", help="serve this liveplayer.js instead of the binary's (A/B of a client change)")
    ap.add_argument("--playback-js", action="append", default=[],
                    help="also run the seeks with this playback.js served instead of the binary's (A/B of a "
                    "playback page change in one run; may be given more than once)")
    ap.add_argument("--only-seeks", action="store_true",
                    help="record --record-s seconds, then only the seek phase (no latency, fan-out or Range)")
    ap.add_argument("--seek-block", type=int, default=0,
                    help="with --playback-js: scrubs per page and variant before switching (default --seeks)")
    ap.add_argument("--record-s", type=float, default=150, help="recording before the seeks with --only-seeks")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--given-binary", action="store_true")
    a = ap.parse_args()
    if not 1 <= a.cameras <= 64:
        ap.error("--cameras must be 1..64")
    if a.cameras < 16:
        log(f"only {a.cameras} cameras: the 16-tile figures use what there is")
    if not 16 <= a.fanout <= 1024:
        ap.error("--fanout must be 16..1024")
    if not 5 <= a.window <= 600 or not 5 <= a.idle <= 600:
        ap.error("--window and --idle must be 5..600 s")
    a.root = os.path.abspath(a.root)
    if a.player_js:
        a.player_js = os.path.abspath(a.player_js)
    a.playback_js = [os.path.abspath(p) for p in a.playback_js]
    if a.seek_block <= 0 or not a.playback_js:
        a.seek_block = a.seeks

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    budget = (300 + 4 * a.window + 3 * a.idle + 4 * a.reopen + 3 * a.seeks * (7 + SEEK_LIMIT_MS / 1000)
              + 2 * a.range_rounds * (a.range_duration + 15) + 3 * a.range_seconds)
    budget += len(a.playback_js) * (3 * a.seeks * (7 + SEEK_LIMIT_MS / 1000) + 120)
    if a.only_seeks:
        budget = 300 + a.record_s + (1 + len(a.playback_js)) * (3 * a.seeks * (7 + SEEK_LIMIT_MS / 1000)
                                                                + 60 * math.ceil(a.seeks / max(1, a.seek_block or a.seeks)))
    signal.alarm(int(budget))
    log(f"time limit {budget / 60:.0f} min")
    os.makedirs(a.workdir, exist_ok=True)
    res = {"params": {k: v for k, v in vars(a).items()}, "phases": {}, "cpu": {}}
    sampler = Sampler()
    vigil = page = nginx = main_srv = coded = None
    got1 = got16 = gotfan = None
    windows = {}
    try:
        clip = make_clip(os.path.join(a.root, "target", "benchclips"), 20, a.fps, a.gop,
                         a.main_kbps, a.main_size)
        main_srv = MainServer(a.root, clip, os.path.join(a.workdir, "main-stats.json"))
        coded = CodedServer(a, a.workdir)
        log(f"main stream {main_srv.url} ({a.main_size} {a.main_kbps} kbit/s), "
            f"coded secondary {coded.url} ({a.sub_size} {a.sub_kbps} kbit/s), {a.fps} fps, GOP {a.gop}")
        vigil = Vigil(a, a.workdir)
        cams = [f"cam{i:02d}" for i in range(a.cameras)]
        for c in cams:
            vigil.cmd(["camera", "add", c, "--url", main_srv.url, "--secondary-url", coded.url,
                       "--secondary-mode", "live"])
        ids = {line.split()[0]: line.split()[1] for line in vigil.cmd(["camera", "list"]).splitlines()[1:]
               if line.strip()}
        plays0 = main_srv.stats()["plays"]
        vigil.start()
        sampler.vigil = vigil.proc.pid
        sampler.watch("vigil", vigil.proc.pid)
        sampler.watch("rtsp main server", main_srv.proc.pid)
        sampler.watch("coded camera", coded.proc.pid)
        sampler.start()
        t_rec = time.monotonic()
        while time.monotonic() - t_rec < 60:
            st = vigil.status()
            rows = st if isinstance(st, list) else []
            if (sum(1 for r in rows if r.get("state") == "recording") >= a.cameras
                    and main_srv.stats()["plays"] - plays0 >= a.cameras):
                break
            time.sleep(1)
        log(f"{a.cameras} cameras recording after {time.monotonic() - t_rec:.1f} s; status "
            f"{[r.get('state') for r in rows][:4]}...")
        time.sleep(5)

        if a.only_seeks:
            log(f"recording {a.record_s:.0f} s before the seeks (--only-seeks)")
            time.sleep(a.record_s)
            page = Page(a, vigil, a.workdir)
            sampler.watch("chromium (+node)", page.proc.pid, tree=True)
            res["browser"] = page.send("login", timeout=90)["version"]
            res["phases"]["seeks"] = seek_phase(a, page, vigil, cams[0], ids, windows, res)
            page.close()
            page = None
            raise SeeksOnly()

        # -- idle (no viewer)
        t0 = time.time()
        time.sleep(a.idle)
        windows["idle before"] = (t0, time.time())

        # -- browser: one tile
        page = Page(a, vigil, a.workdir)
        sampler.watch("chromium (+node)", page.proc.pid, tree=True)
        res["browser"] = page.send("login", timeout=90)["version"]
        one = page.send("layout", layout="1", tiles=1, cameras=[cams[0]], timeout=60)
        reopen = page.send("reopen", camera=cams[0], reps=a.reopen, gap_ms=1200,
                           timeout=30 + 8 * a.reopen)
        ttff1 = [f for f in [one["first"].get("0")] + reopen["first"] if f]
        res["phases"]["ttff single"] = {"samples": ttff1, "failed": 1 + a.reopen - len(ttff1)}
        time.sleep(3)
        page.send("clear")
        t0 = time.time()
        time.sleep(a.window)
        t1 = time.time()
        windows["1 tile"] = (t0, t1)
        got1 = page.send("collect", timeout=60)
        log(f"1 tile: {len(got1['frames'])} frames presented in {t1 - t0:.0f} s")

        # -- 16 tiles
        n16 = min(16, a.cameras)
        layout = "4x4" if n16 > 9 else ("3x3" if n16 > 4 else ("2x2" if n16 > 1 else "1"))
        tiles = {"4x4": 16, "3x3": 9, "2x2": 4, "1": 1}[layout]
        many = page.send("layout", layout=layout, tiles=tiles, cameras=cams[:n16], timeout=90)
        res["phases"]["ttff grid"] = {"samples": list(many["first"].values()),
                                      "failed": n16 - len(many["first"]), "tiles": many["tiles"]}
        time.sleep(5)
        page.send("clear")
        t0 = time.time()
        time.sleep(a.window)
        t1 = time.time()
        windows["16 tiles"] = (t0, t1)
        got16 = page.send("collect", timeout=60)
        log(f"{n16} tiles: {len(got16['frames'])} frames presented in {t1 - t0:.0f} s")

        # -- fan-out: the tiles stay open, WebSocket clients make up the rest
        ws_n = a.fanout - n16
        fan_out = os.path.join(a.workdir, "fanout.json")
        fan = spawn([sys.executable, os.path.abspath(__file__), "fanout", "--port", str(vigil.port),
                     "--ca", vigil.ca, "--token-file", vigil.token_file, "--cameras", ",".join(cams),
                     "--viewers", str(ws_n), "--window", str(a.window), "--out", fan_out],
                    stdout=subprocess.PIPE, text=True)
        sampler.watch("fan-out client", fan.pid)
        fan_w = [None, None]
        deadline = time.monotonic() + 60 + 3 + a.window + 30
        while time.monotonic() < deadline and fan.poll() is None:
            r, _, _ = select.select([fan.stdout], [], [], 1.0)
            if not r:
                continue
            line = fan.stdout.readline().strip()
            if line.startswith("UP"):
                log(f"fan-out: {line.split()[1]} of {ws_n} WebSocket viewers receiving")
            elif line.startswith("WINDOW start"):
                fan_w[0] = float(line.split()[2])
                page.send("clear")
            elif line.startswith("WINDOW end"):
                fan_w[1] = float(line.split()[2])
                gotfan = page.send("collect", timeout=60)
        fan.wait(timeout=60)
        with open(fan_out) as f:
            fanres = json.load(f)
        windows["fan-out"] = tuple(fanres["window"])
        res["phases"]["fan-out"] = fanres
        if gotfan:
            res["phases"]["fan-out browser"] = latency(gotfan, coded.frames(), a.fps, windows["fan-out"])

        # -- playback page (no live viewer from here on), idle window, then the seeks
        res["phases"]["seeks"] = seek_phase(a, page, vigil, cams[0], ids, windows, res)
        page.close()
        page = None

        # -- recorded-video delivery: Vigil vs nginx, Range requests over TLS
        first_us = vigil.recorded(a.gop, a.fps, {})["first_us"]
        frm = datetime.datetime.fromtimestamp(first_us / 1e6 + 5, datetime.timezone.utc)
        to = frm + datetime.timedelta(seconds=a.range_seconds)
        q = urllib.parse.urlencode({"from": frm.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                    "to": to.strftime("%Y-%m-%dT%H:%M:%SZ")})
        path = f"/api/v1/cameras/{cams[0]}/playback"
        st, hdrs, body = vigil.get(f"{path}?{q}")
        if st != 200:
            raise RuntimeError(f"playback download answered {st}: {body[:300]!r}")
        body_file = os.path.join(a.workdir, "playback.mp4")
        with open(body_file, "wb") as f:
            f.write(body)
        log(f"playback answer {len(body) / 1e6:.1f} MB ({hdrs.get('vigil-media-start')} .. "
            f"{hdrs.get('vigil-media-end')}), accept-ranges {hdrs.get('accept-ranges')}")
        cert, key, key_src = served_key_and_chain(vigil, a.workdir)
        nginx = Nginx(a.workdir, cert, key, path, body_file, os.cpu_count())
        res["range"] = range_rounds(a, vigil, nginx, f"{path}?{q}", body, sampler, windows)
        res["range"]["key_source"] = key_src
        res["range"]["nginx"] = nginx.version
        res["range"]["hdrs"] = {k: hdrs.get(k) for k in ("content-type", "accept-ranges", "cache-control",
                                                         "vigil-media-start", "vigil-media-end")}
        nginx.stop()
        nginx = None
    except SeeksOnly:
        pass
    except (Deadline, KeyboardInterrupt, RuntimeError, subprocess.SubprocessError, OSError,
            ValueError, KeyError) as e:
        log(f"stopped early: {type(e).__name__}: {e}")
        res["aborted"] = f"{type(e).__name__}: {e}"
    finally:
        signal.alarm(0)
        if page:
            page.close()
        if nginx:
            nginx.stop()
        sampler.stop_ev.set()
        if main_srv:
            res["main_server"] = main_srv.stats()
        if vigil:
            res["vigil_stop"] = vigil.stop()
        kill_all_children()

    if vigil is None or coded is None:
        log("no results")
        return 0
    sent = coded.frames()
    res["coded"] = coded.stats()
    res["recording"] = vigil.recorded(a.gop, a.fps, windows)
    res["windows"] = windows
    for name, (t0, t1) in windows.items():
        n = {"16 tiles": min(16, a.cameras), "fan-out": a.fanout, "1 tile": 1}.get(name, 0)
        res["cpu"][name] = phase_cpu(sampler, t0, t1, n)
    if got1:
        res["phases"]["1 tile"] = latency(got1, sent, a.fps, windows["1 tile"])
    if got16:
        res["phases"]["16 tiles"] = latency(got16, sent, a.fps, windows["16 tiles"])
    with open(os.path.join(a.workdir, "results.json"), "w") as f:
        json.dump(res, f, indent=1, default=str)
    md = report(a, res)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        f.write(md)
    print(md)
    log(f"wrote {a.out}")
    if not a.keep:
        shutil.rmtree(os.path.join(vigil.data, "video"), ignore_errors=True)
        for name in ("playback.mp4", "nginx"):
            p = os.path.join(a.workdir, name)
            shutil.rmtree(p, ignore_errors=True) if os.path.isdir(p) else (os.path.exists(p) and os.remove(p))
    return 0


def range_rounds(a, vigil, nginx, full_path, body, sampler, windows):
    size = len(body)
    chunk = min(a.range_chunk, size // 4)
    # The same bytes from both servers (spot checks), before anything is timed.
    rng = random.Random(7)
    for _ in range(4):
        s = rng.randrange(0, size - chunk)
        for name, port in (("vigil", vigil.port), ("nginx", nginx.port)):
            st, got = range_get(port, vigil.ca, full_path if name == "vigil" else full_path.split("?")[0],
                                s, s + chunk - 1, vigil.token)
            if st != 206 or got != body[s:s + chunk]:
                raise RuntimeError(f"{name} answered {st} with other bytes for bytes={s}-{s + chunk - 1}")
    lua = os.path.join(a.workdir, "range.lua")
    with open(lua, "w") as f:
        f.write(WRK_LUA)
    out = {"size": size, "chunk": chunk, "rounds": []}
    for r in range(a.range_rounds):
        order = ["vigil", "nginx"] if r % 2 == 0 else ["nginx", "vigil"]
        row = {}
        for name in order:
            port = vigil.port if name == "vigil" else nginx.port
            p = full_path if name == "vigil" else full_path.split("?")[0]
            env = dict(os.environ, LB_SIZE=str(size), LB_CHUNK=str(chunk), LB_PATH=p,
                       LB_AUTH=f"Bearer {vigil.token}")
            pids = [vigil.proc.pid] if name == "vigil" else nginx.pids()
            th0 = thread_ticks_by_name(vigil.proc.pid)
            c0 = sum(proc_ticks(x) or 0 for x in pids)
            t0 = time.time()
            w = subprocess.run(["wrk", "-t2", f"-c{a.range_conns}", f"-d{a.range_duration}s",
                                "-s", lua, f"https://127.0.0.1:{port}{p}"],
                               capture_output=True, text=True, env=env, timeout=a.range_duration + 60)
            t1 = time.time()
            c1 = sum(proc_ticks(x) or 0 for x in (pids if name == "vigil" else nginx.pids()))
            th1 = thread_ticks_by_name(vigil.proc.pid)
            busy = {k: (v - th0.get(k, 0)) / CLK_TCK for k, v in th1.items() if v - th0.get(k, 0) > 0}
            if w.returncode != 0:
                raise RuntimeError(f"wrk failed: {w.stderr[:400]}")
            rps = float(re.search(r"Requests/sec:\s+([\d.]+)", w.stdout).group(1))
            reqs = int(re.search(r"(\d+) requests in", w.stdout).group(1))
            bad = re.search(r"Non-2xx or 3xx responses: (\d+)", w.stdout)
            errs = re.search(r"Socket errors: (.*)", w.stdout)
            lat = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", w.stdout)
            row[name] = {"rps": rps, "bytes_per_s": rps * chunk, "requests": reqs,
                         "cpu_s": (c1 - c0) / CLK_TCK, "wall_s": t1 - t0,
                         "non2xx": int(bad.group(1)) if bad else 0,
                         "socket_errors": errs.group(1).strip() if errs else "none",
                         "latency_avg": lat.group(1) if lat else "?",
                         "vigil_threads_s": busy if name == "vigil" else None}
            windows[f"range {name} {r + 1}"] = (t0, t1)
            log(f"range round {r + 1}: {name:5s} {rps * chunk / 1e6:8.1f} MB/s ({rps:.0f} req/s), "
                f"server CPU {(c1 - c0) / CLK_TCK:.2f} s, errors {row[name]['socket_errors']}")
        row["ratio"] = row["vigil"]["bytes_per_s"] / row["nginx"]["bytes_per_s"]
        out["rounds"].append(row)
    return out


# ----- report -----


def fmt(s, key="median"):
    return "n/a" if not s else f"{s[key]:.0f}"


def report(a, res):
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    source = (f"the given binary {a.vigil} (VIGIL_BIN), not built by this run; checkout "
              f"{git_rev(a.root)}" if a.given_binary else git_rev(a.root))
    ph = res["phases"]
    lines = [f"## Live view, seek and delivery (`bench/live/run.sh`), run {now}", "",
             f"Machine: {os.cpu_count()} cores ({cpu_model()}), {platform.system()} {platform.release()}, "
             f"shared with other engineers' builds (load averages per phase below). Vigil: {source}. "
             f"Browser: Chromium {res.get('browser', '?')} headless (Debian package, `--disable-gpu`: "
             "software decoding and compositing)."]
    if a.player_js:
        lines += ["", f"**Live player replaced for this run** by `{a.player_js}` (served to the page "
                  "instead of the binary's `liveplayer.js`); the rest of the client is the binary's."]
    if a.playback_js:
        lines += ["", "**Seeks A/B**: every seek condition ran with the binary's `playback.js` (`served`) and with "
                  + ", ".join(f"`{p}` (`{os.path.basename(p)}`)" for p in a.playback_js)
                  + " served to the page instead, each variant on a fresh page, in blocks of "
                  f"{a.seek_block} scrubs (closed: {2 * a.seek_block}, cached and evicted alternating) whose order is "
                  "reversed every other round (A B B A …), same recording, same run."]
    if a.only_seeks:
        lines += ["", f"**Seeks only** (`--only-seeks`): {a.record_s:.0f} s of recording, then the seek phase; no "
                  "latency, fan-out or Range phase in this run."]
    if res.get("aborted"):
        lines += ["", f"**The run stopped early: {res['aborted']}.** Figures below are what was measured."]
    lines += ["", f"Cameras: {a.cameras}, each main stream {a.main_size} {a.fps} fps H.264 {a.main_kbps} kbit/s "
              f"(GOP {a.gop}, recorded), secondary {a.sub_size} {a.fps} fps {a.sub_kbps} kbit/s x264 "
              "zerolatency from bench/live/coded_rtsp.py (live only).", "",
              "How it is measured (details in bench/live/live_bench.py):", "",
              "- **Latency**: the test camera draws each frame's number into the frame as 16 black/white "
              "blocks (and their inverse) and logs when the frame's last RTP packet reached the sink that "
              "writes to the RTSP clients. The web client's live page in Chromium plays the secondary "
              "streams; a `requestVideoFrameCallback` loop per tile draws the frame onto a 64x8 canvas, "
              "reads the number, and takes `performance.timeOrigin + expectedDisplayTime` as the time it "
              "is on screen (the compositor's estimate of when the frame becomes visible, one vsync after "
              "`presentationTime`, when it was handed to the compositor: the later, conservative one). "
              "Which frame was presented comes from the callback's `mediaTime` (per tile the media time "
              "and the camera's timestamp differ by a constant, found from the numbers read); the number "
              "read checks it. Same machine, same clock (`Date.now()` vs `timeOrigin + now()` is checked). "
              "A WebSocket subclass injected before the page's scripts stamps each fragment's arrival, "
              "which splits the latency into camera -> page and page -> screen. Both hooks are injected "
              "through the DevTools protocol; the client's code and CSP are unchanged.",
              "- **Time to first frame**: the `change` event of a tile's camera selector (set in the page) "
              "to the expected display time of the tile's first presented frame.",
              "- **Server cost**: `vigil serve` CPU from /proc (all threads, and per thread group) in windows "
              "with no viewer, 1 tile, 16 tiles, and 256 viewer-streams (the 16 tiles plus WebSocket clients "
              "of live_bench.py `fanout`: token, `stream=secondary`, 16 viewers per camera). Frames lost by "
              "recording: every GOP of the fixed-GOP main clip but each camera's last must hold exactly "
              f"{a.gop} frames, no hole between GOPs, no gap row. Viewer losses: `skipped` messages.",
              "- **Seek**: a click on the playback page's timeline at a random recorded time (the timeline "
              "zoomed to the recording), from the `pointerup` to the expected display time of the first "
              "frame whose `mediaTime` is the new position; three conditions: the camera still recording "
              "(the answer of the page's ten-minute window grows between Range requests), the camera "
              "disabled (the answer is final) with this run's segment files in the page cache, and evicted "
              "(`posix_fadvise(DONTNEED)` on this run's own files) before each click. A scrub with no frame "
              "after 5 s counts as 5 s.",
              "- **Delivery**: one playback answer downloaded once; nginx serves the same bytes; wrk with "
              "1 MiB `Range` requests over TLS against both, rounds alternating."]

    # latency
    lines += ["", "### Live latency (camera sent the frame -> the page presents it)", "",
              "| tiles | frames | median ms | p95 ms | max ms | camera -> page (WebSocket arrival) median / p95 ms | page -> screen median / p95 ms | frames shown per tile per s (camera sent) | frames skipped by the server | load |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for name in ("1 tile", "16 tiles", "fan-out browser"):
        r = ph.get(name)
        if not r or not r.get("latency_ms"):
            continue
        c = res["cpu"].get({"fan-out browser": "fan-out"}.get(name, name)) or {}
        lines.append(
            f"| {name if name != 'fan-out browser' else '16 (during the 256-stream fan-out)'} | {r['frames']} | "
            f"{fmt(r['latency_ms'])} | {fmt(r['latency_ms'], 'p95')} | {fmt(r['latency_ms'], 'max')} | "
            f"{fmt(r['server_to_page_ms'])} / {fmt(r['server_to_page_ms'], 'p95')} | "
            f"{fmt(r['page_to_screen_ms'])} / {fmt(r['page_to_screen_ms'], 'p95')} | "
            f"{r['presented_per_tile_per_s']:.1f} ({r['sent_per_s']:.1f}) | "
            f"{r['skipped']} | {c.get('load_mean', 0):.1f} |")
    tt = {}
    grid = ph.get("ttff grid", {}).get("samples", [])
    slow = sorted(grid, key=lambda x: -x["expected_ms"])[:4]
    for name in ("ttff single", "ttff grid"):
        s = [x["expected_ms"] for x in ph.get(name, {}).get("samples", [])]
        tt[name] = summary(s)
    lines += ["", "Time to first frame after a tile is given a camera (page clock: the `change` of the "
              "tile's camera selector to the expected display time of the first presented frame):", "",
              "| opening | samples | median ms | p95 ms | max ms | failed |", "|---|---|---|---|---|---|"]
    for name, label in (("ttff single", "one tile, opened again and again"),
                        ("ttff grid", "16 tiles at once")):
        s = tt[name]
        if s:
            lines.append(f"| {label} | {s['n']} | {s['median']:.0f} | {s['p95']:.0f} | {s['max']:.0f} | "
                         f"{ph[name]['failed']} |")
    if slow and "seeks_before" in slow[0]:
        lines += ["", "The slowest tiles of the 16 opened at once (first frame ms / seeks the player made "
                  "before it): " + ", ".join(f"{x['expected_ms']:.0f} / {x['seeks_before']}" for x in slow)
                  + "; all 16: " + ", ".join(str(x["seeks_before"]) for x in grid) + " seeks."]

    # seeks
    sk = ph.get("seeks", {})
    lines += ["", "### Seek (a click on the playback timeline -> the new frame presented)", "",
              f"| recording, page cache | scrubs | shown within {SEEK_LIMIT_MS / 1000:.0f} s | median ms | p95 ms | max ms | new window loaded |",
              "|---|---|---|---|---|---|---|"]
    seek_sum = {}
    labels = {"growing": "still recording (the answer grows), segment files cached",
              "closed, cached": "camera disabled (the answer is final), segment files cached",
              "closed, evicted": "camera disabled, segment files evicted before each click"}
    for kind, rows in sk.items():
        # A scrub whose frame never showed counts as the limit, so the percentiles stay honest.
        ok = [r["expected_ms"] if not r.get("timeout") else SEEK_LIMIT_MS for r in rows]
        s = summary(ok)
        seek_sum[kind] = s
        if s:
            lines.append(f"| {labels.get(kind, kind)} | {s['n']} | {sum(1 for r in rows if not r.get('timeout'))} | "
                         f"{s['median']:.0f} | {s['p95']:.0f} | {s['max']:.0f}{'+' if any(r.get('timeout') for r in rows) else ''} | "
                         f"{sum(1 for r in rows if r.get('reloaded'))} |")

    for variant in (["served"] + [os.path.basename(p) for p in a.playback_js] if a.playback_js else [None]):
        part = {k: v for k, v in sk.items() if variant is None or k.endswith(f"[{variant}]")}
        fit = seek_fit(part, a.fps, a.gop)
        if fit:
            lines += ["", f"Seek time against the frame's distance from its GOP's keyframe "
                      f"({'' if variant is None else variant + ' playback.js, '}closed recording, "
                      f"{fit['n']} scrubs under 1 s): about **{fit['a']:.0f} ms + {fit['b']:.1f} ms per frame** "
                      f"decoded from the keyframe (least squares; keyframes at media frame {fit['phase']} mod "
                      f"{a.gop}, found by the fit; residual median {fit['resid']:.0f} ms): a scrub to the last "
                      f"frame of a {a.gop}-frame GOP costs about {fit['a'] + fit['b'] * (a.gop - 1):.0f} ms."]
    lines += seek_network(sk)

    # CPU
    cpu = res["cpu"]
    lines += ["", "### Server cost (`vigil serve`, % of one core over each window)", "",
              "| window | viewer-streams | Vigil total | recording threads (tokio workers + writers) | API/live threads (vigil-web-*) | load |",
              "|---|---|---|---|---|---|"]
    for name in ("idle before", "1 tile", "16 tiles", "fan-out", "idle after"):
        c = cpu.get(name)
        if c:
            lines.append(f"| {name} | {c['viewers']} | {c['vigil_pct']:.1f} | {c['recording_pct']:.1f} | "
                         f"{c['web_pct']:.1f} | {c['load_mean']:.1f} |")
    idle = [cpu[k] for k in ("idle before", "idle after") if cpu.get(k)]
    per_viewer = {}
    if idle:
        base = statistics.mean(c["vigil_pct"] for c in idle)
        base_rec = statistics.mean(c["recording_pct"] for c in idle)
        for name in ("16 tiles", "fan-out"):
            c = cpu.get(name)
            if c and c["viewers"]:
                per_viewer[name] = {"pct": (c["vigil_pct"] - base) / c["viewers"],
                                    "rec_delta": c["recording_pct"] - base_rec}
        lines += ["", "CPU per live viewer-stream (Vigil total minus the mean of the two no-viewer "
                  "windows, divided by the viewer-streams): " + ", ".join(
                      f"{k}: {v['pct'] * 10:.2f} ms of CPU per second ({v['pct']:.2f} % of a core)"
                      for k, v in per_viewer.items()) + ". Recording threads with viewers minus without: " +
                  ", ".join(f"{k}: {v['rec_delta']:+.1f} points" for k, v in per_viewer.items()) + "."]
    fan = ph.get("fan-out")
    fan_line = ""
    if fan:
        v = fan["viewers"]
        got = [x["in_window"] for x in v]
        win = fan["window"][1] - fan["window"][0]
        sent_in = sum(1 for s in res_sent_times(a) if fan["window"][0] <= s <= fan["window"][1])
        errors = [x["error"] for x in v if x["error"]]
        fan_line = (f"{len(v)} WebSocket viewer-streams (Bearer token, `stream=secondary`, 16 per camera "
                    f"minus the browser's) + {min(16, a.cameras)} browser tiles; ramp {fan['ramp_s']:.1f} s; "
                    f"in the {win:.0f} s window each received {min(got)}-{max(got)} fragments "
                    f"(the camera sent {sent_in}); `skipped` frames in the window: "
                    f"{sum(x['skipped_in_window'] for x in v)} (whole run {sum(x['skipped'] for x in v)}); "
                    f"errors {len(errors)}{(' e.g. ' + errors[0]) if errors else ''}; client CPU "
                    f"{fan['client_cpu_s']:.1f} s.")
        lines += ["", "Fan-out: " + fan_line]
    rec = res.get("recording", {})
    lines += ["", f"Recording: {rec.get('cameras')} cameras, {rec.get('frames')} frames recorded, "
              f"**{rec.get('missing')} frames lost** (per window: {rec.get('per_window')}), "
              f"{len(rec.get('holes', []))} holes, {len(rec.get('short_gops', []))} short GOPs, "
              f"gap rows {rec.get('gaps')} ({res.get('disabled', {}).get('camera', '-')} was disabled on purpose "
              f"before the closed-recording scrubs); main RTSP server sent {res.get('main_server', {}).get('frames_sent')} "
              f"frames per client; Vigil stop: {res.get('vigil_stop')}."]

    # range
    rg = res.get("range")
    if rg:
        lines += ["", "### Recorded video over TLS with Range requests: Vigil vs nginx", "",
                  f"One playback answer ({rg['size'] / 1e6:.1f} MB, {a.range_seconds} s of {cams_desc(a)}) "
                  f"downloaded once; nginx ({rg['nginx']}) serves the same bytes as a static file with the "
                  f"same certificate and key ({rg['key_source']}), TLS 1.2+1.3, `sendfile on`, "
                  f"{os.cpu_count()} workers. wrk -t2 -c{a.range_conns}, {a.range_duration} s per run, "
                  f"`Range: bytes=a-b` of {rg['chunk']} bytes in a scattered order, the same headers to both "
                  "(Vigil's answers spot-checked byte for byte against nginx's first).", "",
                  "| round | Vigil MB/s | nginx MB/s | Vigil / nginx | Vigil CPU s | nginx CPU s |",
                  "|---|---|---|---|---|---|"]
        for i, r in enumerate(rg["rounds"]):
            lines.append(f"| {i + 1} | {r['vigil']['bytes_per_s'] / 1e6:.1f} | {r['nginx']['bytes_per_s'] / 1e6:.1f} | "
                         f"{r['ratio']:.2f} | {r['vigil']['cpu_s']:.2f} | {r['nginx']['cpu_s']:.2f} |")
        best_v = max(r["vigil"]["bytes_per_s"] for r in rg["rounds"])
        best_n = max(r["nginx"]["bytes_per_s"] for r in rg["rounds"])
        ratios = [r["ratio"] for r in rg["rounds"]]
        rg["best_ratio"] = best_v / best_n
        rg["median_ratio"] = statistics.median(ratios)
        lines += ["", f"Best vs best **{best_v / best_n:.2f} x nginx**, per round {min(ratios):.2f}-{max(ratios):.2f}, "
                  f"median {statistics.median(ratios):.2f}. Vigil CPU per GB served "
                  f"{statistics.median(r['vigil']['cpu_s'] / (r['vigil']['requests'] * rg['chunk'] / 1e9) for r in rg['rounds']):.1f} s, "
                  f"nginx {statistics.median(r['nginx']['cpu_s'] / (r['nginx']['requests'] * rg['chunk'] / 1e9) for r in rg['rounds']):.1f} s "
                  "(medians of the rounds; Vigil's includes its recording, about 5 % of a core). Vigil's busiest threads per round (CPU s): "
                  + "; ".join(", ".join(f"{k} {v:.1f}" for k, v in sorted(r["vigil"]["vigil_threads_s"].items(), key=lambda kv: -kv[1])[:4])
                              for r in rg["rounds"]) + "."]

    # verdict
    v = []
    l1, l16 = ph.get("1 tile", {}).get("latency_ms"), ph.get("16 tiles", {}).get("latency_ms")
    for name, s in (("1 tile", l1), ("16 tiles", l16)):
        if s:
            ok = s["median"] <= 250 and s["p95"] <= 500
            v.append(f"latency {name}: median {s['median']:.0f} ms, p95 {s['p95']:.0f} ms -> "
                     f"{'MET' if ok else 'MISSED'} (goal median <= 250, p95 <= 500)")
    if tt.get("ttff single"):
        s = tt["ttff single"]
        v.append(f"time to first frame (one tile): max {s['max']:.0f} ms, p95 {s['p95']:.0f} -> "
                 f"{'MET' if s['max'] <= 500 else 'MISSED'} (goal <= 500 ms)")
    if tt.get("ttff grid"):
        s = tt["ttff grid"]
        v.append(f"time to first frame (16 at once): max {s['max']:.0f} ms -> "
                 f"{'MET' if s['max'] <= 500 else 'MISSED'}")
    for kind, s in seek_sum.items():
        if s:
            v.append(f"seek p95 ({kind}) {s['p95']:.0f} ms -> {'MET' if s['p95'] <= 200 else 'MISSED'} (goal <= 200 ms)")
    if fan:
        lost = rec.get("missing", 1)
        sk_ = sum(x["skipped"] for x in fan["viewers"])
        errs = sum(1 for x in fan["viewers"] if x["error"])
        v.append(f"fan-out {a.fanout} viewer-streams: {lost} recording frames lost, {sk_} viewer frames "
                 f"skipped, {errs} viewer errors -> {'MET' if lost == 0 and errs == 0 else 'MISSED'}")
    if rg:
        v.append(f"Range delivery {rg['best_ratio']:.2f} x nginx (best vs best), median {rg['median_ratio']:.2f} -> "
                 f"{'MET' if rg['best_ratio'] >= 1.0 else 'MISSED'} (goal >= 1.0)")
    lines += ["", "### Verdict", ""] + [f"- {x}" for x in v]

    # details
    lines += ["", "### Details", ""]
    for name in ("1 tile", "16 tiles", "fan-out browser"):
        r = ph.get(name)
        if r and r.get("latency_ms"):
            lines.append(f"- {name}: per-tile medians (ms) {', '.join(f'{k}: {m:.0f}' for k, m in r['tile_medians_ms'].items())}; "
                         f"expectedDisplayTime - presentationTime {fmt(r['expected_minus_presentation_ms'])} ms median; "
                         f"page clock offset (Date.now - timeOrigin - now) {r['clock_offset_ms']:.1f} ms; "
                         f"frame identity checks (number read vs metadata) {r['checks']}; frames the browser dropped / decoded "
                         f"since the tiles opened {r['dropped_by_browser']} / {r['decoded_by_browser']}; "
                         f"buffered ahead of the playhead at the end (s) {r['buffered_ahead_s']}")
    for name in ("idle before", "16 tiles", "fan-out", "idle after"):
        c = cpu.get(name)
        if c:
            lines.append(f"- CPU {name}: Vigil threads " + ", ".join(f"{k} {p:.1f}%" for k, p in c["groups_pct"].items())
                         + "; other processes " + ", ".join(f"{k} {p:.1f}%" for k, p in c["others_pct"].items()))
    for kind, rows in sk.items():
        done = [r for r in rows if not r.get("timeout")]
        stuck = [r for r in rows if r.get("timeout")]
        if done:
            inwin = [r["expected_ms"] for r in done if not r.get("reloaded")]
            rel = [r["expected_ms"] for r in done if r.get("reloaded")]
            seeked = [r["seeked_ms"] for r in done if r.get("seeked_ms") is not None]
            lines.append(f"- seeks {kind}: within the loaded window {fmt(summary(inwin))} ms median, "
                         f"{fmt(summary(inwin), 'p95')} p95 (n={len(inwin)}); new window {fmt(summary(rel))} median "
                         f"(n={len(rel)}); `seeked` event {fmt(summary(seeked))} ms median; "
                         f"distance scrubbed {statistics.median(abs(r['media_time'] - r['from_time']) for r in done):.0f} s median")
        if stuck:
            lines.append(f"- seeks {kind}: {len(stuck)} showed no frame within {SEEK_LIMIT_MS} ms; at the limit the "
                         f"video was {'still seeking' if all(r.get('seeking') for r in stuck) else 'in mixed states'} "
                         f"(readyState {sorted(set(r.get('ready') for r in stuck))})")
    return "\n".join(lines) + "\n"


def seek_network(sk):
    """Where a seek's time goes on the network, from DevTools' view of the playback requests."""
    out = []
    for kind, rows in sk.items():
        busy, new, hdr, body, nreq = [], [], [], [], []
        for r in rows:
            if r.get("timeout") or r.get("net") is None:
                continue
            net = r["net"]
            # Requests still loading when the pointer came up (preload traffic).
            busy.append(sum(1 for q in net if q["sent"] < 0))
            fresh = [q for q in net if q["sent"] >= 0 and q["method"] == "GET"]
            nreq.append(len(fresh))
            if fresh:
                q = fresh[0]
                new.append(q["sent"])
                if q["headers"] is not None:
                    hdr.append(q["headers"] - q["sent"])
        if nreq:
            out.append(f"- {kind}: requests under way at the click {statistics.median(busy):.0f} median (max {max(busy)}); "
                       f"new Range requests per seek {statistics.median(nreq):.0f} median (max {max(nreq)}, "
                       f"{sum(1 for n in nreq if n)} of {len(nreq)} seeks made one); the first sent "
                       f"{fmt(summary(new))} ms after the click (median), its headers back "
                       f"{fmt(summary(hdr))} ms later (median, p95 {fmt(summary(hdr), 'p95')})")
    if out:
        out = ["", "Playback requests around each seek (DevTools network events, up to the frame shown):", ""] + out
    return out


def seek_fit(sk, fps, gop):
    """seek ms ~ a + b * (frames from the keyframe): the GOP phase and line that fit best."""
    pts = [(round(r["media_time"] * fps) % gop, r["expected_ms"]) for k, rows in sk.items()
           if k.startswith("closed") for r in rows if not r.get("timeout") and r["expected_ms"] < 1000]
    if len(pts) < 8:
        return None
    best = None
    for phase in range(gop):
        xs = [(x - phase) % gop for x, _ in pts]
        ys = [y for _, y in pts]
        mx, my = statistics.mean(xs), statistics.mean(ys)
        sxx = sum((x - mx) ** 2 for x in xs)
        if sxx == 0:
            continue
        b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
        a0 = my - b * mx
        sse = sum((y - a0 - b * x) ** 2 for x, y in zip(xs, ys))
        if best is None or sse < best[0]:
            best = (sse, phase, a0, b, statistics.median(abs(y - a0 - b * x) for x, y in zip(xs, ys)))
    _, phase, a0, b, resid = best
    return {"n": len(pts), "phase": phase, "a": a0, "b": b, "resid": resid}


def cams_desc(a):
    return f"a {a.main_size} {a.main_kbps} kbit/s main stream"


def res_sent_times(a):
    path = os.path.join(a.workdir, "coded-frames.log")
    out = []
    try:
        with open(path) as f:
            for line in f:
                p = line.split()
                if len(p) == 6:
                    out.append(float(p[5]))
    except OSError:
        pass
    return out


if __name__ == "__main__":
    sys.exit(main())
