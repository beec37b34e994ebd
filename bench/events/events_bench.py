#!/usr/bin/python3
"""Driver of bench/events/run.sh: Vigil's events role against Debian's rsyslog.

Part 1, ingest (issue goal: Vigil >= 1.0 x rsyslog): one Python load generator sends the same
RFC 5425 stream (octet-counted RFC 5424 and Cisco-style RFC 3164 messages from 16 "switches",
10 % 802.1X failures, 10 % links going down, the rest other switch lines) over CONNS mutually
authenticated TLS connections (client certificate issued by the installation's CA) to

- `vigil serve` with `[events] syslog_tls` (client certificate required) and five `[[rules]]`
  evaluated for every event (two fire on 20 % of the stream, raise alarms and publish
  `alarm.rule_matched`; a regex, a text and a source rule never fire), and
- rsyslogd (imtcp with the `ossl` and/or `gtls` stream driver, the same server certificate and
  CA, `x509/name` client authentication) writing every message, parsed, as a JSON line to a file.

Time runs from the first byte sent (after the TLS handshakes) until an outside reader sees all N
messages stored: Vigil's `events.db` read-only (rows of source kind `syslog` after the round's
first id, counted incrementally), rsyslog's output file (lines). Both are polled every 10 ms.
Rounds alternate the receivers; each receiver's best round counts, and the per-round ratios are
reported. For Vigil the time until the rules' outputs for every matching event are stored is
reported too.

Part 2, event -> alarm latency (goal p99 < 50 ms): LAT_COUNT 802.1X failures, one at a time over
one TLS connection, each from a new switch host name (so each raises a new alarm rather than
counting into an open one), the next one LAT_INTERVAL after the previous alarm arrived. The
observable is the API's events WebSocket (`GET /api/v1/events/live`, admin API token):
the time from just before `sendall` of the syslog frame to the arrival of the `alarm.raised`
event naming that switch; the arrivals of the stored syslog event and of `alarm.rule_matched`
on the same socket give the breakdown. Repeated with background syslog traffic (LAT_BG rates,
messages that no rule fires on, over another connection).

Part 3, SIEM forwarding (goal >= 1.0 x rsyslog): a second Vigil installation with one
`[[siem.collectors]]` (an rsyslog collector over TLS, Vigil's client certificate required) gets
SIEM_MESSAGES warning-level syslog lines over syslog_tls and forwards them; the baseline is an
rsyslog relay receiving the same stream over TLS and forwarding it with omfwd over TLS
(octet-counted) to the same collector. Time: first byte sent until the collector's file holds
every message of the round (counted by a per-round marker).

Part 4, cameras (issue goal: 0 frames lost while 10,000 events/s arrive): a third installation
records CAM_COUNT cameras from one GStreamer RTSP server (bench/ingest's 1080p30 4 Mbit/s clip,
server and frame counting, imported from bench/ingest/ingest_bench.py), CAM_PHASE s alone (A)
and CAM_PHASE s while a paced sender delivers CAM_RATE syslog messages/s over TLS (B). Per
phase: frames the server sent vs recorded, frames lost (vigil.db's GOPs that start inside the
phase), gap rows, Vigil CPU by thread role, events stored and dropped, and Vigil CPU B / A.

Nothing listens beyond loopback; every child is killed however the driver ends; SIGALRM bounds
the whole run.
"""

import argparse
import base64
import datetime
import json
import os
import random
import re
import signal
import socket
import sqlite3
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from statistics import median

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import (  # noqa: E402
    wait_port,
    CLK_TCK, Deadline, admin_token, cpu_model, free_port, git_rev, kill_all_children, loadavgs,
    loopback_only, make_log, on_alarm, on_term, proc_ticks, run, spawn, threads, write_secret)

# Part 4 records cameras as bench/ingest does: its clip, RTSP server, frame counting and thread
# grouping.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ingest"))
import ingest_bench  # noqa: E402

log = make_log("events")
ADMIN_PASSWORD = "bench-Events-4k9w-Harbour"
CLIENT_CN = "bench-sender"
SIEM_CN = "vigil-hq"
POLL = 0.01
SWITCHES = 16
RSYSLOG_DRIVERS = "/usr/lib/x86_64-linux-gnu/rsyslog"

RULES = r'''
# bench/events: evaluated for every event of the stream.
[[rules]]
name = "port-security"
kinds = ["syslog.dot1x_failure", "syslog.mab_failure", "syslog.port_security_violation"]
min_severity = "warning"
alarm = { priority = 2 }
siem = true

[[rules]]
name = "link-down"
kinds = ["syslog.link_down"]
alarm = { priority = 4 }
siem = true

[[rules]]
name = "hardware"
source_kinds = ["syslog"]
regex = '(?i)(kernel panic|fan (tray )?failure|power supply \d+ (failed|removed))'
alarm = { priority = 1 }

[[rules]]
name = "duplicate-address"
kinds = ["syslog."]
text = "duplicate address"
alarm = { priority = 3 }

[[rules]]
name = "core-switch"
sources = ["core-1", "core-2"]
min_severity = "error"
alarm = { priority = 2 }
'''


def pidfile():
    return os.environ.get("BENCH_PIDFILE")


def start(cmd, **kw):
    return spawn(cmd, die_with_parent=True, pidfile=pidfile(), **kw)


