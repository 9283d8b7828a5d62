"""Accounts: every ship belongs to one; a fresh host has `anonymous`, which
can be closed to new ships; `berth account new` makes an account and its
token, which sees and touches only the account's ships (another's answer
404); a disabled account's ships answer 403 at the front door and sleep,
keeping their data, until it is enabled; removing an account needs --yes
and removes its ships; accounts are replicated to every host of a
cluster. The fixtures check that no program outlives a test."""
import json
import os
import subprocess
import time

from conftest import BERTH, KV, free_port, tagged_processes, wait_for, wait_no_programs


def tcp_host(host_factory, name="host", extra=()):
    port = free_port()
    h = host_factory(["--admin", "127.0.0.1:%d" % port] + list(extra),
                     name=name).start()
    return h


def tcli(h, *args, token=None, check=True):
    """The CLI against h's admin API on TCP, with token."""
    env = dict(os.environ)
    env.pop("BERTH_TOKEN", None)
    if token is not None:
        env["BERTH_TOKEN"] = token
    r = subprocess.run([BERTH] + list(args) + ["--admin", "127.0.0.1:%d" % h.admin_port],
                       capture_output=True, text=True, timeout=60, env=env)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def new_account(h, name):
    r = h.cli("account", "new", name)
    token = r.stdout.strip()
    assert token.startswith("bt_") and r.stdout.count("\n") == 1, r.stdout
    assert "shown this once" in r.stderr
    return token


def code(v):
    return v["error"]["code"] if isinstance(v, dict) and "error" in v else None


def test_account_token_sees_only_its_ships(host_factory):
    h = tcp_host(host_factory)
    # A fresh host has the anonymous account, open to new ships.
    accts = h.cli_json("account", "ls")
    assert [a["name"] for a in accts["accounts"]] == ["anonymous"]
    assert accts["accounts"][0]["id"] == 0
    assert accts["anonymous_creation"] is True
    anon = h.new_ship(KV, "anon-ship")
    assert h.cli_json("ship", "show", anon)["account"] == "anonymous"

    alice = new_account(h, "alice")
    bob = new_account(h, "bob")
    ls = h.cli("account", "ls").stdout
    assert "alice" in ls and "bob" in ls and "anonymous creation: on" in ls
    shown = h.cli_json("account", "show", "alice")
    assert shown["name"] == "alice" and shown["disabled"] is False
    assert shown["ships"] == 0

    # A ship made with alice's token is alice's.
    r = tcli(h, "ship", "new", "--program", KV, "--name", "a1", "--json", token=alice)
    a1 = json.loads(r.stdout)
    assert a1["account"] == "alice"
    tcli(h, "ship", "new", "--program", KV, "--name", "b1", token=bob)
    assert h.cli_json("account", "show", "alice")["ships"] == 1

    # Each token lists only its own; the operator lists all.
    def names(token):
        r = tcli(h, "ship", "ls", "--json", token=token)
        return sorted(s["name"] for s in json.loads(r.stdout)["ships"])

    assert names(alice) == ["a1"]
    assert names(bob) == ["b1"]
    assert sorted(s["name"] for s in h.cli_json("ship", "ls")["ships"]) == \
        ["a1", "anon-ship", "b1"]

    # Another account's ship, or an anonymous one, is not there: 404, the
    # same as a ship that does not exist, for show, send, sleep, wake, rm.
    for args in (["ship", "show", "b1"], ["ship", "rm", "b1"],
                 ["ship", "send", "b1", "put k v"], ["ship", "wake", "b1"],
                 ["ship", "sleep", "anon-ship"], ["ship", "show", "nothing"]):
        r = tcli(h, *args, token=alice, check=False)
        assert r.returncode == 1, (args, r.stdout)
        assert "(not_found)" in r.stderr and "no ship named" in r.stderr, (args, r.stderr)
    assert sorted(s["name"] for s in h.cli_json("ship", "ls")["ships"]) == \
        ["a1", "anon-ship", "b1"]
    # A token cannot make a ship in another account, nor reach the rest of
    # the admin API.
    r = tcli(h, "ship", "new", "--program", KV, "--account", "bob", token=alice,
             check=False)
    assert r.returncode == 1 and "no account named bob" in r.stderr, r.stderr
    for args in (["stats"], ["token", "ls"], ["account", "ls"]):
        r = tcli(h, *args, token=alice, check=False)
        assert r.returncode == 1 and "(forbidden)" in r.stderr, (args, r.stderr)
    # A client's own scope header is not believed on TCP.
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", h.admin_port, timeout=10)
    c.request("GET", "/v1/ships", headers={"Authorization": "Bearer " + alice,
                                           "berth-account": "0"})
    v = json.loads(c.getresponse().read())
    c.close()
    assert [s["name"] for s in v["ships"]] == ["a1"]

    # Another account's ships are not taken over by a counted creation
    # that resumes (NAME-1 exists).
    tcli(h, "ship", "new", "--program", KV, "--name", "bb", "--count", "1", token=bob)
    r = tcli(h, "ship", "new", "--program", KV, "--name", "bb", "--count", "2",
             token=alice, check=False)
    assert r.returncode == 1 and "(conflict)" in r.stderr, r.stderr
    assert names(alice) == ["a1"]
    # Its own ship it may use: send, show, rm.
    tcli(h, "ship", "send", "a1", "put colour blue", token=alice)
    status, _, body = h.http("GET", "/s/a1/k/colour")
    assert status == 200 and body == b"blue"
    tcli(h, "ship", "rm", "a1", token=alice)
    assert names(alice) == []

    # The operator makes a ship for a named account.
    r = h.cli("ship", "new", "--program", KV, "--name", "a2", "--account", "alice", "--json")
    assert json.loads(r.stdout)["account"] == "alice"
    assert names(alice) == ["a2"]
    # `token ls` says which account a token belongs to.
    accounts = sorted(t["account"] for t in h.cli_json("token", "ls")["tokens"])
    assert accounts == [1, 2], accounts
    assert "ACCOUNT" in h.cli("token", "ls").stdout


