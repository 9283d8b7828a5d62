"""The host's instruments: structured log lines with levels, Prometheus
metrics at /metrics, programs' stderr kept per ship (`berth ship logs`), and
hosts' heartbeats in `berth cluster ls`."""
import re
import time

from conftest import KV, wait_for


def log_lines(h):
    with open(h.log_path, "rb") as f:
        return f.read().decode(errors="replace").splitlines()


def ship_lines(h, sid, msg):
    want = 'msg="%s"' % msg
    return [l for l in log_lines(h) if want in l and ("ship=%s" % sid) in l]


def test_info_logs_a_wake_and_a_sleep_and_warn_does_not(host_factory):
    h = host_factory(["--log-level", "info"], name="info").start()
    sid = h.new_ship(KV, "ann")
    assert h.http("PUT", "/s/ann/k/a", b"1")[0] in (200, 201)
    h.cli("ship", "sleep", "ann")
    wait_for(lambda: ship_lines(h, sid, "ship asleep"))
    waking = ship_lines(h, sid, "ship waking")
    assert len(waking) == 1, log_lines(h)
    assert "from=asleep" in waking[0]
    assert re.match(r'time=\S+Z level=info msg="ship waking" ship=\S+ from=asleep$',
                    waking[0]), waking[0]
    assert ship_lines(h, sid, "ship awake")
    assert ship_lines(h, sid, "ship sleeping")

    w = host_factory(["--log-level", "warn"], name="warn").start()
    sid = w.new_ship(KV, "bob")
    assert w.http("PUT", "/s/bob/k/a", b"1")[0] in (200, 201)
    w.cli("ship", "sleep", "bob")
    assert w.cli_json("ship", "show", "bob")["state"] == "asleep"
    w.stop()
    lines = log_lines(w)
    assert not [l for l in lines if "level=info" in l], lines
    assert not [l for l in lines if "ship=" + sid in l], lines


def test_a_bad_log_level_is_refused(host_factory):
    h = host_factory(["--log-level", "loud"], name="bad")
    import subprocess
    from conftest import BERTH
    r = subprocess.run([BERTH, "serve", "--data", h.data, "--log-level", "loud"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2
    assert "--log-level" in r.stderr and r.stdout == ""
