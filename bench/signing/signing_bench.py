#!/usr/bin/python3
"""Driver of bench/signing/run.sh: CPU cost of signing recordings as they are written.

Each run is a fresh data directory with N cameras on the same RTSP mount (one GStreamer
server, every client gets the same frames) and one `vigil serve`; "off" runs set
VIGIL_BENCH_UNSIGNED=1, which makes the recorder skip the ledger entirely. CPU is utime+stime
of the serve process over a steady window that starts SETTLE s after every camera records. Runs
alternate on/off (the order flips every round) so slow drifts of a shared machine hit both. The
overhead is reported per GB stored (CPU per byte written; both modes store the same streams)
and as raw CPU, each as the ratio of the medians over rounds and the median of per-round ratios.
Signed runs are checked with `vigil verify` so the benchmark measures signing that works.
"""

import argparse
import datetime
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "ingest"))
sys.path.insert(0, os.path.join(here, ".."))
sys.path.insert(0, here)
import ingest_bench as ib  # noqa: E402  (clip, RTSP server)
from common import CLK_TCK, cpu_model, kill_all_children, make_log, proc_ticks, spawn  # noqa: E402
from report import replace_section  # noqa: E402

log = make_log("signing-bench")


def run_cmd(cmd, timeout=60, check=True):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
    return r


