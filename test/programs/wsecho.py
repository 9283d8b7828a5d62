#!/usr/bin/env python3
"""A WebSocket program for the tests, in plain Python with no helper
library (docs/protocol.md, "WebSockets").

An OPEN is accepted (101) with a "hello <n>" message in the same event,
unless its target has "refuse" in it (403). Each message is counted (a
state change, so the event is logged before any effect leaves) and
echoed, same opcode, as "<count>:<message>" for text; some texts do more:
"close" closes the socket (4000 "bye"), "all:<x>" sends x to every open
socket of the ship, "bad" sends text that is not UTF-8 (the host kills
the program for it), "stale" sends to a conn that is not open. GET
/count answers the count and the open conns. The snapshot is the state
as JSON."""
import json
import struct
import sys

inp, out = sys.stdin.buffer, sys.stdout.buffer
state = {"count": 0, "conns": []}


def read_exact(n):
    data = inp.read(n)
    if len(data) < n:
        sys.exit(0)
    return data


def send(ftype, body):
    out.write(struct.pack("<IB", len(body) + 1, ftype) + body)
    out.flush()


def effect(kind, body):
    return struct.pack("<BI", kind, len(body)) + body


def http_reply(status, text=b""):
    return effect(1, struct.pack("<HH", status, 10) + b"text/plain" + text)


def ws_send(conn, opcode, data):
    return effect(9, struct.pack("<QB", conn, opcode) + data)


def ws_close(conn, code, reason):
    return effect(10, struct.pack("<QH", conn, code) + reason)


def http_target(payload):
    (mlen,) = struct.unpack_from("<H", payload)
    (tlen,) = struct.unpack_from("<I", payload, 2 + mlen)
    return payload[2:2 + mlen], payload[6 + mlen:6 + mlen + tlen]


def on_event(kind, payload):
    """Return (flags, [effects])."""
    if kind == 1:
        _method, target = http_target(payload)
        if target == b"/count":
            body = json.dumps(state).encode()
            return 0, [http_reply(200, body)]
        return 0, [http_reply(404)]
    if kind != 8:
        return 0, []
    conn, what = struct.unpack_from("<QB", payload)
    data = payload[9:]
    if what == 1:  # OPEN
        _method, target = http_target(data)
        if b"refuse" in target:
            return 0, [http_reply(403, b"refused by the program\n")]
        # A new run of the host: the conns of older runs are gone.
        run = conn >> 32
        state["conns"] = [c for c in state["conns"] if c >> 32 == run]
        state["conns"].append(conn)
        return 1, [http_reply(101),
                   ws_send(conn, 1, b"hello %d" % len(state["conns"]))]
    if what == 4:  # CLOSED
        if conn in state["conns"]:
            state["conns"].remove(conn)
        (code,) = struct.unpack_from("<H", data)
        state["closed"] = [code, data[2:].decode()]
        return 1, []
    state["count"] += 1
    opcode = 1 if what == 2 else 2
    if what == 2 and data == b"close":
        # No CLOSED follows a close the program asked for.
        state["conns"].remove(conn)
        return 1, [ws_close(conn, 4000, b"bye")]
    if what == 2 and data.startswith(b"all:"):
        return 1, [ws_send(c, 1, data[4:]) for c in state["conns"]]
    if what == 2 and data == b"bad":
        return 1, [ws_send(conn, 1, b"\xff\xfe")]
    if what == 2 and data == b"stale":
        return 1, [ws_send(conn ^ 0xFFFF, 1, b"nobody")]
    if what == 2:
        return 1, [ws_send(conn, 1, b"%d:%s" % (state["count"], data))]
    return 1, [ws_send(conn, 2, data)]


while True:
    (length,) = struct.unpack("<I", read_exact(4))
    frame = read_exact(length)
    ftype, body = frame[0], frame[1:]
    if ftype == 0x01:  # BOOT
        (id_len,) = struct.unpack_from("<H", body)
        (snap_event,) = struct.unpack_from("<Q", body, 2 + id_len)
        if snap_event:
            state = json.loads(body[10 + id_len:])
        send(0x81, b"\x01")
    elif ftype == 0x02:  # EVENT
        (number,) = struct.unpack_from("<Q", body)
        flags, effects = on_event(body[48], body[49:])
        send(0x82, struct.pack("<QBI", number, flags, len(effects)) +
             b"".join(effects))
    elif ftype == 0x03:  # SNAP_REQ
        send(0x84, body[:8] + json.dumps(state).encode())
    elif ftype == 0x04:  # STOP
        sys.exit(0)
    else:
        sys.exit(1)
