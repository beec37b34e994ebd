#!/usr/bin/env python3
"""A mail server for Vigil's tests: Debian's aiosmtpd on a loopback port.

Modes: `starttls` (STARTTLS offered and required before MAIL), `implicit` (TLS from the first
byte) and `plain` (no TLS offered at all, to check that Vigil refuses to send). With --user
and --password-file, AUTH is required (and only offered over TLS). Every message accepted is
written to --out as NNNNNN.json: envelope, content, whether the session was encrypted and who
logged in. Prints READY when it listens; runs until stdin closes or SIGTERM.
"""

import argparse
import json
import os
import signal
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--cert")
parser.add_argument("--key")
parser.add_argument("--mode", choices=["starttls", "implicit", "plain"], default="starttls")
parser.add_argument("--user")
parser.add_argument("--password-file")
args = parser.parse_args()

password = None
if args.password_file:
    with open(args.password_file, encoding="utf-8") as f:
        password = f.read().strip()


class Handler:
    def __init__(self):
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += 1
            n = self.count
        login = session.login_data.decode() if session.authenticated and session.login_data else None
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "content": envelope.content.decode("utf-8", "replace"),
            # STARTTLS sets session.ssl; an implicit-TLS transport carries its ssl_object.
            "tls": session.ssl is not None
            or server.transport.get_extra_info("ssl_object") is not None,
            "login": login,
        }
        tmp = os.path.join(args.out, f".{n:06}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(args.out, f"{n:06}.json"))
        return "250 Message accepted"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == args.user
        and auth_data.password.decode() == password
    )
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


def tls_context():
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(args.cert, args.key)
    return ctx


kwargs = {"hostname": "127.0.0.1", "port": args.port, "server_hostname": "mail.test"}
if args.mode == "starttls":
    kwargs["tls_context"] = tls_context()
    kwargs["require_starttls"] = True
elif args.mode == "implicit":
    kwargs["ssl_context"] = tls_context()
if args.user:
    kwargs["authenticator"] = authenticator
    kwargs["auth_required"] = True
    # aiosmtpd counts only STARTTLS as TLS for auth_require_tls; implicit TLS is TLS too.
    kwargs["auth_require_tls"] = args.mode == "starttls"
else:
    kwargs["auth_require_tls"] = False

controller = Controller(Handler(), **kwargs)
controller.start()
print("READY", flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
stop.wait()
controller.stop()
