#!/usr/bin/python3
"""Driver of bench/scale/run.sh's `api` part: the management API's latency with the embedded
SQLite database and with PostgreSQL 15 under the same load, in the same invocation.

Two `vigil serve` (management data in SQLite; the same data moved to PostgreSQL by `vigil db
copy-from-sqlite`, docs/database.md), both on loopback, PostgreSQL on 127.0.0.1 over TLS with
`sslmode=verify-full` and a password (the documented remote setup, here on one machine: the
network round trip is loopback's), durability on (fsync, synchronous_commit: its defaults).
wrk drives each endpoint with the same threads and connections for the same time; rounds
alternate the order (SQLite first, then PostgreSQL first, ...). Endpoints, as the web client
calls them with a session cookie (each request checks the session in the database):

  session   GET /api/v1/session       who am I (session lookup only)
  users     GET /api/v1/users         list of users with their grants
  audit     GET /api/v1/audit?limit=50  the newest audit entries (the audit page)

Reported per endpoint: requests/s and wrk's latency percentiles (50, 90, 99) of the best round
of each backend, and the PostgreSQL / SQLite ratio of each. A benchmark, not a test: the
numbers are printed and written to the output file, nothing is asserted.
"""

import argparse
import datetime
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import (  # noqa: E402
    cpu_model, free_port, git_rev, loadavg, loopback_only, run, wait_port, write_secret)

ADMIN_PASSWORD = "bench-Scale-4k9p-Harbour"
PG_PASSWORD = "bench-pg-5Rt2-Quarry"
ENDPOINTS = [
    ("session", "/api/v1/session"),
    ("users", "/api/v1/users"),
    ("audit", "/api/v1/audit?limit=50"),
]
PG_BIN = os.environ.get("VIGIL_PG_BIN", "/usr/lib/postgresql/15/bin")


def as_postgres(cmd):
    """PostgreSQL refuses to run as root: as root, run its programs as Debian's `postgres`."""
    return ["runuser", "-u", "postgres", "--"] + cmd if os.geteuid() == 0 else cmd