def one_run(a, url, mode, k):
    d = os.path.join(a.work, "runs", f"{mode}-{k}")
    shutil.rmtree(d, ignore_errors=True)
    cfg = os.path.join(d, "vigil.toml")
    run_cmd([a.vigil, "init", "--data-dir", d])
    for i in range(a.streams):
        run_cmd([a.vigil, "--config", cfg, "camera", "add", f"cam{i:02d}", "--url", url])
    env = dict(os.environ, VIGIL_LOG="warn")
    if mode == "off":
        env["VIGIL_BENCH_UNSIGNED"] = "1"
    logf = open(os.path.join(d, "serve.log"), "w")
    p = spawn([a.vigil, "--config", cfg, "serve"], stdout=logf, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 90
    while True:
        rows = json.loads(run_cmd([a.vigil, "--config", cfg, "camera", "status", "--json"]).stdout)
        if sum(1 for r in rows if r.get("state") == "recording") == a.streams:
            break
        if time.monotonic() > deadline or p.poll() is not None:
            raise RuntimeError(f"not all {a.streams} cameras recording: {rows}")
        time.sleep(0.5)
    time.sleep(a.settle)
    video = os.path.join(d, "video")
    b0, c0, t0 = ib.dir_bytes(video), proc_ticks(p.pid), time.monotonic()
    time.sleep(a.duration)
    b1, c1, t1 = ib.dir_bytes(video), proc_ticks(p.pid), time.monotonic()
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        raise RuntimeError("vigil serve did not stop within 90 s")
    logf.close()
    text = open(os.path.join(d, "serve.log")).read()
    if "Stopped cleanly" not in text:
        raise RuntimeError(f"serve did not stop cleanly: {text[-2000:]}")
    ledger_dir = os.path.join(d, "ledger")
    ledgers = [f for f in os.listdir(ledger_dir)] if os.path.isdir(ledger_dir) else []
    ledger_bytes = sum(os.path.getsize(os.path.join(ledger_dir, f)) for f in ledgers)
    video_total = ib.dir_bytes(video)
    if mode == "on":
        r = run_cmd([a.vigil, "--config", cfg, "verify", "cam00"], timeout=300, check=False)
        if r.returncode != 0:
            raise RuntimeError(f"signed run does not verify: {r.stdout}{r.stderr}")
        if len(ledgers) != a.streams:
            raise RuntimeError(f"{len(ledgers)} ledgers for {a.streams} cameras")
    elif ledgers:
        raise RuntimeError(f"unsigned run wrote ledgers: {ledgers}")
    res = {
        "mode": mode, "round": k, "cpu_s": (c1 - c0) / CLK_TCK, "wall_s": t1 - t0,
        "bytes": b1 - b0, "ledger_bytes": ledger_bytes, "video_total": video_total, "load": open("/proc/loadavg").read().split()[0],
    }
    res["cpu_per_gb"] = res["cpu_s"] / max(res["bytes"], 1) * 1e9
    log(f"{mode:3s} round {k}: cpu {res['cpu_s']:.2f} s over {res['wall_s']:.1f} s, "
        f"{res['bytes'] / 1e6:.0f} MB stored, {res['cpu_per_gb']:.3f} cpu-s/GB, load {res['load']}")
    shutil.rmtree(d, ignore_errors=True)
    return res


def main():
    ap = argparse.ArgumentParser()
    for arg in ("--root", "--vigil", "--work", "--out"):
        ap.add_argument(arg, required=True)
    ap.add_argument("--streams", type=int, default=16)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--settle", type=float, default=5)
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda s, f: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        clip = ib.make_clip(os.path.join(a.work, "clips"), 30, 30, 60, 4000)
        info = ib.probe_clip(clip)
        server = ib.Server(a.root, clip, os.path.join(a.work, "server-stats.json"))
        log(f"RTSP server {server.url}, clip {info['width']}x{info['height']} {info['fps']:.0f} fps "
            f"{info['kbps']:.0f} kbit/s")
        runs = []
        for k in range(1, a.rounds + 1):
            for mode in (("on", "off") if k % 2 else ("off", "on")):
                runs.append(one_run(a, server.url, mode, k))
        server.stop()
    finally:
        kill_all_children()

    def pick(mode, key):
        return [r[key] for r in runs if r["mode"] == mode]

    per_gb = {m: statistics.median(pick(m, "cpu_per_gb")) for m in ("on", "off")}
    raw = {m: statistics.median(pick(m, "cpu_s")) for m in ("on", "off")}
    paired = [on["cpu_per_gb"] / off["cpu_per_gb"] - 1
              for on in runs if on["mode"] == "on"
              for off in runs if off["mode"] == "off" and off["round"] == on["round"]]
    over_gb = per_gb["on"] / per_gb["off"] - 1
    over_raw = raw["on"] / raw["off"] - 1
    over_paired = statistics.median(paired)
    verdict = "MET" if over_gb < 0.01 else "MISSED"
    spread = (max(pick("off", "cpu_per_gb")) - min(pick("off", "cpu_per_gb"))) / per_gb["off"]
    log(f"signing overhead: {over_gb * 100:+.2f}% CPU per GB (medians), {over_paired * 100:+.2f}% "
        f"(median of paired rounds), {over_raw * 100:+.2f}% raw CPU; off-run spread {spread * 100:.1f}%; "
        f"goal < 1%: {verdict}")

    ledger_per_run = statistics.median(pick("on", "ledger_bytes"))
    video_per_run = statistics.median(pick("on", "video_total"))
    rows = "\n".join(
        f"| {r['round']} | {r['mode']} | {r['cpu_s']:.2f} | {r['wall_s']:.1f} | {r['bytes'] / 1e6:.0f} | "
        f"{r['cpu_per_gb']:.3f} | {r['load']} |" for r in runs)
    load = open("/proc/loadavg").read().split()[:3]
    body = f"""Run {datetime.datetime.now().astimezone().isoformat(timespec='seconds')} on {cpu_model()},
{os.cpu_count()} cores, load average {' '.join(load)} at the end (a shared machine).
`bench/signing/run.sh`: {a.streams} cameras on one GStreamer RTSP server looping a
{info['width']}x{info['height']} {info['fps']:.0f} fps {info['kbps']:.0f} kbit/s H.264 clip (2 s GOPs),
`vigil serve` (release) measured for {a.duration:.0f} s per run after every camera records,
signing on vs off (`VIGIL_BENCH_UNSIGNED=1`), {a.rounds} rounds alternating the order. CPU =
utime+stime of the serve process. Every signed run passed `vigil verify`.

| round | signing | CPU s | window s | MB stored | CPU s per GB stored | load |
|---|---|---|---|---|---|---|
{rows}

Signing overhead: **{over_gb * 100:+.2f}%** CPU per GB stored (ratio of medians),
{over_paired * 100:+.2f}% (median of per-round pairs), {over_raw * 100:+.2f}% raw CPU. The
spread between the "off" runs alone is {spread * 100:.1f}%, so differences below that are noise;
the serve process uses {raw['off'] / a.duration * 100:.1f}% of one core here, so 1% of it is
{raw['off'] * 0.01 * CLK_TCK:.1f} clock ticks of /proc CPU time per run.
Ledger size: {ledger_per_run / 1e6:.2f} MB for {video_per_run / 1e6:.0f} MB of video per signed run
({ledger_per_run / max(video_per_run, 1) * 100:.3f}%, {a.streams} ledgers). Goal "under 1% extra CPU": **{verdict}**.
"""
    replace_section(a.out, "signing", "Signing cost while recording", body)
    log(f"wrote {a.out}")


if __name__ == "__main__":
    main()
