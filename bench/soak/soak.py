#!/usr/bin/python3
"""Soak benchmark: Vigil records N cameras for DURATION seconds while faults are injected.

Faults, at random times (seeded; the seed is printed and recorded):
  * crash:   `kill -9` of `vigil serve`, restart after a random 0.5-3 s;
  * fill:    another process (this script's `fill` subcommand) writes into the recording volume
             until it is full (ENOSPC), holds the space FILL_SECS seconds, then deletes its file;
  * camstop: `vigil camera disable NAME`, STOP_SECS later `vigil camera enable NAME` (a
             different camera each time).
Throughout (after a short baseline), a separate process (`slow` subcommand) holds SLOW_CONNS
slow HTTPS connections to the API from several loopback source addresses, and a prober thread
times the health request, `GET /api/v1/session` with a viewer API token (the API has no health
route; this is its smallest authenticated answer), with curl every 200 ms from 127.0.0.1.

Every figure comes from the run: the GOP index in vigil.db (read-only, once a second, so GOPs
that retention prunes later stay known), `vigil recordings --json` (gap reasons), `vigil verify
--json` (tampering, unsigned spans, prune records), the RTSP test server's frame counters, the
prober's and the slow client's own records. See docs/BENCHMARKS.md ("Soak") for the method.

Only the Python standard library is used. Long-lived children run under `setpriv --pdeathsig
KILL` in their own process group and their pids are written to WORKDIR/children.pids (for the
shell wrapper's trap); every wait is bounded and an alarm bounds the whole run.
"""

import argparse
import asyncio
import datetime
import errno
import json
import os
import random
import re
import signal
import sqlite3
import ssl
import statistics
import subprocess
import sys
import threading
import time
import traceback

CLIP_SECONDS = 10
CLIP_FPS = 25
CLIP_GOP = 25  # frames: one-second GOPs
CLIP_SIZE = (640, 360)
MIN_FREE_BYTES = 64 * 1024 * 1024
RESUME_ALLOW_S = 20.0  # a hole starting this long after a fault ends is not blamed on it

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import (  # noqa: E402
    Deadline, free_port, git_state, kill_all_children, loopback_only, make_log, on_alarm, on_term,
    read_stats)
from common import loadavgs as loadavg  # noqa: E402
from common import spawn as common_spawn  # noqa: E402

log = make_log("soak")

PIDFILE = None


def spawn(cmd, **kw):
    """A long-lived child: own process group, killed if this process dies, pid recorded."""
    return common_spawn(cmd, die_with_parent=True, pidfile=PIDFILE, **kw)


def pct(values, q):
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


# ----------------------------------------------------------------------------------------------
# `fill`: another process takes every free byte of the volume for a while.


def cmd_fill(args):
    released = {"done": False}

    def release(*_):
        if not released["done"]:
            released["done"] = True
            try:
                os.unlink(args.path)
            except OSError:
                pass

    signal.signal(signal.SIGTERM, lambda *_: (release(), sys.exit(0)))
    out = {"t_start": time.time(), "errors": []}
    fd = os.open(args.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    written = 0
    chunk = b"\x5a" * (1 << 20)
    for size in (1 << 20, 64 << 10, 4096, 1):
        buf = chunk[:size]
        while True:
            try:
                n = os.write(fd, buf)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    out["errors"].append(str(e))
                break
            if n <= 0:
                break
            written += n
    out["t_full"] = time.time()
    out["bytes"] = written
    st = os.statvfs(args.path)
    out["free_when_full"] = st.f_bavail * st.f_frsize
    # Hold the space; watch how much the volume gets back (Vigil's retention) meanwhile.
    free_samples = []
    deadline = out["t_start"] + args.secs
    while time.time() < deadline:
        time.sleep(min(0.5, max(0.0, deadline - time.time())))
        st = os.statvfs(args.path)
        free_samples.append((round(time.time(), 3), st.f_bavail * st.f_frsize))
    os.close(fd)
    release()
    out["t_release"] = time.time()
    out["free_samples"] = free_samples
    with open(args.out, "w") as f:
        json.dump(out, f)
    return 0


# ----------------------------------------------------------------------------------------------
# `slow`: SLOW_CONNS slow HTTPS connections to the API.


class SlowStats:
    def __init__(self):
        self.stopping = False
        self.open_now = 0
        self.attempts = 0
        self.refused = 0
        self.connect_errors = {}
        self.handshake_errors = {}
        self.established = 0
        self.outcomes = {}  # mode -> {outcome: count}
        self.lifetimes = {}  # mode -> [seconds from TLS established to the server closing]
        self.client_ended = {}  # mode -> count of connections still open at the end
        self.bytes_sent = 0
        self.open_timeline = []

    def bump(self, d, key):
        d[key] = d.get(key, 0) + 1

    def doc(self):
        lt = {}
        for mode, v in self.lifetimes.items():
            lt[mode] = {"n": len(v), "min": min(v), "median": statistics.median(v), "max": max(v)}
        return {
            "attempts": self.attempts, "established": self.established, "refused": self.refused,
            "connect_errors": self.connect_errors, "handshake_errors": self.handshake_errors,
            "outcomes": self.outcomes, "lifetimes": lt, "client_ended": self.client_ended,
            "bytes_sent": self.bytes_sent, "open_timeline": self.open_timeline,
        }


async def slow_one(i, addr, mode, args, ctx, st):
    await asyncio.sleep(i * args.stagger / max(1, args.conns))
    filler = b"X-Slow: " + b"a" * 64 + b"\r\n"
    while not st.stopping:
        st.attempts += 1
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(args.host, args.port, ssl=ctx, server_hostname=args.host,
                                        local_addr=(addr, 0), ssl_handshake_timeout=20), 30)
        except ConnectionRefusedError:
            st.refused += 1
            await asyncio.sleep(0.5)
            continue
        except ssl.SSLError as e:
            st.bump(st.handshake_errors, f"{type(e).__name__}: {e.reason}")
            await asyncio.sleep(0.5)
            continue
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
            # A connection the server closes right after accept fails the TLS handshake here.
            st.bump(st.connect_errors, type(e).__name__ + (f" {e.errno}" if getattr(e, "errno", None) else ""))
            await asyncio.sleep(0.5)
            continue
        st.established += 1
        st.open_now += 1
        t0 = time.monotonic()
        if mode == "headers":
            # Request line and headers one byte at a time; the blank line never comes.
            payload = (b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: " + args.host.encode()
                       + b"\r\n" + filler * 100000)
            prefix = b""
        else:
            # Complete headers at once; the 64 KiB body one byte at a time.
            prefix = (b"POST /api/v1/session HTTP/1.1\r\nHost: " + args.host.encode()
                      + b"\r\nContent-Type: application/json\r\nContent-Length: 65536\r\n\r\n")
            payload = b"{" + b" " * 65534 + b"}"
        read_task = asyncio.ensure_future(reader.read(4096))
        outcome = None
        try:
            if prefix:
                writer.write(prefix)
                await writer.drain()
                st.bytes_sent += len(prefix)
            pos = 0
            while not st.stopping and pos < len(payload):
                done, _ = await asyncio.wait({read_task}, timeout=args.interval)
                if done:
                    break
                writer.write(payload[pos:pos + 1])
                await writer.drain()
                pos += 1
                st.bytes_sent += 1
            if read_task.done():
                data = read_task.result()
                if data.startswith(b"HTTP/"):
                    outcome = "answered " + data.split(b"\r\n", 1)[0].decode("latin-1")[9:12]
                elif data:
                    outcome = "other bytes"
                else:
                    outcome = "closed without an answer"
        except (ConnectionResetError, BrokenPipeError) as e:
            outcome = f"reset ({type(e).__name__})"
        except (ssl.SSLError, OSError) as e:
            outcome = f"error ({type(e).__name__})"
        life = time.monotonic() - t0
        st.open_now -= 1
        if outcome is None:
            st.bump(st.client_ended, mode)
        else:
            st.outcomes.setdefault(mode, {})
            st.bump(st.outcomes[mode], outcome)
            st.lifetimes.setdefault(mode, []).append(round(life, 2))
        if not read_task.done():
            read_task.cancel()
        try:
            writer.close()
        except Exception:  # noqa: BLE001 - best effort on a dead connection
            pass
        await asyncio.sleep(0.2)


