#!/usr/bin/python3
"""Ingest benchmark: Vigil vs `ffmpeg -c copy -f segment` recording N RTSP streams at once.

One GStreamer RTSP server (tests/peers/rtsp_server.py) loops one 1080p30 H.264 clip on one
mount; every client of the mount shares one pipeline, so every client is offered exactly the
same frames. For each N, Vigil records N cameras pointing at that mount, and N ffmpeg processes
record the same URL, one after the other (the order alternates between N values so that slow
drifts in machine load do not always hit the same recorder).

Measured per run:
  * CPU: utime+stime of the recorder processes (all threads) over a steady window of DURATION
    seconds that starts SETTLE seconds after the last client started playing, so start-up
    (ffmpeg's stream probing, Vigil's recovery pass) is reported separately from the steady
    cost. CPU s per stream-hour = cpu_s / (N * DURATION / 3600).
  * Frames lost, two ways:
      - server count: the server's frames_sent delta from each client's PLAY to the stop,
        summed over clients, minus the frames recorded, minus an allowance of one GOP per
        client (a recorder may start at the first keyframe; frames before it are not lost).
      - timeline: frames missing inside each recording (timestamp gaps), which needs no
        allowance and is not blurred by start-up/shutdown timing.
  * Bytes written (segment files on disk) vs bytes received (payload the server sent to
    each client, i.e. bytes_sent delta from each client's PLAY).

Only the Python standard library is used. Every child runs in its own process group and is
killed on exit; every wait is bounded.
"""

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import (  # noqa: E402
    CLK_TCK, Deadline, cpu_model, git_rev, kill_all_children, loadavg, make_log, on_alarm, on_term,
    proc_sys_ticks, spawn, threads)
from common import proc_ticks as proc_cpu_ticks  # noqa: E402

ANSI = re.compile(r"\x1b\[[0-9;]*m")
log = make_log("ingest-bench")


# ----- /proc helpers -----


def thread_ticks(pid):
    """{tid: (name, utime, stime, context switches)} for the live threads of a process."""
    out = {}
    for tid, name, ut, st in threads(pid):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                csw = sum(int(line.split()[1]) for line in f if "ctxt_switches" in line)
        except OSError:
            continue
        # The main thread carries the binary's file name, which may be a renamed copy.
        out[tid] = ("vigil" if tid == str(pid) else name, ut, st, csw)
    return out


def thread_group(name):
    if name.startswith("writer-"):
        return "writer-<camera>"
    if name.startswith("tokio-r"):
        return "tokio workers"
    if name == "vigil":
        return "main"
    return name


def group_thread_cpu(before, after):
    groups = {}
    for tid, (name, ut, st, csw) in after.items():
        _, ut0, st0, csw0 = before.get(tid, (name, 0, 0, 0))
        g = groups.setdefault(thread_group(name), {"threads": 0, "user_s": 0.0, "sys_s": 0.0, "ctxsw": 0})
        g["threads"] += 1
        g["user_s"] += (ut - ut0) / CLK_TCK
        g["sys_s"] += (st - st0) / CLK_TCK
        g["ctxsw"] += csw - csw0
    for g in groups.values():
        g["cpu_s"] = g["user_s"] + g["sys_s"]
    return groups


