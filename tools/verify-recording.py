#!/usr/bin/env python3
"""Verify an archive copy of a diemcau recording, from docs/RECORDING-FORMAT.md
alone: Python 3 and the `cryptography` package, nothing of diemcau's code.

    verify-recording.py DIR [--key HEX] [--keys FLEET-KEYS.json] [--tsa-ca CA.pem]
                            [--witnesses EVENTS.jsonl] [--json]
                            [--out FILE.ts [--identity AGE-IDENTITY]]

DIR holds manifest.json and the segments it names (and far/ for the far end's
track). Exit codes: 0 intact, 3 tampered, 4 incomplete, 2 unusable input.

With --out, a copy that is not tampered is also written out as one MPEG-TS
file (the far end's track beside it, FILE-far.ts); a sealed recording
(format 2) is opened with --identity, an age identity file of one of its
recipients: its key is unwrapped by the `age` command, its frames opened
with ChaCha20-Poly1305.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

FORMAT = "diemcau-recording-manifest/1"
FORMAT_SEALED = "diemcau-recording-manifest/2"
KEYS_FORMAT = "diemcau-fleet-keys/1"


def fingerprint(key_hex):
    return " ".join(
        hashlib.sha256(bytes.fromhex(key_hex)).hexdigest()[:32][i : i + 4] for i in range(0, 32, 4)
    )


TOKEN = "manifest.tsr"
OID_SHA256 = bytes.fromhex("608648016503040201")
OID_SIGNED_DATA = bytes.fromhex("2a864886f70d010702")
OID_TST_INFO = bytes.fromhex("2a864886f70d0109100104")


def der(data, tag):
    """The content of the TLV at the front of data, which must have tag, and the rest."""
    if len(data) < 2 or data[0] != tag:
        raise ValueError("not the DER expected (tag %#x)" % tag)
    n, i = data[1], 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 4 or len(data) < 2 + k:
            raise ValueError("a DER length that cannot be read")
        n, i = int.from_bytes(data[2 : 2 + k], "big"), 2 + k
    if len(data) < i + n:
        raise ValueError("truncated DER")
    return data[i : i + n], data[i + n :]


def read_token(raw):
    """(status, imprint, genTime) of an RFC 3161 TimeStampResp."""
    resp, _ = der(raw, 0x30)
    info, rest = der(resp, 0x30)
    status, _ = der(info, 0x02)
    if not status or len(status) > 9 or status[0] >= 0x80 or (len(status) == 9 and status[0] != 0):
        raise ValueError("a PKIStatus that is not a small non-negative INTEGER")
    status = int.from_bytes(status, "big")
    if status > 1:
        raise ValueError("the authority refused (status %d)" % status)
    content_info, _ = der(rest, 0x30)
    oid, rest = der(content_info, 0x06)
    if oid != OID_SIGNED_DATA:
        raise ValueError("a token that is not SignedData")
    signed, _ = der(der(rest, 0xA0)[0], 0x30)
    _, rest = der(signed, 0x02)
    _, rest = der(rest, 0x31)
    encap, _ = der(rest, 0x30)
    oid, rest = der(encap, 0x06)
    if oid != OID_TST_INFO:
        raise ValueError("signed content that is not TSTInfo")
    tst, _ = der(der(der(rest, 0xA0)[0], 0x04)[0], 0x30)
    _, rest = der(tst, 0x02)
    _, rest = der(rest, 0x06)
    imprint, rest = der(rest, 0x30)
    alg, imprint_rest = der(imprint, 0x30)
    if der(alg, 0x06)[0] != OID_SHA256:
        raise ValueError("not a SHA-256 time stamp")
    digest, _ = der(imprint_rest, 0x04)
    _, rest = der(rest, 0x02)
    gen_time, _ = der(rest, 0x18)
    text = gen_time.decode("ascii")
    if not text.endswith("Z") or text.count("Z") != 1:
        raise ValueError("genTime %r is not in UTC (YYYYMMDDHHMMSS[.f]Z)" % text)
    whole, dot, frac = text[:-1].partition(".")
    if len(whole) != 14 or not whole.isdigit() or (dot and not (frac.isdigit() and 1 <= len(frac) <= 9)):
        raise ValueError("genTime %r is not a GeneralizedTime" % text)
    t = datetime.strptime(whole, "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)
    stamp = t.strftime("%Y-%m-%dT%H:%M:%S") + ("." + frac if frac else "") + "+00:00"
    return status, digest, stamp


def check_time_stamp(folder, manifest, tsa_ca):
    """(problems, notes, lacking) of the manifest's time-stamp token."""
    path = os.path.join(folder, TOKEN)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError:
        if manifest.get("timestamp_authority") is not None or tsa_ca is not None:
            return [], [], ["the time-stamp token %s is not here" % TOKEN]
        return [], [], []
    with open(os.path.join(folder, "manifest.json"), "rb") as f:
        body = f.read()
    try:
        _, digest, at = read_token(raw)
    except ValueError as e:
        return ["the time-stamp token: %s" % e], [], []
    if digest != hashlib.sha256(body).digest():
        return ["the time-stamp token is for other bytes than this manifest.json"], [], []
    notes = [
        "time-stamped at %s by %s%s"
        % (
            at,
            manifest.get("timestamp_authority") or "an authority",
            "" if tsa_ca is not None else " (the token's signature not checked: give --tsa-ca)",
        )
    ]
    if tsa_ca is not None:
        out = subprocess.run(
            ["openssl", "ts", "-verify", "-in", path, "-data", os.path.join(folder, "manifest.json"), "-CAfile", tsa_ca],
            capture_output=True,
        )
        if out.returncode != 0:
            return ["the time-stamp token's signature does not verify against %s" % tsa_ca], notes, []
    return [], notes, []