async def slow_main(args):
    ctx = ssl.create_default_context(cafile=args.ca)
    st = SlowStats()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    addrs = [f"127.0.0.{2 + k}" for k in range(args.addrs)]
    tasks = []
    for i in range(args.conns):
        mode = "headers" if i % 2 == 0 else "body"
        tasks.append(asyncio.ensure_future(slow_one(i, addrs[i % len(addrs)], mode, args, ctx, st)))
    t_end = time.monotonic() + args.max_secs
    while not stop.is_set() and time.monotonic() < t_end:
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except asyncio.TimeoutError:
            pass
        st.open_timeline.append((round(time.time(), 2), st.open_now))
    st.stopping = True
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    doc = st.doc()
    doc["addresses"] = addrs
    doc["conns"] = args.conns
    doc["interval"] = args.interval
    with open(args.out, "w") as f:
        json.dump(doc, f)


def cmd_slow(args):
    asyncio.run(slow_main(args))
    return 0


# ----------------------------------------------------------------------------------------------
# The driver.


def make_clip(clip_dir):
    os.makedirs(clip_dir, exist_ok=True)
    w, h = CLIP_SIZE
    path = os.path.join(clip_dir, f"h264-{CLIP_SECONDS}s-{CLIP_FPS}fps-g{CLIP_GOP}-{w}x{h}-bf0.mp4")
    if os.path.exists(path):
        return path
    tmp = f"{path}.tmp.{os.getpid()}.mp4"
    g = str(CLIP_GOP)
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi",
           "-i", f"testsrc2=size={w}x{h}:rate={CLIP_FPS}",
           "-frames:v", str(CLIP_SECONDS * CLIP_FPS), "-an", "-pix_fmt", "yuv420p",
           "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high",
           "-g", g, "-keyint_min", g, "-sc_threshold", "0", "-bf", "0", "-f", "mp4", tmp]
    log(f"encoding the clip {path}")
    subprocess.run(cmd, check=True, timeout=300)
    os.replace(tmp, path)
    return path


class Vigil:
    def __init__(self, binary, data, workdir):
        self.bin = binary
        self.data = data
        self.config = os.path.join(data, "vigil.toml")
        self.workdir = workdir
        self.log_path = os.path.join(workdir, "serve.log")
        self.proc = None
        self.starts = 0

    def cmd(self, args, timeout=120, check=True):
        r = subprocess.run([self.bin, "--config", self.config, *args], capture_output=True,
                           text=True, timeout=timeout, env={**os.environ, "VIGIL_LOG": "warn"})
        if check and r.returncode != 0:
            raise RuntimeError(f"vigil {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
        return r

    def init(self, api_port, rtsp_url_of, cameras):
        r = subprocess.run([self.bin, "init", "--data-dir", self.data], capture_output=True,
                           text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"vigil init failed: {r.stderr.strip()}")
        with open(self.config) as f:
            text = f.read()
        repl = [
            ("segment_seconds = 60", "segment_seconds = 10"),
            ("min_free_bytes = 268435456", f"min_free_bytes = {MIN_FREE_BYTES}"),
            ('inactivity_timeout = "10s"', 'inactivity_timeout = "3s"'),
            ('max_backoff = "30s"', 'max_backoff = "2s"'),
        ]
        for a, b in repl:
            if a not in text:
                raise RuntimeError(f"vigil.toml layout changed: no '{a}'")
            text = text.replace(a, b)
        with open(self.config, "w") as f:
            f.write(loopback_only(text, api_port))
        for name in cameras:
            self.cmd(["camera", "add", name, "--url", rtsp_url_of(name)])

    def start(self):
        self.starts += 1
        logf = open(self.log_path, "a")
        logf.write(f"\n===== soak: serve start {self.starts} at {time.time():.3f} =====\n")
        logf.flush()
        self.proc = spawn([self.bin, "--config", self.config, "serve"], stdout=logf,
                          stderr=subprocess.STDOUT, env={**os.environ, "VIGIL_LOG": "info"})
        logf.close()
        return time.time()

    def kill9(self):
        t = time.time()
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=30)
        return t

    def stop(self, timeout=90):
        t = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
            rc = None
        return {"stop_s": round(time.monotonic() - t, 2), "exit": rc}


