#!/usr/bin/env python3
"""Verify an archive copy of a diemcau recording, from docs/RECORDING-FORMAT.md
alone: Python 3 and the `cryptography` package, nothing of diemcau's code.

    verify-recording.py DIR [--key HEX] [--keys FLEET-KEYS.json] [--json]

DIR holds manifest.json and the segments it names (and far/ for the far end's
track). Exit codes: 0 intact, 3 tampered, 4 incomplete, 2 unusable input.
"""

import argparse
import hashlib
import json
import os
import sys
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FORMAT = "diemcau-recording-manifest/1"
KEYS_FORMAT = "diemcau-fleet-keys/1"


def fingerprint(key_hex):
    return " ".join(
        hashlib.sha256(bytes.fromhex(key_hex)).hexdigest()[:32][i : i + 4] for i in range(0, 32, 4)
    )


def when(text):
    return None if text is None else datetime.fromisoformat(text)


def key_problem(keys_file, manifest):
    """Why the manifest's key is not its site's in the fleet's keys file."""
    with open(keys_file, "rb") as f:
        keys = json.loads(f.read().decode("utf-8"))
    if keys.get("format") != KEYS_FORMAT:
        raise ValueError("%s is not a fleet keys file (%s)" % (keys_file, KEYS_FORMAT))
    site, key = manifest["site"], manifest.get("public_key", "").lower()
    started = when(manifest["started_at"])
    enrolled = keys["sites"].get(site)
    if not enrolled:
        return "the keys file has no key for site %s: who signed cannot be told" % site
    mine = [k for k in enrolled if k["public_key"].lower() == key]
    if not mine:
        return "signed by key %s (fingerprint %s), which is not an enrolled key of site %s" % (
            key,
            fingerprint(key),
            site,
        )
    for k in mine:
        start, end = when(k.get("from")), when(k.get("until"))
        if (start is None or start <= started) and (end is None or started < end):
            return None
    return "signed by a key of site %s enrolled for another time than %s" % (site, manifest["started_at"])


def signed_bytes(manifest):
    """The manifest with an empty signature, compact, in the order read."""
    m = dict(manifest)
    m["signature"] = ""
    return json.dumps(m, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signature_ok(manifest):
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(manifest["public_key"]))
        key.verify(bytes.fromhex(manifest["signature"]), signed_bytes(manifest))
        return True
    except (InvalidSignature, ValueError, KeyError, TypeError):
        return False


def check_track(folder, manifest):
    """Problems, notes and missing objects of one track's copy."""
    problems, notes, missing = [], [], []
    if manifest.get("format") != FORMAT:
        problems.append("unknown format %r" % manifest.get("format"))
    if not signature_ok(manifest):
        problems.append("the manifest's signature does not verify")
    chain = hashlib.sha256(b"diemcau-recording-v1" + manifest["session"].encode("utf-8")).digest()
    for i, s in enumerate(manifest["segments"]):
        seq = s["seq"]
        if seq != i:
            problems.append("segment %d is out of place (expected %d)" % (seq, i))
        try:
            sha = bytes.fromhex(s["sha256"])
        except ValueError:
            problems.append("segment %d: unreadable sha256" % seq)
            continue
        chain = hashlib.sha256(
            chain + seq.to_bytes(8, "big") + sha + s["bytes"].to_bytes(8, "big")
        ).digest()
        if chain.hex() != s["chain"]:
            problems.append("segment %d: hash chain broken" % seq)
        if s.get("partial"):
            notes.append("segment %d is partial" % seq)
        if s.get("quarantined"):
            notes.append("segment %d was quarantined on the box" % seq)
            continue
        path = os.path.join(folder, os.path.basename(s["object"]))
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            missing.append(s["object"])
            continue
        if len(data) != s["bytes"] or hashlib.sha256(data).hexdigest() != s["sha256"]:
            problems.append("segment %d: content does not match its hash" % seq)
    if manifest["segments"] and chain.hex() != manifest["chain_head"]:
        problems.append("the chain head does not match the segments")
    if not manifest["segments"] and manifest["chain_head"] not in ("", chain.hex()):
        problems.append("the chain head does not match the segments")
    return problems, notes, missing, chain.hex() if manifest["segments"] else ""


def read_manifest(folder):
    with open(os.path.join(folder, "manifest.json"), "rb") as f:
        return json.loads(f.read().decode("utf-8"))


def verify(folder, key=None, keys_file=None):
    room = read_manifest(folder)
    problems, notes, missing, _ = check_track(folder, room)
    if key is not None and room.get("public_key", "").lower() != key.lower():
        problems.append("signed by key %s, not by the pinned key %s" % (room.get("public_key"), key))
    if keys_file is not None:
        p = key_problem(keys_file, room)
        if p is not None:
            problems.append(p)
    report = {"session": room["session"], "public_key": room.get("public_key")}
    far_missing = False
    named = room.get("far")
    if named is not None:
        far_folder = os.path.join(folder, named["folder"])
        try:
            far = read_manifest(far_folder)
        except (OSError, ValueError):
            far = None
        if far is None:
            far_missing = True
            notes.append("the far end's track %s is not here" % named["session"])
        else:
            fp, fn, fm, _ = check_track(far_folder, far)
            if far["chain_head"] != named["chain_head"] or len(far["segments"]) != named["segments"]:
                fp.append("not the track the room's manifest names")
            if far.get("of") != room["session"]:
                fp.append("it says it belongs to %r" % far.get("of"))
            if far.get("public_key") != room.get("public_key"):
                fp.append("it is signed by another key than the room's")
            problems += ["far end: " + p for p in fp]
            notes += ["far end: " + n for n in fn]
            missing += ["far/" + m for m in fm]
            report["far_segments"] = len(far["segments"])
    if problems:
        verdict, code = "tampered", 3
    elif missing or far_missing:
        verdict, code = "incomplete", 4
    else:
        verdict, code = "intact", 0
    report.update(
        verdict=verdict,
        segments=len(room["segments"]),
        missing=missing,
        problems=problems,
        notes=notes,
    )
    return report, code


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--key", help="the box's enrolled Ed25519 public key (hex)")
    ap.add_argument("--keys", help="the fleet's keys file (diemcau fleet keys)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    try:
        report, code = verify(args.dir, args.key, args.keys)
    except (OSError, ValueError, KeyError, TypeError) as e:
        print("cannot verify %s: %s" % (args.dir, e), file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print("%s: %s, %d segments" % (report["session"], report["verdict"].upper(), report["segments"]))
        for n in report["notes"]:
            print("  note: " + n)
        for m in report["missing"]:
            print("  MISSING: " + m)
        for p in report["problems"]:
            print("  PROBLEM: " + p)
    return code


if __name__ == "__main__":
    sys.exit(main())