def read_witnesses(path):
    """The chain_witness events in a file of JSON lines or one JSON array."""
    with open(path, "rb") as f:
        text = f.read().decode("utf-8")
    if text.lstrip().startswith("["):
        events = json.loads(text)
    else:
        events = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [e for e in events if e.get("type") == "chain_witness"]


def judge_witnesses(manifest, witnesses, seg_key, head_key):
    """(problems, held, last) of one track against the witnesses."""
    chains = [s["chain"] for s in manifest["segments"]]
    problems, held, last = [], 0, None
    for w in witnesses:
        # The NOC's own receipt time when it kept one; else the box's clock.
        w = dict(w, at=w.get("received_at") or w["at"])
        n, head = w.get(seg_key), w.get(head_key)
        if not n or head is None:
            continue
        if n > len(chains):
            problems.append("the NOC witnessed %d segments at %s; this copy has %d" % (n, w["at"], len(chains)))
        elif chains[n - 1] != head:
            problems.append("the NOC witnessed another chain at %s (after %d segments)" % (w["at"], n))
        elif w.get("closing") and (n != len(chains) or manifest["chain_head"] != head):
            problems.append("the NOC witnessed the recording closed at %s with %d segments" % (w["at"], n))
        else:
            held += 1
            if last is None or when(w["at"]) > when(last[0]):
                last = (w["at"], n)
    return problems, held, last


def when(text):
    """An RFC 3339 time; by hand, since Python before 3.11 reads neither 'Z'
    nor nine fraction digits."""
    if text is None:
        return None
    t = text.strip().replace("z", "Z")
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    main, sign, offset = t[:19], t[19:], ""
    frac = ""
    if sign.startswith("."):
        i = 1
        while i < len(sign) and sign[i].isdigit():
            i += 1
        frac, offset = sign[1:i], sign[i:]
    else:
        offset = sign
    base = datetime.strptime(main, "%Y-%m-%dT%H:%M:%S")
    micro = int((frac + "000000")[:6]) if frac else 0
    hh, mm = (int(offset[1:3]), int(offset[4:6])) if offset else (0, 0)
    sgn = -1 if offset.startswith("-") else 1
    return (base.replace(microsecond=micro, tzinfo=timezone.utc) - sgn * timedelta(hours=hh, minutes=mm))


def key_problem(keys_file, manifest):
    """Why the manifest's key is not its site's in the fleet's keys file."""
    with open(keys_file, "rb") as f:
        keys = json.loads(f.read().decode("utf-8"))
    if keys.get("format") != KEYS_FORMAT:
        raise ValueError("%s is not a fleet keys file (%s)" % (keys_file, KEYS_FORMAT))
    for s, ks in keys["sites"].items():
        for a, b in zip(ks, ks[1:]):
            if a.get("until") is None or b.get("from") is None or when(a["until"]) > when(b["from"]):
                raise ValueError("%s: site %s: the periods of its keys overlap or are out of order" % (keys_file, s))
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
    sealed = manifest.get("encryption")
    if manifest.get("format") == FORMAT and sealed is None:
        pass
    elif manifest.get("format") == FORMAT_SEALED and isinstance(sealed, dict):
        notes.append("the segments are sealed to %s: checked as stored" % ", ".join(sealed.get("recipients", [])))
    else:
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


