#!/usr/bin/python3
"""Independent verifier for a Vigil camera ledger and its segment files, written only from
docs/signing-format.md: Python standard library (hashlib) plus the openssl command line for
X.509 and Ed25519. It checks the hash chain, the signatures, the certificate against the CA,
and every signed fragment's bytes. Exit 0 and "OK ..." when everything verifies, else exit 1.

usage: independent_verify.py CA_PEM LEDGER SEGMENT_DIR
"""
import hashlib
import os
import struct
import subprocess
import sys
import tempfile

MAGIC = b"VGLEDG1\n"
SIG_CONTEXT = b"VIGIL-LEDGER-SIG-V1\x00"


def fail(msg):
    print("FAIL " + msg)
    sys.exit(1)


def openssl(*args, data=None):
    return subprocess.run(["openssl", *args], input=data, capture_output=True)


def main():
    ca_pem, ledger_path, seg_dir = sys.argv[1:4]
    data = open(ledger_path, "rb").read()
    if data[:8] != MAGIC:
        fail("bad magic")
    pos, expected_seq, head = 8, 0, b"\x00" * 32
    camera, pubkey_pem, key_id = None, None, None
    segments, fragments, signed_upto, unsigned_after = {}, [], -1, None
    tmp = tempfile.mkdtemp()
    while pos < len(data):
        if pos + 4 > len(data):
            break  # torn tail
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        if pos + 4 + n + 32 > len(data):
            break  # torn tail
        body = data[pos + 4:pos + 4 + n]
        stored = data[pos + 4 + n:pos + 4 + n + 32]
        if hashlib.sha256(body).digest() != stored:
            fail(f"record at byte {pos}: hash mismatch")
        rtype, seq, prev, p = body[0], struct.unpack(">Q", body[1:9])[0], body[9:41], body[41:]
        if seq != expected_seq or prev != head:
            fail(f"record at byte {pos}: chain broken (seq {seq}, expected {expected_seq})")
        if rtype == 0x01:  # genesis
            (clen,) = struct.unpack(">H", p[2:4])
            camera = p[4:4 + clen]
            (dlen,) = struct.unpack(">I", p[12 + clen:16 + clen])
            der = p[16 + clen:16 + clen + dlen]
            leaf = os.path.join(tmp, "leaf.pem")
            r = openssl("x509", "-inform", "DER", "-out", leaf, data=der)
            if r.returncode != 0:
                fail("genesis certificate is not X.509")
            r = openssl("verify", "-CAfile", ca_pem, leaf)
            if r.returncode != 0:
                fail("genesis certificate not issued by the CA: " + r.stdout.decode() + r.stderr.decode())
            pubkey_pem = openssl("x509", "-in", leaf, "-pubkey", "-noout").stdout
            # The raw Ed25519 key is the last 32 bytes of the DER SubjectPublicKeyInfo.
            spki = openssl("pkey", "-pubin", "-outform", "DER", data=pubkey_pem).stdout
            key_id = hashlib.sha256(spki[-32:]).digest()
        elif rtype == 0x02:  # segment-open
            seg, start, init_len = struct.unpack(">QqQ", p[:24])
            segments[seg] = (init_len, p[24:56])
        elif rtype == 0x03:  # fragment
            seg, gop, off, length = struct.unpack(">QIQQ", p[:28])
            fragments.append((seq, seg, gop, off, length, p[28:60]))
        elif rtype == 0x07:  # signature
            signed_at = p[:8]
            if p[8:40] != key_id:
                fail(f"record {seq}: signed by an unknown key")
            msg = SIG_CONTEXT + struct.pack(">H", len(camera)) + camera + struct.pack(">Q", seq - 1) + prev + signed_at
            open(os.path.join(tmp, "msg"), "wb").write(msg)
            open(os.path.join(tmp, "sig"), "wb").write(p[40:104])
            open(os.path.join(tmp, "pub.pem"), "wb").write(pubkey_pem)
            r = openssl("pkeyutl", "-verify", "-pubin", "-inkey", os.path.join(tmp, "pub.pem"), "-rawin",
                        "-in", os.path.join(tmp, "msg"), "-sigfile", os.path.join(tmp, "sig"))
            if r.returncode != 0:
                fail(f"record {seq}: bad signature")
            signed_upto = seq
        elif rtype == 0x09:
            fail("key rotation is not handled by this small verifier")
        head, expected_seq, pos = stored, seq + 1, pos + 4 + n + 32

    checked = 0
    for seg, (init_len, init_hash) in segments.items():
        path = os.path.join(seg_dir, "%016x.mp4" % seg)
        content = open(path, "rb").read()
        if hashlib.sha256(content[:init_len]).digest() != init_hash:
            fail(f"segment {seg}: init differs")
    for (seq, seg, gop, off, length, digest) in fragments:
        if seq > signed_upto:
            unsigned_after = unsigned_after or seq
            continue
        content = open(os.path.join(seg_dir, "%016x.mp4" % seg), "rb").read()
        if hashlib.sha256(content[off:off + length]).digest() != digest:
            fail(f"segment {seg} GOP {gop}: modified")
        checked += 1
    print(f"OK {checked} fragments verified, {expected_seq} records, camera {camera.decode()}"
          + (f", unsigned from record {unsigned_after}" if unsigned_after else ""))


main()