def test_bad_input_is_refused_clearly(host):
    for name in ("Bad", "-x", "123", "anonymous", "a" * 64, "a_b"):
        r = host.cli("account", "new", name, check=False)
        assert r.returncode == 2 and r.stdout == "", (name, r.stdout)
        assert "NAME is 1 to 63" in r.stderr, r.stderr
    # The host checks as well (the API without the CLI).
    status, v = host.admin("POST", "/v1/accounts", {"name": "Bad"})
    assert status == 400 and code(v) == "invalid"
    status, v = host.admin("POST", "/v1/accounts", {"name": "anonymous"})
    assert status == 400 and code(v) == "invalid"
    for args in (["account", "show", "nobody"], ["account", "disable", "nobody"],
                 ["account", "rm", "nobody", "--yes"]):
        r = host.cli(*args, check=False)
        assert r.returncode == 1 and r.stdout == "", args
        assert "no account named nobody (not_found)" in r.stderr, r.stderr
    r = host.cli("ship", "new", "--program", KV, "--account", "nobody", check=False)
    assert r.returncode == 1 and "no account named nobody" in r.stderr, r.stderr
    r = host.cli("account", "anonymous", "maybe", check=False)
    assert r.returncode == 2 and "needs on or off" in r.stderr
    new_account(host, "carol")
    r = host.cli("account", "new", "carol", check=False)
    assert r.returncode == 1 and "(conflict)" in r.stderr, r.stderr
    r = host.cli("account", "rm", "anonymous", "--yes", check=False)
    assert r.returncode == 1 and "cannot be removed" in r.stderr, r.stderr
    for cmd in ("new", "ls", "show", "disable", "enable", "rm", "anonymous"):
        r = host.cli("account", cmd, "--help")
        assert r.stdout.startswith("usage: berth account " + cmd), r.stdout


def test_anonymous_creation_can_be_closed(host_factory):
    h = tcp_host(host_factory)
    old = h.new_ship(KV, "before")
    token = new_account(h, "dave")
    r = h.cli("account", "anonymous", "off")
    assert r.stdout.strip() == "anonymous creation: off"
    r = h.cli("ship", "new", "--program", KV, "--name", "anon2", check=False)
    assert r.returncode == 1 and "(anonymous_closed)" in r.stderr, r.stderr
    assert "--account" in r.stderr
    status, v = h.admin("POST", "/v1/ships", {"program": KV})
    assert status == 403 and code(v) == "anonymous_closed"
    # Named accounts still make ships; the anonymous ship still serves.
    tcli(h, "ship", "new", "--program", KV, "--name", "d1", token=token)
    h.cli("ship", "new", "--program", KV, "--name", "d2", "--account", "dave")
    h.cli("ship", "send", old, "put x 1")
    status, _, body = h.http("GET", "/s/before/k/x")
    assert status == 200 and body == b"1"
    assert "creation:        off" in h.cli("account", "show", "anonymous").stdout
    # It survives a restart, and turns on again.
    h.stop()
    h.start()
    assert h.cli_json("account", "ls")["anonymous_creation"] is False
    h.cli("account", "anonymous", "on")
    h.new_ship(KV, "anon3")


