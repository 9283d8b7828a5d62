#!/usr/bin/env python3
"""make bench: a normal kv ship's latency while hostile programs attack the
host beside it, each attack beside the same ship's baseline in the same run.

One client writes and reads the kv ship "calm" in turn (PUT then GET of one
key, one request at a time) for SECONDS, first with nothing else running
(the baseline), then during each attack, then once more with nothing (a
second baseline, which says how much the machine itself drifts). The
attacks run from a second client thread, each in a loop for the whole
measure, against a ship of test/programs/misbehave with its caps:

  memory hog   --memory 64M: touches 128 MiB; killed by the kernel at its
               cap, answered 503 memory_limit, woken again by the next one
  fork bomb    --pids 32: the program and every child fork for ever;
               held at 32 processes, killed at the per-event CPU limit
               (what they all used), answered 504 cpu_limit
  bomb churn   the same ship: forks until a fork fails, answers, and is
               put to sleep through the admin API (which kills its
               children) and woken by the next: an operator's churn, the
               worst a ship cannot do to itself
  CPU burner   --cpu 0.5: spins; killed at the per-event CPU limit
               (--event-cpu-ms 1000), answered 504 cpu_limit

and a peer that is no ship: a bare spinner, a process the bench starts
outside berth that spins on one core for the whole measure (what the
machine alone makes of one busy core beside the calm ship, its client and
the host; the attacks' caps give each at most one core too).

Printed: p50 and p99 of the calm ship's requests in each phase, the ratio
to the first baseline, each attack's p99 beside the bare spinner's, and
what the attack did (requests answered, kills). The target: p99 at most 2x
the baseline's.

Usage: caps.py BUILD DIR [SECONDS]"""
import http.client
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time

from crawl import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


class Client:
    def __init__(self, port):
        self.port = port
        self.c = None

    def req(self, method, path, body=None, timeout=30):
        for _ in range(2):
            if self.c is None:
                self.c = http.client.HTTPConnection("127.0.0.1", self.port,
                                                    timeout=timeout)
            try:
                self.c.request(method, path, body=body)
                r = self.c.getresponse()
                return r.status, r.read()
            except (OSError, http.client.HTTPException):
                self.c.close()
                self.c = None
        raise RuntimeError("no answer to %s %s" % (method, path))


def calm_phase(port, seconds):
    """Latencies (ms) of PUT and GET on the calm ship, one at a time."""
    c = Client(port)
    xs = []
    end = time.time() + seconds
    i = 0
    while time.time() < end:
        i += 1
        for method, body in (("PUT", str(i).encode()), ("GET", None)):
            t = time.perf_counter_ns()
            st, _ = c.req(method, "/s/calm/k/n", body)
            xs.append((time.perf_counter_ns() - t) / 1e6)
            if st not in (200, 201, 204):
                raise RuntimeError("calm ship answered %d" % st)
    return xs


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=60)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def admin_post(data, path):
    c = UnixHTTPConnection(os.path.join(data, "admin.sock"))
    try:
        c.request("POST", path)
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def attack(port, berth, data, kind, stop, out):
    """Run one attack until stop is set, then put its counts on out. It
    runs in a process of its own: as a thread of the calm client's process
    it would hold the interpreter's lock for up to its switch interval (5
    ms) while the calm client waits, and the figure would measure that."""
    counts = {}
    c = Client(port)
    while not stop.is_set():
        if kind == "hog":
            st, _ = c.req("GET", "/s/hog/hog/128")
        elif kind == "bomb":
            st, body = c.req("GET", "/s/bomb/bombloop")
        elif kind == "churn":
            st, body = c.req("GET", "/s/bomb/bomb")
            admin_post(data, "/v1/ships/bomb/sleep")
        else:
            st, _ = c.req("GET", "/s/burner/burn")
        counts[st] = counts.get(st, 0) + 1
    out.put(counts)


def main():
    build, d = sys.argv[1], sys.argv[2]
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 10
    berth = os.path.join(build, "berth")
    misbehave = os.path.abspath(os.path.join(build, "test", "programs",
                                             "misbehave"))
    kv = os.path.abspath(os.path.join(build, "programs", "kv"))
    os.makedirs(d, exist_ok=True)
    data = os.path.join(d, "host")
    port = free_port()
    log = open(os.path.join(d, "host.log"), "wb")
    host = subprocess.Popen([berth, "serve", "--data", data, "--listen",
                             "127.0.0.1:%d" % port, "--freeze-timeout", "0",
                             "--event-cpu-ms", "1000"], stderr=log)
    try:
        deadline = time.time() + 20
        while True:
            try:
                if Client(port).req("GET", "/healthz")[0] == 200:
                    break
            except (OSError, RuntimeError):
                pass
            if time.time() > deadline:
                raise RuntimeError("the host did not start")
            time.sleep(0.05)
        for name, prog, caps in (("calm", kv, []),
                                 ("hog", misbehave, ["--memory", "64M"]),
                                 ("bomb", misbehave, ["--pids", "32"]),
                                 ("burner", misbehave, ["--cpu", "0.5"])):
            subprocess.run([berth, "ship", "new", "--program", prog, "--name",
                            name, "--data", data] + caps, check=True,
                           capture_output=True)
        stats = json.loads(subprocess.run(
            [berth, "stats", "--json", "--data", data], check=True,
            capture_output=True, text=True).stdout)
        print("caps: a kv ship's latency during attacks beside it (one "
              "client, PUT and GET in turn, %g s a phase; caps by %s)"
              % (seconds, stats["caps"]))
        calm_phase(port, 1)  # awake, and warm
        phases = [("baseline", None), ("bare spinner", "spinner"),
                  ("memory hog", "hog"), ("fork bomb", "bomb"),
                  ("bomb churn", "churn"), ("CPU burner", "burner"),
                  ("baseline again", None)]
        base = None
        spinner = None
        for title, kind in phases:
            stop = multiprocessing.Event()
            out = multiprocessing.Queue()
            counts = {}
            t = None
            if kind == "spinner":
                t = subprocess.Popen([sys.executable, "-c",
                                      "while True: pass"])
                time.sleep(0.5)
            elif kind is not None:
                t = multiprocessing.Process(target=attack, daemon=True,
                                            args=(port, berth, data, kind,
                                                  stop, out))
                t.start()
                time.sleep(0.5)  # the attack under way
            xs = calm_phase(port, seconds)
            stop.set()
            if kind == "spinner":
                t.kill()
                t.wait()
            elif t is not None:
                counts = out.get(timeout=60)
                t.join(60)
            p50, p99 = pct(xs, 50), pct(xs, 99)
            if base is None:
                base = (p50, p99)
            if kind == "spinner":
                spinner = p99
            what = ", ".join("%d x %d" % (n, st)
                             for st, n in sorted(counts.items()))
            beside = ""
            if kind not in (None, "spinner"):
                beside = "  p99 %4.2fx the spinner's" % (p99 / spinner)
            print("  %-15s p50 %6.3f ms (%4.2fx)  p99 %6.3f ms (%4.2fx)  "
                  "%6d requests%s%s"
                  % (title, p50, p50 / base[0], p99, p99 / base[1], len(xs),
                     beside, "  attack: " + what if what else ""))
        alive = host.poll() is None
        print("  host alive after the attacks: %s" % ("yes" if alive else "NO"))
    finally:
        host.terminate()
        try:
            host.wait(30)
        except subprocess.TimeoutExpired:
            host.kill()
            host.wait()
        log.close()


if __name__ == "__main__":
    main()
