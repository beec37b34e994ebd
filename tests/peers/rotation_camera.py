#!/usr/bin/python3
"""Cameras whose password can be rotated, built from real parts, for Vigil's rotation tests.

Each camera is a mount of one GStreamer RTSP server (the clip loops as in rtsp_server.py,
whose clip and mount code this reuses) with RTSP Digest authentication for the camera's own
user, and an ONVIF device service of its own over HTTPS (Python http.server + ssl, with a
certificate the test made) that checks WS-Security PasswordDigest and answers what Vigil's
add and rotation use: GetSystemDateAndTime, GetDeviceInformation, GetServices,
GetCapabilities, Media GetProfiles and GetStreamUri, GetUsers and SetUser, and (option
`advsec`) the ONVIF Advanced Security keystore and TLS server operations Vigil uses to install
a certificate: CreateRSAKeyPair, GetKeyStatus, CreatePKCS10CSR (keys and CSRs made by the
openssl command line, the private key never leaving the camera's directory), UploadCertificate
(refused without the matching private key when asked), CreateCertificationPath,
GetAssignedServerCertificates and Add/ReplaceServerCertificateAssignment, after which new
HTTPS connections get the assigned chain. SetUser changes
the password on both sides at once: the ONVIF digest check and the RTSP Digest credentials
(RTSPAuth.remove_digest/add_digest), so the old password is refused and the new one accepted
by both; and, as many cameras do, it closes the RTSP sessions open at that moment (of every
camera of the peer, or with `--drop-sessions camera` only of that camera), so clients log in
again.

Run it with Debian's /usr/bin/python3 (GStreamer introspection). Arguments:
  --clip FILE                 the clip every camera plays
  --camera NAME:USER:PASSWORD[:OPTION,...]   one per camera; options:
        setuser_fail           SetUser answers a SOAP fault and changes nothing
        setuser_delay=SECONDS  SetUser applies the new password, then waits before answering
        advsec                 offers the Advanced Security service
  --tls-cert, --tls-key       PEM files for every camera's HTTPS
  --drop-sessions all|camera  after SetUser, close every camera's RTSP sessions (default) or
                              only the changed camera's
  --state-file FILE           JSON rewritten at every change: each camera's user, current
                              password, SetUser count, whether its ONVIF service listens and
                              the SHA-256 of the certificate its HTTPS serves

Protocol with the harness (vigil_testkit::rotation_camera):
  * stdout: `READY {json}` once everything listens: the RTSP port and each camera's ONVIF
    port; then `APPLIED NAME` each time a SetUser was applied (before its answer is sent).
  * stdin: commands, one a line: `unreachable NAME` closes the camera's ONVIF port (connections
    are refused), `reachable NAME` opens it again on the same port. EOF on stdin (the parent
    went away) stops the server.
  * SIGTERM/SIGINT: exit 0.
"""

import argparse
import base64
import hashlib
import json
import os
import re
import signal
import ssl
import subprocess
import tempfile
import sys
import threading
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rtsp_server as rs  # noqa: E402

from rtsp_server import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
TDS = "http://www.onvif.org/ver10/device/wsdl"
TRT = "http://www.onvif.org/ver10/media/wsdl"
TT = "http://www.onvif.org/ver10/schema"
TAS = "http://www.onvif.org/ver10/advancedsecurity/wsdl"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DIGEST = ("http://docs.oasis-open.org/wss/2004/01/"
          "oasis-200401-wss-username-token-profile-1.0#PasswordDigest")
# A request dated further from this clock than this is refused, as cameras do.
MAX_SKEW = timedelta(minutes=5)
# The largest request read.
MAX_REQUEST = 64 * 1024


def log(msg):
    print(f"rotation_camera: {msg}", file=sys.stderr, flush=True)


def esc(text):
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def envelope(body):
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<s:Envelope xmlns:s="{SOAP12}" xmlns:tds="{TDS}" xmlns:trt="{TRT}" xmlns:tt="{TT}" '
        'xmlns:ter="http://www.onvif.org/ver10/error">'
        f"<s:Body>{body}</s:Body></s:Envelope>"
    )