class RtspServer:
    def __init__(self, root, clip, cameras, stats_file, log_path):
        self.stats_file = stats_file
        cmd = ["/usr/bin/python3", os.path.join(root, "tests/peers/rtsp_server.py"), "--port", "0",
               "--protocols", "tcp", "--stats-file", stats_file, "--stats-interval", "0.2"]
        for c in cameras:
            cmd += ["--mount", f"{c}={clip}"]
        self.logf = open(log_path, "w")
        self.proc = spawn(cmd, stdout=subprocess.PIPE, stderr=self.logf, text=True)
        deadline = time.monotonic() + 120
        self.port = None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"the RTSP server exited before READY (see {log_path})")
            if line.startswith("READY port="):
                self.port = int(line.strip().split("=", 1)[1])
                break
        if self.port is None:
            raise RuntimeError("the RTSP server did not print READY within 120 s")

    def url(self, cam):
        return f"rtsp://127.0.0.1:{self.port}/{cam}"

    def stats(self):
        return read_stats(self.stats_file)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def db_ro(path):
    # Read-only: never checkpoints or writes the database Vigil is recording into.
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)


class Monitor(threading.Thread):
    """Once a second: every GOP row of the index (so GOPs that retention prunes later are still
    known), the RTSP server's counters, free space."""

    def __init__(self, db_path, rtsp, vol, interval=1.0):
        super().__init__(daemon=True, name="monitor")
        self.db_path = db_path
        self.rtsp = rtsp
        self.vol = vol
        self.interval = interval
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        # (camera_id, seq, gop_no) -> [start_us, duration_us, frames, first_seen, last_seen]
        self.gops = {}
        self.samples = []  # (t, free bytes, {mount: frames_sent})
        self.errors = {}

    def poll(self):
        t = time.time()
        try:
            con = db_ro(self.db_path)
            try:
                rows = con.execute("SELECT camera_id, seq, gop_no, start_us, duration_us, frames "
                                   "FROM gops").fetchall()
            finally:
                con.close()
            with self.lock:
                for cam, seq, no, s, d, n in rows:
                    g = self.gops.get((cam, seq, no))
                    if g is None:
                        self.gops[(cam, seq, no)] = [s, d, n, t, t]
                    else:
                        if (g[0], g[1], g[2]) != (s, d, n):
                            # A row rewritten (recovery rebuilds rows from the file): keep the
                            # newest, count it.
                            self.errors["gop row changed"] = self.errors.get("gop row changed", 0) + 1
                            g[0], g[1], g[2] = s, d, n
                        g[4] = t
        except sqlite3.Error as e:
            key = str(e)
            self.errors[key] = self.errors.get(key, 0) + 1
        st = self.rtsp.stats() or {}
        sent = {m: v["frames_sent"] for m, v in st.get("mounts", {}).items()}
        try:
            sv = os.statvfs(self.vol)
            free = sv.f_bavail * sv.f_frsize
        except OSError:
            free = None
        self.samples.append((round(t, 3), free, sent))

    def run(self):
        while not self.stop_ev.is_set():
            self.poll()
            self.stop_ev.wait(self.interval)

    def first_gop_everywhere(self, camera_ids):
        with self.lock:
            seen = {k[0] for k in self.gops}
        return all(c in seen for c in camera_ids)

    def last_gop_end(self, camera_id):
        with self.lock:
            ends = [g[0] + g[1] for k, g in self.gops.items() if k[0] == camera_id]
        return max(ends) if ends else None


class Prober(threading.Thread):
    """The health request: curl `GET /api/v1/session` with a viewer API token every 200 ms, a new
    TLS connection each time (the API has no health route; this is its smallest authenticated
    answer: IDS check, token check, a short JSON body)."""

    def __init__(self, url, ca, header_file, period=0.2):
        super().__init__(daemon=True, name="prober")
        self.url = url
        self.ca = ca
        self.header_file = header_file
        self.period = period
        self.stop_ev = threading.Event()
        self.samples = []  # (t, ok, code, total_s, error)

    def probe(self):
        t = time.time()
        try:
            r = subprocess.run(
                ["curl", "-sS", "-o", "/dev/null", "--cacert", self.ca, "--max-time", "5",
                 "--noproxy", "*", "-H", f"@{self.header_file}", "-w", "%{http_code} %{time_total}", self.url],
                capture_output=True, text=True, timeout=10)
            code, total = r.stdout.split()[:2]
            ok = r.returncode == 0 and code == "200"
            err = None if ok else (r.stderr.strip()[:120] or f"HTTP {code}")
            # time_total is curl's own measurement (connect + TLS + request), not this
            # process's start-up.
            self.samples.append((t, ok, int(code), float(total), err))
        except (subprocess.SubprocessError, ValueError, OSError) as e:
            self.samples.append((t, False, 0, None, str(e)[:120]))

    def run(self):
        nxt = time.monotonic()
        while not self.stop_ev.is_set():
            self.probe()
            nxt = max(nxt + self.period, time.monotonic())
            self.stop_ev.wait(max(0.0, nxt - time.monotonic()))

    def first_ok_after(self, t):
        for s in self.samples:
            if s[0] >= t and s[1]:
                return s[0]
        return None


def plan_faults(rng, args, cameras):
    """Random, non-overlapping fault times (seconds after the start of the soak)."""
    lo = min(30.0, 0.15 * args.duration)
    hi = args.duration - min(30.0, 0.1 * args.duration)
    window = hi - lo
    counts = {"crash": args.crashes, "fill": args.fills, "camstop": min(args.cam_stops, len(cameras))}
    span = {"crash": 3.0 + args.settle, "fill": args.fill_secs + args.settle,
            "camstop": args.stop_secs + args.settle}
    requested = dict(counts)
    while sum(counts[k] * span[k] for k in counts) > window:
        # Too many faults for the time: drop one of the kind that takes the most time.
        k = max((k for k in counts if counts[k] > 0), key=lambda k: counts[k] * span[k])
        counts[k] -= 1
    kinds = [k for k in counts for _ in range(counts[k])]
    rng.shuffle(kinds)
    slack = window - sum(span[k] for k in kinds)
    cuts = sorted(rng.uniform(0, slack) for _ in range(len(kinds)))
    stop_cams = rng.sample(cameras, counts["camstop"])
    events = []
    t = lo
    prev_cut = 0.0
    for k, cut in zip(kinds, cuts):
        t += cut - prev_cut
        prev_cut = cut
        ev = {"kind": k, "at": round(t, 2)}
        if k == "crash":
            ev["down_s"] = round(rng.uniform(0.5, 3.0), 2)
        elif k == "fill":
            ev["secs"] = args.fill_secs
        else:
            ev["camera"] = stop_cams.pop()
            ev["secs"] = args.stop_secs
        events.append(ev)
        t += span[k]
    return events, counts, requested


