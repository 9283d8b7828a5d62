#!/usr/bin/env python3
"""make bench: what TLS adds to a wake, beside the same wake over plain
HTTP and beside a TLS handshake plus request to an awake ship, one host,
same run.

Each measure is a new connection and one GET to a ship by its name
(Host: w.example.org under --domain), from before connect to the last
byte of the reply. A wake is measured from a ship asleep (POST
/v1/ships/w/sleep before it). Over TLS the ClientHello names the ship
(SNI), so its wake starts before the handshake ends; "no SNI" is the same
wake with the name in the Host header alone, which is known only once
the handshake is done and the headers are in. The kinds take turns in
each round, so that the machine's noise falls on all of them alike;
"resumed" resumes the session of the connection before it (a TLS 1.3
ticket, as a returning browser would), which skips the certificate's
signature and its check.
Target: TLS adds at most 0.5 ms to a wake (p50, TLS wake minus plain
wake).

The connections are made and timed by a C client, bench/tls_client.c
(OpenSSL, checking the certificate as a browser would), which shares
the machine's cores with the host and the waking ship: its own CPU per
connection is told beside the figures.

Beside them: the host's CPU time (its threads' schedstat) per new
connection and GET to an awake ship, over TLS and plain, which the
client's share of the machine does not touch; the client's; and the
library's share alone, the host's TLS code (src/http/tls.c) making the
same handshake and reply with an OpenSSL client in one process over
memory (tls_client handshake), with no socket, loop or thread.

Usage: tls.py BUILD DIR [N]: N rounds, 200 by default."""
import os
import shutil
import signal
import subprocess
import sys
import time

from crawl import free_port
from emergency import admin
from messages import pct, request

DOMAIN = "example.org"


def make_cert(d):
    cert, key = os.path.join(d, "tls.crt"), os.path.join(d, "tls.key")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
         "-days", "2", "-subj", "/CN=" + DOMAIN, "-addext",
         "subjectAltName=DNS:%s,DNS:*.%s" % (DOMAIN, DOMAIN)],
        check=True, capture_output=True)
    return cert, key


class Client:
    """bench/tls_client.c in its get mode: each call is a new connection
    and one GET of w's key, timed in C (the client shares the machine's
    cores with the host and the waking ship: its own cost is kept small
    and told beside the figures)."""

    def __init__(self, build, port, tls_port, cert):
        self.p = subprocess.Popen(
            [os.path.join(build, "bench", "tls_client"), "get", str(port),
             str(tls_port), cert, "w." + DOMAIN, "/k/x"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def get(self, kind, name=None):
        """kind: plain, tls (name in the ClientHello), bare (no name),
        resume (the session of the TLS connection before, a ticket: no
        certificate sent, signed or checked). Returns (ms, client CPU
        ms)."""
        self.p.stdin.write(kind + (" " + name if name else "") + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline().split()
        assert len(line) == 3, "tls_client failed"
        us, cpu, status = int(line[0]), int(line[1]), int(line[2])
        assert status == 200, status
        return us / 1000, cpu / 1000

    def close(self):
        self.p.stdin.close()
        self.p.wait(10)


def cpu_ms(pid):
    """The CPU time of pid's threads, in ms, to the nanosecond
    (schedstat; /proc's utime and stime count whole clock ticks). The
    host's threads (its loop, the worker pool) live as long as it does."""
    ns = 0
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                ns += int(f.read().split()[0])
        except OSError:
            pass
    return ns / 1e6


def main():
    build, d = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    berth = os.path.join(build, "berth")
    kv = os.path.abspath(os.path.join(build, "programs", "kv"))
    os.makedirs(d, exist_ok=True)
    cert, key = make_cert(d)
    data = os.path.join(d, "host")
    port, tls_port = free_port(), free_port()
    log = open(os.path.join(d, "host.log"), "wb")
    client = Client(build, port, tls_port, cert)
    host = subprocess.Popen([berth, "serve", "--data", data, "--listen",
                             "127.0.0.1:%d" % port, "--domain", DOMAIN,
                             "--tls-listen", "127.0.0.1:%d" % tls_port,
                             "--tls-cert", cert, "--tls-key", key],
                            stderr=log)
    name = "w." + DOMAIN
    kinds = {
        "plain wake": lambda: client.get("plain"),
        "TLS wake": lambda: client.get("tls", name),
        "TLS wake, no SNI": lambda: client.get("bare"),
        "TLS wake, resumed": lambda: client.get("resume", name),
    }
    awake = {
        "plain, awake": lambda: client.get("plain"),
        "TLS, awake": lambda: client.get("tls", name),
    }
    got = {k: [] for k in list(kinds) + list(awake)}
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                if request(port, "GET", "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        subprocess.run([berth, "ship", "new", "--program", kv, "--name", "w",
                        "--data", data], check=True, capture_output=True)
        request(port, "PUT", "/s/w/k/x", b"v")
        names = list(kinds)
        for i in range(n):
            for j in range(len(names)):
                k = names[(i + j) % len(names)]
                st, _ = admin(data, "POST", "/v1/ships/w/sleep")
                assert st == 200, st
                got[k].append(kinds[k]()[0])
                for a in awake:
                    got[a].append(awake[a]()[0])
        # The host's CPU per connection, awake: n * 5 of each, and the
        # client's beside it.
        cpu, client_cpu = {}, {}
        for k in awake:
            c0 = cpu_ms(host.pid)
            mine = [awake[k]()[1] for _ in range(n * 5)]
            cpu[k] = (cpu_ms(host.pid) - c0) / (n * 5)
            client_cpu[k] = pct(mine, 50)
    finally:
        client.close()
        host.send_signal(signal.SIGTERM)
        host.wait(30)
        log.close()
    # The library's share alone: the host's TLS code and an OpenSSL client
    # in one process over memory.
    lib = subprocess.run([os.path.join(build, "bench", "tls_client"),
                          "handshake", cert, key, str(n * 5)], check=True,
                         capture_output=True, text=True).stdout.split()
    print("TLS at the front door, one host, %d of each: a new connection "
          "and one GET (bench/tls.py, timed by bench/tls_client.c)" % n)
    for k, xs in got.items():
        print("  %-18s p50 %6.2f ms  p90 %6.2f ms" % (k, pct(xs, 50),
                                                      pct(xs, 90)))
    print("  CPU per connection and GET, awake: host TLS %.3f ms, plain "
          "%.3f ms; client (p50) TLS %.3f ms, plain %.3f ms" % (
              cpu["TLS, awake"], cpu["plain, awake"],
              client_cpu["TLS, awake"], client_cpu["plain, awake"]))
    print("  the handshake and one request in memory, no socket (p50 CPU): "
          "host's TLS code %.3f ms, OpenSSL client %.3f ms" % (
              int(lib[1]) / 1000, int(lib[3]) / 1000))
    p = {k: pct(xs, 50) for k, xs in got.items()}
    print("  TLS adds to a wake %.2f ms (p50, TLS wake - plain wake; target "
          "0.5 ms), %.2f ms without SNI, %.2f ms resumed; a handshake to an "
          "awake ship costs %.2f ms" % (
              p["TLS wake"] - p["plain wake"],
              p["TLS wake, no SNI"] - p["plain wake"],
              p["TLS wake, resumed"] - p["plain wake"],
              p["TLS, awake"] - p["plain, awake"]))
    shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