def fault(subcode, reason):
    return envelope(
        "<s:Fault><s:Code><s:Value>s:Sender</s:Value>"
        f"<s:Subcode><s:Value>ter:{subcode}</s:Value></s:Subcode></s:Code>"
        f'<s:Reason><s:Text xml:lang="en">{esc(reason)}</s:Text></s:Reason></s:Fault>'
    )


def sha256_der(der):
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def public_key_of_cert(der):
    done = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-pubkey"],
                          input=der, capture_output=True, check=False)
    return done.stdout if done.returncode == 0 else None


def public_key_of_key(path):
    done = subprocess.run(["openssl", "pkey", "-in", path, "-pubout"],
                          capture_output=True, check=False)
    return done.stdout if done.returncode == 0 else None


class Camera:
    """One camera: its RTSP user (in the shared RTSPAuth) and its ONVIF service."""

    def __init__(self, spec, index):
        parts = spec.split(":", 3)
        if len(parts) < 3 or not all(parts[:3]):
            raise ValueError(f"--camera {spec!r}: expected NAME:USER:PASSWORD[:OPTIONS]")
        self.name, self.user, self.password = parts[0], parts[1], parts[2]
        self.setuser_fail = False
        self.setuser_delay = 0.0
        self.advsec = False
        for opt in (parts[3].split(",") if len(parts) > 3 and parts[3] else []):
            if opt == "setuser_fail":
                self.setuser_fail = True
            elif opt.startswith("setuser_delay="):
                self.setuser_delay = float(opt.split("=", 1)[1])
            elif opt == "advsec":
                self.advsec = True
            else:
                raise ValueError(f"--camera {self.name}: unknown option {opt!r}")
        self.serial = f"ROT-{index:04d}"
        self.lock = threading.Lock()
        self.setuser_calls = 0
        self.nonces = set()
        self.port = 0
        self.httpd = None
        self.thread = None
        # TLS: the context new connections get, and the SHA-256 of the leaf it serves.
        self.ssl_context = None
        self.served_sha256 = ""
        # Advanced Security keystore: id -> {"key": path, "status": ok|generating};
        # id -> {"der": bytes, "key": key id or None}; path id -> [certificate ids].
        self.keys = {}
        self.certs = {}
        self.paths = {}
        self.assigned = []
        self.next_id = 0

    def token(self):
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", self.name)
        return token


