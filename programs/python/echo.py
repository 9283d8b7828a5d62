#!/usr/bin/env python3
"""A berth program in Python with no helper library: a WebSocket echo.

A WebSocket opened on / is accepted (the OPEN event answered 101), one on
another path refused with 404. Each message is sent back on its connection
as it came, text as text and binary as binary. GET / says what this is. The
echo keeps no state, so every event is a read (DONE without CHANGED, never
logged) and the snapshot is empty; the host keeps the sockets open while
the ship sleeps. Any other event gets a DONE with no effect.
docs/protocol.md describes the frames ("WebSockets": the event and its
effects)."""
import struct
import sys

inp, out = sys.stdin.buffer, sys.stdout.buffer

WEBSOCKET = 8  # the event kind
OPEN, TEXT, BINARY, CLOSED = 1, 2, 3, 4  # what a WEBSOCKET event says
HTTP_REPLY, WS_SEND = 1, 9  # effect kinds


def read_exact(n):
    data = inp.read(n)
    if len(data) < n:
        sys.exit(0)  # the host went away
    return data


def send(ftype, body):
    out.write(struct.pack("<IB", len(body) + 1, ftype) + body)
    out.flush()


def effect(kind, data):
    return struct.pack("<BI", kind, len(data)) + data


def http_reply(status, text=b""):
    return effect(HTTP_REPLY, struct.pack("<HH", status, 10) + b"text/plain" + text)


def http_target(payload):
    """The path of an HTTP payload (method and headers aside)."""
    (mlen,) = struct.unpack_from("<H", payload)
    (tlen,) = struct.unpack_from("<I", payload, 2 + mlen)
    return payload[6 + mlen:6 + mlen + tlen].split(b"?")[0]


while True:
    (length,) = struct.unpack("<I", read_exact(4))
    if not 1 <= length <= 64 << 20:
        sys.exit("bad frame length %d" % length)
    frame = read_exact(length)
    ftype, body = frame[0], frame[1:]
    if ftype == 0x01:  # BOOT: u16 id_len | id | u64 snapshot_event | snapshot
        send(0x81, b"\x01")  # nothing to load: any snapshot is fine
    elif ftype == 0x02:  # EVENT: u64 number | u64 time | 32 entropy | u8 kind | payload
        (number,) = struct.unpack_from("<Q", body)
        kind, payload = body[48], body[49:]
        flags, effects = 0, []  # DONE flags: 1 CHANGED, 2 REUSE
        if kind == WEBSOCKET:  # u64 conn | u8 what | data
            conn, what = struct.unpack_from("<QB", payload)
            data = payload[9:]
            if conn == 0:
                sys.exit("WEBSOCKET event with conn 0")
            if what == OPEN:  # data is an HTTP payload: the upgrade request
                ok = http_target(data) == b"/"
                effects.append(http_reply(101) if ok else http_reply(404, b"not here\n"))
            elif what in (TEXT, BINARY):  # send it back: u64 conn | u8 opcode | bytes
                opcode = 1 if what == TEXT else 2
                effects.append(effect(WS_SEND, struct.pack("<QB", conn, opcode) + data))
            # CLOSED (u16 code | reason): nothing to do, the echo keeps no conns.
        elif kind == 1:  # HTTP
            if http_target(payload) == b"/":
                effects.append(http_reply(200, b"a WebSocket echo: open one on /\n"))
                flags = 2  # a read: the same request gets the same reply
            else:
                effects.append(http_reply(404, b"not here\n"))
        send(0x82, struct.pack("<QBI", number, flags, len(effects)) + b"".join(effects))
    elif ftype == 0x03:  # SNAP_REQ: u64 number
        send(0x84, body[:8])
    elif ftype == 0x04:  # STOP
        sys.exit(0)
    else:
        sys.exit("unexpected frame type %d" % ftype)
