"""What the host's log lines cost a wake: 300 never-run kv ships woken one
at a time (a GET each, one client), by a host at --log-level info (a line
for each change of tier) and one at warn (none), alternated twice in the
same run (docs/performance.md, "Log lines on the wake path").

usage: python3 bench/log_level.py BUILD DIR"""
import http.client
import os
import shutil
import socket
import subprocess
import sys
import time

BUILD, DIR = sys.argv[1], sys.argv[2]
BERTH = os.path.join(BUILD, "berth")
KV = os.path.abspath(os.path.join(BUILD, "programs", "kv"))
N = 300


def run(level):
    data = os.path.join(DIR, level)
    shutil.rmtree(data, ignore_errors=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(data + ".log", "wb")
    host = subprocess.Popen([BERTH, "serve", "--data", data, "--listen",
                             "127.0.0.1:%d" % port, "--log-level", level],
                            stdout=log, stderr=log)

    def get(path):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            return r.status
        finally:
            c.close()

    try:
        for _ in range(200):
            try:
                if get("/healthz") == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        subprocess.run([BERTH, "ship", "new", "--program", KV, "--name", "f",
                        "--count", str(N), "--data", data], check=True,
                       capture_output=True)
        lat = []
        for i in range(1, N + 1):
            t = time.perf_counter()
            assert get("/s/f-%d/k/x" % i) in (200, 404)
            lat.append((time.perf_counter() - t) * 1000)
    finally:
        host.terminate()
        host.wait()
        log.close()
    lat.sort()
    return lat[N // 2], lat[int(N * 0.99)], os.path.getsize(data + ".log")


os.makedirs(DIR, exist_ok=True)
print("log lines on the wake path (bench/log_level.py): %d wakes, one at a time" % N)
for _ in range(2):
    for level in ("info", "warn"):
        p50, p99, size = run(level)
        print("  --log-level %-4s  wake p50 %5.2f ms  p99 %5.2f ms  log %7d bytes" %
              (level, p50, p99, size))
