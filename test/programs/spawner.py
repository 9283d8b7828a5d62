#!/usr/bin/env python3
"""A test program that spawns children with any SPAWN options and sends
messages, for the host's sandbox and budget tests.

  POST /spawn   JSON {"lifetime": 1-4, "lifetime_ms": N, "sandbox": [flags, memory, cpu,
                events], "send_to": [ids], "budget": [ships, bytes, cpu_ms],
                "access": [ids]}: a SPAWN of this program, tag = the
                event's number; 202 {"tag": N}
  GET /children the CHILD events seen, by tag
  POST /send/T  a SEND of the body to ship T, tag = the event's number
  GET /sent     the RECEIPT events seen, by tag
  POST /inc     adds one to a count; GET /count reads it
  POST /pingpong/T/N  N messages to T, one after the other's receipt, each
                timed by the events' clocks (one way: to the target's
                event; round trip: to the receipt's); GET /pingpong
A MESSAGE is answered 200 with "pong:" and its payload; a LEASE is renewed
(200) while the count is even, and let go (410) while it is odd; at a
count of 2 it is rejected (no answer at all). The state is JSON,
and so is the snapshot."""
import json
import struct
import sys

inp, out = sys.stdin.buffer, sys.stdout.buffer
state = {"children": {}, "sent": {}}


def read(n):
    data = inp.read(n)
    if len(data) < n:
        sys.exit("truncated frame")
    return data


def send(ftype, body):
    out.write(struct.pack("<IB", len(body) + 1, ftype) + body)
    out.flush()


def effect(kind, data):
    return struct.pack("<BI", kind, len(data)) + data


def reply(status, text):
    body = text.encode()
    return effect(1, struct.pack("<HH", status, 16) + b"application/json" + body)


def done(number, changed, effects):
    send(0x82, struct.pack("<QBI", number, 1 if changed else 0, len(effects))
         + b"".join(effects))


def option(kind, data):
    return struct.pack("<BI", kind, len(data)) + data


def spawn_effect(tag, spec):
    body = struct.pack("<IBQH", tag, spec.get("lifetime", 2),
                       spec.get("lifetime_ms", 0), 0)
    for i in spec.get("access", []):
        body += option(3, i.encode())
    if "sandbox" in spec:
        f, mem, cpu, ev = spec["sandbox"]
        body += option(4, struct.pack("<BQII", f, mem, cpu, ev))
    for i in spec.get("send_to", []):
        body += option(5, i.encode())
    if "budget" in spec:
        body += option(6, struct.pack("<QQQ", *spec["budget"]))
    return effect(4, body)


def http(payload):
    (mlen,) = struct.unpack_from("<H", payload)
    method = payload[2:2 + mlen].decode()
    (tlen,) = struct.unpack_from("<I", payload, 2 + mlen)
    target = payload[6 + mlen:6 + mlen + tlen].decode()
    off = 6 + mlen + tlen
    (nh,) = struct.unpack_from("<H", payload, off)
    off += 2
    for _ in range(nh):
        (nl,) = struct.unpack_from("<H", payload, off)
        off += 2 + nl
        (vl,) = struct.unpack_from("<I", payload, off)
        off += 4 + vl
    return method, target, payload[off:]


def ping(tag, to, t0):
    to = to.encode()
    return effect(5, struct.pack("<IH", tag, len(to)) + to + b"ping %d" % t0)


