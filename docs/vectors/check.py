#!/usr/bin/env python3
"""An independent check of the valid vectors, written from docs/wire.md alone.

It shows how little another vendor needs: Python's json module for canonical
JSON, hashlib and hmac, and the `cryptography` package for Ed25519
(Debian: python3-cryptography). Run from anywhere:

    python3 docs/vectors/check.py

It prints one line per check and exits 1 if any fails. It does not check
the invalid vectors: their exact error texts belong to this implementation;
a vendor's verifier only has to refuse them.
"""

import base64
import hashlib
import hmac
import json
import pathlib
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

HERE = pathlib.Path(__file__).resolve().parent
failures = 0


def check(ok, what):
    global failures
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures += 1


def canonical(value):
    """Canonical JSON: sorted keys, no whitespace, UTF-8, JCS escaping."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def b64decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64encode(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def verifies(public_key, signature_b64, message):
    try:
        public_key.verify(b64decode(signature_b64), message)
        return True
    except InvalidSignature:
        return False


def read(name):
    return (HERE / name).read_bytes()


keys = json.loads(read("keys.json"))
public = {}
for entry in keys["signing_keys"]:
    private = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(entry["seed_hex"]))
    raw = private.public_key().public_bytes_raw()
    public[entry["name"]] = Ed25519PublicKey.from_public_bytes(raw)
    check(b64encode(raw) == entry["public_key"], f"keys.json: {entry['name']} public key from seed")
    check(sha256(raw)[:16] == entry["key_id"], f"keys.json: {entry['name']} key id")
credential_key = bytes.fromhex(keys["credential_key"]["key_hex"])

# Records: the signature and hash cover canonical(body); prev chains them.
prev = "0" * 64
for n in (1, 2, 3):
    raw = read(f"record-{n}.json")
    record = json.loads(raw)
    body = canonical(record["body"])
    check(raw == b'{"body":' + body + b',"sig":"' + record["sig"].encode() + b'"}',
          f"record-{n}.json: is canonical JSON")
    check(verifies(public["terminal"], record["sig"], body), f"record-{n}.json: terminal signature")
    check(record["body"]["prev"] == prev, f"record-{n}.json: prev is the hash of the record before")
    prev = sha256(body)

# The packet: a signed envelope; its id is the SHA-256 of its canonical body.
packet = json.loads(read("packet-1.json"))
body = canonical(packet["body"])
check(verifies(public["terminal"], packet["sig"], body), "packet-1.json: terminal signature")
check(packet["body"]["head"] == prev, "packet-1.json: head is the hash of record 3")
print(f"     packet id {sha256(body)}")

# Snapshots: SHA-256 over every line before the trailer, newline included;
# central signs "BPOS-SNAPSHOT-1\n" followed by the 32 raw bytes of it.
for name in ("snapshot-full.ndjson", "snapshot-delta.ndjson"):
    lines = read(name).split(b"\n")
    check(lines[-1] == b"", f"{name}: ends with a newline")
    lines = lines[:-1]
    trailer = json.loads(lines[-1])
    digest = hashlib.sha256(b"".join(line + b"\n" for line in lines[:-1])).digest()
    check(trailer["sha256"] == digest.hex(), f"{name}: sha256 of the lines before the trailer")
    check(trailer["items"] == len(lines) - 2, f"{name}: item count")
    check(verifies(public["central"], trailer["sig"], b"BPOS-SNAPSHOT-1\n" + digest),
          f"{name}: central signature")
    check(all(canonical(json.loads(line)) == line for line in lines), f"{name}: every line canonical")

# QR token: BPQ1.<base64url(canonical payload)>.<base64url(signature)>
token = read("qr-valid.txt").decode()
prefix, payload_b64, sig_b64 = token.split(".")
payload = json.loads(b64decode(payload_b64))
check(prefix == "BPQ1" and canonical(payload) == b64decode(payload_b64), "qr-valid.txt: form")
check(verifies(public["central"], sig_b64, f"{prefix}.{payload_b64}".encode()),
      "qr-valid.txt: central signature")

# Credential hashes: HMAC-SHA256(key, kind ":" normalised id).
for entry in json.loads(read("credential-hashes.json")):
    ident = entry["id"]
    if entry["kind"] in ("card", "resident_card"):
        normalised = "".join(c.upper() if c.isascii() else c for c in ident if c not in ": -")
    else:
        normalised = ident.strip()
    message = f"{entry['kind']}:{normalised}".encode()
    check(normalised == entry["normalised"]
          and hmac.new(credential_key, message, hashlib.sha256).hexdigest() == entry["hash"],
          f"credential-hashes.json: {entry['kind']} {ident!r}")

# Benefit hashes: SHA-256 of the benefit's canonical JSON.
for entry in json.loads(read("benefit-hashes.json")):
    benefit = entry["canonical"].encode()
    check(canonical(json.loads(benefit)) == benefit and sha256(benefit) == entry["hash"],
          f"benefit-hashes.json: {json.loads(benefit)['id']}")

# Signed request: five lines, signed by the terminal.
request = json.loads(read("request-heartbeat.json"))
headers = request["headers"]
message = "\n".join(["BPOS-REQ-1", request["method"].upper(), request["path"],
                     headers["x-timestamp"], sha256(request["body"].encode())])
check(message == request["message"], "request-heartbeat.json: message")
check(verifies(public["terminal"], headers["x-signature"], message.encode()),
      "request-heartbeat.json: terminal signature")

print(f"{failures} failed")
sys.exit(1 if failures else 0)
