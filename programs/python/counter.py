#!/usr/bin/env python3
"""A berth program in Python with no helper library: a counter.

POST /inc adds one (a write); GET / reads the value, and its reply is
marked REUSE (DONE flag 2): it depends only on the count, so the host may
give it again without asking. The snapshot is the
counter as 8 little-endian bytes. Every event gets a DONE: an HTTP request or
a POKE is answered with the count, and any other kind (TIMER, which this
program never asks for, or a kind newer than it) with no effect at all.
docs/protocol.md describes the frames."""
import struct
import sys

inp, out = sys.stdin.buffer, sys.stdout.buffer


def read_exact(n):
    data = inp.read(n)
    if len(data) < n:
        sys.exit(0)  # the host went away
    return data


def send(ftype, body):
    out.write(struct.pack("<IB", len(body) + 1, ftype) + body)
    out.flush()


def http_reply(status, text):
    body = text.encode()
    effect = struct.pack("<HH", status, 10) + b"text/plain" + body
    return struct.pack("<BI", 1, len(effect)) + effect


count = 0
while True:
    (length,) = struct.unpack("<I", read_exact(4))
    frame = read_exact(length)
    ftype, body = frame[0], frame[1:]
    if ftype == 0x01:  # BOOT: u16 id_len | id | u64 snapshot_event | snapshot
        (id_len,) = struct.unpack_from("<H", body)
        (snap_event,) = struct.unpack_from("<Q", body, 2 + id_len)
        snap = body[10 + id_len:]
        accepted = 1
        if snap_event:
            if len(snap) == 8:
                (count,) = struct.unpack("<Q", snap)
            else:
                accepted = 0
        send(0x81, bytes([accepted]))
    elif ftype == 0x02:  # EVENT: u64 number | u64 time | 32 entropy | u8 kind | payload
        number, _time = struct.unpack_from("<QQ", body)
        kind, payload = body[48], body[49:]
        flags, effects, n_effects = 0, b"", 0  # DONE flags: 1 CHANGED, 2 REUSE
        if kind == 1:
            (mlen,) = struct.unpack_from("<H", payload)
            method = payload[2:2 + mlen]
            (tlen,) = struct.unpack_from("<I", payload, 2 + mlen)
            target = payload[6 + mlen:6 + mlen + tlen]
            if method == b"POST" and target == b"/inc":
                count += 1
                flags = 1
            elif method == b"GET":
                flags = 2  # a read: the same request gets the same reply
        if kind in (1, 2):  # HTTP or POKE: someone waits for a reply
            effects, n_effects = http_reply(200, "%d\n" % count), 1
        send(0x82, struct.pack("<QBI", number, flags, n_effects) + effects)
    elif ftype == 0x03:  # SNAP_REQ: u64 number
        send(0x84, body[:8] + struct.pack("<Q", count))
    elif ftype == 0x04:  # STOP
        sys.exit(0)
    else:
        sys.stderr.write("unexpected frame %d\n" % ftype)
        sys.exit(1)
