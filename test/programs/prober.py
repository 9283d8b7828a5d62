#!/usr/bin/env python3
"""A test program that tries what a hardened program may not do, and says
what happened, for the host's hardening tests (docs/security.md,
"Programs").

  GET /probe/PORT  JSON: each attempt's outcome, "ok" or the errno's name
                   (ptrace, mount, unshare, clone_newuser, connect to
                   127.0.0.1:PORT, raise_core: raising RLIMIT_CORE), and
                   what the program sees: its rlimits, cwd, the cwd's
                   contents, uid, gid, no_new_privs, seccomp, capabilities
  GET /status      JSON: what it sees, without trying anything (for a host
                   without hardening, where the attempts would work)
  POST /write/NAME writes a file NAME in the cwd; 200
  POST /link/NAME  makes NAME in the cwd a symbolic link to the body; 200
Each attempt that could change the program itself (ptrace, unshare) runs
in a child of its own, which exits with the errno (0: it worked). Nothing
is kept: the state is empty, and so is the snapshot."""
import ctypes
import errno
import json
import os
import resource
import signal
import socket
import struct
import sys
import time

inp, out = sys.stdin.buffer, sys.stdout.buffer
libc = ctypes.CDLL(None, use_errno=True)
PTRACE_ATTACH = 16
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000


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


def done(number, effects):
    send(0x82, struct.pack("<QBI", number, 0, len(effects)) + b"".join(effects))


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


def name(e):
    return "ok" if e == 0 else errno.errorcode.get(e, str(e))


def libc_call(rv):
    return name(ctypes.get_errno() if rv != 0 else 0)


def in_child(fn):
    """Run fn() in a child process; its result is the errno it exits
    with."""
    pid = os.fork()
    if pid == 0:
        try:
            os._exit(fn())
        except BaseException:
            os._exit(255)
    _, status = os.waitpid(pid, 0)
    return name(os.waitstatus_to_exitcode(status))


def try_ptrace():
    """Attach to a child of its own: allowed by the kernel to a parent,
    so only the filter stops it."""
    target = os.fork()
    if target == 0:
        time.sleep(10)
        os._exit(0)
    rv = libc.ptrace(PTRACE_ATTACH, target, None, None)
    e = ctypes.get_errno() if rv != 0 else 0
    os.kill(target, signal.SIGKILL)
    os.waitpid(target, 0)
    return e


def try_unshare():
    rv = libc.unshare(CLONE_NEWUSER)
    return ctypes.get_errno() if rv != 0 else 0


def try_clone_newuser():
    """clone() with a namespace flag, as a raw system call (x86_64 and
    aarch64 number it 56 and 220); the child exits at once."""
    import platform
    nr = {"x86_64": 56, "aarch64": 220}[platform.machine()]
    rv = libc.syscall(nr, CLONE_NEWUSER | signal.SIGCHLD, None, None, None,
                      None)
    if rv == 0:
        os._exit(0)
    if rv < 0:
        return ctypes.get_errno()
    os.waitpid(rv, 0)
    return 0


def try_connect(port):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=3)
        s.close()
        return "ok"
    except OSError as e:
        return name(e.errno) if e.errno else str(e)


def try_raise_core():
    try:
        resource.setrlimit(resource.RLIMIT_CORE,
                           (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        return "ok"
    except (OSError, ValueError) as e:
        return name(getattr(e, "errno", None) or errno.EPERM)


def status_fields():
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    return fields


def probe(port):
    st = status_fields()
    return {
        "ptrace": in_child(try_ptrace),
        "mount": libc_call(libc.mount(b"none", os.getcwd().encode(),
                                      b"tmpfs", 0, None)),
        "unshare": in_child(try_unshare),
        "clone_newuser": in_child(try_clone_newuser),
        "connect": try_connect(port),
        "raise_core": try_raise_core(),
        "core": list(resource.getrlimit(resource.RLIMIT_CORE)),
        "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
        "fsize": list(resource.getrlimit(resource.RLIMIT_FSIZE)),
        "cwd": os.getcwd(),
        "cwd_list": sorted(os.listdir(".")),
        "uid": os.getuid(),
        "pid": os.getpid(),
        "gid": os.getgid(),
        "groups": os.getgroups(),
        "no_new_privs": st.get("NoNewPrivs"),
        "seccomp": st.get("Seccomp"),
        "cap_bnd": st.get("CapBnd"),
        "cap_eff": st.get("CapEff"),
    }


def on_event(number, kind, payload):
    if kind != 1:
        return done(number, [])
    method, target, body = http(payload)
    if method == "GET" and target.startswith("/probe/"):
        result = probe(int(target[len("/probe/"):]))
        return done(number, [reply(200, json.dumps(result))])
    if method == "GET" and target.startswith("/signal/"):
        # Whether this program may signal that process (signal 0 sends
        # nothing, it checks).
        try:
            os.kill(int(target[len("/signal/"):]), 0)
            result = "ok"
        except OSError as e:
            result = errno.errorcode[e.errno]
        return done(number, [reply(200, json.dumps({"signal": result}))])
    if (method, target) == ("GET", "/status"):
        st = status_fields()
        result = {"cwd": os.getcwd(), "no_new_privs": st.get("NoNewPrivs"),
                  "seccomp": st.get("Seccomp"), "cap_bnd": st.get("CapBnd"),
                  "core": list(resource.getrlimit(resource.RLIMIT_CORE))}
        return done(number, [reply(200, json.dumps(result))])
    if method == "POST" and target.startswith("/link/"):
        os.symlink(body.decode(), target[len("/link/"):])
        return done(number, [reply(200, "{}")])
    if method == "POST" and target.startswith("/write/"):
        with open(target[len("/write/"):], "wb") as f:
            f.write(body)
        return done(number, [reply(200, "{}")])
    return send(0x83, struct.pack("<Q", number) + b"unknown route")


while True:
    head = inp.read(4)
    if not head:
        sys.exit(0)
    (length,) = struct.unpack("<I", head)
    frame = read(length)
    ftype, body = frame[0], frame[1:]
    if ftype == 0x01:  # BOOT
        send(0x81, b"\x01")
    elif ftype == 0x02:  # EVENT
        number, time_ns = struct.unpack_from("<QQ", body)
        on_event(number, body[48], body[49:])
    elif ftype == 0x03:  # SNAP_REQ
        send(0x84, body[:8] + b"{}")
    elif ftype == 0x04:
        sys.exit(0)
    else:
        sys.exit("unexpected frame type %d" % ftype)