def jbd2_ticks():
    """CPU of the ext4 journal threads (fsync work that no recorder process is billed for)."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                data = f.read()
        except OSError:
            continue
        if data[data.index("(") + 1:].startswith("jbd2/"):
            rest = data[data.rindex(")") + 2:].split()
            total += int(rest[11]) + int(rest[12])
    return total


def listen_overflows():
    """TcpExt ListenOverflows (system-wide): SYNs dropped because an accept queue was full."""
    try:
        with open("/proc/net/netstat") as f:
            lines = f.read().splitlines()
    except OSError:
        return 0
    for head, vals in zip(lines[::2], lines[1::2]):
        if head.startswith("TcpExt:"):
            d = dict(zip(head.split()[1:], vals.split()[1:]))
            return int(d.get("ListenOverflows", 0))
    return 0


def page_cache_cost(workdir, mib=256):
    """Kernel CPU seconds per GB for write()ing 1 MiB chunks into the page cache here.

    Any recorder pays this per byte it stores, so it is the floor under both columns.
    """
    path = os.path.join(workdir, "calibrate.bin")
    chunk = os.urandom(1 << 20)
    before = resource.getrusage(resource.RUSAGE_SELF)
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(chunk)
    after = resource.getrusage(resource.RUSAGE_SELF)
    os.remove(path)
    return (after.ru_stime - before.ru_stime) / (mib * (1 << 20) / 1e9)


def vm_hwm_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def dir_bytes(path):
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(dirpath, name))
            except OSError:
                pass
    return total


# ----- clip and server -----


def make_clip(clip_dir, seconds, fps, gop, kbps):
    os.makedirs(clip_dir, exist_ok=True)
    path = os.path.join(clip_dir, f"h264-{seconds}s-{fps}fps-g{gop}-1920x1080-{kbps}k-bf0-v1.mp4")
    if os.path.exists(path):
        return path
    tmp = f"{path}.tmp.{os.getpid()}.mp4"
    cmd = [
        "ffmpeg", "-nostdin", "-v", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate={fps}",
        "-frames:v", str(seconds * fps), "-an", "-pix_fmt", "yuv420p",
        "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high",
        "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-bf", "0",
        "-b:v", f"{kbps}k", "-maxrate", f"{kbps}k", "-bufsize", f"{2 * kbps}k",
        "-f", "mp4", tmp,
    ]
    log(f"encoding the benchmark clip {path} (once; cached)")
    p = spawn(cmd)
    try:
        rc = p.wait(timeout=900)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        raise RuntimeError("ffmpeg did not finish encoding the clip within 900 s")
    if rc != 0:
        raise RuntimeError(f"ffmpeg failed to encode the clip (exit {rc})")
    os.replace(tmp, path)
    return path


def probe_clip(path):
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets",
         "-show_entries", "stream=width,height,r_frame_rate,nb_read_packets,bit_rate:format=duration,size",
         "-of", "json", path],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    d = json.loads(out)
    s = d["streams"][0]
    num, den = s["r_frame_rate"].split("/")
    dur = float(d["format"]["duration"])
    return {
        "width": s["width"], "height": s["height"], "fps": float(num) / float(den),
        "frames": int(s["nb_read_packets"]), "seconds": dur,
        "kbps": int(d["format"]["size"]) * 8 / dur / 1000,
    }


class Server:
    def __init__(self, root, clip, stats_file):
        self.stats_file = stats_file
        self.proc = spawn(
            ["/usr/bin/python3", os.path.join(root, "tests/peers/rtsp_server.py"),
             "--port", "0", "--mount", f"/cam={clip}", "--stats-file", stats_file,
             "--stats-interval", "0.2"],
            stdout=subprocess.PIPE, text=True,
        )
        deadline = time.monotonic() + 120
        self.port = None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("the RTSP server exited before READY (see its stderr above)")
            if line.startswith("READY port="):
                self.port = int(line.strip().split("=", 1)[1])
                break
        if self.port is None:
            raise RuntimeError("the RTSP server did not print READY within 120 s")
        self.url = f"rtsp://127.0.0.1:{self.port}/cam"

    def stats(self):
        for _ in range(50):
            try:
                with open(self.stats_file) as f:
                    d = json.load(f)
                m = d["mounts"]["/cam"]
                m["clients_now"] = d["clients_now"]
                return m
            except (OSError, ValueError, KeyError):
                time.sleep(0.02)
        raise RuntimeError(f"cannot read the server stats file {self.stats_file}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


# ----- recorders -----


def run_cmd(cmd, timeout=60):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
    return r.stdout


class VigilRecorder:
    kind = "vigil"

    def __init__(self, vigil, workdir, url, n):
        self.vigil = vigil
        self.dir = os.path.join(workdir, f"vigil-n{n}")
        shutil.rmtree(self.dir, ignore_errors=True)
        self.config = os.path.join(self.dir, "vigil.toml")
        run_cmd([vigil, "init", "--data-dir", self.dir])
        for i in range(n):
            run_cmd([vigil, "--config", self.config, "camera", "add", f"cam{i:02d}", "--url", url])
        self.n = n
        self.procs = []

    def start(self):
        self.log = open(os.path.join(self.dir, "serve.log"), "w")
        self.procs = [spawn([self.vigil, "--config", self.config, "serve"],
                            stdout=self.log, stderr=subprocess.STDOUT)]

    def pids(self):
        return [p.pid for p in self.procs]

    def status_snapshot(self):
        try:
            out = run_cmd([self.vigil, "--config", self.config, "camera", "status", "--json"], timeout=30)
            rows = json.loads(out)
        except (RuntimeError, ValueError, subprocess.TimeoutExpired) as e:
            return {"error": str(e)}
        states = {}
        errors = []
        for r in rows if isinstance(rows, list) else []:
            st = r.get("state", "?")
            states[st] = states.get(st, 0) + 1
            if r.get("last_error"):
                errors.append(f"{r.get('name')}: {r.get('last_error')}")
        return {"states": states, "errors": errors[:5]}

    def stop(self):
        p = self.procs[0]
        t = time.monotonic()
        p.send_signal(signal.SIGTERM)
        try:
            _, status, ru = os.wait4(p.pid, 0) if wait_bounded(p, 90) else (0, -1, None)
        except ChildProcessError:
            status, ru = -1, None
        p.returncode = os.waitstatus_to_exitcode(status) if status != -1 else -1
        stop_s = time.monotonic() - t
        self.log.close()
        with open(os.path.join(self.dir, "serve.log")) as f:
            text = ANSI.sub("", f.read())
        noisy = [line for line in text.splitlines() if " WARN " in line or " ERROR " in line]
        return {
            "stop_s": stop_s,
            "exit": p.returncode,
            "clean": "Stopped cleanly" in text,
            "rusage_cpu_s": (ru.ru_utime + ru.ru_stime) if ru else None,
            "maxrss_mib": (ru.ru_maxrss / 1024) if ru else None,
            "warn_lines": sum(1 for line in noisy if " WARN " in line),
            "error_lines": sum(1 for line in noisy if " ERROR " in line),
            "sessions_ended": sum(1 for line in noisy if "camera session ended" in line),
            "log_sample": [line.split(" ", 1)[-1] for line in noisy][:3],
        }

    def count(self, fps, gop):
        db = sqlite3.connect(f"file:{os.path.join(self.dir, 'vigil.db')}?mode=ro", uri=True)
        try:
            cams = db.execute("select count(*) from cameras").fetchone()[0]
            rows = db.execute(
                "select camera_id, coalesce(sum(frames),0), coalesce(sum(bytes),0), count(*) "
                "from segments group by camera_id").fetchall()
            frames = sum(r[1] for r in rows)
            gaps = db.execute("select count(*) from gaps").fetchone()[0]
            missing = 0
            per_cam = []
            stretched = 0
            for cam_id, f, _b, _s in rows:
                gops = db.execute(
                    "select start_us, duration_us, frames from gops where camera_id=? order by start_us",
                    (cam_id,)).fetchall()
                per_cam.append(f)
                # The clip has a fixed GOP, so every GOP but the last (cut by the stop) must hold
                # exactly `gop` frames, and a time gap of half a GOP or more between GOPs is
                # GOPs that never arrived. Timestamps alone are not used: when the test server is
                # starved of CPU it stretches its timeline without dropping frames.
                for cur, nxt in zip(gops, gops[1:]):
                    missing += max(0, gop - cur[2])
                    gap_us = nxt[0] - (cur[0] + cur[1])
                    if gap_us * fps / 1e6 >= gop / 2:
                        missing += round(gap_us * fps / 1e6)
                    if round(cur[1] * fps / 1e6) > cur[2]:
                        stretched += 1
        finally:
            db.close()
        return {
            "cameras_with_video": len(rows), "cameras": cams, "frames": frames,
            "timeline_missing": missing, "gap_rows": gaps, "stretched_gops": stretched,
            "bytes_written": dir_bytes(os.path.join(self.dir, "video")),
            "per_cam_min": min(per_cam) if per_cam else 0,
            "per_cam_max": max(per_cam) if per_cam else 0,
        }

    def cleanup(self, keep):
        if not keep:
            shutil.rmtree(os.path.join(self.dir, "video"), ignore_errors=True)


def wait_bounded(p, timeout):
    """Polls until p exits (without reaping it) or timeout; kills its group on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r = os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return False
        if r is not None and r.si_pid:
            return True
        time.sleep(0.05)
    log(f"pid {p.pid} did not exit within {timeout} s; killing it")
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True


