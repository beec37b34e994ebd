#!/usr/bin/python3
"""An ONVIF device service that requires HTTP Digest (RFC 7616) in front of every request, as
many cameras do, for vigil-onvif's tests (crates/onvif/tests/digest_peer.rs).

Written from RFC 7616 with the standard library only (http.server, hashlib), independently of
the Rust client and of the `http-auth` crate it uses:

  * every POST without a valid `Authorization: Digest ...` is answered 401 with one challenge
    per --algorithm (MD5, SHA-256; in the order given), qop="auth", a fresh nonce and an
    opaque value;
  * a response is checked the RFC way: HA1 = H(user:realm:password), HA2 = H(POST:uri),
    response = H(HA1:nonce:nc:cnonce:qop:HA2), with the nonce one this server issued, the
    opaque echoed, the uri equal to the request target, qop=auth and a nonce count that
    grows per nonce (a replayed count is refused);
  * a valid request is answered with GetSystemDateAndTime or GetDeviceInformation (manufacturer
    "digest-peer", the --serial given), by the SOAP action; anything else gets a SOAP fault.

Protocol with the test:
  * stdout: exactly one line `READY port=<n>` once listening on 127.0.0.1;
  * stderr: one line per request: `AUTH ok <algorithm>`, `AUTH missing` or `AUTH bad <reason>`;
  * exits on SIGTERM, or when stdin closes (the test process went away).

The password is an argument: this is a test peer; Vigil itself never takes secrets on its
command line.
"""

import argparse
import hashlib
import http.server
import os
import re
import secrets
import sys
import threading
import time

HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}

DEVICE_INFO = """<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:tds="http://www.onvif.org/ver10/device/wsdl">
<s:Body><tds:GetDeviceInformationResponse>
<tds:Manufacturer>digest-peer</tds:Manufacturer><tds:Model>RFC7616</tds:Model>
<tds:FirmwareVersion>1.0</tds:FirmwareVersion><tds:SerialNumber>{serial}</tds:SerialNumber>
<tds:HardwareId>1</tds:HardwareId>
</tds:GetDeviceInformationResponse></s:Body></s:Envelope>"""

DATE_TIME = """<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema">
<s:Body><tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>
<tt:DateTimeType>NTP</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings>
<tt:UTCDateTime><tt:Time><tt:Hour>{h}</tt:Hour><tt:Minute>{m}</tt:Minute><tt:Second>{s}</tt:Second></tt:Time>
<tt:Date><tt:Year>{y}</tt:Year><tt:Month>{mo}</tt:Month><tt:Day>{d}</tt:Day></tt:Date></tt:UTCDateTime>
</tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse></s:Body></s:Envelope>"""

FAULT = """<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><s:Fault>
<s:Code><s:Value>s:Receiver</s:Value></s:Code><s:Reason><s:Text xml:lang="en">not offered by this peer</s:Text></s:Reason>
</s:Fault></s:Body></s:Envelope>"""

PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))\s*,?')


def parse_digest(value):
    """The parameters of a `Digest ...` Authorization value, or None."""
    if not value or not value[:7].lower() == "digest ":
        return None
    params, rest = {}, value[7:]
    while rest.strip():
        m = PARAM.match(rest)
        if not m:
            return None
        key = m.group(1).lower()
        params[key] = m.group(2).replace('\\"', '"') if m.group(2) is not None else m.group(3)
        rest = rest[m.end():]
    return params


class State:
    def __init__(self, args):
        self.args = args
        self.realm = "vigil-digest-peer"
        self.opaque = secrets.token_hex(8)
        self.nonces = {}  # nonce -> highest nc seen
        self.lock = threading.Lock()

    def challenges(self):
        out = []
        with self.lock:
            for alg in self.args.algorithm:
                nonce = secrets.token_hex(16)
                self.nonces[nonce] = 0
                out.append(
                    f'Digest realm="{self.realm}", qop="auth", algorithm={alg}, '
                    f'nonce="{nonce}", opaque="{self.opaque}"'
                )
        return out

    def check(self, header, uri):
        p = parse_digest(header)
        if p is None:
            return "missing"
        alg = p.get("algorithm", "MD5")
        if alg not in self.args.algorithm:
            return f"bad algorithm {alg}"
        for key in ("username", "realm", "nonce", "uri", "response", "qop", "nc", "cnonce", "opaque"):
            if key not in p:
                return f"bad missing {key}"
        if p["username"] != self.args.user or p["realm"] != self.realm:
            return "bad user or realm"
        if p["opaque"] != self.opaque or p["qop"] != "auth" or p["uri"] != uri:
            return "bad opaque, qop or uri"
        try:
            nc = int(p["nc"], 16)
        except ValueError:
            return "bad nc"
        with self.lock:
            last = self.nonces.get(p["nonce"])
            if last is None:
                return "bad unknown nonce"
            if nc <= last:
                return "bad replayed nc"
        h = lambda s: HASHES[alg](s.encode()).hexdigest()  # noqa: E731
        ha1 = h(f"{self.args.user}:{self.realm}:{self.args.password}")
        ha2 = h(f"POST:{uri}")
        want = h(f"{ha1}:{p['nonce']}:{p['nc']}:{p['cnonce']}:auth:{ha2}")
        if not secrets.compare_digest(want, p["response"]):
            return "bad response"
        with self.lock:
            self.nonces[p["nonce"]] = nc
        return f"ok {alg}"


def handler(state):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length > 1 << 20:
                self.send_error(413)
                return
            self.rfile.read(length)
            verdict = state.check(self.headers.get("Authorization"), self.path)
            print(f"AUTH {verdict}", file=sys.stderr, flush=True)
            if not verdict.startswith("ok"):
                body = b"unauthorized"
                self.send_response(401)
                for c in state.challenges():
                    self.send_header("WWW-Authenticate", c)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                return
            action = self.headers.get("Content-Type", "")
            if "GetDeviceInformation" in action:
                body, status = DEVICE_INFO.format(serial=self.args_serial()), 200
            elif "GetSystemDateAndTime" in action:
                t = time.gmtime()
                body, status = (
                    DATE_TIME.format(
                        h=t.tm_hour, m=t.tm_min, s=t.tm_sec, y=t.tm_year, mo=t.tm_mon, d=t.tm_mday
                    ),
                    200,
                )
            else:
                body, status = FAULT, 500
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/soap+xml; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        def args_serial(self):
            return state.args.serial

    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--user", default="admin")
    ap.add_argument("--password", required=True)
    ap.add_argument("--serial", default="SN-DIGEST")
    ap.add_argument(
        "--algorithm", action="append", choices=sorted(HASHES), help="offered, in order (repeat)"
    )
    args = ap.parse_args()
    args.algorithm = args.algorithm or ["MD5"]
    state = State(args)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), handler(state))
    server.daemon_threads = True
    print(f"READY port={server.server_address[1]}", flush=True)

    def watch_parent():
        # The test keeps our stdin open; when it goes away, so do we.
        try:
            while os.read(0, 1024):
                pass
        except OSError:
            pass
        server.shutdown()

    threading.Thread(target=watch_parent, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
