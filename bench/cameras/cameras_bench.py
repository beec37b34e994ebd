#!/usr/bin/python3
"""Camera fleet benchmark (issue 14): discovery and ONVIF add of many devices, and a bulk
password rotation while cameras record.

Part (a), discovery and add. DEVICES oxvif mock ONVIF devices (crates/testkit example
`onvif_fleet`: an ONVIF device implementation independent of Vigil, WS-Security digest
enforced) listen on 127.0.0.1 .. 127.0.0.DEVICES, each answering WS-Discovery on its own
address at one shared UDP port and serving its device service behind HTTPS (one self-signed
certificate, pinned by fingerprint). Measured, in one invocation:
  * discovery: `vigil camera discover --subnet 127.0.0.0/25 --no-multicast --wait WAIT` until
    it lists every device, against a bare WS-Discovery client in Python (this file) sending the
    same Probe to the same addresses at the same pace and waiting the same WAIT after its last
    probe. Both pay the WAIT; what Vigil does beyond it (process start, store, asking each
    device who it is without credentials, the table) is the difference. Rounds alternate.
  * add: `vigil camera add devNNN --onvif https://… --fingerprint …` of every device, one
    command after another, against a Python ONVIF client (this file: http.client + ssl, the
    certificate pinned, WS-Security PasswordDigest) doing the same exchange per device
    (GetSystemDateAndTime, GetDeviceInformation, GetServices, GetProfiles, two GetStreamUri)
    without storing anything; the two alternate device by device. Vigil's figure includes
    starting a process, opening the store and the audit log and writing both.

Part (b), rotation. DEVICES rotation cameras (tests/peers/rotation_camera.py: one GStreamer
RTSP server with a mount and RTSP Digest user per camera, and per camera an ONVIF service over
HTTPS whose SetUser changes the ONVIF and RTSP passwords at once and closes that camera's RTSP
sessions, `--drop-sessions camera`) are added by ONVIF; STREAMING of them record in `vigil
serve`, the others are disabled (they are rotated all the same). Then `vigil camera
rotate-passwords --all --json` with the installation's rotation_concurrency: total time,
cameras per second, failures, each camera's latency (p50/p95, from the report's started_us
and time_us: its turn to its end) and the peak number of cameras in rotation at once (the
most of those spans open at one instant); then the baseline, the same cameras rotated again
one at a time (rotation_concurrency = 1) with the same recorders running, and the ratios.
For each recording camera of the first run, the frames it lost in a window
around the rotation (from 2 s before it started to 10 s after it ended), counted from the
recording index (frames of every GOP stored in the window against FPS x window), against
the same count over a window of the same length after the rotation (the baseline: what the
same cameras lose when nothing happens). A camera's RTSP session is closed by its SetUser;
the recorder reconnects with the password committed by then.

Only the Python standard library is used. Every child runs in its own process group, dies with
the driver and is killed on exit; every wait is bounded, and the whole run is bounded by an
alarm.
"""

import argparse
import base64
import datetime
import hashlib
import http.client
import json
import os
import re
import select
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
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import (  # noqa: E402
    CLK_TCK, Deadline, children_cpu, cpu_model, free_port, git_rev, kill_all_children, loadavgs,
    loopback_only, make_log, on_alarm, on_term, proc_ticks, spawn, write_secret)

log = make_log("cameras-bench")

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
TDS = "http://www.onvif.org/ver10/device/wsdl"
TRT = "http://www.onvif.org/ver10/media/wsdl"
TR2 = "http://www.onvif.org/ver20/media/wsdl"
TT = "http://www.onvif.org/ver10/schema"
WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSD = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DIGEST = ("http://docs.oasis-open.org/wss/2004/01/"
          "oasis-200401-wss-username-token-profile-1.0#PasswordDigest")
BASE64 = ("http://docs.oasis-open.org/wss/2004/01/"
          "oasis-200401-wss-soap-message-security-1.0#Base64Binary")


# Why a discovery after the adds matches few devices to the cameras added: an artefact of the
# fleet, said in the report.
AS_ADDED_NOTE = (" (an artefact of this fleet, not of Vigil: each device announces itself at "
                 "127.0.0.N but serves its HTTPS on 127.0.0.1 at a port of its own, where it "
                 "was added, and tells its serial only to a logged-in client, so only the "
                 "device at 127.0.0.1 matches an added camera by address)")


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def pct(xs, p):
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


# ----- certificate -----