class FfmpegRecorder:
    kind = "ffmpeg"

    def __init__(self, workdir, url, n):
        self.dir = os.path.join(workdir, f"ffmpeg-n{n}")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.url = url
        self.n = n
        self.procs = []

    def start(self):
        self.logs = []
        for i in range(self.n):
            d = os.path.join(self.dir, f"cam{i:02d}")
            os.makedirs(d)
            lf = open(os.path.join(d, "ffmpeg.log"), "w")
            self.logs.append(lf)
            self.procs.append(spawn(
                ["ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp",
                 "-i", self.url, "-c", "copy", "-f", "segment", "-segment_time", "60",
                 "-reset_timestamps", "1", os.path.join(d, "out%03d.mp4")],
                stdout=lf, stderr=subprocess.STDOUT))

    def pids(self):
        return [p.pid for p in self.procs]

    def status_snapshot(self):
        return {"alive": sum(1 for p in self.procs if p.poll() is None)}

    def stop(self):
        t = time.monotonic()
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        cpu = 0.0
        rss = 0.0
        exits = []
        deadline = time.monotonic() + 60
        for p in self.procs:
            ok = wait_bounded(p, max(1.0, deadline - time.monotonic()))
            try:
                _, status, ru = os.wait4(p.pid, 0) if ok else (0, -1, None)
            except ChildProcessError:
                status, ru = -1, None
            p.returncode = os.waitstatus_to_exitcode(status) if status != -1 else -1
            exits.append(p.returncode)
            if ru:
                cpu += ru.ru_utime + ru.ru_stime
                rss = max(rss, ru.ru_maxrss / 1024)
        for lf in self.logs:
            lf.close()
        errs = []
        for i in range(self.n):
            with open(os.path.join(self.dir, f"cam{i:02d}", "ffmpeg.log")) as f:
                errs += [line.strip() for line in f if line.strip()]
        return {
            "stop_s": time.monotonic() - t,
            "exit": sorted(set(exits)),
            "clean": all(e in (0, 255) for e in exits),
            "rusage_cpu_s": cpu,
            "maxrss_mib": rss,
            "error_lines": len(errs),
            "log_sample": errs[:5],
        }

    def count(self, fps, gop):
        frames = 0
        missing = 0
        per_cam = []
        nfiles = 0
        for i in range(self.n):
            d = os.path.join(self.dir, f"cam{i:02d}")
            cam_frames = 0
            files = sorted(n for n in os.listdir(d) if n.endswith(".mp4"))
            for k, name in enumerate(files):
                nfiles += 1
                r = subprocess.run(
                    ["ffprobe", "-v", "error", "-select_streams", "v:0",
                     "-show_entries", "packet=flags", "-of", "csv=p=0", os.path.join(d, name)],
                    capture_output=True, text=True, timeout=120)
                flags = [line.strip() for line in r.stdout.splitlines() if line.strip()]
                cam_frames += len(flags)
                # Packets per GOP (keyframe to keyframe). The segment muxer cuts at keyframes,
                # so only the last GOP of the last file may be legitimately short. ffmpeg's own
                # timestamps for RTSP input jitter, so they are not used to find losses.
                sizes = []
                for fl in flags:
                    if fl.startswith("K"):
                        sizes.append(0)
                    if sizes:
                        sizes[-1] += 1
                if k == len(files) - 1 and sizes:
                    sizes.pop()
                missing += sum(max(0, gop - n) for n in sizes)
            frames += cam_frames
            per_cam.append(cam_frames)
        return {
            "cameras_with_video": sum(1 for f in per_cam if f > 0), "frames": frames,
            "timeline_missing": missing, "files": nfiles,
            "bytes_written": dir_bytes(self.dir) - sum(
                os.path.getsize(os.path.join(self.dir, f"cam{i:02d}", "ffmpeg.log")) for i in range(self.n)),
            "per_cam_min": min(per_cam) if per_cam else 0,
            "per_cam_max": max(per_cam) if per_cam else 0,
        }

    def cleanup(self, keep):
        if not keep:
            for i in range(self.n):
                d = os.path.join(self.dir, f"cam{i:02d}")
                for name in os.listdir(d):
                    if name.endswith(".mp4"):
                        os.remove(os.path.join(d, name))


