#!/usr/bin/python3
"""Independent verifier for a Vigil camera ledger and its segment files, written only from
docs/signing-format.md: Python standard library (hashlib) plus the openssl command line for
X.509 and Ed25519. It checks the hash chain, the signatures, the certificate against the CA,
every signed fragment's bytes, and every retired ledger generation the ledger continues (its
length and SHA-256 as the predecessor record gives them). Exit 0 and "OK ..." when everything
verifies, else exit 1.

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
KNOWN_TYPES = range(0x01, 0x0D)
MAX_BODY = 1 << 20
RESYNC_WINDOW = 4 * (MAX_BODY + 36)
NONE_SEQ = 0xFFFFFFFFFFFFFFFF


def fail(msg):
    print("FAIL " + msg)
    sys.exit(1)


def openssl(*args, data=None):
    return subprocess.run(["openssl", *args], input=data, capture_output=True)


def record_at(data, pos):
    """(body, stored_hash, end) of an intact record at pos, None if there is none."""
    if pos + 4 > len(data):
        return None
    (n,) = struct.unpack(">I", data[pos:pos + 4])
    if not 41 <= n <= MAX_BODY or pos + 4 + n + 32 > len(data):
        return None
    body, stored = data[pos + 4:pos + 4 + n], data[pos + 4 + n:pos + 4 + n + 32]
    if hashlib.sha256(body).digest() != stored:
        return None
    return body, stored, pos + 4 + n + 32


def attempt_prefix_len(b, avail, seq_be, prev):
    """How many leading bytes of b (the first 45 of avail bytes) can begin a record with this
    seq and prev hash without being the whole record (§2)."""
    n = min(len(b), 45)
    for k in range(1, min(n, 4) + 1):
        lo = int.from_bytes(b[:k] + b"\x00" * (4 - k), "big")
        hi = int.from_bytes(b[:k] + b"\xff" * (4 - k), "big")
        if hi < 41 or lo > MAX_BODY:
            return k - 1
    if n <= 4:
        return n
    if b[4] not in KNOWN_TYPES:
        return 4
    template = seq_be + prev
    for i in range(5, n):
        if b[i] != template[i - 5]:
            return i
    if n < 45:
        return n
    full = 4 + int.from_bytes(b[:4], "big") + 32
    return min(full - 1, avail)


def skip_interrupted_write(data, pos, seq, prev):
    """Offset of the record continuing the chain after an interrupted write at pos, or None."""
    seq_be = struct.pack(">Q", seq)
    reach = 0
    for q in range(0, min(len(data) - pos, RESYNC_WINDOW + 1)):
        if q > 0:
            if q > reach:
                return None
            at = pos + q
            if data[at + 5:at + 45] == seq_be + prev and record_at(data, at):
                return at
        avail = len(data) - pos - q
        reach = max(reach, q + attempt_prefix_len(data[pos + q:pos + q + 45], avail, seq_be, prev))
    return None


def read_ledger(path, ca_pem, tmp):
    data = open(path, "rb").read()
    name = os.path.basename(path)
    if data[:8] != MAGIC:
        fail(f"{name}: bad magic")
    pos, expected_seq, head = 8, 0, b"\x00" * 32
    led = {"camera": None, "segments": {}, "fragments": [], "signed_upto": -1,
           "hashes": [], "predecessor": None, "skipped": 0, "data": data}
    pubkey_pem, key_id = None, None
    while pos < len(data):
        r = record_at(data, pos)
        if r is None:
            nxt = skip_interrupted_write(data, pos, expected_seq, head)
            if nxt is not None:
                led["skipped"] += nxt - pos
                pos = nxt
                continue
            if pos + 4 > len(data):
                break  # torn tail
            (n,) = struct.unpack(">I", data[pos:pos + 4])
            if 41 <= n <= MAX_BODY and pos + 4 + n + 32 > len(data):
                break  # torn tail
            if n == 0 and not any(data[pos:]):
                break  # zero fill
            fail(f"{name}: record at byte {pos}: hash mismatch or malformed")
        body, stored, end = r
        rtype, seq, prev, p = body[0], struct.unpack(">Q", body[1:9])[0], body[9:41], body[41:]
        if seq != expected_seq or prev != head:
            fail(f"{name}: record at byte {pos}: chain broken (seq {seq}, expected {expected_seq})")
        if rtype == 0x01:  # genesis
            (clen,) = struct.unpack(">H", p[2:4])
            led["camera"] = p[4:4 + clen]
            (dlen,) = struct.unpack(">I", p[12 + clen:16 + clen])
            der = p[16 + clen:16 + clen + dlen]
            leaf = os.path.join(tmp, "leaf.pem")
            r = openssl("x509", "-inform", "DER", "-out", leaf, data=der)
            if r.returncode != 0:
                fail(f"{name}: genesis certificate is not X.509")
            r = openssl("verify", "-CAfile", ca_pem, leaf)
            if r.returncode != 0:
                fail(f"{name}: genesis certificate not issued by the CA: " + r.stdout.decode() + r.stderr.decode())
            pubkey_pem = openssl("x509", "-in", leaf, "-pubkey", "-noout").stdout
            # The raw Ed25519 key is the last 32 bytes of the DER SubjectPublicKeyInfo.
            spki = openssl("pkey", "-pubin", "-outform", "DER", data=pubkey_pem).stdout
            key_id = hashlib.sha256(spki[-32:]).digest()
        elif rtype == 0x02:  # segment-open
            seg, start, init_len = struct.unpack(">QqQ", p[:24])
            led["segments"][seg] = (init_len, p[24:56])
        elif rtype == 0x03:  # fragment
            seg, gop, off, length = struct.unpack(">QIQQ", p[:28])
            led["fragments"].append((seq, seg, gop, off, length, p[28:60]))
        elif rtype == 0x07:  # signature
            signed_at = p[:8]
            if p[8:40] != key_id:
                fail(f"{name}: record {seq}: signed by an unknown key")
            msg = SIG_CONTEXT + struct.pack(">H", len(led["camera"])) + led["camera"] + struct.pack(">Q", seq - 1) + prev + signed_at
            open(os.path.join(tmp, "msg"), "wb").write(msg)
            open(os.path.join(tmp, "sig"), "wb").write(p[40:104])
            open(os.path.join(tmp, "pub.pem"), "wb").write(pubkey_pem)
            r = openssl("pkeyutl", "-verify", "-pubin", "-inkey", os.path.join(tmp, "pub.pem"), "-rawin",
                        "-in", os.path.join(tmp, "msg"), "-sigfile", os.path.join(tmp, "sig"))
            if r.returncode != 0:
                fail(f"{name}: record {seq}: bad signature")
            led["signed_upto"] = seq
        elif rtype == 0x09:
            fail("key rotation is not handled by this small verifier")
        elif rtype == 0x0C:  # predecessor
            if seq != 1:
                fail(f"{name}: predecessor record at seq {seq}")
            retired_at, reason = struct.unpack(">qB", p[:9])
            (flen,) = struct.unpack(">H", p[9:11])
            fname = p[11:11 + flen].decode()
            q = 11 + flen
            file_len, = struct.unpack(">Q", p[q:q + 8])
            file_sha = p[q + 8:q + 40]
            last_seq, = struct.unpack(">Q", p[q + 40:q + 48])
            last_hash = p[q + 48:q + 80]
            led["predecessor"] = (seq, fname, file_len, file_sha, last_seq, last_hash, reason)
        led["hashes"].append(stored)
        head, expected_seq, pos = stored, seq + 1, end
    led["records"] = expected_seq
    return led


def check_fragments(led, seg_dir, upto):
    checked, unsigned_after = 0, None
    for seg, (init_len, init_hash) in led["segments"].items():
        content = open(os.path.join(seg_dir, "%016x.mp4" % seg), "rb").read()
        if hashlib.sha256(content[:init_len]).digest() != init_hash:
            fail(f"segment {seg}: init differs")
    for (seq, seg, gop, off, length, digest) in led["fragments"]:
        if seq > upto:
            unsigned_after = unsigned_after or seq
            continue
        content = open(os.path.join(seg_dir, "%016x.mp4" % seg), "rb").read()
        if hashlib.sha256(content[off:off + length]).digest() != digest:
            fail(f"segment {seg} GOP {gop}: modified")
        checked += 1
    return checked, unsigned_after


def main():
    ca_pem, ledger_path, seg_dir = sys.argv[1:4]
    tmp = tempfile.mkdtemp()
    led = read_ledger(ledger_path, ca_pem, tmp)
    camera = led["camera"]
    checked, unsigned_after = check_fragments(led, seg_dir, led["signed_upto"])
    records, generations = led["records"], 1
    # Follow the generations: each predecessor record names the retired file it continues.
    while led["predecessor"]:
        seq, fname, file_len, file_sha, last_seq, last_hash, reason = led["predecessor"]
        if seq >= led["signed_upto"]:
            fail(f"the predecessor record naming {fname} is not signed")
        path = os.path.join(os.path.dirname(ledger_path), fname)
        if os.sep in fname or not os.path.isfile(path):
            fail(f"retired ledger {fname} is missing")
        old = read_ledger(path, ca_pem, tmp)
        if len(old["data"]) != file_len or (any(file_sha) and hashlib.sha256(old["data"]).digest() != file_sha):
            fail(f"retired ledger {fname} was changed after it was retired")
        if old["camera"] != camera and reason != 3:
            fail(f"retired ledger {fname} is another camera's")
        upto = old["signed_upto"]
        if last_seq != NONE_SEQ:
            if last_seq >= len(old["hashes"]) or old["hashes"][last_seq] != last_hash:
                fail(f"retired ledger {fname}: record {last_seq} is not the one the server retired")
            # The signed predecessor record vouches for the retired ledger up to that record.
            upto = max(upto, last_seq)
        if old["camera"] == camera:
            c, _ = check_fragments(old, seg_dir, upto)
            checked += c
        records += old["records"]
        generations += 1
        led = old
    print(f"OK {checked} fragments verified, {records} records, camera {camera.decode()}"
          + (f", {generations} ledger generations" if generations > 1 else "")
          + (f", unsigned from record {unsigned_after}" if unsigned_after else ""))


main()