def test_disable_and_enable(host_factory):
    h = tcp_host(host_factory)
    token = new_account(h, "erin")
    tcli(h, "ship", "new", "--program", KV, "--name", "e1", token=token)
    other = h.new_ship(KV, "other")
    status, _, _ = h.http("PUT", "/s/e1/k/colour", body=b"green")
    assert status == 201
    assert h.cli_json("ship", "show", "e1")["state"] == "awake"

    r = h.cli("account", "disable", "erin")
    assert "state:           disabled" in r.stdout
    # The front door answers 403 with a code; the ship goes to sleep.
    status, ctype, body = h.http("GET", "/s/e1/k/colour")
    assert status == 403, body
    assert json.loads(body)["error"]["code"] == "account_disabled"
    wait_for(lambda: h.cli_json("ship", "show", "e1")["state"] == "asleep")
    show = h.cli("ship", "show", "e1").stdout
    assert "state:           asleep" in show
    assert "account:         erin (disabled)" in show
    # Neither a wake nor an event starts it; its token is refused.
    for args in (["ship", "wake", "e1"], ["ship", "send", "e1", "put a b"]):
        r = h.cli(*args, check=False)
        assert r.returncode == 1 and "(account_disabled)" in r.stderr, r.stderr
    assert h.cli_json("ship", "show", "e1")["state"] == "asleep"
    r = tcli(h, "ship", "ls", token=token, check=False)
    assert r.returncode == 1 and "(account_disabled)" in r.stderr, r.stderr
    # Other accounts' ships serve.
    h.cli("ship", "send", other, "put y 2")
    status, _, body = h.http("GET", "/s/other/k/y")
    assert status == 200 and body == b"2"

    # Enabled: service and the data written before come back.
    h.cli("account", "enable", "erin")
    status, _, body = h.http("GET", "/s/e1/k/colour")
    assert status == 200 and body == b"green"
    r = tcli(h, "ship", "ls", "--json", token=token)
    assert [s["name"] for s in json.loads(r.stdout)["ships"]] == ["e1"]


def test_disabled_account_survives_restart(host_factory):
    h = tcp_host(host_factory)
    new_account(h, "fay")
    h.cli("ship", "new", "--program", KV, "--name", "f1", "--account", "fay")
    h.http("PUT", "/s/f1/k/a", body=b"1")
    h.cli("account", "disable", "fay")
    h.stop()
    h.start()
    status, _, body = h.http("GET", "/s/f1/k/a")
    assert status == 403 and json.loads(body)["error"]["code"] == "account_disabled"
    h.cli("account", "enable", "fay")
    status, _, body = h.http("GET", "/s/f1/k/a")
    assert status == 200 and body == b"1"


def test_remove_needs_yes_and_removes_ships(host_factory):
    h = tcp_host(host_factory)
    token = new_account(h, "gus")
    for n in ("g1", "g2"):
        tcli(h, "ship", "new", "--program", KV, "--name", n, token=token)
    h.http("PUT", "/s/g1/k/a", body=b"1")  # one awake, one asleep
    assert len(tagged_processes(h.tag)) == 1
    keep = h.new_ship(KV, "keep")
    r = h.cli("account", "rm", "gus", check=False)
    assert r.returncode == 2 and "--yes" in r.stderr
    status, v = h.admin("DELETE", "/v1/accounts/gus")
    assert status == 400 and "?yes=1" in v["error"]["message"]
    assert h.cli_json("account", "show", "gus")["ships"] == 2

    r = h.cli("account", "rm", "gus", "--yes")
    assert r.stdout.strip() == "removed gus (2 ships)"
    assert wait_no_programs(h.tag) == []  # the awake one's program ended
    names = [s["name"] for s in h.cli_json("ship", "ls")["ships"]]
    assert names == ["keep"]
    status, _, _ = h.http("GET", "/s/g1/k/a")
    assert status == 404
    assert [a["name"] for a in h.cli_json("account", "ls")["accounts"]] == ["anonymous"]
    # Its token went with it.
    r = tcli(h, "ship", "ls", token=token, check=False)
    assert r.returncode == 1 and "(unauthorized)" in r.stderr, r.stderr
    # The name is free again.
    new_account(h, "gus")
    assert h.cli_json("ship", "show", keep)["name"] == "keep"
    # One ship is one ship, none is none.
    h.cli("ship", "new", "--program", KV, "--name", "g3", "--account", "gus")
    assert h.cli("account", "rm", "gus", "--yes").stdout.strip() == "removed gus (1 ship)"
    new_account(h, "gus")
    assert h.cli("account", "rm", "gus", "--yes").stdout.strip() == "removed gus (no ships)"


