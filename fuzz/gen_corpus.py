#!/usr/bin/env python3
"""Writes the seed corpora of the targets made after fuzz_frame (whose seeds
gen_frame_corpus.py writes) into fuzz/corpus/<target>/: a handful of small
valid inputs each, following the formats in the headers the targets name.
Run it from anywhere; it is deterministic. With target names as arguments
it writes only those."""
import os
import struct
import sys
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- transport: consensus/transport.h ---

MAGIC = b"berthp03"
CLUSTER = bytes(range(1, 17))


def request(kind, sender, call, body, cluster=CLUSTER):
    return (MAGIC + cluster + struct.pack("<IIQI", kind, len(body), sender, call)
            + body)


def reply(status, call, body):
    return MAGIC + struct.pack("<III", status, len(body), call) + body


def transport():
    write("transport", "raft_handshake", request(1, 1, 0, b"127.0.0.1:7001"))
    write("transport", "join", request(2, 0, 1, b"[::1]:7002", bytes(16)))
    write("transport", "probes", request(3, 2, 1, b"") + request(3, 2, 2, b""))
    write("transport", "forward", request(4, 2, 7, b"GET / HTTP/1.1\r\n\r\n"))
    write("transport", "reply_ok", reply(0, 1, bytes(range(24))))
    write("transport", "reply_not_leader", reply(3, 2, b"10.0.0.2:7000"))
    write("transport", "address", b"127.0.0.1:7000")


# --- admin: daemon/body.h ---


def admin():
    write("admin", "create_min", b'{"program": "/bin/true"}')
    write("admin", "create_named", b'{"program": "/usr/bin/counter", '
          b'"name": "shop-1", "idle_timeout_ms": 5000, '
          b'"freeze_timeout_ms": 0, "acks": "quorum"}')
    write("admin", "create_count", b'{"program": "/p", "name": "web", '
          b'"count": 3, "acks": 2}')
    write("admin", "create_lists", b'{"program": "/p", "args": ["-v", "x"], '
          b'"env": {"LANG": "C", "_X1": ""}}')
    write("admin", "create_account", b'{"program": "/p", "name": "a", '
          b'"account": "alice"}')
    write("admin", "create_caps", b'{"program": "/p", "memory": "64M", '
          b'"cpu": 0.5, "pids": 32}')
    write("admin", "join", b'{"peer": "10.0.0.1:7000"}')


# --- master: crypto/master.h ---

MKEY = bytes(range(32))


def master_file(how, salt, ops, mem, nonce, key):
    return (b"brthmkey" + bytes([1, how]) + bytes(6) + salt
            + struct.pack("<QQ", ops, mem) + nonce + key)


def master():
    write("master", "plain", master_file(0, bytes(16), 0, 0, bytes(24), MKEY))
    # Sealed under a key file of 0x42 bytes, which is the key the target
    # opens with; the seal itself is random-looking bytes here (the target
    # then reaches the refusal), as Python has no XChaCha20 of its own.
    write("master", "key_file", master_file(2, bytes(16), 0, 0,
                                            bytes(range(24)), bytes(48)))
    write("master", "passphrase", master_file(1, bytes(range(16)), 2,
                                              67108864, bytes(range(24)),
                                              bytes(48)))
    write("master", "hex_key_file", MKEY.hex().encode() + b"\n")


# --- segments: consensus/segments.h (libraft's disk format 1) ---


def crc32(data):
    """CRC-32, polynomial 0x04C11DB7, MSB first, no reflection, init 0."""
    crc = 0
    for b in data:
        crc ^= b << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1)
            crc &= 0xFFFFFFFF
    return crc


def batch(entries):
    header = struct.pack("<Q", len(entries))
    for term, etype, data in entries:
        header += struct.pack("<QB3xI", term, etype, len(data))
    data = b"".join(d for _, _, d in entries)
    return struct.pack("<II", crc32(header), crc32(data)) + header + data


def segments():
    fmt = struct.pack("<Q", 1)
    one = batch([(1, 1, b"entry-01")])
    two = batch([(1, 1, b"a" * 8), (2, 3, b"configur")])
    write("segments", "one_batch", fmt + one + bytes(16))
    write("segments", "two_batches", fmt + one + two)
    write("segments", "torn_tail", fmt + one + two[:-4])
    write("segments", "zeros", bytes(32))


# --- strlist: lib/strlist.h ---


def strlist():
    write("strlist", "args", b"-v\0--port\x008080\0")
    write("strlist", "env", b"LANG=C\0HOME=/\0EMPTY=\0")
    write("strlist", "empty_string", b"\0")


# --- identity: consensus/identity.h ---


def identity():
    write("identity", "local", b"cluster " + CLUSTER.hex().encode()
          + b"\nid 1\npeer local\n")
    write("identity", "peer", b"cluster " + CLUSTER.hex().upper().encode()
          + b"\nid 281474976710655\npeer [::1]:7001\n")


# --- beat: core/beat.h ---


def beat_body(flags, load, sent, rss, programs, live, fds, cpus):
    return struct.pack("<BBHIQQQQQI", 1, flags, 0, load, sent, rss, programs,
                       live, fds, cpus)


def beat():
    write("beat", "leading", beat_body(1, 1250, 1764806400 * 10**9,
                                       48 << 20, 3, 2, 41, 2))
    write("beat", "idle", beat_body(0, 0, 1, 12 << 20, 0, 0, 17, 1))
    # A later version's longer message, read as far as this one knows.
    write("beat", "longer", beat_body(0, 90, 5, 1 << 30, 9, 9, 99, 64)
          + bytes(12))
    write("beat", "short", beat_body(1, 1, 1, 1, 1, 1, 1, 1)[:40])


# --- record: the sandbox blob, core/sandbox.h (the record target's other
# seeds were written by hand) ---


def sandbox():
    send = b"abc\0def\0"
    body = struct.pack("<BQIIQQQI", 0x05, 64 << 20, 500, 10, 3, 1 << 20,
                       60000, len(send)) + send
    write("record", "sandbox_v1", b"\x01" + body)
    write("record", "sandbox_v2", b"\x02" + body + struct.pack("<I", 32))
    # A SHIP_RESIZE entry (version 1, type 15): memory and pids.
    write("record", "ship_resize", bytes([1, 15]) + struct.pack(
        "<QBQIIQ", 7, 0x05, 32 << 20, 0, 16, 0))
    # An ACCOUNT entry (type 9), LIMIT (op 6) of account 7 with the caps
    # part: every limit kept, memory and pids set, CPU left.
    keep = (1 << 64) - 2
    write("record", "account_caps", bytes([1, 9]) + struct.pack(
        "<BQBQ32sH", 6, 7, 0, 0, bytes(32), 0) + struct.pack(
        "<5Q", *[keep] * 5) + struct.pack("<BQII", 0x05, 64 << 20, 0, 32))


TARGETS = {"transport": transport, "admin": admin, "master": master,
           "segments": segments, "strlist": strlist, "identity": identity,
           "sandbox": sandbox, "beat": beat}

if __name__ == "__main__":
    for t in sys.argv[1:] or TARGETS:
        TARGETS[t]()
