#!/usr/bin/env python3
"""make bench: how soon the operator's levers take effect, beside floors
measured in the same run.

block: from the admin call (POST /v1/ships/SHIP/block on the admin
socket) to the first front-door request answered 403; a block is one
logged entry, so its floor is one logged write to the same ship through
the front door. kill: from the admin call (POST /v1/ships/SHIP/kill) to
the moment the program's process is gone; its floor is a SIGKILL and
reap of a bare child process by this script. Target: both within 100 ms.

Usage: emergency.py BUILD DIR [N]"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

from crawl import free_port
from messages import pct, request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=30)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def admin(data, method, path):
    c = UnixHTTP(os.path.join(data, "admin.sock"))
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        c.close()


def gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[1][0] == "Z"
    except FileNotFoundError:
        return True


def main():
    build, d = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 50
    berth = os.path.join(build, "berth")
    kv = os.path.abspath(os.path.join(build, "programs", "kv"))
    os.makedirs(d, exist_ok=True)
    data = os.path.join(d, "host")
    port = free_port()
    log = open(os.path.join(d, "host.log"), "wb")
    host = subprocess.Popen([berth, "serve", "--data", data, "--listen",
                             "127.0.0.1:%d" % port], stderr=log)
    block, kill, writes, floor = [], [], [], []
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                if request(port, "GET", "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        subprocess.run([berth, "ship", "new", "--program", kv, "--name", "e",
                        "--data", data], check=True, capture_output=True)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

        def get():
            c.request("GET", "/s/e/k/x")
            r = c.getresponse()
            r.read()
            return r.status
        c.request("PUT", "/s/e/k/x", body=b"v")
        c.getresponse().read()
        for _ in range(n):
            t = time.perf_counter_ns()
            st, _ = admin(data, "POST", "/v1/ships/e/block")
            assert st == 200, st
            while get() != 403:
                pass
            block.append((time.perf_counter_ns() - t) / 1e6)
            admin(data, "POST", "/v1/ships/e/unblock")
            while get() != 200:
                pass
            t = time.perf_counter_ns()
            c.request("PUT", "/s/e/k/y", body=b"w")
            c.getresponse().read()
            writes.append((time.perf_counter_ns() - t) / 1e6)
            # Awake (the GETs woke it): kill it.
            pid = admin(data, "GET", "/v1/ships/e")[1]["pid"]
            t = time.perf_counter_ns()
            st, _ = admin(data, "POST", "/v1/ships/e/kill")
            assert st == 200, st
            while not gone(pid):
                time.sleep(0.0002)
            kill.append((time.perf_counter_ns() - t) / 1e6)
            get()  # awake again for the next round
        c.close()
    finally:
        host.send_signal(signal.SIGTERM)
        host.wait(30)
        log.close()
    for _ in range(n):
        p = subprocess.Popen(["sleep", "60"])
        time.sleep(0.002)
        t = time.perf_counter_ns()
        p.send_signal(signal.SIGKILL)
        p.wait()
        floor.append((time.perf_counter_ns() - t) / 1e6)
    print("the operator's levers, one host, %d of each (bench/emergency.py)" % n)
    print("  block to the first 403  p50 %6.2f ms  p99 %6.2f ms; a logged "
          "write p50 %.2f ms: %.2fx" % (pct(block, 50), pct(block, 99),
                                        pct(writes, 50),
                                        pct(block, 50) / pct(writes, 50)))
    print("  kill to process gone    p50 %6.2f ms  p99 %6.2f ms; a bare "
          "SIGKILL and reap p50 %.2f ms: %.2fx" % (
              pct(kill, 50), pct(kill, 99), pct(floor, 50),
              pct(kill, 50) / pct(floor, 50)))
    print("  target 100 ms: block max %.2f ms, kill max %.2f ms" %
          (max(block), max(kill)))
    shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