class Peer:
    def __init__(self, args):
        self.args = args
        self.cameras = {}
        self.lock = threading.Lock()
        self.state_lock = threading.Lock()
        self.out_lock = threading.Lock()
        self.auth = None
        self.server = None
        self.rtsp_port = 0
        self.ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ssl_context.load_cert_chain(args.tls_cert, args.tls_key)
        with open(args.tls_cert, encoding="ascii") as f:
            self.served_sha256 = sha256_der(ssl.PEM_cert_to_DER_cert(f.read()))
        # Keys and certificates the cameras make (removed with the process).
        self.keystore = tempfile.TemporaryDirectory(prefix="rotation-camera-keys-")

    def say(self, line):
        with self.out_lock:
            print(line, flush=True)

    def write_state(self):
        if not self.args.state_file:
            return
        with self.lock:
            doc = {
                "rtsp_port": self.rtsp_port,
                "cameras": {
                    c.name: {
                        "user": c.user,
                        "password": c.password,
                        "setuser_calls": c.setuser_calls,
                        "onvif_port": c.port,
                        "reachable": c.httpd is not None,
                        "certificate_sha256": c.served_sha256,
                    }
                    for c in self.cameras.values()
                },
            }
        # One writer at a time: request threads change cameras concurrently.
        with self.state_lock:
            tmp = f"{self.args.state_file}.tmp.{os.getpid()}"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(doc, f, indent=1, sort_keys=True)
            os.replace(tmp, self.args.state_file)

    # ----- ONVIF over HTTPS -----

    def listen(self, cam):
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length <= 0 or length > MAX_REQUEST:
                    self.answer(400, fault("InvalidArgVal", "request size"))
                    return
                body = self.rfile.read(length)
                status, text, after = peer.handle(cam, body)
                self.answer(status, text)
                if after:
                    after()

            def answer(self, status, text):
                data = text.encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/soap+xml; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)
                self.close_connection = True

        class TlsServer(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self):
                # Each connection gets the context assigned at that moment, so a certificate
                # assignment applies from the next connection on.
                sock, addr = self.socket.accept()
                return cam.ssl_context.wrap_socket(sock, server_side=True), addr

        if cam.ssl_context is None:
            cam.ssl_context = self.ssl_context
            cam.served_sha256 = self.served_sha256
        httpd = TlsServer(("127.0.0.1", cam.port), Handler)
        cam.port = httpd.server_address[1]
        cam.httpd = httpd
        cam.thread = threading.Thread(target=httpd.serve_forever, name=f"onvif-{cam.name}",
                                      daemon=True)
        cam.thread.start()

    def close(self, cam):
        httpd = cam.httpd
        if httpd is None:
            return
        cam.httpd = None
        httpd.shutdown()
        httpd.server_close()

    def authenticated(self, cam, root):
        """Whether the request carries a valid PasswordDigest for the camera's user now."""
        token = root.find(f".//{{{WSSE}}}UsernameToken")
        if token is None:
            return False
        user = token.findtext(f"{{{WSSE}}}Username") or ""
        pw = token.find(f"{{{WSSE}}}Password")
        nonce_text = token.findtext(f"{{{WSSE}}}Nonce") or ""
        created = token.findtext(f"{{{WSU}}}Created") or ""
        if pw is None or pw.get("Type") != DIGEST or not nonce_text or not created:
            return False
        try:
            nonce = base64.b64decode(nonce_text, validate=True)
            when = datetime.fromisoformat(created.replace("Z", "+00:00"))
        except ValueError:
            return False
        if abs(datetime.now(timezone.utc) - when) > MAX_SKEW:
            return False
        with cam.lock:
            expected = base64.b64encode(
                hashlib.sha1(nonce + created.encode() + cam.password.encode()).digest()
            ).decode()
            if user != cam.user or (pw.text or "").strip() != expected:
                return False
            if nonce_text in cam.nonces:
                return False  # a replayed request
            cam.nonces.add(nonce_text)
        return True

    def handle(self, cam, body):
        """(HTTP status, SOAP answer, what to do after answering)."""
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            return 400, fault("WellFormed", "not XML"), None
        req = root.find(f"{{{SOAP12}}}Body")
        first = next(iter(req), None) if req is not None else None
        if first is None:
            return 400, fault("InvalidArgVal", "empty body"), None
        op = first.tag.split("}", 1)[-1]
        if op == "GetSystemDateAndTime":
            now = datetime.now(timezone.utc)
            return 200, envelope(
                "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
                "<tt:DateTimeType>NTP</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings>"
                f"<tt:UTCDateTime><tt:Date><tt:Year>{now.year}</tt:Year><tt:Month>{now.month}</tt:Month>"
                f"<tt:Day>{now.day}</tt:Day></tt:Date><tt:Time><tt:Hour>{now.hour}</tt:Hour>"
                f"<tt:Minute>{now.minute}</tt:Minute><tt:Second>{now.second}</tt:Second></tt:Time>"
                "</tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
            ), None
        if not self.authenticated(cam, root):
            return 400, fault("NotAuthorized", "Sender not Authorized"), None
        base = f"https://127.0.0.1:{cam.port}/onvif"
        if op == "GetDeviceInformation":
            return 200, envelope(
                "<tds:GetDeviceInformationResponse><tds:Manufacturer>Vigil test</tds:Manufacturer>"
                f"<tds:Model>rotation camera</tds:Model><tds:FirmwareVersion>1.0</tds:FirmwareVersion>"
                f"<tds:SerialNumber>{cam.serial}</tds:SerialNumber><tds:HardwareId>rot</tds:HardwareId>"
                "</tds:GetDeviceInformationResponse>"
            ), None
        if op == "GetServices":
            return 200, envelope(
                "<tds:GetServicesResponse>"
                f"<tds:Service><tds:Namespace>{TDS}</tds:Namespace><tds:XAddr>{base}/device_service</tds:XAddr>"
                "<tds:Version><tt:Major>2</tt:Major><tt:Minor>0</tt:Minor></tds:Version></tds:Service>"
                f"<tds:Service><tds:Namespace>{TRT}</tds:Namespace><tds:XAddr>{base}/media_service</tds:XAddr>"
                "<tds:Version><tt:Major>2</tt:Major><tt:Minor>0</tt:Minor></tds:Version></tds:Service>"
                + (f"<tds:Service><tds:Namespace>{TAS}</tds:Namespace><tds:XAddr>{base}/security_service</tds:XAddr>"
                   "<tds:Version><tt:Major>1</tt:Major><tt:Minor>3</tt:Minor></tds:Version></tds:Service>"
                   if cam.advsec else "")
                + "</tds:GetServicesResponse>"
            ), None
        if op == "GetCapabilities":
            return 200, envelope(
                "<tds:GetCapabilitiesResponse><tds:Capabilities>"
                f"<tt:Device><tt:XAddr>{base}/device_service</tt:XAddr></tt:Device>"
                f"<tt:Media><tt:XAddr>{base}/media_service</tt:XAddr></tt:Media>"
                "</tds:Capabilities></tds:GetCapabilitiesResponse>"
            ), None
        if op == "GetProfiles":
            return 200, envelope(
                '<trt:GetProfilesResponse><trt:Profiles token="main" fixed="true">'
                "<tt:Name>main</tt:Name><tt:VideoEncoderConfiguration token=\"venc\">"
                "<tt:Name>venc</tt:Name><tt:Encoding>H264</tt:Encoding>"
                f"<tt:Resolution><tt:Width>{self.args.width}</tt:Width><tt:Height>{self.args.height}</tt:Height></tt:Resolution>"
                "<tt:RateControl><tt:FrameRateLimit>25</tt:FrameRateLimit><tt:BitrateLimit>1024</tt:BitrateLimit></tt:RateControl>"
                "</tt:VideoEncoderConfiguration></trt:Profiles></trt:GetProfilesResponse>"
            ), None
        if op == "GetStreamUri":
            uri = f"rtsp://127.0.0.1:{self.rtsp_port}/{cam.name}"
            return 200, envelope(
                "<trt:GetStreamUriResponse><trt:MediaUri>"
                f"<tt:Uri>{esc(uri)}</tt:Uri><tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>"
                "<tt:InvalidAfterReboot>false</tt:InvalidAfterReboot><tt:Timeout>PT0S</tt:Timeout>"
                "</trt:MediaUri></trt:GetStreamUriResponse>"
            ), None
        if op == "GetUsers":
            return 200, envelope(
                "<tds:GetUsersResponse><tds:User>"
                f"<tt:Username>{esc(cam.user)}</tt:Username><tt:UserLevel>Administrator</tt:UserLevel>"
                "</tds:User></tds:GetUsersResponse>"
            ), None
        if op == "SetUser":
            return self.set_user(cam, first)
        if cam.advsec and first.tag.startswith(f"{{{TAS}}}"):
            return self.advanced_security(cam, op, first)
        return 400, fault("ActionNotSupported", f"{op} is not supported here"), None

    def set_user(self, cam, request):
        user = request.find(f"{{{TDS}}}User")
        name = user.findtext(f"{{{TT}}}Username") if user is not None else None
        new = user.findtext(f"{{{TT}}}Password") if user is not None else None
        with cam.lock:
            cam.setuser_calls += 1
        self.write_state()
        if cam.setuser_fail:
            return 400, fault("OperationProhibited", "password change is locked on this camera"), None
        if name != cam.user:
            return 400, fault("UsernameMissing", "no such user"), None
        if not new:
            return 400, fault("PasswordTooWeak", "empty password"), None
        with cam.lock:
            cam.password = new
            cam.nonces.clear()
        # The RTSP side at once: the old credentials are refused from now on. On the GLib main
        # loop, where the RTSP server checks credentials (RTSPAuth is not changed safely from
        # the HTTP threads while another camera's SetUser or a login runs).
        swapped = threading.Event()

        def swap():
            self.auth.remove_digest(cam.user)
            self.auth.add_digest(cam.user, new, cam.token())
            swapped.set()
            return GLib.SOURCE_REMOVE

        GLib.idle_add(swap)
        if not swapped.wait(10):
            log(f"{cam.name}: the RTSP credentials were not changed within 10 s")
        # Sessions that logged in before are closed, as many cameras do after a password
        # change: clients must log in again, with the new password.
        GLib.idle_add(self.drop_sessions, cam.name)
        self.write_state()
        self.say(f"APPLIED {cam.name}")
        log(f"{cam.name}: password changed")
        if cam.setuser_delay > 0:
            # Applied, answer held back: the window a crash test kills the client in.
            time.sleep(cam.setuser_delay)
        return 200, envelope("<tds:SetUserResponse/>"), None

    # ----- Advanced Security (keystore and TLS server) -----

    def new_id(self, cam, kind):
        with cam.lock:
            cam.next_id += 1
            return f"{kind}-{cam.next_id}"

    def advanced_security(self, cam, op, req):
        def text(local):
            return (req.findtext(f"{{{TAS}}}{local}") or "").strip()

        def answer(body):
            return 200, envelope(f'<tas:{op}Response xmlns:tas="{TAS}">{body}</tas:{op}Response>'), None

        if op == "CreateRSAKeyPair":
            bits = text("KeyLength")
            if bits not in ("2048", "3072", "4096"):
                return 400, fault("InvalidArgVal", "KeyLength must be 2048, 3072 or 4096"), None
            key_id = self.new_id(cam, "key")
            path = os.path.join(self.keystore.name, f"{cam.name}-{key_id}.key")
            with cam.lock:
                cam.keys[key_id] = {"key": path, "status": "generating"}

            def make():
                done = subprocess.run(
                    ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                     f"rsa_keygen_bits:{bits}", "-out", path],
                    capture_output=True, check=False)
                with cam.lock:
                    cam.keys[key_id]["status"] = "ok" if done.returncode == 0 else "corrupt"
                log(f"{cam.name}: key {key_id} {cam.keys[key_id]['status']}")

            threading.Thread(target=make, daemon=True).start()
            return answer(f"<tas:KeyID>{key_id}</tas:KeyID>"
                          "<tas:EstimatedCreationTime>PT1S</tas:EstimatedCreationTime>")
        if op == "GetKeyStatus":
            key = cam.keys.get(text("KeyID"))
            if key is None:
                return 400, fault("InvalidArgVal", "no such key"), None
            return answer(f"<tas:KeyStatus>{key['status']}</tas:KeyStatus>")
        if op == "CreatePKCS10CSR":
            key = cam.keys.get(text("KeyID"))
            subject = req.find(f"{{{TAS}}}Subject")
            cn = (subject.findtext(f"{{{TAS}}}CommonName") or "").strip() if subject is not None else ""
            algorithm = (req.findtext(f"{{{TAS}}}SignatureAlgorithm/{{{TAS}}}algorithm") or "").strip()
            if key is None or key["status"] != "ok":
                return 400, fault("InvalidKeyStatus", "the key does not exist or is not ready"), None
            if not re.fullmatch(r"[A-Za-z0-9.:-]{1,64}", cn):
                return 400, fault("InvalidArgVal", "CommonName"), None
            if algorithm != "1.2.840.113549.1.1.11":
                return 400, fault("UnsupportedSignatureAlgorithm", algorithm), None
            done = subprocess.run(
                ["openssl", "req", "-new", "-key", key["key"], "-subj", f"/CN={cn}",
                 "-sha256", "-outform", "DER"],
                capture_output=True, check=False)
            if done.returncode != 0:
                return 500, fault("Action", "CSR generation failed"), None
            return answer(f"<tas:PKCS10CSR>{base64.b64encode(done.stdout).decode()}</tas:PKCS10CSR>")
        if op == "UploadCertificate":
            try:
                der = base64.b64decode(text("Certificate"), validate=True)
            except ValueError:
                return 400, fault("InvalidArgVal", "Certificate is not base64"), None
            pub = public_key_of_cert(der)
            if pub is None:
                return 400, fault("BadCertificate", "not an X.509 certificate"), None
            key_id = next((k for k, v in cam.keys.items()
                           if v["status"] == "ok" and public_key_of_key(v["key"]) == pub), None)
            if key_id is None and text("PrivateKeyRequired") == "true":
                return 400, fault("NoMatchingPrivateKey", "no key on the device matches"), None
            cert_id = self.new_id(cam, "cert")
            with cam.lock:
                cam.certs[cert_id] = {"der": der, "key": key_id}
            return answer(f"<tas:CertificateID>{cert_id}</tas:CertificateID>"
                          f"<tas:KeyID>{key_id or ''}</tas:KeyID>")
        if op == "CreateCertificationPath":
            ids_node = req.find(f"{{{TAS}}}CertificateIDs")
            ids = [(n.text or "").strip() for n in ids_node] if ids_node is not None else []
            if not ids or any(i not in cam.certs for i in ids):
                return 400, fault("InvalidArgVal", "unknown certificate id"), None
            path_id = self.new_id(cam, "path")
            with cam.lock:
                cam.paths[path_id] = ids
            return answer(f"<tas:CertificationPathID>{path_id}</tas:CertificationPathID>")
        if op == "GetAssignedServerCertificates":
            return answer("".join(f"<tas:CertificationPathID>{p}</tas:CertificationPathID>"
                                  for p in cam.assigned))
        if op in ("AddServerCertificateAssignment", "ReplaceServerCertificateAssignment"):
            new = text("CertificationPathID" if op.startswith("Add") else "NewCertificationPathID")
            if op.startswith("Replace") and text("OldCertificationPathID") not in cam.assigned:
                return 400, fault("InvalidArgVal", "the old path is not assigned"), None
            if new not in cam.paths:
                return 400, fault("InvalidArgVal", "unknown certification path"), None
            ids = cam.paths[new]
            key_id = cam.certs[ids[0]]["key"]
            if key_id is None:
                return 400, fault("NoMatchingPrivateKey", "the path's first certificate has no key"), None
            chain = os.path.join(self.keystore.name, f"{cam.name}-{new}.pem")
            with open(chain, "w", encoding="ascii") as f:
                for i in ids:
                    f.write(ssl.DER_cert_to_PEM_cert(cam.certs[i]["der"]))
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(chain, cam.keys[key_id]["key"])
            with cam.lock:
                cam.assigned = [new]
                cam.ssl_context = context
                cam.served_sha256 = sha256_der(cam.certs[ids[0]]["der"])
            self.write_state()
            log(f"{cam.name}: HTTPS serves {new}")
            return answer("")
        return 400, fault("ActionNotSupported", f"{op} is not supported here"), None

    def drop_sessions(self, name):
        """Closes the RTSP clients of every camera of the peer (`--drop-sessions all`, the
        default) or only those playing camera `name` (`--drop-sessions camera`: one device per
        camera, as a fleet benchmark needs)."""
        keep, remove = GstRtspServer.RTSPFilterResult.KEEP, GstRtspServer.RTSPFilterResult.REMOVE
        if self.args.drop_sessions == "all":
            self.server.client_filter(lambda _s, _c: remove)
            return GLib.SOURCE_REMOVE
        path = f"/{name}"

        def plays_it(client):
            hit = []

            def media(_session, sm):
                found = sm.matches(path)
                if found[0] if isinstance(found, tuple) else found:
                    hit.append(True)
                return keep

            def session(_client, sess):
                sess.filter(media)
                return keep

            client.session_filter(session)
            return bool(hit)

        self.server.client_filter(lambda _s, c: remove if plays_it(c) else keep)
        return GLib.SOURCE_REMOVE

    # ----- control -----

    def control(self, line):
        words = line.split()
        if len(words) != 2 or words[1] not in self.cameras:
            log(f"unknown command {line.strip()!r}")
            return
        cam = self.cameras[words[1]]
        if words[0] == "unreachable":
            self.close(cam)
        elif words[0] == "reachable" and cam.httpd is None:
            self.listen(cam)
        self.write_state()
        self.say(f"DONE {line.strip()}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clip", required=True)
    ap.add_argument("--camera", action="append", required=True)
    ap.add_argument("--tls-cert", required=True)
    ap.add_argument("--tls-key", required=True)
    ap.add_argument("--state-file")
    ap.add_argument("--drop-sessions", choices=["all", "camera"], default="all",
                    help="after SetUser, close the RTSP sessions of every camera (default) or "
                         "only of the camera whose password changed")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=360)
    args = ap.parse_args()

    Gst.init(None)
    try:
        cams = [Camera(spec, i) for i, spec in enumerate(args.camera)]
    except ValueError as e:
        log(f"error: {e}")
        return 2
    if len({c.name for c in cams}) != len(cams) or len({c.user for c in cams}) != len(cams):
        log("error: camera names and users must be unique")
        return 2
    try:
        clip = rs.Clip(args.clip, 25.0)
    except rs.ClipError as e:
        log(f"error: {e}")
        return 2

    peer = Peer(args)
    state = rs.ServerState()
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service("0")
    points = server.get_mount_points()
    auth = GstRtspServer.RTSPAuth()
    auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
    mounts = []
    for cam in cams:
        mount = rs.Mount(f"/{cam.name}", clip, state)
        mounts.append(mount)
        factory = mount.factory(GstRtsp.RTSPLowerTrans.TCP)
        # Only this camera's user may open this camera's stream.
        role = Gst.Structure.new_from_string(
            f"{cam.name}, media.factory.access=(boolean)true, "
            "media.factory.construct=(boolean)true"
        )
        factory.add_role_from_structure(role)
        points.add_factory(f"/{cam.name}", factory)
        auth.add_digest(cam.user, cam.password, cam.token())
        peer.cameras[cam.name] = cam
    server.set_auth(auth)
    peer.auth = auth
    peer.server = server
    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        log("error: cannot listen for RTSP")
        return 3
    peer.rtsp_port = server.get_bound_port()
    for cam in cams:
        peer.listen(cam)
    peer.write_state()

    def shutdown(reason):
        if not state.stopping.is_set():
            log(f"stopping ({reason})")
            state.stopping.set()
            loop.quit()
        return GLib.SOURCE_REMOVE

    def read_stdin():
        for line in sys.stdin:
            if line.strip():
                peer.control(line)
        GLib.idle_add(shutdown, "stdin closed")

    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGTERM, shutdown, "SIGTERM")
    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGINT, shutdown, "SIGINT")
    threading.Thread(target=read_stdin, name="control", daemon=True).start()
    ready = {"rtsp_port": peer.rtsp_port, "onvif_ports": {c.name: c.port for c in cams}}
    peer.say(f"READY {json.dumps(ready)}")
    loop.run()
    for cam in cams:
        peer.close(cam)
    return 0


if __name__ == "__main__":
    sys.exit(main())
