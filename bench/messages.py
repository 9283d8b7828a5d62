#!/usr/bin/env python3
"""make bench: a message from ship to ship on one host, beside a pipe
round trip between two processes and a fdatasync, measured in the same run.

A ship sends N messages to another, each after the receipt of the one
before (test/programs/spawner.py, /pingpong). One way is the time from the
sender's event that sent a message to the target's event that took it; a
round trip, to the sender's event that took its receipt. Both are read
from the events' own clocks (time_ns), so the client's polling adds
nothing. A message round trip is three logged events (the send, the
delivery with its receipt, the receipt), so its peer is three logged
writes to the same program from a client in the same run; beside it, the
fdatasync of the host's disk and the pipe round trip of two processes on
this machine.

Usage: messages.py BUILD DIR [N]"""
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

from crawl import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPAWNER = os.path.join(ROOT, "test", "programs", "spawner.py")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


def pipe_rtt_us(n=20000):
    """Round trips of one byte between two processes over two pipes."""
    a_r, a_w = os.pipe()
    b_r, b_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        for _ in range(n):
            os.write(b_w, os.read(a_r, 1))
        os._exit(0)
    t = time.perf_counter_ns()
    for _ in range(n):
        os.write(a_w, b"x")
        os.read(b_r, 1)
    dt = time.perf_counter_ns() - t
    os.waitpid(pid, 0)
    for fd in (a_r, a_w, b_r, b_w):
        os.close(fd)
    return dt / n / 1000


def fdatasync_us(d, n=200):
    path = os.path.join(d, "sync.bin")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    xs = []
    for i in range(n):
        os.pwrite(fd, b"x" * 512, (i % 64) * 4096)
        t = time.perf_counter_ns()
        os.fdatasync(fd)
        xs.append((time.perf_counter_ns() - t) / 1000)
    os.close(fd)
    os.unlink(path)
    return statistics.median(xs)


def request(port, method, path, body=None):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path),
                                 data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def main():
    build, d = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 300
    berth = os.path.join(build, "berth")
    os.makedirs(d, exist_ok=True)
    data = os.path.join(d, "host")
    port = free_port()
    log = open(os.path.join(d, "host.log"), "wb")
    host = subprocess.Popen([berth, "serve", "--data", data, "--listen",
                             "127.0.0.1:%d" % port], stderr=log)
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                if request(port, "GET", "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        ids = []
        for name in ("a", "b"):
            out = subprocess.run([berth, "ship", "new", "--program", SPAWNER,
                                  "--name", name, "--data", data, "--json"],
                                 check=True, capture_output=True, text=True)
            ids.append(json.loads(out.stdout)["id"])
        # Both awake before the clock starts.
        request(port, "GET", "/s/a/pingpong")
        request(port, "GET", "/s/b/pingpong")
        st, _ = request(port, "POST", "/s/a/pingpong/b/%d" % n)
        assert st == 202, st
        deadline = time.time() + 300
        pp = None
        while time.time() < deadline:
            pp = json.loads(request(port, "GET", "/s/a/pingpong")[1])
            if pp and len(pp["rt"]) >= n:
                break
            time.sleep(0.1)
        rt = [x / 1000 for x in pp["rt"]]
        one = [x / 1000 for x in pp["one"]]
        # The peer: a logged write to the same program, timed at a client.
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        writes = []
        for _ in range(n):
            t = time.perf_counter_ns()
            c.request("POST", "/s/b/inc")
            c.getresponse().read()
            writes.append((time.perf_counter_ns() - t) / 1000)
        c.close()
    finally:
        host.send_signal(signal.SIGTERM)
        host.wait(30)
        log.close()
    pipe = pipe_rtt_us()
    sync = fdatasync_us(d)
    print("messages between ships, one host, %d in a row (bench/messages.py)"
          % len(rt))
    print("  one way   p50 %8.0f us  p99 %8.0f us" % (pct(one, 50),
                                                      pct(one, 99)))
    print("  round trip p50 %7.0f us  p99 %8.0f us" % (pct(rt, 50),
                                                       pct(rt, 99)))
    print("  a logged write to the same program p50 %.0f us: round trip p50 "
          "is %.2fx three of them" % (pct(writes, 50),
                                      pct(rt, 50) / (3 * pct(writes, 50))))
    print("  pipe round trip %.1f us: round trip p50 is %.0fx" %
          (pipe, pct(rt, 50) / pipe))
    print("  fdatasync p50 %.0f us: round trip p50 is %.2fx (3 commits)" %
          (sync, pct(rt, 50) / sync))
    shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
