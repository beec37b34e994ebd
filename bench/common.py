"""What every benchmark driver under bench/ needs: its children (started in process groups of
their own and killed however the driver ends), the overall time limit, commands run with their
output, /proc CPU figures, the machine and commit a report names, and a Vigil installation
that listens on loopback only.

The drivers add bench/ to sys.path and import this module; it has no state of its own beyond
the list of children it started.
"""

import json
import os
import platform
import re
import resource
import signal
import socket
import subprocess
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
CHILDREN = []  # Popen objects, each the leader of its own process group

# ----- logging, children, time limit -----


def make_log(tag):
    """A log function that writes `[tag HH:MM:SS] message` lines to stderr."""

    def log(msg):
        print(f"[{tag} {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    return log


def spawn(cmd, die_with_parent=False, pidfile=None, **kw):
    """Starts `cmd` as the leader of a new process group and remembers it for
    kill_all_children(). `die_with_parent` has the kernel kill it if the driver dies (setpriv
    --pdeathsig); `pidfile` gets its pid appended, for a shell trap to clean up after."""
    if die_with_parent:
        cmd = ["setpriv", "--pdeathsig", "KILL", "--", *cmd]
    p = subprocess.Popen(cmd, start_new_session=True, **kw)
    CHILDREN.append(p)
    if pidfile:
        with open(pidfile, "a") as f:
            f.write(f"{p.pid}\n")
    return p


def kill_all_children():
    """SIGKILL to the process group of every child spawn() started, then reaps them."""
    for p in CHILDREN:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for p in CHILDREN:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


class Deadline(Exception):
    pass


def on_alarm(_sig, _frame):
    raise Deadline("the benchmark exceeded its overall time limit")


def on_term(sig, _frame):
    raise KeyboardInterrupt(f"signal {sig}")


def run(cmd, timeout=120, **kw):
    """Runs `cmd` to completion and returns its stdout; raises RuntimeError with its stderr
    when it fails."""
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({r.returncode}): {r.stderr.strip()[:800]}")
    return r.stdout


def read_stats(path):
    """The JSON a test server rewrites now and then (its frame counters), or None when it
    cannot be read within a second (it may be in the middle of a rewrite)."""
    for _ in range(50):
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, ValueError):
            time.sleep(0.02)
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----- /proc -----


def wait_port(port, proc, what, limit=30.0, interval=0.05):
    """Waits until something accepts on 127.0.0.1:port; raises if `proc` exits first or the
    limit passes."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(interval)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {limit:.0f} s")


def _stat_fields(path):
    """The fields of a /proc stat file after the command name (field 3, state, first)."""
    with open(path) as f:
        data = f.read()
    return data[data.index("(") + 1:data.rindex(")")], data[data.rindex(")") + 2:].split()


def proc_ticks(pid):
    """utime+stime of a whole process (all its threads, alive or exited) in clock ticks, or
    None when it is gone."""
    try:
        _, rest = _stat_fields(f"/proc/{pid}/stat")
    except OSError:
        return None
    return int(rest[11]) + int(rest[12])


def proc_sys_ticks(pid):
    """stime alone (kernel time) of a whole process in clock ticks, 0 when it is gone."""
    try:
        _, rest = _stat_fields(f"/proc/{pid}/stat")
    except OSError:
        return 0
    return int(rest[12])


def threads(pid):
    """[(tid, name, utime, stime)] of the live threads of a process (ticks); the main thread's
    name is the binary's file name."""
    out = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            name, rest = _stat_fields(f"/proc/{pid}/task/{tid}/stat")
        except OSError:
            continue
        out.append((tid, name, int(rest[11]), int(rest[12])))
    return out


def children_cpu():
    """user+system seconds of the children this process has waited for."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def loadavg():
    """The 1-minute load average."""
    return loadavgs()[0]


def loadavgs():
    """The 1-, 5- and 15-minute load averages."""
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


# ----- what a report names -----


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_state(root):
    """(short commit, [files under crates/ changed since it]); ("unknown", []) without git."""
    try:
        rev = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=20).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "crates"],
                               capture_output=True, text=True, timeout=20).stdout
        return rev, sorted({line[3:] for line in dirty.splitlines() if line.strip()})
    except (OSError, subprocess.SubprocessError):
        return "unknown", []


def git_rev(root):
    """`commit abc1234`, and whether the sources under crates/ differ from it."""
    rev, dirty = git_state(root)
    if rev == "unknown":
        return rev
    return f"commit {rev}" + (" plus uncommitted changes under crates/" if dirty else "")


# ----- a Vigil installation for a benchmark -----


def write_secret(path, text):
    """Writes `text` to a new file only its owner can read (passwords, tokens, keys)."""
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(text)


def loopback_only(text, api_port):
    """vigil.toml as `vigil init` wrote it, with the API on 127.0.0.1:api_port and every other
    listener on a free loopback port: nothing of a benchmark listens beyond loopback."""
    for old, new in [('bind = "0.0.0.0:8443"', f'bind = "127.0.0.1:{api_port}"'),
                     ('bind = "0.0.0.0:8444"', f'bind = "127.0.0.1:{free_port()}"'),
                     ('bind = "0.0.0.0:9443"', f'bind = "127.0.0.1:{free_port()}"'),
                     ('bind = "0.0.0.0:1234"', f'bind = "127.0.0.1:{free_port()}"'),
                     ('bind = "0.0.0.0:6514"', f'bind = "127.0.0.1:{free_port()}"'),
                     ('bind = "127.0.0.1:9464"', f'bind = "127.0.0.1:{free_port()}"')]:
        if old not in text:
            raise RuntimeError(f"vigil.toml layout changed: no '{old}'")
        text = text.replace(old, new)
    return text


def admin_token(vigil, config):
    """A new admin API token from `vigil token create`."""
    out = run([vigil, "--config", config, "token", "create", "bench", "--role", "admin"])
    m = re.search(r"(vgt_[0-9a-f]{16}_[0-9a-f]{64})", out)
    if not m:
        raise RuntimeError(f"no token in `vigil token create` output: {out}")
    return m.group(1)


def served_key_and_chain(port, data_dir, work):
    """The certificate chain Vigil serves on 127.0.0.1:port (from `openssl s_client`) and the
    key in its PKI directory that matches it, as files another server (nginx) can read: the
    chain as sent, the key re-encoded by `openssl pkey` with mode 0600. Returns (chain file,
    key file, the key's own file, the number of certificates in the chain)."""
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                        "-servername", "localhost", "-showcerts"], input="", capture_output=True,
                       text=True, timeout=30)
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?", r.stdout, re.S)
    if not blocks:
        raise RuntimeError(f"openssl s_client saw no certificate from Vigil: {r.stderr[:300]}")
    chain = os.path.join(work, "server-chain.pem")
    with open(chain, "w") as f:
        f.write("".join(b if b.endswith("\n") else b + "\n" for b in blocks))
    pub = run(["openssl", "x509", "-noout", "-pubkey"], input=blocks[0])
    pki = os.path.join(data_dir, "pki")
    for root, _, files in os.walk(pki):
        for name in sorted(files):
            k = os.path.join(root, name)
            try:
                with open(k, "rb") as f:
                    if b"PRIVATE KEY-----" not in f.read(4096):
                        continue
                if run(["openssl", "pkey", "-in", k, "-pubout"]) != pub:
                    continue
            except (OSError, RuntimeError):
                continue
            key = os.path.join(work, "server-key.pem")
            write_secret(key, run(["openssl", "pkey", "-in", k]))
            return chain, key, k, len(blocks)
    raise RuntimeError(f"no key under {pki} matches the certificate Vigil serves")