def run_one(rec, server, n, args, clip):
    # A previous run's clients must be gone, or they would be counted as this run's.
    deadline = time.monotonic() + 30
    while server.stats()["clients_now"] > 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    s = server.stats()
    plays_seen = s["plays"]
    play_marks = []  # (frames_sent, bytes_sent) when each client's PLAY was observed
    t_start = time.monotonic()
    load_samples = [loadavg()]
    overflows0 = listen_overflows()
    rec.start()
    startup_limit = 30 + n
    while len(play_marks) < n and time.monotonic() - t_start < startup_limit:
        time.sleep(0.05)
        s = server.stats()
        while s["plays"] > plays_seen and len(play_marks) < n:
            plays_seen += 1
            play_marks.append((s["frames_sent"], s["bytes_sent"]))
        if any(p.poll() is not None for p in rec.procs):
            break
    startup_s = time.monotonic() - t_start
    overflows = listen_overflows() - overflows0
    if len(play_marks) < n:
        log(f"{rec.kind} N={n}: only {len(play_marks)} of {n} clients started playing within {startup_limit} s")
    time.sleep(args.settle)
    pids = rec.pids()
    cpu0 = {pid: proc_cpu_ticks(pid) for pid in pids}
    sys0 = sum(proc_sys_ticks(pid) for pid in pids)
    srv0 = proc_cpu_ticks(server.proc.pid)
    jbd0 = jbd2_ticks()
    th0 = thread_ticks(pids[0]) if rec.kind == "vigil" else {}
    t0 = time.monotonic()
    startup_cpu = sum(v for v in cpu0.values() if v) / CLK_TCK
    while time.monotonic() - t0 < args.duration:
        time.sleep(min(5.0, args.duration - (time.monotonic() - t0)))
        load_samples.append(loadavg())
        if rec.kind == "vigil" and rec.procs[0].poll() is not None:
            log("vigil serve exited during the run")
            break
    # The status query runs before the counters are read, so the server's frame count is read
    # right before the stop signal and the recorders' tail after it stays small.
    status = rec.status_snapshot()
    cpu1 = {pid: proc_cpu_ticks(pid) for pid in pids}
    sys1 = sum(proc_sys_ticks(pid) for pid in pids)
    srv1 = proc_cpu_ticks(server.proc.pid)
    jbd1 = jbd2_ticks()
    th1 = thread_ticks(pids[0]) if rec.kind == "vigil" else {}
    window = time.monotonic() - t0
    hwm = vm_hwm_kib(pids[0])
    s_end = server.stats()
    stop = rec.stop()
    window_cpu = sum((cpu1[p] or 0) - (cpu0[p] or 0) for p in pids if cpu0[p] is not None) / CLK_TCK
    expected_frames = sum(s_end["frames_sent"] - f for f, _ in play_marks)
    expected_bytes = sum(s_end["bytes_sent"] - b for _, b in play_marks)
    counts = rec.count(clip["fps"], args.gop)
    allowance = len(play_marks) * (args.gop - 1)
    shortfall = expected_frames - counts["frames"]
    res = {
        "kind": rec.kind, "n": n, "playing": len(play_marks), "startup_s": startup_s,
        "startup_cpu_s": startup_cpu, "window_s": window, "cpu_s": window_cpu,
        "sys_s": (sys1 - sys0) / CLK_TCK,
        "cpu_s_per_stream_hour": window_cpu / (n * window / 3600),
        "cpu_pct_of_one_core": 100 * window_cpu / window,
        "server_cpu_pct": 100 * ((srv1 or 0) - (srv0 or 0)) / CLK_TCK / window,
        "jbd2_cpu_s": (jbd1 - jbd0) / CLK_TCK, "listen_overflows_at_startup": overflows,
        "expected_frames": expected_frames, "expected_bytes": expected_bytes,
        "allowance": allowance, "shortfall": shortfall,
        "lost_server_count": max(0, shortfall - allowance),
        "load_min": min(load_samples), "load_max": max(load_samples),
        "load_mean": statistics.mean(load_samples),
        "status": status, "stop": stop, **counts,
        "bytes_ratio": counts["bytes_written"] / expected_bytes if expected_bytes else None,
        "vm_hwm_mib": hwm / 1024 if hwm else None,
    }
    if rec.kind == "vigil":
        res["threads"] = group_thread_cpu(th0, th1)
        res["thread_count"] = len(th1)
    return res


