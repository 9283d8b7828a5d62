"""The operator's emergency levers on real hosts: `ship block` cuts a ship
off (front door 403, no message in or out) on every host and across
restarts, `ship unblock` lets it back, and `ship kill` kills its program at
once and puts it to sleep. Both take effect within 100 ms of the call."""
import json
import os
import time

from conftest import KV, ROOT, wait_for

SPAWNER = os.path.join(ROOT, "test", "programs", "spawner.py")


def send(host, ship, to, text):
    status, _, body = host.http("POST", "/s/%s/send/%s" % (ship, to),
                                text.encode())
    assert status == 202, body
    tag = str(json.loads(body)["tag"])

    def seen():
        _, _, b = host.http("GET", "/s/%s/sent" % ship)
        return json.loads(b).get(tag)
    return wait_for(seen)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too: its parent has not reaped it yet.
    with open("/proc/%d/stat" % pid) as f:
        return f.read().split(") ")[1][0] != "Z"


def test_block_and_unblock(host):
    host.new_ship(KV, "b")
    assert host.http("PUT", "/s/b/k/x", b"1")[0] in (200, 201)
    t0 = time.monotonic()
    status, body = host.admin("POST", "/v1/ships/b/block")
    assert status == 200 and body["blocked"] is True, body
    status, _, answer = host.http("GET", "/s/b/k/x")
    took = time.monotonic() - t0
    assert status == 403 and b"ship_blocked" in answer, answer
    assert took < 0.1, "block took %.1f ms" % (took * 1000)
    shown = host.cli("ship", "show", "b").stdout
    assert "blocked:" in shown, shown
    assert "ship blocked" in host.logs()
    # Kept across a restart, from the store.
    host.stop()
    host.start()
    assert host.http("GET", "/s/b/k/x")[0] == 403
    assert host.cli("ship", "unblock", "b").stdout.strip().endswith("unblocked")
    assert host.http("GET", "/s/b/k/x")[2] == b"1"
    assert host.cli_json("ship", "show", "b")["blocked"] is False


def test_block_cuts_messages_both_ways(host):
    host.new_ship(SPAWNER, "a")
    host.new_ship(SPAWNER, "c")
    assert send(host, "a", "c", "hi")["outcome"] == 1
    host.cli("ship", "block", "c")
    r = send(host, "a", "c", "in")
    assert r["outcome"] == 2 and "blocked" in r["body"], r
    # A blocked ship is reached through the front door no more, so it
    # cannot be asked to send either.
    host.cli("ship", "unblock", "c")
    host.cli("ship", "block", "a")
    status, _, _ = host.http("POST", "/s/a/send/c", b"out")
    assert status == 403
    host.cli("ship", "unblock", "a")
    assert send(host, "a", "c", "again")["outcome"] == 1


def test_kill(host):
    host.new_ship(KV, "k")
    assert host.http("PUT", "/s/k/k/x", b"v")[0] in (200, 201)
    pid = host.cli_json("ship", "show", "k")["pid"]
    assert pid and alive(pid)
    t0 = time.monotonic()
    status, body = host.admin("POST", "/v1/ships/k/kill")
    assert status == 200 and body["state"] == "asleep", body
    wait_for(lambda: not alive(pid), timeout=1, step=0.002)
    took = time.monotonic() - t0
    assert took < 0.1, "kill took %.1f ms" % (took * 1000)
    show = host.cli_json("ship", "show", "k")
    assert show["killed"] is True and show["pid"] is None, show
    assert "killed by the operator" in host.cli("ship", "show", "k").stdout
    assert "program killed by the operator" in host.logs()
    # It wakes on its next message, from its last committed state.
    assert host.http("GET", "/s/k/k/x")[2] == b"v"
    assert host.cli_json("ship", "show", "k")["killed"] is False
    # Killing a sleeping ship is harmless.
    host.cli("ship", "sleep", "k")
    assert host.cli("ship", "kill", "k").stdout.split()[1] == "asleep"


def test_block_takes_the_network(host):
    """A blocked ship that has the network loses it: its running program is
    killed (it starts without the network while blocked); a ship without
    the network keeps its program running."""
    host.new_ship(KV, "net", "--network")
    host.new_ship(KV, "plain")
    for name in ("net", "plain"):
        assert host.http("PUT", "/s/%s/k/x" % name, b"1")[0] in (200, 201)
    net = host.cli_json("ship", "show", "net")["pid"]
    plain = host.cli_json("ship", "show", "plain")["pid"]
    host.cli("ship", "block", "net")
    host.cli("ship", "block", "plain")
    wait_for(lambda: not alive(net), timeout=2, step=0.01)
    assert alive(plain)
    host.cli("ship", "unblock", "net")
    host.cli("ship", "unblock", "plain")
    assert host.http("GET", "/s/net/k/x")[2] == b"1"