class Postgres:
    """A throw-away PostgreSQL 15 with TLS on 127.0.0.1 (certificate from a CA made here)."""

    def __init__(self, work):
        self.work = work
        self.dir = os.path.join(work, "pg")
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "sock")
        self.port = free_port()
        self.proc = None

    def make_tls(self):
        d = self.dir
        self.ca = os.path.join(d, "ca.crt")
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", os.path.join(d, "ca.key"), "-out", self.ca, "-days", "2",
             "-subj", "/CN=bench database CA"])
        run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", os.path.join(d, "server.key"), "-out", os.path.join(d, "server.csr"),
             "-subj", "/CN=localhost"])
        ext = os.path.join(d, "ext.cnf")
        open(ext, "w").write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        run(["openssl", "x509", "-req", "-in", os.path.join(d, "server.csr"), "-CA", self.ca,
             "-CAkey", os.path.join(d, "ca.key"), "-CAcreateserial", "-days", "2",
             "-extfile", ext, "-out", os.path.join(d, "server.crt")])

    def start(self):
        os.makedirs(self.sock, exist_ok=True)
        self.make_tls()
        pwfile = os.path.join(self.dir, "su.pw")
        write_secret(pwfile, PG_PASSWORD + "\n")
        if os.geteuid() == 0:
            # The postgres user must reach its directory through ours.
            os.chmod(self.work, 0o755)
            shutil.chown(self.dir, "postgres", "postgres")
            for name in os.listdir(self.dir):
                shutil.chown(os.path.join(self.dir, name), "postgres", "postgres")
        run(as_postgres([f"{PG_BIN}/initdb", "-D", self.data, "-U", "vigil", "--auth-local=trust",
                         "--auth-host=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8"]),
            timeout=120)
        for name in ("server.crt", "server.key"):
            shutil.copy(os.path.join(self.dir, name), os.path.join(self.data, name))
            if os.geteuid() == 0:
                shutil.chown(os.path.join(self.data, name), "postgres", "postgres")
        os.chmod(os.path.join(self.data, "server.key"), 0o600)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(f"""
listen_addresses = '127.0.0.1'
port = {self.port}
unix_socket_directories = '{self.sock}'
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
max_connections = 100
""")
        with open(os.path.join(self.data, "pg_hba.conf"), "w") as f:
            f.write("local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n")
        log = open(os.path.join(self.dir, "postgres.log"), "w")
        self.proc = subprocess.Popen(as_postgres([f"{PG_BIN}/postgres", "-D", self.data]),
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_port(self.port, self.proc, "postgres", limit=60, interval=0.1)
        # The port opens before recovery ends ("the database system is starting up").
        deadline = time.monotonic() + 60
        while subprocess.run([f"{PG_BIN}/pg_isready", "-q", "-h", self.sock, "-p",
                              str(self.port)]).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not become ready within 60 s")
            time.sleep(0.1)
        run(as_postgres([f"{PG_BIN}/psql", "-X", "-q", "-h", self.sock, "-p", str(self.port),
                         "-U", "vigil", "-d", "postgres", "-c", "CREATE DATABASE vigil"]))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Server:
    """One `vigil serve` on loopback with its own data directory."""

    def __init__(self, a, work, name):
        self.a, self.name = a, name
        self.work = os.path.join(work, name)
        os.makedirs(self.work)
        self.config = os.path.join(self.work, "vigil.toml")
        self.data = os.path.join(self.work, "data")
        self.port = free_port()
        self.proc = None

    def init(self):
        pw = os.path.join(self.work, "admin.pw")
        write_secret(pw, ADMIN_PASSWORD + "\n")
        run([self.a.vigil, "--config", self.config, "init", "--data-dir", self.data,
             "--admin-password-file", pw], timeout=120)
        text = loopback_only(open(self.config).read(), self.port)
        # No camera: the API alone is measured (the sample camera would record meanwhile).
        text = re.sub(r"(?ms)^\[\[cameras\]\].*?(?=^\[|\Z)", "", text)
        open(self.config, "w").write(text)

    def use_postgres(self, pg):
        pwfile = os.path.join(self.work, "db.pw")
        write_secret(pwfile, PG_PASSWORD + "\n")
        with open(self.config, "a") as f:
            f.write(f"""
[database]
url = "postgres://vigil@localhost:{pg.port}/vigil?sslmode=verify-full"
ca_file = "{pg.ca}"
password_file = "{pwfile}"
""")
        out = run([self.a.vigil, "--config", self.config, "db", "copy-from-sqlite"], timeout=120)
        print(f"  {out.strip().splitlines()[-1] if out.strip() else 'copied'}", flush=True)

    def start(self):
        log = open(os.path.join(self.work, "serve.log"), "w")
        env = dict(os.environ, VIGIL_LOG="warn")
        self.proc = subprocess.Popen([self.a.vigil, "--config", self.config, "serve"],
                                     stdout=log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        wait_port(self.port, self.proc, f"vigil serve ({self.name})", interval=0.1)
        self.login()

    def login(self):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # loopback to our own child; the cookie is what we need
        body = json.dumps({"username": "admin", "password": ADMIN_PASSWORD}).encode()
        with socket.create_connection(("127.0.0.1", self.port)) as s:
            with ctx.wrap_socket(s, server_hostname="localhost") as t:
                t.sendall(b"POST /api/v1/session HTTP/1.1\r\nHost: localhost\r\n"
                          b"Content-Type: application/json\r\nConnection: close\r\n"
                          + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                data = b""
                while chunk := t.recv(65536):
                    data += chunk
        head = data.partition(b"\r\n\r\n")[0].decode("latin-1")
        m = re.search(r"(?im)^set-cookie: (__Host-vigil_session=[0-9a-f]+)", head)
        if not head.startswith("HTTP/1.1 200") or not m:
            raise RuntimeError(f"{self.name}: login answered {head[:300]!r}")
        self.cookie = m.group(1)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def wrk(a, server, path):
    out = run(["wrk", "-t", str(a.threads), "-c", str(a.connections), "-d", f"{a.duration}s",
               "--latency", "-H", f"Cookie: {server.cookie}", f"https://127.0.0.1:{server.port}{path}"],
              timeout=a.duration + 60)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"{server.name} {path}: {non2xx.group(1)} error answers\n{out}")
    lat = {}
    for p in ("50", "90", "99"):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        v, unit = float(m.group(1)), m.group(2)
        lat[p] = v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
    return {"rps": rps, "lat_ms": lat}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--vigil", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    os.makedirs(a.work, exist_ok=True)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    pg = Postgres(a.work)
    servers = {"sqlite": Server(a, a.work, "sqlite"), "postgres": Server(a, a.work, "postgres")}
    results = {b: {e: [] for e, _ in ENDPOINTS} for b in servers}
    loads = []
    try:
        print("starting PostgreSQL 15 with TLS on loopback", flush=True)
        pg.start()
        for name, s in servers.items():
            s.init()
        print("moving the second server's management data to PostgreSQL", flush=True)
        servers["postgres"].use_postgres(pg)
        for s in servers.values():
            s.start()
        # Some audit history for the audit page (logins are audited).
        for s in servers.values():
            for _ in range(60):
                s.login()
        order = ["sqlite", "postgres"]
        for r in range(a.rounds):
            for name in (order if r % 2 == 0 else order[::-1]):
                for e, path in ENDPOINTS:
                    res = wrk(a, servers[name], path)
                    results[name][e].append(res)
                    loads.append(loadavg())
                    print(f"round {r + 1}/{a.rounds} {name:8} {e:8} {res['rps']:9.0f} req/s  "
                          f"p50 {res['lat_ms']['50']:.2f} ms  p99 {res['lat_ms']['99']:.2f} ms",
                          flush=True)
    finally:
        for s in servers.values():
            s.stop()
        pg.stop()

    lines = []
    summary = []
    for e, path in ENDPOINTS:
        best = {b: max(results[b][e], key=lambda x: x["rps"]) for b in servers}
        per_round = [pr["rps"] / sr["rps"] for pr, sr in zip(results["postgres"][e],
                                                               results["sqlite"][e])]
        s, q = best["sqlite"], best["postgres"]
        lines.append(
            f"| `{path}` | {s['rps']:.0f} | {q['rps']:.0f} | **{q['rps'] / s['rps']:.2f}** "
            f"({min(per_round):.2f}–{max(per_round):.2f}) | "
            f"{s['lat_ms']['50']:.2f} / {s['lat_ms']['90']:.2f} / {s['lat_ms']['99']:.2f} | "
            f"{q['lat_ms']['50']:.2f} / {q['lat_ms']['90']:.2f} / {q['lat_ms']['99']:.2f} | "
            f"{q['lat_ms']['50'] / s['lat_ms']['50']:.2f} / {q['lat_ms']['99'] / s['lat_ms']['99']:.2f} |")
        summary.append(f"{e}: PostgreSQL/SQLite req/s {q['rps'] / s['rps']:.2f}, "
                       f"p50 {q['lat_ms']['50'] / s['lat_ms']['50']:.2f}×, "
                       f"p99 {q['lat_ms']['99'] / s['lat_ms']['99']:.2f}×")
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = f"""## Management API: SQLite vs PostgreSQL ({now})

`bash bench/scale/run.sh api` at {git_rev(root)}; {cpu_model()}; load {min(loads):.1f}–{max(loads):.1f}.
wrk -t{a.threads} -c{a.connections}, {a.duration} s per run, {a.rounds} rounds alternating the
order; session cookie of the admin; PostgreSQL 15 on 127.0.0.1 over TLS (verify-full, SCRAM),
durability on. Best round of each backend; the ratio's range is over the rounds.

| endpoint | SQLite req/s | PostgreSQL req/s | PG / SQLite req/s (rounds) | SQLite latency p50 / p90 / p99 ms | PostgreSQL p50 / p90 / p99 ms | PG / SQLite p50 / p99 |
|---|---|---|---|---|---|---|
""" + "\n".join(lines) + "\n"
    print()
    print(text)
    print("\n".join(summary))
    with open(a.out, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
