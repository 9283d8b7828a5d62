"""A program writing stderr without end, beside a kv ship: the kv ship's
latency (a PUT and a GET, one client, closed loop) without the flood and
during it, in the same run, with what the host process's CPU and each
ship's log ring took (docs/performance.md, "A flood of stderr").

usage: python3 bench/stderr_flood.py BUILD DIR [ROUNDS]"""
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time

BUILD, DIR = sys.argv[1], sys.argv[2]
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 500
BERTH = os.path.join(BUILD, "berth")
KV = os.path.abspath(os.path.join(BUILD, "programs", "kv"))
MISBEHAVE = os.path.abspath(os.path.join(BUILD, "test", "programs", "misbehave"))


def main():
    shutil.rmtree(DIR, ignore_errors=True)
    os.makedirs(DIR)
    data = os.path.join(DIR, "data")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(os.path.join(DIR, "host.log"), "wb")
    host = subprocess.Popen([BERTH, "serve", "--data", data, "--listen",
                             "127.0.0.1:%d" % port], stdout=log, stderr=log)

    def cli(*args):
        return subprocess.run([BERTH] + list(args) + ["--data", data],
                              capture_output=True, text=True, check=True).stdout

    def req(method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            c.request(method, path, body=body)
            r = c.getresponse()
            r.read()
            return r.status
        finally:
            c.close()

    def cpu():
        f = open("/proc/%d/stat" % host.pid).read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

    def run():
        lat = []
        c0, t0 = cpu(), time.time()
        for i in range(ROUNDS):
            t = time.perf_counter()
            assert req("PUT", "/s/calm/k/x", str(i).encode()) in (200, 201)
            assert req("GET", "/s/calm/k/x") == 200
            lat.append((time.perf_counter() - t) * 1000)
        lat.sort()
        share = (cpu() - c0) / (time.time() - t0)
        return lat[len(lat) // 2], lat[int(len(lat) * 0.99)], share

    def log_end():
        return json.loads(cli("ship", "logs", "flood", "--json").splitlines()[0])["log_end"]

    try:
        for _ in range(200):
            try:
                if req("GET", "/healthz") == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        cli("ship", "new", "--program", KV, "--name", "calm")
        cli("ship", "new", "--program", MISBEHAVE, "--name", "flood")
        req("PUT", "/s/calm/k/x", b"0")
        req("GET", "/s/flood/")
        base = run()
        assert req("GET", "/s/flood/flood") == 200
        time.sleep(0.5)
        e0, t0 = log_end(), time.time()
        during = run()
        rate = (log_end() - e0) / (time.time() - t0)
        ring = os.path.getsize(os.path.join(data, "logs", os.listdir(os.path.join(data, "logs"))[0]))
        print("stderr flood (bench/stderr_flood.py): kv PUT+GET, 1 client, %d rounds each" % ROUNDS)
        print("  %-10s p50 %6.2f ms  p99 %6.2f ms  host CPU %3.0f%% of a core" %
              ("baseline", base[0], base[1], base[2] * 100))
        print("  %-10s p50 %6.2f ms  p99 %6.2f ms  host CPU %3.0f%% of a core" %
              ("flooding", during[0], during[1], during[2] * 100))
        print("  p99 %.2fx the baseline; the ring took %.0f MB/s of stderr and stays "
              "%d bytes; the host's log grew to %d bytes" %
              (during[1] / base[1], rate / 1e6, ring, os.path.getsize(os.path.join(DIR, "host.log"))))
    finally:
        host.terminate()
        host.wait()
        log.close()


main()
