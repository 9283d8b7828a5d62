#!/usr/bin/env python3
"""The crawler at a million ships: one host, 1,000,000 never-run ships made
with the crawler off, then started again twice on that data: once with
--crawl-share 100, timing one whole pass (its rate and the CPU share it
took), and once with the default share, 5%, measuring for BENCH_CRAWL_SECONDS
how many ships it walks a second and how much CPU it takes. The CPU time is
the walk's own (the loop thread's, counted around each step by the host);
the share is that time over the wall-clock time of the pass or window.

usage: bench/crawl.py BUILD DATA_DIR"""
import json
import os
import shutil
import socket
import subprocess
import sys
import time

SHIPS = int(os.environ.get("BENCH_CRAWL_SHIPS", "1000000"))
SECONDS = float(os.environ.get("BENCH_CRAWL_SECONDS", "30"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Host:
    def __init__(self, build, data, extra):
        self.berth = os.path.join(build, "berth")
        self.data = data
        self.port = free_port()
        self.proc = subprocess.Popen(
            [self.berth, "serve", "--data", data, "--listen",
             "127.0.0.1:%d" % self.port] + extra,
            stdout=subprocess.DEVNULL, stderr=open(data + ".log", "ab"))
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if self.cli("stats") is not None:
                    return
            except subprocess.CalledProcessError:
                pass
            time.sleep(0.1)
        raise SystemExit("host did not start; see %s.log" % data)

    def cli(self, *args, timeout=600):
        out = subprocess.run([self.berth, "--data", self.data, "--json"] + list(args),
                             capture_output=True, text=True, timeout=timeout, check=True)
        return json.loads(out.stdout) if out.stdout.strip() else None

    def crawler(self):
        return self.cli("stats")["crawler"]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(60)


def main():
    build, data = sys.argv[1], sys.argv[2]
    kv = os.path.join(build, "programs", "kv")
    if os.path.exists(data):
        shutil.rmtree(data)
    h = Host(build, data, ["--crawl-share", "0"])
    t = time.time()
    made = 0
    while made < SHIPS:
        n = min(100000, SHIPS - made)
        h.cli("ship", "new", "--program", kv, "--count", str(n))
        made += n
    made_s = time.time() - t
    h.stop()

    h = Host(build, data, ["--crawl-share", "100", "--crawl-rest", "3600000"])
    while h.crawler()["passes"] < 1 or h.crawler()["last_pass_ms"] == 0:
        time.sleep(0.5)
    c = h.crawler()
    h.stop()
    full_rate = c["last_pass_ships"] / (c["last_pass_ms"] / 1000.0)
    full_share = c["last_pass_cpu_seconds"] / (c["last_pass_ms"] / 1000.0)

    h = Host(build, data, [])
    time.sleep(2)  # the first step waits a second after the start
    a = h.crawler()
    t0 = time.time()
    time.sleep(SECONDS)
    b = h.crawler()
    wall = time.time() - t0
    h.stop()
    walked = b["ships_walked"] - a["ships_walked"]
    rate = walked / wall
    share = (b["cpu_seconds"] - a["cpu_seconds"]) / wall

    print("crawler at %d ships (made in %.1f s, crawler off):" % (SHIPS, made_s))
    print("  --crawl-share 100: one pass %.1f s, %d ships, %.0f ships/s, "
          "walk CPU %.1f s = %.0f%% of one CPU"
          % (c["last_pass_ms"] / 1000.0, c["last_pass_ships"], full_rate,
             c["last_pass_cpu_seconds"], 100 * full_share))
    print("  --crawl-share 5 (default), %.0f s: %.0f ships/s, walk CPU "
          "%.1f%% of one CPU (the share set: 5%%); a pass of %d ships "
          "would take %.0f s"
          % (wall, rate, 100 * share, SHIPS, SHIPS / rate if rate else 0))


if __name__ == "__main__":
    main()