def verify(folder, key=None, keys_file=None, tsa_ca=None, witnesses_file=None):
    room = read_manifest(folder)
    problems, notes, missing, _ = check_track(folder, room)
    tp, tn, lacking = check_time_stamp(folder, room, tsa_ca)
    problems += tp
    notes += tn
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
            ftp, ftn, flack = check_time_stamp(far_folder, far, tsa_ca)
            fp += ftp
            fn += ftn
            lacking += ["far end: " + x for x in flack]
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
    if witnesses_file is not None:
        mine = [w for w in read_witnesses(witnesses_file) if w.get("session") == room["session"]]
        wp, held, last = judge_witnesses(room, mine, "segments", "chain_head")
        problems += wp
        if named is not None and far is not None:
            fp, _, _ = judge_witnesses(far, mine, "far_segments", "far_chain_head")
            problems += ["far end: " + p for p in fp]
        if last is not None:
            notes.append("%d chain witnesses from the NOC hold; the last, at %s, covers %d segments" % (held, last[0], last[1]))
        elif not mine:
            notes.append("no chain witness of %s in %s" % (room["session"], witnesses_file))
    if problems:
        verdict, code = "tampered", 3
    elif missing or far_missing or lacking:
        verdict, code = "incomplete", 4
    else:
        verdict, code = "intact", 0
    report.update(
        verdict=verdict,
        segments=len(room["segments"]),
        missing=missing + lacking,
        problems=problems,
        notes=notes,
    )
    return report, code


def unwrap_key(manifest, identity):
    """The recording's 32-byte key: its wrapped key is an age file, opened
    by the `age` command with the identity file."""
    import base64

    wrapped = base64.b64decode(manifest["encryption"]["wrapped_key"])
    r = subprocess.run(["age", "--decrypt", "--identity", identity], input=wrapped, capture_output=True)
    if r.returncode != 0 or len(r.stdout) != 32:
        raise ValueError(
            "the identity %s does not open this recording's key (it is sealed to %s): %s"
            % (identity, ", ".join(manifest["encryption"]["recipients"]), r.stderr.decode("utf-8", "replace").strip())
        )
    return r.stdout


def open_frames(key, data, where):
    """A segment's frames, opened: u32be seq, u32be chunk, u32be len, then
    the ChaCha20-Poly1305 ciphertext and tag; nonce seq|chunk|0, aad the header."""
    aead = ChaCha20Poly1305(key)
    out, at = bytearray(), 0
    while at < len(data):
        if len(data) - at < 12:
            raise ValueError("%s: a torn frame header at byte %d" % (where, at))
        header = data[at : at + 12]
        n = int.from_bytes(header[8:12], "big")
        end = at + 12 + n + 16
        if end > len(data):
            raise ValueError("%s: a torn frame at byte %d" % (where, at))
        nonce = header[:8] + bytes(4)
        try:
            out += aead.decrypt(nonce, data[at + 12 : end], header)
        except InvalidTag:
            raise ValueError("%s: the frame at byte %d does not open" % (where, at))
        at = end
    return bytes(out)


def write_track(folder, manifest, identity, out_path):
    """The track's segments in order into one file, opened if sealed."""
    key = None
    if manifest.get("encryption") is not None:
        if identity is None:
            raise ValueError(
                "%s is sealed to %s: give --identity, an age identity file of one of them"
                % (manifest["session"], ", ".join(manifest["encryption"]["recipients"]))
            )
        key = unwrap_key(manifest, identity)
    with open(out_path, "wb") as out:
        for s in manifest["segments"]:
            if s.get("quarantined"):
                continue
            path = os.path.join(folder, os.path.basename(s["object"]))
            if not os.path.exists(path):
                continue
            with open(path, "rb") as f:
                data = f.read()
            out.write(open_frames(key, data, s["object"]) if key is not None else data)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--key", help="the box's enrolled Ed25519 public key (hex)")
    ap.add_argument("--keys", help="the fleet's keys file (diemcau fleet keys)")
    ap.add_argument("--tsa-ca", help="the time-stamping authority's CA certificate (PEM)")
    ap.add_argument("--witnesses", help="the NOC's chain_witness events (JSON lines or an array)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--out", help="also write the recording as one TS file (not when tampered)")
    ap.add_argument("--identity", help="with --out: an age identity file that opens a sealed recording")
    args = ap.parse_args()
    try:
        report, code = verify(args.dir, args.key, args.keys, args.tsa_ca, args.witnesses)
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
    if args.out and code != 3:
        try:
            room = read_manifest(args.dir)
            write_track(args.dir, room, args.identity, args.out)
            print("wrote %s" % args.out, file=sys.stderr)
            if room.get("far") is not None:
                far_dir = os.path.join(args.dir, room["far"]["folder"])
                if os.path.exists(os.path.join(far_dir, "manifest.json")):
                    far_out = os.path.splitext(args.out)[0] + "-far.ts"
                    write_track(far_dir, read_manifest(far_dir), args.identity, far_out)
                    print("wrote %s" % far_out, file=sys.stderr)
        except (OSError, ValueError, KeyError) as e:
            print("cannot write %s: %s" % (args.out, e), file=sys.stderr)
            return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
