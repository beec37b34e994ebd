#!/usr/bin/python3
"""Driver of bench/https/run.sh: Vigil's HTTPS API against nginx on the same machine.

Part 1 (wrk): requests per second over keep-alive connections for an authenticated small JSON
endpoint (GET /api/v1/session with an API token: IDS check, token lookup, JSON answer), and
new TLS handshakes per second (`Connection: close`, one request per connection), against nginx
serving a static JSON file of the same size with the same certificate and key, the same TLS
versions (1.2 + 1.3) and as many worker processes as Vigil's API runtime has workers (one per
core). Rounds alternate Vigil / nginx / Vigil / nginx ...; the best round of each counts and
the range of ratios is reported. wrk runs with an LD_PRELOAD shim (tls_resume_shim.c) that
counts handshakes and resumptions and, for the handshake test, stops wrk from offering the
previous session, so every connection to either server is a full handshake.

Part 2 (IDS cost): failed logins (POST /api/v1/session with a wrong password), each on a new
connection, from 127.0.0.2 (blocked by the IDS after notification_threshold failures) and from
127.0.0.3 (on [access.ids] allow_list, so never blocked and every attempt pays Argon2id). The
server's CPU time comes from /proc/PID/stat of `vigil serve`, minus its idle rate.
"""

import argparse
import datetime
import json
import os
import re
from statistics import median
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import (  # noqa: E402
    wait_port,
    CLK_TCK, admin_token, children_cpu, cpu_model, free_port, proc_ticks, run, served_key_and_chain,
    write_secret)

ADMIN_PASSWORD = "bench-Https-7q2x-Lantern"
BLOCKED_SRC = "127.0.0.2"
ALLOWED_SRC = "127.0.0.3"


def proc_cpu(pids):
    """user+system seconds of processes (all their threads)."""
    return sum(proc_ticks(pid) or 0 for pid in pids) / CLK_TCK


