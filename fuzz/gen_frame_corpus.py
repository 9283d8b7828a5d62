#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_frame into fuzz/corpus/frame/: one small
file per frame type, following docs/protocol.md, plus a stream of several
frames and a few broken ones. Run it from anywhere; it is deterministic."""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "frame")


def frame(ftype, body):
    return struct.pack("<IB", len(body) + 1, ftype) + body


def http_request(method, target, headers, body):
    out = struct.pack("<H", len(method)) + method
    out += struct.pack("<I", len(target)) + target
    out += struct.pack("<H", len(headers))
    for name, value in headers:
        out += struct.pack("<H", len(name)) + name
        out += struct.pack("<I", len(value)) + value
    return out + body


def event(number, kind, payload):
    entropy = bytes(range(32))
    return frame(0x02, struct.pack("<QQ", number, 1700000000000000000) + entropy
                 + bytes([kind]) + payload)


def effect(kind, data):
    return struct.pack("<BI", kind, len(data)) + data


def http_reply(status, ctype, body):
    return struct.pack("<HH", status, len(ctype)) + ctype + body


def spawn(tag, lifetime, program, options):
    out = struct.pack("<IBQH", tag, lifetime, 0, len(program)) + program
    for kind, data in options:
        out += struct.pack("<BI", kind, len(data)) + data
    return out


def child(what, tag, ident, detail):
    return struct.pack("<BIH", what, tag, len(ident)) + ident + detail


SEEDS = {
    "boot_empty": frame(0x01, struct.pack("<H", 3) + b"ann" + struct.pack("<Q", 0)),
    "boot_snapshot": frame(0x01, struct.pack("<H", 3) + b"ann" + struct.pack("<Q", 42)
                           + b"KV1\n" + struct.pack("<I", 1) + b"a" + struct.pack("<I", 1) + b"1"),
    "event_http": event(1, 1, http_request(b"PUT", b"/k/a?x=1",
                                           [(b"host", b"localhost"), (b"content-length", b"1")],
                                           b"1")),
    "event_poke": event(2, 2, b"put a 1"),
    "event_timer": event(3, 3, struct.pack("<Q", 1700000005000000000)),
    "snap_req": frame(0x03, struct.pack("<Q", 7)),
    "stop": frame(0x04, b""),
    "ready": frame(0x81, b"\x01"),
    "done": frame(0x82, struct.pack("<QBI", 1, 1, 2)
                  + effect(1, http_reply(201, b"text/plain", b"created\n"))
                  + effect(2, b"put a (1 bytes)")),
    # A cancel and then an alarm (the last one counts), with no CHANGED
    # flag: the host logs the event for its alarm all the same.
    "done_alarm": frame(0x82, struct.pack("<QBI", 2, 0, 3)
                        + effect(1, http_reply(200, b"text/plain", b"1700000005000000000\n"))
                        + effect(3, struct.pack("<Q", 0))
                        + effect(3, struct.pack("<Q", 1700000005000000000))),
    # A spawn of another program with arguments and environment, a release,
    # a destroy of the ship itself and an idle, with no CHANGED flag: the
    # host logs the event for its spawn and ends all the same.
    "done_children": frame(0x82, struct.pack("<QBI", 4, 0, 4)
                           + effect(4, spawn(7, 3, b"/opt/p", [(1, b"-v"), (1, b""), (2, b"K=V")]))
                           + effect(6, b"c1")
                           + effect(7, b"")
                           + effect(8, b"")),
    "done_spawn_own": frame(0x82, struct.pack("<QBI", 5, 1, 1) + effect(4, spawn(5, 2, b"", []))),
    "event_child": event(6, 5, child(1, 7, b"c1", b"")),
    "event_child_failed": event(7, 5, child(3, 5, b"", b"limit_ships: 3 ships")),
    "bad_child_id": event(8, 5, child(1, 7, b"x" * 64, b"")),
    "bad_spawn_option": frame(0x82, struct.pack("<QBI", 9, 0, 1)
                              + effect(4, spawn(1, 2, b"", []) + struct.pack("<BI", 1, 9) + b"x")),
    "reject": frame(0x83, struct.pack("<Q", 3) + b"asked to reject"),
    "snapshot": frame(0x84, struct.pack("<Q", 7) + b"KV1\n"),
    "stream": frame(0x81, b"\x00") + frame(0x82, struct.pack("<QBI", 1, 0, 0))
              + frame(0x84, struct.pack("<Q", 1) + b"x"),
    "bad_type": struct.pack("<IB", 1, 0x99),
    "bad_huge": struct.pack("<IB", 100 * 1024 * 1024, 0x82) + b"\xab" * 16,
    "bad_alarm_len": frame(0x82, struct.pack("<QBI", 1, 0, 1) + effect(3, b"\x01" * 7)),
    "bad_effect_len": frame(0x82, struct.pack("<QBI", 1, 0, 1) + struct.pack("<BI", 2, 99) + b"x"),
}

os.makedirs(OUT, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print("wrote %d seeds to %s" % (len(SEEDS), OUT))