def self_signed(work):
    """A self-signed P-256 certificate for 127.0.0.1 made by openssl: (cert, key, SHA-256
    fingerprint as AB:CD:…)."""
    cert, key = os.path.join(work, "device.crt"), os.path.join(work, "device.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "30", "-subj", "/CN=camera",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True, timeout=60)
    os.chmod(key, 0o600)
    with open(cert) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    fp = hashlib.sha256(der).hexdigest().upper()
    return cert, key, ":".join(fp[i:i + 2] for i in range(0, len(fp), 2))


# ----- a Vigil installation -----


class Vigil:
    def __init__(self, binary, work, name, concurrency=None):
        self.bin = binary
        self.dir = os.path.join(work, name)
        self.data = os.path.join(self.dir, "data")
        os.makedirs(self.dir, exist_ok=True)
        subprocess.run([binary, "init", "--data-dir", self.data], check=True,
                       capture_output=True, timeout=120)
        self.config = os.path.join(self.data, "vigil.toml")
        with open(self.config) as f:
            text = loopback_only(f.read(), free_port())
        if concurrency:
            old = "rotation_concurrency = 4"
            if old not in text:
                raise RuntimeError(f"vigil.toml layout changed: no '{old}'")
            text = text.replace(old, f"rotation_concurrency = {concurrency}")
        with open(self.config, "w") as f:
            f.write(text)
        m = re.search(r"rotation_concurrency = (\d+)", text)
        self.concurrency = int(m.group(1)) if m else None
        self.serve_proc = None

    def set_concurrency(self, n):
        """Sets [cameras] rotation_concurrency; each `vigil` command reads it when it starts."""
        with open(self.config) as f:
            text = f.read()
        text, found = re.subn(r"rotation_concurrency = \d+", f"rotation_concurrency = {n}", text)
        if found != 1:
            raise RuntimeError("vigil.toml layout changed: no single rotation_concurrency line")
        with open(self.config, "w") as f:
            f.write(text)
        self.concurrency = n

    def cmd(self, *args, timeout=300):
        return subprocess.run([self.bin, "--config", self.config, *args], capture_output=True,
                              text=True, timeout=timeout, env={**os.environ, "VIGIL_LOG": "warn"})

    def ok(self, *args, timeout=300):
        r = self.cmd(*args, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"vigil {' '.join(args[:3])} failed ({r.returncode}): "
                               f"{(r.stdout + r.stderr).strip()[:800]}")
        return r.stdout

    def serve(self):
        out = open(os.path.join(self.dir, "serve.log"), "w")
        self.serve_proc = spawn([self.bin, "--config", self.config, "serve"], die_with_parent=True,
                                stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "VIGIL_LOG": "info"})
        return self.serve_proc

    def stop_serve(self):
        p = self.serve_proc
        if p is None or p.poll() is not None:
            return
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)

    def status(self):
        return {c["name"]: c for c in json.loads(self.ok("camera", "status", "--json"))}


def ready_line(proc, what, limit):
    """The `READY {json}` line a peer prints once it listens, read within `limit` seconds."""
    deadline = time.monotonic() + limit
    buf = b""
    fd = proc.stdout.fileno()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before it was ready")
        r, _, _ = select.select([fd], [], [], 0.5)
        if not r:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            raise RuntimeError(f"{what} closed its output before it was ready")
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.startswith(b"READY "):
                return json.loads(line[6:])
    raise RuntimeError(f"{what} was not ready within {limit} s")


def drain(proc):
    """Reads a peer's further output (SetUser notices) so its pipe never fills."""
    def run():
        try:
            while proc.stdout.read(65536):
                pass
        except (OSError, ValueError):
            pass
    threading.Thread(target=run, daemon=True).start()


def stop_peer(proc):
    try:
        proc.stdin.close()
    except OSError:
        pass
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


# ----- the bare clients (baselines) -----


def probe_message(message_id):
    return (f'<?xml version="1.0" encoding="UTF-8"?>'
            f'<s:Envelope xmlns:s="{SOAP12}" xmlns:a="{WSA}" xmlns:d="{WSD}" '
            f'xmlns:dn="http://www.onvif.org/ver10/network/wsdl">'
            f'<s:Header><a:Action s:mustUnderstand="1">{WSD}/Probe</a:Action>'
            f'<a:MessageID>{message_id}</a:MessageID>'
            f'<a:ReplyTo><a:Address>{WSA}/role/anonymous</a:Address></a:ReplyTo>'
            f'<a:To s:mustUnderstand="1">urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To>'
            f'</s:Header><s:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types>'
            f'</d:Probe></s:Body></s:Envelope>').encode()


def bare_discovery(hosts, port, wait):
    """A WS-Discovery Probe to each host (64 per 10 ms, as Vigil paces them), then answers
    until `wait` seconds after the last probe: (seconds, devices found, seconds until the last
    new device answered)."""
    message_id = f"urn:uuid:{uuid.uuid4()}"
    probe = probe_message(message_id)
    found = {}
    t0 = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)

        def collect(until):
            while True:
                left = until - time.monotonic()
                if left <= 0:
                    return
                r, _, _ = select.select([s], [], [], left)
                if not r:
                    return
                try:
                    data, addr = s.recvfrom(65536)
                except BlockingIOError:
                    continue
                text = data.decode("utf-8", "replace")
                if "ProbeMatches" not in text or message_id not in text:
                    continue
                m = re.search(r"<(?:\w+:)?XAddrs>([^<]+)</", text)
                if m and addr[0] not in found:
                    found[addr[0]] = (m.group(1).split()[0], time.monotonic() - t0)

        for i, h in enumerate(hosts):
            s.sendto(probe, (h, port))
            if i % 64 == 63:
                collect(time.monotonic() + 0.01)
        collect(time.monotonic() + wait)
    last = max((t for _, t in found.values()), default=0.0)
    return time.monotonic() - t0, len(found), last