def cmd_run(args):
    global PIDFILE
    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.alarm(int(args.time_limit))
    os.makedirs(args.workdir, exist_ok=True)
    PIDFILE = os.path.join(args.workdir, "children.pids")
    seed = args.seed if args.seed is not None else int(time.time())
    rng = random.Random(seed)
    cameras = [f"cam{i:02d}" for i in range(args.cameras)]
    events, counts, requested = plan_faults(rng, args, cameras)
    if counts != requested:
        log(f"DURATION={args.duration:.0f} s holds fewer faults than asked: running {counts} "
            f"instead of {requested}")
    log(f"seed {seed}; fault plan (s after start): "
        + ", ".join(f"{e['kind']}@{e['at']:.0f}" + (f"({e['camera']})" if "camera" in e else "")
                    for e in events))
    rev, dirty = git_state(args.root)
    res = {"seed": seed, "params": vars(args).copy(), "plan": events, "counts": counts,
           "requested": requested, "git": rev, "dirty": dirty, "load": [loadavg()],
           "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
    data = os.path.join(args.vol, "data")
    vigil = Vigil(args.vigil, data, args.workdir)
    rtsp = None
    monitor = prober = slow = None
    faults = []  # executed faults with wall times
    try:
        clip = make_clip(os.path.join(args.workdir, "clips"))
        rtsp = RtspServer(args.root, clip, cameras, os.path.join(args.workdir, "rtsp-stats.json"),
                          os.path.join(args.workdir, "rtsp-server.log"))
        api_port = free_port()
        vigil.init(api_port, rtsp.url, cameras)
        ca = os.path.join(args.workdir, "ca.pem")
        vigil.cmd(["pki", "ca-cert", "-o", ca])
        out = vigil.cmd(["token", "create", "soak-health", "--role", "viewer"]).stdout
        m = re.search(r"(vgt_[0-9a-f]{16}_[0-9a-f]{64})", out)
        if not m:
            raise RuntimeError(f"no token in `vigil token create` output: {out}")
        header_file = os.path.join(args.workdir, "health.header")
        fd = os.open(header_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"Authorization: Bearer {m.group(1)}\n")
        cam_ids = {}
        con = db_ro(os.path.join(data, "vigil.db"))
        for cid, name in con.execute("SELECT id, name FROM cameras"):
            cam_ids[name] = cid
        con.close()
        monitor = Monitor(os.path.join(data, "vigil.db"), rtsp, args.vol)
        t_first_start = vigil.start()
        monitor.start()
        deadline = time.monotonic() + 90
        while not monitor.first_gop_everywhere(cam_ids.values()):
            if time.monotonic() > deadline:
                raise RuntimeError("not every camera recorded a GOP within 90 s of the start")
            if vigil.proc.poll() is not None:
                raise RuntimeError(f"vigil serve exited at start (see {vigil.log_path})")
            time.sleep(0.5)
        t0 = time.time()
        m0 = time.monotonic()
        res["t0"] = t0
        res["startup_s"] = round(t0 - t_first_start, 2)
        log(f"all {len(cameras)} cameras recording {t0 - t_first_start:.1f} s after the start; "
            f"soaking for {args.duration:.0f} s")
        prober = Prober(f"https://127.0.0.1:{api_port}/api/v1/session", ca, header_file)
        prober.start()
        baseline = min(10.0, 0.1 * args.duration)
        res["baseline_s"] = baseline
        plan = list(events)
        next_status = 30.0
        slow_out = os.path.join(args.workdir, "slow.json")
        while True:
            now = time.monotonic() - m0
            if slow is None and args.slow_conns > 0 and now >= baseline:
                res["t_slow_start"] = time.time()
                slow = spawn([sys.executable, os.path.abspath(__file__), "slow", "--host", "127.0.0.1",
                              "--port", str(api_port), "--ca", ca, "--conns", str(args.slow_conns),
                              "--addrs", str(args.slow_addrs), "--out", slow_out,
                              "--max-secs", str(args.duration + 120)])
                log(f"{args.slow_conns} slow connections from {args.slow_addrs} loopback addresses")
            if now >= args.duration:
                break
            if plan and now >= plan[0]["at"]:
                ev = plan.pop(0)
                f = {"kind": ev["kind"]}
                if ev["kind"] == "crash":
                    f["t_kill"] = vigil.kill9()
                    time.sleep(ev["down_s"])
                    f["t_restart"] = vigil.start()
                    log(f"crash: kill -9, restarted after {f['t_restart'] - f['t_kill']:.2f} s")
                elif ev["kind"] == "fill":
                    out = os.path.join(args.workdir, f"fill-{len(faults)}.json")
                    filler_path = os.path.join(args.vol, "filler.bin")
                    p = spawn([sys.executable, os.path.abspath(__file__), "fill", "--path", filler_path,
                               "--secs", str(ev["secs"]), "--out", out])
                    try:
                        p.wait(timeout=ev["secs"] + 60)
                    except subprocess.TimeoutExpired:
                        os.killpg(p.pid, signal.SIGKILL)
                        p.wait(timeout=10)
                    if os.path.exists(filler_path):
                        os.unlink(filler_path)
                    try:
                        with open(out) as fh:
                            f.update(json.load(fh))
                    except (OSError, ValueError):
                        f["error"] = "the filler left no record"
                    log(f"fill: {f.get('bytes', 0) / 2**20:.0f} MiB taken in "
                        f"{f.get('t_full', 0) - f.get('t_start', 0):.2f} s, held until "
                        f"{f.get('t_release', 0) - f.get('t_start', 0):.1f} s")
                else:
                    f["camera"] = ev["camera"]
                    f["t_disable"] = time.time()
                    r1 = vigil.cmd(["camera", "disable", ev["camera"]], check=False)
                    time.sleep(ev["secs"])
                    f["t_enable"] = time.time()
                    r2 = vigil.cmd(["camera", "enable", ev["camera"]], check=False)
                    if r1.returncode or r2.returncode:
                        f["error"] = (r1.stderr + r2.stderr).strip()[:300]
                        log(f"camera disable/enable failed: {f['error']}")
                    log(f"camera {ev['camera']} disabled for {f['t_enable'] - f['t_disable']:.1f} s")
                f["load"] = loadavg()
                faults.append(f)
                continue
            if vigil.proc.poll() is not None:
                log(f"vigil serve exited by itself with {vigil.proc.returncode}; restarting it")
                faults.append({"kind": "unexpected exit", "t_kill": time.time(),
                               "exit": vigil.proc.returncode, "t_restart": vigil.start()})
            if now >= next_status:
                next_status += 30
                res["load"].append(loadavg())
                log(f"t={now:.0f} s, load {res['load'][-1][0]:.1f}, free "
                    f"{(monitor.samples[-1][1] or 0) / 2**20:.0f} MiB, "
                    f"{sum(1 for s in prober.samples if s[1])}/{len(prober.samples)} API probes ok")
            time.sleep(0.1)
        res["t_end"] = time.time()
        log("soak over; stopping the load, then vigil (SIGTERM)")
    except (Deadline, KeyboardInterrupt, Exception) as e:  # noqa: BLE001 - recorded, then cleanup
        log(f"stopped early: {type(e).__name__}: {e}")
        if not isinstance(e, (Deadline, KeyboardInterrupt, RuntimeError)):
            traceback.print_exc()
        res["stopped_early"] = f"{type(e).__name__}: {e}"
        res.setdefault("t_end", time.time())
    finally:
        signal.alarm(0)
        signal.alarm(int(args.analysis_limit))
        if slow is not None and slow.poll() is None:
            slow.send_signal(signal.SIGTERM)
            try:
                slow.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(slow.pid, signal.SIGKILL)
        if prober:
            prober.stop_ev.set()
            prober.join(timeout=15)
        if monitor:
            monitor.stop_ev.set()
            monitor.join(timeout=15)
            monitor.poll()
        if vigil.proc is not None and vigil.proc.poll() is None:
            res["final_stop"] = vigil.stop()
        if rtsp:
            rtsp.stop()
            res["rtsp_final"] = rtsp.stats()
    res["faults"] = faults
    try:
        if "t0" in res:
            analyse(args, res, vigil, cameras, cam_ids, monitor, prober)
    except (Deadline, KeyboardInterrupt, Exception) as e:  # noqa: BLE001 - recorded
        log(f"analysis incomplete: {type(e).__name__}: {e}")
        traceback.print_exc()
        res["analysis_error"] = f"{type(e).__name__}: {e}"
    finally:
        signal.alarm(0)
        kill_all_children()
        with open(os.path.join(args.workdir, "results.json"), "w") as f:
            json.dump(res, f, indent=1, default=str)
    if "summary" in res:
        print(res["summary"])
    return 0


def analyse_camera(name, timeline, gaps, fault_windows, fps, gop_frames):
    """Holes in a camera's GOP timeline (every GOP the index ever held) and short GOPs, each
    attributed to the fault windows it overlaps (none: a loss outside the faults)."""
    frame_us = 1e6 / fps
    holes = []
    short = []
    overlaps = 0
    for i in range(1, len(timeline)):
        prev, cur = timeline[i - 1], timeline[i]
        hole = cur["start"] - (prev["start"] + prev["dur"])
        if hole < -frame_us / 2:
            overlaps += 1
        if hole > frame_us / 2:
            holes.append({"start_us": prev["start"] + prev["dur"], "end_us": cur["start"],
                          "frames": round(hole / frame_us)})
        # The newest GOP of the run may be cut short by the final stop; every other GOP of the
        # clip has gop_frames frames.
        if prev["frames"] < gop_frames:
            short.append({"start_us": prev["start"], "frames": prev["frames"],
                          "missing": gop_frames - prev["frames"]})
    def cause(start, ws):
        # Windows may overlap (a fault's resume allowance reaching into the next fault): the
        # loss belongs to the latest fault that began before it, else to the first one.
        if not ws:
            return None
        before = [w for w in ws if w["lo"] <= start]
        return (max(before, key=lambda w: w["lo"]) if before else min(ws, key=lambda w: w["lo"]))["label"]

    for h in holes:
        h["gap_rows"] = [g["reason"] for g in gaps
                         if g["start_us"] < h["end_us"] and g["end_us"] > h["start_us"]]
        ws = [w for w in fault_windows
              if w["camera"] in (None, name) and w["lo"] < h["end_us"] and w["hi"] > h["start_us"]]
        h["faults"] = [w["label"] for w in ws]
        h["cause"] = cause(h["start_us"], ws)
    for s in short:
        ws = [w for w in fault_windows
              if w["camera"] in (None, name) and w["lo"] <= s["start_us"] <= w["hi"]]
        s["faults"] = [w["label"] for w in ws]
        s["cause"] = cause(s["start_us"], ws)
    return holes, short, overlaps


def analyse(args, res, vigil, cameras, cam_ids, monitor, prober):
    fps, gop_frames = CLIP_FPS, CLIP_GOP
    gop_us = gop_frames * 1e6 / fps
    faults = res["faults"]
    data = vigil.data
    # ----- what Vigil says now (after its clean stop) -----
    recs, verify = {}, {}
    for c in cameras:
        recs[c] = json.loads(vigil.cmd(["recordings", c, "--json"]).stdout)
        r = vigil.cmd(["verify", c, "--json"], timeout=300, check=False)
        try:
            rep = json.loads(r.stdout)
        except ValueError:
            rep = {"error": (r.stdout + r.stderr).strip()[:400]}
        rep["exit"] = r.returncode
        verify[c] = rep
    monitor.poll()  # the index after the stop, into the GOPs ever seen
    con = db_ro(os.path.join(data, "vigil.db"))
    final = {(cid, seq, no) for cid, seq, no in con.execute("SELECT camera_id, seq, gop_no FROM gops")}
    con.close()
    # ----- every GOP the index ever held, per camera; the ones gone now were pruned (the
    # camera's signed ledger holds a prune record of their segment) or vanished -----
    id_to_name = {v: k for k, v in cam_ids.items()}
    pruned_segs = {c: {ev.get("segment") for ev in verify[c].get("events", [])
                       if ev.get("event") == "pruned"} for c in cameras}
    timeline = {c: [] for c in cameras}
    for (cid, seq, no), (s, d, n, first_seen, last_seen) in monitor.gops.items():
        c = id_to_name.get(cid)
        if c is None:
            continue
        present = (cid, seq, no) in final
        timeline[c].append({"start": s, "dur": d, "frames": n, "seq": seq, "gop_no": no,
                            "present": present, "pruned": not present and seq in pruned_segs[c],
                            "last_seen": last_seen})
    for c in cameras:
        timeline[c].sort(key=lambda x: x["start"])
    vanished = [{"camera": c, "seq": x["seq"], "gop_no": x["gop_no"], "start_us": x["start"],
                 "frames": x["frames"]}
                for c in cameras for x in timeline[c] if not x["present"] and not x["pruned"]]
    # ----- fault windows (wall µs) -----
    windows = []
    for i, f in enumerate(faults):
        if f["kind"] in ("crash", "unexpected exit"):
            windows.append({"label": f"crash {i}", "camera": None, "lo": (f["t_kill"] - 3) * 1e6,
                            "hi": (f["t_restart"] + RESUME_ALLOW_S) * 1e6})
        elif f["kind"] == "fill" and "t_release" in f:
            windows.append({"label": f"fill {i}", "camera": None, "lo": (f["t_start"] - 1) * 1e6,
                            "hi": (f["t_release"] + RESUME_ALLOW_S) * 1e6})
        elif f["kind"] == "camstop":
            windows.append({"label": f"camstop {i}", "camera": f["camera"],
                            "lo": (f["t_disable"] - 1) * 1e6,
                            "hi": (f["t_enable"] + RESUME_ALLOW_S) * 1e6})
    per_cam = {}
    for c in cameras:
        g = timeline[c]
        holes, short, overlaps = analyse_camera(c, g, recs[c]["gaps"], windows, fps, gop_frames)
        per_cam[c] = {"gops_ever": len(g), "gops_now": sum(1 for x in g if x["present"]),
                      "frames_ever": sum(x["frames"] for x in g),
                      "pruned_gops": sum(1 for x in g if x["pruned"]),
                      "pruned_frames": sum(x["frames"] for x in g if x["pruned"]),
                      "holes": holes, "short": short, "overlaps": overlaps,
                      "gap_rows": recs[c]["gaps"], "ranges": len(recs[c]["ranges"]),
                      "first_us": g[0]["start"] if g else None}
    # ----- crashes: video lost = from the end of the last GOP stored before the kill to the
    # kill; resume = the first GOP of the restarted server -----
    crash_rows = []
    for i, f in enumerate(faults):
        if f["kind"] not in ("crash", "unexpected exit"):
            continue
        tk, tr = f["t_kill"] * 1e6, f["t_restart"] * 1e6
        row = {"index": i, "kind": f["kind"], "down_s": round((tr - tk) / 1e6, 2),
               "api_up_s": None, "cams": {}}
        ok = prober.first_ok_after(f["t_restart"])
        if ok is not None:
            row["api_up_s"] = round(ok - f["t_restart"], 2)
        for c in cameras:
            g = timeline[c]
            before = [x for x in g if x["start"] < tr]
            if not before:
                row["cams"][c] = {"note": "no GOP before the crash"}
                continue
            prev_end = max(x["start"] + x["dur"] for x in before)
            nxt = next((x["start"] for x in g if x["start"] >= tr), None)
            lost_us = tk - prev_end
            gap_reasons = [gp["reason"] for gp in recs[c]["gaps"]
                           if gp["start_us"] <= prev_end + 1000 and gp["end_us"] >= (nxt or tk) - 1000]
            row["cams"][c] = {
                "lost_gops": round(lost_us / gop_us, 3),
                "whole_gops_lost": max(0, int(lost_us // gop_us)),
                "lost_frames": round(lost_us * fps / 1e6),
                "resume_after_restart_s": None if nxt is None else round((nxt - tr) / 1e6, 2),
                "resume_after_kill_s": None if nxt is None else round((nxt - tk) / 1e6, 2),
                "gap_reasons": gap_reasons,
            }
        vals = [v["lost_gops"] for v in row["cams"].values() if "lost_gops" in v]
        res_vals = [v["resume_after_restart_s"] for v in row["cams"].values()
                    if v.get("resume_after_restart_s") is not None]
        row["max_lost_gops"] = max(vals) if vals else None
        row["mean_lost_gops"] = round(statistics.mean(vals), 2) if vals else None
        row["max_whole_gops_lost"] = max((v["whole_gops_lost"] for v in row["cams"].values()
                                          if "whole_gops_lost" in v), default=None)
        row["resume_max_s"] = max(res_vals) if res_vals else None
        row["resume_median_s"] = round(statistics.median(res_vals), 2) if res_vals else None
        row["cams_resumed"] = len(res_vals)
        crash_rows.append(row)
    # ----- fills: holes and short GOPs from the start of the fill to RESUME_ALLOW_S after its
    # release -----
    fill_rows = []
    for i, f in enumerate(faults):
        if f["kind"] != "fill" or "t_release" not in f:
            continue
        lo, hi = f["t_start"] * 1e6, (f["t_release"] + RESUME_ALLOW_S) * 1e6
        label = f"fill {i}"
        row = {"index": i, "mib": round(f["bytes"] / 2**20), "fill_s": round(f["t_full"] - f["t_start"], 2),
               "held_s": round(f["t_release"] - f["t_start"], 1),
               "max_free_mib_while_held": round(max((s[1] for s in f.get("free_samples", [])), default=0) / 2**20, 1),
               "cams": {}}
        pr = [x for c in cameras for x in timeline[c]
              if x["pruned"] and f["t_start"] - 1 <= x["last_seen"] <= f["t_release"] + RESUME_ALLOW_S]
        row["pruned_gops"] = len(pr)
        row["pruned_seconds"] = round(sum(x["dur"] for x in pr) / 1e6, 1)
        for c in cameras:
            hs = [h for h in per_cam[c]["holes"] if h["cause"] == label]
            sh = [s for s in per_cam[c]["short"] if s["cause"] == label]
            cam = {"interrupted_s": round(sum(h["end_us"] - h["start_us"] for h in hs) / 1e6, 2),
                   "lost_frames": sum(h["frames"] for h in hs) + sum(s["missing"] for s in sh),
                   "short_gops": len(sh),
                   "reasons": sorted({r for h in hs for r in h["gap_rows"]})}
            if hs:
                end = max(h["end_us"] for h in hs) / 1e6
                cam["resume_after_full_s"] = round(end - f["t_full"], 2)
                cam["resume_after_release_s"] = round(end - f["t_release"], 2)
            row["cams"][c] = cam
        fill_rows.append(row)
    # ----- camera stops -----
    stop_rows = []
    for i, f in enumerate(faults):
        if f["kind"] != "camstop":
            continue
        c = f["camera"]
        te = f["t_enable"] * 1e6
        nxt = next((x["start"] for x in timeline[c] if x["start"] >= te), None)
        reasons = [gp["reason"] for gp in recs[c]["gaps"]
                   if gp["start_us"] < te and gp["end_us"] > f["t_disable"] * 1e6]
        stop_rows.append({"index": i, "camera": c, "off_s": round(f["t_enable"] - f["t_disable"], 1),
                          "resume_after_enable_s": None if nxt is None else round((nxt - te) / 1e6, 2),
                          "gap_reasons": reasons, "error": f.get("error")})
    # ----- losses outside every fault window -----
    outside = []
    for c in cameras:
        for h in per_cam[c]["holes"]:
            if not h["faults"]:
                outside.append({"camera": c, **h})
        for s in per_cam[c]["short"]:
            if not s["faults"]:
                outside.append({"camera": c, "start_us": s["start_us"], "frames": s["missing"],
                                "gap_rows": [f"short GOP ({s['frames']} frames)"]})
    silent = [{"camera": c, **h} for c in cameras for h in per_cam[c]["holes"] if not h["gap_rows"]]
    # ----- verify -----
    tamper, unsigned_spans, unsigned_bytes, vsum = [], 0, 0, {}
    for c, rep in verify.items():
        fail = rep.get("failure")
        if "error" in rep:
            tamper.append({"camera": c, "kind": "verify error", "detail": rep["error"]})
        elif fail and fail.get("kind") != "unsigned":
            tamper.append({"camera": c, "kind": fail.get("kind"), "detail": fail.get("detail"),
                           "at_us": fail.get("at_us"), "segment": fail.get("segment")})
        unsigned_spans += len(rep.get("unsigned", []))
        unsigned_bytes += sum(u.get("bytes", 0) for u in rep.get("unsigned", []))
        for ev in rep.get("events", []):
            vsum[ev.get("event")] = vsum.get(ev.get("event"), 0) + 1
    verify_exit = {c: rep["exit"] for c, rep in verify.items()}
    # ----- the RTSP server's count (all causes, including downtime) -----
    final_stats = res.get("rtsp_final") or {}
    server_check = {}
    for c in cameras:
        sent = final_stats.get("mounts", {}).get(f"/{c}", {}).get("frames_sent")
        server_check[c] = {"sent": sent, "indexed_ever": per_cam[c]["frames_ever"],
                           "not_indexed": None if sent is None else sent - per_cam[c]["frames_ever"]}
    # ----- API -----
    down = []
    for f in faults:
        if f["kind"] in ("crash", "unexpected exit"):
            ok = prober.first_ok_after(f["t_restart"])
            down.append((f["t_kill"], ok if ok is not None else f["t_restart"] + 60))
    t_slow = res.get("t_slow_start", float("inf"))
    t_end = res.get("t_end", float("inf"))

    def in_down(t):
        return any(a <= t <= b for a, b in down)

    during = [s for s in prober.samples if s[0] <= t_end]
    base = [s for s in during if s[0] < t_slow and not in_down(s[0])]
    load = [s for s in during if s[0] >= t_slow and not in_down(s[0])]
    fill_w = [(f["t_start"], f["t_release"]) for f in faults if f["kind"] == "fill" and "t_release" in f]
    during_fill = [s for s in load if any(a <= s[0] <= b for a, b in fill_w)]

    def lat(samples):
        ok = [s[3] * 1000 for s in samples if s[1]]
        fails = [s for s in samples if not s[1]]
        return {"n": len(samples), "ok": len(ok), "failed": len(fails),
                "p50_ms": None if not ok else round(pct(ok, 0.5), 1),
                "p99_ms": None if not ok else round(pct(ok, 0.99), 1),
                "max_ms": None if not ok else round(max(ok), 1),
                "over_1s": sum(1 for x in ok if x > 1000),
                "fail_examples": sorted({str(s[4]) for s in fails})[:5]}

    api = {"whole_run": lat([s for s in during if not in_down(s[0])]), "baseline": lat(base),
           "under_load": lat(load), "during_fills": lat(during_fill),
           "excluded_down_samples": sum(1 for s in during if in_down(s[0]))}
    slow = None
    try:
        with open(os.path.join(args.workdir, "slow.json")) as f:
            slow = json.load(f)
        tl = [n for t, n in slow.pop("open_timeline") if t >= t_slow + 5 and t <= t_end and not in_down(t)]
        slow["open_while_up"] = ({"min": min(tl), "median": statistics.median(tl), "max": max(tl)}
                                 if tl else None)
    except (OSError, ValueError):
        pass
    # ----- Vigil's log -----
    counts = {}
    try:
        with open(vigil.log_path, errors="replace") as f:
            for line in f:
                for key in ("ERROR", "WARN", "panicked"):
                    if key in line:
                        counts[key] = counts.get(key, 0) + 1
    except OSError:
        pass
    res.update({
        "per_camera": per_cam, "crashes": crash_rows, "fills": fill_rows, "camstops": stop_rows,
        "outside_losses": outside, "silent_holes": silent, "vanished_gops": vanished,
        "verify": verify, "verify_exit": verify_exit,
        "false_tamper": tamper, "unsigned_spans": unsigned_spans, "unsigned_bytes": unsigned_bytes,
        "verify_events": vsum, "server_check": server_check, "api": api, "slow": slow,
        "log_counts": counts, "monitor_db_errors": monitor.errors,
    })
    res["summary"] = summary(res, cameras)


def fmt_t(us):
    return datetime.datetime.fromtimestamp(us / 1e6).strftime("%H:%M:%S.%f")[:-3]


def summary(res, cameras):
    L = []
    crashes = res["crashes"]
    allv = [v["lost_gops"] for r in crashes for v in r["cams"].values() if "lost_gops" in v]
    L.append(f"Soak {res['started']}, seed {res['seed']}, {len(cameras)} cameras, "
             f"{res['params']['duration']:.0f} s, faults {res['counts']}"
             + (f" (asked {res['requested']})" if res["counts"] != res["requested"] else "")
             + (f"; STOPPED EARLY: {res['stopped_early']}" if res.get("stopped_early") else ""))
    L.append(f"load average during the run: {min(x[0] for x in res['load']):.1f}-"
             f"{max(x[0] for x in res['load']):.1f}")
    if allv:
        L.append(f"GOPs lost per crash (per camera, {len(allv)} camera-crashes): max {max(allv):.2f}, "
                 f"mean {statistics.mean(allv):.2f}, >1: {sum(1 for v in allv if v > 1)} (goal <= 1)")
    for r in crashes:
        L.append(f"  {r['kind']} {r['index']}: down {r['down_s']} s, API answers {r['api_up_s']} s after "
                 f"restart; recording resumed {r['resume_median_s']} s (median) / {r['resume_max_s']} s "
                 f"(max) after restart on {r['cams_resumed']}/{len(cameras)} cameras; GOPs lost max "
                 f"{r['max_lost_gops']} mean {r['mean_lost_gops']} (whole GOPs max {r['max_whole_gops_lost']})")
    for r in res["fills"]:
        ints = [v["interrupted_s"] for v in r["cams"].values()]
        lost = sum(v["lost_frames"] for v in r["cams"].values())
        ra = [v["resume_after_full_s"] for v in r["cams"].values() if "resume_after_full_s" in v]
        rr = [v["resume_after_release_s"] for v in r["cams"].values() if "resume_after_release_s" in v]
        L.append(f"  fill {r['index']}: {r['mib']} MiB in {r['fill_s']} s, held {r['held_s']} s; "
                 f"cameras interrupted {sum(1 for x in ints if x > 0)}/{len(cameras)}, longest "
                 f"{max(ints):.1f} s, frames lost {lost}; recording resumed "
                 + (f"{min(ra):.1f}..{max(ra):.1f} s after the volume was full "
                    f"({min(rr):.1f}..{max(rr):.1f} s after the release)" if ra else "n/a (never stopped)")
                 + f"; retention pruned {r['pruned_gops']} GOPs ({r['pruned_seconds']} s of video)")
    for r in res["camstops"]:
        L.append(f"  camstop {r['index']} {r['camera']}: off {r['off_s']} s, recording again "
                 f"{r['resume_after_enable_s']} s after enable, gap {r['gap_reasons']}"
                 + (f", ERROR {r['error']}" if r.get("error") else ""))
    out = res["outside_losses"]
    L.append(f"frames lost outside crash/fill/camera-stop windows: {sum(o['frames'] for o in out)} "
             f"in {len(out)} places (goal 0)")
    for o in out[:10]:
        L.append(f"    {o['camera']} at {fmt_t(o['start_us'])}: {o['frames']} frames, "
                 f"{o['gap_rows'] or 'no gap row'}")
    van = res["vanished_gops"]
    L.append(f"GOPs once indexed, gone without a prune record: {len(van)} "
             f"({sum(v['frames'] for v in van)} frames)")
    L.append(f"holes without any gap row (silent): {len(res['silent_holes'])}")
    L.append(f"false tamper reports from verify: {len(res['false_tamper'])} (goal 0); exit codes "
             f"{sorted(set(res['verify_exit'].values()))}"
             + "".join(f"\n    {t['camera']}: {t['kind']}: {t['detail']}" for t in res["false_tamper"]))
    L.append(f"unsigned spans: {res['unsigned_spans']} ({res['unsigned_bytes']} bytes); verify events: "
             f"{res['verify_events']}")
    api = res["api"]
    for k in ("whole_run", "baseline", "under_load", "during_fills"):
        a = api[k]
        L.append(f"API health {k}: {a['ok']}/{a['n']} ok, p50 {a['p50_ms']} ms, p99 {a['p99_ms']} ms, "
                 f"max {a['max_ms']} ms, >1 s {a['over_1s']}"
                 + (f", failures {a['fail_examples']}" if a["failed"] else ""))
    L.append(f"  (samples while Vigil was down after a kill, excluded: {api['excluded_down_samples']})")
    if res.get("slow"):
        s = res["slow"]
        L.append(f"slow connections: {s['conns']} from {s['addresses']}; attempts {s['attempts']}, "
                 f"established {s['established']}, refused {s['refused']}, connect errors "
                 f"{s['connect_errors']}, handshake errors {s['handshake_errors']}; open while up "
                 f"{s['open_while_up']}; outcomes {s['outcomes']}; lifetimes {s['lifetimes']}")
    sc = res["server_check"]
    L.append("RTSP server cross-check (frames sent - frames ever indexed, all causes incl. downtime): "
             + ", ".join(f"{c} {v['not_indexed']}" for c, v in sc.items()))
    L.append(f"vigil log counts: {res['log_counts']}; index read errors {res['monitor_db_errors']}; "
             f"final stop: {res.get('final_stop')}")
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--root", required=True)
    r.add_argument("--vigil", required=True)
    r.add_argument("--workdir", required=True)
    r.add_argument("--vol", required=True, help="mounted tmpfs for the data directory")
    r.add_argument("--duration", type=float, default=600)
    r.add_argument("--cameras", type=int, default=8)
    r.add_argument("--crashes", type=int, default=5)
    r.add_argument("--fills", type=int, default=2)
    r.add_argument("--fill-secs", type=float, default=20)
    r.add_argument("--cam-stops", type=int, default=2)
    r.add_argument("--stop-secs", type=float, default=10)
    r.add_argument("--settle", type=float, default=20, help="quiet time after each fault (s)")
    r.add_argument("--slow-conns", type=int, default=200)
    r.add_argument("--slow-addrs", type=int, default=4)
    r.add_argument("--seed", type=int)
    r.add_argument("--time-limit", type=float, required=True)
    r.add_argument("--analysis-limit", type=float, default=900)
    f = sub.add_parser("fill")
    f.add_argument("--path", required=True)
    f.add_argument("--secs", type=float, required=True)
    f.add_argument("--out", required=True)
    s = sub.add_parser("slow")
    s.add_argument("--host", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--ca", required=True)
    s.add_argument("--conns", type=int, required=True)
    s.add_argument("--addrs", type=int, default=4)
    s.add_argument("--interval", type=float, default=1.0)
    s.add_argument("--stagger", type=float, default=2.0)
    s.add_argument("--max-secs", type=float, required=True)
    s.add_argument("--out", required=True)
    args = ap.parse_args()
    if args.cmd == "fill":
        return cmd_fill(args)
    if args.cmd == "slow":
        if not 1 <= args.addrs <= 200 or not 0 <= args.conns <= 5000:
            ap.error("--addrs 1..200, --conns 0..5000")
        return cmd_slow(args)
    if not 10 <= args.duration <= 7200:
        ap.error("DURATION must be 10..7200 s")
    if not 1 <= args.cameras <= 64:
        ap.error("CAMERAS must be 1..64")
    for name in ("crashes", "fills", "cam_stops"):
        if not 0 <= getattr(args, name) <= 100:
            ap.error(f"{name} must be 0..100")
    if not 0 <= args.slow_conns <= 2000 or not 1 <= args.slow_addrs <= 200:
        ap.error("SLOW_CONNS 0..2000, SLOW_ADDRS 1..200")
    return cmd_run(args)


if __name__ == "__main__":
    sys.exit(main())