def on_event(number, time_ns, kind, payload):
    tag = number & 0xFFFFFFFF
    if kind == 1:
        method, target, body = http(payload)
        if (method, target) == ("POST", "/spawn"):
            spec = json.loads(body or b"{}")
            return done(number, False, [spawn_effect(tag, spec),
                                        reply(202, json.dumps({"tag": tag}))])
        if (method, target) == ("POST", "/inc"):
            state["count"] = state.get("count", 0) + 1
            return done(number, True, [reply(200, str(state["count"]))])
        if (method, target) == ("GET", "/count"):
            return done(number, False, [reply(200, str(state.get("count", 0)))])
        if (method, target) == ("GET", "/children"):
            return done(number, False, [reply(200, json.dumps(state["children"]))])
        if (method, target) == ("GET", "/sent"):
            return done(number, False, [reply(200, json.dumps(state["sent"]))])
        if method == "POST" and target.startswith("/pingpong/"):
            to, n = target[len("/pingpong/"):].rsplit("/", 1)
            state["pp"] = {"to": to, "n": int(n), "sent": 1, "rt": [],
                           "one": []}
            return done(number, True, [ping(tag, to, time_ns),
                                       reply(202, json.dumps({"tag": tag}))])
        if (method, target) == ("GET", "/pingpong"):
            return done(number, False, [reply(200, json.dumps(state.get("pp")))])
        if method == "POST" and target.startswith("/send/"):
            to = target[len("/send/"):].encode()
            e = effect(5, struct.pack("<IH", tag, len(to)) + to + body)
            return done(number, False, [e, reply(202, json.dumps({"tag": tag}))])
        return send(0x83, struct.pack("<Q", number) + b"unknown route")
    if kind == 4:  # MESSAGE: u32 tag, u16 len, sender, key, u64, u16, sig
        (slen,) = struct.unpack_from("<H", payload, 4)
        data = payload[4 + 2 + slen + 32 + 8 + 2 + 64:].decode()
        if data.startswith("ping "):
            return done(number, False,
                        [reply(200, "pong %s %d" % (data[5:], time_ns))])
        return done(number, False, [reply(200, "pong:" + data)])
    if kind == 7:  # LEASE: renewed while the count is even
        if state.get("count", 0) == 2:
            return send(0x83, struct.pack("<Q", number) + b"no answer")
        keep = state.get("count", 0) % 2 == 0
        return done(number, False, [reply(200 if keep else 410, "")])
    if kind == 5:  # CHILD
        what, ctag, idlen = struct.unpack_from("<BIH", payload)
        cid = payload[7:7 + idlen].decode()
        detail = payload[7 + idlen:].decode()
        state["children"][str(ctag)] = {"what": what, "id": cid,
                                        "detail": detail}
        return done(number, True, [])
    if kind == 6:  # RECEIPT
        rtag, outcome, status, tlen = struct.unpack_from("<IBHH", payload)
        body = payload[9 + tlen:].decode(errors="replace")
        pp = state.get("pp")
        if pp is not None and body.startswith("pong "):
            t0, t1 = (int(x) for x in body[5:].split())
            pp["rt"].append(time_ns - t0)
            pp["one"].append(t1 - t0)
            if pp["sent"] < pp["n"]:
                pp["sent"] += 1
                return done(number, True, [ping(tag, pp["to"], time_ns)])
            return done(number, True, [])
        state["sent"][str(rtag)] = {"outcome": outcome, "status": status,
                                    "body": body}
        return done(number, True, [])
    return done(number, False, [])


while True:
    head = inp.read(4)
    if not head:
        sys.exit(0)
    (length,) = struct.unpack("<I", head)
    frame = read(length)
    ftype, body = frame[0], frame[1:]
    if ftype == 0x01:  # BOOT
        (id_len,) = struct.unpack_from("<H", body)
        (snap_event,) = struct.unpack_from("<Q", body, 2 + id_len)
        if snap_event:
            state = json.loads(body[10 + id_len:])
        send(0x81, b"\x01")
    elif ftype == 0x02:  # EVENT
        number, time_ns = struct.unpack_from("<QQ", body)
        on_event(number, time_ns, body[48], body[49:])
    elif ftype == 0x03:  # SNAP_REQ
        send(0x84, body[:8] + json.dumps(state).encode())
    elif ftype == 0x04:
        sys.exit(0)
    else:
        sys.exit("unexpected frame type %d" % ftype)