def test_accounts_replicate(cluster_factory):
    c = cluster_factory(3, ["--election-timeout", "300", "--heartbeat", "30"])
    for x in c.hosts:
        x.admin_port = free_port()
        x.extra = x.extra + ["--admin", "127.0.0.1:%d" % x.admin_port]
    c.start()
    lead = c.leader()
    followers = [x for x in c.hosts if x is not lead]
    token = new_account(lead, "hana")
    lead.cli("ship", "new", "--program", KV, "--name", "h1", "--account", "hana")
    lead.new_ship(KV, "other")
    # Through a follower's TCP, which checks the token and forwards the
    # request: the account's scope reaches the leader with it.
    for f in followers:
        r = tcli(f, "ship", "ls", "--json", token=token)
        assert [s["name"] for s in json.loads(r.stdout)["ships"]] == ["h1"]
        r = tcli(f, "ship", "show", "other", token=token, check=False)
        assert r.returncode == 1 and "(not_found)" in r.stderr, r.stderr
    lead.cli("account", "disable", "hana")
    c.wait_caught_up()
    # Any host answers for the cluster (a follower asks the leader).
    for f in followers:
        wait_for(lambda: any(a["name"] == "hana" and a["disabled"] and a["ships"] == 1
                             for a in f.cli_json("account", "ls")["accounts"]), 20)
    # The store of every host holds the account: after a failover the new
    # leader, which only applied the entries, knows it is disabled.
    c.kill9(lead)
    new = c.leader(exclude=(lead,))
    status, _, body = new.http("GET", "/s/h1/k/a")
    assert status == 403, body
    assert [(a["name"], a["disabled"]) for a in new.cli_json("account", "ls")["accounts"]] == \
        [("anonymous", False), ("hana", True)]
    new.cli("account", "enable", "hana")
    status, _, _ = new.http("GET", "/s/h1/k/a")
    assert status == 404  # kv: no such key; the ship served


def alarm_info(h, ship):
    status, _, body = h.http("GET", "/s/%s/alarm" % ship)
    assert status == 200, body
    return json.loads(body)


def test_alarm_of_disabled_account_waits_for_enable(host_factory):
    h = host_factory().start()
    h.cli("account", "new", "ivy")
    h.cli("ship", "new", "--program", KV, "--name", "i1", "--account", "ivy")
    status, _, _ = h.http("PUT", "/s/i1/alarm", b"800")
    assert status == 200
    h.cli("account", "disable", "ivy")
    wait_for(lambda: h.cli_json("ship", "show", "i1")["state"] == "asleep")
    # Past its time the alarm has not woken the ship; it is still set.
    time.sleep(1.5)
    assert h.cli_json("stats")["alarms_fired"] == 0
    show = h.cli_json("ship", "show", "i1")
    assert show["state"] == "asleep" and show["alarm_ns"] > 0
    # Nor across a restart.
    h.stop()
    h.start()
    time.sleep(0.5)
    assert h.cli_json("stats")["alarms_fired"] == 0
    assert h.cli_json("ship", "show", "i1")["state"] == "asleep"
    # Enabled: it fires, once.
    h.cli("account", "enable", "ivy")
    wait_for(lambda: h.cli_json("stats")["alarms_fired"] == 1)
    assert alarm_info(h, "i1") == {"alarm_ns": 0, "fired": 1}