def security_header(user, password):
    nonce = os.urandom(16)
    created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = base64.b64encode(hashlib.sha1(nonce + created.encode() + password.encode())
                              .digest()).decode()
    return (f'<wsse:Security xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}" s:mustUnderstand="1">'
            f'<wsse:UsernameToken><wsse:Username>{user}</wsse:Username>'
            f'<wsse:Password Type="{DIGEST}">{digest}</wsse:Password>'
            f'<wsse:Nonce EncodingType="{BASE64}">{base64.b64encode(nonce).decode()}</wsse:Nonce>'
            f'<wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security>')


def bare_onvif_add(port, user, password, fingerprint):
    """The ONVIF exchange of an add by ONVIF, by a plain Python client: over HTTPS with the
    certificate pinned, WS-Security digest. Returns the stream URIs read."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # pinned below instead, as Vigil's --fingerprint
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        conn.connect()
        der = conn.sock.getpeercert(binary_form=True)
        if hashlib.sha256(der).hexdigest().upper() != fingerprint.replace(":", ""):
            raise RuntimeError("the device presents another certificate")

        def call(path, action, body, auth=True):
            header = f"<s:Header>{security_header(user, password)}</s:Header>" if auth else ""
            env = (f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{SOAP12}" '
                   f'xmlns:tds="{TDS}" xmlns:trt="{TRT}" xmlns:tr2="{TR2}" xmlns:tt="{TT}">'
                   f'{header}<s:Body>{body}</s:Body></s:Envelope>')
            conn.request("POST", path, env.encode(), {
                "Content-Type": f'application/soap+xml; charset=utf-8; action="{action}"'})
            r = conn.getresponse()
            data = r.read().decode("utf-8", "replace")
            if r.status != 200:
                raise RuntimeError(f"{action.rsplit('/', 1)[-1]}: HTTP {r.status}")
            return data

        device = "/onvif/device_service"
        call(device, f"{TDS}/GetSystemDateAndTime", "<tds:GetSystemDateAndTime/>", auth=False)
        info = call(device, f"{TDS}/GetDeviceInformation", "<tds:GetDeviceInformation/>")
        if "SerialNumber" not in info:
            raise RuntimeError("no serial number")
        services = call(device, f"{TDS}/GetServices", "<tds:GetServices><tds:IncludeCapability>"
                        "false</tds:IncludeCapability></tds:GetServices>")
        xaddrs = dict(re.findall(r"<(?:\w+:)?Namespace>([^<]+)</(?:\w+:)?Namespace>\s*"
                                 r"<(?:\w+:)?XAddr>([^<]+)</", services))
        if TR2 in xaddrs:
            path = urllib.parse.urlsplit(xaddrs[TR2]).path
            profiles = call(path, f"{TR2}/GetProfiles",
                            "<tr2:GetProfiles><tr2:Type>VideoEncoder</tr2:Type></tr2:GetProfiles>")
            tokens = re.findall(r'<(?:\w+:)?Profiles[^>]*token="([^"]+)"', profiles)[:2]
            uris = [call(path, f"{TR2}/GetStreamUri",
                         f"<tr2:GetStreamUri><tr2:Protocol>RTSP</tr2:Protocol>"
                         f"<tr2:ProfileToken>{t}</tr2:ProfileToken></tr2:GetStreamUri>")
                    for t in tokens]
        else:
            path = urllib.parse.urlsplit(xaddrs[TRT]).path
            profiles = call(path, f"{TRT}/GetProfiles", "<trt:GetProfiles/>")
            tokens = re.findall(r'<(?:\w+:)?Profiles[^>]*token="([^"]+)"', profiles)[:2]
            uris = [call(path, f"{TRT}/GetStreamUri",
                         "<trt:GetStreamUri><trt:StreamSetup><tt:Stream>RTP-Unicast</tt:Stream>"
                         "<tt:Transport><tt:Protocol>RTSP</tt:Protocol></tt:Transport>"
                         f"</trt:StreamSetup><trt:ProfileToken>{t}</trt:ProfileToken>"
                         "</trt:GetStreamUri>") for t in tokens]
        if not uris or not all("rtsp://" in u for u in uris):
            raise RuntimeError("no stream URI")
        return len(uris)
    finally:
        conn.close()


# ----- part (a) -----


def part_discovery(args, work, cert, key, fp):
    os.makedirs(work, exist_ok=True)
    pw = os.path.join(work, "fleet.pw")
    write_secret(pw, "Bench-fleet-pw-1\n")
    fleet_log = open(os.path.join(work, "fleet.log"), "w")
    fleet = spawn([args.fleet, str(args.devices), cert, key, pw], die_with_parent=True,
                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=fleet_log)
    info = ready_line(fleet, "the ONVIF device fleet", 120)
    devices, port = info["devices"], info["discovery_port"]
    log(f"{len(devices)} ONVIF devices up (WS-Discovery port {port})")
    v = Vigil(args.vigil, work, "discovery")
    subnet = "127.0.0.0/25" if args.devices <= 126 else "127.0.0.0/24"
    hosts = [f"127.0.0.{i}" for i in range(1, 127 if args.devices <= 126 else 255)]
    out = {"devices": len(devices), "subnet": subnet, "wait": args.wait, "rounds": []}
    for r in range(args.rounds):
        order = ["vigil", "bare"] if r % 2 == 0 else ["bare", "vigil"]
        row = {}
        for who in order:
            if who == "vigil":
                cpu0 = children_cpu()
                t0 = time.monotonic()
                text = v.ok("camera", "discover", "--subnet", subnet, "--no-multicast", "--wait",
                            f"{args.wait}s", "--port", str(port), "--json")
                row["vigil_s"] = time.monotonic() - t0
                row["vigil_cpu_s"] = children_cpu() - cpu0
                row["vigil_found"] = len(json.loads(text))
            else:
                cpu0 = time.process_time()
                secs, n, last = bare_discovery(hosts, port, args.wait)
                row.update(bare_s=secs, bare_found=n, bare_last_answer_s=last,
                           bare_cpu_s=time.process_time() - cpu0)
        log(f"discovery round {r + 1}: Vigil {row['vigil_s']:.2f} s ({row['vigil_found']} found), "
            f"bare {row['bare_s']:.2f} s ({row['bare_found']} found)")
        out["rounds"].append(row)

    # A command that only opens the store and prints: Vigil's floor per command.
    floor = []
    for _ in range(5):
        t0 = time.monotonic()
        v.ok("camera", "list", "--json")
        floor.append(time.monotonic() - t0)
    out["command_floor_s"] = median(floor)

    adds, bare, add_cpu, bare_cpu, failures = [], [], [], [], []
    t_all = time.monotonic()
    for i, d in enumerate(devices):
        cpu0 = children_cpu()
        t0 = time.monotonic()
        r = v.cmd("camera", "add", f"dev{i:03d}", "--onvif", f"https://127.0.0.1:{d['https_port']}",
                  "--username", "admin", "--password-file", pw, "--fingerprint", fp)
        adds.append(time.monotonic() - t0)
        add_cpu.append(children_cpu() - cpu0)
        if r.returncode != 0:
            failures.append(f"dev{i:03d}: {(r.stdout + r.stderr).strip()[:300]}")
        c0 = time.process_time()
        t0 = time.monotonic()
        try:
            bare_onvif_add(d["https_port"], "admin", "Bench-fleet-pw-1", fp)
        except (OSError, RuntimeError, http.client.HTTPException) as e:
            failures.append(f"bare dev{i:03d}: {e}")
        bare.append(time.monotonic() - t0)
        bare_cpu.append(time.process_time() - c0)
    out["add_total_s"] = time.monotonic() - t_all
    listed = json.loads(v.ok("camera", "list", "--json"))
    out.update(add_s=adds, bare_add_s=bare, add_cpu_s=add_cpu, bare_add_cpu_s=bare_cpu,
               add_failures=failures, added=len(listed))
    log(f"added {len(listed)} of {len(devices)} by ONVIF: median {median(adds) * 1000:.0f} ms each "
        f"(bare client {median(bare) * 1000:.1f} ms); {len(failures)} failures")
    # Found again as added.
    text = v.ok("camera", "discover", "--subnet", subnet, "--no-multicast", "--wait",
                f"{args.wait}s", "--port", str(port), "--json")
    out["found_as_added"] = sum(1 for d in json.loads(text) if d.get("added_as"))
    stop_peer(fleet)
    return out


# ----- part (b) -----


def make_clip(clip_dir, seconds, fps, gop):
    os.makedirs(clip_dir, exist_ok=True)
    path = os.path.join(clip_dir, f"h264-{seconds}s-{fps}fps-g{gop}-640x360-800k.mp4")
    if os.path.exists(path):
        return path
    tmp = f"{path}.tmp.{os.getpid()}.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size=640x360:rate={fps}", "-frames:v", str(seconds * fps), "-an",
                    "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "veryfast",
                    "-profile:v", "main", "-g", str(gop), "-keyint_min", str(gop),
                    "-sc_threshold", "0", "-bf", "0", "-b:v", "800k", "-f", "mp4", tmp],
                   check=True, timeout=600)
    os.replace(tmp, path)
    return path


def frames_in(db, camera_id, a_us, b_us):
    """Frames the index holds for `camera_id` in [a_us, b_us): every GOP overlapping the
    window counts with the share of its duration inside it."""
    got = 0.0
    for start, dur, frames in db.execute(
            "SELECT start_us, duration_us, frames FROM gops WHERE camera_id = ? AND start_us < ? "
            "AND start_us + duration_us > ?", (camera_id, b_us, a_us)):
        if dur <= 0:
            continue
        inside = min(b_us, start + dur) - max(a_us, start)
        got += frames * max(0, inside) / dur
    gaps = db.execute("SELECT start_us, end_us, reason FROM gaps WHERE camera_id = ? AND "
                      "start_us < ? AND end_us > ?", (camera_id, b_us, a_us)).fetchall()
    return got, gaps


def wait_recording(v, names, limit):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        st = v.status()
        behind = [n for n in names if st.get(n, {}).get("state") != "recording"]
        if not behind:
            return
        time.sleep(1)
    raise RuntimeError(f"not recording within {limit} s: {behind[:5]}")


def peak_overlap(spans):
    """The most spans (start, end) open at one instant; one ending as another starts does
    not overlap it."""
    edges = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans],
                   key=lambda e: (e[0], e[1]))
    now = peak = 0
    for _, d in edges:
        now += d
        peak = max(peak, now)
    return peak


def rotation_run(v, serve, what):
    """`vigil camera rotate-passwords --all --json` once: wall time, results, each camera's
    latency (from its turn to its end, from the report), how many ran at once, CPU."""
    cpu0, serve0 = children_cpu(), proc_ticks(serve.pid) or 0
    t0 = time.monotonic()
    r = v.cmd("camera", "rotate-passwords", "--all", "--json", timeout=1800)
    total = time.monotonic() - t0
    out = {"concurrency": v.concurrency, "total_s": total, "exit_code": r.returncode,
           "rotate_cli_cpu_s": children_cpu() - cpu0,
           "serve_cpu_during_s": ((proc_ticks(serve.pid) or 0) - serve0) / CLK_TCK,
           "output": r.stdout + r.stderr}
    try:
        report = json.loads(r.stdout)
    except ValueError:
        raise RuntimeError(f"rotate-passwords ({what}) answered no report ({r.returncode}): "
                           f"{(r.stdout + r.stderr)[:800]}")
    results = {}
    for c in report["cameras"]:
        results[c["result"]] = results.get(c["result"], 0) + 1
    spans = [(c["started_us"], c["time_us"]) for c in report["cameras"]]
    latency = [(b - a) / 1e6 for a, b in spans]
    out.update(report=report, results=results, cameras=len(report["cameras"]),
               not_rotated=[f"{c['camera']}: {c['result']} ({c['reason']})"
                            for c in report["cameras"] if c["result"] != "rotated"],
               report_span_s=(report["finished_us"] - report["started_us"]) / 1e6,
               first_done_s=(min(b for _, b in spans) - report["started_us"]) / 1e6
               if spans else None,
               latency_s=latency, latency_p50_s=pct(latency, 50), latency_p95_s=pct(latency, 95),
               latency_max_s=max(latency, default=float("nan")),
               peak_concurrency=peak_overlap(spans))
    log(f"rotation ({what}, concurrency {v.concurrency}): {total:.1f} s, results {results}, "
        f"latency p50 {out['latency_p50_s']:.2f} s p95 {out['latency_p95_s']:.2f} s, "
        f"peak {out['peak_concurrency']} at once")
    return out


def part_rotation(args, work, cert, key, fp):
    os.makedirs(work, exist_ok=True)
    clip = make_clip(os.path.join(os.path.dirname(work), "bench-clips"), 20, args.fps, args.gop)
    n = args.devices
    names = [f"rcam{i:03d}" for i in range(n)]
    initial = {name: f"Rot-initial-{i:03d}x" for i, name in enumerate(names)}
    state = os.path.join(work, "rotation-state.json")
    cmd = ["/usr/bin/python3", os.path.join(args.root, "tests/peers/rotation_camera.py"),
           "--clip", clip, "--tls-cert", cert, "--tls-key", key, "--state-file", state,
           "--drop-sessions", "camera"]
    for i, name in enumerate(names):
        cmd += ["--camera", f"{name}:ruser{i:03d}:{initial[name]}"]
    peer_log = open(os.path.join(work, "rotation-cameras.log"), "w")
    peer = spawn(cmd, die_with_parent=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                 stderr=peer_log)
    ready = ready_line(peer, "the rotation cameras", 180)
    drain(peer)
    ports = ready["onvif_ports"]
    log(f"{n} rotation cameras up (RTSP port {ready['rtsp_port']})")
    v = Vigil(args.vigil, work, "rotation", args.concurrency)
    t0 = time.monotonic()
    for i, name in enumerate(names):
        pw = os.path.join(v.dir, f"{name}.pw")
        write_secret(pw, initial[name] + "\n")
        v.ok("camera", "add", name, "--onvif", f"https://127.0.0.1:{ports[name]}", "--username",
             f"ruser{i:03d}", "--password-file", pw, "--fingerprint", fp)
        os.remove(pw)
        if i >= args.streaming:
            v.ok("camera", "disable", name)
    out = {"cameras": n, "streaming": args.streaming, "concurrency": v.concurrency,
           "fps": args.fps, "gop": args.gop, "add_total_s": time.monotonic() - t0}
    streaming = names[:args.streaming]
    serve = v.serve()
    wait_recording(v, streaming, 180)
    log(f"{len(streaming)} cameras recording; settling {args.settle} s")
    time.sleep(args.settle)

    start_us = time.time_ns() // 1000
    main = rotation_run(v, serve, "default bound")
    end_us = time.time_ns() // 1000
    report_doc = main.pop("report")
    out["run"] = main

    # Windows: the rotation's, then one of the same length after it (the baseline).
    a, b = start_us - 2_000_000, end_us + 10_000_000
    a2, b2 = b + 5_000_000, b + 5_000_000 + (b - a)
    wait_until = b2 / 1e6 + args.gop / args.fps + 4
    while time.time() < wait_until:
        time.sleep(0.5)
    db = sqlite3.connect(f"file:{os.path.join(v.data, 'vigil.db')}?mode=ro", uri=True, timeout=10)
    ids = {name: cid for cid, name in db.execute("SELECT id, name FROM cameras WHERE main_id IS NULL")}
    per = []
    for name in streaming:
        got, gaps = frames_in(db, ids[name], a, b)
        got2, gaps2 = frames_in(db, ids[name], a2, b2)
        expected = (b - a) / 1e6 * args.fps
        when = next((c["time_us"] for c in report_doc["cameras"] if c["camera"] == name), None)
        per.append({"camera": name, "expected": expected, "recorded": got,
                    "lost": max(0.0, expected - got), "gaps": len(gaps),
                    "gap_reasons": sorted({g[2] for g in gaps}),
                    "baseline_recorded": got2, "baseline_lost": max(0.0, expected - got2),
                    "baseline_gaps": len(gaps2),
                    "rotated_at_s": (when - start_us) / 1e6 if when else None})
    db.close()
    out.update(window_s=(b - a) / 1e6, per_camera=per)

    # The baseline: the same cameras rotated again, one at a time (rotation_concurrency = 1),
    # with the same recorders running. One at a time is the least any bound can load a camera
    # or Vigil, so each camera's latency there is the floor, and the ratio shows what the
    # default bound buys in wall time and what sharing two cores costs each camera.
    v.set_concurrency(1)
    serial = rotation_run(v, serve, "one at a time")
    serial.pop("report")
    out["serial"] = serial
    # The last cameras of the serial run were rotated a moment ago: their recorders are
    # logging in again. How many record again, and how soon (bounded).
    t0 = time.monotonic()
    while True:
        st = v.status()
        back = sum(1 for nm in streaming if st.get(nm, {}).get("state") == "recording")
        if back == len(streaming) or time.monotonic() - t0 > 60:
            break
        time.sleep(0.5)
    out["recording_after"] = back
    out["recording_again_s"] = time.monotonic() - t0
    with open(state) as f:
        cams = json.load(f)["cameras"]
    out["setuser_calls"] = sum(c["setuser_calls"] for c in cams.values())
    out["changed_on_camera"] = sum(1 for nm, c in cams.items() if c["password"] != initial[nm])
    log_text = ""
    v.stop_serve()
    with open(os.path.join(v.dir, "serve.log")) as f:
        log_text = f.read()
    said = main.pop("output") + serial.pop("output")
    out["password_in_log"] = any(p in log_text or p in said
                                 for p in list(initial.values()) +
                                 [c["password"] for c in cams.values()])
    stop_peer(peer)
    return out


# ----- report -----


def report(args, disc, rot, started, loads):
    lines = ["# Camera fleet benchmark (issue 14)", "",
             f"`bash bench/cameras/run.sh` — {started} UTC, {git_rev(args.root)}"
             f"{' (binary given by VIGIL_BIN, may not match the checkout)' if args.given_binary else ''}, "
             f"{cpu_model()}, {os.cpu_count()} cores, load {loads[0]:.1f} at the start and "
             f"{loadavgs()[0]:.1f} at the end.", "",
             "Everything runs on this machine over loopback: oxvif mock ONVIF devices "
             "(crates/testkit example `onvif_fleet`) and rotation cameras "
             "(tests/peers/rotation_camera.py: GStreamer RTSP server + an ONVIF service per "
             "camera). How each figure is measured is in bench/cameras/cameras_bench.py.", ""]
    if disc:
        rounds = disc["rounds"]
        vs = [r["vigil_s"] for r in rounds]
        bs = [r["bare_s"] for r in rounds]
        lines += ["## Discovery and add by ONVIF", "",
                  f"{disc['devices']} devices on 127.0.0.1–127.0.0.{disc['devices']}, "
                  f"`vigil camera discover --subnet {disc['subnet']} --no-multicast --wait "
                  f"{disc['wait']}s` against a bare Python WS-Discovery client probing the same "
                  f"addresses at the same pace with the same wait ({len(rounds)} rounds, "
                  "alternating). Why this baseline: it is the protocol's floor, the same UDP "
                  "probes and the same wait with nothing else; a TCP connect sweep would not "
                  "do the same work (WS-Discovery is UDP, and an open port says nothing of an "
                  "ONVIF device), so its ratio would not say what Vigil adds.", "",
                  "| round | Vigil s | found | Vigil CPU s | bare s | found | last answer s | Vigil / bare |",
                  "|---|---|---|---|---|---|---|---|"]
        for i, r in enumerate(rounds, 1):
            lines.append(f"| {i} | {r['vigil_s']:.2f} | {r['vigil_found']} | {r['vigil_cpu_s']:.2f} | "
                         f"{r['bare_s']:.2f} | {r['bare_found']} | {r['bare_last_answer_s']:.3f} | "
                         f"{r['vigil_s'] / r['bare_s']:.2f} |")
        lines += ["", f"Median: Vigil **{median(vs):.2f} s** to list {disc['devices']} devices, the "
                  f"bare client {median(bs):.2f} s: **{median(vs) / median(bs):.2f} ×**. Both wait "
                  f"{disc['wait']} s after the last probe; the bare client heard the last device "
                  f"{median([r['bare_last_answer_s'] for r in rounds]) * 1000:.0f} ms after its first "
                  f"probe. Vigil's extra {median(vs) - median(bs):.2f} s is its process and store "
                  f"(a `vigil camera list` takes {disc['command_floor_s'] * 1000:.0f} ms) and asking "
                  "each device who it is without credentials (these devices refuse it, so their "
                  "scopes name them).", ""]
        a, ba = disc["add_s"], disc["bare_add_s"]
        lines += [f"Add by ONVIF of all {disc['devices']} (`vigil camera add devNNN --onvif "
                  "https://… --fingerprint …`, one after another) against a bare Python ONVIF "
                  "client doing the same exchange per device (GetSystemDateAndTime, "
                  "GetDeviceInformation, GetServices, GetProfiles, two GetStreamUri over pinned "
                  "HTTPS with WS-Security digest), device by device alternating:", "",
                  "| | median ms | p95 ms | max ms | CPU ms per device (median) |",
                  "|---|---|---|---|---|",
                  f"| `vigil camera add --onvif` | {median(a) * 1000:.0f} | {pct(a, 95) * 1000:.0f} | "
                  f"{max(a) * 1000:.0f} | {median(disc['add_cpu_s']) * 1000:.0f} |",
                  f"| bare Python client | {median(ba) * 1000:.1f} | {pct(ba, 95) * 1000:.1f} | "
                  f"{max(ba) * 1000:.1f} | {median(disc['bare_add_cpu_s']) * 1000:.1f} |",
                  f"| `vigil camera list` (a command's floor) | {disc['command_floor_s'] * 1000:.0f} | | | |",
                  "",
                  f"{disc['added']} of {disc['devices']} added ({len(disc['add_failures'])} failures), "
                  f"all {disc['devices']} in {sum(a):.1f} s of Vigil commands "
                  f"({disc['add_total_s']:.1f} s with the bare client's turns); a discovery "
                  f"afterwards lists {disc['found_as_added']} of them as added"
                  f"{AS_ADDED_NOTE if disc['found_as_added'] < disc['added'] else ''}. Per device Vigil "
                  f"takes **{median(a) / median(ba):.1f} ×** the bare exchange; "
                  f"{disc['command_floor_s'] / median(a) * 100:.0f} % of a Vigil add is what any "
                  "`vigil` command costs (process start, opening the store); the rest is the "
                  "exchange itself with Vigil's checks, the audit log entries (fsync) and the "
                  "store.", ""]
        if disc["add_failures"]:
            lines += ["Failures:", ""] + [f"- {f}" for f in disc["add_failures"][:10]] + [""]
    if rot:
        per = rot["per_camera"]
        lost = [p["lost"] for p in per]
        base = [p["baseline_lost"] for p in per]
        n = rot["cameras"]
        m, s1 = rot["run"], rot["serial"]

        def ms(x):
            return f"{x * 1000:.0f}"

        def results(r):
            return ", ".join(f"{k} {v}" for k, v in sorted(r["results"].items()))

        lines += ["## Bulk password rotation", "",
                  f"{n} rotation cameras added by ONVIF ({rot['add_total_s']:.0f} s), {rot['streaming']} "
                  f"of them recording (640x360 H.264, {rot['fps']} fps, a GOP of {rot['gop']} frames = "
                  f"{rot['gop'] / rot['fps']:.1f} s), the rest disabled (rotated all the same). "
                  f"`vigil camera rotate-passwords --all --json` with the default bound "
                  f"(rotation_concurrency = {m['concurrency']}), then, as the baseline, the same "
                  "cameras again one at a time (rotation_concurrency = 1) with the same recorders "
                  "running. One at a time is the least a rotation can load a camera or Vigil: its "
                  "per-camera latency is the floor, so the ratios say what the bound buys in wall "
                  "time and what sharing two cores costs each camera. A camera's latency is from "
                  "its turn (a concurrency slot) to its end: pending password stored (fsync), "
                  "GetUsers and SetUser with the old password, the new one proven by "
                  "GetDeviceInformation and an RTSP DESCRIBE, committed (fsync); from the "
                  "report's `started_us`/`time_us`. Peak concurrency is the most of those spans "
                  "open at one instant.", "",
                  f"| | default bound ({m['concurrency']}) | one at a time | ratio |",
                  "|---|---|---|---|",
                  f"| wall time (the command) | **{m['total_s']:.1f} s** | {s1['total_s']:.1f} s | "
                  f"**{m['total_s'] / s1['total_s']:.2f}** |",
                  f"| cameras per second | {n / m['total_s']:.2f} | {n / s1['total_s']:.2f} | "
                  f"{s1['total_s'] / m['total_s']:.2f} |",
                  f"| per-camera latency p50 ms | {ms(m['latency_p50_s'])} | {ms(s1['latency_p50_s'])} | "
                  f"{m['latency_p50_s'] / s1['latency_p50_s']:.2f} |",
                  f"| per-camera latency p95 ms | {ms(m['latency_p95_s'])} | {ms(s1['latency_p95_s'])} | "
                  f"{m['latency_p95_s'] / s1['latency_p95_s']:.2f} |",
                  f"| per-camera latency max ms | {ms(m['latency_max_s'])} | {ms(s1['latency_max_s'])} | |",
                  f"| peak concurrency (cameras at once) | {m['peak_concurrency']} | {s1['peak_concurrency']} | |",
                  f"| first camera done after | {m['first_done_s']:.2f} s | {s1['first_done_s']:.2f} s | |",
                  f"| results (exit code) | {results(m)} ({m['exit_code']}) | {results(s1)} ({s1['exit_code']}) | |",
                  f"| failures | **{n - m['results'].get('rotated', 0)}** | {n - s1['results'].get('rotated', 0)} | |",
                  f"| CPU: the rotate command / `vigil serve` meanwhile | {m['rotate_cli_cpu_s']:.1f} s / "
                  f"{m['serve_cpu_during_s']:.1f} s | {s1['rotate_cli_cpu_s']:.1f} s / "
                  f"{s1['serve_cpu_during_s']:.1f} s | |",
                  "",
                  f"SetUser calls the cameras saw over both runs: {rot['setuser_calls']} (2 × {n}); "
                  f"passwords changed on the cameras: {rot['changed_on_camera']} of {n}; recording "
                  f"cameras recording after the second run: {rot['recording_after']} of "
                  f"{rot['streaming']} (within {rot['recording_again_s']:.1f} s of its end, 60 s "
                  "allowed); a "
                  f"password in the serve log or the commands' output: "
                  f"{'YES' if rot['password_in_log'] else 'no'}.", "",
                  f"Frames lost per recording camera in the window of the first (default-bound) "
                  f"run ({rot['window_s']:.0f} s: 2 s before the command to 10 s after it), from "
                  "the recording index, and in a window of the same length after it (baseline):", "",
                  "| camera | rotated at s | expected | recorded | lost | lost GOPs | gaps | baseline lost |",
                  "|---|---|---|---|---|---|---|---|"]
        for p in per:
            at = f"{p['rotated_at_s']:.1f}" if p["rotated_at_s"] is not None else "-"
            lines.append(f"| {p['camera']} | {at} | {p['expected']:.0f} | {p['recorded']:.0f} | "
                         f"{p['lost']:.0f} | {p['lost'] / rot['gop']:.2f} | {p['gaps']} | "
                         f"{p['baseline_lost']:.0f} |")
        if per:
            within = sum(1 for x in lost if x <= rot["gop"] + 0.5)
            lines += ["", f"Frames lost per camera: median **{median(lost):.0f}**, max "
                      f"**{max(lost):.0f}** ({max(lost) / rot['gop']:.2f} GOPs); baseline median "
                      f"{median(base):.0f}, max {max(base):.0f}. {within} of {len(per)} cameras lost "
                      f"at most one GOP ({rot['gop']} frames). Gap reasons: "
                      f"{', '.join(sorted({r for p in per for r in p['gap_reasons']})) or 'none'}.", ""]
        for what, r in (("default bound", m), ("one at a time", s1)):
            if r["not_rotated"]:
                lines += [f"Not rotated ({what}):", ""] + [f"- {x}" for x in r["not_rotated"][:20]] + [""]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--vigil", required=True)
    ap.add_argument("--fleet", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--streaming", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--wait", type=float, default=1.0)
    ap.add_argument("--concurrency", type=int)
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--gop", type=int, default=50)
    ap.add_argument("--settle", type=int, default=10)
    ap.add_argument("--parts", default="discovery rotation")
    ap.add_argument("--out", required=True)
    ap.add_argument("--given-binary", action="store_true")
    ap.add_argument("--limit", type=int, default=3600, help="overall time limit, seconds")
    args = ap.parse_args()
    if not 1 <= args.devices <= 250 or not 0 <= args.streaming <= args.devices:
        ap.error("DEVICES 1-250, STREAMING 0-DEVICES")
    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.alarm(args.limit)
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    loads = loadavgs()
    disc = rot = None
    try:
        cert, key, fp = self_signed(args.workdir)
        if "discovery" in args.parts:
            disc = part_discovery(args, os.path.join(args.workdir, "a"), cert, key, fp)
        if "rotation" in args.parts:
            rot = part_rotation(args, os.path.join(args.workdir, "b"), cert, key, fp)
    except (Deadline, KeyboardInterrupt, RuntimeError, subprocess.SubprocessError, OSError) as e:
        log(f"stopped: {e}")
        kill_all_children()
        if disc is None and rot is None:
            return 1
    finally:
        kill_all_children()
    text = report(args, disc, rot, started, loads)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)
    with open(os.path.join(args.workdir, "results.json"), "w") as f:
        json.dump({"discovery": disc, "rotation": rot}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