def stop_proc(p, limit=15):
    if p is None or p.poll() is not None:
        return
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def pct(xs, q):
    """The q-quantile (0..1) of xs by the nearest-rank method."""
    s = sorted(xs)
    if not s:
        return float("nan")
    k = max(0, min(len(s) - 1, int(-(-q * len(s) // 1)) - 1))
    return s[k]


# ---------------------------------------------------------------- messages

CISCO_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def rfc5424_ts(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def cisco_ts(t):
    d = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    return f"{CISCO_MONTHS[d.month - 1]} {d.day:2d} {d:%H:%M:%S}.{d.microsecond // 1000:03d} UTC"


def mac(i):
    return f"0050.56{(i >> 16) & 0xff:02x}.{i & 0xffff:04x}"


def ingest_message(i, t, tag):
    """Message i of the ingest stream (bytes, without framing) and what it becomes in Vigil:
    'dot1x', 'link_down' or 'other'. tag makes the round's messages distinct."""
    sw = f"sw-{i % SWITCHES:02d}"
    port = i % 48 + 1
    kind = i % 10
    if kind == 3:
        text = (f"%DOT1X-5-FAIL: Authentication failed for client ({mac(i)}) on Interface "
                f"Gi1/0/{port} AuditSessionID 0A0A1401{i:016X}")
        what, sev = "dot1x", 5
    elif kind == 7:
        text = f"%LINK-3-UPDOWN: Interface GigabitEthernet1/0/{port}, changed state to down"
        what, sev = "link_down", 3
    else:
        text = [
            f"%SYS-5-CONFIG_I: Configured from console by netops on vty0 (10.20.{i % 250}.{port})",
            f"%SEC_LOGIN-5-LOGIN_SUCCESS: Login Success [user: netops] [Source: 10.20.{i % 250}.{port}] [localport: 22]",
            f"%LINEPROTO-5-UPDOWN: Line protocol on Interface Vlan{100 + i % 50}, changed state to up",
            f"%SW_MATM-4-MACFLAP_NOTIF: Host {mac(i)} in vlan {100 + i % 50} is flapping between port Gi1/0/{port} and port Gi1/0/{48 - port + 1}",
            f"%CDP-4-NATIVE_VLAN_MISMATCH: Native VLAN mismatch discovered on GigabitEthernet1/0/{port} (1), with sw-core GigabitEthernet2/0/{port} (100)",
            f"%DHCP_SNOOPING-5-DHCP_SNOOPING_UNTRUSTED_PORT: DHCP_SNOOPING drop message on untrusted port, message type: DHCPOFFER, MAC sa: {mac(i)}",
            f"%SSH-5-SSH2_SESSION: SSH2 Session request from 10.20.{i % 250}.{port} (tty = 0) using crypto cipher 'aes256-ctr', hmac 'hmac-sha2-256' Succeeded",
            f"%ILPOWER-5-POWER_GRANTED: Interface Gi1/0/{port}: Power granted",
        ][(i // 10) % 8]
        what, sev = "other", 5 if kind % 2 else 6
    pri = 23 * 8 + sev  # local7
    if i % 3 == 0:
        # Cisco IOS with `service timestamps log datetime msec show-timezone year` style.
        line = f"<{pri}>{i}: {sw}: {cisco_ts(t)}: {text} [{tag}]"
    else:
        line = (f"<{pri}>1 {rfc5424_ts(t)} {sw}.example.net ios - - "
                f"[meta sequenceId=\"{i}\"] {text} [{tag}]")
    return line.encode(), what


def frame(msg):
    return str(len(msg)).encode() + b" " + msg


def build_stream(n, conns, tag, t, make=ingest_message):
    """n messages split round-robin over conns connections: ([bytes per connection], counts of
    what they become)."""
    parts = [[] for _ in range(conns)]
    counts = {}
    size = 0
    for i in range(n):
        m, what = make(i, t, tag)
        counts[what] = counts.get(what, 0) + 1
        f = frame(m)
        size += len(f)
        parts[i % conns].append(f)
    return [b"".join(p) for p in parts], counts, size


# ---------------------------------------------------------------- TLS client


class Tls:
    def __init__(self, ca, cert, key):
        self.ctx = ssl.create_default_context(cafile=ca)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.check_hostname = True

    def connect(self, port, src="127.0.0.1"):
        s = socket.socket()
        s.bind((src, 0))
        s.connect(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t = self.ctx.wrap_socket(s, server_hostname="localhost")
        return t


def close_tls(t):
    """close_notify, a short wait for the peer's, then close (no RST with unread tickets)."""
    try:
        t.settimeout(1.0)
        t.unwrap().close()
    except (OSError, ValueError, ssl.SSLError):
        pass
    try:
        t.close()
    except OSError:
        pass


def blast(tls, port, buffers):
    """Opens one TLS connection per buffer, then sends every buffer at once (one thread each).
    Returns (wall time of the first byte, wall time all were written, the open connections,
    negotiated version and cipher)."""
    conns = [tls.connect(port) for _ in buffers]
    params = f"{conns[0].version()} {conns[0].cipher()[0]}"
    barrier = threading.Barrier(len(conns) + 1)
    errors = []

    def send(c, data):
        barrier.wait()
        try:
            view = memoryview(data)
            for off in range(0, len(view), 256 * 1024):
                c.sendall(view[off:off + 256 * 1024])
        except OSError as e:
            errors.append(e)

    threads = [threading.Thread(target=send, args=(c, d), daemon=True) for c, d in zip(conns, buffers)]
    for th in threads:
        th.start()
    t0 = time.time()
    barrier.wait()
    for th in threads:
        th.join()
    t_written = time.time()
    if errors:
        raise RuntimeError(f"sending failed: {errors[0]}")
    return t0, t_written, conns, params


# ---------------------------------------------------------------- Vigil


class Vigil:
    def __init__(self, a, name):
        self.a = a
        self.work = os.path.join(a.work, name)
        os.makedirs(self.work, mode=0o700, exist_ok=True)
        self.data = os.path.join(self.work, "data")
        self.config = os.path.join(self.work, "vigil.toml")
        pw = os.path.join(self.work, "admin.pw")
        write_secret(pw, ADMIN_PASSWORD + "\n")
        run([a.vigil, "--config", self.config, "init", "--data-dir", self.data,
             "--admin-password-file", pw])
        self.api_port = free_port()
        text = loopback_only(open(self.config).read(), self.api_port)
        text = self.events_section(text)
        text += RULES
        open(self.config, "w").write(text)
        m = re.search(r'syslog_tls = \{ bind = "127\.0\.0\.1:(\d+)" \}', text)
        if not m:
            raise RuntimeError("no loopback syslog_tls listener in vigil.toml")
        self.syslog_port = int(m.group(1))
        self.ca = os.path.join(self.data, "pki", "ca.crt")
        self.proc = None

    def events_section(self, text):
        head, sep, rest = text.partition("\n[events]\n")
        if not sep:
            raise RuntimeError("vigil.toml has no [events] section")
        ev, sep2, tail = rest.partition("\n[siem]\n")
        subs = [("enabled = false", "enabled = true"),
                ("require_client_cert = false", "require_client_cert = true")]
        for old, new in subs:
            if old not in ev:
                raise RuntimeError(f"[events] of vigil.toml has no '{old}'")
            ev = ev.replace(old, new, 1)
        ev, n1 = re.subn(r"\nrate_per_source = \d+\n", f"\nrate_per_source = {self.a.rate}\n", ev)
        ev, n2 = re.subn(r"\nburst = \d+\n", f"\nburst = {self.a.burst}\n", ev)
        if n1 != 1 or n2 != 1:
            raise RuntimeError("[events.limits] of vigil.toml has no rate_per_source / burst")
        return head + sep + ev + sep2 + tail

    def sign(self, cn):
        """A key and a certificate for `cn` from the installation's CA (`vigil pki sign-csr`)."""
        key = os.path.join(self.work, f"{cn}.key")
        csr = os.path.join(self.work, f"{cn}.csr")
        crt = os.path.join(self.work, f"{cn}.crt")
        run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", key, "-subj", f"/CN={cn}", "-out", csr])
        os.chmod(key, 0o600)
        run([self.a.vigil, "--config", self.config, "pki", "sign-csr", csr, "--days", "2", "-o", crt])
        return crt, key

    def server_pem(self):
        """Vigil's generated server certificate and a 0600 copy of its key, for rsyslog."""
        crt = os.path.join(self.data, "pki", "server.crt")
        key = os.path.join(self.work, "server-key.pem")
        write_secret(key, run(["openssl", "pkey", "-in", os.path.join(self.data, "pki", "server.key")]))
        return crt, key

    def start(self):
        logf = open(os.path.join(self.work, "serve.log"), "w")
        env = dict(os.environ, VIGIL_LOG="warn")
        self.proc = start([self.a.vigil, "--config", self.config, "serve"], stdout=logf,
                          stderr=subprocess.STDOUT, env=env)
        wait_port(self.api_port, self.proc, "vigil serve (API)")
        # The line serve prints once the listener is up (a bare TCP probe would be reported
        # as a failed TLS handshake).
        want = f"Events (syslog_tls) listening on 127.0.0.1:{self.syslog_port}"
        deadline = time.monotonic() + 30
        while want not in open(os.path.join(self.work, "serve.log")).read():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"vigil serve did not print '{want}'")
            time.sleep(0.05)
        self.db = sqlite3.connect(f"file:{os.path.join(self.data, 'events.db')}?mode=ro", uri=True,
                                  timeout=5, check_same_thread=False)

    def stop(self):
        stop_proc(self.proc)

    def cpu(self):
        return (proc_ticks(self.proc.pid) or 0) / CLK_TCK

    def thread_cpu(self):
        """{thread name: user+system seconds} of the live threads (names summed)."""
        out = {}
        for _, name, u, st in threads(self.proc.pid):
            out[name] = out.get(name, 0) + (u + st) / CLK_TCK
        return out

    def max_id(self):
        return self.db.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]

    def count_kinds(self, after, upto):
        """{kind or source kind: count} of the events with after < id <= upto."""
        out = {}
        for sk, kind, n in self.db.execute(
                "SELECT source_kind, kind, count(*) FROM events WHERE id > ? AND id <= ? "
                "GROUP BY source_kind, kind", (after, upto)):
            out[kind] = out.get(kind, 0) + n
            if sk == "syslog":
                out["<syslog>"] = out.get("<syslog>", 0) + n
        return out

    def alarm_counts(self):
        return dict(self.db.execute("SELECT rule, sum(count) FROM alarms GROUP BY rule").fetchall())

    def wait_stored(self, start_id, n, matches, t0, stall=5.0):
        """Polls until n syslog events and `matches` alarm.rule_matched events after start_id
        are stored. Returns the figures; stops waiting when nothing new arrives for `stall`
        seconds."""
        seen = {}
        last = start_id
        t_syslog = t_rules = None
        progress = time.monotonic()
        while True:
            m = self.max_id()
            now = time.time()
            if m > last:
                for k, v in self.count_kinds(last, m).items():
                    seen[k] = seen.get(k, 0) + v
                last = m
                progress = time.monotonic()
            if t_syslog is None and seen.get("<syslog>", 0) >= n:
                t_syslog = now
            if t_rules is None and seen.get("alarm.rule_matched", 0) >= matches:
                t_rules = now
            if t_syslog is not None and t_rules is not None:
                break
            if time.monotonic() - progress > stall:
                break
            time.sleep(POLL)
        last_rx = self.db.execute(
            "SELECT max(received_us) FROM events WHERE id > ? AND source_kind = 'syslog'",
            (start_id,)).fetchone()[0]
        lost = {}
        for kind, attrs in self.db.execute(
                "SELECT kind, attributes FROM events WHERE id > ? "
                "AND kind IN ('events.dropped', 'rules.dropped')", (start_id,)):
            lost[kind] = lost.get(kind, 0) + int(json.loads(attrs).get("count", "0"))
        return {"stored": seen.get("<syslog>", 0), "matched": seen.get("alarm.rule_matched", 0),
                "t_syslog": t_syslog, "t_rules": t_rules, "kinds": seen, "last_id": last,
                "last_received": last_rx / 1e6 if last_rx else None,
                "events_dropped": lost.get("events.dropped", 0),
                "rules_dropped": lost.get("rules.dropped", 0)}

    def wait_idle(self, limit=60.0, quiet=1.0):
        """Until no event was stored for `quiet` seconds."""
        deadline = time.monotonic() + limit
        last, since = self.max_id(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            m = self.max_id()
            if m != last:
                last, since = m, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
        log(f"warning: Vigil still storing events after {limit:.0f} s")

    def dropped_totals(self):
        """Sums of the `count` attribute of events.dropped and rules.dropped so far."""
        out = {}
        for kind, attrs in self.db.execute(
                "SELECT kind, attributes FROM events WHERE kind IN ('events.dropped', 'rules.dropped')"):
            out[kind] = out.get(kind, 0) + int(json.loads(attrs).get("count", "0"))
        return out


# ---------------------------------------------------------------- rsyslog

RSYSLOG_TEMPLATE = r'''template(name="fields" type="list" option.jsonf="on") {
  property(outname="pri" name="pri" format="jsonf")
  property(outname="timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="hostname" name="hostname" format="jsonf")
  property(outname="app_name" name="app-name" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="structured_data" name="structured-data" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
}
'''


class Rsyslog:
    """rsyslogd -n with its own configuration, work directory and port on loopback."""

    def __init__(self, a, name, driver, ca, cert, key, peers, ruleset):
        self.a = a
        self.name = name
        self.driver = driver
        self.dir = os.path.join(a.work, name)
        os.makedirs(os.path.join(self.dir, "work"), exist_ok=True)
        self.port = free_port()
        self.out = os.path.join(self.dir, "received.log")
        plist = ", ".join(f'"{p}"' for p in peers)
        conf = f'''# bench/events: {name}
global(
  workDirectory="{self.dir}/work"
  maxMessageSize="64k"
  defaultNetstreamDriverCAFile="{ca}"
  defaultNetstreamDriverCertFile="{cert}"
  defaultNetstreamDriverKeyFile="{key}"
)
module(load="imtcp")
# TLS and client authentication on the input itself.
input(type="imtcp" address="127.0.0.1" port="{self.port}" ruleset="bench"
  StreamDriver.Name="{driver}" StreamDriver.Mode="1" StreamDriver.AuthMode="x509/name"
  PermittedPeer=[{plist}])
{RSYSLOG_TEMPLATE}
template(name="line" type="string" string="%msgid% %msg%\\n")
ruleset(name="bench") {{
{ruleset.format(out=self.out, driver=driver)}
}}
'''
        self.conf = os.path.join(self.dir, "rsyslog.conf")
        open(self.conf, "w").write(conf)
        r = subprocess.run(["rsyslogd", "-N1", "-f", self.conf], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"rsyslog refuses {self.conf}: {r.stderr.strip()[:800]}")
        self.proc = None

    def start(self):
        logf = open(os.path.join(self.dir, "rsyslogd.log"), "w")
        self.proc = start(["rsyslogd", "-n", "-f", self.conf, "-i", os.path.join(self.dir, "rsyslogd.pid")],
                          stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_port(self.port, self.proc, f"rsyslogd ({self.name})")

    def stop(self):
        stop_proc(self.proc)

    def cpu(self):
        return (proc_ticks(self.proc.pid) or 0) / CLK_TCK

    def size(self):
        try:
            return os.path.getsize(self.out)
        except OSError:
            return 0


class FileCounter:
    """Counts the lines (or the lines holding `needle`) appended to a file since the counter
    was made; a line still being written counts once it is complete."""

    def __init__(self, path, needle=None):
        self.path = path
        self.needle = needle
        try:
            self.off = os.path.getsize(path)
        except OSError:
            self.off = 0
        self.count = 0
        self.rest = b""

    def poll(self):
        try:
            size = os.path.getsize(self.path)
        except OSError:
            return False
        if size <= self.off:
            return False
        with open(self.path, "rb") as f:
            f.seek(self.off)
            data = f.read(size - self.off)
        self.off += len(data)
        buf = self.rest + data
        cut = buf.rfind(b"\n") + 1
        done, self.rest = buf[:cut], buf[cut:]
        self.count += done.count(self.needle) if self.needle else done.count(b"\n")
        return True


def wait_file(counter, n, stall=20.0):
    """Polls until counter.count >= n. Returns the wall time it was seen (or None) and the
    file's modification time then."""
    progress = time.monotonic()
    while True:
        if counter.poll():
            progress = time.monotonic()
        if counter.count >= n:
            return time.time(), os.stat(counter.path).st_mtime_ns / 1e9
        if time.monotonic() - progress > stall:
            return None, None
        time.sleep(POLL)


# ---------------------------------------------------------------- WebSocket (RFC 6455), minimal


class EventSocket:
    """The API's events WebSocket, read on a thread: every message's arrival time
    (time.monotonic) and JSON."""

    def __init__(self, port, ca, token, kinds):
        ctx = ssl.create_default_context(cafile=ca)
        raw = socket.create_connection(("127.0.0.1", port))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.s = ctx.wrap_socket(raw, server_hostname="localhost")
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall((f"GET /api/v1/events/live?kind={','.join(kinds)} HTTP/1.1\r\n"
                        f"Host: localhost:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                        f"Authorization: Bearer {token}\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            d = self.s.recv(4096)
            if not d:
                raise RuntimeError("the events WebSocket closed during the handshake")
            self.buf += d
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(f"events WebSocket refused: {head[:300]!r}")
        self.lock = threading.Lock()
        self.handlers = []
        self.closed = False
        self.thread = threading.Thread(target=self.reader, daemon=True)
        self.thread.start()

    def _read(self, n):
        while len(self.buf) < n:
            d = self.s.recv(65536)
            if not d:
                raise EOFError
            self.buf += d
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send(self, opcode, payload):
        mask = os.urandom(4)
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        with self.lock:
            self.s.sendall(head + mask + masked)

    def reader(self):
        parts = b""
        try:
            while True:
                b0, b1 = self._read(2)
                n = b1 & 0x7F
                if n == 126:
                    n = struct.unpack(">H", self._read(2))[0]
                elif n == 127:
                    n = struct.unpack(">Q", self._read(8))[0]
                if b1 & 0x80:
                    mask = self._read(4)
                    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(self._read(n)))
                else:
                    payload = self._read(n)
                op = b0 & 0x0F
                if op == 9:
                    self._send(10, payload)
                    continue
                if op == 8:
                    break
                if op in (0, 1):
                    parts += payload
                    if b0 & 0x80:
                        t = time.monotonic()
                        try:
                            msg = json.loads(parts)
                        except ValueError:
                            msg = {"type": "text", "text": parts.decode(errors="replace")}
                        parts = b""
                        for h in list(self.handlers):
                            h(t, msg)
        except (EOFError, OSError, ValueError):
            pass
        self.closed = True

    def close(self):
        try:
            self._send(8, struct.pack(">H", 1000))
        except OSError:
            pass
        try:
            self.s.close()
        except OSError:
            pass


# ---------------------------------------------------------------- the bench


class Bench:
    def __init__(self, a):
        self.a = a
        self.results = {}
        self.notes = []

    # ---- part 1
    def setup(self):
        """The installation parts 1 and 2 use, its client certificate, and the rsyslogs."""
        a = self.a
        v = Vigil(a, "vigil-ingest")
        self.vigil = v
        ccrt, ckey = v.sign(CLIENT_CN)
        scrt, skey = v.server_pem()
        self.tls = Tls(v.ca, ccrt, ckey)
        v.start()
        self.vigil_ssl = None
        rs = {}
        for d in a.drivers:
            r = Rsyslog(a, f"rsyslog-{d}", d, v.ca, scrt, skey, [CLIENT_CN],
                        '  action(type="omfile" file="{out}" template="fields")')
            r.start()
            rs[d] = r
        self.rsyslogs = rs

    def ingest(self):
        a = self.a
        v, rs = self.vigil, self.rsyslogs
        receivers = ["vigil"] + [f"rsyslog-{d}" for d in a.drivers]
        res = {k: [] for k in receivers}
        alarms_before = v.alarm_counts()
        v.wait_idle()
        expected = None
        for rnd in range(a.rounds):
            order = receivers if rnd % 2 == 0 else list(reversed(receivers))
            for name in order:
                tag = f"r{rnd}{name[:2]}{random.randrange(1 << 30):08x}"
                buffers, counts, size = build_stream(a.messages, a.conns, tag, time.time())
                expected = counts
                matches = counts.get("dot1x", 0) + counts.get("link_down", 0)
                load0 = loadavgs()[0]
                if name == "vigil":
                    v.wait_idle()
                    start_id = v.max_id()
                    c0, th0 = v.cpu(), v.thread_cpu()
                    t0, tw, conns, params = blast(self.tls, v.syslog_port, buffers)
                    got = v.wait_stored(start_id, a.messages, matches, t0)
                    cpu = v.cpu() - c0
                    th1 = v.thread_cpu()
                    th = {k: th1[k] - th0.get(k, 0) for k in th1}
                    self.vigil_ssl = params
                    x = {"t0": t0, "written": tw - t0, "stored": got["stored"], "matched": got["matched"],
                         "expected_matches": matches,
                         "elapsed": (got["t_syslog"] - t0) if got["t_syslog"] else None,
                         "elapsed_rules": (got["t_rules"] - t0) if got["t_rules"] else None,
                         "elapsed_last_received": (got["last_received"] - t0) if got["last_received"] else None,
                         "cpu": cpu, "kinds": got["kinds"], "events_dropped": got["events_dropped"],
                         "rules_dropped": got["rules_dropped"], "params": params, "threads": th}
                else:
                    r = rs[name.split("-", 1)[1]]
                    counter = FileCounter(r.out)
                    c0 = r.cpu()
                    t0, tw, conns, params = blast(self.tls, r.port, buffers)
                    seen, mtime = wait_file(counter, a.messages)
                    cpu = r.cpu() - c0
                    x = {"t0": t0, "written": tw - t0, "stored": counter.count,
                         "elapsed": (seen - t0) if seen else None,
                         "elapsed_mtime": (mtime - t0) if mtime else None, "cpu": cpu, "params": params}
                for c in conns:
                    close_tls(c)
                x["bytes"] = size
                x["load"] = (load0, loadavgs()[0])
                x["rate"] = a.messages / x["elapsed"] if x["elapsed"] else None
                res[name].append(x)
                extra = ""
                if name == "vigil":
                    extra = (f", rules done {fmt_s(x['elapsed_rules'])} ({x['matched']}/{matches} matches), "
                             f"dropped: events {x['events_dropped']}, rules {x['rules_dropped']}")
                log(f"ingest round {rnd + 1} {name:13s}: {x['stored']}/{a.messages} stored in "
                    f"{fmt_s(x['elapsed'])} = {fmt_rate(x['rate'])} msg/s, written by the client in "
                    f"{x['written']:.2f} s, CPU {x['cpu']:.2f} s ({params}){extra}")
        v.wait_idle()
        self.results["ingest"] = {"rounds": res, "expected": expected,
                                  "alarms_before": alarms_before, "alarms_after": v.alarm_counts(),
                                  "dropped_totals": v.dropped_totals()}

    # ---- part 2
    def latency(self):
        a = self.a
        v = self.vigil
        token = admin_token(a.vigil, v.config)
        ws = EventSocket(v.api_port, v.ca, token, ["syslog.dot1x_failure", "alarm.raised", "alarm.rule_matched"])
        arrivals = {}
        cond = threading.Condition()

        def on_msg(t, msg):
            if msg.get("type") != "event":
                if msg.get("type") == "missed":
                    log(f"events WebSocket: missed {msg.get('count')}")
                return
            kind = msg["kind"]
            attrs = msg.get("attributes", {})
            if kind == "alarm.raised":
                host = attrs.get("alarm_source")
            elif kind == "alarm.rule_matched":
                host = attrs.get("event_source")
            else:
                host = msg.get("source")
            with cond:
                arrivals.setdefault(host, {})[kind] = t
                cond.notify_all()

        ws.handlers.append(on_msg)
        out = {}
        try:
            for bg in a.lat_bg:
                v.wait_idle()
                out[bg] = self.latency_run(v, ws, arrivals, cond, bg)
        finally:
            ws.close()
        self.results["latency"] = out

    def latency_run(self, v, ws, arrivals, cond, bg):
        a = self.a
        stop = threading.Event()
        bg_sent = [0]
        bg_thread = None
        if bg > 0:
            def background():
                c = self.tls.connect(v.syslog_port, src="127.0.0.2")
                per_tick = max(1, bg // 100)
                i = 0
                nxt = time.monotonic()
                while not stop.is_set():
                    batch = []
                    for _ in range(per_tick):
                        text = (f"%SYS-5-CONFIG_I: Configured from console by netops on vty0 "
                                f"(10.30.{i % 250}.{i % 200}) bg {i}")
                        m = f"<189>1 {rfc5424_ts(time.time())} bg-{i % SWITCHES:02d} ios - - - {text}".encode()
                        batch.append(frame(m))
                        i += 1
                    c.sendall(b"".join(batch))
                    bg_sent[0] = i
                    nxt += 0.01
                    d = nxt - time.monotonic()
                    if d > 0:
                        time.sleep(d)
                    elif d < -1:
                        nxt = time.monotonic()
                close_tls(c)

            bg_thread = threading.Thread(target=background, daemon=True)
            bg_thread.start()
            time.sleep(2.0)  # let the background reach its rate
        c = self.tls.connect(v.syslog_port)
        run_id = f"{random.randrange(1 << 24):06x}"
        samples = []
        missing = 0
        t_start = time.monotonic()
        c0 = v.cpu()
        for i in range(a.lat_count):
            host = f"lat-{run_id}-{i:04d}"
            msg = (f"<189>1 {rfc5424_ts(time.time())} {host} ios - - - %DOT1X-5-FAIL: Authentication "
                   f"failed for client ({mac(i)}) on Interface Gi1/0/{i % 48 + 1} AuditSessionID "
                   f"0A0A1401{i:016X}").encode()
            data = frame(msg)
            ts = time.monotonic()
            c.sendall(data)
            deadline = ts + a.lat_timeout
            with cond:
                while "alarm.raised" not in arrivals.get(host, {}) and time.monotonic() < deadline:
                    cond.wait(max(0.0, deadline - time.monotonic()))
                got = dict(arrivals.get(host, {}))
            if "alarm.raised" not in got:
                missing += 1
            else:
                samples.append({k: (t - ts) * 1000 for k, t in got.items()})
            time.sleep(a.lat_interval)
        wall = time.monotonic() - t_start
        cpu = v.cpu() - c0
        # Late arrivals of the last ones (rule_matched after alarm.raised).
        time.sleep(0.3)
        stop.set()
        if bg_thread:
            bg_thread.join(timeout=10)
        close_tls(c)
        alarm = [s["alarm.raised"] for s in samples]
        stored = [s["syslog.dot1x_failure"] for s in samples if "syslog.dot1x_failure" in s]
        matched = [s["alarm.rule_matched"] for s in samples if "alarm.rule_matched" in s]
        r = {"n": len(samples), "missing": missing, "bg": bg,
             "bg_rate": bg_sent[0] / (wall + 2.0) if bg else 0, "wall": wall, "cpu": cpu,
             "load": loadavgs()[0]}
        for name, xs in (("alarm", alarm), ("stored", stored), ("matched", matched)):
            r[name] = {"p50": pct(xs, 0.5), "p90": pct(xs, 0.9), "p99": pct(xs, 0.99),
                       "max": max(xs) if xs else float("nan"), "n": len(xs)}
        log(f"latency (background {bg}/s): n={r['n']} missing={missing}: alarm.raised p50 "
            f"{r['alarm']['p50']:.1f} p90 {r['alarm']['p90']:.1f} p99 {r['alarm']['p99']:.1f} max "
            f"{r['alarm']['max']:.1f} ms; syslog event stored p50 {r['stored']['p50']:.1f} p99 "
            f"{r['stored']['p99']:.1f} ms")
        return r

    # ---- part 3
    def siem(self):
        a = self.a
        # The collector: rsyslog with a Vigil-CA certificate, admitting Vigil's SIEM client
        # certificate (CN vigil-hq) and the relay's (its server certificate, CN localhost).
        v = self.vigil
        # Parts 1 and 2 are done: only the first installation's files are needed from here.
        v.stop()
        for r in self.rsyslogs.values():
            r.stop()
        scrt, skey = v.server_pem()
        driver = a.drivers[0]
        coll = Rsyslog(a, "rsyslog-collector", driver, v.ca, scrt, skey, [SIEM_CN, "localhost"],
                       '  action(type="omfile" file="{out}" template="line")')
        coll.start()
        self.collector = coll
        # The second installation, forwarding to the collector.
        vs = Vigil(a, "vigil-siem")
        # Vigil's SIEM client certificate and the collector's CA: from the first installation.
        siem_crt, siem_key = v.sign(SIEM_CN)
        text = open(vs.config).read()
        text += f'''
[[siem.collectors]]
name = "bench"
target = "127.0.0.1:{coll.port}"
server_name = "localhost"
ca_file = "{v.ca}"
client_cert_file = "{siem_crt}"
client_key_file = "{siem_key}"
'''
        open(vs.config, "w").write(text)
        ccrt, ckey = vs.sign(CLIENT_CN)
        vtls = Tls(vs.ca, ccrt, ckey)
        vs.start()
        self.vigil_siem = vs
        relay = Rsyslog(a, f"rsyslog-relay-{driver}", driver, v.ca, scrt, skey, [CLIENT_CN],
                        '  action(type="omfwd" target="127.0.0.1" port="' + str(coll.port) + '" protocol="tcp"\n'
                        '    StreamDriver="{driver}" StreamDriverMode="1" StreamDriverAuthMode="x509/name"\n'
                        '    StreamDriverPermittedPeers="localhost" TCP_Framing="octet-counted"\n'
                        '    template="RSYSLOG_SyslogProtocol23Format")')
        relay.start()
        self.relay = relay
        n = a.siem_messages

        def siem_message(i, t, tag):
            text = [f"%SW_MATM-4-MACFLAP_NOTIF: Host {mac(i)} in vlan {100 + i % 50} is flapping between port Gi1/0/{i % 48 + 1} and port Gi1/0/{48 - i % 48}",
                    f"%CDP-4-NATIVE_VLAN_MISMATCH: Native VLAN mismatch discovered on GigabitEthernet1/0/{i % 48 + 1} (1), with sw-core GigabitEthernet2/0/1 (100)",
                    f"%STORM_CONTROL-3-FILTERED: A packet storm was detected on Gi1/0/{i % 48 + 1}. A packet filter action has been applied on the interface."][i % 3]
            sev = 3 if i % 3 == 2 else 4
            m = (f"<{23 * 8 + sev}>1 {rfc5424_ts(t)} sw-{i % SWITCHES:02d}.example.net ios - - "
                 f"[meta sequenceId=\"{i}\"] {text} {tag}")
            return m.encode(), "other"

        res = {"vigil": [], "rsyslog": []}
        vtls_ctx = {"vigil": (vtls, vs.syslog_port), "rsyslog": (self.tls, relay.port)}
        # A first message through each path, so connections are up before timing.
        for name in ("vigil", "rsyslog"):
            tls, port = vtls_ctx[name]
            tag = f"W{name[:2]}{random.randrange(1 << 30):08x}X"
            buffers, _, _ = build_stream(10, 1, tag, time.time(), siem_message)
            counter = FileCounter(coll.out, tag.encode())
            _, _, conns, _ = blast(tls, port, buffers)
            seen, _ = wait_file(counter, 10, stall=30)
            for c in conns:
                close_tls(c)
            if seen is None:
                raise RuntimeError(f"SIEM warm-up through {name} did not reach the collector")
        for rnd in range(a.rounds):
            order = ["vigil", "rsyslog"] if rnd % 2 == 0 else ["rsyslog", "vigil"]
            for name in order:
                tag = f"S{rnd}{name[:2]}{random.randrange(1 << 30):08x}X"
                buffers, _, size = build_stream(n, a.conns, tag, time.time(), siem_message)
                tls, port = vtls_ctx[name]
                counter = FileCounter(coll.out, tag.encode())
                proc_cpu = vs.cpu if name == "vigil" else relay.cpu
                c0, k0 = proc_cpu(), coll.cpu()
                t0, tw, conns, params = blast(tls, port, buffers)
                seen, mtime = wait_file(counter, n)
                x = {"elapsed": (seen - t0) if seen else None, "got": counter.count,
                     "cpu": proc_cpu() - c0, "collector_cpu": coll.cpu() - k0,
                     "written": tw - t0, "params": params, "bytes": size}
                for c in conns:
                    close_tls(c)
                x["rate"] = n / x["elapsed"] if x["elapsed"] else None
                res[name].append(x)
                log(f"siem round {rnd + 1} {name:7s}: {x['got']}/{n} at the collector in "
                    f"{fmt_s(x['elapsed'])} = {fmt_rate(x['rate'])} msg/s, relay CPU {x['cpu']:.2f} s, "
                    f"collector CPU {x['collector_cpu']:.2f} s")
        self.results["siem"] = res

    # ---- part 4
    def cameras(self):
        """16 cameras recording from one GStreamer RTSP server, then the same while a paced
        sender delivers CAM_RATE syslog messages/s over TLS: frames lost per phase."""
        a = self.a
        # The other parts' processes are not needed any more (they would only add load).
        self.stop_all()
        clip_path = ingest_bench.make_clip(a.clips, 20, 30, CAM_GOP, CAM_KBPS)
        clip = ingest_bench.probe_clip(clip_path)
        log(f"clip {os.path.basename(clip_path)}: {clip['width']}x{clip['height']} "
            f"{clip['fps']:.0f} fps {clip['kbps']:.0f} kbit/s")
        work = os.path.join(a.work, "cameras")
        os.makedirs(work, exist_ok=True)
        srv = ingest_bench.Server(a.root, clip_path, os.path.join(work, "rtsp-stats.json"))
        self.rtsp = srv
        if pidfile():
            with open(pidfile(), "a") as f:
                f.write(f"{srv.proc.pid}\n")
        log(f"RTSP server (pid {srv.proc.pid}) at {srv.url}")
        v = Vigil(a, "vigil-cameras")
        for i in range(a.cam_count):
            run([a.vigil, "--config", v.config, "camera", "add", f"cam{i:02d}", "--url", srv.url])
        m = re.search(r'\n\[metrics\]\n(?:[^\[]*\n)*?bind = "127\.0\.0\.1:(\d+)"', open(v.config).read())
        metrics_port = int(m.group(1)) if m else None
        ccrt, ckey = v.sign(CLIENT_CN)
        tls = Tls(v.ca, ccrt, ckey)
        s0 = srv.stats()
        plays0 = s0["plays"]
        v.start()
        self.vigil_cam = v
        # Every camera playing.
        limit = 60 + a.cam_count
        deadline = time.monotonic() + limit
        while True:
            s = srv.stats()
            if s["plays"] - plays0 >= a.cam_count and s["clients_now"] >= a.cam_count:
                break
            if v.proc.poll() is not None:
                raise RuntimeError("vigil serve (cameras) exited while the cameras connected")
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {s['plays'] - plays0} of {a.cam_count} cameras played "
                                   f"within {limit} s")
            time.sleep(0.2)
        startup = s["plays"] - plays0
        log(f"{a.cam_count} cameras playing; settling {a.cam_settle:.0f} s")
        time.sleep(a.cam_settle)
        phases = {}
        marks = {}
        for name in ("A", "B"):
            phases[name], marks[name] = self.camera_phase(v, srv, tls, name, metrics_port)
        # Every message of phase B stored (or no progress for 10 s), while the cameras record
        # on, so that the last GOPs of the phase have a successor.
        b = phases["B"]
        sc = b["sender"]["counts"]
        got = v.wait_stored(marks["B"]["id0"], b["sender"]["sent"], sc.get("dot1x", 0) + sc.get("link_down", 0),
                            time.time(), stall=10.0)
        b["stored_total"] = got["stored"]
        b["matched_total"] = got["matched"]
        b["events_dropped"] = got["events_dropped"]
        b["rules_dropped"] = got["rules_dropped"]
        b["stored_after_s"] = (got["t_syslog"] - marks["B"]["w1"] / 1e6) if got["t_syslog"] else None
        time.sleep(max(0.0, 3.0 - (time.time() - marks["B"]["w1"] / 1e6)))
        s_end = srv.stats()
        t_stop = time.monotonic()
        stop_proc(v.proc, limit=60)
        stop_s = time.monotonic() - t_stop
        srv.stop()
        log_text = open(os.path.join(v.work, "serve.log"), errors="replace").read()
        db = sqlite3.connect(f"file:{os.path.join(v.data, 'vigil.db')}?mode=ro", uri=True, timeout=10)
        try:
            for name, ph in phases.items():
                ph.update(camera_frames(db, marks[name]["w0"], marks[name]["w1"], clip["fps"], CAM_GOP))
                ph["frames_lost"] = ph["timeline_missing"]
        finally:
            db.close()
        for name, ph in phases.items():
            ph["id0"], ph["id1"] = marks[name]["id0"], marks[name]["id1"]
            k = ph["kinds"]
            ph["events_stored"] = sum(x for kind, x in k.items() if kind != "<syslog>")
        ratio = (phases["B"]["cpu"] / phases["A"]["cpu"]) if phases["A"]["cpu"] else None
        self.results["cameras"] = {
            "cameras": a.cam_count, "clip": clip, "gop": CAM_GOP, "phase_s": a.cam_phase,
            "rate": a.cam_rate, "settle": a.cam_settle, "startup_plays": startup,
            "plays_total": s_end["plays"] - plays0, "clients_end": s_end["clients_now"],
            "phases": phases, "cpu_ratio": ratio, "stop_s": stop_s,
            "clean": "Stopped cleanly" in log_text,
            "warn_lines": sum(1 for x in log_text.splitlines() if " WARN " in x),
            "error_lines": sum(1 for x in log_text.splitlines() if " ERROR " in x),
        }
        for name, ph in phases.items():
            log(f"cameras phase {name}: sent {ph['frames_sent']:,} frames to {a.cam_count} clients "
                f"(server {ph['server_fps']:.2f} frames/s), recorded {ph['frames']:,} in GOPs starting in "
                f"the window, lost {ph['frames_lost']}, gap rows {ph['gap_rows']}, Vigil CPU "
                f"{ph['cpu']:.2f} s ({100 * ph['cpu'] / ph['wall']:.0f} % of a core), load {ph['load'][0]:.1f}")

    def camera_phase(self, v, srv, tls, name, metrics_port):
        a = self.a
        sender = None
        if name == "B":
            sender = PacedSender(tls, v.syslog_port, a.cam_rate, a.cam_phase)
        loads = [loadavgs()]
        id0 = v.max_id()
        met0 = scrape(metrics_port)
        th0 = ingest_bench.thread_ticks(v.proc.pid)
        c0 = v.cpu()
        s0 = srv.stats()
        t0 = time.monotonic()
        w0 = int(time.time() * 1e6)
        if sender:
            sender.start()
        log(f"cameras phase {name}: {a.cam_phase:.0f} s"
            + (f" with {a.cam_rate:,} syslog messages/s" if sender else " (recording only)"))
        while time.monotonic() - t0 < a.cam_phase:
            time.sleep(min(5.0, max(0.0, a.cam_phase - (time.monotonic() - t0))))
            loads.append(loadavgs())
            if v.proc.poll() is not None:
                raise RuntimeError("vigil serve (cameras) exited during the run")
        w1 = int(time.time() * 1e6)
        wall = time.monotonic() - t0
        s1 = srv.stats()
        c1 = v.cpu()
        th1 = ingest_bench.thread_ticks(v.proc.pid)
        if sender:
            sender.join(timeout=15)
        met1 = scrape(metrics_port)
        id1 = v.max_id()
        groups = ingest_bench.group_thread_cpu(th0, th1)
        roles = {}
        for g, x in groups.items():
            r = thread_role(g)
            roles[r] = roles.get(r, 0.0) + x["cpu_s"]
        ph = {
            "wall": wall, "cpu": c1 - c0, "threads": {g: x["cpu_s"] for g, x in groups.items()},
            "roles": roles, "load": [x[0] for x in loads][:1] + [max(x[0] for x in loads)],
            "loads": [x[0] for x in loads],
            "server_frames": s1["frames_sent"] - s0["frames_sent"],
            "server_fps": (s1["frames_sent"] - s0["frames_sent"]) / wall,
            "frames_sent": (s1["frames_sent"] - s0["frames_sent"]) * s1["clients_now"],
            "clients": (s0["clients_now"], s1["clients_now"]), "plays": s1["plays"] - s0["plays"],
            "kinds": v.count_kinds(id0, id1),
            "metrics": {k: met1[k] - met0.get(k, 0) for k in met1} if met0 and met1 else {},
        }
        if sender:
            ph["sender"] = sender.result()
            ph["stored_per_s"] = stored_per_second(v.db, w0, w1)
        return ph, {"w0": w0, "w1": w1, "id0": id0, "id1": id1}

    def stop_all(self):
        for name in ("relay", "vigil_siem", "collector", "vigil", "vigil_cam"):
            p = getattr(self, name, None)
            if p is not None:
                p.stop()
        for r in getattr(self, "rsyslogs", {}).values():
            r.stop()
        if getattr(self, "rtsp", None) is not None:
            self.rtsp.stop()


def fmt_s(x):
    return f"{x:.2f} s" if x is not None else "(not all)"


def fmt_rate(x):
    return f"{x:,.0f}" if x else "-"


# ---------------------------------------------------------------- part 4: cameras

CAM_GOP = 60
CAM_KBPS = 4000


def thread_role(group):
    """Which side of Vigil a thread group (bench/ingest's grouping) works for."""
    if group in ("writer-<camera>", "tokio workers"):
        return "recording"  # camera sessions run on the main runtime, segments on writer-*
    if group in ("vigil-events-in", "event-writer", "rule-actions"):
        return "events"
    return "other"


def scrape(port):
    """{metric name: value summed over its labels} of Vigil's vigil_events_*, vigil_rules_* and
    vigil_stream_* counters, or {} when the page cannot be read."""
    if not port:
        return {}
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            text = r.read().decode()
    except (OSError, ValueError):
        return {}
    out = {}
    for line in text.splitlines():
        if not line.startswith(("vigil_events_", "vigil_rules_", "vigil_stream_frames_",
                                "vigil_stream_reconnects")):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        try:
            out[name] = out.get(name, 0) + float(line.rsplit(" ", 1)[1])
        except ValueError:
            pass
    return out


def stored_per_second(db, w0, w1):
    """Syslog events stored per whole second of [w0, w1) (µs): min, median, max."""
    rows = db.execute(
        "SELECT received_us / 1000000, count(*) FROM events WHERE source_kind = 'syslog' "
        "AND received_us >= ? AND received_us < ? GROUP BY 1", (w0, w1)).fetchall()
    per = dict(rows)
    xs = [per.get(s, 0) for s in range(int(w0 / 1e6) + 1, int(w1 / 1e6))]  # whole seconds
    return {"total": sum(n for _, n in rows), "min": min(xs) if xs else 0,
            "median": median(xs) if xs else 0, "max": max(xs) if xs else 0}


def camera_frames(db, w0, w1, fps, gop):
    """Frames recorded and lost in [w0, w1) (µs) from vigil.db's gops (bench/ingest's method:
    every GOP of the fixed-GOP clip must hold `gop` frames; a gap of half a GOP or more between
    GOPs is GOPs that never arrived), restricted to the GOPs that start inside the window; a gap
    counts in the window its time falls in."""
    frames = missing = short = gap_frames = 0
    per_cam = []
    cams = [r[0] for r in db.execute("SELECT DISTINCT camera_id FROM gops")]
    ncams = db.execute("SELECT count(*) FROM cameras").fetchone()[0]
    silent = ncams - len(cams)  # cameras without any GOP at all
    missing += silent * round((w1 - w0) * fps / 1e6)
    for cam in cams:
        gops = db.execute("SELECT start_us, duration_us, frames FROM gops WHERE camera_id = ? "
                          "ORDER BY start_us", (cam,)).fetchall()
        f = 0
        if gops[0][0] > w0:
            lead = min(gops[0][0], w1) - w0
            if lead * fps / 1e6 >= gop / 2:
                gap_frames += round(lead * fps / 1e6)
        for i, (start, dur, n) in enumerate(gops):
            nxt = gops[i + 1] if i + 1 < len(gops) else None
            if w0 <= start < w1:
                f += n
                if nxt is not None:  # the last GOP is cut by the stop
                    short += max(0, gop - n)
            if nxt is not None:
                g0, g1 = start + dur, nxt[0]
                if (g1 - g0) * fps / 1e6 >= gop / 2:
                    overlap = max(0, min(g1, w1) - max(g0, w0))
                    gap_frames += round(overlap * fps / 1e6)
        frames += f
        per_cam.append(f)
    missing += short + gap_frames
    gap_rows = db.execute("SELECT count(*) FROM gaps WHERE start_us >= ? AND start_us < ?",
                          (w0, w1)).fetchone()[0]
    last = db.execute("SELECT max(start_us + duration_us) FROM gops").fetchone()[0]
    return {"frames": frames, "timeline_missing": missing, "short_gop_frames": short,
            "gap_frames": gap_frames, "gap_rows": gap_rows, "cameras_with_video": len(cams),
            "per_cam_min": min(per_cam) if per_cam else 0,
            "per_cam_max": max(per_cam) if per_cam else 0,
            "last_gop_end_after_window_s": (last - w1) / 1e6 if last else None}


class PacedSender(threading.Thread):
    """`rate` syslog messages/s (bench part 1's stream: 20 % fire a rule) over one TLS
    connection with the client certificate, in batches every 10 ms, for `seconds` or
    rate * seconds messages, whichever comes first; counts what it sent per second."""

    def __init__(self, tls, port, rate, seconds):
        super().__init__(daemon=True)
        self.tls, self.port, self.rate, self.seconds = tls, port, rate, seconds
        self.limit = int(rate * seconds)
        self.sent = 0
        self.per_second = []
        self.counts = {}
        self.error = None
        self.wall = None
        self.stop = threading.Event()

    def run(self):
        c = self.tls.connect(self.port)
        c.settimeout(10.0)
        tag = f"cam{random.randrange(1 << 30):08x}"
        per_tick = max(1, self.rate // 100)
        t0 = time.monotonic()
        nxt = t0
        second, in_second = 0, 0
        try:
            while self.sent < self.limit and not self.stop.is_set():
                now = time.monotonic()
                if now - t0 >= self.seconds:
                    break
                t = time.time()
                batch = []
                for _ in range(min(per_tick, self.limit - self.sent)):
                    m, what = ingest_message(self.sent + len(batch), t, tag)
                    self.counts[what] = self.counts.get(what, 0) + 1
                    batch.append(frame(m))
                c.sendall(b"".join(batch))
                self.sent += len(batch)
                s = int(now - t0)
                if s != second:
                    self.per_second.append(in_second)
                    second, in_second = s, 0
                in_second += len(batch)
                nxt += 0.01
                d = nxt - time.monotonic()
                if d > 0:
                    time.sleep(d)
                elif d < -1:
                    nxt = time.monotonic()  # behind by a second: do not burst to catch up
        except (OSError, ssl.SSLError) as e:
            self.error = f"{type(e).__name__}: {e}"
        self.wall = time.monotonic() - t0
        if in_second:
            self.per_second.append(in_second)
        close_tls(c)

    def result(self):
        full = self.per_second[:-1] if len(self.per_second) > 1 else self.per_second
        return {"sent": self.sent, "wall": self.wall, "rate": self.sent / self.wall if self.wall else 0,
                "per_s_min": min(full) if full else 0, "per_s_median": median(full) if full else 0,
                "per_s_max": max(full) if full else 0, "counts": self.counts, "error": self.error,
                "limit": self.limit}


# ---------------------------------------------------------------- report


def best(rounds):
    rates = [x["rate"] for x in rounds if x["rate"]]
    return max(rates) if rates else None


def report(b, a, started):
    r = b.results
    lines = []
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    rs_version = " ".join(subprocess.run(["rsyslogd", "-v"], capture_output=True,
                                         text=True).stdout.split()[:2])
    load_end = " ".join(f"{x:.2f}" for x in loadavgs())
    summary = []

    md = [f"""# Events benchmark (syslog over TLS, rules, alarms, SIEM forwarding)

Written by `bench/events/run.sh` ({now}, {time.time() - started:.0f} s) on {cpu_model()},
{os.cpu_count()} cores, load average {load_end} at the end; Vigil {os.environ.get("VIGIL_SOURCE") or git_rev(a.root)}
{"(binary given with VIGIL_BIN)" if a.given_binary else ""}; {rs_version}.
The machine is shared (other builds and tests may run), and the load generator, the receiver
and its readers share the same 2 cores, so absolute rates are noisy; ratios come from rounds
that alternate the receivers within one invocation.
"""]
    if "ingest" in r:
        ing = r["ingest"]
        rounds = ing["rounds"]
        exp = ing["expected"]
        v = rounds["vigil"]
        vbest = best(v)
        rs_best = {k: best(x) for k, x in rounds.items() if k != "vigil"}
        base_name, base = max(((k, x) for k, x in rs_best.items() if x), key=lambda kv: kv[1], default=(None, None))
        ratio = vbest / base if vbest and base else None
        ok = ratio is not None and ratio >= 1.0
        per_round = []
        for i in range(a.rounds):
            vr = v[i]["rate"] if i < len(v) else None
            br = max(((rounds[k][i]["rate"] or 0) for k in rs_best if i < len(rounds[k])), default=0)
            per_round.append(vr / br if vr and br else None)
        rules_rates = [a.messages / x["elapsed_rules"] for x in v if x.get("elapsed_rules")]
        threads_cpu = {}
        for x in v:
            for k, c in x.get("threads", {}).items():
                threads_cpu[k] = threads_cpu.get(k, 0) + c / max(x["stored"], 1) * 1e6 / len(v)
        top = sorted(threads_cpu.items(), key=lambda kv: -kv[1])[:8]
        md.append(f"""
## 1. Syslog over TLS ingest with rules: Vigil vs rsyslog

- Stream: {a.messages:,} messages per round ({rounds['vigil'][0]['bytes'] / a.messages:.0f} bytes framed on average), RFC 5425 octet
  counting over {a.conns} TLS connection(s) from one Python process (threads; TLS 1.3, client
  certificate `CN={CLIENT_CN}` signed by the installation's CA with `vigil pki sign-csr`).
  Two thirds RFC 5424 (`<PRI>1 TIMESTAMP sw-NN.example.net ios - - [meta sequenceId=".."] MSG`),
  one third Cisco IOS RFC 3164 (`<PRI>SEQ: sw-NN: Mmm dd hh:mm:ss.mmm UTC: MSG`), from 16
  switch names; {exp.get('dot1x', 0):,} `%DOT1X-5-FAIL` (Vigil: `syslog.dot1x_failure`),
  {exp.get('link_down', 0):,} `%LINK-3-UPDOWN … down` (`syslog.link_down`), {exp.get('other', 0):,} other
  switch lines (config, logins, line protocol, MAC flaps, CDP, DHCP snooping, SSH, PoE).
  The whole round is built in memory before the clock starts; the client wrote it in
  {min(x['written'] for x in v):.2f}–{max(x['written'] for x in v):.2f} s (Vigil rounds).
- Vigil: `vigil serve`, `[events] syslog_tls` on 127.0.0.1 with `require_client_cert = true`;
  `[events.limits] rate_per_source = {a.rate}`, `burst = {a.burst}` (the defaults, 100/s
  and 200, are a per-sender flood limit that would pace the benchmark to 100 messages/s);
  five `[[rules]]` (below): `port-security` and `link-down` fire on 20 % of the stream (an alarm
  per rule and switch, counted up while open, and an `alarm.rule_matched` event per match), a
  regex rule, a text rule and a source rule are evaluated on every event and never fire. Events
  land in `events.db` (SQLite WAL, `synchronous=NORMAL`). TLS as negotiated with the client:
  {b.vigil_ssl}.
- rsyslog: `rsyslogd -n` (imtcp, `StreamDriver.Name` {", ".join(a.drivers)}, `Mode 1`,
  `AuthMode x509/name`, `PermittedPeer {CLIENT_CN}`; Vigil's generated server certificate and
  key and the same CA), one ruleset: `omfile` with a JSON template of the parsed fields (PRI,
  timestamp, host, app, procid, msgid, structured data, message) — no filters.
- Done = an outside reader sees all {a.messages:,} messages stored, polled every {POLL * 1000:.0f} ms:
  Vigil's `events.db` read-only (rows of source kind `syslog` after the round's first id),
  rsyslog's output file (lines). Rounds: {a.rounds}, alternating the order.

| receiver | best msg/s | rounds, msg/s | receiver CPU per 1,000 msgs | stored |
|---|---|---|---|---|
""")
        for name, xs in rounds.items():
            rates = [x["rate"] for x in xs if x["rate"]]
            cpu_k = min(x["cpu"] / max(x["stored"], 1) * 1000 for x in xs)
            stored = ", ".join(f"{x['stored']:,}" for x in xs)
            md.append(f"| {name} | {fmt_rate(best(xs))} | {', '.join(fmt_rate(x['rate']) for x in xs)} | "
                      f"{cpu_k * 1000:.0f} ms | {stored} |\n")
        verdict = "MET" if ok else "MISSED"
        md.append(f"""
Vigil / rsyslog ({base_name}, the faster baseline), best vs best: **{f'{ratio:.2f}' if ratio else 'n/a'}**;
per round (vs the faster rsyslog of that round) {', '.join(f'{x:.2f}' if x else 'n/a' for x in per_round)}.
Goal ≥ 1.0 × rsyslog: **{verdict}**.

Vigil with its rules' outputs stored too (every `alarm.rule_matched` of the round,
{v[0]['expected_matches']:,} per round): {', '.join(fmt_rate(x) for x in rules_rates) or 'not reached'} msg/s
(times {', '.join(fmt_s(x.get('elapsed_rules')) for x in v)}; {', '.join(f"{x['matched']:,}" for x in v)} of
{v[0]['expected_matches']:,} matches acted on). Events the bus dropped (queue full, the `count` of
`events.dropped` events): {', '.join(f"{x['events_dropped']:,}" for x in v)} per round; events the rules did not
see (the `count` of `rules.dropped` events): {', '.join(f"{x['rules_dropped']:,}" for x in v)} per round. Alarms' counts (sum per rule)
before → after all rounds: {ing['alarms_before']} → {ing['alarms_after']}.
Precise end times where the receivers record them: Vigil's last `received_us` (the batch's
store time) {', '.join(fmt_s(x.get('elapsed_last_received')) for x in v)}; rsyslog's file
modification time {', '.join(fmt_s(x.get('elapsed_mtime')) for k, xs in rounds.items() if k != 'vigil' for x in xs)}.
Load average (1 min) at the start of each round: {', '.join(f"{x['load'][0]:.1f}" for xs in rounds.values() for x in xs)}.
Vigil's CPU by thread, µs per message (mean of the rounds; threads of the same name summed):
{', '.join(f'`{k}` {c:.1f}' for k, c in top)}.

The rules:

```toml{RULES}```
""")
        summary.append(f"ingest {f'{ratio:.2f}' if ratio else 'n/a'} x rsyslog ({verdict})")
        b.summary_ingest = (ratio, vbest, base, base_name, verdict)
    if "latency" in r:
        lat = r["latency"]
        md.append(f"""
## 2. Event → alarm latency

{a.lat_count} `%DOT1X-5-FAIL` messages (RFC 5424), one at a time over one TLS connection with
the client certificate, each from a new host name so that each raises a new alarm of rule
`port-security`; the next is sent {a.lat_interval * 1000:.0f} ms after the previous alarm arrived
(or after {a.lat_timeout:.0f} s). Observable: the API's events WebSocket
(`wss://127.0.0.1/api/v1/events/live?kind=syslog.dot1x_failure,alarm.raised,alarm.rule_matched`,
admin API token), read by a thread of the same Python process; latency = arrival of the
`alarm.raised` event naming the host − the moment before `sendall` of its frame (both
`time.monotonic()`). The `syslog.dot1x_failure` event itself (pushed once stored) and
`alarm.rule_matched` arrive on the same socket and give the breakdown. With background
traffic: another TLS connection (from 127.0.0.2) sends switch lines no rule fires on, paced
every 10 ms. Same `vigil serve` as part 1, after its rounds (its `events.db` holds the part-1 events).

| background msg/s | samples | missing | alarm p50 | p90 | **p99** | max | stored event p50 / p99 | rule_matched p50 / p99 | goal p99 < 50 ms |
|---|---|---|---|---|---|---|---|---|---|
""")
        worst = None
        for bg, x in lat.items():
            ok = x["n"] > 0 and x["missing"] == 0 and x["alarm"]["p99"] < 50
            worst = x["alarm"]["p99"] if worst is None else max(worst, x["alarm"]["p99"])
            md.append(f"| {bg:,} (sent {x['bg_rate']:,.0f}) | {x['n']} | {x['missing']} | {x['alarm']['p50']:.1f} | "
                      f"{x['alarm']['p90']:.1f} | **{x['alarm']['p99']:.1f}** | {x['alarm']['max']:.1f} | "
                      f"{x['stored']['p50']:.1f} / {x['stored']['p99']:.1f} | "
                      f"{x['matched']['p50']:.1f} / {x['matched']['p99']:.1f} | {'MET' if ok else 'MISSED'} |\n")
        md.append("\nTimes in ms. `vigil serve` CPU during the runs: "
                  + ", ".join(f"{x['cpu']:.2f} s in {x['wall']:.1f} s (background {bg}/s)" for bg, x in lat.items())
                  + ".\n")
        summary.append(f"alarm p99 {worst:.1f} ms")
        b.summary_latency = lat
    if "siem" in r:
        s = r["siem"]
        vb, rb = best(s["vigil"]), best(s["rsyslog"])
        ratio = vb / rb if vb and rb else None
        per = [x["rate"] / y["rate"] if x["rate"] and y["rate"] else None for x, y in zip(s["vigil"], s["rsyslog"])]
        verdict = "MET" if ratio and ratio >= 1 else "MISSED"
        md.append(f"""
## 3. SIEM forwarding: Vigil → rsyslog collector vs rsyslog relay (omfwd over TLS)

{a.siem_messages:,} warning/error-level switch lines (RFC 5424; no rule fires on them, every
rule is evaluated) per round over {a.conns} TLS connection(s), as in part 1, to

- a second `vigil serve` installation (its own data directory; `[[siem.collectors]]` to the
  collector with the first installation's CA as `ca_file` and a client certificate
  `CN={SIEM_CN}`; `min_severity` warning, the default, so every message is forwarded; spool on disk,
  fdatasync before sending), or
- an rsyslog relay: imtcp over TLS (as in part 1) and `omfwd` over TLS
  (`StreamDriver {a.drivers[0]}`, `x509/name`, octet-counted, `RSYSLOG_SyslogProtocol23Format`),

and both deliver to one rsyslog collector (imtcp over TLS, `{a.drivers[0]}`, `PermittedPeer`
{SIEM_CN} and the relay's name, `omfile`). Done = the collector's file holds every message of
the round (counted by a marker in each message), polled every {POLL * 1000:.0f} ms, from the
first byte the load generator sent. One message through each path first, so both have their
outgoing connection up.

| relay | best msg/s | rounds, msg/s | relay CPU per 1,000 msgs | collector CPU per 1,000 msgs |
|---|---|---|---|---|
""")
        for name, xs in s.items():
            md.append(f"| {name} | {fmt_rate(best(xs))} | {', '.join(fmt_rate(x['rate']) for x in xs)} | "
                      f"{min(x['cpu'] for x in xs) / a.siem_messages * 1e6:.0f} ms | "
                      f"{min(x['collector_cpu'] for x in xs) / a.siem_messages * 1e6:.0f} ms |\n")
        md.append(f"""
Vigil / rsyslog, best vs best: **{f'{ratio:.2f}' if ratio else 'n/a'}**; per round
{', '.join(f'{x:.2f}' if x else 'n/a' for x in per)}. Goal ≥ 1.0 × rsyslog: **{verdict}**.
""")
        summary.append(f"SIEM {f'{ratio:.2f}' if ratio else 'n/a'} x rsyslog ({verdict})")
        b.summary_siem = (ratio, vb, rb, verdict)
    else:
        md.append("""
## 3. SIEM forwarding

Not measured in this run (`PARTS` without `siem`).
""")
    if "cameras" in r:
        md.append(camera_report(r["cameras"], a, summary))
    else:
        md.append("""
## 4. 16 cameras recording while 10,000 events/s arrive

Not measured in this run (`PARTS` without `cameras`; run `PARTS=cameras bash bench/events/run.sh`).
""")
    md.append(f"\nCommand: `{a.command}`\n")
    open(a.out, "w").write("".join(md))
    print("\n" + "; ".join(summary))
    print(f"wrote {a.out}")


def camera_report(c, a, summary):
    """Section 4 of the report (and its summary line)."""
    A, B = c["phases"]["A"], c["phases"]["B"]
    clip = c["clip"]
    snd = B.get("sender", {})
    n = c["cameras"]
    lost_b = B["frames_lost"]
    ok = lost_b == 0 and B["cameras_with_video"] == n and B["plays"] == 0
    verdict = "MET" if ok else "MISSED"

    def cpu_row(ph):
        r = ph["roles"]
        return (f"{ph['cpu']:.2f} s ({100 * ph['cpu'] / ph['wall']:.0f} % of a core): recording "
                f"{r.get('recording', 0):.2f} s, events {r.get('events', 0):.2f} s, other {r.get('other', 0):.2f} s")

    def met(ph, name):
        x = ph["metrics"].get(name)
        return f"+{x:,.0f}" if x is not None else "n/a"

    fed = min(A["server_fps"], B["server_fps"]) >= 0.98 * clip["fps"]

    rows = []
    for name, ph in (("A: recording only", A), (f"B: + {c['rate']:,} syslog msg/s", B)):
        syslog = ph["kinds"].get("<syslog>", 0)
        matched = ph["kinds"].get("alarm.rule_matched", 0)
        rows.append(
            f"| {name} | {ph['wall']:.1f} s | {ph['frames_sent']:,} ({ph['server_fps']:.2f}/s × {ph['clients'][1]}) | "
            f"{met(ph, 'vigil_stream_frames_received_total')} | "
            f"{ph['frames']:,} ({ph['per_cam_min']:,}–{ph['per_cam_max']:,} per camera) | **{ph['frames_lost']}** "
            f"({ph['short_gop_frames']} in short GOPs, {ph['gap_frames']} in gaps) | {ph['gap_rows']} | "
            f"{cpu_row(ph)} | {syslog:,} syslog, {matched:,} rule matches, {ph['events_stored']:,} in all | "
            f"{met(ph, 'vigil_events_dropped_total')} / {met(ph, 'vigil_rules_events_dropped_total')} | "
            f"{min(ph['loads']):.1f}–{max(ph['loads']):.1f} |\n")
    top = {}
    for ph in (A, B):
        for g, x in ph["threads"].items():
            top.setdefault(g, [0.0, 0.0])
    for g in top:
        top[g] = [A["threads"].get(g, 0.0), B["threads"].get(g, 0.0)]
    top = sorted(top.items(), key=lambda kv: -(kv[1][0] + kv[1][1]))[:9]
    ratio = c["cpu_ratio"]
    summary.append(f"cameras: {n} recording, {lost_b} frames lost under {snd.get('rate', 0):,.0f} msg/s ({verdict})")
    spm = B.get("stored_per_s", {})
    text = f"""
## 4. {n} cameras recording while {c['rate']:,} events/s arrive

- Cameras: one GStreamer RTSP server (tests/peers/rtsp_server.py, one shared pipeline for
  the mount, as in bench/ingest) loops a {clip['width']}x{clip['height']} {clip['fps']:.0f} fps H.264
  clip at {clip['kbps']:.0f} kbit/s (GOP {c['gop']} frames, no B-frames); {n} cameras added to a third
  Vigil installation with `vigil camera add camNN --url rtsp://127.0.0.1:PORT/cam` before
  `vigil serve` starts; same `[events] syslog_tls` listener (client certificate required),
  limits and five `[[rules]]` as part 1. The server's own count: {A['server_fps']:.2f} frames/s handed
  to its payloader in phase A, {B['server_fps']:.2f} in phase B (the clip's rate is {clip['fps']:.0f}), so one
  server process {"fed the " + str(n) + " clients at full rate" if fed else "**fell behind** (fewer frames than the clip's rate)"}; {c['startup_plays']} PLAYs at start, {A['plays'] + B['plays']} more during the
  phases (reconnects), {c['clients_end']} clients at the end.
- Phases of {c['phase_s']:.0f} s each, {c['settle']:.0f} s after the last camera played: A, recording
  only; B, recording while one TLS connection (client certificate) from the driver sends part
  1's switch lines (20 % fire `port-security` or `link-down`: alarm counted up, `alarm.rule_matched`
  stored) paced in batches every 10 ms, at most {snd.get('limit', 0):,} messages and {c['phase_s']:.0f} s. Sent:
  **{snd.get('sent', 0):,} in {snd.get('wall') or 0:.1f} s = {snd.get('rate', 0):,.0f} msg/s** (whole seconds
  {snd.get('per_s_min', 0):,}–{snd.get('per_s_max', 0):,}, median {snd.get('per_s_median', 0):,.0f}){f"; sender error: {snd['error']}" if snd.get('error') else ''}.
  Stored by Vigil with `received_us` inside the phase: {spm.get('total', 0):,} = {spm.get('total', 0) / B['wall']:,.0f}/s (whole
  seconds {spm.get('min', 0):,}–{spm.get('max', 0):,}, median {spm.get('median', 0):,.0f}); all {B.get('stored_total', 0):,} of the phase's
  messages stored {fmt_s(B.get('stored_after_s'))} after it ended, {B.get('matched_total', 0):,} rule matches acted on;
  `events.dropped` {B.get('events_dropped', 0):,}, `rules.dropped` {B.get('rules_dropped', 0):,}.
- Frames sent = the server's `frames_sent` over the phase × the clients playing. Frames recorded =
  frames of the GOPs (vigil.db `gops`) that start inside the phase, so it differs from frames
  sent by up to a GOP per camera at each end. Frames lost = bench/ingest's method restricted to
  those GOPs: every GOP but a camera's last must hold {c['gop']} frames, and a gap of half a GOP or
  more between GOPs (its part inside the phase) is GOPs that never arrived. Gap rows = vigil.db
  `gaps` starting in the phase. CPU = utime+stime of `vigil serve` over the phase; recording =
  the main runtime's `tokio-runtime-w` threads (camera sessions) and `writer-camNN`; events =
  `vigil-events-in` (TLS intake), `event-writer`, `rule-actions`. Dropped = the deltas of
  `vigil_events_dropped_total` / `vigil_rules_events_dropped_total` on the metrics page;
  received by Vigil = the delta of `vigil_stream_frames_received_total` (all cameras).

| phase | wall | frames sent | received by Vigil | frames recorded | frames lost | gap rows | Vigil CPU | events stored | dropped events / rules | load (1 min) |
|---|---|---|---|---|---|---|---|---|---|---|
{''.join(rows)}
Vigil CPU B / A: **{f'{ratio:.2f}' if ratio else 'n/a'}** (events threads {B['roles'].get('events', 0) - A['roles'].get('events', 0):+.2f} s, recording threads
{B['roles'].get('recording', 0) - A['roles'].get('recording', 0):+.2f} s). Metrics over phase B: `vigil_events_published_total` {met(B, 'vigil_events_published_total')},
`vigil_events_stored_total` {met(B, 'vigil_events_stored_total')}, `vigil_rules_events_evaluated_total` {met(B, 'vigil_rules_events_evaluated_total')},
`vigil_rules_fired_total` {met(B, 'vigil_rules_fired_total')}, `vigil_rules_events_deferred_total` {met(B, 'vigil_rules_events_deferred_total')};
A / B: `vigil_stream_frames_written_total` {met(A, 'vigil_stream_frames_written_total')} / {met(B, 'vigil_stream_frames_written_total')},
`vigil_stream_reconnects_total` {met(A, 'vigil_stream_reconnects_total')} / {met(B, 'vigil_stream_reconnects_total')}.
CPU by thread group, A / B (s): {', '.join(f'`{g}` {x[0]:.2f} / {x[1]:.2f}' for g, x in top)}.
Shut down in {c['stop_s']:.1f} s (clean: {c['clean']}); serve.log: {c['warn_lines']} WARN, {c['error_lines']} ERROR lines.

Goal: 0 frames lost in phase B: **{verdict}** ({lost_b} lost, {B['cameras_with_video']}/{n} cameras with video).
"""
    return text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--vigil", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--parts", default="ingest,latency,siem,cameras")
    ap.add_argument("--messages", type=int, default=100000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--drivers", default="ossl gtls")
    ap.add_argument("--rate", type=int, default=1000000)
    ap.add_argument("--burst", type=int, default=10000000)
    ap.add_argument("--lat-count", type=int, default=500)
    ap.add_argument("--lat-interval", type=float, default=0.02)
    ap.add_argument("--lat-timeout", type=float, default=2.0)
    ap.add_argument("--lat-bg", default="0 2000")
    ap.add_argument("--siem-messages", type=int, default=50000)
    ap.add_argument("--cam-count", type=int, default=16)
    ap.add_argument("--cam-phase", type=float, default=60.0)
    ap.add_argument("--cam-rate", type=int, default=10000)
    ap.add_argument("--cam-settle", type=float, default=5.0)
    ap.add_argument("--clips", help="where the cameras' clip is encoded once and cached")
    ap.add_argument("--time-limit", type=int, default=540)
    ap.add_argument("--given-binary", action="store_true")
    ap.add_argument("--command", default="bash bench/events/run.sh")
    a = ap.parse_args()
    a.drivers = a.drivers.split()
    a.lat_bg = [int(x) for x in a.lat_bg.split()]
    parts = set(a.parts.replace(",", " ").split())
    unknown = parts - {"ingest", "latency", "siem", "cameras"}
    if unknown:
        ap.error(f"unknown parts: {' '.join(sorted(unknown))}")
    if not 1 <= a.cam_count <= 64 or not 5 <= a.cam_phase <= 600 or not 1 <= a.cam_rate <= 200000:
        ap.error("CAM_COUNT 1..64, CAM_PHASE 5..600 s, CAM_RATE 1..200000 msg/s")
    a.clips = a.clips or os.path.join(os.path.dirname(a.work), "benchclips")
    if "cameras" in parts and 2 * a.cam_phase + a.cam_settle + 120 > a.time_limit:
        ap.error(f"CAM_PHASE={a.cam_phase:.0f} needs TIME_LIMIT >= {2 * a.cam_phase + a.cam_settle + 120:.0f}")
    for d in a.drivers:
        if not os.path.exists(os.path.join(RSYSLOG_DRIVERS, f"lmnsd_{d}.so")):
            pkg = {"ossl": "rsyslog-openssl", "gtls": "rsyslog-gnutls"}.get(d, "?")
            sys.exit(f"rsyslog's {d} driver is missing: apt-get install -y {pkg}")
    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.alarm(a.time_limit)
    started = time.time()
    b = Bench(a)
    failed = None
    try:
        if parts & {"ingest", "latency", "siem"}:
            b.setup()
        if "ingest" in parts:
            b.ingest()
        if "latency" in parts:
            b.latency()
        if "siem" in parts:
            b.siem()
        if "cameras" in parts:
            b.cameras()
    except (Deadline, KeyboardInterrupt, RuntimeError, OSError, sqlite3.Error) as e:
        failed = e
        log(f"stopped: {type(e).__name__}: {e}")
    finally:
        signal.alarm(0)
        try:
            b.stop_all()
        finally:
            kill_all_children()
    with open(os.path.join(a.work, "results.json"), "w") as f:
        json.dump(b.results, f, indent=1, default=str)
    if b.results:
        try:
            report(b, a, started)
        except Exception as e:  # noqa: BLE001 - the raw figures are in results.json
            log(f"report failed ({type(e).__name__}: {e}); raw figures in {a.work}/results.json")
            raise
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