def fmt_lost(r):
    t = r["timeline_missing"]
    return f"{r['lost_server_count']} / {'n/a' if t is None else t}"


def table(results):
    lines = [
        "| N | recorder | CPU s/stream-h | ratio V/F | CPU % of 1 core | frames lost (server count / incomplete GOPs) | frames recorded / offered | bytes written / received | load avg |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    by_n = {}
    for r in results:
        by_n.setdefault(r["n"], {})[r["kind"]] = r
    for n, pair in by_n.items():
        v, f = pair.get("vigil"), pair.get("ffmpeg")
        ratio = (v["cpu_s_per_stream_hour"] / f["cpu_s_per_stream_hour"]
                 if v and f and f["cpu_s_per_stream_hour"] > 0 else None)
        for r in (v, f):
            if r is None:
                continue
            lines.append(
                f"| {n} | {r['kind']} | {r['cpu_s_per_stream_hour']:.1f} | "
                f"{(f'{ratio:.2f}' if ratio is not None and r is v else '')} | "
                f"{r['cpu_pct_of_one_core']:.1f} | {fmt_lost(r)} | "
                f"{r['frames']} / {r['expected_frames']} | "
                f"{r['bytes_ratio']:.4f} ({r['bytes_written'] / 1e6:.1f} MB / {r['expected_bytes'] / 1e6:.1f} MB) | "
                f"{r['load_mean']:.1f} ({r['load_min']:.1f}-{r['load_max']:.1f}) |")
    return "\n".join(lines), by_n


def floor_line(by_n, floor):
    parts = []
    for n, pair in by_n.items():
        v, f = pair.get("vigil"), pair.get("ffmpeg")
        if v and f and f["cpu_s_per_stream_hour"] > floor:
            parts.append(f"N={n}: {(v['cpu_s_per_stream_hour'] - floor) / (f['cpu_s_per_stream_hour'] - floor):.2f}")
    return ", ".join(parts) or "n/a"


def verdict(by_n, max_n):
    parts = []
    cpu_ok = True
    for n, pair in by_n.items():
        v, f = pair.get("vigil"), pair.get("ffmpeg")
        if v and f and f["cpu_s_per_stream_hour"] > 0:
            if v["cpu_s_per_stream_hour"] / f["cpu_s_per_stream_hour"] > 0.5:
                cpu_ok = False
        else:
            cpu_ok = False
    parts.append("CPU goal (Vigil <= 0.5x ffmpeg per stream) " + ("MET at every N" if cpu_ok else "MISSED"))
    v = by_n.get(max_n, {}).get("vigil")
    if v:
        ok = (v["lost_server_count"] == 0 and v["timeline_missing"] == 0
              and v["cameras_with_video"] == max_n and v["playing"] == max_n)
        parts.append(f"{max_n} streams without frame loss: " + ("MET" if ok else
                     f"MISSED ({v['lost_server_count']} lost by server count, "
                     f"{v['timeline_missing']} missing in the timeline, "
                     f"{v['cameras_with_video']}/{max_n} cameras recorded)"))
    return "; ".join(parts)


def details(results):
    out = []
    for r in results:
        line = (f"- {r['kind']} N={r['n']}: {r['playing']}/{r['n']} playing after {r['startup_s']:.1f} s, "
                f"start-up CPU {r['startup_cpu_s']:.1f} s, window {r['window_s']:.0f} s, "
                f"window CPU {r['cpu_s']:.2f} s of which kernel {r['sys_s']:.2f} s, "
                f"server CPU {r['server_cpu_pct']:.0f}% of a core, jbd2 CPU {r['jbd2_cpu_s']:.2f} s, "
                f"ListenOverflows during start-up {r['listen_overflows_at_startup']}, "
                f"recorded frames per stream {r['per_cam_min']}-{r['per_cam_max']}, "
                f"shortfall {r['shortfall']} (allowance {r['allowance']}), "
                f"stop {r['stop']['stop_s']:.1f} s clean={r['stop']['clean']}, "
                f"errors in log {r['stop'].get('error_lines', 0)}")
        if r["kind"] == "vigil":
            line += (f", warnings {r['stop']['warn_lines']} (camera sessions ended {r['stop']['sessions_ended']})"
                     f", GOPs with stretched timestamps {r['stretched_gops']}"
                     f", gap rows {r['gap_rows']}, peak RSS {r['vm_hwm_mib'] or 0:.0f} MiB, "
                     f"{r['thread_count']} threads, status {r['status']}")
            th = sorted(r["threads"].items(), key=lambda kv: -kv[1]["cpu_s"])
            line += "; CPU by thread group (user+sys s, context switches/s): " + ", ".join(
                f"{g} x{v['threads']}: {v['user_s']:.2f}+{v['sys_s']:.2f} s, "
                f"{v['ctxsw'] / r['window_s']:.0f}/s" for g, v in th if v["cpu_s"] > 0 or v["ctxsw"])
        else:
            line += f", {r['files']} files, peak RSS per process {r['stop']['maxrss_mib']:.0f} MiB"
        if r["stop"].get("log_sample"):
            line += f"; log: {r['stop']['log_sample'][:2]}"
        out.append(line)
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description="Vigil vs ffmpeg ingest benchmark")
    ap.add_argument("--root", required=True, help="repository root")
    ap.add_argument("--vigil", required=True, help="vigil binary (release build)")
    ap.add_argument("--counts", default="1 16 64")
    ap.add_argument("--duration", type=float, default=60.0, help="measured window per run (s)")
    ap.add_argument("--settle", type=float, default=3.0, help="wait after the last PLAY (s)")
    ap.add_argument("--gop", type=int, default=60, help="keyframe interval of the clip (frames)")
    ap.add_argument("--kbps", type=int, default=4000)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--out", required=True, help="markdown file to write")
    ap.add_argument("--keep", action="store_true", help="keep recorded video")
    ap.add_argument("--given-binary", action="store_true",
                    help="--vigil was given (VIGIL_BIN), not built from this checkout")
    args = ap.parse_args()
    counts = [int(c) for c in args.counts.split()]
    if not counts or any(not 1 <= c <= 256 for c in counts):
        ap.error("--counts must be 1 to 256 streams each, e.g. '1 16 64'")
    if not 5 <= args.duration <= 3600:
        ap.error("--duration must be 5..3600 s")
    if not 1 <= args.gop <= 600:
        ap.error("--gop must be 1..600 frames")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.alarm(int(900 + sum(2 * (args.duration + args.settle + 150 + 2 * c) for c in counts)))

    os.makedirs(args.workdir, exist_ok=True)
    results = []
    server = None
    gb_cost, floor, clip = 0.0, 0.0, {"kbps": args.kbps}
    try:
        gb_cost = page_cache_cost(args.workdir)
        clip_path = make_clip(os.path.join(args.root, "target", "benchclips"), 20, 30, args.gop, args.kbps)
        clip = probe_clip(clip_path)
        log(f"clip {clip_path}: {clip['width']}x{clip['height']} {clip['fps']:.0f} fps "
            f"{clip['kbps']:.0f} kbit/s, {clip['frames']} frames")
        floor = gb_cost * clip["kbps"] * 1000 / 8 * 3600 / 1e9
        log(f"page cache: {gb_cost:.2f} kernel CPU s per GB written -> {floor:.1f} s/stream-h")
        server = Server(args.root, clip_path, os.path.join(args.workdir, "server-stats.json"))
        log(f"RTSP server at {server.url}")
        for i, n in enumerate(counts):
            order = ["ffmpeg", "vigil"] if i % 2 == 0 else ["vigil", "ffmpeg"]
            for kind in order:
                rec = (VigilRecorder(args.vigil, args.workdir, server.url, n) if kind == "vigil"
                       else FfmpegRecorder(args.workdir, server.url, n))
                log(f"{kind} N={n}: recording for {args.duration:.0f} s (+ start-up and settle)")
                r = run_one(rec, server, n, args, clip)
                rec.cleanup(args.keep)
                results.append(r)
                log(f"{kind} N={n}: {r['cpu_s_per_stream_hour']:.1f} CPU s/stream-h, "
                    f"lost {fmt_lost(r)}, bytes ratio {r['bytes_ratio']}, load {r['load_mean']:.1f}")
    except (Deadline, KeyboardInterrupt, RuntimeError, subprocess.SubprocessError, OSError) as e:
        log(f"stopped early: {e}")
    finally:
        signal.alarm(0)
        if server:
            server.stop()
        kill_all_children()

    if not results:
        log("no results")
        return 0
    with open(os.path.join(args.workdir, "results.json"), "w") as f:
        json.dump(results, f, indent=1, default=str)
    tbl, by_n = table(results)
    verdict_line = verdict(by_n, max(counts))
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    source = (f"the given binary {args.vigil} (VIGIL_BIN), not built by this run, so the checkout "
              f"({git_rev(args.root)}) need not be its source" if args.given_binary
              else git_rev(args.root))
    md = f"""## Ingest: Vigil vs ffmpeg, N RTSP streams at once (`bench/ingest/run.sh`)

Run {now} on {os.cpu_count()} cores ({cpu_model()}), {platform.system()} {platform.release()}.
Machine shared with other builds during the run: load average shown per row (mean, min-max).

Parameters: one GStreamer RTSP server (tests/peers/rtsp_server.py, one shared pipeline) looping
a {clip['width']}x{clip['height']} {clip['fps']:.0f} fps H.264 clip at {clip['kbps']:.0f} kbit/s
(GOP {args.gop} frames, no B-frames); N = {' '.join(map(str, counts))}; measured window
{args.duration:.0f} s per run starting {args.settle:.0f} s after the last client's PLAY.
Baseline: N x `ffmpeg -rtsp_transport tcp -i URL -c copy -f segment -segment_time 60
-reset_timestamps 1 out%03d.mp4` (ffmpeg {ffmpeg_version()}). Vigil: release build, default
configuration (60 s segments), run in the same invocation; the order alternates per N.
Vigil source: {source}.

CPU s/stream-h = (utime+stime of the recorder processes over the window) / (N x window hours);
start-up CPU (ffmpeg's probing, Vigil's recovery/connect) is excluded and listed below.
Frames lost: "server count" = frames the server sent from each client's PLAY to the stop, minus
frames recorded, minus an allowance of one GOP ({args.gop - 1} frames) per stream because a
recorder may begin at the first keyframe; "incomplete GOPs" = frames missing from the GOPs
inside each recording (every GOP but the last must hold exactly {args.gop} frames; for Vigil also
whole GOPs missing from the timeline), which needs no allowance. Timestamps are not used for
this: the test server stretches its timeline when starved of CPU, and ffmpeg's RTSP timestamps
jitter. Bytes received = payload the server sent to each
client since its PLAY.

{tbl}

Floor: write()ing into the page cache costs {gb_cost:.2f} kernel CPU s per GB on this machine
(measured at start in 1 MiB writes), i.e. about {floor:.1f} CPU s/stream-h at {clip['kbps']:.0f} kbit/s
for any recorder. Vigil/ffmpeg ratio of the CPU above that floor: {floor_line(by_n, floor)}.

Verdict: {verdict_line}.

Details:
{details(results)}
"""
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(md)
    print(md)
    log(f"wrote {args.out}")
    return 0


def ffmpeg_version():
    try:
        out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, timeout=20).stdout
        return out.split()[2]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