def children_of(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


class Bench:
    def __init__(self, a):
        self.a = a
        self.work = a.work
        self.procs = []

    # ---------------------------------------------------------------- setup
    def setup(self):
        a, w = self.a, self.work
        os.makedirs(w, mode=0o755, exist_ok=True)
        os.chmod(w, 0o755)
        pwfile = os.path.join(w, "admin.pw")
        write_secret(pwfile, ADMIN_PASSWORD + "\n")
        self.data = os.path.join(w, "data")
        self.config = os.path.join(w, "vigil.toml")
        run([a.vigil, "--config", self.config, "init", "--data-dir", self.data,
             "--admin-password-file", pwfile])
        self.vport, self.nport = free_port(), free_port()
        text = open(self.config).read()
        # Only the bench's loopback listener; the allow-listed address is never blocked.
        text, n = re.subn(r"\[\[management\.https\]\]\nbind = \"[^\"]*\"",
                          f"[[management.https]]\nbind = \"127.0.0.1:{self.vport}\"", text, count=1)
        if n != 1:
            raise RuntimeError("vigil.toml has no [[management.https]] entry to point at loopback")
        text = re.sub(r"\[\[management\.https\]\]\nbind = \"0\.0\.0\.0:\d+\"[^\[]*", "", text)
        text, n = re.subn(r"allow_list = \[[^\]]*\]", f"allow_list = [\"{ALLOWED_SRC}\"]", text)
        if n != 1:
            raise RuntimeError("vigil.toml has no [access.ids] allow_list to edit")
        open(self.config, "w").write(text)
        self.token = admin_token(a.vigil, self.config)
        self.ca = os.path.join(w, "ca.pem")
        open(self.ca, "w").write(run([a.vigil, "--config", self.config, "pki", "ca-cert"]))
        self.shim = os.path.join(w, "tls_resume_shim.so")
        run(["gcc", "-O2", "-shared", "-fPIC", "-o", self.shim,
             os.path.join(os.path.dirname(__file__), "tls_resume_shim.c"), "-ldl"])

    def find_server_pem(self):
        """Vigil's served chain and the matching key from its PKI directory, in files nginx
        reads (the key re-encoded by `openssl pkey`, mode 0600, in the bench's directory)."""
        chain, key, source, self.chain_len = served_key_and_chain(self.vport, self.data, self.work)
        self.key_type = run(["openssl", "pkey", "-in", source, "-noout", "-text"]).splitlines()[0]
        self.key_source = os.path.relpath(source, self.data)
        return chain, key

    def start_vigil(self):
        log = open(os.path.join(self.work, "vigil-serve.log"), "w")
        env = dict(os.environ, VIGIL_LOG="warn")
        p = subprocess.Popen([self.a.vigil, "--config", self.config, "serve"], stdout=log,
                             stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.procs.append(p)
        wait_port(self.vport, p, "vigil serve", interval=0.1)
        self.vigil = p
        # The answer nginx will serve: same size as Vigil's.
        self.vigil_answer = self.get_vigil_answer()
        self.cert, self.key = self.find_server_pem()

    def get_vigil_answer(self):
        ctx = ssl.create_default_context(cafile=self.ca)
        ctx.check_hostname = False
        with socket.create_connection(("127.0.0.1", self.vport)) as s:
            with ctx.wrap_socket(s, server_hostname="localhost") as t:
                self.tls_version = f"{t.version()} {t.cipher()[0]}"
                t.sendall(f"GET /api/v1/session HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {self.token}\r\nConnection: close\r\n\r\n".encode())
                data = b""
                while True:
                    b = t.recv(65536)
                    if not b:
                        break
                    data += b
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"GET /api/v1/session answered {head[:200]!r}")
        self.vigil_head_bytes = len(head) + 4
        return body

    def negotiated(self, port):
        """What wrk's OpenSSL negotiates with a server: protocol, cipher, key exchange,
        signature, as `openssl s_client` (same library as wrk) reports it."""
        r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                            "-servername", "localhost"], input="", capture_output=True,
                           text=True, timeout=30)
        got = []
        for pat in (r"New, (TLSv[\d.]+), Cipher is (\S+)", r"Server Temp Key: ([^,\n]+)",
                    r"Peer signature type: (\S+)"):
            m = re.search(pat, r.stdout)
            got.append(" ".join(m.groups()) if m else "?")
        return ", ".join(got)

    def start_nginx(self):
        w = self.work
        root = os.path.join(w, "www")
        os.makedirs(os.path.join(root, "api", "v1"), exist_ok=True)
        os.chmod(root, 0o755)
        with open(os.path.join(root, "api", "v1", "session"), "wb") as f:
            f.write(self.vigil_answer)
        tmp = os.path.join(w, "nginx-tmp")
        os.makedirs(tmp, exist_ok=True)
        modules = run(["nginx", "-V"], timeout=10) + subprocess.run(
            ["nginx", "-V"], capture_output=True, text=True).stderr
        temp_paths = "\n".join(
            f"    {d}_temp_path {tmp}/{d};" for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
            if d == "client_body" or f"--http-{d}-temp-path" in modules)
        h2 = " http2" if "http_v2_module" in modules else ""
        conf = f"""
worker_processes {self.a.workers};
daemon off;
pid {w}/nginx.pid;
error_log {w}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
{temp_paths}
    access_log off;
    server_tokens off;
    keepalive_requests 1000000;
    keepalive_timeout 65s;
    server {{
        listen 127.0.0.1:{self.nport} ssl{h2};
        ssl_certificate {self.cert};
        ssl_certificate_key {self.key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_tickets on;
        ssl_session_cache shared:bench:1m;
        root {root};
        default_type application/json;
        location / {{ }}
    }}
}}
"""
        self.nginx_conf = os.path.join(w, "nginx.conf")
        open(self.nginx_conf, "w").write(conf)
        run(["nginx", "-t", "-q", "-c", self.nginx_conf, "-p", w], timeout=20)
        p = subprocess.Popen(["nginx", "-c", self.nginx_conf, "-p", w],
                             stdout=subprocess.DEVNULL, stderr=open(os.path.join(w, "nginx.out"), "w"),
                             start_new_session=True)
        self.procs.append(p)
        wait_port(self.nport, p, "nginx", interval=0.1)
        self.nginx = p
        self.nginx_alpn = "h2, http/1.1" if h2 else "http/1.1"
        self.params = {"vigil": self.negotiated(self.vport), "nginx": self.negotiated(self.nport)}
        if self.params["vigil"] != self.params["nginx"]:
            print(f"warning: the servers negotiate differently: {self.params}", flush=True)

    def stop_all(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM if p is not getattr(self, "nginx", None) else signal.SIGQUIT)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()

    # ---------------------------------------------------------------- wrk
    def server_pids(self, name):
        if name == "vigil":
            return [self.vigil.pid]
        return [self.nginx.pid] + children_of(self.nginx.pid)

    def wrk(self, name, mode):
        a = self.a
        port = self.vport if name == "vigil" else self.nport
        url = f"https://127.0.0.1:{port}/api/v1/session"
        cmd = ["wrk", f"-t{a.threads}", f"-c{a.connections}", f"-d{a.duration}s",
               "-H", f"Authorization: Bearer {self.token}"]
        if mode == "handshake":
            cmd += ["-H", "Connection: close"]
        cmd.append(url)
        env = dict(os.environ, LD_PRELOAD=self.shim,
                   VIGIL_BENCH_RESUME="1" if mode == "keepalive" else "0")
        pids = self.server_pids(name)
        c0, w0 = proc_cpu(pids), children_cpu()
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=a.duration + 60)
        cpu, wrk_cpu = proc_cpu(pids) - c0, children_cpu() - w0
        if r.returncode != 0:
            raise RuntimeError(f"wrk failed: {r.stderr.strip()[:500]}")
        out = r.stdout
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        reqs = int(re.search(r"(\d+) requests in", out).group(1))
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        errs = re.search(r"Socket errors: (.*)", out)
        m = re.search(r"tls-shim: (\d+) handshakes completed, (\d+) resumed", r.stderr)
        hs, resumed = (int(m.group(1)), int(m.group(2))) if m else (None, None)
        if bad:
            raise RuntimeError(f"{name} answered {bad.group(1)} non-2xx responses:\n{out}")
        return {"rps": rps, "requests": reqs, "cpu": cpu, "wrk_cpu": wrk_cpu,
                "handshakes": hs, "resumed": resumed,
                "errors": errs.group(1).strip() if errs else "none"}

    def wrk_rounds(self, mode):
        res = {"vigil": [], "nginx": []}
        for r in range(self.a.rounds):
            order = ["vigil", "nginx"] if r % 2 == 0 else ["nginx", "vigil"]
            for name in order:
                x = self.wrk(name, mode)
                res[name].append(x)
                extra = ""
                if x["handshakes"] is not None:
                    extra = f", {x['handshakes']} handshakes ({x['resumed']} resumed)"
                print(f"{mode:9s} round {r + 1}: {name:5s} {x['rps']:9.0f} req/s, server CPU "
                      f"{x['cpu']:5.2f} s = {x['cpu'] / max(x['requests'], 1) * 1e6:6.1f} us/req, wrk CPU "
                      f"{x['wrk_cpu']:5.2f} s"
                      f"{extra}, socket errors: {x['errors']}", flush=True)
            v, n = res["vigil"][-1]["rps"], res["nginx"][-1]["rps"]
            print(f"{mode:9s} round {r + 1}: ratio vigil/nginx {v / n:.2f}", flush=True)
        return res

    # ---------------------------------------------------------------- IDS
    def login_attempt(self, src, ctx):
        """One failed login on a new connection. Returns 'refused' (closed before or during
        the handshake), 'blocked' (403) or 'rejected' (401)."""
        body = json.dumps({"username": "admin", "password": "wrong-password-123"}).encode()
        s = socket.socket()
        s.settimeout(30)
        try:
            s.bind((src, 0))
            s.connect(("127.0.0.1", self.vport))
            try:
                t = ctx.wrap_socket(s, server_hostname="localhost")
            except (ssl.SSLError, ConnectionError, OSError):
                return "refused"
            t.sendall(b"POST /api/v1/session HTTP/1.1\r\nHost: localhost\r\n"
                      b"Content-Type: application/json\r\nConnection: close\r\n"
                      + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            data = b""
            while True:
                try:
                    b = t.recv(65536)
                except (ssl.SSLError, ConnectionError):
                    break
                if not b:
                    break
                data += b
            t.close()
            status = data[9:12]
            if status == b"401":
                return "rejected"
            if status == b"403":
                return "blocked"
            if not data:
                return "refused"
            raise RuntimeError(f"unexpected answer to a failed login: {data[:200]!r}")
        finally:
            s.close()

    def idle_rate(self, seconds=3.0):
        c0, t0 = proc_cpu([self.vigil.pid]), time.monotonic()
        time.sleep(seconds)
        return (proc_cpu([self.vigil.pid]) - c0) / (time.monotonic() - t0)

    def attempts(self, src, count, limit_s, ctx, parallel):
        """Up to `count` failed logins from `src` within `limit_s` seconds, `parallel` at a
        time. Returns outcome counts, wall time and server CPU (idle rate subtracted)."""
        outcomes = {}
        lock = threading.Lock()
        left = [count]
        deadline = time.monotonic() + limit_s

        def worker():
            while time.monotonic() < deadline:
                with lock:
                    if left[0] == 0:
                        return
                    left[0] -= 1
                o = self.login_attempt(src, ctx)
                with lock:
                    outcomes[o] = outcomes.get(o, 0) + 1

        c0, t0 = proc_cpu([self.vigil.pid]), time.monotonic()
        threads = [threading.Thread(target=worker) for _ in range(parallel)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - t0
        cpu = proc_cpu([self.vigil.pid]) - c0 - self.idle * wall
        n = sum(outcomes.values())
        return {"n": n, "outcomes": outcomes, "wall": wall, "cpu": max(cpu, 0.0)}

    def ids(self):
        a = self.a
        ctx = ssl.create_default_context(cafile=self.ca)
        ctx.check_hostname = False
        self.idle = self.idle_rate()
        print(f"\nIDS: vigil serve idle CPU {self.idle * 100:.2f} % of a core (subtracted)", flush=True)
        # Drive 127.0.0.2 into a block with real failed logins.
        warm = self.attempts(BLOCKED_SRC, 100, 120, ctx, 1)
        if warm["outcomes"].get("refused", 0) + warm["outcomes"].get("blocked", 0) == 0:
            raise RuntimeError(f"{BLOCKED_SRC} was not blocked after {warm['n']} failed logins: {warm}")
        n_to_block = warm["outcomes"].get("rejected", 0)
        print(f"IDS: {BLOCKED_SRC} blocked after {n_to_block} failed logins", flush=True)
        blocked = self.attempts(BLOCKED_SRC, a.blocked_count, 300, ctx, 2)
        if blocked["outcomes"].get("rejected"):
            raise RuntimeError(f"a blocked address got a password check: {blocked}")
        print(f"IDS: blocked   {blocked['n']} attempts in {blocked['wall']:.2f} s wall, server CPU "
              f"{blocked['cpu']:.3f} s ({blocked['outcomes']})", flush=True)
        allowed = self.attempts(ALLOWED_SRC, a.allowed_count, a.allowed_seconds, ctx, 2)
        if set(allowed["outcomes"]) != {"rejected"}:
            raise RuntimeError(f"the allow-listed address was not answered 401 every time: {allowed}")
        print(f"IDS: unblocked {allowed['n']} attempts in {allowed['wall']:.2f} s wall, server CPU "
              f"{allowed['cpu']:.3f} s ({allowed['outcomes']})", flush=True)
        return n_to_block, blocked, allowed

    # ---------------------------------------------------------------- report
    def summarize(self, res):
        best = {k: max(x["rps"] for x in v) for k, v in res.items()}
        ratios = [v["rps"] / n["rps"] for v, n in zip(res["vigil"], res["nginx"])]
        us = {k: min(x["cpu"] / x["requests"] * 1e6 for x in v) for k, v in res.items()}
        return best, ratios, us


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vigil", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--blocked-count", type=int, default=10000)
    ap.add_argument("--allowed-count", type=int, default=200)
    ap.add_argument("--allowed-seconds", type=float, default=40)
    a = ap.parse_args()

    b = Bench(a)
    try:
        b.setup()
        b.start_vigil()
        b.start_nginx()
        print(f"negotiated: {b.params}", flush=True)
        print(f"Vigil https://127.0.0.1:{b.vport} ({b.tls_version}), nginx https://127.0.0.1:{b.nport}, "
              f"answer {len(b.vigil_answer)} bytes, key: {b.key_type}", flush=True)
        keep = b.wrk_rounds("keepalive")
        hs = b.wrk_rounds("handshake")
        n_to_block, blocked, allowed = b.ids()
    finally:
        b.stop_all()

    load = " ".join(open("/proc/loadavg").read().split()[:3])
    kb, kr, kus = b.summarize(keep)
    hb, hr, hus = b.summarize(hs)
    k_ratio, h_ratio = kb["vigil"] / kb["nginx"], hb["vigil"] / hb["nginx"]
    k_ok, h_ok = k_ratio >= 1.0, h_ratio >= 1.0
    for r in hs["vigil"] + hs["nginx"]:
        if r["resumed"]:
            raise RuntimeError(f"a handshake run resumed sessions: {r}")
    hs_total = sum(r["handshakes"] or 0 for r in hs["vigil"] + hs["nginx"])

    per_blocked_cpu = blocked["cpu"] / blocked["n"]
    per_blocked_wall = blocked["wall"] / blocked["n"]
    per_allowed_cpu = allowed["cpu"] / allowed["n"]
    per_allowed_wall = allowed["wall"] / allowed["n"]
    ext_allowed_cpu = per_allowed_cpu * a.blocked_count
    ext_allowed_wall = per_allowed_wall * a.blocked_count
    cpu_ratio = per_allowed_cpu / per_blocked_cpu if per_blocked_cpu > 0 else float("inf")

    def verdict(ok):
        return "MET" if ok else "MISSED"

    print(f"\nkeep-alive requests/s: vigil {kb['vigil']:.0f}, nginx {kb['nginx']:.0f} (best rounds): "
          f"ratio {k_ratio:.2f} (per round {min(kr):.2f}-{max(kr):.2f}, median {median(kr):.2f}); goal >= 1.00: {verdict(k_ok)}")
    print(f"new TLS handshakes/s:  vigil {hb['vigil']:.0f}, nginx {hb['nginx']:.0f} (best rounds): "
          f"ratio {h_ratio:.2f} (per round {min(hr):.2f}-{max(hr):.2f}, median {median(hr):.2f}); goal >= 1.00: {verdict(h_ok)}")
    print(f"failed login, blocked address:   {per_blocked_cpu * 1e6:8.1f} us server CPU, "
          f"{per_blocked_wall * 1e3:7.3f} ms wall each; {blocked['n']} took {blocked['wall']:.1f} s")
    print(f"failed login, unblocked address: {per_allowed_cpu * 1e3:8.2f} ms server CPU, "
          f"{per_allowed_wall * 1e3:7.2f} ms wall each ({allowed['n']} measured); "
          f"10,000 extrapolated: {ext_allowed_cpu:.0f} s CPU, {ext_allowed_wall:.0f} s wall; "
          f"CPU ratio {cpu_ratio:.0f}x")

    nginx_version = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")

    def rows(res, us):
        out = []
        for name in ("vigil", "nginx"):
            rates = [x["rps"] for x in res[name]]
            out.append(f"| {name} | {max(rates):.0f} | {min(rates):.0f}-{max(rates):.0f} | {us[name]:.1f} |")
        return "\n".join(out)

    md = f"""# HTTPS API benchmark (Vigil vs nginx)

Written by `bench/https/run.sh` ({now}) on {cpu_model()}, {os.cpu_count()} cores, load average
{load} at the end (a shared build machine: other compilations ran during the run, and wrk, the
server under test and those jobs share the same 2 cores, so absolute numbers are noisy; the
ratios come from rounds that alternate the two servers within one invocation).

## Setup

- Vigil: `vigil serve` (release build), HTTPS listener on 127.0.0.1, one connection worker
  thread per core ({a.workers}), each a single-threaded runtime accepting and serving its own
  connections; rustls with aws-lc-rs, TLS 1.2 + 1.3, ALPN h2 + http/1.1.
  Endpoint `GET /api/v1/session` with `Authorization: Bearer <API token>` (admin role): IDS
  check at accept and per request, token lookup, role answer as JSON
  ({len(b.vigil_answer)} bytes body, {b.vigil_head_bytes} bytes of headers with the security
  headers).
- nginx (Debian package, {nginx_version}):
  `worker_processes {a.workers}`, the same certificate chain as Vigil sends ({b.chain_len} certificate(s), taken from
  `openssl s_client -showcerts`) and its key (`{b.key_source}`, {b.key_type}; key
  re-encoded by `openssl pkey` into the bench's directory, mode 0600), `ssl_protocols TLSv1.2
  TLSv1.3`, ALPN {b.nginx_alpn}, keep-alive on, `access_log off`, serving the same
  {len(b.vigil_answer)}-byte JSON as a static file at the same path.
- wrk {a.threads} threads, {a.connections} connections, {a.duration} s per round, {a.rounds}
  rounds per test alternating the order (Vigil first in odd rounds, nginx first in even ones).
  Negotiated with wrk's OpenSSL (checked with `openssl s_client`): Vigil {b.params["vigil"]};
  nginx {b.params["nginx"]}. No ALPN from wrk, so HTTP/1.1 on both.
- Handshake test: `-H 'Connection: close'`, so every request is a new TCP connection and TLS
  handshake. wrk keeps the previous session in its reused `SSL` object and would offer
  resumption; `bench/https/tls_resume_shim.c` (LD_PRELOAD) drops it after each `SSL_clear()`,
  so every handshake is a full one (certificate + signature + key exchange) for both servers,
  and counts completed and resumed handshakes: {hs_total} handshakes in the handshake runs,
  0 resumed (checked).
- Server CPU per request: user+system time of the server processes (`/proc/PID/stat`; nginx
  master + workers) over a round, divided by the requests of that round (best round shown).

## Results

Keep-alive requests per second (authenticated JSON endpoint vs static file):

| server | best req/s | range over rounds | server CPU per request, us |
|---|---|---|---|
{rows(keep, kus)}

Ratio Vigil/nginx: **{k_ratio:.2f}** (best vs best); per round {", ".join(f"{x:.2f}" for x in kr)}
(median of the rounds {median(kr):.2f}). Goal "at least equal to nginx": **{verdict(k_ok)}**.

New TLS handshakes per second (one request per connection, full handshakes):

| server | best handshakes/s | range over rounds | server CPU per handshake, us |
|---|---|---|---|
{rows(hs, hus)}

Ratio Vigil/nginx: **{h_ratio:.2f}** (best vs best); per round {", ".join(f"{x:.2f}" for x in hr)}
(median of the rounds {median(hr):.2f}). Goal "at least equal to nginx": **{verdict(h_ok)}**. Server CPU per handshake, Vigil/nginx:
**{hus["vigil"] / hus["nginx"]:.2f}** (lower is cheaper). The handshake rate is bounded by the
client: wrk used {sum(x["wrk_cpu"] for x in hs["vigil"] + hs["nginx"]) / (2 * a.rounds * a.duration):.2f}
CPU-seconds per second on average while the servers used well under one core, so the per-handshake
server CPU is the steadier comparison.

Keep-alive server CPU per request, Vigil/nginx: **{kus["vigil"] / kus["nginx"]:.2f}**.

## Cost of failed logins: blocked vs unblocked address

`POST /api/v1/session` with the admin's name and a wrong password, each attempt on a new
connection, 2 at a time, from a Python client bound to a loopback source address (Linux routes
all of 127/8 to lo). `[access.ids]` defaults (notification_threshold 10, block until restart);
{ALLOWED_SRC} is on `allow_list`, so it is never blocked and every attempt is a full TLS
handshake plus an Argon2id verification answered 401. {BLOCKED_SRC} was blocked after
{n_to_block} real failed logins; from then on the listener closes its connections right after
`accept`, before TLS. Server CPU = `vigil serve` user+system time (`/proc/PID/stat`) minus its
idle rate ({b.idle * 100:.2f} % of a core) over the same wall time.

| source | attempts measured | wall s | server CPU s | per attempt: CPU | per attempt: wall | 10,000 attempts |
|---|---|---|---|---|---|---|
| blocked {BLOCKED_SRC} | {blocked['n']} | {blocked['wall']:.2f} | {blocked['cpu']:.3f} | {per_blocked_cpu * 1e6:.1f} us | {per_blocked_wall * 1e3:.3f} ms | {blocked['wall']:.1f} s wall, {blocked['cpu']:.2f} s CPU (measured) |
| allow-listed {ALLOWED_SRC} | {allowed['n']} | {allowed['wall']:.2f} | {allowed['cpu']:.3f} | {per_allowed_cpu * 1e3:.2f} ms | {per_allowed_wall * 1e3:.2f} ms | {ext_allowed_wall:.0f} s wall, {ext_allowed_cpu:.0f} s CPU (extrapolated) |

The unblocked run is bounded ({a.allowed_count} attempts or {a.allowed_seconds:.0f} s, whichever
comes first); its 10,000-attempt figures are per-attempt mean x 10,000 (Argon2id's cost does not
depend on how many attempts came before; the allow-listed address is never blocked).
A blocked address costs the server **{cpu_ratio:.0f} x** less CPU per attempt
({per_blocked_cpu * 1e6:.1f} us vs {per_allowed_cpu * 1e3:.2f} ms); the client-side figures
(wall time) include Python's own connection cost.
"""
    open(a.out, "w").write(md)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
